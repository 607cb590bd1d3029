//! Why training failed.

use std::fmt;

/// A training run that produced no usable model.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainError {
    /// No epoch ended with a finite loss (e.g. every minibatch hit a singular learned M).
    NoFiniteLoss {
        /// The model being trained ("lnn", "baseline", …).
        model: String,
        /// The last error seen, if any.
        cause: Option<String>,
    },
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::NoFiniteLoss { model, cause } => write!(
                f,
                "training the {model} failed in its first epoch: {}",
                cause.as_deref().unwrap_or("no finite loss")
            ),
        }
    }
}

impl std::error::Error for TrainError {}
