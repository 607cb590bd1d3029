//! `lgn train` on positions-only trajectories (issue 12): the weak-form objective or a
//! derivative-estimation baseline, for single-site models and graph networks.

use super::train::{
    config, progress_bar, recipe, show_progress, summarise, training_record, warn_stops, TrainArgs,
};
use lgn::io::PositionsData;
use lgn::train::positions::{self, ObjectiveKind, PositionsFit, WeakForm};
use lgn::train::{self, recipe, ModelKind};
use lgn::{Error, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The objective: `--objective`, else weak for positions-only files and accel otherwise.
pub fn objective(args: &TrainArgs) -> Result<ObjectiveKind> {
    let pos_only = lgn::io::is_positions_only(&args.data)?;
    match args.objective {
        Some(ObjectiveKind::Accel) if pos_only => Err(Error::file(
            &args.data,
            "--objective accel needs measured qdot and qddot, but this trajectories file holds positions only (t, q); use --objective weak (the default for such data), savgol or central",
        )),
        Some(o) => Ok(o),
        None if pos_only => Ok(ObjectiveKind::Weak),
        None => Ok(ObjectiveKind::Accel),
    }
}

pub fn run(args: &TrainArgs, objective: ObjectiveKind, stop: Arc<AtomicBool>) -> Result<()> {
    if lgn::io::file_kind(&args.data)? != Some(lgn::io::Kind::Trajectories) {
        return Err(Error::file(
            &args.data,
            format!(
                "--objective {} learns from trajectories sampled at a fixed step; this is not a trajectories file",
                objective.as_str()
            ),
        ));
    }
    let pos = PositionsData::read(&args.data)?;
    // docs/DESIGN.md §12.10: without --window K, the weak form's K comes from the noise level
    // estimated in the positions.
    let (form, choice) = lgn::train::window::weak_form(&pos, &args.data, objective, args.window.0)?;
    if let (Some(c), false) = (choice, args.quiet) {
        eprintln!(
            "window: K = {} (auto: estimated position noise σ ≈ {:.2e}, predicted label noise {:.2} % of the RMS acceleration {:.3e}; --window K to override)",
            c.half_width,
            c.noise,
            100.0 * c.label_noise,
            c.accel_rms
        );
    }
    let graph = args.graph.is_some() || args.mesh.is_some();
    // Samples of the objective: windows (weak) or frames with a full stencil (baselines).
    let n_est = pos.n_batch() * pos.n_frames();
    let cfg = config(args, graph, n_est, stop)?;
    let spec = PositionsFit {
        objective,
        form,
        cfg: cfg.clone(),
    };
    let bar = progress_bar(args.quiet);
    let mut on_step = |p: &train::Progress| show_progress(&bar, p);
    if graph {
        let setup = super::train_graph::setup(args)?;
        let gname = setup.file;
        // `auto`: fixed when the flagged nodes never move in the recorded positions.
        let still = |fixed: &[usize]| recipe::still_in_positions(fixed, &pos.q);
        let system = pos.system.clone().unwrap_or_default();
        let make = |states: &[&[f64]]| {
            setup.model(args, states, &still, &system, &lgn::parallel::SerialComm)
        };
        let g = &setup.graph;
        let (model, report) =
            positions::fit_graph_positions(g, &make, &pos, &args.data, &spec, &mut on_step)?;
        bar.finish_and_clear();
        warn_stops(&report);
        if report.epochs == 0 {
            if let Some(e) = &report.stopped_by_error {
                return Err(Error::input(format!(
                    "training failed in its first epoch, nothing written: {e}"
                )));
            }
        }
        if model.params().iter().any(|x| !x.is_finite()) {
            return Err(Error::input(
                "training diverged (non-finite parameters); lower --lr; nothing was written",
            ));
        }
        let rec = positions_record(args, &cfg, &report, objective, &form);
        model.save(&args.out, Some(&rec), args.force)?;
        eprintln!(
            "{} on {} from positions (objective {}): boundary nodes {}",
            model.describe(),
            gname.display(),
            objective.as_str(),
            model.boundary.as_str()
        );
        return summarise(args, "lgn", &cfg, &report);
    }
    let kind = args
        .model
        .ok_or_else(|| Error::input("--model is required without --graph or --mesh"))?;
    let d = pos.dim();
    let system = pos.system.clone().unwrap_or_default();
    if args.angles && kind == ModelKind::Lgn {
        return Err(Error::input(
            "--angles applies to single-site models (lnn, mlp, hnn), not to lgn",
        ));
    }
    let mut params = pos.params.clone();
    params.remove("noise");
    let velocity = train::HnnCoords::Velocity;
    let mut model = recipe(args).net_model(kind, &system, &params, d, velocity, args.angles)?;
    if args.embed_angles {
        // docs/DESIGN.md §14.6, §12.9: the network sees (cos q, sin q, q̇).
        model.set_angle_embedding(args.seed)?;
    }
    let (best, report) =
        positions::fit_lnn_positions(model, &pos, &args.data, &spec, &mut on_step)?;
    bar.finish_and_clear();
    warn_stops(&report);
    if report.epochs == 0 {
        if let Some(e) = &report.stopped_by_error {
            return Err(Error::input(format!(
                "training failed in its first epoch, nothing written: {e}"
            )));
        }
    }
    if best.net.weights.iter().flatten().any(|x| !x.is_finite()) {
        return Err(Error::input(
            "training diverged (non-finite weights); lower --lr; nothing was written",
        ));
    }
    let rec = positions_record(args, &cfg, &report, objective, &form);
    best.save(&args.out, Some(rec), args.force)?;
    summarise(args, kind.as_str(), &cfg, &report)
}

/// The model file's training record of a positions fit: the usual record plus the objective
/// and, for the weak form, the half-width K it used (given or chosen, docs/DESIGN.md §12.10).
fn positions_record(
    args: &TrainArgs,
    cfg: &lgn::train::TrainConfig,
    report: &train::TrainReport,
    objective: ObjectiveKind,
    form: &WeakForm,
) -> lgn::io::TrainingData {
    let mut rec = training_record(args, cfg, report);
    rec.attrs.insert(
        "objective".into(),
        lgn::io::AttrValue::Str(objective.as_str().into()),
    );
    if objective == ObjectiveKind::Weak {
        rec.attrs.insert(
            "weak_half_width".into(),
            lgn::io::AttrValue::Int(form.half_width as i64),
        );
    }
    rec
}
