//! `lgn experiment wave1d` (paper §4.3, fig. 4) and the engine behind `lgn demo`.
//!
//! A Lagrangian Graph Network — one MLP density ρ_θ(φ_{i−1}, φ_i, φ_{i+1}, φ̇_{i−1}, φ̇_i, φ̇_{i+1})
//! shared by every site of a periodic ring — is trained on exact accelerations of the standard
//! finite-difference wave equation (c = 1, n = 100 points on [0, 1), Δx = 0.01) at frames of
//! random smooth trajectories. It is then rolled out from held-out initial conditions for
//! `t_end` time units (3.5 passes of the wave across the unit domain) with the implicit-midpoint
//! variational integrator, and compared with the truth (DP5, rtol = atol = 1e-10).
//!
//! Zero-shot: the *same* density is evaluated on a ring of n = 1000 points at the *same*
//! spacing Δx = 0.01 (domain length 10). The learned density has no Δx input, so it encodes the
//! local law at the spacing it was trained on; a 1000-point ring at that spacing is a genuine
//! zero-shot transfer of that local law to a larger graph. (On a unit domain with Δx = 0.001 the
//! true law changes — the coupling scales as 1/Δx² — and a density without a Δx input cannot
//! know it.) The initial states of the zero-shot test have the same spectrum per unit length as
//! the training data (wave numbers 1..=modes per unit length), so the local statistics match.
//!
//! Metrics: `energy_drift` = max_t |E(t) − E(0)| / E(0) of the TRUE discrete energy
//! E = Σ ½φ̇_i² + ½((φ_{i+1} − φ_i)/Δx)² along the model rollout; `rel_l2_error` =
//! ‖φ_model(t_end) − φ_true(t_end)‖ / ‖φ_true(t_end)‖ (mean over held-out initial states);
//! the same with the prefix `zeroshot_n1000_dx0.01_`; `accel_rel_error_heldout` on held-out
//! samples.

use super::{ExperimentOptions, ExperimentReport};
use crate::data::{self, WaveConfig};
use crate::dynamics::Dynamics;
use crate::integrate::{self, Method, MidpointOptions};
use crate::io::{SamplesData, TrajectoryData};
use crate::plot::{self, Panel, Series};
use crate::solve::SolverKind;
use crate::systems::{self, DensityChoice};
use crate::train::{self, HnnCoords, ModelKind, Schedule, TrainConfig, TrainedModel};
use crate::{Error, Result};
use ndarray::{Array1, Array2, Array3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::f64::consts::PI;
use std::path::PathBuf;
use std::time::Instant;

/// Everything that sizes a run of the wave experiment.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WaveSetup {
    /// Training grid points (domain [0, 1), Δx = 1/n).
    pub n: usize,
    /// Random Fourier modes per unit length in the initial states.
    pub modes: usize,
    pub amplitude: f64,
    /// Training samples (whole grid states) and frames taken from each truth trajectory.
    pub samples: usize,
    pub frames_per_traj: usize,
    /// Frames are drawn uniformly from [0, t_span].
    pub t_span: f64,
    /// Held-out samples for the acceleration error.
    pub heldout_samples: usize,
    /// MLP hidden width and number of hidden layers.
    pub hidden: usize,
    pub layers: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    /// Held-out initial states rolled out on the training grid.
    pub test_states: usize,
    /// Rollout length (time units; c = 1 and domain length 1: passes of the wave).
    pub t_end: f64,
    /// Integrator step and output interval.
    pub dt: f64,
    pub dt_out: f64,
    /// Zero-shot grid points (same spacing as training, so domain length n_zeroshot/n);
    /// 0 = no zero-shot test.
    pub n_zeroshot: usize,
    pub zeroshot_states: usize,
    pub dt_out_zeroshot: f64,
    /// Initialise the first layer in a difference basis (see [`difference_basis_init`]).
    pub difference_init: bool,
    /// White noise added to every training state, relative to the standard deviation of φ and
    /// of φ̇ (targets recomputed exactly); 0 = none. See [`add_noise`].
    pub noise: f64,
}

impl WaveSetup {
    /// `--quick`: a small network trained briefly (about a minute on 2 cores).
    pub fn quick() -> WaveSetup {
        WaveSetup {
            n: 100,
            modes: 4,
            amplitude: 1.0,
            samples: 600,
            frames_per_traj: 10,
            t_span: 1.0,
            heldout_samples: 50,
            hidden: 32,
            layers: 2,
            epochs: 40,
            batch: 32,
            lr: 3e-3,
            test_states: 2,
            t_end: 3.5,
            dt: 0.001,
            dt_out: 0.01,
            n_zeroshot: 1000,
            zeroshot_states: 1,
            dt_out_zeroshot: 0.025,
            difference_init: true,
            noise: 0.005,
        }
    }

    /// The default run.
    pub fn standard() -> WaveSetup {
        WaveSetup {
            samples: 2000,
            epochs: 600,
            test_states: 4,
            zeroshot_states: 2,
            ..WaveSetup::quick()
        }
    }

    /// `lgn demo`: between quick and default.
    pub fn demo() -> WaveSetup {
        WaveSetup {
            samples: 2000,
            epochs: 300,
            test_states: 2,
            zeroshot_states: 1,
            ..WaveSetup::quick()
        }
    }

    fn dx(&self) -> f64 {
        1.0 / self.n as f64
    }

    fn check(&self) -> Result<()> {
        if self.t_end <= 0.0 || self.dt <= 0.0 || self.dt_out <= 0.0 || self.dt_out_zeroshot <= 0.0
        {
            return Err(Error::input("t_end, dt and dt_out must be positive"));
        }
        if self.test_states == 0 {
            return Err(Error::input(
                "at least one held-out initial state is needed",
            ));
        }
        if self.n_zeroshot > 0 && (self.zeroshot_states == 0 || self.n_zeroshot < self.n) {
            return Err(Error::input(
                "the zero-shot grid needs at least one state and n_zeroshot ≥ n",
            ));
        }
        Ok(())
    }
}

/// A random smooth state on a periodic grid of `n` points with spacing `dx` (domain length
/// L = n·dx): φ = Σ_κ a_κ cos(2πκx + ϕ_κ), φ̇ = Σ_κ 2πκ b_κ cos(2πκx + ψ_κ) over wave numbers
/// κ = k/L ∈ [1, modes] per unit length, a_κ, b_κ ~ N(0, (amplitude/(κ√L))²). For L = 1 this
/// is the distribution of [`WaveConfig::random_state`].
pub fn random_wave_state(
    n: usize,
    dx: f64,
    modes: usize,
    amplitude: f64,
    rng: &mut StdRng,
) -> (Vec<f64>, Vec<f64>) {
    let len = n as f64 * dx;
    let k_lo = len.round().max(1.0) as usize;
    let k_hi = (modes as f64 * len).round() as usize;
    let mut q = vec![0.0; n];
    let mut v = vec![0.0; n];
    let normal = rand_distr::StandardNormal;
    for k in k_lo..=k_hi.max(k_lo) {
        let kappa = k as f64 / len;
        let sd = amplitude / (kappa * len.sqrt());
        let a: f64 = rng.sample::<f64, _>(normal) * sd;
        let b: f64 = rng.sample::<f64, _>(normal) * sd;
        let (pa, pb) = (
            rng.random_range(0.0..2.0 * PI),
            rng.random_range(0.0..2.0 * PI),
        );
        for i in 0..n {
            let x = 2.0 * PI * kappa * i as f64 * dx;
            q[i] += a * (x + pa).cos();
            v[i] += 2.0 * PI * kappa * b * (x + pb).cos();
        }
    }
    (q, v)
}

/// The integrator of model rollouts: the implicit-midpoint variational integrator (the learned
/// M may depend on φ̇, where leapfrog is no longer symplectic).
pub fn rollout_method(dt: f64) -> Method {
    Method::Midpoint {
        dt,
        opts: MidpointOptions {
            tol: 1e-12,
            max_iter: 50,
        },
    }
}

/// Truth and model rollouts on one grid, with their metrics.
pub struct Rollouts {
    pub n: usize,
    pub dx: f64,
    pub truth: TrajectoryData,
    /// Model rollouts; `energy` holds the TRUE discrete energy along them.
    pub model: TrajectoryData,
    /// Per initial state: max_t |E(t) − E(0)|/E(0) of the true energy along the model rollout.
    pub energy_drift: Vec<f64>,
    /// Per initial state: relative L2 error of φ at the last time.
    pub rel_l2_error: Vec<f64>,
}

fn times(t_end: f64, dt_out: f64) -> Vec<f64> {
    let nt = (t_end / dt_out).round() as usize;
    (0..=nt).map(|k| t_end * k as f64 / nt as f64).collect()
}

/// Roll out `model` and the truth on a ring of `n` points with spacing `dx` from
/// `states` random initial states.
pub fn rollouts(
    model: &TrainedModel,
    setup: &WaveSetup,
    n: usize,
    dx: f64,
    states: usize,
    dt_out: f64,
    seed: u64,
) -> Result<Rollouts> {
    let ts = times(setup.t_end, dt_out);
    let mut rng = StdRng::seed_from_u64(seed);
    let init: Vec<data::State> = (0..states)
        .map(|_| random_wave_state(n, dx, setup.modes, setup.amplitude, &mut rng))
        .collect();
    let truth_sys = || systems::wave1d_standard(n, dx, &DensityChoice::Analytic, SolverKind::Auto);
    let mut truth = data::trajectories(truth_sys, &init, &ts, &data::default_method())?;
    let mut params = std::collections::BTreeMap::new();
    params.insert("n".to_string(), n as f64);
    params.insert("dx".to_string(), dx);
    params.insert("c".to_string(), 1.0);
    params.insert("seed".to_string(), seed as f64);
    truth.system = Some("wave1d".into());
    truth.params = params.clone();

    let method = rollout_method(setup.dt);
    /// (q, q̇, q̈, true energy) of one model rollout, frame-major.
    type RolloutFields = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let per: Vec<Result<RolloutFields>> = init
        .par_iter()
        .map(|(q0, v0)| {
            let mut dy: Dynamics = model.dynamics(Some(n), SolverKind::Auto)?;
            let sol = integrate::solve(&mut dy, &method, q0, v0, &ts)?;
            let mut tr = truth_sys()?;
            let mut a = Vec::with_capacity(sol.q.len());
            let mut e = Vec::with_capacity(ts.len());
            for k in 0..ts.len() {
                a.extend(dy.accelerations(sol.q_at(k), sol.v_at(k))?);
                e.push(tr.energy(sol.q_at(k), sol.v_at(k))?);
            }
            Ok((sol.q, sol.v, a, e))
        })
        .collect();
    let (b, nt) = (states, ts.len());
    let (mut q, mut v, mut a, mut e) = (vec![], vec![], vec![], vec![]);
    for r in per {
        let (qi, vi, ai, ei) = r?;
        q.extend(qi);
        v.extend(vi);
        a.extend(ai);
        e.extend(ei);
    }
    let shape = |x: Vec<f64>| Array3::from_shape_vec((b, nt, n), x).expect("shape");
    let mut mparams = params;
    mparams.insert("energy_is_true_discrete_energy".into(), 1.0);
    let model_traj = TrajectoryData {
        system: Some("wave1d".into()),
        params: mparams,
        t: Array1::from(ts.clone()),
        q: shape(q),
        qdot: shape(v),
        qddot: Some(shape(a)),
        energy: Some(Array2::from_shape_vec((b, nt), e).expect("shape")),
    };
    let em = model_traj.energy.as_ref().expect("energy");
    let energy_drift = (0..b)
        .map(|i| {
            let e0 = em[[i, 0]];
            (0..nt)
                .map(|k| (em[[i, k]] - e0).abs() / e0)
                .fold(0.0, f64::max)
        })
        .collect();
    let rel_l2_error = (0..b)
        .map(|i| {
            let (mut d2, mut t2) = (0.0, 0.0);
            for j in 0..n {
                let (x, y) = (model_traj.q[[i, nt - 1, j]], truth.q[[i, nt - 1, j]]);
                d2 += (x - y) * (x - y);
                t2 += y * y;
            }
            (d2 / t2).sqrt()
        })
        .collect();
    Ok(Rollouts {
        n,
        dx,
        truth,
        model: model_traj,
        energy_drift,
        rel_l2_error,
    })
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn max(x: &[f64]) -> f64 {
    x.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Add white noise of standard deviation `rel`·sd(φ) to φ and `rel`·sd(φ̇) to φ̇ of every
/// training state and recompute the exact accelerations. Smooth states alone never show the
/// network grid-scale (zig-zag) components; without them the learned law is unconstrained
/// there, and a rollout — where round-off and model error excite every wave number — can blow
/// up. The noise pins the learned dispersion relation down across the whole spectrum.
pub fn add_noise(raw: &mut SamplesData, rel: f64, dx: f64, seed: u64) {
    let sd = |a: &Array2<f64>| {
        let m = a.mean().unwrap_or(0.0);
        (a.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / a.len() as f64).sqrt()
    };
    let (sq, sv) = (sd(&raw.q) * rel, sd(&raw.qdot) * rel);
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = rand_distr::StandardNormal;
    for i in 0..raw.q.nrows() {
        for x in raw.q.row_mut(i) {
            *x += sq * rng.sample::<f64, _>(normal);
        }
        for x in raw.qdot.row_mut(i) {
            *x += sv * rng.sample::<f64, _>(normal);
        }
        let q: Vec<f64> = raw.q.row(i).to_vec();
        for (y, a) in raw
            .qddot
            .row_mut(i)
            .iter_mut()
            .zip(data::wave_stencil(&q, dx))
        {
            *y = a;
        }
    }
    raw.params.insert("noise_rel".into(), rel);
}

/// Re-express the first layer of a freshly initialised ring LGN in a difference basis:
/// W₁ ← W₁ T, where T maps the normalised site input (q̂_{i−1}, q̂_i, q̂_{i+1}, v̂_{i−1}, v̂_i, v̂_{i+1})
/// to ((q̂_{i+1} − q̂_i)/δ, (q̂_i − q̂_{i−1})/δ, mean of the q̂, v̂_{i−1}, v̂_i, v̂_{i+1}), δ the standard
/// deviation of neighbour differences q̂_{i+1} − q̂_i in the data. On a fine grid neighbour
/// differences of a smooth field are a few percent of its values, yet they carry the whole
/// potential energy; at the paper's initialisation the network would see them only as tiny
/// perturbations. The architecture is unchanged (a plain MLP on the six site inputs): this only
/// chooses where training starts.
pub fn difference_basis_init(model: &mut TrainedModel, raw: &SamplesData) {
    let net = &mut model.net;
    if net.sizes[0] != 6 {
        return;
    }
    let sq = net.input_scale[0];
    let n = raw.q.ncols();
    let (mut s2, mut c) = (0.0, 0.0);
    for row in raw.q.rows() {
        for i in 0..n {
            let d = (row[(i + 1) % n] - row[i]) / sq;
            s2 += d * d;
            c += 1.0;
        }
    }
    let delta = (s2 / c).sqrt().max(1e-12);
    let mut t = [[0.0f64; 6]; 6];
    t[0][2] = 1.0 / delta;
    t[0][1] = -1.0 / delta;
    t[1][1] = 1.0 / delta;
    t[1][0] = -1.0 / delta;
    t[2] = [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0, 0.0, 0.0];
    t[3][3] = 1.0;
    t[4][4] = 1.0;
    t[5][5] = 1.0;
    let h = net.sizes[1];
    let w = &mut net.weights[0];
    for r in 0..h {
        let old: Vec<f64> = w[r * 6..(r + 1) * 6].to_vec();
        for col in 0..6 {
            w[r * 6 + col] = (0..6).map(|j| old[j] * t[j][col]).sum();
        }
    }
}

/// Relative L2 error of the model's accelerations over a samples set.
pub fn accel_rel_error(model: &TrainedModel, s: &SamplesData) -> Result<f64> {
    let n = s.q.ncols();
    let mut dy = model.dynamics(Some(n), SolverKind::Auto)?;
    let (mut d2, mut t2) = (0.0, 0.0);
    for i in 0..s.q.nrows() {
        let q: Vec<f64> = s.q.row(i).to_vec();
        let v: Vec<f64> = s.qdot.row(i).to_vec();
        let a = dy.accelerations(&q, &v)?;
        for (x, y) in a.iter().zip(s.qddot.row(i)) {
            d2 += (x - y) * (x - y);
            t2 += y * y;
        }
    }
    Ok((d2 / t2).sqrt())
}

fn spacetime_figure(r: &Rollouts, path: &std::path::Path, title: &str, force: bool) -> Result<()> {
    let truth = r.truth.q.index_axis(ndarray::Axis(0), 0);
    let model = r.model.q.index_axis(ndarray::Axis(0), 0);
    let diff = &model - &truth;
    let t = r.truth.t.to_vec();
    plot::spacetime(
        path,
        title,
        &t,
        r.dx,
        &[
            Panel {
                title: "truth φ".into(),
                field: truth,
            },
            Panel {
                title: "LGN φ".into(),
                field: model,
            },
            Panel {
                title: "LGN − truth".into(),
                field: diff.view(),
            },
        ],
        force,
    )
}

fn stage(opts: &ExperimentOptions, msg: &str) {
    opts.observer.stage("wave1d", msg);
}

/// Run the wave experiment with an explicit setup (`name` goes into the report).
pub fn run_setup(
    name: &str,
    setup: &WaveSetup,
    opts: &ExperimentOptions,
) -> Result<ExperimentReport> {
    setup.check()?;
    let mut report = ExperimentReport::new(name, opts);
    let out = |f: &str| -> PathBuf { opts.out.join(f) };
    let cfg = WaveConfig {
        n: setup.n,
        modes: setup.modes,
        amplitude: setup.amplitude,
    };
    let dx = setup.dx();

    // 1. Data: frames of truth trajectories, exact accelerations of the standard stencil.
    let t0 = Instant::now();
    stage(
        opts,
        &format!(
            "generating {} training states (n = {})",
            setup.samples, setup.n
        ),
    );
    let method = data::default_method();
    let raw = data::wave1d_samples(
        setup.samples,
        &cfg,
        setup.frames_per_traj,
        setup.t_span,
        opts.seed.wrapping_mul(1000).wrapping_add(1),
        &method,
    )?;
    let heldout = data::wave1d_samples(
        setup.heldout_samples,
        &cfg,
        setup.frames_per_traj,
        setup.t_span,
        opts.seed.wrapping_mul(1000).wrapping_add(2),
        &method,
    )?;
    let mut raw = raw;
    if setup.noise > 0.0 {
        add_noise(
            &mut raw,
            setup.noise,
            dx,
            opts.seed.wrapping_mul(1000).wrapping_add(7),
        );
    }
    let samples_path = out("samples.h5");
    raw.write(&samples_path, opts.force)?;
    report.files.push(samples_path);
    report.metric("data_seconds", t0.elapsed().as_secs_f64());

    // 2. Training.
    let t1 = Instant::now();
    let samples = train::prepare_samples(ModelKind::Lgn, &raw, HnnCoords::Velocity)?;
    let mut model = TrainedModel::init(
        ModelKind::Lgn,
        "wave1d",
        setup.n,
        setup.hidden,
        setup.layers,
        opts.seed.wrapping_mul(1000).wrapping_add(3),
    )?;
    model.params = raw.params.clone();
    model.params.insert("n".into(), setup.n as f64);
    train::fit_normalisation(&mut model, &samples);
    if setup.difference_init {
        difference_basis_init(&mut model, &raw);
    }
    let tcfg = TrainConfig {
        epochs: setup.epochs,
        batch: setup.batch,
        lr: setup.lr,
        schedule: Schedule::Onecycle,
        clip: Some(100.0),
        val_fraction: 0.1,
        seed: opts.seed.wrapping_mul(1000).wrapping_add(4),
        ..TrainConfig::unstabilised()
    };
    let (model, tr) = train::train(model, &samples, &tcfg, &mut opts.observer.training("lgn"))?;
    opts.observer.training_done("lgn");
    if tr.best_epoch == 0 {
        return Err(crate::train::TrainError::NoFiniteLoss {
            model: "LGN".into(),
            cause: tr.stopped_by_error,
        }
        .into());
    }
    if let Some(e) = &tr.stopped_by_error {
        report.notes.push(format!(
            "training stopped early ({e}); the best checkpoint is used"
        ));
    }
    let model_path = out("model.h5");
    model.save(&model_path, None, opts.force)?;
    report.files.push(model_path);
    report.metric("train_seconds", t1.elapsed().as_secs_f64());
    report.metric("train_best_val_loss", tr.best_val_loss);
    report.metric(
        "accel_rel_error_heldout",
        accel_rel_error(&model, &heldout)?,
    );
    let ep: Vec<f64> = (1..=tr.loss_history.len()).map(|e| e as f64).collect();
    let mut loss_series = vec![Series::new(
        "train",
        ep.clone(),
        tr.loss_history.iter().map(|x| x.log10()).collect(),
    )];
    if !tr.val_loss_history.is_empty() {
        loss_series.push(Series::new(
            "validation",
            ep[..tr.val_loss_history.len()].to_vec(),
            tr.val_loss_history.iter().map(|x| x.log10()).collect(),
        ));
    }
    let loss_png = out("loss.png");
    plot::line_plot(
        &loss_png,
        "LGN training loss (MSE of φ̈)",
        "epoch",
        "log10 loss",
        &loss_series,
        (900, 500),
        opts.force,
    )?;
    report.files.push(loss_png);

    // 3. Rollouts on the training grid from held-out initial states.
    let t2 = Instant::now();
    stage(
        opts,
        &format!(
            "rolling out {} held-out states on n = {} to t = {}",
            setup.test_states, setup.n, setup.t_end
        ),
    );
    let r = rollouts(
        &model,
        setup,
        setup.n,
        dx,
        setup.test_states,
        setup.dt_out,
        opts.seed.wrapping_mul(1000).wrapping_add(5),
    )?;
    report.metric("energy_drift", max(&r.energy_drift));
    report.metric("rel_l2_error", mean(&r.rel_l2_error));
    report.metric("rel_l2_error_max", max(&r.rel_l2_error));
    let mut energy_series = vec![];
    let tvec = r.truth.t.to_vec();
    {
        let e = r.truth.energy.as_ref().expect("energy");
        energy_series.push(Series::new(
            "truth (n = 100)",
            tvec.clone(),
            e.row(0).iter().map(|x| x / e[[0, 0]] - 1.0).collect(),
        ));
        let e = r.model.energy.as_ref().expect("energy");
        energy_series.push(Series::new(
            format!("LGN rollout (n = {})", setup.n),
            tvec.clone(),
            e.row(0).iter().map(|x| x / e[[0, 0]] - 1.0).collect(),
        ));
    }
    for (f, traj) in [("truth_n100.h5", &r.truth), ("lgn_n100.h5", &r.model)] {
        let p = out(&f.replace("100", &setup.n.to_string()));
        traj.write(&p, opts.force)?;
        report.files.push(p);
    }
    let st = out("spacetime.png");
    spacetime_figure(
        &r,
        &st,
        &format!("1D wave, n = {}, held-out initial state", setup.n),
        opts.force,
    )?;
    report.files.push(st);
    report.metric("rollout_seconds", t2.elapsed().as_secs_f64());

    // 4. Zero-shot on a larger ring with the same spacing.
    if setup.n_zeroshot > 0 {
        let t3 = Instant::now();
        let nz = setup.n_zeroshot;
        let pre = format!("zeroshot_n{nz}_dx{dx}_");
        stage(
            opts,
            &format!(
                "zero-shot: n = {nz}, Δx = {dx} (domain length {})",
                nz as f64 * dx
            ),
        );
        let z = rollouts(
            &model,
            setup,
            nz,
            dx,
            setup.zeroshot_states,
            setup.dt_out_zeroshot,
            opts.seed.wrapping_mul(1000).wrapping_add(6),
        )?;
        report.metric(&format!("{pre}energy_drift"), max(&z.energy_drift));
        report.metric(&format!("{pre}rel_l2_error"), mean(&z.rel_l2_error));
        let e = z.model.energy.as_ref().expect("energy");
        energy_series.push(Series::new(
            format!("LGN zero-shot (n = {nz})"),
            z.model.t.to_vec(),
            e.row(0).iter().map(|x| x / e[[0, 0]] - 1.0).collect(),
        ));
        for (f, traj) in [("truth", &z.truth), ("lgn", &z.model)] {
            let p = out(&format!("{f}_n{nz}.h5"));
            traj.write(&p, opts.force)?;
            report.files.push(p);
        }
        let st = out(&format!("spacetime_n{nz}.png"));
        spacetime_figure(
            &z,
            &st,
            &format!(
                "zero-shot: n = {nz}, same Δx = {dx} (domain length {})",
                nz as f64 * dx
            ),
            opts.force,
        )?;
        report.files.push(st);
        report.metric("zeroshot_seconds", t3.elapsed().as_secs_f64());
    }
    let en = out("energy.png");
    plot::line_plot(
        &en,
        "relative change of the true discrete energy along the rollouts",
        "t",
        "E(t)/E(0) − 1",
        &energy_series,
        (900, 500),
        opts.force,
    )?;
    report.files.push(en);

    // 5. Record.
    let cfg_json = serde_json::to_value(setup).expect("serialisable");
    if let serde_json::Value::Object(m) = cfg_json {
        for (k, v) in m {
            report.config(&k, v);
        }
    }
    report.config("integrator", "midpoint (variational, implicit)");
    report.config("truth_integrator", "dp5 rtol = atol = 1e-10");
    report.config("seed", opts.seed);
    report.config("epochs_run", tr.epochs);
    report.config("best_epoch", tr.best_epoch);
    report.notes.push(format!(
        "LGN: one softplus MLP density over sites (i−1, i, i+1) ({} hidden layers × {}), trained on {} grid states of the n = {} periodic grid (Δx = {dx}), exact accelerations of the standard FD wave equation (c = 1) as targets; a small network (the paper's is larger), sized for a 2-core machine.",
        setup.layers, setup.hidden, setup.samples, setup.n
    ));
    report.notes.push(format!(
        "Rollouts: implicit-midpoint variational integrator (dt = {}), symplectic for any regular Lagrangian — the learned mass matrix may depend on φ̇, where leapfrog is not; truth: DP5 (rtol = atol = 1e-10). t_end = {} = {} passes of the wave across the unit domain.",
        setup.dt, setup.t_end, setup.t_end
    ));
    report.notes.push(
        "energy_drift is max_t |E(t) − E(0)|/E(0) of the TRUE discrete energy E = Σ ½φ̇² + ½((φ_{i+1} − φ_i)/Δx)² along the model rollout (max over held-out states); rel_l2_error is ‖φ_model − φ_true‖/‖φ_true‖ at t_end (mean over held-out states).".into(),
    );
    if setup.n_zeroshot > 0 {
        report.notes.push(format!(
            "Zero-shot: the same density on a ring of n = {} points at the SAME spacing Δx = {dx} (domain length {}): the learned density has no Δx input, so it is a local law at the trained spacing, and a larger graph at that spacing is a genuine zero-shot transfer. Initial states have the same spectrum per unit length as the training data (wave numbers 1..={} per unit length); the rollout runs to the same t_end.",
            setup.n_zeroshot,
            setup.n_zeroshot as f64 * dx,
            setup.modes
        ));
    }
    Ok(report)
}

/// `lgn experiment wave1d [--quick]`.
pub fn run(opts: &ExperimentOptions) -> Result<ExperimentReport> {
    let setup = if opts.quick {
        WaveSetup::quick()
    } else {
        WaveSetup::standard()
    };
    run_setup("wave1d", &setup, opts)
}
