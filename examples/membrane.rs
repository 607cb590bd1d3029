//! A membrane on a user's Gmsh mesh, through the library: finite-element truth samples on
//! `meshes/square_coarse.msh`, a `node-edge` Lagrangian graph network trained on them (mesh
//! features: lumped areas and cotangent weights), its acceleration error on the training mesh and
//! zero-shot on a mesh of another shape (`meshes/lshape.msh`), and a variational rollout there.
//!
//! ```text
//! cargo run --release --example membrane [--epochs N] [--samples N]
//! ```
//!
//! Prints one JSON line of metrics.

use lgn::data::wave_mesh::{fem_dynamics, wave_mesh_samples};
use lgn::integrate::{linspace_times, solve, Method, MidpointOptions};
use lgn::mesh::fields::SmoothFieldConfig;
use lgn::model::{FeatureSet, GraphModel, NetShape, SystemGraph};
use lgn::solve::SolverKind;
use lgn::train::{self, graph::GraphTrainer, Samples, TrainConfig};
use std::path::Path;

#[allow(dead_code)]
fn main() -> lgn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    println!(
        "{}",
        run(
            flag("--epochs", 100),
            flag("--samples", 400),
            flag("--batch", 16)
        )?
    );
    Ok(())
}

/// Relative L2 acceleration error of `dy` over `data`.
fn rel_error(dy: &mut lgn::dynamics::Dynamics, data: &Samples) -> lgn::Result<f64> {
    let n = data.out_dim;
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..data.n {
        let row = data.input_row(i);
        let a = dy.accelerations(&row[..n], &row[n..])?;
        for (p, y) in a.iter().zip(data.target_row(i)) {
            num += (p - y).powi(2);
            den += y * y;
        }
    }
    Ok((num / den).sqrt())
}

/// Train on `samples` FEM samples for `epochs` with minibatches of `batch`; returns the metrics.
pub fn run(epochs: usize, samples: usize, batch: usize) -> lgn::Result<serde_json::Value> {
    let meshes = Path::new(env!("CARGO_MANIFEST_DIR")).join("meshes");
    let train_mesh = SystemGraph::from_mesh_file(&meshes.join("square_coarse.msh"))?;
    let other = SystemGraph::from_mesh_file(&meshes.join("lshape.msh"))?;
    let (tm, om) = (
        train_mesh.mesh.clone().unwrap(),
        other.mesh.clone().unwrap(),
    );
    let fields = SmoothFieldConfig::for_mesh(&tm);
    let data = Samples::from_data(&wave_mesh_samples(&tm, samples, &fields, 1)?)?;
    let test = Samples::from_data(&wave_mesh_samples(&tm, 16, &fields, 2)?)?;
    let test_other = Samples::from_data(&wave_mesh_samples(&om, 16, &fields, 3)?)?;

    let d = train_mesh.n_coords();
    let qs: Vec<&[f64]> = (0..data.n).map(|i| &data.input_row(i)[..d]).collect();
    let model = GraphModel::node_edge(
        &train_mesh,
        FeatureSet::Mesh,
        false,
        &NetShape::default(),
        &qs,
    )?;
    let cfg = TrainConfig {
        epochs,
        batch,
        lr: 3e-3,
        schedule: train::Schedule::Onecycle,
        ..TrainConfig::default()
    };
    let t0 = std::time::Instant::now();
    let mut trainer = GraphTrainer::new(model, train_mesh.clone())?;
    let report = train::fit(&mut trainer, &data, &cfg, &mut |_| {})?;
    let train_s = t0.elapsed().as_secs_f64();
    let model = trainer.model;

    let err_train = rel_error(&mut model.dynamics(&train_mesh, SolverKind::Auto)?, &test)?;
    let mut zs = model.dynamics(&other, SolverKind::Auto)?;
    let err_other = rel_error(&mut zs, &test_other)?;

    // A zero-shot rollout on the L-shape: the true (FEM) energy along the learned trajectory.
    let mut fem = fem_dynamics(&om, SolverKind::Auto)?;
    let n = other.n_coords();
    let (q0, v0) = (
        test_other.input_row(0)[..n].to_vec(),
        test_other.input_row(0)[n..].to_vec(),
    );
    let (dt, steps) = (0.002, 100);
    let mid = Method::Midpoint {
        dt,
        opts: MidpointOptions::default(),
    };
    let sol = solve(&mut zs, &mid, &q0, &v0, &linspace_times(steps + 1, dt))?;
    let e0 = fem.energy(&q0, &v0)?;
    let mut drift: f64 = 0.0;
    for k in 0..=steps {
        drift = drift.max((fem.energy(sol.q_at(k), sol.v_at(k))? - e0).abs() / e0.abs());
    }
    Ok(serde_json::json!({
        "train_seconds": train_s,
        "epochs": report.epochs,
        "val_rel_error": (report.best_val_loss / report.zero_val_loss).sqrt(),
        "train_mesh_rel_error": err_train,
        "zero_shot_mesh": "lshape",
        "zero_shot_rel_error": err_other,
        "zero_shot_ratio": err_other / err_train,
        "rollout_true_energy_max_rel_drift": drift,
        "rollout_steps": steps,
    }))
}
