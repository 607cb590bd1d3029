//! `lgn.Model`: a model file's contents (single-network models and graph models), its systems,
//! and saving it as the CLI does.

use crate::errors::{input, IntoPy};
use crate::graph::Graph;
use crate::system::{Builder, Engine, System};
use lgn::io::TrainingData;
use lgn::model::AnyModel;
use lgn::train::ModelKind;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A trained (or freshly initialised) lgn model: what `lgn train` writes and `lgn accel
/// --model` reads.
#[pyclass(module = "lgn._lgn", frozen)]
pub struct Model {
    pub inner: Mutex<AnyModel>,
    /// The training record saved with the model (after `lgn.fit`).
    pub record: Mutex<Option<TrainingData>>,
    /// The system on the model's own graph, built on first use.
    pub cache: Mutex<Option<Py<System>>>,
    /// The report of the last `lgn.fit` (a dict), if any.
    pub report: Mutex<Option<Py<PyAny>>>,
    /// Feature set of a graph model trained on a mesh ("mesh") — informational.
    pub source: String,
}

impl Model {
    pub fn new(m: AnyModel, source: String) -> Model {
        Model {
            inner: Mutex::new(m),
            record: Mutex::new(None),
            cache: Mutex::new(None),
            report: Mutex::new(None),
            source,
        }
    }

    /// A system of this model on `graph` (graph models; default its own), on `n` ring nodes
    /// (lgn ring models), or as it is.
    pub fn build_system(
        &self,
        graph: Option<&Graph>,
        n: Option<usize>,
        solver: &str,
    ) -> PyResult<System> {
        let s = crate::parse_solver(solver)?;
        let m = self.inner.lock().expect("not poisoned").clone();
        let name = format!(
            "{} model{}",
            m.kind(),
            if self.source.is_empty() {
                String::new()
            } else {
                format!(" {}", self.source)
            }
        );
        if let AnyModel::Net(t) = &m {
            if matches!(t.kind, ModelKind::Mlp | ModelKind::Hnn) {
                if graph.is_some() {
                    return Err(input(format!(
                        "a '{}' model is not a graph model: graph does not apply",
                        t.kind.as_str()
                    )));
                }
                return Ok(System {
                    name,
                    n: t.net.sizes[0] / 2,
                    engine: Engine::Predict(t.clone()),
                    solver: "none".into(),
                });
            }
        }
        let g = graph.map(|g| g.g.clone());
        let build: Builder = Arc::new(move || m.dynamics(g.as_ref(), n, s));
        System::from_builder(name, build)
    }

    /// The cached system on the model's own graph.
    pub fn own_system(&self, py: Python<'_>) -> PyResult<Py<System>> {
        let mut c = self.cache.lock().expect("not poisoned");
        if let Some(s) = c.as_ref() {
            return Ok(s.clone_ref(py));
        }
        let s = Py::new(py, self.build_system(None, None, "auto")?)?;
        *c = Some(s.clone_ref(py));
        Ok(s)
    }

    /// Forget the cached system (after training changed the parameters).
    pub fn invalidate(&self) {
        *self.cache.lock().expect("not poisoned") = None;
    }
}

/// Read a model file written by `lgn train` or `Model.save` (any kind: lnn, lgn, mlp, hnn,
/// graph).
#[pyfunction]
pub fn load_model(path: PathBuf) -> PyResult<Model> {
    let m = AnyModel::load(&path).py_err()?;
    Ok(Model::new(m, path.display().to_string()))
}

#[pymethods]
impl Model {
    /// Model kind as in model files: "lnn", "lgn", "mlp", "hnn" or "graph".
    #[getter]
    pub fn kind(&self) -> &'static str {
        self.inner.lock().expect("not poisoned").kind()
    }

    /// The physical system name recorded at training (free-form, may be empty).
    #[getter]
    fn trained_on(&self) -> String {
        self.inner
            .lock()
            .expect("not poisoned")
            .system()
            .to_string()
    }

    /// Number of coordinates of a state on the model's own graph / system.
    #[getter]
    fn n_coords(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.own_system(py)?.get().n)
    }

    /// Number of trainable parameters.
    #[getter]
    fn n_params(&self) -> usize {
        match &*self.inner.lock().expect("not poisoned") {
            AnyModel::Net(t) => t.net.n_params(),
            AnyModel::Graph(g) => g.params().len(),
        }
    }

    /// The report of the last `lgn.fit` on this model (a dict), or None.
    #[getter]
    fn report(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.report
            .lock()
            .expect("not poisoned")
            .as_ref()
            .map(|r| r.clone_ref(py))
    }

    /// The model's Euler–Lagrange system: graph models on `graph` (default: the graph they
    /// were trained on; zero-shot on another graph or mesh with the same features), lgn ring
    /// models on `n` nodes (default: the training ring).
    #[pyo3(signature = (graph = None, n = None, solver = "auto"))]
    fn system(
        &self,
        graph: Option<&Bound<'_, Graph>>,
        n: Option<usize>,
        solver: &str,
    ) -> PyResult<System> {
        self.build_system(graph.map(|g| g.get()), n, solver)
    }

    /// Accelerations at (q, qdot) of shape (D,) or (B, D), on the model's own system; see
    /// `System.accel`.
    fn accel<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
        qdot: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.own_system(py)?.get().accel(py, q, qdot)
    }

    /// Energy at (q, qdot); see `System.energy`.
    fn energy<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
        qdot: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.own_system(py)?.get().energy(py, q, qdot)
    }

    /// The learned Lagrangian at (q, qdot); see `System.lagrangian`.
    fn lagrangian<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
        qdot: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.own_system(py)?.get().lagrangian(py, q, qdot)
    }

    /// The default system (the model on its own graph).
    #[getter]
    fn default_system(&self, py: Python<'_>) -> PyResult<Py<System>> {
        self.own_system(py)
    }

    /// Write the model file (the same HDF5 schema `lgn train` writes; with the training
    /// record of the last `lgn.fit`). Refuses to replace an existing file unless `overwrite`.
    #[pyo3(signature = (path, overwrite = false))]
    fn save(&self, py: Python<'_>, path: PathBuf, overwrite: bool) -> PyResult<()> {
        let m = self.inner.lock().expect("not poisoned").clone();
        let rec = self.record.lock().expect("not poisoned").clone();
        py.detach(|| match &m {
            AnyModel::Net(t) => t.save(&path, rec, overwrite),
            AnyModel::Graph(g) => g.save(&path, rec.as_ref(), overwrite),
        })
        .py_err()
    }

    /// A one-line description.
    fn describe(&self) -> String {
        match &*self.inner.lock().expect("not poisoned") {
            AnyModel::Net(t) => format!(
                "{} model ({} parameters, network {:?})",
                t.kind.as_str(),
                t.net.n_params(),
                t.net.sizes
            ),
            AnyModel::Graph(g) => {
                format!("{} on {} nodes × {}", g.describe(), g.graph.n_nodes, g.dof)
            }
        }
    }

    fn __repr__(&self) -> String {
        format!("<lgn.Model {}>", self.describe())
    }
}
