//! `lgn bench`: measured performance, one JSON line per measurement.

use lgn::solve::SolverKind;
use lgn::Result;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Median time of one acceleration evaluation of the wave LGN on a periodic ring
    /// (6 → H → H → 1 softplus MLP density, f64), excluding one-off set-up (reported apart).
    Accel(AccelBenchArgs),
    /// faer GEMM throughput on all threads: the machine's practical matrix-multiply peak.
    Gemm(GemmArgs),
    /// Full training steps (loss, exact adjoint gradient, Adam) of the single-site
    /// double-pendulum LNN 4 → H×L → 1 on random states (f64), like the JAX reference.
    Train(TrainBenchArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainBenchSystem {
    /// Double pendulum LNN (one site, 2 coordinates).
    Dblpend,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  lgn bench train --system dblpend --hidden 128 --layers 2 --batch 512 --json"
)]
pub struct TrainBenchArgs {
    #[arg(long, value_enum, default_value_t = TrainBenchSystem::Dblpend)]
    pub system: TrainBenchSystem,
    /// Hidden width H.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Hidden layers L.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Keep stepping for at least this long (median step time reported).
    #[arg(long, default_value_t = 3.0)]
    pub min_seconds: f64,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  lgn bench accel --n 100000 --hidden 128 --solver sparse --json\n  lgn bench accel --n 1600 --hidden 128 --solver dense --json"
)]
pub struct AccelBenchArgs {
    /// Grid points (nodes) of the ring.
    #[arg(long)]
    pub n: usize,
    /// Hidden width H of the MLP density.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Hidden layers of the MLP density.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Linear solver (sparse = linear-time path; dense = the paper's pseudo-inverse).
    #[arg(long, value_enum, default_value_t = SolverKind::Sparse)]
    pub solver: SolverKind,
    /// Keep repeating for at least this long (median reported).
    #[arg(long, default_value_t = 2.0)]
    pub min_seconds: f64,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct GemmArgs {
    /// Rows of the left factor.
    #[arg(long, default_value_t = 128)]
    pub m: usize,
    /// Inner dimension.
    #[arg(long, default_value_t = 128)]
    pub k: usize,
    /// Columns of the right factor.
    #[arg(long, default_value_t = 320)]
    pub cols: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Accel(a) => {
            if a.n == 0 || a.hidden == 0 || a.layers == 0 {
                return Err(lgn::Error::input(
                    "--n, --hidden and --layers must be positive",
                ));
            }
            let r = lgn::bench::accel(a.n, a.hidden, a.layers, a.solver, a.min_seconds)?;
            if a.json {
                println!("{}", serde_json::to_string(&r).expect("serialisable"));
            } else {
                println!(
                    "n = {}, solver = {}, hidden = {}×{}: {:.6} s per acceleration ({:.3} µs/node, {} reps, {} threads), set-up {:.4} s, MLP {:.1} GFLOP/s, peak RSS {:.0} MB",
                    r.n, r.solver, r.hidden, r.layers, r.seconds, r.seconds_per_node * 1e6, r.reps, r.threads, r.setup_seconds, r.mlp_gflops, r.peak_rss_mb
                );
            }
        }
        BenchCommand::Train(t) => {
            if t.hidden == 0 || t.layers == 0 || t.batch == 0 {
                return Err(lgn::Error::input(
                    "--hidden, --layers and --batch must be positive",
                ));
            }
            let r = lgn::bench::train_step(t.hidden, t.layers, t.batch, t.min_seconds)?;
            if t.json {
                println!("{}", serde_json::to_string(&r).expect("serialisable"));
            } else {
                println!(
                    "dblpend LNN 4-{}x{}-1, batch {}: {:.0} samples/s ({:.6} s/step, {} steps, {} threads), {:.1} GFLOP/s",
                    r.hidden, r.layers, r.batch, r.samples_per_second, r.seconds_per_step, r.steps, r.threads, r.gflops
                );
            }
        }
        BenchCommand::Gemm(g) => {
            let gf = lgn::bench::gemm_gflops(g.m, g.k, g.cols, 2.0);
            let threads = rayon::current_num_threads();
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({"m": g.m, "k": g.k, "n": g.cols, "threads": threads, "gflops": gf, "precision": "f64"})
                );
            } else {
                println!(
                    "faer GEMM {}×{}×{} on {threads} threads: {gf:.1} GFLOP/s (f64)",
                    g.m, g.k, g.cols
                );
            }
        }
    }
    Ok(())
}
