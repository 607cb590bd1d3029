//! P1 finite elements for the wave equation φ_tt = Δφ (c = 1) with free (natural, Neumann)
//! boundary: the ground truth the learned Lagrangian is compared with.
//!
//! L(φ, φ̇) = ½ φ̇ᵀ M φ̇ − ½ φᵀ K φ = Σ_T ρ_T with the per-triangle site Lagrangian
//! ρ_T = ½ Σ_i (A_T/3) φ̇_i² − ½ φ_Tᵀ K_T φ_T, where M is the lumped (row-sum) mass matrix
//! (each triangle gives A_T/3 to each of its corners) and K the cotangent stiffness matrix,
//! K_ij = −½ (cot α_ij + cot β_ij) for an edge ij, K_ii = −Σ_j K_ij. Euler–Lagrange gives
//! φ̈ = −M⁻¹ K φ, and the conserved energy is ½ φ̇ᵀ M φ̇ + ½ φᵀ K φ.

use super::{signed_area2, TriMesh};
use crate::error::{check_finite, Error, Result};
use sprs::CsMat;

/// Local P1 stiffness matrix of triangle (p0, p1, p2) (either orientation):
/// K_T[i][j] = ∇λ_i·∇λ_j · A_T = (b_i b_j + c_i c_j) / (4 A_T). Off-diagonal entries equal
/// −½ cot of the angle opposite the edge; rows sum to zero. Degenerate triangles give
/// non-finite entries (a validated mesh has none).
pub fn local_stiffness(p0: [f64; 2], p1: [f64; 2], p2: [f64; 2]) -> [[f64; 3]; 3] {
    let b = [p1[1] - p2[1], p2[1] - p0[1], p0[1] - p1[1]];
    let c = [p2[0] - p1[0], p0[0] - p2[0], p1[0] - p0[0]];
    let inv4a = 1.0 / (2.0 * signed_area2(p0, p1, p2).abs());
    let mut k = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            k[i][j] = (b[i] * b[j] + c[i] * c[j]) * inv4a;
        }
    }
    k
}

/// Area of triangle (p0, p1, p2) (either orientation); its lumped mass is area/3 per corner.
pub fn local_area(p0: [f64; 2], p1: [f64; 2], p2: [f64; 2]) -> f64 {
    super::triangle_area(p0, p1, p2)
}

/// Site Lagrangian of one triangle: ρ_T = ½ Σ_i (A_T/3) φ̇_i² − ½ φ_Tᵀ K_T φ_T.
pub fn local_lagrangian(corners: [[f64; 2]; 3], phi: [f64; 3], phidot: [f64; 3]) -> f64 {
    let [p0, p1, p2] = corners;
    let m = local_area(p0, p1, p2) / 3.0;
    let k = local_stiffness(p0, p1, p2);
    let kin: f64 = phidot.iter().map(|v| v * v).sum::<f64>() * 0.5 * m;
    let mut pot = 0.0;
    for i in 0..3 {
        for j in 0..3 {
            pot += phi[i] * k[i][j] * phi[j];
        }
    }
    kin - 0.5 * pot
}

/// Lumped (row-sum) mass: each triangle gives area/3 to each of its corners.
/// Sums to the mesh area; every entry is positive on a valid mesh.
pub fn lumped_mass(mesh: &TriMesh) -> Vec<f64> {
    let mut m = vec![0.0; mesh.n_nodes()];
    for (t, tri) in mesh.triangles.iter().enumerate() {
        let a3 = mesh.triangle_area(t) / 3.0;
        for &v in tri {
            m[v] += a3;
        }
    }
    m
}

/// Global cotangent stiffness matrix (CSR, sorted column indices, explicit diagonal): symmetric
/// positive semi-definite, rows sum to zero, kernel = constants on a connected mesh.
pub fn stiffness(mesh: &TriMesh) -> CsMat<f64> {
    let n = mesh.n_nodes();
    let (off, nb) = mesh.adjacency();
    let mut indptr = Vec::with_capacity(n + 1);
    let mut indices = Vec::with_capacity(nb.len() + n);
    indptr.push(0);
    for i in 0..n {
        let row = &nb[off[i]..off[i + 1]];
        let split = row.partition_point(|&j| j < i);
        indices.extend_from_slice(&row[..split]);
        indices.push(i);
        indices.extend_from_slice(&row[split..]);
        indptr.push(indices.len());
    }
    let mut data = vec![0.0; indices.len()];
    for tri in &mesh.triangles {
        let [p0, p1, p2] = tri.map(|v| mesh.positions[v]);
        let k = local_stiffness(p0, p1, p2);
        for a in 0..3 {
            let row = tri[a];
            let cols = &indices[indptr[row]..indptr[row + 1]];
            for b in 0..3 {
                // Every triangle edge is a mesh edge, so the column is present.
                if let Ok(pos) = cols.binary_search(&tri[b]) {
                    data[indptr[row] + pos] += k[a][b];
                }
            }
        }
    }
    CsMat::new((n, n), indptr, indices, data)
}

/// K φ, assembled triangle by triangle (no matrix stored).
pub fn apply_stiffness(mesh: &TriMesh, phi: &[f64]) -> Result<Vec<f64>> {
    check_len("phi", phi, mesh.n_nodes())?;
    let mut y = vec![0.0; phi.len()];
    for tri in &mesh.triangles {
        let [p0, p1, p2] = tri.map(|v| mesh.positions[v]);
        let k = local_stiffness(p0, p1, p2);
        let f = tri.map(|v| phi[v]);
        for a in 0..3 {
            y[tri[a]] += k[a][0] * f[0] + k[a][1] * f[1] + k[a][2] * f[2];
        }
    }
    Ok(y)
}

/// Acceleration of the free-boundary P1 wave equation: φ̈ = −M⁻¹ K φ (lumped M).
pub fn fem_accel(mesh: &TriMesh, phi: &[f64]) -> Result<Vec<f64>> {
    check_finite("phi", phi)?;
    let mut y = apply_stiffness(mesh, phi)?;
    let m = lumped_mass(mesh);
    for (yi, mi) in y.iter_mut().zip(&m) {
        *yi = -*yi / mi;
    }
    Ok(y)
}

/// Conserved energy ½ φ̇ᵀ M φ̇ + ½ φᵀ K φ.
pub fn fem_energy(mesh: &TriMesh, phi: &[f64], phidot: &[f64]) -> Result<f64> {
    let (kin, pot) = kinetic_potential(mesh, phi, phidot)?;
    Ok(kin + pot)
}

/// Lagrangian ½ φ̇ᵀ M φ̇ − ½ φᵀ K φ (= Σ_T [`local_lagrangian`]).
pub fn fem_lagrangian(mesh: &TriMesh, phi: &[f64], phidot: &[f64]) -> Result<f64> {
    let (kin, pot) = kinetic_potential(mesh, phi, phidot)?;
    Ok(kin - pot)
}

fn kinetic_potential(mesh: &TriMesh, phi: &[f64], phidot: &[f64]) -> Result<(f64, f64)> {
    check_len("phidot", phidot, mesh.n_nodes())?;
    check_finite("phi", phi)?;
    check_finite("phidot", phidot)?;
    let kphi = apply_stiffness(mesh, phi)?;
    let m = lumped_mass(mesh);
    let kin = 0.5 * phidot.iter().zip(&m).map(|(v, m)| m * v * v).sum::<f64>();
    let pot = 0.5 * phi.iter().zip(&kphi).map(|(a, b)| a * b).sum::<f64>();
    Ok((kin, pot))
}

/// Precomputed operators for repeated evaluation (time stepping): lumped mass and CSR stiffness.
#[derive(Clone, Debug)]
pub struct Fem {
    /// Lumped mass per node.
    pub mass: Vec<f64>,
    /// Cotangent stiffness matrix.
    pub stiffness: CsMat<f64>,
}

impl Fem {
    /// Assemble M and K for `mesh`.
    pub fn new(mesh: &TriMesh) -> Fem {
        Fem {
            mass: lumped_mass(mesh),
            stiffness: stiffness(mesh),
        }
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.mass.len()
    }

    /// `out = K phi`.
    pub fn apply_stiffness(&self, phi: &[f64], out: &mut [f64]) -> Result<()> {
        check_len("phi", phi, self.n_nodes())?;
        check_len("out", out, self.n_nodes())?;
        let k = &self.stiffness;
        let (ip, ix, d) = (k.indptr(), k.indices(), k.data());
        let ip = ip.raw_storage();
        for (i, o) in out.iter_mut().enumerate() {
            let mut s = 0.0;
            for p in ip[i]..ip[i + 1] {
                s += d[p] * phi[ix[p]];
            }
            *o = s;
        }
        Ok(())
    }

    /// `out = −M⁻¹ K phi`.
    pub fn accel(&self, phi: &[f64], out: &mut [f64]) -> Result<()> {
        self.apply_stiffness(phi, out)?;
        for (o, m) in out.iter_mut().zip(&self.mass) {
            *o = -*o / m;
        }
        Ok(())
    }

    /// ½ φ̇ᵀ M φ̇ + ½ φᵀ K φ.
    pub fn energy(&self, phi: &[f64], phidot: &[f64]) -> Result<f64> {
        check_len("phidot", phidot, self.n_nodes())?;
        let mut kphi = vec![0.0; self.n_nodes()];
        self.apply_stiffness(phi, &mut kphi)?;
        let kin = 0.5
            * phidot
                .iter()
                .zip(&self.mass)
                .map(|(v, m)| m * v * v)
                .sum::<f64>();
        let pot = 0.5 * phi.iter().zip(&kphi).map(|(a, b)| a * b).sum::<f64>();
        Ok(kin + pot)
    }
}

fn check_len(what: &str, xs: &[f64], n: usize) -> Result<()> {
    if xs.len() != n {
        return Err(Error::input(format!(
            "{what} has length {}, but the mesh has {n} nodes",
            xs.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::generate::{disk, l_shape, perturb_interior, square};
    use std::f64::consts::PI;

    fn meshes() -> Vec<TriMesh> {
        vec![
            perturb_interior(&square(9).unwrap(), 0.25, 3).unwrap(),
            disk(1.5, 5).unwrap(),
            l_shape(4).unwrap(),
            crate::mesh::generate::annulus(0.3, 1.0, 4, 24).unwrap(),
        ]
    }

    fn dense(k: &CsMat<f64>) -> Vec<Vec<f64>> {
        let n = k.rows();
        let mut d = vec![vec![0.0; n]; n];
        for (v, (i, j)) in k.iter() {
            d[i][j] = *v;
        }
        d
    }

    /// Sorted eigenvalues of a small dense symmetric matrix.
    fn eigenvalues(a: Vec<Vec<f64>>) -> Vec<f64> {
        let n = a.len();
        let flat: Vec<f64> = a.into_iter().flatten().collect();
        let (mut ev, _) = crate::solve::sym_eigen(&flat, n);
        ev.sort_by(|x, y| x.total_cmp(y));
        ev
    }

    fn cot_at(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
        // cot of the angle at a in triangle abc
        let u = [b[0] - a[0], b[1] - a[1]];
        let v = [c[0] - a[0], c[1] - a[1]];
        (u[0] * v[0] + u[1] * v[1]) / (u[0] * v[1] - u[1] * v[0]).abs()
    }

    #[test]
    fn local_stiffness_is_cotangent_formula() {
        let p = [[0.1, -0.2], [1.3, 0.05], [0.4, 0.9]];
        for perm in [[0, 1, 2], [0, 2, 1]] {
            let q = perm.map(|i| p[i]);
            let k = local_stiffness(q[0], q[1], q[2]);
            for i in 0..3 {
                let (j, l) = ((i + 1) % 3, (i + 2) % 3);
                // Edge (j, l) is opposite corner i.
                let expect = -0.5 * cot_at(q[i], q[j], q[l]);
                assert!((k[j][l] - expect).abs() < 1e-14);
                assert!((k[l][j] - expect).abs() < 1e-14);
                assert!(k[i].iter().sum::<f64>().abs() < 1e-14);
            }
        }
    }

    #[test]
    fn global_stiffness_matches_cot_alpha_plus_cot_beta() {
        let m = disk(1.0, 3).unwrap();
        let k = dense(&stiffness(&m));
        let mut cot = std::collections::HashMap::new();
        for tri in &m.triangles {
            let p = tri.map(|v| m.positions[v]);
            for i in 0..3 {
                let (j, l) = ((i + 1) % 3, (i + 2) % 3);
                let e = (tri[j].min(tri[l]), tri[j].max(tri[l]));
                *cot.entry(e).or_insert(0.0) += cot_at(p[i], p[j], p[l]);
            }
        }
        for ((a, b), c) in cot {
            assert!((k[a][b] + 0.5 * c).abs() < 1e-13);
            assert!((k[b][a] + 0.5 * c).abs() < 1e-13);
        }
        for (i, row) in k.iter().enumerate() {
            let off: f64 = row
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| v)
                .sum();
            assert!((row[i] + off).abs() < 1e-13);
        }
    }

    #[test]
    fn stiffness_annihilates_constants_and_is_symmetric() {
        for m in meshes() {
            let k = stiffness(&m);
            let ones = vec![1.0; m.n_nodes()];
            let y = apply_stiffness(&m, &ones).unwrap();
            assert!(y.iter().all(|v| v.abs() < 1e-12));
            let mut z = vec![0.0; m.n_nodes()];
            Fem::new(&m).apply_stiffness(&ones, &mut z).unwrap();
            assert!(z.iter().all(|v| v.abs() < 1e-12));
            let d = dense(&k);
            for (i, row) in d.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    assert_eq!(*v, d[j][i]);
                }
            }
            assert_eq!(k.nnz(), m.n_nodes() + 2 * m.edges().len());
        }
    }

    #[test]
    fn linear_functions_have_exact_energy() {
        for m in meshes() {
            let (a, b, c) = (0.7, -1.3, 2.5);
            let phi: Vec<f64> = m
                .positions
                .iter()
                .map(|p| a * p[0] + b * p[1] + c)
                .collect();
            let kphi = apply_stiffness(&m, &phi).unwrap();
            let e: f64 = phi.iter().zip(&kphi).map(|(x, y)| x * y).sum();
            let expect = (a * a + b * b) * m.area();
            assert!((e - expect).abs() < 1e-11 * expect, "{e} vs {expect}");
        }
    }

    #[test]
    fn stiffness_is_positive_semidefinite() {
        let m = perturb_interior(&disk(1.0, 3).unwrap(), 0.25, 11).unwrap();
        let ev = eigenvalues(dense(&stiffness(&m)));
        assert!(ev[0].abs() < 1e-10, "{ev:?}");
        assert!(
            ev[1] > 1e-3,
            "connected mesh: one zero eigenvalue, got {ev:?}"
        );
        for m in meshes() {
            let k = stiffness(&m);
            let mut s = 12345u64;
            for _ in 0..50 {
                let x: Vec<f64> = (0..m.n_nodes())
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                    })
                    .collect();
                let mut kx = vec![0.0; x.len()];
                for (v, (i, j)) in k.iter() {
                    kx[i] += v * x[j];
                }
                let q: f64 = x.iter().zip(&kx).map(|(a, b)| a * b).sum();
                assert!(q >= -1e-12);
            }
        }
    }

    #[test]
    fn lumped_mass_sums_to_area() {
        let sq: f64 = lumped_mass(&square(7).unwrap()).iter().sum();
        assert!((sq - 1.0).abs() < 1e-14);
        let n = 8;
        let d = disk(1.0, n).unwrap();
        let k = 6 * n;
        let poly = 0.5 * k as f64 * (2.0 * PI / k as f64).sin();
        let md: f64 = lumped_mass(&d).iter().sum();
        assert!((md - poly).abs() < 1e-13);
        assert!(md < PI && PI - md < 0.01);
        for m in meshes() {
            let s: f64 = lumped_mass(&m).iter().sum();
            assert!((s - m.area()).abs() < 1e-13 * m.area());
        }
    }

    /// max over interior nodes of |−M⁻¹Kφ + π²φ| for φ = cos(πx) on square(n).
    fn cos_error(n: usize) -> f64 {
        let m = square(n).unwrap();
        let phi: Vec<f64> = m.positions.iter().map(|p| (PI * p[0]).cos()).collect();
        let acc = fem_accel(&m, &phi).unwrap();
        (0..m.n_nodes())
            .filter(|&i| !m.boundary[i])
            .map(|i| (acc[i] + PI * PI * phi[i]).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn accel_converges_to_laplacian() {
        let errs: Vec<f64> = [8, 16, 32, 64].iter().map(|&n| cos_error(n)).collect();
        assert!(errs[3] < 2e-3 * PI * PI, "{errs:?}");
        for w in errs.windows(2) {
            let ratio = w[0] / w[1];
            assert!(
                ratio > 3.5 && ratio < 4.5,
                "second order expected: {errs:?}"
            );
        }
    }

    #[test]
    fn energy_lagrangian_and_site_sum_agree() {
        let m = disk(1.0, 4).unwrap();
        let phi: Vec<f64> = m
            .positions
            .iter()
            .map(|p| (2.0 * p[0]).sin() + p[1] * p[1])
            .collect();
        let phidot: Vec<f64> = m.positions.iter().map(|p| p[0] - 0.3 * p[1]).collect();
        let e = fem_energy(&m, &phi, &phidot).unwrap();
        let l = fem_lagrangian(&m, &phi, &phidot).unwrap();
        let fem = Fem::new(&m);
        assert!((fem.energy(&phi, &phidot).unwrap() - e).abs() < 1e-13);
        let sites: f64 = m
            .triangles
            .iter()
            .enumerate()
            .map(|(t, tri)| {
                local_lagrangian(m.corners(t), tri.map(|v| phi[v]), tri.map(|v| phidot[v]))
            })
            .sum();
        assert!((sites - l).abs() < 1e-13);
        let mut acc = vec![0.0; m.n_nodes()];
        fem.accel(&phi, &mut acc).unwrap();
        let acc2 = fem_accel(&m, &phi).unwrap();
        assert!(acc.iter().zip(&acc2).all(|(a, b)| (a - b).abs() < 1e-10));
        assert!(fem_accel(&m, &phi[1..]).is_err());
        let mut bad = phi.clone();
        bad[3] = f64::NAN;
        assert!(fem_energy(&m, &bad, &phidot).is_err());
    }

    #[test]
    fn leapfrog_conserves_energy() {
        let m = disk(1.0, 6).unwrap();
        let fem = Fem::new(&m);
        let mut phi: Vec<f64> = m
            .positions
            .iter()
            .map(|p| (-8.0 * (p[0] * p[0] + p[1] * p[1])).exp())
            .collect();
        let mut v = vec![0.0; m.n_nodes()];
        let e0 = fem.energy(&phi, &v).unwrap();
        let dt = 0.2 * m.h_mean();
        let mut a = vec![0.0; m.n_nodes()];
        fem.accel(&phi, &mut a).unwrap();
        for _ in 0..500 {
            for i in 0..phi.len() {
                v[i] += 0.5 * dt * a[i];
                phi[i] += dt * v[i];
            }
            fem.accel(&phi, &mut a).unwrap();
            for i in 0..phi.len() {
                v[i] += 0.5 * dt * a[i];
            }
        }
        let e1 = fem.energy(&phi, &v).unwrap();
        assert!(((e1 - e0) / e0).abs() < 1e-2, "{e0} -> {e1}");
    }
}
