//! The dissipation term of a graph model (docs/DESIGN.md §13.7): D = ½ Σ_i γ_i |q̇_i|² with
//! γ_i = s_i · softplus(N(x_i)) ≥ 0, s_i the mass scale of the model's kinetic term (1 or the
//! lumped area), x_i = (q_i, f_i) (`learned`) or the constant 1 (`linear`: one learned
//! coefficient per unit of mass scale). It is saved in model files (group `dissipation`,
//! docs/SCHEMA.md) and trained by the one `fit` with the adjoint gradient (13.3).

use super::{GraphModel, MassScale, SystemGraph, MASS_HIDDEN};
use crate::density::dissipation::{
    DissipationKind, DissipationTerm, Forces, LearnedNodeDissipation,
};
use crate::density::Mlp;
use crate::dynamics::Dynamics;
use crate::{Error, Result};

/// A learned node dissipation of a [`GraphModel`].
#[derive(Clone, Debug, PartialEq)]
pub struct GraphDissipation {
    /// The network N (input: d coordinates when `q_input`, then `n_features` node features;
    /// the constant 1 when neither).
    pub net: Mlp,
    pub q_input: bool,
    pub scale: MassScale,
    pub n_features: usize,
    /// Mass-proportional damping (docs/DESIGN.md §13.11): γ_i = μ_i·softplus(N) with μ_i the
    /// model's learned node mass (summed over its kinetic terms) instead of s_i, so the damping
    /// acceleration −softplus(N) q̇_i does not depend on the learned masses. Model files
    /// without the attribute `relative_to_mass` have `false`.
    pub relative_to_mass: bool,
}

/// Initial γ_i / s_i of a new dissipation term (softplus(N) at the start).
pub const INITIAL_RATE: f64 = 0.05;

impl GraphDissipation {
    /// `linear` (a constant rate per unit mass scale) or `learned` (a network of q_i and the
    /// node features), for `model` on `graph`; `q_samples` (rows of n·d coordinates) set the
    /// input scale. `None` for [`DissipationKind::None`].
    pub fn new(
        kind: DissipationKind,
        model: &GraphModel,
        graph: &SystemGraph,
        hidden: usize,
        layers: usize,
        seed: u64,
        q_samples: &[&[f64]],
    ) -> Result<Option<GraphDissipation>> {
        let scale = model.mass_scale_kind();
        let d = model.dof;
        let (q_input, nf) = match kind {
            DissipationKind::None => return Ok(None),
            DissipationKind::Linear => (false, 0),
            DissipationKind::Learned => (true, graph.node_features(model.features)?.0),
        };
        let p = LearnedNodeDissipation::input_len(q_input, d, nf);
        let mut sizes = vec![p];
        if q_input {
            sizes.extend(std::iter::repeat_n(hidden.max(1), layers.max(1)));
        } else {
            sizes.push(MASS_HIDDEN);
        }
        sizes.push(1);
        let mut net = Mlp::paper_init(&sizes, seed.wrapping_add(0xd1));
        if q_input {
            let n = graph.n_nodes();
            for c in 0..d {
                let xs = || {
                    q_samples
                        .iter()
                        .flat_map(move |q| (0..n).map(move |i| q[i * d + c]))
                };
                let cnt = xs().count().max(1) as f64;
                let m = xs().sum::<f64>() / cnt;
                net.input_shift[c] = m;
                net.input_scale[c] = super::rms(xs().map(|x| x - m));
            }
            let (_, f) = graph.node_features(model.features)?;
            for j in 0..nf {
                net.input_scale[d + j] = super::mean_abs(&f, nf, j);
            }
        }
        // Small output weights, bias so that softplus(N) ≈ INITIAL_RATE at the start.
        let last = net.weights.len() - 1;
        let width = net.sizes[last] as f64;
        for w in &mut net.weights[last] {
            *w /= width;
        }
        net.biases[last][0] = INITIAL_RATE.exp_m1().ln();
        Ok(Some(GraphDissipation {
            net,
            q_input,
            scale,
            n_features: nf,
            relative_to_mass: true,
        }))
    }

    /// `linear` or `learned` (model files, messages).
    pub fn kind(&self) -> DissipationKind {
        if self.q_input || self.n_features > 0 {
            DissipationKind::Learned
        } else {
            DissipationKind::Linear
        }
    }

    /// The term on `graph` (features and mass scale of that graph).
    pub fn term(&self, model: &GraphModel, graph: &SystemGraph) -> Result<DissipationTerm> {
        let (nf, f) = if self.n_features > 0 {
            graph.node_features(model.features)?
        } else {
            (0, vec![])
        };
        if nf != self.n_features {
            return Err(Error::input(format!(
                "{}: the graph has {nf} node features but the model's dissipation was trained with {}",
                graph.name, self.n_features
            )));
        }
        Ok(DissipationTerm::Learned(LearnedNodeDissipation {
            net: self.net.clone(),
            q_input: self.q_input,
            dof: model.dof,
            features: f,
            n_features: nf,
            scale: if self.relative_to_mass {
                model.total_masses(graph)?
            } else {
                graph.mass_scale(self.scale)?
            },
        }))
    }

    /// The learned coefficients γ_i on `graph` at coordinates `q`.
    pub fn coefficients(
        &self,
        model: &GraphModel,
        graph: &SystemGraph,
        q: &[f64],
    ) -> Result<Vec<f64>> {
        let DissipationTerm::Learned(l) = self.term(model, graph)? else {
            unreachable!("term() builds a learned term")
        };
        let mut g = vec![0.0; graph.n_nodes()];
        l.coefficients(q, &mut g);
        Ok(g)
    }
}

impl GraphModel {
    /// μ_i summed over the kinetic terms (the mass scale s_i without one).
    pub fn total_masses(&self, graph: &SystemGraph) -> Result<Vec<f64>> {
        let mut mu: Option<Vec<f64>> = None;
        for (t, term) in self.terms.iter().enumerate() {
            if matches!(term, super::GraphTerm::Kinetic { .. }) {
                let m = self.masses(t, graph)?;
                match &mut mu {
                    Some(acc) => acc.iter_mut().zip(&m).for_each(|(a, b)| *a += b),
                    None => mu = Some(m),
                }
            }
        }
        match mu {
            Some(m) => Ok(m),
            None => graph.mass_scale(self.mass_scale_kind()),
        }
    }

    /// The mass scale s_i of the first kinetic term (`One` without one).
    pub fn mass_scale_kind(&self) -> MassScale {
        self.terms
            .iter()
            .find_map(|t| match t {
                super::GraphTerm::Kinetic { scale, .. } => Some(*scale),
                _ => None,
            })
            .unwrap_or(MassScale::One)
    }

    /// Attach the model's dissipation (if any) to `dy`, or refresh it after a parameter change
    /// (an input force already on `dy` is kept).
    pub(crate) fn attach_dissipation(&self, dy: &mut Dynamics, graph: &SystemGraph) -> Result<()> {
        let Some(dis) = &self.dissipation else {
            return Ok(());
        };
        let term = dis.term(self, graph)?;
        let mut forces = dy.forces.take().unwrap_or_default();
        forces
            .dissipation
            .retain(|t| !matches!(t, DissipationTerm::Learned(_)));
        forces.dissipation.push(term);
        dy.set_forces(forces)
    }

    /// The dissipation as [`Forces`] on `graph` (empty without one).
    pub fn forces(&self, graph: &SystemGraph) -> Result<Forces> {
        Ok(Forces {
            dissipation: match &self.dissipation {
                Some(d) => vec![d.term(self, graph)?],
                None => vec![],
            },
            input: None,
        })
    }
}
