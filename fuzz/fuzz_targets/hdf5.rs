//! Every HDF5 reader of lgn (graph, state, samples, trajectories, model, `lgn info`) on an
//! arbitrary file: each must return a value or an error, never panic, abort or hang. The bytes
//! go to a file in /dev/shm (the HDF5 C library reads paths), one per fuzzing process.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        // Tests and fuzzing never need file locking (and a crashed run would leave a lock).
        std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE");
        dir.join(format!("lgn-fuzz-{}.h5", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let p = path();
    std::fs::write(p, data).expect("write the fuzz input");
    let _ = lgn::io::GraphData::read(p);
    let _ = lgn::io::StateData::read(p);
    let _ = lgn::io::read_state(p);
    let _ = lgn::io::SamplesData::read(p);
    let _ = lgn::io::TrajectoryData::read(p);
    let _ = lgn::io::ModelData::read(p);
    let _ = lgn::io::validate(p);
    if let Ok(report) = lgn::io::info(p) {
        // The report must render (this is what `lgn info` prints).
        let _ = report.to_string();
        let _ = report.to_json().to_string();
    }
});
