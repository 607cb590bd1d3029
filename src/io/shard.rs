//! One rank's shard of a training data file (docs/DESIGN.md §16.3): the rows of a samples file
//! or the trajectories of a trajectories file that the rank owns, read as HDF5 hyperslabs so
//! that no rank loads the whole file.

use super::h5::{Ctx, Want};
use super::{Kind, SamplesData};
use crate::{Error, Result};
use ndarray::{s, Array2, Array3};
use std::ops::Range;
use std::path::Path;

/// The rows `rows` (global sample indices) of a training data file, and the file's layout.
#[derive(Debug, Clone)]
pub struct TrainingShard {
    /// The shard's samples (q, q̇, q̈ per row; the weights of these rows).
    pub data: SamplesData,
    /// Number of samples in the whole file.
    pub total: usize,
    /// The global sample indices of the shard's rows.
    pub rows: Range<usize>,
    /// The weights of all samples of the file (small: one value per sample), when it has them.
    pub all_weights: Option<Vec<f64>>,
}

/// Read the shard of rank `rank` of `size`: a samples file is split into contiguous blocks of
/// rows, a trajectories file (with `qddot`) into contiguous blocks of whole trajectories (each
/// frame a sample, as in [`super::read_training_data`]). Only the shard's hyperslabs of q, q̇, q̈
/// are read; shapes, dtypes and finiteness are checked as the whole-file readers do, with
/// global indices in the messages.
pub fn read_training_shard(path: &Path, rank: usize, size: usize) -> Result<TrainingShard> {
    let kind = super::file_kind(path)?;
    let mut ctx = Ctx::open(path)?;
    let system = ctx.attr_str("/", "system", false);
    let params = ctx.params(&["lgn_kind", "lgn_schema_version", "system"]);
    let traj = match kind {
        Some(Kind::Trajectories) => true,
        Some(Kind::Samples) | None => false,
        Some(k) => {
            return Err(Error::file_at(
                path,
                "/@lgn_kind",
                format!(
                    "this is an lgn '{}' file; training data is a 'samples' or 'trajectories' file",
                    k.as_str()
                ),
            ))
        }
    };
    let ndim = if traj { 3 } else { 2 };
    let mut shapes = Vec::new();
    let mut sets = Vec::new();
    for name in ["q", "qdot", "qddot"] {
        if traj && name == "qddot" && !ctx.exists("qddot") {
            return Err(Error::file_at(
                path,
                "/qddot",
                "training on trajectories needs the accelerations 'qddot' (B × T × D); this file has positions and velocities only",
            ));
        }
        match ctx.checked(name, true, Want::Float, ndim) {
            Some((ds, shape)) => {
                shapes.push(shape);
                sets.push(ds);
            }
            None => return ctx.finish(None),
        }
    }
    for (name, sh) in ["qdot", "qddot"].iter().zip(&shapes[1..]) {
        if *sh != shapes[0] {
            return Err(Error::file_at(
                path,
                format!("/{name}"),
                format!(
                    "has shape {sh:?} but /q has shape {:?}; they must match",
                    shapes[0]
                ),
            ));
        }
    }
    let shape = shapes[0].clone();
    let d = *shape.last().expect("rank ≥ 2");
    if d == 0 {
        return Err(Error::file_at(
            path,
            "/q",
            format!("has shape {shape:?}, expected D >= 1 coordinates"),
        ));
    }
    let (units, per) = if traj {
        (shape[0], shape[1])
    } else {
        (shape[0], 1)
    };
    let own = crate::parallel::block(units, rank, size);
    let rows = own.start * per..own.end * per;
    let mut arrays = Vec::with_capacity(3);
    for (name, ds) in ["q", "qdot", "qddot"].iter().zip(&sets) {
        let read = if traj {
            ds.read_slice::<f64, _, ndarray::Ix3>(s![own.clone(), .., ..])
                .map(|a: Array3<f64>| {
                    Array2::from_shape_vec((rows.len(), d), a.iter().copied().collect())
                        .expect("shape")
                })
        } else {
            ds.read_slice::<f64, _, ndarray::Ix2>(s![own.clone(), ..])
        };
        let a = read.map_err(|e| {
            Error::file_at(
                path,
                format!("/{name}"),
                format!("cannot read rows {}..{}: {e}", rows.start, rows.end),
            )
        })?;
        if let Some(((i, j), x)) = a.indexed_iter().find(|(_, x)| !x.is_finite()) {
            let g = rows.start + i;
            let at = if traj {
                format!("[{}, {}, {j}]", g / per, g % per)
            } else {
                format!("[{g}, {j}]")
            };
            return Err(Error::file_at(
                path,
                format!("/{name}"),
                format!("value at index {at} is {x}, expected a finite number"),
            ));
        }
        arrays.push(a);
    }
    let all_weights = if !traj && ctx.exists("weights") {
        let w = ctx.f64_1d("weights", true);
        match w {
            Some(w) => {
                if w.len() != units {
                    return Err(Error::file_at(
                        path,
                        "/weights",
                        format!(
                            "has length {} but there are {units} samples (rows of /q)",
                            w.len()
                        ),
                    ));
                }
                if let Some((i, x)) = w.iter().enumerate().find(|(_, x)| **x < 0.0) {
                    return Err(Error::file_at(
                        path,
                        "/weights",
                        format!("value at index [{i}] is {x}, expected a finite number >= 0"),
                    ));
                }
                Some(w.to_vec())
            }
            None => return ctx.finish(None),
        }
    } else {
        None
    };
    if !ctx.ok() {
        return ctx.finish(None);
    }
    let qddot = arrays.pop().expect("3");
    let qdot = arrays.pop().expect("3");
    let q = arrays.pop().expect("3");
    Ok(TrainingShard {
        data: SamplesData {
            system,
            params,
            q,
            qdot,
            qddot,
            weights: all_weights
                .as_ref()
                .map(|w| ndarray::Array1::from(w[rows.clone()].to_vec())),
        },
        total: units * per,
        rows,
        all_weights,
    })
}
