//! Issue 11 regressions: no panic, abort or hang on any input; no stray or half-written output
//! on a failure or a signal; negative numbers on the command line. Every CLI case asserts the
//! exit code, a message naming the flag or file and place, and the absence of a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lgn"));
    c.env("HDF5_USE_FILE_LOCKING", "FALSE");
    c
}

fn lgn_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = bin()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lgn");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation of"),
        "lgn {args:?} panicked or aborted: {err}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-harden-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Run a failing case: exit 1, stderr names every `needles` entry, the directory is unchanged.
fn fails(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    let before = entries(dir);
    let (code, _, err) = lgn_in(dir, args);
    assert_eq!(code, 1, "lgn {args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "lgn {args:?}: message lacks {n:?}: {err}");
    }
    assert_eq!(entries(dir), before, "lgn {args:?} left files behind");
    err
}

#[test]
fn negative_numbers_are_option_values() {
    let d = tmpdir("neg");
    let (code, out, err) = lgn_in(
        &d,
        &[
            "accel",
            "--system",
            "dblpend",
            "--state",
            "-0.5,1,0,0",
            "--g",
            "-2",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let a: Vec<f64> = v["a"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let truth = lgn::data::dblpend_accel(&[-0.5, 1.0], &[0.0, 0.0], -2.0);
    for i in 0..2 {
        assert!(
            (a[i] - truth[i]).abs() <= 1e-12 * truth[i].abs().max(1.0),
            "{a:?} vs {truth:?}"
        );
    }
    // A flag followed by a negative number is still an error (not silently swallowed).
    let (code, _, err) = lgn_in(
        &d,
        &[
            "accel", "--system", "dblpend", "--state", "0,0,0,0", "--json", "-1",
        ],
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn generator_ranges_and_overflow_are_input_errors() {
    let d = tmpdir("gen");
    fails(
        &d,
        &[
            "generate",
            "wave1d",
            "--n",
            "10",
            "--grid",
            "16",
            "--t-span=-1",
            "--out",
            "x.h5",
        ],
        &["t_span", "-1"],
    );
    fails(
        &d,
        &[
            "generate", "wave1d", "--n", "10", "--grid", "16", "--t-span", "-1e-300", "--out",
            "x.h5",
        ],
        &["t_span"],
    );
    fails(
        &d,
        &[
            "generate",
            "dblpend",
            "--n",
            "10",
            "--omega-max",
            "1e308",
            "--out",
            "x.h5",
        ],
        &["omega_max", "1e308"],
    );
    // Input problems are blamed on the input, not on the output file.
    let e = fails(
        &d,
        &[
            "generate",
            "dblpend",
            "--n",
            "10",
            "--omega-max",
            "1e300",
            "--out",
            "x.h5",
        ],
        &["omega_max"],
    );
    assert!(
        !e.contains("x.h5") && !e.contains("refusing to write"),
        "{e}"
    );
    fails(
        &d,
        &[
            "generate",
            "relativistic",
            "--n",
            "10",
            "--g-range=-1e308,1e308",
            "--out",
            "x.h5",
        ],
        &["g range", "overflows"],
    );
    fails(
        &d,
        &[
            "generate",
            "wave1d",
            "--n",
            "10",
            "--grid",
            "16",
            "--amplitude",
            "1e307",
            "--out",
            "x.h5",
        ],
        &["amplitude"],
    );
}

#[test]
fn mlp_sizes_are_checked() {
    let d = tmpdir("mlp");
    let st = [
        "accel",
        "--system",
        "dblpend",
        "--state",
        "0.5,1,0,0.2",
        "--density",
        "mlp",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        st.iter().copied().chain(extra.iter().copied()).collect()
    };
    fails(&d, &with(&["--hidden", "0"]), &["--hidden", "width 0"]);
    fails(
        &d,
        &with(&["--hidden", "1000000000000"]),
        &["--hidden", "would need", "available"],
    );
    fails(
        &d,
        &with(&["--layers", "1000000000000"]),
        &["--layers", "would need"],
    );
}

#[test]
fn huge_sizes_on_the_command_line_are_refused_before_allocating() {
    let d = tmpdir("sizes");
    let big = "1000000000000";
    for (args, flag) in [
        (
            vec!["generate", "dblpend", "--n", big, "--out", "x.h5"],
            "samples",
        ),
        (
            vec![
                "generate",
                "dblpend",
                "--kind",
                "trajectories",
                "--frames",
                big,
                "--out",
                "x.h5",
            ],
            "--frames",
        ),
        (
            vec![
                "generate",
                "dblpend",
                "--kind",
                "trajectories",
                "--batch",
                big,
                "--out",
                "x.h5",
            ],
            "trajectories",
        ),
        (
            vec!["generate", "wave1d", "--grid", big, "--out", "x.h5"],
            "wave grid",
        ),
        (vec!["bench", "train", "--batch", big], "--batch"),
        (vec!["bench", "accel", "--mesh-nodes", big], "--mesh-nodes"),
        (vec!["bench", "accel", "--n", big], "--n"),
    ] {
        fails(&d, &args, &[flag, "would need"]);
    }
    // Frames beyond the limit, and a fixed step that would never finish.
    fails(
        &d,
        &[
            "simulate",
            "--system",
            "dblpend",
            "--state",
            "1,2,0.5,-0.3",
            "--t-end",
            "1e13",
            "--dt",
            "0.01",
            "--out",
            "x.h5",
        ],
        &["--t-end", "frames"],
    );
    for integrator in ["rk4", "midpoint", "verlet"] {
        fails(
            &d,
            &[
                "simulate",
                "--system",
                "dblpend",
                "--state",
                "1,2,0.5,-0.3",
                "--t-end",
                "10",
                "--dt",
                "0.01",
                "--integrator",
                integrator,
                "--step",
                "1e-300",
                "--out",
                "x.h5",
            ],
            &["time step of 1e-300", "steps"],
        );
    }
}

#[test]
fn output_times_are_generated_not_stored() {
    use lgn::integrate::{integrate, linspace_times, Linspace, Method, OutputTimes};
    let l = Linspace { n: 1001, dt: 0.01 };
    let v = linspace_times(1001, 0.01);
    assert!((0..1001).all(|k| l.at(k).to_bits() == v[k].to_bits()));
    // A Linspace of 10¹⁴ frames costs nothing to create or check.
    assert!(Linspace {
        n: 100_000_000_000_000,
        dt: 0.01
    }
    .check()
    .is_ok());
    // The same trajectory either way.
    let mut f = |q: &[f64], _: &[f64], a: &mut [f64]| -> lgn::Result<()> {
        a[0] = -q[0];
        Ok(())
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let m = Method::Rk4 { dt: 0.001 };
    integrate(&mut f, &m, &[1.0], &[0.0], &l, |_, _, q, _| {
        a.push(q[0]);
        Ok(())
    })
    .unwrap();
    integrate(&mut f, &m, &[1.0], &[0.0], &v, |_, _, q, _| {
        b.push(q[0]);
        Ok(())
    })
    .unwrap();
    assert_eq!(a, b);
    assert!((a[1000] - 10f64.cos()).abs() < 1e-9);
}

#[test]
fn bad_parameters_are_blamed_on_the_flag() {
    let d = tmpdir("params");
    let sim = [
        "simulate",
        "--system",
        "dblpend",
        "--state",
        "1,2,0.5,-0.3",
        "--t-end",
        "1",
        "--dt",
        "0.1",
        "--out",
        "x.h5",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        sim.iter().copied().chain(extra.iter().copied()).collect()
    };
    let e = fails(&d, &with(&["--g", "NaN"]), &["--g", "NaN"]);
    assert!(!e.contains("refusing to write"), "{e}");
    fails(
        &d,
        &[
            "simulate", "--system", "wave1d", "--state", "random", "--n", "0", "--t-end", "1",
            "--dt", "0.1", "--out", "x.h5",
        ],
        &["--n", "n ≥ 3"],
    );
    fails(
        &d,
        &[
            "simulate", "--system", "wave1d", "--state", "random", "--dx", "NaN", "--t-end", "1",
            "--dt", "0.1", "--out", "x.h5",
        ],
        &["--dx"],
    );
}

#[test]
fn a_bad_plot_path_fails_before_anything_is_written() {
    let d = tmpdir("plot");
    let base = [
        "simulate",
        "--system",
        "dblpend",
        "--state",
        "1,2,0.5,-0.3",
        "--t-end",
        "1",
        "--dt",
        "0.1",
        "--out",
        "x.h5",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    fails(
        &d,
        &with(&["--plot", "no-such-dir/p.png"]),
        &["no-such-dir/p.png", "does not exist"],
    );
    std::fs::create_dir(d.join("p.png")).unwrap();
    fails(&d, &with(&["--plot", "p.png"]), &["p.png", "directory"]);
    std::fs::write(d.join("q_energy.png"), b"old").unwrap();
    fails(
        &d,
        &with(&["--plot", "q.png"]),
        &["q_energy.png", "--force"],
    );
    assert_eq!(std::fs::read(d.join("q_energy.png")).unwrap(), b"old");
    // And a rerun with a good path works (nothing was committed by the failures).
    let (code, _, err) = lgn_in(&d, &with(&["--plot", "ok.png", "--quiet"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        d.join("x.h5").exists() && d.join("ok.png").exists() && d.join("ok_energy.png").exists()
    );
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn non_regular_input_files_are_refused() {
    let d = tmpdir("fifo");
    let f = d.join("in.h5");
    mkfifo(&f);
    let fp = f.to_str().unwrap();
    // Each of these would block forever opening or reading the FIFO.
    for (args, place) in [
        (vec!["info", fp], fp),
        (vec!["accel", "--system", "dblpend", "--state", fp], fp),
        (vec!["accel", "--model", fp, "--state", "0,0,0,0"], fp),
        (
            vec![
                "accel",
                "--system",
                "graph",
                "--graph",
                fp,
                "--density",
                "mlp",
                "--state",
                "0,0",
            ],
            fp,
        ),
        (
            vec![
                "accel",
                "--system",
                "wave-mesh",
                "--mesh",
                fp,
                "--state",
                "0,0",
            ],
            fp,
        ),
        (
            vec!["train", "--data", fp, "--model", "lnn", "--out", "m.h5"],
            fp,
        ),
        (
            vec![
                "accel",
                "--system",
                "wave-mesh",
                "--mesh",
                "/dev/zero",
                "--state",
                "0,0",
            ],
            "/dev/zero",
        ),
    ] {
        let err = fails(&d, &args, &[place, "not a regular file"]);
        assert!(!err.is_empty());
    }
}

/// A chunked dataset declared with a huge shape and no data: a few KB on disk.
fn huge_dataset(path: &Path, name: &str, shape: &[usize]) {
    let f = hdf5::File::create(path).unwrap();
    f.new_dataset::<f64>()
        .chunk(shape.iter().map(|&n| n.min(1024)).collect::<Vec<_>>())
        .shape(shape)
        .create(name)
        .unwrap();
}

#[test]
fn huge_declared_datasets_are_refused_by_commands_and_info_alike() {
    let d = tmpdir("huge");
    let p = d.join("state.h5");
    huge_dataset(&p, "q", &[10_000_000_000]);
    {
        let f = open_rw(&p);
        f.new_dataset_builder()
            .with_data(&[0.0f64, 1.0])
            .create("qdot")
            .unwrap();
    }
    assert!(std::fs::metadata(&p).unwrap().len() < 100_000);
    let ps = p.to_str().unwrap();
    fails(
        &d,
        &["accel", "--system", "wave1d", "--state", ps],
        &[ps, "/q", "would need"],
    );
    // The same dataset in a samples file (train) and in info.
    let s = d.join("samples.h5");
    huge_dataset(&s, "q", &[10_000_000_000, 2]);
    let ss = s.to_str().unwrap();
    fails(
        &d,
        &["train", "--data", ss, "--model", "lnn", "--out", "m.h5"],
        &[ss, "/q", "would need"],
    );
    let (code, out, err) = lgn_in(&d, &["info", ss]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("(10000000000, 2)"), "{out}");
}

#[test]
fn graph_sizes_that_cannot_fit_are_invalid_for_info_and_accel() {
    let d = tmpdir("graph");
    let p = d.join("g.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let v: hdf5::types::VarLenUnicode = "graph".parse().unwrap();
        f.new_attr::<hdf5::types::VarLenUnicode>()
            .shape(())
            .create("lgn_kind")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
        f.new_attr::<i64>()
            .shape(())
            .create("lgn_schema_version")
            .unwrap()
            .write_scalar(&1)
            .unwrap();
        f.new_attr::<i64>()
            .shape(())
            .create("n_nodes")
            .unwrap()
            .write_scalar(&1_000_000_000_000_000_000i64)
            .unwrap();
        f.new_attr::<i64>()
            .shape(())
            .create("dof")
            .unwrap()
            .write_scalar(&1)
            .unwrap();
        let e = ndarray::arr2(&[[0i64, 1], [1, 2]]);
        f.new_dataset_builder()
            .with_data(&e)
            .create("edges")
            .unwrap();
    }
    let ps = p.to_str().unwrap();
    let (code, out, _) = lgn_in(&d, &["info", ps]);
    assert_eq!(code, 1);
    assert!(
        out.contains("/@n_nodes") && out.contains("would need"),
        "{out}"
    );
    fails(
        &d,
        &[
            "accel",
            "--system",
            "graph",
            "--graph",
            ps,
            "--density",
            "mlp",
            "--state",
            "0,0",
        ],
        &[ps, "/@n_nodes", "would need"],
    );
}

#[test]
fn many_root_attributes_and_invalid_utf8_strings() {
    let d = tmpdir("attrs");
    let p = d.join("state.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let q = ndarray::arr1(&[0.1f64, 0.2, 0.3, 0.4]);
        f.new_dataset_builder().with_data(&q).create("q").unwrap();
        f.new_dataset_builder()
            .with_data(&q)
            .create("qdot")
            .unwrap();
        for i in 0..10_000 {
            f.new_attr::<f64>()
                .shape(())
                .create(format!("p{i:05}").as_str())
                .unwrap()
                .write_scalar(&(i as f64))
                .unwrap();
        }
        // Fixed-length "ASCII" holding bytes that are not UTF-8.
        let bad = unsafe { hdf5::types::FixedAscii::<8>::from_ascii_unchecked(b"ab\xff\xfecd") };
        f.new_attr::<hdf5::types::FixedAscii<8>>()
            .shape(())
            .create("bad")
            .unwrap()
            .write_scalar(&bad)
            .unwrap();
    }
    let ps = p.to_str().unwrap();
    let (code, out, err) = lgn_in(
        &d,
        &[
            "accel",
            "--system",
            "wave1d-standard",
            "--state",
            ps,
            "--json",
        ],
    );
    // An unreadable free-form attribute makes the state unusable, for accel and info alike.
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(ps) && err.contains("/@bad") && err.contains("not valid UTF-8"),
        "{err}"
    );
    {
        let f = open_rw(&p);
        f.delete_attr("bad").unwrap();
    }
    let (code, out, err) = lgn_in(
        &d,
        &[
            "accel",
            "--system",
            "wave1d-standard",
            "--state",
            ps,
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["n_coords"], 4);
    {
        let f = open_rw(&p);
        let bad = unsafe { hdf5::types::FixedAscii::<8>::from_ascii_unchecked(b"ab\xff\xfecd") };
        f.new_attr::<hdf5::types::FixedAscii<8>>()
            .shape(())
            .create("bad")
            .unwrap()
            .write_scalar(&bad)
            .unwrap();
    }
    for json in [false, true] {
        let mut args = vec!["info", ps];
        if json {
            args.push("--json");
        }
        let (code, out, err) = lgn_in(&d, &args);
        assert_eq!(code, 1, "not an lgn file: {err}");
        assert!(out.contains("not valid UTF-8"), "{out}");
        assert!(out.contains("p09999"), "all attributes listed");
    }
}

#[test]
fn relativistic_default_g_is_the_same_everywhere() {
    let d = tmpdir("relg");
    let (code, out, err) = lgn_in(
        &d,
        &[
            "accel",
            "--system",
            "relativistic",
            "--state",
            "0,0.5",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let a = v["a"][0].as_f64().unwrap();
    assert!(
        (a - lgn::data::relativistic_accel(0.5, 1.0)).abs() < 1e-14,
        "{a}"
    );
    let (code, _, err) = lgn_in(
        &d,
        &[
            "simulate",
            "--system",
            "relativistic",
            "--state",
            "0,0.5",
            "--t-end",
            "0.1",
            "--dt",
            "0.1",
            "--out",
            "r.h5",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let t = lgn::io::TrajectoryData::read(d.join("r.h5")).unwrap();
    assert_eq!(t.qddot.unwrap()[[0, 0, 0]], a);
}

#[test]
fn generated_wave_data_is_labelled_with_its_stencil() {
    let d = tmpdir("wave");
    let (code, _, err) = lgn_in(
        &d,
        &[
            "generate", "wave1d", "--n", "20", "--grid", "16", "--out", "w.h5",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let s = lgn::io::SamplesData::read(d.join("w.h5")).unwrap();
    assert_eq!(s.system.as_deref(), Some("wave1d-standard"));
    // The label is true: q̈ is the standard stencil of q.
    let dx = 1.0 / 16.0;
    for i in 0..s.len() {
        let q = s.q.row(i).to_vec();
        let truth = lgn::data::wave_stencil(&q, dx);
        for (c, t) in truth.iter().enumerate() {
            assert!((s.qddot[[i, c]] - t).abs() <= 1e-9 * t.abs().max(1.0));
        }
    }
    assert!(lgn::data::is_wave1d_label("wave1d") && lgn::data::is_wave1d_label("wave1d-standard"));
}

#[test]
fn angle_wrap_rule_is_half_open() {
    use lgn::density::wrap_period;
    use std::f64::consts::PI;
    let p = 2.0 * PI;
    // The documented rule: q − P·floor(q/P + 1/2) ∈ [−P/2, P/2).
    assert_eq!(wrap_period(PI, p), -PI);
    assert_eq!(wrap_period(-PI, p), -PI);
    assert_eq!(wrap_period(3.0 * PI, p), -PI);
    assert_eq!(wrap_period(0.5, p), 0.5);
    for k in -50..50 {
        let x = k as f64 * 0.37;
        let w = wrap_period(x, p);
        assert!((-PI..PI).contains(&w), "{x} -> {w}");
        let turns = (x - w) / p;
        assert!((turns - turns.round()).abs() < 1e-9);
    }
}

#[test]
fn diverged_training_is_a_failure_and_writes_nothing() {
    let d = tmpdir("diverge");
    let (code, _, err) = lgn_in(&d, &["generate", "dblpend", "--n", "200", "--out", "s.h5"]);
    assert_eq!(code, 0, "{err}");
    let before = entries(&d);
    let (code, out, err) = lgn_in(
        &d,
        &[
            "train", "--data", "s.h5", "--model", "lnn", "--out", "m.h5", "--epochs", "2",
            "--hidden", "8", "--lr", "1e300", "--quiet",
        ],
    );
    assert_eq!(code, 1, "{out} {err}");
    assert!(
        err.contains("not finite") || err.contains("diverged"),
        "{err}"
    );
    assert_eq!(entries(&d), before);
}

// ------------------------------------------------------------------ signals

/// Wait until the process has installed its SIGTERM handler (bit 15 of SigCgt).
fn wait_handler(pid: u32) {
    for _ in 0..2000 {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(mask) = s.lines().find_map(|l| l.strip_prefix("SigCgt:")) {
                let m = u64::from_str_radix(mask.trim(), 16).unwrap_or(0);
                if m & (1 << (libc::SIGTERM - 1)) != 0 && m & (1 << (libc::SIGINT - 1)) != 0 {
                    return;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("lgn never installed its signal handlers");
}

/// Wait until a file whose name contains `part` exists in `dir`.
fn wait_file(dir: &Path, part: &str) {
    for _ in 0..6000 {
        if entries(dir).iter().any(|e| e.contains(part)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("no {part} in {dir:?}: {:?}", entries(dir));
}

fn kill(pid: u32, sig: i32) {
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[test]
fn signals_during_simulate_leave_nothing() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let d = tmpdir(&format!("sigsim{sig}"));
        let child = bin()
            .current_dir(&d)
            .args([
                "simulate",
                "--system",
                "dblpend",
                "--state",
                "1,2,0.5,-0.3",
                "--t-end",
                "100000",
                "--dt",
                "0.01",
                "--out",
                "x.h5",
                "--quiet",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_handler(child.id());
        wait_file(&d, ".x.h5.tmp-");
        kill(child.id(), sig);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(
            err.contains("removed the unfinished temporary file"),
            "{err}"
        );
        assert!(entries(&d).is_empty(), "left behind: {:?}", entries(&d));
    }
}

#[test]
fn signals_during_train_write_the_best_model() {
    let d = tmpdir("sigtrain");
    let (code, _, err) = lgn_in(&d, &["generate", "dblpend", "--n", "2000", "--out", "s.h5"]);
    assert_eq!(code, 0, "{err}");
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let _ = std::fs::remove_file(d.join("m.h5"));
        let child = bin()
            .current_dir(&d)
            .args([
                "train", "--data", "s.h5", "--model", "lnn", "--hidden", "16", "--out", "m.h5",
                "--epochs", "1000000", "--quiet",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_handler(child.id());
        // Let at least one epoch finish (a signal before the first epoch has no model to keep;
        // under load the data reading and the first epoch can take a while).
        std::thread::sleep(std::time::Duration::from_secs(2));
        kill(child.id(), sig);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        assert_eq!(v["interrupted"], true);
        assert!(err.contains("received"), "{err}");
        // A complete, valid model, and nothing else.
        assert_eq!(entries(&d), vec!["m.h5".to_string(), "s.h5".to_string()]);
        let (code, _, err) = lgn_in(&d, &["info", "m.h5"]);
        assert_eq!(code, 0, "{err}");
    }
    // Two signals: the second aborts; either way no temp file survives.
    let _ = std::fs::remove_file(d.join("m.h5"));
    let child = bin()
        .current_dir(&d)
        .args([
            "train", "--data", "s.h5", "--model", "lnn", "--hidden", "16", "--out", "m.h5",
            "--epochs", "1000000", "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_handler(child.id());
    kill(child.id(), libc::SIGTERM);
    kill(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let left = entries(&d);
    assert!(left.iter().all(|e| !e.contains(".tmp-")), "{left:?}");
    match out.status.code() {
        Some(143) => assert_eq!(left, vec!["s.h5".to_string()]),
        Some(0) => assert!(left.contains(&"m.h5".to_string())),
        other => panic!("exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn info_and_commands_agree_on_model_files() {
    let d = tmpdir("agree");
    let (code, _, err) = lgn_in(&d, &["generate", "dblpend", "--n", "100", "--out", "s.h5"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = lgn_in(
        &d,
        &[
            "train",
            "--data",
            "s.h5",
            "--model",
            "lnn",
            "--out",
            "m.h5",
            "--epochs",
            "100",
            "--batch",
            "10",
            "--lr",
            "3e-3",
            "--val-fraction",
            "0",
            "--hidden",
            "8",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let good = std::fs::read(d.join("m.h5")).unwrap();
    type Edit = fn(&hdf5::File);
    let edits: [(&str, &str, Edit); 4] = [
        ("/@activation", "softplus", |f| {
            f.delete_attr("activation").unwrap();
            let v: hdf5::types::VarLenUnicode = "tanh".parse().unwrap();
            f.new_attr::<hdf5::types::VarLenUnicode>()
                .shape(())
                .create("activation")
                .unwrap()
                .write_scalar(&v)
                .unwrap();
        }),
        ("/@g", "finite", |f| {
            let _ = f.delete_attr("g");
            f.new_attr::<f64>()
                .shape(())
                .create("g")
                .unwrap()
                .write_scalar(&f64::NAN)
                .unwrap();
        }),
        ("/@q_period", "period", |f| {
            let _ = f.delete_attr("q_period");
            f.new_attr::<f64>()
                .shape(())
                .create("q_period")
                .unwrap()
                .write_scalar(&-1.0)
                .unwrap();
        }),
        ("/@n_features", "features", |f| {
            f.delete_attr("n_features").unwrap();
            f.new_attr::<i64>()
                .shape(())
                .create("n_features")
                .unwrap()
                .write_scalar(&2)
                .unwrap();
        }),
    ];
    for (place, word, edit) in edits {
        std::fs::write(d.join("bad.h5"), &good).unwrap();
        edit(&open_rw(&d.join("bad.h5")));
        let (code, out, _) = lgn_in(&d, &["info", "bad.h5"]);
        assert_eq!(code, 1, "info accepted {place}: {out}");
        assert!(out.contains(place) && out.contains(word), "{out}");
        fails(
            &d,
            &["accel", "--model", "bad.h5", "--state", "0.1,0.2,0,0"],
            &["bad.h5", place],
        );
    }
    // The untouched model is valid for both.
    std::fs::write(d.join("bad.h5"), &good).unwrap();
    assert_eq!(lgn_in(&d, &["info", "bad.h5"]).0, 0);
    assert_eq!(
        lgn_in(
            &d,
            &["accel", "--model", "bad.h5", "--state", "0.1,0.2,0,0"]
        )
        .0,
        0
    );
}

#[test]
fn state_n_nodes_must_agree_with_its_length() {
    let d = tmpdir("nnodes");
    let p = d.join("st.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let q = ndarray::arr1(&[0.1f64, 0.2, 0.3, 0.4, 0.5]);
        f.new_dataset_builder().with_data(&q).create("q").unwrap();
        f.new_dataset_builder()
            .with_data(&q)
            .create("qdot")
            .unwrap();
        f.new_attr::<i64>()
            .shape(())
            .create("n_nodes")
            .unwrap()
            .write_scalar(&2)
            .unwrap();
    }
    let ps = p.to_str().unwrap();
    fails(
        &d,
        &["accel", "--system", "wave1d-standard", "--state", ps],
        &[ps, "/@n_nodes"],
    );
}

/// Found by the `hdf5` fuzz target: a damaged variable-length string (`/@lgn_kind`) makes the
/// HDF5 C library loop forever in H5T__conv_vlen → H5HG_read (h5py hangs too). The watchdog
/// turns it into an error naming the file and the attribute.
#[test]
fn a_corrupt_variable_length_attribute_is_an_error_not_a_hang() {
    let d = tmpdir("vlen");
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corrupt_vlen_hang.h5");
    let fs = f.to_str().unwrap();
    for args in [
        vec!["info", fs],
        vec!["accel", "--model", fs, "--state", "0,0,0,0"],
    ] {
        let mut child = bin()
            .current_dir(&d)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Safety net only (the watchdog fires after 10 s): never let a regression hang the
        // suite. The child is killed only while it is still unreaped (so the pid is ours).
        let pid = child.id();
        let done = std::sync::Arc::new(std::sync::Mutex::new(false));
        let d2 = done.clone();
        std::thread::spawn(move || {
            for _ in 0..1200 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if *d2.lock().unwrap() {
                    return;
                }
            }
            let g = d2.lock().unwrap();
            if !*g {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        });
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        *done.lock().unwrap() = true;
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(fs) && err.contains("lgn_kind") && err.contains("corrupt"),
            "{err}"
        );
        assert!(entries(&d).is_empty());
    }
}

#[test]
fn dropped_mesh_nodes_are_explained() {
    let d = tmpdir("meshdrop");
    // Four nodes, one triangle: node 4 is used by no triangle and is dropped on import.
    let msh = "$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n4\n1 0 0 0\n2 1 0 0\n3 0 1 0\n4 5 5 0\n$EndNodes\n$Elements\n1\n1 2 2 0 1 1 2 3\n$EndElements\n";
    std::fs::write(d.join("m.msh"), msh).unwrap();
    let st = d.join("s.h5");
    {
        let f = hdf5::File::create(&st).unwrap();
        let q = ndarray::arr1(&[0.1f64, 0.2, 0.3, 0.4]);
        f.new_dataset_builder().with_data(&q).create("q").unwrap();
        f.new_dataset_builder()
            .with_data(&q)
            .create("qdot")
            .unwrap();
    }
    fails(
        &d,
        &[
            "accel",
            "--system",
            "wave-mesh",
            "--mesh",
            "m.msh",
            "--state",
            st.to_str().unwrap(),
        ],
        &["m.msh", "dropped 1 node", "3 coordinates"],
    );
}

/// Found by the `hdf5` fuzz target: the system HDF5 library dereferences a null pointer in
/// H5A__close while iterating the attributes of this corrupt model file. lgn cannot recover,
/// but it names the file and exits 1 instead of dying with "Segmentation fault".
#[test]
fn a_crash_inside_the_hdf5_library_names_the_file() {
    let d = tmpdir("segv");
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corrupt_attr_segv.h5");
    let fs = f.to_str().unwrap();
    let out = bin().current_dir(&d).args(["info", fs]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(fs) && err.contains("corrupt"), "{err}");
    assert!(entries(&d).is_empty());
}

/// Run `lgn info FILE` with a safety net: killed after 60 s (the watchdog ends stuck attribute
/// reads after 10 s). Returns (exit code or None if killed by a signal, stderr).
fn info_guarded(dir: &Path, file: &Path) -> (Option<i32>, String) {
    let mut child = bin()
        .current_dir(dir)
        .args(["info", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::Mutex::new(false));
    let d2 = done.clone();
    std::thread::spawn(move || {
        for _ in 0..600 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if *d2.lock().unwrap() {
                return;
            }
        }
        let g = d2.lock().unwrap();
        if !*g {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    *done.lock().unwrap() = true;
    (child.wait().unwrap().code(), err)
}

/// An attribute whose dataspace declares 2⁵⁶ values in a 40 KB file: refused with its size
/// before anything is allocated (the class of the hdf5 fuzz target's aborts, exit 134).
#[test]
fn attributes_declaring_absurd_sizes_are_refused() {
    let d = tmpdir("bigattr");
    let p = d.join("a.h5");
    let marker: u64 = 0x1234;
    {
        let f = hdf5::File::create(&p).unwrap();
        let q = ndarray::arr1(&[0.1f64, 0.2]);
        f.new_dataset_builder().with_data(&q).create("q").unwrap();
        f.new_dataset_builder()
            .with_data(&q)
            .create("qdot")
            .unwrap();
        let v: Vec<f64> = (0..marker).map(|i| i as f64).collect();
        f.new_attr_builder()
            .with_data(v.as_slice())
            .create("p")
            .unwrap();
    }
    let mut bytes = std::fs::read(&p).unwrap();
    let (pat, big) = (marker.to_le_bytes(), (1u64 << 56).to_le_bytes());
    let mut hits = 0;
    for i in 0..bytes.len() - 8 {
        if bytes[i..i + 8] == pat {
            bytes[i..i + 8].copy_from_slice(&big);
            hits += 1;
        }
    }
    assert!(hits >= 1, "dataspace extent not found in the file");
    std::fs::write(&p, &bytes).unwrap();
    let (code, err) = info_guarded(&d, &p);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation of"),
        "{err}"
    );
    assert!(err.contains("a.h5"), "{err}");
    let (code, _, err) = lgn_in(
        &d,
        &["accel", "--system", "wave1d-standard", "--state", "a.h5"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a.h5"), "{err}");
}

/// Every input the hdf5 fuzz target flagged (tests/data/fuzz/: crashes and hangs inside the
/// HDF5 C library, huge allocations) gives `lgn info` a clean exit 1 naming the file: never an
/// abort (134), a panic (101), a signal death (139) or a hang.
#[test]
fn hdf5_fuzz_findings_give_clean_errors() {
    let d = tmpdir("fuzzfind");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "fixtures missing in {}", dir.display());
    for f in &files {
        let (code, err) = info_guarded(&d, f);
        assert_eq!(code, Some(1), "{}: {err}", f.display());
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            err.contains(name),
            "{}: message lacks the file: {err}",
            f.display()
        );
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation of"),
            "{}: {err}",
            f.display()
        );
        assert!(entries(&d).is_empty());
    }
}

/// Open `p` for writing in this test process. The `lgn` child that read the file a moment ago may
/// still hold HDF5's file lock while it exits (errno 11 under load): retry for up to 5 s.
fn open_rw(p: &std::path::Path) -> hdf5::File {
    let mut last = None;
    for _ in 0..50 {
        match hdf5::File::open_rw(p) {
            Ok(f) => return f,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{}: cannot open for writing: {:?}", p.display(), last)
}
