//! `lgn.Graph`: rings, chains, grids, graph files, numpy edge arrays and Gmsh meshes.

use crate::arrays::{f64_array, matrix, shape_str};
use crate::errors::{input, IntoPy};
use lgn::io::GraphData;
use lgn::model::SystemGraph;
use numpy::{IntoPyArray, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;

/// A graph: nodes with `dof` coordinates each, undirected edges, and optional positions,
/// boundary flags, node/edge features, explicit sites and mesh triangles.
#[pyclass(module = "lgn._lgn", frozen)]
#[derive(Clone)]
pub struct Graph {
    pub g: SystemGraph,
    /// Read from a Gmsh mesh: graph networks on it default to mesh features.
    pub mesh_file: bool,
}

fn line(n: usize, dof: usize, ring: bool) -> PyResult<Graph> {
    Ok(Graph {
        g: SystemGraph::line(n, dof, ring).py_err()?,
        mesh_file: false,
    })
}

/// A periodic ring of `n` nodes (edges i – i+1 and n−1 – 0), positions i/n.
#[pyfunction]
#[pyo3(signature = (n, dof = 1))]
pub fn ring(n: usize, dof: usize) -> PyResult<Graph> {
    line(n, dof, true)
}

/// An open chain of `n` nodes (edges i – i+1), positions i/n; its two ends are flagged as
/// boundary nodes.
#[pyfunction]
#[pyo3(signature = (n, dof = 1))]
pub fn chain(n: usize, dof: usize) -> PyResult<Graph> {
    let mut g = line(n, dof, false)?;
    let mut b = vec![false; n];
    if n > 0 {
        b[0] = true;
        b[n - 1] = true;
    }
    g.g.data.boundary = Some(b);
    Ok(g)
}

/// An nx × ny grid (node i + nx·j at position (i/nx, j/ny)), 4-neighbour edges; periodic in
/// both directions when `periodic`, else the outer nodes are flagged as boundary nodes.
#[pyfunction]
#[pyo3(signature = (nx, ny, periodic = false, dof = 1))]
pub fn grid(nx: usize, ny: usize, periodic: bool, dof: usize) -> PyResult<Graph> {
    let gr = lgn::graph::Graph::grid(nx, ny, periodic, dof).py_err()?;
    let n = nx * ny;
    let mut data = GraphData::new(
        n,
        dof,
        gr.edges().into_iter().map(|(a, b)| [a, b]).collect(),
    );
    data.positions = Some(ndarray::Array2::from_shape_fn((n, 2), |(k, c)| {
        if c == 0 {
            (k % nx) as f64 / nx as f64
        } else {
            (k / nx) as f64 / ny as f64
        }
    }));
    if !periodic {
        data.boundary = Some(
            (0..n)
                .map(|k| {
                    let (i, j) = (k % nx, k / nx);
                    i == 0 || j == 0 || i + 1 == nx || j + 1 == ny
                })
                .collect(),
        );
    }
    Ok(Graph {
        g: SystemGraph::from_data(data, "grid").py_err()?,
        mesh_file: false,
    })
}

/// Read an lgn graph file (docs/SCHEMA.md, kind `graph`).
#[pyfunction]
pub fn load_graph(path: PathBuf) -> PyResult<Graph> {
    Ok(Graph {
        g: SystemGraph::from_graph_file(&path).py_err()?,
        mesh_file: false,
    })
}

/// Read a Gmsh mesh (MSH 4.1 or 2.2 ASCII, triangles): one coordinate per node, the mesh's
/// edges as graph edges, its boundary nodes flagged.
#[pyfunction]
pub fn load_mesh(path: PathBuf) -> PyResult<Graph> {
    Ok(Graph {
        g: SystemGraph::from_mesh_file(&path).py_err()?,
        mesh_file: true,
    })
}

/// An integer index array of shape (rows, cols) with values in 0..n (`what` for messages).
fn index_array(
    obj: &Bound<'_, PyAny>,
    name: &str,
    cols: Option<usize>,
    n: usize,
) -> PyResult<(usize, usize, Vec<usize>)> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (obj,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if kind != "i" && kind != "u" {
        let dn: String = arr.getattr("dtype")?.getattr("name")?.extract()?;
        return Err(input(format!(
            "{name} must be an integer array (node indices), got dtype {dn}"
        )));
    }
    let a = f64_array(&arr, name)?;
    let s = a.shape().to_vec();
    if s.len() != 2 || cols.is_some_and(|c| s[1] != c) {
        return Err(input(format!(
            "{name} must have shape (E, {}), got {}",
            cols.map_or("k".into(), |c| c.to_string()),
            shape_str(&s)
        )));
    }
    let vals = a.as_slice()?;
    let mut out = Vec::with_capacity(vals.len());
    for (k, &x) in vals.iter().enumerate() {
        if x < 0.0 || x >= n as f64 {
            return Err(input(format!(
                "{name}[{}, {}] = {x} is not a node index in 0..{n}",
                k / s[1].max(1),
                k % s[1].max(1)
            )));
        }
        out.push(x as usize);
    }
    Ok((s[0], s[1], out))
}

/// A graph from numpy arrays: `edges` (E, 2) integer node indices; optional `positions`
/// (n, dim), `boundary` (n,) booleans, `node_features` (n, F), `edge_features` (E, F),
/// `sites` (S, k) node tuples, `triangles` (T, 3).
#[pyfunction]
#[pyo3(signature = (n_nodes, edges, dof = 1, positions = None, boundary = None, node_features = None, edge_features = None, sites = None, triangles = None, name = "graph"))]
#[allow(clippy::too_many_arguments)]
pub fn graph_from_edges(
    n_nodes: usize,
    edges: &Bound<'_, PyAny>,
    dof: usize,
    positions: Option<&Bound<'_, PyAny>>,
    boundary: Option<&Bound<'_, PyAny>>,
    node_features: Option<&Bound<'_, PyAny>>,
    edge_features: Option<&Bound<'_, PyAny>>,
    sites: Option<&Bound<'_, PyAny>>,
    triangles: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Graph> {
    let (ne, _, e) = index_array(edges, "edges", Some(2), n_nodes)?;
    let mut data = GraphData::new(n_nodes, dof, e.chunks(2).map(|c| [c[0], c[1]]).collect());
    if let Some(p) = positions {
        data.positions = Some(matrix(p, "positions", Some(n_nodes), None)?);
    }
    if let Some(b) = boundary {
        let v: Vec<bool> = b
            .py()
            .import("numpy")?
            .call_method1("asarray", (b,))?
            .call_method1("astype", ("bool",))?
            .call_method0("tolist")?
            .extract()?;
        if v.len() != n_nodes {
            return Err(input(format!(
                "boundary has {} flags but the graph has {n_nodes} nodes",
                v.len()
            )));
        }
        data.boundary = Some(v);
    }
    if let Some(f) = node_features {
        data.node_features = Some(matrix(f, "node_features", Some(n_nodes), None)?);
    }
    if let Some(f) = edge_features {
        data.edge_features = Some(matrix(f, "edge_features", Some(ne), None)?);
    }
    if let Some(s) = sites {
        let (r, c, v) = index_array(s, "sites", None, n_nodes)?;
        data.sites = Some(ndarray::Array2::from_shape_vec((r, c), v).expect("shape"));
    }
    if let Some(t) = triangles {
        let (_, _, v) = index_array(t, "triangles", Some(3), n_nodes)?;
        data.triangles = Some(v.chunks(3).map(|c| [c[0], c[1], c[2]]).collect());
    }
    Ok(Graph {
        g: SystemGraph::from_data(data, name).py_err()?,
        mesh_file: false,
    })
}

#[pymethods]
impl Graph {
    #[getter]
    fn n_nodes(&self) -> usize {
        self.g.n_nodes()
    }
    /// Coordinates per node.
    #[getter]
    fn dof(&self) -> usize {
        self.g.dof()
    }
    /// n_nodes × dof: the length of a state vector.
    #[getter]
    fn n_coords(&self) -> usize {
        self.g.n_coords()
    }
    #[getter]
    fn name(&self) -> String {
        self.g.name.clone()
    }
    /// True for a triangle mesh (mesh features available).
    #[getter]
    fn is_mesh(&self) -> bool {
        self.g.mesh.is_some()
    }
    /// Edges as an (E, 2) int64 array.
    #[getter]
    fn edges<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v: Vec<i64> = self
            .g
            .data
            .edges
            .iter()
            .flat_map(|&[a, b]| [a as i64, b as i64])
            .collect();
        Ok(v.into_pyarray(py)
            .reshape([self.g.data.edges.len(), 2])?
            .into_any())
    }
    /// Node positions (n, dim), or None.
    #[getter]
    fn positions<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.g
            .data
            .positions
            .clone()
            .map(|p| p.into_pyarray(py).into_any())
    }
    /// Boundary flags (n,) as booleans, or None.
    #[getter]
    fn boundary(&self) -> Option<Vec<bool>> {
        self.g.data.boundary.clone()
    }
    /// Write the graph as an lgn graph file (docs/SCHEMA.md).
    #[pyo3(signature = (path, overwrite = false))]
    fn save(&self, path: PathBuf, overwrite: bool) -> PyResult<()> {
        self.g.data.write(&path, overwrite).py_err()
    }
    /// A nonlinear spring network on this graph (closed form):
    /// L = Σ_i ½ m |q̇_i|² − Σ_edges Σ_c [½ k Δ_c² + ¼ β Δ_c⁴], Δ = q_b − q_a; the boundary
    /// nodes are held fixed when `fixed_boundary`.
    #[pyo3(signature = (mass = 1.0, k = 1.0, beta = 0.0, fixed_boundary = false, solver = "auto"))]
    fn springs(
        &self,
        mass: f64,
        k: f64,
        beta: f64,
        fixed_boundary: bool,
        solver: &str,
    ) -> PyResult<crate::system::System> {
        let s = crate::parse_solver(solver)?;
        let g = self.g.clone();
        crate::system::System::from_builder(
            format!("springs on {}", self.g.name),
            std::sync::Arc::new(move || {
                lgn::systems::spring_network(&g, mass, k, beta, fixed_boundary, s)
            }),
        )
    }
    fn __repr__(&self) -> String {
        format!(
            "<lgn.Graph {}: {} nodes × {} dof, {} edges{}>",
            self.g.name,
            self.g.n_nodes(),
            self.g.dof(),
            self.g.data.edges.len(),
            if self.g.mesh.is_some() { ", mesh" } else { "" }
        )
    }
}
