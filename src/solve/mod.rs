//! Solving M a = b for the accelerations.
//!
//! * [`SolverKind::Banded`]: banded LDLᵀ under the ring's fold ordering, the natural order
//!   (chains, single-node systems: a dense LDLᵀ), or reverse Cuthill–McKee — O(N w²).
//! * [`SolverKind::Sparse`]: faer's sparse LDLᵀ (simplicial or supernodal, chosen by faer's
//!   symbolic analysis) with an AMD fill-reducing ordering; the symbolic analysis, the factor's
//!   storage and the workspace are set up once per pattern. LDLᵀ needs no positive
//!   definiteness; if it meets a zero pivot, or the solution's relative residual exceeds 1e−8,
//!   the solve is redone with sparse LU with partial pivoting (COLAMD ordering).
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
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::ldlt::factor::LdltRegularization;
use faer::linalg::solvers::Solve;
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, LdltRef, SymbolicCholesky, SymmetricOrdering,
};
use faer::sparse::linalg::solvers::{Lu, SymbolicLu};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, Mat, MatMut, Par, Side};

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
    Sparse(Box<SparsePlan>),
    Dense { pinv: Option<Mat<f64>> },
}

struct SparsePlan {
    symbolic: SymbolicCholesky<usize>,
    /// Values of the L and D factors (faer's layout), reused between factorisations.
    l_values: Vec<f64>,
    stack: MemBuffer,
    symbolic_lu: Option<SymbolicLu<usize>>,
    /// Set when the current factorisation is LU (the LDLᵀ fallback).
    lu: Option<Lu<usize, f64>>,
    ldlt_ok: bool,
    /// M's values, kept for the residual check and the LU fallback.
    values: Vec<f64>,
}

/// Relative residual above which a sparse LDLᵀ solve is redone with pivoted LU.
pub const RESIDUAL_TOL: f64 = 1e-8;

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
                let symbolic = factorize_symbolic_cholesky(
                    sym,
                    Side::Lower,
                    SymmetricOrdering::Amd,
                    Default::default(),
                )
                .map_err(|e| Error::input(format!("sparse symbolic analysis failed: {e:?}")))?;
                let req = symbolic
                    .factorize_numeric_ldlt_scratch::<f64>(Par::Seq, Default::default())
                    .or(symbolic.solve_in_place_scratch::<f64>(1, Par::Seq));
                let stack = MemBuffer::try_new(req).map_err(|_| {
                    Error::input("out of memory for the sparse factorisation workspace")
                })?;
                let l_values = vec![0.0; symbolic.len_val()];
                Plan::Sparse(Box::new(SparsePlan {
                    symbolic,
                    l_values,
                    stack,
                    symbolic_lu: None,
                    lu: None,
                    ldlt_ok: false,
                    values: vec![],
                }))
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
            Plan::Sparse(sp) => {
                sp.lu = None;
                sp.values.clear();
                sp.values.extend_from_slice(values);
                let sym = SymbolicSparseColMatRef::new_checked(n, n, ip, None, ix);
                let mat = SparseColMatRef::new(sym, values);
                let res = sp.symbolic.factorize_numeric_ldlt(
                    &mut sp.l_values,
                    mat,
                    Side::Lower,
                    LdltRegularization::default(),
                    Par::Seq,
                    MemStack::new(&mut sp.stack),
                    Default::default(),
                );
                sp.ldlt_ok = res.is_ok();
                if !sp.ldlt_ok {
                    sp.factorize_lu(n, ip, ix)?;
                    self.used_lu_fallback = true;
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
    pub fn solve_in_place(&mut self, pattern: &MassPattern, x: &mut [f64]) -> Result<()> {
        match &mut self.plan {
            Plan::Banded(b) => b.solve_in_place(x, &mut self.work),
            Plan::Sparse(sp) => {
                let (ip, ix) = (&pattern.indptr, &pattern.indices);
                self.work.clear();
                self.work.extend_from_slice(x);
                if sp.ldlt_ok {
                    sp.solve_ldlt(x);
                    if residual(ip, ix, &sp.values, x, &self.work) > RESIDUAL_TOL {
                        sp.factorize_lu(pattern.n, ip, ix)?;
                        self.used_lu_fallback = true;
                        x.copy_from_slice(&self.work);
                    }
                }
                if let Some(lu) = &sp.lu {
                    let n = x.len();
                    lu.solve_in_place(MatMut::from_column_major_slice_mut(x, n, 1));
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

impl SparsePlan {
    fn solve_ldlt(&mut self, x: &mut [f64]) {
        let n = x.len();
        LdltRef::new(&self.symbolic, &self.l_values).solve_in_place_with_conj(
            Conj::No,
            MatMut::from_column_major_slice_mut(x, n, 1),
            Par::Seq,
            MemStack::new(&mut self.stack),
        );
    }

    fn factorize_lu(&mut self, n: usize, ip: &[usize], ix: &[usize]) -> Result<()> {
        let sym = SymbolicSparseColMatRef::new_checked(n, n, ip, None, ix);
        if self.symbolic_lu.is_none() {
            let s = SymbolicLu::try_new(sym)
                .map_err(|e| Error::input(format!("sparse LU symbolic analysis failed: {e:?}")))?;
            self.symbolic_lu = Some(s);
        }
        let mat = SparseColMatRef::new(sym, &self.values);
        let lu = Lu::try_new_with_symbolic(self.symbolic_lu.clone().expect("set above"), mat)
            .map_err(|e| {
                Error::Singular(format!(
                    "sparse LU failed ({e:?}); try --solver dense for a pseudo-inverse"
                ))
            })?;
        self.lu = Some(lu);
        Ok(())
    }
}

/// ‖M x − b‖∞ / (‖M‖∞‖x‖∞ + ‖b‖∞) for CSR M.
fn residual(ip: &[usize], ix: &[usize], vals: &[f64], x: &[f64], b: &[f64]) -> f64 {
    let (mut r, mut mnorm) = (0.0f64, 0.0f64);
    for i in 0..b.len() {
        let (mut s, mut row) = (0.0, 0.0);
        for e in ip[i]..ip[i + 1] {
            s += vals[e] * x[ix[e]];
            row += vals[e].abs();
        }
        r = r.max((s - b[i]).abs());
        mnorm = mnorm.max(row);
    }
    let xn = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let bn = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if r.is_finite() {
        r / (mnorm * xn + bn).max(f64::MIN_POSITIVE)
    } else {
        f64::INFINITY
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
