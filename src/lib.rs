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
//! where the paper's dense pseudo-inverse is O(n³).

pub mod assembly;
pub mod bench;
pub mod data;
pub mod density;
pub mod dynamics;
pub mod error;
pub mod experiment;
pub mod graph;
pub mod integrate;
pub mod io;
pub mod lagrangian;
pub mod limits;
pub mod mesh;
pub mod plot;
pub mod sites;
pub mod solve;
pub mod systems;
pub mod train;

pub use error::{Error, Result};
