//! Accelerations against independent truths: closed forms, stencils, and a second solver.

use lgn::density::{Density, Mlp, MlpDensity};
use lgn::graph::Graph;
use lgn::lagrangian::Lagrangian;
use lgn::sites::Sites;
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use lgn::{dynamics::Dynamics, Error};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-300)
}

#[test]
fn falling_ball_is_exact() {
    for solver in [
        SolverKind::Auto,
        SolverKind::Banded,
        SolverKind::Sparse,
        SolverKind::Dense,
    ] {
        let mut dy = systems::ball(9.8, &DensityChoice::Analytic, solver).unwrap();
        let a = dy.accelerations(&[1.5, -2.0], &[0.3, 4.0]).unwrap();
        assert_eq!(a, vec![-9.8, 0.0], "solver {solver}");
    }
}

/// Closed-form double-pendulum equations of motion (as in the paper's reference code).
fn dblpend_closed_form(t1: f64, t2: f64, w1: f64, w2: f64, g: f64) -> [f64; 2] {
    let (m1, m2, l1, l2) = (1.0, 1.0, 1.0, 1.0);
    let a1 = (l2 / l1) * (m2 / (m1 + m2)) * (t1 - t2).cos();
    let a2 = (l1 / l2) * (t1 - t2).cos();
    let f1 = -(l2 / l1) * (m2 / (m1 + m2)) * w2 * w2 * (t1 - t2).sin() - (g / l1) * t1.sin();
    let f2 = (l1 / l2) * w1 * w1 * (t1 - t2).sin() - (g / l2) * t2.sin();
    let g1 = (f1 - a1 * f2) / (1.0 - a1 * a2);
    let g2 = (f2 - a2 * f1) / (1.0 - a1 * a2);
    [g1, g2]
}

#[test]
fn double_pendulum_matches_closed_form_on_1000_states() {
    let mut dy = systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let mut worst = 0.0f64;
    for _ in 0..1000 {
        let q = [
            rng.random_range(0.0..std::f64::consts::TAU),
            rng.random_range(0.0..std::f64::consts::TAU),
        ];
        let v = [rng.random_range(-10.0..10.0), rng.random_range(-10.0..10.0)];
        let a = dy.accelerations(&q, &v).unwrap();
        let truth = dblpend_closed_form(q[0], q[1], v[0], v[1], 9.8);
        worst = worst.max(rel_err(&a, &truth));
    }
    assert!(worst < 1e-10, "worst relative error {worst:e}");
}

#[test]
fn relativistic_matches_closed_form() {
    let g = 2.5;
    let mut dy = systems::relativistic(g, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    for v in [-0.99, -0.5, 0.0, 0.3, 0.9] {
        let a = dy.accelerations(&[0.7], &[v]).unwrap()[0];
        let truth = g * (1.0 - v * v).powf(2.5) / (1.0 + 2.0 * v * v);
        assert!(
            (a - truth).abs() <= 1e-12 * truth.abs(),
            "v = {v}: {a} vs {truth}"
        );
    }
    // Outside the domain |q̇| < 1: a clear error, not NaN, and not blamed on the mass matrix.
    let err = dy.accelerations(&[0.0], &[1.5]).unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    assert!(err.to_string().contains("not finite"), "{err}");
}

#[test]
fn wave_density_gives_the_wide_stencil() {
    for n in [3, 5, 17, 100] {
        let dx = 0.37;
        let mut dy = systems::wave1d(n, dx, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
        let mut rng = StdRng::seed_from_u64(n as u64);
        let q: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a = dy.accelerations(&q, &v).unwrap();
        for i in 0..n {
            let truth = (q[(i + 2) % n] - 2.0 * q[i] + q[(i + n - 2) % n]) / (4.0 * dx * dx);
            assert!(
                (a[i] - truth).abs() <= 1e-12 * (1.0 + truth.abs()),
                "n={n} i={i}: {} vs {truth}",
                a[i]
            );
        }
    }
}

fn random_state(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let q = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let v = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    (q, v)
}

#[test]
fn sparse_and_banded_match_dense_pinv_on_rings() {
    for n in [8, 50, 200] {
        for seed in 0..3 {
            let dens = DensityChoice::Mlp {
                hidden: 32,
                layers: 2,
                seed,
            };
            let (q, v) = random_state(n, 100 + seed);
            let mut dense = systems::wave1d(n, 1.0 / n as f64, &dens, SolverKind::Dense).unwrap();
            let truth = dense.accelerations(&q, &v).unwrap();
            for solver in [SolverKind::Banded, SolverKind::Sparse, SolverKind::Auto] {
                let mut dy = systems::wave1d(n, 1.0 / n as f64, &dens, solver).unwrap();
                let a = dy.accelerations(&q, &v).unwrap();
                let e = rel_err(&a, &truth);
                assert!(e < 1e-8, "n={n} seed={seed} solver={solver}: rel err {e:e}");
            }
        }
    }
    // The ring's fold ordering gives a half-bandwidth of 4 (d = 1).
    let dy = systems::wave1d(
        1000,
        1e-3,
        &DensityChoice::Mlp {
            hidden: 8,
            layers: 2,
            seed: 0,
        },
        SolverKind::Auto,
    )
    .unwrap();
    assert_eq!(dy.solver.kind(), SolverKind::Banded);
    assert_eq!(dy.solver.bandwidth(), Some(4));
}

/// A random graph of varying degree: node terms plus edge terms, two MLP densities.
fn random_graph_system(n: usize, seed: u64, solver: SolverKind) -> Dynamics {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut edges = vec![];
    for i in 0..n {
        edges.push((i, (i + 1) % n)); // connected
        for j in i + 2..n {
            if rng.random_bool(0.08) {
                edges.push((i, j));
            }
        }
    }
    let graph = Graph::from_edges(n, &edges, 2).unwrap();
    let node_mlp = Mlp::paper_init(&[4, 24, 24, 1], seed);
    let edge_mlp = Mlp::paper_init(&[8, 24, 24, 1], seed + 1);
    let node_d: Arc<dyn Density> = Arc::new(MlpDensity::new(node_mlp, 1, 2, 0).unwrap());
    let edge_d: Arc<dyn Density> = Arc::new(MlpDensity::new(edge_mlp, 2, 2, 0).unwrap());
    let lag = Lagrangian::new(n, 2, Sites::nodes(&graph).unwrap(), node_d)
        .unwrap()
        .with_term(Sites::edges(&graph).unwrap(), edge_d)
        .unwrap();
    Dynamics::new(lag, solver, graph.kind).unwrap()
}

#[test]
fn sparse_and_banded_match_dense_pinv_on_a_random_graph() {
    for seed in 0..3 {
        let n = 40;
        let (q, v) = random_state(2 * n, seed);
        let truth = random_graph_system(n, seed, SolverKind::Dense)
            .accelerations(&q, &v)
            .unwrap();
        for solver in [SolverKind::Sparse, SolverKind::Banded, SolverKind::Auto] {
            let a = random_graph_system(n, seed, solver)
                .accelerations(&q, &v)
                .unwrap();
            let e = rel_err(&a, &truth);
            assert!(e < 1e-8, "seed={seed} solver={solver}: rel err {e:e}");
        }
    }
}

#[test]
fn mass_matrix_is_neighbour_of_neighbour_sparse() {
    let n = 30;
    let dy = systems::wave1d(
        n,
        0.1,
        &DensityChoice::Mlp {
            hidden: 8,
            layers: 1,
            seed: 3,
        },
        SolverKind::Auto,
    )
    .unwrap();
    // pentadiagonal with periodic corners: 5 entries per row
    assert_eq!(dy.pattern.nnz(), 5 * n);
    for r in 0..n {
        let cols = &dy.pattern.indices[dy.pattern.indptr[r]..dy.pattern.indptr[r + 1]];
        for &c in cols {
            let dist = (r as isize - c as isize)
                .rem_euclid(n as isize)
                .min((c as isize - r as isize).rem_euclid(n as isize));
            assert!(dist <= 2);
        }
    }
}

#[test]
fn energy_of_the_double_pendulum_matches_closed_form() {
    let mut dy = systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let p = lgn::density::DoublePendulum::paper(9.8);
    let (q, v) = ([0.3, -1.2], [2.0, -0.7]);
    let e = dy.energy(&q, &v).unwrap();
    assert!((e - p.energy(&q, &v)).abs() < 1e-12 * e.abs().max(1.0));
}

#[test]
fn bad_input_is_a_clear_error() {
    let mut dy = systems::wave1d(10, 0.1, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let e = dy
        .accelerations(&[0.0; 9], &[0.0; 10])
        .unwrap_err()
        .to_string();
    assert!(e.contains("length mismatch"), "{e}");
    let mut q = vec![0.0; 10];
    q[4] = f64::NAN;
    let e = dy.accelerations(&q, &[0.0; 10]).unwrap_err().to_string();
    assert!(e.contains("q[4]") && e.contains("not finite"), "{e}");
    let e = dy
        .accelerations(&[0.0; 10], &[f64::INFINITY; 10])
        .unwrap_err()
        .to_string();
    assert!(e.contains("qdot[0]"), "{e}");
    assert!(
        systems::wave1d(2, 0.1, &DensityChoice::Analytic, SolverKind::Auto)
            .unwrap_err()
            .to_string()
            .contains("at least 3")
    );
    assert!(Graph::from_edges(0, &[], 1)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    // A Lagrangian without velocity dependence has a zero (singular) mass matrix.
    let zero = Mlp {
        weights: vec![vec![0.0; 6 * 4], vec![0.0; 4]],
        ..Mlp::paper_init(&[6, 4, 1], 0)
    };
    let d: Arc<dyn Density> = Arc::new(MlpDensity::new(zero, 3, 1, 0).unwrap());
    let g = Graph::ring(6, 1).unwrap();
    for solver in [SolverKind::Banded, SolverKind::Sparse] {
        let mut dy = systems::on_graph(&g, d.clone(), solver).unwrap();
        let err = dy.accelerations(&[0.1; 6], &[0.2; 6]).unwrap_err();
        assert!(matches!(err.root(), Error::Solve(_)), "{solver}: {err}");
    }
}
