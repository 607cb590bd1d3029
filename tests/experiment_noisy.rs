//! Issue 12: positions-only data end to end — `lgn generate --positions-only --noise`, `lgn info`,
//! `lgn train` with default flags, clear errors for bad positions, and `lgn experiment noisy
//! --quick` outcomes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn lgn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lgn"))
        .args(args)
        .output()
        .expect("run lgn")
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-noisy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn positions_only_cli_round_trip_and_errors() {
    let d = dir("cli");
    let pos = d.join("dp_pos.h5");
    let out = lgn(&[
        "generate",
        "dblpend",
        "--kind",
        "trajectories",
        "--positions-only",
        "--noise",
        "1e-3",
        "--batch",
        "4",
        "--frames",
        "81",
        "--dt",
        "0.05",
        "--omega-max",
        "1",
        "--out",
        s(&pos),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = lgn::io::PositionsData::read(&pos).unwrap();
    assert_eq!(f.q.dim(), (4, 81, 2));
    assert_eq!(f.params.get("noise"), Some(&1e-3));
    assert!(lgn::io::is_positions_only(&pos).unwrap());
    // lgn info validates it.
    let out = lgn(&["info", s(&pos)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Default flags: the weak-form objective.
    let model = d.join("m.h5");
    // A short LNN fit of the positions with `extra` flags.
    let train_lnn = |extra: &[&str]| {
        let mut a = vec![
            "train",
            "--data",
            s(&pos),
            "--model",
            "lnn",
            "--angles",
            "--epochs",
            "3",
            "--hidden",
            "16",
            "--out",
            s(&model),
        ];
        a.extend_from_slice(extra);
        lgn(&a)
    };
    let out = train_lnn(&["--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(model.exists(), "{stderr}");
    let m = lgn::train::load_model(&model).unwrap();
    assert_eq!(m.kind, lgn::train::ModelKind::Lnn);
    // --window auto (the default) chose K from the data and recorded it (docs/DESIGN.md §12.10).
    let k_of = |path: &Path| {
        let t = lgn::io::ModelData::read(path).unwrap().training.unwrap();
        match t.attrs.get("weak_half_width") {
            Some(lgn::io::AttrValue::Int(k)) => *k,
            other => panic!("weak_half_width: {other:?}"),
        }
    };
    assert!((3..=10).contains(&k_of(&model)));
    let w_args = |w: &str| train_lnn(&["--window", w, "--force"]);
    // (Three epochs of 16 units on four trajectories train no usable model; lgn train says so
    // and exits non-zero, but writes the file and its record.)
    w_args("4");
    assert_eq!(k_of(&model), 4);
    let out = w_args("auto");
    assert!(String::from_utf8_lossy(&out.stderr).contains("window: K = "));
    let out = w_args("wide");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected auto or a half-width K"));
    // The baseline by name, and accel refused on positions.
    let out = lgn(&[
        "train",
        "--data",
        s(&pos),
        "--model",
        "lnn",
        "--objective",
        "savgol",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--quiet",
        "--force",
        "--out",
        s(&model),
    ]);
    assert!(model.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = lgn(&[
        "train",
        "--data",
        s(&pos),
        "--model",
        "lnn",
        "--objective",
        "accel",
        "--quiet",
        "--force",
        "--out",
        s(&model),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("positions only"));
    // Negative noise: a clear error.
    let out = lgn(&[
        "generate",
        "dblpend",
        "--kind",
        "trajectories",
        "--positions-only",
        "--noise",
        "-1",
        "--out",
        s(&d.join("neg.h5")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--noise"));

    // Bad files written by h5py: NaN position, non-uniform t, too few frames.
    let script = format!(
        r#"
import h5py, numpy as np
t = np.arange(40) * 0.05
q = np.zeros((2, 40, 2))
for name, tt, qq in [("nan", t, q.copy()), ("nonuni", t.copy(), q), ("short", t[:10], q[:, :10])]:
    if name == "nan": qq[1, 17, 0] = np.nan
    if name == "nonuni": tt[9] += 0.01
    with h5py.File("{}/" + name + ".h5", "w") as f:
        f.attrs["lgn_kind"] = "trajectories"; f.attrs["lgn_schema_version"] = 1
        f["t"] = tt; f["q"] = qq
"#,
        d.display()
    );
    let st = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
    let train_err = |name: &str| {
        let p = d.join(format!("{name}.h5"));
        let out = lgn(&[
            "train",
            "--data",
            s(&p),
            "--model",
            "lnn",
            "--quiet",
            "--force",
            "--out",
            s(&d.join("x.h5")),
        ]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = train_err("nan");
    assert!(
        e.contains("nan.h5") && e.contains("trajectory 1, frame 17"),
        "{e}"
    );
    let e = train_err("nonuni");
    assert!(
        e.contains("nonuni.h5") && e.contains("frame 9") && e.contains("fixed time step"),
        "{e}"
    );
    let e = train_err("short");
    assert!(e.contains("short.h5") && e.contains("10 frames"), "{e}");
    let info = lgn(&["info", s(&d.join("nan.h5"))]);
    assert!(!info.status.success() || String::from_utf8_lossy(&info.stdout).contains("frame 17"));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn every_model_kind_trains_from_positions_or_says_why() {
    // The ring LGN (--model lgn) and a general stencil density on a graph file train from
    // positions-only wave data with default flags (the weak form); mlp and hnn give the reason.
    let d = dir("kinds");
    let pos = d.join("wave_pos.h5");
    let out = lgn(&[
        "generate",
        "wave1d",
        "--kind",
        "trajectories",
        "--positions-only",
        "--noise",
        "1e-3",
        "--grid",
        "12",
        "--batch",
        "4",
        "--frames",
        "60",
        "--dt",
        "0.02",
        "--out",
        s(&pos),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let train = |extra: &[&str], out_name: &str| {
        let model = d.join(out_name);
        // Few rows (2 segments of 16 windows per trajectory): small minibatches for enough steps.
        let mut a = vec![
            "train",
            "--data",
            s(&pos),
            "--epochs",
            "60",
            "--batch",
            "16",
            "--hidden",
            "32",
        ];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--quiet", "--force", "--out", s(&model)]);
        (lgn(&a), model)
    };
    let (o, model) = train(&["--model", "lgn"], "lgn.h5");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = lgn::train::load_model(&model).unwrap();
    assert_eq!(m.kind, lgn::train::ModelKind::Lgn);
    assert!(m.net.weights.iter().flatten().all(|x| x.is_finite()));
    let ring = d.join("ring.h5");
    lgn::model::SystemGraph::line(12, 1, true)
        .unwrap()
        .data
        .write(&ring, true)
        .unwrap();
    let (o, model) = train(&["--graph", s(&ring), "--density", "stencil"], "g.h5");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(model.exists());
    for kind in ["mlp", "hnn"] {
        let (o, _) = train(&["--model", kind], "x.h5");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            e.contains("weak-form") && e.contains("savgol"),
            "{kind}: {e}"
        );
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn quick_experiment_outcomes() {
    let d = dir("exp");
    let mut opts = lgn::experiment::ExperimentOptions::new(d.clone());
    opts.quick = true;
    opts.force = true;
    let r = lgn::experiment::run("noisy", &opts).unwrap();
    let m = |k: &str| *r.metrics.get(k).unwrap_or_else(|| panic!("metric {k}"));
    // Every cell exists and is finite.
    for sys in ["dblpend", "chain"] {
        for meth in ["weak", "savgol"] {
            for sig in ["0e0", "1e-3", "1e-2"] {
                let e = m(&format!("{sys}.{meth}.sigma{sig}.energy_err"));
                assert!(e.is_finite() && e >= 0.0, "{sys} {meth} {sig}: {e}");
            }
        }
    }
    // The spring chain from noisy positions (σ = 1e-3): energy drift well under the issue's 2 %;
    // at σ = 1e-2 the weak form beats the Savitzky–Golay baseline.
    assert!(m("chain.weak.sigma1e-3.energy_err") < 0.02);
    assert!(m("chain.weak.sigma1e-2.energy_err") < m("chain.savgol.sigma1e-2.energy_err"));
    assert!(m("chain.weak.sigma1e-2.pos_err") < m("chain.savgol.sigma1e-2.pos_err"));
    assert!(d.join("noisy_energy.png").exists() && d.join("metrics.md").exists());
    assert!(r.seconds < 120.0 * 3.0, "quick run took {} s", r.seconds);
    std::fs::remove_dir_all(&d).ok();
}
