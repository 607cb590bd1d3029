//! Densities ρ(x_s) of a Lagrangian L = Σ_s ρ(x_s) and their exact local derivatives
//! (docs/DESIGN.md §1–2).
//!
//! A site s has an ordered node tuple I_s of `arity` k nodes with `dof` d coordinates each, and
//! optional features f_s. Its local input is x_s = (q_I, v_I, f_s) of length 2kd + n_features,
//! node-major inside each block: q_I = (q_{I_0,0..d}, q_{I_1,0..d}, …).
//!
//! For every site a density returns ρ, ∂ρ/∂q_I, ∂ρ/∂v_I, the local mass block
//! m_s = ∂²ρ/∂v_I∂v_I and the mixed term c_s·v_I with c_s = ∂²ρ/∂v_I∂q_I — exactly what the
//! Euler–Lagrange assembly needs (the matrix C is never formed).

pub mod activation;
pub mod analytic;
mod contract512;
pub mod dissipation;
pub mod dissipation_matrix;
pub mod embed;
pub mod fem;
pub(crate) mod gemm512;
pub mod mlp;
pub mod phase_clock;
pub mod potential;
pub mod simd;
pub mod symmetric;

pub use analytic::{Ball, DoublePendulum, Relativistic, Wave1d, Wave1dStandard};
pub use fem::{FemNodeMass, FemTriangle};
pub use mlp::{wrap_period, Mlp, MlpDensity, Precision};
pub use potential::{NodeKinetic, PotentialInput, PotentialMlp, SpringEdge};

/// A Lagrangian density evaluated on blocks of sites.
pub trait Density: Send + Sync {
    /// Nodes per site, k.
    fn arity(&self) -> usize;
    /// Coordinates per node, d.
    fn dof(&self) -> usize;
    /// Extra per-site features appended to the input.
    fn n_features(&self) -> usize {
        0
    }
    /// Short human-readable name ("mlp 6-128-128-1", "wave1d", …).
    fn name(&self) -> String;
    /// Evaluate `nsites` sites. `x` is column-major `input_len() × nsites` (one column per site);
    /// `out` holds `nsites` records of [`SiteLayout::stride`] values each.
    fn eval_block(&self, x: &[f64], nsites: usize, out: &mut [f64]);

    /// True when m_s = ∂²ρ/∂v_I∂v_I is identically zero for every input (ρ at most linear in the
    /// velocities, e.g. a potential-energy term). [`crate::assembly::MassPattern`] then leaves the
    /// term's sites out of M's sparsity pattern (its ∂ρ/∂q − c_s v_I still enters b), so a
    /// stiffness-only term does not make M structurally non-diagonal. Default: false.
    fn mass_is_zero(&self) -> bool {
        false
    }

    /// Length of the local input x_s.
    fn input_len(&self) -> usize {
        2 * self.arity() * self.dof() + self.n_features()
    }
    /// Layout of one site's derivative record.
    fn layout(&self) -> SiteLayout {
        SiteLayout::new(self.arity() * self.dof())
    }

    /// Layout of one site's *acceleration* record (see [`AccelLayout`]): only what M and b need.
    fn accel_layout(&self) -> AccelLayout {
        AccelLayout {
            kd: self.arity() * self.dof(),
            with_mass: !self.mass_is_zero(),
        }
    }

    /// Evaluate `nsites` sites for an acceleration only: per site the b contribution
    /// ∂ρ/∂q_I − c_s·v_I (kd values) followed, unless [`Density::mass_is_zero`], by m_s (kd×kd,
    /// row-major) — [`AccelLayout::stride`] values per site, no ρ, no ∂ρ/∂v_I. Used by
    /// [`crate::dynamics::Dynamics::accelerations_into`]; the lean record keeps the memory
    /// traffic of cheap densities (e.g. the FEM stiffness triangles, 3 values instead of 19 per
    /// site) small. The default evaluates the full records ([`Density::eval_block`]) into a
    /// per-thread scratch buffer and compacts them; cheap closed-form densities override it.
    /// Acceleration records ([`Density::eval_block_accel`]) of sites `s0 .. s0 + nsites` of
    /// `sites`, read straight from the state: `x` is a scratch buffer of at least
    /// `nsites × input_len()` values. The default gathers the local inputs
    /// ([`gather_inputs`]) and calls [`Density::eval_block_accel`]; a cheap density may override
    /// it to skip the copy.
    #[allow(clippy::too_many_arguments)]
    fn eval_sites_accel(
        &self,
        sites: &crate::sites::Sites,
        q: &[f64],
        v: &[f64],
        s0: usize,
        nsites: usize,
        x: &mut [f64],
        out: &mut [f64],
    ) {
        let p = self.input_len();
        gather_inputs(sites, self.dof(), q, v, s0, nsites, x);
        self.eval_block_accel(&x[..nsites * p], nsites, out);
    }

    /// Accelerations of a batch of states of a system that is one site of this density holding
    /// every coordinate in order, with no features and no non-conservative forces: `q`, `v`,
    /// `out` are B × kd row-major and q̈ = m_s⁻¹ b_s per state (docs/DESIGN.md §18.1). `None`
    /// (the default) when the density has no such fused path, else `Some(first)`: the index of
    /// the first state whose mass block is not clearly invertible (relative pivot 1e-12) or whose
    /// result is not finite (the states before it are written), B when every state is.
    fn site_accelerations(&self, _q: &[f64], _v: &[f64], _out: &mut [f64]) -> Option<usize> {
        None
    }

    fn eval_block_accel(&self, x: &[f64], nsites: usize, out: &mut [f64]) {
        let lay = self.layout();
        let al = self.accel_layout();
        let (stride, astride, kd) = (lay.stride(), al.stride(), lay.kd);
        SCRATCH.with(|cell| {
            let mut full = cell.borrow_mut();
            if full.len() < nsites * stride {
                full.resize(nsites * stride, 0.0);
            }
            let full = &mut full[..nsites * stride];
            self.eval_block(x, nsites, full);
            for (r, o) in full.chunks_exact(stride).zip(out.chunks_exact_mut(astride)) {
                for i in 0..kd {
                    o[i] = r[lay.grad_q() + i] - r[lay.cv() + i];
                }
                if al.with_mass {
                    o[kd..].copy_from_slice(&r[lay.mass()..lay.mass() + kd * kd]);
                }
            }
        });
    }
}

/// Gather the local inputs x_s = (q_I, v_I, f_s) of sites `s0 .. s0 + nb` into `x` (column-major,
/// one column of `input_len` values per site).
pub fn gather_inputs(
    sites: &crate::sites::Sites,
    d: usize,
    q: &[f64],
    v: &[f64],
    s0: usize,
    nb: usize,
    x: &mut [f64],
) {
    let (k, nf) = (sites.arity, sites.n_features);
    let kd = k * d;
    let p = 2 * kd + nf;
    for (j, col) in x.chunks_exact_mut(p).take(nb).enumerate() {
        let s = s0 + j;
        for (a, &node) in sites.neighbourhood(s).iter().enumerate() {
            for c in 0..d {
                col[a * d + c] = q[node * d + c];
                col[kd + a * d + c] = v[node * d + c];
            }
        }
        col[2 * kd..].copy_from_slice(sites.features_of(s));
    }
}

thread_local! {
    /// Per-thread scratch of the default [`Density::eval_block_accel`] (no allocation per call).
    static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Offsets inside one site's acceleration record: `[∂ρ/∂q_I − c_s·v_I (kd), m_s (kd×kd)]`, the
/// mass block only when `with_mass` (a term whose m_s is identically zero stores kd values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccelLayout {
    pub kd: usize,
    pub with_mass: bool,
}

impl AccelLayout {
    /// Offset of the b contribution.
    pub const RHS: usize = 0;
    /// Offset of m_s (valid when `with_mass`).
    pub fn mass(&self) -> usize {
        self.kd
    }
    /// Values per site record.
    pub fn stride(&self) -> usize {
        if self.with_mass {
            self.kd + self.kd * self.kd
        } else {
            self.kd
        }
    }
}

/// Offsets inside one site's derivative record:
/// `[ρ, ∂ρ/∂q_I (kd), ∂ρ/∂v_I (kd), m_s (kd×kd, row-major), c_s·v_I (kd)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteLayout {
    /// kd: local coordinates per site.
    pub kd: usize,
}

impl SiteLayout {
    pub fn new(kd: usize) -> Self {
        SiteLayout { kd }
    }
    pub const RHO: usize = 0;
    pub fn grad_q(&self) -> usize {
        1
    }
    pub fn grad_v(&self) -> usize {
        1 + self.kd
    }
    pub fn mass(&self) -> usize {
        1 + 2 * self.kd
    }
    pub fn cv(&self) -> usize {
        1 + 2 * self.kd + self.kd * self.kd
    }
    /// Values per site record.
    pub fn stride(&self) -> usize {
        1 + 3 * self.kd + self.kd * self.kd
    }
}

/// Evaluate a density on a single site (convenience for tests and tiny systems).
pub fn eval_one(density: &dyn Density, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; density.layout().stride()];
    density.eval_block(x, 1, &mut out);
    out
}
