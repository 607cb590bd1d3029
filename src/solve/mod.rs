//! Solving M a = b for the accelerations.
//!
//! * [`SolverKind::Banded`]: banded LDLᵀ under the ring's fold ordering, the natural order
//!   (chains, single-node systems: a dense LDLᵀ), or reverse Cuthill–McKee — O(N w²).
//! * [`SolverKind::Sparse`]: faer's supernodal sparse Cholesky with an AMD fill-reducing
//!   ordering (symbolic analysis done once per pattern); if M is not positive definite it falls
//!   back to sparse LU with partial pivoting (COLAMD ordering).
//! * [`SolverKind::Dense`]: the paper's baseline, a dense SVD pseudo-inverse (singular values
//!   below N·ε·σ_max are dropped), O(N³).
//!
//! `Auto` picks banded when the best ordering's half-bandwidth is at most 24 coordinates, else
//! sparse. A singular M is an [`Error::Singular`] naming the coordinate, never a silent NaN; the
//! dense pseudo-inverse is the documented way to get least-squares accelerations anyway.

pub mod banded;
pub mod ordering;

use crate::assembly::MassPattern;
use crate::graph::GraphKind;
use crate::{Error, Result};
use banded::Banded;
use faer::linalg::solvers::Solve;
use faer::sparse::linalg::solvers::{Llt, Lu, SymbolicLlt, SymbolicLu};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Mat, MatMut, Side};

/// Which linear solver to use for M a = b.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SolverKind {
    Auto,
    Banded,
    Sparse,
    Dense,
}

impl std::fmt::Display for SolverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            SolverKind::Auto => "auto",
            SolverKind::Banded => "banded",
            SolverKind::Sparse => "sparse",
            SolverKind::Dense => "dense",
        };
        f.write_str(s)
    }
}

/// Largest half-bandwidth for which `Auto` chooses the banded solver.
pub const AUTO_MAX_BANDWIDTH: usize = 24;

enum Plan {
    Banded(Box<Banded>),
    Sparse {
        symbolic: SymbolicLlt<usize>,
        symbolic_lu: Option<SymbolicLu<usize>>,
        factor: Option<SparseFactor>,
    },
    Dense {
        pinv: Option<Mat<f64>>,
    },
}

enum SparseFactor {
    Llt(Llt<usize, f64>),
    Lu(Box<Lu<usize, f64>>),
}

/// A linear solver bound to one sparsity pattern: symbolic work done once, numeric
/// factorisation per evaluation, any number of solves per factorisation.
pub struct Solver {
    kind: SolverKind,
    plan: Plan,
    work: Vec<f64>,
    /// True when the sparse Cholesky failed and LU was used for the current factorisation.
    pub used_lu_fallback: bool,
}

impl Solver {
    /// Plan a solver for the pattern; `graph_kind` lets the ring use its fold ordering.
    pub fn new(
        kind: SolverKind,
        pattern: &MassPattern,
        graph_kind: GraphKind,
        dof: usize,
    ) -> Result<Solver> {
        let n = pattern.n;
        let (ip, ix) = (&pattern.indptr, &pattern.indices);
        let resolved = match kind {
            SolverKind::Auto => {
                let b = best_banded(pattern, graph_kind, dof);
                if b.bw <= AUTO_MAX_BANDWIDTH {
                    return Ok(Solver {
                        kind: SolverKind::Banded,
                        plan: Plan::Banded(Box::new(b)),
                        work: vec![],
                        used_lu_fallback: false,
                    });
                }
                SolverKind::Sparse
            }
            k => k,
        };
        let plan = match resolved {
            SolverKind::Banded => Plan::Banded(Box::new(best_banded(pattern, graph_kind, dof))),
            SolverKind::Sparse => {
                let sym = SymbolicSparseColMatRef::new_checked(n, n, ip, None, ix);
                let symbolic = SymbolicLlt::try_new(sym, Side::Lower)
                    .map_err(|e| Error::input(format!("sparse symbolic analysis failed: {e:?}")))?;
                Plan::Sparse {
                    symbolic,
                    symbolic_lu: None,
                    factor: None,
                }
            }
            SolverKind::Dense => {
                if n > 20_000 {
                    return Err(Error::input(format!(
                        "the dense pseudo-inverse needs an {n}×{n} matrix ({:.1} GB); use --solver sparse",
                        (n * n * 8 * 4) as f64 / 1e9
                    )));
                }
                Plan::Dense { pinv: None }
            }
            SolverKind::Auto => unreachable!(),
        };
        Ok(Solver {
            kind: resolved,
            plan,
            work: vec![],
            used_lu_fallback: false,
        })
    }

    /// The solver actually in use (`Auto` resolved).
    pub fn kind(&self) -> SolverKind {
        self.kind
    }

    /// Half-bandwidth, when banded.
    pub fn bandwidth(&self) -> Option<usize> {
        match &self.plan {
            Plan::Banded(b) => Some(b.bw),
            _ => None,
        }
    }

    /// Numeric factorisation of M (CSR values in `pattern` order).
    pub fn factorize(&mut self, pattern: &MassPattern, values: &[f64]) -> Result<()> {
        let n = pattern.n;
        let (ip, ix) = (&pattern.indptr, &pattern.indices);
        if let Some(e) = values.iter().position(|v| !v.is_finite()) {
            let row = ip.partition_point(|&p| p <= e) - 1;
            return Err(Error::Singular(format!(
                "mass matrix entry ({row}, {}) is {} — the density is not finite at this state",
                ix[e], values[e]
            )));
        }
        self.used_lu_fallback = false;
        match &mut self.plan {
            Plan::Banded(b) => b.factorize(ip, ix, values),
            Plan::Sparse {
                symbolic,
                symbolic_lu,
                factor,
            } => {
                *factor = None;
                let sym = SymbolicSparseColMatRef::new_checked(n, n, ip, None, ix);
                let mat = SparseColMatRef::new(sym, values);
                match Llt::try_new_with_symbolic(symbolic.clone(), mat, Side::Lower) {
                    Ok(llt) => *factor = Some(SparseFactor::Llt(llt)),
                    Err(_) => {
                        if symbolic_lu.is_none() {
                            *symbolic_lu = Some(SymbolicLu::try_new(sym).map_err(|e| {
                                Error::input(format!("sparse LU symbolic analysis failed: {e:?}"))
                            })?);
                        }
                        let lu = Lu::try_new_with_symbolic(symbolic_lu.clone().unwrap(), mat).map_err(|e| {
                            Error::Singular(format!("sparse LU failed ({e:?}); try --solver dense for a pseudo-inverse"))
                        })?;
                        self.used_lu_fallback = true;
                        *factor = Some(SparseFactor::Lu(Box::new(lu)));
                    }
                }
                Ok(())
            }
            Plan::Dense { pinv } => {
                let mut m = Mat::<f64>::zeros(n, n);
                for r in 0..n {
                    for e in ip[r]..ip[r + 1] {
                        m[(r, ix[e])] = values[e];
                    }
                }
                let svd = m
                    .svd()
                    .map_err(|e| Error::Singular(format!("SVD did not converge: {e:?}")))?;
                *pinv = Some(svd.pseudoinverse());
                Ok(())
            }
        }
    }

    /// Solve M x = b in place with the current factorisation. Non-finite results (from a
    /// numerically singular M) are reported, not returned.
    pub fn solve_in_place(&mut self, x: &mut [f64]) -> Result<()> {
        match &self.plan {
            Plan::Banded(b) => b.solve_in_place(x, &mut self.work),
            Plan::Sparse { factor, .. } => {
                let n = x.len();
                let rhs = MatMut::from_column_major_slice_mut(x, n, 1);
                match factor.as_ref().expect("factorize before solve") {
                    SparseFactor::Llt(f) => f.solve_in_place(rhs),
                    SparseFactor::Lu(f) => f.solve_in_place(rhs),
                }
            }
            Plan::Dense { pinv } => {
                let p = pinv.as_ref().expect("factorize before solve");
                self.work.clear();
                self.work.extend_from_slice(x);
                let n = x.len();
                for (i, xi) in x.iter_mut().enumerate() {
                    let mut s = 0.0;
                    for j in 0..n {
                        s += p[(i, j)] * self.work[j];
                    }
                    *xi = s;
                }
            }
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Singular(format!(
                "the solve produced a non-finite acceleration at coordinate {i}; try --solver dense for a pseudo-inverse"
            )));
        }
        Ok(())
    }
}

/// The banded plan with the smallest bandwidth among natural, fold (rings) and RCM orderings.
fn best_banded(pattern: &MassPattern, graph_kind: GraphKind, dof: usize) -> Banded {
    let n = pattern.n;
    let (ip, ix) = (&pattern.indptr, &pattern.indices);
    let mut cands: Vec<Vec<usize>> = vec![(0..n).collect()];
    if graph_kind == GraphKind::Ring {
        cands.push(ordering::fold(n / dof, dof));
    }
    if !matches!(
        graph_kind,
        GraphKind::Ring | GraphKind::Chain | GraphKind::SingleNode
    ) {
        cands.push(ordering::rcm(n, ip, ix));
    }
    let best = cands
        .into_iter()
        .min_by_key(|p| {
            let mut iperm = vec![0; n];
            for (new, &old) in p.iter().enumerate() {
                iperm[old] = new;
            }
            banded::bandwidth(n, ip, ix, &iperm)
        })
        .unwrap();
    Banded::new(n, ip, ix, best)
}
