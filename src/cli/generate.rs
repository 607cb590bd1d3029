//! `lgn generate`: training samples and ground-truth trajectories for the paper's systems.

use lgn::data::{self, RelativisticG, WaveConfig};
use lgn::integrate::{linspace_times, Dp5Options, Method};
use lgn::{Error, Result};
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenSystem {
    /// Double pendulum, m = l = 1: θ ∈ [0, 2π), ω ∈ [−ω_max, ω_max] (reference code: 10).
    Dblpend,
    /// Relativistic particle L = (1 − q̇²)^(−1/2) − 1 + g q: q, q̇ ∈ (−1, 1); also writes p.
    Relativistic,
    /// 1D wave (c = 1) on a periodic grid of --grid points, domain length 1; truth from the
    /// standard stencil φ̈_i = (φ_{i+1} − 2φ_i + φ_{i−1})/Δx².
    Wave1d,
    /// Wave equation (c = 1, free boundary) on a user's triangle mesh --mesh FILE.msh, P1 FEM
    /// truth q̈ = −M⁻¹Kφ; states are random smooth fields (--waves plane waves, |k| ≤ --k-max).
    WaveMesh,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenKind {
    /// Independent states with exact accelerations (datasets q, qdot, qddot).
    Samples,
    /// Trajectories integrated with DP5 (datasets t, q, qdot, qddot, energy).
    Trajectories,
}

/// Generate a samples or trajectories HDF5 file for one of the paper's systems.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  lgn generate dblpend --out dblpend_train.h5 --n 100000 --seed 0
  lgn generate dblpend --kind trajectories --batch 40 --frames 1001 --dt 0.01 --out dblpend_test.h5
  lgn generate relativistic --out rel.h5 --n 10000 --g-range 0,1
  lgn generate wave1d --out wave_train.h5 --n 5000 --grid 100
  lgn generate wave1d --kind trajectories --batch 4 --frames 201 --dt 0.005 --out wave_test.h5
  lgn generate wave-mesh --mesh meshes/disk_coarse.msh --kind samples --n 200 --out disk_train.h5
  lgn generate wave-mesh --mesh meshes/disk_coarse.msh --kind trajectories --batch 2 --frames 101 \\
      --dt 0.01 --out disk_traj.h5     # also writes disk_traj.xmf (open it in ParaView)")]
pub struct GenerateArgs {
    /// Which system.
    #[arg(value_enum)]
    pub system: GenSystem,
    /// Output HDF5 file.
    #[arg(long)]
    pub out: PathBuf,
    /// Samples or trajectories.
    #[arg(long, value_enum, default_value_t = GenKind::Samples)]
    pub kind: GenKind,
    /// Number of samples (--kind samples).
    #[arg(long, default_value_t = 10000)]
    pub n: usize,
    /// Number of trajectories (--kind trajectories).
    #[arg(long, default_value_t = 40)]
    pub batch: usize,
    /// Frames per trajectory, at t = 0, dt, …, (frames − 1)·dt.
    #[arg(long, default_value_t = 101)]
    pub frames: usize,
    /// Time between frames.
    #[arg(long, default_value_t = 0.05)]
    pub dt: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Gravity: dblpend default 9.8, relativistic default 1.
    #[arg(long)]
    pub g: Option<f64>,
    /// Relativistic samples: draw g uniformly in [LO, HI) per sample ("LO,HI"); stored as
    /// dataset `g`.
    #[arg(long, value_name = "LO,HI")]
    pub g_range: Option<String>,
    /// Double pendulum: largest initial |ω|.
    #[arg(long, default_value_t = 10.0)]
    pub omega_max: f64,
    /// Wave: grid points (Δx = 1/grid).
    #[arg(long, default_value_t = 100)]
    pub grid: usize,
    /// Wave: random Fourier modes k = 1..=modes in the initial state.
    #[arg(long, default_value_t = 4)]
    pub modes: usize,
    /// Wave: amplitude scale of the initial state.
    #[arg(long, default_value_t = 1.0)]
    pub amplitude: f64,
    /// Wave samples: frames taken per trajectory, at random times in [0, t-span].
    #[arg(long, default_value_t = 10)]
    pub frames_per_traj: usize,
    /// Wave samples: time span the frames are drawn from.
    #[arg(long, default_value_t = 1.0)]
    pub t_span: f64,
    /// wave-mesh: the Gmsh mesh (MSH 4.1 or 2.2 ASCII, triangles).
    #[arg(long)]
    pub mesh: Option<PathBuf>,
    /// wave-mesh: random plane waves per field.
    #[arg(long, default_value_t = 4)]
    pub waves: usize,
    /// wave-mesh: largest wavenumber |k| of the plane waves (default 2.5π / L, L the larger
    /// side of the mesh's bounding box).
    #[arg(long)]
    pub k_max: Option<f64>,
    /// DP5 relative tolerance.
    #[arg(long, default_value_t = 1e-10)]
    pub rtol: f64,
    /// DP5 absolute tolerance.
    #[arg(long, default_value_t = 1e-10)]
    pub atol: f64,
    /// --kind trajectories: write positions only (datasets t and q), what an experiment
    /// records; train on them with `lgn train` (weak-form objective by default).
    #[arg(long)]
    pub positions_only: bool,
    /// --positions-only: add Gaussian measurement noise of this standard deviation (in the
    /// coordinates' units, e.g. rad) to every position; recorded as attribute `noise`.
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
    /// dblpend: linear joint damping c ≥ 0, D = ½ c (θ̇₁² + θ̇₂²) (docs/DESIGN.md §13.5);
    /// wave-mesh: φ_tt + c φ_t = Δφ, D = ½ c Σ m_i φ̇_i² (§13.6). The
    /// data's `damping` attribute records it and trajectories get `w_dissipated` /
    /// `w_injected` (E + W_dissipated − W_injected is constant). Default: undamped.
    #[arg(long)]
    pub damping: Option<f64>,
    /// wave-mesh: drive the wave, φ_tt + c φ_t = Δφ + Σ_j u_j(t) g_j(x), with one or more
    /// sources separated by ';', each 'amp=A,freq=F[,phase=P][,x=X,y=Y[,radius=R]]':
    /// u_j = A sin(2π F t + P), g_j a Gaussian of width R (default a tenth of the mesh size)
    /// about (X, Y), or 1 on the whole mesh when X, Y are left out. The file gets `u` (samples:
    /// u at a random time in [0, --t-span) of each sample; trajectories: u at the frame times)
    /// and the input map `B` (n × sources, B_ij = m_i g_j(x_i)) (docs/DESIGN.md §13.6).
    /// Example: --forcing 'amp=5,freq=0.5,x=0.2,y=0.3,radius=0.1;amp=1,freq=1.5'
    #[arg(long, value_name = "SPEC")]
    pub forcing: Option<String>,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
}

/// Write generated trajectories: complete, or positions only with noise (issue 12).
fn write_trajectories(t: lgn::io::TrajectoryData, a: &GenerateArgs) -> Result<()> {
    if !a.positions_only {
        return t.write(&a.out, a.force);
    }
    let mut p = lgn::io::PositionsData {
        system: t.system,
        params: t.params,
        t: t.t,
        q: t.q,
    };
    lgn::data::derivatives::add_position_noise(&mut p.q, a.noise, a.seed.wrapping_add(0x5eed))
        .map_err(|e| Error::input(format!("--noise: {e}")))?;
    p.params.insert("noise".into(), a.noise);
    p.write(&a.out, a.force)
}

fn parse_range(s: &str) -> Result<(f64, f64)> {
    let parts: Vec<&str> = s.split(',').collect();
    let bad = || {
        Error::input(format!(
            "--g-range '{s}' must be two numbers 'LO,HI' with LO < HI"
        ))
    };
    if parts.len() != 2 {
        return Err(bad());
    }
    let lo: f64 = parts[0].trim().parse().map_err(|_| bad())?;
    let hi: f64 = parts[1].trim().parse().map_err(|_| bad())?;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(bad());
    }
    Ok((lo, hi))
}

pub fn run(a: GenerateArgs) -> Result<()> {
    lgn::io::check_writable(&a.out, a.force)?;
    let method = Method::Dp5(Dp5Options::tol(a.rtol, a.atol));
    if !(a.dt.is_finite() && a.dt > 0.0) {
        return Err(Error::input(format!("--dt must be positive, got {}", a.dt)));
    }
    if a.frames < 1 {
        return Err(Error::input("--frames must be at least 1"));
    }
    lgn::limits::check_alloc("--frames", a.frames as u128, 8)?;
    if (a.positions_only || a.noise != 0.0)
        && (a.kind != GenKind::Trajectories || a.system == GenSystem::WaveMesh)
    {
        return Err(Error::input(
            "--positions-only and --noise apply to --kind trajectories of dblpend, relativistic and wave1d",
        ));
    }
    if a.noise != 0.0 && !a.positions_only {
        return Err(Error::input("--noise needs --positions-only"));
    }
    if !(a.noise.is_finite() && a.noise >= 0.0) {
        return Err(Error::input(format!(
            "--noise must be a finite number ≥ 0, got {}",
            a.noise
        )));
    }
    if a.system == GenSystem::WaveMesh {
        return run_wave_mesh(&a, &method);
    }
    if a.mesh.is_some() {
        return Err(Error::input("--mesh applies to wave-mesh only"));
    }
    let times = linspace_times(a.frames, a.dt);
    let wave = WaveConfig {
        n: a.grid,
        modes: a.modes,
        amplitude: a.amplitude,
    };
    if a.g_range.is_some() && !(a.system == GenSystem::Relativistic && a.kind == GenKind::Samples) {
        return Err(Error::input(
            "--g-range applies to relativistic samples only",
        ));
    }
    if a.damping.is_some() && a.system != GenSystem::Dblpend {
        return Err(Error::input(
            "--damping applies to dblpend and wave-mesh only",
        ));
    }
    if a.forcing.is_some() {
        return Err(Error::input("--forcing applies to wave-mesh only"));
    }
    let what = match (a.system, a.kind) {
        (GenSystem::Dblpend, GenKind::Samples) if a.damping.is_some() => {
            let c = a.damping.unwrap_or(0.0);
            data::damped::dblpend_damped_samples(a.n, a.g.unwrap_or(9.8), a.omega_max, c, a.seed)?
                .write(&a.out, a.force)?;
            format!("{} damped (c = {c}) double pendulum samples", a.n)
        }
        (GenSystem::Dblpend, GenKind::Trajectories) if a.damping.is_some() => {
            let c = a.damping.unwrap_or(0.0);
            data::damped::dblpend_damped_trajectories(
                a.batch,
                &times,
                a.g.unwrap_or(9.8),
                a.omega_max,
                c,
                a.seed,
                &method,
            )?
            .write(&a.out, a.force)?;
            format!(
                "{} damped (c = {c}) double pendulum trajectories × {} frames (with w_dissipated)",
                a.batch, a.frames
            )
        }
        (GenSystem::Dblpend, GenKind::Samples) => {
            data::dblpend_samples(a.n, a.g.unwrap_or(9.8), a.omega_max, a.seed)?
                .write(&a.out, a.force)?;
            format!("{} double pendulum samples", a.n)
        }
        (GenSystem::Dblpend, GenKind::Trajectories) => {
            data::dblpend_trajectories(
                a.batch,
                &times,
                a.g.unwrap_or(9.8),
                a.omega_max,
                a.seed,
                &method,
            )
            .and_then(|t| write_trajectories(t, &a))?;
            format!(
                "{} double pendulum trajectories × {} frames",
                a.batch, a.frames
            )
        }
        (GenSystem::Relativistic, GenKind::Samples) => {
            let g = match &a.g_range {
                Some(r) => {
                    let (lo, hi) = parse_range(r)?;
                    RelativisticG::Uniform(lo, hi)
                }
                None => RelativisticG::Fixed(a.g.unwrap_or(1.0)),
            };
            data::relativistic_samples(a.n, g, a.seed)?.write(&a.out, a.force)?;
            format!("{} relativistic samples (with p)", a.n)
        }
        (GenSystem::Relativistic, GenKind::Trajectories) => {
            data::relativistic_trajectories(a.batch, &times, a.g.unwrap_or(1.0), a.seed, &method)
                .and_then(|t| write_trajectories(t, &a))?;
            format!(
                "{} relativistic trajectories × {} frames",
                a.batch, a.frames
            )
        }
        (GenSystem::Wave1d, GenKind::Samples) => {
            data::wave1d_samples(a.n, &wave, a.frames_per_traj, a.t_span, a.seed, &method)?
                .write(&a.out, a.force)?;
            format!("{} wave1d samples on {} points", a.n, a.grid)
        }
        (GenSystem::WaveMesh, _) => unreachable!("handled by run_wave_mesh"),
        (GenSystem::Wave1d, GenKind::Trajectories) => {
            data::wave1d_trajectories(a.batch, &wave, &times, a.seed, &method)
                .and_then(|t| write_trajectories(t, &a))?;
            format!(
                "{} wave1d trajectories × {} frames on {} points",
                a.batch, a.frames, a.grid
            )
        }
    };
    eprintln!("wrote {what} to {}", a.out.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// wave-mesh: finite-element truth on a user's mesh (issue 10).

fn run_wave_mesh(a: &GenerateArgs, method: &Method) -> Result<()> {
    use lgn::data::wave_mesh;
    use lgn::io::xdmf;
    let mesh_path = a
        .mesh
        .as_ref()
        .ok_or_else(|| Error::input("wave-mesh needs --mesh FILE.msh (a Gmsh triangle mesh)"))?;
    if a.g.is_some() || a.g_range.is_some() {
        return Err(Error::input("--g/--g-range do not apply to wave-mesh"));
    }
    let (mesh, notes) = lgn::mesh::read_msh(mesh_path)?;
    for note in notes {
        eprintln!("note: {}: {note}", mesh_path.display());
    }
    let mut fields = lgn::mesh::fields::SmoothFieldConfig::for_mesh(&mesh);
    fields.waves = a.waves;
    if let Some(k) = a.k_max {
        fields.k_max = k;
    }
    fields.check().map_err(|_| {
        Error::input(format!(
            "--waves must be ≥ 1 and --k-max positive and finite, got {} and {}",
            a.waves, fields.k_max
        ))
    })?;
    let mesh_attr = mesh_path.display().to_string();
    if a.damping.is_some() || a.forcing.is_some() {
        return super::generate_driven::run(a, &mesh, fields, method, &mesh_attr);
    }
    let nn = mesh.n_nodes();
    match a.kind {
        GenKind::Samples => {
            // Refuse a bad output before any work.
            let out = lgn::io::AtomicOutput::new(&a.out, a.force)?;
            let samples = wave_mesh::wave_mesh_samples(&mesh, a.n, &fields, a.seed)?;
            wave_mesh::write_samples_with_attrs(&samples, &[("mesh", &mesh_attr)], out)?;
            eprintln!(
                "wrote {} wave-mesh samples on {} ({nn} nodes, k_max = {:.4}) to {}",
                a.n,
                mesh_path.display(),
                fields.k_max,
                a.out.display()
            );
        }
        GenKind::Trajectories => {
            let times = linspace_times(a.frames, a.dt);
            refuse_existing_sidecar(&a.out, a.force)?;
            let opts = lgn::io::TrajectoryWriterOptions {
                system: Some(wave_mesh::SYSTEM.into()),
                params: wave_mesh::params(&mesh, &fields, a.seed),
                with_qddot: true,
                with_energy: true,
                ..Default::default()
            };
            let mut w = lgn::io::TrajectoryWriter::create(&a.out, a.batch, nn, &opts, a.force)?;
            w.set_attr("mesh", &lgn::io::AttrValue::Str(mesh_attr))?;
            w.write_geometry(&xdmf::Geometry::from_mesh(&mesh))?;
            let spec = wave_mesh::TrajectorySpec {
                batch: a.batch,
                times: &times,
                fields,
                seed: a.seed,
                method: *method,
            };
            // A progress bar on a terminal (indicatif draws nothing otherwise).
            let bar = indicatif::ProgressBar::new(a.frames as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} frames (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let stats = wave_mesh::wave_mesh_trajectories(&mesh, &spec, &mut w, |k| {
                bar.set_position(k as u64)
            })?;
            bar.finish_and_clear();
            w.finish()?;
            let side = xdmf::write_sidecar(&a.out, a.force)?;
            eprintln!(
                "wrote {} wave-mesh trajectories × {} frames on {} ({nn} nodes; {} DP5 steps) to {} and {}",
                a.batch,
                a.frames,
                mesh_path.display(),
                stats.steps,
                a.out.display(),
                side.display()
            );
        }
    }
    Ok(())
}

/// Refuse an existing XDMF sidecar of `out` without `force` (before any work).
pub(super) fn refuse_existing_sidecar(out: &std::path::Path, force: bool) -> Result<()> {
    let xmf = lgn::io::xdmf::sidecar_path(out);
    if xmf.exists() && !force {
        return Err(Error::file(
            &xmf,
            "output file already exists; pass --force to overwrite it",
        ));
    }
    Ok(())
}
