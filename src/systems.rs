//! Ready-made systems: graph + sites + density + solver for the paper's examples.

use crate::density::{
    Ball, Density, DoublePendulum, Mlp, MlpDensity, Relativistic, Wave1d, Wave1dStandard,
};
use crate::dynamics::Dynamics;
use crate::graph::Graph;
use crate::lagrangian::Lagrangian;
use crate::sites::Sites;
use crate::solve::SolverKind;
use crate::Result;
use std::sync::Arc;

/// Which density a named system uses.
#[derive(Clone, Debug)]
pub enum DensityChoice {
    /// The closed-form density of the system.
    Analytic,
    /// A softplus MLP with `layers` hidden layers of width `hidden`, paper initialisation.
    Mlp {
        hidden: usize,
        layers: usize,
        seed: u64,
    },
    /// A given (e.g. trained) MLP.
    Trained(Mlp),
}

fn mlp_density(
    choice: &DensityChoice,
    arity: usize,
    dof: usize,
    analytic: Arc<dyn Density>,
) -> Result<Arc<dyn Density>> {
    let p = 2 * arity * dof;
    Ok(match choice {
        DensityChoice::Analytic => analytic,
        DensityChoice::Mlp {
            hidden,
            layers,
            seed,
        } => {
            let mut sizes = vec![p];
            sizes.extend(std::iter::repeat_n(*hidden, *layers));
            sizes.push(1);
            Arc::new(MlpDensity::new(
                Mlp::paper_init(&sizes, *seed),
                arity,
                dof,
                0,
            )?)
        }
        DensityChoice::Trained(mlp) => Arc::new(MlpDensity::new(mlp.clone(), arity, dof, 0)?),
    })
}

/// A single-node system with d coordinates and one site.
pub fn single_site(density: Arc<dyn Density>, solver: SolverKind) -> Result<Dynamics> {
    let graph = Graph::single_node(density.dof())?;
    let sites = Sites::single(&graph)?;
    let lag = Lagrangian::new(1, graph.dof, sites, density)?;
    Dynamics::new(lag, solver, graph.kind)
}

/// Falling ball, gravity along q₁ (paper appendix B).
pub fn ball(g: f64, density: &DensityChoice, solver: SolverKind) -> Result<Dynamics> {
    single_site(mlp_density(density, 1, 2, Arc::new(Ball { g }))?, solver)
}

/// Double pendulum, m = l = 1 (paper §4.1).
pub fn dblpend(g: f64, density: &DensityChoice, solver: SolverKind) -> Result<Dynamics> {
    single_site(
        mlp_density(density, 1, 2, Arc::new(DoublePendulum::paper(g)))?,
        solver,
    )
}

/// Relativistic particle (paper §4.2).
pub fn relativistic(g: f64, density: &DensityChoice, solver: SolverKind) -> Result<Dynamics> {
    single_site(
        mlp_density(density, 1, 1, Arc::new(Relativistic { g }))?,
        solver,
    )
}

/// 1D wave on a periodic ring of n nodes with sites (i−1, i, i+1) (paper §4.3).
pub fn wave1d(n: usize, dx: f64, density: &DensityChoice, solver: SolverKind) -> Result<Dynamics> {
    if !(dx.is_finite() && dx > 0.0) {
        return Err(crate::Error::input(format!(
            "dx must be positive and finite, got {dx}"
        )));
    }
    let graph = Graph::ring(n, 1)?;
    let sites = Sites::stencil3(&graph)?;
    let dens = mlp_density(density, 3, 1, Arc::new(Wave1d { dx }))?;
    let lag = Lagrangian::new(n, 1, sites, dens)?;
    Dynamics::new(lag, solver, graph.kind)
}

/// 1D wave on a periodic ring of n nodes with the standard three-point stencil as ground truth:
/// sites (i−1, i, i+1), ρ_i = ½φ̇_i² − ½((φ_{i+1} − φ_i)/Δx)², φ̈_i = (φ_{i+1} − 2φ_i + φ_{i−1})/Δx².
/// With an MLP density the graph and sites are those of [`wave1d`].
pub fn wave1d_standard(
    n: usize,
    dx: f64,
    density: &DensityChoice,
    solver: SolverKind,
) -> Result<Dynamics> {
    if !(dx.is_finite() && dx > 0.0) {
        return Err(crate::Error::input(format!(
            "dx must be positive and finite, got {dx}"
        )));
    }
    let graph = Graph::ring(n, 1)?;
    let sites = Sites::stencil3(&graph)?;
    let dens = mlp_density(density, 3, 1, Arc::new(Wave1dStandard { dx }))?;
    let lag = Lagrangian::new(n, 1, sites, dens)?;
    Dynamics::new(lag, solver, graph.kind)
}

/// A density on any graph: node-centred sites when the graph is regular.
pub fn on_graph(graph: &Graph, density: Arc<dyn Density>, solver: SolverKind) -> Result<Dynamics> {
    let sites = Sites::node_centred(graph)?;
    let lag = Lagrangian::new(graph.n_nodes(), graph.dof, sites, density)?;
    Dynamics::new(lag, solver, graph.kind)
}

// ---------------------------------------------------------------------------------------------
// Wave equation on a triangle mesh (issue 6).

/// The density of a [`wave_mesh`] system.
#[derive(Clone, Debug)]
pub enum MeshDensity {
    /// P1 FEM ground truth split as node sites ½ m_i φ̇_i² ([`crate::density::FemNodeMass`]) plus
    /// stiffness-only triangle sites ([`crate::density::FemTriangle`] without kinetic part): M is
    /// structurally diagonal (the lumped mass) and the solve is O(n).
    Fem,
    /// The same Lagrangian as one family of triangle sites
    /// ρ_T = ½ Σ_i (A_T/3) φ̇_i² − ½ φ_Tᵀ K_T φ_T: M's pattern is the mesh adjacency (its
    /// off-diagonal values are zero), solved by the sparse Cholesky. For cross-checks.
    FemTriangles,
    /// Learned density ([`wave_mesh_learned`]) with randomly initialised MLPs (paper
    /// initialisation, seeds `seed` and `seed + 1`), `layers` hidden layers of width `hidden`;
    /// feature inputs are scaled by their mean magnitude on this mesh.
    Mlp {
        hidden: usize,
        layers: usize,
        seed: u64,
    },
    /// Learned density with given (e.g. trained) node and edge MLPs.
    Trained { node: Box<Mlp>, edge: Box<Mlp> },
}

/// A mesh system: the dynamics plus the mesh graph and node geometry.
pub struct MeshSystem {
    pub dynamics: Dynamics,
    /// Mesh vertices as nodes (same numbering), triangle edges as graph edges, kind General.
    pub graph: Graph,
    pub positions: Vec<[f64; 2]>,
    pub boundary: Vec<bool>,
}

/// Input size of the node MLP of a learned mesh density: (φ_i, φ̇_i, node features).
pub const MESH_NODE_INPUT: usize = 2 + crate::mesh::features::NODE_FEATURES;
/// Input size of the edge MLP: (φ_a, φ_b, φ̇_a, φ̇_b, edge features).
pub const MESH_EDGE_INPUT: usize = 4 + crate::mesh::features::EDGE_FEATURES;

fn mesh_graph(mesh: &crate::mesh::TriMesh) -> Result<Graph> {
    let edges: Vec<(usize, usize)> = mesh.edges().into_iter().map(|[a, b]| (a, b)).collect();
    Graph::from_edges(mesh.n_nodes(), &edges, 1)
}

/// The wave equation φ_tt = Δφ (c = 1, free boundary) on a triangle mesh, with the FEM ground
/// truth or a learned density (see [`MeshDensity`]). d = 1 coordinate per node.
pub fn wave_mesh(
    mesh: &crate::mesh::TriMesh,
    density: &MeshDensity,
    solver: SolverKind,
) -> Result<MeshSystem> {
    use crate::density::{FemNodeMass, FemTriangle};
    use crate::mesh::features;
    let n = mesh.n_nodes();
    let (lag, graph) = match density {
        MeshDensity::Fem | MeshDensity::FemTriangles => {
            let graph = mesh_graph(mesh)?;
            let kinetic = matches!(density, MeshDensity::FemTriangles);
            let tri = FemTriangle { kinetic };
            let tris =
                Sites::explicit(3, mesh.triangles.iter().flatten().copied().collect(), n)?
                    .with_features(tri.n_features(), features::triangle_features(mesh, kinetic))?;
            let lag = if kinetic {
                Lagrangian::new(n, 1, tris, Arc::new(tri))?
            } else {
                let nodes =
                    Sites::nodes(&graph)?.with_features(1, crate::mesh::fem::lumped_mass(mesh))?;
                Lagrangian::new(n, 1, nodes, Arc::new(FemNodeMass))?
                    .with_term(tris, Arc::new(tri))?
            };
            (lag, graph)
        }
        MeshDensity::Mlp {
            hidden,
            layers,
            seed,
        } => {
            let (nm, em) = mesh_mlps(mesh, *hidden, *layers, *seed);
            return wave_mesh_learned(mesh, nm, em, solver);
        }
        MeshDensity::Trained { node, edge } => {
            return wave_mesh_learned(mesh, (**node).clone(), (**edge).clone(), solver);
        }
    };
    Ok(MeshSystem {
        dynamics: Dynamics::new(lag, solver, graph.kind)?,
        graph,
        positions: mesh.positions.clone(),
        boundary: mesh.boundary.clone(),
    })
}

/// Randomly initialised node and edge MLPs for a learned mesh density (paper initialisation,
/// seeds `seed`, `seed + 1`), with the feature inputs scaled by their mean magnitude on `mesh`
/// (so the same network sees O(1) features at any resolution; φ and φ̇ inputs are unscaled).
pub fn mesh_mlps(
    mesh: &crate::mesh::TriMesh,
    hidden: usize,
    layers: usize,
    seed: u64,
) -> (Mlp, Mlp) {
    use crate::mesh::features::{self, EDGE_FEATURES, NODE_FEATURES};
    let sizes = |p: usize| {
        let mut s = vec![p];
        s.extend(std::iter::repeat_n(hidden, layers));
        s.push(1);
        s
    };
    let mean_abs = |vals: &[f64], nf: usize, j: usize| {
        let cnt = (vals.len() / nf).max(1) as f64;
        let m = vals
            .iter()
            .skip(j)
            .step_by(nf)
            .map(|x| x.abs())
            .sum::<f64>()
            / cnt;
        if m > 0.0 && m.is_finite() {
            m
        } else {
            1.0
        }
    };
    let mut node = Mlp::paper_init(&sizes(MESH_NODE_INPUT), seed);
    let nf = features::node_features(mesh);
    for j in 0..NODE_FEATURES {
        node.input_scale[2 + j] = mean_abs(&nf, NODE_FEATURES, j);
    }
    let mut edge = Mlp::paper_init(&sizes(MESH_EDGE_INPUT), seed.wrapping_add(1));
    let g = features::edge_geometry(mesh);
    let ef: Vec<f64> = (0..g.edges.len())
        .flat_map(|e| features::edge_features(&g, e))
        .collect();
    for j in 0..EDGE_FEATURES {
        edge.input_scale[4 + j] = mean_abs(&ef, EDGE_FEATURES, j);
    }
    (node, edge)
}

/// A learned Lagrangian on a triangle mesh, invariant to node numbering and independent of
/// node degree:
///
/// ```text
/// L = Σ_i ρ_node(φ_i, φ̇_i; m_i, boundary_i)
///   + Σ_{edges {a,b}} [ρ_edge(φ_a, φ_b, φ̇_a, φ̇_b; f_ab) + ρ_edge(φ_b, φ_a, φ̇_b, φ̇_a; f_ab)]
/// ```
///
/// with node features (lumped area, boundary flag) and edge features f_ab (length, cotangent
/// weight ½(cot α + cot β), adjacent triangle area, boundary-edge flag) that are themselves
/// symmetric in (a, b) — see [`crate::mesh::features`].
///
/// Design: a site has a fixed arity, but mesh nodes have 3 to ~10 neighbours, so instead of
/// node-centred sites (which would need a per-degree network or padding and an order of the
/// neighbours) the density is a sum of a node term and a pairwise edge term: any degree, no
/// neighbour order. The edge term is made symmetric under a ↔ b by listing every edge as two
/// sites, (a, b) and (b, a), evaluated by the same `edge_mlp` (Reynolds/Janossy
/// symmetrisation): exact, smooth (a canonical "sort the endpoints" order would not be
/// differentiable where φ_a = φ_b), and both terms stay plain [`MlpDensity`] terms with the
/// ordinary exact-derivative and training machinery. The price is two edge-MLP evaluations per
/// edge. M couples graph neighbours only (pattern = adjacency + diagonal), solved by sparse
/// Cholesky with AMD ordering.
///
/// `node_mlp` takes [`MESH_NODE_INPUT`] inputs, `edge_mlp` [`MESH_EDGE_INPUT`]. Terms: 0 = node,
/// 1 = edge; a trainer replaces their parameters with [`MeshSystem::set_mlps`].
pub fn wave_mesh_learned(
    mesh: &crate::mesh::TriMesh,
    node_mlp: Mlp,
    edge_mlp: Mlp,
    solver: SolverKind,
) -> Result<MeshSystem> {
    use crate::mesh::features::{self, EDGE_FEATURES, NODE_FEATURES};
    let n = mesh.n_nodes();
    let graph = mesh_graph(mesh)?;
    let nodes =
        Sites::nodes(&graph)?.with_features(NODE_FEATURES, features::node_features(mesh))?;
    let g = features::edge_geometry(mesh);
    let mut en = Vec::with_capacity(4 * g.edges.len());
    let mut ef = Vec::with_capacity(2 * EDGE_FEATURES * g.edges.len());
    for (e, &[a, b]) in g.edges.iter().enumerate() {
        let f = features::edge_features(&g, e);
        en.extend_from_slice(&[a, b, b, a]);
        ef.extend_from_slice(&f);
        ef.extend_from_slice(&f);
    }
    let edges = Sites::explicit(2, en, n)?.with_features(EDGE_FEATURES, ef)?;
    let lag = Lagrangian::new(
        n,
        1,
        nodes,
        Arc::new(MlpDensity::new(node_mlp, 1, 1, NODE_FEATURES)?),
    )?
    .with_term(
        edges,
        Arc::new(MlpDensity::new(edge_mlp, 2, 1, EDGE_FEATURES)?),
    )?;
    Ok(MeshSystem {
        dynamics: Dynamics::new(lag, solver, graph.kind)?,
        graph,
        positions: mesh.positions.clone(),
        boundary: mesh.boundary.clone(),
    })
}

impl MeshSystem {
    /// Replace the node and edge MLPs of a learned mesh system (same sizes; the sparsity
    /// pattern and solver plan stay valid).
    pub fn set_mlps(&mut self, node_mlp: Mlp, edge_mlp: Mlp) -> Result<()> {
        use crate::mesh::features::{EDGE_FEATURES, NODE_FEATURES};
        let terms = &mut self.dynamics.lagrangian.terms;
        if terms.len() != 2 || terms[0].sites.arity != 1 || terms[1].sites.arity != 2 {
            return Err(crate::Error::input(
                "set_mlps needs a learned mesh system (node term + edge term)",
            ));
        }
        terms[0].density = Arc::new(MlpDensity::new(node_mlp, 1, 1, NODE_FEATURES)?);
        terms[1].density = Arc::new(MlpDensity::new(edge_mlp, 2, 1, EDGE_FEATURES)?);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Spring networks on any graph.

/// A nonlinear spring network on `graph` (closed form, the ground truth of the spring-chain
/// examples and tests): L = Σ_i ½ m |q̇_i|² − Σ_edges Σ_c [½ k Δ_c² + ¼ β Δ_c⁴], Δ = q_b − q_a,
/// with the graph's boundary nodes held fixed when `fixed_boundary`.
pub fn spring_network(
    graph: &crate::model::SystemGraph,
    mass: f64,
    k: f64,
    beta: f64,
    fixed_boundary: bool,
    solver: SolverKind,
) -> Result<Dynamics> {
    use crate::density::{NodeKinetic, SpringEdge};
    for (name, x) in [("mass", mass), ("k", k), ("beta", beta)] {
        if !x.is_finite() {
            return Err(crate::Error::input(format!(
                "{name} must be finite, got {x}"
            )));
        }
    }
    if mass <= 0.0 {
        return Err(crate::Error::input(format!(
            "the node mass must be positive, got {mass}"
        )));
    }
    let (n, d) = (graph.n_nodes(), graph.dof());
    let nodes = Sites::explicit(1, (0..n).collect(), n)?.with_features(1, vec![mass; n])?;
    let edges = Sites::explicit(
        2,
        graph.data.edges.iter().flat_map(|&[a, b]| [a, b]).collect(),
        n,
    )?;
    let lag = Lagrangian::new(n, d, nodes, Arc::new(NodeKinetic { dof: d }))?
        .with_term(edges, Arc::new(SpringEdge { dof: d, k, beta }))?;
    let dy = Dynamics::new(lag, solver, crate::graph::GraphKind::General)?;
    if fixed_boundary {
        dy.with_fixed(&graph.boundary_coords()?)
    } else {
        Ok(dy)
    }
}
