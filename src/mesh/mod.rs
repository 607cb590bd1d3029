//! Planar triangle meshes: the node/site layout of the Lagrangian graph network on a 2-D domain.
//!
//! * [`TriMesh`]: positions, counter-clockwise triangles and boundary flags, with validation,
//!   unique edges, mean edge length and a petgraph view.
//! * [`gmsh`]: read Gmsh MSH 4.1 / 2.2 ASCII files, write MSH 4.1 / 2.2 ASCII.
//! * [`generate`]: deterministic meshes (square, disk, L-shape, annulus, large squares).
//! * [`fields`]: random smooth fields (sums of random plane waves) for initial states and data.
//! * [`fem`]: P1 finite elements with lumped mass and cotangent stiffness (the ground truth the
//!   learned Lagrangian is compared with).

pub mod features;
pub mod fem;
pub mod fields;
pub mod generate;
pub mod gmsh;

use crate::error::{Error, Result};
use petgraph::graph::{NodeIndex, UnGraph};

pub use gmsh::{read_msh, read_msh_detailed, write_msh22, write_msh41, MshImport};

/// A planar triangle mesh.
///
/// Invariants after [`TriMesh::new`] or a successful [`TriMesh::validate`]:
/// every triangle is counter-clockwise with positive area, every index is in range, every
/// coordinate is finite, every node belongs to at least one triangle, every edge belongs to one
/// or two triangles, and `boundary[i]` is true exactly for the nodes on an edge that belongs to
/// a single triangle.
#[derive(Clone, Debug, PartialEq)]
pub struct TriMesh {
    /// Node coordinates (x, y).
    pub positions: Vec<[f64; 2]>,
    /// Node indices of each triangle, counter-clockwise.
    pub triangles: Vec<[usize; 3]>,
    /// `boundary[i]`: node `i` lies on an edge that belongs to exactly one triangle.
    pub boundary: Vec<bool>,
}

/// Twice the signed area of triangle (p0, p1, p2): positive when counter-clockwise.
#[inline]
pub fn signed_area2(p0: [f64; 2], p1: [f64; 2], p2: [f64; 2]) -> f64 {
    (p1[0] - p0[0]) * (p2[1] - p0[1]) - (p2[0] - p0[0]) * (p1[1] - p0[1])
}

/// Area of triangle (p0, p1, p2), whatever its orientation.
#[inline]
pub fn triangle_area(p0: [f64; 2], p1: [f64; 2], p2: [f64; 2]) -> f64 {
    0.5 * signed_area2(p0, p1, p2).abs()
}

#[inline]
fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// Relative tolerance under which a triangle counts as degenerate: |2A| <= DEGENERATE_TOL * l_max².
pub(crate) const DEGENERATE_TOL: f64 = 1e-12;

/// Whether a triangle with these corners is degenerate (zero or numerically zero area).
pub(crate) fn is_degenerate(p0: [f64; 2], p1: [f64; 2], p2: [f64; 2]) -> bool {
    let a2 = signed_area2(p0, p1, p2).abs();
    let l2 = [(p0, p1), (p1, p2), (p2, p0)]
        .iter()
        .map(|(a, b)| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2))
        .fold(0.0f64, f64::max);
    // Written so that NaN areas count as degenerate.
    let regular = a2 > DEGENERATE_TOL * l2 && l2 > 0.0;
    !regular
}

/// What [`TriMesh::from_parts`] changed on its way to a valid mesh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// For each node of the new mesh, its index in the input `positions`.
    pub kept: Vec<usize>,
    /// Number of input nodes dropped because no triangle uses them.
    pub dropped_nodes: usize,
    /// Number of clockwise triangles that were reoriented counter-clockwise.
    pub flipped_triangles: usize,
}

impl TriMesh {
    /// Build a mesh from raw parts: drops nodes used by no triangle (renumbering the others),
    /// orients every triangle counter-clockwise, validates, computes boundary flags.
    pub fn new(positions: Vec<[f64; 2]>, triangles: Vec<[usize; 3]>) -> Result<TriMesh> {
        Self::from_parts(positions, triangles).map(|(m, _)| m)
    }

    /// Like [`TriMesh::new`], also returning the renumbering map and what was changed.
    pub fn from_parts(
        positions: Vec<[f64; 2]>,
        triangles: Vec<[usize; 3]>,
    ) -> Result<(TriMesh, BuildReport)> {
        let n = positions.len();
        if triangles.is_empty() {
            return Err(Error::input("mesh has no triangles"));
        }
        for (t, tri) in triangles.iter().enumerate() {
            if let Some(&v) = tri.iter().find(|&&v| v >= n) {
                return Err(Error::input(format!(
                    "triangle {t} references node {v}, but there are only {n} nodes"
                )));
            }
        }
        let mut used = vec![false; n];
        for tri in &triangles {
            for &v in tri {
                used[v] = true;
            }
        }
        let kept: Vec<usize> = (0..n).filter(|&i| used[i]).collect();
        let dropped_nodes = n - kept.len();
        let (positions, triangles) = if dropped_nodes == 0 {
            (positions, triangles)
        } else {
            let mut new_index = vec![usize::MAX; n];
            for (new, &old) in kept.iter().enumerate() {
                new_index[old] = new;
            }
            let pos = kept.iter().map(|&i| positions[i]).collect();
            let tris = triangles
                .iter()
                .map(|t| [new_index[t[0]], new_index[t[1]], new_index[t[2]]])
                .collect();
            (pos, tris)
        };
        let mut mesh = TriMesh {
            boundary: vec![false; positions.len()],
            positions,
            triangles,
        };
        let flipped_triangles = mesh.validate_impl()?;
        Ok((
            mesh,
            BuildReport {
                kept,
                dropped_nodes,
                flipped_triangles,
            },
        ))
    }

    /// Build without any check: the caller guarantees every invariant listed on [`TriMesh`]
    /// (used by the structured generators, which must be O(n) for 10^6 nodes).
    pub(crate) fn from_trusted(
        positions: Vec<[f64; 2]>,
        triangles: Vec<[usize; 3]>,
        boundary: Vec<bool>,
    ) -> TriMesh {
        debug_assert_eq!(positions.len(), boundary.len());
        TriMesh {
            positions,
            triangles,
            boundary,
        }
    }

    /// Check the mesh and repair what can be repaired: reorients clockwise triangles
    /// counter-clockwise and recomputes `boundary`. Errors (naming the triangle, node or edge)
    /// on out-of-range indices, non-finite coordinates, degenerate (zero-area) triangles, nodes
    /// used by no triangle (build with [`TriMesh::new`] to drop them), edges shared by more than
    /// two triangles, and overlapping neighbours.
    pub fn validate(&mut self) -> Result<()> {
        self.validate_impl().map(|_| ())
    }

    /// Returns the number of reoriented triangles.
    fn validate_impl(&mut self) -> Result<usize> {
        let n = self.positions.len();
        if self.triangles.is_empty() {
            return Err(Error::input("mesh has no triangles"));
        }
        for (i, p) in self.positions.iter().enumerate() {
            if !(p[0].is_finite() && p[1].is_finite()) {
                return Err(Error::input(format!(
                    "node {i} has non-finite coordinates ({}, {})",
                    p[0], p[1]
                )));
            }
        }
        let mut used = vec![false; n];
        let mut flipped = 0;
        for (t, tri) in self.triangles.iter_mut().enumerate() {
            if let Some(&v) = tri.iter().find(|&&v| v >= n) {
                return Err(Error::input(format!(
                    "triangle {t} references node {v}, but there are only {n} nodes"
                )));
            }
            if tri[0] == tri[1] || tri[1] == tri[2] || tri[0] == tri[2] {
                return Err(Error::input(format!(
                    "triangle {t} repeats a node: {tri:?}"
                )));
            }
            let [p0, p1, p2] = tri.map(|v| self.positions[v]);
            if is_degenerate(p0, p1, p2) {
                return Err(Error::input(format!(
                    "triangle {t} (nodes {tri:?}) is degenerate: zero area"
                )));
            }
            if signed_area2(p0, p1, p2) < 0.0 {
                tri.swap(1, 2);
                flipped += 1;
            }
            for &v in tri.iter() {
                used[v] = true;
            }
        }
        if let Some(i) = used.iter().position(|u| !u) {
            return Err(Error::input(format!(
                "node {i} is not used by any triangle (TriMesh::new drops such nodes)"
            )));
        }
        // Directed half-edges grouped by undirected edge: an interior edge must be traversed
        // once in each direction by the two (counter-clockwise) triangles sharing it.
        let half = half_edges(n, &self.triangles);
        let mut boundary = vec![false; n];
        let mut k = 0;
        while k < half.len() {
            let (a, b, _) = half[k];
            let mut m = k + 1;
            while m < half.len() && half[m].0 == a && half[m].1 == b {
                m += 1;
            }
            match m - k {
                1 => {
                    boundary[a] = true;
                    boundary[b] = true;
                }
                2 => {
                    if half[k].2 == half[k + 1].2 {
                        return Err(Error::input(format!(
                            "triangles sharing edge ({a}, {b}) overlap (they lie on the same side of it)"
                        )));
                    }
                }
                c => {
                    return Err(Error::input(format!(
                        "edge ({a}, {b}) belongs to {c} triangles (non-manifold or duplicated triangles)"
                    )));
                }
            }
            k = m;
        }
        self.boundary = boundary;
        Ok(flipped)
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.positions.len()
    }

    /// Number of triangles.
    pub fn n_triangles(&self) -> usize {
        self.triangles.len()
    }

    /// Corner coordinates of triangle `t`.
    pub fn corners(&self, t: usize) -> [[f64; 2]; 3] {
        self.triangles[t].map(|v| self.positions[v])
    }

    /// Area of triangle `t`.
    pub fn triangle_area(&self, t: usize) -> f64 {
        let [p0, p1, p2] = self.corners(t);
        triangle_area(p0, p1, p2)
    }

    /// Total area (sum of triangle areas).
    pub fn area(&self) -> f64 {
        (0..self.triangles.len())
            .map(|t| self.triangle_area(t))
            .sum()
    }

    /// Unique undirected edges `[a, b]` with `a < b`, sorted lexicographically.
    pub fn edges(&self) -> Vec<[usize; 2]> {
        let half = half_edges(self.positions.len(), &self.triangles);
        let mut out: Vec<[usize; 2]> = Vec::with_capacity(half.len() / 2 + 1);
        for (a, b, _) in half {
            if out.last() != Some(&[a, b]) {
                out.push([a, b]);
            }
        }
        out
    }

    /// Edges that belong to exactly one triangle, `[a, b]` with `a < b`, sorted.
    pub fn boundary_edges(&self) -> Vec<[usize; 2]> {
        let half = half_edges(self.positions.len(), &self.triangles);
        let mut out = Vec::new();
        let mut k = 0;
        while k < half.len() {
            let (a, b, _) = half[k];
            let mut m = k + 1;
            while m < half.len() && half[m].0 == a && half[m].1 == b {
                m += 1;
            }
            if m - k == 1 {
                out.push([a, b]);
            }
            k = m;
        }
        out
    }

    /// Mean length of the unique edges.
    pub fn h_mean(&self) -> f64 {
        let e = self.edges();
        if e.is_empty() {
            return 0.0;
        }
        e.iter()
            .map(|&[a, b]| dist(self.positions[a], self.positions[b]))
            .sum::<f64>()
            / e.len() as f64
    }

    /// Length of the longest edge.
    pub fn h_max(&self) -> f64 {
        self.edges()
            .iter()
            .map(|&[a, b]| dist(self.positions[a], self.positions[b]))
            .fold(0.0, f64::max)
    }

    /// Axis-aligned bounding box `([xmin, ymin], [xmax, ymax])`.
    pub fn bounding_box(&self) -> ([f64; 2], [f64; 2]) {
        let mut lo = [f64::INFINITY; 2];
        let mut hi = [f64::NEG_INFINITY; 2];
        for p in &self.positions {
            for d in 0..2 {
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        (lo, hi)
    }

    /// Number of boundary nodes.
    pub fn n_boundary(&self) -> usize {
        self.boundary.iter().filter(|&&b| b).count()
    }

    /// The mesh graph: one node per mesh node (same indices), one edge per unique mesh edge,
    /// weighted by its length.
    pub fn to_petgraph(&self) -> UnGraph<(), f64> {
        let edges = self.edges();
        let mut g = UnGraph::with_capacity(self.positions.len(), edges.len());
        for _ in 0..self.positions.len() {
            g.add_node(());
        }
        for [a, b] in edges {
            g.add_edge(
                NodeIndex::new(a),
                NodeIndex::new(b),
                dist(self.positions[a], self.positions[b]),
            );
        }
        g
    }

    /// Compressed adjacency (sorted neighbours of each node, excluding itself):
    /// `(offsets, neighbours)`, neighbours of `i` are `neighbours[offsets[i]..offsets[i+1]]`.
    pub fn adjacency(&self) -> (Vec<usize>, Vec<usize>) {
        let n = self.positions.len();
        let edges = self.edges();
        let mut deg = vec![0usize; n + 1];
        for &[a, b] in &edges {
            deg[a + 1] += 1;
            deg[b + 1] += 1;
        }
        for i in 0..n {
            deg[i + 1] += deg[i];
        }
        let offsets = deg;
        let mut fill = offsets.clone();
        let mut nb = vec![0usize; offsets[n]];
        for &[a, b] in &edges {
            nb[fill[a]] = b;
            fill[a] += 1;
            nb[fill[b]] = a;
            fill[b] += 1;
        }
        for i in 0..n {
            nb[offsets[i]..offsets[i + 1]].sort_unstable();
        }
        (offsets, nb)
    }
}

/// All 3T half-edges as `(min, max, forward)` where `forward` says whether the triangle
/// traverses the edge from min to max, sorted by (min, max). Bucketed by `min` (O(n) plus small
/// per-node sorts), so it stays fast for 10^6-node meshes.
fn half_edges(n: usize, triangles: &[[usize; 3]]) -> Vec<(usize, usize, bool)> {
    let mut count = vec![0usize; n + 1];
    for t in triangles {
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            count[a.min(b) + 1] += 1;
        }
    }
    for i in 0..n {
        count[i + 1] += count[i];
    }
    let offsets = count.clone();
    let mut fill = count;
    let mut out = vec![(0usize, 0usize, false); 3 * triangles.len()];
    for t in triangles {
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            let lo = a.min(b);
            out[fill[lo]] = (lo, a.max(b), a < b);
            fill[lo] += 1;
        }
    }
    for i in 0..n {
        out[offsets[i]..offsets[i + 1]].sort_unstable();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_triangles() -> TriMesh {
        // Unit square split along the diagonal; second triangle given clockwise.
        TriMesh::new(
            vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
            vec![[0, 1, 2], [0, 2, 3]],
        )
        .unwrap()
    }

    #[test]
    fn basic_quantities() {
        let m = two_triangles();
        assert_eq!(m.n_nodes(), 4);
        assert!((m.area() - 1.0).abs() < 1e-15);
        assert_eq!(m.edges(), vec![[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]]);
        assert_eq!(m.boundary, vec![true; 4]);
        assert_eq!(m.boundary_edges(), vec![[0, 1], [0, 3], [1, 2], [2, 3]]);
        let h = (4.0 + 2f64.sqrt()) / 5.0;
        assert!((m.h_mean() - h).abs() < 1e-15);
        let g = m.to_petgraph();
        assert_eq!(g.node_count(), 4);
        assert_eq!(g.edge_count(), 5);
        let total: f64 = g.edge_weights().sum();
        assert!((total - (4.0 + 2f64.sqrt())).abs() < 1e-12);
        let (off, nb) = m.adjacency();
        assert_eq!(&nb[off[0]..off[1]], &[1, 2, 3]);
        assert_eq!(&nb[off[1]..off[2]], &[0, 2]);
    }

    #[test]
    fn reorients_clockwise() {
        let (m, rep) = TriMesh::from_parts(
            vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
            vec![[0, 2, 1], [0, 2, 3]],
        )
        .unwrap();
        assert_eq!(rep.flipped_triangles, 1);
        for t in 0..m.n_triangles() {
            let [a, b, c] = m.corners(t);
            assert!(signed_area2(a, b, c) > 0.0);
        }
    }

    #[test]
    fn drops_unused_nodes() {
        let (m, rep) = TriMesh::from_parts(
            vec![[9.0, 9.0], [0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [0.0, 1.0]],
            vec![[1, 2, 4]],
        )
        .unwrap();
        assert_eq!(rep.kept, vec![1, 2, 4]);
        assert_eq!(rep.dropped_nodes, 2);
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
        assert_eq!(m.positions[2], [0.0, 1.0]);
    }

    #[test]
    fn rejects_bad_meshes() {
        let sq = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let err =
            |p: Vec<[f64; 2]>, t: Vec<[usize; 3]>| TriMesh::new(p, t).unwrap_err().to_string();
        assert!(err(sq.clone(), vec![[0, 1, 7]]).contains("node 7"));
        assert!(err(sq.clone(), vec![]).contains("no triangles"));
        assert!(err(sq.clone(), vec![[0, 1, 1]]).contains("repeats"));
        assert!(
            err(vec![[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], vec![[0, 1, 2]]).contains("degenerate")
        );
        assert!(err(
            vec![[0.0, 0.0], [f64::NAN, 0.0], [0.0, 1.0]],
            vec![[0, 1, 2]]
        )
        .contains("non-finite"));
        // Same triangle twice, and three triangles on one edge.
        assert!(err(sq.clone(), vec![[0, 1, 2], [0, 1, 2]]).contains("overlap"));
        let p5 = vec![[0.0, 0.0], [1.0, 0.0], [0.5, 1.0], [0.5, -1.0], [0.5, 2.0]];
        assert!(err(p5, vec![[0, 1, 2], [0, 1, 3], [0, 1, 4]]).contains("3 triangles"));
        // Folded: both triangles on the same side of the shared edge.
        let pf = vec![[0.0, 0.0], [1.0, 0.0], [0.5, 1.0], [0.5, 0.5]];
        assert!(err(pf, vec![[0, 1, 2], [0, 1, 3]]).contains("overlap"));
        // validate() refuses unused nodes (new() drops them).
        let mut m = TriMesh {
            positions: sq,
            triangles: vec![[0, 1, 2]],
            boundary: vec![],
        };
        assert!(m.validate().unwrap_err().to_string().contains("node 3"));
    }
}
