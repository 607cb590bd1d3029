//! The `lgn` binary: output format used by acceptance checks, and clean failures on bad input.

use std::process::Command;

fn lgn(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lgn"))
        // Tests write HDF5 fixtures in this process while other tests spawn lgn: HDF5 opens
        // files without O_CLOEXEC, so a concurrently spawned child can inherit a fixture's
        // flock. The children need no locking here.
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .args(args)
        .output()
        .expect("run lgn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn accel_json(args: &[&str]) -> Vec<f64> {
    let (code, out, err) = lgn(args);
    assert_eq!(code, 0, "stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    v["a"]
        .as_array()
        .expect("a")
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn accel_json_for_small_systems() {
    let a = accel_json(&["accel", "--system", "ball", "--state", "1,2,3,4", "--json"]);
    assert_eq!(a, vec![-9.8, 0.0]);
    let a = accel_json(&[
        "accel", "--system", "ball", "--state", "1,2,3,4", "--g", "3", "--json",
    ]);
    assert_eq!(a, vec![-3.0, 0.0]);
    // double pendulum at rest, θ₂ = 0: θ̈₁ = −g sin θ₁ (m₁+m₂ − m₂cos²)/(…) — compare with closed form
    let (t1, t2, w1, w2, g) = (0.5f64, 1.0f64, 0.0f64, 0.2f64, 9.8f64);
    let a = accel_json(&[
        "accel",
        "--system",
        "dblpend",
        "--state",
        "0.5,1.0,0.0,0.2",
        "--json",
    ]);
    let a1 = 0.5 * (t1 - t2).cos();
    let a2 = (t1 - t2).cos();
    let f1 = -0.5 * w2 * w2 * (t1 - t2).sin() - g * t1.sin();
    let f2 = w1 * w1 * (t1 - t2).sin() - g * t2.sin();
    let truth = [
        (f1 - a1 * f2) / (1.0 - a1 * a2),
        (f2 - a2 * f1) / (1.0 - a1 * a2),
    ];
    for i in 0..2 {
        assert!((a[i] - truth[i]).abs() < 1e-12 * truth[i].abs());
    }
    let a = accel_json(&[
        "accel",
        "--system",
        "relativistic",
        "--g",
        "2",
        "--state",
        "0.1,0.5",
        "--json",
    ]);
    let truth = 2.0 * (1.0f64 - 0.25).powf(2.5) / 1.5;
    assert!((a[0] - truth).abs() < 1e-12);
    for solver in ["banded", "sparse", "dense"] {
        let b = accel_json(&[
            "accel",
            "--system",
            "dblpend",
            "--state",
            "0.5,1.0,0.0,0.2",
            "--solver",
            solver,
            "--json",
        ]);
        assert!(
            (b[0] + 1.7405821590878738).abs() < 1e-10 && (b[1] + 6.718911100764374).abs() < 1e-10,
            "{solver}: {b:?}"
        );
    }
}

#[test]
fn accel_wave1d_from_hdf5_state() {
    let dir = std::env::temp_dir().join(format!("lgn-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.h5");
    let n = 40usize;
    let q: Vec<f64> = (0..n)
        .map(|i| (2.0 * std::f64::consts::PI * i as f64 / n as f64).sin())
        .collect();
    let v: Vec<f64> = vec![0.0; n];
    {
        let f = hdf5::File::create(&path).unwrap();
        f.new_dataset_builder().with_data(&q).create("q").unwrap();
        f.new_dataset_builder()
            .with_data(&v)
            .create("qdot")
            .unwrap();
    }
    let p = path.to_str().unwrap();
    let a = accel_json(&[
        "accel", "--system", "wave1d", "--n", "40", "--state", p, "--json",
    ]);
    let dx = 1.0 / n as f64;
    for i in 0..n {
        let t = (q[(i + 2) % n] - 2.0 * q[i] + q[(i + n - 2) % n]) / (4.0 * dx * dx);
        assert!((a[i] - t).abs() < 1e-10 * (1.0 + t.abs()));
    }
    // --n disagreeing with the file is a clear error
    let (code, _, err) = lgn(&[
        "accel", "--system", "wave1d", "--n", "41", "--state", p, "--json",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("length mismatch"), "{err}");
    // MLP density, all solvers agree
    let mut results = vec![];
    for solver in ["banded", "sparse", "dense"] {
        results.push(accel_json(&[
            "accel",
            "--system",
            "wave1d",
            "--n",
            "40",
            "--state",
            p,
            "--density",
            "mlp",
            "--hidden",
            "16",
            "--seed",
            "3",
            "--solver",
            solver,
            "--json",
        ]));
    }
    for r in &results[1..] {
        let num: f64 = r
            .iter()
            .zip(&results[0])
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let den: f64 = results[0].iter().map(|b| b * b).sum::<f64>().sqrt();
        assert!(num / den < 1e-8);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_exits_nonzero_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["accel", "--system", "dblpend", "--state", "1,2,3", "--json"],
            "equal length",
        ),
        (
            &[
                "accel", "--system", "dblpend", "--state", "1,2,3,x", "--json",
            ],
            "not a number",
        ),
        (
            &[
                "accel",
                "--system",
                "dblpend",
                "--state",
                "1,2,3,4,5,6",
                "--json",
            ],
            "length mismatch",
        ),
        (
            &[
                "accel",
                "--system",
                "dblpend",
                "--state",
                "1,nan,3,4",
                "--json",
            ],
            "not finite",
        ),
        (
            &[
                "accel",
                "--system",
                "ball",
                "--state",
                "1,2,inf,4",
                "--json",
            ],
            "not finite",
        ),
        (
            &[
                "accel",
                "--system",
                "relativistic",
                "--state",
                "0,1.2",
                "--json",
            ],
            "|qdot| < 1",
        ),
        (
            &[
                "accel",
                "--system",
                "wave1d",
                "--state",
                "/nonexistent/state.h5",
                "--json",
            ],
            "nonexistent",
        ),
        (
            &["bench", "accel", "--n", "2", "--hidden", "8", "--json"],
            "at least 3",
        ),
        (
            &["bench", "accel", "--n", "100", "--hidden", "0", "--json"],
            "positive",
        ),
    ];
    for (args, needle) in cases {
        let (code, out, err) = lgn(args);
        assert_ne!(code, 0, "{args:?} should fail");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected '{needle}' in: {err}"
        );
        assert!(
            out.is_empty(),
            "{args:?} printed to stdout on failure: {out}"
        );
    }
    // a file that is not HDF5
    let p = std::env::temp_dir().join(format!("lgn-not-h5-{}.h5", std::process::id()));
    std::fs::write(&p, "this is not hdf5").unwrap();
    let (code, _, err) = lgn(&[
        "accel",
        "--system",
        "wave1d",
        "--state",
        p.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains(p.to_str().unwrap()) && !err.contains("panicked"),
        "{err}"
    );
    std::fs::remove_file(&p).ok();
}

#[test]
fn bench_accel_prints_one_json_line() {
    let (code, out, err) = lgn(&[
        "bench",
        "accel",
        "--n",
        "500",
        "--hidden",
        "16",
        "--solver",
        "sparse",
        "--min-seconds",
        "0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["n"], 500);
    assert_eq!(v["solver"], "sparse");
    assert_eq!(v["hidden"], 16);
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    assert!(v["setup_seconds"].as_f64().unwrap() >= 0.0);
}

/// `lgn bench accel --model`: a trained ring model timed on a long ring at its training
/// spacing, and its f32 passes against f64 — a trained wave's mass matrix is definite, so the
/// f32 error stays far below issue 15's 1e-4 (measured 4.7e-6 for a 6-128-128-1 model at
/// n = 10⁵; the random benchmark network's indefinite M gives 2.2e-4, docs/DESIGN.md §20.1).
#[test]
fn bench_accel_times_a_trained_model_in_f32() {
    let dir = std::env::temp_dir().join(format!("lgn-bench-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (data, model) = (dir.join("d.h5"), dir.join("m.h5"));
    let (data, model) = (data.to_str().unwrap(), model.to_str().unwrap());
    let (code, _, err) = lgn(&[
        "generate", "wave1d", "--n", "300", "--grid", "50", "--out", data, "--force",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = lgn(&[
        "train",
        "--data",
        data,
        "--model",
        "lgn",
        "--hidden",
        "32",
        "--epochs",
        "6",
        "--shift-invariant",
        "--out",
        model,
        "--force",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let bench = |n: &str, precision: &str| {
        lgn(&[
            "bench",
            "accel",
            "--model",
            model,
            "--n",
            n,
            "--precision",
            precision,
            "--min-seconds",
            "0",
            "--json",
        ])
    };
    let (code, out, err) = bench("5000", "f32");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["n"], 5000);
    assert_eq!(v["hidden"], 32);
    assert_eq!(v["precision"], "f32");
    let (max, l2) = (
        v["rel_err_vs_f64"].as_f64().unwrap(),
        v["rel_l2_err_vs_f64"].as_f64().unwrap(),
    );
    assert!(max > 0.0, "the f32 path must differ from f64");
    assert!(
        max <= 1e-4 && l2 <= 1e-4,
        "f32 vs f64: max {max:e}, l2 {l2:e}"
    );
    let (code, out, _) = bench("5000", "f64");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["rel_err_vs_f64"].is_null() && v["seconds"].as_f64().unwrap() > 0.0);
    // the state repeats a field of the training grid: n must be a multiple of it
    let (code, out, err) = bench("5001", "f64");
    assert_ne!(code, 0);
    assert!(
        out.is_empty() && err.contains("multiple of") && err.contains("n = 50"),
        "{err}"
    );
    // ring models only; a missing file is named
    let missing = dir.join("none.h5");
    let (code, _, err) = lgn(&[
        "bench",
        "accel",
        "--model",
        missing.to_str().unwrap(),
        "--n",
        "100",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("none.h5") && !err.contains("panicked"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
