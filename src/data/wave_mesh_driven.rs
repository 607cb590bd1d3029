//! Truth of the damped, driven wave on a triangle mesh (docs/DESIGN.md §13.6):
//! `lgn generate wave-mesh --mesh M --damping C --forcing SPEC`.
//!
//! ```text
//! φ_tt + c φ_t = Δφ + Σ_j u_j(t) g_j(x),   u_j(t) = A_j sin(2π f_j t + φ_j),
//! g_j(x) = exp(−|x − x_j|² / (2 r_j²))  (or 1: a uniform load)
//! ```
//!
//! P1 FEM with lumped mass M = diag(m_i) and cotangent stiffness K (as [`super::wave_mesh`]):
//! M φ̈ = −Kφ − c M φ̇ + B u(t) with B_ij = m_i g_j(x_i). So the dissipation is the linear
//! per-coordinate D = ½ Σ_i c m_i φ̇_i² ([`DissipationTerm::Linear`]) and the input map B is
//! n × m, one column per source. Samples files get `u` (N × m, u at a random time of each
//! sample) and `B`; trajectories get `u` (T × m), `B`, `w_dissipated` and `w_injected`.

use super::damped::{trajectories_with_work, WorkTrajectories, WORK_SUB};
use super::wave_mesh::{fem_dynamics, params};
use crate::density::dissipation::{DissipationTerm, Forces, InputForce, Signal};
use crate::dynamics::Dynamics;
use crate::integrate::Method;
use crate::io::SamplesData;
use crate::mesh::fields::{random_state, SmoothFieldConfig};
use crate::mesh::TriMesh;
use crate::solve::SolverKind;
use crate::{Error, Result};
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// One point (or uniform) load of the forcing: u(t) = amp sin(2π freq t + phase), spread in
/// space as a Gaussian of width `radius` about `at` (everywhere alike when `at` is `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub amp: f64,
    /// Frequency in cycles per unit time (Hz); 0 gives the constant load amp·sin(phase).
    pub freq: f64,
    pub phase: f64,
    pub at: Option<[f64; 2]>,
    /// Gaussian width; `None`: a tenth of the mesh's larger bounding-box side.
    pub radius: Option<f64>,
}

/// The `--forcing` value: one or more sources, each a column of B and a component of u.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Forcing {
    pub sources: Vec<Source>,
}

/// Help text of the `--forcing` syntax (shown by the CLI).
pub const FORCING_SYNTAX: &str = "sources separated by ';', each 'amp=A,freq=F[,phase=P][,x=X,y=Y[,radius=R]]': \
u(t) = A sin(2π F t + P) acting as a Gaussian load of width R (default a tenth of the mesh size) about (X, Y), \
or on the whole mesh when X, Y are left out";

impl Forcing {
    /// Parse `amp=A,freq=F[,phase=P][,x=X,y=Y[,radius=R]]` sources separated by `;`.
    pub fn parse(s: &str) -> Result<Forcing> {
        let mut sources = vec![];
        for (j, part) in s.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (mut amp, mut freq, mut phase) = (None, None, 0.0);
            let (mut x, mut y, mut radius) = (None, None, None);
            for kv in part.split(',') {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    Error::input(format!(
                        "forcing source {j}: '{kv}' is not key=value ({FORCING_SYNTAX})"
                    ))
                })?;
                let val: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite())
                    .ok_or_else(|| {
                        Error::input(format!(
                            "forcing source {j}: {}='{v}' is not a finite number",
                            k.trim()
                        ))
                    })?;
                match k.trim() {
                    "amp" => amp = Some(val),
                    "freq" => freq = Some(val),
                    "phase" => phase = val,
                    "x" => x = Some(val),
                    "y" => y = Some(val),
                    "radius" => radius = Some(val),
                    other => {
                        return Err(Error::input(format!(
                            "forcing source {j}: unknown key '{other}' (keys: amp, freq, phase, x, y, radius)"
                        )))
                    }
                }
            }
            let (Some(amp), Some(freq)) = (amp, freq) else {
                return Err(Error::input(format!(
                    "forcing source {j}: needs amp=… and freq=… ({FORCING_SYNTAX})"
                )));
            };
            if freq < 0.0 {
                return Err(Error::input(format!(
                    "forcing source {j}: freq = {freq} must be ≥ 0"
                )));
            }
            let at = match (x, y) {
                (Some(x), Some(y)) => Some([x, y]),
                (None, None) => None,
                _ => {
                    return Err(Error::input(format!(
                        "forcing source {j}: give both x and y, or neither (a uniform load)"
                    )))
                }
            };
            if let Some(r) = radius {
                if r <= 0.0 || at.is_none() {
                    return Err(Error::input(format!(
                        "forcing source {j}: radius = {r} must be > 0 and needs x, y"
                    )));
                }
            }
            sources.push(Source {
                amp,
                freq,
                phase,
                at,
                radius,
            });
        }
        if sources.is_empty() {
            return Err(Error::input(format!(
                "--forcing has no source ({FORCING_SYNTAX})"
            )));
        }
        Ok(Forcing { sources })
    }

    /// Number of sources m (the width of u).
    pub fn width(&self) -> usize {
        self.sources.len()
    }

    /// u(t) as a [`Signal`].
    pub fn signal(&self) -> Signal {
        let tau = 2.0 * std::f64::consts::PI;
        Signal::Harmonics {
            amp: self.sources.iter().map(|s| s.amp).collect(),
            omega: self.sources.iter().map(|s| tau * s.freq).collect(),
            phase: self.sources.iter().map(|s| s.phase).collect(),
        }
    }

    /// The input map B (n × m, row-major): B_ij = m_i g_j(x_i), the lumped load of source j.
    pub fn input_map(&self, mesh: &TriMesh) -> Result<Vec<f64>> {
        let m = self.width();
        let mass = crate::mesh::fem::lumped_mass(mesh);
        let (lo, hi) = mesh.bounding_box();
        let size = (hi[0] - lo[0]).max(hi[1] - lo[1]);
        let mut b = vec![0.0; mesh.n_nodes() * m];
        for (j, s) in self.sources.iter().enumerate() {
            let r = s.radius.unwrap_or(0.1 * size);
            let mut total = 0.0;
            for (i, p) in mesh.positions.iter().enumerate() {
                let g = match s.at {
                    None => 1.0,
                    Some(c) => {
                        let d2 = (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2);
                        (-d2 / (2.0 * r * r)).exp()
                    }
                };
                b[i * m + j] = mass[i] * g;
                total += mass[i] * g;
            }
            // A load that misses the mesh would be silently zero.
            if total < 1e-6 * mass.iter().sum::<f64>() {
                let c = s.at.unwrap_or_default();
                return Err(Error::input(format!(
                    "forcing source {j} at ({}, {}) with radius {r} puts almost no load on the mesh (bounding box {lo:?}–{hi:?})",
                    c[0], c[1]
                )));
            }
        }
        Ok(b)
    }
}

/// The inputs written with driven data: u (rows × m) and the input map B (n × m).
pub type Inputs = (Array2<f64>, Array2<f64>);

/// What [`driven_dynamics`] adds to the FEM wave: damping c ≥ 0 and an optional forcing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drive {
    pub damping: f64,
    pub forcing: Option<Forcing>,
}

/// The FEM wave with D = ½ c Σ m_i φ̇_i² and the forcing's B u(t).
pub fn driven_dynamics(mesh: &TriMesh, drive: &Drive, solver: SolverKind) -> Result<Dynamics> {
    super::damped::check_damping(drive.damping)?;
    let dy = fem_dynamics(mesh, solver)?;
    let mut forces = Forces::default();
    if drive.damping > 0.0 {
        let c = crate::mesh::fem::lumped_mass(mesh)
            .into_iter()
            .map(|m| drive.damping * m)
            .collect();
        forces.dissipation.push(DissipationTerm::Linear { c });
    }
    if let Some(f) = &drive.forcing {
        forces.input = Some(InputForce {
            map: f.input_map(mesh)?,
            signal: f.signal(),
        });
    }
    dy.with_forces(forces)
}

/// Root attributes of driven data: those of [`params`] plus `damping`.
pub fn driven_params(
    mesh: &TriMesh,
    fields: &SmoothFieldConfig,
    seed: u64,
    drive: &Drive,
) -> BTreeMap<String, f64> {
    let mut p = params(mesh, fields, seed);
    p.insert(super::damped::DAMPING_ATTR.into(), drive.damping);
    p
}

/// Driven samples: the states of [`super::wave_mesh::wave_mesh_samples`], each at a random
/// time t_i ∈ [0, `t_span`) of the forcing, with u_i = u(t_i) (N × m) and the accelerations
/// M⁻¹(−Kφ − cMφ̇ + B u_i). Returns the samples, u and B (n × m; empty without forcing).
pub fn driven_samples(
    mesh: &TriMesh,
    n: usize,
    fields: &SmoothFieldConfig,
    drive: &Drive,
    t_span: f64,
    seed: u64,
) -> Result<(SamplesData, Option<Inputs>)> {
    if n == 0 {
        return Err(Error::input("the number of samples must be at least 1"));
    }
    if !(t_span.is_finite() && t_span >= 0.0) {
        return Err(Error::input(format!(
            "the forcing's time span must be finite and ≥ 0, got {t_span}"
        )));
    }
    fields.check()?;
    let mut dy = driven_dynamics(mesh, drive, SolverKind::Auto)?;
    let d = mesh.n_nodes();
    let m = drive.forcing.as_ref().map_or(0, |f| f.width());
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut q, mut v, mut a) = (
        Array2::zeros((n, d)),
        Array2::zeros((n, d)),
        Array2::zeros((n, d)),
    );
    let mut u = Array2::zeros((n, m));
    let mut acc = vec![0.0; d];
    let signal = drive.forcing.as_ref().map(|f| f.signal());
    for i in 0..n {
        let (phi, phidot) = random_state(&mesh.positions, &mut rng, fields);
        dy.time = t_span * rng.random::<f64>();
        if let Some(s) = &signal {
            let mut ui = vec![0.0; m];
            s.eval(dy.time, &mut ui);
            u.row_mut(i).assign(&Array1::from(ui));
        }
        dy.accelerations_into(&phi, &phidot, &mut acc)?;
        q.row_mut(i).assign(&Array1::from(phi));
        v.row_mut(i).assign(&Array1::from(phidot));
        a.row_mut(i).assign(&Array1::from(acc.clone()));
    }
    let samples = SamplesData {
        system: Some(super::wave_mesh::SYSTEM.into()),
        params: driven_params(mesh, fields, seed, drive),
        q,
        qdot: v,
        qddot: a,
        weights: None,
    };
    let inputs = match &drive.forcing {
        Some(f) => Some((
            u,
            Array2::from_shape_vec((d, m), f.input_map(mesh)?).expect("n×m"),
        )),
        None => None,
    };
    Ok((samples, inputs))
}

/// Driven trajectories from `batch` random states (integrated one by one, in parallel), with
/// their work; u at the frame times (T × m) and B (n × m) when forced.
pub fn driven_trajectories(
    mesh: &TriMesh,
    batch: usize,
    times: &[f64],
    fields: &SmoothFieldConfig,
    drive: &Drive,
    seed: u64,
    method: &Method,
) -> Result<(WorkTrajectories, Option<Inputs>)> {
    if batch == 0 {
        return Err(Error::input(
            "the number of trajectories must be at least 1",
        ));
    }
    fields.check()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let init: Vec<super::State> = (0..batch)
        .map(|_| random_state(&mesh.positions, &mut rng, fields))
        .collect();
    let mut t = trajectories_with_work(
        || driven_dynamics(mesh, drive, SolverKind::Auto),
        &init,
        times,
        method,
        WORK_SUB,
    )?;
    t.data.system = Some(super::wave_mesh::SYSTEM.into());
    t.data.params = driven_params(mesh, fields, seed, drive);
    let inputs = match &drive.forcing {
        Some(f) => {
            let m = f.width();
            let s = f.signal();
            let mut u = Array2::zeros((times.len(), m));
            let mut row = vec![0.0; m];
            for (k, &tk) in times.iter().enumerate() {
                s.eval(tk, &mut row);
                u.row_mut(k).assign(&Array1::from(row.clone()));
            }
            let b = Array2::from_shape_vec((mesh.n_nodes(), m), f.input_map(mesh)?).expect("n×m");
            Some((u, b))
        }
        None => None,
    };
    Ok((t, inputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(k: usize) -> TriMesh {
        crate::mesh::generate::square(k).unwrap()
    }

    #[test]
    fn forcing_parses_and_rejects() {
        let f = Forcing::parse("amp=2,freq=0.5,x=0.5,y=0.25,radius=0.1; amp=1,freq=1.5,phase=0.3")
            .unwrap();
        assert_eq!(f.width(), 2);
        assert_eq!(f.sources[0].at, Some([0.5, 0.25]));
        assert_eq!(f.sources[1].at, None);
        for (bad, what) in [
            ("amp=1", "freq"),
            ("amp=1,freq=2,x=0", "both x and y"),
            ("amp=1,freq=2,colour=3", "unknown key 'colour'"),
            ("amp=1,freq=-1", "≥ 0"),
            ("amp=nan,freq=1", "finite"),
            ("amp=1,freq=1,radius=0.2", "needs x, y"),
            ("", "no source"),
        ] {
            let e = Forcing::parse(bad).unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    /// The driven FEM accelerations equal an independent assembly: M⁻¹(−Kφ − cMφ̇ + B u(t))
    /// with K from `mesh::fem::stiffness` and B from the Gaussian formula.
    #[test]
    fn driven_accelerations_match_the_fem_formula() {
        let mesh = square(6);
        let f = Forcing::parse("amp=2,freq=0.7,phase=0.2,x=0.3,y=0.6,radius=0.2;amp=0.5,freq=0")
            .unwrap();
        let drive = Drive {
            damping: 0.3,
            forcing: Some(f.clone()),
        };
        let mut dy = driven_dynamics(&mesh, &drive, SolverKind::Auto).unwrap();
        let n = mesh.n_nodes();
        let phi: Vec<f64> = (0..n).map(|i| (0.3 * i as f64).sin()).collect();
        let phid: Vec<f64> = (0..n).map(|i| (0.7 * i as f64).cos()).collect();
        let t = 0.9;
        dy.time = t;
        let a = dy.accelerations(&phi, &phid).unwrap();
        let m = crate::mesh::fem::lumped_mass(&mesh);
        let k = crate::mesh::fem::stiffness(&mesh);
        let tau = 2.0 * std::f64::consts::PI;
        let u = [2.0 * (tau * 0.7 * t + 0.2).sin(), 0.0];
        for i in 0..n {
            let kphi: f64 = k
                .outer_view(i)
                .unwrap()
                .iter()
                .map(|(j, kij)| kij * phi[j])
                .sum();
            let p = mesh.positions[i];
            let g = (-((p[0] - 0.3).powi(2) + (p[1] - 0.6).powi(2)) / (2.0 * 0.04)).exp();
            let want = (-kphi - 0.3 * m[i] * phid[i] + m[i] * g * u[0]) / m[i];
            assert!(
                (a[i] - want).abs() < 1e-10 * (1.0 + want.abs()),
                "{i}: {} vs {want}",
                a[i]
            );
        }
        // A source that misses the mesh is an error.
        let far = Forcing::parse("amp=1,freq=1,x=50,y=50,radius=0.1").unwrap();
        assert!(far.input_map(&mesh).is_err());
    }

    /// Driven trajectories close the power balance E + W_diss − W_inj = E(0) and the damped
    /// unforced wave loses energy.
    #[test]
    fn driven_trajectories_balance_their_energy() {
        let mesh = square(5);
        let fields = SmoothFieldConfig::for_mesh(&mesh);
        let drive = Drive {
            damping: 0.2,
            forcing: Some(Forcing::parse("amp=1,freq=0.8,x=0.5,y=0.5,radius=0.3").unwrap()),
        };
        let times: Vec<f64> = (0..21).map(|k| 0.05 * k as f64).collect();
        let method = Method::Dp5(crate::integrate::Dp5Options::tol(1e-11, 1e-11));
        let (t, inp) = driven_trajectories(&mesh, 2, &times, &fields, &drive, 3, &method).unwrap();
        let (u, b) = inp.unwrap();
        assert_eq!(u.dim(), (21, 1));
        assert_eq!(b.dim(), (mesh.n_nodes(), 1));
        let e = t.data.energy.as_ref().unwrap();
        for bi in 0..2 {
            let e0 = e[[bi, 0]];
            let scale = e0.abs().max(t.w_dissipated[[bi, 20]]);
            assert!(t.w_dissipated[[bi, 20]] > 1e-3 * scale);
            assert!(t.w_injected[[bi, 20]].abs() > 1e-6);
            for k in 0..21 {
                let r = e[[bi, k]] + t.w_dissipated[[bi, k]] - t.w_injected[[bi, k]] - e0;
                assert!(r.abs() < 1e-8 * scale, "traj {bi} frame {k}: residual {r}");
            }
        }
    }
}
