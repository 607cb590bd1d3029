//! Field pictures: `plot::mesh_field_panels` (scalar field on a triangle mesh at several times)
//! and `plot::spacetime_positions` (space-time image over node positions).

use lgn::plot::{self, Panel};
use ndarray::Array2;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-plot-mesh-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG");
    (
        u32::from_be_bytes(b[16..20].try_into().unwrap()),
        u32::from_be_bytes(b[20..24].try_into().unwrap()),
    )
}

/// Sizes and refusals through the files; the colours through the colour scale itself (the
/// pictures were also inspected by eye).
#[test]
fn mesh_panels_layout_and_errors() {
    let mesh = lgn::mesh::generate::disk(1.0, 6).unwrap();
    let n = mesh.n_nodes();
    let field = |t: f64| -> Vec<f64> {
        mesh.positions
            .iter()
            .map(|p| (3.0 * p[0] - t).cos() * p[1])
            .collect()
    };
    let frames: Vec<(f64, Vec<f64>)> = (0..4)
        .map(|k| (0.5 * k as f64, field(0.5 * k as f64)))
        .collect();
    let out = tmp("panels.png");
    plot::mesh_field_panels(
        &out,
        &mesh.positions,
        &mesh.triangles,
        &frames,
        "test: φ",
        true,
    )
    .unwrap();
    // 4 frames: 3 per row, 2 rows.
    assert_eq!(png_size(&out), (3 * 380 + 120, 2 * 380 + 50));
    let one = tmp("one.png");
    plot::mesh_field_panels(
        &one,
        &mesh.positions,
        &mesh.triangles,
        &frames[..1],
        "one",
        true,
    )
    .unwrap();
    assert_eq!(png_size(&one), (380 + 120, 380 + 50));
    // Refusals: wrong frame length, triangle outside the mesh, existing file without force.
    let mut bad = frames.clone();
    bad[2].1.pop();
    let e = plot::mesh_field_panels(
        tmp("bad.png"),
        &mesh.positions,
        &mesh.triangles,
        &bad,
        "x",
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("frame 2") && e.contains(&format!("{n} nodes")),
        "{e}"
    );
    let e = plot::mesh_field_panels(
        tmp("bad.png"),
        &mesh.positions,
        &[[0, 1, n]],
        &frames,
        "x",
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(&format!("node {n}")), "{e}");
    assert!(!tmp("bad.png").exists());
    let e = plot::mesh_field_panels(&out, &mesh.positions, &mesh.triangles, &frames, "x", false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--force"), "{e}");
    // One-signed fields get the sequential scale on [min, max], two-signed ones ±max|v|.
    let s = plot::ColourScale::for_values(frames.iter().flat_map(|f| f.1.iter().copied())).unwrap();
    assert!(s.diverging && s.lo == -s.hi);
    let s = plot::ColourScale::for_values([2.0, 5.0].into_iter()).unwrap();
    assert!(!s.diverging);
    assert_eq!(s.colour(2.0), plot::sequential(0.0));
    assert_eq!(s.colour(5.0), plot::sequential(1.0));
}

#[test]
fn spacetime_over_node_positions() {
    // A chain numbered out of order along x, non-uniform spacing.
    let x = [0.0, 2.0, 0.5, 3.5, 1.0];
    let t: Vec<f64> = (0..20).map(|k| 0.1 * k as f64).collect();
    let field = Array2::from_shape_fn((20, 5), |(k, i)| (x[i] - t[k]).sin());
    let out = tmp("st.png");
    plot::spacetime_positions(
        &out,
        "chain: q(t, x)",
        &t,
        &x,
        &[Panel {
            title: "q".into(),
            field: field.view(),
        }],
        true,
    )
    .unwrap();
    assert_eq!(png_size(&out), (420, 520));
    let e = plot::spacetime_positions(
        tmp("st2.png"),
        "x",
        &t,
        &x[..4],
        &[Panel {
            title: "q".into(),
            field: field.view(),
        }],
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("5 nodes"), "{e}");
    let e = plot::spacetime_positions(
        tmp("st2.png"),
        "x",
        &t,
        &[1.0; 5],
        &[Panel {
            title: "q".into(),
            field: field.view(),
        }],
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("coincide"), "{e}");
}
