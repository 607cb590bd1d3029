//! Why a solve M a = b failed.

use std::fmt;

/// A failed factorisation or solve of the mass matrix M = ∂²L/∂q̇∂q̇ (docs/DESIGN.md §1).
#[derive(Clone, Debug, PartialEq)]
pub enum SolveError {
    /// M is zero: the Lagrangian does not depend on the velocities.
    ZeroMass,
    /// A pivot of the LDLᵀ factorisation vanished (|d| ≤ tolerance · max |M_ii|, or not finite):
    /// M is singular, or indefinite under this ordering.
    ZeroPivot {
        /// The coordinate whose pivot vanished (in the system's numbering).
        coordinate: usize,
        pivot: f64,
        /// max |M_ii|, the scale the pivot was compared with.
        scale: f64,
    },
    /// The sparse LU factorisation (the fallback for indefinite M) failed.
    LuFailed { detail: String },
    /// The dense SVD of M did not converge.
    SvdFailed { detail: String },
    /// The solve produced a non-finite acceleration (M numerically singular).
    NonFiniteSolution { coordinate: usize },
}

impl fmt::Display for SolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DENSE: &str = "the dense pseudo-inverse solver (SolverKind::Dense) tolerates it";
        match self {
            SolveError::ZeroMass => write!(
                f,
                "the mass matrix is zero (the Lagrangian does not depend on the velocities)"
            ),
            SolveError::ZeroPivot {
                coordinate,
                pivot,
                scale,
            } => write!(
                f,
                "zero pivot {pivot:.3e} at coordinate {coordinate} (|M_ii| up to {scale:.3e}); the learned Lagrangian may be degenerate here — {DENSE}"
            ),
            SolveError::LuFailed { detail } => {
                write!(f, "sparse LU failed ({detail}); {DENSE}")
            }
            SolveError::SvdFailed { detail } => write!(f, "SVD did not converge: {detail}"),
            SolveError::NonFiniteSolution { coordinate } => write!(
                f,
                "the solve produced a non-finite acceleration at coordinate {coordinate}; {DENSE}"
            ),
        }
    }
}

impl std::error::Error for SolveError {}
