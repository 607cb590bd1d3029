//! `lgn experiment mesh`: the wave equation on 2D triangle meshes (issue 6).
//!
//! 1. Data: random smooth fields (φ, φ̇) (sums of random low-frequency plane waves in x, y,
//!    RMS 1, plus a random constant level) on the training mesh (`square_coarse`), targets the
//!    FEM accelerations −M⁻¹Kφ (lumped M, cotangent K, free boundary).
//! 2. Training: the learned mesh density of [`crate::systems::wave_mesh_learned`] (node MLP +
//!    symmetrised edge MLP), exact adjoint gradients ([`crate::train::gradient`]), Adam, each
//!    sample weighted by 1/mean(a²) (a relative loss, so large-wavenumber fields do not
//!    dominate). The first layers are constrained (projected after every step) so that the
//!    learned Lagrangian is exactly invariant under φ → φ + c, like the true one: the node MLP
//!    ignores φ_i and the edge MLP sees φ_a, φ_b only through φ_a − φ_b (first-layer columns
//!    w_φa = −w_φb). Derivatives stay those of a plain MLP.
//! 3. Zero-shot: the trained networks (feature normalisation fixed from the training mesh) are
//!    evaluated on other meshes of different shape and resolution (`disk_fine`, `lshape`):
//!    relative acceleration error on held-out fields, and a rollout with the variational
//!    midpoint integrator on `disk_fine` (true FEM energy along the learned rollout and the
//!    learned model's own energy).

use super::{ExperimentOptions, ExperimentReport};
use crate::density::Mlp;
use crate::integrate::{Method, MidpointOptions};
use crate::mesh::TriMesh;
use crate::plot::{line_plot, Series};
use crate::solve::SolverKind;
use crate::systems::{mesh_mlps, wave_mesh, MeshDensity};
use crate::train::gradient::{lnn_graph_loss_grad, Samples};
use crate::train::hyperdual::{flatten, unflatten};
use crate::train::optim::clip_global_norm;
use crate::train::{Adam, LossKind, Schedule};
use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f64::consts::PI;
use std::path::PathBuf;

/// Sizes of one run.
#[derive(Clone, Debug)]
struct Config {
    hidden: usize,
    layers: usize,
    n_train: usize,
    n_test: usize,
    epochs: usize,
    batch: usize,
    lr: f64,
    /// Plane waves per field and the largest wavenumber (rad per unit length).
    waves: usize,
    k_max: f64,
    /// Rollout on the zero-shot mesh: end time and step.
    t_end: f64,
    dt: f64,
}

impl Config {
    fn new(quick: bool) -> Config {
        if quick {
            Config {
                hidden: 16,
                layers: 2,
                n_train: 64,
                n_test: 16,
                epochs: 300,
                batch: 8,
                lr: 3e-3,
                waves: 4,
                k_max: 2.5 * PI,
                t_end: 0.3,
                dt: 0.005,
            }
        } else {
            Config {
                hidden: 32,
                layers: 2,
                n_train: 256,
                n_test: 32,
                epochs: 300,
                batch: 8,
                lr: 3e-3,
                waves: 4,
                k_max: 2.5 * PI,
                t_end: 2.0,
                dt: 0.005,
            }
        }
    }
}

/// A shipped mesh (`meshes/NAME.msh`), or the generator that wrote it if the file is not
/// next to the crate (the files equal their generators byte for byte, tests/mesh_import.rs).
fn load_mesh(name: &str) -> Result<TriMesh> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("meshes")
        .join(format!("{name}.msh"));
    if path.exists() {
        return Ok(crate::mesh::read_msh(&path)?.0);
    }
    use crate::mesh::generate;
    match name {
        "square_coarse" => generate::square(19),
        "disk_fine" => generate::disk(1.0, 35),
        "lshape" => generate::l_shape(12),
        _ => Err(Error::input(format!("unknown mesh '{name}'"))),
    }
}

/// A random smooth field: Σ_j c_j cos(k_j·x + p_j) with |k_j| ≤ k_max, scaled to RMS 1 over
/// the nodes, plus `level` (a constant).
fn smooth_field(mesh: &TriMesh, rng: &mut StdRng, cfg: &Config, level: f64) -> Vec<f64> {
    let mut f = vec![0.0; mesh.n_nodes()];
    for _ in 0..cfg.waves {
        let k = cfg.k_max * rng.random::<f64>().sqrt();
        let th = 2.0 * PI * rng.random::<f64>();
        let (kx, ky) = (k * th.cos(), k * th.sin());
        let p = 2.0 * PI * rng.random::<f64>();
        let c = rng.random::<f64>() * 2.0 - 1.0;
        for (fi, x) in f.iter_mut().zip(&mesh.positions) {
            *fi += c * (kx * x[0] + ky * x[1] + p).cos();
        }
    }
    let mean = f.iter().sum::<f64>() / f.len() as f64;
    let rms = (f.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f.len() as f64).sqrt();
    let s = if rms > 0.0 { 1.0 / rms } else { 1.0 };
    f.iter().map(|x| (x - mean) * s + level).collect()
}

/// `n` samples (φ, φ̇) → FEM accelerations on `mesh`, weighted by 1/mean(a²).
fn make_samples(mesh: &TriMesh, n: usize, cfg: &Config, seed: u64) -> Result<Samples> {
    let mut rng = StdRng::seed_from_u64(seed);
    let fem = crate::mesh::fem::Fem::new(mesh);
    let nn = mesh.n_nodes();
    let (mut input, mut target, mut w) = (vec![], vec![], vec![]);
    let mut a = vec![0.0; nn];
    for _ in 0..n {
        let level = 2.0 * rng.random::<f64>() - 1.0;
        let phi = smooth_field(mesh, &mut rng, cfg, level);
        let phidot = smooth_field(mesh, &mut rng, cfg, 0.0);
        fem.accel(&phi, &mut a)?;
        let ms = a.iter().map(|x| x * x).sum::<f64>() / nn as f64;
        input.extend_from_slice(&phi);
        input.extend_from_slice(&phidot);
        target.extend_from_slice(&a);
        w.push(1.0 / ms.max(1e-300));
    }
    Samples::new(2 * nn, nn, input, target, Some(w))
}

/// Constraints on the first layers, applied to parameters and to gradients (Adam then keeps
/// them exactly):
/// * shift invariance φ → φ + c: node MLP column 0 (φ_i) zero, edge MLP columns 0, 1
///   (φ_a, φ_b) antisymmetric, so the edge sees φ_a − φ_b only;
/// * kinetic node term, potential edge term: edge columns 2, 3 (φ̇_a, φ̇_b) zero, so M is
///   diagonal and its entries come from the node term alone;
/// * feature selection: the node term sees the lumped mass m_i (not the boundary flag), the
///   edge term the cotangent weight w_ab (not length, adjacent area, boundary flag). These are
///   the features the true law needs; the others are resolution- or shape-specific (their
///   ranges on a finer or curved mesh lie outside the training range) and invited
///   extrapolation in zero-shot tests.
fn project(node: &mut [f64], edge: &mut [f64], node_in: usize, edge_in: usize) {
    for row in node.chunks_exact_mut(node_in) {
        row[0] = 0.0;
        row[3] = 0.0; // boundary flag
    }
    for row in edge.chunks_exact_mut(edge_in) {
        let d = 0.5 * (row[0] - row[1]);
        row[0] = d;
        row[1] = -d;
        row[2] = 0.0;
        row[3] = 0.0;
        row[4] = 0.0; // length
        row[6] = 0.0; // adjacent area
        row[7] = 0.0; // boundary-edge flag
    }
}

/// Apply [`project`] to a flat parameter (or gradient) vector [node params | edge params].
fn project_flat(theta: &mut [f64], node: &Mlp, edge: &Mlp) {
    let n_node = node.n_params();
    let (tn, te) = theta.split_at_mut(n_node);
    let (ni, ei) = (node.sizes[0], edge.sizes[0]);
    let wn = ni * node.sizes[1];
    let we = ei * edge.sizes[1];
    project(&mut tn[..wn], &mut te[..we], ni, ei);
}

/// Relative acceleration error sqrt(Σ|a − y|² / Σ|y|²) of a system over samples, and the
/// (true, predicted) pairs of the first sample.
fn accel_error(
    dy: &mut crate::dynamics::Dynamics,
    data: &Samples,
) -> Result<(f64, Vec<(f64, f64)>)> {
    let n = data.out_dim;
    let (mut num, mut den) = (0.0, 0.0);
    let mut pairs = vec![];
    for i in 0..data.n {
        let row = data.input_row(i);
        let a = dy.accelerations(&row[..n], &row[n..])?;
        let y = data.target_row(i);
        for (p, t) in a.iter().zip(y) {
            num += (p - t).powi(2);
            den += t * t;
            if i == 0 {
                pairs.push((*t, *p));
            }
        }
    }
    Ok(((num / den).sqrt(), pairs))
}

fn max_rel_drift(e: &[f64]) -> f64 {
    let e0 = e[0];
    e.iter().map(|x| (x - e0).abs()).fold(0.0, f64::max) / e0.abs().max(1e-300)
}

pub fn run(opts: &ExperimentOptions) -> Result<ExperimentReport> {
    let cfg = Config::new(opts.quick);
    let mut report = ExperimentReport::new("mesh", opts);
    let seed = opts.seed;
    // The shipped square_coarse with its interior nodes jittered (up to 30 % of the shortest
    // edge): the regular grid alone has only ~4 distinct lumped masses and 3 cotangent weights,
    // too few to pin down how the density depends on the geometry.
    let train_mesh =
        crate::mesh::generate::perturb_interior(&load_mesh("square_coarse")?, 0.3, seed ^ 0x5eed)?;
    let zs_mesh = load_mesh("disk_fine")?;
    let zs2_mesh = load_mesh("lshape")?;

    // Data.
    let train = make_samples(&train_mesh, cfg.n_train, &cfg, seed.wrapping_add(10))?;
    let test_train_mesh = make_samples(&train_mesh, cfg.n_test, &cfg, seed.wrapping_add(11))?;
    let test_zs = make_samples(&zs_mesh, cfg.n_test, &cfg, seed.wrapping_add(12))?;
    let test_zs2 = make_samples(&zs2_mesh, cfg.n_test, &cfg, seed.wrapping_add(13))?;

    // Model.
    let (mut node, mut edge) = mesh_mlps(&train_mesh, cfg.hidden, cfg.layers, seed);
    // φ_a − φ_b across an edge is O(h·|k|): scale the edge MLP's φ inputs to O(1) (fixed with
    // the training mesh, like the feature scales), so kinetic and potential parts start at
    // comparable curvature.
    let phi_scale = train_mesh.h_mean() * 0.5 * cfg.k_max;
    edge.input_scale[0] = phi_scale;
    edge.input_scale[1] = phi_scale;
    let n_node = node.n_params();
    let mut theta = flatten(&node);
    theta.extend(flatten(&edge));
    project_flat(&mut theta, &node, &edge);
    unflatten(&mut node, &theta[..n_node]);
    unflatten(&mut edge, &theta[n_node..]);
    let mut sys = wave_mesh(
        &train_mesh,
        &MeshDensity::Trained {
            node: Box::new(node.clone()),
            edge: Box::new(edge.clone()),
        },
        SolverKind::Auto,
    )?;

    // Training.
    let t_train = std::time::Instant::now();
    let steps_per_epoch = cfg.n_train.div_ceil(cfg.batch);
    let total = cfg.epochs * steps_per_epoch;
    let mut adam = Adam::new(theta.len(), 0.0);
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(20));
    let mut order: Vec<usize> = (0..cfg.n_train).collect();
    let bar = if opts.progress {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut loss_curve = vec![];
    let mut step = 0;
    for _epoch in 0..cfg.epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut epoch_loss = 0.0;
        for idx in order.chunks(cfg.batch) {
            let (l, mut g) = lnn_graph_loss_grad(
                &mut sys.dynamics,
                &[Some(&node), Some(&edge)],
                &train,
                idx,
                LossKind::Mse,
                true,
            )?;
            epoch_loss += l * idx.len() as f64 / cfg.n_train as f64;
            project_flat(&mut g, &node, &edge);
            clip_global_norm(&mut g, 10.0);
            adam.step(&mut theta, &g, Schedule::Onecycle.lr(cfg.lr, step, total));
            project_flat(&mut theta, &node, &edge);
            unflatten(&mut node, &theta[..n_node]);
            unflatten(&mut edge, &theta[n_node..]);
            sys.set_mlps(node.clone(), edge.clone())?;
            step += 1;
            bar.inc(1);
        }
        bar.set_message(format!("loss {epoch_loss:.3e}"));
        loss_curve.push(epoch_loss);
        if std::env::var("LGN_MESH_DEBUG").is_ok() {
            eprintln!("epoch {_epoch} loss {epoch_loss:.4e}");
        }
    }
    bar.finish_and_clear();
    let train_seconds = t_train.elapsed().as_secs_f64();

    // Evaluation: held-out fields on the training mesh and zero-shot meshes.
    let trained = MeshDensity::Trained {
        node: Box::new(node.clone()),
        edge: Box::new(edge.clone()),
    };
    let (e_train, _) = accel_error(&mut sys.dynamics, &test_train_mesh)?;
    let mut zs = wave_mesh(&zs_mesh, &trained, SolverKind::Auto)?;
    let (e_zs, pairs) = accel_error(&mut zs.dynamics, &test_zs)?;
    let mut zs2 = wave_mesh(&zs2_mesh, &trained, SolverKind::Auto)?;
    let (e_zs2, _) = accel_error(&mut zs2.dynamics, &test_zs2)?;
    if opts.progress {
        eprintln!(
            "mesh: train {train_seconds:.1} s, loss {:.3e}; accel error train mesh {e_train:.3e}, disk_fine {e_zs:.3e}, lshape {e_zs2:.3e}",
            loss_curve.last().unwrap_or(&f64::NAN)
        );
    }

    // Rollout on the zero-shot mesh: learned model with the variational midpoint integrator,
    // from a held-out field at rest... (φ̇ from the held-out sample too).
    let n = zs_mesh.n_nodes();
    let row = test_zs.input_row(0);
    let (q0, v0) = (&row[..n], &row[n..]);
    let n_frames = (cfg.t_end / cfg.dt).round() as usize + 1;
    let times = crate::integrate::linspace_times(n_frames, cfg.dt);
    let method = Method::Midpoint {
        dt: cfg.dt,
        opts: MidpointOptions {
            tol: 1e-12,
            max_iter: 50,
        },
    };
    let t_roll = std::time::Instant::now();
    // A learned model may blow up somewhere along the rollout: keep the frames up to the failure
    // and report how far it got.
    let rollout = |dy: &mut crate::dynamics::Dynamics| {
        let (mut q, mut v) = (vec![], vec![]);
        let res = crate::integrate::integrate(dy, &method, q0, v0, &times, |_, _, qk, vk| {
            q.push(qk.to_vec());
            v.push(vk.to_vec());
            Ok(())
        });
        (q, v, res.err())
    };
    let (lq, lv, lerr) = rollout(&mut zs.dynamics);
    let roll_seconds = t_roll.elapsed().as_secs_f64();
    let mut fem_sys = wave_mesh(&zs_mesh, &MeshDensity::Fem, SolverKind::Auto)?;
    let (tq, tv, terr) = rollout(&mut fem_sys.dynamics);
    if let Some(e) = terr {
        return Err(e);
    }
    if let Some(e) = &lerr {
        report.notes.push(format!(
            "The learned rollout stopped at t = {:.3}: {e}",
            (lq.len().max(1) - 1) as f64 * cfg.dt
        ));
    }
    let fem = crate::mesh::fem::Fem::new(&zs_mesh);
    let mut e_true = vec![];
    let mut e_learned = vec![];
    let mut e_ref = vec![];
    for k in 0..n_frames {
        e_ref.push(fem.energy(&tq[k], &tv[k])?);
        if k < lq.len() {
            e_true.push(fem.energy(&lq[k], &lv[k])?);
            e_learned.push(zs.dynamics.energy(&lq[k], &lv[k])?);
        }
    }
    let completed = (lq.len().max(1) - 1) as f64 / (n_frames - 1) as f64;
    let drift_true = max_rel_drift(&e_true);
    let drift_learned = max_rel_drift(&e_learned);
    let drift_ref = max_rel_drift(&e_ref);
    let last = lq.len().max(1) - 1;
    let (mut num, mut den) = (0.0, 0.0);
    for (p, t) in lq[last].iter().zip(&tq[last]) {
        num += (p - t).powi(2);
        den += t * t;
    }
    let rollout_error = (num / den).sqrt();

    report.metric("train_mesh_accel_error", e_train);
    report.metric("zeroshot_mesh_accel_error", e_zs);
    report.metric("zeroshot_ratio", e_zs / e_train);
    report.metric("zeroshot_lshape_accel_error", e_zs2);
    report.metric("zeroshot_lshape_ratio", e_zs2 / e_train);
    report.metric("energy_drift_true", drift_true);
    report.metric("energy_drift_learned", drift_learned);
    report.metric("energy_drift_fem_reference", drift_ref);
    report.metric("rollout_final_rel_error", rollout_error);
    report.metric("rollout_completed_fraction", completed);
    report.metric("final_train_loss", *loss_curve.last().unwrap_or(&f64::NAN));
    report.metric("train_seconds", train_seconds);
    report.metric("rollout_seconds", roll_seconds);

    report.config("train_mesh", "meshes/square_coarse.msh (400 nodes, h ≈ 0.06), interior nodes jittered by up to 30 % of the shortest edge");
    report.config(
        "zeroshot_mesh",
        "meshes/disk_fine.msh (3781 nodes, h ≈ 0.03)",
    );
    report.config(
        "zeroshot_mesh_2",
        "meshes/lshape.msh (481 nodes, h ≈ 0.047)",
    );
    report.config("hidden", cfg.hidden);
    report.config("layers", cfg.layers);
    report.config("n_params", theta.len());
    report.config("n_train_fields", cfg.n_train);
    report.config("n_test_fields", cfg.n_test);
    report.config("epochs", cfg.epochs);
    report.config("batch", cfg.batch);
    report.config("lr", cfg.lr);
    report.config("schedule", "onecycle");
    report.config("waves_per_field", cfg.waves);
    report.config("k_max", cfg.k_max);
    report.config("rollout_t_end", cfg.t_end);
    report.config("rollout_dt", cfg.dt);
    report.config("integrator", "midpoint (variational)");
    report.config("seed", seed);

    report.notes.push(format!(
        "Small networks ({} hidden layers of width {}, {} parameters in total) so the default run \
         stays short on a shared 2-core machine.",
        cfg.layers,
        cfg.hidden,
        theta.len()
    ));
    report.notes.push(
        "First-layer constraints (projected after every Adam step): shift invariance φ → φ + c \
         (node MLP ignores φ_i, edge MLP sees φ_a − φ_b only), edge term velocity-free (M \
         diagonal, from the node term), node term sees lumped mass m_i and edge term cotangent \
         weight w_ab only (length, area and boundary flags are resolution/shape specific and \
         made zero-shot extrapolate: without these constraints disk_fine errors were 0.26–1e3)."
            .into(),
    );
    report.notes.push(
        "Fields: sums of random plane waves with |k| ≤ k_max, RMS 1, plus a random level in \
         [−1, 1] for φ; targets are FEM accelerations −M⁻¹Kφ (free boundary); each sample is \
         weighted by 1/mean(a²). Errors are sqrt(Σ|a−y|²/Σ|y|²) over held-out fields."
            .into(),
    );
    report.notes.push(
        "energy_drift_* = max_t |E(t) − E(0)| / |E(0)| on the zero-shot mesh: _true is the FEM \
         energy along the learned rollout, _learned the learned model's own energy, \
         _fem_reference the FEM energy along the FEM rollout with the same integrator."
            .into(),
    );

    // Figures.
    let t_axis: Vec<f64> = times.clone();
    let f1 = opts.out.join("energy.png");
    line_plot(
        &f1,
        "Energy along the rollout on disk_fine (zero-shot)",
        "t",
        "E(t) / E(0)",
        &[
            Series::new(
                "FEM energy, FEM rollout",
                t_axis.clone(),
                e_ref.iter().map(|e| e / e_ref[0]).collect(),
            ),
            Series::new(
                "FEM energy, learned rollout",
                t_axis[..e_true.len()].to_vec(),
                e_true.iter().map(|e| e / e_true[0]).collect(),
            ),
            Series::new(
                "learned energy, learned rollout",
                t_axis[..e_learned.len()].to_vec(),
                e_learned.iter().map(|e| e / e_learned[0]).collect(),
            ),
        ],
        (900, 500),
        opts.force,
    )?;
    report.files.push(f1);
    let mut pairs = pairs;
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank: Vec<f64> = (0..pairs.len()).map(|i| i as f64).collect();
    let f2 = opts.out.join("accel_pred_vs_true.png");
    line_plot(
        &f2,
        "Zero-shot accelerations on disk_fine (one held-out field, nodes sorted by true value)",
        "node rank",
        "acceleration",
        &[
            Series::new(
                "FEM (true)",
                rank.clone(),
                pairs.iter().map(|p| p.0).collect(),
            ),
            Series::new("learned", rank, pairs.iter().map(|p| p.1).collect()),
        ],
        (900, 500),
        opts.force,
    )?;
    report.files.push(f2);
    let f3 = opts.out.join("loss.png");
    line_plot(
        &f3,
        "Training loss (relative MSE)",
        "epoch",
        "log10 loss",
        &[Series::new(
            "train",
            (0..loss_curve.len()).map(|i| i as f64).collect(),
            loss_curve.iter().map(|l| l.log10()).collect(),
        )],
        (900, 500),
        opts.force,
    )?;
    report.files.push(f3);
    Ok(report)
}
