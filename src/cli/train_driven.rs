//! `lgn train --graph/--mesh … --dissipation linear|learned` and driven training data (issue 13,
//! docs/DESIGN.md §13.7): the dissipation term of a graph model and the inputs `u`, `B` of the
//! training file.

use super::train::TrainArgs;
use lgn::density::dissipation::DissipationKind;
use lgn::model::{GraphDissipation, GraphModel, InputMapKind, SystemGraph};
use lgn::train::graph::{driven_from_file, DrivenData, GraphTrainer};
use lgn::train::Samples;
use lgn::Result;

/// Give `model` the dissipation `--dissipation` asks for.
pub fn attach_dissipation(
    args: &TrainArgs,
    model: &mut GraphModel,
    graph: &SystemGraph,
    samples: &Samples,
) -> Result<()> {
    let n = graph.n_coords();
    let qs: Vec<&[f64]> = (0..samples.n).map(|i| &samples.input_row(i)[..n]).collect();
    model.dissipation = GraphDissipation::new(
        args.dissipation,
        model,
        graph,
        args.hidden.unwrap_or(64),
        args.layers,
        args.seed,
        &qs,
    )?;
    Ok(())
}

/// When the training file holds inputs `u` (and `B`), rows (q, q̇, u) and the trainer's input
/// map: the force B u enters every sample's equations ([`lgn::train::graph::driven_from_file`]).
pub fn driven(
    args: &TrainArgs,
    trainer: GraphTrainer,
    samples: Samples,
) -> Result<(GraphTrainer, Samples)> {
    let (trainer, samples, found) = driven_from_file(&args.data, trainer, samples, args.input_map)
        .map_err(|e| {
            if args.input_map == InputMapKind::Learned {
                e.context("--input-map learned")
            } else {
                e
            }
        })?;
    if !args.quiet {
        let d = args.data.display();
        match found {
            DrivenData::None => {}
            DrivenData::Given { m } => {
                eprintln!("{d}: driven data, u of width {m} enters as the force B u")
            }
            DrivenData::Learned { m, from_file } => eprintln!(
                "{d}: driven data, u of width {m} enters as the force B u with B learned (starting from {})",
                if from_file { "the file's /B" } else { "zero" }
            ),
        }
    }
    Ok((trainer, samples))
}

/// One line on the learned dissipation: the damping rate γ_i/μ_i (scale-free, docs/DESIGN.md
/// §13.7) over the nodes at the configuration `q0` (the first training state).
pub fn describe(model: &GraphModel, graph: &SystemGraph, q0: &[f64]) -> Result<String> {
    let Some(d) = &model.dissipation else {
        return Ok(String::new());
    };
    let gamma = d.coefficients(model, graph, q0)?;
    let mu = match model
        .terms
        .iter()
        .position(|t| matches!(t, lgn::model::GraphTerm::Kinetic { .. }))
    {
        Some(t) => model.masses(t, graph)?,
        None => vec![1.0; graph.n_nodes()],
    };
    let r: Vec<f64> = gamma.iter().zip(&mu).map(|(g, m)| g / m).collect();
    let mean = r.iter().sum::<f64>() / r.len() as f64;
    let (lo, hi) = r
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    Ok(format!(
        "learned {} dissipation: damping rate γ_i/μ_i mean {mean:.5} (min {lo:.5}, max {hi:.5}) over {} nodes",
        if d.kind() == DissipationKind::Linear { "linear" } else { "state-dependent" },
        r.len()
    ))
}
