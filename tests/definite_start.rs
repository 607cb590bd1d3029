//! The definite start of `train::train` (docs/DESIGN.md §21.7): an embedded double-pendulum LNN
//! whose initial learned mass matrix is indefinite at most states trains from a definite start,
//! ends definite, and reports both.

use lgn::train::definite_start::{indefinite_fraction, DefiniteStart};
use lgn::train::{self, HnnCoords, LossKind, MassPenalty, ModelKind, Schedule, TrainConfig};

#[test]
fn train_starts_and_ends_with_a_definite_mass_matrix() {
    let raw = lgn::data::dblpend_samples_bounded(6000, 9.8, 30.0, 21).unwrap();
    let samples = train::prepare_samples(ModelKind::Lnn, &raw, HnnCoords::Velocity).unwrap();
    let mean_sq = raw.qddot.iter().map(|a| a * a).sum::<f64>() / raw.qddot.len() as f64;
    // The first paper init (32 × 2, embedded) that is indefinite at most states.
    let (model, before) = (0..20)
        .map(|seed| {
            let mut m =
                train::TrainedModel::init(ModelKind::Lnn, "dblpend", 2, 32, 2, seed).unwrap();
            m.set_angle_embedding(seed).unwrap();
            train::fit_normalisation(&mut m, &samples);
            let f = indefinite_fraction(&m, &samples).unwrap();
            (m, f)
        })
        .find(|(_, f)| *f > 0.5)
        .expect("an indefinite paper init among 20 seeds");
    let pen = MassPenalty {
        definite_start: Some(DefiniteStart::default()),
        ..MassPenalty::new(mean_sq, MassPenalty::DEFAULT_MARGIN).unwrap()
    };
    let cfg = TrainConfig {
        epochs: 40,
        batch: 64,
        lr: 3e-3,
        schedule: Schedule::Onecycle,
        clip: Some(100.0),
        val_fraction: 0.1,
        seed: 1,
        loss: LossKind::Huber,
        mass_penalty: Some(pen),
        ..TrainConfig::unstabilised()
    };
    let (best, rep) = train::train(model, &samples, &cfg, &mut |_| {}).unwrap();

    let ds = rep.definite_start.expect("the definite start ran");
    assert!(ds.satisfied && ds.steps >= 1, "{ds:?}");
    assert_eq!(ds.indefinite_before, before);
    assert_eq!(ds.indefinite_after, 0.0);
    // Trained from the definite start, the model stays (nearly) definite and learns. At this
    // small size (3400 steps) the start gives no gain: the same init without it left its
    // plateau early here and reached 9.1 against 14.0 (docs/DESIGN.md §21.7); what the start
    // buys is that the plateau's length is no longer chance at full size.
    // Small data and a small network leave M indefinite in a few pockets (measured 0.7 % of
    // the states here; the experiment's full run: 0); on the plateau it is 100 %.
    let after = rep
        .indefinite_mass_fraction
        .expect("reported for an lnn with a penalty");
    assert_eq!(after, indefinite_fraction(&best, &samples).unwrap());
    assert!(
        after < 0.05,
        "indefinite at {after} of the states after training"
    );
    assert!(
        rep.best_val_loss < 0.7 * rep.zero_val_loss,
        "best validation loss {} vs zero prediction {}",
        rep.best_val_loss,
        rep.zero_val_loss
    );
    // Without a mass penalty nothing is checked or started.
    let plain = TrainConfig {
        mass_penalty: None,
        epochs: 1,
        ..cfg
    };
    let (_, rep) = train::train(best, &samples, &plain, &mut |_| {}).unwrap();
    assert!(rep.definite_start.is_none() && rep.indefinite_mass_fraction.is_none());
}

/// `lgn train --model lnn --mass-penalty W` runs the same definite start (through the CLI's
/// rank-aware path) and reports it: the steps it took and the indefinite fraction of the
/// returned model; without the penalty neither is reported.
#[test]
fn lgn_train_with_a_mass_penalty_starts_definite_and_reports_it() {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("lgn-definite-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (data, model) = (dir.join("dp.h5"), dir.join("m.h5"));
    let lgn = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lgn"))
            .env("HDF5_USE_FILE_LOCKING", "FALSE")
            .args(args)
            .output()
            .expect("run lgn");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.status.code(), stdout, stderr)
    };
    let (d, m) = (data.to_str().unwrap(), model.to_str().unwrap());
    let (code, _, err) = lgn(&["generate", "dblpend", "--n", "3000", "--out", d, "--force"]);
    assert_eq!(code, Some(0), "{err}");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            d,
            "--model",
            "lnn",
            "--hidden",
            "32",
            "--embed-angles",
            "--epochs",
            "3",
            "--out",
            m,
            "--force",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let (_, out, err) = lgn(&args);
        let line = out
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("{err}"));
        serde_json::from_str::<serde_json::Value>(line).unwrap()
    };
    let v = train(&["--mass-penalty", "1000"]);
    let steps = v["definite_start_steps"]
        .as_u64()
        .expect("definite_start_steps");
    assert!(steps >= 1, "this paper init starts indefinite: {v}");
    let f = v["indefinite_mass_fraction"]
        .as_f64()
        .expect("indefinite_mass_fraction");
    assert!(f <= 0.05, "M left indefinite at {f} of the states: {v}");
    let v = train(&[]);
    assert!(v["definite_start_steps"].is_null() && v["indefinite_mass_fraction"].is_null());
    std::fs::remove_dir_all(&dir).ok();
}
