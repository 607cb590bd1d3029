//! `lgn bench`: measured performance, one JSON line per measurement.

use super::choice::choice;
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
    /// Sweep n on the ring (and on generated unit-square meshes), time the sparse, banded and
    /// dense-pinv paths (dense up to a time budget), fit each one's exponent k in time ∝ n^k and
    /// optionally draw a log-log PNG.
    Scaling(ScalingArgs),
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  lgn bench scaling --plot docs/scaling.png --json\n  lgn bench scaling --n-max 100000 --no-mesh --solvers sparse,dense"
)]
pub struct ScalingArgs {
    /// Smallest ring size.
    #[arg(long, default_value_t = 100)]
    pub n_min: usize,
    /// Largest ring size.
    #[arg(long, default_value_t = 1_000_000)]
    pub n_max: usize,
    /// Largest mesh (approximate nodes of the generated unit square).
    #[arg(long, default_value_t = 250_000)]
    pub mesh_n_max: usize,
    /// Skip the mesh sweep.
    #[arg(long)]
    pub no_mesh: bool,
    /// Sizes per decade (geometric).
    #[arg(long, default_value_t = 2)]
    pub per_decade: usize,
    /// Solvers to time.
    #[arg(
        long,
        value_parser = choice::<SolverKind>(),
        value_delimiter = ',',
        default_value = "sparse,banded,dense"
    )]
    pub solvers: Vec<SolverKind>,
    /// Hidden width H of the MLP densities.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Hidden layers of the MLP densities.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Stop the dense pseudo-inverse sweep when its next point is predicted (∝ n³) to take
    /// longer than this many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub dense_budget: f64,
    /// Minimum measuring time per point (≥ 3 repetitions, median).
    #[arg(long, default_value_t = 0.3)]
    pub min_seconds: f64,
    /// Fit the exponents on points with n at least this.
    #[arg(long, default_value_t = 1000)]
    pub fit_n_min: usize,
    /// Draw the log-log figure to this PNG.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
    /// Overwrite an existing --plot file.
    #[arg(long)]
    pub force: bool,
    /// Print the result as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Geometric sizes from `lo` to `hi` with `per` points per decade (rounded, deduplicated).
fn sweep(lo: usize, hi: usize, per: usize) -> Vec<usize> {
    let mut v = Vec::new();
    if lo == 0 || hi < lo || per == 0 {
        return v;
    }
    let (a, b) = ((lo as f64).log10(), (hi as f64).log10());
    let steps = ((b - a) * per as f64).round() as usize;
    for i in 0..=steps {
        let n = 10f64
            .powf(a + (b - a) * i as f64 / steps.max(1) as f64)
            .round() as usize;
        if v.last() != Some(&n) {
            v.push(n);
        }
    }
    v
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainBenchSystem {
    /// Double pendulum LNN (one site, 2 coordinates).
    Dblpend,
    /// Wave LGN on a periodic ring of --n nodes (graph network, `lgn train --model lgn`).
    Ring,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  lgn bench train --system dblpend --hidden 128 --layers 2 --batch 512 --json\n  lgn bench train --system ring --n 100 --hidden 32 --batch 32 --json"
)]
pub struct TrainBenchArgs {
    #[arg(long, value_enum, default_value_t = TrainBenchSystem::Dblpend)]
    pub system: TrainBenchSystem,
    /// Ring nodes (--system ring).
    #[arg(long, default_value_t = 100)]
    pub n: usize,
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
    after_help = "Examples:\n  lgn bench accel --n 100000 --hidden 128 --solver sparse --json\n  lgn bench accel --n 1600 --hidden 128 --solver dense --json\n  lgn bench accel --mesh-nodes 1000000 --density fem --json\n  lgn bench accel --mesh meshes/disk_fine.msh --density mlp --hidden 32 --json\n  lgn bench accel --model wave/model.h5 --n 100000 --precision f32 --json"
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
    /// Ring: time a trained `lgn` model (from `lgn train --model lgn` or `lgn experiment
    /// wave`) instead of the random benchmark network — its density on a ring of --n nodes at
    /// the training spacing, on a smooth field of the training distribution repeated around
    /// the ring (--n must be a multiple of the training grid). With --precision f32 the error
    /// against f64 is the one a user's own model has (a trained wave's mass matrix is definite;
    /// the random network's is not, docs/DESIGN.md §20.1).
    #[arg(long, conflicts_with_all = ["mesh", "mesh_nodes", "hidden", "layers", "breakdown"])]
    pub model: Option<std::path::PathBuf>,
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
    #[arg(long, value_parser = choice::<SolverKind>())]
    pub solver: Option<SolverKind>,
    /// Precision of the MLP passes on the ring (assembly and solve stay f64).
    #[arg(long, value_enum, default_value_t = PrecisionArg::F64)]
    pub precision: PrecisionArg,
    /// Keep repeating for at least this long (median reported).
    #[arg(long, default_value_t = 2.0)]
    pub min_seconds: f64,
    /// Mesh only: add a dissipation term (docs/DESIGN.md §13). `learned`: a per-node learned
    /// coefficient network γ(φ_i, m_i) of the same --hidden × --layers as the density, so the
    /// timing shows what a damped learned model costs next to the conservative one (`none`).
    #[arg(long, default_value = "none", value_parser = parse_bench_dissipation)]
    pub dissipation: String,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Ring: instead of the timing line, print (one JSON line) where the site pass spends its
    /// CPU time — each phase (layer 0, activations, forward GEMMs, backward tile, backward
    /// GEMMs, ∂ρ/∂x, records) with its counted GFLOP/s per thread against `lgn bench gemm`
    /// measured in the same process ("pass"; docs/DESIGN.md §20.2); with --precision f32
    /// also where the f32 passes lose accuracy — each stage (site records, assembled M and b,
    /// the solve) against f64 on the same state (docs/DESIGN.md §15.4, §20.1).
    #[arg(long)]
    pub breakdown: bool,
}

fn parse_bench_dissipation(s: &str) -> std::result::Result<String, String> {
    match s {
        "none" | "learned" => Ok(s.to_string()),
        _ => Err(format!("'{s}' is not one of none, learned")),
    }
}

/// `--precision` of the MLP passes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    F64,
    F32,
}

impl From<PrecisionArg> for lgn::density::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F64 => lgn::density::Precision::F64,
            PrecisionArg::F32 => lgn::density::Precision::F32,
        }
    }
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
            let r = lgn::bench::accel_mesh_dissipative(
                &mesh,
                &density,
                a.solver.unwrap_or(SolverKind::Auto),
                a.min_seconds,
                mesh_seconds,
                (a.dissipation == "learned").then_some((a.hidden, a.layers)),
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
            if a.breakdown {
                let ring = lgn::bench::RingSpec {
                    n,
                    hidden: a.hidden,
                    layers: a.layers,
                    solver,
                    precision: a.precision.into(),
                };
                let pass = lgn::bench::pass_breakdown(&ring, a.min_seconds)?;
                let mut out = serde_json::json!({ "pass": pass });
                if a.precision == PrecisionArg::F32 {
                    let r = lgn::bench::precision_breakdown(
                        n,
                        a.hidden,
                        a.layers,
                        solver,
                        a.precision.into(),
                    )?;
                    // the stage errors at the top level, as before
                    if let (Some(o), serde_json::Value::Object(r)) = (
                        out.as_object_mut(),
                        serde_json::to_value(&r).expect("serialisable"),
                    ) {
                        o.extend(r);
                    }
                }
                println!("{out}");
                return Ok(());
            }
            let r = match &a.model {
                Some(path) => lgn::bench::accel_model(
                    &match lgn::model::AnyModel::load(path)? {
                        lgn::model::AnyModel::Net(m) => m,
                        lgn::model::AnyModel::Graph(_) => {
                            return Err(lgn::Error::input(format!(
                                "--model {}: a graph model; `lgn bench accel --model` times ring \
                                 models (`lgn train --model lgn`); time a graph model with \
                                 `lgn bench accel --mesh FILE.msh` or `lgn simulate`",
                                path.display()
                            )))
                        }
                    },
                    n,
                    solver,
                    a.precision.into(),
                    a.min_seconds,
                )?,
                None => lgn::bench::accel(
                    n,
                    a.hidden,
                    a.layers,
                    solver,
                    a.precision.into(),
                    a.min_seconds,
                )?,
            };
            if a.json {
                println!("{}", serde_json::to_string(&r).expect("serialisable"));
            } else {
                println!(
                    "n = {}, solver = {}, hidden = {}×{} ({}): {:.6} s per acceleration ({:.3} µs/node, {} reps, {} threads), set-up {:.4} s, MLP {:.1} GFLOP/s ({:.1} in the site phase), peak RSS {:.0} MB; {} ({})",
                    r.n, r.solver, r.hidden, r.layers, r.precision, r.seconds, r.seconds_per_node * 1e6, r.reps, r.threads, r.setup_seconds, r.mlp_gflops, r.sites_gflops, r.peak_rss_mb, r.cpu, r.simd
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
            if t.system == TrainBenchSystem::Ring {
                if t.n < 3 {
                    return Err(lgn::Error::input("--n must be at least 3 (ring nodes)"));
                }
                lgn::limits::check_alloc(
                    "--n × --batch",
                    (t.n as u128) * (t.batch as u128) * 16,
                    64,
                )?;
                let r =
                    lgn::bench::train_ring_step(t.n, t.hidden, t.layers, t.batch, t.min_seconds)?;
                if t.json {
                    println!("{}", serde_json::to_string(&r).expect("serialisable"));
                } else {
                    println!(
                        "ring LGN n = {}, 6-{}x{}-1, batch {}: {:.0} samples/s ({:.6} s/step, {} steps, {} threads, mass penalty {}); {} ({})",
                        r.n, r.hidden, r.layers, r.batch, r.samples_per_second, r.seconds_per_step, r.steps, r.threads, r.mass_penalty, r.cpu, r.simd
                    );
                }
                return Ok(());
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
        BenchCommand::Scaling(s) => {
            if s.hidden == 0 || s.layers == 0 || s.n_min < 8 || s.per_decade == 0 {
                return Err(lgn::Error::input(
                    "--hidden, --layers and --per-decade must be positive, --n-min at least 8",
                ));
            }
            if s.solvers.contains(&SolverKind::Auto) {
                return Err(lgn::Error::input(
                    "--solvers takes sparse, banded and dense (not auto)",
                ));
            }
            if let Some(p) = &s.plot {
                if p.exists() && !s.force {
                    return Err(lgn::Error::input(format!(
                        "{} exists (use --force to overwrite)",
                        p.display()
                    )));
                }
            }
            let spec = lgn::bench::ScalingSpec {
                ring_ns: sweep(s.n_min, s.n_max, s.per_decade),
                mesh_ns: if s.no_mesh {
                    vec![]
                } else {
                    sweep(s.n_min.max(100), s.mesh_n_max, s.per_decade)
                },
                hidden: s.hidden,
                layers: s.layers,
                solvers: s.solvers.clone(),
                dense_budget_seconds: s.dense_budget,
                min_seconds: s.min_seconds,
                fit_n_min: s.fit_n_min,
            };
            let r = lgn::bench::scaling(&spec)?;
            if let Some(p) = &s.plot {
                lgn::bench::plot_scaling(&r, p, s.force)?;
            }
            if s.json {
                println!("{}", serde_json::to_string(&r).expect("serialisable"));
            } else {
                for p in &r.points {
                    println!(
                        "{} {:>6} n = {:>8}: {:.6} s ({:.3} µs/node)",
                        p.system,
                        p.solver,
                        p.n,
                        p.seconds,
                        p.seconds_per_node * 1e6
                    );
                }
                for f in &r.fits {
                    println!(
                        "fit {} {}: time ∝ n^{:.3} over n = {}..{} ({} points)",
                        f.system, f.solver, f.k, f.n_min, f.n_max, f.points
                    );
                }
                println!("{} ({}), {} threads", r.cpu, r.simd, r.threads);
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
            let (cpu, simd) = lgn::bench::cpu_simd();
            // lgn's own kernel on the same product, and the register-only FMA peak
            let own = lgn::bench::own_gemm_gflops(g.m, g.k, g.cols, 2.0);
            let peak = lgn::bench::fma_peak_gflops(1.0);
            let of_peak = |x: Option<f64>| Some(x? / peak?);
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({"m": g.m, "k": g.k, "n": g.cols, "threads": threads, "gflops": gf, "precision": "f64", "cpu": cpu, "simd": simd,
                        "own_gflops": own, "fma_peak_gflops": peak,
                        "gflops_of_peak": of_peak(Some(gf)), "own_gflops_of_peak": of_peak(own)})
                );
            } else {
                println!(
                    "faer GEMM {}×{}×{} on {threads} threads: {gf:.1} GFLOP/s (f64); {cpu} ({simd})",
                    g.m, g.k, g.cols
                );
                match own {
                    Some(o) => println!("lgn's own AVX-512 kernel, same product: {o:.1} GFLOP/s"),
                    None => {
                        println!("lgn's own kernel: not used on this CPU (faer runs the passes)")
                    }
                }
                if let Some(p) = peak {
                    println!(
                        "FMA peak (register-only loop) on {threads} threads: {p:.1} GFLOP/s; faer {:.0} %{}",
                        100.0 * gf / p,
                        own.map_or(String::new(), |o| format!(", own kernel {:.0} %", 100.0 * o / p))
                    );
                }
            }
        }
    }
    Ok(())
}
