//! "Bring your own system": a user's spring chain as a graph file + trajectories file, trained,
//! evaluated and simulated through the library and the CLI; and the errors a user meets when
//! files do not fit each other.

#[path = "../examples/spring_chain.rs"]
mod spring_chain;

use lgn::io::{GraphData, TrajectoryWriter, TrajectoryWriterOptions};
use lgn::model::{AnyModel, SystemGraph};
use std::path::{Path, PathBuf};
use std::process::Command;

fn lgn_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lgn"))
        .args(args)
        .output()
        .expect("run lgn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-byo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A state string for the 16-node chain with fixed (still) ends.
fn chain_state() -> String {
    let n = 16;
    let q = (0..n).map(|i| 0.5 * (std::f64::consts::PI * i as f64 / 15.0).sin());
    let v = (0..n).map(|i| 0.3 * (2.0 * std::f64::consts::PI * i as f64 / 15.0).sin());
    q.chain(v)
        .map(|x| format!("{x:.6}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn spring_chain_end_to_end() {
    let dir = tmpdir("chain");
    // Library path (the example): 10 epochs already meet the rollout targets.
    let m = spring_chain::run(&dir, 10).unwrap();
    let get = |k: &str| m[k].as_f64().unwrap();
    assert!(get("val_rel_error") < 0.05, "{m}");
    assert!(get("true_energy_max_rel_drift") < 0.01, "{m}");
    assert!(get("position_rel_l2_error") < 0.05, "{m}");
    assert!(get("rollout_time") >= 30.0);

    // CLI on the same files, default flags except a short run.
    let (g, t, model) = (
        dir.join("chain.h5"),
        dir.join("chain_traj.h5"),
        dir.join("m.h5"),
    );
    let (code, out, err) = lgn_cmd(&[
        "train",
        "--graph",
        s(&g),
        "--data",
        s(&t),
        "--out",
        s(&model),
        "--epochs",
        "3",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["no_better_than_zero"], false);
    assert!(
        summary["val_rel_error"].as_f64().unwrap() < 0.5,
        "{summary}"
    );
    assert!(err.contains("boundary nodes fixed"), "{err}");

    // accel --model equals the library's dynamics of the loaded model.
    let st = chain_state();
    let (code, out, err) = lgn_cmd(&["accel", "--model", s(&model), "--state", &st, "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["model_kind"], "graph");
    let a_cli: Vec<f64> = j["a"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let vals: Vec<f64> = st.split(',').map(|x| x.parse().unwrap()).collect();
    let any = AnyModel::load(&model).unwrap();
    let mut dy = any
        .dynamics(None, None, lgn::solve::SolverKind::Auto)
        .unwrap();
    let a_lib = dy.accelerations(&vals[..16], &vals[16..]).unwrap();
    for (x, y) in a_cli.iter().zip(&a_lib) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} vs {y}");
    }
    // Fixed ends do not accelerate.
    assert_eq!(a_cli[0], 0.0);
    assert_eq!(a_cli[15], 0.0);

    // simulate --model on its own graph.
    let sim = dir.join("sim.h5");
    let (code, _, err) = lgn_cmd(&[
        "simulate",
        "--model",
        s(&model),
        "--state",
        &st,
        "--t-end",
        "2",
        "--dt",
        "0.05",
        "--integrator",
        "midpoint",
        "--out",
        s(&sim),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let tr = lgn::io::TrajectoryData::read(&sim).unwrap();
    assert_eq!(tr.n_frames(), 41);
    assert!(
        tr.q.iter().step_by(16).all(|&x| x == 0.0),
        "fixed node 0 moved"
    );

    // A fixed node with a velocity is refused, naming the coordinate.
    let mut bad: Vec<String> = st.split(',').map(String::from).collect();
    bad[16] = "0.1".into();
    let (code, _, err) = lgn_cmd(&[
        "simulate",
        "--model",
        s(&model),
        "--state",
        &bad.join(","),
        "--t-end",
        "1",
        "--dt",
        "0.1",
        "--out",
        s(&dir.join("bad.h5")),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("coordinate 0") && err.contains("fixed"),
        "{err}"
    );
    assert!(!dir.join("bad.h5").exists());

    // Zero-shot on a longer chain given as another graph file.
    let mut g2 = GraphData::new(24, 1, (0..23).map(|i| [i, i + 1]).collect());
    let mut b = vec![false; 24];
    b[0] = true;
    b[23] = true;
    g2.boundary = Some(b);
    let g2p = dir.join("chain24.h5");
    g2.write(&g2p, false).unwrap();
    let st24: String = (0..48)
        .map(|i| {
            if i == 0 || i == 23 || i >= 24 {
                "0".to_string()
            } else {
                "0.1".to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let (code, out, err) = lgn_cmd(&[
        "accel",
        "--model",
        s(&model),
        "--graph",
        s(&g2p),
        "--state",
        &st24,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["n_coords"], 24);

    // Errors that name the file and the problem.
    // (a) a graph whose dof does not match the model;
    let g3p = dir.join("dof2.h5");
    GraphData::new(16, 2, (0..15).map(|i| [i, i + 1]).collect())
        .write(&g3p, false)
        .unwrap();
    let (code, _, err) = lgn_cmd(&[
        "accel",
        "--model",
        s(&model),
        "--graph",
        s(&g3p),
        "--state",
        &st,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("dof2.h5") && err.contains("dof = 1"), "{err}");
    // (b) a graph with features the model was not trained with;
    let g4p = dir.join("feat.h5");
    let mut g4 = GraphData::new(16, 1, (0..15).map(|i| [i, i + 1]).collect());
    g4.node_features = Some(ndarray::Array2::ones((16, 2)));
    g4.write(&g4p, false).unwrap();
    let (code, _, err) = lgn_cmd(&[
        "accel",
        "--model",
        s(&model),
        "--graph",
        s(&g4p),
        "--state",
        &st,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("feat.h5") && err.contains("node features"),
        "{err}"
    );
    // (c) a mesh whose node count does not match the state;
    let mesh = Path::new(env!("CARGO_MANIFEST_DIR")).join("meshes/square_coarse.msh");
    let (code, _, err) = lgn_cmd(&[
        "accel",
        "--model",
        s(&model),
        "--mesh",
        s(&mesh),
        "--state",
        &st,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("square_coarse.msh")
            && err.contains("16 values in q")
            && err.contains("400 coordinates"),
        "{err}"
    );
    // (d) trajectories without accelerations;
    let nq = dir.join("noqddot.h5");
    let opts = TrajectoryWriterOptions::default();
    let mut w = TrajectoryWriter::create(&nq, 1, 16, &opts, false).unwrap();
    let z = ndarray::Array2::<f64>::zeros((1, 16));
    w.push_frame(0.0, z.view(), z.view(), None, None).unwrap();
    w.finish().unwrap();
    let (code, _, err) = lgn_cmd(&[
        "train",
        "--graph",
        s(&g),
        "--data",
        s(&nq),
        "--out",
        s(&dir.join("x.h5")),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("noqddot.h5") && err.contains("/qddot"),
        "{err}"
    );
    assert!(!dir.join("x.h5").exists());
    // (e) data whose states do not fit the graph.
    let (code, _, err) = lgn_cmd(&[
        "train",
        "--graph",
        s(&g2p),
        "--data",
        s(&t),
        "--out",
        s(&dir.join("y.h5")),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("chain_traj.h5") && err.contains("24 nodes"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn graph_model_file_round_trip_and_info() {
    let dir = tmpdir("file");
    let mut g = GraphData::new(5, 2, vec![[0, 1], [1, 2], [2, 3], [3, 4], [0, 4]]);
    g.node_features = Some(ndarray::Array2::from_shape_fn((5, 1), |(i, _)| {
        1.0 + i as f64
    }));
    g.edge_features = Some(ndarray::Array2::from_shape_fn((5, 1), |(i, _)| {
        0.5 + i as f64
    }));
    let graph = SystemGraph::from_data(g, "ring5").unwrap();
    let q: Vec<f64> = (0..10).map(|i| (i as f64).sin()).collect();
    let m = lgn::model::GraphModel::node_edge(
        &graph,
        lgn::model::FeatureSet::Graph,
        true,
        &lgn::model::NetShape {
            hidden: 5,
            layers: 2,
            seed: 1,
        },
        &[&q],
    )
    .unwrap();
    let p = dir.join("m.h5");
    m.save(&p, None, false).unwrap();
    let back = lgn::model::load_graph_model(&p).unwrap();
    assert_eq!(back, m);
    let (code, out, err) = lgn_cmd(&["info", s(&p)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("schema: valid"), "{out}");
    assert!(out.contains("terms/0"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
