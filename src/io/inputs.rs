//! Inputs u(t) and work datasets of driven and damped systems (docs/SCHEMA.md, "Inputs and
//! work").
//!
//! * an *input file* (`lgn simulate --input U.h5`) holds `t` (T, increasing) and `u` (T × m),
//!   and optionally the input map `B` (n·d × m); u is interpolated linearly in t;
//! * samples and trajectories files may hold `u` (samples: N × m; trajectories: T × m, one row
//!   per frame time), checked against the file's own sample count or times;
//! * trajectories written by `lgn generate … --damping/--forcing` and `lgn simulate` of a damped
//!   or driven model hold `w_dissipated` and `w_injected` (B × T).

use crate::density::dissipation::Signal;
use crate::io::TrajectoryData;
use crate::{Error, Result};
use ndarray::{Array2, ArrayD};
use std::path::Path;

/// Write a trajectories file plus extra float64 datasets at the root, atomically.
pub fn write_trajectories_with(
    traj: &TrajectoryData,
    extra: &[(&str, ArrayD<f64>)],
    path: &Path,
    force: bool,
) -> Result<()> {
    let out = crate::io::AtomicOutput::new(path, force)?;
    traj.write(out.tmp_path(), true)?;
    add_datasets(out.tmp_path(), path, extra)?;
    out.commit()?;
    Ok(())
}

/// Add float64 datasets to an existing HDF5 file (`shown` names it in errors).
pub fn add_datasets(file: &Path, shown: &Path, extra: &[(&str, ArrayD<f64>)]) -> Result<()> {
    let f = hdf5::File::open_rw(file)
        .map_err(|e| Error::file(shown, format!("cannot reopen for writing: {e}")))?;
    for (name, arr) in extra {
        crate::error::check_finite(name, arr.as_slice().unwrap_or(&[]))?;
        f.new_dataset_builder()
            .with_data(arr)
            .create(*name)
            .map_err(|e| Error::file_at(shown, format!("/{name}"), e.to_string()))?;
    }
    Ok(())
}

/// An input file: times, u (T × m) and an optional input map B (rows × m).
#[derive(Clone, Debug)]
pub struct InputData {
    pub t: Vec<f64>,
    pub u: Array2<f64>,
    pub map: Option<Array2<f64>>,
}

impl InputData {
    /// Read `t`, `u` and optional `B`; every shape and value is checked.
    pub fn read(path: &Path) -> Result<InputData> {
        crate::io::h5::Ctx::read_with(path, |ctx| {
            let t = ctx.f64_1d("t", true);
            let u = ctx.f64_2d("u", true);
            let map = ctx.f64_2d("B", false);
            let (t, u) = (t?, u?);
            if u.nrows() != t.len() {
                ctx.problem(
                    "/u",
                    format!(
                        "has {} rows but /t has {} times: u needs one row per time",
                        u.nrows(),
                        t.len()
                    ),
                );
            }
            if let Some(b) = &map {
                if b.ncols() != u.ncols() {
                    ctx.problem(
                        "/B",
                        format!(
                            "has {} columns but u has width {}: the input map must have one column per input",
                            b.ncols(),
                            u.ncols()
                        ),
                    );
                }
            }
            let d = InputData {
                t: t.to_vec(),
                u,
                map,
            };
            ctx.ok().then_some(d)
        })
    }

    /// The signal u(t) (checks increasing times and finite values).
    pub fn signal(&self, what: &str) -> Result<Signal> {
        Signal::sampled(
            self.t.clone(),
            self.u.iter().copied().collect(),
            self.u.ncols(),
            what,
        )
    }

    /// Check against a system of `n_coords` coordinates and an input map of width `width`
    /// (`None`: the file's own map is used and must have `n_coords` rows).
    pub fn check(&self, path: &Path, n_coords: usize, width: Option<usize>) -> Result<()> {
        let m = self.u.ncols();
        if let Some(w) = width {
            if w != m {
                return Err(Error::file_at(
                    path,
                    "/u",
                    format!("has width {m} but the model's input map B has {w} columns"),
                ));
            }
        }
        if let Some(b) = &self.map {
            if b.nrows() != n_coords {
                return Err(Error::file_at(
                    path,
                    "/B",
                    format!(
                        "has {} rows but the system has {n_coords} coordinates",
                        b.nrows()
                    ),
                ));
            }
        } else if width.is_none() {
            return Err(Error::file_at(
                path,
                "/B",
                "is missing: the model has no input map, so the input file must give one (n·d × m)",
            ));
        }
        Ok(())
    }
}

/// Read the optional `u` dataset of a samples (N × m) or trajectories (T × m) file and check
/// its row count against `rows` (`what`: "samples" or "times").
pub fn read_u(path: &Path, rows: usize, what: &str) -> Result<Option<Array2<f64>>> {
    let u = crate::io::h5::Ctx::read_with(path, |ctx| {
        let u = ctx.f64_2d("u", false);
        if let Some(u) = &u {
            if u.nrows() != rows {
                ctx.problem(
                    "/u",
                    format!(
                        "has {} rows but the file has {rows} {what}: u needs one row per {}",
                        u.nrows(),
                        what.trim_end_matches('s')
                    ),
                );
            }
        }
        ctx.ok().then_some(u)
    })?;
    Ok(u)
}

/// The work datasets of a trajectories file, (`w_dissipated`, `w_injected`), each B × T,
/// checked against the file's B trajectories × T times; `None` if the file has neither.
pub fn read_work(
    path: &Path,
    batch: usize,
    frames: usize,
) -> Result<Option<(Array2<f64>, Array2<f64>)>> {
    crate::io::h5::Ctx::read_with(path, |ctx| {
        let wd = ctx.f64_2d("w_dissipated", false);
        let wi = ctx.f64_2d("w_injected", false);
        for (name, w) in [("/w_dissipated", &wd), ("/w_injected", &wi)] {
            if let Some(w) = w {
                if w.dim() != (batch, frames) {
                    ctx.problem(
                        name,
                        format!(
                            "has shape {:?} but the file has {batch} trajectories × {frames} times",
                            w.shape()
                        ),
                    );
                }
            }
        }
        let r = match (wd, wi) {
            (Some(d), Some(i)) => Some(Some((d, i))),
            (None, None) => Some(None),
            (Some(_), None) => {
                ctx.problem("/w_injected", "is missing but /w_dissipated is present");
                None
            }
            (None, Some(_)) => {
                ctx.problem("/w_dissipated", "is missing but /w_injected is present");
                None
            }
        };
        if ctx.ok() {
            r
        } else {
            None
        }
    })
}

/// u per training row (rows × m, row-major), the input map B (n·d × m, row-major) and m.
pub type TrainingInputs = (Vec<f64>, Vec<f64>, usize);
/// The inputs of a training file (samples or trajectories, as [`crate::io::read_training_data`]
/// flattens them): u per training row (`rows` × m, row-major; a trajectories file's T × m `u`
/// repeated for every trajectory) and the input map B (`n_coords` × m, the file's `B`, or the
/// identity when absent and m = `n_coords`). `None` when the file has no `u`.
pub fn read_training_inputs(
    path: &Path,
    rows: usize,
    n_coords: usize,
) -> Result<Option<TrainingInputs>> {
    read_inputs_core(path, rows, n_coords, true)
}

/// u per training row, the input map if the file has one, and m.
pub type TrainingInputsMapOptional = (Vec<f64>, Option<Vec<f64>>, usize);

/// [`read_training_inputs`] for a model that learns its input map: `/B` is optional whatever
/// the width of `u` (checked when present); the map is `None` when the file has none.
pub fn read_training_inputs_map_optional(
    path: &Path,
    rows: usize,
    n_coords: usize,
) -> Result<Option<TrainingInputsMapOptional>> {
    Ok(read_inputs_core(path, rows, n_coords, false)?
        .map(|(u, b, m)| (u, (!b.is_empty()).then_some(b), m)))
}

/// The reader of both: without `need_map` a missing `/B` gives an empty map.
fn read_inputs_core(
    path: &Path,
    rows: usize,
    n_coords: usize,
    need_map: bool,
) -> Result<Option<TrainingInputs>> {
    let kind = crate::io::file_kind(path)?;
    let per_time = kind == Some(crate::io::Kind::Trajectories);
    crate::io::h5::Ctx::read_with(path, |ctx| {
        let Some(u) = ctx.f64_2d("u", false) else {
            return ctx.ok().then_some(None);
        };
        let b = ctx.f64_2d("B", false);
        let m = u.ncols();
        let times = if per_time {
            ctx.f64_1d("t", true).map(|t| t.len())
        } else {
            Some(rows)
        };
        let times = times?;
        if u.nrows() != times || times == 0 || rows % times != 0 {
            ctx.problem(
                "/u",
                format!(
                    "has {} rows; it needs one per {} ({times})",
                    u.nrows(),
                    if per_time { "frame time" } else { "sample" }
                ),
            );
            return None;
        }
        let map = match b {
            Some(b) if b.dim() == (n_coords, m) => b.iter().copied().collect(),
            Some(b) => {
                ctx.problem(
                    "/B",
                    format!(
                        "has shape {:?}; the input map needs {n_coords} rows (coordinates) × {m} columns (the width of /u)",
                        b.shape()
                    ),
                );
                return None;
            }
            None if !need_map => vec![],
            None if m == n_coords => {
                let mut id = vec![0.0; n_coords * m];
                for j in 0..m {
                    id[j * m + j] = 1.0;
                }
                id
            }
            None => {
                ctx.problem(
                    "/u",
                    format!(
                        "has {m} columns but the file has no input map /B; without /B, u needs one column per coordinate ({n_coords})"
                    ),
                );
                return None;
            }
        };
        let flat: Vec<f64> = (0..rows).flat_map(|r| u.row(r % times).to_vec()).collect();
        if let Some(k) = flat.iter().chain(&map).position(|x| !x.is_finite()) {
            let what = if k < flat.len() { "/u" } else { "/B" };
            ctx.problem(what, "holds a non-finite value");
            return None;
        }
        Some(Some((flat, map, m)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, t: &[f64], u: Array2<f64>, b: Option<Array2<f64>>) {
        let f = hdf5::File::create(path).unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::Array1::from(t.to_vec()))
            .create("t")
            .unwrap();
        f.new_dataset_builder().with_data(&u).create("u").unwrap();
        if let Some(b) = b {
            f.new_dataset_builder().with_data(&b).create("B").unwrap();
        }
    }

    #[test]
    fn input_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("lgn-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("u.h5");
        write(&p, &[0.0, 1.0, 2.0], Array2::zeros((2, 1)), None);
        let e = InputData::read(&p).unwrap_err().to_string();
        assert!(e.contains("/u") && e.contains("3 times"), "{e}");
        let p2 = dir.join("u2.h5");
        write(
            &p2,
            &[0.0, 1.0],
            Array2::ones((2, 2)),
            Some(Array2::ones((4, 2))),
        );
        let d = InputData::read(&p2).unwrap();
        let e = d.check(&p2, 4, Some(1)).unwrap_err().to_string();
        assert!(e.contains("width 2") && e.contains("1 columns"), "{e}");
        let e = d.check(&p2, 6, None).unwrap_err().to_string();
        assert!(e.contains("/B") && e.contains("6 coordinates"), "{e}");
        d.check(&p2, 4, None).unwrap();
        let mut u = [0.0; 2];
        d.signal("u2.h5").unwrap().eval(0.5, &mut u);
        assert_eq!(u, [1.0, 1.0]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
