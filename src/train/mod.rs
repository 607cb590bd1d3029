//! Training: losses on accelerations, exact parameter gradients through the Euler–Lagrange solve
//! (adjoint method, docs/DESIGN.md §3), Adam, schedules, baselines, and model files.
//!
//! * [`hyperdual`]: the batched hyper-dual forward pass and its reverse sweep (∂S_s/∂θ).
//! * [`gradient`]: loss + gradient of Lagrangian models (single-site dense path, any-graph path).
//! * [`baselines`]: plain MLP (q, q̇) → q̈ and HNN H(x, y).
//! * [`loss`], [`optim`]: MSE/L1 with weights; Adam + L2, schedules, clipping.
//! * this module: [`TrainedModel`] (what a model file holds; [`load_model`] / [`TrainedModel::save`]),
//!   [`prepare_samples`] (samples file → training pairs), and [`train`] (the loop: seeded
//!   shuffling, minibatches, validation split, best checkpoint, interruption).
//!
//! Determinism: with the same seed and thread count a run is bit-for-bit reproducible — the
//! shuffles come from one `StdRng`, and all gradient reductions sum fixed blocks in fixed order.

mod error;
pub use error::TrainError;

pub mod baselines;
pub mod damped;
pub mod definite_start;
pub mod distributed;
pub mod gradient;
pub mod graph;
pub mod hyperdual;
pub mod loss;
pub mod mass_penalty;
pub mod multi;
pub mod optim;
pub mod positions;
pub mod recipe;
pub mod site_penalty;
pub mod window;

use crate::density::{Density, Mlp, MlpDensity, Precision};
use crate::dynamics::Dynamics;
use crate::graph::Graph;
use crate::io::{AttrValue, LayerData, ModelData, SamplesData, TrainingData};
use crate::lagrangian::Lagrangian;
use crate::sites::Sites;
use crate::solve::SolverKind;
use crate::{Error, Result};
use baselines::DenseKind;
pub use gradient::Samples;
pub use loss::LossKind;
pub use mass_penalty::MassPenalty;
use ndarray::{Array1, Array2};
pub use optim::{Adam, Schedule};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Which model is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Lagrangian neural network: one site holding all coordinates (double pendulum, …).
    Lnn,
    /// Lagrangian graph network on a periodic ring, sites (i−1, i, i+1), one coordinate per node.
    Lgn,
    /// Plain MLP baseline (q, q̇) → q̈.
    Mlp,
    /// Hamiltonian neural network H(x, y).
    Hnn,
}

crate::named!(ModelKind {
    Lnn => "lnn": "Lagrangian neural network: one site holding all coordinates (double pendulum, …)",
    Lgn => "lgn": "Lagrangian graph network on a periodic ring, sites (i−1, i, i+1), one coordinate per node",
    Mlp => "mlp": "plain MLP baseline (q, q̇) → q̈",
    Hnn => "hnn": "Hamiltonian neural network H(x, y)",
});

/// The HNN's second coordinate y.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HnnCoords {
    /// y = q̇ (raw velocity): targets (q̇, q̈).
    Velocity,
    /// y = p = ∂L/∂q̇ of the system's known Lagrangian: targets (q̇, ṗ) with
    /// ṗ = d/dt ∂L/∂q̇ = M q̈ + C q̇ evaluated on the data.
    Momentum,
}

crate::named!(HnnCoords {
    Velocity => "velocity": "y = q̇ (raw velocity): targets (q̇, q̈)",
    Momentum => "momentum": "y = p = ∂L/∂q̇ of the system's known Lagrangian: targets (q̇, ṗ)",
});

/// Model-file attribute holding the coordinate period ([`TrainedModel::q_period`]).
pub const Q_PERIOD: &str = "q_period";

/// Model-file attribute (1) marking an lgn ring density as shift-invariant
/// ([`TrainedModel::shift_invariant`], docs/DESIGN.md §14.1).
pub const SHIFT_INVARIANT: &str = "shift_invariant";

/// Model-file attribute (1) marking an lnn whose network sees the angle embedding
/// (cos q, sin q, q̇) ([`TrainedModel::angle_embedding`], docs/DESIGN.md §14.6).
pub const ANGLE_EMBEDDING: &str = "angle_embedding";

/// A trained (or initialised) model: everything a model file holds.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    pub kind: ModelKind,
    /// The physical system of the training data ("dblpend", "wave1d", …).
    pub system: String,
    /// Nodes per site and coordinates per node of the density (lnn: 1 and D; lgn: 3 and 1).
    pub arity: usize,
    pub dof: usize,
    /// The network: scalar output for lnn/lgn/hnn, D outputs for the plain MLP.
    pub net: Mlp,
    /// System parameters copied from the data (g, dx, n, …).
    pub params: BTreeMap<String, f64>,
    /// For HNNs: what y is.
    pub hnn_coords: Option<HnnCoords>,
    /// An lnn's learned dissipation D = ½ q̇ᵀ L(q)L(q)ᵀ q̇ (`--dissipation learned`,
    /// docs/DESIGN.md §22; model-file group `dissipation`).
    pub dissipation: Option<Box<crate::density::dissipation_matrix::MatrixDissipation>>,
}

impl TrainedModel {
    /// A freshly initialised model for data with `d` coordinates per sample (paper init, seed).
    pub fn init(
        kind: ModelKind,
        system: &str,
        d: usize,
        hidden: usize,
        layers: usize,
        seed: u64,
    ) -> Result<TrainedModel> {
        if hidden == 0 || layers == 0 {
            return Err(Error::input(
                "hidden width and layer count (--hidden, --layers) must be at least 1",
            ));
        }
        if d == 0 {
            return Err(Error::input("the data has 0 coordinates per sample"));
        }
        let (arity, dof, p, out) = match kind {
            ModelKind::Lnn | ModelKind::Hnn => (1, d, 2 * d, 1),
            ModelKind::Lgn => {
                if d < 3 {
                    return Err(Error::input(format!(
                        "an lgn model needs a ring of at least 3 nodes; the data has {d} coordinates per sample"
                    )));
                }
                (3, 1, 6, 1)
            }
            ModelKind::Mlp => (1, d, 2 * d, d),
        };
        let mut sizes = vec![p];
        sizes.extend(std::iter::repeat_n(hidden, layers));
        sizes.push(out);
        let net = if out == 1 {
            Mlp::paper_init(&sizes, seed)
        } else {
            baselines::vector_mlp_init(&sizes, seed)
        };
        Ok(TrainedModel {
            kind,
            system: system.to_string(),
            arity,
            dof,
            net,
            params: BTreeMap::new(),
            hnn_coords: None,
            dissipation: None,
        })
    }

    /// Check the network against the model kind.
    pub fn validate(&self) -> Result<()> {
        match self.kind {
            ModelKind::Mlp => baselines::validate_any_output(&self.net),
            _ => self.density().map(|_| ()),
        }
    }

    /// The network as a site density: its input is (q, q̇), or the angle embedding
    /// (cos q, sin q, q̇) when [`TrainedModel::angle_embedding`]; q wrapped when the model has
    /// a [`TrainedModel::q_period`].
    pub fn density(&self) -> Result<MlpDensity> {
        MlpDensity::with_input(
            self.net.clone(),
            self.arity,
            self.dof,
            0,
            self.angle_embedding(),
        )?
        .with_q_period(self.q_period())
    }

    /// True when the network sees the angles through the embedding (cos q, sin q) (model
    /// attribute `angle_embedding`, docs/DESIGN.md §14.6): the learned Lagrangian is smooth
    /// and 2π-periodic in every coordinate.
    pub fn angle_embedding(&self) -> bool {
        self.params.get(ANGLE_EMBEDDING).is_some_and(|&x| x != 0.0)
    }

    /// Give a freshly initialised lnn the angle embedding: the network is re-initialised
    /// (paper init, `seed`) with input (cos q, sin q, q̇), 3D values, keeping its hidden sizes
    /// and the velocity normalisation; the embedded slots are not normalised (shift 0,
    /// scale 1). Call before [`fit_normalisation`] and training.
    pub fn set_angle_embedding(&mut self, seed: u64) -> Result<()> {
        if self.kind != ModelKind::Lnn {
            return Err(Error::input(format!(
                "the angle embedding applies to lnn models, not to a '{}' model",
                self.kind.as_str()
            )));
        }
        if self.angle_embedding() {
            return Ok(());
        }
        let d = self.dof;
        let mut sizes = self.net.sizes.clone();
        sizes[0] = 3 * d;
        let mut net = Mlp::paper_init(&sizes, seed);
        net.input_shift[2 * d..].copy_from_slice(&self.net.input_shift[d..2 * d]);
        net.input_scale[2 * d..].copy_from_slice(&self.net.input_scale[d..2 * d]);
        self.net = net;
        self.params.insert(ANGLE_EMBEDDING.into(), 1.0);
        Ok(())
    }

    /// The Lagrangian system of an lnn/lgn model as a [`Dynamics`] (for accelerations and
    /// simulation). `n` is the number of ring nodes for lgn models (default: the training
    /// grid's `n`); ignored for lnn.
    pub fn dynamics(&self, n: Option<usize>, solver: SolverKind) -> Result<Dynamics> {
        self.dynamics_in(n, solver, Precision::F64)
    }

    /// [`TrainedModel::dynamics`] with the network's passes evaluated in `precision` (f32:
    /// single-precision MLP passes inside the f64 assembly and solve; docs/DESIGN.md §15.4).
    pub fn dynamics_in(
        &self,
        n: Option<usize>,
        solver: SolverKind,
        precision: Precision,
    ) -> Result<Dynamics> {
        let dens: Arc<dyn Density> = Arc::new(self.density()?.with_precision(precision));
        match self.kind {
            ModelKind::Lnn => {
                let dy = crate::systems::single_site(dens, solver)?;
                // Learned linear damping (docs/DESIGN.md §13.2) and the learned matrix
                // dissipation (§22), when the model has them.
                use crate::density::dissipation::DissipationTerm;
                let mut terms = vec![];
                if let Some(c) = damped::model_damping(self) {
                    terms.push(DissipationTerm::Linear { c });
                }
                if let Some(m) = &self.dissipation {
                    terms.push(DissipationTerm::Matrix((**m).clone()));
                }
                if terms.is_empty() {
                    return Ok(dy);
                }
                dy.with_forces(crate::density::dissipation::Forces {
                    dissipation: terms,
                    input: None,
                })
            }
            ModelKind::Lgn => {
                let n = n
                    .or_else(|| self.params.get("n").map(|&x| x as usize))
                    .ok_or_else(|| Error::input("an lgn model needs the number of ring nodes n"))?;
                let graph = Graph::ring(n, 1)?;
                let sites = Sites::stencil3(&graph)?;
                Dynamics::new(Lagrangian::new(n, 1, sites, dens)?, solver, graph.kind)
            }
            k => Err(Error::input(format!(
                "a '{}' model has no Lagrangian to integrate (only lnn and lgn models do); its accelerations are available with `lgn accel --model`",
                k.as_str()
            ))),
        }
    }

    /// Period of the coordinates q when they are angles (model attribute `q_period`, e.g. 2π
    /// for the double pendulum trained with wrapped angles): the network sees q wrapped into
    /// [−P/2, P/2], in training and in every evaluation.
    pub fn q_period(&self) -> Option<f64> {
        self.params.get(Q_PERIOD).copied()
    }

    /// Mark the coordinates as angles of period `period` (see [`TrainedModel::q_period`]).
    pub fn set_q_period(&mut self, period: f64) -> Result<()> {
        if !(period.is_finite() && period > 0.0) {
            return Err(Error::input(format!(
                "the coordinate period must be positive, got {period}"
            )));
        }
        self.params.insert(Q_PERIOD.into(), period);
        Ok(())
    }

    /// True when the density sees the coordinates only through differences (an lgn ring density
    /// trained with the first layer projected, docs/DESIGN.md §14.1): total momentum is
    /// conserved by construction.
    pub fn shift_invariant(&self) -> bool {
        self.params.get(SHIFT_INVARIANT).is_some_and(|&x| x != 0.0)
    }

    /// Make the density shift-invariant (lgn models; after [`fit_normalisation`]): project the
    /// first layer (see [`crate::density::symmetric::project_shift_invariant`]) and record it, so
    /// that [`train`] keeps the constraint and model files carry it.
    pub fn set_shift_invariant(&mut self) -> Result<()> {
        if self.kind != ModelKind::Lgn {
            return Err(Error::input(format!(
                "shift invariance applies to lgn ring densities, not to a '{}' model",
                self.kind.as_str()
            )));
        }
        crate::density::symmetric::project_shift_invariant(&mut self.net, self.arity, self.dof)?;
        self.params.insert(SHIFT_INVARIANT.into(), 1.0);
        Ok(())
    }

    /// Wrap coordinates into [−P/2, P/2] when the model has a coordinate period (see
    /// [`TrainedModel::q_period`]); a no-op otherwise.
    pub fn wrap_q(&self, q: &mut [f64]) {
        if let Some(period) = self.q_period() {
            for x in q {
                *x = crate::density::wrap_period(*x, period);
            }
        }
    }

    /// [`TrainedModel::wrap_q`] on the q part (the first half of the inputs) of every sample.
    pub fn wrap_inputs(&self, samples: &mut Samples) {
        if self.q_period().is_none() {
            return;
        }
        let kd = self.arity * self.dof;
        for row in samples.input.chunks_exact_mut(samples.in_dim) {
            self.wrap_q(&mut row[..kd]);
        }
    }

    /// Predicted accelerations q̈ at (q, q̇). HNNs in velocity coordinates give q̈ = ẏ; HNNs in
    /// momentum coordinates predict ṗ, not q̈, and are refused.
    pub fn predict(&self, q: &[f64], v: &[f64], solver: SolverKind) -> Result<Vec<f64>> {
        if q.len() != v.len() {
            return Err(Error::input("q and qdot differ in length"));
        }
        crate::error::check_finite("q", q)?;
        crate::error::check_finite("qdot", v)?;
        match self.kind {
            ModelKind::Lnn | ModelKind::Lgn => {
                let mut dy = self.dynamics(Some(q.len()), solver)?;
                dy.accelerations(q, v)
            }
            ModelKind::Mlp | ModelKind::Hnn => {
                let d = self.net.sizes[0] / 2;
                if q.len() != d {
                    return Err(Error::input(format!(
                        "state length mismatch: the model takes {d} coordinates, got {}",
                        q.len()
                    )));
                }
                let mut x: Vec<f64> = q.iter().chain(v).copied().collect();
                self.wrap_q(&mut x[..d]);
                if self.kind == ModelKind::Mlp {
                    return Ok(baselines::vector_mlp_forward(&self.net, &x));
                }
                if self.hnn_coords == Some(HnnCoords::Momentum) {
                    return Err(Error::input(
                        "this HNN works in (q, p) coordinates: it predicts ṗ, not q̈",
                    ));
                }
                let dens = MlpDensity::new(self.net.clone(), 1, d, 0)?;
                let rec = crate::density::eval_one(&dens, &x);
                let lay = dens.layout();
                Ok((0..d).map(|c| -rec[lay.grad_q() + c]).collect())
            }
        }
    }

    /// The model as the HDF5 schema's [`ModelData`], with an optional training record.
    pub fn to_model_data(&self, training: Option<TrainingData>) -> ModelData {
        let nl = self.net.sizes.len() - 1;
        let layers = (0..nl)
            .map(|l| LayerData {
                weight: Array2::from_shape_vec(
                    (self.net.sizes[l + 1], self.net.sizes[l]),
                    self.net.weights[l].clone(),
                )
                .expect("shape"),
                bias: Array1::from(self.net.biases[l].clone()),
            })
            .collect();
        let mut attrs: BTreeMap<String, AttrValue> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), AttrValue::Float(*v)))
            .collect();
        if let Some(c) = self.hnn_coords {
            attrs.insert("hnn_coords".into(), AttrValue::Str(c.as_str().into()));
        }
        ModelData {
            model_kind: self.kind.as_str().into(),
            activation: "softplus".into(),
            system: Some(self.system.clone()),
            arity: self.arity,
            dof: self.dof,
            n_features: 0,
            layer_sizes: self.net.sizes.clone(),
            layers,
            input_shift: Array1::from(self.net.input_shift.clone()),
            input_scale: Array1::from(self.net.input_scale.clone()),
            training,
            attrs,
            dissipation: self.dissipation.as_ref().map(|m| m.net.clone()),
        }
    }

    /// Build from a model file's contents, checking everything this engine relies on.
    pub fn from_model_data(md: &ModelData, path: &Path) -> Result<TrainedModel> {
        let bad = |loc: &str, msg: String| Error::file_at(path, loc, msg);
        let kind = ModelKind::parse(&md.model_kind).ok_or_else(|| {
            bad(
                "/@model_kind",
                format!("'{}' is not one of lnn, lgn, mlp, hnn", md.model_kind),
            )
        })?;
        if md.activation != "softplus" {
            return Err(bad(
                "/@activation",
                format!("'{}' is not supported (lgn uses softplus)", md.activation),
            ));
        }
        if md.n_features != 0 {
            return Err(bad(
                "/@n_features",
                format!(
                    "{} site features are not supported by trained models",
                    md.n_features
                ),
            ));
        }
        let mut params = BTreeMap::new();
        let mut hnn_coords = None;
        for (k, v) in &md.attrs {
            match (k.as_str(), v) {
                ("hnn_coords", AttrValue::Str(s)) => {
                    hnn_coords = Some(match s.as_str() {
                        "velocity" => HnnCoords::Velocity,
                        "momentum" => HnnCoords::Momentum,
                        _ => {
                            return Err(bad(
                                "/@hnn_coords",
                                format!("'{s}' is not velocity or momentum"),
                            ))
                        }
                    })
                }
                (_, AttrValue::Float(x)) => {
                    params.insert(k.clone(), *x);
                }
                (_, AttrValue::Int(x)) => {
                    params.insert(k.clone(), *x as f64);
                }
                _ => {}
            }
        }
        let net = Mlp {
            sizes: md.layer_sizes.clone(),
            weights: md
                .layers
                .iter()
                .map(|l| l.weight.iter().copied().collect())
                .collect(),
            biases: md.layers.iter().map(|l| l.bias.to_vec()).collect(),
            input_shift: md.input_shift.to_vec(),
            input_scale: md.input_scale.to_vec(),
        };
        let m = TrainedModel {
            kind,
            system: md.system.clone().unwrap_or_default(),
            arity: md.arity,
            dof: md.dof,
            net,
            params,
            hnn_coords,
            dissipation: None,
        };
        m.validate().map_err(|e| {
            Error::file(
                path,
                format!("the network does not fit a '{}' model: {e}", kind.as_str()),
            )
        })?;
        let mut m = m;
        if let Some(net) = &md.dissipation {
            // docs/DESIGN.md §22: the learned dissipation of an lnn.
            if kind != ModelKind::Lnn {
                return Err(bad(
                    "/dissipation",
                    format!(
                        "a learned dissipation network belongs to an lnn, not to a '{}' model",
                        kind.as_str()
                    ),
                ));
            }
            let term = crate::density::dissipation_matrix::MatrixDissipation {
                net: net.clone(),
                dof: m.dof,
                embed: m.angle_embedding(),
                q_period: m.q_period(),
            };
            term.check(m.dof)
                .map_err(|e| bad("/dissipation", e.to_string()))?;
            m.dissipation = Some(Box::new(term));
        }
        if m.shift_invariant() {
            // Stored weights are projected already; projecting again removes the round-off of
            // any writer (idempotent) and checks the input scales.
            m.set_shift_invariant()
                .map_err(|e| Error::file_at(path, "/@shift_invariant", e.to_string()))?;
        }
        Ok(m)
    }

    /// Write the model file (atomically; `force` replaces an existing file).
    pub fn save(&self, path: &Path, training: Option<TrainingData>, force: bool) -> Result<()> {
        self.to_model_data(training).write(path, force)
    }
}

/// Read a model file written by `lgn train` (or any file following the model schema).
/// lnn/lgn models give a [`Dynamics`] through [`TrainedModel::dynamics`].
pub fn load_model(path: impl AsRef<Path>) -> Result<TrainedModel> {
    let path = path.as_ref();
    let md = ModelData::read(path)?;
    // The checks `lgn info` applies too (one validator for both).
    if let Some(p) = crate::io::model_problems(&md, path).into_iter().next() {
        return Err(Error::file_at(path, p.location, p.msg));
    }
    TrainedModel::from_model_data(&md, path)
}

/// Turn a samples file's (q, q̇, q̈) into training pairs for `kind`:
/// lnn/lgn/mlp: input (q, q̇) → target q̈; hnn: (x, y) → (ẋ, ẏ) (see [`HnnCoords`]).
pub fn prepare_samples(
    kind: ModelKind,
    data: &SamplesData,
    hnn_coords: HnnCoords,
) -> Result<Samples> {
    let n = data.len();
    if n == 0 {
        return Err(Error::input("the data set is empty (0 samples)"));
    }
    let d = data.q.ncols();
    if data.qdot.dim() != (n, d) || data.qddot.dim() != (n, d) {
        return Err(Error::input(format!(
            "q is {n}×{d} but qdot is {:?} and qddot {:?}",
            data.qdot.dim(),
            data.qddot.dim()
        )));
    }
    let row = |i: usize| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        (
            data.q.row(i).to_vec(),
            data.qdot.row(i).to_vec(),
            data.qddot.row(i).to_vec(),
        )
    };
    let weights = data.weights.as_ref().map(|w| w.to_vec());
    let mut input = Vec::with_capacity(n * 2 * d);
    let mut target = Vec::with_capacity(n * 2 * d);
    let system = data.system.clone().unwrap_or_default();
    match kind {
        ModelKind::Lnn | ModelKind::Lgn | ModelKind::Mlp => {
            for i in 0..n {
                let (q, v, a) = row(i);
                input.extend(q);
                input.extend(v);
                target.extend(a);
            }
            Samples::new(2 * d, d, input, target, weights)
        }
        ModelKind::Hnn => match hnn_coords {
            HnnCoords::Velocity => {
                for i in 0..n {
                    let (q, v, a) = row(i);
                    input.extend(&q);
                    input.extend(&v);
                    target.extend(v);
                    target.extend(a);
                }
                Samples::new(2 * d, 2 * d, input, target, weights)
            }
            HnnCoords::Momentum => {
                let g = data.params.get("g").copied().unwrap_or(9.8);
                let an = crate::systems::DensityChoice::Analytic;
                let mut dy = match system.as_str() {
                    "dblpend" => crate::systems::dblpend(g, &an, SolverKind::Auto)?,
                    "relativistic" => crate::systems::relativistic(g, &an, SolverKind::Auto)?,
                    "ball" => crate::systems::ball(g, &an, SolverKind::Auto)?,
                    s => {
                        return Err(Error::input(format!(
                            "canonical momenta need a known single-site system (dblpend, relativistic, ball); the data's system is '{s}'"
                        )))
                    }
                };
                if dy.n_coords() != d {
                    return Err(Error::input(format!(
                        "system '{system}' has {} coordinates but the data has {d}",
                        dy.n_coords()
                    )));
                }
                let lay = dy.lagrangian.terms[0].density.layout();
                for i in 0..n {
                    let (q, v, a) = row(i);
                    dy.evaluate_sites(&q, &v)
                        .map_err(|e| Error::input(format!("sample {i}: {e}")))?;
                    let r = &dy.derivs[..lay.stride()];
                    input.extend(&q);
                    input.extend(&r[lay.grad_v()..lay.grad_v() + d]);
                    target.extend(&v);
                    for j in 0..d {
                        let ma: f64 = (0..d).map(|k| r[lay.mass() + j * d + k] * a[k]).sum();
                        target.push(ma + r[lay.cv() + j]);
                    }
                }
                Samples::new(2 * d, 2 * d, input, target, weights)
            }
        },
    }
}

/// Per-slot input normalisation from the training inputs: shift = mean, scale = standard
/// deviation (1 where the spread is below 1e-12). For lgn models the q slots share the
/// statistics of all grid values, and so do the v slots. Fixed during training.
pub fn fit_normalisation(model: &mut TrainedModel, data: &Samples) {
    fit_normalisation_over(model, data, &crate::parallel::SerialComm)
        .expect("one rank does not communicate");
}

/// [`fit_normalisation`] of samples spread over the ranks of `comm` (each rank passes its own
/// shard; the statistics are those of all shards together, identical on every rank).
pub fn fit_normalisation_over(
    model: &mut TrainedModel,
    data: &Samples,
    comm: &dyn crate::parallel::Comm,
) -> Result<()> {
    let p = data.in_dim;
    let stats = |cols: &mut dyn Iterator<Item = f64>| -> Result<(f64, f64)> {
        let (mut s, mut s2, mut c) = (0.0, 0.0, 0.0);
        for x in cols {
            s += x;
            s2 += x * x;
            c += 1.0;
        }
        let mut acc = [s, s2, c];
        comm.sum(&mut acc)?;
        let [s, s2, c] = acc;
        let m = s / c;
        let var = (s2 / c - m * m).max(0.0);
        let sd = var.sqrt();
        Ok((m, if sd > 1e-12 { sd } else { 1.0 }))
    };
    match model.kind {
        ModelKind::Lgn => {
            let n = p / 2;
            let (mq, sq) = stats(&mut (0..data.n).flat_map(|i| data.input_row(i)[..n].to_vec()))?;
            let (mv, sv) = stats(&mut (0..data.n).flat_map(|i| data.input_row(i)[n..].to_vec()))?;
            model.net.input_shift = vec![mq, mq, mq, mv, mv, mv];
            model.net.input_scale = vec![sq, sq, sq, sv, sv, sv];
        }
        _ => {
            // With the angle embedding the q columns feed the unnormalised (cos q, sin q)
            // slots and the velocity columns sit D slots further (docs/DESIGN.md §14.6).
            let embed = model.angle_embedding();
            let d = model.dof;
            for j in 0..p {
                if embed && j < d {
                    continue;
                }
                let (m, s) = stats(&mut (0..data.n).map(|i| data.input_row(i)[j]))?;
                let k = if embed { j + d } else { j };
                model.net.input_shift[k] = m;
                model.net.input_scale[k] = s;
            }
        }
    }
    Ok(())
}

/// Training options (see `lgn train --help`).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Global-norm gradient clipping threshold.
    pub clip: Option<f64>,
    /// Fraction of samples held out for validation (0 = none; then the best checkpoint is
    /// chosen by training loss).
    pub val_fraction: f64,
    pub seed: u64,
    pub loss: LossKind,
    /// Mass-matrix definiteness penalty added to the training loss (single-site LNN; see
    /// [`mass_penalty`]). Validation losses never include it.
    pub mass_penalty: Option<MassPenalty>,
    /// Divide the loss (and its gradient) by the loss of predicting zero on the training set,
    /// so 1 means "no better than zero" whatever the scale of the accelerations; the clipping
    /// threshold then means the same for every data set.
    pub normalise: bool,
    /// Fraction of all steps over which the learning rate ramps up linearly from 0 (warm-up).
    pub warmup: f64,
    /// Set from outside (e.g. Ctrl-C) to stop after the current step; the best model so far is
    /// returned.
    pub stop: Arc<AtomicBool>,
    /// Precision of the MLP evaluations in the forward pass (graph networks, `--model lgn`):
    /// f32 evaluates the networks' local derivatives in single precision; assembly, solve,
    /// adjoint, gradient and optimiser stay f64 (docs/DESIGN.md §15).
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch: 256,
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            clip: Some(1.0),
            val_fraction: 0.1,
            seed: 0,
            loss: LossKind::Mse,
            mass_penalty: None,
            normalise: true,
            warmup: 0.05,
            stop: Arc::new(AtomicBool::new(false)),
            precision: Precision::F64,
        }
    }
}

impl TrainConfig {
    /// The configuration of earlier lgn versions (raw loss, no clipping, no warm-up), which the
    /// paper's experiments were tuned with.
    pub fn unstabilised() -> TrainConfig {
        TrainConfig {
            clip: None,
            normalise: false,
            warmup: 0.0,
            ..TrainConfig::default()
        }
    }

    fn check(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.warmup) {
            return Err(Error::input(format!(
                "the warm-up fraction must be in [0, 1), got {}",
                self.warmup
            )));
        }
        if self.epochs == 0 {
            return Err(Error::input("epochs (--epochs) must be at least 1"));
        }
        if self.batch == 0 {
            return Err(Error::input("batch (--batch) must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::input(format!(
                "learning rate lr (--lr) must be positive, got {}",
                self.lr
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::input("weight_decay (--weight-decay) must be ≥ 0"));
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::input("clip (--clip) must be positive"));
            }
        }
        if self.precision != Precision::F64 && self.mass_penalty.is_some() {
            return Err(Error::input(
                "--precision f32 applies to graph networks (--model lgn) without --mass-penalty",
            ));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(Error::input(format!(
                "val_fraction (--val-fraction) must be in [0, 1), got {}",
                self.val_fraction
            )));
        }
        Ok(())
    }
}

/// Progress reported after every optimisation step.
#[derive(Clone, Debug)]
pub struct Progress {
    pub epoch: usize,
    pub step: usize,
    pub total_steps: usize,
    /// Loss of the last minibatch.
    pub loss: f64,
    /// Validation loss of the last finished epoch.
    pub val_loss: Option<f64>,
    pub samples_per_second: f64,
    /// Training samples dropped so far (singular or badly conditioned learned mass matrix).
    pub dropped: usize,
}

/// Outcome of [`train`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainReport {
    /// Mean training loss of the last epoch run.
    pub final_loss: f64,
    /// Best validation loss (training loss when there is no validation set).
    pub best_val_loss: f64,
    pub best_epoch: usize,
    /// Epochs completed.
    pub epochs: usize,
    pub samples_per_second: f64,
    pub loss_history: Vec<f64>,
    pub val_loss_history: Vec<f64>,
    /// True when stopped by the `stop` flag.
    pub interrupted: bool,
    /// Set when training stopped because the loss became non-finite or M singular.
    pub stopped_by_error: Option<String>,
    /// Minibatches whose loss or gradient was not finite; their step was skipped (training
    /// stops after [`MAX_SKIPPED_IN_A_ROW`] in a row).
    pub skipped_steps: usize,
    /// Training-sample evaluations dropped from their minibatch because the learned mass
    /// matrix was singular or badly conditioned (single-site LNN), summed over all steps.
    pub dropped_samples: usize,
    /// Validation samples dropped in the last validation pass (same reason).
    pub dropped_val_samples: usize,
    pub n_train: usize,
    pub n_val: usize,
    /// Loss of predicting q̈ = 0 on the validation set (training set without one), in the units
    /// of `best_val_loss` (≈ 1 with `normalise`).
    pub zero_val_loss: f64,
    /// True when the best model is no better than predicting zero (`best_val_loss ≥
    /// zero_val_loss`): training failed even if it ran to the end.
    pub no_better_than_zero: bool,
    /// Single-site LNNs with a mass penalty ([`train`]): what the definite start did (None: not
    /// asked for), and the fraction of training states at which the returned model's learned M
    /// is not definite ([`definite_start::indefinite_fraction`]; > 0 means training ended with
    /// an indefinite M there, e.g. on the indefinite-M plateau, docs/DESIGN.md §21.6).
    pub definite_start: Option<definite_start::DefiniteStartReport>,
    pub indefinite_mass_fraction: Option<f64>,
}

/// What [`fit`] trains on: weighted samples addressed by index. [`Samples`] (one system's
/// states and targets) is the usual one; [`multi::GraphSets`] holds samples of several graphs.
pub trait TrainingSet: Clone {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The samples `idx` as a new set.
    fn subset(&self, idx: &[usize]) -> Self;
    /// Weight of sample `i` in the loss.
    fn weight(&self, i: usize) -> f64;
    /// Loss of predicting zero on `idx`: the scale of the relative loss (see [`zero_loss`]).
    fn zero_loss(&self, idx: &[usize], loss: LossKind) -> f64;
}

impl TrainingSet for Samples {
    fn len(&self) -> usize {
        self.n
    }
    fn subset(&self, idx: &[usize]) -> Self {
        Samples::subset(self, idx)
    }
    fn weight(&self, i: usize) -> f64 {
        Samples::weight(self, i)
    }
    fn zero_loss(&self, idx: &[usize], loss: LossKind) -> f64 {
        zero_loss(self, idx, loss)
    }
}

/// A model with trainable parameters and an exact loss gradient: what [`fit`] trains.
pub trait Trainable<D: TrainingSet = Samples> {
    /// All parameters as one vector.
    fn params(&self) -> Vec<f64>;
    /// Set the parameters (same layout as [`Trainable::params`]).
    fn set_params(&mut self, theta: &[f64]) -> Result<()>;
    /// Loss over `idx` of `data` (weighted mean over samples and coordinates) and, with
    /// `want_grad`, its exact gradient; the third value counts samples dropped from the batch.
    fn loss_grad(
        &mut self,
        data: &D,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)>;
    /// Validation loss (no penalties); defaults to [`Trainable::loss_grad`] without gradient.
    fn val_loss(&mut self, data: &D, idx: &[usize], loss: LossKind) -> Result<(f64, usize)> {
        self.loss_grad(data, idx, loss, false)
            .map(|(l, _, d)| (l, d))
    }
}

/// Loss of predicting zero accelerations on `idx` of `data` (see [`LossKind::sample`]).
pub fn zero_loss(data: &Samples, idx: &[usize], loss: LossKind) -> f64 {
    let inv = data.inv_norm(idx);
    let zero = vec![0.0; data.out_dim];
    let mut g = vec![0.0; data.out_dim];
    idx.iter()
        .map(|&i| loss.sample(&zero, data.target_row(i), data.weight(i) * inv, &mut g))
        .sum()
}

/// A single-network model ([`TrainedModel`]) with its loss evaluators: what [`train`] hands
/// to [`fit`] (public so that callers can wrap it, e.g. the Python bindings' epoch observer).
pub struct NetTrainer {
    model: TrainedModel,
    obj: Objective,
    val: Objective,
}

impl NetTrainer {
    /// Bind `model` to data shaped like `data`; `penalty` is added to the training loss only.
    pub fn new(
        model: TrainedModel,
        data: &Samples,
        penalty: Option<MassPenalty>,
    ) -> Result<NetTrainer> {
        // Ring LGNs are penalised by default (docs/DESIGN.md §18.2): their learned M can vanish.
        let penalty = match (penalty, model.kind) {
            (None, ModelKind::Lgn) => site_penalty::default_graph_penalty(data),
            (p, _) => p,
        };
        let obj = Objective::new(&model, data)?.with_mass_penalty(penalty)?;
        let val = Objective::new(&model, data)?;
        Ok(NetTrainer { model, obj, val })
    }
    /// Evaluate the networks of the forward pass in `precision` (docs/DESIGN.md §15).
    pub fn with_precision(mut self, precision: Precision) -> Result<NetTrainer> {
        self.obj = self.obj.with_precision(precision, &self.model.net)?;
        self.val = self.val.with_precision(precision, &self.model.net)?;
        Ok(self)
    }
    /// The model with its current parameters.
    pub fn model(&self) -> &TrainedModel {
        &self.model
    }
    /// The model with its current parameters.
    pub fn into_model(self) -> TrainedModel {
        self.model
    }
}

impl Trainable for NetTrainer {
    fn params(&self) -> Vec<f64> {
        hyperdual::flatten(&self.model.net)
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        hyperdual::unflatten(&mut self.model.net, theta);
        if self.model.shift_invariant() {
            // Reparameterisation W₁ = P(θ) (docs/DESIGN.md §14.1): exact invariance.
            self.model.set_shift_invariant()?;
        }
        self.obj.refresh(&self.model.net)?;
        self.val.refresh(&self.model.net)
    }
    fn loss_grad(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        let mut r = self
            .obj
            .loss_grad_counted(&self.model.net, data, idx, loss, want_grad)?;
        if want_grad && self.model.shift_invariant() {
            // ∂ℓ/∂θ = Pᵀ ∂ℓ/∂W₁ = P ∂ℓ/∂W₁ (P an orthogonal projection).
            crate::density::symmetric::project_shift_invariant_flat(
                &mut r.1,
                &self.model.net.sizes,
                self.model.arity,
                self.model.dof,
            );
        }
        Ok(r)
    }
    fn val_loss(&mut self, data: &Samples, idx: &[usize], loss: LossKind) -> Result<(f64, usize)> {
        self.val
            .loss_grad_counted(&self.model.net, data, idx, loss, false)
            .map(|(l, _, d)| (l, d))
    }
}

/// Loss/gradient evaluator bound to a model kind (holds the graph's [`Dynamics`] for lgn).
pub struct Objective {
    kind: ModelKind,
    /// The lnn's network sees the angle embedding ([`TrainedModel::angle_embedding`]).
    embed: bool,
    dens: Option<MlpDensity>,
    dy: Option<Dynamics>,
    penalty: Option<MassPenalty>,
    precision: Precision,
}

impl Objective {
    /// Prepare for `model` on data of `data.in_dim` inputs and `data.out_dim` targets.
    pub fn new(model: &TrainedModel, data: &Samples) -> Result<Objective> {
        let p = model.net.sizes[0];
        let out = *model.net.sizes.last().unwrap();
        let expect = match model.kind {
            ModelKind::Lnn => (2 * model.dof, model.dof),
            ModelKind::Hnn => (p, p),
            ModelKind::Mlp => (p, out),
            ModelKind::Lgn => (data.in_dim, data.in_dim / 2),
        };
        if (data.in_dim, data.out_dim) != expect {
            return Err(Error::input(format!(
                "data dimension does not match the model: the data has {} inputs and {} targets per sample, the {} model needs {} and {}",
                data.in_dim, data.out_dim, model.kind.as_str(), expect.0, expect.1
            )));
        }
        let mut o = Objective {
            kind: model.kind,
            embed: model.angle_embedding(),
            dens: None,
            dy: None,
            penalty: None,
            precision: Precision::F64,
        };
        if model.kind == ModelKind::Lgn {
            o.dy = Some(model.dynamics(Some(data.out_dim), SolverKind::Auto)?);
        }
        o.refresh(&model.net)?;
        Ok(o)
    }

    /// Evaluate the networks of the forward pass in `precision` (graph networks only: an error
    /// for other kinds when not f64), rebuilt from `net`. The gradient stays f64.
    pub fn with_precision(mut self, precision: Precision, net: &Mlp) -> Result<Objective> {
        if precision != Precision::F64 && self.kind != ModelKind::Lgn {
            return Err(Error::input(format!(
                "--precision {precision} applies to graph networks (--model lgn), not to {}",
                self.kind.as_str()
            )));
        }
        self.precision = precision;
        self.refresh(net)?;
        Ok(self)
    }

    /// Add the mass-matrix definiteness penalty ([`mass_penalty`]) to the loss: single-site
    /// LNNs, and ring LGNs on each site's kinetic block ([`site_penalty`], docs/DESIGN.md
    /// §18.2); an error for other kinds.
    pub fn with_mass_penalty(mut self, penalty: Option<MassPenalty>) -> Result<Objective> {
        if penalty.is_some() && !matches!(self.kind, ModelKind::Lnn | ModelKind::Lgn) {
            return Err(Error::input(format!(
                "mass_penalty (--mass-penalty) applies to LNNs (model kinds lnn and lgn), not to {}",
                self.kind.as_str()
            )));
        }
        self.penalty = penalty;
        Ok(self)
    }

    /// Rebuild the densities after a parameter update.
    pub fn refresh(&mut self, net: &Mlp) -> Result<()> {
        match self.kind {
            ModelKind::Lnn | ModelKind::Hnn => {
                let d = net.sizes[0] / if self.embed { 3 } else { 2 };
                self.dens = Some(MlpDensity::with_input(net.clone(), 1, d, 0, self.embed)?);
            }
            ModelKind::Lgn => {
                gradient::set_mlp_terms_with(
                    self.dy.as_mut().expect("dynamics"),
                    &[Some(net)],
                    self.precision,
                )?;
            }
            ModelKind::Mlp => {}
        }
        Ok(())
    }

    /// Loss over `idx` and, if `want_grad`, its gradient (flat, see [`hyperdual::flatten`]), plus the number of samples dropped because their learned mass
    /// matrix was singular or badly conditioned (single-site LNN only; other kinds report 0,
    /// and the graph path still stops on a singular M).
    pub fn loss_grad_counted(
        &mut self,
        net: &Mlp,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        let dk = match self.kind {
            ModelKind::Lgn => {
                let dy = self.dy.as_mut().expect("dynamics");
                // docs/DESIGN.md §18.2: each site's kinetic block, same parameters, from the
                // forward pass's records (§19) and in the same sweep (§24).
                let (l, g) = gradient::lnn_graph_loss_grad_penalised(
                    dy,
                    &[Some(net)],
                    data,
                    idx,
                    (loss, self.penalty),
                    want_grad,
                )?;
                return Ok((l, g, 0));
            }
            ModelKind::Lnn => DenseKind::Lnn,
            ModelKind::Hnn => DenseKind::Hnn,
            ModelKind::Mlp => DenseKind::Mlp,
        };
        baselines::dense_loss_grad_counted(
            (dk, self.penalty),
            net,
            self.dens.as_ref(),
            data,
            idx,
            loss,
            want_grad,
        )
    }
}

/// Consecutive minibatches with a non-finite loss or gradient after which training stops.
pub const MAX_SKIPPED_IN_A_ROW: usize = 20;

/// Train `model` on `data`; returns the best checkpoint (by validation loss, or training loss
/// without a validation set) and a report. A thin wrapper of [`fit`] for single-network models.
pub fn train(
    model: TrainedModel,
    data: &Samples,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(&Progress),
) -> Result<(TrainedModel, TrainReport)> {
    let mut model = model;
    // docs/DESIGN.md §21.6: an LNN whose M starts indefinite can sit on the indefinite-M
    // plateau for most of its budget; the definite start removes that start.
    let lnn_penalty = cfg.mass_penalty.filter(|_| model.kind == ModelKind::Lnn);
    let start = match lnn_penalty.and_then(|p| p.definite_start.map(|o| (p, o))) {
        Some((p, o)) => Some(definite_start::definite_start(&mut model, data, p, &o)?),
        None => None,
    };
    let mut t = NetTrainer::new(model, data, cfg.mass_penalty)?.with_precision(cfg.precision)?;
    let mut report = fit(&mut t, data, cfg, on_step)?;
    report.definite_start = start;
    if lnn_penalty.is_some() {
        report.indefinite_mass_fraction =
            Some(definite_start::indefinite_fraction(&t.model, data)?);
    }
    Ok((t.model, report))
}

/// The training record a model file keeps (`training` group, docs/SCHEMA.md): the data file,
/// the seed and epochs, the loss histories and the configuration as attributes.
pub fn training_record(
    data_file: &str,
    cfg: &TrainConfig,
    report: &TrainReport,
) -> crate::io::TrainingData {
    use crate::io::AttrValue;
    let mut attrs = BTreeMap::new();
    attrs.insert("learning_rate".into(), AttrValue::Float(cfg.lr));
    attrs.insert("weight_decay".into(), AttrValue::Float(cfg.weight_decay));
    attrs.insert("batch".into(), AttrValue::Int(cfg.batch as i64));
    attrs.insert("loss".into(), AttrValue::Str(cfg.loss.name().into()));
    attrs.insert(
        "schedule".into(),
        AttrValue::Str(cfg.schedule.as_str().into()),
    );
    attrs.insert(
        "best_epoch".into(),
        AttrValue::Int(report.best_epoch as i64),
    );
    attrs.insert("val_fraction".into(), AttrValue::Float(cfg.val_fraction));
    attrs.insert(
        "normalised".into(),
        AttrValue::Int(i64::from(cfg.normalise)),
    );
    attrs.insert("warmup".into(), AttrValue::Float(cfg.warmup));
    if let Some(c) = cfg.clip {
        attrs.insert("clip".into(), AttrValue::Float(c));
    }
    if let Some(p) = &cfg.mass_penalty {
        attrs.insert("mass_penalty".into(), AttrValue::Float(p.weight));
        attrs.insert("mass_margin".into(), AttrValue::Float(p.margin));
    }
    crate::io::TrainingData {
        seed: cfg.seed,
        data_file: data_file.to_string(),
        epochs: report.epochs as u64,
        loss_history: ndarray::Array1::from(report.loss_history.clone()),
        val_loss_history: ndarray::Array1::from(report.val_loss_history.clone()),
        attrs,
    }
}

/// The one training loop (docs/DESIGN.md §3): seeded split and shuffles, minibatches, Adam with
/// the schedule, warm-up and clipping, validation after every epoch, the best parameters kept
/// (and left in `model` at the end). Samples a model drops (singular learned M) are counted; a
/// minibatch with a non-finite loss or gradient is skipped ([`TrainReport::skipped_steps`]);
/// [`MAX_SKIPPED_IN_A_ROW`] of those in a row, or an error, stop training with the reason in
/// [`TrainReport::stopped_by_error`]. `on_step` sees every step (progress bars); `cfg.stop`
/// stops after the current step.
pub fn fit<D: TrainingSet, T: Trainable<D> + ?Sized>(
    model: &mut T,
    data: &D,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(&Progress),
) -> Result<TrainReport> {
    cfg.check()?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let n_val = (cfg.val_fraction * data.len() as f64).round() as usize;
    let (train_set, val_set) = if n_val > 0 {
        if n_val >= data.len() {
            return Err(Error::input(format!(
                "the validation fraction {} leaves no training samples out of {}",
                cfg.val_fraction,
                data.len()
            )));
        }
        order.shuffle(&mut rng);
        let (tr, va) = order.split_at(data.len() - n_val);
        (data.subset(tr), Some(data.subset(va)))
    } else {
        (data.clone(), None)
    };
    let all_train: Vec<usize> = (0..train_set.len()).collect();
    let norm = if cfg.normalise {
        let z = train_set.zero_loss(&all_train, cfg.loss);
        if !(z.is_finite() && z > 0.0) {
            return Err(Error::input(
                "every training target is zero: there is nothing to learn (or the targets are not finite)",
            ));
        }
        1.0 / z
    } else {
        1.0
    };
    let mut theta = model.params();
    let mut best_theta = theta.clone();
    let mut adam = Adam::new(theta.len(), cfg.weight_decay);
    let batch = cfg.batch.min(train_set.len());
    let steps_per_epoch = train_set.len().div_ceil(batch);
    let total = steps_per_epoch * cfg.epochs;
    let warm_steps = (cfg.warmup * total as f64).ceil() as usize;
    let mut perm: Vec<usize> = (0..train_set.len()).collect();
    let val_idx: Vec<usize> = (0..val_set.as_ref().map_or(0, |v| v.len())).collect();
    let zero_val_loss = norm
        * match &val_set {
            Some(vs) => vs.zero_loss(&val_idx, cfg.loss),
            None => train_set.zero_loss(&all_train, cfg.loss),
        };
    let mut report = TrainReport {
        final_loss: f64::NAN,
        best_val_loss: f64::INFINITY,
        best_epoch: 0,
        epochs: 0,
        samples_per_second: 0.0,
        loss_history: vec![],
        val_loss_history: vec![],
        interrupted: false,
        stopped_by_error: None,
        skipped_steps: 0,
        dropped_samples: 0,
        dropped_val_samples: 0,
        n_train: train_set.len(),
        n_val,
        zero_val_loss,
        no_better_than_zero: true,
        definite_start: None,
        indefinite_mass_fraction: None,
    };
    let start = Instant::now();
    let mut seen = 0usize;
    let mut step = 0usize;
    let mut last_val = None;
    let mut skipped_in_a_row = 0usize;
    'epochs: for epoch in 0..cfg.epochs {
        perm.shuffle(&mut rng);
        let (mut eloss, mut ew) = (0.0, 0.0);
        for chunk in perm.chunks(batch) {
            if cfg.stop.load(Ordering::Relaxed) {
                report.interrupted = true;
                break 'epochs;
            }
            let (l, mut g) = match model.loss_grad(&train_set, chunk, cfg.loss, true) {
                Ok((l, g, nd)) => {
                    report.dropped_samples += nd;
                    (l * norm, g)
                }
                Err(e) => {
                    report.stopped_by_error = Some(format!("epoch {}: {e}", epoch + 1));
                    break 'epochs;
                }
            };
            if norm != 1.0 {
                g.iter_mut().for_each(|x| *x *= norm);
            }
            if !l.is_finite() || g.iter().any(|x| !x.is_finite()) {
                // One bad minibatch (an overflow near a degenerate learned Lagrangian) is
                // skipped without touching the parameters; a run of them stops training.
                report.skipped_steps += 1;
                skipped_in_a_row += 1;
                step += 1;
                if skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW {
                    report.stopped_by_error = Some(format!(
                        "epoch {}: the loss or its gradient is not finite ({MAX_SKIPPED_IN_A_ROW} minibatches in a row)",
                        epoch + 1
                    ));
                    break 'epochs;
                }
                continue;
            }
            skipped_in_a_row = 0;
            if let Some(c) = cfg.clip {
                optim::clip_global_norm(&mut g, c);
            }
            let mut lr = cfg.schedule.lr(cfg.lr, step, total);
            if step < warm_steps {
                lr *= (step + 1) as f64 / warm_steps as f64;
            }
            adam.step(&mut theta, &g, lr);
            if let Err(e) = model.set_params(&theta) {
                report.stopped_by_error = Some(format!("epoch {}: {e}", epoch + 1));
                break 'epochs;
            }
            let bw: f64 = chunk.iter().map(|&i| train_set.weight(i)).sum();
            eloss += l * bw;
            ew += bw;
            seen += chunk.len();
            step += 1;
            on_step(&Progress {
                epoch: epoch + 1,
                step,
                total_steps: total,
                loss: l,
                val_loss: last_val,
                samples_per_second: seen as f64 / start.elapsed().as_secs_f64(),
                dropped: report.dropped_samples,
            });
        }
        let train_loss = eloss / ew;
        report.loss_history.push(train_loss);
        report.final_loss = train_loss;
        report.epochs = epoch + 1;
        let score = if let Some(vs) = &val_set {
            match model.val_loss(vs, &val_idx, cfg.loss) {
                Ok((vl, nd)) => {
                    let vl = vl * norm;
                    report.dropped_val_samples = nd;
                    report.val_loss_history.push(vl);
                    last_val = Some(vl);
                    vl
                }
                Err(e) => {
                    report.stopped_by_error = Some(format!("epoch {} validation: {e}", epoch + 1));
                    break 'epochs;
                }
            }
        } else {
            train_loss
        };
        if score.is_finite() && score < report.best_val_loss {
            report.best_val_loss = score;
            report.best_epoch = epoch + 1;
            best_theta.clone_from(&theta);
        }
    }
    model.set_params(&best_theta)?;
    report.samples_per_second = seen as f64 / start.elapsed().as_secs_f64().max(1e-12);
    report.no_better_than_zero =
        !(report.best_val_loss.is_finite() && report.best_val_loss < report.zero_val_loss);
    Ok(report)
}
