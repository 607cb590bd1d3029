//! The Euler–Lagrange solve (paper eq. 6): q̈ = M⁻¹(∂L/∂q − C q̇).
//!
//! [`Dynamics`] owns a Lagrangian, its mass-matrix pattern and a solver plan; every call
//! evaluates all site densities in parallel blocks, gathers M and b, factorises M once and
//! solves. One-off work (pattern, orderings, symbolic factorisation, buffers) happens in
//! [`Dynamics::new`].

pub mod batch;
pub mod minibatch;

use crate::assembly::MassPattern;
use crate::graph::GraphKind;
use crate::lagrangian::Lagrangian;
use crate::solve::{Solver, SolverKind};
use crate::{Error, Result};
use rayon::prelude::*;

/// Sites per density call: a block's columns form one GEMM per layer.
pub const SITE_BLOCK: usize = 64;

/// Accelerations, energy and local derivatives of a Lagrangian system.
pub struct Dynamics {
    pub lagrangian: Lagrangian,
    pub pattern: MassPattern,
    pub solver: Solver,
    /// Concatenated site records of every term (see [`crate::density::SiteLayout`]), filled by
    /// [`Dynamics::evaluate_sites`] (energies, variational integrator, training).
    pub derivs: Vec<f64>,
    /// Concatenated lean acceleration records (see [`crate::density::AccelLayout`]), filled by
    /// [`Dynamics::evaluate_sites_accel`] (the acceleration path).
    pub accel_recs: Vec<f64>,
    /// M's values in `pattern` CSR order.
    pub mass: Vec<f64>,
    /// b = ∂L/∂q − C q̇.
    pub rhs: Vec<f64>,
    /// Wall time of the phases of the last [`Dynamics::accelerations_into`] call.
    pub timings: PhaseTimes,
    /// Fixed (Dirichlet) coordinates, see [`Dynamics::with_fixed`].
    fixed: FixedCoords,
    /// Non-conservative forces (dissipation, inputs; docs/DESIGN.md §13), see
    /// [`Dynamics::with_forces`]. `None`: the conservative path, unchanged.
    pub forces: Option<crate::density::dissipation::Forces>,
    /// Time t of the next evaluation (for time-dependent inputs u(t)); integrators set it.
    pub time: f64,
    /// Workers and records of [`Dynamics::minibatch_forward`] (docs/DESIGN.md §19).
    minibatch: minibatch::Minibatch,
}

/// Held coordinates: after assembly their rows and columns of M become those of the identity
/// and their b entries zero, so q̈_j = 0 for a fixed j and the free equations are exactly the
/// Euler–Lagrange equations restricted to the free coordinates (docs/DESIGN.md §11.4).
#[derive(Clone, Debug, Default)]
struct FixedCoords {
    coords: Vec<usize>,
    /// Positions (in `mass`) of the off-diagonal entries of fixed rows and columns.
    zero: Vec<usize>,
    /// Positions of the diagonal entries of fixed rows.
    diag: Vec<usize>,
}

impl FixedCoords {
    /// Identity rows and columns in M (CSR values `mass`), zero entries in b.
    fn apply(&self, mass: &mut [f64], rhs: &mut [f64]) {
        for &k in &self.zero {
            mass[k] = 0.0;
        }
        for &k in &self.diag {
            mass[k] = 1.0;
        }
        for &j in &self.coords {
            rhs[j] = 0.0;
        }
    }
}

/// Seconds spent in each phase of one acceleration evaluation.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PhaseTimes {
    /// Site densities and their exact derivatives.
    pub sites: f64,
    /// Gathering M and b.
    pub assembly: f64,
    /// Numeric factorisation of M and the solve.
    pub solve: f64,
}

impl std::fmt::Debug for Dynamics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dynamics")
            .field("n_coords", &self.pattern.n)
            .field("nnz", &self.pattern.nnz())
            .field("solver", &self.solver.kind())
            .finish()
    }
}

impl Dynamics {
    /// Build the pattern and the solver plan (one-off set-up).
    pub fn new(
        lagrangian: Lagrangian,
        solver: SolverKind,
        graph_kind: GraphKind,
    ) -> Result<Dynamics> {
        if lagrangian.terms.is_empty() {
            return Err(Error::input("the Lagrangian has no terms"));
        }
        let pattern = MassPattern::new(&lagrangian)?;
        let solver = Solver::new(solver, &pattern, graph_kind, lagrangian.dof)?;
        // Zero-initialised (calloc): a buffer that is never filled costs no resident memory.
        let derivs = vec![0.0; pattern.derivs_len()];
        let accel_recs = vec![0.0; pattern.accel_len()];
        let mass = vec![0.0; pattern.nnz()];
        let rhs = vec![0.0; pattern.n];
        Ok(Dynamics {
            lagrangian,
            pattern,
            solver,
            derivs,
            accel_recs,
            mass,
            rhs,
            timings: PhaseTimes::default(),
            fixed: FixedCoords::default(),
            forces: None,
            time: 0.0,
            minibatch: Default::default(),
        })
    }

    /// Hold the coordinates `coords` fixed (Dirichlet boundary): their accelerations are zero
    /// and they exert no reaction on the free coordinates' equations (see [`FixedCoords`]).
    /// Velocities of fixed coordinates should be zero for the motion to keep them in place.
    pub fn with_fixed(mut self, coords: &[usize]) -> Result<Dynamics> {
        let n = self.pattern.n;
        let mut fixed = FixedCoords::default();
        let mut is_fixed = vec![false; n];
        for &j in coords {
            if j >= n {
                return Err(Error::input(format!(
                    "fixed coordinate {j} is outside 0..{n}"
                )));
            }
            is_fixed[j] = true;
        }
        if n > 0 && is_fixed.iter().all(|&f| f) {
            return Err(Error::input(
                "every coordinate is fixed: nothing is left to move",
            ));
        }
        let p = &self.pattern;
        for r in 0..n {
            for k in p.indptr[r]..p.indptr[r + 1] {
                let c = p.indices[k];
                if r == c && is_fixed[r] {
                    fixed.diag.push(k);
                } else if is_fixed[r] || is_fixed[c] {
                    fixed.zero.push(k);
                }
            }
        }
        fixed.coords = (0..n).filter(|&j| is_fixed[j]).collect();
        if fixed.diag.len() != fixed.coords.len() {
            return Err(Error::input(
                "a fixed coordinate has no diagonal entry in the mass matrix pattern",
            ));
        }
        self.fixed = fixed;
        Ok(self)
    }

    /// Add non-conservative forces: M q̈ = ∂L/∂q − C q̇ − ∂D/∂q̇ + B u(t) (docs/DESIGN.md §13).
    /// Empty forces leave the conservative path as it is.
    pub fn with_forces(mut self, forces: crate::density::dissipation::Forces) -> Result<Dynamics> {
        self.set_forces(forces)?;
        Ok(self)
    }

    /// Replace the non-conservative forces (see [`Dynamics::with_forces`]).
    pub fn set_forces(&mut self, forces: crate::density::dissipation::Forces) -> Result<()> {
        forces.check(self.n_coords())?;
        self.forces = (!forces.is_empty()).then_some(forces);
        Ok(())
    }

    /// Add the generalised force −∂D/∂q̇ + B u(t) to `self.rhs` (held coordinates stay 0).
    fn add_forces(&mut self, q: &[f64], v: &[f64]) {
        if let Some(f) = &self.forces {
            f.add_force(q, v, self.time, &mut self.rhs);
            for &j in &self.fixed.coords {
                self.rhs[j] = 0.0;
            }
        }
    }

    /// Dissipated and injected power at (q, q̇) and [`Dynamics::time`] (zero without forces).
    pub fn power(&self, q: &[f64], v: &[f64]) -> crate::density::dissipation::Power {
        self.forces
            .as_ref()
            .map(|f| f.power(q, v, self.time))
            .unwrap_or_default()
    }

    /// The fixed coordinates (sorted), see [`Dynamics::with_fixed`].
    pub fn fixed_coords(&self) -> &[usize] {
        &self.fixed.coords
    }

    fn apply_fixed(&mut self) {
        self.fixed.apply(&mut self.mass, &mut self.rhs);
    }

    pub fn n_coords(&self) -> usize {
        self.pattern.n
    }

    /// Evaluate every site's ρ, gradients, m_s and c_s·v_I at (q, v) into `self.derivs`.
    pub fn evaluate_sites(&mut self, q: &[f64], v: &[f64]) -> Result<()> {
        self.lagrangian.check_state(q, v)?;
        let mut rest = self.derivs.as_mut_slice();
        for term in &self.lagrangian.terms {
            let stride = term.density.layout().stride();
            let (mine, tail) = rest.split_at_mut(term.sites.len() * stride);
            rest = tail;
            eval_term(term, self.lagrangian.dof, q, v, mine, stride, false)?;
        }
        Ok(())
    }

    /// Evaluate every site's lean acceleration record (b contribution ∂ρ/∂q_I − c_s·v_I and,
    /// unless the term's mass is identically zero, m_s) at (q, v) into `self.accel_recs`.
    pub fn evaluate_sites_accel(&mut self, q: &[f64], v: &[f64]) -> Result<()> {
        self.lagrangian.check_state(q, v)?;
        let mut rest = self.accel_recs.as_mut_slice();
        for term in &self.lagrangian.terms {
            let stride = term.density.accel_layout().stride();
            let (mine, tail) = rest.split_at_mut(term.sites.len() * stride);
            rest = tail;
            eval_term(term, self.lagrangian.dof, q, v, mine, stride, true)?;
        }
        Ok(())
    }

    /// Gather M and b from the full site records ([`Dynamics::evaluate_sites`]).
    pub fn assemble(&mut self) {
        self.pattern
            .assemble(&self.derivs, &mut self.mass, &mut self.rhs);
        self.apply_fixed();
    }

    /// Gather M and b from the acceleration records ([`Dynamics::evaluate_sites_accel`]).
    pub fn assemble_accel(&mut self) {
        self.pattern
            .assemble_accel(&self.accel_recs, &mut self.mass, &mut self.rhs);
        self.apply_fixed();
    }

    /// Accelerations q̈ at (q, v) written into `a`.
    pub fn accelerations_into(&mut self, q: &[f64], v: &[f64], a: &mut [f64]) -> Result<()> {
        if a.len() != self.n_coords() {
            return Err(Error::input(format!(
                "acceleration buffer has {} values, need {}",
                a.len(),
                self.n_coords()
            )));
        }
        let t0 = std::time::Instant::now();
        self.evaluate_sites_accel(q, v)?;
        let t1 = std::time::Instant::now();
        self.assemble_accel();
        self.add_forces(q, v);
        let t2 = std::time::Instant::now();
        self.solver.factorize(&self.pattern, &self.mass)?;
        a.copy_from_slice(&self.rhs);
        let solved = self.solver.solve_in_place(a);
        let t3 = std::time::Instant::now();
        self.timings = PhaseTimes {
            sites: (t1 - t0).as_secs_f64(),
            assembly: (t2 - t1).as_secs_f64(),
            solve: (t3 - t2).as_secs_f64(),
        };
        solved
    }

    /// Accelerations q̈ at (q, v).
    pub fn accelerations(&mut self, q: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        let mut a = vec![0.0; self.n_coords()];
        self.accelerations_into(q, v, &mut a)?;
        Ok(a)
    }

    /// Sum over sites of a function of each site's record.
    fn site_sum(
        &self,
        f: impl Fn(&[f64], &[f64], crate::density::SiteLayout) -> f64 + Sync,
        v: &[f64],
    ) -> f64 {
        let d = self.lagrangian.dof;
        let mut total = 0.0;
        for (ti, term) in self.lagrangian.terms.iter().enumerate() {
            let lay = term.density.layout();
            let stride = lay.stride();
            let recs =
                &self.derivs[self.pattern.term_offsets[ti]..self.pattern.term_offsets[ti + 1]];
            total += recs
                .par_chunks(stride)
                .enumerate()
                .map(|(s, rec)| {
                    let vi: Vec<f64> = term
                        .sites
                        .neighbourhood(s)
                        .iter()
                        .flat_map(|&n| (0..d).map(move |c| v[n * d + c]))
                        .collect();
                    f(rec, &vi, lay)
                })
                .sum::<f64>();
        }
        total
    }

    /// L(q, v) = Σ_s ρ_s.
    pub fn lagrangian_value(&mut self, q: &[f64], v: &[f64]) -> Result<f64> {
        self.evaluate_sites(q, v)?;
        Ok(self.site_sum(|rec, _, _| rec[0], v))
    }

    /// Energy E = Σ_i v_i ∂L/∂v_i − L, conserved by the exact dynamics.
    pub fn energy(&mut self, q: &[f64], v: &[f64]) -> Result<f64> {
        self.evaluate_sites(q, v)?;
        Ok(self.site_sum(
            |rec, vi, lay| {
                let gv = &rec[lay.grad_v()..lay.grad_v() + lay.kd];
                gv.iter().zip(vi).map(|(g, v)| g * v).sum::<f64>() - rec[0]
            },
            v,
        ))
    }

    /// The assembled mass matrix as an sprs CSR matrix (after an evaluation).
    pub fn mass_matrix(&self) -> sprs::CsMat<f64> {
        let n = self.pattern.n;
        sprs::CsMat::new(
            (n, n),
            self.pattern.indptr.clone(),
            self.pattern.indices.clone(),
            self.mass.clone(),
        )
    }
}

/// Evaluate one term's sites in parallel blocks of [`SITE_BLOCK`] into `out` (`stride` values per
/// site): full records ([`crate::density::Density::eval_block`]) or, with `accel`, acceleration
/// records ([`crate::density::Density::eval_sites_accel`]). Each block's inputs are gathered into a
/// per-thread buffer and its outputs are checked for finiteness while still in cache; the first
/// non-finite site is reported by index and nodes.
#[allow(clippy::too_many_arguments)]
fn eval_term(
    term: &crate::lagrangian::Term,
    d: usize,
    q: &[f64],
    v: &[f64],
    out: &mut [f64],
    stride: usize,
    accel: bool,
) -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dens = term.density.as_ref();
    let p = dens.input_len();
    let sites = &term.sites;
    let bad = AtomicUsize::new(usize::MAX);
    out.par_chunks_mut(SITE_BLOCK * stride)
        .enumerate()
        .for_each_init(
            || vec![0.0; SITE_BLOCK * p],
            |x, (bi, out)| {
                let nb = out.len() / stride;
                let s0 = bi * SITE_BLOCK;
                if accel {
                    dens.eval_sites_accel(sites, q, v, s0, nb, x, out);
                } else {
                    crate::density::gather_inputs(sites, d, q, v, s0, nb, x);
                    dens.eval_block(&x[..nb * p], nb, out);
                }
                if let Some(i) = out.iter().position(|x| !x.is_finite()) {
                    bad.fetch_min(s0 + i / stride, Ordering::Relaxed);
                }
            },
        );
    let s = bad.into_inner();
    if s != usize::MAX {
        // Not a mass-matrix problem: the state is outside the density's domain.
        return Err(Error::Input(format!(
            "density '{}' is not finite at site {s} (nodes {:?}); the state may be outside its domain",
            dens.name(),
            term.sites.neighbourhood(s)
        )));
    }
    Ok(())
}
