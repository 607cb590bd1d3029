//! Issue 13 on meshes from the command line: `lgn generate wave-mesh --damping C --forcing …`
//! writes a damped, driven FEM truth whose files balance energy and work, and
//! `lgn train --mesh … --dissipation linear` learns a damping rate γ/μ near the truth's c and
//! saves the dissipation in the model file (docs/DESIGN.md §13.6–13.7).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One at a time: a child `lgn` could inherit an HDF5 file another test has open.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-driven-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lgn(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lgn"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn mesh() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("meshes/disk_coarse.msh")
        .display()
        .to_string()
}

/// 60 driven samples on disk_coarse (c = 0.5, inputs over t ∈ [0, 2)) with `forcing`, in `d`.
fn driven_samples(d: &Path, forcing: &str) -> PathBuf {
    let data = d.join("s.h5");
    let (code, err) = lgn(&[
        "generate",
        "wave-mesh",
        "--mesh",
        &mesh(),
        "--damping",
        "0.5",
        "--forcing",
        forcing,
        "--n",
        "60",
        "--t-span",
        "2",
        "--out",
        data.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(code, 0, "{err}");
    data
}

fn read2(f: &hdf5::File, name: &str) -> ndarray::Array2<f64> {
    f.dataset(name).unwrap().read_2d().unwrap()
}

#[test]
fn generated_driven_trajectories_balance_and_bad_forcing_is_named() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = dir("gen");
    let out = d.join("traj.h5");
    let (code, err) = lgn(&[
        "generate",
        "wave-mesh",
        "--mesh",
        &mesh(),
        "--damping",
        "0.4",
        "--forcing",
        "amp=3,freq=0.7,x=0.2,y=-0.1,radius=0.2;amp=0.5,freq=1.3",
        "--kind",
        "trajectories",
        "--batch",
        "2",
        "--frames",
        "41",
        "--dt",
        "0.025",
        "--out",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(code, 0, "{err}");
    let f = hdf5::File::open(&out).unwrap();
    let e = read2(&f, "energy");
    let (wd, wi) = (read2(&f, "w_dissipated"), read2(&f, "w_injected"));
    assert_eq!(read2(&f, "u").dim(), (41, 2));
    let b = read2(&f, "B");
    assert_eq!(b.ncols(), 2);
    // Column 1 is a uniform load: B_i1 = m_i, summing to the mesh area (π for the unit disk,
    // up to the polygon's deficit).
    let area: f64 = b.column(1).sum();
    assert!((area - std::f64::consts::PI).abs() < 0.05, "area {area}");
    for t in 0..2 {
        let scale = e[[t, 0]].abs().max(wd[[t, 40]]);
        assert!(wd[[t, 40]] > 1e-2 * scale && wi[[t, 40]].abs() > 1e-6);
        for k in 0..41 {
            let r = (e[[t, k]] + wd[[t, k]] - wi[[t, k]] - e[[t, 0]]).abs() / scale;
            assert!(r < 1e-8, "trajectory {t} frame {k}: residual {r:e}");
        }
    }
    for (bad, what) in [
        ("amp=1,x=0.2,y=0.1", "freq"),
        ("amp=1,freq=1,x=0.2", "both x and y"),
        ("amp=1,freq=1,x=40,y=40,radius=0.1", "almost no load"),
    ] {
        let (code, err) = lgn(&[
            "generate",
            "wave-mesh",
            "--mesh",
            &mesh(),
            "--forcing",
            bad,
            "--n",
            "3",
            "--out",
            d.join("bad.h5").to_str().unwrap(),
            "--force",
        ]);
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(
            err.contains("forcing source 0") && err.contains(what),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, err) = lgn(&[
        "generate",
        "dblpend",
        "--forcing",
        "amp=1,freq=1",
        "--out",
        d.join("bad.h5").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--forcing applies to wave-mesh"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn mesh_training_learns_the_damping_rate_from_driven_samples() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = dir("train");
    let data = driven_samples(&d, "amp=4,freq=0.5,x=0.2,y=0.3,radius=0.25");
    let model = d.join("m.h5");
    let (code, err) = lgn(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--mesh",
        &mesh(),
        "--dissipation",
        "linear",
        "--hidden",
        "16",
        "--epochs",
        "20",
        "--batch",
        "8",
        "--lr",
        "3e-2",
        "--out",
        model.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("driven data"), "{err}");
    // "learned linear dissipation: damping rate γ_i/μ_i mean R (…)"
    let rate: f64 = err
        .split("γ_i/μ_i mean ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no damping rate in: {err}"));
    assert!((rate - 0.5).abs() < 0.15, "learned rate {rate}, truth 0.5");
    // The model file keeps the dissipation: its dynamics are damped.
    let m = lgn::model::AnyModel::load(&model).unwrap();
    let lgn::model::AnyModel::Graph(g) = &m else {
        panic!("not a graph model")
    };
    assert!(g.dissipation.is_some());
    let dy = m
        .dynamics(None, None, lgn::solve::SolverKind::Auto)
        .unwrap();
    let n = dy.n_coords();
    let p = dy.power(&vec![0.1; n], &vec![1.0; n]);
    assert!(p.dissipated > 0.0);
    // A driven file whose B does not fit is an error naming /B.
    let f = hdf5::File::open_rw(&data).unwrap();
    f.unlink("B").unwrap();
    f.new_dataset_builder()
        .with_data(&ndarray::Array2::<f64>::zeros((5, 1)))
        .create("B")
        .unwrap();
    drop(f);
    let (code, err) = lgn(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--mesh",
        &mesh(),
        "--epochs",
        "1",
        "--out",
        d.join("m2.h5").to_str().unwrap(),
        "--force",
        "--quiet",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/B"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

/// `lgn train --mesh … --input-map learned` on driven samples whose file has no /B: the model
/// learns B = s_i·β (docs/DESIGN.md §13.9), saves it (group input_map), and its learned B
/// points along the truth's load; `lgn simulate --input` uses it, and an input file with its
/// own /B or a u of another width is an error naming /B or /u.
#[test]
fn mesh_training_learns_the_input_map() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = dir("inputmap");
    let data = driven_samples(&d, "amp=4,freq=0.5,x=0.2,y=0.3,radius=0.3");
    let f = hdf5::File::open_rw(&data).unwrap();
    let b_true = read2(&f, "B");
    let q = read2(&f, "q");
    f.unlink("B").unwrap();
    drop(f);
    let train = |map: &str, out: &Path| {
        lgn(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--mesh",
            &mesh(),
            "--dissipation",
            "linear",
            "--input-map",
            map,
            "--hidden",
            "16",
            "--epochs",
            "20",
            "--batch",
            "8",
            "--lr",
            "3e-2",
            "--out",
            out.to_str().unwrap(),
            "--force",
        ])
    };
    // Without /B and with u of width 1, a given map cannot be built.
    let (code, err) = train("given", &d.join("m0.h5"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/u") && err.contains("/B"), "{err}");
    let model = d.join("m.h5");
    let (code, err) = train("learned", &model);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("B learned (starting from zero)"), "{err}");
    let lgn::model::AnyModel::Graph(g) = lgn::model::AnyModel::load(&model).unwrap() else {
        panic!("not a graph model")
    };
    let map = g.input_map.as_ref().expect("the model keeps its input map");
    assert_eq!(map.width, 1);
    let graph = g.own_graph().unwrap();
    let b = map.map(&graph, 1).unwrap();
    let dot: f64 = b.iter().zip(b_true.iter()).map(|(x, y)| x * y).sum();
    let norm = |x: &mut dyn Iterator<Item = f64>| x.map(|v| v * v).sum::<f64>().sqrt();
    let cos = dot / (norm(&mut b.iter().copied()) * norm(&mut b_true.iter().copied()));
    // A uniform load B_i = m_i (what a map that learned no shape would give) for comparison.
    let m = graph.mass_scale(lgn::model::MassScale::LumpedArea).unwrap();
    let dot_u: f64 = m.iter().zip(b_true.iter()).map(|(x, y)| x * y).sum();
    let cos_u = dot_u / (norm(&mut m.iter().copied()) * norm(&mut b_true.iter().copied()));
    eprintln!("learned B against the truth: cosine {cos} (uniform load: {cos_u})");
    assert!(
        cos > COS_MIN && cos > cos_u + 0.05,
        "learned B against the truth: cosine {cos} (uniform load: {cos_u})"
    );
    // Simulate with the learned map: an input file with t and u only.
    let n = q.ncols();
    let state = d.join("state.h5");
    let f = hdf5::File::create(&state).unwrap();
    let q0 = q.row(0).to_owned();
    f.new_dataset_builder().with_data(&q0).create("q").unwrap();
    f.new_dataset_builder()
        .with_data(&ndarray::Array1::<f64>::zeros(n))
        .create("qdot")
        .unwrap();
    drop(f);
    let input = |name: &str, width: usize, with_b: bool| {
        let p = d.join(name);
        let f = hdf5::File::create(&p).unwrap();
        let t = ndarray::Array1::from_iter((0..=10).map(|k| 0.1 * k as f64));
        let u = ndarray::Array2::from_shape_fn((11, width), |(k, j)| (k + j) as f64 * 0.3);
        f.new_dataset_builder().with_data(&t).create("t").unwrap();
        f.new_dataset_builder().with_data(&u).create("u").unwrap();
        if with_b {
            f.new_dataset_builder()
                .with_data(&ndarray::Array2::<f64>::zeros((n, width)))
                .create("B")
                .unwrap();
        }
        p
    };
    let sim = |inp: &Path| {
        lgn(&[
            "simulate",
            "--model",
            model.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--t-end",
            "1",
            "--dt",
            "0.1",
            "--input",
            inp.to_str().unwrap(),
            "--out",
            d.join("tr.h5").to_str().unwrap(),
            "--force",
        ])
    };
    let (code, err) = sim(&input("u.h5", 1, false));
    assert_eq!(code, 0, "{err}");
    let f = hdf5::File::open(d.join("tr.h5")).unwrap();
    let wi = read2(&f, "w_injected");
    assert!(wi[[0, 10]].abs() > 0.0, "no work injected: {wi:?}");
    drop(f);
    let (code, err) = sim(&input("ub.h5", 1, true));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/B") && err.contains("learned"), "{err}");
    let (code, err) = sim(&input("u2.h5", 2, false));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/u") && err.contains("width 2"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

/// Smallest accepted cosine between the learned and the true input map.
const COS_MIN: f64 = 0.8;
