//! Time integration of second-order systems q̈ = f(q, q̇).
//!
//! A system is anything implementing [`SecondOrder`]: a closure
//! `FnMut(&[f64], &[f64], &mut [f64]) -> Result<()>` (q, q̇ → q̈) or a [`Dynamics`] (analytic or
//! learned Lagrangian). Methods ([`Method`]):
//!
//! | method | order | step | notes |
//! |---|---|---|---|
//! | [`Method::Rk4`] | 4 | fixed | classical Runge–Kutta on y = (q, q̇) |
//! | [`Method::Dp5`] | 5(4) | adaptive | Dormand–Prince with rtol/atol, PI-free step control as in scipy/Hairer, 4th-order dense output at requested times (what `odeint` in the paper's reference code does) |
//! | [`Method::Verlet`] | 2 | fixed | velocity (Störmer–)Verlet: symplectic when q̈ does not depend on q̇ (constant M, no C: wave, FEM); for velocity-dependent q̈ it is still explicit and second order only in the velocity-independent part, use the variational integrator instead |
//! | [`Method::Midpoint`] | 2 | fixed | implicit-midpoint *variational* integrator: discrete Lagrangian L_d(q₀, q₁) = h L((q₀+q₁)/2, (q₁−q₀)/h); symplectic and momentum-preserving for any regular Lagrangian (velocity-dependent M included). Needs the Lagrangian itself ([`Variational`], implemented by [`Dynamics`]) |
//!
//! Every method writes the state at requested output times through a callback, so a long run
//! streams to disk ([`integrate`]) and a short one collects into arrays ([`solve`]). Fixed-step
//! methods split each output interval into ⌈Δt/dt⌉ equal steps, so they land exactly on the
//! output times. Failures (non-finite state, DP5 step-size underflow, step limit, implicit step
//! not converging) are [`IntegrateError`] values naming the time and a cure.

mod error;
pub use error::IntegrateError;

mod dp5;
mod fixed;
mod variational;
mod work;

pub use dp5::Dp5Options;
pub use variational::{MidpointOptions, Variational};
pub use work::{integrate_with_work, Work};

use crate::dynamics::Dynamics;
use crate::{Error, Result};

/// Right-hand side of a second-order system: q̈ = f(q, q̇).
pub trait SecondOrder {
    /// Write q̈(q, v) into `a` (same length as q).
    fn accel(&mut self, q: &[f64], v: &[f64], a: &mut [f64]) -> Result<()>;
    /// The Lagrangian structure, if the system has one (needed by [`Method::Midpoint`]).
    fn variational(&mut self) -> Option<&mut dyn Variational> {
        None
    }
    /// The time of the next [`SecondOrder::accel`] call, for time-dependent forces
    /// (docs/DESIGN.md §13); autonomous systems ignore it.
    fn set_time(&mut self, _t: f64) {}
    /// The first time after `t` where the forcing is not smooth (the sample times of a sampled
    /// input u(t), docs/DESIGN.md §13.4): adaptive integrators end a step there instead of
    /// stepping across the kink. `None`: smooth.
    fn next_stop(&self, _t: f64) -> Option<f64> {
        None
    }
}

impl<F> SecondOrder for F
where
    F: FnMut(&[f64], &[f64], &mut [f64]) -> Result<()>,
{
    fn accel(&mut self, q: &[f64], v: &[f64], a: &mut [f64]) -> Result<()> {
        self(q, v, a)
    }
}

impl SecondOrder for Dynamics {
    fn accel(&mut self, q: &[f64], v: &[f64], a: &mut [f64]) -> Result<()> {
        self.accelerations_into(q, v, a)
    }
    fn variational(&mut self) -> Option<&mut dyn Variational> {
        Some(self)
    }
    fn set_time(&mut self, t: f64) {
        self.time = t;
    }
    fn next_stop(&self, t: f64) -> Option<f64> {
        self.forces.as_ref()?.input.as_ref()?.signal.next_kink(t)
    }
}

/// An integration method and its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Classical fourth-order Runge–Kutta with step at most `dt`.
    Rk4 { dt: f64 },
    /// Velocity Verlet (leapfrog) with step at most `dt`.
    Verlet { dt: f64 },
    /// Implicit-midpoint variational integrator with step at most `dt`.
    Midpoint { dt: f64, opts: MidpointOptions },
    /// Adaptive Dormand–Prince 5(4) with dense output.
    Dp5(Dp5Options),
}

impl Method {
    /// Short name ("rk4", "verlet", "midpoint", "dp5").
    pub fn name(&self) -> &'static str {
        match self {
            Method::Rk4 { .. } => "rk4",
            Method::Verlet { .. } => "verlet",
            Method::Midpoint { .. } => "midpoint",
            Method::Dp5(_) => "dp5",
        }
    }
}

/// Work done by an integration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (DP5).
    pub rejected: usize,
    /// Evaluations of q̈ (or of the Lagrangian's gradients for the variational integrator).
    pub evals: usize,
}

/// The output times of an integration: a slice (or `Vec`, array) of times, or a [`Linspace`]
/// that generates them as they are needed (a long simulation then holds no time array).
pub trait OutputTimes {
    /// Number of output times.
    fn len(&self) -> usize;
    /// The k-th output time (k < len).
    fn at(&self, k: usize) -> f64;
    /// No output times at all?
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Check: at least one, finite, non-decreasing (see [`check_times`]).
    fn check(&self) -> Result<()> {
        if self.is_empty() {
            return Err(Error::input("no output times requested"));
        }
        for i in 0..self.len() {
            let t = self.at(i);
            if !t.is_finite() {
                return Err(Error::input(format!(
                    "output time[{i}] = {t} is not finite"
                )));
            }
            if i > 0 && t < self.at(i - 1) {
                return Err(Error::input(format!(
                    "output times must be non-decreasing, but t[{i}] = {t} < t[{}] = {}",
                    i - 1,
                    self.at(i - 1)
                )));
            }
        }
        Ok(())
    }
}

impl OutputTimes for [f64] {
    fn len(&self) -> usize {
        <[f64]>::len(self)
    }
    fn at(&self, k: usize) -> f64 {
        self[k]
    }
}

impl OutputTimes for Vec<f64> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn at(&self, k: usize) -> f64 {
        self[k]
    }
}

impl<const N: usize> OutputTimes for [f64; N] {
    fn len(&self) -> usize {
        N
    }
    fn at(&self, k: usize) -> f64 {
        self[k]
    }
}

/// `n` equally spaced times 0, dt, …, (n−1)·dt, generated on demand (time k is `k as f64 * dt`,
/// bit for bit what [`linspace_times`] stores).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linspace {
    pub n: usize,
    pub dt: f64,
}

impl OutputTimes for Linspace {
    fn len(&self) -> usize {
        self.n
    }
    fn at(&self, k: usize) -> f64 {
        k as f64 * self.dt
    }
    fn check(&self) -> Result<()> {
        if self.n == 0 {
            return Err(Error::input("no output times requested"));
        }
        let last = self.at(self.n - 1);
        if !(self.dt.is_finite() && self.dt >= 0.0 && last.is_finite()) {
            return Err(Error::input(format!(
                "output times 0, {}, …, {} must be finite and non-decreasing",
                crate::limits::num(self.dt),
                crate::limits::num(last)
            )));
        }
        Ok(())
    }
}

/// Check the requested output times: finite and non-decreasing, at least one.
pub fn check_times<T: OutputTimes + ?Sized>(times: &T) -> Result<()> {
    times.check()
}

/// Error unless every value of the state is finite.
pub(crate) fn check_state(t: f64, q: &[f64], v: &[f64]) -> Result<()> {
    for (name, xs) in [("q", q), ("qdot", v)] {
        if let Some(i) = xs.iter().position(|x| !x.is_finite()) {
            return Err(IntegrateError::NonFiniteState {
                t,
                field: name,
                index: i,
                value: xs[i],
            }
            .into());
        }
    }
    Ok(())
}

/// q̈ at a stage state, with a clear integration error if that state is already non-finite
/// (the dynamics blew up inside a step).
pub(crate) fn accel_checked<S: SecondOrder + ?Sized>(
    sys: &mut S,
    t: f64,
    q: &[f64],
    v: &[f64],
    a: &mut [f64],
) -> Result<()> {
    check_state(t, q, v)?;
    sys.set_time(t);
    sys.accel(q, v, a)
}

/// Integrate from (q0, v0) at `times[0]` and call `out(k, times[k], q, v)` at every requested
/// time (the first call is the initial state). `times` must be non-decreasing; repeated times
/// repeat the frame. Returns the work done.
pub fn integrate<S, F, T>(
    sys: &mut S,
    method: &Method,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    out: F,
) -> Result<Stats>
where
    S: SecondOrder + ?Sized,
    F: FnMut(usize, f64, &[f64], &[f64]) -> Result<()>,
    T: OutputTimes + ?Sized,
{
    check_times(times)?;
    if q0.len() != v0.len() {
        return Err(Error::input(format!(
            "q has {} values but qdot has {}",
            q0.len(),
            v0.len()
        )));
    }
    check_state(times.at(0), q0, v0).map_err(|_| {
        Error::input("the initial state contains NaN or infinite values".to_string())
    })?;
    let span = times.at(times.len() - 1) - times.at(0);
    let check_dt = |dt: f64| -> Result<()> {
        if !(dt.is_finite() && dt > 0.0) {
            return Err(Error::input(format!(
                "the time step must be positive and finite, got {}",
                crate::limits::num(dt)
            )));
        }
        // Every output interval takes at least one step, and ⌈Δt/dt⌉ in all.
        crate::limits::check_steps(span, dt)
    };
    match method {
        Method::Rk4 { dt } => {
            check_dt(*dt)?;
            fixed::rk4(sys, *dt, q0, v0, times, out)
        }
        Method::Verlet { dt } => {
            check_dt(*dt)?;
            fixed::verlet(sys, *dt, q0, v0, times, out)
        }
        Method::Midpoint { dt, opts } => {
            check_dt(*dt)?;
            let Some(var) = sys.variational() else {
                return Err(Error::input(
                    "the midpoint variational integrator needs the Lagrangian, not only q̈: use a Dynamics, or rk4/dp5/verlet",
                ));
            };
            variational::midpoint(var, *dt, opts, q0, v0, times, out)
        }
        Method::Dp5(opts) => dp5::dp5(sys, opts, q0, v0, times, out),
    }
}

/// A solved trajectory: T frames of D coordinates, row-major (frame k is `q[k*D..(k+1)*D]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    pub t: Vec<f64>,
    pub q: Vec<f64>,
    pub v: Vec<f64>,
    pub dim: usize,
    pub stats: Stats,
}

impl Solution {
    /// Coordinates at frame k.
    pub fn q_at(&self, k: usize) -> &[f64] {
        &self.q[k * self.dim..(k + 1) * self.dim]
    }
    /// Velocities at frame k.
    pub fn v_at(&self, k: usize) -> &[f64] {
        &self.v[k * self.dim..(k + 1) * self.dim]
    }
}

/// [`integrate`] collecting every frame in memory.
pub fn solve<S: SecondOrder + ?Sized>(
    sys: &mut S,
    method: &Method,
    q0: &[f64],
    v0: &[f64],
    times: &[f64],
) -> Result<Solution> {
    let dim = q0.len();
    crate::limits::check_alloc(
        "trajectory frames",
        2 * (dim as u128) * (times.len() as u128),
        8,
    )?;
    let mut q = Vec::with_capacity(dim * times.len());
    let mut v = Vec::with_capacity(dim * times.len());
    let stats = integrate(sys, method, q0, v0, times, |_, _, qk, vk| {
        q.extend_from_slice(qk);
        v.extend_from_slice(vk);
        Ok(())
    })?;
    Ok(Solution {
        t: times.to_vec(),
        q,
        v,
        dim,
        stats,
    })
}

/// `n` equally spaced times 0, dt, …, (n−1)·dt.
pub fn linspace_times(n: usize, dt: f64) -> Vec<f64> {
    (0..n).map(|k| k as f64 * dt).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sho(q: &[f64], _v: &[f64], a: &mut [f64]) -> Result<()> {
        a[0] = -q[0];
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut f = sho;
        let m = Method::Rk4 { dt: 0.1 };
        assert!(solve(&mut f, &m, &[1.0], &[0.0], &[]).is_err());
        assert!(solve(&mut f, &m, &[1.0], &[0.0], &[1.0, 0.0]).is_err());
        assert!(solve(&mut f, &m, &[f64::NAN], &[0.0], &[0.0, 1.0]).is_err());
        assert!(solve(
            &mut f,
            &Method::Rk4 { dt: -1.0 },
            &[1.0],
            &[0.0],
            &[0.0, 1.0]
        )
        .is_err());
        let e = solve(
            &mut f,
            &Method::Midpoint {
                dt: 0.1,
                opts: MidpointOptions::default(),
            },
            &[1.0],
            &[0.0],
            &[0.0, 1.0],
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs the Lagrangian"), "{e}");
    }

    #[test]
    fn blow_up_is_an_error_not_a_panic() {
        // q̈ = q³ blows up in finite time (t ≈ 1.85 from q = 1, v = 0... faster from larger q).
        let mut f = |q: &[f64], _: &[f64], a: &mut [f64]| -> Result<()> {
            a[0] = q[0] * q[0] * q[0];
            Ok(())
        };
        let times = [0.0, 100.0];
        for m in [
            Method::Rk4 { dt: 0.01 },
            Method::Verlet { dt: 0.01 },
            Method::Dp5(Dp5Options::default()),
        ] {
            let e = solve(&mut f, &m, &[10.0], &[0.0], &times).unwrap_err();
            assert!(matches!(e, Error::Integrate(_)), "{m:?}: {e}");
        }
    }

    #[test]
    fn repeated_output_times_repeat_the_frame() {
        let mut f = sho;
        let s = solve(
            &mut f,
            &Method::Rk4 { dt: 0.1 },
            &[1.0],
            &[0.0],
            &[0.0, 0.5, 0.5, 1.0],
        )
        .unwrap();
        assert_eq!(s.q_at(1), s.q_at(2));
        assert!((s.q_at(3)[0] - 1f64.cos()).abs() < 1e-5);
    }
}
