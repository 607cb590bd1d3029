//! Deterministic mesh generators: the shipped meshes in `meshes/` and the large benchmark meshes.
//!
//! Structured squares use *uniform* diagonals (every cell split from its lower-left to its
//! upper-right corner). With that layout every interior node has six triangles, so its lumped
//! mass is exactly h² and the cotangent stiffness is the 5-point stencil: −M⁻¹K is a consistent
//! O(h²) approximation of the Laplacian at every interior node. Alternating ("union jack") or
//! criss-cross layouts give nodes of valence 4 and 8 whose lumped masses differ by a factor of
//! two, and −M⁻¹K is then *not* pointwise consistent (off by ×1.5 / ×0.75), so they are not used.
//! For irregular meshes use [`disk`], [`annulus`], or [`perturb_interior`].

use super::TriMesh;
use crate::error::{Error, Result};
use std::f64::consts::PI;

/// Structured mesh of [0,1]² with `n_per_side` cells per side: (n+1)² nodes, 2n² triangles,
/// node `i + j (n+1)` at (i/n, j/n). O(n²) time, no validation pass needed.
pub fn square(n_per_side: usize) -> Result<TriMesh> {
    let n = n_per_side;
    if n == 0 {
        return Err(Error::input("square: n_per_side must be at least 1"));
    }
    let m = n + 1;
    let nn = m
        .checked_mul(m)
        .filter(|&x| x <= 1usize << 40)
        .ok_or_else(|| Error::input(format!("square: n_per_side = {n} is too large")))?;
    let mut positions = Vec::with_capacity(nn);
    let mut boundary = Vec::with_capacity(nn);
    let inv = 1.0 / n as f64;
    for j in 0..m {
        let y = if j == n { 1.0 } else { j as f64 * inv };
        for i in 0..m {
            let x = if i == n { 1.0 } else { i as f64 * inv };
            positions.push([x, y]);
            boundary.push(i == 0 || j == 0 || i == n || j == n);
        }
    }
    let mut triangles = Vec::with_capacity(2 * n * n);
    for j in 0..n {
        for i in 0..n {
            let v00 = i + j * m;
            let (v10, v01, v11) = (v00 + 1, v00 + m, v00 + m + 1);
            triangles.push([v00, v10, v11]);
            triangles.push([v00, v11, v01]);
        }
    }
    Ok(TriMesh::from_trusted(positions, triangles, boundary))
}

/// Structured square mesh of [0,1]² with about `target_nodes` nodes (the nearest perfect square
/// (k+1)², at least 4). O(n): about 0.1 s for 10^6 nodes.
pub fn unit_square_nodes(target_nodes: usize) -> Result<TriMesh> {
    let side = ((target_nodes as f64).sqrt().round() as usize).max(2);
    square(side - 1)
}

/// Disk of radius `radius` centred at the origin, made of `n_rings` concentric rings: ring k
/// (k = 1..n_rings) has 6k equally spaced nodes at radius k·radius/n_rings, so edge lengths are
/// all close to radius/n_rings and triangles are near-equilateral.
/// 1 + 3 n (n+1) nodes, 6 n² triangles. The area is that of the inscribed 6n-gon.
pub fn disk(radius: f64, n_rings: usize) -> Result<TriMesh> {
    if !(radius.is_finite() && radius > 0.0) {
        return Err(Error::input(format!(
            "disk: radius must be > 0, got {radius}"
        )));
    }
    if n_rings == 0 || n_rings > 100_000 {
        return Err(Error::input(format!(
            "disk: n_rings must be in 1..=100000, got {n_rings}"
        )));
    }
    let n = n_rings;
    let mut positions = vec![[0.0, 0.0]];
    let mut ring_start = vec![0usize];
    let mut ring_len = vec![1usize];
    for k in 1..=n {
        ring_start.push(positions.len());
        ring_len.push(6 * k);
        let r = radius * k as f64 / n as f64;
        for j in 0..6 * k {
            let th = 2.0 * PI * j as f64 / (6 * k) as f64;
            positions.push(polar(r, th));
        }
    }
    let mut triangles = Vec::with_capacity(6 * n * n);
    // Innermost ring: a fan around the centre.
    for j in 0..6 {
        triangles.push([0, 1 + j, 1 + (j + 1) % 6]);
    }
    for k in 2..=n {
        stitch_rings(
            (ring_start[k - 1], ring_len[k - 1], 0.0),
            (ring_start[k], ring_len[k], 0.0),
            &mut triangles,
        );
    }
    TriMesh::new(positions, triangles)
}

/// Annulus r_in <= r <= r_out centred at the origin: `n_rings + 1` circles of `n_sectors` nodes,
/// every other circle rotated by half a sector so that the triangles between two circles are
/// near-isosceles. (n_rings+1)·n_sectors nodes, 2·n_rings·n_sectors triangles.
pub fn annulus(r_in: f64, r_out: f64, n_rings: usize, n_sectors: usize) -> Result<TriMesh> {
    if !(r_in.is_finite() && r_out.is_finite() && r_in > 0.0 && r_out > r_in) {
        return Err(Error::input(format!(
            "annulus: need 0 < r_in < r_out, got r_in = {r_in}, r_out = {r_out}"
        )));
    }
    if n_rings == 0 || n_sectors < 3 || n_rings.saturating_mul(n_sectors) > 1usize << 36 {
        return Err(Error::input(format!(
            "annulus: need n_rings >= 1 and n_sectors >= 3, got {n_rings} and {n_sectors}"
        )));
    }
    let mut positions = Vec::with_capacity((n_rings + 1) * n_sectors);
    for l in 0..=n_rings {
        let r = r_in + (r_out - r_in) * l as f64 / n_rings as f64;
        let off = if l % 2 == 1 { 0.5 } else { 0.0 };
        for s in 0..n_sectors {
            let th = 2.0 * PI * (s as f64 + off) / n_sectors as f64;
            positions.push(polar(r, th));
        }
    }
    let mut triangles = Vec::with_capacity(2 * n_rings * n_sectors);
    let turn = 0.5 / n_sectors as f64;
    for l in 0..n_rings {
        let (oa, ob) = if l % 2 == 1 { (turn, 0.0) } else { (0.0, turn) };
        stitch_rings(
            (l * n_sectors, n_sectors, oa),
            ((l + 1) * n_sectors, n_sectors, ob),
            &mut triangles,
        );
    }
    TriMesh::new(positions, triangles)
}

/// L-shaped domain [0,1]² minus the open quadrant (½,1]×(½,1]: area ¾, re-entrant corner at
/// (½,½). `n` cells across each leg (so 2n cells along the long sides), uniform diagonals:
/// (2n+1)² − n² nodes, 6n² triangles.
pub fn l_shape(n: usize) -> Result<TriMesh> {
    if n == 0 || n > 1 << 18 {
        return Err(Error::input(format!(
            "l_shape: n must be in 1..=262144, got {n}"
        )));
    }
    let m = 2 * n + 1;
    let inv = 1.0 / (2 * n) as f64;
    let mut positions = Vec::with_capacity(m * m);
    for j in 0..m {
        for i in 0..m {
            positions.push([i as f64 * inv, j as f64 * inv]);
        }
    }
    let mut triangles = Vec::with_capacity(6 * n * n);
    for j in 0..2 * n {
        for i in 0..2 * n {
            if i >= n && j >= n {
                continue;
            }
            let v00 = i + j * m;
            triangles.push([v00, v00 + 1, v00 + m + 1]);
            triangles.push([v00, v00 + m + 1, v00 + m]);
        }
    }
    TriMesh::new(positions, triangles)
}

/// Move every interior node by a deterministic pseudo-random offset of length at most
/// `fraction` × (shortest edge at that node), `fraction` in [0, 0.3]. Boundary nodes stay put, so
/// the domain and its area are unchanged; the result is re-validated (no inverted triangles).
pub fn perturb_interior(mesh: &TriMesh, fraction: f64, seed: u64) -> Result<TriMesh> {
    if !(0.0..=0.3).contains(&fraction) {
        return Err(Error::input(format!(
            "perturb_interior: fraction must be in [0, 0.3], got {fraction}"
        )));
    }
    let n = mesh.n_nodes();
    let mut hmin = vec![f64::INFINITY; n];
    for [a, b] in mesh.edges() {
        let (p, q) = (mesh.positions[a], mesh.positions[b]);
        let l = (p[0] - q[0]).hypot(p[1] - q[1]);
        hmin[a] = hmin[a].min(l);
        hmin[b] = hmin[b].min(l);
    }
    let mut positions = mesh.positions.clone();
    for (i, p) in positions.iter_mut().enumerate() {
        if mesh.boundary[i] {
            continue;
        }
        let u = unit(splitmix64(seed ^ (2 * i as u64)));
        let v = unit(splitmix64(seed ^ (2 * i as u64 + 1)));
        let r = fraction * hmin[i] * u.sqrt();
        let th = 2.0 * PI * v;
        p[0] += r * th.cos();
        p[1] += r * th.sin();
    }
    TriMesh::new(positions, mesh.triangles.clone())
}

/// Triangulate the band between two closed rings of nodes (consecutive indices, counter-clockwise
/// by angle). Ring = (first index, length, angular offset of its node 0 in turns, in [0, 1/len)).
/// Advances along whichever ring has the next smaller angle, so the band gets len_a + len_b
/// triangles.
fn stitch_rings(a: (usize, usize, f64), b: (usize, usize, f64), out: &mut Vec<[usize; 3]>) {
    let (sa, na, oa) = a;
    let (sb, nb, ob) = b;
    let (mut i, mut j) = (0usize, 0usize);
    while i < na || j < nb {
        let next_a = oa + (i + 1) as f64 / na as f64;
        let next_b = ob + (j + 1) as f64 / nb as f64;
        if j == nb || (i < na && next_a < next_b) {
            out.push([sa + i % na, sb + j % nb, sa + (i + 1) % na]);
            i += 1;
        } else {
            out.push([sa + i % na, sb + j % nb, sb + (j + 1) % nb]);
            j += 1;
        }
    }
}

/// (r cos θ, r sin θ) with round-off residues (e.g. sin π ≈ 1.2e-16) snapped to exact zero.
fn polar(r: f64, th: f64) -> [f64; 2] {
    let snap = |v: f64| if v.abs() < 1e-14 { 0.0 } else { r * v };
    [snap(th.cos()), snap(th.sin())]
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::signed_area2;

    /// Full validation of a generated mesh: the generator's claims must survive `validate`.
    fn check(m: &TriMesh) {
        let mut v = m.clone();
        v.validate().unwrap();
        assert_eq!(
            &v, m,
            "validate changed a generated mesh (orientation or boundary)"
        );
        for t in 0..m.n_triangles() {
            let [a, b, c] = m.corners(t);
            assert!(signed_area2(a, b, c) > 0.0);
        }
    }

    /// Smallest angle over all triangles, in degrees.
    fn min_angle(m: &TriMesh) -> f64 {
        let mut worst = 180.0f64;
        for t in 0..m.n_triangles() {
            let p = m.corners(t);
            for k in 0..3 {
                let (a, b, c) = (p[k], p[(k + 1) % 3], p[(k + 2) % 3]);
                let u = [b[0] - a[0], b[1] - a[1]];
                let v = [c[0] - a[0], c[1] - a[1]];
                let cos = (u[0] * v[0] + u[1] * v[1]) / (u[0].hypot(u[1]) * v[0].hypot(v[1]));
                worst = worst.min(cos.clamp(-1.0, 1.0).acos().to_degrees());
            }
        }
        worst
    }

    #[test]
    fn square_counts_area_boundary() {
        let m = square(4).unwrap();
        check(&m);
        assert_eq!(m.n_nodes(), 25);
        assert_eq!(m.n_triangles(), 32);
        assert_eq!(m.n_boundary(), 16);
        assert!((m.area() - 1.0).abs() < 1e-14);
        assert_eq!(m.edges().len(), 25 + 32 - 1); // Euler: V - E + F = 1
        assert!((min_angle(&m) - 45.0).abs() < 1e-9);
        assert!(square(0).is_err());
        assert_eq!(unit_square_nodes(1000).unwrap().n_nodes(), 32 * 32);
        assert_eq!(unit_square_nodes(0).unwrap().n_nodes(), 4);
    }

    #[test]
    fn disk_counts_area_quality() {
        for n in [1, 2, 5, 12] {
            let m = disk(2.0, n).unwrap();
            check(&m);
            assert_eq!(m.n_nodes(), 1 + 3 * n * (n + 1));
            assert_eq!(m.n_triangles(), 6 * n * n);
            assert_eq!(m.n_boundary(), 6 * n);
            let k = 6 * n;
            let poly = 0.5 * k as f64 * 4.0 * (2.0 * PI / k as f64).sin();
            assert!((m.area() - poly).abs() < 1e-12 * poly);
            for (i, p) in m.positions.iter().enumerate() {
                let on_rim = (p[0].hypot(p[1]) - 2.0).abs() < 1e-12;
                assert_eq!(on_rim, m.boundary[i]);
            }
            assert!(min_angle(&m) > 29.9, "n = {n}: {}", min_angle(&m));
        }
        assert!(disk(-1.0, 3).is_err());
        assert!(disk(1.0, 0).is_err());
    }

    #[test]
    fn annulus_counts_area_quality() {
        let m = annulus(0.5, 1.0, 6, 48).unwrap();
        check(&m);
        assert_eq!(m.n_nodes(), 7 * 48);
        assert_eq!(m.n_triangles(), 2 * 6 * 48);
        assert_eq!(m.n_boundary(), 2 * 48);
        let exact = PI * (1.0 - 0.25);
        assert!((m.area() - exact).abs() < 0.01 * exact);
        assert!(min_angle(&m) > 35.0, "{}", min_angle(&m));
        // Two boundary loops: V - E + F = 0 for an annulus.
        assert_eq!(m.n_nodes() + m.n_triangles(), m.edges().len());
        assert!(annulus(1.0, 0.5, 3, 10).is_err());
    }

    #[test]
    fn l_shape_counts_area() {
        let n = 4;
        let m = l_shape(n).unwrap();
        check(&m);
        assert_eq!(m.n_nodes(), (2 * n + 1).pow(2) - n * n);
        assert_eq!(m.n_triangles(), 6 * n * n);
        assert!((m.area() - 0.75).abs() < 1e-14);
        // Re-entrant corner is a boundary node; no node lies inside the removed quadrant.
        let c = m.positions.iter().position(|p| *p == [0.5, 0.5]).unwrap();
        assert!(m.boundary[c]);
        assert!(m.positions.iter().all(|p| !(p[0] > 0.5 && p[1] > 0.5)));
        assert_eq!(m.n_boundary(), 8 * n);
    }

    #[test]
    fn perturbation_is_deterministic_and_keeps_area() {
        let m = square(10).unwrap();
        let a = perturb_interior(&m, 0.25, 7).unwrap();
        let b = perturb_interior(&m, 0.25, 7).unwrap();
        let c = perturb_interior(&m, 0.25, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!((a.area() - 1.0).abs() < 1e-13);
        assert_eq!(a.boundary, m.boundary);
        assert!(perturb_interior(&m, 0.5, 1).is_err());
    }

    #[test]
    fn large_square_is_fast() {
        let t = std::time::Instant::now();
        let m = unit_square_nodes(1_000_000).unwrap();
        let dt = t.elapsed().as_secs_f64();
        assert_eq!(m.n_nodes(), 1_000_000);
        assert_eq!(m.n_triangles(), 2 * 999 * 999);
        assert!(dt < 2.0, "unit_square_nodes(1e6) took {dt:.3} s");
        let t = std::time::Instant::now();
        let e = m.edges();
        let de = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let k = crate::mesh::fem::stiffness(&m);
        let dk = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let mut v = m.clone();
        v.validate().unwrap();
        let dv = t.elapsed().as_secs_f64();
        assert_eq!(e.len(), 3 * 999 * 999 + 2 * 999);
        assert_eq!(k.nnz(), m.n_nodes() + 2 * e.len());
        assert_eq!(v.boundary, m.boundary);
        eprintln!(
            "10^6 nodes: unit_square_nodes {dt:.3} s, edges {de:.3} s, stiffness {dk:.3} s, \
             validate {dv:.3} s"
        );
    }
}
