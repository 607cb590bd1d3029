//! `state` files: a single configuration (q, q̇), e.g. the input of `lgn accel --state`.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::Array1;

use super::h5::{check_finite_out, guard, refuse_invalid, Ctx, Out, Problem};
use super::{AttrValue, Kind};
use crate::error::Result;

/// One state: generalised coordinates `q` and velocities `qdot` (both length D = n·dof).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateData {
    /// Generalised coordinates (dataset `q`).
    pub q: Array1<f64>,
    /// Generalised velocities (dataset `qdot`).
    pub qdot: Array1<f64>,
    /// Coordinates per node: root attribute `dof`, or the second axis when `q` is stored (n, dof).
    pub dof: Option<usize>,
    /// Name of the physical system (root attribute `system`).
    pub system: Option<String>,
    /// System parameters: the other numeric root attributes (e.g. `g`, `dx`).
    pub params: BTreeMap<String, f64>,
}

const RESERVED: &[&str] = &["lgn_kind", "lgn_schema_version", "system", "dof", "n_nodes"];

/// Read `(q, qdot)` from a state file: float datasets `q` and `qdot` at the root, length n·dof or
/// shape (n, dof) (flattened in C order). lgn attributes are optional.
pub fn read_state(path: impl AsRef<Path>) -> Result<(Array1<f64>, Array1<f64>)> {
    let s = StateData::read(path)?;
    Ok((s.q, s.qdot))
}

impl StateData {
    /// A state without metadata.
    pub fn new(q: Array1<f64>, qdot: Array1<f64>) -> Self {
        StateData {
            q,
            qdot,
            ..Default::default()
        }
    }

    /// Read and validate a state file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        Ctx::read_with(path.as_ref(), Self::read_ctx)
    }

    pub(crate) fn read_ctx(ctx: &mut Ctx) -> Option<Self> {
        ctx.check_kind(Kind::State);
        let q = ctx.f64_flat("q", true);
        let qdot = ctx.f64_flat("qdot", true);
        let dof_attr = ctx.attr_usize("/", "dof", false);
        let n_nodes = ctx.attr_usize("/", "n_nodes", false);
        let system = ctx.attr_str("/", "system", false);
        let params = ctx.params(RESERVED);
        let ((q, qs), (qdot, qds)) = (q?, qdot?);
        if qs != qds {
            ctx.problem(
                "/qdot",
                format!("has shape {qds:?} but /q has shape {qs:?}; they must match"),
            );
            return None;
        }
        let mut dof = dof_attr;
        if qs.len() == 2 {
            if let Some(d) = dof_attr {
                if d != qs[1] {
                    ctx.problem("/@dof", format!("is {d} but /q has shape {qs:?} (n, dof)"));
                }
            }
            dof = Some(qs[1]);
        }
        match (n_nodes, dof) {
            (Some(n), Some(d)) if n.checked_mul(d) != Some(q.len()) => {
                ctx.problem(
                    "/q",
                    format!(
                        "has {} values, expected n_nodes * dof = {n} * {d} = {}",
                        q.len(),
                        (n as u128) * (d as u128)
                    ),
                );
            }
            (Some(n), None) if n == 0 || q.len() % n != 0 => {
                ctx.problem(
                    "/@n_nodes",
                    format!(
                        "is {n}, but /q has {} values: not n_nodes * dof for any whole dof",
                        q.len()
                    ),
                );
            }
            _ => {}
        }
        let s = StateData {
            q,
            qdot,
            dof,
            system,
            params,
        };
        let problems = s.problems();
        ctx.accept(s, problems)
    }

    /// Consistency checks on the in-memory state.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut add = |l: &str, m: String| {
            p.push(Problem {
                location: l.into(),
                msg: m,
            })
        };
        if self.q.is_empty() {
            add("/q", "is empty".into());
        }
        if self.q.len() != self.qdot.len() {
            add(
                "/qdot",
                format!(
                    "has length {} but /q has length {}",
                    self.qdot.len(),
                    self.q.len()
                ),
            );
        }
        if let Some(d) = self.dof {
            if d == 0 || self.q.len() % d != 0 {
                add(
                    "/@dof",
                    format!(
                        "is {d}, which does not divide the length of /q ({})",
                        self.q.len()
                    ),
                );
            }
        }
        for (name, a) in [("/q", &self.q), ("/qdot", &self.qdot)] {
            if let Some((i, x)) = a.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                add(
                    name,
                    format!("value at index [{i}] is {x}, expected a finite number"),
                );
            }
        }
        for (k, v) in &self.params {
            if !v.is_finite() {
                add(
                    &format!("/@{k}"),
                    format!("parameter is {v}, expected a finite number"),
                );
            }
        }
        p
    }

    /// Write the state (atomically; an existing file is only replaced with `force`).
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_invalid(path, self.problems())?;
        guard(path, || {
            let out = Out::create(path, force, Kind::State)?;
            check_finite_out(path, "q", &self.q)?;
            out.f64("q", &self.q)?;
            out.f64("qdot", &self.qdot)?;
            if let Some(d) = self.dof {
                out.attr("/", "dof", &AttrValue::Int(d as i64))?;
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
