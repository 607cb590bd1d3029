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

use super::{Density, SiteLayout};

/// Number of features of a [`FemTriangle`] site: the triangle's area A_T and the six unique
/// entries of its local stiffness K_T: (K00, K01, K02, K11, K12, K22).
pub const FEM_TRIANGLE_FEATURES: usize = 7;

/// Triangle features [A_T, K00, K01, K02, K11, K12, K22] for corners (p0, p1, p2).
pub fn fem_triangle_features(p0: [f64; 2], p1: [f64; 2], p2: [f64; 2]) -> [f64; 7] {
    let k = crate::mesh::fem::local_stiffness(p0, p1, p2);
    [
        crate::mesh::fem::local_area(p0, p1, p2),
        k[0][0],
        k[0][1],
        k[0][2],
        k[1][1],
        k[1][2],
        k[2][2],
    ]
}

/// Triangle site density (arity 3, dof 1, features [`fem_triangle_features`]):
/// ρ_T = ½ Σ_i (A_T/3) φ̇_i² − ½ φ_Tᵀ K_T φ_T when `kinetic`, else only −½ φ_Tᵀ K_T φ_T.
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
        FEM_TRIANGLE_FEATURES
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
        for s in 0..nb {
            let xs = &x[s * p..(s + 1) * p];
            let r = &mut out[s * stride..(s + 1) * stride];
            r.fill(0.0);
            let (phi, vel, f) = (&xs[0..3], &xs[3..6], &xs[6..13]);
            let k = [[f[1], f[2], f[3]], [f[2], f[4], f[5]], [f[3], f[5], f[6]]];
            let mut pot = 0.0;
            for i in 0..3 {
                let kphi = k[i][0] * phi[0] + k[i][1] * phi[1] + k[i][2] * phi[2];
                pot += phi[i] * kphi;
                r[lay.grad_q() + i] = -kphi;
            }
            let mut rho = -0.5 * pot;
            if self.kinetic {
                let m = f[0] / 3.0;
                for i in 0..3 {
                    rho += 0.5 * m * vel[i] * vel[i];
                    r[lay.grad_v() + i] = m * vel[i];
                    r[lay.mass() + i * 3 + i] = m;
                }
            }
            r[SiteLayout::RHO] = rho;
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
}
