//! The Gmsh MSH reader (2.2 and 4.1 ASCII) on arbitrary bytes: it must return a mesh or an
//! error, never panic, abort or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(imp) = lgn::mesh::gmsh::parse_msh(data, Path::new("fuzz.msh")) {
        // Whatever is accepted is a usable mesh: every triangle indexes a node.
        let n = imp.mesh.n_nodes();
        for t in &imp.mesh.triangles {
            assert!(t.iter().all(|&i| i < n));
        }
    }
});
