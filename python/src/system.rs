//! `lgn.System`: an Euler–Lagrange system (a named system, a spring network, a trained model on
//! a graph) and its batched evaluations.

use crate::arrays::{states, States};
use crate::errors::{input, lgn_at, IntoPy, Signals};
use lgn::dynamics::Dynamics;
use numpy::{IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods};
use pyo3::prelude::*;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Builds a fresh copy of a system's dynamics (one per worker thread of a batched call).
pub type Builder = Arc<dyn Fn() -> lgn::Result<Dynamics> + Send + Sync>;

/// How a system computes.
pub enum Engine {
    /// A Lagrangian: accelerations, energy, Lagrangian, mass matrix.
    Lagrangian { build: Builder, dy: Mutex<Dynamics> },
    /// A model without a Lagrangian (plain MLP, HNN): accelerations only.
    Predict(lgn::train::TrainedModel),
}

/// Systems with at most this many coordinates evaluate a batch in parallel over its states
/// (one copy of the dynamics per worker); larger ones parallelise inside each evaluation.
const BATCH_PARALLEL_MAX_COORDS: usize = 4096;

/// States per block between Ctrl-C checks of a batched call.
const BLOCK: usize = 4096;

/// States per block between Ctrl-C checks on the single-site path (about a millisecond).
const SITE_BLOCK: usize = 1 << 15;

/// An Euler–Lagrange system q̈ = M⁻¹(∂L/∂q − C q̇) built by lgn.
#[pyclass(module = "lgn._lgn", frozen)]
pub struct System {
    pub name: String,
    pub n: usize,
    pub engine: Engine,
    pub solver: String,
}

impl System {
    pub fn from_builder(name: String, build: Builder) -> PyResult<System> {
        let dy = build().py_err()?;
        let n = dy.n_coords();
        let solver = dy.solver.kind().to_string();
        Ok(System {
            name,
            n,
            engine: Engine::Lagrangian {
                build,
                dy: Mutex::new(dy),
            },
            solver,
        })
    }

    fn need_lagrangian(&self, what: &str) -> PyResult<()> {
        if let Engine::Predict(m) = &self.engine {
            return Err(input(format!(
                "a '{}' model has no Lagrangian: {what} is not defined (only lnn, lgn and graph models have one)",
                m.kind.as_str()
            )));
        }
        Ok(())
    }
}

/// Evaluate `f` on every state of a batch (row-major B × D in `q`, `v`), `per` outputs per
/// state into `out`; parallel over states for small systems. Errors name the state.
fn run_batch(
    engine: &Engine,
    q: &[f64],
    v: &[f64],
    b: usize,
    d: usize,
    per: usize,
    out: &mut [f64],
    f: &(dyn Fn(&mut Dynamics, &[f64], &[f64], &mut [f64]) -> lgn::Result<()> + Sync),
    batched: bool,
    accel: bool,
) -> PyResult<()> {
    let sig = Signals::default();
    let at = |i: usize| {
        if batched {
            format!("state {i}")
        } else {
            "state".into()
        }
    };
    match engine {
        Engine::Predict(m) => {
            for (blk, (qb, (vb, ob))) in q
                .chunks(BLOCK * d)
                .zip(v.chunks(BLOCK * d).zip(out.chunks_mut(BLOCK * per)))
                .enumerate()
            {
                if sig.check() {
                    break;
                }
                let r: Result<(), (usize, lgn::Error)> =
                    ob.par_chunks_mut(per).enumerate().try_for_each(|(i, o)| {
                        let a = m
                            .predict(
                                &qb[i * d..(i + 1) * d],
                                &vb[i * d..(i + 1) * d],
                                lgn::solve::SolverKind::Auto,
                            )
                            .map_err(|e| (i, e))?;
                        o.copy_from_slice(&a);
                        Ok(())
                    });
                r.map_err(|(i, e)| lgn_at(e, &at(blk * BLOCK + i)))?;
            }
        }
        Engine::Lagrangian { build, dy } => {
            let mut main = dy
                .lock()
                .map_err(|_| input("the system is broken by an earlier panic"))?;
            if accel && b > 1 && main.is_single_site() {
                // The library's lean batch path, one long block between Ctrl-C checks.
                for (blk, (qb, (vb, ob))) in q
                    .chunks(SITE_BLOCK * d)
                    .zip(
                        v.chunks(SITE_BLOCK * d)
                            .zip(out.chunks_mut(SITE_BLOCK * per)),
                    )
                    .enumerate()
                {
                    if sig.check() {
                        break;
                    }
                    main.accelerations_batch(qb, vb, ob)
                        .map_err(|e| lgn_at(e.error, &at(blk * SITE_BLOCK + e.state)))?;
                }
            } else if b <= 1 || d > BATCH_PARALLEL_MAX_COORDS {
                for i in 0..b {
                    if i % 64 == 0 && sig.check() {
                        break;
                    }
                    f(
                        &mut main,
                        &q[i * d..(i + 1) * d],
                        &v[i * d..(i + 1) * d],
                        &mut out[i * per..(i + 1) * per],
                    )
                    .map_err(|e| lgn_at(e, &at(i)))?;
                }
            } else {
                let workers = rayon::current_num_threads().max(1);
                for (blk, (qb, (vb, ob))) in q
                    .chunks(BLOCK * d)
                    .zip(v.chunks(BLOCK * d).zip(out.chunks_mut(BLOCK * per)))
                    .enumerate()
                {
                    if sig.check() {
                        break;
                    }
                    let nb = ob.len() / per;
                    let chunk = nb.div_ceil(workers);
                    let r: Result<(), (usize, lgn::Error)> = ob
                        .par_chunks_mut(chunk * per)
                        .enumerate()
                        .try_for_each(|(c, oc)| {
                            let mut dy = build().map_err(|e| (c * chunk, e))?;
                            for (j, o) in oc.chunks_mut(per).enumerate() {
                                let i = c * chunk + j;
                                f(&mut dy, &qb[i * d..(i + 1) * d], &vb[i * d..(i + 1) * d], o)
                                    .map_err(|e| (i, e))?;
                            }
                            Ok(())
                        });
                    r.map_err(|(i, e)| lgn_at(e, &at(blk * BLOCK + i)))?;
                }
            }
        }
    }
    match sig.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl System {
    /// Evaluate per state; returns an array (B, per) or (per,) — or (B,) / scalar when `per` = 1
    /// and `scalar`.
    fn eval<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
        qdot: &Bound<'py, PyAny>,
        per: usize,
        scalar: bool,
        accel: bool,
        f: &(dyn Fn(&mut Dynamics, &[f64], &[f64], &mut [f64]) -> lgn::Result<()> + Sync),
    ) -> PyResult<Py<PyAny>> {
        let st: States = states(q, qdot, self.n, ("q", "qdot"))?;
        let (b, d) = (st.b(), st.d);
        let (qs, vs) = (st.q.as_slice()?, st.v.as_slice()?);
        // The result array is allocated first and written in place (no copy afterwards).
        let shape: Vec<usize> = match (st.batch, scalar) {
            (None, _) => vec![per],
            (Some(b), true) => vec![b],
            (Some(b), false) => vec![b, per],
        };
        let arr = PyArrayDyn::<f64>::zeros(py, shape, false);
        {
            let mut rw = arr.readwrite();
            let out = rw.as_slice_mut()?;
            py.detach(|| {
                run_batch(
                    &self.engine,
                    qs,
                    vs,
                    b,
                    d,
                    per,
                    out,
                    f,
                    st.batch.is_some(),
                    accel,
                )
            })?;
        }
        Ok(match (st.batch, scalar) {
            (None, true) => arr.get_item([0])?.unbind(),
            _ => arr.into_any().unbind(),
        })
    }
}

#[pymethods]
impl System {
    /// Accelerations q̈ = M⁻¹(∂L/∂q − C q̇) at (q, qdot): arrays of shape (D,) for one state or
    /// (B, D) for a batch of B states (evaluated in parallel, without the GIL). Returns an array
    /// of the same shape.
    pub fn accel<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
        qdot: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.eval(py, q, qdot, self.n, false, true, &|dy, q, v, a| {
            dy.accelerations_into(q, v, a)
        })
    }

    /// Energy E = Σ q̇ ∂L/∂q̇ − L at (q, qdot): a float for one state, an array (B,) for a batch.
    pub fn energy<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
        qdot: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.need_lagrangian("the energy")?;
        self.eval(py, q, qdot, 1, true, false, &|dy, q, v, e| {
            e[0] = dy.energy(q, v)?;
            Ok(())
        })
    }

    /// The Lagrangian L(q, q̇) = Σ_sites ρ: a float for one state, an array (B,) for a batch.
    pub fn lagrangian<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
        qdot: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.need_lagrangian("the Lagrangian")?;
        self.eval(py, q, qdot, 1, true, false, &|dy, q, v, e| {
            e[0] = dy.lagrangian_value(q, v)?;
            Ok(())
        })
    }

    /// The mass matrix M = ∂²L/∂q̇∂q̇ at one state in CSR form: (data, indices, indptr, n).
    /// `lgn.System.mass_matrix` wraps it as a scipy.sparse matrix.
    fn mass_matrix_csr<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
        qdot: &Bound<'py, PyAny>,
    ) -> PyResult<(
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<i64>>,
        Bound<'py, PyArray1<i64>>,
        usize,
    )> {
        self.need_lagrangian("the mass matrix")?;
        let st = states(q, qdot, self.n, ("q", "qdot"))?;
        if st.batch.is_some() {
            return Err(input(
                "mass_matrix takes one state: q and qdot of shape (D,), not a batch",
            ));
        }
        let (qs, vs) = (st.q.as_slice()?, st.v.as_slice()?);
        let Engine::Lagrangian { dy, .. } = &self.engine else {
            unreachable!("checked above")
        };
        let m = py.detach(|| -> lgn::Result<sprs::CsMat<f64>> {
            let mut dy = dy.lock().expect("not poisoned");
            dy.evaluate_sites(qs, vs)?;
            dy.assemble();
            Ok(dy.mass_matrix())
        });
        let m = m.py_err()?;
        let n = m.rows();
        let (indptr, indices, data) = m.into_raw_storage();
        let i64s = |v: Vec<usize>| v.into_iter().map(|x| x as i64).collect::<Vec<i64>>();
        Ok((
            data.into_pyarray(py),
            i64s(indices).into_pyarray(py),
            i64s(indptr).into_pyarray(py),
            n,
        ))
    }

    /// Number of coordinates D (state vectors have shape (D,)).
    #[getter]
    fn n_coords(&self) -> usize {
        self.n
    }

    /// What the system is ("dblpend", "springs on ring", a model file, …).
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The linear solver used for M q̈ = b ("banded", "sparse", "dense", …).
    #[getter]
    fn solver(&self) -> String {
        self.solver.clone()
    }

    /// Whether the system has a Lagrangian (energy, mass matrix, variational integrator).
    #[getter]
    pub fn has_lagrangian(&self) -> bool {
        matches!(self.engine, Engine::Lagrangian { .. })
    }

    /// Indices of the coordinates held fixed (Dirichlet boundary), sorted.
    #[getter]
    fn fixed_coords(&self) -> Vec<usize> {
        match &self.engine {
            Engine::Lagrangian { dy, .. } => dy
                .lock()
                .map(|d| d.fixed_coords().to_vec())
                .unwrap_or_default(),
            Engine::Predict(_) => vec![],
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<lgn.System {} with {} coordinates, solver {}>",
            self.name, self.n, self.solver
        )
    }
}
