//! `lgn.fit`: the CLI's `lgn train` as a function (same defaults, same trainer `train::fit`),
//! with a per-step and a per-epoch callback, Ctrl-C between steps, and data files or arrays.

use crate::arrays::{f64_array, shape_str};
use crate::errors::{input, IntoPy, Signals};
use crate::graph::Graph;
use crate::model::Model;
use lgn::density::dissipation::DissipationKind;
use lgn::io::{AttrValue, SamplesData, TrainingData};
use lgn::model::{AnyModel, FeatureSet, GraphDissipation, GraphModel, SystemGraph};
use lgn::names::Named;
use lgn::train::positions::{self, PositionsFit};
use lgn::train::recipe::{self, BoundaryRule, GraphDensity, Recipe};
use lgn::train::{
    self, HnnCoords, LossKind, MassPenalty, ModelKind, Progress, Samples, TrainConfig, TrainReport,
    Trainable, TrainedModel,
};
use ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Training data from a path (samples or trajectories file with qddot), a dict with keys q,
/// qdot, qddot (optional weights, system, params), or a tuple (q, qdot, qddot[, weights]).
/// Arrays are (N, D), or (B, T, D) trajectories (every frame a sample).
fn samples_data(data: &Bound<'_, PyAny>) -> PyResult<(SamplesData, String)> {
    if let Ok(p) = data.extract::<PathBuf>() {
        if !data.is_instance_of::<pyo3::types::PyTuple>() {
            let raw = lgn::io::read_training_data(&p).py_err()?;
            return Ok((raw, p.display().to_string()));
        }
    }
    let get = |k: &str, i: usize| -> PyResult<Option<Bound<'_, PyAny>>> {
        if let Ok(d) = data.cast::<PyDict>() {
            return d.get_item(k);
        }
        if let Ok(t) = data.cast::<PyTuple>() {
            return Ok(if i < t.len() {
                Some(t.get_item(i)?)
            } else {
                None
            });
        }
        if let Ok(t) = data.cast::<pyo3::types::PyList>() {
            return Ok(if i < t.len() {
                Some(t.get_item(i)?)
            } else {
                None
            });
        }
        Err(input(
            "data must be a path to an lgn samples/trajectories file, a dict with q, qdot, qddot, or a tuple (q, qdot, qddot[, weights])",
        ))
    };
    let arr = |k: &str, i: usize| -> PyResult<Array2<f64>> {
        let Some(x) = get(k, i)? else {
            return Err(input(format!("data: '{k}' is missing")));
        };
        let a = f64_array(&x, &format!("data['{k}']"))?;
        let s = a.shape().to_vec();
        let (n, d) = match s.as_slice() {
            [n, d] => (*n, *d),
            [b, t, d] => (b * t, *d),
            _ => {
                return Err(input(format!(
                    "data['{k}'] must have shape (N, D) or (B, T, D), got {}",
                    shape_str(&s)
                )))
            }
        };
        let v = a.as_slice()?;
        crate::arrays::check_finite(&format!("data['{k}']"), v, d, true)?;
        Ok(Array2::from_shape_vec((n, d), v.to_vec()).expect("shape"))
    };
    let q = arr("q", 0)?;
    let qdot = arr("qdot", 1)?;
    let qddot = arr("qddot", 2)?;
    for (k, a) in [("qdot", &qdot), ("qddot", &qddot)] {
        if a.dim() != q.dim() {
            return Err(input(format!(
                "data['{k}'] has {} × {} values but data['q'] has {} × {}",
                a.nrows(),
                a.ncols(),
                q.nrows(),
                q.ncols()
            )));
        }
    }
    let weights = match get("weights", 3)? {
        Some(w) if !w.is_none() => {
            let a = f64_array(&w, "data['weights']")?;
            if a.shape() != [q.nrows()] {
                return Err(input(format!(
                    "data['weights'] must have shape ({},), got {}",
                    q.nrows(),
                    shape_str(a.shape())
                )));
            }
            Some(Array1::from(a.as_slice()?.to_vec()))
        }
        _ => None,
    };
    let (system, params) = match data.cast::<PyDict>() {
        Ok(d) => system_params(d)?,
        Err(_) => (None, BTreeMap::new()),
    };
    let raw = SamplesData {
        system,
        params,
        q,
        qdot,
        qddot,
        weights,
    };
    if let Some(p) = raw.problems().first() {
        return Err(input(format!("data: {}: {}", p.location, p.msg)));
    }
    Ok((raw, "<arrays>".into()))
}

/// The optional `system` name and `params` of a data dict.
pub(crate) fn system_params(
    d: &Bound<'_, PyDict>,
) -> PyResult<(Option<String>, BTreeMap<String, f64>)> {
    let system = match d.get_item("system")? {
        Some(s) if !s.is_none() => Some(s.extract::<String>()?),
        _ => None,
    };
    let params = match d.get_item("params")? {
        Some(p) if !p.is_none() => p.extract::<BTreeMap<String, f64>>()?,
        _ => BTreeMap::new(),
    };
    Ok((system, params))
}

/// The library value of the keyword argument `arg` (one of the [`Named`] type's names).
pub(crate) fn named<T: Named>(arg: &str, what: &str, s: &str) -> PyResult<T> {
    T::parse(s).ok_or_else(|| {
        input(format!(
            "{arg}: unknown {what} '{s}' (one of {})",
            T::names()
        ))
    })
}

/// A [`Trainable`] that reports each finished epoch (exact training loss as `fit` records it,
/// validation loss) to a callback, which can stop training at the epoch boundary.
struct Observed<'a, T: Trainable + ?Sized> {
    inner: &'a mut T,
    normalise: bool,
    norm: Option<f64>,
    seen: usize,
    epoch: usize,
    eloss: f64,
    ew: f64,
    pending: Option<(usize, f64)>,
    on_epoch: &'a mut dyn FnMut(usize, f64, Option<f64>),
}

impl<'a, T: Trainable + ?Sized> Observed<'a, T> {
    fn new(
        inner: &'a mut T,
        normalise: bool,
        on_epoch: &'a mut dyn FnMut(usize, f64, Option<f64>),
    ) -> Self {
        Observed {
            inner,
            normalise,
            norm: None,
            seen: 0,
            epoch: 0,
            eloss: 0.0,
            ew: 0.0,
            pending: None,
            on_epoch,
        }
    }
    fn flush(&mut self, val: Option<f64>) {
        if let Some((e, l)) = self.pending.take() {
            (self.on_epoch)(e, l, val);
        }
    }
}

impl<T: Trainable + ?Sized> Trainable for Observed<'_, T> {
    fn params(&self) -> Vec<f64> {
        self.inner.params()
    }
    fn set_params(&mut self, theta: &[f64]) -> lgn::Result<()> {
        self.inner.set_params(theta)
    }
    fn loss_grad(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> lgn::Result<(f64, Vec<f64>, usize)> {
        self.flush(None);
        let norm = *self.norm.get_or_insert_with(|| {
            if self.normalise {
                let all: Vec<usize> = (0..data.n).collect();
                1.0 / train::zero_loss(data, &all, loss)
            } else {
                1.0
            }
        });
        let r = self.inner.loss_grad(data, idx, loss, want_grad)?;
        let l = r.0 * norm;
        if l.is_finite() && r.1.iter().all(|x| x.is_finite()) {
            let bw: f64 = idx.iter().map(|&i| data.weight(i)).sum();
            self.eloss += l * bw;
            self.ew += bw;
        }
        self.seen += idx.len();
        if self.seen >= data.n {
            self.epoch += 1;
            self.pending = Some((self.epoch, self.eloss / self.ew));
            self.seen = 0;
            self.eloss = 0.0;
            self.ew = 0.0;
        }
        Ok(r)
    }
    fn val_loss(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
    ) -> lgn::Result<(f64, usize)> {
        let r = self.inner.val_loss(data, idx, loss);
        if let Ok((vl, _)) = &r {
            let v = vl * self.norm.unwrap_or(1.0);
            self.flush(Some(v));
        }
        r
    }
}

fn report_dict<'py>(
    py: Python<'py>,
    r: &TrainReport,
    cfg: &TrainConfig,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("final_loss", r.final_loss)?;
    d.set_item("best_val_loss", r.best_val_loss)?;
    d.set_item("best_epoch", r.best_epoch)?;
    d.set_item("zero_val_loss", r.zero_val_loss)?;
    let rel = (cfg.loss == LossKind::Mse && r.zero_val_loss > 0.0)
        .then(|| (r.best_val_loss / r.zero_val_loss).sqrt());
    d.set_item("val_rel_error", rel)?;
    d.set_item("no_better_than_zero", r.no_better_than_zero)?;
    d.set_item("epochs", r.epochs)?;
    d.set_item("samples_per_second", r.samples_per_second)?;
    d.set_item("loss_history", r.loss_history.clone().into_pyarray(py))?;
    d.set_item(
        "val_loss_history",
        r.val_loss_history.clone().into_pyarray(py),
    )?;
    d.set_item("interrupted", r.interrupted)?;
    d.set_item("stopped_by_error", r.stopped_by_error.clone())?;
    d.set_item("skipped_steps", r.skipped_steps)?;
    d.set_item("dropped_samples", r.dropped_samples)?;
    d.set_item("n_train", r.n_train)?;
    d.set_item("n_val", r.n_val)?;
    d.set_item("normalised", cfg.normalise)?;
    d.set_item("batch", cfg.batch)?;
    d.set_item("lr", cfg.lr)?;
    Ok(d)
}

/// The training record stored in the model file (as `lgn train` writes it).
fn training_record(data_file: &str, cfg: &TrainConfig, report: &TrainReport) -> TrainingData {
    let mut rec = lgn::train::training_record(data_file, cfg, report);
    rec.attrs
        .insert("trained_with".into(), AttrValue::Str("python".into()));
    rec
}

/// Makes a graph model from the training states of a positions objective.
type MakeGraph = Box<dyn Fn(&[&[f64]]) -> lgn::Result<GraphModel> + Send + Sync>;

/// What is trained.
enum Job {
    Net(TrainedModel),
    Graph(Box<GraphModel>, SystemGraph),
    /// A new single-network model on positions-only data (`objective=`).
    NetPositions(TrainedModel),
    /// A new graph network on positions-only data.
    GraphPositions(SystemGraph, MakeGraph),
}

/// Train a model (see `lgn.fit` in the Python package for the documentation).
#[pyfunction]
#[pyo3(signature = (model, data, *, graph = None, density = "node-edge", node_potential = false, node_mass = None, boundary = "auto", features = None, hidden = None, layers = 2, epochs = 100, batch = None, lr = None, weight_decay = 0.0, schedule = None, clip = Some(1.0), warmup = 0.05, normalise = true, val_fraction = 0.1, seed = 0, loss = "mse", mass_penalty = None, mass_margin = None, angles = false, embed_angles = false, shift_invariant = false, edge_distance = false, precision = "f64", hnn_coords = "velocity", dissipation = "none", input_map = "given", objective = None, window = None, out = None, overwrite = false, on_step = None, on_epoch = None))]
#[allow(clippy::too_many_arguments)]
pub fn fit<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    graph: Option<&Bound<'py, Graph>>,
    density: &str,
    node_potential: bool,
    node_mass: Option<f64>,
    boundary: &str,
    features: Option<&str>,
    hidden: Option<usize>,
    layers: usize,
    epochs: usize,
    batch: Option<usize>,
    lr: Option<f64>,
    weight_decay: f64,
    schedule: Option<&str>,
    clip: Option<f64>,
    warmup: f64,
    normalise: bool,
    val_fraction: f64,
    seed: u64,
    loss: &str,
    mass_penalty: Option<f64>,
    mass_margin: Option<f64>,
    angles: bool,
    embed_angles: bool,
    shift_invariant: bool,
    edge_distance: bool,
    precision: &str,
    hnn_coords: &str,
    dissipation: &str,
    input_map: &str,
    objective: Option<&str>,
    window: Option<usize>,
    out: Option<PathBuf>,
    overwrite: bool,
    on_step: Option<Py<PyAny>>,
    on_epoch: Option<Py<PyAny>>,
) -> PyResult<Py<Model>> {
    if let Some(o) = &out {
        lgn::io::check_writable(o, overwrite).py_err()?;
    }
    // Positions-only data and objectives (as `lgn train --objective`), else (q, q̇, q̈) samples.
    let positions = crate::fit_positions::positions_data(data, objective)?;
    let (raw, data_name) = match &positions {
        Some(p) => (p.shape_only(), p.name.clone()),
        None => samples_data(data)?,
    };
    let d = raw.q.ncols();
    let hnn: HnnCoords = named("hnn_coords", "coordinates", hnn_coords)?;
    let precision = lgn::density::Precision::parse(precision).ok_or_else(|| {
        input(format!(
            "precision: unknown precision '{precision}' (one of f64, f32)"
        ))
    })?;
    if embed_angles && angles {
        return Err(input("embed_angles and angles are two ways of treating angles: choose one (embed_angles: (cos q, sin q), smooth everywhere; angles: q wrapped into (−π, π])"));
    }
    let dissipation: DissipationKind = named("dissipation", "dissipation", dissipation)?;
    let input_map: lgn::model::InputMapKind = named("input_map", "input map", input_map)?;
    // Driven training data (u, B in the file) as `lgn train`: only files carry inputs.
    let data_file: Option<PathBuf> = (!data.is_instance_of::<pyo3::types::PyTuple>())
        .then(|| data.extract::<PathBuf>().ok())
        .flatten();
    let recipe = Recipe {
        epochs,
        batch,
        lr,
        weight_decay,
        schedule: schedule
            .map(|s| named("schedule", "schedule", s))
            .transpose()?,
        clip,
        warmup,
        normalise,
        val_fraction,
        seed,
        loss: named("loss", "loss", loss)?,
        mass_penalty,
        mass_margin: mass_margin.unwrap_or(MassPenalty::DEFAULT_MARGIN),
        hidden,
        layers,
        precision,
    };
    // What is trained: an existing model (in place), a new single-network model, or a new
    // graph network on a graph.
    let existing: Option<Bound<'py, Model>> = model.cast::<Model>().ok().cloned();
    let new_graph: Option<Graph> = match (model.cast::<Graph>(), graph) {
        (Ok(g), _) => Some(g.get().clone()),
        (Err(_), Some(g)) if existing.is_none() => Some(g.get().clone()),
        _ => None,
    };
    if node_mass.is_some() && new_graph.is_none() {
        return Err(input(
            "node_mass applies to a new graph network (model=lgn.Graph or graph=)",
        ));
    }
    // A graph network: new on a graph, or an existing one (the ring lgn is trained as one too).
    let graph_net = new_graph.is_some()
        || existing.as_ref().is_some_and(|m| {
            matches!(
                &*m.get().inner.lock().expect("not poisoned"),
                AnyModel::Graph(_)
            )
        });
    let is_graph = graph_net
        || existing.as_ref().is_some_and(|m| m.get().kind() == "lgn")
        || model.extract::<String>().is_ok_and(|k| k == "lgn");
    if existing.is_some() && (embed_angles || edge_distance) {
        return Err(input(
            "embed_angles and edge_distance shape a new model; an lgn.Model keeps the inputs and terms it was made with",
        ));
    }
    if precision != lgn::density::Precision::F64 && (graph_net || positions.is_some()) {
        return Err(input(
            "precision='f32' applies to model='lgn' on the ring trained on accelerations; graph networks and the positions objectives train in f64",
        ));
    }
    if input_map == lgn::model::InputMapKind::Learned && (!graph_net || positions.is_some()) {
        return Err(input(
            "input_map='learned' applies to new graph networks (model=lgn.Graph or graph=) trained on driven data (a file with /u, objective 'accel')",
        ));
    }
    if input_map == lgn::model::InputMapKind::Learned && existing.is_some() {
        return Err(input(
            "input_map='learned' shapes a new graph network; an lgn.Model keeps its input map",
        ));
    }
    if edge_distance && !graph_net {
        return Err(input(
            "edge_distance is a term of graph networks (model=lgn.Graph or graph=)",
        ));
    }
    if dissipation != DissipationKind::None && existing.is_some() {
        return Err(input(
            "dissipation applies to a new model (the dissipation of an lgn.Model is trained with it)",
        ));
    }
    if let Some(p) = &positions {
        let o = p.objective.as_str();
        if existing.is_some() {
            return Err(input(format!("objective='{o}' trains a new model from positions; an lgn.Model is trained further on (q, qdot, qddot) data")));
        }
        if dissipation != DissipationKind::None {
            return Err(input("dissipation trains on accelerations (objective='accel'); positions-only objectives learn conservative models"));
        }
        if shift_invariant {
            return Err(input(format!(
                "shift_invariant applies to the accel objective, not to objective='{o}'"
            )));
        }
    }
    let mut samples;
    let job = if let Some(m) = &existing {
        let inner = m.get().inner.lock().expect("not poisoned").clone();
        match inner {
            AnyModel::Net(t) => {
                samples =
                    train::prepare_samples(t.kind, &raw, t.hnn_coords.unwrap_or(hnn)).py_err()?;
                t.wrap_inputs(&mut samples);
                Job::Net(t)
            }
            AnyModel::Graph(g) => {
                let sg = match graph {
                    Some(x) => x.get().g.clone(),
                    None => g.own_graph().py_err()?,
                };
                samples = Samples::from_data(&raw).py_err()?;
                Job::Graph(g, sg)
            }
        }
    } else if let Some(gr) = new_graph {
        if let Ok(k) = model.extract::<String>() {
            if k != "lgn" && k != "graph" {
                return Err(input(format!("with graph=, the model trained is a Lagrangian graph network ('lgn'); got '{k}'")));
            }
        }
        if shift_invariant && (density != "node-edge" || node_potential) {
            return Err(input("shift_invariant on graphs: the node-edge density without a node potential is shift-invariant already; other densities are not (docs/DESIGN.md §14)"));
        }
        if angles || embed_angles {
            return Err(input(
                "angles and embed_angles apply to single-site models ('lnn'), not to graph networks",
            ));
        }
        if edge_distance && density != "node-edge" {
            return Err(input("edge_distance belongs to density='node-edge'"));
        }
        if mass_penalty.is_some() && density == "node-edge" {
            return Err(input("mass_penalty applies to lnn, lgn and graph networks with density='sites' or 'stencil'; the node-edge kinetic term M = diag(μ), μ > 0, is definite by construction"));
        }
        let g = gr.g;
        if d != g.n_coords() {
            return Err(input(format!(
                "data: states have {d} coordinates but the graph {} has {} nodes × {} coordinates = {}",
                g.name,
                g.n_nodes(),
                g.dof(),
                g.n_coords()
            )));
        }
        samples = if positions.is_some() {
            crate::fit_positions::no_samples(d)
        } else {
            Samples::from_data(&raw).py_err()?
        };
        let shape = recipe.shape(true);
        lgn::limits::check_mlp("hidden/layers", 8, shape.hidden, layers).py_err()?;
        let fs = match features.unwrap_or(if gr.mesh_file { "mesh" } else { "graph" }) {
            "mesh" => FeatureSet::Mesh,
            "graph" => FeatureSet::Graph,
            f => {
                return Err(input(format!(
                    "features must be 'graph' or 'mesh', got '{f}'"
                )))
            }
        };
        let density: GraphDensity = named("density", "graph density", density)?;
        let rule: BoundaryRule = named("boundary", "boundary rule", boundary)?;
        if node_potential && density != GraphDensity::NodeEdge {
            return Err(input("node_potential belongs to density='node-edge'"));
        }
        if node_mass.is_some() && density != GraphDensity::NodeEdge {
            return Err(input("node_mass belongs to density='node-edge'"));
        }
        let known = node_mass
            .map(|m| recipe::node_mass_term(m).map_err(|e| e.context("node_mass")))
            .transpose()
            .py_err()?;
        let fixed = match rule {
            BoundaryRule::Fixed => g.boundary_coords().py_err()?,
            _ => g.boundary_coords().unwrap_or_default(),
        };
        if let Some(p) = &positions {
            // The model is made from the objective's states, as `lgn train --graph --objective`.
            let still_flag = recipe::still_in_positions(&fixed, &p.pos.q);
            let (gc, system) = (g.clone(), p.pos.system.clone().unwrap_or_default());
            let make = move |states: &[&[f64]]| -> lgn::Result<GraphModel> {
                let mut m =
                    recipe::graph_model(&gc, fs, density, node_potential, known, &shape, states)?;
                if edge_distance {
                    // docs/DESIGN.md §14.3, as `lgn train --graph … --edge-distance`.
                    let n = gc.n_coords();
                    let qs: Vec<&[f64]> = states.iter().map(|s| &s[..n]).collect();
                    m = m.with_edge_distance(&gc, &shape, &qs)?;
                }
                m.boundary = rule
                    .resolve(&fixed, &gc.name, || still_flag)
                    .map_err(|e| e.context("boundary='fixed'"))?;
                m.system = system.clone();
                Ok(m)
            };
            Job::GraphPositions(g, Box::new(make))
        } else {
            let states: Vec<&[f64]> = (0..samples.n).map(|i| samples.input_row(i)).collect();
            let mut m =
                recipe::graph_model(&g, fs, density, node_potential, known, &shape, &states)
                    .py_err()?;
            if edge_distance {
                // docs/DESIGN.md §14.3, as `lgn train --graph … --edge-distance`.
                let n = g.n_coords();
                let qs: Vec<&[f64]> = states.iter().map(|s| &s[..n]).collect();
                m = m.with_edge_distance(&g, &shape, &qs).py_err()?;
            }
            let still = || recipe::still_in_samples(&fixed, &raw.qdot, &raw.qddot);
            m.boundary = rule
                .resolve(&fixed, &g.name, still)
                .map_err(|e| e.context("boundary='fixed'"))
                .py_err()?;
            m.system = raw.system.clone().unwrap_or_default();
            // As `lgn train --graph … --dissipation` (docs/DESIGN.md §13.7).
            let n = g.n_coords();
            let qs: Vec<&[f64]> = (0..samples.n).map(|i| &samples.input_row(i)[..n]).collect();
            m.dissipation =
                GraphDissipation::new(dissipation, &m, &g, hidden.unwrap_or(64), layers, seed, &qs)
                    .map_err(|e| e.context("dissipation"))
                    .py_err()?;
            Job::Graph(Box::new(m), g)
        }
    } else {
        let k: String = model.extract().map_err(|_| {
            input("model must be 'lnn', 'lgn', 'mlp', 'hnn', an lgn.Graph (a graph network on it) or an lgn.Model (trained further in place)")
        })?;
        let kind = ModelKind::parse(&k).ok_or_else(|| {
            input(format!(
                "model: unknown model kind '{k}' (one of lnn, lgn, mlp, hnn)"
            ))
        })?;
        let system = raw.system.clone().unwrap_or_default();
        lgn::limits::check_mlp("hidden/layers", 8, recipe.hidden(false), layers).py_err()?;
        if angles && kind == ModelKind::Lgn {
            return Err(input(
                "angles applies to single-site models (lnn, mlp, hnn), not to lgn",
            ));
        }
        if positions.is_some() {
            // As `lgn train --objective`: the noise level of the data is no system parameter.
            let mut params = raw.params.clone();
            params.remove("noise");
            let mut t = recipe
                .net_model(kind, &system, &params, d, HnnCoords::Velocity, angles)
                .py_err()?;
            if embed_angles {
                // docs/DESIGN.md §14.6, §12.9, as `lgn train --embed-angles`.
                t.set_angle_embedding(seed).py_err()?;
            }
            samples = crate::fit_positions::no_samples(d);
            Job::NetPositions(t)
        } else {
            samples = train::prepare_samples(kind, &raw, hnn).py_err()?;
            match dissipation {
            DissipationKind::Learned if kind != ModelKind::Lnn => return Err(input(format!("dissipation='learned' learns the dissipation of an lnn or a graph network, not of a '{k}' model"))),
            DissipationKind::Linear if kind != ModelKind::Lnn => return Err(input(format!("dissipation='linear' learns the damping of an lnn, not of a '{k}' model"))),
            _ => {}
        }
            let mut t = recipe
                .net_model(kind, &system, &raw.params, d, hnn, angles)
                .py_err()?;
            if embed_angles {
                // docs/DESIGN.md §14.6, as `lgn train --embed-angles`: before the normalisation.
                t.set_angle_embedding(seed).py_err()?;
            }
            t.wrap_inputs(&mut samples);
            train::fit_normalisation(&mut t, &samples);
            if shift_invariant {
                // docs/DESIGN.md §14.1, as `lgn train --shift-invariant`: after the normalisation.
                t.set_shift_invariant().py_err()?;
            }
            Job::Net(t)
        }
    };
    // Samples of the objective: frames of the positions (the CLI's estimate), else the samples.
    let n_train = positions
        .as_ref()
        .map_or(samples.n, |p| p.pos.n_batch() * p.pos.n_frames());
    let cfg = recipe
        .config(is_graph, n_train, Arc::new(AtomicBool::new(false)))
        .py_err()?;
    lgn::limits::check_alloc(
        "batch × hidden",
        (cfg.batch as u128) * (recipe.hidden(false) as u128),
        64,
    )
    .py_err()?;

    // Train without the GIL; callbacks and Ctrl-C checks take it briefly on this thread.
    let stop = cfg.stop.clone();
    // docs/DESIGN.md §12.10: window=None chooses the weak form's K from the data's noise.
    let weak_form = positions
        .as_ref()
        .map(|p| {
            let path = std::path::Path::new(&p.name);
            lgn::train::window::weak_form(&p.pos, path, p.objective, window).map(|(f, _)| f)
        })
        .transpose()
        .py_err()?;
    let (result, pyerr) = py.detach(|| {
        let sig = Signals::default();
        let cb_err: std::cell::RefCell<Option<PyErr>> = Default::default();
        let mut step_cb = |p: &Progress| {
            if sig.check() {
                stop.store(true, Ordering::Relaxed);
            }
            if let Some(cb) = &on_step {
                if cb_err.borrow().is_some() {
                    return;
                }
                let r = Python::attach(|py| -> PyResult<()> {
                    let d = PyDict::new(py);
                    d.set_item("epoch", p.epoch)?;
                    d.set_item("step", p.step)?;
                    d.set_item("total_steps", p.total_steps)?;
                    d.set_item("loss", p.loss)?;
                    d.set_item("val_loss", p.val_loss)?;
                    d.set_item("samples_per_second", p.samples_per_second)?;
                    cb.call1(py, (d,))?;
                    Ok(())
                });
                if let Err(e) = r {
                    *cb_err.borrow_mut() = Some(e);
                    stop.store(true, Ordering::Relaxed);
                }
            }
        };
        let mut epoch_cb = |e: usize, l: f64, v: Option<f64>| {
            if sig.check_now() {
                stop.store(true, Ordering::Relaxed);
            }
            if let Some(cb) = &on_epoch {
                if cb_err.borrow().is_some() {
                    return;
                }
                let r = Python::attach(|py| -> PyResult<bool> {
                    let d = PyDict::new(py);
                    d.set_item("epoch", e)?;
                    d.set_item("loss", l)?;
                    d.set_item("val_loss", v)?;
                    let ret = cb.call1(py, (d,))?;
                    // Returning False stops training after this epoch.
                    Ok(ret.bind(py).is_instance_of::<pyo3::types::PyBool>()
                        && !ret.extract::<bool>(py)?)
                });
                match r {
                    Ok(true) => stop.store(true, Ordering::Relaxed),
                    Ok(false) => {}
                    Err(err) => {
                        *cb_err.borrow_mut() = Some(err);
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        let spec = positions.as_ref().zip(weak_form).map(|(p, form)| {
            (
                p,
                PositionsFit {
                    objective: p.objective,
                    form,
                    cfg: cfg.clone(),
                },
            )
        });
        // The positions objectives run their own trainer: epochs are reported from the steps
        // (the epoch's last minibatch loss and the validation loss of the epoch).
        let mut last: Option<(usize, f64)> = None;
        let mut pos_cb = |p: &Progress| {
            if let Some((e, l)) = last {
                if p.epoch != e {
                    epoch_cb(e, l, p.val_loss);
                }
            }
            last = Some((p.epoch, p.loss));
            step_cb(p);
        };
        let res = match job {
            Job::NetPositions(t) => {
                let (p, spec) = spec.as_ref().expect("positions data");
                let path = std::path::Path::new(&p.name);
                let r = positions::fit_lnn_positions(t, &p.pos, path, spec, &mut pos_cb);
                if let (Some((e, l)), Ok((_, rep))) = (last, &r) {
                    epoch_cb(e, l, rep.val_loss_history.last().copied());
                }
                r.map(|(m, r)| (AnyModel::Net(m), r))
            }
            Job::GraphPositions(g, make) => {
                let (p, spec) = spec.as_ref().expect("positions data");
                let path = std::path::Path::new(&p.name);
                let r = positions::fit_graph_positions(&g, &*make, &p.pos, path, spec, &mut pos_cb);
                if let (Some((e, l)), Ok((_, rep))) = (last, &r) {
                    epoch_cb(e, l, rep.val_loss_history.last().copied());
                }
                r.map(|(m, r)| (AnyModel::Graph(Box::new(m)), r))
            }
            Job::Net(t) if dissipation != DissipationKind::None => {
                // As `lgn train --dissipation linear|learned`: c_k = 0.1 or R = 0.1·I initially
                // (docs/DESIGN.md §13.2, §22).
                train::damped::dissipative_lnn_trainer(
                    t,
                    dissipation,
                    &samples,
                    cfg.mass_penalty,
                    cfg.seed,
                )
                .and_then(|mut tr| {
                    let mut ob = Observed::new(&mut tr, cfg.normalise, &mut epoch_cb);
                    let rep = train::fit(&mut ob, &samples, &cfg, &mut step_cb);
                    ob.flush(None);
                    rep.map(|r| (AnyModel::Net(tr.finish()), r))
                })
            }
            Job::Net(t) => train::NetTrainer::new(t, &samples, cfg.mass_penalty)
                .and_then(|tr| tr.with_precision(cfg.precision))
                .and_then(|mut tr| {
                    let mut ob = Observed::new(&mut tr, cfg.normalise, &mut epoch_cb);
                    let rep = train::fit(&mut ob, &samples, &cfg, &mut step_cb);
                    ob.flush(None);
                    rep.map(|r| (AnyModel::Net(tr.into_model()), r))
                }),
            Job::Graph(m, g) => {
                // docs/DESIGN.md §18.2, as `lgn train --graph`: general densities are penalised.
                let pen = train::site_penalty::for_graph(&m, cfg.mass_penalty, &samples);
                train::graph::GraphTrainer::new(*m, g).map(|t| t.with_mass_penalty(pen))
            }
            .and_then(|tr| match &data_file {
                // Driven data: rows (q, q̇, u) and the input map B (docs/DESIGN.md §13.7).
                Some(path) => train::graph::driven_from_file(path, tr, samples, input_map)
                    .map(|(tr, s, _)| (tr, s)),
                None => Ok((tr, samples)),
            })
            .and_then(|(mut tr, samples)| {
                let mut ob = Observed::new(&mut tr, cfg.normalise, &mut epoch_cb);
                let rep = train::fit(&mut ob, &samples, &cfg, &mut step_cb);
                ob.flush(None);
                rep.map(|r| (AnyModel::Graph(Box::new(tr.model)), r))
            }),
        };
        let err = cb_err.into_inner().or_else(|| sig.take());
        (res, err)
    });
    let (trained, report) = result.py_err()?;
    if report.epochs == 0 {
        if let Some(e) = &report.stopped_by_error {
            return Err(crate::errors::raise(
                "TrainingError",
                format!("training failed in its first epoch: {e}"),
            ));
        }
    }
    let params_finite = match &trained {
        AnyModel::Net(t) => lgn::train::hyperdual::flatten(&t.net)
            .iter()
            .all(|x| x.is_finite()),
        AnyModel::Graph(g) => g.params().iter().all(|x| x.is_finite()),
    };
    if !params_finite {
        return Err(crate::errors::raise("TrainingError", "training diverged: a parameter of the model is not finite; lower lr or check the data's scale"));
    }
    let mut rec = training_record(&data_name, &cfg, &report);
    if let Some(p) = &positions {
        rec.attrs.insert(
            "objective".into(),
            AttrValue::Str(p.objective.as_str().into()),
        );
        if let (lgn::train::positions::ObjectiveKind::Weak, Some(f)) = (p.objective, &weak_form) {
            rec.attrs.insert(
                "weak_half_width".into(),
                AttrValue::Int(f.half_width as i64),
            );
        }
    }
    let rd = report_dict(py, &report, &cfg)?;
    let m: Py<Model> = match existing {
        Some(m) => {
            let mm = m.get();
            *mm.inner.lock().expect("not poisoned") = trained;
            mm.invalidate();
            m.unbind()
        }
        None => Py::new(py, Model::new(trained, String::new()))?,
    };
    {
        let mm = m.get();
        *mm.record.lock().expect("not poisoned") = Some(rec);
        *mm.report.lock().expect("not poisoned") = Some(rd.into_any().unbind());
    }
    if let Some(o) = &out {
        m.bind(py).call_method1("save", (o.clone(), overwrite))?;
    }
    if let Some(e) = pyerr {
        // Ctrl-C (or a callback's exception): the model keeps its best parameters and is
        // attached to the exception as `.model` (and written to `out` above).
        let _ = e.value(py).setattr("model", m.clone_ref(py));
        return Err(e);
    }
    Ok(m)
}

/// Read an lgn samples or trajectories file into a dict of numpy arrays (q, qdot, qddot,
/// weights / t, energy, system, params).
#[pyfunction]
pub fn read_data<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if lgn::io::is_positions_only(&path).py_err()? {
        // Positions only (t, q), what `lgn generate --positions-only` and experiments record.
        let p = lgn::io::PositionsData::read(&path).py_err()?;
        d.set_item("kind", "positions")?;
        d.set_item("system", p.system.clone())?;
        d.set_item("params", p.params.clone())?;
        d.set_item("t", p.t.into_pyarray(py))?;
        d.set_item("q", p.q.into_pyarray(py))?;
        return Ok(d);
    }
    match lgn::io::file_kind(&path).py_err()? {
        Some(lgn::io::Kind::Trajectories) => {
            let t = lgn::io::TrajectoryData::read(&path).py_err()?;
            d.set_item("kind", "trajectories")?;
            d.set_item("system", t.system.clone())?;
            d.set_item("params", t.params.clone())?;
            d.set_item("t", t.t.into_pyarray(py))?;
            d.set_item("q", t.q.into_pyarray(py))?;
            d.set_item("qdot", t.qdot.into_pyarray(py))?;
            d.set_item("qddot", t.qddot.map(|x| x.into_pyarray(py)))?;
            d.set_item("energy", t.energy.map(|x| x.into_pyarray(py)))?;
        }
        _ => {
            let s = SamplesData::read(&path).py_err()?;
            d.set_item("kind", "samples")?;
            d.set_item("system", s.system.clone())?;
            d.set_item("params", s.params.clone())?;
            d.set_item("q", s.q.into_pyarray(py))?;
            d.set_item("qdot", s.qdot.into_pyarray(py))?;
            d.set_item("qddot", s.qddot.into_pyarray(py))?;
            d.set_item("weights", s.weights.map(|x| x.into_pyarray(py)))?;
        }
    }
    Ok(d)
}

/// Write an lgn samples file (q, qdot, qddot: (N, D); optional weights (N,)).
#[pyfunction]
#[pyo3(signature = (path, q, qdot, qddot, weights = None, system = None, params = None, overwrite = false))]
#[allow(clippy::too_many_arguments)]
pub fn write_samples(
    py: Python<'_>,
    path: PathBuf,
    q: &Bound<'_, PyAny>,
    qdot: &Bound<'_, PyAny>,
    qddot: &Bound<'_, PyAny>,
    weights: Option<&Bound<'_, PyAny>>,
    system: Option<String>,
    params: Option<BTreeMap<String, f64>>,
    overwrite: bool,
) -> PyResult<()> {
    let dict = PyDict::new(py);
    dict.set_item("q", q)?;
    dict.set_item("qdot", qdot)?;
    dict.set_item("qddot", qddot)?;
    dict.set_item("weights", weights)?;
    dict.set_item("system", system)?;
    dict.set_item("params", params)?;
    let (s, _) = samples_data(dict.as_any())?;
    py.detach(|| s.write(&path, overwrite)).py_err()
}
