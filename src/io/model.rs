//! `model` files: network weights, input normalisation and training record.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array2};

use super::h5::{guard, refuse_invalid, Ctx, Out, Problem};
use super::{AttrValue, Kind};
use crate::error::{Error, Result};

/// Accepted values of the `model_kind` attribute.
pub const MODEL_KINDS: &[&str] = &["lnn", "lgn", "mlp", "hnn"];
/// Accepted values of the `activation` attribute (code that evaluates a model must still check
/// it supports the one it finds).
pub const ACTIVATIONS: &[&str] = &["softplus", "tanh", "relu", "sigmoid"];

/// One dense layer: y = weight · x + bias.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerData {
    /// out × in (dataset `layers/i/weight`).
    pub weight: Array2<f64>,
    /// length out (dataset `layers/i/bias`).
    pub bias: Array1<f64>,
}

/// Record of how a model was trained (group `training`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingData {
    /// Random seed (attribute `seed`, uint64).
    pub seed: u64,
    /// Training data file (attribute `data_file`).
    pub data_file: String,
    /// Epochs run (attribute `epochs`, int64).
    pub epochs: u64,
    /// Training loss per epoch (dataset `loss_history`; may hold NaN/Inf if training diverged).
    pub loss_history: Array1<f64>,
    /// Validation loss per epoch (dataset `val_loss_history`; may be empty).
    pub val_loss_history: Array1<f64>,
    /// Other attributes of the `training` group (e.g. `learning_rate`).
    pub attrs: BTreeMap<String, AttrValue>,
}

/// A trained network (see docs/SCHEMA.md, kind `model`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelData {
    /// One of [`MODEL_KINDS`] (attribute `model_kind`).
    pub model_kind: String,
    /// One of [`ACTIVATIONS`] (attribute `activation`).
    pub activation: String,
    /// Physical system the model was trained on (attribute `system`).
    pub system: Option<String>,
    /// Nodes per site (attribute `arity`, int64 >= 1).
    pub arity: usize,
    /// Coordinates per node (attribute `dof`, int64 >= 1).
    pub dof: usize,
    /// Node/edge features fed to the network (attribute `n_features`, int64 >= 0).
    pub n_features: usize,
    /// Widths of all layers including input and output (dataset `layer_sizes`, int64).
    pub layer_sizes: Vec<usize>,
    /// Dense layers, `layers[i]` maps `layer_sizes[i]` to `layer_sizes[i+1]` (groups `layers/i`).
    pub layers: Vec<LayerData>,
    /// Input normalisation x_norm = (x - input_shift) / input_scale, length `layer_sizes[0]`.
    pub input_shift: Array1<f64>,
    /// See `input_shift`; every entry finite and > 0.
    pub input_scale: Array1<f64>,
    /// Training record (group `training`), optional.
    pub training: Option<TrainingData>,
    /// Other root attributes (free-form strings / numbers).
    pub attrs: BTreeMap<String, AttrValue>,
    /// A single-network model's learned dissipation network N of D = ½ q̇ᵀ L Lᵀ q̇ (group
    /// `dissipation`, `kind = "learned"`, docs/SCHEMA.md, docs/DESIGN.md §22.1); optional.
    pub dissipation: Option<crate::density::Mlp>,
}

const RESERVED: &[&str] = &[
    "lgn_kind",
    "lgn_schema_version",
    "model_kind",
    "activation",
    "system",
    "arity",
    "dof",
    "n_features",
];
const TRAINING_RESERVED: &[&str] = &["seed", "data_file", "epochs"];

fn prob(p: &mut Vec<Problem>, l: impl Into<String>, m: String) {
    p.push(Problem {
        location: l.into(),
        msg: m,
    });
}

impl ModelData {
    /// Read and validate a model file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        Ctx::read_with(path.as_ref(), Self::read_ctx)
    }

    pub(crate) fn read_ctx(ctx: &mut Ctx) -> Option<Self> {
        ctx.check_kind(Kind::Model);
        let model_kind = ctx.attr_str("/", "model_kind", true);
        let activation = ctx.attr_str("/", "activation", true);
        let system = ctx.attr_str("/", "system", false);
        let arity = ctx.attr_usize("/", "arity", true);
        let dof = ctx.attr_usize("/", "dof", true);
        let n_features = ctx.attr_usize("/", "n_features", true);
        let layer_sizes = ctx.i64_1d("layer_sizes", true).and_then(|a| {
            if let Some((i, x)) = a.iter().enumerate().find(|(_, x)| **x < 1) {
                ctx.problem(
                    "/layer_sizes",
                    format!("value at index [{i}] is {x}, expected a layer width >= 1"),
                );
                return None;
            }
            Some(a.iter().map(|x| *x as usize).collect::<Vec<_>>())
        });
        let input_shift = ctx.f64_1d("input_shift", true);
        let input_scale = ctx.f64_1d("input_scale", true);
        let attrs = ctx.extra_attrs("/", RESERVED);

        let mut layers = Vec::new();
        if ctx.group("layers", true).is_some() {
            let mut i = 0;
            while ctx.exists(&format!("layers/{i}")) {
                let g = format!("layers/{i}");
                ctx.group(&g, true);
                let w = ctx.f64_2d(&format!("{g}/weight"), true);
                let b = ctx.f64_1d(&format!("{g}/bias"), true);
                if let (Some(weight), Some(bias)) = (w, b) {
                    layers.push(LayerData { weight, bias });
                }
                i += 1;
            }
            let members = ctx
                .file
                .group("layers")
                .and_then(|g| g.member_names())
                .unwrap_or_default();
            if let Some(m) = members
                .iter()
                .find(|m| m.parse::<usize>().map_or(true, |k| k >= i))
            {
                ctx.problem(
                    format!("/layers/{m}"),
                    if i == 0 {
                        "unexpected member: the layers group must hold groups named 0, 1, … (consecutive, from 0), and it has no layer 0".to_string()
                    } else {
                        format!(
                            "unexpected member: the layers group must hold groups named 0, 1, … (consecutive); found 0..{}",
                            i - 1
                        )
                    },
                );
            }
        }

        let training = if ctx.group("training", false).is_some() {
            let seed = ctx.attr_u64("training", "seed", true);
            let data_file = ctx.attr_str("training", "data_file", true);
            let epochs = ctx.attr_u64("training", "epochs", true);
            let loss = ctx.f64_1d_any("training/loss_history", true);
            let val = ctx.f64_1d_any("training/val_loss_history", true);
            let tattrs = ctx.extra_attrs("training", TRAINING_RESERVED);
            Some(TrainingData {
                seed: seed?,
                data_file: data_file?,
                epochs: epochs?,
                loss_history: loss?,
                val_loss_history: val?,
                attrs: tattrs,
            })
        } else {
            None
        };
        let dissipation = if ctx.exists("dissipation") {
            match ctx.attr_str("dissipation", "kind", true).as_deref() {
                Some("learned") => crate::model::file::read_net_out(ctx, "dissipation", None),
                Some(k) => {
                    ctx.problem(
                        "/dissipation@kind",
                        format!("'{k}' is not 'learned' (the only dissipation network of a single-network model)"),
                    );
                    None
                }
                None => None,
            }
        } else {
            None
        };
        if !ctx.ok() {
            return None;
        }
        let m = ModelData {
            model_kind: model_kind?,
            activation: activation?,
            system,
            arity: arity?,
            dof: dof?,
            n_features: n_features?,
            layer_sizes: layer_sizes?,
            layers,
            input_shift: input_shift?,
            input_scale: input_scale?,
            training,
            attrs,
            dissipation,
        };
        let problems = m.problems();
        let bad = !problems.is_empty();
        ctx.problems.extend(problems);
        if bad {
            None
        } else {
            Some(m)
        }
    }

    /// Consistency checks on the in-memory model.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if !MODEL_KINDS.contains(&self.model_kind.as_str()) {
            prob(
                &mut p,
                "/@model_kind",
                format!("is '{}', expected one of {MODEL_KINDS:?}", self.model_kind),
            );
        }
        if !ACTIVATIONS.contains(&self.activation.as_str()) {
            prob(
                &mut p,
                "/@activation",
                format!("is '{}', expected one of {ACTIVATIONS:?}", self.activation),
            );
        }
        if self.arity == 0 {
            prob(&mut p, "/@arity", "is 0, expected >= 1".into());
        }
        if self.dof == 0 {
            prob(&mut p, "/@dof", "is 0, expected >= 1".into());
        }
        let sizes = &self.layer_sizes;
        if sizes.len() < 2 {
            prob(
                &mut p,
                "/layer_sizes",
                format!("is {sizes:?}, expected at least an input and an output width"),
            );
            return p;
        }
        if let Some(i) = sizes.iter().position(|s| *s == 0) {
            prob(
                &mut p,
                "/layer_sizes",
                format!("value at index [{i}] is 0, expected a layer width >= 1"),
            );
        }
        if self.layers.len() != sizes.len() - 1 {
            prob(
                &mut p,
                "/layers",
                format!(
                    "has {} layers but layer_sizes {sizes:?} describes {}",
                    self.layers.len(),
                    sizes.len() - 1
                ),
            );
        }
        for (i, l) in self.layers.iter().enumerate() {
            if i + 1 < sizes.len() {
                let want = (sizes[i + 1], sizes[i]);
                if l.weight.dim() != want {
                    prob(
                        &mut p,
                        format!("/layers/{i}/weight"),
                        format!(
                            "has shape {:?}, expected (out, in) = {want:?} from layer_sizes",
                            l.weight.shape()
                        ),
                    );
                }
                if l.bias.len() != sizes[i + 1] {
                    prob(
                        &mut p,
                        format!("/layers/{i}/bias"),
                        format!(
                            "has length {}, expected {} from layer_sizes",
                            l.bias.len(),
                            sizes[i + 1]
                        ),
                    );
                }
            }
            if let Some(((r, c), x)) = l.weight.indexed_iter().find(|(_, x)| !x.is_finite()) {
                prob(
                    &mut p,
                    format!("/layers/{i}/weight"),
                    format!("value at index [{r}, {c}] is {x}, expected a finite number"),
                );
            }
            if let Some((r, x)) = l.bias.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                prob(
                    &mut p,
                    format!("/layers/{i}/bias"),
                    format!("value at index [{r}] is {x}, expected a finite number"),
                );
            }
        }
        for (name, a) in [
            ("/input_shift", &self.input_shift),
            ("/input_scale", &self.input_scale),
        ] {
            if a.len() != sizes[0] {
                prob(
                    &mut p,
                    name,
                    format!(
                        "has length {}, expected the input width {}",
                        a.len(),
                        sizes[0]
                    ),
                );
            }
            if let Some((r, x)) = a.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                prob(
                    &mut p,
                    name,
                    format!("value at index [{r}] is {x}, expected a finite number"),
                );
            }
        }
        if let Some((r, x)) = self
            .input_scale
            .iter()
            .enumerate()
            .find(|(_, x)| **x <= 0.0)
        {
            prob(
                &mut p,
                "/input_scale",
                format!("value at index [{r}] is {x}, expected > 0"),
            );
        }
        p
    }

    /// Write the model (atomically; an existing file is only replaced with `force`).
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_invalid(path, self.problems())?;
        guard(path, || {
            let out = Out::create(path, force, Kind::Model)?;
            out.attr("/", "model_kind", &AttrValue::Str(self.model_kind.clone()))?;
            out.attr("/", "activation", &AttrValue::Str(self.activation.clone()))?;
            if let Some(s) = &self.system {
                out.attr("/", "system", &AttrValue::Str(s.clone()))?;
            }
            out.attr("/", "arity", &AttrValue::Int(self.arity as i64))?;
            out.attr("/", "dof", &AttrValue::Int(self.dof as i64))?;
            out.attr("/", "n_features", &AttrValue::Int(self.n_features as i64))?;
            let sizes: Array1<i64> = self.layer_sizes.iter().map(|s| *s as i64).collect();
            out.i64("layer_sizes", &sizes)?;
            out.group("layers")?;
            for (i, l) in self.layers.iter().enumerate() {
                out.group(&format!("layers/{i}"))?;
                out.f64(&format!("layers/{i}/weight"), &l.weight)?;
                out.f64(&format!("layers/{i}/bias"), &l.bias)?;
            }
            out.f64("input_shift", &self.input_shift)?;
            out.f64("input_scale", &self.input_scale)?;
            if let Some(t) = &self.training {
                out.group("training")?;
                out.attr_u64("training", "seed", t.seed)?;
                out.attr(
                    "training",
                    "data_file",
                    &AttrValue::Str(t.data_file.clone()),
                )?;
                let epochs = i64::try_from(t.epochs).map_err(|_| {
                    Error::file_at(path, "/training@epochs", "epochs does not fit int64")
                })?;
                out.attr("training", "epochs", &AttrValue::Int(epochs))?;
                out.f64("training/loss_history", &t.loss_history)?;
                out.f64("training/val_loss_history", &t.val_loss_history)?;
                out.extra_attrs("training", &t.attrs, TRAINING_RESERVED)?;
            }
            out.extra_attrs("/", &self.attrs, RESERVED)?;
            if let Some(net) = &self.dissipation {
                out.group("dissipation")?;
                out.attr("dissipation", "kind", &AttrValue::Str("learned".into()))?;
                crate::model::file::write_net(&out, "dissipation", net)?;
            }
            out.commit().map(|_| ())
        })
    }
}
