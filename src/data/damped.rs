//! Ground truth of damped systems (docs/DESIGN.md §13.5): the double pendulum with linear
//! joint damping D = ½ c (θ̇₁² + θ̇₂²).
//!
//! Samples use a closed form independent of [`crate::dynamics`]: the undamped accelerations of
//! [`super::dblpend_accel`] minus M(θ)⁻¹ C θ̇ with the pendulum's 2 × 2 mass matrix
//! M = [[2, cos Δ], [cos Δ, 1]] (m = l = 1). Trajectories integrate the analytic Lagrangian with
//! [`crate::density::dissipation::DissipationTerm::Linear`] and also record the dissipated
//! work W_diss(t) (dataset `w_dissipated`, docs/SCHEMA.md), so E + W_diss is constant.

use super::{dblpend_accel, dblpend_state, State};
use crate::density::dissipation::{DissipationTerm, Forces};
use crate::dynamics::Dynamics;
use crate::integrate::{integrate_with_work, Method};
use crate::io::{SamplesData, TrajectoryData};
use crate::solve::SolverKind;
use crate::systems::{self, DensityChoice};
use crate::{Error, Result};
use ndarray::{Array1, Array2, Array3};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Root attribute of damped data: the linear damping coefficient c.
pub const DAMPING_ATTR: &str = "damping";

/// Check a damping coefficient (finite, ≥ 0).
pub fn check_damping(c: f64) -> Result<()> {
    if !(c.is_finite() && c >= 0.0) {
        return Err(Error::input(format!(
            "the damping coefficient must be finite and ≥ 0, got {c} (a negative one would inject energy)"
        )));
    }
    Ok(())
}

/// Closed-form damped double-pendulum accelerations: a₀ − M⁻¹ c θ̇.
pub fn dblpend_damped_accel(q: &[f64], v: &[f64], g: f64, c: f64) -> [f64; 2] {
    let a0 = dblpend_accel(q, v, g);
    let cd = (q[0] - q[1]).cos();
    // M = [[2, cd], [cd, 1]], M⁻¹ = [[1, −cd], [−cd, 2]] / (2 − cd²).
    let det = 2.0 - cd * cd;
    let (f0, f1) = (c * v[0], c * v[1]);
    [
        a0[0] - (f0 - cd * f1) / det,
        a0[1] - (-cd * f0 + 2.0 * f1) / det,
    ]
}

/// The analytic damped double pendulum as [`Dynamics`].
pub fn dblpend_damped(g: f64, c: f64, solver: SolverKind) -> Result<Dynamics> {
    check_damping(c)?;
    let dy = systems::dblpend(g, &DensityChoice::Analytic, solver)?;
    if c == 0.0 {
        return Ok(dy);
    }
    dy.with_forces(Forces {
        dissipation: vec![DissipationTerm::Linear { c: vec![c, c] }],
        input: None,
    })
}

/// Damped double pendulum samples (states as [`super::dblpend_samples`]).
pub fn dblpend_damped_samples(
    n: usize,
    g: f64,
    omega_max: f64,
    c: f64,
    seed: u64,
) -> Result<SamplesData> {
    check_damping(c)?;
    let mut s = super::dblpend_samples(n, g, omega_max, seed)?;
    for i in 0..n {
        let (q, v) = ([s.q[[i, 0]], s.q[[i, 1]]], [s.qdot[[i, 0]], s.qdot[[i, 1]]]);
        let a = dblpend_damped_accel(&q, &v, g, c);
        s.qddot[[i, 0]] = a[0];
        s.qddot[[i, 1]] = a[1];
    }
    s.params.insert(DAMPING_ATTR.into(), c);
    Ok(s)
}

/// A trajectories file with the dissipated and injected work of every frame (B × T each).
pub struct WorkTrajectories {
    pub data: TrajectoryData,
    pub w_dissipated: Array2<f64>,
    pub w_injected: Array2<f64>,
}

impl WorkTrajectories {
    /// Write the trajectories plus datasets `w_dissipated` and `w_injected` (docs/SCHEMA.md).
    pub fn write(&self, path: &std::path::Path, force: bool) -> Result<()> {
        crate::io::inputs::write_trajectories_with(
            &self.data,
            &[
                ("w_dissipated", self.w_dissipated.clone().into_dyn()),
                ("w_injected", self.w_injected.clone().into_dyn()),
            ],
            path,
            force,
        )
    }
}

/// Integrate every initial state with `make()` and record q, q̇, q̈, E and the works
/// (quadrature with `sub` sub-intervals per frame, see [`integrate_with_work`]).
pub fn trajectories_with_work<M>(
    make: M,
    init: &[State],
    times: &[f64],
    method: &Method,
    sub: usize,
) -> Result<WorkTrajectories>
where
    M: Fn() -> Result<Dynamics> + Sync,
{
    if init.is_empty() {
        return Err(Error::input("no initial states"));
    }
    crate::integrate::check_times(times)?;
    let d = init[0].0.len();
    let nt = times.len();
    crate::limits::check_alloc(
        "trajectories",
        (init.len() as u128) * (nt as u128) * (3 * d as u128 + 3),
        8,
    )?;
    type Rows = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let per: Vec<Result<Rows>> = init
        .par_iter()
        .map(|(q0, v0)| {
            let mut dy = make()?;
            let mut rows = Vec::with_capacity(nt);
            integrate_with_work(&mut dy, method, q0, v0, times, sub, |_, t, q, v, w| {
                rows.push((t, q.to_vec(), v.to_vec(), w));
                Ok(())
            })?;
            let mut r: Rows = Default::default();
            for (t, q, v, w) in &rows {
                dy.time = *t;
                r.0.extend_from_slice(q);
                r.1.extend_from_slice(v);
                r.2.extend(dy.accelerations(q, v)?);
                r.3.push(dy.energy(q, v)?);
                r.4.push(w.dissipated);
                r.5.push(w.injected);
            }
            Ok(r)
        })
        .collect();
    let b = init.len();
    let mut all: Rows = Default::default();
    for r in per {
        let r = r?;
        all.0.extend(r.0);
        all.1.extend(r.1);
        all.2.extend(r.2);
        all.3.extend(r.3);
        all.4.extend(r.4);
        all.5.extend(r.5);
    }
    let shape = |x: Vec<f64>| Array3::from_shape_vec((b, nt, d), x).expect("shape");
    let shape2 = |x: Vec<f64>| Array2::from_shape_vec((b, nt), x).expect("shape");
    Ok(WorkTrajectories {
        data: TrajectoryData {
            system: None,
            params: BTreeMap::new(),
            t: Array1::from(times.to_vec()),
            q: shape(all.0),
            qdot: shape(all.1),
            qddot: Some(shape(all.2)),
            energy: Some(shape2(all.3)),
        },
        w_dissipated: shape2(all.4),
        w_injected: shape2(all.5),
    })
}

/// Damped double pendulum trajectories from B random initial states.
pub fn dblpend_damped_trajectories(
    b: usize,
    times: &[f64],
    g: f64,
    omega_max: f64,
    c: f64,
    seed: u64,
    method: &Method,
) -> Result<WorkTrajectories> {
    check_damping(c)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let init: Vec<State> = (0..b)
        .map(|_| {
            let (q, v) = dblpend_state(&mut rng, omega_max);
            (q.to_vec(), v.to_vec())
        })
        .collect();
    let mut t = trajectories_with_work(
        || dblpend_damped(g, c, SolverKind::Auto),
        &init,
        times,
        method,
        8,
    )?;
    t.data.system = Some("dblpend".into());
    t.data.params = [
        ("g".to_string(), g),
        ("omega_max".to_string(), omega_max),
        ("seed".to_string(), seed as f64),
        (DAMPING_ATTR.to_string(), c),
    ]
    .into_iter()
    .collect();
    Ok(t)
}

/// Simpson sub-intervals per output interval of the work quadrature in [`simulate_with_work`]
/// (as the generated damped trajectories).
pub const WORK_SUB: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_matches_the_engine() {
        let mut dy = dblpend_damped(9.8, 0.4, SolverKind::Auto).unwrap();
        for k in 0..20 {
            let q = [0.3 * k as f64, 1.0 - 0.2 * k as f64];
            let v = [(k as f64).sin() * 3.0, (k as f64).cos() * 2.0];
            let a = dy.accelerations(&q, &v).unwrap();
            let b = dblpend_damped_accel(&q, &v, 9.8, 0.4);
            for c in 0..2 {
                assert!(
                    (a[c] - b[c]).abs() < 1e-10 * (1.0 + b[c].abs()),
                    "{a:?} vs {b:?}"
                );
            }
        }
        assert!(check_damping(-0.1).is_err());
    }
}
