//! A learned input map of a graph model (docs/DESIGN.md §13.9): the generalised force of an
//! input u ∈ R^m is B u with B_{(i,c),j} = s_i β_{(i,c),j}, one free value β per coordinate
//! (node i, component c) and input j, s_i the mass scale of the model's kinetic term (1, or the
//! lumped area on meshes, so that β is the density of a load and O(1) whatever the mesh size).
//! It is saved in model files (group `input_map`, docs/SCHEMA.md) and trained by the one `fit`
//! with the exact gradient ∂ℓ/∂β_{(i,c),j} = s_i Σ_samples λ_{(i,c)} u_j (13.9).

use super::{GraphModel, MassScale, SystemGraph};
use crate::{Error, Result};

/// Where a driven model's input map B comes from (`lgn train --input-map`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InputMapKind {
    /// B is given: the training file's `/B` (the identity when absent and u has one column
    /// per coordinate).
    #[default]
    Given,
    /// B = s_i β is learned with the model and saved in it (group `input_map`).
    Learned,
}

crate::named!(InputMapKind {
    Given => "given": "B is the training file's /B (the identity when absent and u has one column per coordinate)",
    Learned => "learned": "B = s_i·β is learned with the model (β free per node and input, s_i the node's mass scale) and saved in the model file",
});

/// The learned input map of a [`GraphModel`].
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedInputMap {
    /// Width m of the input u.
    pub width: usize,
    /// β, n·d × m row-major.
    pub beta: Vec<f64>,
    pub scale: MassScale,
}

impl LearnedInputMap {
    /// A map of width `m` for `model` on `graph`, starting from `init` (a B of n·d × m values,
    /// β = B / s) or from zero.
    pub fn new(
        model: &GraphModel,
        graph: &SystemGraph,
        m: usize,
        init: Option<&[f64]>,
    ) -> Result<LearnedInputMap> {
        let n = graph.n_coords();
        if m == 0 {
            return Err(Error::input(
                "a learned input map needs an input width m ≥ 1",
            ));
        }
        let mut map = LearnedInputMap {
            width: m,
            beta: vec![0.0; n * m],
            scale: model.mass_scale_kind(),
        };
        if let Some(b) = init {
            if b.len() != n * m {
                return Err(Error::input(format!(
                    "the initial input map has {} values; the graph has {n} coordinates and u width {m}, so B needs {n} × {m}",
                    b.len()
                )));
            }
            crate::error::check_finite("initial input map B", b)?;
            let s = map.coord_scale(graph, model.dof)?;
            for (k, (beta, b)) in map.beta.iter_mut().zip(b).enumerate() {
                *beta = b / s[k / m];
            }
        }
        Ok(map)
    }

    /// s_i repeated for the d components of every node.
    fn coord_scale(&self, graph: &SystemGraph, d: usize) -> Result<Vec<f64>> {
        let s = graph.mass_scale(self.scale)?;
        Ok(s.iter().flat_map(|&x| std::iter::repeat_n(x, d)).collect())
    }

    /// Check the map against `graph` (n·d rows).
    pub fn check(&self, graph: &SystemGraph) -> Result<()> {
        let n = graph.n_coords();
        if self.width == 0 || self.beta.len() != n * self.width {
            return Err(Error::input(format!(
                "{}: the learned input map has {} values, but the graph has {n} coordinates and the map width {}",
                graph.name,
                self.beta.len(),
                self.width
            )));
        }
        Ok(())
    }

    /// B = s_i β (n·d × m, row-major) on `graph`.
    pub fn map(&self, graph: &SystemGraph, d: usize) -> Result<Vec<f64>> {
        self.check(graph)?;
        let s = self.coord_scale(graph, d)?;
        let m = self.width;
        Ok(self
            .beta
            .iter()
            .enumerate()
            .map(|(k, b)| s[k / m] * b)
            .collect())
    }

    /// Accumulate ∂ℓ/∂β = s_i Σ_samples λ_{(i,c)} u_j into `grad` (n·d × m) for the samples'
    /// adjoints `lams` and inputs `us` (one slice each per sample).
    pub fn gradient(
        &self,
        graph: &SystemGraph,
        d: usize,
        lams: &[&[f64]],
        us: &[&[f64]],
        grad: &mut [f64],
    ) -> Result<()> {
        let s = self.coord_scale(graph, d)?;
        let m = self.width;
        for (lam, u) in lams.iter().zip(us) {
            for (k, l) in lam.iter().enumerate() {
                if *l == 0.0 {
                    continue;
                }
                let g = &mut grad[k * m..(k + 1) * m];
                for (g, u) in g.iter_mut().zip(u.iter()) {
                    *g += l * u;
                }
            }
        }
        for (k, g) in grad.iter_mut().enumerate() {
            *g *= s[k / m];
        }
        Ok(())
    }
}
