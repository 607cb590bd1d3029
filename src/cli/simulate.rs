//! `lgn simulate`: integrate one trajectory of a system and stream it to HDF5.

use super::accel::read_state;
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
  lgn simulate --system relativistic --g 1 --state \"0,0.5\" --t-end 10 --dt 0.05 --integrator midpoint --out rel.h5")]
pub struct SimulateArgs {
    /// Which system (with --model: the state layout; default from the model file).
    #[arg(long, value_enum, required_unless_present = "model")]
    pub system: Option<SimSystem>,
    /// Integrate a trained lnn/lgn model file (from `lgn train` or `lgn experiment`) instead
    /// of the analytic system. The energy written is the model's own energy.
    #[arg(long)]
    pub model: Option<PathBuf>,
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
    #[arg(long, value_enum, default_value_t = SolverKind::Auto)]
    pub solver: SolverKind,
    /// Output HDF5 trajectory file.
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw the trajectory (coordinates vs time, or a space-time image for waves) to this
    /// PNG, and the energy to <stem>_energy.png.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Overwrite existing outputs.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
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
    // Every output is checked before any work: a failed run commits nothing.
    if let Some(p) = &a.plot {
        lgn::io::check_writable(p, a.force)?;
        lgn::io::check_writable(energy_png(p), a.force)?;
    }
    for (flag, x) in [("--g", a.g), ("--dx", a.dx), ("--step", a.step)] {
        if let Some(x) = x.filter(|x| !x.is_finite()) {
            return Err(Error::input(format!("{flag} must be finite, got {x}")));
        }
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
    let (q0, v0) = initial_state(&a)?;
    let (make, name, mut params) = factory(&a, q0.len())?;
    // Output times are generated as they are written (no array of all of them).
    let frames = lgn::limits::frame_count(a.t_end, a.dt)?;
    lgn::limits::check_disk(&a.out, frames, 8 * (3 * q0.len() as u128 + 2))?;
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
    let mut writer = TrajectoryWriter::create(&a.out, 1, q0.len(), &opts, a.force)?;
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
    let stats = data::simulate(&make, &method, &q0, &v0, &times, &mut writer, |k| {
        bar.set_position(k as u64)
    })?;
    bar.finish_and_clear();
    writer.finish()?;
    eprintln!(
        "wrote {frames} frames of {name} ({} coordinates) to {}: {} {} steps, {} rejected, {} evaluations",
        q0.len(),
        a.out.display(),
        stats.steps,
        method.name(),
        stats.rejected,
        stats.evals
    );
    if let Some(p) = &a.plot {
        plot_trajectory(&a.out, p, &name, a.force)?;
    }
    Ok(())
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
    if d <= 4 {
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
    if let Some(e) = &tr.energy {
        let e: Vec<f64> = e.row(0).to_vec();
        let e0 = e[0];
        let epng = energy_png(png);
        plot::line_plot(
            &epng,
            &format!("{name}: energy error E(t) − E(0), E(0) = {e0:.6}"),
            "t",
            "E − E(0)",
            &[Series::new(
                "energy",
                t.clone(),
                e.iter().map(|x| x - e0).collect(),
            )],
            (900, 500),
            force,
        )?;
        eprintln!("plotted {} and {}", png.display(), epng.display());
    }
    Ok(())
}
