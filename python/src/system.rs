//! `lgn.System`: an Euler–Lagrange system (a named system, a spring network, a trained model on
//! a graph) and its batched evaluations.

use crate::arrays::{states, States};
use crate::errors::{input, lgn_at, IntoPy, Signals};
use lgn::dynamics::Dynamics;
use numpy::{IntoPyArray, PyArray1, PyArrayMethods};
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

/// States per block of the single-site batch path (one `eval_block` call).
const SITE_BATCH: usize = 64;

/// Is `dy` one site holding every coordinate (the paper's single-system LNNs: double pendulum,
/// relativistic particle, ball), with no fixed coordinates? Then a batch of states is a batch of
/// sites of one density: one `Density::eval_block` per block of states and a small dense solve
/// each, instead of one full Euler–Lagrange assembly per state.
fn single_site(dy: &Dynamics) -> bool {
    let l = &dy.lagrangian;
    l.terms.len() == 1
        && l.terms[0].sites.len() == 1
        && l.terms[0]
            .sites
            .neighbourhood(0)
            .iter()
            .copied()
            .eq(0..l.n_nodes)
        && l.n_nodes * l.dof == dy.n_coords()
        && dy.fixed_coords().is_empty()
}

/// Solve the dense d×d system m a = b in place (partial pivoting); false when a pivot is not
/// clearly non-zero (the state then goes through lgn's own solver, which reports it).
fn small_solve(m: &mut [f64], b: &mut [f64], d: usize) -> bool {
    let scale = m.iter().fold(0.0f64, |s, x| s.max(x.abs()));
    for c in 0..d {
        let p = (c..d)
            .max_by(|&i, &j| m[i * d + c].abs().total_cmp(&m[j * d + c].abs()))
            .unwrap_or(c);
        if m[p * d + c].abs() <= 1e-12 * scale {
            return false;
        }
        if p != c {
            for k in 0..d {
                m.swap(c * d + k, p * d + k);
            }
            b.swap(c, p);
        }
        for r in c + 1..d {
            let f = m[r * d + c] / m[c * d + c];
            for k in c..d {
                m[r * d + k] -= f * m[c * d + k];
            }
            b[r] -= f * b[c];
        }
    }
    for c in (0..d).rev() {
        let mut x = b[c];
        for k in c + 1..d {
            x -= m[c * d + k] * b[k];
        }
        b[c] = x / m[c * d + c];
    }
    b.iter().all(|x| x.is_finite())
}

type Scratch = (Vec<f64>, Vec<f64>, Vec<f64>, Option<Dynamics>);

/// Accelerations of a batch on a [`single_site`] system; a state whose record is not finite or
/// whose mass matrix is singular is evaluated by lgn's own path (and gets lgn's error).
fn single_site_accel(
    dy: &Dynamics,
    build: &Builder,
    q: &[f64],
    v: &[f64],
    out: &mut [f64],
) -> Result<(), (usize, lgn::Error)> {
    let term = &dy.lagrangian.terms[0];
    let dens = term.density.as_ref();
    let d = dy.n_coords();
    let feats = term.sites.features_of(0).to_vec();
    let p = dens.input_len();
    let lay = dens.layout();
    let stride = lay.stride();
    out.par_chunks_mut(SITE_BATCH * d)
        .enumerate()
        .try_for_each_init(
            || -> Scratch {
                (
                    vec![0.0; SITE_BATCH * p],
                    vec![0.0; SITE_BATCH * stride],
                    vec![0.0; d * d],
                    None,
                )
            },
            |(x, rec, m, slow), (blk, ob)| {
                let nb = ob.len() / d;
                let s0 = blk * SITE_BATCH;
                for j in 0..nb {
                    let col = &mut x[j * p..(j + 1) * p];
                    col[..d].copy_from_slice(&q[(s0 + j) * d..(s0 + j + 1) * d]);
                    col[d..2 * d].copy_from_slice(&v[(s0 + j) * d..(s0 + j + 1) * d]);
                    col[2 * d..].copy_from_slice(&feats);
                }
                dens.eval_block(&x[..nb * p], nb, &mut rec[..nb * stride]);
                for (j, a) in ob.chunks_mut(d).enumerate() {
                    let r = &rec[j * stride..(j + 1) * stride];
                    let ok = r.iter().all(|x| x.is_finite()) && {
                        m.copy_from_slice(&r[lay.mass()..lay.mass() + d * d]);
                        for c in 0..d {
                            a[c] = r[lay.grad_q() + c] - r[lay.cv() + c];
                        }
                        small_solve(m, a, d)
                    };
                    if !ok {
                        let i = s0 + j;
                        if slow.is_none() {
                            *slow = Some(build().map_err(|e| (i, e))?);
                        }
                        let dy = slow.as_mut().expect("built");
                        dy.accelerations_into(&q[i * d..(i + 1) * d], &v[i * d..(i + 1) * d], a)
                            .map_err(|e| (i, e))?;
                    }
                }
                Ok(())
            },
        )
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
            if accel && b > 1 && single_site(&main) {
                for (blk, (qb, (vb, ob))) in q
                    .chunks(BLOCK * d)
                    .zip(v.chunks(BLOCK * d).zip(out.chunks_mut(BLOCK * per)))
                    .enumerate()
                {
                    if sig.check() {
                        break;
                    }
                    single_site_accel(&main, build, qb, vb, ob)
                        .map_err(|(i, e)| lgn_at(e, &at(blk * BLOCK + i)))?;
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
        let mut out = vec![0.0; b * per];
        py.detach(|| {
            run_batch(
                &self.engine,
                qs,
                vs,
                b,
                d,
                per,
                &mut out,
                f,
                st.batch.is_some(),
                accel,
            )
        })?;
        let arr = out.into_pyarray(py);
        Ok(match (st.batch, scalar) {
            (None, true) => arr.get_item(0)?.unbind(),
            (None, false) => arr.into_any().unbind(),
            (Some(b), true) => arr.reshape([b])?.into_any().unbind(),
            (Some(b), false) => arr.reshape([b, per])?.into_any().unbind(),
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
