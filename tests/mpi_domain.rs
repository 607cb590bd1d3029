//! Domain-decomposed accelerations and rollouts (docs/DESIGN.md §16.5) on 1, 2 and 3 ranks.
//!
//! Run by hand (`cargo test --release --features mpi --test mpi_domain`), this binary starts
//! itself under `mpirun -n R --oversubscribe` for R = 1, 2, 3 (`LGN_MPI_CASE` names the case
//! a rank runs). Truths: the single-process engine (direct banded/sparse solve) on the same
//! system — accelerations to 1e-12 relative, energies to 1e-12, rk4 and midpoint rollouts to
//! 1e-10 — on a ring (learned stencil, CG), a coordinate-free graph (learned edge-site density,
//! CG, graph partition) and a mesh (node-edge model, diagonal M, fixed boundary, RCB). Then
//! `mpirun lgn simulate` with one rank killed mid-run: the job ends with an error, not a hang,
//! and leaves no file at --out.

use lgn::domain::{testing, DistDynamics, Partition, PartitionMethod, Subdomain};
use lgn::integrate::{self, Method, MidpointOptions};
use lgn::parallel::{self, Comm};
use std::process::Command;
use std::time::{Duration, Instant};

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale.max(f64::MIN_POSITIVE)
}

/// Owned coordinates of rank `p` (global indices, in the rank's order).
fn owned_coords(part: &Partition, p: usize, d: usize) -> Vec<usize> {
    (0..part.owner.len())
        .filter(|&i| part.owner[i] as usize == p)
        .flat_map(|i| i * d..(i + 1) * d)
        .collect()
}

/// Gather the owned pieces to a global vector on rank 0.
fn gather(c: &dyn Comm, part: &Partition, d: usize, local: &[f64], n: usize) -> Option<Vec<f64>> {
    let all = c.gather(0, local).unwrap()?;
    let mut g = vec![f64::NAN; n];
    for (p, b) in all.iter().enumerate() {
        for (k, j) in owned_coords(part, p, d).into_iter().enumerate() {
            g[j] = b[k];
        }
    }
    Some(g)
}

fn accelerations(c: &dyn Comm) {
    let mut checks = 0;
    for case in testing::cases().unwrap() {
        let mut g = case.dynamics;
        let n = g.n_coords();
        let d = g.lagrangian.dof;
        let want = g.accelerations(&case.q, &case.v).unwrap();
        let e_want = g.energy(&case.q, &case.v).unwrap();
        let methods: &[PartitionMethod] = if case.positions.is_some() {
            &[PartitionMethod::Rcb, PartitionMethod::Graph]
        } else {
            &[PartitionMethod::Graph]
        };
        for &method in methods {
            let pos = case.positions.as_ref().map(|(p, k)| (p.as_slice(), *k));
            let part = Partition::of_lagrangian(&g.lagrangian, pos, method, c.size()).unwrap();
            let sub = Subdomain::new(&g.lagrangian, g.fixed_coords(), &part, c.rank()).unwrap();
            let mine = owned_coords(&part, c.rank(), d);
            let q: Vec<f64> = mine.iter().map(|&j| case.q[j]).collect();
            let v: Vec<f64> = mine.iter().map(|&j| case.v[j]).collect();
            let mut dd = DistDynamics::new(c, sub).unwrap();
            let mut a = vec![0.0; q.len()];
            dd.accelerations_into(&q, &v, &mut a).unwrap();
            let e = dd.energy(&q, &v).unwrap();
            if let Some(ag) = gather(c, &part, d, &a, n) {
                let err = rel_err(&ag, &want);
                assert!(
                    err <= 1e-12,
                    "{} {method}: accelerations off by {err:e}",
                    case.name
                );
                assert!(
                    (e - e_want).abs() <= 1e-12 * e_want.abs(),
                    "{} {method}: energy {e} vs {e_want}",
                    case.name
                );
                println!(
                    "{} on {} ranks ({method}): accelerations {err:.1e} relative, energy {:.1e}, {} CG iterations",
                    case.name,
                    c.size(),
                    (e - e_want).abs() / e_want.abs(),
                    dd.stats.cg_iterations
                );
            }
            checks += 1;
            // Rollouts: explicit and variational, against the same integrator on one process.
            let times = integrate::linspace_times(6, 0.02);
            for m in [
                Method::Rk4 { dt: 0.01 },
                Method::Midpoint {
                    dt: 0.01,
                    opts: MidpointOptions::default(),
                },
            ] {
                let serial = integrate::solve(&mut g, &m, &case.q, &case.v, &times).unwrap();
                let dist = integrate::solve(&mut dd, &m, &q, &v, &times).unwrap();
                let k = times.len() - 1;
                let qg = gather(c, &part, d, dist.q_at(k), n);
                let vg = gather(c, &part, d, dist.v_at(k), n);
                if let (Some(qg), Some(vg)) = (qg, vg) {
                    let (eq, ev) = (rel_err(&qg, serial.q_at(k)), rel_err(&vg, serial.v_at(k)));
                    assert!(
                        eq <= 1e-10 && ev <= 1e-10,
                        "{} {method} {}: rollout off by {eq:e} (q), {ev:e} (qdot)",
                        case.name,
                        m.name()
                    );
                    println!(
                        "{} on {} ranks ({method}): {} rollout {eq:.1e} (q) {ev:.1e} (qdot) relative",
                        case.name,
                        c.size(),
                        m.name()
                    );
                }
                checks += 1;
            }
        }
    }
    println!("rank {}: {checks} checks passed", c.rank());
}

fn launch(ranks: usize, case: &str) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd: Command = parallel::mpirun(ranks).expect("mpirun on the PATH (openmpi-bin)");
    cmd.arg(exe)
        .env("LGN_MPI_CASE", case)
        .env("LGN_MPI_TIMEOUT", "60");
    cmd.output().expect("mpirun starts")
}

/// A mesh model file and a state file for `lgn simulate` in `dir`.
fn simulate_inputs(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let case = testing::mesh(40).unwrap();
    let model = dir.join("mesh_model.h5");
    case.model.save(&model, None, true).unwrap();
    let state = dir.join("state.h5");
    let f = hdf5::File::create(&state).unwrap();
    f.new_dataset_builder()
        .with_data(&case.q)
        .create("q")
        .unwrap();
    f.new_dataset_builder()
        .with_data(&case.v)
        .create("qdot")
        .unwrap();
    (model, state)
}

/// `mpirun -n 3 lgn simulate`, and the same with rank 1 killed by SIGKILL mid-run.
fn simulate_and_kill() {
    let dir = std::env::temp_dir().join(format!("lgn_mpi_domain_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (model, state) = simulate_inputs(&dir);
    let lgn = env!("CARGO_BIN_EXE_lgn");
    // `lgn simulate` on `ranks` ranks (1: without mpirun).
    let run = |ranks: usize, out: &std::path::Path, t_end: &str| {
        let mut cmd = if ranks == 1 {
            Command::new(lgn)
        } else {
            let mut c = parallel::mpirun(ranks).unwrap();
            c.arg(lgn);
            c
        };
        cmd.args(["simulate", "--model"])
            .arg(&model)
            .arg("--state")
            .arg(&state)
            .args(["--t-end", t_end, "--dt", "0.01", "--integrator", "verlet"])
            .args(["--quiet", "--force", "--out"])
            .arg(out)
            .env("LGN_MPI_TIMEOUT", "20");
        cmd
    };
    // A full run on 3 ranks equals the 1-process run frame by frame.
    let one = dir.join("one.h5");
    let out = run(1, &one, "0.2").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let three = dir.join("three.h5");
    let out = run(3, &three, "0.2").output().unwrap();
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{se}");
    assert!(se.contains("on 3 ranks"), "{se}");
    assert!(lgn::io::xdmf::sidecar_path(&three).exists());
    let (a, b) = (
        lgn::io::TrajectoryData::read(&one).unwrap(),
        lgn::io::TrajectoryData::read(&three).unwrap(),
    );
    let (qa, qb): (Vec<f64>, Vec<f64>) =
        (a.q.iter().copied().collect(), b.q.iter().copied().collect());
    assert_eq!(qa.len(), qb.len());
    let err = rel_err(&qb, &qa);
    assert!(err <= 1e-12, "3-rank trajectory off by {err:e}");
    println!("mpirun -n 3 lgn simulate equals one process: {err:.1e} relative");

    // Kill rank 1 mid-run: the job ends with an error within the timeout, nothing at --out.
    let killed = dir.join("killed.h5");
    let mut child = run(2, &killed, "1000")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let victim = loop {
        assert!(t.elapsed() < Duration::from_secs(60), "no rank 1 appeared");
        if let Some(p) = find_rank(child.id(), 1) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let it get into the rollout (the temporary output exists), then kill it.
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the job hung after a rank was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut se = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut se).unwrap();
    assert!(!status.success(), "{se}");
    // mpirun names the dead rank and its signal.
    let why = se
        .lines()
        .find(|l| l.contains("signal 9"))
        .unwrap_or_else(|| panic!("no clear error: {se}"));
    assert!(!killed.exists(), "a killed run left {}", killed.display());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("killed.h5.tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    println!(
        "a killed rank ends mpirun lgn simulate in {:.1?} with {status}, no output left: {}",
        t.elapsed(),
        why.trim()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pid of the `lgn` process of MPI rank `rank` below process `root`.
fn find_rank(root: u32, rank: usize) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let env = String::from_utf8_lossy(&env);
        let mine = env
            .split('\0')
            .any(|v| v == format!("OMPI_COMM_WORLD_RANK={rank}"));
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if mine && cmd.contains("simulate") && descends_from(pid, root) {
            return Some(pid);
        }
    }
    None
}

fn descends_from(mut pid: u32, root: u32) -> bool {
    for _ in 0..16 {
        if pid == root {
            return true;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // Fields after the parenthesised command: state, ppid, …
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        match after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            Some(p) => pid = p,
            None => return false,
        }
    }
    false
}

fn main() {
    if let Ok(case) = std::env::var("LGN_MPI_CASE") {
        let c = parallel::world().unwrap();
        match case.as_str() {
            "accelerations" => accelerations(c.as_ref()),
            other => panic!("unknown LGN_MPI_CASE {other}"),
        }
        return;
    }
    for ranks in [1, 2, 3] {
        let out = launch(ranks, "accelerations");
        let so = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{ranks} ranks: {}\n{so}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(so.matches("checks passed").count(), ranks, "{so}");
        print!("{so}");
        println!("mpi_domain: accelerations and rollouts on {ranks} ranks ... ok");
    }
    simulate_and_kill();
    println!("mpi_domain: simulate and a killed rank ... ok");
}
