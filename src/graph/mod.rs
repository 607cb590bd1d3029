//! Graphs on petgraph: the nodes carry the coordinates, the edges define neighbourhoods I_i.

use crate::{Error, Result};
use petgraph::graph::{NodeIndex, UnGraph};

/// What kind of graph this is; solvers use it to pick an ordering (e.g. the ring's fold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphKind {
    /// Periodic 1D grid: i ~ i±1 mod n.
    Ring,
    /// Open 1D grid: i ~ i±1.
    Chain,
    /// 2D grid of nx × ny nodes (node = x + nx·y), optionally periodic in both directions.
    Grid {
        nx: usize,
        ny: usize,
        periodic: bool,
    },
    /// One node carrying all coordinates: small dense systems such as the double pendulum.
    SingleNode,
    /// Any other graph (edge list, mesh).
    General,
}

/// An undirected graph with `dof` coordinates per node.
#[derive(Clone, Debug)]
pub struct Graph {
    pub graph: UnGraph<(), ()>,
    pub dof: usize,
    pub kind: GraphKind,
}

impl Graph {
    fn build(
        n: usize,
        dof: usize,
        kind: GraphKind,
        edges: impl IntoIterator<Item = (usize, usize)>,
    ) -> Graph {
        let mut graph = UnGraph::with_capacity(n, 0);
        for _ in 0..n {
            graph.add_node(());
        }
        for (a, b) in edges {
            graph.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
        }
        Graph { graph, dof, kind }
    }

    fn check_dof(dof: usize) -> Result<()> {
        if dof == 0 {
            return Err(Error::input(
                "coordinates per node (dof) must be at least 1",
            ));
        }
        Ok(())
    }

    /// Periodic ring of n ≥ 3 nodes.
    pub fn ring(n: usize, dof: usize) -> Result<Graph> {
        Self::check_dof(dof)?;
        if n < 3 {
            return Err(Error::input(format!(
                "a periodic ring needs at least 3 nodes, got n = {n}"
            )));
        }
        Ok(Self::build(
            n,
            dof,
            GraphKind::Ring,
            (0..n).map(|i| (i, (i + 1) % n)),
        ))
    }

    /// Open chain of n ≥ 2 nodes.
    pub fn chain(n: usize, dof: usize) -> Result<Graph> {
        Self::check_dof(dof)?;
        if n < 2 {
            return Err(Error::input(format!(
                "an open chain needs at least 2 nodes, got n = {n}"
            )));
        }
        Ok(Self::build(
            n,
            dof,
            GraphKind::Chain,
            (0..n - 1).map(|i| (i, i + 1)),
        ))
    }

    /// nx × ny grid, node index x + nx·y; periodic grids need nx, ny ≥ 3.
    pub fn grid(nx: usize, ny: usize, periodic: bool, dof: usize) -> Result<Graph> {
        Self::check_dof(dof)?;
        let min = if periodic { 3 } else { 1 };
        if nx < min || ny < min || nx * ny < 2 {
            return Err(Error::input(format!(
                "grid {nx} × {ny} is too small (periodic: {periodic})"
            )));
        }
        let mut edges = Vec::with_capacity(2 * nx * ny);
        for y in 0..ny {
            for x in 0..nx {
                let i = x + nx * y;
                if x + 1 < nx || periodic {
                    edges.push((i, (x + 1) % nx + nx * y));
                }
                if y + 1 < ny || periodic {
                    edges.push((i, x + nx * ((y + 1) % ny)));
                }
            }
        }
        Ok(Self::build(
            nx * ny,
            dof,
            GraphKind::Grid { nx, ny, periodic },
            edges,
        ))
    }

    /// General graph from an undirected edge list (0-based). Self-loops and out-of-range
    /// indices are errors; duplicate edges are merged.
    pub fn from_edges(n: usize, edges: &[(usize, usize)], dof: usize) -> Result<Graph> {
        Self::check_dof(dof)?;
        if n == 0 {
            return Err(Error::input("the graph is empty (0 nodes)"));
        }
        let mut clean: Vec<(usize, usize)> = Vec::with_capacity(edges.len());
        for (k, &(a, b)) in edges.iter().enumerate() {
            if a >= n || b >= n {
                return Err(Error::input(format!(
                    "edge {k} = ({a}, {b}) refers to a node ≥ n = {n}"
                )));
            }
            if a == b {
                return Err(Error::input(format!(
                    "edge {k} = ({a}, {b}) is a self-loop"
                )));
            }
            clean.push((a.min(b), a.max(b)));
        }
        clean.sort_unstable();
        clean.dedup();
        Ok(Self::build(n, dof, GraphKind::General, clean))
    }

    /// One node with `dof` coordinates (a small dense system).
    pub fn single_node(dof: usize) -> Result<Graph> {
        Self::check_dof(dof)?;
        Ok(Self::build(1, dof, GraphKind::SingleNode, []))
    }

    pub fn n_nodes(&self) -> usize {
        self.graph.node_count()
    }

    pub fn n_edges(&self) -> usize {
        self.graph.edge_count()
    }

    /// Total coordinates n·d.
    pub fn n_coords(&self) -> usize {
        self.n_nodes() * self.dof
    }

    /// Sorted neighbours of node i (without i).
    pub fn neighbours(&self, i: usize) -> Vec<usize> {
        let mut nb: Vec<usize> = self
            .graph
            .neighbors(NodeIndex::new(i))
            .map(|n| n.index())
            .collect();
        nb.sort_unstable();
        nb.dedup();
        nb
    }

    /// Edge list (a < b), in petgraph order.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        self.graph
            .edge_indices()
            .map(|e| {
                let (a, b) = self.graph.edge_endpoints(e).expect("edge exists");
                (a.index().min(b.index()), a.index().max(b.index()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors() {
        let r = Graph::ring(5, 1).unwrap();
        assert_eq!(r.neighbours(0), vec![1, 4]);
        assert_eq!(r.n_edges(), 5);
        let c = Graph::chain(4, 2).unwrap();
        assert_eq!(c.neighbours(0), vec![1]);
        assert_eq!(c.n_coords(), 8);
        let g = Graph::grid(3, 4, true, 1).unwrap();
        assert_eq!(g.neighbours(0), vec![1, 2, 3, 9]);
        let g = Graph::grid(3, 4, false, 1).unwrap();
        assert_eq!(g.neighbours(4), vec![1, 3, 5, 7]);
        assert!(Graph::ring(2, 1).is_err());
        assert!(Graph::from_edges(0, &[], 1).is_err());
        assert!(Graph::from_edges(3, &[(0, 3)], 1).is_err());
        assert!(Graph::from_edges(3, &[(1, 1)], 1).is_err());
        assert_eq!(
            Graph::from_edges(3, &[(0, 1), (1, 0)], 1)
                .unwrap()
                .n_edges(),
            1
        );
        assert_eq!(Graph::single_node(2).unwrap().n_coords(), 2);
    }
}
