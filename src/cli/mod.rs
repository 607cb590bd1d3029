//! The `lgn` command line: a thin layer over the library.

mod accel;
mod bench;
mod demo;
mod experiment;
mod generate;
mod info;
mod io_glue;
mod simulate;
mod train;

use clap::{Parser, Subcommand};

/// lgn — Lagrangian Neural Networks and Lagrangian Graph Networks.
///
/// A Lagrangian L(q, q̇) = Σ_s ρ(q_{I_s}, q̇_{I_s}) summed over graph sites gives accelerations
/// through the Euler–Lagrange equation q̈ = M⁻¹(∂L/∂q − C q̇). lgn evaluates ρ with exact
/// derivatives and solves with the sparsity of M: linear time where the paper's dense
/// pseudo-inverse is cubic.
#[derive(Parser, Debug)]
#[command(name = "lgn", version, about, long_about = None, after_help = "Examples:\n  lgn accel --system dblpend --state \"0.5,1.0,0.0,0.2\" --json\n  lgn accel --system wave1d --n 100 --density mlp --hidden 64 --state state.h5\n  lgn bench accel --n 100000 --hidden 128 --solver sparse --json")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Accelerations q̈ of a system at one state.
    Accel(accel::AccelArgs),
    /// Train an LNN / LGN / MLP / HNN on a samples file (exact adjoint gradients).
    Train(train::TrainArgs),
    /// Benchmarks: acceleration evaluation, training steps, GEMM peak.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The whole pipeline in a couple of minutes: generate → train → simulate (1D wave), files in --out.
    Demo(demo::DemoArgs),
    /// The paper's experiments end to end: metrics (JSON, Markdown) and PNG figures.
    Experiment(experiment::ExperimentArgs),
    /// Summarise an lgn HDF5 file (graph, state, samples, trajectories, model) and validate it.
    Info(info::InfoArgs),
    /// Generate training samples or ground-truth trajectories (HDF5) for a paper system.
    Generate(generate::GenerateArgs),
    /// Integrate a system from one state and stream the trajectory to HDF5.
    Simulate(simulate::SimulateArgs),
}

/// Run the CLI; returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    lgn::bench::configure_allocator();
    let result = match cli.command {
        Command::Accel(a) => accel::run(a),
        Command::Bench(b) => bench::run(b),
        Command::Info(i) => info::run(i),
        Command::Demo(d) => demo::run(d),
        Command::Experiment(e) => experiment::run(e),
        Command::Train(t) => train::run(t),
        Command::Generate(g) => generate::run(g),
        Command::Simulate(s) => simulate::run(s),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
