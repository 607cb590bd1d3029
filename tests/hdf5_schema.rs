//! Integration tests of the HDF5 layer: round trips, streaming writer, validation of bad input,
//! atomic writes, `info`, and interoperability with files written by h5py.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use lgn::error::Error;
use lgn::io::{
    info, read_state, validate, AttrValue, GraphData, LayerData, ModelData, SamplesData, StateData,
    TrainingData, TrajectoryData, TrajectoryWriter, TrajectoryWriterOptions,
};
use ndarray::{array, s, Array1, Array2, Array3};

// ------------------------------------------------------------------ helpers

/// A temporary directory removed on drop.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> TmpDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "lgn-h5test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Names of all files in the directory (to catch leftover temporaries).
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Destructure an `Error::File`, failing the test for any other variant.
fn file_err(e: Error) -> (PathBuf, Option<String>, String) {
    match e {
        Error::File {
            path,
            location,
            msg,
        } => (path, location, msg),
        other => panic!("expected Error::File, got {other:?}"),
    }
}

/// Assert `r` failed with an `Error::File` naming `path`, `location`, and a message containing
/// every string in `needles`.
#[track_caller]
fn assert_file_err<T: std::fmt::Debug>(
    r: lgn::error::Result<T>,
    path: &Path,
    location: Option<&str>,
    needles: &[&str],
) {
    let (p, loc, msg) = file_err(r.expect_err("expected an error"));
    assert_eq!(p, path, "wrong path in error: {msg}");
    assert_eq!(loc.as_deref(), location, "wrong location in error: {msg}");
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} does not contain {n:?}");
    }
}

fn put_str_attr(loc: &hdf5::Location, name: &str, v: &str) {
    let v: hdf5::types::VarLenUnicode = v.parse().unwrap();
    loc.new_attr::<hdf5::types::VarLenUnicode>()
        .shape(())
        .create(name)
        .unwrap()
        .write_scalar(&v)
        .unwrap();
}

fn put_i64_attr(loc: &hdf5::Location, name: &str, v: i64) {
    loc.new_attr::<i64>()
        .shape(())
        .create(name)
        .unwrap()
        .write_scalar(&v)
        .unwrap();
}

/// An HDF5 file with the lgn header of `kind`.
fn h5_with_header(path: &Path, kind: &str) -> hdf5::File {
    let f = hdf5::File::create(path).unwrap();
    put_str_attr(&f, "lgn_kind", kind);
    put_i64_attr(&f, "lgn_schema_version", 1);
    f
}

fn ring(n: usize) -> Vec<[usize; 2]> {
    (0..n).map(|i| [i, (i + 1) % n]).collect()
}

fn sample_graph() -> GraphData {
    let n = 5;
    let mut g = GraphData::new(n, 2, ring(n));
    g.positions = Some(Array2::from_shape_fn((n, 3), |(i, j)| {
        (i as f64).sin() + j as f64 * 0.1
    }));
    g.node_features = Some(Array2::from_shape_fn((n, 2), |(i, j)| {
        (i * 10 + j) as f64 / 3.0
    }));
    g.edge_features = Some(Array2::from_shape_fn((n, 1), |(i, _)| 1.0 / (i + 1) as f64));
    g.boundary = Some(vec![true, false, false, false, true]);
    g.sites = Some(array![[0usize, 1, 2], [2, 3, 4]]);
    g.triangles = Some(vec![[0, 1, 2], [0, 2, 3]]);
    g.attrs.insert("name".into(), AttrValue::from("pentagon"));
    g.attrs.insert("spacing".into(), AttrValue::Float(0.25));
    g.attrs
        .insert("tags".into(), AttrValue::Ints(vec![3, 1, 4]));
    g
}

fn sample_model() -> ModelData {
    let sizes = vec![4usize, 8, 8, 1];
    let layers = (0..3)
        .map(|i| LayerData {
            weight: Array2::from_shape_fn((sizes[i + 1], sizes[i]), |(r, c)| {
                ((r * 7 + c * 3 + i) as f64).sin() / 3.0
            }),
            bias: Array1::from_shape_fn(sizes[i + 1], |r| r as f64 * 0.01 - 0.02),
        })
        .collect();
    let mut attrs = BTreeMap::new();
    attrs.insert("note".to_string(), AttrValue::from("unit test"));
    attrs.insert("lr".to_string(), AttrValue::Float(1e-3));
    let mut tattrs = BTreeMap::new();
    tattrs.insert("batch_size".to_string(), AttrValue::Int(64));
    ModelData {
        model_kind: "lgn".into(),
        activation: "softplus".into(),
        system: Some("spring_chain".into()),
        arity: 2,
        dof: 1,
        n_features: 0,
        layer_sizes: sizes,
        layers,
        input_shift: array![0.1, -0.2, 0.3, 0.0],
        input_scale: array![1.0, 2.0, 0.5, 4.0],
        training: Some(TrainingData {
            seed: u64::MAX - 5,
            data_file: "data/train.h5".into(),
            epochs: 3,
            loss_history: array![1.0, 0.5, f64::NAN],
            val_loss_history: array![1.1, 0.6, 0.4],
            attrs: tattrs,
        }),
        attrs,
        dissipation: None,
    }
}

fn sample_trajectories(b: usize, t: usize, d: usize) -> TrajectoryData {
    let mut params = BTreeMap::new();
    params.insert("g".to_string(), 9.81);
    TrajectoryData {
        system: Some("pendulum".into()),
        params,
        t: Array1::from_shape_fn(t, |k| k as f64 * 0.01),
        q: Array3::from_shape_fn((b, t, d), |(i, k, j)| {
            (i as f64 + 0.3 * k as f64 + j as f64).sin()
        }),
        qdot: Array3::from_shape_fn((b, t, d), |(i, k, j)| {
            (i as f64 - 0.1 * k as f64 * j as f64).cos()
        }),
        qddot: Some(Array3::from_shape_fn((b, t, d), |(i, k, j)| {
            (i * k * j) as f64 / 7.0
        })),
        energy: Some(Array2::from_shape_fn((b, t), |(i, k)| {
            i as f64 + 1e-3 * k as f64
        })),
    }
}

// ------------------------------------------------------------------ round trips

#[test]
fn graph_round_trip() {
    let dir = TmpDir::new("graph");
    let p = dir.path("g.h5");
    let g = sample_graph();
    g.write(&p, false).unwrap();
    let back = GraphData::read(&p).unwrap();
    assert_eq!(back, g);
    assert_eq!(back.edges[4], [4, 0]);
    // Minimal graph: only the required parts.
    let p2 = dir.path("min.h5");
    let m = GraphData::new(3, 1, vec![[0, 1], [1, 2]]);
    m.write(&p2, false).unwrap();
    let back = GraphData::read(&p2).unwrap();
    assert_eq!(back, m);
    assert!(back.positions.is_none() && back.sites.is_none() && back.attrs.is_empty());
    // Edgeless graph (E = 0) is fine.
    let p3 = dir.path("edgeless.h5");
    GraphData::new(2, 3, vec![]).write(&p3, false).unwrap();
    assert_eq!(GraphData::read(&p3).unwrap().edges.len(), 0);
    assert_eq!(dir.files(), vec!["edgeless.h5", "g.h5", "min.h5"]);
}

#[test]
fn state_round_trip_and_helper() {
    let dir = TmpDir::new("state");
    let p = dir.path("s.h5");
    let mut s = StateData::new(
        Array1::from_shape_fn(6, |i| (i as f64).sin()),
        Array1::from_shape_fn(6, |i| -(i as f64) / 3.0),
    );
    s.dof = Some(2);
    s.system = Some("spring_chain".into());
    s.params.insert("k".into(), 0.75);
    s.write(&p, false).unwrap();
    assert_eq!(StateData::read(&p).unwrap(), s);
    let (q, qdot) = read_state(&p).unwrap();
    assert_eq!(q, s.q);
    assert_eq!(qdot, s.qdot);
}

#[test]
fn plain_state_file_without_lgn_attributes() {
    // What a user's simulator might write: (n, dof) float32 q and float64 qdot, nothing else.
    let dir = TmpDir::new("plain");
    let p = dir.path("plain.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        let q = Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f32 * 0.5);
        f.new_dataset_builder().with_data(&q).create("q").unwrap();
        let qd = Array2::from_shape_fn((3, 2), |(i, j)| (i + j) as f64);
        f.new_dataset_builder()
            .with_data(&qd)
            .create("qdot")
            .unwrap();
    }
    let s = StateData::read(&p).unwrap();
    assert_eq!(s.q, array![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    assert_eq!(s.qdot, array![0.0, 1.0, 1.0, 2.0, 2.0, 3.0]);
    assert_eq!(s.dof, Some(2));
    assert_eq!(s.system, None);
    let r = info(&p).unwrap();
    assert!(!r.is_lgn);
    assert!(
        r.notes.iter().any(|n| n.contains("plain state file")),
        "{r}"
    );
}

#[test]
fn samples_round_trip() {
    let dir = TmpDir::new("samples");
    let p = dir.path("s.h5");
    let (n, d) = (7, 3);
    let mut params = BTreeMap::new();
    params.insert("g".to_string(), 9.81);
    params.insert("dx".to_string(), 0.5);
    let s = SamplesData {
        system: Some("pendulum".into()),
        params,
        q: Array2::from_shape_fn((n, d), |(i, j)| (i as f64 * 0.7 + j as f64).sin()),
        qdot: Array2::from_shape_fn((n, d), |(i, j)| (i as f64 - j as f64).cos()),
        qddot: Array2::from_shape_fn((n, d), |(i, j)| 1e-300 * (i + j) as f64 - 1e300),
        weights: Some(Array1::from_shape_fn(n, |i| 1.0 / (i + 1) as f64)),
    };
    s.write(&p, false).unwrap();
    let back = SamplesData::read(&p).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.len(), 7);
}

#[test]
fn trajectories_round_trip_chunked_and_compressed() {
    let dir = TmpDir::new("traj");
    let p = dir.path("t.h5");
    let tr = sample_trajectories(3, 50, 4);
    tr.write(&p, false).unwrap();
    let back = TrajectoryData::read(&p).unwrap();
    assert_eq!(back, tr);
    assert_eq!((back.n_batch(), back.n_frames(), back.dim()), (3, 50, 4));
    // Layout: chunked along time, deflate-compressed, unlimited along T.
    let f = hdf5::File::open(&p).unwrap();
    let q = f.dataset("q").unwrap();
    assert_eq!(q.chunk(), Some(vec![1, 50, 4]));
    assert_eq!(f.dataset("t").unwrap().chunk(), Some(vec![50]));
    assert!(q.is_resizable());
    assert!(
        q.filters().contains(&hdf5::filters::Filter::Deflate(4)),
        "{:?}",
        q.filters()
    );
    // Without the optional datasets.
    let p2 = dir.path("t2.h5");
    let mut tr2 = sample_trajectories(1, 5, 2);
    tr2.qddot = None;
    tr2.energy = None;
    tr2.system = None;
    tr2.params.clear();
    tr2.write(&p2, false).unwrap();
    assert_eq!(TrajectoryData::read(&p2).unwrap(), tr2);
}

#[test]
fn model_round_trip() {
    let dir = TmpDir::new("model");
    let p = dir.path("m.h5");
    let m = sample_model();
    m.write(&p, false).unwrap();
    let back = ModelData::read(&p).unwrap();
    // NaN in the loss history: compare it separately (NaN != NaN).
    let (tb, tm) = (back.training.clone().unwrap(), m.training.clone().unwrap());
    assert!(tb.loss_history[2].is_nan());
    assert_eq!(
        tb.loss_history.slice(s![..2]),
        tm.loss_history.slice(s![..2])
    );
    assert_eq!(tb.seed, u64::MAX - 5);
    let strip = |mut x: ModelData| {
        x.training.as_mut().unwrap().loss_history[2] = 0.0;
        x
    };
    assert_eq!(strip(back), strip(m.clone()));
    // Without training record.
    let p2 = dir.path("m2.h5");
    let mut m2 = m;
    m2.training = None;
    m2.attrs.clear();
    m2.write(&p2, false).unwrap();
    assert_eq!(ModelData::read(&p2).unwrap(), m2);
}

// ------------------------------------------------------------------ streaming writer

#[test]
fn streaming_writer_round_trip_and_temp_handling() {
    let dir = TmpDir::new("stream");
    let p = dir.path("stream.h5");
    let (b, t, d) = (2, 23, 3);
    let want = sample_trajectories(b, t, d);
    let opts = TrajectoryWriterOptions {
        system: want.system.clone(),
        params: want.params.clone(),
        with_qddot: true,
        with_energy: true,
        chunk_frames: Some(5), // several flushes plus a partial one
        deflate: 6,
    };
    let mut w = TrajectoryWriter::create(&p, b, d, &opts, false).unwrap();
    for k in 0..t {
        w.push_frame(
            want.t[k],
            want.q.slice(s![.., k, ..]),
            want.qdot.slice(s![.., k, ..]),
            Some(want.qddot.as_ref().unwrap().slice(s![.., k, ..])),
            Some(want.energy.as_ref().unwrap().slice(s![.., k])),
        )
        .unwrap();
        // Nothing at the final path while writing; only the hidden temporary exists.
        assert!(!p.exists());
    }
    assert_eq!(w.n_frames(), t);
    let files = dir.files();
    assert_eq!(files.len(), 1);
    assert!(files[0].starts_with(".stream.h5.tmp-"), "{files:?}");
    assert_eq!(w.finish().unwrap(), p);
    assert_eq!(dir.files(), vec!["stream.h5"]);
    let back = TrajectoryData::read(&p).unwrap();
    assert_eq!(back, want);
    let f = hdf5::File::open(&p).unwrap();
    assert_eq!(f.dataset("qdot").unwrap().chunk(), Some(vec![1, 5, 3]));
    assert!(f
        .dataset("qdot")
        .unwrap()
        .filters()
        .contains(&hdf5::filters::Filter::Deflate(6)));
}

#[test]
fn streaming_writer_dropped_or_failing_leaves_nothing() {
    let dir = TmpDir::new("stream-drop");
    let p = dir.path("x.h5");
    let opts = TrajectoryWriterOptions::default();
    let q = Array2::<f64>::zeros((1, 2));
    {
        let mut w = TrajectoryWriter::create(&p, 1, 2, &opts, false).unwrap();
        w.push_frame(0.0, q.view(), q.view(), None, None).unwrap();
        // Dropped without finish (e.g. the simulation failed).
    }
    assert!(dir.files().is_empty(), "{:?}", dir.files());

    let mut w = TrajectoryWriter::create(&p, 1, 2, &opts, false).unwrap();
    w.push_frame(0.0, q.view(), q.view(), None, None).unwrap();
    // Time must increase.
    assert_file_err(
        w.push_frame(0.0, q.view(), q.view(), None, None),
        &p,
        Some("/t"),
        &["frame 1", "not after"],
    );
    // Non-finite values are refused with the frame and index.
    let bad = array![[0.0, f64::NAN]];
    assert_file_err(
        w.push_frame(1.0, bad.view(), q.view(), None, None),
        &p,
        Some("/q"),
        &["frame 1", "[0, 1]", "NaN"],
    );
    // Wrong shape.
    let wrong = Array2::<f64>::zeros((2, 2));
    assert_file_err(
        w.push_frame(1.0, q.view(), wrong.view(), None, None),
        &p,
        Some("/qdot"),
        &["shape"],
    );
    // qddot given although not configured.
    assert_file_err(
        w.push_frame(1.0, q.view(), q.view(), Some(q.view()), None),
        &p,
        Some("/qddot"),
        &["without"],
    );
    w.push_frame(1.0, q.view(), q.view(), None, None).unwrap();
    drop(w);
    assert!(dir.files().is_empty());

    // finish() without frames is an error and leaves nothing behind.
    let w = TrajectoryWriter::create(&p, 1, 2, &opts, false).unwrap();
    assert_file_err(w.finish(), &p, None, &["no frames"]);
    assert!(dir.files().is_empty());
    // B = 0 is refused up front.
    assert_file_err(
        TrajectoryWriter::create(&p, 0, 2, &opts, false).map(|_| ()),
        &p,
        None,
        &["B = 0"],
    );
}

#[test]
fn streaming_writer_respects_force() {
    let dir = TmpDir::new("stream-force");
    let p = dir.path("x.h5");
    std::fs::write(&p, b"precious").unwrap();
    let opts = TrajectoryWriterOptions::default();
    assert_file_err(
        TrajectoryWriter::create(&p, 1, 1, &opts, false).map(|_| ()),
        &p,
        None,
        &["--force"],
    );
    let mut w = TrajectoryWriter::create(&p, 1, 1, &opts, true).unwrap();
    let q = array![[2.0]];
    w.push_frame(0.5, q.view(), q.view(), None, None).unwrap();
    // Until finish, the old file is intact.
    assert_eq!(std::fs::read(&p).unwrap(), b"precious");
    w.finish().unwrap();
    let back = TrajectoryData::read(&p).unwrap();
    assert_eq!(back.t, array![0.5]);
    assert_eq!(back.q[[0, 0, 0]], 2.0);
}

// ------------------------------------------------------------------ atomic writes

#[test]
fn no_overwrite_without_force() {
    let dir = TmpDir::new("force");
    let p = dir.path("g.h5");
    let g1 = GraphData::new(2, 1, vec![[0, 1]]);
    g1.write(&p, false).unwrap();
    let before = std::fs::read(&p).unwrap();
    let g2 = GraphData::new(3, 1, vec![[0, 1], [1, 2]]);
    assert_file_err(
        g2.write(&p, false),
        &p,
        None,
        &["already exists", "--force"],
    );
    assert_eq!(std::fs::read(&p).unwrap(), before);
    assert_eq!(GraphData::read(&p).unwrap(), g1);
    g2.write(&p, true).unwrap();
    assert_eq!(GraphData::read(&p).unwrap(), g2);
    assert_eq!(dir.files(), vec!["g.h5"]);
}

#[test]
fn invalid_data_is_not_written() {
    let dir = TmpDir::new("refuse");
    let p = dir.path("g.h5");
    let g = GraphData::new(3, 1, vec![[0, 3]]);
    assert_file_err(
        g.write(&p, false),
        &p,
        Some("/edges"),
        &["refusing", "outside 0..3"],
    );
    let s = StateData::new(array![1.0, f64::INFINITY], array![0.0, 0.0]);
    assert_file_err(s.write(&p, false), &p, Some("/q"), &["inf"]);
    let mut m = sample_model();
    m.layers[1].bias = Array1::zeros(3);
    assert_file_err(
        m.write(&p, false),
        &p,
        Some("/layers/1/bias"),
        &["length 3", "expected 8"],
    );
    assert!(dir.files().is_empty(), "{:?}", dir.files());
    // Output directory missing.
    let q = dir.path("no/such/dir/g.h5");
    assert_file_err(
        GraphData::new(1, 1, vec![]).write(&q, false),
        &q,
        None,
        &["does not exist"],
    );
}

// ------------------------------------------------------------------ bad input

#[test]
fn not_hdf5_truncated_and_missing_files() {
    let dir = TmpDir::new("bad-files");
    let txt = dir.path("notes.h5");
    std::fs::write(&txt, "q,qdot\n1,2\n").unwrap();
    assert_file_err(GraphData::read(&txt), &txt, None, &["not an HDF5 file"]);
    assert_file_err(read_state(&txt), &txt, None, &["not an HDF5 file"]);
    assert_file_err(info(&txt), &txt, None, &["not an HDF5 file"]);

    let empty = dir.path("empty.h5");
    std::fs::write(&empty, b"").unwrap();
    assert_file_err(ModelData::read(&empty), &empty, None, &["not an HDF5 file"]);

    let missing = dir.path("missing.h5");
    assert_file_err(
        SamplesData::read(&missing),
        &missing,
        None,
        &["cannot open"],
    );

    // A truncated copy of a valid file.
    let good = dir.path("good.h5");
    sample_trajectories(2, 300, 3).write(&good, false).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    for frac in [2, 3, 10] {
        let cut = dir.path(&format!("cut{frac}.h5"));
        std::fs::write(&cut, &bytes[..bytes.len() / frac]).unwrap();
        assert_file_err(TrajectoryData::read(&cut), &cut, None, &["truncated"]);
        assert!(info(&cut).is_err());
    }

    // Metadata overwritten with garbage after the superblock.
    let corrupt = dir.path("corrupt.h5");
    let mut b = std::fs::read(&good).unwrap();
    for x in &mut b[96..2048] {
        *x = 0xA5;
    }
    std::fs::write(&corrupt, &b).unwrap();
    let (p, _loc, msg) = file_err(TrajectoryData::read(&corrupt).unwrap_err());
    assert_eq!(p, corrupt, "{msg}");

    // A directory.
    assert_file_err(StateData::read(&dir.0), &dir.0, None, &["directory"]);
}

#[test]
fn graph_validation_errors() {
    let dir = TmpDir::new("bad-graph");
    let mk = |name: &str, f: &dyn Fn(&hdf5::File)| -> PathBuf {
        let p = dir.path(name);
        let file = h5_with_header(&p, "graph");
        f(&file);
        p
    };
    let edges = |f: &hdf5::File, e: Array2<i64>| {
        f.new_dataset_builder()
            .with_data(&e)
            .create("edges")
            .unwrap();
    };
    let base = |f: &hdf5::File| {
        put_i64_attr(f, "n_nodes", 4);
        put_i64_attr(f, "dof", 1);
    };

    let p = mk("no_edges.h5", &|f| base(f));
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/edges"),
        &["required dataset is missing"],
    );

    let p = mk("no_n.h5", &|f| {
        put_i64_attr(f, "dof", 1);
        edges(f, array![[0, 1]]);
    });
    assert_file_err(GraphData::read(&p), &p, Some("/@n_nodes"), &["missing"]);

    let p = mk("n_str.h5", &|f| {
        put_str_attr(f, "n_nodes", "four");
        put_i64_attr(f, "dof", 1);
        edges(f, array![[0, 1]]);
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/@n_nodes"),
        &["string", "expected an integer"],
    );

    let p = mk("oob.h5", &|f| {
        base(f);
        edges(f, array![[0, 1], [1, 4]]);
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/edges"),
        &["edge 1", "(1, 4)", "n_nodes = 4"],
    );

    let p = mk("neg.h5", &|f| {
        base(f);
        edges(f, array![[0, 1], [-1, 2]]);
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/edges"),
        &["-1", "[1, 0]", "negative"],
    );

    let p = mk("float_edges.h5", &|f| {
        base(f);
        f.new_dataset_builder()
            .with_data(&array![[0.0, 1.0]])
            .create("edges")
            .unwrap();
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/edges"),
        &["float64", "integer"],
    );

    let p = mk("edges_3col.h5", &|f| {
        base(f);
        edges(f, array![[0, 1, 2]]);
    });
    assert_file_err(GraphData::read(&p), &p, Some("/edges"), &["(E, 2)"]);

    let p = mk("edges_1d.h5", &|f| {
        base(f);
        f.new_dataset_builder()
            .with_data(&array![0i64, 1])
            .create("edges")
            .unwrap();
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/edges"),
        &["rank 1", "expected rank 2"],
    );

    let p = mk("pos_rows.h5", &|f| {
        base(f);
        edges(f, array![[0, 1]]);
        f.new_dataset_builder()
            .with_data(&Array2::<f64>::zeros((3, 2)))
            .create("positions")
            .unwrap();
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/positions"),
        &["3 rows", "expected 4"],
    );

    let p = mk("pos_nan.h5", &|f| {
        base(f);
        edges(f, array![[0, 1]]);
        let mut a = Array2::<f64>::zeros((4, 2));
        a[[2, 1]] = f64::NAN;
        f.new_dataset_builder()
            .with_data(&a)
            .create("positions")
            .unwrap();
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/positions"),
        &["[2, 1]", "NaN"],
    );

    let p = mk("boundary.h5", &|f| {
        base(f);
        edges(f, array![[0, 1]]);
        f.new_dataset_builder()
            .with_data(&array![0u8, 1, 2, 0])
            .create("boundary")
            .unwrap();
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/boundary"),
        &["index 2 is 2", "0 or 1"],
    );

    let p = mk("sites.h5", &|f| {
        base(f);
        edges(f, array![[0, 1]]);
        f.new_dataset_builder()
            .with_data(&array![[0i64, 1], [2, 9]])
            .create("sites")
            .unwrap();
    });
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/sites"),
        &["9", "[1, 1]", "out of range"],
    );

    let p = mk("dup.h5", &|f| {
        base(f);
        edges(f, array![[0, 1], [1, 0]]);
    });
    assert_file_err(GraphData::read(&p), &p, Some("/edges"), &["duplicate"]);

    // A different kind of lgn file.
    let p = dir.path("samples_as_graph.h5");
    {
        let f = h5_with_header(&p, "samples");
        base(&f);
        edges(&f, array![[0, 1]]);
    }
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/@lgn_kind"),
        &["'samples'", "expected a 'graph'"],
    );

    // A newer schema version.
    let p = dir.path("v3.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        put_str_attr(&f, "lgn_kind", "graph");
        put_i64_attr(&f, "lgn_schema_version", 3);
        base(&f);
        edges(&f, array![[0, 1]]);
    }
    assert_file_err(
        GraphData::read(&p),
        &p,
        Some("/@lgn_schema_version"),
        &["version 3"],
    );

    // Several problems: the error names the first and counts the rest.
    let p = mk("many.h5", &|f| {
        f.new_dataset_builder()
            .with_data(&array![[0.5, 1.0]])
            .create("edges")
            .unwrap();
    });
    let (_, loc, msg) = file_err(GraphData::read(&p).unwrap_err());
    assert_eq!(loc.as_deref(), Some("/@n_nodes"));
    assert!(msg.contains("and 2 more problems"), "{msg}");
}

#[test]
fn state_samples_trajectory_validation_errors() {
    let dir = TmpDir::new("bad-data");
    let f64ds = |f: &hdf5::File, name: &str, a: &ndarray::ArrayD<f64>| {
        f.new_dataset_builder().with_data(a).create(name).unwrap();
    };
    let arr = |shape: &[usize], v: f64| ndarray::ArrayD::<f64>::from_elem(shape, v);

    // state: int where float expected
    let p = dir.path("s_int.h5");
    {
        let f = h5_with_header(&p, "state");
        f.new_dataset_builder()
            .with_data(&array![1i64, 2])
            .create("q")
            .unwrap();
        f64ds(&f, "qdot", &arr(&[2], 0.0));
    }
    assert_file_err(
        read_state(&p),
        &p,
        Some("/q"),
        &["int64", "expected float64"],
    );

    // state: strings where numbers expected
    let p = dir.path("s_str.h5");
    {
        let f = h5_with_header(&p, "state");
        let v: Vec<hdf5::types::VarLenUnicode> = vec!["1.0".parse().unwrap()];
        f.new_dataset_builder().with_data(&v).create("q").unwrap();
        f64ds(&f, "qdot", &arr(&[1], 0.0));
    }
    assert_file_err(
        read_state(&p),
        &p,
        Some("/q"),
        &["string", "expected float64"],
    );

    // state: length mismatch
    let p = dir.path("s_len.h5");
    {
        let f = h5_with_header(&p, "state");
        f64ds(&f, "q", &arr(&[4], 1.0));
        f64ds(&f, "qdot", &arr(&[3], 1.0));
    }
    assert_file_err(read_state(&p), &p, Some("/qdot"), &["[3]", "[4]"]);

    // state: missing qdot
    let p = dir.path("s_noqdot.h5");
    {
        let f = h5_with_header(&p, "state");
        f64ds(&f, "q", &arr(&[4], 1.0));
    }
    assert_file_err(read_state(&p), &p, Some("/qdot"), &["missing"]);

    // state: qdot is a group
    let p = dir.path("s_group.h5");
    {
        let f = h5_with_header(&p, "state");
        f64ds(&f, "q", &arr(&[4], 1.0));
        f.create_group("qdot").unwrap();
    }
    assert_file_err(read_state(&p), &p, Some("/qdot"), &["group"]);

    // state: Inf
    let p = dir.path("s_inf.h5");
    {
        let f = h5_with_header(&p, "state");
        let mut q = arr(&[3], 1.0);
        q[[1]] = f64::NEG_INFINITY;
        f64ds(&f, "q", &q);
        f64ds(&f, "qdot", &arr(&[3], 1.0));
    }
    assert_file_err(read_state(&p), &p, Some("/q"), &["[1]", "-inf"]);

    // samples: NaN in qddot
    let p = dir.path("sm_nan.h5");
    {
        let f = h5_with_header(&p, "samples");
        f64ds(&f, "q", &arr(&[3, 2], 1.0));
        f64ds(&f, "qdot", &arr(&[3, 2], 1.0));
        let mut a = arr(&[3, 2], 1.0);
        a[[2, 0]] = f64::NAN;
        f64ds(&f, "qddot", &a);
    }
    assert_file_err(
        SamplesData::read(&p),
        &p,
        Some("/qddot"),
        &["[2, 0]", "NaN"],
    );

    // samples: wrong rank
    let p = dir.path("sm_rank.h5");
    {
        let f = h5_with_header(&p, "samples");
        f64ds(&f, "q", &arr(&[6], 1.0));
        f64ds(&f, "qdot", &arr(&[3, 2], 1.0));
        f64ds(&f, "qddot", &arr(&[3, 2], 1.0));
    }
    assert_file_err(
        SamplesData::read(&p),
        &p,
        Some("/q"),
        &["rank 1", "expected rank 2"],
    );

    // samples: shape mismatch and weights of the wrong length
    let p = dir.path("sm_shape.h5");
    {
        let f = h5_with_header(&p, "samples");
        f64ds(&f, "q", &arr(&[3, 2], 1.0));
        f64ds(&f, "qdot", &arr(&[3, 2], 1.0));
        f64ds(&f, "qddot", &arr(&[3, 2], 1.0));
        f64ds(&f, "weights", &arr(&[4], 1.0));
    }
    assert_file_err(
        SamplesData::read(&p),
        &p,
        Some("/weights"),
        &["length 4", "3 samples"],
    );

    // samples: float32 data is accepted and widened
    let p = dir.path("sm_f32.h5");
    {
        let f = h5_with_header(&p, "samples");
        let a = Array2::from_shape_fn((2, 2), |(i, j)| (i + 2 * j) as f32 + 0.25);
        for n in ["q", "qdot", "qddot"] {
            f.new_dataset_builder().with_data(&a).create(n).unwrap();
        }
    }
    let sm = SamplesData::read(&p).unwrap();
    assert_eq!(sm.q, array![[0.25, 2.25], [1.25, 3.25]]);

    // trajectories: B/T mismatch between q and t, and between q and qdot
    let p = dir.path("tr_t.h5");
    {
        let f = h5_with_header(&p, "trajectories");
        f64ds(
            &f,
            "t",
            &ndarray::Array1::from_shape_fn(4, |k| k as f64).into_dyn(),
        );
        f64ds(&f, "q", &arr(&[2, 5, 3], 0.0));
        f64ds(&f, "qdot", &arr(&[2, 5, 3], 0.0));
    }
    assert_file_err(
        TrajectoryData::read(&p),
        &p,
        Some("/t"),
        &["length 4", "T = 5"],
    );
    let p = dir.path("tr_b.h5");
    {
        let f = h5_with_header(&p, "trajectories");
        f64ds(
            &f,
            "t",
            &ndarray::Array1::from_shape_fn(5, |k| k as f64).into_dyn(),
        );
        f64ds(&f, "q", &arr(&[2, 5, 3], 0.0));
        f64ds(&f, "qdot", &arr(&[1, 5, 3], 0.0));
    }
    assert_file_err(
        TrajectoryData::read(&p),
        &p,
        Some("/qdot"),
        &["[1, 5, 3]", "[2, 5, 3]"],
    );
    let p = dir.path("tr_e.h5");
    {
        let f = h5_with_header(&p, "trajectories");
        f64ds(
            &f,
            "t",
            &ndarray::Array1::from_shape_fn(5, |k| k as f64).into_dyn(),
        );
        f64ds(&f, "q", &arr(&[2, 5, 3], 0.0));
        f64ds(&f, "qdot", &arr(&[2, 5, 3], 0.0));
        f64ds(&f, "energy", &arr(&[5, 2], 0.0));
    }
    assert_file_err(TrajectoryData::read(&p), &p, Some("/energy"), &["(B, T)"]);
    let p = dir.path("tr_time.h5");
    {
        let f = h5_with_header(&p, "trajectories");
        f64ds(&f, "t", &array![0.0, 1.0, 1.0].into_dyn());
        f64ds(&f, "q", &arr(&[1, 3, 1], 0.0));
        f64ds(&f, "qdot", &arr(&[1, 3, 1], 0.0));
    }
    assert_file_err(
        TrajectoryData::read(&p),
        &p,
        Some("/t"),
        &["strictly increasing", "t[2]"],
    );
    let p = dir.path("tr_sys.h5");
    {
        let f = h5_with_header(&p, "trajectories");
        f64ds(&f, "t", &array![0.0].into_dyn());
        f64ds(&f, "q", &arr(&[1, 1, 1], 0.0));
        f64ds(&f, "qdot", &arr(&[1, 1, 1], 0.0));
        put_i64_attr(&f, "system", 3);
    }
    assert_file_err(
        TrajectoryData::read(&p),
        &p,
        Some("/@system"),
        &["int64", "expected a string"],
    );
}

#[test]
fn model_validation_errors() {
    let dir = TmpDir::new("bad-model");
    let good = dir.path("good.h5");
    sample_model().write(&good, false).unwrap();
    // Copy the good model and break one thing at a time with the hdf5 crate.
    let broken = |name: &str, f: &dyn Fn(&hdf5::File)| -> PathBuf {
        let p = dir.path(name);
        std::fs::copy(&good, &p).unwrap();
        let file = hdf5::File::open_rw(&p).unwrap();
        f(&file);
        p
    };
    let p = broken("w_shape.h5", &|f| {
        f.unlink("layers/1/weight").unwrap();
        f.new_dataset_builder()
            .with_data(&Array2::<f64>::zeros((8, 7)))
            .create("layers/1/weight")
            .unwrap();
    });
    assert_file_err(
        ModelData::read(&p),
        &p,
        Some("/layers/1/weight"),
        &["[8, 7]", "(8, 8)"],
    );

    let p = broken("no_bias.h5", &|f| f.unlink("layers/2/bias").unwrap());
    assert_file_err(
        ModelData::read(&p),
        &p,
        Some("/layers/2/bias"),
        &["missing"],
    );

    let p = broken("no_layers.h5", &|f| f.unlink("layers").unwrap());
    assert_file_err(ModelData::read(&p), &p, Some("/layers"), &["missing"]);

    let p = broken("kind.h5", &|f| {
        f.delete_attr("model_kind").unwrap();
        put_str_attr(f, "model_kind", "transformer");
    });
    assert_file_err(
        ModelData::read(&p),
        &p,
        Some("/@model_kind"),
        &["transformer", "lnn"],
    );

    let p = broken("scale.h5", &|f| {
        f.unlink("input_scale").unwrap();
        f.new_dataset_builder()
            .with_data(&array![1.0, 0.0, 1.0, 1.0])
            .create("input_scale")
            .unwrap();
    });
    assert_file_err(
        ModelData::read(&p),
        &p,
        Some("/input_scale"),
        &["[1]", "> 0"],
    );

    let p = broken("sizes.h5", &|f| {
        f.unlink("layer_sizes").unwrap();
        f.new_dataset_builder()
            .with_data(&array![4.0, 8.0, 8.0, 1.0])
            .create("layer_sizes")
            .unwrap();
    });
    assert_file_err(
        ModelData::read(&p),
        &p,
        Some("/layer_sizes"),
        &["float64", "integer"],
    );

    let p = broken("seed.h5", &|f| {
        let t = f.group("training").unwrap();
        t.delete_attr("seed").unwrap();
        put_str_attr(&t, "seed", "42");
    });
    assert_file_err(
        ModelData::read(&p),
        &p,
        Some("/training@seed"),
        &["string", "integer"],
    );

    let p = broken("extra_layer.h5", &|f| {
        f.create_group("layers/extra").unwrap();
    });
    assert_file_err(
        ModelData::read(&p),
        &p,
        Some("/layers/extra"),
        &["unexpected"],
    );
}

// ------------------------------------------------------------------ info

#[test]
fn info_reports_contents_and_problems() {
    let dir = TmpDir::new("info");
    let p = dir.path("t.h5");
    sample_trajectories(2, 10, 3).write(&p, false).unwrap();
    let r = info(&p).unwrap();
    assert!(r.is_lgn && r.valid, "{r}");
    assert_eq!(r.kind.as_deref(), Some("trajectories"));
    assert_eq!(r.schema_version, Some(lgn::io::SCHEMA_VERSION));
    let q = r.datasets.iter().find(|d| d.path == "/q").unwrap();
    assert_eq!(q.shape, vec![2, 10, 3]);
    assert_eq!(q.dtype, "float64");
    assert!(
        q.filters.contains(&"deflate(4)".to_string()),
        "{:?}",
        q.filters
    );
    let g = r.attributes.iter().find(|a| a.name == "g").unwrap();
    assert_eq!(g.value, Ok(AttrValue::Float(9.81)));
    let text = r.to_string();
    assert!(
        text.contains("kind: trajectories (lgn schema version 2)"),
        "{text}"
    );
    assert!(text.contains("schema: valid"), "{text}");
    assert!(text.contains("/@system = \"pendulum\""), "{text}");
    let j = r.to_json();
    assert_eq!(j["lgn_kind"], "trajectories");
    assert_eq!(j["valid"], true);
    assert_eq!(j["datasets"].as_array().unwrap().len(), 5);
    assert!(validate(&p).unwrap().is_empty());

    // A model: nested groups are listed.
    let pm = dir.path("m.h5");
    sample_model().write(&pm, false).unwrap();
    let r = info(&pm).unwrap();
    assert!(r.valid, "{r}");
    assert!(r.groups.contains(&"/layers/2".to_string()));
    assert!(r
        .datasets
        .iter()
        .any(|d| d.path == "/training/val_loss_history" && d.shape == vec![3]));
    assert!(r
        .attributes
        .iter()
        .any(|a| a.object == "/training" && a.name == "seed"));

    // An invalid lgn file: all problems are listed.
    let bad = dir.path("bad.h5");
    {
        let f = h5_with_header(&bad, "samples");
        f.new_dataset_builder()
            .with_data(&array![[1i64, 2]])
            .create("q")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&array![[1.0, f64::NAN]])
            .create("qdot")
            .unwrap();
    }
    let r = info(&bad).unwrap();
    assert!(r.is_lgn && !r.valid);
    let locs: Vec<&str> = r.problems.iter().map(|p| p.location.as_str()).collect();
    assert_eq!(locs, vec!["/q", "/qdot", "/qddot"], "{r}");
    assert!(r.to_string().contains("schema: INVALID (3 problems)"));
    assert_eq!(r.to_json()["problems"][2]["location"], "/qddot");
    assert_eq!(validate(&bad).unwrap().len(), 3);

    // A valid HDF5 file that is not an lgn file.
    let other = dir.path("other.h5");
    {
        let f = hdf5::File::create(&other).unwrap();
        let g = f.create_group("sim").unwrap();
        g.new_dataset_builder()
            .with_data(&array![1u16, 2, 3])
            .create("counts")
            .unwrap();
        put_str_attr(&g, "author", "someone");
    }
    let r = info(&other).unwrap();
    assert!(!r.is_lgn && !r.valid);
    assert!(r.notes[0].contains("not an lgn file"));
    assert_eq!(r.datasets[0].path, "/sim/counts");
    assert_eq!(r.datasets[0].dtype, "uint16");
    assert_eq!(r.attributes[0].value, Ok(AttrValue::from("someone")));
    assert!(r.to_string().contains("kind: none (not an lgn file)"));
    let v = validate(&other).unwrap();
    assert_eq!(v.len(), 1);
    assert!(v[0].msg.contains("not an lgn file"));
}

// ------------------------------------------------------------------ h5py interop

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn h5py_fixtures_ring_graph() {
    let g = GraphData::read(fixture("h5py_ring_graph.h5")).unwrap();
    assert_eq!((g.n_nodes, g.dof), (6, 2));
    assert_eq!(g.edges, ring(6));
    let pos = g.positions.unwrap();
    for i in 0..6 {
        let a = 2.0 * std::f64::consts::PI * i as f64 / 6.0;
        // numpy and Rust may differ in the last ulp of cos/sin
        assert!((pos[[i, 0]] - a.cos()).abs() < 1e-15 && (pos[[i, 1]] - a.sin()).abs() < 1e-15);
    }
    let nf = g.node_features.unwrap();
    assert_eq!(nf.row(3).to_vec(), vec![3.0, 9.0]);
    assert_eq!(
        g.boundary.unwrap(),
        vec![true, false, false, false, false, false]
    );
    assert_eq!(g.triangles.unwrap(), vec![[0, 1, 2], [0, 2, 4]]);
    assert_eq!(g.attrs.get("name"), Some(&AttrValue::from("ring6")));
    assert!(g.edge_features.is_none() && g.sites.is_none());
}

#[test]
fn h5py_fixtures_state() {
    let p = fixture("h5py_state.h5");
    let s = StateData::read(&p).unwrap();
    assert_eq!(s.dof, Some(2));
    assert_eq!(s.system.as_deref(), Some("spring_chain"));
    assert_eq!(s.params.get("k"), Some(&2.5));
    let (q, qdot) = read_state(&p).unwrap();
    assert_eq!(q.len(), 12);
    for i in 0..12 {
        assert!((q[i] - (i as f64).sin()).abs() < 1e-15, "q[{i}]");
        assert!((qdot[i] - (i as f64).cos()).abs() < 1e-15, "qdot[{i}]");
    }
}

#[test]
fn h5py_fixtures_samples() {
    let s = SamplesData::read(fixture("h5py_samples.h5")).unwrap();
    assert_eq!(s.q.dim(), (5, 4));
    assert_eq!(s.system.as_deref(), Some("pendulum"));
    assert_eq!(s.params.get("g"), Some(&9.81));
    assert_eq!(s.params.get("dx"), Some(&0.5));
    assert_eq!(s.params.get("n_links"), Some(&2.0));
    for n in 0..5 {
        for d in 0..4 {
            let (nf, df) = (n as f64, d as f64);
            assert!((s.q[[n, d]] - (nf + 0.1 * df).sin()).abs() < 1e-15);
            assert!((s.qdot[[n, d]] - (nf - 0.2 * df).cos()).abs() < 1e-15);
            assert_eq!(s.qddot[[n, d]], 0.5 * nf * df);
        }
    }
    assert_eq!(s.weights.unwrap(), array![1.0, 0.5, 1.0 / 3.0, 0.25, 0.2]);
}

#[test]
fn h5py_fixtures_trajectories() {
    let p = fixture("h5py_trajectories.h5");
    let t = TrajectoryData::read(&p).unwrap();
    assert_eq!((t.n_batch(), t.n_frames(), t.dim()), (2, 7, 3));
    assert_eq!(t.params.get("k"), Some(&1.5));
    for k in 0..7 {
        assert_eq!(t.t[k], 0.1 * k as f64);
        for b in 0..2 {
            for d in 0..3 {
                let v = b as f64 + 0.01 * k as f64 + d as f64;
                assert_eq!(t.q[[b, k, d]], v);
                assert_eq!(t.qdot[[b, k, d]], -v * 0.5);
            }
            assert_eq!(
                t.energy.as_ref().unwrap()[[b, k]],
                10.0 * b as f64 + k as f64
            );
        }
    }
    assert!(t.qddot.is_none());
    let r = info(&p).unwrap();
    assert!(r.valid, "{r}");
    let q = r.datasets.iter().find(|d| d.path == "/q").unwrap();
    assert_eq!(q.chunks, Some(vec![1, 4, 3]));
    assert!(q.filters.contains(&"deflate(4)".to_string()));
}
