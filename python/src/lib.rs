//! Python bindings of lgn (issue 14): the Rust crate `lgn` is the only implementation; this
//! crate converts arguments, releases the GIL around every computation, checks Ctrl-C between
//! steps and turns lgn errors into Python exceptions with the same messages.

// Binding signatures mirror Python's keyword arguments and return tuples.
#![allow(
    clippy::too_many_arguments,
    clippy::type_complexity,
    clippy::large_enum_variant
)]

mod arrays;
mod errors;
mod fit;
mod fit_positions;
mod graph;
mod model;
mod simulate;
mod system;

use errors::{input, IntoPy};
use graph::Graph;
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice, MeshDensity};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use std::sync::Arc;
use system::System;

/// A linear solver name: auto, banded, sparse, dense.
pub fn parse_solver(s: &str) -> PyResult<SolverKind> {
    Ok(match s {
        "auto" => SolverKind::Auto,
        "banded" => SolverKind::Banded,
        "sparse" => SolverKind::Sparse,
        "dense" => SolverKind::Dense,
        _ => {
            return Err(input(format!(
                "solver: unknown solver '{s}' (one of auto, banded, sparse, dense)"
            )))
        }
    })
}

/// Keyword parameters of `lgn.system`, taken one by one; leftovers are an error.
struct Params<'py> {
    system: String,
    map: BTreeMap<String, Bound<'py, PyAny>>,
}

impl<'py> Params<'py> {
    fn take<T: for<'a> FromPyObject<'a, 'py>>(&mut self, k: &str) -> PyResult<Option<T>> {
        match self.map.remove(k) {
            None => Ok(None),
            Some(v) if v.is_none() => Ok(None),
            Some(v) => v.extract::<T>().map(Some).map_err(|e| {
                let e: PyErr = e.into();
                input(format!(
                    "lgn.system('{}'): parameter {k}={}: {}",
                    self.system,
                    v.repr().map(|r| r.to_string()).unwrap_or_default(),
                    e.value(v.py())
                ))
            }),
        }
    }
    fn f64(&mut self, k: &str, default: f64) -> PyResult<f64> {
        let x = self.take::<f64>(k)?.unwrap_or(default);
        if !x.is_finite() {
            return Err(input(format!(
                "lgn.system('{}'): parameter {k} must be finite, got {x}",
                self.system
            )));
        }
        Ok(x)
    }
    fn done(&self, accepted: &str) -> PyResult<()> {
        if let Some(k) = self.map.keys().next() {
            return Err(input(format!(
                "lgn.system('{}'): unknown parameter '{k}' (this system takes: {accepted})",
                self.system
            )));
        }
        Ok(())
    }
}

/// The density a named system uses: `density="analytic"` (closed form) or `"mlp"` (a randomly
/// initialised softplus MLP with `hidden`, `layers`, `seed`).
fn density_choice(p: &mut Params) -> PyResult<(DensityChoice, bool)> {
    let d = p
        .take::<String>("density")?
        .unwrap_or_else(|| "analytic".into());
    let hidden = p.take::<usize>("hidden")?.unwrap_or(128);
    let layers = p.take::<usize>("layers")?.unwrap_or(2);
    let seed = p.take::<u64>("seed")?.unwrap_or(0);
    match d.as_str() {
        "analytic" => Ok((DensityChoice::Analytic, false)),
        "mlp" => {
            lgn::limits::check_mlp("hidden/layers", 8, hidden, layers).py_err()?;
            Ok((
                DensityChoice::Mlp {
                    hidden,
                    layers,
                    seed,
                },
                true,
            ))
        }
        _ => Err(input(format!(
            "lgn.system('{}'): density must be 'analytic' or 'mlp', got '{d}'",
            p.system
        ))),
    }
}

/// The paper's systems and lgn's closed-form systems by name.
///
/// - "dblpend": double pendulum, m = l = 1, state (θ₁, θ₂), parameter g (9.8)
/// - "relativistic": relativistic particle in a uniform field, parameter g (1.0), |q̇| < 1
/// - "ball": falling ball, two coordinates, gravity g (9.8) along q₁
/// - "wave1d": 1-D wave on a periodic ring of n nodes (100), spacing dx (1/n), the paper's
///   density; "wave1d-standard": the three-point-stencil discretisation
/// - "wave-mesh": wave equation on a triangle mesh, mesh = path to a .msh or an lgn.Graph
///   mesh; density "fem" (P1 finite elements, default), "fem-triangles" or "mlp"
/// - "springs": a spring network on graph = lgn.Graph, parameters mass, k, beta, fixed_boundary
///
/// Every system takes density = "analytic" | "mlp" (with hidden, layers, seed) and
/// solver = "auto" | "banded" | "sparse" | "dense".
#[pyfunction(name = "system")]
#[pyo3(signature = (name, **params))]
fn system_by_name(name: &str, params: Option<&Bound<'_, PyDict>>) -> PyResult<System> {
    let key = name.replace('_', "-").to_lowercase();
    let mut map = BTreeMap::new();
    if let Some(d) = params {
        for (k, v) in d.iter() {
            map.insert(k.extract::<String>()?, v);
        }
    }
    let mut p = Params {
        system: name.to_string(),
        map,
    };
    let solver = parse_solver(&p.take::<String>("solver")?.unwrap_or_else(|| "auto".into()))?;
    let common = "density, hidden, layers, seed, solver";
    let build: system::Builder = match key.as_str() {
        "dblpend" | "double-pendulum" | "ball" | "relativistic" => {
            let g = p.f64("g", if key == "relativistic" { 1.0 } else { 9.8 })?;
            let (dens, _) = density_choice(&mut p)?;
            p.done(&format!("g, {common}"))?;
            match key.as_str() {
                "ball" => Arc::new(move || systems::ball(g, &dens, solver)),
                "relativistic" => Arc::new(move || systems::relativistic(g, &dens, solver)),
                _ => Arc::new(move || systems::dblpend(g, &dens, solver)),
            }
        }
        "wave1d" | "wave1d-standard" => {
            let n = p.take::<usize>("n")?.unwrap_or(100);
            let dx = p.f64("dx", 1.0 / n.max(1) as f64)?;
            let (dens, _) = density_choice(&mut p)?;
            p.done(&format!("n, dx, {common}"))?;
            if key == "wave1d" {
                Arc::new(move || systems::wave1d(n, dx, &dens, solver))
            } else {
                Arc::new(move || systems::wave1d_standard(n, dx, &dens, solver))
            }
        }
        "wave-mesh" => {
            let mesh = match p.map.remove("mesh") {
                None => return Err(input("lgn.system('wave-mesh') needs mesh=PATH.msh or mesh=lgn.load_mesh(...)")),
                Some(m) => {
                    if let Ok(g) = m.cast::<Graph>() {
                        g.get().g.mesh.clone().ok_or_else(|| input(format!("mesh: the graph {} is not a triangle mesh", g.get().g.name)))?
                    } else {
                        let path: std::path::PathBuf = m.extract().map_err(|_| input("mesh must be a path to a Gmsh .msh file or an lgn.Graph mesh"))?;
                        lgn::mesh::read_msh(&path).py_err()?.0
                    }
                }
            };
            let d = p.take::<String>("density")?.unwrap_or_else(|| "fem".into());
            let hidden = p.take::<usize>("hidden")?.unwrap_or(64);
            let layers = p.take::<usize>("layers")?.unwrap_or(2);
            let seed = p.take::<u64>("seed")?.unwrap_or(0);
            p.done(&format!("mesh, {common}"))?;
            let md = match d.as_str() {
                "fem" | "analytic" => MeshDensity::Fem,
                "fem-triangles" => MeshDensity::FemTriangles,
                "mlp" => MeshDensity::Mlp { hidden, layers, seed },
                _ => return Err(input(format!("lgn.system('wave-mesh'): density must be 'fem', 'fem-triangles' or 'mlp', got '{d}'"))),
            };
            Arc::new(move || systems::wave_mesh(&mesh, &md, solver).map(|m| m.dynamics))
        }
        "springs" | "spring-network" => {
            let g = match p.map.remove("graph") {
                Some(g) => g.cast::<Graph>().map_err(|_| input("lgn.system('springs'): graph must be an lgn.Graph (lgn.ring, lgn.chain, lgn.grid, lgn.load_graph, …)"))?.get().g.clone(),
                None => return Err(input("lgn.system('springs') needs graph=lgn.Graph")),
            };
            let mass = p.f64("mass", 1.0)?;
            let k = p.f64("k", 1.0)?;
            let beta = p.f64("beta", 0.0)?;
            let fixed = p.take::<bool>("fixed_boundary")?.unwrap_or(false);
            p.done("graph, mass, k, beta, fixed_boundary, solver")?;
            let gname = g.name.clone();
            p.system = format!("springs on {gname}");
            Arc::new(move || systems::spring_network(&g, mass, k, beta, fixed, solver))
        }
        _ => {
            return Err(input(format!(
                "unknown system '{name}' (one of dblpend, relativistic, ball, wave1d, wave1d-standard, wave-mesh, springs)"
            )))
        }
    };
    System::from_builder(
        if key == "springs" || key == "spring-network" {
            p.system
        } else {
            key
        },
        build,
    )
}

/// Names of the systems `lgn.system` knows.
#[pyfunction]
fn system_names() -> Vec<&'static str> {
    vec![
        "dblpend",
        "relativistic",
        "ball",
        "wave1d",
        "wave1d-standard",
        "wave-mesh",
        "springs",
    ]
}

#[pymodule]
fn _lgn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<System>()?;
    m.add_class::<Graph>()?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(system_by_name, m)?)?;
    m.add_function(wrap_pyfunction!(system_names, m)?)?;
    m.add_function(wrap_pyfunction!(graph::ring, m)?)?;
    m.add_function(wrap_pyfunction!(graph::chain, m)?)?;
    m.add_function(wrap_pyfunction!(graph::grid, m)?)?;
    m.add_function(wrap_pyfunction!(graph::load_graph, m)?)?;
    m.add_function(wrap_pyfunction!(graph::load_mesh, m)?)?;
    m.add_function(wrap_pyfunction!(graph::graph_from_edges, m)?)?;
    m.add_function(wrap_pyfunction!(model::load_model, m)?)?;
    m.add_function(wrap_pyfunction!(fit::fit, m)?)?;
    m.add_function(wrap_pyfunction!(simulate::simulate, m)?)?;
    m.add_function(wrap_pyfunction!(fit::read_data, m)?)?;
    m.add_function(wrap_pyfunction!(fit::write_samples, m)?)?;
    Ok(())
}
