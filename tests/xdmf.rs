//! XDMF sidecars: parse the XML (roxmltree) and check every DataItem against the HDF5 file it
//! points into: dataset exists, Dimensions = its shape, NumberType = its dtype, hyperslabs
//! inside the dataset and selecting exactly the frame / trajectory / coordinate of their grid.

use lgn::io::xdmf::{self, Cells, Geometry};
use lgn::io::{GraphData, TrajectoryData, TrajectoryWriter, TrajectoryWriterOptions};
use ndarray::{Array2, Array3};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-xdmf-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn dims(s: &str) -> Vec<usize> {
    s.split_whitespace().map(|x| x.parse().unwrap()).collect()
}

/// Open `file:/path` relative to the sidecar's directory; returns the dataset.
fn hdf_item(xmf: &Path, node: roxmltree::Node) -> hdf5::Dataset {
    assert_eq!(node.attribute("Format"), Some("HDF"));
    assert_eq!(node.attribute("Precision"), Some("8"));
    let text = node.text().unwrap().trim();
    let (file, ds) = text.split_once(':').unwrap();
    let f = hdf5::File::open(xmf.parent().unwrap().join(file)).unwrap();
    let d = f.dataset(ds).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(
        dims(node.attribute("Dimensions").unwrap()),
        d.shape(),
        "{text}: Dimensions vs HDF5 shape"
    );
    let td = d.dtype().unwrap().to_descriptor().unwrap();
    match node.attribute("NumberType") {
        Some("Float") => assert_eq!(
            td,
            hdf5::types::TypeDescriptor::Float(hdf5::types::FloatSize::U8)
        ),
        Some("Int") => assert_eq!(
            td,
            hdf5::types::TypeDescriptor::Integer(hdf5::types::IntSize::U8)
        ),
        other => panic!("{text}: NumberType {other:?}"),
    }
    d
}

struct Checked {
    collections: usize,
    grids: usize,
    attributes: Vec<String>,
}

/// Check the sidecar `xmf` of `h5` completely; `dof` = coordinates per node.
fn check_sidecar(xmf: &Path, h5: &Path, dof: usize) -> Checked {
    let text = std::fs::read_to_string(xmf).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "Xdmf");
    assert_eq!(root.attribute("Version"), Some("3.0"));
    let tr = TrajectoryData::read(h5).unwrap();
    let geom = Geometry::read(h5).unwrap().unwrap();
    let n = geom.n_nodes();
    assert_eq!(n * dof, tr.dim());
    let domain = root.children().find(|c| c.has_tag_name("Domain")).unwrap();
    let collections: Vec<_> = domain
        .children()
        .filter(|c| c.has_tag_name("Grid"))
        .collect();
    assert_eq!(collections.len(), tr.n_batch());
    let mut grids = 0;
    let mut names = Vec::new();
    for (b, coll) in collections.iter().enumerate() {
        assert_eq!(coll.attribute("GridType"), Some("Collection"));
        assert_eq!(coll.attribute("CollectionType"), Some("Temporal"));
        let frames: Vec<_> = coll.children().filter(|c| c.has_tag_name("Grid")).collect();
        assert_eq!(frames.len(), tr.n_frames());
        for (k, g) in frames.iter().enumerate() {
            grids += 1;
            assert_eq!(g.attribute("GridType"), Some("Uniform"));
            let time: f64 = g
                .children()
                .find(|c| c.has_tag_name("Time"))
                .unwrap()
                .attribute("Value")
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(time, tr.t[k], "time of frame {k}");
            // Topology.
            let topo = g.children().find(|c| c.has_tag_name("Topology")).unwrap();
            let item = topo
                .children()
                .find(|c| c.has_tag_name("DataItem"))
                .unwrap();
            let d = hdf_item(xmf, item);
            let n_el: usize = topo.attribute("NumberOfElements").unwrap().parse().unwrap();
            assert_eq!(d.shape()[0], n_el);
            match &geom.cells {
                Cells::Triangles(t) => {
                    assert_eq!(topo.attribute("TopologyType"), Some("Triangle"));
                    assert_eq!(d.shape(), vec![t.len(), 3]);
                    let a: Array2<i64> = d.read_2d().unwrap();
                    assert!(a
                        .iter()
                        .zip(t.iter().flatten())
                        .all(|(x, y)| *x as usize == *y));
                }
                Cells::Edges(e) => {
                    assert_eq!(topo.attribute("TopologyType"), Some("Polyline"));
                    assert_eq!(topo.attribute("NodesPerElement"), Some("2"));
                    assert_eq!(d.shape(), vec![e.len(), 2]);
                }
            }
            // Geometry.
            let geo = g.children().find(|c| c.has_tag_name("Geometry")).unwrap();
            let item = geo.children().find(|c| c.has_tag_name("DataItem")).unwrap();
            let d = hdf_item(xmf, item);
            let cols = d.shape()[1];
            assert_eq!(d.shape(), vec![n, cols]);
            assert_eq!(
                geo.attribute("GeometryType"),
                Some(if cols == 3 { "XYZ" } else { "XY" })
            );
            // Attributes: hyperslabs into /q, /qdot, /qddot.
            for at in g.children().filter(|c| c.has_tag_name("Attribute")) {
                assert_eq!(at.attribute("Center"), Some("Node"));
                assert_eq!(at.attribute("AttributeType"), Some("Scalar"));
                let name = at.attribute("Name").unwrap().to_string();
                let slab = at.children().find(|c| c.has_tag_name("DataItem")).unwrap();
                assert_eq!(slab.attribute("ItemType"), Some("HyperSlab"));
                let items: Vec<_> = slab
                    .children()
                    .filter(|c| c.has_tag_name("DataItem"))
                    .collect();
                assert_eq!(items.len(), 2);
                assert_eq!(items[0].attribute("Format"), Some("XML"));
                assert_eq!(dims(items[0].attribute("Dimensions").unwrap()), vec![3, 3]);
                let sel = dims(items[0].text().unwrap());
                let (start, stride, count) = (&sel[0..3], &sel[3..6], &sel[6..9]);
                let d = hdf_item(xmf, items[1]);
                let shape = d.shape();
                assert_eq!(dims(slab.attribute("Dimensions").unwrap()), count.to_vec());
                for ax in 0..3 {
                    assert!(count[ax] >= 1);
                    assert!(
                        start[ax] + (count[ax] - 1) * stride[ax] < shape[ax],
                        "{name}: hyperslab axis {ax} leaves the dataset {shape:?}"
                    );
                }
                // Exactly: trajectory b, frame k, coordinate c of each of the n nodes.
                let (field, c) = match name.split_once('_') {
                    Some((f, c)) if dof > 1 => (f.to_string(), c.parse::<usize>().unwrap()),
                    _ => (name.clone(), 0),
                };
                assert_eq!(start, &[b, k, c], "{name}");
                assert_eq!(stride, &[1, 1, dof], "{name}");
                assert_eq!(count, &[1, 1, n], "{name}");
                assert_eq!(
                    items[1].text().unwrap().split(':').nth(1),
                    Some(&*format!("/{field}"))
                );
                let all: Array3<f64> = d.read().unwrap();
                let want = match field.as_str() {
                    "q" => &tr.q,
                    "qdot" => &tr.qdot,
                    "qddot" => tr.qddot.as_ref().unwrap(),
                    f => panic!("unexpected field {f}"),
                };
                assert_eq!(&all, want);
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    Checked {
        collections: collections.len(),
        grids,
        attributes: names,
    }
}

/// A value that tells trajectory, frame and coordinate apart.
fn code(b: usize, k: usize, i: usize) -> f64 {
    1000.0 * b as f64 + 10.0 * k as f64 + 0.001 * i as f64
}

fn write_traj(h5: &Path, geom: &Geometry, b: usize, t: usize, d: usize, qddot: bool) {
    let opts = TrajectoryWriterOptions {
        system: Some("test".into()),
        with_qddot: qddot,
        ..Default::default()
    };
    let mut w = TrajectoryWriter::create(h5, b, d, &opts, true).unwrap();
    w.write_geometry(geom).unwrap();
    for k in 0..t {
        let q = Array2::from_shape_fn((b, d), |(bb, i)| code(bb, k, i));
        let v = q.mapv(|x| -x);
        let a = q.mapv(|x| 2.0 * x);
        w.push_frame(
            0.25 * k as f64,
            q.view(),
            v.view(),
            qddot.then(|| a.view()),
            None,
        )
        .unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn mesh_sidecar_matches_the_hdf5_datasets() {
    let mesh = lgn::mesh::generate::square(4).unwrap();
    let h5 = tmp("mesh.h5");
    write_traj(&h5, &Geometry::from_mesh(&mesh), 2, 5, mesh.n_nodes(), true);
    let xmf = xdmf::write_sidecar(&h5, false).unwrap();
    assert_eq!(xmf, tmp("mesh.xmf"));
    let c = check_sidecar(&xmf, &h5, 1);
    assert_eq!((c.collections, c.grids), (2, 10));
    assert_eq!(c.attributes, ["q", "qddot", "qdot"]);
    // The trajectory file still reads as before and its geometry round-trips.
    let tr = TrajectoryData::read(&h5).unwrap();
    assert_eq!(tr.q[[1, 3, 7]], code(1, 3, 7));
    assert_eq!(
        Geometry::read(&h5).unwrap().unwrap(),
        Geometry::from_mesh(&mesh)
    );
    // An existing sidecar is replaced only with force.
    let e = xdmf::write_sidecar(&h5, false).unwrap_err().to_string();
    assert!(e.contains("mesh.xmf") && e.contains("--force"), "{e}");
    xdmf::write_sidecar(&h5, true).unwrap();
}

#[test]
fn graph_sidecar_with_two_coordinates_per_node_and_1d_positions() {
    // A chain of 5 nodes at x = 0, 0.5, …, dof = 2: polyline topology, XY with y = 0, one
    // scalar per coordinate (stride 2 in the hyperslab).
    let mut g = GraphData::new(5, 2, (0..4).map(|i| [i, i + 1]).collect());
    g.positions = Some(Array2::from_shape_fn((5, 1), |(i, _)| 0.5 * i as f64));
    let geom = Geometry::from_graph(&g).unwrap().unwrap();
    assert_eq!(geom.positions.dim(), (5, 2));
    assert!(geom.positions.column(1).iter().all(|&y| y == 0.0));
    let h5 = tmp("chain.h5");
    write_traj(&h5, &geom, 1, 3, 10, false);
    let xmf = xdmf::write_sidecar(&h5, true).unwrap();
    let c = check_sidecar(&xmf, &h5, 2);
    assert_eq!((c.collections, c.grids), (1, 3));
    assert_eq!(c.attributes, ["q_0", "q_1", "qdot_0", "qdot_1"]);
    // No positions: no geometry.
    assert!(Geometry::from_graph(&GraphData::new(3, 1, vec![[0, 1]]))
        .unwrap()
        .is_none());
}

#[test]
fn sidecar_and_geometry_errors_name_the_file_and_place() {
    // No mesh group.
    let h5 = tmp("plain.h5");
    let opts = TrajectoryWriterOptions::default();
    let mut w = TrajectoryWriter::create(&h5, 1, 3, &opts, true).unwrap();
    let q = Array2::<f64>::zeros((1, 3));
    w.push_frame(0.0, q.view(), q.view(), None, None).unwrap();
    // 2 nodes do not divide D = 3.
    let two = Geometry::new(Array2::zeros((2, 2)), Cells::Edges(vec![[0, 1]])).unwrap();
    let e = w.write_geometry(&two).unwrap_err().to_string();
    assert!(
        e.contains("plain.h5") && e.contains("/mesh/positions"),
        "{e}"
    );
    w.finish().unwrap();
    let e = xdmf::write_sidecar(&h5, true).unwrap_err().to_string();
    assert!(e.contains("plain.h5") && e.contains("/mesh"), "{e}");
    assert!(!tmp("plain.xmf").exists());
    // Cells outside the nodes, positions of 4 dimensions.
    assert!(Geometry::new(Array2::zeros((2, 2)), Cells::Edges(vec![[0, 2]])).is_err());
    assert!(Geometry::new(Array2::zeros((2, 4)), Cells::Edges(vec![[0, 1]])).is_err());
    // A corrupt mesh group is reported with its dataset.
    let bad = tmp("badmesh.h5");
    std::fs::copy(&h5, &bad).unwrap();
    {
        let f = hdf5::File::open_rw(&bad).unwrap();
        f.create_group("mesh").unwrap();
        f.new_dataset_builder()
            .with_data(&Array2::<f64>::zeros((3, 2)))
            .create("mesh/positions")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::array![[0i64, 1, 7]])
            .create("mesh/triangles")
            .unwrap();
    }
    let e = xdmf::write_sidecar(&bad, true).unwrap_err().to_string();
    assert!(
        e.contains("badmesh.h5") && e.contains("/mesh/triangles") && e.contains('7'),
        "{e}"
    );
    // Reading the trajectories and `lgn info` report it too.
    let e = TrajectoryData::read(&bad).unwrap_err().to_string();
    assert!(e.contains("/mesh/triangles"), "{e}");
    let problems = lgn::io::validate(&bad).unwrap();
    assert!(
        problems.iter().any(|p| p.location == "/mesh/triangles"),
        "{problems:?}"
    );
}
