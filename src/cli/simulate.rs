//! `lgn simulate`: integrate one trajectory of a system and stream it to HDF5.

use super::accel::read_state;
use super::choice::choice;
use lgn::data::{self, WaveConfig};
use lgn::dynamics::Dynamics;
use lgn::integrate::{Dp5Options, Method, MidpointOptions};
use lgn::io::{TrajectoryData, TrajectoryWriter, TrajectoryWriterOptions};
use lgn::plot::{self, Panel, Series};
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use lgn::{Error, Result};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod dd;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimSystem {
    /// Double pendulum (m = l = 1), state "θ1,θ2,ω1,ω2".
    Dblpend,
    /// Relativistic particle, state "q,qdot" with |qdot| < 1.
    Relativistic,
    /// 1D wave, centred-difference density (wide stencil); state FILE.h5 or "random".
    Wave1d,
    /// 1D wave, standard 3-point stencil; state FILE.h5 or "random".
    Wave1dStandard,
    /// Wave equation (c = 1, free boundary) on the triangle mesh --mesh FILE.msh, P1 FEM truth;
    /// state FILE.h5 (one value per mesh node in q and qdot) or "random" (smooth fields, --seed).
    WaveMesh,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integrator {
    /// Classical Runge–Kutta 4, fixed step --step.
    Rk4,
    /// Adaptive Dormand–Prince 5(4) with --rtol/--atol and dense output.
    Dp5,
    /// Velocity Verlet (symplectic for velocity-independent q̈: wave, FEM), fixed step.
    Verlet,
    /// Implicit-midpoint variational integrator (symplectic for any Lagrangian), fixed step.
    Midpoint,
}

/// Integrate a system from one state and write the trajectory (t, q, qdot, qddot, energy).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  lgn simulate --system dblpend --state \"1.0,2.0,0.5,-0.3\" --t-end 20 --dt 0.01 --out dp.h5 --plot dp.png
  lgn simulate --system wave1d-standard --n 100 --state random --seed 1 --t-end 2 --dt 0.01 \\
      --integrator verlet --step 0.001 --out wave.h5 --plot wave.png
  lgn simulate --system relativistic --g 1 --state \"0,0.5\" --t-end 10 --dt 0.05 --integrator midpoint --out rel.h5
  lgn simulate --system wave-mesh --mesh meshes/disk_coarse.msh --state random --t-end 2 --dt 0.02 \\
      --integrator verlet --step 0.002 --out disk.h5 --plot disk.png   # also writes disk.xmf
  lgn simulate --system dblpend --damping 0.1 --input u.h5 --state \"1,2,0,0\" --t-end 10 --dt 0.01 \\
      --out driven.h5 --plot driven.png   # u.h5: t (T), u (T × m), B (2 × m); writes w_dissipated, w_injected
  mpirun -n 4 lgn simulate --model mesh_model.h5 --state s.h5 --t-end 1 --dt 0.01 \\
      --integrator verlet --step 0.001 --out m.h5   # graph model split over 4 ranks (--features mpi)")]
pub struct SimulateArgs {
    /// Which system (with --model: the state layout; default from the model file).
    #[arg(long, value_enum, required_unless_present = "model")]
    pub system: Option<SimSystem>,
    /// Integrate a trained lnn/lgn model file (from `lgn train` or `lgn experiment`) instead
    /// of the analytic system. The energy written is the model's own energy.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// With a graph model (--model): the graph to simulate on (default: the model's training
    /// graph).
    #[arg(long, conflicts_with = "mesh", requires = "model")]
    pub graph: Option<PathBuf>,
    /// Initial state: "q…,q̇…", an HDF5 file with datasets q and qdot, or "random" (wave).
    #[arg(long)]
    pub state: String,
    /// End time (start 0).
    #[arg(long)]
    pub t_end: f64,
    /// Time between output frames.
    #[arg(long)]
    pub dt: f64,
    /// Integrator.
    #[arg(long, value_enum, default_value_t = Integrator::Dp5)]
    pub integrator: Integrator,
    /// Internal step of the fixed-step integrators (default: --dt).
    #[arg(long)]
    pub step: Option<f64>,
    /// DP5 relative tolerance.
    #[arg(long, default_value_t = 1e-10)]
    pub rtol: f64,
    /// DP5 absolute tolerance.
    #[arg(long, default_value_t = 1e-10)]
    pub atol: f64,
    /// Gravity: dblpend default 9.8, relativistic default 1.
    #[arg(long)]
    pub g: Option<f64>,
    /// Wave grid points (default: from the state; 100 for "random").
    #[arg(long)]
    pub n: Option<usize>,
    /// Wave grid spacing (default 1/n).
    #[arg(long)]
    pub dx: Option<f64>,
    /// Seed of a "random" wave state.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Linear solver for M q̈ = b.
    #[arg(long, value_parser = choice::<SolverKind>(), default_value_t = SolverKind::Auto)]
    pub solver: SolverKind,
    /// Gmsh mesh (MSH 4.1 or 2.2 ASCII, triangles): for --system wave-mesh the finite-element
    /// truth on it; with a graph model (--model) the mesh to simulate the model on (zero-shot).
    /// The trajectory file then also holds the mesh (group `mesh`) and gets an XDMF sidecar
    /// OUT.xmf for ParaView; --plot draws the field on the triangles.
    #[arg(long)]
    pub mesh: Option<PathBuf>,
    /// Output HDF5 trajectory file.
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw the trajectory (coordinates vs time, or a space-time image for waves) to this
    /// PNG, and the energy to <stem>_energy.png.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Drive the system with an input file (docs/SCHEMA.md "Inputs and work"): datasets `t`
    /// (increasing, covering 0..--t-end), `u` (T × m, linearly interpolated) and optionally the
    /// input map `B` (coordinates × m; without it u needs one column per coordinate and B = I).
    /// The generalised force B u(t) enters M q̈ = ∂L/∂q − C q̇ − ∂D/∂q̇ + B u(t), and the output
    /// gets `w_dissipated` and `w_injected`. A graph model trained with --input-map learned
    /// brings its own B: the file then gives t and u only (u of the map's width).
    #[arg(long, value_name = "U.h5")]
    pub input: Option<PathBuf>,
    /// dblpend: linear joint damping c ≥ 0, D = ½ c (θ̇₁² + θ̇₂²) (docs/DESIGN.md §13.5). A model
    /// file with learned damping (`damping_k` attributes) is damped without this flag. With
    /// damping or --input the output holds `w_dissipated` / `w_injected` and the energy plot
    /// shows E + W_diss − W_inj (flat for a correct rollout).
    #[arg(long, value_name = "C")]
    pub damping: Option<f64>,
    /// Overwrite existing outputs.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Under mpirun (graph models): how the nodes are split among the ranks — coordinate
    /// bisection of the node positions (meshes) or BFS level-structure bisection of the
    /// coupling graph (docs/DESIGN.md §16.5).
    #[arg(long, value_parser = choice::<lgn::domain::PartitionMethod>(), default_value_t = lgn::domain::PartitionMethod::Auto)]
    pub partition: lgn::domain::PartitionMethod,
}

type Factory = Box<dyn Fn() -> Result<Dynamics>>;

/// The system of a model file: from --system, else from the model's recorded system.
fn system_of(a: &SimulateArgs) -> Result<SimSystem> {
    if let Some(s) = a.system {
        return Ok(s);
    }
    let Some(path) = &a.model else {
        return Err(Error::input("pass --system or --model"));
    };
    let m = lgn::train::load_model(path)?;
    match m.system.as_str() {
        "dblpend" => Ok(SimSystem::Dblpend),
        "relativistic" => Ok(SimSystem::Relativistic),
        "wave1d" | "wave1d-standard" => Ok(SimSystem::Wave1dStandard),
        s => Err(Error::file(
            path,
            format!("cannot tell the state layout of a model of system '{s}'; pass --system"),
        )),
    }
}

/// The system to integrate: the analytic system, or a trained model's own [`Dynamics`].
/// A graph model on its graph: the dynamics factory, a name, and the graph.
fn graph_factory(
    a: &SimulateArgs,
    m: lgn::model::GraphModel,
) -> Result<(Factory, String, lgn::model::SystemGraph)> {
    let graph = match super::accel::model_graph(a.graph.as_deref(), a.mesh.as_deref())? {
        Some(g) => g,
        None => m.own_graph()?,
    };
    let solver = a.solver;
    // Fail early: the model must fit the graph.
    m.dynamics(&graph, solver)?;
    let name = format!("{} on {}", m.describe(), graph.name);
    let g = graph.clone();
    Ok((Box::new(move || m.dynamics(&g, solver)), name, graph))
}

fn factory(a: &SimulateArgs, n_state: usize) -> Result<(Factory, String, BTreeMap<String, f64>)> {
    let solver = a.solver;
    let mut params = BTreeMap::new();
    if let Some(path) = &a.model {
        let m = lgn::train::load_model(path)?;
        // Fail early (e.g. an mlp/hnn model has no Lagrangian to integrate).
        m.dynamics(Some(n_state), solver)
            .map_err(|e| Error::file(path, e.to_string()))?;
        params = m.params.clone();
        let name = format!("{} ({} model)", m.system, m.kind.as_str());
        return Ok((
            Box::new(move || m.dynamics(Some(n_state), solver)),
            name,
            params,
        ));
    }
    Ok(match system_of(a)? {
        SimSystem::WaveMesh => wave_mesh_factory(a, n_state)?,
        SimSystem::Dblpend if a.damping.is_some() => {
            let g = a.g.unwrap_or(9.8);
            let c = a.damping.unwrap_or(0.0);
            params.insert("g".into(), g);
            params.insert(lgn::data::damped::DAMPING_ATTR.into(), c);
            // Fail early (a negative c).
            lgn::data::damped::dblpend_damped(g, c, solver).map_err(|e| e.context("--damping"))?;
            (
                Box::new(move || lgn::data::damped::dblpend_damped(g, c, solver)),
                "dblpend".into(),
                params,
            )
        }
        SimSystem::Dblpend => {
            let g = a.g.unwrap_or(9.8);
            params.insert("g".into(), g);
            (
                Box::new(move || systems::dblpend(g, &DensityChoice::Analytic, solver)),
                "dblpend".into(),
                params,
            )
        }
        SimSystem::Relativistic => {
            let g = a.g.unwrap_or(1.0);
            params.insert("g".into(), g);
            (
                Box::new(move || systems::relativistic(g, &DensityChoice::Analytic, solver)),
                "relativistic".into(),
                params,
            )
        }
        SimSystem::Wave1d | SimSystem::Wave1dStandard => {
            let n = n_state;
            let dx = a.dx.unwrap_or(1.0 / n as f64);
            params.insert("n".into(), n as f64);
            params.insert("dx".into(), dx);
            params.insert("c".into(), 1.0);
            if system_of(a)? == SimSystem::Wave1d {
                (
                    Box::new(move || systems::wave1d(n, dx, &DensityChoice::Analytic, solver)),
                    "wave1d".into(),
                    params,
                )
            } else {
                (
                    Box::new(move || {
                        systems::wave1d_standard(n, dx, &DensityChoice::Analytic, solver)
                    }),
                    "wave1d-standard".into(),
                    params,
                )
            }
        }
    })
}

fn initial_state(a: &SimulateArgs) -> Result<(Vec<f64>, Vec<f64>)> {
    let system = system_of(a)?;
    if system == SimSystem::WaveMesh {
        return wave_mesh_state(a);
    }
    let wave = matches!(system, SimSystem::Wave1d | SimSystem::Wave1dStandard);
    if wave && a.state == "random" {
        let cfg = WaveConfig {
            n: a.n.unwrap_or(100),
            ..Default::default()
        };
        cfg.check().map_err(|e| e.context("--n"))?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
        return Ok(cfg.random_state(&mut rng));
    }
    let expect = match system {
        SimSystem::Dblpend => Some(2),
        SimSystem::Relativistic => Some(1),
        _ => a.n,
    };
    let (q, v) = read_state(&a.state, expect)?;
    if system == SimSystem::Relativistic && a.model.is_none() && v[0].abs() >= 1.0 {
        return Err(Error::input(format!(
            "the relativistic particle needs |qdot| < 1, got qdot = {}",
            v[0]
        )));
    }
    Ok((q, v))
}

pub fn run(a: SimulateArgs) -> Result<()> {
    if !(a.t_end.is_finite() && a.t_end > 0.0) {
        return Err(Error::input(format!(
            "--t-end must be positive, got {}",
            a.t_end
        )));
    }
    if !(a.dt.is_finite() && a.dt > 0.0 && a.dt <= a.t_end) {
        return Err(Error::input(format!(
            "--dt must be positive and at most --t-end, got {}",
            a.dt
        )));
    }
    // Under mpirun: the domain-decomposed rollout of a graph model (docs/DESIGN.md §16.5).
    if lgn::parallel::launched_ranks() > 1 {
        let comm = lgn::parallel::world()?;
        return dd::run(&a, comm.as_ref());
    }
    // Every output is checked before any work: a failed run commits nothing.
    if let Some(p) = &a.plot {
        lgn::io::check_writable(p, a.force)?;
        lgn::io::check_writable(energy_png(p), a.force)?;
    }
    for (flag, x) in [
        ("--g", a.g),
        ("--dx", a.dx),
        ("--step", a.step),
        ("--damping", a.damping),
    ] {
        if let Some(x) = x.filter(|x| !x.is_finite()) {
            return Err(Error::input(format!("{flag} must be finite, got {x}")));
        }
    }
    if a.damping.is_some() && (a.model.is_some() || system_of(&a)? != SimSystem::Dblpend) {
        return Err(Error::input(
            "--damping applies to --system dblpend (a model file carries its own damping)",
        ));
    }
    let step = a.step.unwrap_or(a.dt);
    let method = match a.integrator {
        Integrator::Rk4 => Method::Rk4 { dt: step },
        Integrator::Verlet => Method::Verlet { dt: step },
        Integrator::Midpoint => Method::Midpoint {
            dt: step,
            opts: MidpointOptions::default(),
        },
        Integrator::Dp5 => Method::Dp5(Dp5Options::tol(a.rtol, a.atol)),
    };
    let graph_model = match &a.model {
        Some(p) => match lgn::model::AnyModel::load(p)? {
            lgn::model::AnyModel::Graph(m) => Some(*m),
            lgn::model::AnyModel::Net(_) => None,
        },
        None => None,
    };
    if graph_model.is_none() && a.graph.is_some() {
        return Err(Error::input(
            "--graph applies to graph models (--model M.h5 written by lgn train --graph/--mesh)",
        ));
    }
    let mut graph_geometry = None;
    let mut graph_dof = None;
    // Issue 13: a graph model's learned input map B (docs/DESIGN.md §13.9).
    let mut learned_map = None;
    let (q0, v0, make, name, mut params) = if let Some(m) = graph_model {
        let (lim, dof) = (m.input_map.clone(), m.dof);
        let (make, name, graph) = graph_factory(&a, m)?;
        if let Some(b) = lim {
            learned_map = Some((b.map(&graph, dof)?, b.width));
        }
        graph_dof = Some(graph.dof());
        graph_geometry = lgn::io::xdmf::Geometry::from_graph(&graph.data)?.map(|g| MeshOutputs {
            mesh_file: graph.name.clone(),
            geometry: g,
        });
        let dy = make()?;
        let on = format!(
            "the graph {} ({} nodes × {})",
            graph.name,
            graph.n_nodes(),
            graph.dof()
        );
        let (q0, mut v0) = super::accel::read_state_for(&a.state, dy.n_coords(), &on)?;
        at_rest(&mut v0, dy.fixed_coords(), graph.dof())?;
        (q0, v0, make, name, BTreeMap::new())
    } else {
        let (q0, v0) = initial_state(&a)?;
        let (make, name, params) = factory(&a, q0.len())?;
        (q0, v0, make, name, params)
    };
    let make = match &a.input {
        Some(path) => with_input(make, path, q0.len(), a.t_end, learned_map)?,
        None => make,
    };
    // Damping or forcing: the output gets the work datasets (docs/SCHEMA.md "Inputs and work").
    let forced = make()?.forces.is_some();
    if forced && a.integrator == Integrator::Verlet {
        eprintln!(
            "note: velocity Verlet evaluates the velocity-dependent damping force explicitly (the \
             power balance drifts); dp5 (default) or midpoint integrate damped and \
             driven systems accurately"
        );
    }
    // Output times are generated as they are written (no array of all of them).
    let frames = lgn::limits::frame_count(a.t_end, a.dt)?;
    lgn::limits::check_disk(
        &a.out,
        frames,
        8 * (3 * q0.len() as u128 + 2 + 2 * u128::from(forced)),
    )?;
    let times = lgn::integrate::Linspace {
        n: frames,
        dt: a.dt,
    };
    params.insert("t_end".into(), a.t_end);
    let opts = TrajectoryWriterOptions {
        system: Some(name.clone()),
        params,
        with_qddot: true,
        with_energy: true,
        ..Default::default()
    };
    let mesh_out = match graph_geometry {
        Some(g) => {
            sidecar_free(&a)?;
            Some(g)
        }
        None => mesh_outputs_check(&a)?,
    };
    let mut writer = TrajectoryWriter::create(&a.out, 1, q0.len(), &opts, a.force)?;
    if let Some(m) = &mesh_out {
        m.write_into(&writer)?;
    }
    let bar = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(frames as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} frames (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    };
    if let Some(p) = &a.input {
        writer.set_attr("input", &lgn::io::AttrValue::Str(p.display().to_string()))?;
    }
    let mut balance = None;
    let (is_graph, dof) = (graph_dof.is_some(), graph_dof.unwrap_or(1));
    let mut conserved = None;
    let stats = if forced {
        let (stats, works, energies) =
            data::simulate_with_work(&make, &method, &q0, &v0, &times, &mut writer, |k| {
                bar.set_position(k as u64)
            })?;
        let row = |f: fn(&lgn::integrate::Work) -> f64| {
            ndarray::Array2::from_shape_vec((1, works.len()), works.iter().map(f).collect())
                .expect("1 × T")
        };
        writer.write_extra("w_dissipated", row(|w| w.dissipated).view())?;
        writer.write_extra("w_injected", row(|w| w.injected).view())?;
        balance = Some(work_balance(&works, &energies));
        stats
    } else if is_graph {
        // Graph models: total and angular momentum along the rollout (docs/DESIGN.md §14).
        let mut cons = lgn::density::symmetric::ConservedSeries::new(dof);
        let stats = data::simulate_observed(
            &make,
            &method,
            &q0,
            &v0,
            &times,
            &mut writer,
            |k| bar.set_position(k as u64),
            |dy, q, v| cons.push(dy, q, v),
        )?;
        write_conserved(&writer, &cons)?;
        conserved = Some(cons);
        stats
    } else {
        data::simulate(&make, &method, &q0, &v0, &times, &mut writer, |k| {
            bar.set_position(k as u64)
        })?
    };
    bar.finish_and_clear();
    if let Some(c) = &conserved {
        let ang = c
            .angular_drift()
            .map_or(String::new(), |a| format!(", angular momentum {a:.3e}"));
        eprintln!(
            "conserved quantities (relative drift over the rollout): total momentum {:.3e}{ang}",
            c.momentum_drift()
        );
    }
    writer.finish()?;
    if mesh_out.is_some() {
        let side = lgn::io::xdmf::write_sidecar(&a.out, a.force)?;
        eprintln!(
            "wrote the XDMF sidecar {} (open it in ParaView)",
            side.display()
        );
    }
    eprintln!(
        "wrote {frames} frames of {name} ({} coordinates) to {}: {} {} steps, {} rejected, {} evaluations",
        q0.len(),
        a.out.display(),
        stats.steps,
        method.name(),
        stats.rejected,
        stats.evals
    );
    if let Some(b) = balance {
        eprintln!(
            "work at t = {}: W_diss = {:.6e}, W_inj = {:.6e}; power balance max |E + W_diss − W_inj − E(0)| = {:.3e} ({:.3e} relative to max(|E(0)|, W))",
            a.t_end, b.w_diss, b.w_inj, b.max_abs, b.max_rel
        );
    }
    if let Some(p) = &a.plot {
        plot_trajectory(&a.out, p, &name, a.force)?;
    }
    Ok(())
}

/// Datasets `total_momentum` (T × dof) and `angular_momentum` (T × 1 or 3, particles in
/// 2-D/3-D) and attributes `momentum_drift`, `angular_momentum_drift` of a graph model's
/// rollout (docs/SCHEMA.md).
fn write_conserved(
    writer: &TrajectoryWriter,
    c: &lgn::density::symmetric::ConservedSeries,
) -> Result<()> {
    use lgn::density::symmetric::ConservedSeries;
    for (name, series) in [
        ("total_momentum", &c.momentum),
        ("angular_momentum", &c.angular),
    ] {
        if series.is_empty() {
            continue;
        }
        let (rows, cols, vals) = ConservedSeries::table(series);
        let a = ndarray::Array2::from_shape_vec((rows, cols), vals).expect("T × components");
        writer.write_extra(name, a.view())?;
    }
    writer.set_attr(
        "momentum_drift",
        &lgn::io::AttrValue::Float(c.momentum_drift()),
    )?;
    if let Some(a) = c.angular_drift() {
        writer.set_attr("angular_momentum_drift", &lgn::io::AttrValue::Float(a))?;
    }
    Ok(())
}

/// Fixed nodes must be at rest; round-off (≤ 1e-12 of the largest speed) is zeroed.
fn at_rest(v0: &mut [f64], fixed: &[usize], dof: usize) -> Result<()> {
    let vmax = v0.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for &j in fixed {
        if v0[j].abs() > 1e-12 * vmax {
            return Err(Error::input(format!(
                "coordinate {j} (node {}) is held fixed by the model but its initial velocity is {:.6e}; fixed nodes need qdot = 0",
                j / dof,
                v0[j]
            )));
        }
        v0[j] = 0.0;
    }
    Ok(())
}

/// Final work and the largest power-balance residual of a rollout.
struct Balance {
    w_diss: f64,
    w_inj: f64,
    max_abs: f64,
    max_rel: f64,
}

fn work_balance(works: &[lgn::integrate::Work], energies: &[f64]) -> Balance {
    let e0 = energies.first().copied().unwrap_or(0.0);
    let mut scale = e0.abs();
    let mut max_abs = 0.0f64;
    for (w, e) in works.iter().zip(energies) {
        scale = scale.max(w.dissipated.abs()).max(w.injected.abs());
        max_abs = max_abs.max((e + w.dissipated - w.injected - e0).abs());
    }
    let last = works.last().copied().unwrap_or_default();
    Balance {
        w_diss: last.dissipated,
        w_inj: last.injected,
        max_abs,
        max_rel: if scale > 0.0 {
            max_abs / scale
        } else {
            max_abs
        },
    }
}

/// The system of `make` driven by the input file `path` (B u(t) added to its forces, its own
/// damping kept). Checks the file against `n` coordinates and the span 0..`t_end`.
fn with_input(
    make: Factory,
    path: &Path,
    n: usize,
    t_end: f64,
    learned: Option<(Vec<f64>, usize)>,
) -> Result<Factory> {
    let d = lgn::io::inputs::InputData::read(path)?;
    let m = d.u.ncols();
    let map: Vec<f64> = match &d.map {
        // The model's learned input map (its width must match u; a /B would be ambiguous).
        _ if learned.is_some() => {
            let (b, w) = learned.expect("checked");
            if d.map.is_some() {
                return Err(Error::file_at(
                    path,
                    "/B",
                    "is given, but the model learned its own input map (group input_map); remove /B or use a model trained with --input-map given",
                ));
            }
            d.check(path, n, Some(w))?;
            b
        }
        Some(b) => {
            d.check(path, n, Some(b.ncols()))?;
            b.iter().copied().collect()
        }
        None if m == n => (0..n * n)
            .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
            .collect(),
        None => {
            return Err(Error::file_at(
                path,
                "/u",
                format!(
                    "has width {m} but the system has {n} coordinates; without an input map /B \
                     u needs one column per coordinate (B = identity), or add /B ({n} × {m})"
                ),
            ))
        }
    };
    if let Some(k) = (1..d.t.len()).find(|&k| d.t[k] <= d.t[k - 1]) {
        return Err(Error::file_at(
            path,
            "/t",
            format!(
                "the input times must increase, but t[{k}] = {} ≤ t[{}] = {}",
                d.t[k],
                k - 1,
                d.t[k - 1]
            ),
        ));
    }
    let slack = 1e-9 * t_end.max(1.0);
    let (t0, t1) = (d.t[0], d.t[d.t.len() - 1]);
    if t0 > slack || t1 < t_end - slack {
        return Err(Error::file_at(
            path,
            "/t",
            format!(
                "covers [{t0}, {t1}] but the simulation runs over [0, {t_end}] (--t-end); the input times must cover it"
            ),
        ));
    }
    let signal = d
        .signal("the input file")
        .map_err(|e| Error::file_at(path, "/t", e.to_string()))?;
    let input = lgn::density::dissipation::InputForce { map, signal };
    let probe = make()?;
    let mut forces = probe.forces.clone().unwrap_or_default();
    forces.input = Some(input.clone());
    probe
        .with_forces(forces)
        .map_err(|e| Error::file(path, e.to_string()))?;
    Ok(Box::new(move || {
        let mut dy = make()?;
        let mut forces = dy.forces.clone().unwrap_or_default();
        forces.input = Some(input.clone());
        dy.set_forces(forces)?;
        Ok(dy)
    }))
}

/// Where the energy plot of `--plot PNG` goes: `<stem>_energy.png` beside it.
fn energy_png(png: &Path) -> PathBuf {
    let stem = png
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    png.with_file_name(format!("{stem}_energy.png"))
}

/// Coordinates vs time (or a space-time image for long state vectors) and energy vs time.
fn plot_trajectory(h5: &Path, png: &Path, name: &str, force: bool) -> Result<()> {
    let tr = TrajectoryData::read(h5)?;
    let t = tr.t.to_vec();
    let d = tr.dim();
    let geometry = lgn::io::xdmf::Geometry::read(h5)?;
    if plot_with_geometry(&tr, geometry.as_ref(), png, name, force)? {
        // Drawn on the mesh / at the node positions.
    } else if d <= 4 {
        let series: Vec<Series> = (0..d)
            .map(|c| {
                Series::new(
                    format!("q[{c}]"),
                    t.clone(),
                    tr.q.slice(ndarray::s![0, .., c]).to_vec(),
                )
            })
            .collect();
        plot::line_plot(
            png,
            &format!("{name}: coordinates"),
            "t",
            "q",
            &series,
            (900, 500),
            force,
        )?;
    } else {
        let dx = tr.params.get("dx").copied().unwrap_or(1.0 / d as f64);
        let field = tr.q.slice(ndarray::s![0, .., ..]);
        plot::spacetime(
            png,
            &format!("{name}: φ(t, x)"),
            &t,
            dx,
            &[Panel {
                title: "φ".into(),
                field,
            }],
            force,
        )?;
    }
    let work = lgn::io::inputs::read_work(h5, tr.n_batch(), tr.n_frames())?;
    if let Some(e) = &tr.energy {
        let e: Vec<f64> = e.row(0).to_vec();
        let e0 = e[0];
        let epng = energy_png(png);
        let mut series = vec![Series::new(
            "E − E(0)",
            t.clone(),
            e.iter().map(|x| x - e0).collect(),
        )];
        let title = if let Some((wd, wi)) = &work {
            // Damped / driven: E alone changes; the balance E + W_diss − W_inj is conserved.
            series.push(Series::new(
                "E + W_diss − W_inj − E(0)",
                t.clone(),
                e.iter()
                    .zip(wd.row(0))
                    .zip(wi.row(0))
                    .map(|((x, d), i)| x + d - i - e0)
                    .collect(),
            ));
            format!("{name}: energy E(t) − E(0) and power balance, E(0) = {e0:.6}")
        } else {
            format!("{name}: energy error E(t) − E(0), E(0) = {e0:.6}")
        };
        plot::line_plot(&epng, &title, "t", "E − E(0)", &series, (900, 500), force)?;
        eprintln!("plotted {} and {}", png.display(), epng.display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// --system wave-mesh --mesh M.msh: the FEM truth on a user's mesh, the mesh stored with the
// trajectory (group `mesh`, XDMF sidecar) and drawn on its triangles (issue 10).

fn read_mesh(a: &SimulateArgs) -> Result<lgn::mesh::TriMesh> {
    let path = a
        .mesh
        .as_ref()
        .ok_or_else(|| Error::input("--system wave-mesh needs --mesh FILE.msh"))?;
    Ok(lgn::mesh::read_msh(path)?.0)
}

fn wave_mesh_factory(
    a: &SimulateArgs,
    n_state: usize,
) -> Result<(Factory, String, BTreeMap<String, f64>)> {
    let mesh = read_mesh(a)?;
    if mesh.n_nodes() != n_state {
        return Err(Error::input(format!(
            "the state has {n_state} values per q, the mesh {} has {} nodes",
            a.mesh
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            mesh.n_nodes()
        )));
    }
    let mut params = BTreeMap::new();
    params.insert("n_nodes".into(), mesh.n_nodes() as f64);
    params.insert("c".into(), 1.0);
    let solver = a.solver;
    Ok((
        Box::new(move || lgn::data::wave_mesh::fem_dynamics(&mesh, solver)),
        lgn::data::wave_mesh::SYSTEM.into(),
        params,
    ))
}

fn wave_mesh_state(a: &SimulateArgs) -> Result<(Vec<f64>, Vec<f64>)> {
    let mesh = read_mesh(a)?;
    if a.state == "random" {
        let cfg = lgn::mesh::fields::SmoothFieldConfig::for_mesh(&mesh);
        let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
        return Ok(lgn::mesh::fields::random_state(
            &mesh.positions,
            &mut rng,
            &cfg,
        ));
    }
    let (q, v) = read_state(&a.state, None)?;
    if q.len() != mesh.n_nodes() || v.len() != mesh.n_nodes() {
        return Err(Error::input(format!(
            "state {}: q has {} values and qdot {}, the mesh {} has {} nodes",
            a.state,
            q.len(),
            v.len(),
            a.mesh
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            mesh.n_nodes()
        )));
    }
    Ok((q, v))
}

/// With --mesh: the mesh to store in the trajectory file; refuses an existing sidecar (no
/// --force) before any work.
struct MeshOutputs {
    mesh_file: String,
    geometry: lgn::io::xdmf::Geometry,
}

impl MeshOutputs {
    fn write_into(&self, w: &TrajectoryWriter) -> Result<()> {
        w.set_attr("mesh", &lgn::io::AttrValue::Str(self.mesh_file.clone()))?;
        w.write_geometry(&self.geometry)
    }
}

/// The XDMF sidecar of --out must not exist (unless --force).
fn sidecar_free(a: &SimulateArgs) -> Result<()> {
    super::generate::refuse_existing_sidecar(&a.out, a.force)
}

fn mesh_outputs_check(a: &SimulateArgs) -> Result<Option<MeshOutputs>> {
    let Some(path) = &a.mesh else {
        return Ok(None);
    };
    if a.model.is_none() && a.system != Some(SimSystem::WaveMesh) {
        return Err(Error::input(
            "--mesh applies to --system wave-mesh (or a graph model: --model M.h5 --mesh M.msh)",
        ));
    }
    sidecar_free(a)?;
    let mesh = lgn::mesh::read_msh(path)?.0;
    Ok(Some(MeshOutputs {
        mesh_file: path.display().to_string(),
        geometry: lgn::io::xdmf::Geometry::from_mesh(&mesh),
    }))
}

/// Frames at `m` evenly spaced times (all frames if there are fewer).
fn evenly_spaced(frames: usize, m: usize) -> Vec<usize> {
    if frames <= m {
        return (0..frames).collect();
    }
    (0..m)
        .map(|j| ((j * (frames - 1)) as f64 / (m - 1) as f64).round() as usize)
        .collect()
}

/// Plots that use the trajectory file's geometry: the field on the triangles at 6 evenly spaced
/// times (meshes, dof = 1), or a space-time image over the node positions (1-D positions).
/// Returns false if the geometry gives no such plot.
fn plot_with_geometry(
    tr: &TrajectoryData,
    geometry: Option<&lgn::io::xdmf::Geometry>,
    png: &Path,
    name: &str,
    force: bool,
) -> Result<bool> {
    let Some(g) = geometry else {
        return Ok(false);
    };
    if g.n_nodes() != tr.dim() {
        return Ok(false);
    }
    if let Some(tris) = g.triangles() {
        let pos: Vec<[f64; 2]> = g
            .positions
            .rows()
            .into_iter()
            .map(|r| [r[0], r[1]])
            .collect();
        let frames: Vec<(f64, Vec<f64>)> = evenly_spaced(tr.n_frames(), 6)
            .into_iter()
            .map(|k| (tr.t[k], tr.q.slice(ndarray::s![0, k, ..]).to_vec()))
            .collect();
        plot::mesh_field_panels(
            png,
            &pos,
            tris,
            &frames,
            &format!("{name}: φ on the mesh"),
            force,
        )?;
        return Ok(true);
    }
    let one_d = g.positions.ncols() == 2 && g.positions.column(1).iter().all(|&y| y == 0.0);
    if one_d && tr.n_frames() >= 2 {
        let x: Vec<f64> = g.positions.column(0).to_vec();
        let field = tr.q.slice(ndarray::s![0, .., ..]);
        plot::spacetime_positions(
            png,
            &format!("{name}: q(t, x) at the node positions"),
            &tr.t.to_vec(),
            &x,
            &[Panel {
                title: "q".into(),
                field,
            }],
            force,
        )?;
        return Ok(true);
    }
    Ok(false)
}
