//! Training and evaluation data for the paper's experiments (Cranmer et al. 2020 §4).
//!
//! | system | samples (q, q̇, q̈) | trajectories | ground truth |
//! |---|---|---|---|
//! | `dblpend` | θ ∈ [0, 2π)², ω ∈ [−ω_max, ω_max]² (reference code: ω_max = 10) | B random initial states, DP5 | closed-form q̈ of the reference code ([`dblpend_accel`]) |
//! | `relativistic` | q, q̇ ∈ (−1, 1), g fixed or uniform per sample; also p = q̇(1 − q̇²)^(−3/2) | DP5 | q̈ = g(1 − q̇²)^(5/2)/(1 + 2q̇²) |
//! | `wave1d` | frames of random smooth trajectories on a periodic grid | DP5 | standard stencil [`crate::density::Wave1dStandard`] |
//! | `wave-mesh` ([`wave_mesh`]) | random smooth fields on a user's triangle mesh | DP5, all B at once, streamed | P1 FEM −M⁻¹Kφ |
//!
//! All generators are deterministic given the seed (trajectories are integrated in parallel,
//! each from its own pre-drawn initial state). Energies are the exact energies of the true
//! Lagrangian, E = q̇·∂L/∂q̇ − L.

pub mod damped;
pub mod derivatives;
mod energy_shell;
pub mod wave_mesh;
pub mod wave_mesh_driven;

use crate::dynamics::Dynamics;
use crate::integrate::{integrate, Dp5Options, Method};
use crate::io::{SamplesData, TrajectoryData};
use crate::solve::SolverKind;
use crate::systems::{self, DensityChoice};
use crate::{Error, Result};
use ndarray::{Array1, Array2, Array3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::Path;

/// The `system` label of generated wave data: its ground truth is the standard 3-point stencil
/// (`lgn accel --system wave1d-standard`), not the wide centred stencil of `--system wave1d`.
/// Files labelled `wave1d` by earlier versions are read as the same data.
pub const WAVE1D_DATA_LABEL: &str = "wave1d-standard";

/// Is `system` a label of 1D wave data ("wave1d-standard", or "wave1d" of earlier files)?
pub fn is_wave1d_label(system: &str) -> bool {
    system == WAVE1D_DATA_LABEL || system == "wave1d"
}

pub use energy_shell::dblpend_samples_bounded;

/// An initial state (q, q̇).
pub type State = (Vec<f64>, Vec<f64>);
/// One trajectory's rows: q, q̇, q̈ (T·D each) and energy (T).
type TrajRows = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Closed-form double-pendulum accelerations (m₁ = m₂ = l₁ = l₂ = 1), as in the reference code:
/// solves the 2×2 Euler–Lagrange system by hand, independently of [`crate::dynamics`].
pub fn dblpend_accel(q: &[f64], v: &[f64], g: f64) -> [f64; 2] {
    let (t1, t2, w1, w2) = (q[0], q[1], v[0], v[1]);
    let (m1, m2, l1, l2) = (1.0, 1.0, 1.0, 1.0);
    let (sd, cd) = (t1 - t2).sin_cos();
    let a1 = (l2 / l1) * (m2 / (m1 + m2)) * cd;
    let a2 = (l1 / l2) * cd;
    let f1 = -(l2 / l1) * (m2 / (m1 + m2)) * w2 * w2 * sd - (g / l1) * t1.sin();
    let f2 = (l1 / l2) * w1 * w1 * sd - (g / l2) * t2.sin();
    let det = 1.0 - a1 * a2;
    [(f1 - a1 * f2) / det, (f2 - a2 * f1) / det]
}

/// Relativistic particle: q̈ = g(1 − q̇²)^(5/2)/(1 + 2q̇²) (docs/DESIGN.md §5).
pub fn relativistic_accel(v: f64, g: f64) -> f64 {
    g * (1.0 - v * v).powf(2.5) / (1.0 + 2.0 * v * v)
}

/// Canonical momentum of the relativistic particle: p = q̇(1 − q̇²)^(−3/2).
pub fn relativistic_momentum(v: f64) -> f64 {
    v * (1.0 - v * v).powf(-1.5)
}

/// Double pendulum samples: N random states (θ uniform in [0, 2π), ω uniform in
/// [−omega_max, omega_max]) with exact q̈.
pub fn dblpend_samples(n: usize, g: f64, omega_max: f64, seed: u64) -> Result<SamplesData> {
    check_count("samples", n)?;
    check_alloc_rows("samples", n, 6)?;
    check_param("g", g)?;
    check_omega_max(omega_max)?;
    dblpend_samples_from(n, g, seed, ("omega_max", omega_max), |rng| {
        dblpend_state(rng, omega_max)
    })
}

/// `n` double-pendulum states drawn by `state` from the generator seeded with `seed`, with
/// exact q̈; `param` (the distribution's parameter) is recorded next to g and the seed.
fn dblpend_samples_from(
    n: usize,
    g: f64,
    seed: u64,
    param: (&str, f64),
    mut state: impl FnMut(&mut StdRng) -> ([f64; 2], [f64; 2]),
) -> Result<SamplesData> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut q, mut qd, mut qdd) = (
        Array2::zeros((n, 2)),
        Array2::zeros((n, 2)),
        Array2::zeros((n, 2)),
    );
    for i in 0..n {
        let (qi, vi) = state(&mut rng);
        let a = dblpend_accel(&qi, &vi, g);
        for c in 0..2 {
            q[[i, c]] = qi[c];
            qd[[i, c]] = vi[c];
            qdd[[i, c]] = a[c];
        }
    }
    check_generated("qddot", &qdd, &format!("g and {}", param.0))?;
    Ok(SamplesData {
        system: Some("dblpend".into()),
        params: params(&[("g", g), param, ("seed", seed as f64)]),
        q,
        qdot: qd,
        qddot: qdd,
        weights: None,
    })
}

fn dblpend_state(rng: &mut StdRng, omega_max: f64) -> ([f64; 2], [f64; 2]) {
    let q = [
        rng.random_range(0.0..2.0 * PI),
        rng.random_range(0.0..2.0 * PI),
    ];
    let v = if omega_max > 0.0 {
        [
            rng.random_range(-omega_max..=omega_max),
            rng.random_range(-omega_max..=omega_max),
        ]
    } else {
        [0.0, 0.0]
    };
    (q, v)
}

/// Double pendulum trajectories from B random initial states (as in [`dblpend_samples`]).
pub fn dblpend_trajectories(
    b: usize,
    times: &[f64],
    g: f64,
    omega_max: f64,
    seed: u64,
    method: &Method,
) -> Result<TrajectoryData> {
    check_count("trajectories", b)?;
    check_param("g", g)?;
    check_omega_max(omega_max)?;
    check_alloc_rows("trajectories", b, 7 * times.len())?;
    let mut rng = StdRng::seed_from_u64(seed);
    let init: Vec<State> = (0..b)
        .map(|_| {
            let (q, v) = dblpend_state(&mut rng, omega_max);
            (q.to_vec(), v.to_vec())
        })
        .collect();
    let mut t = trajectories(
        || systems::dblpend(g, &DensityChoice::Analytic, SolverKind::Auto),
        &init,
        times,
        method,
    )?;
    t.system = Some("dblpend".into());
    t.params = params(&[("g", g), ("omega_max", omega_max), ("seed", seed as f64)]);
    Ok(t)
}

/// Gravity of the relativistic-particle data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RelativisticG {
    /// One g for every sample (root attribute `g`).
    Fixed(f64),
    /// g uniform in [lo, hi) per sample (dataset `g`, attributes `g_min`, `g_max`).
    Uniform(f64, f64),
}

/// Relativistic samples: q̇ and q uniform in (−1, 1), exact q̈, canonical momentum p, and the
/// per-sample g when it varies.
#[derive(Clone, Debug)]
pub struct RelativisticSamples {
    pub samples: SamplesData,
    /// p = q̇(1 − q̇²)^(−3/2), N × 1 (dataset `p`).
    pub p: Array2<f64>,
    /// Per-sample g (dataset `g`) for [`RelativisticG::Uniform`].
    pub g: Option<Array1<f64>>,
}

impl RelativisticSamples {
    /// Write a samples file with the extra datasets `p` (and `g`), atomically.
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        let mut extra: Vec<(&str, ndarray::ArrayD<f64>)> = vec![("p", self.p.clone().into_dyn())];
        if let Some(g) = &self.g {
            extra.push(("g", g.clone().into_dyn()));
        }
        write_samples_with(&self.samples, &extra, path, force)
    }
}

/// Relativistic particle samples (paper §4.2).
pub fn relativistic_samples(n: usize, g: RelativisticG, seed: u64) -> Result<RelativisticSamples> {
    check_count("samples", n)?;
    check_alloc_rows("samples", n, 5)?;
    match g {
        RelativisticG::Fixed(g) => check_param("g", g)?,
        RelativisticG::Uniform(lo, hi) => {
            check_param("g_min", lo)?;
            check_param("g_max", hi)?;
            if lo >= hi {
                return Err(Error::input(format!(
                    "g range [{}, {}) is empty",
                    crate::limits::num(lo),
                    crate::limits::num(hi)
                )));
            }
            if !(hi - lo).is_finite() {
                return Err(Error::input(format!(
                    "g range [{}, {}) is too wide: its width overflows float64",
                    crate::limits::num(lo),
                    crate::limits::num(hi)
                )));
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut q, mut qd, mut qdd, mut p) = (
        Array2::zeros((n, 1)),
        Array2::zeros((n, 1)),
        Array2::zeros((n, 1)),
        Array2::zeros((n, 1)),
    );
    let mut gs = Array1::zeros(n);
    for i in 0..n {
        let (qi, vi) = relativistic_state(&mut rng);
        let gi = match g {
            RelativisticG::Fixed(g) => g,
            RelativisticG::Uniform(lo, hi) => rng.random_range(lo..hi),
        };
        q[[i, 0]] = qi;
        qd[[i, 0]] = vi;
        qdd[[i, 0]] = relativistic_accel(vi, gi);
        p[[i, 0]] = relativistic_momentum(vi);
        gs[i] = gi;
    }
    let (par, gv) = match g {
        RelativisticG::Fixed(g) => {
            check_param("g", g)?;
            (params(&[("g", g), ("seed", seed as f64)]), None)
        }
        RelativisticG::Uniform(lo, hi) => {
            check_param("g_min", lo)?;
            check_param("g_max", hi)?;
            if lo >= hi {
                return Err(Error::input(format!("g range [{lo}, {hi}) is empty")));
            }
            (
                params(&[("g_min", lo), ("g_max", hi), ("seed", seed as f64)]),
                Some(gs),
            )
        }
    };
    Ok(RelativisticSamples {
        samples: SamplesData {
            system: Some("relativistic".into()),
            params: par,
            q,
            qdot: qd,
            qddot: qdd,
            weights: None,
        },
        p,
        g: gv,
    })
}

fn relativistic_state(rng: &mut StdRng) -> (f64, f64) {
    let open = |rng: &mut StdRng| loop {
        let x: f64 = rng.random_range(-1.0..1.0);
        if x > -1.0 {
            return x;
        }
    };
    (open(rng), open(rng))
}

/// Relativistic trajectories from B random states (q, q̇ ∈ (−1, 1)) with one g.
pub fn relativistic_trajectories(
    b: usize,
    times: &[f64],
    g: f64,
    seed: u64,
    method: &Method,
) -> Result<TrajectoryData> {
    check_count("trajectories", b)?;
    check_param("g", g)?;
    check_alloc_rows("trajectories", b, 4 * times.len())?;
    let mut rng = StdRng::seed_from_u64(seed);
    let init: Vec<State> = (0..b)
        .map(|_| {
            let (q, v) = relativistic_state(&mut rng);
            (vec![q], vec![v])
        })
        .collect();
    let mut t = trajectories(
        || systems::relativistic(g, &DensityChoice::Analytic, SolverKind::Auto),
        &init,
        times,
        method,
    )?;
    t.system = Some("relativistic".into());
    t.params = params(&[("g", g), ("seed", seed as f64)]);
    Ok(t)
}

/// Wave data configuration: periodic grid of `n` points on [0, 1), Δx = 1/n, c = 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaveConfig {
    /// Grid points.
    pub n: usize,
    /// Random Fourier modes k = 1..=modes in the initial φ and φ̇.
    pub modes: usize,
    /// Amplitude scale of the initial φ (mode k has standard deviation amplitude/k).
    pub amplitude: f64,
}

impl Default for WaveConfig {
    /// n = 100, 4 modes, amplitude 1.
    fn default() -> Self {
        WaveConfig {
            n: 100,
            modes: 4,
            amplitude: 1.0,
        }
    }
}

impl WaveConfig {
    pub fn dx(&self) -> f64 {
        1.0 / self.n as f64
    }
    /// Error unless the grid has n ≥ 3 points, 1 ≤ modes < n/2 and a finite amplitude.
    pub fn check(&self) -> Result<()> {
        if self.n < 3 {
            return Err(Error::input(format!(
                "the wave grid needs n ≥ 3 points, got {}",
                self.n
            )));
        }
        crate::limits::check_alloc("the wave grid", self.n as u128, 64)?;
        if self.modes == 0 || 2 * self.modes >= self.n {
            return Err(Error::input(format!(
                "modes must be in 1..n/2, got {} for n = {}",
                self.modes, self.n
            )));
        }
        check_param("amplitude", self.amplitude)
    }
    fn params(&self, seed: u64) -> BTreeMap<String, f64> {
        params(&[
            ("n", self.n as f64),
            ("dx", self.dx()),
            ("c", 1.0),
            ("modes", self.modes as f64),
            ("amplitude", self.amplitude),
            ("seed", seed as f64),
        ])
    }
    /// A random smooth state: φ = Σ_k a_k cos(2πkx + ϕ_k), φ̇ = Σ_k 2πk b_k cos(2πkx + ψ_k),
    /// a_k, b_k ~ N(0, (amplitude/k)²), phases uniform.
    pub fn random_state(&self, rng: &mut StdRng) -> (Vec<f64>, Vec<f64>) {
        let normal = rand_distr::StandardNormal;
        let mut q = vec![0.0; self.n];
        let mut v = vec![0.0; self.n];
        for k in 1..=self.modes {
            let kf = k as f64;
            let a: f64 = rng.sample::<f64, _>(normal) * self.amplitude / kf;
            let b: f64 = rng.sample::<f64, _>(normal) * self.amplitude / kf;
            let (pa, pb) = (
                rng.random_range(0.0..2.0 * PI),
                rng.random_range(0.0..2.0 * PI),
            );
            for i in 0..self.n {
                let x = 2.0 * PI * kf * i as f64 / self.n as f64;
                q[i] += a * (x + pa).cos();
                v[i] += 2.0 * PI * kf * b * (x + pb).cos();
            }
        }
        (q, v)
    }
    /// Error unless a random state is finite (a huge amplitude overflows).
    fn check_state(&self, (q, v): &State) -> Result<()> {
        if q.iter().chain(v).any(|x| !x.is_finite()) {
            return Err(Error::input(format!(
                "amplitude = {} gives a non-finite initial state (float64 overflows); use a smaller amplitude",
                crate::limits::num(self.amplitude)
            )));
        }
        Ok(())
    }
    /// The ground-truth system: standard stencil, banded solver.
    pub fn system(&self) -> Result<Dynamics> {
        systems::wave1d_standard(
            self.n,
            self.dx(),
            &DensityChoice::Analytic,
            SolverKind::Auto,
        )
    }
}

/// The standard stencil φ̈_i = (φ_{i+1} − 2φ_i + φ_{i−1})/Δx² on a periodic grid.
pub fn wave_stencil(q: &[f64], dx: f64) -> Vec<f64> {
    let n = q.len();
    (0..n)
        .map(|i| (q[(i + 1) % n] - 2.0 * q[i] + q[(i + n - 1) % n]) / (dx * dx))
        .collect()
}

/// Wave samples: frames of ⌈N/frames⌉ random trajectories at random times in [0, t_span],
/// `frames` per trajectory, q̈ from the stencil.
pub fn wave1d_samples(
    n_samples: usize,
    cfg: &WaveConfig,
    frames: usize,
    t_span: f64,
    seed: u64,
    method: &Method,
) -> Result<SamplesData> {
    check_count("samples", n_samples)?;
    check_count("frames per trajectory", frames)?;
    check_param("t_span", t_span)?;
    if t_span <= 0.0 {
        return Err(Error::input(format!(
            "t_span must be positive, got {}",
            crate::limits::num(t_span)
        )));
    }
    cfg.check()?;
    check_alloc_rows("samples", n_samples, 3 * cfg.n)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let n_traj = n_samples.div_ceil(frames);
    let jobs: Vec<(State, Vec<f64>)> = (0..n_traj)
        .map(|_| {
            let s = cfg.random_state(&mut rng);
            let mut ts: Vec<f64> = (0..frames)
                .map(|_| rng.random_range(0.0..=t_span))
                .collect();
            ts.sort_by(f64::total_cmp);
            let mut times = vec![0.0];
            times.extend(ts);
            (s, times)
        })
        .collect();
    for (st, _) in &jobs {
        cfg.check_state(st)?;
    }
    let results: Vec<Result<Vec<State>>> = jobs
        .par_iter()
        .map(|((q0, v0), times)| {
            let mut dy = cfg.system()?;
            let mut frames_out = Vec::with_capacity(times.len() - 1);
            integrate(&mut dy, method, q0, v0, times, |k, _, q, v| {
                if k > 0 {
                    frames_out.push((q.to_vec(), v.to_vec()));
                }
                Ok(())
            })?;
            Ok(frames_out)
        })
        .collect();
    let d = cfg.n;
    let (mut q, mut qd, mut qdd) = (
        Array2::zeros((n_samples, d)),
        Array2::zeros((n_samples, d)),
        Array2::zeros((n_samples, d)),
    );
    let mut i = 0;
    'outer: for r in results {
        for (qi, vi) in r? {
            if i == n_samples {
                break 'outer;
            }
            let a = wave_stencil(&qi, cfg.dx());
            for c in 0..d {
                q[[i, c]] = qi[c];
                qd[[i, c]] = vi[c];
                qdd[[i, c]] = a[c];
            }
            i += 1;
        }
    }
    check_generated("q", &q, "amplitude")?;
    check_generated("qdot", &qd, "amplitude")?;
    check_generated("qddot", &qdd, "amplitude and the grid")?;
    let mut par = cfg.params(seed);
    par.insert("t_span".into(), t_span);
    Ok(SamplesData {
        system: Some(WAVE1D_DATA_LABEL.into()),
        params: par,
        q,
        qdot: qd,
        qddot: qdd,
        weights: None,
    })
}

/// Wave trajectories from B random smooth initial states.
pub fn wave1d_trajectories(
    b: usize,
    cfg: &WaveConfig,
    times: &[f64],
    seed: u64,
    method: &Method,
) -> Result<TrajectoryData> {
    check_count("trajectories", b)?;
    cfg.check()?;
    check_alloc_rows(
        "trajectories",
        b,
        (3 * cfg.n + 1).saturating_mul(times.len()),
    )?;
    let mut rng = StdRng::seed_from_u64(seed);
    let init: Vec<State> = (0..b).map(|_| cfg.random_state(&mut rng)).collect();
    for st in &init {
        cfg.check_state(st)?;
    }
    let mut t = trajectories(|| cfg.system(), &init, times, method)?;
    t.system = Some(WAVE1D_DATA_LABEL.into());
    t.params = cfg.params(seed);
    Ok(t)
}

/// Integrate every initial state (in parallel, one system per trajectory from `make`) and
/// record q, q̇, q̈ and the energy at `times`.
pub fn trajectories<M>(
    make: M,
    init: &[State],
    times: &[f64],
    method: &Method,
) -> Result<TrajectoryData>
where
    M: Fn() -> Result<Dynamics> + Sync,
{
    if init.is_empty() {
        return Err(Error::input("no initial states"));
    }
    crate::integrate::check_times(times)?;
    if let Some(i) = (1..times.len()).find(|&i| times[i] <= times[i - 1]) {
        return Err(Error::input(format!(
            "trajectory times must be strictly increasing (t[{i}] = {})",
            times[i]
        )));
    }
    let d = init[0].0.len();
    let nt = times.len();
    crate::limits::check_alloc(
        "trajectories (q, qdot, qddot and energy of every frame)",
        (init.len() as u128) * (nt as u128) * (3 * d as u128 + 1),
        8,
    )?;
    let per: Vec<Result<TrajRows>> = init
        .par_iter()
        .map(|(q0, v0)| {
            let mut dy = make()?;
            let mut states = Vec::with_capacity(nt);
            integrate(&mut dy, method, q0, v0, times, |_, _, q, v| {
                states.push((q.to_vec(), v.to_vec()));
                Ok(())
            })?;
            let (mut q, mut v, mut a, mut e) = (
                Vec::with_capacity(nt * d),
                Vec::with_capacity(nt * d),
                Vec::with_capacity(nt * d),
                Vec::with_capacity(nt),
            );
            for (qk, vk) in &states {
                q.extend_from_slice(qk);
                v.extend_from_slice(vk);
                a.extend(dy.accelerations(qk, vk)?);
                e.push(dy.energy(qk, vk)?);
            }
            Ok((q, v, a, e))
        })
        .collect();
    let b = init.len();
    let (mut q, mut v, mut a, mut e) = (
        Vec::with_capacity(b * nt * d),
        Vec::with_capacity(b * nt * d),
        Vec::with_capacity(b * nt * d),
        Vec::with_capacity(b * nt),
    );
    for r in per {
        let (qi, vi, ai, ei) = r?;
        q.extend(qi);
        v.extend(vi);
        a.extend(ai);
        e.extend(ei);
    }
    let shape = |x: Vec<f64>| Array3::from_shape_vec((b, nt, d), x).expect("shape");
    Ok(TrajectoryData {
        system: None,
        params: BTreeMap::new(),
        t: Array1::from(times.to_vec()),
        q: shape(q),
        qdot: shape(v),
        qddot: Some(shape(a)),
        energy: Some(Array2::from_shape_vec((b, nt), e).expect("shape")),
    })
}

/// Default method for ground-truth data: DP5 with rtol = atol = 1e-10.
pub fn default_method() -> Method {
    Method::Dp5(Dp5Options::default())
}

/// Write a samples file plus extra float64 datasets at the root, atomically.
pub fn write_samples_with(
    samples: &SamplesData,
    extra: &[(&str, ndarray::ArrayD<f64>)],
    path: impl AsRef<Path>,
    force: bool,
) -> Result<()> {
    let path = path.as_ref();
    let out = crate::io::AtomicOutput::new(path, force)?;
    samples.write(out.tmp_path(), true)?;
    {
        let f = hdf5::File::open_rw(out.tmp_path())
            .map_err(|e| Error::file(path, format!("cannot reopen for writing: {e}")))?;
        for (name, arr) in extra {
            crate::error::check_finite(name, arr.as_slice().unwrap_or(&[]))?;
            f.new_dataset_builder()
                .with_data(arr)
                .create(*name)
                .map_err(|e| Error::file_at(path, format!("/{name}"), e.to_string()))?;
        }
    }
    out.commit()?;
    Ok(())
}

fn params(kv: &[(&str, f64)]) -> BTreeMap<String, f64> {
    kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn check_count(what: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::input(format!(
            "the number of {what} must be at least 1"
        )));
    }
    Ok(())
}

fn check_param(name: &str, x: f64) -> Result<()> {
    if !x.is_finite() {
        return Err(Error::input(format!("{name} must be finite, got {x}")));
    }
    Ok(())
}

/// ω is drawn uniformly in [−ω_max, ω_max]: ω_max must be ≥ 0 and the range width finite.
fn check_omega_max(omega_max: f64) -> Result<()> {
    check_param("omega_max", omega_max)?;
    if omega_max < 0.0 || !(2.0 * omega_max).is_finite() {
        return Err(Error::input(format!(
            "omega_max must be non-negative and at most {}, got {}",
            crate::limits::num(f64::MAX / 2.0),
            crate::limits::num(omega_max)
        )));
    }
    Ok(())
}

/// `n` rows of `cols` float64 values must fit in memory.
fn check_alloc_rows(what: &str, n: usize, cols: usize) -> Result<()> {
    crate::limits::check_alloc(what, (n as u128) * (cols.max(1) as u128), 8)
}

/// Generated data must be finite: name the first non-finite value and the parameters to blame
/// (e.g. ω_max = 1e300 makes ω² overflow), instead of a "refusing to write" on the output.
fn check_generated(name: &str, a: &Array2<f64>, blame: &str) -> Result<()> {
    if let Some(((i, j), x)) = a.indexed_iter().find(|(_, x)| !x.is_finite()) {
        return Err(Error::input(format!(
            "the generated {name}[{i}, {j}] is {x}: {blame} are too large for float64"
        )));
    }
    Ok(())
}

/// Integrate one trajectory of a system and stream its frames (q, q̇, q̈, energy) into
/// `writer` (created with B = 1, `with_qddot` and `with_energy`). `make` builds the system
/// twice: one copy integrates, the other evaluates q̈ and the energy of each output frame — any
/// [`Dynamics`] plugs in (analytic or a trained model). `progress` is called with the number of
/// frames written so far. [`simulate_with_work`] also returns the work of the system's forces.
pub fn simulate<M, T>(
    make: M,
    method: &Method,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    writer: &mut crate::io::TrajectoryWriter,
    progress: impl FnMut(usize),
) -> Result<crate::integrate::Stats>
where
    M: Fn() -> Result<Dynamics>,
    T: crate::integrate::OutputTimes + ?Sized,
{
    simulate_observed(make, method, q0, v0, times, writer, progress, |_, _, _| {
        Ok(())
    })
}

/// [`simulate`], also handing every output frame (q, q̇) to `on_frame` with an evaluation copy
/// of the dynamics (e.g. to record conserved quantities,
/// [`crate::density::symmetric::ConservedSeries`]).
#[allow(clippy::too_many_arguments)]
pub fn simulate_observed<M, T>(
    make: M,
    method: &Method,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    writer: &mut crate::io::TrajectoryWriter,
    progress: impl FnMut(usize),
    on_frame: impl FnMut(&mut Dynamics, &[f64], &[f64]) -> Result<()>,
) -> Result<crate::integrate::Stats>
where
    M: Fn() -> Result<Dynamics>,
    T: crate::integrate::OutputTimes + ?Sized,
{
    simulate_with_work_observed(make, method, q0, v0, times, writer, progress, on_frame)
        .map(|(s, _, _)| s)
}

/// [`simulate`] with the work of the system's forces (docs/DESIGN.md §13.4): q̈ and the energy
/// are evaluated at the frame time (time-dependent inputs included), and W_diss, W_inj
/// ([`crate::integrate::integrate_with_work`], [`damped::WORK_SUB`] sub-intervals per frame)
/// and the energy of every frame are returned. Without forces the work is zero and the
/// integration is the plain one.
#[allow(clippy::type_complexity)]
pub fn simulate_with_work<M, T>(
    make: M,
    method: &Method,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    writer: &mut crate::io::TrajectoryWriter,
    progress: impl FnMut(usize),
) -> Result<(
    crate::integrate::Stats,
    Vec<crate::integrate::Work>,
    Vec<f64>,
)>
where
    M: Fn() -> Result<Dynamics>,
    T: crate::integrate::OutputTimes + ?Sized,
{
    simulate_with_work_observed(make, method, q0, v0, times, writer, progress, |_, _, _| {
        Ok(())
    })
}

/// The one simulate: [`simulate_with_work`] also handing every frame to `on_frame` (see
/// [`simulate_observed`]).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub fn simulate_with_work_observed<M, T>(
    make: M,
    method: &Method,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    writer: &mut crate::io::TrajectoryWriter,
    mut progress: impl FnMut(usize),
    mut on_frame: impl FnMut(&mut Dynamics, &[f64], &[f64]) -> Result<()>,
) -> Result<(
    crate::integrate::Stats,
    Vec<crate::integrate::Work>,
    Vec<f64>,
)>
where
    M: Fn() -> Result<Dynamics>,
    T: crate::integrate::OutputTimes + ?Sized,
{
    let mut dy = make()?;
    let mut eval = make()?;
    if q0.len() != dy.n_coords() || v0.len() != dy.n_coords() {
        return Err(Error::input(format!(
            "state has {} + {} values, the system has {} coordinates",
            q0.len(),
            v0.len(),
            dy.n_coords()
        )));
    }
    let mut a = vec![0.0; q0.len()];
    let mut works = Vec::with_capacity(times.len());
    let mut energies = Vec::with_capacity(times.len());
    let sub = damped::WORK_SUB;
    let stats = crate::integrate::integrate_with_work(
        &mut dy,
        method,
        q0,
        v0,
        times,
        sub,
        |k, t, q, v, w| {
            eval.time = t;
            eval.accelerations_into(q, v, &mut a)?;
            let e = [eval.energy(q, v)?];
            fn view(x: &[f64]) -> ndarray::ArrayView2<'_, f64> {
                ndarray::ArrayView2::from_shape((1, x.len()), x).expect("1×D")
            }
            writer.push_frame(
                t,
                view(q),
                view(v),
                Some(view(&a)),
                Some(ndarray::ArrayView1::from(&e[..])),
            )?;
            on_frame(&mut eval, q, v)?;
            works.push(w);
            energies.push(e[0]);
            progress(k + 1);
            Ok(())
        },
    )?;
    Ok((stats, works, energies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_match_the_engine() {
        let mut dy = systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
        let (q, v) = ([0.3, -1.2], [2.0, -0.7]);
        let a = dy.accelerations(&q, &v).unwrap();
        let b = dblpend_accel(&q, &v, 9.8);
        assert!((a[0] - b[0]).abs() < 1e-12 && (a[1] - b[1]).abs() < 1e-12);
        let mut dy =
            systems::relativistic(0.7, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
        let a = dy.accelerations(&[0.1], &[0.6]).unwrap();
        assert!((a[0] - relativistic_accel(0.6, 0.7)).abs() < 1e-13);
    }

    #[test]
    fn generators_are_deterministic() {
        let a = dblpend_samples(10, 9.8, 10.0, 3).unwrap();
        let b = dblpend_samples(10, 9.8, 10.0, 3).unwrap();
        assert_eq!(a, b);
        assert!(a.q.iter().all(|x| (0.0..2.0 * PI).contains(x)));
        assert!(a.qdot.iter().all(|x| x.abs() <= 10.0));
        assert!(dblpend_samples(0, 9.8, 10.0, 3).is_err());
    }
}
