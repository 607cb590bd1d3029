//! `lgn train`: fit a model to a samples or trajectories file and write a model file: a graph
//! network on the user's graph or mesh (`--graph`, `--mesh`), or a single-network model
//! (`--model lnn|lgn|mlp|hnn`).

use super::choice::choice;
use super::train_mpi;
use lgn::density::dissipation::DissipationKind;
use lgn::io::TrainingData;
use lgn::parallel::Comm;
use lgn::train::recipe::{self, Recipe};
use lgn::train::{self, HnnCoords, LossKind, MassPenalty, ModelKind, Schedule, TrainConfig};
use lgn::{Error, Result};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Train a model on (q, q̇, q̈) data with exact gradients (adjoint through the Euler–Lagrange
/// solve for Lagrangian models).
///
/// With --graph G.h5 or --mesh M.msh a Lagrangian graph network is trained on that graph: by
/// default (--density node-edge) L = Σ_i ½ μ_i |q̇_i|² + Σ_edges [N(q_b − q_a) + N(q_a − q_b)]
/// with learned positive node masses μ_i and a learned edge potential fed by the graph's node
/// and edge features (on meshes: lumped areas and cotangent weights). The data is a samples
/// file (q, qdot, qddot: N × D) or a trajectories file with qddot (every frame a sample), with
/// D = nodes × dof of the graph.
///
/// Training is stabilised by default: the loss is divided by the loss of predicting zero (so
/// 1.0 = no better than zero), the gradient is clipped to norm 1 and the learning rate warms up
/// over the first 5 % of steps. A run that ends no better than predicting zero says so and
/// exits with status 1 (the model is still written).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  lgn train --graph chain.h5 --data chain_traj.h5 --out chain_model.h5\n  lgn train --mesh meshes/square_coarse.msh --data mesh_samples.h5 --out mesh_model.h5\n  lgn train --graph chain.h5 --data d.h5 --boundary fixed --node-potential --out m.h5\n  lgn train --data dp_train.h5 --model lnn --angles --mass-penalty 1000 --schedule onecycle --lr 3e-3 --epochs 50 --out lnn.h5\n  lgn train --data wave_samples.h5 --model lgn --out lgn.h5 --hidden 64\n  lgn train --data rel.h5 --model hnn --hnn-coords momentum --out hnn.h5\n\nCtrl-C stops after the current step and writes the best model so far."
)]
pub struct TrainArgs {
    /// Training data: a samples file (q, qdot, qddot: N × D; optional weights) or a
    /// trajectories file with qddot (B × T × D).
    #[arg(long)]
    pub data: PathBuf,
    /// Model: lnn (single-site Lagrangian), lgn (Lagrangian graph network: on --graph/--mesh,
    /// else on a periodic ring of D nodes), mlp (plain baseline), hnn (Hamiltonian baseline).
    /// With --graph or --mesh the default is lgn; otherwise required.
    #[arg(long, value_parser = choice::<ModelKind>(), required_unless_present_any = ["graph", "mesh"])]
    pub model: Option<ModelKind>,
    /// The system's graph (lgn graph file): train a graph network on it.
    #[arg(long, conflicts_with = "mesh")]
    pub graph: Option<PathBuf>,
    /// The system's triangle mesh (Gmsh MSH 4.1/2.2): train a graph network on it (one
    /// coordinate per node; mesh features: lumped areas, cotangent weights).
    #[arg(long)]
    pub mesh: Option<PathBuf>,
    /// Graph-network density: node-edge (kinetic node term with positive masses + symmetric
    /// edge potential of differences q_b − q_a), sites (one general MLP ρ(q_I, q̇_I) over the
    /// graph file's explicit 'sites'), stencil (one general MLP over (i−1, i, i+1) of a
    /// ring/chain graph).
    #[arg(long, value_enum, default_value_t = GraphDensity::NodeEdge)]
    pub density: GraphDensity,
    /// node-edge: add a learned node potential N(q_i; f_i) (external or on-site forces).
    #[arg(long)]
    pub node_potential: bool,
    /// node-edge: the node masses are known and equal to M (a closed-form kinetic term
    /// ½ M |q̇_i|² instead of learned masses); only the potential is learned.
    #[arg(long, value_name = "M")]
    pub node_mass: Option<f64>,
    /// Boundary nodes (graph file 'boundary' flags, mesh boundary): fixed (Dirichlet: held in
    /// place), free, or auto: fixed when the data never moves them (velocities and
    /// accelerations zero there in every sample), else free.
    #[arg(long, value_enum, default_value_t = BoundaryArg::Auto)]
    pub boundary: BoundaryArg,
    /// Output model file (HDF5).
    #[arg(long)]
    pub out: PathBuf,
    /// Hidden width (default 128; graph networks 64).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Hidden layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Minibatch size (default 256; graph networks (lgn) 16, or fewer for small data sets so that an
    /// epoch has at least ~32 steps).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Learning rate, the peak rate for onecycle (default 1e-3; graph networks 3e-3).
    #[arg(long)]
    pub lr: Option<f64>,
    /// L2 regularisation strength (added to the gradient as wd·θ).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate schedule (default constant; graph networks onecycle).
    #[arg(long, value_parser = choice::<Schedule>())]
    pub schedule: Option<Schedule>,
    /// Clip the (normalised) gradient to this global norm.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Do not clip the gradient.
    #[arg(long)]
    pub no_clip: bool,
    /// Fraction of the steps over which the learning rate warms up from 0.
    #[arg(long, default_value_t = 0.05)]
    pub warmup: f64,
    /// Precision of the networks' forward evaluations in training (graph networks, --model
    /// lgn): f32 runs the MLP passes of the accelerations in single precision (faster; the
    /// accelerations then carry a relative error of about 1e-4 to 1e-3), while assembly, solve,
    /// the adjoint gradient and the optimiser stay f64. Default f64.
    #[arg(long, value_enum, default_value_t = super::bench::PrecisionArg::F64)]
    pub precision: super::bench::PrecisionArg,
    /// Use the raw loss instead of the loss relative to predicting zero.
    #[arg(long)]
    pub no_normalise: bool,
    /// Fraction held out for validation (best checkpoint chosen on it).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Seed for initialisation, split and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Loss on the predicted accelerations.
    #[arg(long, value_parser = choice::<LossKind>(), default_value_t = LossKind::Mse)]
    pub loss: LossKind,
    /// Weight β of a penalty that keeps the learned mass matrix ∂²L/∂q̇² definite
    /// (eigenvalues of one sign, at least --mass-margin × their typical size). --model lnn: off
    /// by default; use it when rollouts hit singular or indefinite mass matrices, with a weight
    /// near the data's mean squared acceleration (≈ 1000 for the double pendulum): much smaller
    /// weights lose to the data loss in the first epochs; the network is first made definite by
    /// the penalty alone (the definite start, docs/DESIGN.md §21.7; JSON `definite_start_steps`,
    /// `indefinite_mass_fraction`). --model lgn and graph networks with
    /// --density sites|stencil: on by default on each site's kinetic block ∂²ρ/∂q̇² (weight =
    /// the training data's mean squared acceleration; docs/DESIGN.md §18.2).
    #[arg(long)]
    pub mass_penalty: Option<f64>,
    /// Relative eigenvalue margin of --mass-penalty.
    #[arg(long, default_value_t = MassPenalty::DEFAULT_MARGIN)]
    pub mass_margin: f64,
    /// The coordinates q are angles (e.g. the double pendulum, a chain of coupled pendulums):
    /// the network sees them wrapped into (−π, π] — graph models: node potentials q_i, edge
    /// potentials q_b − q_a — in training and whenever the model is used (q_period = 2π).
    #[arg(long)]
    pub angles: bool,
    /// LNN only: the coordinates q are angles and the network sees them embedded as
    /// (cos q, sin q) next to q̇ — the learned Lagrangian is smooth and 2π-periodic everywhere,
    /// with no seam at ±π (unlike --angles, which wraps q into (−π, π]). Saved in the model
    /// file (attribute angle_embedding); every later use (simulate, accel) embeds too. Works
    /// with every objective (accel, and from positions weak, savgol, central).
    #[arg(long)]
    pub embed_angles: bool,
    /// lgn ring models only: make the learned density shift-invariant — it sees q only through
    /// the differences q_{i+1} − q_i, exactly (a projection of the first layer kept through
    /// training), so total momentum Σ ∂L/∂q̇_i is conserved along every rollout (Noether,
    /// docs/DESIGN.md §14.1). Saved in the model file (attribute shift_invariant). Graph models
    /// (--graph/--mesh) without --node-potential are shift-invariant already.
    #[arg(long)]
    pub shift_invariant: bool,
    /// Graph models (--density node-edge) of particles whose coordinates are positions in 2-D
    /// or 3-D: the edge potential sees only the distance |q_b − q_a| (with the edge features),
    /// so the learned Lagrangian is invariant under translations and rotations and conserves
    /// linear and angular momentum (docs/DESIGN.md §14.3; `lgn simulate` reports both).
    #[arg(long)]
    pub edge_distance: bool,
    /// HNN only: y = raw velocity or canonical momentum of the data's known system.
    #[arg(long, value_parser = choice::<HnnCoords>(), default_value_t = HnnCoords::Velocity)]
    pub hnn_coords: HnnCoords,
    /// Training objective: weak (weak-form Euler–Lagrange residual on windows of positions,
    /// no derivative estimates; the default for positions-only trajectories), savgol or
    /// central (estimate q̇ and q̈ from the positions by a Savitzky–Golay filter or central
    /// differences, then the acceleration loss: the baseline), accel (the acceleration loss
    /// on measured qdot/qddot; the default when the file has them). weak and the baselines
    /// need trajectories sampled at a fixed time step.
    #[arg(long, value_parser = choice::<lgn::train::positions::ObjectiveKind>())]
    pub objective: Option<lgn::train::positions::ObjectiveKind>,
    /// --objective weak: half-width K of the test-function window in frames (the window spans
    /// 2K + 5 frames), or auto: the shortest K in 3..=10 whose label noise, predicted from the
    /// noise level estimated in the positions, is at most 3 % of their RMS acceleration
    /// (docs/DESIGN.md §12.10; printed before training). Larger K averages more noise, smaller
    /// K resolves faster motion.
    #[arg(long, default_value = "auto", value_parser = parse_window)]
    pub window: WindowArg,
    /// Dissipation the model learns next to L (docs/DESIGN.md §13): none (conservative), linear
    /// (D = ½ Σ c_k q̇_k², one learned c_k ≥ 0 per coordinate: joint friction, viscous drag; the
    /// coefficients are stored in the model file and printed at the end) or learned (a
    /// state-dependent dissipation network). lnn (docs/DESIGN.md §22): learned is
    /// D = ½ q̇ᵀ L(q)L(q)ᵀ q̇, L lower triangular with a positive diagonal from a 32×2 network of q
    /// (of cos q, sin q with --embed-angles), so D ≥ 0 and D(q, 0) = 0 whatever the weights;
    /// it is stored in the model file (group dissipation). Use it on data from a damped system,
    /// e.g. `lgn generate dblpend --damping 0.3`. Graph/mesh models (docs/DESIGN.md §13.7):
    /// D = ½ Σ_i γ_i |q̇_i|², γ_i = s_i·softplus(N) ≥ 0 with s_i the node's mass scale; linear
    /// learns one constant N, learned a network of (q_i, node features). Training files with
    /// inputs `u` (and `B`, e.g. `lgn generate wave-mesh --forcing …`) are driven: B u enters
    /// every sample's equations.
    #[arg(long, default_value = "none", value_parser = choice::<lgn::density::dissipation::DissipationKind>())]
    pub dissipation: lgn::density::dissipation::DissipationKind,
    /// Input map B of driven graph/mesh training data (a file with `u`, docs/DESIGN.md §13.9):
    /// given uses the file's /B; learned trains B = s_i·β (one value per node and input, s_i
    /// the node's mass scale, starting from the file's /B when it has one, else from zero) and
    /// saves it in the model (group input_map), so `lgn simulate --input U.h5` needs no /B.
    #[arg(long, default_value = "given", value_parser = choice::<lgn::model::InputMapKind>())]
    pub input_map: lgn::model::InputMapKind,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundaryArg {
    Auto,
    Fixed,
    Free,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphDensity {
    NodeEdge,
    Sites,
    Stencil,
}

impl BoundaryArg {
    /// The library's rule of this flag value.
    pub fn rule(self) -> recipe::BoundaryRule {
        match self {
            BoundaryArg::Auto => recipe::BoundaryRule::Auto,
            BoundaryArg::Fixed => recipe::BoundaryRule::Fixed,
            BoundaryArg::Free => recipe::BoundaryRule::Free,
        }
    }
}

impl GraphDensity {
    /// The library's density of this flag value.
    pub fn density(self) -> recipe::GraphDensity {
        match self {
            GraphDensity::NodeEdge => recipe::GraphDensity::NodeEdge,
            GraphDensity::Sites => recipe::GraphDensity::Sites,
            GraphDensity::Stencil => recipe::GraphDensity::Stencil,
        }
    }
}

/// The training recipe of the flags (defaults: `lgn::train::recipe`).
pub(super) fn recipe(args: &TrainArgs) -> Recipe {
    Recipe {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        weight_decay: args.weight_decay,
        schedule: args.schedule,
        clip: (!args.no_clip).then_some(args.clip),
        warmup: args.warmup,
        normalise: !args.no_normalise,
        val_fraction: args.val_fraction,
        seed: args.seed,
        loss: args.loss,
        mass_penalty: args.mass_penalty,
        mass_margin: args.mass_margin,
        precision: args.precision.into(),
        hidden: args.hidden,
        layers: args.layers,
    }
}

/// Training options shared by both paths, from the flags.
/// `n` is the number of samples: graph networks default to minibatches of 16, smaller for small
/// data sets so that an epoch has at least ~32 steps.
pub(super) fn config(
    args: &TrainArgs,
    graph: bool,
    n: usize,
    stop: Arc<AtomicBool>,
) -> Result<TrainConfig> {
    recipe(args).config(graph, n, stop)
}

/// The progress bar observer of [`train::fit`].
pub(super) fn progress_bar(quiet: bool) -> indicatif::ProgressBar {
    super::progress::training_bar(None, quiet)
}

pub(super) use super::progress::show_progress;

pub(super) fn training_record(
    args: &TrainArgs,
    cfg: &TrainConfig,
    report: &train::TrainReport,
) -> TrainingData {
    train::training_record(&args.data.display().to_string(), cfg, report)
}

/// Print the JSON summary; a run no better than predicting zero is an error (after writing).
pub(super) fn summarise(
    args: &TrainArgs,
    model: &str,
    cfg: &TrainConfig,
    report: &train::TrainReport,
) -> Result<()> {
    let num = |x: f64| {
        serde_json::Number::from_f64(x)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    };
    let rel = (cfg.loss == LossKind::Mse && report.zero_val_loss > 0.0)
        .then(|| (report.best_val_loss / report.zero_val_loss).sqrt());
    println!(
        "{}",
        serde_json::json!({
            "final_loss": num(report.final_loss),
            "best_val_loss": num(report.best_val_loss),
            "zero_val_loss": num(report.zero_val_loss),
            "val_rel_error": rel.map(num),
            "no_better_than_zero": report.no_better_than_zero,
            "normalised": cfg.normalise,
            "epochs": report.epochs,
            "samples_per_second": num(report.samples_per_second),
            "out": args.out.display().to_string(),
            "model": model,
            "n_train": report.n_train,
            "n_val": report.n_val,
            "interrupted": report.interrupted,
            "stopped_by_error": report.stopped_by_error,
            "indefinite_mass_fraction": report.indefinite_mass_fraction.map(num),
            "definite_start_steps": report.definite_start.map(|s| s.steps),
        })
    );
    if report.no_better_than_zero && !report.interrupted {
        return Err(Error::input(format!(
            "training ended no better than predicting zero accelerations (best validation loss {:.4e} ≥ {:.4e}); the model in {} is not usable: try another --lr, more --epochs or a wider --hidden",
            report.best_val_loss,
            report.zero_val_loss,
            args.out.display()
        )));
    }
    Ok(())
}

pub(super) fn warn_stops(report: &train::TrainReport) {
    if let Some(e) = &report.stopped_by_error {
        eprintln!("warning: training stopped early: {e}; writing the best model so far");
    }
    if report.interrupted {
        eprintln!(
            "interrupted after {} epochs; writing the best model so far",
            report.epochs
        );
    }
    if let Some(f) = report.indefinite_mass_fraction.filter(|&f| f > 0.0) {
        eprintln!(
            "warning: the learned mass matrix is not definite at {:.1} % of the training states (docs/DESIGN.md §21.6): the model's energy is not an energy there; train longer or check --mass-penalty",
            100.0 * f
        );
    }
}

/// `--graph`/`--mesh`: a graph network on the user's graph.
fn run_graph(args: &TrainArgs, stop: Arc<AtomicBool>, comm: &dyn Comm) -> Result<()> {
    let setup = super::train_graph::setup(args)?;
    let (graph, gname) = (&setup.graph, setup.file);
    let (raw, shard) = train_mpi::read(&args.data, comm)?;
    let d = raw.q.ncols();
    if d != graph.n_coords() {
        return Err(Error::file(
            &args.data,
            format!(
                "states have {d} coordinates but the graph {} has {} nodes × {} coordinates = {}",
                gname.display(),
                graph.n_nodes(),
                graph.dof(),
                graph.n_coords()
            ),
        ));
    }
    let mut samples =
        train::Samples::from_data(&raw).map_err(|e| Error::file(&args.data, e.to_string()))?;
    let states: Vec<&[f64]> = (0..samples.n).map(|i| samples.input_row(i)).collect();
    // `auto`: fixed when the flagged nodes never move in the data (of every rank).
    let still_all = train_mpi::still_over(comm, &setup.boundary_coords(args)?, &raw)?;
    let system = raw.system.clone().unwrap_or_default();
    let mut model = setup.model(args, &states, &|_: &[usize]| still_all, &system, comm)?;
    let graph = setup.graph;
    let cfg = config(args, true, shard.total, stop)?;
    if cfg.precision != lgn::density::Precision::F64 {
        return Err(Error::input(
            "--precision f32 applies to --model lgn on the ring; graph models (--graph/--mesh) train in f64",
        ));
    }
    // Issue 13: the dissipation term and driven data (u, B).
    super::train_driven::attach_dissipation(args, &mut model, &graph, &samples)?;
    // docs/DESIGN.md §18.2: general densities keep their site mass blocks definite.
    let pen = train::site_penalty::for_graph(&model, cfg.mass_penalty, &samples);
    let mut trainer = train::graph::GraphTrainer::new(model, graph)?.with_mass_penalty(pen);
    if comm.size() > 1 {
        // Driven data's rows would have to be sharded with u: one rank for now.
        if lgn::io::inputs::read_u(&args.data, shard.total, "samples")?.is_some() {
            train_mpi::refuse(comm, "training on driven data (u in the file)")?;
        }
    } else {
        (trainer, samples) = super::train_driven::driven(args, trainer, samples)?;
    }
    let bar = progress_bar(args.quiet || !comm.is_root());
    let mut on_step = |p: &train::Progress| show_progress(&bar, p);
    let q0 = (samples.n > 0).then(|| samples.input_row(0)[..d].to_vec());
    let report = train_mpi::fit(comm, &mut trainer, samples, &shard, &cfg, &mut on_step)?;
    bar.finish_and_clear();
    warn_stops(&report);
    if report.epochs == 0 {
        if let Some(e) = &report.stopped_by_error {
            return Err(Error::input(format!(
                "training failed in its first epoch, nothing written: {e}"
            )));
        }
    }
    if let Some(i) = trainer.model.params().iter().position(|x| !x.is_finite()) {
        return Err(Error::input(format!(
            "training diverged: parameter {i} of the model is not finite; lower --lr or check the data's scale; nothing was written"
        )));
    }
    train_mpi::on_root(comm, || {
        trainer.model.save(
            &args.out,
            Some(&training_record(args, &cfg, &report)),
            args.force,
        )
    })?;
    if !comm.is_root() {
        return Ok(());
    }
    eprintln!(
        "{} on {}: boundary nodes {}",
        trainer.model.describe(),
        gname.display(),
        trainer.model.boundary.as_str()
    );
    if let Some(q0) = &q0 {
        let dissipation = super::train_driven::describe(&trainer.model, &trainer.graph, q0)?;
        if !dissipation.is_empty() {
            eprintln!("{dissipation}");
        }
    }
    summarise(args, "lgn", &cfg, &report)
}

pub fn run(args: TrainArgs) -> Result<()> {
    // Under mpirun every rank trains its share (docs/DESIGN.md §16.3); alone, the serial path.
    train_mpi::on_ranks(|comm| run_ranks(args, comm))
}

fn run_ranks(args: TrainArgs, comm: &dyn Comm) -> Result<()> {
    // First of all, so that a signal at any time after start-up stops gracefully.
    let stop = train_mpi::stop_flag(comm);
    if args.out.exists() && !args.force {
        return Err(Error::file(
            &args.out,
            "output exists; pass --force to replace it",
        ));
    }
    lgn::io::check_writable(&args.out, args.force)?;
    let graph = args.graph.is_some() || args.mesh.is_some();
    let hidden = recipe(&args).hidden(graph);
    lgn::limits::check_mlp("--hidden/--layers", 8, hidden, args.layers)?;
    lgn::limits::check_alloc(
        "--batch × --hidden",
        (args.batch.unwrap_or(256) as u128) * (hidden as u128),
        64,
    )?;
    let objective = super::train_positions::objective(&args)?;
    if objective != lgn::train::positions::ObjectiveKind::Accel
        && args.dissipation != DissipationKind::None
    {
        return Err(Error::input(
            "--dissipation trains on accelerations (--objective accel); positions-only objectives learn conservative models",
        ));
    }
    if objective != lgn::train::positions::ObjectiveKind::Accel
        && args.input_map == lgn::model::InputMapKind::Learned
    {
        return Err(Error::input(
            "--input-map learned trains on accelerations (--objective accel)",
        ));
    }
    if !graph && args.input_map == lgn::model::InputMapKind::Learned {
        return Err(Error::input(
            "--input-map learned applies to graph models (--graph/--mesh) trained on driven data (a file with /u)",
        ));
    }
    if !graph && args.edge_distance {
        return Err(Error::input(
            "--edge-distance applies to graph models (--graph with node positions in 2-D/3-D)",
        ));
    }
    if !graph
        && args.shift_invariant
        && (args.model != Some(ModelKind::Lgn)
            || objective != lgn::train::positions::ObjectiveKind::Accel)
    {
        return Err(Error::input(
            "--shift-invariant applies to --model lgn trained on qdot/qddot (the accel objective) and to graph models (--graph, --density node-edge)",
        ));
    }
    if args.embed_angles && (graph || args.model != Some(ModelKind::Lnn)) {
        return Err(Error::input(
            "--embed-angles applies to --model lnn, not to graph models or the baselines (use --angles there)",
        ));
    }
    if args.embed_angles && args.angles {
        return Err(Error::input(
            "--embed-angles and --angles are two ways of treating angles: choose one (--embed-angles: (cos q, sin q), smooth everywhere; --angles: q wrapped into (−π, π])",
        ));
    }
    if objective != lgn::train::positions::ObjectiveKind::Accel {
        train_mpi::refuse(comm, "training on positions (--objective)")?;
        return super::train_positions::run(&args, objective, stop);
    }
    if graph {
        if args.dissipation != DissipationKind::None {
            train_mpi::refuse(comm, "--dissipation with --graph/--mesh")?;
        }
        return run_graph(&args, stop, comm);
    }
    let kind = args
        .model
        .ok_or_else(|| Error::input("--model is required without --graph or --mesh"))?;
    let (raw, shard) = train_mpi::read(&args.data, comm)?;
    let mut samples = train::prepare_samples(kind, &raw, args.hnn_coords)
        .map_err(|e| Error::file(&args.data, e.to_string()))?;
    let d = raw.q.ncols();
    let system = raw.system.clone().unwrap_or_default();
    if args.angles && kind == ModelKind::Lgn {
        return Err(Error::input(
            "--angles applies to single-site models (lnn, mlp, hnn), not to lgn",
        ));
    }
    let mut model =
        recipe(&args).net_model(kind, &system, &raw.params, d, args.hnn_coords, args.angles)?;
    if args.embed_angles {
        // docs/DESIGN.md §14.6: the network sees (cos q, sin q, q̇).
        model.set_angle_embedding(args.seed)?;
    }
    model.wrap_inputs(&mut samples);
    train::fit_normalisation_over(&mut model, &samples, comm)?;
    if args.shift_invariant {
        // docs/DESIGN.md §14.1: after the normalisation (the projection needs its q scales).
        model.set_shift_invariant()?;
    }
    let cfg = config(&args, kind == ModelKind::Lgn, shard.total, stop)?;
    let bar = progress_bar(args.quiet || !comm.is_root());
    let mut on_step = |p: &train::Progress| show_progress(&bar, p);
    let (best, report) = match args.dissipation {
        DissipationKind::None => {
            // train::train, on this rank's share of the samples.
            let start = match cfg.mass_penalty.filter(|_| kind == ModelKind::Lnn) {
                Some(p) => train_mpi::definite_start(comm, &mut model, &samples, p)?,
                None => None,
            };
            let mut t = train::NetTrainer::new(model, &samples, cfg.mass_penalty)?
                .with_precision(cfg.precision)?;
            // docs/DESIGN.md §21.6: states on which to report an M left indefinite.
            let check = (cfg.mass_penalty.is_some() && kind == ModelKind::Lnn)
                .then(|| samples.subset(&(0..samples.n.min(4096)).collect::<Vec<_>>()));
            let mut report = train_mpi::fit(comm, &mut t, samples, &shard, &cfg, &mut on_step)?;
            report.definite_start = start;
            let model = t.into_model();
            if let Some(c) = &check {
                report.indefinite_mass_fraction =
                    Some(train::definite_start::indefinite_fraction(&model, c)?);
            }
            (model, report)
        }
        DissipationKind::Linear => {
            train_mpi::refuse(comm, "--dissipation linear")?;
            let r = train::damped::train_damped_lnn(model, &samples, &cfg, &mut on_step)?;
            if let Some(c) = train::damped::model_damping(&r.0) {
                eprintln!("learned linear damping c = {c:?}");
            }
            r
        }
        DissipationKind::Learned => {
            // docs/DESIGN.md §22: D = ½ q̇ᵀ L(q)L(q)ᵀ q̇, a network of q (lnn only).
            if kind != ModelKind::Lnn {
                return Err(Error::input(format!(
                    "--dissipation learned trains an lnn (or a graph model); not a '{}' model",
                    kind.as_str()
                )));
            }
            train_mpi::refuse(comm, "--dissipation learned")?;
            train::damped::train_dissipative_lnn(
                model,
                DissipationKind::Learned,
                &samples,
                &cfg,
                &mut on_step,
            )?
        }
    };
    bar.finish_and_clear();
    warn_stops(&report);
    if report.epochs == 0 {
        if let Some(e) = &report.stopped_by_error {
            return Err(Error::input(format!(
                "training failed in its first epoch, nothing written: {e}"
            )));
        }
    }
    // A diverged run (non-finite loss, weights or predictions) is a failure: nothing is written.
    let checked = super::checks::check_trained(&best, &report, &raw, &args.data);
    lgn::parallel::agree(comm, checked)?;
    train_mpi::on_root(comm, || {
        best.save(
            &args.out,
            Some(training_record(&args, &cfg, &report)),
            args.force,
        )
    })?;
    if !comm.is_root() {
        return Ok(());
    }
    summarise(&args, kind.as_str(), &cfg, &report)
}

/// `--window auto|K`: None = chosen from the data (docs/DESIGN.md §12.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowArg(pub Option<usize>);

fn parse_window(s: &str) -> std::result::Result<WindowArg, String> {
    if s == "auto" {
        return Ok(WindowArg(None));
    }
    s.parse::<usize>()
        .map(|k| WindowArg(Some(k)))
        .map_err(|_| format!("expected auto or a half-width K (a whole number ≥ 2), got '{s}'"))
}
