//! Wave equation on triangle meshes: the FEM density against the independent P1 FEM code,
//! energy conservation under leapfrog, invariances of the learned density, sparse vs dense.

use lgn::density::{Density, Mlp, MlpDensity};
use lgn::lagrangian::Lagrangian;
use lgn::mesh::{fem, read_msh, TriMesh};
use lgn::sites::Sites;
use lgn::solve::SolverKind;
use lgn::systems::{self, MeshDensity, MESH_EDGE_INPUT, MESH_NODE_INPUT};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

const MESHES: [&str; 7] = [
    "square_coarse.msh",
    "square_fine.msh",
    "disk_coarse.msh",
    "disk_coarse_v22.msh",
    "disk_fine.msh",
    "lshape.msh",
    "annulus.msh",
];

fn mesh(name: &str) -> TriMesh {
    read_msh(format!("{}/meshes/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .0
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>();
    (num / den.max(1e-300)).sqrt()
}

fn random_state(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    (
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
    )
}

#[test]
fn fem_density_matches_fem_accel_on_shipped_meshes() {
    for name in MESHES {
        let m = mesh(name);
        let n = m.n_nodes();
        let (q, v) = random_state(n, 7);
        let truth = fem::fem_accel(&m, &q).unwrap();
        let e_true = fem::fem_energy(&m, &q, &v).unwrap();
        let l_true = fem::fem_lagrangian(&m, &q, &v).unwrap();
        for (density, solver) in [
            (MeshDensity::Fem, SolverKind::Auto),
            (MeshDensity::Fem, SolverKind::Sparse),
            (MeshDensity::FemTriangles, SolverKind::Auto),
            (MeshDensity::FemTriangles, SolverKind::Sparse),
        ] {
            let mut sys = systems::wave_mesh(&m, &density, solver).unwrap();
            let dy = &mut sys.dynamics;
            let a = dy.accelerations(&q, &v).unwrap();
            let err = rel_err(&a, &truth);
            assert!(
                err < 1e-10,
                "{name} {density:?} {solver}: relative error {err:e}"
            );
            let e = dy.energy(&q, &v).unwrap();
            assert!((e - e_true).abs() <= 1e-12 * e_true.abs(), "{name} energy");
            let l = dy.lagrangian_value(&q, &v).unwrap();
            assert!((l - l_true).abs() <= 1e-12 * e_true.abs(), "{name} L");
            if matches!(density, MeshDensity::Fem) {
                // stiffness-only triangle terms stay out of M's pattern: M is diagonal
                assert!(dy.pattern.is_diagonal(), "{name}: M not diagonal");
                if solver == SolverKind::Auto {
                    assert_eq!(dy.solver.kind(), SolverKind::Banded);
                    assert_eq!(dy.solver.bandwidth(), Some(0));
                }
            } else {
                assert_eq!(dy.pattern.nnz(), n + 2 * m.edges().len(), "{name}");
            }
        }
        assert_eq!(
            systems::wave_mesh(&m, &MeshDensity::Fem, SolverKind::Auto)
                .unwrap()
                .graph
                .n_edges(),
            m.edges().len()
        );
    }
}

/// Largest eigenvalue of M⁻¹K (power iteration with the independent FEM code).
fn lambda_max(m: &TriMesh) -> f64 {
    let n = m.n_nodes();
    let mut x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect();
    let mut lam = 0.0;
    for _ in 0..300 {
        let y: Vec<f64> = fem::fem_accel(m, &x).unwrap().iter().map(|a| -a).collect();
        let norm = y.iter().map(|v| v * v).sum::<f64>().sqrt();
        lam = norm / x.iter().map(|v| v * v).sum::<f64>().sqrt();
        x = y.iter().map(|v| v / norm).collect();
    }
    lam
}

#[test]
fn leapfrog_conserves_fem_energy() {
    for name in ["disk_coarse.msh", "lshape.msh"] {
        let m = mesh(name);
        let n = m.n_nodes();
        let mut sys = systems::wave_mesh(&m, &MeshDensity::Fem, SolverKind::Auto).unwrap();
        let dy = &mut sys.dynamics;
        // smooth bump, at rest
        let mut q: Vec<f64> = m
            .positions
            .iter()
            .map(|p| (-((p[0] - 0.3).powi(2) + (p[1] - 0.2).powi(2)) / 0.05).exp())
            .collect();
        let mut v = vec![0.0; n];
        let dt = 0.5 * 2.0 / lambda_max(&m).sqrt(); // half the stability limit
        let e0 = dy.energy(&q, &v).unwrap();
        assert!((e0 - fem::fem_energy(&m, &q, &v).unwrap()).abs() < 1e-12 * e0);
        let mut a = dy.accelerations(&q, &v).unwrap();
        let steps = 4000;
        let mut worst = 0.0f64;
        let mut late = 0.0f64;
        for step in 0..steps {
            for i in 0..n {
                v[i] += 0.5 * dt * a[i];
                q[i] += dt * v[i];
            }
            dy.accelerations_into(&q, &v, &mut a).unwrap();
            for i in 0..n {
                v[i] += 0.5 * dt * a[i];
            }
            if step % 20 == 0 || step == steps - 1 {
                let e = dy.energy(&q, &v).unwrap();
                let err = (e - e0).abs() / e0;
                worst = worst.max(err);
                if step >= steps - steps / 10 {
                    late = late.max(err);
                }
            }
        }
        // Velocity Verlet is symplectic: the energy error oscillates at O(dt²) and does not grow.
        println!(
            "{name}: dt = {dt:.4e}, {steps} steps, max |ΔE|/E = {worst:.3e}, last 10 %: {late:.3e}"
        );
        assert!(worst < 2e-2, "{name}: energy error {worst:e}");
        assert!(late <= worst && late < 2e-2);
        // and the trajectory agrees with the independent FEM acceleration along the way
        let truth = fem::fem_accel(&m, &q).unwrap();
        assert!(rel_err(&a, &truth) < 1e-10);
    }
}

fn small_mlps(seed: u64) -> (Mlp, Mlp) {
    (
        Mlp::paper_init(&[MESH_NODE_INPUT, 16, 16, 1], seed),
        Mlp::paper_init(&[MESH_EDGE_INPUT, 16, 16, 1], seed + 1),
    )
}

/// A state where the random learned density has a positive definite M (small velocities).
fn learned_state(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let (q, v) = random_state(n, seed);
    (q, v.iter().map(|x| 0.3 * x).collect())
}

#[test]
fn learned_density_is_invariant_to_node_numbering() {
    for name in ["lshape.msh", "disk_coarse.msh"] {
        let m = mesh(name);
        let n = m.n_nodes();
        let (nm, em) = small_mlps(3);
        let (q, v) = learned_state(n, 11);
        let mut sys =
            systems::wave_mesh_learned(&m, nm.clone(), em.clone(), SolverKind::Auto).unwrap();
        let a = sys.dynamics.accelerations(&q, &v).unwrap();
        let l = sys.dynamics.lagrangian_value(&q, &v).unwrap();

        // new numbering: node i → perm[i]; also shuffle triangle order and rotate corners
        let mut rng = StdRng::seed_from_u64(5);
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut rng);
        let mut pos = vec![[0.0; 2]; n];
        let (mut q2, mut v2) = (vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            pos[perm[i]] = m.positions[i];
            q2[perm[i]] = q[i];
            v2[perm[i]] = v[i];
        }
        let mut tris: Vec<[usize; 3]> = m
            .triangles
            .iter()
            .enumerate()
            .map(|(t, tri)| {
                let r = t % 3;
                [tri[r], tri[(r + 1) % 3], tri[(r + 2) % 3]].map(|i| perm[i])
            })
            .collect();
        tris.shuffle(&mut rng);
        let m2 = TriMesh::new(pos, tris).unwrap();
        let mut sys2 = systems::wave_mesh_learned(&m2, nm, em, SolverKind::Auto).unwrap();
        let a2 = sys2.dynamics.accelerations(&q2, &v2).unwrap();
        let l2 = sys2.dynamics.lagrangian_value(&q2, &v2).unwrap();
        let a2_back: Vec<f64> = (0..n).map(|i| a2[perm[i]]).collect();
        let err = rel_err(&a2_back, &a);
        assert!(
            err < 1e-10,
            "{name}: permuted accelerations differ by {err:e}"
        );
        assert!(
            (l - l2).abs() < 1e-12 * l.abs().max(1.0),
            "{name}: L {l} vs {l2}"
        );
    }
}

#[test]
fn learned_edge_term_is_symmetric_in_its_endpoints() {
    let m = mesh("annulus.msh");
    let n = m.n_nodes();
    let (nm, em) = small_mlps(9);
    let (q, v) = learned_state(n, 2);
    let mut sys = systems::wave_mesh_learned(&m, nm.clone(), em.clone(), SolverKind::Auto).unwrap();
    let l = sys.dynamics.lagrangian_value(&q, &v).unwrap();
    let a = sys.dynamics.accelerations(&q, &v).unwrap();

    // Independent evaluation of L with Mlp::forward: node terms + both orderings of each edge.
    let g = lgn::mesh::features::edge_geometry(&m);
    let nf = lgn::mesh::features::node_features(&m);
    let mut l_ref = 0.0;
    for i in 0..n {
        l_ref += nm.forward(&[q[i], v[i], nf[2 * i], nf[2 * i + 1]]);
    }
    let mut worst_swap = 0.0f64;
    for (e, &[a_, b_]) in g.edges.iter().enumerate() {
        let f = lgn::mesh::features::edge_features(&g, e);
        let x_ab = [q[a_], q[b_], v[a_], v[b_], f[0], f[1], f[2], f[3]];
        let x_ba = [q[b_], q[a_], v[b_], v[a_], f[0], f[1], f[2], f[3]];
        let rho_ab = em.forward(&x_ab) + em.forward(&x_ba);
        // the pair density with the endpoints swapped, through the engine's density
        let d = MlpDensity::new(em.clone(), 2, 1, 4).unwrap();
        let r1 = lgn::density::eval_one(&d, &x_ab)[0] + lgn::density::eval_one(&d, &x_ba)[0];
        let r2 = lgn::density::eval_one(&d, &x_ba)[0] + lgn::density::eval_one(&d, &x_ab)[0];
        worst_swap = worst_swap
            .max((r1 - r2).abs())
            .max((r1 - rho_ab).abs() / rho_ab.abs().max(1.0));
        l_ref += rho_ab;
    }
    assert!(worst_swap < 1e-12, "swap changes ρ_edge by {worst_swap:e}");
    assert!(
        (l - l_ref).abs() < 1e-10 * l_ref.abs().max(1.0),
        "L {l} vs {l_ref}"
    );

    // Listing every edge with its endpoints the other way round gives the same dynamics.
    let lag = &sys.dynamics.lagrangian;
    let edges = &lag.terms[1].sites;
    let swapped_nodes: Vec<usize> = edges.nodes.chunks(2).flat_map(|p| [p[1], p[0]]).collect();
    let swapped = Sites::explicit(2, swapped_nodes, n)
        .unwrap()
        .with_features(edges.n_features, edges.features.clone())
        .unwrap();
    let lag2 = Lagrangian::new(
        n,
        1,
        lag.terms[0].sites.clone(),
        lag.terms[0].density.clone(),
    )
    .unwrap()
    .with_term(swapped, lag.terms[1].density.clone())
    .unwrap();
    let mut dy2 =
        lgn::dynamics::Dynamics::new(lag2, SolverKind::Sparse, lgn::graph::GraphKind::General)
            .unwrap();
    let a2 = dy2.accelerations(&q, &v).unwrap();
    assert!(rel_err(&a2, &a) < 1e-12);
    let _ = Density::name(lag.terms[1].density.as_ref());
}

#[test]
fn learned_density_sparse_matches_dense_pinv() {
    let m = mesh("square_coarse.msh");
    let n = m.n_nodes();
    let (nm, em) = systems::mesh_mlps(&m, 32, 2, 4);
    let (q, v) = learned_state(n, 8);
    let mut sp =
        systems::wave_mesh_learned(&m, nm.clone(), em.clone(), SolverKind::Sparse).unwrap();
    let mut de = systems::wave_mesh_learned(&m, nm, em, SolverKind::Dense).unwrap();
    let a_sp = sp.dynamics.accelerations(&q, &v).unwrap();
    let a_de = de.dynamics.accelerations(&q, &v).unwrap();
    let err = rel_err(&a_sp, &a_de);
    println!(
        "sparse (LDLt: {}, LU fallback: {}) vs dense pinv: {err:e}",
        sp.dynamics.solver.used_ldlt, sp.dynamics.solver.used_lu_fallback
    );
    assert!(err < 1e-8, "sparse vs dense: {err:e}");
    // M couples graph neighbours only: pattern = adjacency + diagonal
    assert_eq!(sp.dynamics.pattern.nnz(), n + 2 * m.edges().len());
    let mut auto = systems::wave_mesh(
        &m,
        &MeshDensity::Mlp {
            hidden: 32,
            layers: 2,
            seed: 4,
        },
        SolverKind::Auto,
    )
    .unwrap();
    // a 20×20 grid: RCM gives a narrow band, so Auto picks banded LDLᵀ here
    assert_eq!(auto.dynamics.solver.kind(), SolverKind::Banded);
    let a_auto = auto.dynamics.accelerations(&q, &v).unwrap();
    assert!(rel_err(&a_auto, &a_sp) < 1e-9);
}

#[test]
fn set_mlps_replaces_the_learned_density() {
    let m = mesh("lshape.msh");
    let (nm, em) = small_mlps(1);
    let (nm2, em2) = small_mlps(21);
    let (q, v) = learned_state(m.n_nodes(), 3);
    let mut a = systems::wave_mesh_learned(&m, nm, em, SolverKind::Sparse).unwrap();
    a.set_mlps(nm2.clone(), em2.clone()).unwrap();
    let mut b = systems::wave_mesh_learned(&m, nm2, em2, SolverKind::Sparse).unwrap();
    assert_eq!(
        a.dynamics.accelerations(&q, &v).unwrap(),
        b.dynamics.accelerations(&q, &v).unwrap()
    );
    let mut f = systems::wave_mesh(&m, &MeshDensity::Fem, SolverKind::Auto).unwrap();
    assert!(f.set_mlps(small_mlps(1).0, small_mlps(1).1).is_err());
    let _ = f.dynamics.accelerations(&q, &v).unwrap();
    // wrong input size is a clear error
    let bad = Mlp::paper_init(&[3, 8, 1], 0);
    assert!(systems::wave_mesh_learned(&m, bad, small_mlps(1).1, SolverKind::Auto).is_err());
    let _ = Arc::new(0);
}

#[test]
fn cli_wave_mesh_matches_fem_accel() {
    let dir = std::env::temp_dir().join(format!("lgn_meshdyn_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mesh_path = format!("{}/meshes/disk_coarse.msh", env!("CARGO_MANIFEST_DIR"));
    let m = mesh("disk_coarse.msh");
    let (q, v) = random_state(m.n_nodes(), 4);
    let state = dir.join("state.h5");
    {
        let f = hdf5::File::create(&state).unwrap();
        f.new_dataset_builder().with_data(&q).create("q").unwrap();
        f.new_dataset_builder()
            .with_data(&v)
            .create("qdot")
            .unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lgn"))
        // Tests write HDF5 fixtures in this process while other tests spawn lgn: HDF5 opens
        // files without O_CLOEXEC, so a concurrently spawned child can inherit a fixture's
        // flock. The children need no locking here.
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .args([
            "accel",
            "--system",
            "wave-mesh",
            "--mesh",
            &mesh_path,
            "--json",
            "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a: Vec<f64> = json["a"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(json["system"], "wave-mesh");
    assert_eq!(json["solver"], "banded");
    assert!(rel_err(&a, &fem::fem_accel(&m, &q).unwrap()) < 1e-10);
    // a state of the wrong length is a clear error
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lgn"))
        // Tests write HDF5 fixtures in this process while other tests spawn lgn: HDF5 opens
        // files without O_CLOEXEC, so a concurrently spawned child can inherit a fixture's
        // flock. The children need no locking here.
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .args(["accel", "--system", "wave-mesh", "--mesh"])
        .arg(format!("{}/meshes/lshape.msh", env!("CARGO_MANIFEST_DIR")))
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("state length mismatch"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The lean acceleration records (`evaluate_sites_accel` + `assemble_accel`, the acceleration
/// path) give the same M and b as the full site records (`evaluate_sites` + `assemble`, used by
/// energies and the variational integrator), for the FEM densities and a learned density.
#[test]
fn accel_records_match_full_records() {
    let m = mesh("disk_coarse.msh");
    let n = m.n_nodes();
    let (q, v) = random_state(n, 11);
    for density in [
        MeshDensity::Fem,
        MeshDensity::FemTriangles,
        MeshDensity::Mlp {
            hidden: 8,
            layers: 2,
            seed: 3,
        },
    ] {
        let mut sys = systems::wave_mesh(&m, &density, SolverKind::Auto).unwrap();
        let dy = &mut sys.dynamics;
        dy.evaluate_sites(&q, &v).unwrap();
        dy.assemble();
        let (m_full, b_full) = (dy.mass.clone(), dy.rhs.clone());
        dy.evaluate_sites_accel(&q, &v).unwrap();
        dy.assemble_accel();
        assert!(b_full.iter().any(|x| *x != 0.0) && m_full.iter().any(|x| *x != 0.0));
        for (x, y) in dy.mass.iter().zip(&m_full) {
            assert!(
                (x - y).abs() <= 1e-12 * y.abs().max(1e-3),
                "{density:?}: M {x} vs {y}"
            );
        }
        for (x, y) in dy.rhs.iter().zip(&b_full) {
            assert!(
                (x - y).abs() <= 1e-11 * y.abs().max(1.0),
                "{density:?}: b {x} vs {y}"
            );
        }
    }
}
