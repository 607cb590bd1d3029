//! One description of a learned Lagrangian graph model (docs/DESIGN.md §11): where its graph
//! comes from ([`SystemGraph`]), its terms ([`GraphTerm`]) and their networks
//! ([`GraphModel`]), from which [`GraphModel::dynamics`] builds the Euler–Lagrange system in one
//! place — on the graph the model was trained on, or zero-shot on another graph or mesh with the
//! same kind of features.
//!
//! ```text
//! L(q, q̇) = Σ_terms Σ_{s ∈ sites(term)} ρ_term(q_{I_s}, q̇_{I_s}; f_s)
//! ```
//!
//! The `node-edge` model ([`GraphModel::node_edge`]) is
//! L = Σ_i ½ μ_i |q̇_i|² + Σ_{edges ab} [N(q_b − q_a; f_ab) + N(q_a − q_b; f_ab)]
//! (+ Σ_i N_node(q_i; f_i) when asked), with learned positive masses μ_i = s_i·softplus(g(f_i)):
//! M = diag(μ) is positive definite at every state and the solve is diagonal.

mod dissipation;
pub(crate) mod file;
mod input_map;
pub use dissipation::GraphDissipation;
pub use input_map::{InputMapKind, LearnedInputMap};

pub use file::{load_graph_model, GRAPH_MODEL_KIND};

use crate::density::{Density, Mlp, MlpDensity, NodeKinetic, PotentialInput, PotentialMlp};
use crate::dynamics::Dynamics;
use crate::graph::GraphKind;
use crate::io::GraphData;
use crate::lagrangian::Lagrangian;
use crate::mesh::TriMesh;
use crate::sites::Sites;
use crate::solve::SolverKind;
use crate::{Error, Result};
use ndarray::Array2;
use std::path::Path;
use std::sync::Arc;

/// Which per-node and per-edge features the networks see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureSet {
    /// The graph file's `node_features` and `edge_features` datasets (none if absent).
    Graph,
    /// Geometric features of a triangle mesh: per node its lumped area m_i, per edge its
    /// cotangent weight w_ab (what P1 finite elements are made of; both scale-consistent, so a
    /// model transfers between meshes of other shapes and resolutions).
    Mesh,
}

crate::named!(FeatureSet {
    Graph => "graph": "the graph file's node_features and edge_features",
    Mesh => "mesh": "lumped areas per node, cotangent weights per edge",
});

/// Boundary nodes: free (default) or held fixed (Dirichlet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Boundary {
    #[default]
    Free,
    Fixed,
}

crate::named!(Boundary {
    Free => "free": "boundary nodes move freely",
    Fixed => "fixed": "boundary nodes are held fixed (Dirichlet)",
});

/// The factor s_i of a learned node mass μ_i = s_i · softplus(g(f_i)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MassScale {
    /// s_i = 1.
    One,
    /// s_i = the node's lumped area (meshes): the mass of a continuum scales with its area.
    LumpedArea,
}

crate::named!(MassScale {
    One => "one": "mass scale 1 per node",
    LumpedArea => "lumped_area": "mass scale = the node's lumped mesh area",
});

/// One term of a graph model and its network.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphTerm {
    /// ½ μ_i |q̇_i|² with μ_i = s_i · softplus(g(f_i)); `net` is g, taking the node features
    /// (or the constant 1 when there are none).
    Kinetic {
        net: Mlp,
        scale: MassScale,
        n_features: usize,
    },
    /// N(q_b − q_a; f_ab) + N(q_a − q_b; f_ab) on every edge.
    EdgePotential(Mlp),
    /// N(|q_b − q_a|; f_ab) on every edge, q the particles' positions in 2-D/3-D: invariant
    /// under translations and rotations, so with the kinetic term linear and angular momentum
    /// are conserved (docs/DESIGN.md §14.3).
    EdgeDistance(Mlp),
    /// N(q_i; f_i) on every node.
    NodePotential(Mlp),
    /// A general density ρ(q_I, q̇_I) over the graph file's explicit `sites` tuples.
    Sites(Mlp),
    /// A general density over the 1-D stencils (i−1, i, i+1) of a ring or a chain.
    Stencil(Mlp),
    /// A closed-form density by name, with its parameters (nothing to train): a known part of
    /// the Lagrangian next to learned ones.
    Closed(ClosedTerm),
}

/// Closed-form densities a model file can name (docs/SCHEMA.md, model files v2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClosedTerm {
    /// ½ m |q̇_i|² on every node.
    NodeMass { mass: f64 },
    /// −Σ_c [½ k Δ_c² + ¼ β Δ_c⁴] on every edge, Δ = q_b − q_a: a (nonlinear) spring.
    Spring { k: f64, beta: f64 },
}

impl ClosedTerm {
    /// Name in model files (`terms/<t>@name`).
    pub fn name(&self) -> &'static str {
        match self {
            ClosedTerm::NodeMass { .. } => "node_mass",
            ClosedTerm::Spring { .. } => "spring",
        }
    }
    /// Parameters by name, in file order.
    pub fn params(&self) -> Vec<(&'static str, f64)> {
        match *self {
            ClosedTerm::NodeMass { mass } => vec![("mass", mass)],
            ClosedTerm::Spring { k, beta } => vec![("k", k), ("beta", beta)],
        }
    }
    /// The term of `name` with parameters looked up by `param` (None: missing).
    pub fn from_name(name: &str, mut param: impl FnMut(&str) -> Option<f64>) -> Result<Self> {
        let mut get = |p: &str| {
            param(p).ok_or_else(|| Error::input(format!("closed term '{name}' needs '{p}'")))
        };
        let t = match name {
            "node_mass" => ClosedTerm::NodeMass { mass: get("mass")? },
            "spring" => ClosedTerm::Spring {
                k: get("k")?,
                beta: get("beta")?,
            },
            other => {
                return Err(Error::input(format!(
                    "'{other}' is not a closed-form term: choose node_mass or spring"
                )))
            }
        };
        t.check()?;
        Ok(t)
    }
    /// Finite parameters, a positive mass.
    pub fn check(&self) -> Result<()> {
        for (p, x) in self.params() {
            if !x.is_finite() {
                return Err(Error::input(format!(
                    "closed term '{}': {p} = {x} is not finite",
                    self.name()
                )));
            }
        }
        if let ClosedTerm::NodeMass { mass } = *self {
            if mass <= 0.0 {
                return Err(Error::input(format!(
                    "closed term 'node_mass': mass = {mass} must be positive"
                )));
            }
        }
        Ok(())
    }
}

impl GraphTerm {
    /// Name in model files (`terms/<t>@kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            GraphTerm::Kinetic { .. } => "node_kinetic",
            GraphTerm::EdgePotential(_) => "edge_potential",
            GraphTerm::EdgeDistance(_) => "edge_distance",
            GraphTerm::NodePotential(_) => "node_potential",
            GraphTerm::Sites(_) => "sites",
            GraphTerm::Stencil(_) => "stencil3",
            GraphTerm::Closed(_) => "closed",
        }
    }
    /// The term's network (none for a closed-form term).
    pub fn net(&self) -> Option<&Mlp> {
        match self {
            GraphTerm::Kinetic { net, .. }
            | GraphTerm::EdgePotential(net)
            | GraphTerm::EdgeDistance(net)
            | GraphTerm::NodePotential(net)
            | GraphTerm::Sites(net)
            | GraphTerm::Stencil(net) => Some(net),
            GraphTerm::Closed(_) => None,
        }
    }
    pub fn net_mut(&mut self) -> Option<&mut Mlp> {
        match self {
            GraphTerm::Kinetic { net, .. }
            | GraphTerm::EdgePotential(net)
            | GraphTerm::EdgeDistance(net)
            | GraphTerm::NodePotential(net)
            | GraphTerm::Sites(net)
            | GraphTerm::Stencil(net) => Some(net),
            GraphTerm::Closed(_) => None,
        }
    }
}

/// A graph (from a graph file, a mesh, or generated) with what the models need of it.
#[derive(Clone, Debug)]
pub struct SystemGraph {
    /// Nodes, edges (in the order of `edge_features`), features, boundary flags, positions.
    pub data: GraphData,
    /// The triangle mesh, when the graph is one.
    pub mesh: Option<TriMesh>,
    /// Where it came from (a file name), for messages.
    pub name: String,
    kind: GraphKind,
}

impl SystemGraph {
    /// A graph file (docs/SCHEMA.md, kind `graph`).
    pub fn from_graph_file(path: &Path) -> Result<SystemGraph> {
        let data = GraphData::read(path)?;
        SystemGraph::from_data(data, &path.display().to_string())
    }

    /// An in-memory graph.
    pub fn from_data(data: GraphData, name: &str) -> Result<SystemGraph> {
        if let Some(p) = data.problems().first() {
            return Err(Error::input(format!("{name}: {}: {}", p.location, p.msg)));
        }
        let kind = detect_kind(&data);
        let mesh = match (&data.triangles, &data.positions) {
            (Some(t), Some(p)) if p.ncols() == 2 => {
                let pos = p.rows().into_iter().map(|r| [r[0], r[1]]).collect();
                TriMesh::new(pos, t.clone()).ok()
            }
            _ => None,
        };
        Ok(SystemGraph {
            data,
            mesh,
            name: name.to_string(),
            kind,
        })
    }

    /// A Gmsh mesh file (one coordinate per node, the mesh's edges as graph edges).
    pub fn from_mesh_file(path: &Path) -> Result<SystemGraph> {
        let (mesh, _) = crate::mesh::read_msh(path)?;
        Ok(SystemGraph::from_mesh(mesh, &path.display().to_string()))
    }

    /// A triangle mesh with `dof` = 1; edges in [`crate::mesh::features::edge_geometry`] order.
    pub fn from_mesh(mesh: TriMesh, name: &str) -> SystemGraph {
        let geom = crate::mesh::features::edge_geometry(&mesh);
        let n = mesh.n_nodes();
        let mut data = GraphData::new(n, 1, geom.edges.clone());
        data.positions = Some(Array2::from_shape_fn((n, 2), |(i, j)| mesh.positions[i][j]));
        data.triangles = Some(mesh.triangles.clone());
        data.boundary = Some(mesh.boundary.clone());
        SystemGraph {
            data,
            mesh: Some(mesh),
            name: name.to_string(),
            kind: GraphKind::General,
        }
    }

    /// A periodic ring (`ring = true`) or an open chain of `n` nodes with `dof` coordinates,
    /// positions i/n on the line.
    pub fn line(n: usize, dof: usize, ring: bool) -> Result<SystemGraph> {
        let g = if ring {
            crate::graph::Graph::ring(n, dof)?
        } else {
            crate::graph::Graph::chain(n, dof)?
        };
        let mut data = GraphData::new(n, dof, g.edges().into_iter().map(|(a, b)| [a, b]).collect());
        data.positions = Some(Array2::from_shape_fn((n, 1), |(i, _)| i as f64 / n as f64));
        SystemGraph::from_data(data, if ring { "ring" } else { "chain" })
    }

    pub fn n_nodes(&self) -> usize {
        self.data.n_nodes
    }
    pub fn dof(&self) -> usize {
        self.data.dof
    }
    pub fn n_coords(&self) -> usize {
        self.data.n_nodes * self.data.dof
    }
    pub fn kind(&self) -> GraphKind {
        self.kind
    }

    fn need_mesh(&self) -> Result<&TriMesh> {
        self.mesh.as_ref().ok_or_else(|| {
            Error::input(format!(
                "{}: the model uses mesh features (lumped areas, cotangent weights) but this graph is not a triangle mesh (it needs 2-D positions and triangles)",
                self.name
            ))
        })
    }

    /// Node features `(F, n × F values)` for a feature set.
    pub fn node_features(&self, set: FeatureSet) -> Result<(usize, Vec<f64>)> {
        match set {
            FeatureSet::Graph => Ok(match &self.data.node_features {
                Some(f) => (f.ncols(), f.iter().copied().collect()),
                None => (0, vec![]),
            }),
            FeatureSet::Mesh => Ok((1, crate::mesh::fem::lumped_mass(self.need_mesh()?))),
        }
    }

    /// Edge features `(F, E × F values)` in the order of `data.edges`.
    pub fn edge_features(&self, set: FeatureSet) -> Result<(usize, Vec<f64>)> {
        match set {
            FeatureSet::Graph => Ok(match &self.data.edge_features {
                Some(f) => (f.ncols(), f.iter().copied().collect()),
                None => (0, vec![]),
            }),
            FeatureSet::Mesh => {
                let mesh = self.need_mesh()?;
                let g = crate::mesh::features::edge_geometry(mesh);
                // Align with data.edges (a graph file holding a mesh may list edges in any order).
                let mut out = Vec::with_capacity(self.data.edges.len());
                for (k, &[a, b]) in self.data.edges.iter().enumerate() {
                    let key = [a.min(b), a.max(b)];
                    let e = g.edges.binary_search(&key).map_err(|_| {
                        Error::input(format!(
                            "{}: edge {k} = ({a}, {b}) is not an edge of the triangles",
                            self.name
                        ))
                    })?;
                    out.push(g.cot_weight[e]);
                }
                Ok((1, out))
            }
        }
    }

    /// The mass factors s_i of a kinetic term.
    pub fn mass_scale(&self, s: MassScale) -> Result<Vec<f64>> {
        match s {
            MassScale::One => Ok(vec![1.0; self.n_nodes()]),
            MassScale::LumpedArea => Ok(crate::mesh::fem::lumped_mass(self.need_mesh()?)),
        }
    }

    /// Coordinates of the boundary nodes (every coordinate of each flagged node).
    pub fn boundary_coords(&self) -> Result<Vec<usize>> {
        let b = self.data.boundary.as_ref().ok_or_else(|| {
            Error::input(format!(
                "{}: fixed boundary nodes were asked for but the graph has no 'boundary' flags",
                self.name
            ))
        })?;
        let d = self.dof();
        Ok(b.iter()
            .enumerate()
            .filter(|(_, &f)| f)
            .flat_map(|(i, _)| (0..d).map(move |c| i * d + c))
            .collect())
    }
}

/// Ring or chain when the edges are exactly those of one (in node order), else general.
fn detect_kind(g: &GraphData) -> GraphKind {
    let n = g.n_nodes;
    if n < 3 {
        return GraphKind::General;
    }
    let mut e: Vec<[usize; 2]> = g.edges.iter().map(|&[a, b]| [a.min(b), a.max(b)]).collect();
    e.sort_unstable();
    let chain: Vec<[usize; 2]> = (0..n - 1).map(|i| [i, i + 1]).collect();
    if e == chain {
        return GraphKind::Chain;
    }
    let mut ring = chain;
    ring.push([0, n - 1]);
    ring.sort_unstable();
    if e == ring {
        GraphKind::Ring
    } else {
        GraphKind::General
    }
}

/// A learned Lagrangian on graphs: the terms, their networks, and what they are fed.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphModel {
    /// Coordinates per node.
    pub dof: usize,
    pub features: FeatureSet,
    pub boundary: Boundary,
    /// Coordinates are angles of this period (e.g. 2π): node potentials see q_i, edge
    /// potentials q_b − q_a, and general (sites, stencil) terms each q, wrapped into
    /// [−P/2, P/2) (docs/DESIGN.md §7). `None`: not periodic.
    pub q_period: Option<f64>,
    pub terms: Vec<GraphTerm>,
    /// The graph it was trained on (stored in the model file; the default graph of `accel` and
    /// `simulate`).
    pub graph: GraphData,
    /// Physical system name of the training data (free-form).
    pub system: String,
    /// A learned dissipation D = ½ Σ γ_i |q̇_i|² (docs/DESIGN.md §13.7); `None`: conservative.
    pub dissipation: Option<GraphDissipation>,
    /// A learned input map B (docs/DESIGN.md §13.9); `None`: the input map is given with the
    /// data (or there is no input).
    pub input_map: Option<LearnedInputMap>,
}

/// Architecture of the networks of a new model.
#[derive(Clone, Debug)]
pub struct NetShape {
    pub hidden: usize,
    pub layers: usize,
    pub seed: u64,
}

impl Default for NetShape {
    fn default() -> Self {
        NetShape {
            hidden: 64,
            layers: 2,
            seed: 0,
        }
    }
}

/// Hidden units of the kinetic mass network g.
pub const MASS_HIDDEN: usize = 8;

fn sizes(p: usize, s: &NetShape) -> Vec<usize> {
    let mut v = vec![p];
    v.extend(std::iter::repeat_n(s.hidden, s.layers));
    v.push(1);
    v
}

/// Mean |x| of column j of a site-major `rows × nf` block (1 where it vanishes).
fn mean_abs(vals: &[f64], nf: usize, j: usize) -> f64 {
    let cnt = (vals.len() / nf.max(1)).max(1) as f64;
    let m = vals
        .iter()
        .skip(j)
        .step_by(nf.max(1))
        .map(|x| x.abs())
        .sum::<f64>()
        / cnt;
    if m > 1e-300 && m.is_finite() {
        m
    } else {
        1.0
    }
}

/// Root-mean-square of x (1 where it vanishes).
fn rms(xs: impl Iterator<Item = f64>) -> f64 {
    rms_over(&crate::parallel::SerialComm, xs).expect("one rank does not communicate")
}

/// [`rms`] of values spread over the ranks of `comm`.
fn rms_over(comm: &dyn crate::parallel::Comm, xs: impl Iterator<Item = f64>) -> Result<f64> {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        s += x * x;
        c += 1.0;
    }
    let mut acc = [s, c];
    comm.sum(&mut acc)?;
    let [s, c] = acc;
    let r = (s / c.max(1.0)).sqrt();
    Ok(if r > 1e-300 && r.is_finite() { r } else { 1.0 })
}

impl GraphModel {
    /// A model of the given terms on `graph` (boundary free, features as given): e.g. closed-form
    /// terms only, or a known [`ClosedTerm::NodeMass`] next to a learned edge potential.
    pub fn from_terms(
        graph: &SystemGraph,
        features: FeatureSet,
        terms: Vec<GraphTerm>,
    ) -> Result<GraphModel> {
        if terms.is_empty() {
            return Err(Error::input("a graph model needs at least one term"));
        }
        for t in &terms {
            if let GraphTerm::Closed(c) = t {
                c.check()?;
            }
        }
        let m = GraphModel {
            dof: graph.dof(),
            features,
            boundary: Boundary::Free,
            q_period: None,
            terms,
            graph: graph.data.clone(),
            system: String::new(),
            dissipation: None,
            input_map: None,
        };
        m.check_graph(graph)?;
        Ok(m)
    }

    /// The `node-edge` model on `graph` (see the module documentation), networks initialised
    /// with the paper's scheme; `q_samples` (rows of n·d coordinates, e.g. the training states)
    /// set the scale of the edge differences the edge network sees.
    pub fn node_edge(
        graph: &SystemGraph,
        features: FeatureSet,
        node_potential: bool,
        shape: &NetShape,
        q_samples: &[&[f64]],
    ) -> Result<GraphModel> {
        let one = crate::parallel::SerialComm;
        Self::node_edge_over(graph, features, node_potential, shape, q_samples, &one)
    }

    /// [`GraphModel::node_edge`] with the samples spread over the ranks of `comm` (each rank
    /// passes its shard; the scales are those of all shards, identical on every rank).
    pub fn node_edge_over(
        graph: &SystemGraph,
        features: FeatureSet,
        node_potential: bool,
        shape: &NetShape,
        q_samples: &[&[f64]],
        comm: &dyn crate::parallel::Comm,
    ) -> Result<GraphModel> {
        check_shape(shape)?;
        let d = graph.dof();
        if graph.data.edges.is_empty() {
            return Err(Error::input(format!(
                "{}: a node-edge model needs edges; the graph has none",
                graph.name
            )));
        }
        let (nfn, fnode) = graph.node_features(features)?;
        let (nfe, fedge) = graph.edge_features(features)?;
        let scale = match features {
            FeatureSet::Mesh => MassScale::LumpedArea,
            FeatureSet::Graph => MassScale::One,
        };
        // Mass network g(f_i): features scaled by their mean magnitude (constant input 1 when the
        // graph has no node features); output bias so that softplus(g) ≈ 1 at the start.
        let kin_in = nfn.max(1);
        let mut g = Mlp::paper_init(&[kin_in, MASS_HIDDEN, 1], shape.seed.wrapping_add(7));
        for j in 0..nfn {
            g.input_scale[j] = mean_abs(&fnode, nfn, j);
        }
        for w in &mut g.weights[1] {
            *w /= MASS_HIDDEN as f64;
        }
        g.biases[1][0] = 0.5413; // softplus(0.5413) ≈ 1
        let mut edge = Mlp::paper_init(&sizes(d + nfe, shape), shape.seed);
        let delta_scale: Vec<f64> = (0..d)
            .map(|c| {
                rms_over(
                    comm,
                    q_samples.iter().flat_map(|q| {
                        graph
                            .data
                            .edges
                            .iter()
                            .map(move |&[a, b]| q[b * d + c] - q[a * d + c])
                    }),
                )
            })
            .collect::<Result<_>>()?;
        edge.input_scale[..d].copy_from_slice(&delta_scale);
        for j in 0..nfe {
            edge.input_scale[d + j] = mean_abs(&fedge, nfe, j);
        }
        let mut terms = vec![
            GraphTerm::Kinetic {
                net: g,
                scale,
                n_features: nfn,
            },
            GraphTerm::EdgePotential(edge),
        ];
        if node_potential {
            let mut node = Mlp::paper_init(&sizes(d + nfn, shape), shape.seed.wrapping_add(1));
            for c in 0..d {
                let xs = q_samples
                    .iter()
                    .flat_map(|q| (0..graph.n_nodes()).map(move |i| q[i * d + c]));
                let (mut s, mut n) = (0.0, 0.0);
                for x in xs.clone() {
                    s += x;
                    n += 1.0;
                }
                let mut acc = [s, n];
                comm.sum(&mut acc)?;
                let [s, n] = acc;
                node.input_shift[c] = if n > 0.0 { s / n } else { 0.0 };
                let m = node.input_shift[c];
                node.input_scale[c] = rms_over(comm, xs.map(|x| x - m))?;
            }
            for j in 0..nfn {
                node.input_scale[d + j] = mean_abs(&fnode, nfn, j);
            }
            terms.push(GraphTerm::NodePotential(node));
        }
        Ok(GraphModel {
            dof: d,
            features,
            boundary: Boundary::Free,
            q_period: None,
            terms,
            graph: graph.data.clone(),
            system: String::new(),
            dissipation: None,
            input_map: None,
        })
    }

    /// One general density over the graph file's `sites` tuples (`stencil = false`) or over
    /// the 1-D stencils of a ring/chain (`stencil = true`); inputs (q_I, q̇_I) normalised by the
    /// statistics of `states` (rows (q, q̇) of 2·n·d values).
    /// Replace the edge-difference potential of a [`GraphModel::node_edge`] model by an
    /// edge-distance potential N(|q_b − q_a|; f_ab) (q the particles' positions, dof 2 or 3;
    /// docs/DESIGN.md §14.3): a network of the same shape on 1 + nf inputs, the distance
    /// scaled by its RMS over `q_samples`. A periodic model (q_period) is refused.
    pub fn with_edge_distance(
        mut self,
        graph: &SystemGraph,
        shape: &NetShape,
        q_samples: &[&[f64]],
    ) -> Result<GraphModel> {
        check_shape(shape)?;
        let d = self.dof;
        if !(2..=3).contains(&d) {
            return Err(Error::input(format!(
                "{}: an edge-distance potential needs node positions in 2-D or 3-D (dof 2 or 3); the graph has dof {d}",
                graph.name
            )));
        }
        if self.q_period.is_some() {
            return Err(Error::input(
                "an edge-distance potential takes positions, not periodic coordinates (--angles)",
            ));
        }
        let t = self
            .terms
            .iter()
            .position(|t| matches!(t, GraphTerm::EdgePotential(_)))
            .ok_or_else(|| Error::input("the model has no edge potential to replace"))?;
        let (nfe, fedge) = graph.edge_features(self.features)?;
        let mut net = Mlp::paper_init(&sizes(1 + nfe, shape), shape.seed);
        net.input_scale[0] = rms(q_samples.iter().flat_map(|q| {
            graph.data.edges.iter().map(move |&[a, b]| {
                let mut xs = [0.0; 6];
                xs[..d].copy_from_slice(&q[a * d..a * d + d]);
                xs[d..2 * d].copy_from_slice(&q[b * d..b * d + d]);
                crate::density::potential::edge_distance(&xs, d, &mut [0.0; 3])
            })
        }));
        for j in 0..nfe {
            net.input_scale[1 + j] = mean_abs(&fedge, nfe, j);
        }
        self.terms[t] = GraphTerm::EdgeDistance(net);
        Ok(self)
    }

    pub fn general(
        graph: &SystemGraph,
        stencil: bool,
        shape: &NetShape,
        states: &[&[f64]],
    ) -> Result<GraphModel> {
        check_shape(shape)?;
        let d = graph.dof();
        let arity = if stencil {
            if !matches!(graph.kind, GraphKind::Ring | GraphKind::Chain) {
                return Err(Error::input(format!(
                    "{}: stencil sites (i−1, i, i+1) need a ring or a chain graph",
                    graph.name
                )));
            }
            3
        } else {
            graph
                .data
                .sites
                .as_ref()
                .ok_or_else(|| {
                    Error::input(format!(
                        "{}: a 'sites' model needs the graph file's 'sites' dataset",
                        graph.name
                    ))
                })?
                .ncols()
        };
        let kd = arity * d;
        let mut net = Mlp::paper_init(&sizes(2 * kd, shape), shape.seed);
        let nc = graph.n_coords();
        for (half, off) in [(0usize, 0usize), (1, kd)] {
            for c in 0..d {
                let xs = || {
                    states
                        .iter()
                        .flat_map(move |s| (0..nc / d).map(move |i| s[half * nc + i * d + c]))
                };
                let n = xs().count().max(1) as f64;
                let m = xs().sum::<f64>() / n;
                let sd = rms(xs().map(|x| x - m));
                for a in 0..arity {
                    net.input_shift[off + a * d + c] = m;
                    net.input_scale[off + a * d + c] = sd;
                }
            }
        }
        Ok(GraphModel {
            dof: d,
            features: FeatureSet::Graph,
            boundary: Boundary::Free,
            q_period: None,
            terms: vec![if stencil {
                GraphTerm::Stencil(net)
            } else {
                GraphTerm::Sites(net)
            }],
            graph: graph.data.clone(),
            system: String::new(),
            dissipation: None,
            input_map: None,
        })
    }

    /// The model's training graph as a [`SystemGraph`].
    pub fn own_graph(&self) -> Result<SystemGraph> {
        SystemGraph::from_data(self.graph.clone(), "the model's training graph")
    }

    /// Check that `graph` can carry this model: dof and feature counts.
    pub fn check_graph(&self, graph: &SystemGraph) -> Result<()> {
        if graph.dof() != self.dof {
            return Err(Error::input(format!(
                "{}: the graph has {} coordinates per node but the model was trained with dof = {}",
                graph.name,
                graph.dof(),
                self.dof
            )));
        }
        for t in &self.terms {
            let (what, have, want) = match t {
                GraphTerm::Kinetic { n_features, .. } => (
                    "node features",
                    graph.node_features(self.features)?.0,
                    *n_features,
                ),
                GraphTerm::EdgePotential(net) => (
                    "edge features",
                    graph.edge_features(self.features)?.0,
                    net.sizes[0] - self.dof,
                ),
                GraphTerm::EdgeDistance(net) => (
                    "edge features",
                    graph.edge_features(self.features)?.0,
                    net.sizes[0] - 1,
                ),
                GraphTerm::NodePotential(net) => (
                    "node features",
                    graph.node_features(self.features)?.0,
                    net.sizes[0] - self.dof,
                ),
                GraphTerm::Sites(net) => {
                    let k = graph.data.sites.as_ref().map_or(0, |s| s.ncols());
                    (
                        "nodes per site ('sites' columns)",
                        k,
                        net.sizes[0] / (2 * self.dof),
                    )
                }
                GraphTerm::Stencil(_) | GraphTerm::Closed(_) => continue,
            };
            if have != want {
                return Err(Error::input(format!(
                    "{}: the graph has {have} {what} but the model's '{}' term was trained with {want}",
                    graph.name,
                    t.kind()
                )));
            }
        }
        Ok(())
    }

    /// The learned masses μ_i of the kinetic term `t` on `graph`.
    pub fn masses(&self, t: usize, graph: &SystemGraph) -> Result<Vec<f64>> {
        let GraphTerm::Kinetic { net, scale, .. } = &self.terms[t] else {
            return Err(Error::input(format!("term {t} is not a kinetic term")));
        };
        let (nf, f) = graph.node_features(self.features)?;
        let s = graph.mass_scale(*scale)?;
        let n = graph.n_nodes();
        let one = [1.0];
        Ok((0..n)
            .map(|i| {
                let x = if nf == 0 {
                    &one[..]
                } else {
                    &f[i * nf..(i + 1) * nf]
                };
                s[i] * crate::density::mlp::softplus(net.forward(x))
            })
            .collect())
    }

    /// The Euler–Lagrange system of this model on `graph` (one place where a model becomes
    /// dynamics): sites, features, densities, fixed boundary coordinates.
    pub fn dynamics(&self, graph: &SystemGraph, solver: SolverKind) -> Result<Dynamics> {
        let (lag, fixed) = self.lagrangian(graph)?;
        let kind = match graph.kind {
            GraphKind::Ring => GraphKind::Ring,
            _ => GraphKind::General,
        };
        let dy = Dynamics::new(lag, solver, kind)?;
        let mut dy = match self.boundary {
            Boundary::Free => dy,
            Boundary::Fixed => dy.with_fixed(&fixed)?,
        };
        self.attach_dissipation(&mut dy, graph)?;
        Ok(dy)
    }

    /// The Lagrangian of this model on `graph` and its held coordinates (empty for a free
    /// boundary): what [`GraphModel::dynamics`] assembles, without the mass pattern and solver
    /// plan — a domain-decomposed run ([`crate::domain`]) builds those per rank.
    pub fn lagrangian(&self, graph: &SystemGraph) -> Result<(Lagrangian, Vec<usize>)> {
        self.check_graph(graph)?;
        let (n, d) = (graph.n_nodes(), self.dof);
        let mut lag = Lagrangian {
            n_nodes: n,
            dof: d,
            terms: vec![],
        };
        for t in 0..self.terms.len() {
            let (sites, dens) = self.term_parts(t, graph)?;
            lag = lag.with_term(sites, dens)?;
        }
        let fixed = match self.boundary {
            Boundary::Free => vec![],
            Boundary::Fixed => graph.boundary_coords()?,
        };
        Ok((lag, fixed))
    }

    /// Sites and density of term `t` on `graph`.
    fn term_parts(&self, t: usize, graph: &SystemGraph) -> Result<(Sites, Arc<dyn Density>)> {
        let (n, d) = (graph.n_nodes(), self.dof);
        let edge_sites = || {
            Sites::explicit(
                2,
                graph.data.edges.iter().flat_map(|&[a, b]| [a, b]).collect(),
                n,
            )
        };
        Ok(match &self.terms[t] {
            GraphTerm::Kinetic { .. } => (
                Sites::explicit(1, (0..n).collect(), n)?
                    .with_features(1, self.masses(t, graph)?)?,
                Arc::new(NodeKinetic { dof: d }),
            ),
            GraphTerm::EdgePotential(net) => {
                let (nf, f) = graph.edge_features(self.features)?;
                (
                    edge_sites()?.with_features(nf, f)?,
                    Arc::new(
                        PotentialMlp::new(net.clone(), PotentialInput::EdgeDiff, d, nf)?
                            .with_period(self.q_period)?,
                    ),
                )
            }
            GraphTerm::EdgeDistance(net) => {
                let (nf, f) = graph.edge_features(self.features)?;
                (
                    edge_sites()?.with_features(nf, f)?,
                    Arc::new(PotentialMlp::new(
                        net.clone(),
                        PotentialInput::EdgeDistance,
                        d,
                        nf,
                    )?),
                )
            }
            GraphTerm::NodePotential(net) => {
                let (nf, f) = graph.node_features(self.features)?;
                (
                    Sites::explicit(1, (0..n).collect(), n)?.with_features(nf, f)?,
                    Arc::new(
                        PotentialMlp::new(net.clone(), PotentialInput::Node, d, nf)?
                            .with_period(self.q_period)?,
                    ),
                )
            }
            GraphTerm::Sites(net) => {
                let s = graph.data.sites.as_ref().ok_or_else(|| {
                    Error::input(format!("{}: the graph has no 'sites' dataset", graph.name))
                })?;
                let sites = Sites::explicit(s.ncols(), s.iter().copied().collect(), n)?;
                let k = sites.arity;
                let dens = MlpDensity::new(net.clone(), k, d, 0)?.with_q_period(self.q_period)?;
                (sites, Arc::new(dens))
            }
            GraphTerm::Stencil(net) => {
                let g = match graph.kind {
                    GraphKind::Ring => crate::graph::Graph::ring(n, d)?,
                    GraphKind::Chain => crate::graph::Graph::chain(n, d)?,
                    _ => {
                        return Err(Error::input(format!(
                            "{}: stencil sites (i−1, i, i+1) need a ring or a chain graph",
                            graph.name
                        )))
                    }
                };
                (
                    Sites::stencil3(&g)?,
                    Arc::new(MlpDensity::new(net.clone(), 3, d, 0)?.with_q_period(self.q_period)?),
                )
            }
            GraphTerm::Closed(ClosedTerm::NodeMass { mass }) => (
                Sites::explicit(1, (0..n).collect(), n)?.with_features(1, vec![*mass; n])?,
                Arc::new(NodeKinetic { dof: d }),
            ),
            GraphTerm::Closed(ClosedTerm::Spring { k, beta }) => (
                edge_sites()?,
                Arc::new(crate::density::SpringEdge {
                    dof: d,
                    k: *k,
                    beta: *beta,
                }),
            ),
        })
    }

    /// Replace the densities of `dy` (built by [`GraphModel::dynamics`] on `graph`) after a
    /// parameter change; the sites, the pattern and the solver plan stay valid.
    pub fn refresh(&self, dy: &mut Dynamics, graph: &SystemGraph) -> Result<()> {
        for t in 0..self.terms.len() {
            let (sites, dens) = self.term_parts(t, graph)?;
            let term = &mut dy.lagrangian.terms[t];
            term.sites.features = sites.features;
            term.density = dens;
        }
        self.attach_dissipation(dy, graph)
    }

    /// All trainable parameters, term after term (see [`crate::train::hyperdual::flatten`]).
    pub fn params(&self) -> Vec<f64> {
        self.terms
            .iter()
            .filter_map(|t| t.net())
            .chain(self.dissipation.as_ref().map(|d| &d.net))
            .flat_map(crate::train::hyperdual::flatten)
            .chain(self.input_map.iter().flat_map(|b| b.beta.iter().copied()))
            .collect()
    }

    /// Offsets of each term's parameters in [`GraphModel::params`].
    pub fn param_offsets(&self) -> Vec<usize> {
        let mut o = vec![0];
        for t in &self.terms {
            o.push(o.last().unwrap() + t.net().map_or(0, |n| n.n_params()));
        }
        // The dissipation's parameters come last (one more offset).
        if let Some(d) = &self.dissipation {
            o.push(o.last().unwrap() + d.net.n_params());
        }
        // A learned input map's β after them (one more offset).
        if let Some(b) = &self.input_map {
            o.push(o.last().unwrap() + b.beta.len());
        }
        o
    }

    /// Write parameters back (inverse of [`GraphModel::params`]).
    pub fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        let offs = self.param_offsets();
        if theta.len() != *offs.last().unwrap() {
            return Err(Error::input(format!(
                "{} parameters given, the model has {}",
                theta.len(),
                offs.last().unwrap()
            )));
        }
        for (t, term) in self.terms.iter_mut().enumerate() {
            if let Some(net) = term.net_mut() {
                crate::train::hyperdual::unflatten(net, &theta[offs[t]..offs[t + 1]]);
            }
        }
        if let Some(d) = &mut self.dissipation {
            let o = offs[self.terms.len()];
            let e = o + d.net.n_params();
            crate::train::hyperdual::unflatten(&mut d.net, &theta[o..e]);
        }
        if let Some(b) = &mut self.input_map {
            let o = offs[offs.len() - 2];
            b.beta.copy_from_slice(&theta[o..]);
        }
        Ok(())
    }

    /// Short description ("node-edge: node_kinetic + edge_potential (64×2)").
    pub fn describe(&self) -> String {
        let mut kinds: Vec<&str> = self.terms.iter().map(|t| t.kind()).collect();
        if let Some(d) = &self.dissipation {
            kinds.push(
                if d.kind() == crate::density::dissipation::DissipationKind::Linear {
                    "linear_dissipation"
                } else {
                    "learned_dissipation"
                },
            );
        }
        format!("graph model ({})", kinds.join(" + "))
    }
}

fn check_shape(s: &NetShape) -> Result<()> {
    if s.hidden == 0 || s.layers == 0 {
        return Err(Error::input(
            "hidden width and number of hidden layers must be at least 1",
        ));
    }
    if s.hidden > 1 << 14 || s.layers > 64 {
        return Err(Error::input(format!(
            "a network of {} hidden layers × {} units is larger than lgn supports (≤ 64 × 16384)",
            s.layers, s.hidden
        )));
    }
    Ok(())
}

/// Any model file lgn writes: a single-network model (lnn, lgn ring, mlp, hnn) or a graph
/// model. [`AnyModel::load`] reads either; [`AnyModel::dynamics`] is the one way a trained
/// Lagrangian model becomes an Euler–Lagrange system.
#[derive(Clone, Debug)]
pub enum AnyModel {
    Net(crate::train::TrainedModel),
    Graph(Box<GraphModel>),
}

impl AnyModel {
    /// Read a model file of either kind.
    pub fn load(path: &Path) -> Result<AnyModel> {
        let graph = crate::io::h5::Ctx::read_with(path, |ctx| Some(file::is_graph_model(ctx)))?;
        if graph {
            Ok(AnyModel::Graph(Box::new(load_graph_model(path)?)))
        } else {
            Ok(AnyModel::Net(crate::train::load_model(path)?))
        }
    }

    /// `model_kind` of the file ("lnn", "lgn", "mlp", "hnn", "graph").
    pub fn kind(&self) -> &'static str {
        match self {
            AnyModel::Net(m) => m.kind.as_str(),
            AnyModel::Graph(_) => GRAPH_MODEL_KIND,
        }
    }

    /// The system name recorded at training.
    pub fn system(&self) -> &str {
        match self {
            AnyModel::Net(m) => &m.system,
            AnyModel::Graph(g) => &g.system,
        }
    }

    /// The Euler–Lagrange system: graph models on `graph` (their training graph when `None`),
    /// ring models on `n` nodes, single-site models as they are.
    pub fn dynamics(
        &self,
        graph: Option<&SystemGraph>,
        n: Option<usize>,
        solver: SolverKind,
    ) -> Result<Dynamics> {
        match self {
            AnyModel::Graph(m) => match graph {
                Some(g) => m.dynamics(g, solver),
                None => m.dynamics(&m.own_graph()?, solver),
            },
            AnyModel::Net(m) => {
                if graph.is_some() {
                    return Err(Error::input(format!(
                        "a '{}' model is not a graph model: it cannot be used on another graph or mesh",
                        m.kind.as_str()
                    )));
                }
                m.dynamics(n, solver)
            }
        }
    }
}
