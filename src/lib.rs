//! # lgn — Lagrangian Neural Networks and Lagrangian Graph Networks
//!
//! A Lagrangian L(q, q̇) = Σ_s ρ(q_{I_s}, q̇_{I_s}) summed over the sites of a graph gives the
//! dynamics through the Euler–Lagrange equation (Cranmer et al. 2020, eq. 6):
//!
//! ```text
//! q̈ = M⁻¹ (∂L/∂q − C q̇),   M = ∂²L/∂q̇∂q̇,   C = ∂²L/∂q̇∂q
//! ```
//!
//! Data flow, one module each: [`graph`] → [`sites`] → [`density`] → [`assembly`] → [`solve`] →
//! [`dynamics`]. Densities give exact local derivatives (no finite differences), the mass
//! matrix keeps its neighbour-of-neighbour sparsity, and the solve is banded or sparse: O(n)
//! where the paper's dense pseudo-inverse is O(n³). The mathematics is in `docs/DESIGN.md`.
//!
//! # Your own system in four steps: graph → density → fit → rollout
//!
//! A [`model::SystemGraph`] comes from a graph file, a Gmsh mesh or a generator; a
//! [`model::GraphModel`] describes the learned Lagrangian on it; [`train::fit`] trains it with
//! exact adjoint gradients; [`model::GraphModel::dynamics`] turns it into an Euler–Lagrange
//! system that [`integrate::solve`] rolls out.
//!
//! ```
//! use lgn::integrate::{linspace_times, solve, Method, MidpointOptions};
//! use lgn::model::{FeatureSet, GraphModel, NetShape, SystemGraph};
//! use lgn::solve::SolverKind;
//! use lgn::train::{fit, graph::GraphTrainer, Samples, TrainConfig};
//!
//! # fn main() -> lgn::Result<()> {
//! // 1. The graph: a periodic chain of 12 nodes. Truth: unit masses, springs k = 4, β = 1.
//! let graph = SystemGraph::line(12, 1, true)?;
//! let mut truth = lgn::systems::spring_network(&graph, 1.0, 4.0, 1.0, false, SolverKind::Auto)?;
//! let state = |k: usize| -> (Vec<f64>, Vec<f64>) {
//!     let q = (0..12).map(|i| 0.3 * ((i * (k % 5 + 1)) as f64 + k as f64).sin()).collect();
//!     let v = (0..12).map(|i| 0.5 * ((i + 3 * k) as f64).cos()).collect();
//!     (q, v)
//! };
//! let (mut input, mut target) = (vec![], vec![]);
//! for k in 0..96 {
//!     let (q, v) = state(k);
//!     target.extend(truth.accelerations(&q, &v)?);
//!     input.extend(q.iter().chain(&v));
//! }
//! let data = Samples::new(24, 12, input, target, None)?;
//!
//! // 2. The density: learned node masses + a symmetric edge potential of differences.
//! let qs: Vec<&[f64]> = (0..data.n).map(|i| &data.input_row(i)[..12]).collect();
//! let shape = NetShape { hidden: 16, layers: 2, seed: 0 };
//! let model = GraphModel::node_edge(&graph, FeatureSet::Graph, false, &shape, &qs)?;
//!
//! // 3. Fit (exact gradients through the sparse solve).
//! let mut trainer = GraphTrainer::new(model, graph.clone())?;
//! let cfg = TrainConfig { epochs: 60, batch: 8, lr: 3e-3, ..TrainConfig::default() };
//! let report = fit(&mut trainer, &data, &cfg, &mut |_progress| {})?;
//! assert!(report.best_val_loss < 0.05 * report.zero_val_loss);
//!
//! // 4. Roll out the learned Lagrangian with the variational integrator.
//! let mut learned = trainer.model.dynamics(&graph, SolverKind::Auto)?;
//! let (q0, v0) = state(1000);
//! let mid = Method::Midpoint { dt: 0.05, opts: MidpointOptions::default() };
//! let sol = solve(&mut learned, &mid, &q0, &v0, &linspace_times(41, 0.05))?;
//! let e0 = learned.energy(&q0, &v0)?;
//! let e1 = learned.energy(sol.q_at(40), sol.v_at(40))?;
//! // The variational integrator keeps the learned energy to O(dt²), without drift.
//! assert!((e1 - e0).abs() < 1e-2 * e0.abs().max(1.0), "{e0} → {e1}");
//! # Ok(())
//! # }
//! ```

pub mod assembly;
pub mod bench;
pub mod data;
pub mod density;
pub mod domain;
pub mod dynamics;
pub mod error;
pub mod experiment;
pub mod graph;
pub mod integrate;
pub mod io;
pub mod lagrangian;
pub mod limits;
pub mod mesh;
pub mod model;
pub mod names;
pub mod parallel;
pub mod plot;
pub mod sites;
pub mod solve;
pub mod systems;
pub mod train;

pub use error::{Error, Result};
