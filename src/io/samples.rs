//! `samples` files: independent training states (q, q̇, q̈) with optional weights.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array2};

use super::h5::{guard, refuse_invalid, Ctx, Out, Problem};
use super::{AttrValue, Kind};
use crate::error::Result;

/// N independent samples of dimension D (training data).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SamplesData {
    /// Name of the physical system (root attribute `system`).
    pub system: Option<String>,
    /// System parameters: the other numeric root attributes (e.g. `g`, `dx`).
    pub params: BTreeMap<String, f64>,
    /// Coordinates, N×D (dataset `q`).
    pub q: Array2<f64>,
    /// Velocities, N×D (dataset `qdot`).
    pub qdot: Array2<f64>,
    /// Accelerations, N×D (dataset `qddot`).
    pub qddot: Array2<f64>,
    /// Optional non-negative sample weights, length N (dataset `weights`).
    pub weights: Option<Array1<f64>>,
}

const RESERVED: &[&str] = &["lgn_kind", "lgn_schema_version", "system"];

pub(crate) fn finite_problem2(name: &str, a: &Array2<f64>) -> Option<Problem> {
    a.indexed_iter()
        .find(|(_, x)| !x.is_finite())
        .map(|((i, j), x)| Problem {
            location: name.into(),
            msg: format!("value at index [{i}, {j}] is {x}, expected a finite number"),
        })
}

/// The checks of [`SamplesData::problems`] that need only the shapes of q, q̇, q̈ (and the
/// small weights vector): shared by the in-memory and the streaming validation.
fn shape_problems(
    shape: &[usize],
    qdot: &[usize],
    qddot: &[usize],
    weights: Option<&Array1<f64>>,
) -> Vec<Problem> {
    let mut p = Vec::new();
    if shape[1] == 0 {
        p.push(Problem {
            location: "/q".into(),
            msg: format!("has shape {shape:?}, expected (N, D) with D >= 1"),
        });
    }
    for (name, a) in [("/qdot", qdot), ("/qddot", qddot)] {
        if a != shape {
            p.push(Problem {
                location: name.into(),
                msg: format!("has shape {a:?} but /q has shape {shape:?}; they must match"),
            });
        }
    }
    if let Some(w) = weights {
        if w.len() != shape[0] {
            p.push(Problem {
                location: "/weights".into(),
                msg: format!(
                    "has length {} but there are {} samples (rows of /q)",
                    w.len(),
                    shape[0]
                ),
            });
        }
        if let Some((i, x)) = w
            .iter()
            .enumerate()
            .find(|(_, x)| !x.is_finite() || **x < 0.0)
        {
            p.push(Problem {
                location: "/weights".into(),
                msg: format!("value at index [{i}] is {x}, expected a finite number >= 0"),
            });
        }
    }
    p
}

/// Non-finite system parameters.
pub(crate) fn param_problems(params: &BTreeMap<String, f64>) -> Vec<Problem> {
    params
        .iter()
        .filter(|(_, v)| !v.is_finite())
        .map(|(k, v)| Problem {
            location: format!("/@{k}"),
            msg: format!("parameter is {v}, expected a finite number"),
        })
        .collect()
}

impl SamplesData {
    /// Number of samples N.
    pub fn len(&self) -> usize {
        self.q.nrows()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.q.nrows() == 0
    }

    /// Read and validate a samples file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        Ctx::read_with(path.as_ref(), Self::read_ctx)
    }

    pub(crate) fn read_ctx(ctx: &mut Ctx) -> Option<Self> {
        ctx.check_kind(Kind::Samples);
        if ["q", "qdot", "qddot"].iter().any(|n| ctx.streams(n)) {
            // `lgn info` on a large file: the same checks, one hyperslab at a time.
            let q = ctx.f64_streamed("q", true, 2);
            let qdot = ctx.f64_streamed("qdot", true, 2);
            let qddot = ctx.f64_streamed("qddot", true, 2);
            let weights = ctx.f64_1d("weights", false);
            let _ = ctx.attr_str("/", "system", false);
            let params = ctx.params(RESERVED);
            let mut p = shape_problems(&q?, &qdot?, &qddot?, weights.as_ref());
            p.extend(param_problems(&params));
            ctx.problems.extend(p);
            return None;
        }
        let q = ctx.f64_2d("q", true);
        let qdot = ctx.f64_2d("qdot", true);
        let qddot = ctx.f64_2d("qddot", true);
        let weights = ctx.f64_1d("weights", false);
        let system = ctx.attr_str("/", "system", false);
        let params = ctx.params(RESERVED);
        let s = SamplesData {
            system,
            params,
            q: q?,
            qdot: qdot?,
            qddot: qddot?,
            weights,
        };
        let problems = s.problems();
        ctx.accept(s, problems)
    }

    /// Consistency checks on the in-memory samples.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = shape_problems(
            self.q.shape(),
            self.qdot.shape(),
            self.qddot.shape(),
            self.weights.as_ref(),
        );
        for (name, a) in [
            ("/q", &self.q),
            ("/qdot", &self.qdot),
            ("/qddot", &self.qddot),
        ] {
            p.extend(finite_problem2(name, a));
        }
        p.extend(param_problems(&self.params));
        p
    }

    /// Write the samples (atomically; an existing file is only replaced with `force`).
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_invalid(path, self.problems())?;
        guard(path, || {
            let out = Out::create(path, force, Kind::Samples)?;
            out.f64("q", &self.q)?;
            out.f64("qdot", &self.qdot)?;
            out.f64("qddot", &self.qddot)?;
            if let Some(w) = &self.weights {
                out.f64("weights", w)?;
            }
            if let Some(s) = &self.system {
                out.attr("/", "system", &AttrValue::Str(s.clone()))?;
            }
            for (k, v) in &self.params {
                if !RESERVED.contains(&k.as_str()) {
                    out.attr("/", k, &AttrValue::Float(*v))?;
                }
            }
            out.commit().map(|_| ())
        })
    }
}
