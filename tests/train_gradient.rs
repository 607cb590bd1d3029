//! Exact training gradients (adjoint + hyper-dual backprop, docs/DESIGN.md §3) against central finite
//! differences of the loss with respect to the parameters.
//!
//! Configurations are chosen well-conditioned so that 1e-6 relative agreement is meaningful:
//! single-site states are kept only where the learned mass matrix has condition number < 20,
//! and graph models add a fixed known kinetic term (M = 2I or I) to a small-output MLP term.

use lgn::density::{Ball, Density, Mlp, MlpDensity, Wave1d};
use lgn::dynamics::Dynamics;
use lgn::graph::Graph;
use lgn::lagrangian::Lagrangian;
use lgn::sites::Sites;
use lgn::solve::SolverKind;
use lgn::train::baselines::{hnn_loss_grad, mlp_loss_grad, vector_mlp_init};
use lgn::train::gradient::{lnn_dense_loss_grad, lnn_graph_loss_grad, set_mlp_terms, Samples};
use lgn::train::hyperdual::{flatten, unflatten};
use lgn::train::LossKind;
use lgn::train::MassPenalty;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller, enough for test data
    let u: f64 = rng.random_range(1e-12..1.0);
    let v: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Compare an exact gradient with fourth-order central differences of `f` on the parameters `which`.
/// Error per parameter: |fd − g| / max(|g|, 1e-3·‖g‖∞); returns the worst.
fn fd_check(
    theta: &[f64],
    exact: &[f64],
    which: &[usize],
    eps: f64,
    f: &mut dyn FnMut(&[f64]) -> f64,
) -> f64 {
    let gmax = exact.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    assert!(gmax > 0.0, "gradient is identically zero");
    let mut worst = 0.0f64;
    let mut th = theta.to_vec();
    for &i in which {
        let h = eps * (1.0 + theta[i].abs());
        let mut at = |x: f64| {
            th[i] = theta[i] + x;
            let v = f(&th);
            th[i] = theta[i];
            v
        };
        // fourth-order central difference (Richardson): truncation O(h⁴)
        let d1 = at(h) - at(-h);
        let d2 = at(2.0 * h) - at(-2.0 * h);
        let fd = (8.0 * d1 - d2) / (12.0 * h);
        let err = (fd - exact[i]).abs() / exact[i].abs().max(1e-3 * gmax);
        if err > worst && std::env::var("FD_DEBUG").is_ok() {
            println!("  param {i}: fd {fd:.12e} exact {:.12e}", exact[i]);
        }
        worst = worst.max(err);
    }
    worst
}

fn random_mlp(sizes: &[usize], seed: u64, out_scale: f64) -> Mlp {
    let mut m = Mlp::paper_init(sizes, seed);
    let mut rng = StdRng::seed_from_u64(seed + 1000);
    for b in m.biases.iter_mut() {
        for x in b.iter_mut() {
            *x = 0.3 * normal(&mut rng);
        }
    }
    let p = sizes[0];
    m.input_shift = (0..p).map(|_| 0.2 * normal(&mut rng)).collect();
    m.input_scale = (0..p).map(|_| 0.8 + 0.4 * rng.random::<f64>()).collect();
    let last = m.weights.len() - 1;
    for w in m.weights[last].iter_mut() {
        *w *= out_scale;
    }
    m
}

/// Condition number of a symmetric 2×2 matrix (row-major).
fn cond2(m: &[f64]) -> f64 {
    let (a, b, d) = (m[0], m[1], m[3]);
    let tr = 0.5 * (a + d);
    let r = ((0.5 * (a - d)).powi(2) + b * b).sqrt();
    let (l1, l2) = ((tr + r).abs(), (tr - r).abs());
    l1.max(l2) / l1.min(l2)
}

fn dblpend_case() -> (MlpDensity, Samples) {
    dblpend_case_with(false)
}

/// [`dblpend_case`]; with `embed` the network sees the angle embedding (cos q, sin q, q̇)
/// (docs/DESIGN.md §14.6).
fn dblpend_case_with(embed: bool) -> (MlpDensity, Samples) {
    let mlp = random_mlp(&[if embed { 6 } else { 4 }, 12, 12, 1], 3, 1.0);
    let dens = MlpDensity::with_input(mlp, 1, 2, 0, embed).unwrap();
    let data = well_conditioned_samples(&dens, 24, 11);
    (dens, data)
}

/// `n` random states (q, q̇) ~ N(0, 1) where `dens`'s learned M has condition number < 20,
/// random targets and weights.
fn well_conditioned_samples(dens: &MlpDensity, n: usize, seed: u64) -> Samples {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut input, mut target) = (vec![], vec![]);
    while input.len() < 4 * n {
        let x: Vec<f64> = (0..4).map(|_| normal(&mut rng)).collect();
        let rec = lgn::density::eval_one(dens, &x);
        let lay = dens.layout();
        if cond2(&rec[lay.mass()..lay.mass() + 4]) < 20.0 {
            input.extend(&x);
            target.push(normal(&mut rng));
            target.push(normal(&mut rng));
        }
    }
    let w: Vec<f64> = (0..n).map(|i| 0.5 + (i % 3) as f64 * 0.25).collect();
    Samples::new(4, 2, input, target, Some(w)).unwrap()
}

/// Plain (q, q̇) inputs and the angle embedding (cos q, sin q, q̇) (docs/DESIGN.md §14.6: the
/// adjoint channels mapped by `density::embed::embed_adjoint_channels`), for the three losses.
#[test]
fn dblpend_lnn_gradient_matches_finite_differences() {
    for embed in [false, true] {
        let (dens, data) = dblpend_case_with(embed);
        assert_eq!(dens.embedded(), embed);
        let idx: Vec<usize> = (0..data.n).collect();
        let theta = flatten(&dens.mlp);
        for loss in [LossKind::Mse, LossKind::L1, LossKind::Huber] {
            let (l0, g) = lnn_dense_loss_grad(&dens, &data, &idx, loss, true).unwrap();
            assert!(l0.is_finite() && l0 > 0.0);
            let mut f = |th: &[f64]| {
                let mut m = dens.mlp.clone();
                unflatten(&mut m, th);
                let d = MlpDensity::with_input(m, 1, 2, 0, embed).unwrap();
                lnn_dense_loss_grad(&d, &data, &idx, loss, false).unwrap().0
            };
            let all: Vec<usize> = (0..theta.len()).collect();
            let worst = fd_check(&theta, &g, &all, 2e-4, &mut f);
            println!(
                "dblpend LNN (embed {embed}) {loss:?}: {} params, worst rel err {worst:.2e}",
                theta.len()
            );
            assert!(worst < 1e-6, "{loss:?}: worst relative error {worst:e}");
        }
    }
}

/// The loss with the mass-matrix definiteness penalty (total derivative, including the block
/// scale m̄) against finite differences, with a margin large enough that it is active.
#[test]
fn dblpend_lnn_mass_penalty_gradient_matches_finite_differences() {
    let (dens, data) = dblpend_case();
    let idx: Vec<usize> = (0..data.n).collect();
    let theta = flatten(&dens.mlp);
    let pen = Some(MassPenalty {
        exact_scale: true,
        ..MassPenalty::new(3000.0, 0.6).unwrap()
    });
    let eval = |d: &MlpDensity, pen, want| {
        lgn::train::gradient::lnn_dense_loss_grad_penalised(
            d,
            &data,
            &idx,
            LossKind::Mse,
            pen,
            want,
        )
        .unwrap()
    };
    let (l_pen, g, _) = eval(&dens, pen, true);
    let (l_plain, g_plain, _) = eval(&dens, None, true);
    assert!(
        l_pen > l_plain + 0.05 * l_plain,
        "penalty inactive: {l_pen} vs {l_plain}"
    );
    assert!(g.iter().zip(&g_plain).any(|(a, b)| (a - b).abs() > 1e-6));
    let mut f = |th: &[f64]| {
        let mut m = dens.mlp.clone();
        unflatten(&mut m, th);
        let d = MlpDensity::new(m, 1, 2, 0).unwrap();
        eval(&d, pen, false).0
    };
    let all: Vec<usize> = (0..theta.len()).collect();
    let worst = fd_check(&theta, &g, &all, 2e-4, &mut f);
    println!("dblpend LNN + mass penalty: worst rel err {worst:.2e}");
    assert!(worst < 1e-6, "worst relative error {worst:e}");
}

/// The dense single-site path and the general graph path (Dynamics + adjoint) agree.
#[test]
fn dense_and_graph_paths_agree() {
    let (dens, data) = dblpend_case();
    let idx: Vec<usize> = (0..data.n).collect();
    let (l1, g1) = lnn_dense_loss_grad(&dens, &data, &idx, LossKind::Mse, true).unwrap();
    let mut dy = lgn::systems::single_site(Arc::new(dens.clone()), SolverKind::Auto).unwrap();
    let (l2, g2) = lnn_graph_loss_grad(
        &mut dy,
        &[Some(&dens.mlp)],
        &data,
        &idx,
        LossKind::Mse,
        true,
    )
    .unwrap();
    assert!((l1 - l2).abs() < 1e-12 * l1.abs(), "{l1} vs {l2}");
    let gmax = g1.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let diff = g1
        .iter()
        .zip(&g2)
        .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
    assert!(diff < 1e-11 * gmax, "max diff {diff:e} (gmax {gmax:e})");
}

#[test]
fn ring_lgn_gradient_matches_finite_differences() {
    let n = 16;
    let graph = Graph::ring(n, 1).unwrap();
    let sites = Sites::stencil3(&graph).unwrap();
    let mlp = random_mlp(&[6, 10, 10, 1], 5, 0.05);
    let kin: Arc<dyn Density> = Arc::new(Wave1d { dx: 0.5 });
    let lag = Lagrangian::new(n, 1, sites.clone(), kin)
        .unwrap()
        .with_term(
            sites,
            Arc::new(MlpDensity::new(mlp.clone(), 3, 1, 0).unwrap()),
        )
        .unwrap();
    let mut dy = Dynamics::new(lag, SolverKind::Auto, graph.kind).unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let ns = 3;
    let input: Vec<f64> = (0..ns * 2 * n).map(|_| normal(&mut rng)).collect();
    let target: Vec<f64> = (0..ns * n).map(|_| normal(&mut rng)).collect();
    let data = Samples::new(2 * n, n, input, target, None).unwrap();
    let idx: Vec<usize> = (0..ns).collect();
    let theta = flatten(&mlp);
    for loss in [LossKind::Mse, LossKind::L1, LossKind::Huber] {
        let (_, g) =
            lnn_graph_loss_grad(&mut dy, &[None, Some(&mlp)], &data, &idx, loss, true).unwrap();
        let mut f = |th: &[f64]| {
            let mut m = mlp.clone();
            unflatten(&mut m, th);
            set_mlp_terms(&mut dy, &[None, Some(&m)]).unwrap();
            let l = lnn_graph_loss_grad(&mut dy, &[None, Some(&m)], &data, &idx, loss, false)
                .unwrap()
                .0;
            set_mlp_terms(&mut dy, &[None, Some(&mlp)]).unwrap();
            l
        };
        let all: Vec<usize> = (0..theta.len()).collect();
        let worst = fd_check(&theta, &g, &all, 2e-4, &mut f);
        println!(
            "ring n=16 LGN {loss:?}: {} params, worst rel err {worst:.2e}",
            theta.len()
        );
        assert!(worst < 1e-6, "{loss:?}: worst relative error {worst:e}");
    }
}

#[test]
fn random_graph_node_and_edge_terms_gradient() {
    let n = 9;
    let mut rng = StdRng::seed_from_u64(4);
    let mut edges = vec![];
    for i in 1..n {
        edges.push((rng.random_range(0..i), i)); // spanning tree
    }
    for _ in 0..6 {
        let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
        if a != b {
            edges.push((a, b));
        }
    }
    let graph = Graph::from_edges(n, &edges, 2).unwrap();
    let node_sites = Sites::nodes(&graph).unwrap();
    let feats: Vec<f64> = (0..n).map(|_| 1.0 + rng.random::<f64>()).collect();
    let node_feat_sites = node_sites.clone().with_features(1, feats).unwrap();
    let edge_sites = Sites::edges(&graph).unwrap();
    let ne = edge_sites.len();
    let efeats: Vec<f64> = (0..ne).map(|_| 0.5 + rng.random::<f64>()).collect();
    let edge_sites = edge_sites.with_features(1, efeats).unwrap();
    let node_mlp = random_mlp(&[5, 8, 8, 1], 7, 0.01);
    let edge_mlp = random_mlp(&[9, 8, 1], 8, 0.01);
    let lag = Lagrangian::new(n, 2, node_sites, Arc::new(Ball { g: 1.0 }))
        .unwrap()
        .with_term(
            node_feat_sites,
            Arc::new(MlpDensity::new(node_mlp.clone(), 1, 2, 1).unwrap()),
        )
        .unwrap()
        .with_term(
            edge_sites,
            Arc::new(MlpDensity::new(edge_mlp.clone(), 2, 2, 1).unwrap()),
        )
        .unwrap();
    let mut dy = Dynamics::new(lag, SolverKind::Sparse, graph.kind).unwrap();
    let nc = 2 * n;
    let ns = 2;
    let input: Vec<f64> = (0..ns * 2 * nc).map(|_| normal(&mut rng)).collect();
    let target: Vec<f64> = (0..ns * nc).map(|_| normal(&mut rng)).collect();
    let data = Samples::new(2 * nc, nc, input, target, Some(vec![0.7, 1.3])).unwrap();
    let idx: Vec<usize> = (0..ns).collect();
    let mut theta = flatten(&node_mlp);
    let n_node = theta.len();
    theta.extend(flatten(&edge_mlp));
    let (_, g) = lnn_graph_loss_grad(
        &mut dy,
        &[None, Some(&node_mlp), Some(&edge_mlp)],
        &data,
        &idx,
        LossKind::Mse,
        true,
    )
    .unwrap();
    assert_eq!(g.len(), theta.len());
    let mut f = |th: &[f64]| {
        let mut a = node_mlp.clone();
        let mut b = edge_mlp.clone();
        unflatten(&mut a, &th[..n_node]);
        unflatten(&mut b, &th[n_node..]);
        set_mlp_terms(&mut dy, &[None, Some(&a), Some(&b)]).unwrap();
        lnn_graph_loss_grad(
            &mut dy,
            &[None, Some(&a), Some(&b)],
            &data,
            &idx,
            LossKind::Mse,
            false,
        )
        .unwrap()
        .0
    };
    let all: Vec<usize> = (0..theta.len()).collect();
    let worst = fd_check(&theta, &g, &all, 2e-4, &mut f);
    println!(
        "random graph node+edge: {} params, worst rel err {worst:.2e}",
        theta.len()
    );
    assert!(worst < 1e-6, "worst relative error {worst:e}");
}

#[test]
fn hnn_and_mlp_baseline_gradients() {
    let mut rng = StdRng::seed_from_u64(31);
    let ns = 20;
    let input: Vec<f64> = (0..ns * 4).map(|_| normal(&mut rng)).collect();
    let target: Vec<f64> = (0..ns * 4).map(|_| normal(&mut rng)).collect();
    let data = Samples::new(4, 4, input.clone(), target, None).unwrap();
    let idx: Vec<usize> = (0..ns).collect();
    let hmlp = random_mlp(&[4, 10, 10, 1], 9, 1.0);
    let dens = MlpDensity::new(hmlp.clone(), 1, 2, 0).unwrap();
    let theta = flatten(&hmlp);
    let (_, g) = hnn_loss_grad(&dens, &data, &idx, LossKind::Mse, true).unwrap();
    let mut f = |th: &[f64]| {
        let mut m = hmlp.clone();
        unflatten(&mut m, th);
        let d = MlpDensity::new(m, 1, 2, 0).unwrap();
        hnn_loss_grad(&d, &data, &idx, LossKind::Mse, false)
            .unwrap()
            .0
    };
    let all: Vec<usize> = (0..theta.len()).collect();
    let worst = fd_check(&theta, &g, &all, 2e-4, &mut f);
    println!("HNN: worst rel err {worst:.2e}");
    assert!(worst < 1e-6, "HNN worst relative error {worst:e}");

    let target2: Vec<f64> = (0..ns * 2).map(|_| normal(&mut rng)).collect();
    let data2 = Samples::new(4, 2, input, target2, None).unwrap();
    let mut vm = vector_mlp_init(&[4, 10, 10, 2], 2);
    vm.input_scale = vec![1.5, 0.7, 1.0, 2.0];
    let theta = flatten(&vm);
    let (_, g) = mlp_loss_grad(&vm, &data2, &idx, LossKind::L1, true).unwrap();
    let mut f = |th: &[f64]| {
        let mut m = vm.clone();
        unflatten(&mut m, th);
        mlp_loss_grad(&m, &data2, &idx, LossKind::L1, false)
            .unwrap()
            .0
    };
    let all: Vec<usize> = (0..theta.len()).collect();
    let worst = fd_check(&theta, &g, &all, 2e-4, &mut f);
    println!("MLP baseline: worst rel err {worst:.2e}");
    assert!(worst < 1e-6, "MLP worst relative error {worst:e}");
}

/// A sample with a singular learned mass matrix is dropped: loss and gradient equal those of
/// the remaining samples (up to the minibatch normalisation, which still counts the dropped
/// sample's weight).
#[test]
fn dense_path_drops_singular_mass_samples() {
    let (dens, data) = dblpend_case();
    let mut input = data.input.clone();
    let mut target = data.target.clone();
    // A huge velocity: every softplus is saturated except the one nearest its kink, so
    // M = ∂²L/∂q̇² is (numerically) rank one.
    let s = 2e4;
    input.extend([0.1, 0.2, s, -s]);
    target.extend([1.0, -1.0]);
    let mut w = data.weights.clone().unwrap();
    w.push(0.75);
    let bad = Samples::new(4, 2, input, target, Some(w.clone())).unwrap();
    let idx_good: Vec<usize> = (0..data.n).collect();
    let idx_all: Vec<usize> = (0..bad.n).collect();
    let (lg, gg) = lnn_dense_loss_grad(&dens, &data, &idx_good, LossKind::Mse, true).unwrap();
    let (la, ga, nd) = lgn::train::gradient::lnn_dense_loss_grad_counted(
        &dens,
        &bad,
        &idx_all,
        LossKind::Mse,
        true,
    )
    .unwrap();
    assert_eq!(nd, 1);
    let sw_good: f64 = w[..data.n].iter().sum();
    let f = sw_good / (sw_good + 0.75);
    assert!((la - f * lg).abs() < 1e-12 * lg.abs(), "{la} vs {}", f * lg);
    for (a, b) in ga.iter().zip(&gg) {
        assert!(
            (a - f * b).abs() <= 1e-10 * (1.0 + b.abs()),
            "{a} vs {}",
            f * b
        );
    }
}

/// Batched training (docs/DESIGN.md §15): the minibatch gradient, with the sites of all samples
/// packed into shared blocks (here 8 samples × 100 sites, so blocks straddle samples), equals
/// the sum of the per-sample passes (`lnn_graph_sample_sens`, one sample at a time) to 1e-12,
/// for the parameter gradient and the mass-diagonal sensitivity alike.
#[test]
fn batched_ring_gradient_equals_the_per_sample_sum() {
    use lgn::train::gradient::{lnn_graph_loss_grad_sens, lnn_graph_sample_sens};
    let n = 100;
    let graph = Graph::ring(n, 1).unwrap();
    let sites = Sites::stencil3(&graph).unwrap();
    let mlp = random_mlp(&[6, 12, 12, 1], 9, 0.05);
    let kin: Arc<dyn Density> = Arc::new(Wave1d { dx: 0.5 });
    let lag = Lagrangian::new(n, 1, sites.clone(), kin)
        .unwrap()
        .with_term(
            sites,
            Arc::new(MlpDensity::new(mlp.clone(), 3, 1, 0).unwrap()),
        )
        .unwrap();
    let mut dy = Dynamics::new(lag, SolverKind::Auto, graph.kind).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let ns = 8;
    let input: Vec<f64> = (0..ns * 2 * n).map(|_| normal(&mut rng)).collect();
    let target: Vec<f64> = (0..ns * n).map(|_| normal(&mut rng)).collect();
    let w: Vec<f64> = (0..ns).map(|i| 0.5 + 0.25 * i as f64).collect();
    let data = Samples::new(2 * n, n, input, target, Some(w)).unwrap();
    let idx: Vec<usize> = vec![3, 0, 7, 1, 6, 2, 5, 4];
    let mlps = [None, Some(&mlp)];
    for loss in [LossKind::Mse, LossKind::Huber] {
        let mut sens = vec![0.0; n];
        let (l, g) =
            lnn_graph_loss_grad_sens(&mut dy, &mlps, &data, &idx, loss, true, Some(&mut sens))
                .unwrap();
        let inv = data.inv_norm(&idx);
        let (mut lr, mut gr, mut sr) = (0.0, vec![0.0; g.len()], vec![0.0; n]);
        for &i in &idx {
            let row = data.input_row(i);
            lr += lnn_graph_sample_sens(
                &mut dy,
                &mlps,
                &row[..n],
                &row[n..],
                data.target_row(i),
                data.weight(i) * inv,
                loss,
                Some(&mut gr),
                Some(&mut sr),
            )
            .unwrap();
        }
        assert!((l - lr).abs() <= 1e-12 * lr.abs(), "{l} vs {lr}");
        let rel = |a: &[f64], b: &[f64]| {
            let m = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(m > 0.0);
            a.iter()
                .zip(b)
                .fold(0.0f64, |e, (x, y)| e.max((x - y).abs()))
                / m
        };
        let (eg, es) = (rel(&g, &gr), rel(&sens, &sr));
        println!("{loss:?}: batched vs per-sample: grad {eg:.1e}, mass sens {es:.1e}");
        assert!(
            eg <= 1e-12 && es <= 1e-12,
            "{loss:?}: grad {eg:e}, sens {es:e}"
        );
    }
}

/// f32 forward passes in training (`--precision f32`): the loss and gradient differ from the
/// f64 ones only by single-precision round-off of the MLP evaluations (relative < 1e-3 here),
/// and do differ (the f32 path is really taken).
#[test]
fn f32_forward_gradient_is_close_to_f64() {
    use lgn::density::Precision;
    use lgn::train::gradient::set_mlp_terms_with;
    let n = 64;
    let graph = Graph::ring(n, 1).unwrap();
    let sites = Sites::stencil3(&graph).unwrap();
    let mlp = random_mlp(&[6, 16, 16, 1], 4, 0.05);
    let kin: Arc<dyn Density> = Arc::new(Wave1d { dx: 0.5 });
    let lag = Lagrangian::new(n, 1, sites.clone(), kin)
        .unwrap()
        .with_term(
            sites,
            Arc::new(MlpDensity::new(mlp.clone(), 3, 1, 0).unwrap()),
        )
        .unwrap();
    let mut dy = Dynamics::new(lag, SolverKind::Auto, graph.kind).unwrap();
    let mut rng = StdRng::seed_from_u64(8);
    let ns = 6;
    let input: Vec<f64> = (0..ns * 2 * n).map(|_| normal(&mut rng)).collect();
    let target: Vec<f64> = (0..ns * n).map(|_| normal(&mut rng)).collect();
    let data = Samples::new(2 * n, n, input, target, None).unwrap();
    let idx: Vec<usize> = (0..ns).collect();
    let mlps = [None, Some(&mlp)];
    let mut run = |p: Precision| {
        set_mlp_terms_with(&mut dy, &mlps, p).unwrap();
        lnn_graph_loss_grad(&mut dy, &mlps, &data, &idx, LossKind::Mse, true).unwrap()
    };
    let (l64, g64) = run(Precision::F64);
    let (l32, g32) = run(Precision::F32);
    let gmax = g64.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = g64
        .iter()
        .zip(&g32)
        .fold(0.0f64, |e, (a, b)| e.max((a - b).abs()));
    println!(
        "f32 forward: loss rel diff {:.1e}, grad rel diff {:.1e}",
        (l32 - l64).abs() / l64,
        diff / gmax
    );
    assert!((l32 - l64).abs() < 1e-3 * l64, "{l32} vs {l64}");
    assert!(diff < 1e-3 * gmax && diff > 0.0, "{diff:e} of {gmax:e}");
}

/// The data loss and the mass penalty are invariant under L → cL (the dynamics and P do not see
/// the scale of L), so the training gradient must have no component along the output layer's
/// parameters θ_out (d/dc at c = 1 is g · θ_out). The exact-scale penalty keeps that; with m̄ held
/// constant (what training uses) the gradient has a component that, on indefinite M, shrinks L —
/// the collapse of the embedded full-size dblpend run (M → 0, then a non-finite gradient;
/// docs/DESIGN.md §17, stopped there by `MassPenalty::scale_floor`).
#[test]
fn mass_penalty_gradient_does_not_move_the_scale_of_l() {
    // Output weights of mixed sign: the learned M is indefinite at some states.
    let mut mlp = random_mlp(&[6, 12, 12, 1], 3, 1.0);
    let last = mlp.weights.len() - 1;
    for w in mlp.weights[last].iter_mut().step_by(2) {
        *w = -*w;
    }
    let dens = MlpDensity::with_input(mlp, 1, 2, 0, true).unwrap();
    let data = well_conditioned_samples(&dens, 32, 12);
    let idx: Vec<usize> = (0..data.n).collect();
    let theta = flatten(&dens.mlp);
    let n_out = dens.mlp.weights[last].len() + dens.mlp.biases[last].len();
    let out = theta.len() - n_out..theta.len();
    // Indefinite learned mass matrices in the batch: the penalty pushes a wrong-sign eigenvalue.
    let lay = dens.layout();
    let indefinite = (0..data.n)
        .filter(|&i| {
            let m = &lgn::density::eval_one(&dens, data.input_row(i))[lay.mass()..lay.mass() + 4];
            m[0] * m[3] - m[1] * m[2] < 0.0
        })
        .count();
    assert!(indefinite > 0, "the test needs indefinite learned M");
    let along = |exact_scale: bool| {
        let pen = MassPenalty {
            exact_scale,
            ..MassPenalty::new(3000.0, 0.1).unwrap()
        };
        let (l, g, nd) = lgn::train::gradient::lnn_dense_loss_grad_penalised(
            &dens,
            &data,
            &idx,
            LossKind::Huber,
            Some(pen),
            true,
        )
        .unwrap();
        assert_eq!(nd, 0);
        let dot: f64 = out.clone().map(|k| g[k] * theta[k]).sum();
        let gn = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let tn = theta.iter().map(|x| x * x).sum::<f64>().sqrt();
        (l, dot / (gn * tn))
    };
    let (l_exact, cos_exact) = along(true);
    let (l_frozen, cos_frozen) = along(false);
    println!(
        "{indefinite}/{} indefinite; g·θ_out/(‖g‖‖θ‖): exact scale {cos_exact:.2e}, m̄ held constant {cos_frozen:.2e}",
        data.n
    );
    assert_eq!(l_exact, l_frozen);
    assert!(cos_exact.abs() < 1e-10, "exact scale: {cos_exact:e}");
    // With m̄ held constant, gradient descent moves along −g: g·θ_out > 0 shrinks L.
    assert!(cos_frozen > 1e-3, "m̄ held constant: {cos_frozen:e}");
}
