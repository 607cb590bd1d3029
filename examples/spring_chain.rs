//! A user's own system end to end, through the library: a nonlinear (Fermi–Pasta–Ulam–Tsingou)
//! spring chain with fixed ends, stored as an lgn graph file and a trajectories file, a
//! `node-edge` Lagrangian graph network trained on the trajectories, and a rollout from an
//! unseen state compared with the truth.
//!
//! ```text
//! cargo run --release --example spring_chain [OUT_DIR] [--epochs N]
//! ```
//!
//! Writes `chain.h5` (graph), `chain_traj.h5` (trajectories with qddot) and `chain_model.h5`
//! into OUT_DIR (default: a new temporary folder) and prints one JSON line of metrics.

use lgn::integrate::{self, Method, MidpointOptions};
use lgn::io::{GraphData, TrajectoryWriter, TrajectoryWriterOptions};
use lgn::model::{Boundary, FeatureSet, GraphModel, NetShape, SystemGraph};
use lgn::solve::SolverKind;
use lgn::train::{self, graph::GraphTrainer, Samples, TrainConfig};
use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;

const N: usize = 16;
const K: f64 = 16.0;
const BETA: f64 = 8.0;

/// Smooth random displacements of the chain's fixed-end modes (zero at both ends).
fn random_state(rng: &mut StdRng) -> (Vec<f64>, Vec<f64>) {
    let mut q = vec![0.0; N];
    let mut v = vec![0.0; N];
    for m in 1..=4 {
        let (a, b) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        for i in 0..N {
            let s = (std::f64::consts::PI * (m * i) as f64 / (N - 1) as f64).sin() / m as f64;
            q[i] += 0.8 * a * s;
            v[i] += 2.0 * b * s;
        }
    }
    (q, v)
}

fn chain_graph() -> GraphData {
    let mut g = GraphData::new(N, 1, (0..N - 1).map(|i| [i, i + 1]).collect());
    g.positions = Some(Array2::from_shape_fn((N, 1), |(i, _)| i as f64));
    let mut b = vec![false; N];
    b[0] = true;
    b[N - 1] = true;
    g.boundary = Some(b);
    g
}

#[allow(dead_code)]
fn main() -> lgn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let epochs = args
        .iter()
        .position(|a| a == "--epochs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let dir = match args.first().filter(|a| !a.starts_with("--")) {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("lgn-spring-chain-{}", std::process::id())),
    };
    println!("{}", run(&dir, epochs)?);
    Ok(())
}

/// Write the files into `dir`, train for `epochs`, roll out; returns the metrics.
pub fn run(dir: &std::path::Path, epochs: usize) -> lgn::Result<serde_json::Value> {
    std::fs::create_dir_all(dir).map_err(|e| lgn::Error::file(dir, e.to_string()))?;

    // 1. The user's files: a graph and trajectories (positions, velocities, accelerations).
    let gpath = dir.join("chain.h5");
    chain_graph().write(&gpath, true)?;
    let graph = SystemGraph::from_graph_file(&gpath)?;
    let mut truth = lgn::systems::spring_network(&graph, 1.0, K, BETA, true, SolverKind::Auto)?;
    let (b, frames, dt) = (24, 201, 0.05);
    let tpath = dir.join("chain_traj.h5");
    let opts = TrajectoryWriterOptions {
        system: Some("fpu_chain".into()),
        with_qddot: true,
        ..Default::default()
    };
    let mut w = TrajectoryWriter::create(&tpath, b, N, &opts, true)?;
    let mut rng = StdRng::seed_from_u64(1);
    let times = integrate::linspace_times(frames, dt);
    let sols = (0..b)
        .map(|_| {
            let (q0, v0) = random_state(&mut rng);
            integrate::solve(
                &mut truth,
                &Method::Dp5(integrate::Dp5Options::tol(1e-10, 1e-10)),
                &q0,
                &v0,
                &times,
            )
        })
        .collect::<lgn::Result<Vec<_>>>()?;
    for (k, &t) in times.iter().enumerate() {
        let q: Vec<f64> = sols.iter().flat_map(|s| s.q_at(k).to_vec()).collect();
        let v: Vec<f64> = sols.iter().flat_map(|s| s.v_at(k).to_vec()).collect();
        let mut a = vec![0.0; b * N];
        for (j, s) in sols.iter().enumerate() {
            truth.accelerations_into(s.q_at(k), s.v_at(k), &mut a[j * N..(j + 1) * N])?;
        }
        let view = |x: &Vec<f64>| {
            ArrayView2::from_shape((b, N), x.as_slice())
                .expect("B×D")
                .to_owned()
        };
        w.push_frame(
            t,
            view(&q).view(),
            view(&v).view(),
            Some(view(&a).view()),
            None,
        )?;
    }
    w.finish()?;

    // 2. Train a node-edge graph network on them (what `lgn train --graph --data` does).
    let raw = lgn::io::read_training_data(&tpath)?;
    let (ns, d) = raw.q.dim();
    let data = Samples::from_data(&raw)?;
    let qs: Vec<&[f64]> = (0..ns).map(|i| &data.input_row(i)[..d]).collect();
    let mut model =
        GraphModel::node_edge(&graph, FeatureSet::Graph, false, &NetShape::default(), &qs)?;
    model.boundary = Boundary::Fixed;
    let cfg = TrainConfig {
        epochs,
        batch: 16,
        lr: 3e-3,
        schedule: train::Schedule::Onecycle,
        ..TrainConfig::default()
    };
    let t0 = std::time::Instant::now();
    let mut trainer = GraphTrainer::new(model, graph.clone())?;
    let report = train::fit(&mut trainer, &data, &cfg, &mut |_| {})?;
    let train_s = t0.elapsed().as_secs_f64();
    trainer
        .model
        .save(&dir.join("chain_model.h5"), None, true)?;

    // 3. Roll out the learned model from an unseen state; compare with the truth.
    let mut learned = trainer.model.dynamics(&graph, SolverKind::Auto)?;
    let (q0, v0) = random_state(&mut StdRng::seed_from_u64(999));
    let steps = 600;
    let times = integrate::linspace_times(steps + 1, dt);
    let mid = Method::Midpoint {
        dt,
        opts: MidpointOptions::default(),
    };
    let sl = integrate::solve(&mut learned, &mid, &q0, &v0, &times)?;
    let st = integrate::solve(
        &mut truth,
        &Method::Dp5(integrate::Dp5Options::tol(1e-10, 1e-10)),
        &q0,
        &v0,
        &times,
    )?;
    let e0 = truth.energy(&q0, &v0)?;
    let mut drift: f64 = 0.0;
    let (mut num, mut den) = (0.0, 0.0);
    for k in 0..=steps {
        drift = drift.max((truth.energy(sl.q_at(k), sl.v_at(k))? - e0).abs() / e0.abs());
        for (a, b) in sl.q_at(k).iter().zip(st.q_at(k)) {
            num += (a - b).powi(2);
            den += b * b;
        }
    }
    Ok(serde_json::json!({
            "train_seconds": train_s,
            "learned_mass": trainer.model.masses(0, &graph)?[1],
            "epochs": report.epochs,
            "best_val_loss": report.best_val_loss,
            "val_rel_error": (report.best_val_loss / report.zero_val_loss).sqrt(),
            "rollout_steps": steps,
            "rollout_time": steps as f64 * dt,
            "true_energy_max_rel_drift": drift,
            "position_rel_l2_error": (num / den).sqrt(),
            "dir": dir.display().to_string(),
    }))
}
