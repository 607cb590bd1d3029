//! `lgn experiment NAME`: the paper's experiments end to end.

use lgn::Result;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ExperimentName {
    /// Double pendulum: LNN vs plain-MLP baseline, energy error over 40 held-out trajectories.
    Dblpend,
    /// Relativistic particle: HNN on (q, q̇) vs HNN on (q, p) vs LNN on (q, q̇).
    Relativistic,
    /// 1D wave: Lagrangian Graph Network on n = 100, rollout, zero-shot on n = 1000.
    Wave1d,
    /// Wave on 2D triangle meshes: learned node + edge density, zero-shot to another mesh.
    Mesh,
    /// Positions only, with noise: weak-form objective vs derivative-estimation baseline
    /// (double pendulum and a spring chain).
    Noisy,
    /// Damped double pendulum: learn L and the joint damping together, energy decay and power
    /// balance on held-out initial conditions (issue 13).
    Damped,
}

/// Run one of the paper's experiments: data → training → simulation → metrics and figures.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Writes metrics.json, metrics.md, PNG figures and HDF5 files into --out.\nExamples:\n  lgn experiment dblpend --quick --json --out runs/dblpend\n  lgn experiment wave1d --out runs/wave1d"
)]
pub struct ExperimentArgs {
    /// Which experiment.
    #[arg(value_enum)]
    pub name: ExperimentName,
    /// Small, fast configuration (≤ 2 minutes); default runs take up to 30 minutes.
    #[arg(long)]
    pub quick: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Base random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Overwrite existing files in --out.
    #[arg(long)]
    pub force: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// dblpend only: hidden width of both networks (default 64, --quick 64; the paper's is 500).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// dblpend only: hidden layers of both networks (default 2; the paper's is 4).
    #[arg(long)]
    pub layers: Option<usize>,
    /// dblpend only: training epochs of both networks (default 250 for the LNN on 200k states
    /// and 50 for the baseline; --quick 150 and 60 on 30k states).
    #[arg(long)]
    pub epochs: Option<usize>,
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    let name = clap::ValueEnum::to_possible_value(&args.name)
        .expect("named")
        .get_name()
        .to_string();
    let opts = lgn::experiment::ExperimentOptions {
        out: args.out.clone(),
        quick: args.quick,
        seed: args.seed,
        force: args.force,
        observer: super::progress::experiment_observer(args.quiet),
    };
    let size = lgn::experiment::dblpend::Size {
        hidden: args.hidden,
        layers: args.layers,
        epochs: args.epochs,
    };
    let report = lgn::experiment::run_sized(&name, &opts, size)?;
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serialisable"));
    } else {
        print!("{}", report.markdown());
    }
    Ok(())
}
