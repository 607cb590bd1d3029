//! The graph-network arguments of `lgn train` (`--graph`/`--mesh`, `--density`,
//! `--node-potential`, `--node-mass`, `--boundary`, `--angles`): checked and turned into a
//! [`GraphModel`] in one place, for the acceleration objective (src/cli/train.rs) and for
//! positions-only data (src/cli/train_positions.rs).

use super::train::{BoundaryArg, GraphDensity, TrainArgs};
use lgn::model::{FeatureSet, GraphModel, SystemGraph};
use lgn::train::{recipe, ModelKind};
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
    /// The freshly initialised model of `--density` (with `--node-potential`, `--node-mass`,
    /// `--angles`; the recipe's network shape), input scales from `states` (rows (q, q̇) of the
    /// training data); `--boundary` resolved with `still(fixed)`: whether the graph's flagged
    /// boundary coordinates `fixed` never move in the data (what `auto` decides on).
    pub fn model(
        &self,
        args: &TrainArgs,
        states: &[&[f64]],
        still: &dyn Fn(&[usize]) -> bool,
        system: &str,
    ) -> Result<GraphModel> {
        let known = args
            .node_mass
            .map(|m| recipe::node_mass_term(m).map_err(|e| e.context("--node-mass")))
            .transpose()?;
        let mut model = recipe::graph_model(
            &self.graph,
            self.features,
            args.density.density(),
            args.node_potential,
            known,
            &super::train::recipe(args).shape(true),
            states,
        )?;
        let fixed = match args.boundary {
            BoundaryArg::Fixed => self.graph.boundary_coords()?,
            _ => self.graph.boundary_coords().unwrap_or_default(),
        };
        model.boundary = (args.boundary.rule())
            .resolve(&fixed, &self.file.display().to_string(), || still(&fixed))
            .map_err(|e| e.context("--boundary fixed"))?;
        if args.angles {
            model.q_period = Some(2.0 * std::f64::consts::PI);
        }
        model.system = system.to_string();
        Ok(model)
    }
}
