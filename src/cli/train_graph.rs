//! The graph-network arguments of `lgn train` (`--graph`/`--mesh`, `--density`,
//! `--node-potential`, `--node-mass`, `--edge-distance`, `--shift-invariant`, `--boundary`,
//! `--angles`): checked and turned into a
//! [`GraphModel`] in one place, for the acceleration objective (src/cli/train.rs) and for
//! positions-only data (src/cli/train_positions.rs).

use super::train::{BoundaryArg, GraphDensity, TrainArgs};
use lgn::model::{FeatureSet, GraphModel, SystemGraph};
use lgn::parallel::Comm;
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
    if args.mass_penalty.is_some() && args.density == GraphDensity::NodeEdge {
        return Err(Error::input(
            "--mass-penalty applies to lnn, lgn and graph networks with --density sites|stencil; the node-edge kinetic term M = diag(μ), μ > 0, is definite by construction",
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
    // Symmetric densities (docs/DESIGN.md §14).
    if (args.edge_distance || args.shift_invariant) && args.density != GraphDensity::NodeEdge {
        return Err(Error::input(
            "--edge-distance and --shift-invariant on graphs belong to --density node-edge",
        ));
    }
    if args.shift_invariant && args.node_potential {
        return Err(Error::input(
            "--shift-invariant: the node potential sees absolute q and breaks shift invariance; drop --node-potential (node-edge models without it are shift-invariant)",
        ));
    }
    if args.edge_distance && args.angles {
        return Err(Error::input(
            "--edge-distance takes particle positions, not angles (--angles)",
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
    /// The coordinates `--boundary` may hold fixed: the graph's flagged boundary nodes
    /// (`fixed` requires some).
    pub fn boundary_coords(&self, args: &TrainArgs) -> Result<Vec<usize>> {
        Ok(match args.boundary {
            BoundaryArg::Fixed => self.graph.boundary_coords()?,
            _ => self.graph.boundary_coords().unwrap_or_default(),
        })
    }

    /// The freshly initialised model of `--density` (with `--node-potential`, `--node-mass`,
    /// `--edge-distance`, `--angles`; the recipe's network shape), input scales from `states`
    /// (rows (q, q̇) of the training data; each rank of `comm` passes its shard);
    /// `--boundary` resolved with `still`: whether the boundary coordinates
    /// ([`GraphSetup::boundary_coords`]) never move in the data (what `auto` decides on).
    pub fn model(
        &self,
        args: &TrainArgs,
        states: &[&[f64]],
        still: &dyn Fn(&[usize]) -> bool,
        system: &str,
        comm: &dyn Comm,
    ) -> Result<GraphModel> {
        let known = args
            .node_mass
            .map(|m| recipe::node_mass_term(m).map_err(|e| e.context("--node-mass")))
            .transpose()?;
        let shape = super::train::recipe(args).shape(true);
        let mut model = recipe::graph_model_over(
            &self.graph,
            self.features,
            args.density.density(),
            args.node_potential,
            known,
            &shape,
            states,
            comm,
        )?;
        if args.edge_distance {
            if comm.size() > 1 {
                return Err(Error::input(
                    "--edge-distance is not available with several MPI ranks yet: use one rank",
                ));
            }
            // docs/DESIGN.md §14.3: rotation- and translation-invariant edge potential.
            let d = self.graph.n_coords();
            let qs: Vec<&[f64]> = states.iter().map(|s| &s[..d]).collect();
            model = model.with_edge_distance(&self.graph, &shape, &qs)?;
        }
        let fixed = self.boundary_coords(args)?;
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
