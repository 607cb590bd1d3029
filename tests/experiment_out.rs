//! `lgn experiment NAME --out DIR` refuses a folder that already holds files before it does any
//! work (without `--force`), for every experiment, and leaves the folder as it was.

use lgn::experiment::{self, ExperimentOptions, EXPERIMENTS};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lgn-exp-out-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn every_experiment_refuses_a_non_empty_folder_before_it_starts() {
    let dir = tmp("full");
    std::fs::create_dir_all(&dir).unwrap();
    let earlier = dir.join("metrics.json");
    std::fs::write(&earlier, "{\"earlier\": true}").unwrap();
    for name in EXPERIMENTS {
        let mut opts = ExperimentOptions::new(&dir);
        opts.quick = true;
        let err = experiment::run(name, &opts).unwrap_err().to_string();
        assert!(
            err.contains("not empty") && err.contains("metrics.json") && err.contains("--force"),
            "{name}: {err}"
        );
        assert!(err.contains(&*dir.to_string_lossy()), "{name}: {err}");
    }
    // Nothing was written or removed.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("metrics.json")]);
    assert_eq!(
        std::fs::read_to_string(&earlier).unwrap(),
        "{\"earlier\": true}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_file_as_output_folder_and_an_unknown_name_are_clear_errors() {
    let dir = tmp("file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not_a_folder");
    std::fs::write(&file, "x").unwrap();
    let err = experiment::run("dblpend", &ExperimentOptions::new(&file))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a folder"), "{err}");
    let err = experiment::run("pendulum", &ExperimentOptions::new(dir.join("new")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown experiment 'pendulum'"), "{err}");
    for name in EXPERIMENTS {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
    // The unknown name created no folder.
    assert!(!dir.join("new").exists());
    std::fs::remove_dir_all(&dir).ok();
}
