//! `lgn accel`: accelerations of a named system at one state.

use super::choice::choice;
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use lgn::{Error, Result};
use std::path::Path;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemName {
    /// Falling ball, state "q1,q2,v1,v2", gravity along q1.
    Ball,
    /// Double pendulum (m = l = 1), state "θ1,θ2,ω1,ω2".
    Dblpend,
    /// Relativistic particle, state "q,qdot" with |qdot| < 1.
    Relativistic,
    /// 1D wave on a periodic grid of --n points; --state FILE.h5 with datasets q, qdot.
    Wave1d,
    /// 1D wave with the standard 3-point stencil φ̈_i = (φ_{i+1} − 2φ_i + φ_{i−1})/Δx² as the
    /// analytic density (the data generator's ground truth); same state format as wave1d.
    Wave1dStandard,
    /// Any graph from an lgn graph file (--graph FILE.h5) with an MLP density: explicit sites
    /// if the file has them, node-centred sites on regular graphs, else node + edge terms.
    Graph,
    /// Wave equation (c = 1, free boundary) on the triangle mesh --mesh FILE.msh; analytic =
    /// P1 FEM (lumped mass, cotangent stiffness), mlp = learned node + edge density;
    /// --state FILE.h5 with one value per mesh node in q and qdot.
    WaveMesh,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DensityKind {
    /// The system's closed-form Lagrangian density.
    Analytic,
    /// A randomly initialised softplus MLP (paper initialisation) — see --hidden/--layers/--seed.
    Mlp,
}

/// Compute q̈ = M⁻¹(∂L/∂q − C q̇) at one state.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  lgn accel --system dblpend --state \"0.5,1.0,0.0,0.2\" --json\n  lgn accel --system relativistic --g 2 --state \"0.1,0.5\"\n  lgn accel --system wave1d --n 100 --state state.h5 --solver banded\n  lgn accel --system wave-mesh --mesh meshes/disk_coarse.msh --state state.h5 --json\n  lgn accel --model chain_model.h5 --state state.h5 --json\n  lgn accel --model mesh_model.h5 --mesh meshes/lshape.msh --state state.h5 --json   # zero-shot"
)]
pub struct AccelArgs {
    /// Which system (not needed with --model).
    #[arg(long, value_enum, required_unless_present = "model")]
    pub system: Option<SystemName>,
    /// A trained model file (`lgn train --out`): the system and density come from it.
    #[arg(long, conflicts_with_all = ["system"])]
    pub model: Option<std::path::PathBuf>,
    /// The state: comma-separated "q…,q̇…" values for small systems, or an HDF5 file with
    /// float64 datasets `q` and `qdot` at the root (wave1d).
    #[arg(long, required_unless_present = "data")]
    pub state: Option<String>,
    /// With --model: evaluate the model on every sample of a samples or trajectories file
    /// (with qddot) instead of one state; prints the relative error ‖a − q̈‖/‖q̈‖ over the file.
    #[arg(long, requires = "model", conflicts_with = "state")]
    pub data: Option<std::path::PathBuf>,
    /// Gravitational acceleration: ball and dblpend default 9.8, relativistic default 1 (the
    /// paper's units, as in `lgn simulate` and `lgn generate`).
    #[arg(long)]
    pub g: Option<f64>,
    /// Grid points of the periodic wave domain (length 1).
    #[arg(long)]
    pub n: Option<usize>,
    /// Grid spacing (default 1/n).
    #[arg(long)]
    pub dx: Option<f64>,
    /// Gmsh mesh (MSH 4.1 or 2.2 ASCII, triangles) for --system wave-mesh, or the mesh a
    /// graph model (--model) is evaluated on zero-shot.
    #[arg(long)]
    pub mesh: Option<std::path::PathBuf>,
    /// Density: the closed form or an MLP.
    #[arg(long, value_enum, default_value_t = DensityKind::Analytic)]
    pub density: DensityKind,
    /// MLP hidden width.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// MLP hidden layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// MLP initialisation seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Linear solver for M q̈ = b.
    #[arg(long, value_parser = choice::<SolverKind>(), default_value_t = SolverKind::Auto)]
    pub solver: SolverKind,
    /// Graph file (lgn graph schema) for --system graph, or the graph a graph model (--model)
    /// is evaluated on (default: the model's training graph).
    #[arg(long)]
    pub graph: Option<std::path::PathBuf>,
    /// Also write q, qdot and the accelerations qddot to this HDF5 file (samples schema).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object {"a": [...], ...} instead of text.
    #[arg(long)]
    pub json: bool,
}

fn graph_system(args: &AccelArgs, density: &DensityChoice) -> Result<lgn::dynamics::Dynamics> {
    use lgn::density::{Mlp, MlpDensity};
    use lgn::graph::Graph;
    use lgn::lagrangian::Lagrangian;
    use lgn::sites::Sites;
    use std::sync::Arc;
    let path = args.graph.as_ref().ok_or_else(|| {
        Error::input("--system graph needs --graph FILE.h5 (lgn graph schema, see docs/SCHEMA.md)")
    })?;
    let gd = lgn::io::GraphData::read(path)?;
    let edges: Vec<(usize, usize)> = gd.edges.iter().map(|e| (e[0], e[1])).collect();
    let graph = Graph::from_edges(gd.n_nodes, &edges, gd.dof)?;
    let (hidden, layers, seed) = match density {
        DensityChoice::Mlp {
            hidden,
            layers,
            seed,
        } => (*hidden, *layers, *seed),
        _ => {
            return Err(Error::input(
                "a general graph has no closed-form density: use --density mlp",
            ))
        }
    };
    let mlp = |arity: usize, seed: u64| -> Result<Arc<dyn lgn::density::Density>> {
        let mut sizes = vec![2 * arity * gd.dof];
        sizes.extend(std::iter::repeat_n(hidden, layers));
        sizes.push(1);
        Ok(Arc::new(MlpDensity::new(
            Mlp::paper_init(&sizes, seed),
            arity,
            gd.dof,
            0,
        )?))
    };
    let lag = if let Some(s) = &gd.sites {
        let sites = Sites::explicit(s.ncols(), s.iter().copied().collect(), gd.n_nodes)?;
        Lagrangian::new(gd.n_nodes, gd.dof, sites.clone(), mlp(sites.arity, seed)?)?
    } else if let Ok(sites) = Sites::node_centred(&graph) {
        Lagrangian::new(gd.n_nodes, gd.dof, sites.clone(), mlp(sites.arity, seed)?)?
    } else {
        Lagrangian::new(gd.n_nodes, gd.dof, Sites::nodes(&graph)?, mlp(1, seed)?)?
            .with_term(Sites::edges(&graph)?, mlp(2, seed + 1)?)?
    };
    lgn::dynamics::Dynamics::new(lag, args.solver, graph.kind)
}

fn parse_list(s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .enumerate()
        .map(|(i, t)| {
            t.trim().parse::<f64>().map_err(|_| {
                Error::input(format!(
                    "--state value {} ('{}') is not a number",
                    i + 1,
                    t.trim()
                ))
            })
        })
        .collect()
}

/// Read a state from "a,b,c,d" (split in half into q and q̇) or an HDF5 file.
pub(super) fn read_state(s: &str, expect: Option<usize>) -> Result<(Vec<f64>, Vec<f64>)> {
    let (q, v) = if Path::new(s).exists() || s.ends_with(".h5") || s.ends_with(".hdf5") {
        super::io_glue::read_state(Path::new(s))?
    } else {
        let vals = parse_list(s)?;
        if vals.len() % 2 != 0 {
            return Err(Error::input(format!(
                "--state has {} values; it needs q and q̇ of equal length",
                vals.len()
            )));
        }
        let h = vals.len() / 2;
        (vals[..h].to_vec(), vals[h..].to_vec())
    };
    if let Some(n) = expect {
        if q.len() != n || v.len() != n {
            return Err(Error::input(format!(
                "state length mismatch: q has {} values and qdot {}, this system has {n} coordinates",
                q.len(),
                v.len()
            )));
        }
    }
    Ok((q, v))
}

/// The graph a graph model runs on: `--graph`, `--mesh`, or the model's own.
pub(super) fn model_graph(
    graph: Option<&Path>,
    mesh: Option<&Path>,
) -> Result<Option<lgn::model::SystemGraph>> {
    Ok(match (graph, mesh) {
        (Some(g), _) => Some(lgn::model::SystemGraph::from_graph_file(g)?),
        (None, Some(m)) => Some(lgn::model::SystemGraph::from_mesh_file(m)?),
        (None, None) => None,
    })
}

/// Read the state for a system of `n` coordinates; a mismatch names the state and the graph.
pub(super) fn read_state_for(state: &str, n: usize, on: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let (q, v) = read_state(state, None)?;
    if q.len() != n || v.len() != n {
        let msg = format!(
            "the state has {} values in q and {} in qdot but {on} has {n} coordinates",
            q.len(),
            v.len()
        );
        return Err(if Path::new(state).exists() {
            Error::file(state, msg)
        } else {
            Error::input(msg)
        });
    }
    Ok((q, v))
}

/// `--data`: the model's relative acceleration error over a whole file.
fn evaluate(
    args: &AccelArgs,
    path: &Path,
    model: &lgn::model::AnyModel,
    graph: Option<&lgn::model::SystemGraph>,
    data: &Path,
) -> Result<()> {
    let raw = lgn::io::read_training_data(data)?;
    let (n, d) = raw.q.dim();
    let mut dy = model.dynamics(graph, Some(d), args.solver)?;
    if dy.n_coords() != d {
        return Err(Error::file(
            data,
            format!(
                "states have {d} coordinates but the model's system has {}",
                dy.n_coords()
            ),
        ));
    }
    let (mut num, mut den, mut per) = (0.0, 0.0, 0.0);
    let mut a = vec![0.0; d];
    for i in 0..n {
        let (q, v) = (raw.q.row(i).to_vec(), raw.qdot.row(i).to_vec());
        dy.accelerations_into(&q, &v, &mut a)
            .map_err(|e| Error::file(data, format!("sample {i}: {e}")))?;
        let (mut ni, mut di) = (0.0, 0.0);
        for (p, y) in a.iter().zip(raw.qddot.row(i)) {
            ni += (p - y).powi(2);
            di += y * y;
        }
        num += ni;
        den += di;
        per += if di > 0.0 { (ni / di).sqrt() } else { 0.0 };
    }
    let rel = (num / den.max(f64::MIN_POSITIVE)).sqrt();
    let out = serde_json::json!({
        "rel_error": rel,
        "mean_sample_rel_error": per / n as f64,
        "n_samples": n,
        "n_coords": d,
        "model": path.display().to_string(),
        "model_kind": model.kind(),
        "data": data.display().to_string(),
        "graph": graph.map(|g| g.name.clone()),
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{}: relative acceleration error {rel:.4e} over {n} samples of {}",
            path.display(),
            data.display()
        );
    }
    Ok(())
}

fn run_model(args: &AccelArgs, path: &Path) -> Result<()> {
    use lgn::model::AnyModel;
    let model = AnyModel::load(path)?;
    let graph = model_graph(args.graph.as_deref(), args.mesh.as_deref())?;
    if let Some(data) = &args.data {
        return evaluate(args, path, &model, graph.as_ref(), data);
    }
    let state = args.state.as_deref().expect("required unless --data");
    let values: Option<(f64, f64)>;
    let a = match &model {
        AnyModel::Graph(m) => {
            let own;
            let g = match &graph {
                Some(g) => g,
                None => {
                    own = m.own_graph()?;
                    &own
                }
            };
            let mut dy = m.dynamics(g, args.solver)?;
            let on = format!(
                "the {} {} ({} nodes × {})",
                if g.mesh.is_some() { "mesh" } else { "graph" },
                g.name,
                g.n_nodes(),
                g.dof()
            );
            let (q, v) = read_state_for(state, dy.n_coords(), &on)?;
            let a = dy.accelerations(&q, &v)?;
            values = Some((dy.lagrangian_value(&q, &v)?, dy.energy(&q, &v)?));
            a
        }
        AnyModel::Net(m) => {
            if graph.is_some() {
                return Err(Error::file(
                    path,
                    format!(
                        "a '{}' model is not a graph model: --graph/--mesh do not apply",
                        m.kind.as_str()
                    ),
                ));
            }
            let (q, v) = read_state(state, None)?;
            values = None;
            m.predict(&q, &v, args.solver).map_err(|e| match e {
                // A state of the wrong length is the state's fault, the rest the model file's.
                lgn::Error::Input(m) if m.contains("state") || m.contains("q ") => {
                    lgn::Error::Input(m)
                }
                e => e.in_file(path),
            })?
        }
    };
    if args.json {
        let out = serde_json::json!({
            "a": a,
            "system": model.system(),
            "model": path.display().to_string(),
            "model_kind": model.kind(),
            "graph": graph.as_ref().map(|g| g.name.clone()),
            "n_coords": a.len(),
            "lagrangian": values.map(|v| v.0),
            "energy": values.map(|v| v.1),
        });
        println!("{out}");
    } else {
        println!(
            "model: {} ({}, system '{}'), {} coordinates",
            path.display(),
            model.kind(),
            model.system(),
            a.len()
        );
        for (i, x) in a.iter().take(20).enumerate() {
            println!("a[{i}] = {x:.12e}");
        }
        if a.len() > 20 {
            println!("… {} more (use --json for all)", a.len() - 20);
        }
    }
    Ok(())
}

pub fn run(args: AccelArgs) -> Result<()> {
    if let Some(path) = &args.model {
        return run_model(&args, path);
    }
    let Some(system) = args.system else {
        return Err(Error::input("--system or --model is required"));
    };
    let Some(state) = args.state.clone() else {
        return Err(Error::input("--state is required with --system"));
    };
    let density = match args.density {
        DensityKind::Analytic => DensityChoice::Analytic,
        DensityKind::Mlp => DensityChoice::Mlp {
            hidden: args.hidden,
            layers: args.layers,
            seed: args.seed,
        },
    };
    let g = args.g.unwrap_or(if system == SystemName::Relativistic {
        1.0
    } else {
        9.8
    });
    if !g.is_finite() {
        return Err(Error::input("--g must be finite"));
    }
    if args.density == DensityKind::Mlp {
        lgn::limits::check_mlp("--hidden/--layers", 8, args.hidden, args.layers)?;
    }
    let (mut dy, q, v) = match system {
        SystemName::Ball => {
            let (q, v) = read_state(&state, Some(2))?;
            (systems::ball(g, &density, args.solver)?, q, v)
        }
        SystemName::Dblpend => {
            let (q, v) = read_state(&state, Some(2))?;
            (systems::dblpend(g, &density, args.solver)?, q, v)
        }
        SystemName::Relativistic => {
            let (q, v) = read_state(&state, Some(1))?;
            if let Some(x) = v.iter().find(|x| x.abs() >= 1.0) {
                return Err(Error::input(format!(
                    "the relativistic particle needs |qdot| < 1, got qdot = {x}"
                )));
            }
            (systems::relativistic(g, &density, args.solver)?, q, v)
        }
        SystemName::Wave1d => {
            let (q, v) = read_state(&state, args.n)?;
            let n = args.n.unwrap_or(q.len());
            let dx = args.dx.unwrap_or(1.0 / n as f64);
            (systems::wave1d(n, dx, &density, args.solver)?, q, v)
        }
        SystemName::Wave1dStandard => {
            let (q, v) = read_state(&state, args.n)?;
            let n = args.n.unwrap_or(q.len());
            let dx = args.dx.unwrap_or(1.0 / n as f64);
            (
                systems::wave1d_standard(n, dx, &density, args.solver)?,
                q,
                v,
            )
        }
        SystemName::Graph => {
            let dy = graph_system(&args, &density).map_err(|e| match &args.graph {
                Some(p) => e.in_file(p),
                None => e,
            })?;
            let (q, v) = read_state(&state, Some(dy.n_coords()))?;
            (dy, q, v)
        }
        SystemName::WaveMesh => {
            let path = args
                .mesh
                .as_ref()
                .ok_or_else(|| Error::input("--system wave-mesh needs --mesh FILE.msh"))?;
            let (mesh, notes) = lgn::mesh::read_msh(path)?;
            let (q, v) = read_state(&state, Some(mesh.n_nodes())).map_err(|e| {
                if notes.is_empty() {
                    e
                } else {
                    // Say why the mesh has fewer nodes than the file lists.
                    e.context(&format!("{} ({})", path.display(), notes.join("; ")))
                }
            })?;
            let md = match args.density {
                DensityKind::Analytic => systems::MeshDensity::Fem,
                DensityKind::Mlp => systems::MeshDensity::Mlp {
                    hidden: args.hidden,
                    layers: args.layers,
                    seed: args.seed,
                },
            };
            (systems::wave_mesh(&mesh, &md, args.solver)?.dynamics, q, v)
        }
    };
    let a = dy.accelerations(&q, &v)?;
    if let Some(out) = &args.out {
        let row =
            |x: &[f64]| ndarray::Array2::from_shape_vec((1, x.len()), x.to_vec()).expect("shape");
        let samples = lgn::io::SamplesData {
            system: clap::ValueEnum::to_possible_value(&system).map(|v| v.get_name().to_string()),
            params: Default::default(),
            q: row(&q),
            qdot: row(&v),
            qddot: row(&a),
            weights: None,
        };
        samples.write(out, args.force)?;
    }
    if args.json {
        let out = serde_json::json!({
            "a": a,
            "system": clap::ValueEnum::to_possible_value(&system)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default(),
            "solver": dy.solver.kind().to_string(),
            "n_coords": a.len(),
        });
        println!("{out}");
    } else {
        println!(
            "system: {:?}, solver: {}, {} coordinates",
            system,
            dy.solver.kind(),
            a.len()
        );
        let show = a.len().min(20);
        for (i, x) in a.iter().take(show).enumerate() {
            println!("a[{i}] = {x:.12e}");
        }
        if a.len() > show {
            println!("… {} more (use --json for all)", a.len() - show);
        }
    }
    Ok(())
}
