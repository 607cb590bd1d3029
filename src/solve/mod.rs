//! Solving M a = b for the accelerations.
//!
//! * [`SolverKind::Banded`]: banded LDLᵀ under the ring's fold ordering, the natural order
//!   (chains, single-node systems: a dense LDLᵀ), or reverse Cuthill–McKee — O(N w²).
//! * [`SolverKind::Sparse`]: faer's sparse Cholesky (supernodal or simplicial, faer's choice)
//!   with an AMD fill-reducing ordering; symbolic analysis, the factor's storage and the
//!   workspace are set up once per pattern. If M is not positive definite (an untrained MLP) it
//!   tries an unpivoted sparse LDLᵀ on the same structure, accepted only when it reproduces a
//!   test solution to [`LDLT_CHECK_TOL`], and otherwise falls back to sparse LU with partial
//!   pivoting (COLAMD ordering).
//! * [`SolverKind::Dense`]: the paper's baseline, a dense SVD pseudo-inverse (singular values
//!   below N·ε·σ_max are dropped), O(N³).
//!
//! `Auto` picks a diagonal solve (banded, half-width 0, natural order) when M is structurally
//! diagonal, e.g. the lumped-mass FEM density on a mesh, else banded when the best ordering's half-bandwidth is at most 24 coordinates, else
//! sparse. A singular M is a [`SolveError`] naming the coordinate, never a silent NaN; the
//! dense pseudo-inverse is the documented way to get least-squares accelerations anyway.

mod error;
pub use error::SolveError;

pub mod banded;
pub mod eigen;
pub mod ordering;

pub use eigen::sym_eigen;

use crate::assembly::MassPattern;
use crate::graph::GraphKind;
use crate::{Error, Result};
use banded::Banded;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::solvers::Solve;
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, LdltRef, LltRef, SymbolicCholesky,
    SymmetricOrdering,
};
use faer::sparse::linalg::solvers::{Lu, SymbolicLu};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, Mat, MatMut, Side};

/// Which linear solver to use for M a = b.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverKind {
    Auto,
    Banded,
    Sparse,
    Dense,
}

crate::named!(SolverKind {
    Auto => "auto": "diagonal when M is, banded when its half-bandwidth is ≤ 24, else sparse",
    Banded => "banded": "banded LDLᵀ under a bandwidth-reducing ordering, O(N w²)",
    Sparse => "sparse": "sparse Cholesky with an AMD ordering (LDLᵀ / LU fallbacks)",
    Dense => "dense": "the paper's dense SVD pseudo-inverse, O(N³)",
});

/// Largest half-bandwidth for which `Auto` chooses the banded solver.
pub const AUTO_MAX_BANDWIDTH: usize = 24;

enum Plan {
    Banded(Banded),
    Sparse {
        symbolic: Box<SymbolicCholesky<usize>>,
        /// Values of the Cholesky factor L (`symbolic.len_val()`), reused across evaluations.
        l_values: Vec<f64>,
        scratch: MemBuffer,
        symbolic_lu: Option<SymbolicLu<usize>>,
        factor: Option<SparseFactor>,
        /// Set once the Cholesky has failed on this pattern (M indefinite): later
        /// factorisations go straight to the checked LDLᵀ instead of repeating a failing LLᵀ.
        skip_llt: bool,
    },
    Dense {
        pinv: Option<Mat<f64>>,
    },
}

enum SparseFactor {
    /// The Cholesky factor is in `l_values`.
    Llt,
    /// An LDLᵀ factor (no pivoting, same symbolic structure) is in `l_values`.
    Ldlt,
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
    /// True when the sparse Cholesky failed (M not positive definite) and the unpivoted sparse
    /// LDLᵀ was used for the current factorisation.
    pub used_ldlt: bool,
}

/// Relative forward error under which an unpivoted sparse LDLᵀ is trusted (checked by solving
/// M x = M x₀ for a fixed x₀ after every LDLᵀ factorisation; otherwise sparse LU is used).
pub const LDLT_CHECK_TOL: f64 = 1e-8;

fn ldlt_is_accurate(
    symbolic: &SymbolicCholesky<usize>,
    l_values: &[f64],
    scratch: &mut MemBuffer,
    ip: &[usize],
    ix: &[usize],
    values: &[f64],
) -> bool {
    let n = ip.len() - 1;
    let x0: Vec<f64> = (0..n)
        .map(|i| 1.0 + ((i * 7919) % 17) as f64 / 17.0)
        .collect();
    let mut b = vec![0.0; n];
    for r in 0..n {
        b[r] = (ip[r]..ip[r + 1]).map(|e| values[e] * x0[ix[e]]).sum();
    }
    LdltRef::<usize, f64>::new(symbolic, l_values).solve_in_place_with_conj(
        Conj::No,
        MatMut::from_column_major_slice_mut(&mut b, n, 1),
        faer::get_global_parallelism(),
        MemStack::new(scratch),
    );
    let num: f64 = b.iter().zip(&x0).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = x0.iter().map(|y| y * y).sum();
    num.is_finite() && (num / den).sqrt() < LDLT_CHECK_TOL
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
                // Structurally diagonal M (e.g. lumped-mass FEM): banded with half-width 0 in
                // the natural order is a plain O(n) diagonal solve; skip the ordering search.
                let b = if pattern.is_diagonal() {
                    Banded::new(n, ip, ix, (0..n).collect())
                } else {
                    best_banded(pattern, graph_kind, dof)
                };
                if b.bw <= AUTO_MAX_BANDWIDTH {
                    return Ok(Solver {
                        kind: SolverKind::Banded,
                        plan: Plan::Banded(b),
                        work: vec![],
                        used_lu_fallback: false,
                        used_ldlt: false,
                    });
                }
                SolverKind::Sparse
            }
            k => k,
        };
        let plan = match resolved {
            SolverKind::Banded => Plan::Banded(best_banded(pattern, graph_kind, dof)),
            SolverKind::Sparse => {
                let sym = SymbolicSparseColMatRef::new_checked(n, n, ip, None, ix);
                let symbolic = factorize_symbolic_cholesky(
                    sym,
                    Side::Lower,
                    SymmetricOrdering::Amd,
                    CholeskySymbolicParams::default(),
                )
                .map_err(|e| Error::input(format!("sparse symbolic analysis failed: {e:?}")))?;
                let par = faer::get_global_parallelism();
                let req = symbolic
                    .factorize_numeric_llt_scratch::<f64>(par, Default::default())
                    .or(symbolic.factorize_numeric_ldlt_scratch::<f64>(par, Default::default()))
                    .or(symbolic.solve_in_place_scratch::<f64>(1, par));
                let scratch = MemBuffer::try_new(req).map_err(|e| {
                    Error::input(format!("cannot allocate sparse Cholesky workspace: {e:?}"))
                })?;
                Plan::Sparse {
                    l_values: vec![0.0; symbolic.len_val()],
                    symbolic: Box::new(symbolic),
                    scratch,
                    symbolic_lu: None,
                    factor: None,
                    skip_llt: false,
                }
            }
            SolverKind::Dense => {
                if n > 20_000 {
                    return Err(Error::input(format!(
                        "the dense pseudo-inverse needs an {n}×{n} matrix ({:.1} GB); use the sparse solver (SolverKind::Sparse)",
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
            used_ldlt: false,
        })
    }

    /// A second solver for the same pattern (same kind and ordering, no factorisation yet):
    /// the banded plan is copied, the sparse one re-analysed. Used by
    /// [`crate::dynamics::Dynamics::minibatch_forward`] to factorise several samples' M at once
    /// (docs/DESIGN.md §19).
    pub fn replicate(&self, pattern: &MassPattern) -> Result<Solver> {
        let plan = match &self.plan {
            Plan::Banded(b) => Plan::Banded(b.clone()),
            Plan::Dense { .. } => Plan::Dense { pinv: None },
            Plan::Sparse { .. } => {
                return Solver::new(SolverKind::Sparse, pattern, GraphKind::General, 1)
            }
        };
        Ok(Solver {
            kind: self.kind,
            plan,
            work: vec![],
            used_lu_fallback: false,
            used_ldlt: false,
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

    /// Stored entries of the factor (lower triangle incl. diagonal, after fill-in) — the
    /// sparse Cholesky factor's values (supernodal storage counts its dense blocks), the band
    /// (n·(w+1)) or the dense pseudo-inverse (n²).
    pub fn factor_nnz(&self) -> usize {
        match &self.plan {
            Plan::Banded(b) => b.perm.len() * (b.bw + 1),
            Plan::Sparse { symbolic, .. } => symbolic.len_val(),
            Plan::Dense { pinv } => pinv.as_ref().map_or(0, |p| p.nrows() * p.nrows()),
        }
    }

    /// For the sparse plan: whether faer chose its supernodal (true) or simplicial (false)
    /// Cholesky.
    pub fn supernodal(&self) -> Option<bool> {
        match &self.plan {
            Plan::Sparse { symbolic, .. } => Some(matches!(
                symbolic.raw(),
                faer::sparse::linalg::cholesky::SymbolicCholeskyRaw::Supernodal(_)
            )),
            _ => None,
        }
    }

    /// Numeric factorisation of M (CSR values in `pattern` order).
    pub fn factorize(&mut self, pattern: &MassPattern, values: &[f64]) -> Result<()> {
        let n = pattern.n;
        let (ip, ix) = (&pattern.indptr, &pattern.indices);
        if let Some(e) = values.iter().position(|v| !v.is_finite()) {
            let row = ip.partition_point(|&p| p <= e) - 1;
            return Err(Error::Input(format!(
                "mass matrix entry ({row}, {}) is {} — the density is not finite at this state",
                ix[e], values[e]
            )));
        }
        self.used_lu_fallback = false;
        self.used_ldlt = false;
        match &mut self.plan {
            Plan::Banded(b) => b.factorize(ip, ix, values),
            Plan::Sparse {
                symbolic,
                l_values,
                scratch,
                symbolic_lu,
                factor,
                skip_llt,
            } => {
                *factor = None;
                let sym = SymbolicSparseColMatRef::new_checked(n, n, ip, None, ix);
                let mat = SparseColMatRef::new(sym, values);
                let par = faer::get_global_parallelism();
                let llt_ok = !*skip_llt
                    && symbolic
                        .factorize_numeric_llt::<f64>(
                            l_values,
                            mat,
                            Side::Lower,
                            Default::default(),
                            par,
                            MemStack::new(scratch),
                            Default::default(),
                        )
                        .is_ok();
                *skip_llt = !llt_ok;
                if llt_ok {
                    *factor = Some(SparseFactor::Llt);
                } else if symbolic
                    .factorize_numeric_ldlt::<f64>(
                        l_values,
                        mat,
                        Side::Lower,
                        Default::default(),
                        par,
                        MemStack::new(scratch),
                        Default::default(),
                    )
                    .is_ok()
                    && ldlt_is_accurate(symbolic, l_values, scratch, ip, ix, values)
                {
                    // M indefinite (e.g. an untrained MLP): LDLᵀ with the same symbolic
                    // structure, accepted only if it reproduces a test solution.
                    self.used_ldlt = true;
                    *factor = Some(SparseFactor::Ldlt);
                } else {
                    {
                        if symbolic_lu.is_none() {
                            *symbolic_lu = Some(SymbolicLu::try_new(sym).map_err(|e| {
                                Error::input(format!("sparse LU symbolic analysis failed: {e:?}"))
                            })?);
                        }
                        let lu = Lu::try_new_with_symbolic(symbolic_lu.clone().unwrap(), mat)
                            .map_err(|e| SolveError::LuFailed {
                                detail: format!("{e:?}"),
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
                let svd = m.svd().map_err(|e| SolveError::SvdFailed {
                    detail: format!("{e:?}"),
                })?;
                *pinv = Some(svd.pseudoinverse());
                Ok(())
            }
        }
    }

    /// Solve M x = b in place with the current factorisation. Non-finite results (from a
    /// numerically singular M) are reported, not returned.
    pub fn solve_in_place(&mut self, x: &mut [f64]) -> Result<()> {
        match &mut self.plan {
            Plan::Banded(b) => b.solve_in_place(x, &mut self.work),
            Plan::Sparse {
                factor,
                symbolic,
                l_values,
                scratch,
                ..
            } => {
                let n = x.len();
                let rhs = MatMut::from_column_major_slice_mut(x, n, 1);
                match factor.as_ref().expect("factorize before solve") {
                    SparseFactor::Llt => LltRef::<usize, f64>::new(symbolic, l_values.as_slice())
                        .solve_in_place_with_conj(
                            Conj::No,
                            rhs,
                            faer::get_global_parallelism(),
                            MemStack::new(scratch),
                        ),
                    SparseFactor::Ldlt => LdltRef::<usize, f64>::new(symbolic, l_values.as_slice())
                        .solve_in_place_with_conj(
                            Conj::No,
                            rhs,
                            faer::get_global_parallelism(),
                            MemStack::new(scratch),
                        ),
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
            return Err(SolveError::NonFiniteSolution { coordinate: i }.into());
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
