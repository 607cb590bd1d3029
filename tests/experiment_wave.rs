//! `lgn experiment wave1d --quick` and `lgn demo`: outcomes, files, report.

use lgn::experiment::{self, ExperimentOptions};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-exp-wave-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn wave1d_quick_outcomes_and_files() {
    let out = tmp("quick");
    let opts = ExperimentOptions {
        out: out.clone(),
        quick: true,
        seed: 0,
        force: true,
        observer: Default::default(),
    };
    let r = experiment::run("wave1d", &opts).unwrap();
    let m = |k: &str| *r.metrics.get(k).unwrap_or_else(|| panic!("no metric {k}"));
    println!("{:#?}", r.metrics);
    // The quick network is trained briefly: looser bounds than the default run's targets, but
    // far below what an untrained or unstable model gives (relative errors ~1, drift ≫ 1).
    assert!(m("accel_rel_error_heldout") < 0.1, "{:?}", r.metrics);
    assert!(m("energy_drift") < 0.1, "{:?}", r.metrics);
    assert!(m("rel_l2_error").is_finite(), "{:?}", r.metrics);
    let zd = m("zeroshot_n1000_dx0.01_energy_drift");
    let zl = m("zeroshot_n1000_dx0.01_rel_l2_error");
    assert!(zd < 0.1 && zl.is_finite(), "{:?}", r.metrics);
    for f in [
        "metrics.json",
        "metrics.md",
        "model.h5",
        "samples.h5",
        "truth_n100.h5",
        "lgn_n100.h5",
        "truth_n1000.h5",
        "lgn_n1000.h5",
        "spacetime.png",
        "spacetime_n1000.png",
        "energy.png",
        "loss.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(j["experiment"], "wave1d");
    assert!(j["metrics"]["energy_drift"].as_f64().unwrap().is_finite());
    // The model file loads and simulates on any ring size.
    let model = lgn::train::load_model(out.join("model.h5")).unwrap();
    let t = lgn::io::TrajectoryData::read(out.join("lgn_n1000.h5")).unwrap();
    assert_eq!(t.dim(), 1000);
    assert!(model
        .dynamics(Some(37), lgn::solve::SolverKind::Auto)
        .is_ok());
    // No overwrite without force.
    let again = ExperimentOptions {
        force: false,
        ..opts
    };
    assert!(experiment::run("wave1d", &again).is_err());
    std::fs::remove_dir_all(&out).ok();
}
