//! Training data from either a samples file or a trajectories file (every frame a sample).

use super::h5::Ctx;
use super::{Kind, SamplesData, TrajectoryData};
use crate::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// What kind of lgn file `path` is: its `lgn_kind`, or for plain files the rank of `q`
/// (2: samples, 3: trajectories).
pub fn file_kind(path: &Path) -> Result<Option<Kind>> {
    Ctx::read_with(path, |ctx| {
        let before = ctx.problems.len();
        let k = ctx.attr_str("/", "lgn_kind", false);
        ctx.problems.truncate(before);
        if let Some(k) = k {
            return Some(Kind::parse(&k));
        }
        let rank = ctx.dataset("q", false).map(|d| d.ndim());
        ctx.problems.truncate(before);
        Some(match rank {
            Some(2) => Some(Kind::Samples),
            Some(3) => Some(Kind::Trajectories),
            _ => None,
        })
    })
}

/// Training samples (q, q̇, q̈ per row) from a samples file, or from a trajectories file with
/// accelerations `qddot` (every frame of every trajectory becomes a row).
pub fn read_training_data(path: &Path) -> Result<SamplesData> {
    match file_kind(path)? {
        Some(Kind::Trajectories) => {
            let tr = TrajectoryData::read(path)?;
            let Some(qdd) = &tr.qddot else {
                return Err(Error::file_at(
                    path,
                    "/qddot",
                    "training on trajectories needs the accelerations 'qddot' (B × T × D); this file has positions and velocities only",
                ));
            };
            let (b, t, d) = tr.q.dim();
            let flat = |a: &ndarray::Array3<f64>| {
                Array2::from_shape_vec((b * t, d), a.iter().copied().collect()).expect("shape")
            };
            Ok(SamplesData {
                system: tr.system.clone(),
                params: tr.params.clone(),
                q: flat(&tr.q),
                qdot: flat(&tr.qdot),
                qddot: flat(qdd),
                weights: None,
            })
        }
        Some(Kind::Samples) | None => SamplesData::read(path),
        Some(k) => Err(Error::file_at(
            path,
            "/@lgn_kind",
            format!(
                "this is an lgn '{}' file; training data is a 'samples' or 'trajectories' file",
                k.as_str()
            ),
        )),
    }
}
