//! Checks of a command's result before it is written: a diverged training is a failure, not
//! a model file with weights of ±1e300 and a reported loss of 0.

use lgn::io::SamplesData;
use lgn::limits::num;
use lgn::solve::SolverKind;
use lgn::train::{HnnCoords, ModelKind, TrainReport, TrainedModel};
use lgn::{Error, Result};
use std::path::Path;

/// How many samples (evenly spread over the data) the trained model is evaluated on.
const PROBES: usize = 64;

/// Error unless the trained model is finite, its losses are finite, and its predictions on
/// samples of the training data are finite. `data` names the samples file in messages.
pub fn check_trained(
    model: &TrainedModel,
    report: &TrainReport,
    raw: &SamplesData,
    data: &Path,
) -> Result<()> {
    let cure = "lower --lr, add --clip, or check the data's scale; nothing was written";
    let big = model
        .net
        .weights
        .iter()
        .chain(&model.net.biases)
        .flatten()
        .fold(
            0.0f64,
            |m, x| if x.is_nan() { f64::NAN } else { m.max(x.abs()) },
        );
    if !big.is_finite() {
        return Err(Error::input(format!(
            "training diverged: the network's weights are not finite ({}); {cure}",
            num(big)
        )));
    }
    for (what, x) in [
        ("final training loss", report.final_loss),
        ("best validation loss", report.best_val_loss),
    ] {
        // An interrupted run may not have finished an epoch: no loss to judge then.
        let applies = report.epochs > 0 && (what.starts_with("final") || report.n_val > 0);
        if applies && !x.is_finite() {
            return Err(Error::input(format!(
                "training diverged: the {what} is {x} (largest weight {}); {cure}",
                num(big)
            )));
        }
    }
    if model.kind == ModelKind::Hnn && model.hnn_coords == Some(HnnCoords::Momentum) {
        return Ok(());
    }
    let n = raw.len();
    let step = n.div_ceil(PROBES).max(1);
    for i in (0..n).step_by(step) {
        let (q, v) = (raw.q.row(i).to_vec(), raw.qdot.row(i).to_vec());
        let bad = match model.predict(&q, &v, SolverKind::Auto) {
            Ok(a) => a
                .iter()
                .find(|x| !x.is_finite())
                .map(|x| format!("predicts {x}")),
            Err(e) => Some(format!("cannot predict ({e})")),
        };
        if let Some(b) = bad {
            return Err(Error::file(
                data,
                format!(
                    "training diverged: the trained model {b} for sample {i} (largest weight {}); {cure}",
                    num(big)
                ),
            ));
        }
    }
    Ok(())
}
