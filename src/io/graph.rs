//! `graph` files: nodes, undirected edges and optional per-node / per-edge data.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use ndarray::Array2;

use super::h5::{check_finite_out, guard, refuse_invalid, Ctx, Out, Problem};
use super::{AttrValue, Kind};
use crate::error::Result;

/// A graph as stored in an lgn `graph` file (see docs/SCHEMA.md).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphData {
    /// Number of nodes (root attribute `n_nodes`).
    pub n_nodes: usize,
    /// Generalised coordinates per node (root attribute `dof`).
    pub dof: usize,
    /// Undirected edges, 0-based node indices (dataset `edges`, E×2 int64).
    pub edges: Vec<[usize; 2]>,
    /// Node positions, n×dim (dataset `positions`).
    pub positions: Option<Array2<f64>>,
    /// Node features, n×F (dataset `node_features`).
    pub node_features: Option<Array2<f64>>,
    /// Edge features, E×F, row i belongs to `edges[i]` (dataset `edge_features`).
    pub edge_features: Option<Array2<f64>>,
    /// Boundary (fixed) nodes, length n (dataset `boundary`, uint8 0/1).
    pub boundary: Option<Vec<bool>>,
    /// Explicit site node tuples, S×k (dataset `sites`, int64).
    pub sites: Option<Array2<usize>>,
    /// Mesh triangles (dataset `triangles`, T×3 int64).
    pub triangles: Option<Vec<[usize; 3]>>,
    /// Other root attributes (free-form strings / numbers), e.g. `name`, `system`.
    pub attrs: BTreeMap<String, AttrValue>,
}

const RESERVED: &[&str] = &["lgn_kind", "lgn_schema_version", "n_nodes", "dof"];

fn to_usize(ctx: &mut Ctx, name: &str, a: &Array2<i64>, what: &str) -> Option<Array2<usize>> {
    if let Some(((i, j), x)) = a.indexed_iter().find(|(_, x)| **x < 0) {
        ctx.problem(
            super::h5::loc(name),
            format!(
                "{what} index {x} at [{i}, {j}] is negative (indices are 0-based node numbers)"
            ),
        );
        return None;
    }
    Some(a.mapv(|x| x as usize))
}

impl GraphData {
    /// A graph with `n_nodes` nodes, `dof` coordinates per node and the given edges.
    pub fn new(n_nodes: usize, dof: usize, edges: Vec<[usize; 2]>) -> Self {
        GraphData {
            n_nodes,
            dof,
            edges,
            ..Default::default()
        }
    }

    /// Read and validate a graph file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        Ctx::read_with(path.as_ref(), Self::read_ctx)
    }

    pub(crate) fn read_ctx(ctx: &mut Ctx) -> Option<Self> {
        ctx.check_kind(Kind::Graph);
        let n_nodes = ctx.attr_usize("/", "n_nodes", true);
        let dof = ctx.attr_usize("/", "dof", true);
        let edges = ctx.i64_2d("edges", true);
        let positions = ctx.f64_2d("positions", false);
        let node_features = ctx.f64_2d("node_features", false);
        let edge_features = ctx.f64_2d("edge_features", false);
        let boundary = ctx.flags_1d("boundary", false);
        let sites = ctx.i64_2d("sites", false);
        let triangles = ctx.i64_2d("triangles", false);
        let attrs = ctx.extra_attrs("/", RESERVED);

        // Column counts are checked before conversion so messages name the dataset.
        let edges = edges.and_then(|e| {
            if e.ncols() != 2 {
                ctx.problem(
                    "/edges",
                    format!("has shape {:?}, expected (E, 2)", e.shape()),
                );
                return None;
            }
            to_usize(ctx, "edges", &e, "node")
        });
        let sites = sites.and_then(|s| to_usize(ctx, "sites", &s, "node"));
        let triangles = triangles.and_then(|t| {
            if t.ncols() != 3 {
                ctx.problem(
                    "/triangles",
                    format!("has shape {:?}, expected (T, 3)", t.shape()),
                );
                return None;
            }
            to_usize(ctx, "triangles", &t, "node")
        });
        let g = GraphData {
            n_nodes: n_nodes?,
            dof: dof?,
            edges: edges?.rows().into_iter().map(|r| [r[0], r[1]]).collect(),
            positions,
            node_features,
            edge_features,
            boundary,
            sites,
            triangles: triangles
                .map(|t| t.rows().into_iter().map(|r| [r[0], r[1], r[2]]).collect()),
            attrs,
        };
        if !ctx.ok() {
            return None;
        }
        let problems = g.problems();
        let bad = !problems.is_empty();
        ctx.problems.extend(problems);
        if bad {
            None
        } else {
            Some(g)
        }
    }

    /// Consistency checks on the in-memory graph (sizes, index ranges, finiteness).
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut add = |l: &str, m: String| {
            p.push(Problem {
                location: l.to_string(),
                msg: m,
            })
        };
        let n = self.n_nodes;
        if n == 0 {
            add("/@n_nodes", "is 0, a graph needs at least one node".into());
        }
        if self.dof == 0 {
            add(
                "/@dof",
                "is 0, expected at least one coordinate per node".into(),
            );
        }
        // The system built from the graph holds n_nodes·dof coordinates (q, q̇, q̈ and the
        // mass matrix's band): refuse sizes that cannot fit before anyone allocates them.
        if let Err(e) = crate::limits::check_alloc(
            "n_nodes * dof coordinates",
            (n as u128) * (self.dof as u128),
            64,
        ) {
            let m = e.to_string();
            add(
                "/@n_nodes",
                format!(
                    "n_nodes = {n} with dof = {}: {}",
                    self.dof,
                    m.strip_prefix("invalid input: ").unwrap_or(&m)
                ),
            );
            return p;
        }
        let mut seen = HashSet::new();
        for (i, &[a, b]) in self.edges.iter().enumerate() {
            if a >= n || b >= n {
                add(
                    "/edges",
                    format!(
                        "edge {i} = ({a}, {b}) refers to a node outside 0..{n} (n_nodes = {n})"
                    ),
                );
                break;
            }
            if a == b {
                add("/edges", format!("edge {i} = ({a}, {b}) is a self-loop"));
                break;
            }
            if !seen.insert((a.min(b), a.max(b))) {
                add(
                    "/edges",
                    format!("edge {i} = ({a}, {b}) is a duplicate (edges are undirected)"),
                );
                break;
            }
        }
        let rows = |a: &Option<Array2<f64>>| {
            a.as_ref().map(|a| {
                (
                    a.nrows(),
                    a.ncols(),
                    a.iter().find(|x| !x.is_finite()).copied(),
                )
            })
        };
        for (name, a, want, what) in [
            ("/positions", &self.positions, n, "n_nodes"),
            ("/node_features", &self.node_features, n, "n_nodes"),
            (
                "/edge_features",
                &self.edge_features,
                self.edges.len(),
                "the number of edges",
            ),
        ] {
            if let Some((r, c, bad)) = rows(a) {
                if r != want {
                    add(name, format!("has {r} rows, expected {want} ({what})"));
                } else if c == 0 {
                    add(name, "has 0 columns".into());
                }
                if let Some(x) = bad {
                    add(name, format!("contains {x}, expected finite numbers"));
                }
            }
        }
        if let Some(b) = &self.boundary {
            if b.len() != n {
                add(
                    "/boundary",
                    format!("has length {}, expected {n} (n_nodes)", b.len()),
                );
            }
        }
        if let Some(s) = &self.sites {
            if s.nrows() == 0 {
                add(
                    "/sites",
                    "has 0 rows: a graph with explicit sites needs at least one site".into(),
                );
            }
            if s.ncols() == 0 {
                add(
                    "/sites",
                    "has 0 columns, expected (S, k) with k >= 1".into(),
                );
            }
            if let Some(((i, j), x)) = s.indexed_iter().find(|(_, x)| **x >= n) {
                add(
                    "/sites",
                    format!("node index {x} at [{i}, {j}] is out of range (n_nodes = {n})"),
                );
            }
        }
        if let Some(t) = &self.triangles {
            if let Some((i, tri)) = t
                .iter()
                .enumerate()
                .find(|(_, t)| t.iter().any(|x| *x >= n))
            {
                add(
                    "/triangles",
                    format!("triangle {i} = {tri:?} refers to a node outside 0..{n}"),
                );
            }
        }
        p
    }

    /// Write the graph (atomically; an existing file is only replaced with `force`).
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_invalid(path, self.problems())?;
        guard(path, || {
            let out = Out::create(path, force, Kind::Graph)?;
            out.attr("/", "n_nodes", &AttrValue::Int(self.n_nodes as i64))?;
            out.attr("/", "dof", &AttrValue::Int(self.dof as i64))?;
            let edges =
                Array2::from_shape_fn((self.edges.len(), 2), |(i, j)| self.edges[i][j] as i64);
            out.i64("edges", &edges)?;
            for (name, a) in [
                ("positions", &self.positions),
                ("node_features", &self.node_features),
                ("edge_features", &self.edge_features),
            ] {
                if let Some(a) = a {
                    check_finite_out(path, name, a)?;
                    out.f64(name, a)?;
                }
            }
            if let Some(b) = &self.boundary {
                let v: Vec<u8> = b.iter().map(|x| u8::from(*x)).collect();
                out.u8_1d("boundary", &v)?;
            }
            if let Some(s) = &self.sites {
                out.i64("sites", &s.mapv(|x| x as i64))?;
            }
            if let Some(t) = &self.triangles {
                let a = Array2::from_shape_fn((t.len(), 3), |(i, j)| t[i][j] as i64);
                out.i64("triangles", &a)?;
            }
            out.extra_attrs("/", &self.attrs, RESERVED)?;
            out.commit().map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_of_in_memory_graphs() {
        assert!(GraphData::new(3, 1, vec![[0, 1], [1, 2]])
            .problems()
            .is_empty());
        let p = GraphData::new(3, 1, vec![[0, 0]]).problems();
        assert!(p[0].msg.contains("self-loop"), "{p:?}");
        let p = GraphData::new(0, 1, vec![]).problems();
        assert_eq!(p[0].location, "/@n_nodes");
        let mut g = GraphData::new(2, 1, vec![[0, 1]]);
        g.edge_features = Some(Array2::zeros((2, 1)));
        g.boundary = Some(vec![true]);
        let locs: Vec<_> = g.problems().into_iter().map(|p| p.location).collect();
        assert_eq!(locs, vec!["/edge_features", "/boundary"]);
    }
}
