//! What the engine requires of a model file beyond its schema shape, as [`Problem`]s: the one
//! check used both by `lgn info` and by every command that loads a model
//! ([`crate::train::load_model`]), so the two never disagree on a file.

use std::path::Path;

use super::h5::{attr_loc, Problem};
use super::{AttrValue, ModelData};
use crate::error::Error;

/// Everything that makes `md` unusable by lgn: an activation other than softplus, site
/// features, non-finite numeric parameters (e.g. `g = NaN`), a `q_period` that is not a
/// positive finite number, and whatever [`crate::train::TrainedModel::from_model_data`]
/// refuses (kind, arity, dof, layer sizes).
pub fn model_problems(md: &ModelData, path: &Path) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut add = |location: String, msg: String| p.push(Problem { location, msg });
    if md.activation != "softplus" {
        add(
            "/@activation".into(),
            format!(
                "is '{}': lgn evaluates softplus networks only",
                md.activation
            ),
        );
    }
    if md.n_features != 0 {
        add(
            "/@n_features".into(),
            format!(
                "is {}: trained models with site features are not supported (expected 0)",
                md.n_features
            ),
        );
    }
    for (k, v) in &md.attrs {
        match (k.as_str(), v) {
            ("q_period", AttrValue::Float(x)) if !(x.is_finite() && *x > 0.0) => add(
                attr_loc("/", k),
                format!("is {x}, expected a positive finite period"),
            ),
            ("q_period", AttrValue::Int(x)) if *x <= 0 => add(
                attr_loc("/", k),
                format!("is {x}, expected a positive finite period"),
            ),
            ("q_period", AttrValue::Float(_) | AttrValue::Int(_)) => {}
            ("q_period", other) => add(
                attr_loc("/", k),
                format!("is {}, expected a positive number", other.type_name()),
            ),
            (_, AttrValue::Float(x)) if !x.is_finite() => add(
                attr_loc("/", k),
                format!("parameter is {x}, expected a finite number"),
            ),
            _ => {}
        }
    }
    if p.is_empty() {
        if let Err(e) = crate::train::TrainedModel::from_model_data(md, path) {
            let (location, msg) = match e {
                Error::File { location, msg, .. } => (location.unwrap_or_else(|| "/".into()), msg),
                other => ("/".into(), other.to_string()),
            };
            p.push(Problem { location, msg });
        }
    }
    p
}
