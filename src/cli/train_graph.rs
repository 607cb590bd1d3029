//! The graph-network arguments of `lgn train` (`--graph`/`--mesh`, `--density`,
//! `--node-potential`, `--node-mass`, `--boundary`, `--angles`): checked and turned into a
//! [`GraphModel`] in one place, for the acceleration objective (src/cli/train.rs) and for
//! positions-only data (src/cli/train_positions.rs).

use super::train::{BoundaryArg, GraphDensity, TrainArgs};
use lgn::model::{Boundary, FeatureSet, GraphModel, NetShape, SystemGraph};
use lgn::train::ModelKind;
use lgn::{Error, Result};
use std::path::Path;

/// The graph or mesh a graph network is trained on, with its feature set and file name.
pub struct GraphSetup<'a> {
    pub graph: SystemGraph,
    pub features: FeatureSet,
    pub file: &'a Path,
}

/// Check the graph-network flags against each other and read `--graph`/`--mesh`.
pub fn setup(args: &TrainArgs) -> Result<GraphSetup<'_>> {
    if let Some(k) = args.model {
        if k != ModelKind::Lgn {
            return Err(Error::input(format!(
                "--graph/--mesh train a Lagrangian graph network (--model lgn); got --model {}",
                k.as_str()
            )));
        }
    }
    if args.mass_penalty.is_some() {
        return Err(Error::input(
            "--mass-penalty applies to single-site models (--model lnn), not to graph networks",
        ));
    }
    if args.node_mass.is_some() && args.density != GraphDensity::NodeEdge {
        return Err(Error::input("--node-mass belongs to --density node-edge"));
    }
    if args.node_potential && args.density != GraphDensity::NodeEdge {
        return Err(Error::input(
            "--node-potential belongs to --density node-edge",
        ));
    }
    let (graph, features, file) = match (&args.graph, &args.mesh) {
        (Some(g), _) => (SystemGraph::from_graph_file(g)?, FeatureSet::Graph, g),
        (None, Some(m)) => (SystemGraph::from_mesh_file(m)?, FeatureSet::Mesh, m),
        _ => {
            return Err(Error::input(
                "a graph network needs --graph G.h5 or --mesh M.msh",
            ))
        }
    };
    Ok(GraphSetup {
        graph,
        features,
        file,
    })
}

impl GraphSetup<'_> {
    /// `--boundary`: `still(fixed)` tells whether the graph's flagged boundary coordinates
    /// `fixed` never move in the data (what `auto` decides on).
    pub fn boundary(&self, arg: BoundaryArg, still: &dyn Fn(&[usize]) -> bool) -> Result<Boundary> {
        let fixed = self.graph.boundary_coords().unwrap_or_default();
        Ok(match arg {
            BoundaryArg::Free => Boundary::Free,
            BoundaryArg::Fixed => {
                if fixed.is_empty() {
                    return Err(Error::input(format!(
                        "--boundary fixed: {} flags no boundary node",
                        self.file.display()
                    )));
                }
                Boundary::Fixed
            }
            BoundaryArg::Auto if !fixed.is_empty() && still(&fixed) => Boundary::Fixed,
            BoundaryArg::Auto => Boundary::Free,
        })
    }

    /// The freshly initialised model of `--density` (with `--node-potential`, `--node-mass`,
    /// `--angles`), its input normalisation from `states` (rows (q, q̇) of the training data).
    pub fn model(
        &self,
        args: &TrainArgs,
        states: &[&[f64]],
        boundary: Boundary,
        system: &str,
    ) -> Result<GraphModel> {
        let shape = NetShape {
            hidden: args.hidden.unwrap_or(64),
            layers: args.layers,
            seed: args.seed,
        };
        let n = self.graph.n_coords();
        let mut model = match args.density {
            GraphDensity::NodeEdge => {
                let qs: Vec<&[f64]> = states.iter().map(|s| &s[..n]).collect();
                let mut m = GraphModel::node_edge(
                    &self.graph,
                    self.features,
                    args.node_potential,
                    &shape,
                    &qs,
                )?;
                if let Some(mass) = args.node_mass {
                    let known = lgn::model::ClosedTerm::NodeMass { mass };
                    known.check().map_err(|e| e.context("--node-mass"))?;
                    m.terms[0] = lgn::model::GraphTerm::Closed(known);
                }
                m
            }
            GraphDensity::Sites => GraphModel::general(&self.graph, false, &shape, states)?,
            GraphDensity::Stencil => GraphModel::general(&self.graph, true, &shape, states)?,
        };
        model.boundary = boundary;
        if args.angles {
            model.q_period = Some(2.0 * std::f64::consts::PI);
        }
        model.system = system.to_string();
        Ok(model)
    }
}
