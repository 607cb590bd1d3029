//! L(q, v) = Σ_terms Σ_{s ∈ sites} ρ_term(q_{I_s}, v_{I_s}, f_s) (docs/DESIGN.md §1).

use crate::density::Density;
use crate::sites::Sites;
use crate::{Error, Result};
use std::sync::Arc;

/// One family of sites and the density evaluated on each of them.
#[derive(Clone)]
pub struct Term {
    pub sites: Sites,
    pub density: Arc<dyn Density>,
}

/// A Lagrangian on `n_nodes` nodes with `dof` coordinates each: a sum of site densities.
#[derive(Clone)]
pub struct Lagrangian {
    pub n_nodes: usize,
    pub dof: usize,
    pub terms: Vec<Term>,
}

impl Lagrangian {
    /// A Lagrangian with a single term; checks that the density fits the sites.
    pub fn new(
        n_nodes: usize,
        dof: usize,
        sites: Sites,
        density: Arc<dyn Density>,
    ) -> Result<Lagrangian> {
        Lagrangian {
            n_nodes,
            dof,
            terms: vec![],
        }
        .with_term(sites, density)
    }

    /// Add a term (e.g. edge terms next to node terms).
    pub fn with_term(mut self, sites: Sites, density: Arc<dyn Density>) -> Result<Lagrangian> {
        if density.arity() != sites.arity {
            return Err(Error::input(format!(
                "density '{}' expects {} nodes per site but the sites have {}",
                density.name(),
                density.arity(),
                sites.arity
            )));
        }
        if density.dof() != self.dof {
            return Err(Error::input(format!(
                "density '{}' expects {} coordinates per node but the graph has {}",
                density.name(),
                density.dof(),
                self.dof
            )));
        }
        if density.n_features() != sites.n_features {
            return Err(Error::input(format!(
                "density '{}' expects {} features per site but the sites have {}",
                density.name(),
                density.n_features(),
                sites.n_features
            )));
        }
        if let Some(&i) = sites.nodes.iter().find(|&&i| i >= self.n_nodes) {
            return Err(Error::input(format!(
                "a site refers to node {i} ≥ n = {}",
                self.n_nodes
            )));
        }
        self.terms.push(Term { sites, density });
        Ok(self)
    }

    /// Number of coordinates n·d.
    pub fn n_coords(&self) -> usize {
        self.n_nodes * self.dof
    }

    /// Check a state (q, v) for length and finiteness.
    pub fn check_state(&self, q: &[f64], v: &[f64]) -> Result<()> {
        let n = self.n_coords();
        if q.len() != n || v.len() != n {
            return Err(Error::input(format!(
                "state length mismatch: q has {} values and qdot {}, the system has {} nodes × {} coordinates = {n}",
                q.len(),
                v.len(),
                self.n_nodes,
                self.dof
            )));
        }
        crate::error::check_finite("q", q)?;
        crate::error::check_finite("qdot", v)?;
        Ok(())
    }
}
