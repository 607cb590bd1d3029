//! Dissipated and injected work along a rollout (docs/DESIGN.md §13.4).
//!
//! Along any solution of (13.1) the energy E = q̇·∂L/∂q̇ − L obeys
//! dE/dt = −q̇·∂D/∂q̇ + q̇·B u(t), so with
//! W_diss(t) = ∫₀ᵗ q̇·∂D/∂q̇ dt' and W_inj(t) = ∫₀ᵗ q̇·B u dt' the balance
//! E(t) + W_diss(t) − W_inj(t) = E(0) holds exactly. [`integrate_with_work`] integrates the
//! powers by composite Simpson quadrature on `sub` equal sub-intervals of every output interval
//! (states from the integrator's own dense output), so the quadrature error, O((Δt/sub)⁴), stays
//! below the integrator's tolerance.

use super::{integrate, Method, OutputTimes, Stats};
use crate::density::dissipation::Forces;
use crate::dynamics::Dynamics;
use crate::{Error, Result};

/// Work done by the non-conservative forces since the first output time.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Work {
    /// ∫ q̇·∂D/∂q̇ dt ≥ 0.
    pub dissipated: f64,
    /// ∫ q̇·B u dt.
    pub injected: f64,
}

/// Output times refined by `sub` equal sub-intervals each.
struct Refined<'a, T: OutputTimes + ?Sized> {
    base: &'a T,
    sub: usize,
}

impl<T: OutputTimes + ?Sized> OutputTimes for Refined<'_, T> {
    fn len(&self) -> usize {
        (self.base.len() - 1) * self.sub + 1
    }
    fn at(&self, k: usize) -> f64 {
        let (i, j) = (k / self.sub, k % self.sub);
        if j == 0 {
            return self.base.at(i);
        }
        let (a, b) = (self.base.at(i), self.base.at(i + 1));
        a + (b - a) * j as f64 / self.sub as f64
    }
}

/// [`integrate`] of `dy` that also reports the work of its forces at every output time:
/// `out(k, t, q, v, work)`. `sub` (even, ≥ 2) sub-intervals per output interval set the
/// quadrature; without forces the work is zero and no extra frames are computed.
pub fn integrate_with_work<F, T>(
    dy: &mut Dynamics,
    method: &Method,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    sub: usize,
    mut out: F,
) -> Result<Stats>
where
    F: FnMut(usize, f64, &[f64], &[f64], Work) -> Result<()>,
    T: OutputTimes + ?Sized,
{
    let Some(forces) = dy.forces.clone() else {
        return integrate(dy, method, q0, v0, times, |k, t, q, v| {
            out(k, t, q, v, Work::default())
        });
    };
    if sub < 2 || sub % 2 == 1 {
        return Err(Error::input(format!(
            "work quadrature needs an even number ≥ 2 of sub-intervals, got {sub}"
        )));
    }
    if times.is_empty() {
        return Err(Error::input("no output times requested"));
    }
    let fine = Refined { base: times, sub };
    let mut acc = Quadrature::new(forces, sub);
    integrate(dy, method, q0, v0, &fine, |k, t, q, v| {
        if let Some(w) = acc.push(k, t, q, v) {
            out(k / sub, t, q, v, w)?;
        }
        Ok(())
    })
}

/// Composite Simpson accumulation of the two powers over sub-frames.
struct Quadrature {
    forces: Forces,
    sub: usize,
    total: Work,
    /// Weighted sums (1, 4, 2, …, 4, 1) of the current interval.
    part: Work,
    t_start: f64,
}

impl Quadrature {
    fn new(forces: Forces, sub: usize) -> Self {
        Quadrature {
            forces,
            sub,
            total: Work::default(),
            part: Work::default(),
            t_start: 0.0,
        }
    }

    /// Feed sub-frame k; returns the work at the output frames (k a multiple of `sub`).
    fn push(&mut self, k: usize, t: f64, q: &[f64], v: &[f64]) -> Option<Work> {
        let p = self.forces.power(q, v, t);
        let j = k % self.sub;
        if k == 0 {
            self.t_start = t;
            self.part = Work {
                dissipated: p.dissipated,
                injected: p.injected,
            };
            return Some(self.total);
        }
        if j == 0 {
            // Interval end: weight 1, close it, open the next with weight 1.
            let h = (t - self.t_start) / self.sub as f64;
            self.total.dissipated += h / 3.0 * (self.part.dissipated + p.dissipated);
            self.total.injected += h / 3.0 * (self.part.injected + p.injected);
            self.t_start = t;
            self.part = Work {
                dissipated: p.dissipated,
                injected: p.injected,
            };
            return Some(self.total);
        }
        let w = if j % 2 == 1 { 4.0 } else { 2.0 };
        self.part.dissipated += w * p.dissipated;
        self.part.injected += w * p.injected;
        None
    }
}
