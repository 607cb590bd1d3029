//! `lgn train`: fit an LNN / LGN / MLP / HNN to a samples file and write a model file.

use lgn::io::{AttrValue, SamplesData, TrainingData};
use lgn::train::{
    self, HnnCoords, LossKind, MassPenalty, ModelKind, Schedule, TrainConfig, TrainedModel,
};
use lgn::{Error, Result};
use ndarray::Array1;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Train a model on (q, q̇, q̈) samples with exact gradients (adjoint through the
/// Euler–Lagrange solve for lnn/lgn).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  lgn train --data dblpend_samples.h5 --model lnn --out lnn.h5 --epochs 50 --schedule piecewise\n  lgn train --data wave_samples.h5 --model lgn --out lgn.h5 --hidden 64 --batch 16\n  lgn train --data rel.h5 --model hnn --hnn-coords momentum --out hnn.h5\n\nCtrl-C stops after the current step and writes the best model so far."
)]
pub struct TrainArgs {
    /// Samples file (datasets q, qdot, qddot: N × D; optional weights).
    #[arg(long)]
    pub data: PathBuf,
    /// Model: lnn (single-site Lagrangian), lgn (ring Lagrangian graph network, wave1d data),
    /// mlp (plain baseline), hnn (Hamiltonian baseline).
    #[arg(long, value_enum)]
    pub model: ModelKind,
    /// Output model file (HDF5).
    #[arg(long)]
    pub out: PathBuf,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Hidden layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Learning rate (peak rate for onecycle).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// L2 regularisation strength (added to the gradient as wd·θ).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Schedule::Constant)]
    pub schedule: Schedule,
    /// Clip the gradient to this global norm.
    #[arg(long)]
    pub clip: Option<f64>,
    /// Fraction held out for validation (best checkpoint chosen on it).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Seed for initialisation, split and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Loss on the predicted accelerations.
    #[arg(long, value_enum, default_value_t = LossKind::Mse)]
    pub loss: LossKind,
    /// LNN only: weight β of a penalty that keeps the learned mass matrix ∂²L/∂q̇² definite
    /// (eigenvalues of one sign, at least --mass-margin × their typical size). Off by default.
    /// Use it when rollouts hit singular or indefinite mass matrices, with a weight near the
    /// data's mean squared acceleration (≈ 1000 for the double pendulum): much smaller weights
    /// lose to the data loss in the first epochs.
    #[arg(long)]
    pub mass_penalty: Option<f64>,
    /// Relative eigenvalue margin of --mass-penalty.
    #[arg(long, default_value_t = MassPenalty::DEFAULT_MARGIN)]
    pub mass_margin: f64,
    /// The coordinates q are angles (e.g. the double pendulum): the network sees them wrapped
    /// into (−π, π], in training and whenever the model is used (model attribute q_period = 2π).
    #[arg(long)]
    pub angles: bool,
    /// HNN only: y = raw velocity or canonical momentum of the data's known system.
    #[arg(long, value_enum, default_value_t = HnnCoords::Velocity)]
    pub hnn_coords: HnnCoords,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    // SIGINT/SIGTERM/SIGHUP: stop after the current step and write the best model so far.
    let stop = Arc::new(AtomicBool::new(false));
    super::signals::set_graceful(stop.clone());
    if args.out.exists() && !args.force {
        return Err(Error::file(
            &args.out,
            "output exists; pass --force to replace it",
        ));
    }
    lgn::io::check_writable(&args.out, args.force)?;
    lgn::limits::check_mlp("--hidden/--layers", 8, args.hidden, args.layers)?;
    lgn::limits::check_alloc(
        "--batch × --hidden",
        (args.batch as u128) * (args.hidden as u128),
        64,
    )?;
    let raw = SamplesData::read(&args.data)?;
    let mut samples = train::prepare_samples(args.model, &raw, args.hnn_coords)
        .map_err(|e| Error::file(&args.data, e.to_string()))?;
    let d = raw.q.ncols();
    let system = raw.system.clone().unwrap_or_default();
    let mut model =
        TrainedModel::init(args.model, &system, d, args.hidden, args.layers, args.seed)?;
    model.params = raw.params.clone();
    if args.model == ModelKind::Lgn {
        model.params.insert("n".into(), d as f64);
    }
    if args.model == ModelKind::Hnn {
        model.hnn_coords = Some(args.hnn_coords);
    }
    if args.angles {
        if args.model == ModelKind::Lgn {
            return Err(Error::input(
                "--angles applies to single-site models (lnn, mlp, hnn), not to lgn",
            ));
        }
        model.set_q_period(2.0 * std::f64::consts::PI)?;
    }
    model.wrap_inputs(&mut samples);
    train::fit_normalisation(&mut model, &samples);

    let cfg = TrainConfig {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        weight_decay: args.weight_decay,
        schedule: args.schedule,
        clip: args.clip,
        val_fraction: args.val_fraction,
        seed: args.seed,
        loss: args.loss,
        mass_penalty: args
            .mass_penalty
            .map(|w| MassPenalty::new(w, args.mass_margin))
            .transpose()?,
        stop: stop.clone(),
    };
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(1);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps  epoch {prefix}  {msg}  ETA {eta}",
            )
            .expect("valid template"),
        );
        b
    };
    let mut on_step = |p: &train::Progress| {
        bar.set_length(p.total_steps as u64);
        bar.set_position(p.step as u64);
        bar.set_prefix(p.epoch.to_string());
        let val = p.val_loss.map_or("–".to_string(), |v| format!("{v:.4e}"));
        bar.set_message(format!(
            "loss {:.4e}  val {val}  {:.0} samples/s",
            p.loss, p.samples_per_second
        ));
    };
    let (best, report) = train::train(model, &samples, &cfg, &mut on_step)?;
    bar.finish_and_clear();
    if let Some(e) = &report.stopped_by_error {
        eprintln!("warning: training stopped early: {e}; writing the best model so far");
    }
    if report.interrupted {
        eprintln!(
            "interrupted after {} epochs; writing the best model so far",
            report.epochs
        );
    }
    let mut attrs = std::collections::BTreeMap::new();
    attrs.insert("learning_rate".into(), AttrValue::Float(args.lr));
    attrs.insert("weight_decay".into(), AttrValue::Float(args.weight_decay));
    attrs.insert("batch".into(), AttrValue::Int(args.batch as i64));
    attrs.insert("loss".into(), AttrValue::Str(args.loss.name().into()));
    attrs.insert(
        "schedule".into(),
        AttrValue::Str(format!("{:?}", args.schedule).to_lowercase()),
    );
    attrs.insert(
        "best_epoch".into(),
        AttrValue::Int(report.best_epoch as i64),
    );
    attrs.insert("val_fraction".into(), AttrValue::Float(args.val_fraction));
    if let Some(c) = args.clip {
        attrs.insert("clip".into(), AttrValue::Float(c));
    }
    let training = TrainingData {
        seed: args.seed,
        data_file: args.data.display().to_string(),
        epochs: report.epochs as u64,
        loss_history: Array1::from(report.loss_history.clone()),
        val_loss_history: Array1::from(report.val_loss_history.clone()),
        attrs,
    };
    if report.epochs == 0 {
        if let Some(e) = &report.stopped_by_error {
            return Err(Error::Singular(format!(
                "training failed in its first epoch, nothing written: {e}"
            )));
        }
    }
    // A diverged run (non-finite loss, weights or predictions) is a failure: nothing is written.
    super::checks::check_trained(&best, &report, &raw, &args.data)?;
    best.save(&args.out, Some(training), args.force)?;
    let num = |x: f64| {
        serde_json::Number::from_f64(x)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    };
    println!(
        "{}",
        serde_json::json!({
            "final_loss": num(report.final_loss),
            "best_val_loss": num(report.best_val_loss),
            "epochs": report.epochs,
            "samples_per_second": num(report.samples_per_second),
            "out": args.out.display().to_string(),
            "model": args.model.as_str(),
            "n_train": report.n_train,
            "n_val": report.n_val,
            "interrupted": report.interrupted,
        })
    );
    Ok(())
}
