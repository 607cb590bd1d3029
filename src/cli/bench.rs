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
    after_help = "Examples:\n  lgn bench accel --n 100000 --hidden 128 --solver sparse --json\n  lgn bench accel --n 1600 --hidden 128 --solver dense --json\n  lgn bench accel --mesh-nodes 1000000 --density fem --json\n  lgn bench accel --mesh meshes/disk_fine.msh --density mlp --hidden 32 --json"
)]
pub struct AccelBenchArgs {
    /// Grid points (nodes) of the ring.
    #[arg(long, required_unless_present_any = ["mesh", "mesh_nodes"])]
    pub n: Option<usize>,
    /// Wave equation on this Gmsh triangle mesh instead of the ring.
    #[arg(long, conflicts_with_all = ["n", "mesh_nodes"])]
    pub mesh: Option<std::path::PathBuf>,
    /// Wave equation on a generated unit-square mesh of about this many nodes
    /// (`unit_square_nodes`).
    #[arg(long, conflicts_with = "n")]
    pub mesh_nodes: Option<usize>,
    /// Mesh density: the P1 FEM ground truth or a learned node + edge MLP density
    /// (random paper initialisation, --hidden × --layers). The ring always uses an MLP.
    #[arg(long, value_enum, default_value_t = BenchDensity::Mlp)]
    pub density: BenchDensity,
    /// Hidden width H of the MLP density.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Hidden layers of the MLP density.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Linear solver (sparse = linear-time path; dense = the paper's pseudo-inverse). Ring
    /// default: sparse; mesh default: auto (diagonal solve for fem, sparse Cholesky for mlp).
    #[arg(long, value_enum)]
    pub solver: Option<SolverKind>,
    /// Keep repeating for at least this long (median reported).
    #[arg(long, default_value_t = 2.0)]
    pub min_seconds: f64,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchDensity {
    /// P1 FEM (lumped mass, cotangent stiffness): diagonal M.
    Fem,
    /// Softplus MLPs (node + symmetrised edge terms on a mesh).
    Mlp,
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
        BenchCommand::Accel(a) if a.mesh.is_some() || a.mesh_nodes.is_some() => {
            if a.hidden == 0 || a.layers == 0 || a.mesh_nodes == Some(0) {
                return Err(lgn::Error::input(
                    "--mesh-nodes, --hidden and --layers must be positive",
                ));
            }
            lgn::limits::check_mlp("--hidden/--layers", 4, a.hidden, a.layers)?;
            lgn::limits::check_alloc("--mesh-nodes", a.mesh_nodes.unwrap_or(0) as u128, 256)?;
            let t = std::time::Instant::now();
            let mesh = match (&a.mesh, a.mesh_nodes) {
                (Some(p), _) => lgn::mesh::read_msh(p)?.0,
                (None, Some(n)) => lgn::mesh::generate::unit_square_nodes(n)?,
                _ => unreachable!(),
            };
            let mesh_seconds = t.elapsed().as_secs_f64();
            let density = match a.density {
                BenchDensity::Fem => lgn::systems::MeshDensity::Fem,
                BenchDensity::Mlp => lgn::systems::MeshDensity::Mlp {
                    hidden: a.hidden,
                    layers: a.layers,
                    seed: 0,
                },
            };
            let r = lgn::bench::accel_mesh(
                &mesh,
                &density,
                a.solver.unwrap_or(SolverKind::Auto),
                a.min_seconds,
                mesh_seconds,
            )?;
            if a.json {
                println!("{}", serde_json::to_string(&r).expect("serialisable"));
            } else {
                println!(
                    "mesh n = {} ({} triangles), density = {} ({}×{}), solver = {} ({}): {:.6} s per acceleration (sites {:.4} s, assembly {:.4} s, factorise+solve {:.4} s; {:.3} µs/node, {} reps, {} threads), set-up {:.3} s, nnz(M) = {}, factor {} values (fill {:.2}), peak RSS {:.0} MB",
                    r.n, r.n_triangles, r.density, r.hidden, r.layers, r.solver, r.factorization, r.seconds, r.sites_seconds, r.assemble_seconds, r.factor_solve_seconds, r.seconds_per_node * 1e6, r.reps, r.threads, r.setup_seconds, r.nnz, r.factor_nnz, r.fill, r.peak_rss_mb
                );
            }
        }
        BenchCommand::Accel(a) => {
            let n = a.n.unwrap_or(0);
            if n == 0 || a.hidden == 0 || a.layers == 0 {
                return Err(lgn::Error::input(
                    "--n, --hidden and --layers must be positive",
                ));
            }
            if a.density != BenchDensity::Mlp {
                return Err(lgn::Error::input(
                    "--density fem needs a mesh (--mesh FILE.msh or --mesh-nodes N)",
                ));
            }
            lgn::limits::check_mlp("--hidden/--layers", 8, a.hidden, a.layers)?;
            lgn::limits::check_alloc("--n", n as u128, 256)?;
            let solver = a.solver.unwrap_or(SolverKind::Sparse);
            let r = lgn::bench::accel(n, a.hidden, a.layers, solver, a.min_seconds)?;
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
            lgn::limits::check_mlp("--hidden/--layers", 4, t.hidden, t.layers)?;
            lgn::limits::check_alloc(
                "--batch × --hidden",
                (t.batch as u128) * (t.hidden as u128) * (t.layers as u128),
                64,
            )?;
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
            lgn::limits::check_alloc(
                "--m × --k × --cols matrices",
                (g.m as u128) * (g.k as u128)
                    + (g.k as u128) * (g.cols as u128)
                    + (g.m as u128) * (g.cols as u128),
                8,
            )?;
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
