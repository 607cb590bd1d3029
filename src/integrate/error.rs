//! Why a time integration stopped.

use std::fmt;

/// A failed time integration (docs/DESIGN.md §1). Each names the time and a cure.
#[derive(Clone, Debug, PartialEq)]
pub enum IntegrateError {
    /// The state became non-finite: the dynamics blew up.
    NonFiniteState {
        t: f64,
        /// "q" or "qdot".
        field: &'static str,
        index: usize,
        value: f64,
    },
    /// An adaptive integrator reached its step limit before the end time.
    StepLimit {
        method: &'static str,
        t: f64,
        t_end: f64,
        max_steps: usize,
    },
    /// An adaptive step fell below the smallest step allowed.
    StepUnderflow {
        method: &'static str,
        t: f64,
        h: f64,
        h_min: f64,
        /// The state or q̈ was not finite there (otherwise: singular or too stiff).
        non_finite: bool,
    },
    /// An implicit step's iteration did not converge.
    NotConverged {
        method: &'static str,
        /// What was being solved ("the implicit step", "the velocity from the momentum").
        what: &'static str,
        t: f64,
        iterations: usize,
    },
}

impl fmt::Display for IntegrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntegrateError::NonFiniteState {
                t,
                field,
                index,
                value,
            } => write!(
                f,
                "the state became non-finite at t = {t}: {field}[{index}] = {value} (the dynamics blew up; reduce the step or check the model)"
            ),
            IntegrateError::StepLimit {
                method,
                t,
                t_end,
                max_steps,
            } => write!(
                f,
                "{method} reached the limit of {max_steps} steps at t = {t} (target {t_end}); raise the step limit or loosen the tolerances"
            ),
            IntegrateError::StepUnderflow {
                method,
                t,
                h,
                h_min,
                non_finite,
            } => write!(
                f,
                "{method} step size underflow at t = {t} (h = {h:e} < {h_min:e}): {}",
                if *non_finite {
                    "the state or q̈ is not finite"
                } else {
                    "the dynamics are singular or too stiff there; loosen the tolerances or check the model"
                }
            ),
            IntegrateError::NotConverged {
                method,
                what,
                t,
                iterations,
            } => write!(
                f,
                "{method} integrator: {what} at t = {t} did not converge in {iterations} iterations; reduce the time step"
            ),
        }
    }
}

impl std::error::Error for IntegrateError {}
