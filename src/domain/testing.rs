//! Test systems of the domain-decomposition checks (unit tests and the MPI check program
//! `examples/domain_check.rs`): a ring, a coordinate-free graph and a mesh, each as the one
//! model → dynamics path builds it, with a deterministic state.

use crate::density::mlp::Mlp;
use crate::dynamics::Dynamics;
use crate::io::GraphData;
use crate::model::{
    Boundary, ClosedTerm, FeatureSet, GraphModel, GraphTerm, NetShape, SystemGraph,
};
use crate::solve::SolverKind;
use crate::Result;

/// A test system: its global dynamics, node positions (if any) and a state.
pub struct Case {
    pub name: &'static str,
    pub model: GraphModel,
    pub dynamics: Dynamics,
    pub positions: Option<(Vec<f64>, usize)>,
    pub q: Vec<f64>,
    pub v: Vec<f64>,
}

fn state(n: usize, seed: f64) -> (Vec<f64>, Vec<f64>) {
    let q = (0..n)
        .map(|i| 0.4 * ((i as f64) * 0.37 + seed).sin())
        .collect();
    let v = (0..n)
        .map(|i| 0.3 * ((i as f64) * 0.61 + 2.0 * seed).cos())
        .collect();
    (q, v)
}

fn positions(g: &SystemGraph) -> Option<(Vec<f64>, usize)> {
    g.data
        .positions
        .as_ref()
        .map(|p| (p.iter().copied().collect(), p.ncols()))
}

/// Ring of `n` nodes: a learned 3-point stencil density (velocity-coupled, general sparse M)
/// plus a node mass that keeps M definite.
pub fn ring(n: usize) -> Result<Case> {
    let g = SystemGraph::line(n, 1, true)?;
    let m = GraphModel::from_terms(
        &g,
        FeatureSet::Graph,
        vec![
            GraphTerm::Closed(ClosedTerm::NodeMass { mass: 4.0 }),
            GraphTerm::Stencil(Mlp::paper_init(&[6, 16, 16, 1], 3)),
        ],
    )?;
    let (q, v) = state(n, 0.3);
    Ok(Case {
        name: "ring",
        dynamics: m.dynamics(&g, SolverKind::Auto)?,
        model: m,
        positions: positions(&g),
        q,
        v,
    })
}

/// An `nx × ny` grid graph without positions, dof 2: a learned density over explicit edge
/// sites (general sparse M) plus a node mass.
pub fn graph(nx: usize, ny: usize) -> Result<Case> {
    let n = nx * ny;
    let mut edges = Vec::new();
    for y in 0..ny {
        for x in 0..nx {
            let i = y * nx + x;
            if x + 1 < nx {
                edges.push([i, i + 1]);
            }
            if y + 1 < ny {
                edges.push([i, i + nx]);
            }
        }
    }
    let mut data = GraphData::new(n, 2, edges.clone());
    data.sites = Some(
        ndarray::Array2::from_shape_vec(
            (edges.len(), 2),
            edges.iter().flatten().copied().collect(),
        )
        .expect("edges × 2"),
    );
    let g = SystemGraph::from_data(data, "grid graph")?;
    let m = GraphModel::from_terms(
        &g,
        FeatureSet::Graph,
        vec![
            GraphTerm::Closed(ClosedTerm::NodeMass { mass: 4.0 }),
            GraphTerm::Sites(Mlp::paper_init(&[8, 16, 16, 1], 5)),
        ],
    )?;
    let (q, v) = state(2 * n, 0.7);
    Ok(Case {
        name: "graph",
        dynamics: m.dynamics(&g, SolverKind::Auto)?,
        model: m,
        positions: None,
        q,
        v,
    })
}

/// A unit-square mesh of `k × k` cells: the node-edge model on mesh features (diagonal M)
/// with the boundary held fixed.
pub fn mesh(k: usize) -> Result<Case> {
    let g = SystemGraph::from_mesh(crate::mesh::generate::square(k)?, "square mesh");
    let (q, mut v) = state(g.n_nodes(), 1.1);
    let shape = NetShape {
        hidden: 16,
        layers: 2,
        seed: 2,
    };
    let mut m = GraphModel::node_edge(&g, FeatureSet::Mesh, true, &shape, &[&q])?;
    m.boundary = Boundary::Fixed;
    let dynamics = m.dynamics(&g, SolverKind::Auto)?;
    for &j in dynamics.fixed_coords() {
        v[j] = 0.0;
    }
    Ok(Case {
        name: "mesh",
        dynamics,
        model: m,
        positions: positions(&g),
        q,
        v,
    })
}

/// The three cases at sizes for tests.
pub fn cases() -> Result<Vec<Case>> {
    Ok(vec![ring(60)?, graph(9, 7)?, mesh(12)?])
}
