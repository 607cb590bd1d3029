//! Training one [`GraphModel`] on several graphs at once (e.g. meshes of several resolutions, so
//! that a model sees the range of node areas it will meet zero-shot): samples of every graph in
//! one [`GraphSets`], one [`GraphTrainer`] per graph sharing the parameters, driven by
//! [`super::fit`] like every other model.
//!
//! A minibatch may mix graphs. Its loss is the weighted mean of the graphs' minibatch losses,
//! each graph weighted by its share of the minibatch's sample weight:
//! ℓ = Σ_g ℓ_g W_g / W, W_g = Σ_{i ∈ batch ∩ g} w_i — the same rule for the loss of predicting
//! zero, so the relative loss is 1 at q̈ = 0 whatever the mixture.

use super::graph::GraphTrainer;
use super::{LossKind, Samples, Trainable, TrainingSet};
use crate::model::{GraphModel, SystemGraph};
use crate::{Error, Result};
use std::sync::Arc;

/// Samples of several graphs: sample `i` is row `rows[i].1` of graph `rows[i].0`'s set.
#[derive(Clone, Debug)]
pub struct GraphSets {
    sets: Arc<Vec<Samples>>,
    rows: Vec<(usize, usize)>,
}

impl GraphSets {
    /// All rows of every set, graph after graph.
    pub fn new(sets: Vec<Samples>) -> GraphSets {
        let rows = sets
            .iter()
            .enumerate()
            .flat_map(|(g, s)| (0..s.n).map(move |r| (g, r)))
            .collect();
        GraphSets {
            sets: Arc::new(sets),
            rows,
        }
    }
    /// Number of graphs.
    pub fn n_graphs(&self) -> usize {
        self.sets.len()
    }
    /// The samples of graph `g`.
    pub fn set(&self, g: usize) -> &Samples {
        &self.sets[g]
    }
    /// Split `idx` by graph: per graph the rows, and the summed sample weight.
    fn groups(&self, idx: &[usize]) -> Vec<(Vec<usize>, f64)> {
        let mut out = vec![(vec![], 0.0); self.sets.len()];
        for &i in idx {
            let (g, r) = self.rows[i];
            out[g].0.push(r);
            out[g].1 += self.sets[g].weight(r);
        }
        out
    }
}

impl TrainingSet for GraphSets {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn subset(&self, idx: &[usize]) -> Self {
        GraphSets {
            sets: self.sets.clone(),
            rows: idx.iter().map(|&i| self.rows[i]).collect(),
        }
    }
    fn weight(&self, i: usize) -> f64 {
        let (g, r) = self.rows[i];
        self.sets[g].weight(r)
    }
    fn zero_loss(&self, idx: &[usize], loss: LossKind) -> f64 {
        let groups = self.groups(idx);
        let w: f64 = groups.iter().map(|g| g.1).sum();
        groups
            .iter()
            .enumerate()
            .filter(|(_, (rows, _))| !rows.is_empty())
            .map(|(g, (rows, wg))| super::zero_loss(&self.sets[g], rows, loss) * wg / w)
            .sum()
    }
}

/// One [`GraphModel`] trained on several graphs (one [`GraphTrainer`] each, same parameters).
pub struct MultiGraphTrainer {
    trainers: Vec<GraphTrainer>,
}

impl MultiGraphTrainer {
    /// `model` on each of `graphs` (checked against each: dof and feature counts).
    pub fn new(model: GraphModel, graphs: Vec<SystemGraph>) -> Result<MultiGraphTrainer> {
        if graphs.is_empty() {
            return Err(Error::input(
                "training on several graphs needs at least one",
            ));
        }
        let trainers = graphs
            .into_iter()
            .map(|g| GraphTrainer::new(model.clone(), g))
            .collect::<Result<Vec<_>>>()?;
        Ok(MultiGraphTrainer { trainers })
    }
    /// The model (with the current parameters).
    pub fn model(&self) -> &GraphModel {
        &self.trainers[0].model
    }
    /// The trained model.
    pub fn into_model(self) -> GraphModel {
        self.trainers
            .into_iter()
            .next()
            .map(|t| t.model)
            .expect("at least one graph")
    }
}

impl Trainable<GraphSets> for MultiGraphTrainer {
    fn params(&self) -> Vec<f64> {
        self.trainers[0].params()
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        self.trainers
            .iter_mut()
            .try_for_each(|t| t.set_params(theta))
    }
    fn loss_grad(
        &mut self,
        data: &GraphSets,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        if data.n_graphs() != self.trainers.len() {
            return Err(Error::input(format!(
                "the data holds samples of {} graphs, the trainer has {}",
                data.n_graphs(),
                self.trainers.len()
            )));
        }
        let groups = data.groups(idx);
        let w: f64 = groups.iter().map(|g| g.1).sum();
        let np = if want_grad { self.params().len() } else { 0 };
        let (mut total, mut grad, mut dropped) = (0.0, vec![0.0; np], 0);
        for (g, (rows, wg)) in groups.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let (l, gr, d) = self.trainers[g]
                .loss_grad(data.set(g), rows, loss, want_grad)
                .map_err(|e| e.context(&format!("graph {g}")))?;
            let f = wg / w;
            total += f * l;
            for (x, y) in grad.iter_mut().zip(&gr) {
                *x += f * y;
            }
            dropped += d;
        }
        Ok((total, grad, dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FeatureSet, NetShape};
    use rand::{Rng, SeedableRng};

    fn samples(graph: &SystemGraph, n: usize, seed: u64) -> Samples {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        let dy = crate::systems::spring_network(
            graph,
            1.0,
            2.0,
            0.5,
            false,
            crate::solve::SolverKind::Auto,
        );
        let mut dy = dy.unwrap();
        let m = graph.n_coords();
        let (mut input, mut target, mut w) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let q: Vec<f64> = (0..m).map(|_| r.random_range(-0.5..0.5)).collect();
            let v: Vec<f64> = (0..m).map(|_| r.random_range(-0.5..0.5)).collect();
            target.extend(dy.accelerations(&q, &v).unwrap());
            input.extend(q);
            input.extend(v);
            w.push(r.random_range(0.5..2.0));
        }
        Samples::new(2 * m, m, input, target, Some(w)).unwrap()
    }

    /// The multi-graph loss and gradient are the weight-share mixture of the single-graph ones,
    /// and the gradient matches central finite differences of the loss.
    #[test]
    fn mixture_of_graph_losses_and_its_gradient() {
        let graphs = vec![
            SystemGraph::line(5, 1, false).unwrap(),
            SystemGraph::line(8, 1, true).unwrap(),
        ];
        let sets = vec![samples(&graphs[0], 6, 1), samples(&graphs[1], 5, 2)];
        let qs: Vec<&[f64]> = (0..6).map(|i| &sets[0].input_row(i)[..5]).collect();
        let shape = NetShape {
            hidden: 6,
            layers: 1,
            seed: 3,
        };
        let model =
            GraphModel::node_edge(&graphs[0], FeatureSet::Graph, false, &shape, &qs).unwrap();
        let data = GraphSets::new(sets.clone());
        let mut multi = MultiGraphTrainer::new(model.clone(), graphs.clone()).unwrap();
        let idx = [0, 7, 2, 9, 10, 4];
        let (l, g, _) = multi.loss_grad(&data, &idx, LossKind::Mse, true).unwrap();

        // Against the single-graph trainers, weighted by their share of the batch weight.
        let (r0, r1): (Vec<usize>, Vec<usize>) = (vec![0, 2, 4], vec![1, 3, 4]);
        let w0: f64 = r0.iter().map(|&r| sets[0].weight(r)).sum();
        let w1: f64 = r1.iter().map(|&r| sets[1].weight(r)).sum();
        let mut t0 = GraphTrainer::new(model.clone(), graphs[0].clone()).unwrap();
        let mut t1 = GraphTrainer::new(model.clone(), graphs[1].clone()).unwrap();
        let (l0, _, _) = t0.loss_grad(&sets[0], &r0, LossKind::Mse, false).unwrap();
        let (l1, _, _) = t1.loss_grad(&sets[1], &r1, LossKind::Mse, false).unwrap();
        let expect = (l0 * w0 + l1 * w1) / (w0 + w1);
        assert!((l - expect).abs() < 1e-13 * expect.abs(), "{l} vs {expect}");
        let z = data.zero_loss(&idx, LossKind::Mse);
        let z_expect = (crate::train::zero_loss(&sets[0], &r0, LossKind::Mse) * w0
            + crate::train::zero_loss(&sets[1], &r1, LossKind::Mse) * w1)
            / (w0 + w1);
        assert!((z - z_expect).abs() < 1e-13 * z_expect);

        let theta = multi.params();
        for k in [0, theta.len() / 3, theta.len() / 2, theta.len() - 1] {
            let h = 1e-6 * (1.0 + theta[k].abs());
            let mut at = |x: f64| {
                let mut t = theta.clone();
                t[k] = x;
                multi.set_params(&t).unwrap();
                multi
                    .loss_grad(&data, &idx, LossKind::Mse, false)
                    .unwrap()
                    .0
            };
            let fd = (at(theta[k] + h) - at(theta[k] - h)) / (2.0 * h);
            assert!(
                (fd - g[k]).abs() < 1e-6 * (1.0 + g[k].abs()),
                "param {k}: fd {fd} vs {}",
                g[k]
            );
        }
    }
}
