//! Regenerate the meshes shipped in `meshes/` (deterministic: rerunning gives identical files).
//!
//! ```text
//! cargo run --release --example make_meshes [-- OUTPUT_DIR]   # default: meshes
//! ```

use lgn::mesh::generate::{annulus, disk, l_shape, square};
use lgn::mesh::{write_msh22, write_msh41, TriMesh};
use std::path::PathBuf;

fn main() -> lgn::error::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "meshes".into()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| lgn::error::Error::file(&dir, format!("cannot create: {e}")))?;
    let meshes: Vec<(&str, TriMesh, &str)> = vec![
        ("square_coarse", square(19)?, "square(19)"),
        ("square_fine", square(59)?, "square(59)"),
        ("disk_coarse", disk(1.0, 12)?, "disk(1.0, 12)"),
        ("disk_fine", disk(1.0, 35)?, "disk(1.0, 35)"),
        ("lshape", l_shape(12)?, "l_shape(12)"),
        (
            "annulus",
            annulus(0.5, 1.0, 8, 72)?,
            "annulus(0.5, 1.0, 8, 72)",
        ),
    ];
    println!("| file | generator | nodes | triangles | boundary nodes | area | h_mean |");
    println!("|---|---|---|---|---|---|---|");
    for (name, mesh, how) in &meshes {
        let path = dir.join(format!("{name}.msh"));
        write_msh41(mesh, &path)?;
        row(&format!("{name}.msh"), how, mesh);
        if *name == "disk_coarse" {
            write_msh22(mesh, dir.join("disk_coarse_v22.msh"))?;
            row("disk_coarse_v22.msh", &format!("{how}, MSH 2.2"), mesh);
        }
    }
    Ok(())
}

fn row(file: &str, how: &str, m: &TriMesh) {
    println!(
        "| {file} | `{how}` | {} | {} | {} | {:.6} | {:.4} |",
        m.n_nodes(),
        m.n_triangles(),
        m.n_boundary(),
        m.area(),
        m.h_mean()
    );
}
