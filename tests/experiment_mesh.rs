//! `lgn experiment mesh --quick`: learned node-mass + edge density trained on jittered squares
//! of three resolutions, zero-shot on disk_fine and lshape.

use lgn::experiment::{run, ExperimentOptions};

#[test]
fn mesh_quick_zero_shot() {
    let dir = std::env::temp_dir().join(format!("lgn-exp-mesh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = ExperimentOptions {
        out: dir.join("mesh"),
        quick: true,
        seed: 0,
        force: false,
        observer: Default::default(),
    };
    let report = run("mesh", &opts).unwrap();
    let m = &report.metrics;
    let train = m["train_mesh_accel_error"];
    let zs = m["zeroshot_mesh_accel_error"];
    let zs2 = m["zeroshot_lshape_accel_error"];
    println!("train {train:.3e}, disk_fine {zs:.3e}, lshape {zs2:.3e}, {m:?}");
    // All small, and zero-shot within 2× of the training-mesh error on both unseen meshes
    // (issue 6 target).
    assert!(train < 0.06, "training-mesh error {train}");
    assert!(
        m["train_meshes_accel_error_pooled"] < 0.06,
        "{}",
        m["train_meshes_accel_error_pooled"]
    );
    assert!(zs < 0.06, "zero-shot error {zs}");
    assert!(zs2 < 0.06, "zero-shot lshape error {zs2}");
    assert!(m["zeroshot_ratio"] < 2.0, "ratio {}", m["zeroshot_ratio"]);
    assert!(
        m["zeroshot_lshape_ratio"] < 2.0,
        "lshape ratio {}",
        m["zeroshot_lshape_ratio"]
    );
    assert!((m["zeroshot_ratio"] - zs / train).abs() < 1e-12);
    assert!((m["zeroshot_lshape_ratio"] - zs2 / train).abs() < 1e-12);
    // The learned node masses are positive and follow the lumped mass up to one overall factor
    // (the scale of a learned Lagrangian is arbitrary).
    for k in ["zeroshot_mass_ratio", "zeroshot_lshape_mass_ratio"] {
        let (lo, hi) = (m[&format!("{k}_min")], m[&format!("{k}_max")]);
        assert!(lo > 0.0 && hi / lo < 1.2, "{k}: {lo}..{hi}");
    }
    // The rollout completed; the learned model conserves its own energy (variational
    // integrator), the true energy along the learned rollout stays bounded.
    assert_eq!(m["rollout_completed_fraction"], 1.0);
    assert!(
        m["energy_drift_learned"] < 1e-4,
        "{}",
        m["energy_drift_learned"]
    );
    assert!(m["energy_drift_true"] < 0.1, "{}", m["energy_drift_true"]);
    assert!(m["energy_drift_fem_reference"] < 1e-8);
    for f in [
        "metrics.json",
        "metrics.md",
        "energy.png",
        "accel_pred_vs_true.png",
        "loss.png",
    ] {
        let p = opts.out.join(f);
        assert!(p.exists(), "{} missing", p.display());
        assert!(std::fs::metadata(&p).unwrap().len() > 0);
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(opts.out.join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(json["experiment"], "mesh");
    assert!(json["metrics"]["zeroshot_ratio"].as_f64().unwrap() < 2.0);
    let _ = std::fs::remove_dir_all(&dir);
}
