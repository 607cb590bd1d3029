//! `lgn demo`: the whole pipeline on an embedded default (the 1D wave) in a couple of minutes.

use lgn::experiment::{self, wave1d, ExperimentOptions};
use lgn::Result;
use std::path::PathBuf;

/// Generate data → train a Lagrangian Graph Network → simulate → write HDF5 and PNG files.
///
/// The embedded default is the 1D wave equation on a periodic grid of 100 points (a medium
/// configuration of `lgn experiment wave1d`), with a zero-shot rollout on 1000 points.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  lgn demo\n  lgn demo --out runs/demo --force")]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "lgn-demo")]
    pub out: PathBuf,
    /// Overwrite existing files in --out.
    #[arg(long)]
    pub force: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let opts = ExperimentOptions {
        out: args.out.clone(),
        quick: false,
        seed: 0,
        force: args.force,
        observer: super::progress::experiment_observer(args.quiet),
    };
    experiment::prepare_dir(&opts)?;
    let t0 = std::time::Instant::now();
    let mut report = wave1d::run_setup("demo", &wave1d::WaveSetup::demo(), &opts)?;
    report.seconds = t0.elapsed().as_secs_f64();
    report.write(&opts)?;
    let m = |k: &str| report.metrics.get(k).copied().unwrap_or(f64::NAN);
    let zs = report
        .metrics
        .iter()
        .find(|(k, _)| k.starts_with("zeroshot_") && k.ends_with("rel_l2_error"))
        .map(|(k, v)| (k.clone(), *v));
    println!(
        "lgn demo: 1D wave, Lagrangian Graph Network trained on n = 100, rolled out to t = 3.5"
    );
    println!(
        "  energy drift (true energy along the model rollout): {:.3} %",
        100.0 * m("energy_drift")
    );
    println!(
        "  error against truth at t = 3.5 (relative L2 of φ):   {:.3} %",
        100.0 * m("rel_l2_error")
    );
    if let Some((k, v)) = zs {
        println!("  zero-shot n = 1000 ({k}):  {:.3} %", 100.0 * v);
    }
    println!(
        "  held-out acceleration error: {:.3} %",
        100.0 * m("accel_rel_error_heldout")
    );
    println!(
        "  files ({} in {}): metrics.md, spacetime.png, energy.png, model.h5, …",
        report.files.len(),
        args.out.display()
    );
    println!("  wall time: {:.1} s", report.seconds);
    Ok(())
}
