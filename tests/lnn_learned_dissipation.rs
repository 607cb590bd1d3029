//! `lgn train --model lnn --dissipation learned` (docs/DESIGN.md §22): D = ½ q̇ᵀ L(q)L(q)ᵀ q̇
//! learned next to the LNN, stored in the model file, used by `lgn simulate`, and the power
//! balance E + W_diss = E₀ along the model's DP5 rollout.

use std::path::PathBuf;
use std::process::Command;

fn lgn(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lgn"))
        .args(args)
        .output()
        .expect("run lgn");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-lnn-learned-d-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn learned_lnn_dissipation_trains_is_stored_simulated_and_balanced() {
    let d = dir();
    let (data, model, out) = (d.join("s.h5"), d.join("m.h5"), d.join("t.h5"));
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let (code, err) = lgn(&[
        "generate",
        "dblpend",
        "--n",
        "600",
        "--damping",
        "0.3",
        "--seed",
        "2",
        "--out",
        &s(&data),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = lgn(&[
        "train",
        "--data",
        &s(&data),
        "--model",
        "lnn",
        "--embed-angles",
        "--dissipation",
        "learned",
        "--epochs",
        "30",
        "--hidden",
        "64",
        "--loss",
        "huber",
        "--schedule",
        "onecycle",
        "--lr",
        "3e-3",
        "--clip",
        "100",
        "--quiet",
        "--out",
        &s(&model),
    ]);
    assert_eq!(code, 0, "{err}");
    let m = lgn::train::load_model(&model).unwrap();
    let r = m
        .dissipation
        .as_ref()
        .expect("the model file holds the learned dissipation");
    assert!(lgn::train::damped::model_damping(&m).is_none());
    // R(q) symmetric positive definite at a few states.
    for q in [[0.3, -0.2], [2.0, 1.0], [-1.0, 3.0]] {
        let rq = r.matrix(&q);
        assert!((rq[1] - rq[2]).abs() < 1e-14);
        assert!(rq[0] > 0.0 && rq[0] * rq[3] - rq[1] * rq[2] > 0.0, "{rq:?}");
    }
    let (code, err) = lgn(&[
        "simulate",
        "--model",
        &s(&model),
        "--state",
        "0.3,-0.2,0.8,0.4",
        "--t-end",
        "2",
        "--dt",
        "0.02",
        "--rtol",
        "1e-12",
        "--atol",
        "1e-12",
        "--force",
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let tr = lgn::io::TrajectoryData::read(&out).unwrap();
    let nt = tr.n_frames();
    let (wd, wi) = lgn::io::inputs::read_work(&out, 1, nt)
        .unwrap()
        .expect("work datasets written for a damped model");
    let e = tr.energy.as_ref().unwrap().row(0).to_vec();
    let scale = wd.iter().fold(e[0].abs(), |m, x| m.max(x.abs()));
    let worst = (0..nt)
        .map(|k| (e[k] + wd[[0, k]] - wi[[0, k]] - e[0]).abs() / scale)
        .fold(0.0f64, f64::max);
    eprintln!(
        "learned D: power balance residual {worst:.3e} (relative), W_diss(2) = {}",
        wd[[0, nt - 1]]
    );
    assert!(worst <= 1e-8, "power balance residual {worst:.3e}");
    // W_diss = ∫ q̇ᵀ R(q) q̇ dt, against a trapezoid over the frames with R from the file.
    let p = |k: usize| {
        let q = [tr.q[[0, k, 0]], tr.q[[0, k, 1]]];
        let v = [tr.qdot[[0, k, 0]], tr.qdot[[0, k, 1]]];
        let rq = r.matrix(&q);
        (0..2)
            .map(|i| (0..2).map(|j| v[i] * rq[2 * i + j] * v[j]).sum::<f64>())
            .sum::<f64>()
    };
    let trap: f64 = (1..nt)
        .map(|k| 0.5 * (tr.t[k] - tr.t[k - 1]) * (p(k) + p(k - 1)))
        .sum();
    let w = wd[[0, nt - 1]];
    assert!(
        w > 0.0 && (trap - w).abs() < 2e-3 * w,
        "W_diss {w} vs trapezoid {trap}"
    );
    // Only lnn (and graph) models learn a dissipation network.
    let (code, err) = lgn(&[
        "train",
        "--data",
        &s(&data),
        "--model",
        "mlp",
        "--dissipation",
        "learned",
        "--epochs",
        "1",
        "--quiet",
        "--force",
        "--out",
        &s(&d.join("x.h5")),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("'mlp'"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}
