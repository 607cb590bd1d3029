//! The training loop, model files and the `lgn train` / `lgn accel --model` CLI.

use lgn::io::SamplesData;
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use lgn::train::{self, HnnCoords, ModelKind, TrainConfig, TrainedModel};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::process::Command;

fn dblpend_samples(n: usize, seed: u64) -> SamplesData {
    let mut dy = systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut q, mut v, mut a) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let qs: Vec<f64> = (0..2).map(|_| rng.random_range(-1.5..1.5)).collect();
        let vs: Vec<f64> = (0..2).map(|_| rng.random_range(-1.0..1.0)).collect();
        a.extend(dy.accelerations(&qs, &vs).unwrap());
        q.extend(qs);
        v.extend(vs);
    }
    let mut params = BTreeMap::new();
    params.insert("g".to_string(), 9.8);
    SamplesData {
        system: Some("dblpend".into()),
        params,
        q: Array2::from_shape_vec((n, 2), q).unwrap(),
        qdot: Array2::from_shape_vec((n, 2), v).unwrap(),
        qddot: Array2::from_shape_vec((n, 2), a).unwrap(),
        weights: None,
    }
}

fn run_train(
    kind: ModelKind,
    raw: &SamplesData,
    epochs: usize,
) -> (TrainedModel, train::TrainReport) {
    let data = train::prepare_samples(kind, raw, HnnCoords::Velocity).unwrap();
    let mut m = TrainedModel::init(kind, "dblpend", 2, 32, 2, 1).unwrap();
    train::fit_normalisation(&mut m, &data);
    let cfg = TrainConfig {
        epochs,
        batch: 32,
        lr: 1e-3,
        schedule: train::Schedule::Onecycle,
        clip: Some(100.0),
        val_fraction: 0.2,
        seed: 5,
        ..TrainConfig::default()
    };
    train::train(m, &data, &cfg, &mut |_| {}).unwrap()
}

#[test]
fn training_reduces_loss_and_is_deterministic() {
    let raw = dblpend_samples(320, 1);
    for kind in [ModelKind::Lnn, ModelKind::Mlp, ModelKind::Hnn] {
        let (m1, r1) = run_train(kind, &raw, 20);
        let (m2, r2) = run_train(kind, &raw, 20);
        assert_eq!(
            r1.loss_history, r2.loss_history,
            "{kind:?} not deterministic"
        );
        assert_eq!(m1.net, m2.net);
        assert!(
            r1.stopped_by_error.is_none(),
            "{kind:?}: {:?}",
            r1.stopped_by_error
        );
        let first = r1.loss_history[0];
        let last = *r1.loss_history.last().unwrap();
        println!(
            "{kind:?}: loss {first:.4e} → {last:.4e}, best val {:.4e} {:?} {:?}",
            r1.best_val_loss, r1.loss_history, r1.val_loss_history
        );
        // LNN training losses spike where the learned M is nearly singular; judge by validation.
        let v0 = r1.val_loss_history[0];
        assert!(
            r1.best_val_loss < 0.85 * v0,
            "{kind:?}: validation loss {v0} → best {} (train {first} → {last})",
            r1.best_val_loss
        );
        assert_eq!(r1.val_loss_history.len(), 20);
        assert!(r1.best_val_loss <= r1.val_loss_history[0]);
    }
}

#[test]
fn model_file_round_trip_and_cli() {
    let dir = std::env::temp_dir().join(format!("lgn_train_test_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("samples.h5");
    dblpend_samples(200, 2).write(&data, true).unwrap();
    let out = dir.join("model.h5");
    let exe = env!("CARGO_BIN_EXE_lgn");
    let o = Command::new(exe)
        .env("HDF5_USE_FILE_LOCKING", "FALSE") // see tests/cli.rs
        .args(["train", "--data"])
        .arg(&data)
        .args(["--model", "lnn", "--out"])
        .arg(&out)
        .args([
            "--hidden", "16", "--epochs", "30", "--batch", "20", "--lr", "3e-3", "--quiet",
            "--force",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(summary["epochs"], 30);
    assert_eq!(summary["no_better_than_zero"], false);
    assert!(summary["best_val_loss"].as_f64().unwrap().is_finite());

    // The library loads it and the CLI uses it.
    let m = train::load_model(&out).unwrap();
    assert_eq!(m.kind, ModelKind::Lnn);
    let a_lib = m
        .predict(&[0.3, -0.2], &[0.1, 0.4], SolverKind::Auto)
        .unwrap();
    let o = Command::new(exe)
        .env("HDF5_USE_FILE_LOCKING", "FALSE") // see tests/cli.rs
        .args(["accel", "--model"])
        .arg(&out)
        .args(["--state", "0.3,-0.2,0.1,0.4", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let a_cli: Vec<f64> = serde_json::from_value(j["a"].clone()).unwrap();
    for (x, y) in a_lib.iter().zip(&a_cli) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + x.abs()));
    }

    // Existing output without --force, data that does not fit the model, NaN data: clear errors.
    let o = Command::new(exe)
        .env("HDF5_USE_FILE_LOCKING", "FALSE") // see tests/cli.rs
        .args(["train", "--data"])
        .arg(&data)
        .args(["--model", "lnn", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let o = Command::new(exe)
        .env("HDF5_USE_FILE_LOCKING", "FALSE") // see tests/cli.rs
        .args(["train", "--data"])
        .arg(&data)
        .args(["--model", "lgn", "--force", "--out"])
        .arg(dir.join("x.h5"))
        .output()
        .unwrap();
    // The data's `system` attribute never blocks a model; a 2-coordinate state is no ring.
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 3 nodes"));
    let mut bad = dblpend_samples(10, 3);
    bad.qddot[[4, 1]] = f64::NAN;
    let msg = train::prepare_samples(ModelKind::Lnn, &bad, HnnCoords::Velocity)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("sample 4") && msg.contains("finite"), "{msg}");
    let empty = train::Samples::new(4, 2, vec![], vec![], None)
        .unwrap_err()
        .to_string();
    assert!(empty.contains("empty"), "{empty}");
    let o = Command::new(exe)
        .env("HDF5_USE_FILE_LOCKING", "FALSE") // see tests/cli.rs
        .args(["accel", "--model"])
        .arg(&out)
        .args(["--state", "0.3,-0.2,0.1"])
        .output()
        .unwrap();
    assert!(!o.status.success());

    // --angles and --mass-penalty: the model file records q_period = 2π (and `accel` with it
    // sees q and q + 2π alike); a bad penalty weight or --angles with lgn is refused.
    let ang = dir.join("angles.h5");
    let run = |extra: &[&str], out: &std::path::Path| {
        Command::new(exe)
            .env("HDF5_USE_FILE_LOCKING", "FALSE") // see tests/cli.rs
            .args(["train", "--data"])
            .arg(&data)
            .args(["--out"])
            .arg(out)
            .args([
                "--hidden", "16", "--epochs", "30", "--batch", "20", "--lr", "3e-3", "--quiet",
                "--force",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(
        &["--model", "lnn", "--angles", "--mass-penalty", "100"],
        &ang,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = train::load_model(&ang).unwrap();
    assert_eq!(m.q_period(), Some(2.0 * std::f64::consts::PI));
    let accel = |state: &str| -> Vec<f64> {
        let o = Command::new(exe)
            .env("HDF5_USE_FILE_LOCKING", "FALSE")
            .args(["accel", "--model"])
            .arg(&ang)
            .args(["--state", state, "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        serde_json::from_value(j["a"].clone()).unwrap()
    };
    let (a0, a1) = (
        accel("0.3,-0.2,0.1,0.4"),
        accel("6.583185307179586,-0.2,0.1,0.4"),
    );
    assert!(
        (a0[0] - a1[0]).abs() < 1e-9 && (a0[1] - a1[1]).abs() < 1e-9,
        "{a0:?} vs {a1:?}"
    );
    let o = run(
        &["--model", "lnn", "--mass-penalty", "0"],
        &dir.join("y.h5"),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--mass-penalty"));
    let o = run(
        &["--model", "mlp", "--mass-penalty", "1"],
        &dir.join("y.h5"),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("lnn"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hnn_momentum_coordinates() {
    let raw = dblpend_samples(50, 4);
    let d = train::prepare_samples(ModelKind::Hnn, &raw, HnnCoords::Momentum).unwrap();
    // For the double pendulum p = M(q) q̇; check the first sample against the analytic M.
    let (q, v) = (raw.q.row(0), raw.qdot.row(0));
    let c = (q[0] - q[1]).cos();
    let p0 = 2.0 * v[0] + c * v[1];
    let p1 = v[1] + c * v[0];
    let row = d.input_row(0);
    assert!(
        (row[2] - p0).abs() < 1e-12 && (row[3] - p1).abs() < 1e-12,
        "{row:?}"
    );
}

/// A sample whose learned mass matrix is singular (here: a huge velocity saturates every
/// softplus but the one nearest its kink, so ∂²L/∂q̇² is numerically rank one) is dropped from its minibatch instead of stopping
/// training; the other samples keep training the model.
#[test]
fn singular_mass_sample_is_dropped_not_fatal() {
    let good = dblpend_samples(320, 1);
    let mut bad = good.clone();
    let n = good.q.nrows();
    let ext = |a: &Array2<f64>, row: [f64; 2]| {
        let mut v: Vec<f64> = a.iter().copied().collect();
        v.extend(row);
        Array2::from_shape_vec((n + 1, 2), v).unwrap()
    };
    bad.q = ext(&good.q, [0.1, 0.2]);
    bad.qdot = ext(&good.qdot, [1e4, -1e4]);
    bad.qddot = ext(&good.qddot, [0.0, 0.0]);
    let dgood = train::prepare_samples(ModelKind::Lnn, &good, HnnCoords::Velocity).unwrap();
    let dbad = train::prepare_samples(ModelKind::Lnn, &bad, HnnCoords::Velocity).unwrap();
    let mut m = TrainedModel::init(ModelKind::Lnn, "dblpend", 2, 32, 2, 1).unwrap();
    train::fit_normalisation(&mut m, &dgood);
    let cfg = TrainConfig {
        epochs: 6,
        batch: 64,
        lr: 1e-3,
        schedule: train::Schedule::Onecycle,
        clip: Some(100.0),
        val_fraction: 0.0,
        seed: 5,
        ..TrainConfig::default()
    };
    let (_, r) = train::train(m.clone(), &dbad, &cfg, &mut |_| {}).unwrap();
    assert!(r.stopped_by_error.is_none(), "{:?}", r.stopped_by_error);
    assert_eq!(r.epochs, 6);
    assert_eq!(r.dropped_samples, 6, "one drop per epoch");
    assert!(
        r.loss_history[5] < r.loss_history[0],
        "{:?}",
        r.loss_history
    );
    // Deterministic.
    let (_, r2) = train::train(m, &dbad, &cfg, &mut |_| {}).unwrap();
    assert_eq!(r.loss_history, r2.loss_history);
}
