//! Conservation laws by construction (docs/DESIGN.md §14): the momenta of symmetric learned
//! densities along variational-integrator rollouts, each next to a non-symmetric control that
//! must visibly fail to conserve them.

use lgn::density::symmetric;
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
    let (mut dy, x, v) = spring_network(Arc::new(
        PotentialMlp::new(net, PotentialInput::EdgeDistance, 2, 0).unwrap(),
    ));
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

/// The edge-distance potential as a graph-model term, end to end: a node-edge model with
/// `--edge-distance` trained by the one `fit` on accelerations of a rotation-invariant teacher
/// spring network (loss falls), saved and reloaded, rolled out by the variational midpoint
/// integrator with the frames observed as `lgn simulate` observes them: linear and angular
/// momentum conserved to 1e-9.
#[test]
fn trained_edge_distance_graph_model_conserves_momenta() {
    use lgn::model::{FeatureSet, GraphModel, NetShape, SystemGraph};
    use lgn::train::{fit, graph::GraphTrainer, Samples, TrainConfig, Trainable};
    let mut teacher_net = Mlp::paper_init(&[1, 16, 16, 1], 11);
    teacher_net.input_shift[0] = 1.0;
    teacher_net.input_scale[0] = 0.2;
    let teacher = PotentialMlp::new(teacher_net, PotentialInput::EdgeDistance, 2, 0).unwrap();
    let (mut truth, x, v) = spring_network(Arc::new(teacher));
    // The graph: positions, edges, unit masses' features (the teacher's masses differ per node,
    // so give the student the node index as a feature).
    let n = 7;
    let edges: Vec<[usize; 2]> = (0..6)
        .flat_map(|k| [[0, 1 + k], [1 + k, 1 + (k + 1) % 6]])
        .collect();
    let mut gd = lgn::io::GraphData::new(n, 2, edges);
    gd.positions = Some(ndarray::Array2::from_shape_fn((n, 2), |(i, c)| {
        x[2 * i + c]
    }));
    gd.node_features = Some(ndarray::Array2::from_shape_fn((n, 1), |(i, _)| {
        0.5 + 0.2 * i as f64
    }));
    let graph = SystemGraph::from_data(gd, "hexagon").unwrap();
    // Samples: perturbed states and the teacher's accelerations.
    let nc = 2 * n;
    let (mut input, mut target) = (vec![], vec![]);
    for s in 0..64 {
        let q: Vec<f64> = (0..nc)
            .map(|i| x[i] + 0.08 * ((1.3 * (s * nc + i) as f64).sin()))
            .collect();
        let w: Vec<f64> = (0..nc)
            .map(|i| v[i] * 0.5 + 0.2 * (0.7 * (s * nc + i) as f64).cos())
            .collect();
        let a = truth.accelerations(&q, &w).unwrap();
        input.extend(q.iter().chain(&w));
        target.extend(a);
    }
    let data = Samples::new(2 * nc, nc, input, target, None).unwrap();
    let qs: Vec<&[f64]> = (0..data.n).map(|i| &data.input_row(i)[..nc]).collect();
    let shape = NetShape {
        hidden: 16,
        layers: 2,
        seed: 2,
    };
    let model = GraphModel::node_edge(&graph, FeatureSet::Graph, false, &shape, &qs)
        .unwrap()
        .with_edge_distance(&graph, &shape, &qs)
        .unwrap();
    // Coordinates that are not 2-D/3-D positions are refused.
    let line = SystemGraph::line(5, 1, false).unwrap();
    let q1 = [0.0; 5];
    let e = GraphModel::node_edge(&line, FeatureSet::Graph, false, &shape, &[&q1[..]])
        .unwrap()
        .with_edge_distance(&line, &shape, &[&q1[..]])
        .unwrap_err();
    assert!(e.to_string().contains("2-D or 3-D"), "{e}");
    let mut tr = GraphTrainer::new(model, graph.clone()).unwrap();
    let all: Vec<usize> = (0..data.n).collect();
    let l0 = tr
        .loss_grad(&data, &all, lgn::train::LossKind::Mse, false)
        .unwrap()
        .0;
    let cfg = TrainConfig {
        epochs: 200,
        batch: 8,
        lr: 3e-3,
        val_fraction: 0.0,
        ..TrainConfig::unstabilised()
    };
    let rep = fit(&mut tr, &data, &cfg, &mut |_| {}).unwrap();
    let l1 = tr
        .loss_grad(&data, &all, lgn::train::LossKind::Mse, false)
        .unwrap()
        .0;
    eprintln!(
        "edge-distance graph model: loss {l0:.4e} → {l1:.4e} ({} epochs)",
        rep.epochs
    );
    assert!(
        l1 < 0.5 * l0,
        "training did not reduce the loss ({l0} → {l1})"
    );
    // Saved and reloaded: the term survives the model file.
    let dir = std::env::temp_dir().join(format!("lgn-symm-ed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edge_distance.h5");
    tr.model.save(&path, None, true).unwrap();
    let back = lgn::model::load_graph_model(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(back.terms[1].kind(), "edge_distance");
    assert_eq!(back, tr.model);
    // Variational rollout observed frame by frame.
    let make = || back.dynamics(&graph, SolverKind::Auto);
    let out = std::env::temp_dir().join(format!("lgn-symm-ed-{}.h5", std::process::id()));
    let opts = lgn::io::TrajectoryWriterOptions {
        with_qddot: true,
        with_energy: true,
        ..Default::default()
    };
    let mut writer = lgn::io::TrajectoryWriter::create(&out, 1, nc, &opts, true).unwrap();
    let times = lgn::integrate::Linspace { n: 101, dt: 0.1 };
    let mut cons = symmetric::ConservedSeries::new(2);
    // Start inside the training distribution (velocities ½ v), where the learned potential
    // binds the particles (far outside it the network is extrapolating).
    let v0: Vec<f64> = v.iter().map(|x| 0.5 * x).collect();
    lgn::data::simulate_observed(
        make,
        &midpoint(0.0025),
        &x,
        &v0,
        &times,
        &mut writer,
        |_| {},
        |dy, q, w| cons.push(dy, q, w),
    )
    .unwrap();
    writer.finish().unwrap();
    std::fs::remove_file(&out).ok();
    if std::env::var("ED_DEBUG").is_ok() {
        for (k, (l, sc)) in cons.angular.iter().enumerate().step_by(5) {
            eprintln!("frame {k}: L {:.15e} scale {sc:.4e}", l[0]);
        }
    }
    let (lin, ang) = (cons.momentum_drift(), cons.angular_drift().unwrap());
    eprintln!("trained edge-distance model, 4000 midpoint steps: linear drift {lin:.2e}, angular drift {ang:.2e}");
    assert_eq!(cons.momentum.len(), 101);
    assert!(lin < 1e-9, "linear momentum drift {lin:e}");
    assert!(ang < 1e-9, "angular momentum drift {ang:e}");
}
