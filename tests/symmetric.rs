//! Conservation laws by construction (docs/DESIGN.md §14): the momenta of symmetric learned
//! densities along variational-integrator rollouts, each next to a non-symmetric control that
//! must visibly fail to conserve them.

use lgn::density::symmetric::{self, EdgeDistanceMlp};
use lgn::density::{Density, Mlp, NodeKinetic, PotentialInput, PotentialMlp};
use lgn::dynamics::Dynamics;
use lgn::graph::GraphKind;
use lgn::integrate::{self, Method, MidpointOptions};
use lgn::lagrangian::Lagrangian;
use lgn::sites::Sites;
use lgn::solve::SolverKind;
use lgn::train::{ModelKind, TrainedModel};
use std::sync::Arc;

fn midpoint(dt: f64) -> Method {
    Method::Midpoint {
        dt,
        opts: MidpointOptions {
            tol: 1e-13,
            max_iter: 50,
        },
    }
}

/// A 2-D spring network: 7 particles (hexagon + centre), 12 edges, masses 0.5..1.7.
fn spring_network(edge: Arc<dyn Density>) -> (Dynamics, Vec<f64>, Vec<f64>) {
    let n = 7;
    let mut x = vec![0.0, 0.0];
    for k in 0..6 {
        let a = std::f64::consts::PI / 3.0 * k as f64;
        x.push(a.cos() * (1.0 + 0.05 * k as f64));
        x.push(a.sin() * (1.0 - 0.03 * k as f64));
    }
    let mut edges = vec![];
    for k in 0..6 {
        edges.extend([0, 1 + k]);
        edges.extend([1 + k, 1 + (k + 1) % 6]);
    }
    let masses: Vec<f64> = (0..n).map(|i| 0.5 + 0.2 * i as f64).collect();
    let kin = Sites::explicit(1, (0..n).collect(), n)
        .unwrap()
        .with_features(1, masses)
        .unwrap();
    let lag = Lagrangian::new(n, 2, kin, Arc::new(NodeKinetic { dof: 2 }))
        .unwrap()
        .with_term(Sites::explicit(2, edges, n).unwrap(), edge)
        .unwrap();
    // A rotation plus a shear: angular momentum and internal motion.
    let v: Vec<f64> = x
        .chunks_exact(2)
        .enumerate()
        .flat_map(|(i, p)| {
            [
                -0.8 * p[1] + 0.1 * i as f64,
                0.8 * p[0] - 0.05 * (i % 3) as f64,
            ]
        })
        .collect();
    let dy = Dynamics::new(lag, SolverKind::Auto, GraphKind::General).unwrap();
    (dy, x, v)
}

fn rollout_drifts(dy: &mut Dynamics, x: &[f64], v: &[f64], steps: usize) -> (f64, f64, f64) {
    let dt = 0.01;
    let ts: Vec<f64> = (0..=steps / 10).map(|k| k as f64 * 10.0 * dt).collect();
    let sol = integrate::solve(dy, &midpoint(dt), x, v, &ts).unwrap();
    let (mut lin, mut ang) = (vec![], vec![]);
    let mut travel = 0.0f64;
    for k in 0..ts.len() {
        let p = symmetric::momenta(dy, sol.q_at(k), sol.v_at(k)).unwrap();
        lin.push(symmetric::total_momentum(&p, 2));
        ang.push(symmetric::angular_momentum(sol.q_at(k), &p, 2).unwrap());
        travel = travel.max(
            sol.q_at(k)
                .iter()
                .zip(x)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max),
        );
    }
    (
        symmetric::momentum_drift(&lin),
        symmetric::momentum_drift(&ang),
        travel,
    )
}

#[test]
fn rotation_invariant_spring_network_conserves_angular_momentum() {
    let mut net = Mlp::paper_init(&[1, 16, 16, 1], 11);
    net.input_shift[0] = 1.0;
    net.input_scale[0] = 0.2;
    let (mut dy, x, v) = spring_network(Arc::new(EdgeDistanceMlp::new(net, 2).unwrap()));
    let (lin, ang, travel) = rollout_drifts(&mut dy, &x, &v, 2000);
    eprintln!("edge-distance: linear drift {lin:.2e}, angular drift {ang:.2e}, travel {travel:.2}");
    assert!(travel > 0.5, "the network barely moved ({travel})");
    assert!(lin < 1e-9, "linear momentum drift {lin:e}");
    assert!(ang < 1e-9, "angular momentum drift {ang:e}");
}

#[test]
fn difference_only_edge_potential_conserves_linear_but_not_angular_momentum() {
    // Control: an edge MLP on the vector q_b − q_a is translation- but not rotation-invariant.
    let mut net = Mlp::paper_init(&[2, 16, 16, 1], 11);
    net.input_scale = vec![0.5, 0.5];
    let edge = PotentialMlp::new(net, PotentialInput::EdgeDiff, 2, 0).unwrap();
    let (mut dy, x, v) = spring_network(Arc::new(edge));
    let (lin, ang, _) = rollout_drifts(&mut dy, &x, &v, 2000);
    eprintln!("edge-diff: linear drift {lin:.2e}, angular drift {ang:.2e}");
    assert!(lin < 1e-9, "linear momentum drift {lin:e}");
    assert!(
        ang > 1e-4,
        "angular momentum unexpectedly conserved ({ang:e})"
    );
}

fn ring_model(shift_invariant: bool) -> TrainedModel {
    // One hidden layer with positive output weights: ρ is convex, so M is positive definite and
    // the untrained density has well-posed dynamics.
    let mut m = TrainedModel::init(ModelKind::Lgn, "wave1d", 24, 16, 1, 4).unwrap();
    for w in &mut m.net.weights[1] {
        *w = w.abs();
    }
    // A softplus density has bounded momenta (∂ρ/∂q̇ saturates): keep the forces weak against
    // that bound so no velocity runs away within the test.
    for row in m.net.weights[0].chunks_exact_mut(6) {
        for w in &mut row[..3] {
            *w *= 0.05;
        }
    }
    m.net.input_scale = vec![0.5, 0.5, 0.5, 2.0, 2.0, 2.0];
    m.net.input_shift = vec![0.1, 0.1, 0.1, 0.0, 0.0, 0.0];
    m.params.insert("n".into(), 24.0);
    if shift_invariant {
        m.set_shift_invariant().unwrap();
    }
    m
}

fn ring_momentum_drift(m: &TrainedModel) -> (f64, f64) {
    let n = 24;
    let mut dy = m.dynamics(Some(n), SolverKind::Auto).unwrap();
    let q: Vec<f64> = (0..n)
        .map(|i| 0.3 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).sin() + 0.2)
        .collect();
    let v: Vec<f64> = (0..n)
        .map(|i| 0.5 * (4.0 * std::f64::consts::PI * i as f64 / n as f64).cos() + 0.1)
        .collect();
    let dt = 0.005;
    let ts: Vec<f64> = (0..=100).map(|k| k as f64 * 10.0 * dt).collect();
    let sol = integrate::solve(&mut dy, &midpoint(dt), &q, &v, &ts)
        .map_err(|e| e.to_string())
        .unwrap();
    let series: Vec<_> = (0..ts.len())
        .map(|k| {
            let p = symmetric::momenta(&mut dy, sol.q_at(k), sol.v_at(k)).unwrap();
            symmetric::total_momentum(&p, 1)
        })
        .collect();
    let travel = (0..n)
        .map(|i| (sol.q_at(ts.len() - 1)[i] - q[i]).abs())
        .fold(0.0, f64::max);
    (symmetric::momentum_drift(&series), travel)
}

#[test]
fn shift_invariant_ring_density_conserves_total_momentum() {
    let m = ring_model(true);
    assert!(symmetric::shift_invariance_defect(&m.net, 3, 1) < 1e-15);
    let (drift, travel) = ring_momentum_drift(&m);
    eprintln!("shift-invariant ring: drift {drift:.2e}, travel {travel:.2}");
    assert!(travel > 0.05, "the ring barely moved ({travel})");
    assert!(drift < 1e-9, "total momentum drift {drift:e}");
    // Control: the same network without the projection does not conserve it.
    let (drift0, _) = ring_momentum_drift(&ring_model(false));
    eprintln!("unconstrained ring: drift {drift0:.2e}");
    assert!(drift0 > 1e-5, "unconstrained drift {drift0:e}");
}

#[test]
fn shift_invariance_survives_a_model_file() {
    let dir = std::env::temp_dir().join(format!("lgn-symm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ring.h5");
    let m = ring_model(true);
    m.save(&path, None, true).unwrap();
    let back = lgn::train::load_model(&path).unwrap();
    assert!(back.shift_invariant());
    assert!(symmetric::shift_invariance_defect(&back.net, 3, 1) < 1e-15);
    for (a, b) in m.net.weights[0].iter().zip(&back.net.weights[0]) {
        assert!((a - b).abs() < 1e-15);
    }
    std::fs::remove_dir_all(&dir).ok();
}
