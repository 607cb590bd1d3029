//! `lgn generate wave-mesh` and `lgn simulate --system wave-mesh --mesh`: finite-element truth
//! data on a user's Gmsh mesh, checked against an independent P1 assembly written here
//! (gradients of the barycentric functions, lumped mass A/3 per corner).

use lgn::io::{SamplesData, StateData, TrajectoryData};
use std::path::{Path, PathBuf};
use std::process::Command;

fn lgn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lgn"));
    c.env("HDF5_USE_FILE_LOCKING", "FALSE");
    c
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-wave-mesh-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mesh_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("meshes")
        .join(name)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(cmd: &mut Command) -> String {
    let (success, err) = run(cmd);
    assert!(success, "{cmd:?} failed: {err}");
    err
}

/// Independent P1 FEM: lumped masses m_i and K as dense rows (small meshes only).
struct Fem {
    m: Vec<f64>,
    k: Vec<Vec<f64>>,
}

fn fem(pos: &[[f64; 2]], tris: &[[usize; 3]]) -> Fem {
    let n = pos.len();
    let mut m = vec![0.0; n];
    let mut k = vec![vec![0.0; n]; n];
    for t in tris {
        let p = [pos[t[0]], pos[t[1]], pos[t[2]]];
        let a2 =
            (p[1][0] - p[0][0]) * (p[2][1] - p[0][1]) - (p[2][0] - p[0][0]) * (p[1][1] - p[0][1]);
        let area = 0.5 * a2.abs();
        // ∇λ_i = (y_j − y_k, x_k − x_j) / (2A) for (i, j, k) cyclic, counter-clockwise.
        let grad: Vec<[f64; 2]> = (0..3)
            .map(|i| {
                let (j, l) = ((i + 1) % 3, (i + 2) % 3);
                [(p[j][1] - p[l][1]) / a2, (p[l][0] - p[j][0]) / a2]
            })
            .collect();
        for i in 0..3 {
            m[t[i]] += area / 3.0;
            for j in 0..3 {
                k[t[i]][t[j]] += area * (grad[i][0] * grad[j][0] + grad[i][1] * grad[j][1]);
            }
        }
    }
    Fem { m, k }
}

impl Fem {
    fn kphi(&self, phi: &[f64]) -> Vec<f64> {
        self.k
            .iter()
            .map(|row| row.iter().zip(phi).map(|(a, b)| a * b).sum())
            .collect()
    }
    fn accel(&self, phi: &[f64]) -> Vec<f64> {
        self.kphi(phi)
            .iter()
            .zip(&self.m)
            .map(|(kp, m)| -kp / m)
            .collect()
    }
    fn energy(&self, phi: &[f64], v: &[f64]) -> f64 {
        let kin: f64 = v.iter().zip(&self.m).map(|(v, m)| 0.5 * m * v * v).sum();
        let pot: f64 = 0.5
            * self
                .kphi(phi)
                .iter()
                .zip(phi)
                .map(|(a, b)| a * b)
                .sum::<f64>();
        kin + pot
    }
}

fn max_abs(x: impl Iterator<Item = f64>) -> f64 {
    x.fold(0.0, |m, v| m.max(v.abs()))
}

fn root_str_attr(path: &Path, name: &str) -> String {
    let f = hdf5::File::open(path).unwrap();
    let a = f.attr(name).unwrap();
    a.read_scalar::<hdf5::types::VarLenUnicode>()
        .unwrap()
        .as_str()
        .to_string()
}

#[test]
fn samples_are_the_fem_accelerations_of_rms_one_fields() {
    let d = dir("samples");
    let msh = mesh_file("disk_coarse.msh");
    let out = d.join("s.h5");
    ok(lgn()
        .args([
            "generate",
            "wave-mesh",
            "--kind",
            "samples",
            "--n",
            "12",
            "--seed",
            "5",
        ])
        .arg("--mesh")
        .arg(&msh)
        .arg("--out")
        .arg(&out));
    let (mesh, _) = lgn::mesh::read_msh(&msh).unwrap();
    let s = SamplesData::read(&out).unwrap();
    assert_eq!(s.system.as_deref(), Some("wave-mesh"));
    assert_eq!(root_str_attr(&out, "mesh"), msh.display().to_string());
    assert_eq!(s.q.dim(), (12, mesh.n_nodes()));
    assert_eq!(s.params["n_nodes"], mesh.n_nodes() as f64);
    let truth = fem(&mesh.positions, &mesh.triangles);
    let n = mesh.n_nodes() as f64;
    for i in 0..12 {
        let phi = s.q.row(i).to_vec();
        let a = truth.accel(&phi);
        let scale = max_abs(a.iter().copied());
        let err = max_abs(a.iter().zip(s.qddot.row(i)).map(|(x, y)| x - y));
        assert!(
            err <= 1e-10 * scale,
            "sample {i}: |Δa| = {err:e}, |a| = {scale:e}"
        );
        // φ: RMS 1 about a level in [−1, 1); φ̇: RMS 1 about 0.
        for (row, level_free) in [(s.q.row(i), false), (s.qdot.row(i), true)] {
            let mean = row.sum() / n;
            let rms = (row.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            assert!((rms - 1.0).abs() < 1e-10, "rms {rms}");
            if level_free {
                assert!(mean.abs() < 1e-10);
            } else {
                assert!((-1.0..1.0).contains(&mean));
            }
        }
    }
    // Deterministic given the seed; another seed gives other fields.
    let out2 = d.join("s2.h5");
    ok(lgn()
        .args(["generate", "wave-mesh", "--n", "12", "--seed", "5"])
        .arg("--mesh")
        .arg(&msh)
        .arg("--out")
        .arg(&out2));
    assert_eq!(SamplesData::read(&out2).unwrap().q, s.q);
    ok(lgn()
        .args([
            "generate",
            "wave-mesh",
            "--n",
            "12",
            "--seed",
            "6",
            "--force",
        ])
        .arg("--mesh")
        .arg(&msh)
        .arg("--out")
        .arg(&out2));
    assert_ne!(SamplesData::read(&out2).unwrap().q, s.q);
}

#[test]
fn trajectories_follow_the_fem_and_conserve_its_energy() {
    let d = dir("traj");
    let msh = mesh_file("lshape.msh");
    let out = d.join("tr.h5");
    let err = ok(lgn()
        .args([
            "generate",
            "wave-mesh",
            "--kind",
            "trajectories",
            "--batch",
            "2",
        ])
        .args([
            "--frames", "11", "--dt", "0.01", "--waves", "3", "--k-max", "4",
        ])
        .arg("--mesh")
        .arg(&msh)
        .arg("--out")
        .arg(&out));
    assert!(err.contains("tr.xmf"), "{err}");
    let (mesh, _) = lgn::mesh::read_msh(&msh).unwrap();
    let tr = TrajectoryData::read(&out).unwrap();
    assert_eq!(tr.q.dim(), (2, 11, mesh.n_nodes()));
    assert_eq!(tr.system.as_deref(), Some("wave-mesh"));
    assert_eq!(tr.params["k_max"], 4.0);
    assert_eq!(tr.params["waves"], 3.0);
    assert!((tr.t[10] - 0.1).abs() < 1e-12);
    let truth = fem(&mesh.positions, &mesh.triangles);
    let qdd = tr.qddot.as_ref().unwrap();
    let e = tr.energy.as_ref().unwrap();
    for b in 0..2 {
        let e0 = truth.energy(
            &tr.q.slice(ndarray::s![b, 0, ..]).to_vec(),
            &tr.qdot.slice(ndarray::s![b, 0, ..]).to_vec(),
        );
        for k in 0..11 {
            let phi = tr.q.slice(ndarray::s![b, k, ..]).to_vec();
            let v = tr.qdot.slice(ndarray::s![b, k, ..]).to_vec();
            let a = truth.accel(&phi);
            let scale = max_abs(a.iter().copied());
            let da = max_abs(
                a.iter()
                    .zip(qdd.slice(ndarray::s![b, k, ..]))
                    .map(|(x, y)| x - y),
            );
            assert!(da <= 1e-10 * scale, "b {b} k {k}: |Δa| = {da:e}");
            let ek = truth.energy(&phi, &v);
            assert!(
                (e[[b, k]] - ek).abs() <= 1e-10 * ek,
                "stored energy {} vs {ek}",
                e[[b, k]]
            );
            // DP5 at rtol = atol = 1e-10: the FEM energy is conserved to ~1e-8.
            assert!(
                (ek - e0).abs() <= 1e-7 * e0,
                "b {b} k {k}: E = {ek}, E0 = {e0}"
            );
        }
    }
    // The two trajectories start from different fields.
    assert_ne!(
        tr.q.slice(ndarray::s![0, 0, ..]),
        tr.q.slice(ndarray::s![1, 0, ..])
    );
    // q̇ is the time derivative of q: central difference at frame 5 (dt = 0.01, O(dt²)),
    // relative RMS: 1.2 % here, from the small share of the mesh's highest modes (ω·dt ~ 1);
    // a wrong or unrelated q̇ gives O(1).
    let dq = (&tr.q.slice(ndarray::s![0, 6, ..]) - &tr.q.slice(ndarray::s![0, 4, ..])) / 0.02;
    let v5 = tr.qdot.slice(ndarray::s![0, 5, ..]);
    let rms = |x: &mut dyn Iterator<Item = f64>| x.map(|v| v * v).sum::<f64>().sqrt();
    let rel = rms(&mut (&dq - &v5).iter().copied()) / rms(&mut v5.iter().copied());
    assert!(rel < 0.03, "central difference vs qdot: {rel}");
    // Valid per schema, with the optional mesh group.
    let info = lgn().arg("info").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("schema: valid") && text.contains("/mesh/triangles"),
        "{text}"
    );
}

#[test]
fn simulate_on_a_mesh_matches_generate_and_writes_sidecar_and_picture() {
    let d = dir("sim");
    let msh = mesh_file("disk_coarse.msh");
    let (mesh, _) = lgn::mesh::read_msh(&msh).unwrap();
    // Start from the first frame of a generated trajectory; DP5 on both sides.
    let gen = d.join("gen.h5");
    ok(lgn()
        .args([
            "generate",
            "wave-mesh",
            "--kind",
            "trajectories",
            "--batch",
            "1",
        ])
        .args(["--frames", "6", "--dt", "0.1"])
        .arg("--mesh")
        .arg(&msh)
        .arg("--out")
        .arg(&gen));
    let g = TrajectoryData::read(&gen).unwrap();
    let state = d.join("state.h5");
    StateData::new(
        g.q.slice(ndarray::s![0, 0, ..]).to_owned(),
        g.qdot.slice(ndarray::s![0, 0, ..]).to_owned(),
    )
    .write(&state, false)
    .unwrap();
    let out = d.join("sim.h5");
    let png = d.join("sim.png");
    ok(lgn()
        .args([
            "simulate",
            "--system",
            "wave-mesh",
            "--t-end",
            "0.5",
            "--dt",
            "0.1",
            "--quiet",
        ])
        .arg("--mesh")
        .arg(&msh)
        .arg("--state")
        .arg(&state)
        .arg("--out")
        .arg(&out)
        .arg("--plot")
        .arg(&png));
    let s = TrajectoryData::read(&out).unwrap();
    assert_eq!(s.q.dim(), (1, 6, mesh.n_nodes()));
    let scale = max_abs(g.q.iter().copied());
    let diff = max_abs((&s.q - &g.q).iter().copied());
    assert!(diff < 1e-7 * scale, "simulate vs generate: {diff:e}");
    assert_eq!(root_str_attr(&out, "mesh"), msh.display().to_string());
    assert!(d.join("sim.xmf").exists());
    let img = std::fs::read(&png).unwrap();
    assert_eq!(&img[1..4], b"PNG");
    // 6 frames: 3 panels per row, 2 rows (380 px each) plus the title and colour bar.
    let (w, h) = (
        u32::from_be_bytes(img[16..20].try_into().unwrap()),
        u32::from_be_bytes(img[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (3 * 380 + 120, 2 * 380 + 50));
    assert!(d.join("sim_energy.png").exists());

    // "random" states on a mesh work with the symplectic integrators.
    ok(lgn()
        .args([
            "simulate",
            "--system",
            "wave-mesh",
            "--state",
            "random",
            "--seed",
            "3",
        ])
        .args([
            "--t-end",
            "0.2",
            "--dt",
            "0.05",
            "--integrator",
            "midpoint",
            "--step",
            "0.005",
        ])
        .args(["--quiet", "--force"])
        .arg("--mesh")
        .arg(&msh)
        .arg("--out")
        .arg(&out));
}

#[test]
fn bad_inputs_are_refused_before_any_output() {
    let d = dir("bad");
    let disk = mesh_file("disk_coarse.msh");
    let square = mesh_file("square_coarse.msh");
    // A state for the disk used on the square mesh: names the mesh and both sizes.
    let state = d.join("state.h5");
    let n = lgn::mesh::read_msh(&disk).unwrap().0.n_nodes();
    StateData::new(ndarray::Array1::zeros(n), ndarray::Array1::zeros(n))
        .write(&state, false)
        .unwrap();
    let out = d.join("x.h5");
    let (success, err) = run(lgn()
        .args([
            "simulate",
            "--system",
            "wave-mesh",
            "--t-end",
            "0.1",
            "--dt",
            "0.1",
            "--quiet",
        ])
        .arg("--mesh")
        .arg(&square)
        .arg("--state")
        .arg(&state)
        .arg("--out")
        .arg(&out));
    assert!(!success);
    assert!(
        err.contains("square_coarse.msh") && err.contains(&n.to_string()),
        "{err}"
    );
    assert!(!out.exists());
    // No --mesh.
    let (success, err) = run(lgn().args(["generate", "wave-mesh", "--out"]).arg(&out));
    assert!(!success && err.contains("--mesh"), "{err}");
    let (success, err) = run(lgn()
        .args(["simulate", "--system", "wave-mesh", "--state", "random"])
        .args(["--t-end", "0.1", "--dt", "0.1", "--out"])
        .arg(&out));
    assert!(!success && err.contains("--mesh"), "{err}");
    // --mesh with a system that has no mesh.
    let (success, err) = run(lgn()
        .args([
            "simulate", "--system", "dblpend", "--state", "1,2,0,0", "--t-end", "0.1",
        ])
        .args(["--dt", "0.1", "--quiet", "--mesh"])
        .arg(&disk)
        .arg("--out")
        .arg(&out));
    assert!(!success && err.contains("wave-mesh"), "{err}");
    assert!(!out.exists());
    // A mesh file that is not a mesh: names the file.
    let junk = d.join("junk.msh");
    std::fs::write(&junk, "not a mesh\n").unwrap();
    let (success, err) = run(lgn()
        .args(["generate", "wave-mesh", "--mesh"])
        .arg(&junk)
        .arg("--out")
        .arg(&out));
    assert!(!success && err.contains("junk.msh"), "{err}");
    // Bad field parameters.
    let (success, err) = run(lgn()
        .args(["generate", "wave-mesh", "--waves", "0", "--mesh"])
        .arg(&disk)
        .arg("--out")
        .arg(&out));
    assert!(!success && err.contains("--waves"), "{err}");
    assert!(!out.exists());
    // An existing sidecar is refused before the trajectory is computed or written.
    std::fs::write(d.join("x.xmf"), "keep").unwrap();
    let (success, err) = run(lgn()
        .args([
            "generate",
            "wave-mesh",
            "--kind",
            "trajectories",
            "--batch",
            "1",
            "--frames",
            "3",
        ])
        .arg("--mesh")
        .arg(&disk)
        .arg("--out")
        .arg(&out));
    assert!(
        !success && err.contains("x.xmf") && err.contains("--force"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_to_string(d.join("x.xmf")).unwrap(), "keep");
}
