//! Per-site features of a triangle mesh for mesh Lagrangians: node, edge and triangle geometry.
//!
//! All features are invariant under renumbering the nodes and under swapping an edge's two
//! endpoints (they describe unordered objects), which is what makes the learned mesh density of
//! [`crate::systems::wave_mesh_learned`] independent of node order and of the orientation in
//! which an edge is listed.

use super::TriMesh;
use crate::density::fem::fem_triangle_features;

/// Features per node site: [lumped mass m_i (area/3 of each adjacent triangle), boundary flag].
pub const NODE_FEATURES: usize = 2;
/// Features per edge site: [length ℓ_ab, cotangent weight w_ab = ½(cot α + cot β) (= −K_ab),
/// total area of the adjacent triangles, boundary-edge flag (1 when only one triangle)].
pub const EDGE_FEATURES: usize = 4;

/// Geometry of the unique edges of a mesh.
#[derive(Clone, Debug)]
pub struct EdgeGeometry {
    /// Unique edges `[a, b]` with a < b, sorted (as [`TriMesh::edges`]).
    pub edges: Vec<[usize; 2]>,
    pub length: Vec<f64>,
    /// ½ Σ cot of the angles opposite the edge in its (one or two) triangles = −K_ab.
    pub cot_weight: Vec<f64>,
    /// Σ areas of the adjacent triangles.
    pub adjacent_area: Vec<f64>,
    /// Number of adjacent triangles (1 on the boundary, else 2).
    pub n_triangles: Vec<u8>,
}

/// Compute [`EdgeGeometry`] in O(T) (plus a binary search per triangle edge).
pub fn edge_geometry(mesh: &TriMesh) -> EdgeGeometry {
    let n = mesh.n_nodes();
    let (off, nb) = mesh.adjacency();
    let edges = mesh.edges();
    // first edge id with min endpoint a: edges are sorted by (a, b) and, for fixed a, are the
    // neighbours of a greater than a, in order.
    let mut start = vec![0usize; n + 1];
    for i in 0..n {
        let row = &nb[off[i]..off[i + 1]];
        start[i + 1] = start[i] + (row.len() - row.partition_point(|&j| j < i));
    }
    let id = |a: usize, b: usize| -> usize {
        let (a, b) = (a.min(b), a.max(b));
        let row = &nb[off[a]..off[a + 1]];
        let split = row.partition_point(|&j| j < a);
        start[a]
            + row[split..]
                .binary_search(&b)
                .expect("triangle edge is a mesh edge")
    };
    let ne = edges.len();
    let mut cot_weight = vec![0.0; ne];
    let mut adjacent_area = vec![0.0; ne];
    let mut n_triangles = vec![0u8; ne];
    for tri in &mesh.triangles {
        let [p0, p1, p2] = tri.map(|v| mesh.positions[v]);
        let k = crate::mesh::fem::local_stiffness(p0, p1, p2);
        let area = crate::mesh::fem::local_area(p0, p1, p2);
        for (i, j) in [(0, 1), (1, 2), (0, 2)] {
            let e = id(tri[i], tri[j]);
            cot_weight[e] -= k[i][j];
            adjacent_area[e] += area;
            n_triangles[e] += 1;
        }
    }
    let length = edges
        .iter()
        .map(|&[a, b]| {
            let (pa, pb) = (mesh.positions[a], mesh.positions[b]);
            (pa[0] - pb[0]).hypot(pa[1] - pb[1])
        })
        .collect();
    EdgeGeometry {
        edges,
        length,
        cot_weight,
        adjacent_area,
        n_triangles,
    }
}

/// Node features, `n × NODE_FEATURES` site-major: [m_i, boundary flag].
pub fn node_features(mesh: &TriMesh) -> Vec<f64> {
    let m = super::fem::lumped_mass(mesh);
    m.iter()
        .zip(&mesh.boundary)
        .flat_map(|(&m, &b)| [m, if b { 1.0 } else { 0.0 }])
        .collect()
}

/// Features of edge `e`: [ℓ, w, adjacent area, boundary-edge flag].
pub fn edge_features(geom: &EdgeGeometry, e: usize) -> [f64; EDGE_FEATURES] {
    [
        geom.length[e],
        geom.cot_weight[e],
        geom.adjacent_area[e],
        if geom.n_triangles[e] == 1 { 1.0 } else { 0.0 },
    ]
}

/// Triangle features site-major (see [`crate::density::FemTriangle`]): `T × 4`
/// [A_T, K01, K12, K02] with `with_area`, else `T × 3` [K01, K12, K02] (stiffness only).
pub fn triangle_features(mesh: &TriMesh, with_area: bool) -> Vec<f64> {
    let skip = if with_area { 0 } else { 1 };
    (0..mesh.n_triangles())
        .flat_map(|t| {
            let [p0, p1, p2] = mesh.corners(t);
            fem_triangle_features(p0, p1, p2).into_iter().skip(skip)
        })
        .collect()
}
