//! `lgn.fit` on positions-only trajectories (`objective="weak"|"savgol"|"central"`), as
//! `lgn train --objective`: the data, and the choice of objective the CLI makes.

use crate::arrays::{check_finite, f64_array, shape_str};
use crate::errors::{input, IntoPy};
use lgn::io::PositionsData;
use lgn::train::positions::ObjectiveKind;
use ndarray::{Array1, Array3};
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// Positions-only training data, its name for messages and records, and the objective.
pub struct Positions {
    pub pos: PositionsData,
    pub name: String,
    pub objective: ObjectiveKind,
}

/// The positions data and objective of `lgn.fit`, or None for the acceleration objective on
/// (q, q̇, q̈) data. As `lgn train`: `objective=None` is weak for positions-only data (a
/// trajectories file with t and q only, a dict with `t` and `q` and no `qddot`) and accel
/// otherwise; weak, savgol and central learn from `t` and `q` (the other datasets are unused).
pub fn positions_data(
    data: &Bound<'_, PyAny>,
    objective: Option<&str>,
) -> PyResult<Option<Positions>> {
    let obj: Option<ObjectiveKind> = objective
        .map(|s| crate::fit::named("objective", "objective", s))
        .transpose()?;
    if let Ok(p) = data.extract::<PathBuf>() {
        if !data.is_instance_of::<pyo3::types::PyTuple>() {
            return from_file(p, obj);
        }
    }
    let Ok(d) = data.cast::<PyDict>() else {
        return match obj {
            Some(o) if o != ObjectiveKind::Accel => Err(input(format!(
                "objective='{}' learns from positions at a fixed time step: give data as a dict with 't' (T,) and 'q' (B, T, D) or a trajectories file",
                o.as_str()
            ))),
            _ => Ok(None),
        };
    };
    let pos_only = d.get_item("qddot")?.is_none_or(|x| x.is_none());
    let objective = match obj {
        Some(ObjectiveKind::Accel) if pos_only => {
            return Err(input(
                "objective='accel' needs qdot and qddot; this data holds positions only (t, q): use objective='weak' (the default for such data), 'savgol' or 'central'",
            ))
        }
        Some(ObjectiveKind::Accel) => return Ok(None),
        Some(o) => o,
        None if pos_only && d.get_item("t")?.is_some() => ObjectiveKind::Weak,
        None => return Ok(None),
    };
    let t = match d.get_item("t")? {
        Some(t) if !t.is_none() => f64_array(&t, "data['t']")?,
        _ => {
            return Err(input(format!(
                "data: 't' is missing (objective='{}' learns from positions sampled at times t)",
                objective.as_str()
            )))
        }
    };
    if t.shape().len() != 1 {
        return Err(input(format!(
            "data['t'] must have shape (T,), got {}",
            shape_str(t.shape())
        )));
    }
    let tv = t.as_slice()?;
    check_finite("data['t']", tv, 1, false)?;
    let Some(q) = d.get_item("q")? else {
        return Err(input("data: 'q' is missing"));
    };
    let q = f64_array(&q, "data['q']")?;
    let (b, nt, dim) = match q.shape() {
        [b, nt, dim] => (*b, *nt, *dim),
        [nt, dim] => (1, *nt, *dim),
        s => {
            return Err(input(format!(
                "data['q'] must have shape (B, T, D) or (T, D), got {}",
                shape_str(s)
            )))
        }
    };
    if nt != tv.len() {
        return Err(input(format!(
            "data['q'] has {nt} frames but data['t'] has {} times",
            tv.len()
        )));
    }
    let qv = q.as_slice()?;
    check_finite("data['q']", qv, dim, true)?;
    let (system, params) = crate::fit::system_params(d)?;
    let pos = PositionsData {
        system,
        params,
        t: Array1::from(tv.to_vec()),
        q: Array3::from_shape_vec((b, nt, dim), qv.to_vec()).expect("shape"),
    };
    if let Some(p) = pos.problems().first() {
        return Err(input(format!("data: {}: {}", p.location, p.msg)));
    }
    Ok(Some(Positions {
        pos,
        name: "<arrays>".into(),
        objective,
    }))
}

/// A data file: the CLI's rule (`lgn train --objective`, src/cli/train_positions.rs).
fn from_file(p: PathBuf, obj: Option<ObjectiveKind>) -> PyResult<Option<Positions>> {
    let pos_only = lgn::io::is_positions_only(&p).py_err()?;
    let objective = match obj {
        Some(ObjectiveKind::Accel) if pos_only => {
            return Err(lgn::Error::file(
                &p,
                "objective='accel' needs measured qdot and qddot, but this trajectories file holds positions only (t, q); use objective='weak' (the default for such data), 'savgol' or 'central'",
            ))
            .py_err()
        }
        Some(ObjectiveKind::Accel) => return Ok(None),
        Some(o) => o,
        None if pos_only => ObjectiveKind::Weak,
        None => return Ok(None),
    };
    if lgn::io::file_kind(&p).py_err()? != Some(lgn::io::Kind::Trajectories) {
        return Err(lgn::Error::file(
            &p,
            format!(
                "objective='{}' learns from trajectories sampled at a fixed step; this is not a trajectories file",
                objective.as_str()
            ),
        ))
        .py_err();
    }
    let pos = PositionsData::read(&p).py_err()?;
    Ok(Some(Positions {
        pos,
        name: p.display().to_string(),
        objective,
    }))
}

impl Positions {
    /// The first frame as one (q, q̇ = 0, q̈ = 0) sample: the dimension, system and parameters
    /// the model construction reads (the objective's data is made by its trainer).
    pub fn shape_only(&self) -> lgn::io::SamplesData {
        let d = self.pos.dim();
        let q = self.pos.q.slice(ndarray::s![0, 0..1, ..]).to_owned();
        lgn::io::SamplesData {
            system: self.pos.system.clone(),
            params: self.pos.params.clone(),
            qdot: ndarray::Array2::zeros((1, d)),
            qddot: ndarray::Array2::zeros((1, d)),
            q,
            weights: None,
        }
    }
}

/// No samples (of states of dimension `d`): the positions objectives make their own.
pub fn no_samples(d: usize) -> lgn::train::Samples {
    lgn::train::Samples {
        n: 0,
        in_dim: 2 * d,
        out_dim: d,
        input: vec![],
        target: vec![],
        weights: None,
    }
}
