//! `mpirun -n R lgn train` (docs/DESIGN.md §16.3): data-parallel training on 1, 2 and 3 ranks
//! gives the parameters of the serial run to 1e-10; a rank killed mid-run ends the job quickly
//! with a clear message and leaves no output file and no temporary file.
//! Needs the `mpi` feature and Open MPI's `mpirun` (`make test-mpi`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn lgn() -> &'static str {
    env!("CARGO_BIN_EXE_lgn")
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-mpi-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `lgn ARGS` alone (ranks = 0) or under `mpirun -n ranks`, one thread per rank.
fn run(ranks: usize, args: &[&str]) -> Output {
    let mut c = if ranks == 0 {
        Command::new(lgn())
    } else {
        let mut c = lgn::parallel::mpirun(ranks).expect("mpirun on the PATH (openmpi-bin)");
        c.arg("-x").arg("RAYON_NUM_THREADS").arg(lgn());
        c
    };
    c.arg("train").args(args).env("RAYON_NUM_THREADS", "1");
    c.output().expect("start")
}

/// `lgn generate ARGS`, which must succeed.
fn generate(args: &[&str]) {
    ok(
        Command::new(lgn())
            .arg("generate")
            .args(args)
            .output()
            .unwrap(),
        "generate",
    );
}

/// `lgn train ARGS --out OUT` on `ranks` ranks (0: alone); the model file must exist (a short
/// run may end no better than zero, exit 1 after writing: the file counts).
fn train_to(ranks: usize, args: &[&str], out: &Path) {
    let o = out.to_str().unwrap();
    let mut all = args.to_vec();
    all.extend(["--quiet", "--out", o]);
    let res = run(ranks, &all);
    assert!(
        out.exists(),
        "{ranks} ranks: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn net_params(path: &Path) -> Vec<f64> {
    let m = lgn::train::load_model(path).unwrap();
    m.net
        .weights
        .iter()
        .chain(&m.net.biases)
        .flatten()
        .copied()
        .collect()
}

#[test]
fn fifty_steps_on_two_and_three_ranks_equal_one_rank() {
    let d = dir("lnn");
    let data = d.join("dp.h5");
    let data_s = data.to_str().unwrap();
    generate(&["dblpend", "--n", "400", "--seed", "3", "--out", data_s]);
    // 400 samples, no validation split, batches of 40: 10 steps per epoch, 50 steps.
    let train = |ranks: usize, out: &Path| {
        train_to(
            ranks,
            &[
                "--data",
                data_s,
                "--model",
                "lnn",
                "--hidden",
                "32",
                "--epochs",
                "5",
                "--batch",
                "40",
                "--val-fraction",
                "0",
                "--lr",
                "3e-3",
            ],
            out,
        );
        net_params(out)
    };
    let serial = train(0, &d.join("serial.h5"));
    for ranks in [1, 2, 3] {
        let p = train(ranks, &d.join(format!("r{ranks}.h5")));
        let diff = max_rel_diff(&serial, &p);
        eprintln!("lnn, {ranks} ranks vs serial: max relative parameter difference {diff:.2e}");
        assert!(diff < 1e-10, "{ranks} ranks: {diff:e}");
        // Training moved the parameters (the comparison is not between initial values).
        let init =
            lgn::train::TrainedModel::init(lgn::train::ModelKind::Lnn, "dblpend", 2, 32, 2, 0)
                .unwrap();
        let p0: Vec<f64> = init
            .net
            .weights
            .iter()
            .chain(&init.net.biases)
            .flatten()
            .copied()
            .collect();
        assert!(max_rel_diff(&p0, &p) > 1e-3);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn graph_model_on_a_mesh_from_trajectories_on_three_ranks_equals_one_rank() {
    let d = dir("mesh");
    let mesh = concat!(env!("CARGO_MANIFEST_DIR"), "/meshes/square_coarse.msh");
    let data = d.join("wm.h5");
    let data_s = data.to_str().unwrap();
    generate(&[
        "wave-mesh",
        "--mesh",
        mesh,
        "--kind",
        "trajectories",
        "--batch",
        "5",
        "--frames",
        "8",
        "--out",
        data_s,
    ]);
    let train = |ranks: usize, out: &Path| {
        train_to(
            ranks,
            &[
                "--mesh",
                mesh,
                "--data",
                data_s,
                "--hidden",
                "16",
                "--epochs",
                "5",
                "--batch",
                "4",
                "--val-fraction",
                "0.2",
            ],
            out,
        );
        lgn::model::load_graph_model(out).unwrap().params()
    };
    let serial = train(0, &d.join("serial.h5"));
    // 5 trajectories over 3 ranks: shards of 2, 2, 1 trajectories (16, 16, 8 samples).
    let p = train(3, &d.join("r3.h5"));
    let diff = max_rel_diff(&serial, &p);
    eprintln!("mesh graph model, 3 ranks vs serial: max relative parameter difference {diff:.2e}");
    assert!(diff < 1e-10, "{diff:e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The pids of the ranks that mpirun `parent` started, by rank.
fn ranks_of(parent: u32) -> Vec<(usize, u32)> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid != Some(parent) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        for kv in env.split(|&b| b == 0) {
            if let Some(r) = kv.strip_prefix(b"OMPI_COMM_WORLD_RANK=") {
                if let Ok(r) = String::from_utf8_lossy(r).parse() {
                    out.push((r, pid));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_killed_rank_ends_the_job_without_a_half_written_file() {
    let d = dir("kill");
    let data = d.join("dp.h5");
    let data_s = data.to_str().unwrap();
    generate(&["dblpend", "--n", "2000", "--out", data_s]);
    for ranks in [2, 3] {
        let out = d.join(format!("killed{ranks}.h5"));
        let mut c = lgn::parallel::mpirun(ranks).unwrap();
        c.arg("-x").arg("RAYON_NUM_THREADS").arg(lgn()).args([
            "train", "--data", data_s, "--model", "lnn", "--epochs", "100000", "--quiet", "--out",
        ]);
        c.arg(&out).env("RAYON_NUM_THREADS", "1");
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        let mpirun = child.id();
        // Wait until every rank runs, then let them train for a moment.
        let t0 = Instant::now();
        let pids = loop {
            let p = ranks_of(mpirun);
            if p.len() == ranks {
                break p;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "ranks did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_secs(3));
        let victim = pids[ranks - 1].1;
        unsafe { libc::kill(victim as i32, libc::SIGKILL) };
        let killed = Instant::now();
        let res = child.wait_with_output().unwrap();
        let took = killed.elapsed();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "{err}");
        assert!(
            took < Duration::from_secs(30),
            "the job took {took:?} to end"
        );
        assert!(
            err.contains("signal 9") || err.contains("Killed") || err.contains("rank"),
            "no clear message: {err}"
        );
        // Neither the model file nor a temporary file of it is left.
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("killed"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        eprintln!(
            "{ranks} ranks: rank {} killed, job ended after {took:.1?}",
            ranks - 1
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}
