//! Densities ρ(x_s) of a Lagrangian L = Σ_s ρ(x_s) and their exact local derivatives
//! (DESIGN §1–2).
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
pub mod fem;
pub mod mlp;

pub use analytic::{Ball, DoublePendulum, Relativistic, Wave1d, Wave1dStandard};
pub use fem::{FemNodeMass, FemTriangle};
pub use mlp::{wrap_period, Mlp, MlpDensity};

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
