//! `lgn.simulate`: roll out a system or a model from one state with lgn's integrators.

use crate::arrays::vector;
use crate::errors::{input, lgn as lgn_err, IntoPy, Signals};
use crate::model::Model;
use crate::system::{Engine, System};
use lgn::integrate::{integrate, linspace_times, Dp5Options, Method, MidpointOptions};
use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// Integrate from (q0, qdot0) over [0, t_end], output every `dt` (see `lgn.simulate`).
#[pyfunction]
#[pyo3(signature = (system, q0, qdot0, t_end, dt, integrator = "dp5", step = None, rtol = 1e-10, atol = 1e-10, out = None, overwrite = false, energy = true, path = None))]
#[allow(clippy::too_many_arguments)]
pub fn simulate<'py>(
    py: Python<'py>,
    system: &Bound<'py, PyAny>,
    q0: &Bound<'py, PyAny>,
    qdot0: &Bound<'py, PyAny>,
    t_end: f64,
    dt: f64,
    integrator: &str,
    step: Option<f64>,
    rtol: f64,
    atol: f64,
    out: Option<PathBuf>,
    overwrite: bool,
    energy: bool,
    path: Option<PathBuf>,
) -> PyResult<Bound<'py, PyDict>> {
    if out.is_some() && path.is_some() {
        return Err(input(
            "give the trajectory file as path= (out= is its older name), not both",
        ));
    }
    let out = path.or(out);
    // A graph model's node geometry goes into the file and its XDMF sidecar (as `lgn simulate`).
    let geometry = match system.cast::<Model>() {
        Ok(m) if out.is_some() => match &*m.get().inner.lock().expect("not poisoned") {
            lgn::model::AnyModel::Graph(g) => {
                let gr = g.own_graph().py_err()?;
                lgn::io::xdmf::Geometry::from_graph(&gr.data)
                    .py_err()?
                    .map(|geo| (gr.name.clone(), geo))
            }
            lgn::model::AnyModel::Net(_) => None,
        },
        _ => None,
    };
    let sys: Py<System> = if let Ok(s) = system.cast::<System>() {
        s.clone().unbind()
    } else if let Ok(m) = system.cast::<Model>() {
        m.get().own_system(py)?
    } else {
        return Err(input(
            "system must be an lgn.System (lgn.system(...), Model.system(...)) or an lgn.Model",
        ));
    };
    let s = sys.get();
    let n = s.n;
    let q0 = vector(q0, "q0", n)?;
    let v0 = vector(qdot0, "qdot0", n)?;
    if !(t_end.is_finite() && t_end > 0.0) {
        return Err(input(format!(
            "t_end must be positive and finite, got {t_end}"
        )));
    }
    if !(dt.is_finite() && dt > 0.0 && dt <= t_end) {
        return Err(input(format!(
            "dt must be positive and at most t_end, got {dt}"
        )));
    }
    let h = step.unwrap_or(dt);
    if !(h.is_finite() && h > 0.0) {
        return Err(input(format!("step must be positive and finite, got {h}")));
    }
    let method = match integrator {
        "rk4" => Method::Rk4 { dt: h },
        "verlet" => Method::Verlet { dt: h },
        "midpoint" => Method::Midpoint {
            dt: h,
            opts: MidpointOptions::default(),
        },
        "dp5" => Method::Dp5(Dp5Options::tol(rtol, atol)),
        _ => {
            return Err(input(format!(
                "integrator: unknown integrator '{integrator}' (one of dp5, rk4, verlet, midpoint)"
            )))
        }
    };
    let frames = lgn::limits::frame_count(t_end, dt).py_err()?;
    lgn::limits::check_alloc("trajectory frames", 2 * (n as u128) * (frames as u128), 8)
        .py_err()?;
    if let Some(o) = &out {
        lgn::io::check_writable(o, overwrite).py_err()?;
        let xmf = lgn::io::xdmf::sidecar_path(o);
        if geometry.is_some() && xmf.exists() && !overwrite {
            return Err(input(format!(
                "{}: the XDMF sidecar already exists; pass overwrite=True to replace it",
                xmf.display()
            )));
        }
    }
    let times = linspace_times(frames, dt);
    let want_energy = energy && s.has_lagrangian();
    // The file is written while the rollout runs (frames, q̈ and energy per frame); an
    // interrupted run still finishes it with the frames done.
    let mut writer = match &out {
        Some(o) => {
            let mut params = std::collections::BTreeMap::new();
            params.insert("t_end".to_string(), t_end);
            let opts = lgn::io::TrajectoryWriterOptions {
                system: Some(s.name.clone()),
                params,
                with_qddot: true,
                with_energy: want_energy,
                ..Default::default()
            };
            let w = lgn::io::TrajectoryWriter::create(o, 1, n, &opts, overwrite).py_err()?;
            if let Some((mesh, geo)) = &geometry {
                w.set_attr("mesh", &lgn::io::AttrValue::Str(mesh.clone()))
                    .py_err()?;
                w.write_geometry(geo).py_err()?;
            }
            Some(w)
        }
        None => None,
    };
    // An evaluation copy of the dynamics for the written q̈ and energy.
    let mut eval = match (&writer, &s.engine) {
        (Some(_), Engine::Lagrangian { build, .. }) => Some(build().py_err()?),
        _ => None,
    };
    let res = py.detach(
        || -> Result<(Vec<f64>, Vec<f64>, Vec<f64>, usize, lgn::integrate::Stats), PyErr> {
            let sig = Signals::default();
            let mut q = Vec::with_capacity(n * frames);
            let mut v = Vec::with_capacity(n * frames);
            let mut done = 0usize;
            let mut acc = vec![0.0; n];
            let mut cb = |_k: usize, t: f64, qk: &[f64], vk: &[f64]| -> lgn::Result<()> {
                if sig.check() {
                    return Err(lgn::Error::input("interrupted"));
                }
                if let Some(w) = writer.as_mut() {
                    let mut en = None;
                    match (&mut eval, &s.engine) {
                        (Some(dy), _) => {
                            dy.accelerations_into(qk, vk, &mut acc)?;
                            if want_energy {
                                en = Some(dy.energy(qk, vk)?);
                            }
                        }
                        (None, Engine::Predict(m)) => {
                            acc.copy_from_slice(&m.predict(qk, vk, lgn::solve::SolverKind::Auto)?)
                        }
                        (None, _) => unreachable!("an evaluation copy exists with a writer"),
                    }
                    fn row(x: &[f64]) -> ndarray::ArrayView2<'_, f64> {
                        ndarray::ArrayView2::from_shape((1, x.len()), x).expect("1 × D")
                    }
                    let e = en.map(|e| ndarray::Array1::from_elem(1, e));
                    w.push_frame(
                        t,
                        row(qk),
                        row(vk),
                        Some(row(&acc)),
                        e.as_ref().map(|e| e.view()),
                    )?;
                }
                q.extend_from_slice(qk);
                v.extend_from_slice(vk);
                done += 1;
                Ok(())
            };
            let stats = match &s.engine {
                Engine::Lagrangian { dy, .. } => {
                    let mut dy = dy.lock().expect("not poisoned");
                    integrate(&mut *dy, &method, &q0, &v0, times.as_slice(), &mut cb)
                }
                Engine::Predict(m) => {
                    let mut f = |q: &[f64], v: &[f64], a: &mut [f64]| -> lgn::Result<()> {
                        a.copy_from_slice(&m.predict(q, v, lgn::solve::SolverKind::Auto)?);
                        Ok(())
                    };
                    integrate(&mut f, &method, &q0, &v0, times.as_slice(), &mut cb)
                }
            };
            if let Some(e) = sig.take() {
                // Interrupted: the frames done make a valid file.
                if let Some(w) = writer.take() {
                    if w.n_frames() > 0 {
                        w.finish().map_err(lgn_err)?;
                        if geometry.is_some() {
                            if let Some(o) = &out {
                                lgn::io::xdmf::write_sidecar(o, true).map_err(lgn_err)?;
                            }
                        }
                    }
                }
                return Err(e);
            }
            let stats = stats.map_err(lgn_err)?;
            if let Some(w) = writer.take() {
                w.finish().map_err(lgn_err)?;
                if geometry.is_some() {
                    if let Some(o) = &out {
                        lgn::io::xdmf::write_sidecar(o, overwrite).map_err(lgn_err)?;
                    }
                }
            }
            let mut e = vec![];
            if want_energy {
                if let Engine::Lagrangian { dy, .. } = &s.engine {
                    let mut dy = dy.lock().expect("not poisoned");
                    for k in 0..done {
                        e.push(
                            dy.energy(&q[k * n..(k + 1) * n], &v[k * n..(k + 1) * n])
                                .map_err(lgn_err)?,
                        );
                    }
                }
            }
            Ok((q, v, e, done, stats))
        },
    );
    let (q, v, e, done, stats) = res?;
    let t = times[..done].to_vec();
    let d = PyDict::new(py);
    d.set_item("t", t.into_pyarray(py))?;
    d.set_item("q", q.into_pyarray(py).reshape([done, n])?)?;
    d.set_item("qdot", v.into_pyarray(py).reshape([done, n])?)?;
    d.set_item(
        "energy",
        if want_energy {
            Some(e.into_pyarray(py))
        } else {
            None
        },
    )?;
    d.set_item("steps", stats.steps)?;
    d.set_item("rejected", stats.rejected)?;
    d.set_item("evals", stats.evals)?;
    d.set_item("integrator", integrator)?;
    Ok(d)
}
