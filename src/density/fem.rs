//! Analytic P1 finite-element densities for the wave equation on a triangle mesh (c = 1, free
//! boundary): the ground truth of the mesh experiments, written as site densities so the engine
//! computes −M⁻¹Kφ through the same assembly and solve as a learned Lagrangian.
//!
//! L = ½ φ̇ᵀ M φ̇ − ½ φᵀ K φ with lumped mass M (each triangle gives A_T/3 to each corner) and
//! cotangent stiffness K (see [`crate::mesh::fem`]). Two ways of splitting it into sites:
//!
//! * [`FemTriangle`] with `kinetic = true`: one family of triangle sites,
//!   ρ_T = ½ Σ_i (A_T/3) φ̇_i² − ½ φ_Tᵀ K_T φ_T. Literal, but M's *pattern* is then the mesh
//!   adjacency (each triangle couples its three corners) although its off-diagonal values are 0.
//! * [`FemNodeMass`] (node sites, ½ m_i φ̇_i²) plus [`FemTriangle`] with `kinetic = false`
//!   (stiffness only, [`Density::mass_is_zero`] = true). The assembly leaves the triangle terms
//!   out of M's pattern, M is structurally diagonal and the solve is O(n). This is what
//!   [`crate::systems::wave_mesh`] uses.

use super::{AccelLayout, Density, SiteLayout};

/// Number of features of a kinetic [`FemTriangle`] site: the triangle's area A_T and the three
/// off-diagonal entries of its local stiffness, (A_T, K01, K12, K02). P1 stiffness rows sum to
/// zero, so K_ii = −Σ_{j≠i} K_ij needs no storage. A stiffness-only triangle takes the last three
/// ([`FEM_STIFFNESS_FEATURES`]).
pub const FEM_TRIANGLE_FEATURES: usize = 4;
/// Features of a stiffness-only [`FemTriangle`] site: (K01, K12, K02).
pub const FEM_STIFFNESS_FEATURES: usize = 3;

/// Triangle features [A_T, K01, K12, K02] for corners (p0, p1, p2).
pub fn fem_triangle_features(p0: [f64; 2], p1: [f64; 2], p2: [f64; 2]) -> [f64; 4] {
    let k = crate::mesh::fem::local_stiffness(p0, p1, p2);
    [
        crate::mesh::fem::local_area(p0, p1, p2),
        k[0][1],
        k[1][2],
        k[0][2],
    ]
}

/// ∂(−½ φ_Tᵀ K_T φ_T)/∂φ_T from the off-diagonal stiffness (K01, K12, K02) in difference form
/// (exactly invariant under φ → φ + c), and −½ φ_Tᵀ K_T φ_T itself.
#[inline(always)]
fn stiffness_force(phi: &[f64], k: &[f64]) -> ([f64; 3], f64) {
    let (d01, d12, d02) = (phi[1] - phi[0], phi[2] - phi[1], phi[2] - phi[0]);
    let f = [
        -(k[0] * d01 + k[2] * d02),
        -(-k[0] * d01 + k[1] * d12),
        -(-k[2] * d02 - k[1] * d12),
    ];
    // φᵀKφ = −Σ_{i<j} K_ij (φ_i − φ_j)²
    let pot = -(k[0] * d01 * d01 + k[1] * d12 * d12 + k[2] * d02 * d02);
    (f, -0.5 * pot)
}

/// Triangle site density (arity 3, dof 1): ρ_T = ½ Σ_i (A_T/3) φ̇_i² − ½ φ_Tᵀ K_T φ_T when
/// `kinetic` (features [`fem_triangle_features`]), else only −½ φ_Tᵀ K_T φ_T (features
/// (K01, K12, K02), [`FEM_STIFFNESS_FEATURES`]).
#[derive(Clone, Copy, Debug)]
pub struct FemTriangle {
    pub kinetic: bool,
}

/// Node site density (arity 1, dof 1, one feature m_i = lumped mass): ρ_i = ½ m_i φ̇_i².
#[derive(Clone, Copy, Debug)]
pub struct FemNodeMass;

impl Density for FemTriangle {
    fn arity(&self) -> usize {
        3
    }
    fn dof(&self) -> usize {
        1
    }
    fn n_features(&self) -> usize {
        if self.kinetic {
            FEM_TRIANGLE_FEATURES
        } else {
            FEM_STIFFNESS_FEATURES
        }
    }
    fn name(&self) -> String {
        if self.kinetic {
            "P1 FEM triangle (lumped mass + cotangent stiffness)".into()
        } else {
            "P1 FEM triangle stiffness".into()
        }
    }
    fn mass_is_zero(&self) -> bool {
        !self.kinetic
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let lay = self.layout();
        let stride = lay.stride();
        let p = self.input_len();
        let k0 = if self.kinetic { 7 } else { 6 };
        for (xs, r) in x.chunks_exact(p).zip(out.chunks_exact_mut(stride)).take(nb) {
            r.fill(0.0);
            let (force, mut rho) = stiffness_force(&xs[0..3], &xs[k0..k0 + 3]);
            r[lay.grad_q()..lay.grad_q() + 3].copy_from_slice(&force);
            if self.kinetic {
                let (vel, m) = (&xs[3..6], xs[6] / 3.0);
                for i in 0..3 {
                    rho += 0.5 * m * vel[i] * vel[i];
                    r[lay.grad_v() + i] = m * vel[i];
                    r[lay.mass() + i * 3 + i] = m;
                }
            }
            r[SiteLayout::RHO] = rho;
        }
    }
    fn eval_sites_accel(
        &self,
        sites: &crate::sites::Sites,
        q: &[f64],
        v: &[f64],
        s0: usize,
        nb: usize,
        x: &mut [f64],
        out: &mut [f64],
    ) {
        if self.kinetic {
            let p = self.input_len();
            super::gather_inputs(sites, 1, q, v, s0, nb, x);
            return self.eval_block_accel(&x[..nb * p], nb, out);
        }
        // Stiffness only: read φ and (K01, K12, K02) in place, no input copy.
        let nodes = &sites.nodes[3 * s0..3 * (s0 + nb)];
        let feats = &sites.features[3 * s0..3 * (s0 + nb)];
        for ((tri, k), r) in nodes
            .chunks_exact(3)
            .zip(feats.chunks_exact(3))
            .zip(out.chunks_exact_mut(3))
        {
            let phi = [q[tri[0]], q[tri[1]], q[tri[2]]];
            let (force, _) = stiffness_force(&phi, k);
            r.copy_from_slice(&force);
        }
    }
    fn eval_block_accel(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let al = self.accel_layout();
        let stride = al.stride();
        let p = self.input_len();
        let k0 = if self.kinetic { 7 } else { 6 };
        for (xs, r) in x.chunks_exact(p).zip(out.chunks_exact_mut(stride)).take(nb) {
            let (force, _) = stiffness_force(&xs[0..3], &xs[k0..k0 + 3]);
            r[AccelLayout::RHS..AccelLayout::RHS + 3].copy_from_slice(&force);
            if self.kinetic {
                let m = xs[6] / 3.0;
                let mb = &mut r[al.mass()..al.mass() + 9];
                mb.fill(0.0);
                mb[0] = m;
                mb[4] = m;
                mb[8] = m;
            }
        }
    }
}

impl Density for FemNodeMass {
    fn arity(&self) -> usize {
        1
    }
    fn dof(&self) -> usize {
        1
    }
    fn n_features(&self) -> usize {
        1
    }
    fn name(&self) -> String {
        "P1 FEM lumped node mass".into()
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let lay = self.layout();
        let stride = lay.stride();
        for s in 0..nb {
            let (v, m) = (x[s * 3 + 1], x[s * 3 + 2]);
            let r = &mut out[s * stride..(s + 1) * stride];
            r.fill(0.0);
            r[SiteLayout::RHO] = 0.5 * m * v * v;
            r[lay.grad_v()] = m * v;
            r[lay.mass()] = m;
        }
    }
    fn eval_sites_accel(
        &self,
        sites: &crate::sites::Sites,
        _q: &[f64],
        _v: &[f64],
        s0: usize,
        nb: usize,
        _x: &mut [f64],
        out: &mut [f64],
    ) {
        // [b contribution (∂ρ/∂q = 0), m_i]: the record is the site's feature.
        for (r, &m) in out.chunks_exact_mut(2).zip(&sites.features[s0..s0 + nb]) {
            r[0] = 0.0;
            r[1] = m;
        }
    }
    fn eval_block_accel(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        // [b contribution (∂ρ/∂q = 0), m_i]
        for (xs, r) in x.chunks_exact(3).zip(out.chunks_exact_mut(2)).take(nb) {
            r[0] = 0.0;
            r[1] = xs[2];
        }
    }
}
