//! CLI: lgn generate, lgn simulate, lgn accel --system wave1d-standard.

use std::path::PathBuf;
use std::process::Command;

fn lgn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lgn"));
    // Tests write HDF5 fixtures in this process while other tests spawn lgn: HDF5 opens
    // files without O_CLOEXEC, so a concurrently spawned child can inherit a fixture's
    // flock. The children need no locking here.
    c.env("HDF5_USE_FILE_LOCKING", "FALSE");
    c
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-cli-sim-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn generate_all_systems_and_refuse_overwrite() {
    let d = dir();
    let cases: &[&[&str]] = &[
        &["dblpend", "--n", "50"],
        &[
            "dblpend",
            "--kind",
            "trajectories",
            "--batch",
            "2",
            "--frames",
            "11",
            "--dt",
            "0.1",
        ],
        &["relativistic", "--n", "50", "--g-range", "0,1"],
        &[
            "relativistic",
            "--kind",
            "trajectories",
            "--batch",
            "2",
            "--frames",
            "11",
        ],
        &["wave1d", "--n", "12", "--grid", "32"],
        &[
            "wave1d",
            "--kind",
            "trajectories",
            "--batch",
            "1",
            "--frames",
            "5",
            "--dt",
            "0.01",
            "--grid",
            "32",
        ],
    ];
    for (i, args) in cases.iter().enumerate() {
        let out = d.join(format!("g{i}.h5"));
        ok(lgn().arg("generate").args(*args).arg("--out").arg(&out));
        let info = lgn().arg("info").arg(&out).output().unwrap();
        assert!(info.status.success());
        assert!(String::from_utf8_lossy(&info.stdout).contains("schema: valid"));
        let again = lgn()
            .arg("generate")
            .args(*args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    }
    let bad = lgn()
        .args(["generate", "dblpend", "--g-range", "0,1", "--out"])
        .arg(d.join("bad.h5"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn simulate_writes_a_trajectory_and_plots() {
    let d = dir();
    let out = d.join("sim.h5");
    let png = d.join("sim.png");
    for integ in ["dp5", "rk4", "midpoint"] {
        ok(lgn()
            .args(["simulate", "--system", "dblpend", "--state", "1,2,0.5,-0.3"])
            .args([
                "--t-end",
                "2",
                "--dt",
                "0.01",
                "--integrator",
                integ,
                "--quiet",
                "--force",
            ])
            .arg("--out")
            .arg(&out));
    }
    let msg = ok(lgn()
        .args([
            "simulate",
            "--system",
            "wave1d-standard",
            "--state",
            "random",
            "--n",
            "40",
        ])
        .args([
            "--t-end",
            "0.5",
            "--dt",
            "0.01",
            "--integrator",
            "verlet",
            "--step",
            "0.001",
        ])
        .args(["--quiet", "--force", "--out"])
        .arg(&out)
        .arg("--plot")
        .arg(&png));
    assert!(msg.contains("51 frames"), "{msg}");
    assert!(png.exists() && d.join("sim_energy.png").exists());
    // Errors: bad relativistic state, NaN blow-up reported cleanly.
    let e = lgn()
        .args([
            "simulate",
            "--system",
            "relativistic",
            "--state",
            "0,1.5",
            "--t-end",
            "1",
        ])
        .args(["--dt", "0.1", "--force", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("|qdot| < 1"));
    let e = lgn()
        .args([
            "simulate",
            "--system",
            "wave1d-standard",
            "--state",
            "random",
            "--n",
            "40",
        ])
        .args([
            "--t-end",
            "50",
            "--dt",
            "0.1",
            "--integrator",
            "rk4",
            "--quiet",
            "--force",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        !e.status.success(),
        "rk4 with dt = 0.1 must blow up on a 40-point wave"
    );
    let s = String::from_utf8_lossy(&e.stderr);
    assert!(
        s.contains("integration failed") || s.contains("not finite"),
        "{s}"
    );
}

#[test]
fn accel_knows_wave1d_standard() {
    let d = dir();
    let st = d.join("state.h5");
    let f = hdf5::File::create(&st).unwrap();
    let q = [0.0, 1.0, 0.0, 0.0];
    f.new_dataset_builder()
        .with_data(&q[..])
        .create("q")
        .unwrap();
    f.new_dataset_builder()
        .with_data(&[0.0; 4][..])
        .create("qdot")
        .unwrap();
    drop(f);
    let out = lgn()
        .args(["accel", "--system", "wave1d-standard", "--json", "--state"])
        .arg(&st)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a: Vec<f64> = serde_json::from_value(v["a"].clone()).unwrap();
    // dx = 1/4: (φ_{i+1} − 2φ_i + φ_{i−1}) · 16
    let want = [16.0, -32.0, 16.0, 0.0];
    for (x, y) in a.iter().zip(want) {
        assert!((x - y).abs() < 1e-10, "{a:?}");
    }
}
