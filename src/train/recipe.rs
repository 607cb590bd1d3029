//! The training recipe of `lgn train` and of the Python package's `lgn.fit`: the user-facing
//! options with their defaults (which depend on whether a graph network or a single network is
//! trained, and on the size of the data set), the rule that picks fixed or free boundary nodes,
//! and the construction of a new model from the options. Both front ends build from here, so a
//! default changes in one place.
//!
//! Defaults: single networks (lnn, mlp, hnn) train with minibatches of 256, learning rate 1e-3,
//! a constant schedule and hidden width 128; graph networks (lgn, on a ring or on the user's
//! graph) with minibatches of 16 (fewer for small data sets, so that an epoch has at least ~32
//! steps: (n/32) clamped to [2, 16]), peak learning rate 3e-3 on a one-cycle schedule and hidden
//! width 64 (the ring's lgn: 128). Every run: 100 epochs, 2 hidden layers, loss relative to
//! predicting zero, gradient clipped to norm 1, 5 % warm-up, 10 % validation, seed 0.

use super::{HnnCoords, LossKind, MassPenalty, ModelKind, Schedule, TrainConfig, TrainedModel};
use crate::density::Precision;
use crate::model::{
    Boundary, ClosedTerm, FeatureSet, GraphModel, GraphTerm, NetShape, SystemGraph,
};
use crate::{Error, Result};
use ndarray::{Array2, Array3};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The training options a user sets (the flags of `lgn train`, the keywords of `lgn.fit`);
/// `None` means "the default for this kind of model" (module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// Passes over the training set.
    pub epochs: usize,
    /// Minibatch size (default: 256; graph networks (n/32) clamped to [2, 16]).
    pub batch: Option<usize>,
    /// (Peak) learning rate (default: 1e-3; graph networks 3e-3).
    pub lr: Option<f64>,
    /// L2 regularisation strength.
    pub weight_decay: f64,
    /// Learning-rate schedule (default: constant; graph networks onecycle).
    pub schedule: Option<Schedule>,
    /// Global-norm gradient clipping threshold (None: no clipping).
    pub clip: Option<f64>,
    /// Fraction of the steps over which the learning rate warms up.
    pub warmup: f64,
    /// Loss relative to predicting zero.
    pub normalise: bool,
    /// Fraction held out for validation.
    pub val_fraction: f64,
    /// Seed of initialisation, split and shuffling.
    pub seed: u64,
    /// Loss on the predicted accelerations.
    pub loss: LossKind,
    /// Weight of the mass-matrix definiteness penalty (single-site LNN), off when None.
    pub mass_penalty: Option<f64>,
    /// Relative eigenvalue margin of the mass penalty.
    pub mass_margin: f64,
    /// Precision of the networks' forward evaluations (ring lgn).
    pub precision: Precision,
    /// Hidden width (default: 128; graph networks on a graph 64).
    pub hidden: Option<usize>,
    /// Hidden layers.
    pub layers: usize,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            epochs: 100,
            batch: None,
            lr: None,
            weight_decay: 0.0,
            schedule: None,
            clip: Some(1.0),
            warmup: 0.05,
            normalise: true,
            val_fraction: 0.1,
            seed: 0,
            loss: LossKind::Mse,
            mass_penalty: None,
            mass_margin: MassPenalty::DEFAULT_MARGIN,
            precision: Precision::F64,
            hidden: None,
            layers: 2,
        }
    }
}

impl Recipe {
    /// Hidden width of a single network or of the ring's lgn.
    pub const NET_HIDDEN: usize = 128;
    /// Hidden width of a graph network on a graph or mesh.
    pub const GRAPH_HIDDEN: usize = 64;

    /// The hidden width: the option, else 64 for a graph network on a graph (`on_graph`), else
    /// 128.
    pub fn hidden(&self, on_graph: bool) -> usize {
        self.hidden.unwrap_or(if on_graph {
            Self::GRAPH_HIDDEN
        } else {
            Self::NET_HIDDEN
        })
    }

    /// The networks' shape (hidden width as [`Recipe::hidden`], layers, seed).
    pub fn shape(&self, on_graph: bool) -> NetShape {
        NetShape {
            hidden: self.hidden(on_graph),
            layers: self.layers,
            seed: self.seed,
        }
    }

    /// The trainer's configuration for `n` samples; `graph` selects the graph-network defaults
    /// (every lgn: on a graph, a mesh or the ring). `stop` is the flag that stops training
    /// after the current step (Ctrl-C).
    pub fn config(&self, graph: bool, n: usize, stop: Arc<AtomicBool>) -> Result<TrainConfig> {
        Ok(TrainConfig {
            epochs: self.epochs,
            batch: self
                .batch
                .unwrap_or(if graph { (n / 32).clamp(2, 16) } else { 256 }),
            lr: self.lr.unwrap_or(if graph { 3e-3 } else { 1e-3 }),
            weight_decay: self.weight_decay,
            schedule: self.schedule.unwrap_or(if graph {
                Schedule::Onecycle
            } else {
                Schedule::Constant
            }),
            clip: self.clip,
            val_fraction: self.val_fraction,
            seed: self.seed,
            loss: self.loss,
            mass_penalty: self
                .mass_penalty
                .map(|w| MassPenalty::new(w, self.mass_margin))
                .transpose()?,
            normalise: self.normalise,
            warmup: self.warmup,
            stop,
            precision: self.precision,
        })
    }

    /// A new single-network model of `kind` for states of `d` coordinates (`system` and its
    /// `params` as the data file records them), initialised with the recipe's shape and seed.
    /// `angles`: the coordinates are angles (q wrapped into (−π, π]; not for lgn).
    pub fn net_model(
        &self,
        kind: ModelKind,
        system: &str,
        params: &BTreeMap<String, f64>,
        d: usize,
        hnn_coords: HnnCoords,
        angles: bool,
    ) -> Result<TrainedModel> {
        let mut model =
            TrainedModel::init(kind, system, d, self.hidden(false), self.layers, self.seed)?;
        model.params = params.clone();
        if kind == ModelKind::Lgn {
            model.params.insert("n".into(), d as f64);
        }
        if kind == ModelKind::Hnn {
            model.hnn_coords = Some(hnn_coords);
        }
        if angles {
            if kind == ModelKind::Lgn {
                return Err(Error::input(
                    "angles apply to single-site models (lnn, mlp, hnn), not to lgn",
                ));
            }
            model.set_q_period(2.0 * std::f64::consts::PI)?;
        }
        Ok(model)
    }
}

/// The density of a graph network on the user's graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphDensity {
    /// Kinetic node term with positive masses + symmetric edge potential (+ optional node
    /// potential).
    NodeEdge,
    /// One general MLP ρ(q_I, q̇_I) over the graph file's explicit sites.
    Sites,
    /// One general MLP over (i−1, i, i+1) of a ring or chain graph.
    Stencil,
}

crate::named!(GraphDensity {
    NodeEdge => "node-edge": "kinetic node term with learned positive masses + symmetric edge potential",
    Sites => "sites": "one general MLP over the graph file's explicit sites",
    Stencil => "stencil": "one general MLP over (i−1, i, i+1) of a ring or chain graph",
});

/// How the boundary nodes of a graph are treated in training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundaryRule {
    /// Fixed when the data never moves the flagged boundary nodes, else free.
    Auto,
    /// Held in place (Dirichlet).
    Fixed,
    /// Free.
    Free,
}

crate::named!(BoundaryRule {
    Auto => "auto": "fixed when the data never moves the boundary nodes, else free",
    Fixed => "fixed": "boundary nodes are held in place (Dirichlet)",
    Free => "free": "boundary nodes move freely",
});

impl BoundaryRule {
    /// The boundary of a model on a graph whose flagged boundary coordinates are `fixed`
    /// (`name`: the graph, for the error of `Fixed` without boundary nodes); `still` tells
    /// whether the data leaves those coordinates at rest (asked only for `Auto`).
    pub fn resolve(
        self,
        fixed: &[usize],
        name: &str,
        still: impl FnOnce() -> bool,
    ) -> Result<Boundary> {
        Ok(match self {
            BoundaryRule::Free => Boundary::Free,
            BoundaryRule::Fixed => {
                if fixed.is_empty() {
                    return Err(Error::input(format!("{name} flags no boundary node")));
                }
                Boundary::Fixed
            }
            BoundaryRule::Auto => {
                if !fixed.is_empty() && still() {
                    Boundary::Fixed
                } else {
                    Boundary::Free
                }
            }
        })
    }
}

/// Whether the coordinates `fixed` have zero velocity and acceleration (to 1e-12 of the largest
/// magnitude of either) in every sample.
pub fn still_in_samples(fixed: &[usize], qdot: &Array2<f64>, qddot: &Array2<f64>) -> bool {
    still_at_scale(fixed, qdot, qddot, sample_scale(qdot, qddot))
}

/// The largest |q̇| or |q̈| of the samples: the scale of [`still_in_samples`].
pub fn sample_scale(qdot: &Array2<f64>, qddot: &Array2<f64>) -> f64 {
    qddot
        .iter()
        .chain(qdot.iter())
        .fold(0.0f64, |m, x| m.max(x.abs()))
}

/// [`still_in_samples`] at a given `scale` (of all samples, when these are one rank's shard).
pub fn still_at_scale(
    fixed: &[usize],
    qdot: &Array2<f64>,
    qddot: &Array2<f64>,
    scale: f64,
) -> bool {
    (0..qdot.nrows()).all(|i| {
        fixed
            .iter()
            .all(|&j| qddot[[i, j]].abs() <= 1e-12 * scale && qdot[[i, j]].abs() <= 1e-12 * scale)
    })
}

/// Whether the coordinates `fixed` keep their first position (to 1e-12 of the largest |q|) in
/// every frame of every trajectory of `q` (B × T × D).
pub fn still_in_positions(fixed: &[usize], q: &Array3<f64>) -> bool {
    let scale = q.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    let (nb, nt, _) = q.dim();
    (0..nb).all(|b| {
        fixed
            .iter()
            .all(|&j| (0..nt).all(|k| (q[[b, k, j]] - q[[b, 0, j]]).abs() <= 1e-12 * scale))
    })
}

/// The known kinetic term ½ M |q̇_i|² of a node-edge model with node masses M (checked:
/// finite, positive).
pub fn node_mass_term(mass: f64) -> Result<ClosedTerm> {
    let known = ClosedTerm::NodeMass { mass };
    known.check()?;
    Ok(known)
}

/// A new graph network on `graph`: `density` with the recipe's `shape`; node-edge takes a
/// learned node potential (`node_potential`) and a known kinetic term (`node_mass`, see
/// [`node_mass_term`]) instead of the learned masses. `states` are the training states (q, q̇)
/// whose first `graph.n_coords()` values, the positions, set the networks' input scales.
/// Front ends check their own spelling of the node-edge-only options first; this check
/// repeats it in the recipe's words.
pub fn graph_model(
    graph: &SystemGraph,
    features: FeatureSet,
    density: GraphDensity,
    node_potential: bool,
    node_mass: Option<ClosedTerm>,
    shape: &NetShape,
    states: &[&[f64]],
) -> Result<GraphModel> {
    let one = crate::parallel::SerialComm;
    graph_model_over(
        graph,
        features,
        density,
        node_potential,
        node_mass,
        shape,
        states,
        &one,
    )
}

/// [`graph_model`] with the states spread over the ranks of `comm` (each rank passes its
/// shard; the scales are those of all shards: docs/DESIGN.md §16.3). The general densities
/// (sites, stencil) need one rank.
#[allow(clippy::too_many_arguments)]
pub fn graph_model_over(
    graph: &SystemGraph,
    features: FeatureSet,
    density: GraphDensity,
    node_potential: bool,
    node_mass: Option<ClosedTerm>,
    shape: &NetShape,
    states: &[&[f64]],
    comm: &dyn crate::parallel::Comm,
) -> Result<GraphModel> {
    if density != GraphDensity::NodeEdge && comm.size() > 1 {
        return Err(Error::input(format!(
            "the {} density is not available with several MPI ranks yet: use node-edge or one rank",
            density.as_str()
        )));
    }
    if density != GraphDensity::NodeEdge && (node_potential || node_mass.is_some()) {
        return Err(Error::input(format!(
            "a node potential and known node masses belong to the node-edge density, not to {}",
            density.as_str()
        )));
    }
    let d = graph.n_coords();
    Ok(match density {
        GraphDensity::NodeEdge => {
            let qs: Vec<&[f64]> = states.iter().map(|s| &s[..d]).collect();
            let mut m =
                GraphModel::node_edge_over(graph, features, node_potential, shape, &qs, comm)?;
            if let Some(known) = node_mass {
                m.terms[0] = GraphTerm::Closed(known);
            }
            m
        }
        GraphDensity::Sites => GraphModel::general(graph, false, shape, states)?,
        GraphDensity::Stencil => GraphModel::general(graph, true, shape, states)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn defaults_depend_on_the_model_and_the_data_size() {
        let r = Recipe::default();
        let stop = Arc::new(AtomicBool::new(false));
        let net = r.config(false, 10_000, stop.clone()).unwrap();
        assert_eq!((net.batch, net.schedule), (256, Schedule::Constant));
        assert!((net.lr - 1e-3).abs() < 1e-18);
        let big = r.config(true, 10_000, stop.clone()).unwrap();
        assert_eq!((big.batch, big.schedule), (16, Schedule::Onecycle));
        assert!((big.lr - 3e-3).abs() < 1e-18);
        // Small data sets: about 32 steps per epoch, never fewer than 2 per batch.
        assert_eq!(r.config(true, 320, stop.clone()).unwrap().batch, 10);
        assert_eq!(r.config(true, 10, stop.clone()).unwrap().batch, 2);
        assert_eq!((r.hidden(true), r.hidden(false)), (64, 128));
        let set = Recipe {
            batch: Some(7),
            lr: Some(0.5),
            schedule: Some(Schedule::Piecewise),
            hidden: Some(9),
            mass_penalty: Some(10.0),
            ..Recipe::default()
        };
        let c = set.config(true, 10_000, stop.clone()).unwrap();
        assert_eq!(
            (c.batch, c.schedule, set.hidden(true)),
            (7, Schedule::Piecewise, 9)
        );
        assert!((c.lr - 0.5).abs() < 1e-18 && c.mass_penalty.is_some());
        let bad = Recipe {
            mass_penalty: Some(-1.0),
            ..Recipe::default()
        };
        assert!(bad.config(false, 10, stop).is_err());
    }

    #[test]
    fn boundary_rule_fixes_only_nodes_at_rest() {
        let qdot = array![[0.0, 1.0], [0.0, -2.0]];
        let moving = array![[0.5, 1.0], [0.0, -2.0]];
        let fixed = [0usize];
        let still = |a: &Array2<f64>| still_in_samples(&fixed, a, &qdot);
        assert!(still(&qdot));
        assert!(!still(&moving));
        let r = BoundaryRule::Auto;
        assert_eq!(r.resolve(&fixed, "g", || true).unwrap(), Boundary::Fixed);
        assert_eq!(r.resolve(&fixed, "g", || false).unwrap(), Boundary::Free);
        assert_eq!(r.resolve(&[], "g", || true).unwrap(), Boundary::Free);
        let e = BoundaryRule::Fixed
            .resolve(&[], "g.h5", || true)
            .unwrap_err();
        assert_eq!(e.to_string(), "invalid input: g.h5 flags no boundary node");
        let mut q = Array3::zeros((1, 3, 2));
        q[[0, 2, 1]] = 1.0;
        assert!(still_in_positions(&fixed, &q));
        q[[0, 1, 0]] = 1e-3;
        assert!(!still_in_positions(&fixed, &q));
    }
}
