//! XDMF 3 sidecars: open a `trajectories` file on a mesh or graph directly in ParaView/VisIt.
//!
//! A trajectories file can carry the node geometry in the optional group `mesh`
//! (docs/SCHEMA.md): `mesh/positions` (n, 2 | 3) float64 and either `mesh/triangles` (T, 3)
//! int64 (a triangle mesh) or `mesh/edges` (E, 2) int64 (a graph drawn as line segments).
//! [`write_sidecar`] then writes `F.xmf` next to `F.h5`: one temporal collection of uniform
//! grids per trajectory, each grid pointing at the geometry and topology datasets and at the
//! frame's slice of `/q`, `/qdot` (and `/qddot`) through HyperSlab data items — the XML holds no
//! numbers but the times, all data stays in the HDF5 file.
//!
//! With `dof` coordinates per node (D = n·dof), each coordinate is its own node-centred scalar
//! attribute (`q` for dof = 1, else `q_0`, `q_1`, …): hyperslab start (b, k, c), stride
//! (1, 1, dof), count (1, 1, n).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::h5::{Ctx, Out};
use super::{AtomicOutput, GraphData};
use crate::error::{Error, Result};

/// Group of a trajectories file that holds the node geometry.
pub const GROUP: &str = "mesh";

/// The cells drawn between the nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Cells {
    /// Triangles (node indices), dataset `mesh/triangles`.
    Triangles(Vec<[usize; 3]>),
    /// Line segments (graph edges), dataset `mesh/edges`.
    Edges(Vec<[usize; 2]>),
}

/// Node positions plus cells: what a trajectory needs to be drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    /// n × 2 or n × 3 node coordinates (1-D positions are padded with y = 0).
    pub positions: Array2<f64>,
    pub cells: Cells,
}

impl Geometry {
    /// Geometry of `n` nodes at `positions` (n × dim, dim 1..=3; dim 1 gets a zero y column).
    /// Cells must refer to nodes 0..n and positions must be finite.
    pub fn new(positions: Array2<f64>, cells: Cells) -> Result<Geometry> {
        let (n, dim) = positions.dim();
        if n == 0 || !(1..=3).contains(&dim) {
            return Err(Error::input(format!(
                "node positions have shape ({n}, {dim}); drawing needs n ≥ 1 nodes in 1 to 3 dimensions"
            )));
        }
        if let Some(((i, j), x)) = positions.indexed_iter().find(|(_, x)| !x.is_finite()) {
            return Err(Error::input(format!(
                "node position [{i}, {j}] is {x}, expected a finite number"
            )));
        }
        let bad = match &cells {
            Cells::Triangles(t) => t.iter().flatten().find(|&&i| i >= n).copied(),
            Cells::Edges(e) => e.iter().flatten().find(|&&i| i >= n).copied(),
        };
        if let Some(i) = bad {
            return Err(Error::input(format!(
                "a cell refers to node {i}, but there are only {n} nodes"
            )));
        }
        let positions = if dim == 1 {
            let mut p = Array2::zeros((n, 2));
            p.column_mut(0).assign(&positions.column(0));
            p
        } else {
            positions
        };
        Ok(Geometry { positions, cells })
    }

    /// A triangle mesh: its vertices and triangles.
    pub fn from_mesh(mesh: &crate::mesh::TriMesh) -> Geometry {
        let n = mesh.n_nodes();
        let positions = Array2::from_shape_fn((n, 2), |(i, j)| mesh.positions[i][j]);
        Geometry {
            positions,
            cells: Cells::Triangles(mesh.triangles.clone()),
        }
    }

    /// A graph file's geometry: its `positions` with its `triangles` if present, else its
    /// edges. None if the graph has no positions.
    pub fn from_graph(g: &GraphData) -> Result<Option<Geometry>> {
        let Some(p) = &g.positions else {
            return Ok(None);
        };
        let cells = match &g.triangles {
            Some(t) => Cells::Triangles(t.clone()),
            None => Cells::Edges(g.edges.clone()),
        };
        Geometry::new(p.clone(), cells).map(Some)
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.positions.nrows()
    }

    /// Triangles, if the cells are triangles.
    pub fn triangles(&self) -> Option<&[[usize; 3]]> {
        match &self.cells {
            Cells::Triangles(t) => Some(t),
            Cells::Edges(_) => None,
        }
    }

    /// Write the `mesh` group into a file being written.
    pub(crate) fn write_to(&self, out: &Out) -> Result<()> {
        out.group(GROUP)?;
        out.f64(&format!("{GROUP}/positions"), &self.positions)?;
        let (name, a) = match &self.cells {
            Cells::Triangles(t) => (
                "triangles",
                Array2::from_shape_fn((t.len(), 3), |(i, j)| t[i][j] as i64),
            ),
            Cells::Edges(e) => (
                "edges",
                Array2::from_shape_fn((e.len(), 2), |(i, j)| e[i][j] as i64),
            ),
        };
        out.i64(&format!("{GROUP}/{name}"), &a)
    }

    /// The `mesh` group of an HDF5 file (None if the file has none), validated: positions
    /// (n, 2 | 3) finite, triangles (T, 3) or edges (E, 2) with indices in 0..n.
    pub fn read(path: impl AsRef<Path>) -> Result<Option<Geometry>> {
        Ctx::read_with(path.as_ref(), |ctx| {
            if !ctx.exists(GROUP) {
                return Some(None);
            }
            read_ctx(ctx).map(Some)
        })
    }
}

pub(crate) fn read_ctx(ctx: &mut Ctx) -> Option<Geometry> {
    ctx.group(GROUP, true)?;
    let pos_name = format!("{GROUP}/positions");
    let positions = ctx.f64_2d(&pos_name, true)?;
    let (n, dim) = positions.dim();
    if n == 0 || !(2..=3).contains(&dim) {
        ctx.problem(
            format!("/{pos_name}"),
            format!("has shape ({n}, {dim}), expected (n, 2) or (n, 3) with n ≥ 1"),
        );
        return None;
    }
    let tri = format!("{GROUP}/triangles");
    let edg = format!("{GROUP}/edges");
    let (name, width) = if ctx.exists(&tri) {
        (tri, 3)
    } else if ctx.exists(&edg) {
        (edg, 2)
    } else {
        ctx.problem(
            format!("/{GROUP}"),
            "has neither a 'triangles' nor an 'edges' dataset",
        );
        return None;
    };
    let a = ctx.i64_2d(&name, true)?;
    if a.ncols() != width {
        ctx.problem(
            format!("/{name}"),
            format!("has shape {:?}, expected (·, {width})", a.shape()),
        );
        return None;
    }
    if let Some(((i, j), x)) = a.indexed_iter().find(|(_, x)| **x < 0 || **x as usize >= n) {
        ctx.problem(
            format!("/{name}"),
            format!("index {x} at [{i}, {j}] is not a node in 0..{n}"),
        );
        return None;
    }
    let cells = if width == 3 {
        Cells::Triangles(
            a.rows()
                .into_iter()
                .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
                .collect(),
        )
    } else {
        Cells::Edges(
            a.rows()
                .into_iter()
                .map(|r| [r[0] as usize, r[1] as usize])
                .collect(),
        )
    };
    Some(Geometry { positions, cells })
}

/// `F.xmf` for `F.h5`.
pub fn sidecar_path(h5: impl AsRef<Path>) -> PathBuf {
    h5.as_ref().with_extension("xmf")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What [`write_sidecar`] needs to know about a trajectories file.
struct Layout {
    times: Vec<f64>,
    batch: usize,
    dim: usize,
    fields: Vec<&'static str>,
    n: usize,
    pos_cols: usize,
    cells: (&'static str, usize),
}

fn layout(h5: &Path) -> Result<Layout> {
    Ctx::read_with(h5, |ctx| {
        let geom = if ctx.exists(GROUP) {
            read_ctx(ctx)?
        } else {
            ctx.problem(
                format!("/{GROUP}"),
                "required group is missing: an XDMF sidecar needs the node geometry (mesh/positions with mesh/triangles or mesh/edges)",
            );
            return None;
        };
        let t = ctx.f64_1d("t", true)?;
        let q = ctx.dataset("q", true)?;
        let shape = q.shape();
        if shape.len() != 3 {
            ctx.problem("/q", format!("has shape {shape:?}, expected (B, T, D)"));
            return None;
        }
        let (batch, frames, dim) = (shape[0], shape[1], shape[2]);
        if frames != t.len() || batch == 0 {
            ctx.problem(
                "/q",
                format!("has shape {shape:?}, expected (B ≥ 1, T = {}, D)", t.len()),
            );
            return None;
        }
        let n = geom.n_nodes();
        if dim == 0 || dim % n != 0 {
            ctx.problem(
                "/q",
                format!("has D = {dim} coordinates per frame, not a multiple of the {n} nodes of /{GROUP}/positions"),
            );
            return None;
        }
        let mut fields = vec!["q"];
        for name in ["qdot", "qddot"] {
            if let Some(ds) = ctx.dataset(name, false) {
                if ds.shape() != shape {
                    ctx.problem(
                        format!("/{name}"),
                        format!("has shape {:?}, expected {shape:?} like /q", ds.shape()),
                    );
                    return None;
                }
                fields.push(name);
            }
        }
        let cells = match &geom.cells {
            Cells::Triangles(t) => ("triangles", t.len()),
            Cells::Edges(e) => ("edges", e.len()),
        };
        Some(Layout {
            times: t.to_vec(),
            batch,
            dim,
            fields,
            n,
            pos_cols: geom.positions.ncols(),
            cells,
        })
    })
}

/// The XDMF 3 document for the trajectories file `h5` (named `file_ref` inside the XML).
fn document(l: &Layout, file_ref: &str) -> String {
    let f = xml_escape(file_ref);
    let (n, dim) = (l.n, l.dim);
    let dof = dim / n;
    let (b_all, t_all) = (l.batch, l.times.len());
    let (cell_name, n_cells) = l.cells;
    let topology = if cell_name == "triangles" {
        format!(
            "<Topology TopologyType=\"Triangle\" NumberOfElements=\"{n_cells}\">\n          \
             <DataItem Dimensions=\"{n_cells} 3\" NumberType=\"Int\" Precision=\"8\" Format=\"HDF\">{f}:/{GROUP}/triangles</DataItem>\n        \
             </Topology>"
        )
    } else {
        format!(
            "<Topology TopologyType=\"Polyline\" NodesPerElement=\"2\" NumberOfElements=\"{n_cells}\">\n          \
             <DataItem Dimensions=\"{n_cells} 2\" NumberType=\"Int\" Precision=\"8\" Format=\"HDF\">{f}:/{GROUP}/edges</DataItem>\n        \
             </Topology>"
        )
    };
    let gtype = if l.pos_cols == 3 { "XYZ" } else { "XY" };
    let geometry = format!(
        "<Geometry GeometryType=\"{gtype}\">\n          \
         <DataItem Dimensions=\"{n} {}\" NumberType=\"Float\" Precision=\"8\" Format=\"HDF\">{f}:/{GROUP}/positions</DataItem>\n        \
         </Geometry>",
        l.pos_cols
    );
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    s.push_str("<!-- Written by lgn: open this file in ParaView (XDMF3 reader). The data live in ");
    s.push_str(&xml_escape(file_ref).replace("--", "- -"));
    s.push_str(". -->\n<Xdmf Version=\"3.0\">\n  <Domain>\n");
    for b in 0..b_all {
        let _ = writeln!(
            s,
            "    <Grid Name=\"trajectory_{b}\" GridType=\"Collection\" CollectionType=\"Temporal\">"
        );
        for (k, t) in l.times.iter().enumerate() {
            let _ = writeln!(
                s,
                "      <Grid Name=\"trajectory_{b}_frame_{k}\" GridType=\"Uniform\">"
            );
            let _ = writeln!(s, "        <Time Value=\"{t}\"/>");
            let _ = writeln!(s, "        {topology}");
            let _ = writeln!(s, "        {geometry}");
            for field in &l.fields {
                for c in 0..dof {
                    let name = if dof == 1 {
                        field.to_string()
                    } else {
                        format!("{field}_{c}")
                    };
                    let _ = writeln!(
                        s,
                        "        <Attribute Name=\"{name}\" AttributeType=\"Scalar\" Center=\"Node\">\n          \
                         <DataItem ItemType=\"HyperSlab\" Dimensions=\"1 1 {n}\" Type=\"HyperSlab\">\n            \
                         <DataItem Dimensions=\"3 3\" NumberType=\"Int\" Format=\"XML\">{b} {k} {c} 1 1 {dof} 1 1 {n}</DataItem>\n            \
                         <DataItem Dimensions=\"{b_all} {t_all} {dim}\" NumberType=\"Float\" Precision=\"8\" Format=\"HDF\">{f}:/{field}</DataItem>\n          \
                         </DataItem>\n        \
                         </Attribute>"
                    );
                }
            }
            s.push_str("      </Grid>\n");
        }
        s.push_str("    </Grid>\n");
    }
    s.push_str("  </Domain>\n</Xdmf>\n");
    s
}

/// Write the XDMF sidecar [`sidecar_path`]`(h5)` of the trajectories file `h5`, which must have
/// the `mesh` group (see the module documentation). The XML refers to the HDF5 file by its file
/// name, so keep the two files together. Written atomically; an existing sidecar is replaced
/// only with `force`. Returns the sidecar's path.
pub fn write_sidecar(h5: impl AsRef<Path>, force: bool) -> Result<PathBuf> {
    let h5 = h5.as_ref();
    let xmf = sidecar_path(h5);
    if xmf == h5 {
        return Err(Error::file(
            h5,
            "the trajectories file itself ends in .xmf; name it F.h5 so that its sidecar can be F.xmf",
        ));
    }
    let out = AtomicOutput::new(&xmf, force)?;
    let l = layout(h5)?;
    let file_ref = h5
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| Error::file(h5, "path has no file name"))?;
    let doc = document(&l, &file_ref);
    std::fs::write(out.tmp_path(), doc)
        .map_err(|e| Error::file(&xmf, format!("cannot write: {e}")))?;
    out.commit()
}
