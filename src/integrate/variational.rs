//! Implicit-midpoint variational integrator for general (velocity-dependent M) Lagrangians.
//!
//! Discrete Lagrangian L_d(q₀, q₁) = h L(q̄, q̇̄) with q̄ = (q₀+q₁)/2, q̇̄ = (q₁−q₀)/h. The discrete
//! Euler–Lagrange equations in position–momentum form (Marsden & West 2001) are
//!
//! ```text
//! p₀ = ∂L/∂v(q̄, q̇̄) − (h/2) ∂L/∂q(q̄, q̇̄)        (solved for q₁)
//! p₁ = ∂L/∂v(q̄, q̇̄) + (h/2) ∂L/∂q(q̄, q̇̄)
//! ```
//!
//! The map (q₀, p₀) → (q₁, p₁) is symplectic and preserves the momenta of symmetries (Noether);
//! energy error stays bounded (no drift) over very long runs. It is second order. The implicit
//! equation for q₁ is solved by a Newton-like iteration with Jacobian M(q̄, q̇̄)/h (the leading
//! term; the neglected parts are O(h) relative), so each iteration costs one site evaluation and
//! one solve with the sparse mass matrix. With non-conservative forces F = −∂D/∂q̇ + B u(t)
//! ([`Variational::force`]) the same equations with ∂L/∂q replaced by ∂L/∂q + F(q̄, q̇̄, t + h/2)
//! are the discrete Lagrange–d'Alembert principle with midpoint forces (docs/DESIGN.md §13.3),
//! still second order. Velocities at output times are recovered from
//! p = ∂L/∂v(q, v) by Newton's method on v.

use super::fixed::substeps;
use super::{check_state, Stats};
use crate::dynamics::Dynamics;
use crate::integrate::IntegrateError;
use crate::{Error, Result};

/// Access to a Lagrangian's gradients and mass matrix (implemented by [`Dynamics`]).
pub trait Variational {
    /// Number of coordinates.
    fn n_coords(&self) -> usize;
    /// ∂L/∂q and ∂L/∂v at (q, v), and factorise M(q, v) for [`Variational::solve_mass`].
    fn gradients(&mut self, q: &[f64], v: &[f64], dq: &mut [f64], dv: &mut [f64]) -> Result<()>;
    /// x ← M⁻¹x with M from the last [`Variational::gradients`] call.
    fn solve_mass(&mut self, x: &mut [f64]) -> Result<()>;
    /// The non-conservative force F(q, v, t) = −∂D/∂q̇ + B u(t) added to `f`, if the system has
    /// one (returns false and leaves `f` alone otherwise). The integrator then solves the
    /// discrete Lagrange–d'Alembert equations (docs/DESIGN.md §13.3).
    fn force(&mut self, _q: &[f64], _v: &[f64], _t: f64, _f: &mut [f64]) -> bool {
        false
    }
    /// The largest of `x` over all parts of a domain-decomposed system (NaN if any part has
    /// NaN), so that every rank takes the same convergence decision (docs/DESIGN.md §16.5.4).
    /// One process: `x`.
    fn global_max(&mut self, x: f64) -> Result<f64> {
        Ok(x)
    }
}

/// max |x| over all parts of `sys` (NaN when any value anywhere is not finite).
fn global_max_abs(sys: &mut dyn Variational, x: &[f64]) -> Result<f64> {
    let local = if x.iter().all(|v| v.is_finite()) {
        max_abs(x)
    } else {
        f64::NAN
    };
    sys.global_max(local)
}

impl Variational for Dynamics {
    fn n_coords(&self) -> usize {
        Dynamics::n_coords(self)
    }
    fn gradients(&mut self, q: &[f64], v: &[f64], dq: &mut [f64], dv: &mut [f64]) -> Result<()> {
        self.evaluate_sites(q, v)?;
        self.assemble();
        self.solver.factorize(&self.pattern, &self.mass)?;
        dq.fill(0.0);
        dv.fill(0.0);
        let d = self.lagrangian.dof;
        for (ti, term) in self.lagrangian.terms.iter().enumerate() {
            let lay = term.density.layout();
            let stride = lay.stride();
            let recs =
                &self.derivs[self.pattern.term_offsets[ti]..self.pattern.term_offsets[ti + 1]];
            for (s, rec) in recs.chunks_exact(stride).enumerate() {
                for (a, &node) in term.sites.neighbourhood(s).iter().enumerate() {
                    for c in 0..d {
                        dq[node * d + c] += rec[lay.grad_q() + a * d + c];
                        dv[node * d + c] += rec[lay.grad_v() + a * d + c];
                    }
                }
            }
        }
        // Held coordinates (Dirichlet): no discrete Euler–Lagrange equation of their own.
        for &j in self.fixed_coords() {
            dq[j] = 0.0;
            dv[j] = 0.0;
        }
        Ok(())
    }
    fn solve_mass(&mut self, x: &mut [f64]) -> Result<()> {
        self.solver.solve_in_place(x)
    }
    fn force(&mut self, q: &[f64], v: &[f64], t: f64, f: &mut [f64]) -> bool {
        let Some(forces) = &self.forces else {
            return false;
        };
        forces.add_force(q, v, t, f);
        for &j in self.fixed_coords() {
            f[j] = 0.0;
        }
        true
    }
}

/// Options of the implicit-midpoint variational integrator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MidpointOptions {
    /// Stop the implicit iteration when max|Δq₁| ≤ tol·(1 + max|q₁|).
    pub tol: f64,
    /// Iterations per step (and per velocity recovery) before giving up.
    pub max_iter: usize,
}

impl Default for MidpointOptions {
    /// tol = 1e-13, 50 iterations.
    fn default() -> Self {
        MidpointOptions {
            tol: 1e-13,
            max_iter: 50,
        }
    }
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Recover v from p = ∂L/∂v(q, v), starting from `v`.
fn velocity(
    sys: &mut dyn Variational,
    q: &[f64],
    p: &[f64],
    v: &mut [f64],
    o: &MidpointOptions,
    t: f64,
    stats: &mut Stats,
) -> Result<()> {
    let n = q.len();
    let (mut gq, mut gv, mut r) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for _ in 0..o.max_iter {
        sys.gradients(q, v, &mut gq, &mut gv)?;
        stats.evals += 1;
        for j in 0..n {
            r[j] = p[j] - gv[j];
        }
        sys.solve_mass(&mut r)?;
        for j in 0..n {
            v[j] += r[j];
        }
        let (dr, vm) = (global_max_abs(sys, &r)?, global_max_abs(sys, v)?);
        if vm.is_nan() {
            break;
        }
        if dr <= o.tol * (1.0 + vm) {
            return Ok(());
        }
    }
    Err(IntegrateError::NotConverged {
        method: "midpoint",
        what: "recovering the velocity from the momentum",
        t,
        iterations: o.max_iter,
    }
    .into())
}

pub(crate) fn midpoint<F, T>(
    sys: &mut dyn Variational,
    dt: f64,
    o: &MidpointOptions,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    mut out: F,
) -> Result<Stats>
where
    F: FnMut(usize, f64, &[f64], &[f64]) -> Result<()>,
    T: super::OutputTimes + ?Sized,
{
    let n = q0.len();
    if sys.n_coords() != n {
        return Err(Error::input(format!(
            "state has {n} coordinates, the system {}",
            sys.n_coords()
        )));
    }
    if !(o.tol > 0.0 && o.max_iter > 0) {
        return Err(Error::input(
            "midpoint tolerance and iteration limit must be positive",
        ));
    }
    let mut stats = Stats::default();
    let mut q = q0.to_vec();
    let mut v = v0.to_vec();
    let mut p = vec![0.0; n];
    let (mut gq, mut gv) = (vec![0.0; n], vec![0.0; n]);
    sys.gradients(&q, &v, &mut gq, &mut gv)?;
    stats.evals += 1;
    p.copy_from_slice(&gv);
    out(0, times.at(0), &q, &v)?;
    // `vg`: velocity guess for the next step (the last midpoint velocity).
    let mut vg = v.clone();
    let (mut q1, mut mq, mut mv, mut r) = (q.clone(), vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 1..times.len() {
        let (t0, t1) = (times.at(i - 1), times.at(i));
        let m = substeps(t1 - t0, dt);
        let h = if m > 0 { (t1 - t0) / m as f64 } else { 0.0 };
        for s in 0..m {
            let t = t0 + s as f64 * h;
            for j in 0..n {
                q1[j] = q[j] + h * vg[j];
            }
            let mut converged = false;
            for _ in 0..o.max_iter {
                for j in 0..n {
                    mq[j] = 0.5 * (q[j] + q1[j]);
                    mv[j] = (q1[j] - q[j]) / h;
                }
                sys.gradients(&mq, &mv, &mut gq, &mut gv)?;
                stats.evals += 1;
                // Discrete Lagrange–d'Alembert: f± = (h/2) F(q̄, q̇̄, t + h/2) join ∂L/∂q.
                sys.force(&mq, &mv, t + 0.5 * h, &mut gq);
                for j in 0..n {
                    r[j] = gv[j] - 0.5 * h * gq[j] - p[j];
                }
                sys.solve_mass(&mut r)?;
                for j in 0..n {
                    q1[j] -= h * r[j];
                }
                let (dr, qm) = (global_max_abs(sys, &r)?, global_max_abs(sys, &q1)?);
                if qm.is_nan() {
                    break;
                }
                if h * dr <= o.tol * (1.0 + qm) {
                    converged = true;
                    break;
                }
            }
            if !converged {
                check_state(t + h, &q1, &p)?;
                return Err(IntegrateError::NotConverged {
                    method: "midpoint",
                    what: "the implicit step",
                    t,
                    iterations: o.max_iter,
                }
                .into());
            }
            for j in 0..n {
                p[j] = gv[j] + 0.5 * h * gq[j];
                vg[j] = (q1[j] - q[j]) / h;
            }
            q.copy_from_slice(&q1);
            stats.steps += 1;
            check_state(t + h, &q, &p)?;
        }
        if m > 0 {
            v.copy_from_slice(&vg);
            velocity(sys, &q, &p, &mut v, o, t1, &mut stats)?;
        }
        out(i, t1, &q, &v)?;
    }
    Ok(stats)
}
