//! Positions-only trajectories (issue 12): what an experiment records — times `t` (T) and
//! positions `q` (B × T × D), no velocities or accelerations. Such a file is an ordinary
//! `trajectories` file whose `qdot` (and `qddot`) datasets are absent (docs/SCHEMA.md); a full
//! trajectories file reads as positions too (its derivatives are ignored).
//!
//! Errors name the file, the dataset and the trajectory/frame: a NaN position, times that are
//! not strictly increasing, and (for the objectives that need it, [`PositionsData::uniform_step`])
//! a time step that is not constant.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array3};

use super::h5::{guard, refuse_invalid, Ctx, Out, Problem};
use super::trajectory::t_problem;
use super::{AttrValue, Kind};
use crate::error::{Error, Result};

/// B trajectories of positions sampled at the same T times, D coordinates each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PositionsData {
    /// Name of the physical system (root attribute `system`).
    pub system: Option<String>,
    /// System parameters: the other numeric root attributes (e.g. `g`, `noise`).
    pub params: BTreeMap<String, f64>,
    /// Times, length T, strictly increasing (dataset `t`).
    pub t: Array1<f64>,
    /// Positions, B×T×D (dataset `q`).
    pub q: Array3<f64>,
}

const RESERVED: &[&str] = &["lgn_kind", "lgn_schema_version", "system"];

/// Relative tolerance on the spacing of `t` for objectives that need a fixed step.
pub const STEP_RTOL: f64 = 1e-6;

/// Read the positions of a trajectories file (with or without `qdot`/`qddot`).
pub fn read_positions(path: impl AsRef<Path>) -> Result<PositionsData> {
    PositionsData::read(path)
}

/// True when `path` is a trajectories file without velocities (`t` and `q` only).
pub fn is_positions_only(path: impl AsRef<Path>) -> Result<bool> {
    let path = path.as_ref();
    if super::file_kind(path)? != Some(Kind::Trajectories) {
        return Ok(false);
    }
    Ctx::read_with(path, |ctx| Some(!ctx.exists("qdot")))
}

impl PositionsData {
    /// Number of trajectories B.
    pub fn n_batch(&self) -> usize {
        self.q.shape()[0]
    }
    /// Number of frames T.
    pub fn n_frames(&self) -> usize {
        self.q.shape()[1]
    }
    /// Coordinates per frame D.
    pub fn dim(&self) -> usize {
        self.q.shape()[2]
    }

    /// Read and validate (the whole file is loaded into memory).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        Ctx::read_with(path.as_ref(), Self::read_ctx)
    }

    pub(crate) fn read_ctx(ctx: &mut Ctx) -> Option<Self> {
        ctx.check_kind(Kind::Trajectories);
        let t = ctx.f64_1d_any("t", true);
        let q = ctx.f64_3d_any("q", true);
        let system = ctx.attr_str("/", "system", false);
        let params = ctx.params(RESERVED);
        let s = PositionsData {
            system,
            params,
            t: t?,
            q: q?,
        };
        let problems = s.problems();
        ctx.accept(s, problems)
    }

    /// Consistency checks: shapes, strictly increasing finite times, finite positions (the first
    /// bad value is named by trajectory, frame and coordinate).
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let shape = self.q.shape().to_vec();
        p.extend(t_problem(&self.t));
        if shape[0] == 0 || shape[2] == 0 {
            p.push(Problem {
                location: "/q".into(),
                msg: format!("has shape {shape:?}, expected (B, T, D) with B >= 1 and D >= 1"),
            });
        }
        if self.t.len() != shape[1] {
            p.push(Problem {
                location: "/t".into(),
                msg: format!(
                    "has length {} but /q has shape {shape:?} (B, T, D), so T = {}",
                    self.t.len(),
                    shape[1]
                ),
            });
        }
        if let Some(((b, k, j), x)) = self.q.indexed_iter().find(|(_, x)| !x.is_finite()) {
            let at = self
                .t
                .get(k)
                .map_or(String::new(), |t| format!(" (t = {t})"));
            p.push(Problem {
                location: "/q".into(),
                msg: format!(
                    "trajectory {b}, frame {k}{at}: coordinate {j} is {x}; positions must be finite (drop or interpolate the frame)"
                ),
            });
        }
        for (k, v) in &self.params {
            if !v.is_finite() {
                p.push(Problem {
                    location: format!("/@{k}"),
                    msg: format!("parameter is {v}, expected a finite number"),
                });
            }
        }
        p
    }

    /// The constant time step h of `t`, or an error naming `path` and the first frame whose
    /// spacing differs from (t_last − t_0)/(T − 1) by more than [`STEP_RTOL`] (relative).
    pub fn uniform_step(&self, path: &Path) -> Result<f64> {
        let n = self.t.len();
        if n < 2 {
            return Err(Error::file_at(
                path,
                "/t",
                format!("has {n} frame(s); a time step needs at least 2"),
            ));
        }
        let h = (self.t[n - 1] - self.t[0]) / (n - 1) as f64;
        if let Some(k) = (1..n).find(|&k| {
            let dt = self.t[k] - self.t[k - 1];
            (dt - h).abs() > STEP_RTOL * h.abs() || !dt.is_finite()
        }) {
            return Err(Error::file_at(
                path,
                "/t",
                format!(
                    "the objective needs a fixed time step, but t[{k}] − t[{}] = {} differs from the mean step {h} (frame {k}); resample the data to a uniform step or use --objective savgol",
                    k - 1,
                    self.t[k] - self.t[k - 1]
                ),
            ));
        }
        Ok(h)
    }

    /// Write a positions-only trajectories file (datasets `t`, `q`), atomically.
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_invalid(path, self.problems())?;
        guard(path, || {
            let out = Out::create(path, force, Kind::Trajectories)?;
            if let Some(s) = &self.system {
                out.attr("/", "system", &AttrValue::Str(s.clone()))?;
            }
            for (k, v) in &self.params {
                if !RESERVED.contains(&k.as_str()) {
                    out.attr("/", k, &AttrValue::Float(*v))?;
                }
            }
            out.f64("t", &self.t)?;
            out.f64("q", &self.q)?;
            out.commit().map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> PositionsData {
        PositionsData {
            t: Array1::from_iter((0..5).map(|k| 0.1 * k as f64)),
            q: Array3::from_shape_fn((2, 5, 3), |(b, k, j)| (b + k + j) as f64),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("lgn-pos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pos.h5");
        let d = data();
        d.write(&p, true).unwrap();
        let back = PositionsData::read(&p).unwrap();
        assert_eq!(back, d);
        assert!((back.uniform_step(&p).unwrap() - 0.1).abs() < 1e-15);
        assert!(crate::io::validate(&p).unwrap().is_empty());
        // Non-uniform step: named frame.
        let mut u = d.clone();
        u.t[3] = 0.31;
        let e = u.uniform_step(&p).unwrap_err().to_string();
        assert!(e.contains("frame 3") && e.contains("pos.h5"), "{e}");
        // NaN position: refused on write, and named by trajectory and frame on read.
        let mut n = d.clone();
        n.q[[1, 2, 0]] = f64::NAN;
        let e = n.write(&p, true).unwrap_err().to_string();
        assert!(e.contains("trajectory 1, frame 2"), "{e}");
    }
}
