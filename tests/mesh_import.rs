//! Reads every mesh shipped in `meshes/` plus real-Gmsh fixtures in `tests/data/`, and checks
//! that malformed files give errors naming the file and the line.

use lgn::mesh::fem::{lumped_mass, stiffness};
use lgn::mesh::generate::{annulus, disk, l_shape, square};
use lgn::mesh::{read_msh, read_msh_detailed, TriMesh};
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("meshes")
        .join(name)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Area of a regular k-gon inscribed in a circle of radius r.
fn ngon(r: f64, k: usize) -> f64 {
    0.5 * k as f64 * r * r * (2.0 * PI / k as f64).sin()
}

/// Boundary flags agree with the boundary edges, Euler's formula holds, FEM mass sums to area.
fn check_consistent(m: &TriMesh, holes: usize) {
    let mut on_edge = vec![false; m.n_nodes()];
    for [a, b] in m.boundary_edges() {
        on_edge[a] = true;
        on_edge[b] = true;
    }
    assert_eq!(on_edge, m.boundary);
    // V − E + F = 1 − holes for a connected planar domain.
    let chi = m.n_nodes() as i64 - m.edges().len() as i64 + m.n_triangles() as i64;
    assert_eq!(chi, 1 - holes as i64);
    let mass: f64 = lumped_mass(m).iter().sum();
    assert!((mass - m.area()).abs() < 1e-12 * m.area());
    assert_eq!(stiffness(m).rows(), m.n_nodes());
    let mut again = m.clone();
    again.validate().unwrap();
    assert_eq!(&again, m);
}

#[test]
fn shipped_meshes_read_with_expected_counts() {
    struct Case {
        file: &'static str,
        nodes: usize,
        tris: usize,
        boundary: usize,
        area: f64,
        holes: usize,
        gen: fn() -> TriMesh,
    }
    let case = |file, nodes, tris, boundary, area, holes, gen| Case {
        file,
        nodes,
        tris,
        boundary,
        area,
        holes,
        gen,
    };
    let cases = [
        case("square_coarse.msh", 400, 722, 76, 1.0, 0, || {
            square(19).unwrap()
        }),
        case("square_fine.msh", 3600, 6962, 236, 1.0, 0, || {
            square(59).unwrap()
        }),
        case("disk_coarse.msh", 469, 864, 72, ngon(1.0, 72), 0, || {
            disk(1.0, 12).unwrap()
        }),
        case("disk_fine.msh", 3781, 7350, 210, ngon(1.0, 210), 0, || {
            disk(1.0, 35).unwrap()
        }),
        case("lshape.msh", 481, 864, 96, 0.75, 0, || l_shape(12).unwrap()),
        case(
            "annulus.msh",
            648,
            1152,
            144,
            ngon(1.0, 72) - ngon(0.5, 72),
            1,
            || annulus(0.5, 1.0, 8, 72).unwrap(),
        ),
    ];
    for c in cases {
        let (file, nodes, tris, nb, area, holes, gen) =
            (c.file, c.nodes, c.tris, c.boundary, c.area, c.holes, c.gen);
        let tol = 1e-12;
        let path = shipped(file);
        let (m, notes) = read_msh(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(notes.is_empty(), "{file}: {notes:?}");
        assert_eq!(m.n_nodes(), nodes, "{file}");
        assert_eq!(m.n_triangles(), tris, "{file}");
        assert_eq!(m.n_boundary(), nb, "{file}");
        assert!(
            (m.area() - area).abs() < tol * area,
            "{file}: {} vs {area}",
            m.area()
        );
        check_consistent(&m, holes);
        // The file is exactly what the generator makes (shortest round-trip float printing).
        assert_eq!(m, gen(), "{file} differs from its generator");
        assert!(
            std::fs::metadata(&path).unwrap().len() < 400_000,
            "{file} too big"
        );
    }
}

#[test]
fn shipped_boundary_flags_match_the_geometry() {
    let (sq, _) = read_msh(shipped("square_coarse.msh")).unwrap();
    for (p, &b) in sq.positions.iter().zip(&sq.boundary) {
        let on = p[0] == 0.0 || p[0] == 1.0 || p[1] == 0.0 || p[1] == 1.0;
        assert_eq!(on, b, "{p:?}");
    }
    let (d, _) = read_msh(shipped("disk_fine.msh")).unwrap();
    for (p, &b) in d.positions.iter().zip(&d.boundary) {
        assert_eq!((p[0].hypot(p[1]) - 1.0).abs() < 1e-12, b, "{p:?}");
    }
    let (a, _) = read_msh(shipped("annulus.msh")).unwrap();
    for (p, &b) in a.positions.iter().zip(&a.boundary) {
        let r = p[0].hypot(p[1]);
        assert_eq!(
            (r - 1.0).abs() < 1e-12 || (r - 0.5).abs() < 1e-12,
            b,
            "{p:?}"
        );
    }
    let (l, _) = read_msh(shipped("lshape.msh")).unwrap();
    for (p, &b) in l.positions.iter().zip(&l.boundary) {
        let on = p[0] == 0.0
            || p[1] == 0.0
            || (p[0] == 1.0 && p[1] <= 0.5)
            || (p[1] == 1.0 && p[0] <= 0.5)
            || (p[0] == 0.5 && p[1] >= 0.5)
            || (p[1] == 0.5 && p[0] >= 0.5);
        assert_eq!(on, b, "{p:?}");
    }
}

#[test]
fn v22_and_v41_of_the_same_mesh_are_identical() {
    let a = read_msh_detailed(shipped("disk_coarse.msh")).unwrap();
    let b = read_msh_detailed(shipped("disk_coarse_v22.msh")).unwrap();
    assert_eq!(a.version, "4.1");
    assert_eq!(b.version, "2.2");
    assert_eq!(a.mesh, b.mesh);
    assert_eq!(a.node_tags, b.node_tags);
    assert_eq!(a.triangle_tags, b.triangle_tags);
}

#[test]
fn real_gmsh_files_v41_and_v22() {
    // Written by Gmsh 4.15.2 (plate [0,2]x[0,1] minus a disk of radius 0.2 at (0.7, 0.5),
    // Mesh.SaveAll = 1, parametric coordinates in the 4.1 file): points, lines and triangles,
    // node blocks per geometric entity.
    let a = read_msh_detailed(fixture("gmsh_plate_hole_v41.msh")).unwrap();
    let b = read_msh_detailed(fixture("gmsh_plate_hole_v22.msh")).unwrap();
    for imp in [&a, &b] {
        let m = &imp.mesh;
        assert_eq!(m.n_nodes(), 107);
        assert_eq!(m.n_triangles(), 171);
        assert_eq!(m.boundary_edges().len(), 43);
        assert_eq!(m.n_boundary(), 43);
        let exact = 2.0 - PI * 0.04;
        assert!((m.area() - exact).abs() < 0.01 * exact, "{}", m.area());
        let notes = imp.notes.join("\n");
        assert!(
            notes.contains("skipped 5 × type 15 (1-node point)"),
            "{notes}"
        );
        assert!(
            notes.contains("skipped 43 × type 1 (2-node line)"),
            "{notes}"
        );
        check_consistent(m, 1);
    }
    assert_eq!(a.mesh, b.mesh);
    assert_eq!(a.node_tags, b.node_tags);
}

fn write_tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lgn-mesh-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_files_name_file_and_line() {
    let good = std::fs::read_to_string(shipped("disk_coarse_v22.msh")).unwrap();
    // Line numbers in the 2.2 file: 1-3 $MeshFormat, 4-7 $PhysicalNames, 8 $Nodes, 9 count,
    // 10..=478 nodes, 479 $EndNodes, 480 $Elements, 481 count, 482.. elements.
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "binary.msh",
            good.replacen("2.2 0 8", "2.2 1 8", 1),
            "line 2",
            "binary MSH is not supported, re-export as ASCII",
        ),
        (
            "version.msh",
            good.replacen("2.2 0 8", "5.0 0 8", 1),
            "line 2",
            "unknown MSH version '5.0'",
        ),
        (
            "truncated.msh",
            good[..good.len() / 2].to_string(),
            "line 8",
            "$Nodes section is not closed",
        ),
        (
            "badnumber.msh",
            good.replacen("\n3 0.04166666666666667 ", "\n3 0.0416666x ", 1),
            "line 12",
            "found '0.0416666x'",
        ),
        (
            "unknownnode.msh",
            good.replacen("\n1 2 2 1 1 1 2 3\n", "\n1 2 2 1 1 1 2 999\n", 1),
            "line 482",
            "references node 999",
        ),
        (
            "noelements.msh",
            good[..good.find("$Elements").unwrap()].to_string(),
            "",
            "no $Elements section",
        ),
    ];
    for (name, text, line, msg) in cases {
        let p = write_tmp(name, &text);
        let e = read_msh(&p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(e.contains(line) && e.contains(msg), "{name}: {e}");
    }
    std::fs::remove_dir_all(write_tmp("x", "").parent().unwrap()).unwrap();
}
