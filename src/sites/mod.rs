//! Sites s with their ordered neighbourhoods I_s (docs/DESIGN.md §1), derived from a graph.
//!
//! All sites of one [`Sites`] collection share an arity k, so one density (one MLP input size)
//! serves them all; a Lagrangian may sum several collections (e.g. node terms plus edge terms on
//! a mesh, whose neighbourhoods vary in size).

use crate::graph::{Graph, GraphKind};
use crate::{Error, Result};

/// A family of sites of equal arity, with optional per-site features.
#[derive(Clone, Debug, PartialEq)]
pub struct Sites {
    /// Nodes per site, k.
    pub arity: usize,
    /// `len × arity` node indices, site-major.
    pub nodes: Vec<usize>,
    /// Features per site.
    pub n_features: usize,
    /// `len × n_features`, site-major.
    pub features: Vec<f64>,
}

impl Sites {
    /// Explicit sites; every index must be below `n_nodes`.
    pub fn explicit(arity: usize, nodes: Vec<usize>, n_nodes: usize) -> Result<Sites> {
        if arity == 0 || nodes.len() % arity != 0 {
            return Err(Error::input(format!(
                "site list of length {} is not a multiple of arity {arity}",
                nodes.len()
            )));
        }
        if let Some((k, &i)) = nodes.iter().enumerate().find(|(_, &i)| i >= n_nodes) {
            return Err(Error::input(format!(
                "site {} refers to node {i} ≥ n = {n_nodes}",
                k / arity
            )));
        }
        if nodes.is_empty() {
            return Err(Error::input("no sites"));
        }
        Ok(Sites {
            arity,
            nodes,
            n_features: 0,
            features: vec![],
        })
    }

    /// Attach per-site features (`len × n_features`, site-major).
    pub fn with_features(mut self, n_features: usize, features: Vec<f64>) -> Result<Sites> {
        if features.len() != self.len() * n_features {
            return Err(Error::input(format!(
                "{} feature values given for {} sites × {n_features} features",
                features.len(),
                self.len()
            )));
        }
        crate::error::check_finite("site features", &features)?;
        self.n_features = n_features;
        self.features = features;
        Ok(self)
    }

    /// 1D node-centred sites I_i = (i−1, i, i+1): every node of a ring, interior nodes of a chain.
    pub fn stencil3(graph: &Graph) -> Result<Sites> {
        let n = graph.n_nodes();
        let nodes: Vec<usize> = match graph.kind {
            GraphKind::Ring => (0..n)
                .flat_map(|i| [(i + n - 1) % n, i, (i + 1) % n])
                .collect(),
            GraphKind::Chain if n >= 3 => (1..n - 1).flat_map(|i| [i - 1, i, i + 1]).collect(),
            _ => {
                return Err(Error::input(
                    "3-point stencil sites need a ring (n ≥ 3) or a chain (n ≥ 3)",
                ));
            }
        };
        Sites::explicit(3, nodes, n)
    }

    /// Node-centred sites I_i = (i, sorted neighbours of i); all nodes must have equal degree
    /// (ring, periodic grid). For graphs of varying degree use [`Sites::nodes`] + [`Sites::edges`].
    pub fn node_centred(graph: &Graph) -> Result<Sites> {
        let n = graph.n_nodes();
        let deg = graph.neighbours(0).len();
        let mut nodes = Vec::with_capacity(n * (deg + 1));
        for i in 0..n {
            let nb = graph.neighbours(i);
            if nb.len() != deg {
                return Err(Error::input(format!(
                    "node {i} has degree {} but node 0 has {deg}: node-centred sites of one arity need a regular graph",
                    nb.len()
                )));
            }
            nodes.push(i);
            nodes.extend(nb);
        }
        Sites::explicit(deg + 1, nodes, n)
    }

    /// One site per node, I_i = (i).
    pub fn nodes(graph: &Graph) -> Result<Sites> {
        Sites::explicit(1, (0..graph.n_nodes()).collect(), graph.n_nodes())
    }

    /// One site per edge, I_e = (a, b).
    pub fn edges(graph: &Graph) -> Result<Sites> {
        if graph.n_edges() == 0 {
            return Err(Error::input("the graph has no edges"));
        }
        Sites::explicit(
            2,
            graph
                .edges()
                .into_iter()
                .flat_map(|(a, b)| [a, b])
                .collect(),
            graph.n_nodes(),
        )
    }

    /// The single site of a one-node graph (small dense systems).
    pub fn single(graph: &Graph) -> Result<Sites> {
        if graph.n_nodes() != 1 {
            return Err(Error::input(format!(
                "a single-site system needs a one-node graph, got {} nodes",
                graph.n_nodes()
            )));
        }
        Sites::explicit(1, vec![0], 1)
    }

    pub fn len(&self) -> usize {
        self.nodes.len() / self.arity
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The neighbourhood I_s.
    pub fn neighbourhood(&self, s: usize) -> &[usize] {
        &self.nodes[s * self.arity..(s + 1) * self.arity]
    }

    pub fn features_of(&self, s: usize) -> &[f64] {
        &self.features[s * self.n_features..(s + 1) * self.n_features]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stencils() {
        let ring = Graph::ring(4, 1).unwrap();
        let s = Sites::stencil3(&ring).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s.neighbourhood(0), &[3, 0, 1]);
        let chain = Graph::chain(4, 1).unwrap();
        assert_eq!(
            Sites::stencil3(&chain).unwrap().neighbourhood(0),
            &[0, 1, 2]
        );
        let grid = Graph::grid(3, 3, true, 1).unwrap();
        assert_eq!(Sites::node_centred(&grid).unwrap().arity, 5);
        assert!(Sites::node_centred(&Graph::grid(3, 3, false, 1).unwrap()).is_err());
        assert!(Sites::explicit(2, vec![0, 5], 3).is_err());
        assert!(Sites::explicit(2, vec![0, 1, 2], 3).is_err());
    }
}
