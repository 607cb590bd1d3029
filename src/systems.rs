//! Ready-made systems: graph + sites + density + solver for the paper's examples.

use crate::density::{
    Ball, Density, DoublePendulum, Mlp, MlpDensity, Relativistic, Wave1d, Wave1dStandard,
};
use crate::dynamics::Dynamics;
use crate::graph::Graph;
use crate::lagrangian::Lagrangian;
use crate::sites::Sites;
use crate::solve::SolverKind;
use crate::Result;
use std::sync::Arc;

/// Which density a named system uses.
#[derive(Clone, Debug)]
pub enum DensityChoice {
    /// The closed-form density of the system.
    Analytic,
    /// A softplus MLP with `layers` hidden layers of width `hidden`, paper initialisation.
    Mlp {
        hidden: usize,
        layers: usize,
        seed: u64,
    },
    /// A given (e.g. trained) MLP.
    Trained(Mlp),
}

fn mlp_density(
    choice: &DensityChoice,
    arity: usize,
    dof: usize,
    analytic: Arc<dyn Density>,
) -> Result<Arc<dyn Density>> {
    let p = 2 * arity * dof;
    Ok(match choice {
        DensityChoice::Analytic => analytic,
        DensityChoice::Mlp {
            hidden,
            layers,
            seed,
        } => {
            let mut sizes = vec![p];
            sizes.extend(std::iter::repeat_n(*hidden, *layers));
            sizes.push(1);
            Arc::new(MlpDensity::new(
                Mlp::paper_init(&sizes, *seed),
                arity,
                dof,
                0,
            )?)
        }
        DensityChoice::Trained(mlp) => Arc::new(MlpDensity::new(mlp.clone(), arity, dof, 0)?),
    })
}

/// A single-node system with d coordinates and one site.
pub fn single_site(density: Arc<dyn Density>, solver: SolverKind) -> Result<Dynamics> {
    let graph = Graph::single_node(density.dof())?;
    let sites = Sites::single(&graph)?;
    let lag = Lagrangian::new(1, graph.dof, sites, density)?;
    Dynamics::new(lag, solver, graph.kind)
}

/// Falling ball, gravity along q₁ (paper appendix B).
pub fn ball(g: f64, density: &DensityChoice, solver: SolverKind) -> Result<Dynamics> {
    single_site(mlp_density(density, 1, 2, Arc::new(Ball { g }))?, solver)
}

/// Double pendulum, m = l = 1 (paper §4.1).
pub fn dblpend(g: f64, density: &DensityChoice, solver: SolverKind) -> Result<Dynamics> {
    single_site(
        mlp_density(density, 1, 2, Arc::new(DoublePendulum::paper(g)))?,
        solver,
    )
}

/// Relativistic particle (paper §4.2).
pub fn relativistic(g: f64, density: &DensityChoice, solver: SolverKind) -> Result<Dynamics> {
    single_site(
        mlp_density(density, 1, 1, Arc::new(Relativistic { g }))?,
        solver,
    )
}

/// 1D wave on a periodic ring of n nodes with sites (i−1, i, i+1) (paper §4.3).
pub fn wave1d(n: usize, dx: f64, density: &DensityChoice, solver: SolverKind) -> Result<Dynamics> {
    if !(dx.is_finite() && dx > 0.0) {
        return Err(crate::Error::input(format!(
            "dx must be positive and finite, got {dx}"
        )));
    }
    let graph = Graph::ring(n, 1)?;
    let sites = Sites::stencil3(&graph)?;
    let dens = mlp_density(density, 3, 1, Arc::new(Wave1d { dx }))?;
    let lag = Lagrangian::new(n, 1, sites, dens)?;
    Dynamics::new(lag, solver, graph.kind)
}

/// 1D wave on a periodic ring of n nodes with the standard three-point stencil as ground truth:
/// sites (i−1, i, i+1), ρ_i = ½φ̇_i² − ½((φ_{i+1} − φ_i)/Δx)², φ̈_i = (φ_{i+1} − 2φ_i + φ_{i−1})/Δx².
/// With an MLP density the graph and sites are those of [`wave1d`].
pub fn wave1d_standard(
    n: usize,
    dx: f64,
    density: &DensityChoice,
    solver: SolverKind,
) -> Result<Dynamics> {
    if !(dx.is_finite() && dx > 0.0) {
        return Err(crate::Error::input(format!(
            "dx must be positive and finite, got {dx}"
        )));
    }
    let graph = Graph::ring(n, 1)?;
    let sites = Sites::stencil3(&graph)?;
    let dens = mlp_density(density, 3, 1, Arc::new(Wave1dStandard { dx }))?;
    let lag = Lagrangian::new(n, 1, sites, dens)?;
    Dynamics::new(lag, solver, graph.kind)
}

/// A density on any graph: node-centred sites when the graph is regular.
pub fn on_graph(graph: &Graph, density: Arc<dyn Density>, solver: SolverKind) -> Result<Dynamics> {
    let sites = Sites::node_centred(graph)?;
    let lag = Lagrangian::new(graph.n_nodes(), graph.dof, sites, density)?;
    Dynamics::new(lag, solver, graph.kind)
}
