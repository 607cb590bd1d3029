//! Closed-form graph-model terms by name: a model of known terms reproduces the closed-form
//! system, survives a model-file round trip, and sits next to learned terms.

use lgn::model::{AnyModel, ClosedTerm, FeatureSet, GraphModel, GraphTerm, NetShape, SystemGraph};
use lgn::solve::SolverKind;
use lgn::systems;
use rand::{Rng, SeedableRng};

fn state(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let q = (0..n).map(|_| r.random_range(-0.7..0.7)).collect();
    let v = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
    (q, v)
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

#[test]
fn closed_terms_reproduce_the_spring_network_and_round_trip_through_a_model_file() {
    let graph = SystemGraph::line(12, 2, false).unwrap();
    let (mass, k, beta) = (1.7, 3.0, 0.8);
    let model = GraphModel::from_terms(
        &graph,
        FeatureSet::Graph,
        vec![
            GraphTerm::Closed(ClosedTerm::NodeMass { mass }),
            GraphTerm::Closed(ClosedTerm::Spring { k, beta }),
        ],
    )
    .unwrap();
    assert!(model.params().is_empty());
    let mut truth =
        systems::spring_network(&graph, mass, k, beta, false, SolverKind::Auto).unwrap();
    let mut dy = model.dynamics(&graph, SolverKind::Auto).unwrap();
    let (q, v) = state(graph.n_coords(), 3);
    let a = dy.accelerations(&q, &v).unwrap();
    let a_true = truth.accelerations(&q, &v).unwrap();
    assert!(rel(&a, &a_true) < 1e-13, "{}", rel(&a, &a_true));
    // Independent check of one node: a = F/m with F from the quartic springs on both sides.
    let d = 2;
    let i = 5;
    for c in 0..d {
        let f = |x: f64| k * x + beta * x * x * x;
        let left = q[i * d + c] - q[(i - 1) * d + c];
        let right = q[(i + 1) * d + c] - q[i * d + c];
        let expect = (f(right) - f(left)) / mass;
        assert!((a[i * d + c] - expect).abs() < 1e-12 * (1.0 + expect.abs()));
    }

    let dir = std::env::temp_dir().join(format!("lgn_closed_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("closed.h5");
    let mut model = model;
    model.q_period = Some(std::f64::consts::TAU);
    model.save(&path, None, true).unwrap();
    let AnyModel::Graph(back) = AnyModel::load(&path).unwrap() else {
        panic!("a graph model")
    };
    assert_eq!(back.terms.len(), 2);
    assert_eq!(back.q_period, Some(std::f64::consts::TAU));
    assert!(
        matches!(back.terms[1], GraphTerm::Closed(ClosedTerm::Spring { k: kk, beta: bb }) if kk == k && bb == beta)
    );
    let mut dy2 = back.dynamics(&graph, SolverKind::Auto).unwrap();
    let a2 = dy2.accelerations(&q, &v).unwrap();
    assert!(rel(&a2, &a) < 1e-15);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_known_mass_next_to_a_learned_potential_trains_only_the_potential() {
    let graph = SystemGraph::line(6, 1, false).unwrap();
    let (q, _) = state(graph.n_coords(), 9);
    let mut model = GraphModel::node_edge(
        &graph,
        FeatureSet::Graph,
        false,
        &NetShape::default(),
        &[&q],
    )
    .unwrap();
    let learned = model.params().len();
    let kinetic = model.param_offsets()[1];
    model.terms[0] = GraphTerm::Closed(ClosedTerm::NodeMass { mass: 2.0 });
    assert_eq!(model.params().len(), learned - kinetic);
    let theta = model.params();
    model.set_params(&theta).unwrap();
    assert!(model.set_params(&theta[1..]).is_err());
}

#[test]
fn bad_closed_terms_are_refused_by_name() {
    let e = ClosedTerm::from_name("spring", |p| (p == "k").then_some(1.0)).unwrap_err();
    assert!(e.to_string().contains("'beta'"), "{e}");
    let e = ClosedTerm::from_name("gravity", |_| Some(1.0)).unwrap_err();
    assert!(e.to_string().contains("node_mass or spring"), "{e}");
    let e = ClosedTerm::NodeMass { mass: -1.0 }.check().unwrap_err();
    assert!(e.to_string().contains("positive"), "{e}");
    let e = ClosedTerm::Spring {
        k: f64::NAN,
        beta: 0.0,
    }
    .check()
    .unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
}
