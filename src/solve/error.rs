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
    /// The distributed conjugate-gradient solve met a direction p with pᵀMp ≤ 0 (or a
    /// non-positive diagonal entry for the Jacobi preconditioner): M is not positive definite
    /// (docs/DESIGN.md §16.5.3).
    NotDefinite {
        /// CG iteration (0: the diagonal check).
        iteration: usize,
        /// pᵀMp, or the smallest diagonal entry.
        curvature: f64,
    },
    /// The distributed conjugate-gradient solve did not reach ‖r‖ ≤ tol·‖b‖.
    CgNotConverged {
        iterations: usize,
        /// ‖r‖ / ‖b‖ at the end.
        residual: f64,
        tol: f64,
    },
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
            SolveError::NotDefinite {
                iteration,
                curvature,
            } => write!(
                f,
                "the mass matrix is not positive definite (curvature {curvature:.3e} at conjugate-gradient iteration {iteration}); the distributed solve needs a definite M (a physical kinetic energy) — run on one rank with --solver sparse or dense for an indefinite learned M"
            ),
            SolveError::CgNotConverged {
                iterations,
                residual,
                tol,
            } => write!(
                f,
                "the distributed conjugate-gradient solve did not converge: relative residual {residual:.3e} after {iterations} iterations (tolerance {tol:.1e}); M may be nearly singular"
            ),
        }
    }
}

impl std::error::Error for SolveError {}
