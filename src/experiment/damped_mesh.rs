//! The damped, driven mesh wave of `lgn experiment damped` (docs/DESIGN.md §13.6–13.7):
//! φ_tt + c φ_t = Δφ + u(t) g(x) on a structured square mesh (10⁴ nodes in the full run), a
//! node-edge graph model with a linear dissipation term learned from driven samples (the input
//! enters as B u), then a driven rollout from a held-out state.
//!
//! Reported: the learned damping rate γ_i/μ_i (scale-free: L → αL, D → αD leave it unchanged)
//! against the truth c, acceleration errors, the rollout error, the true FEM energy along the
//! model's rollout and along the true trajectory, and the power-balance residual
//! |E + W_diss − W_inj − E₀| / max(E₀, W_diss) of both rollouts.

use super::{ExperimentOptions, ExperimentReport};
use crate::data::wave_mesh_driven::{driven_dynamics, driven_samples, Drive, Forcing};
use crate::density::dissipation::{DissipationKind, InputForce, Signal};
use crate::integrate::{integrate_with_work, Dp5Options, Method};
use crate::mesh::fields::{random_state, SmoothFieldConfig};
use crate::model::{FeatureSet, GraphDissipation, GraphModel, NetShape, SystemGraph};
use crate::plot::{line_plot, Series};
use crate::solve::SolverKind;
use crate::train::graph::{append_inputs, GraphTrainer};
use crate::train::optim::Schedule;
use crate::train::{fit, Samples, TrainConfig};
use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Simpson sub-intervals per frame of the rollouts' work: the FEM wave's fast mesh modes make
/// P'''' large, and with 8 the quadrature alone left 2.4e-8 in the balance.
const WORK_SUB: usize = 32;

/// The forcing of the experiment: a Gaussian load of width 0.12 at (0.3, 0.6), 0.5 Hz.
pub const FORCING: &str = "amp=4,freq=0.5,x=0.3,y=0.6,radius=0.12";

struct MeshConfig {
    nodes: usize,
    damping: f64,
    n_train: usize,
    n_test: usize,
    hidden: usize,
    epochs: usize,
    batch: usize,
    lr: f64,
    t_end: f64,
    dt_frame: f64,
}

fn config(quick: bool) -> MeshConfig {
    if quick {
        MeshConfig {
            nodes: 400,
            damping: 0.5,
            // docs/DESIGN.md §22.5: with 160 samples the edge network absorbs part of the
            // damping acceleration (0.6 % of the signal) in-sample and the rate came out
            // 7–10 % low on square meshes; 640 gave 0.499–0.502 (truth 0.5).
            n_train: 640,
            n_test: 20,
            hidden: 16,
            epochs: 30,
            batch: 16,
            lr: 3e-2,
            t_end: 2.0,
            dt_frame: 0.05,
        }
    } else {
        MeshConfig {
            nodes: 10_000,
            damping: 0.5,
            // 120 samples gave a rate of 0.318 (truth 0.5): too few for the damping, which is
            // < 1 % of the acceleration, to be separated from the learned potential (§22.5).
            n_train: 480,
            n_test: 20,
            hidden: 16,
            epochs: 30,
            batch: 8,
            lr: 3e-2,
            t_end: 2.0,
            dt_frame: 0.05,
        }
    }
}

/// Run the mesh part and add its metrics, notes and figure to `rep`.
pub(super) fn run_mesh(opts: &ExperimentOptions, rep: &mut ExperimentReport) -> Result<()> {
    let c = config(opts.quick);
    let obs = &opts.observer;
    let mesh = crate::mesh::generate::unit_square_nodes(c.nodes)?;
    let n = mesh.n_nodes();
    let forcing = Forcing::parse(FORCING)?;
    let m = forcing.width();
    let drive = Drive {
        damping: c.damping,
        forcing: Some(forcing.clone()),
    };
    let fields = SmoothFieldConfig::for_mesh(&mesh);
    let seed = opts.seed.wrapping_add(300);
    obs.stage(
        "damped",
        &format!("mesh wave: {} driven samples on {n} nodes", c.n_train),
    );
    let driven = |count: usize, s: u64| -> Result<(Samples, Vec<f64>, Vec<f64>)> {
        let (raw, inputs) = driven_samples(&mesh, count, &fields, &drive, 2.0, s)?;
        let (u, b) = inputs.ok_or_else(|| Error::input("driven samples without inputs"))?;
        let base = Samples::from_data(&raw)?;
        let u: Vec<f64> = u.iter().copied().collect();
        Ok((append_inputs(&base, &u, m)?, u, b.iter().copied().collect()))
    };
    let (train, _, bmap) = driven(c.n_train, seed)?;
    let (test, test_u, _) = driven(c.n_test, seed.wrapping_add(1))?;

    let graph = SystemGraph::from_mesh(mesh.clone(), "square");
    let qs: Vec<&[f64]> = (0..train.n).map(|i| &train.input_row(i)[..n]).collect();
    let shape = NetShape {
        hidden: c.hidden,
        layers: 2,
        seed,
    };
    let mut model = GraphModel::node_edge(&graph, FeatureSet::Mesh, false, &shape, &qs)?;
    model.system = "wave-mesh".into();
    model.dissipation = GraphDissipation::new(
        DissipationKind::Linear,
        &model,
        &graph,
        c.hidden,
        2,
        seed,
        &qs,
    )?;
    let tcfg = TrainConfig {
        epochs: c.epochs,
        batch: c.batch,
        lr: c.lr,
        schedule: Schedule::Onecycle,
        val_fraction: 0.0,
        seed: seed.wrapping_add(2),
        clip: Some(10.0),
        ..TrainConfig::default()
    };
    let mut trainer = GraphTrainer::new(model, graph.clone())?.with_input_map(bmap.clone(), m)?;
    let tr = fit(
        &mut trainer,
        &train,
        &tcfg,
        &mut obs.training("damped-mesh"),
    )?;
    obs.training_done("damped-mesh");
    if tr.best_epoch == 0 {
        return Err(crate::train::TrainError::NoFiniteLoss {
            model: "damped mesh model".into(),
            cause: tr.stopped_by_error,
        }
        .into());
    }
    let model = trainer.model.clone();

    // The identifiable damping: γ_i/μ_i (L → αL and D → αD scale both).
    let q_probe = &test.input_row(0)[..n];
    let dis = model
        .dissipation
        .as_ref()
        .ok_or_else(|| Error::input("the model lost its dissipation"))?;
    let gamma = dis.coefficients(&model, &graph, q_probe)?;
    let mu = model.masses(0, &graph)?;
    let rate: Vec<f64> = gamma.iter().zip(&mu).map(|(g, m)| g / m).collect();
    let rate_mean = rate.iter().sum::<f64>() / n as f64;
    let rate_err = rate
        .iter()
        .map(|r| (r - c.damping).abs() / c.damping)
        .fold(0.0, f64::max);
    let alpha = mu
        .iter()
        .zip(crate::mesh::fem::lumped_mass(&mesh))
        .map(|(a, b)| a / b)
        .sum::<f64>()
        / n as f64;
    rep.metric("mesh_damping_true", c.damping);
    rep.metric("mesh_damping_rate_mean", rate_mean);
    rep.metric(
        "mesh_damping_rate_rel_error_mean",
        (rate_mean - c.damping).abs() / c.damping,
    );
    rep.metric("mesh_damping_rate_rel_error_max", rate_err);
    rep.metric("mesh_lagrangian_scale_alpha", alpha);
    rep.metric(
        "mesh_final_loss",
        *tr.loss_history.last().unwrap_or(&f64::NAN),
    );

    // Held-out accelerations with their inputs u_i (constant per sample).
    let input = |signal: Signal| InputForce {
        map: bmap.clone(),
        signal,
    };
    let mut dym = model.dynamics(&graph, SolverKind::Auto)?;
    let mut model_forces = model.forces(&graph)?;
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..test.n {
        let row = test.input_row(i);
        let mut f = model_forces.clone();
        f.input = Some(input(Signal::Constant(test_u[i * m..(i + 1) * m].to_vec())));
        dym.set_forces(f)?;
        let a = dym.accelerations(&row[..n], &row[n..2 * n])?;
        for (a, t) in a.iter().zip(test.target_row(i)) {
            num += (a - t).powi(2);
            den += t * t;
        }
    }
    rep.metric("mesh_accel_rel_error", (num / den.max(1e-300)).sqrt());

    // Driven rollouts of model and truth from a held-out state.
    let nt = (c.t_end / c.dt_frame).round() as usize + 1;
    let times: Vec<f64> = (0..nt).map(|k| k as f64 * c.dt_frame).collect();
    let method = Method::Dp5(Dp5Options::tol(1e-9, 1e-9));
    let (q0, v0) = random_state(
        &mesh.positions,
        &mut StdRng::seed_from_u64(seed.wrapping_add(5)),
        &fields,
    );
    obs.stage(
        "damped",
        &format!("mesh wave: driven rollouts to t = {}", c.t_end),
    );
    let mut dyt = driven_dynamics(&mesh, &drive, SolverKind::Auto)?;
    model_forces.input = Some(input(forcing.signal()));
    dym.set_forces(model_forces)?;
    type Frames = Vec<(Vec<f64>, Vec<f64>, crate::integrate::Work)>;
    let roll = |dy: &mut crate::dynamics::Dynamics, method: &Method| -> Result<Frames> {
        let mut rows = vec![];
        integrate_with_work(dy, method, &q0, &v0, &times, WORK_SUB, |_, _, q, v, w| {
            rows.push((q.to_vec(), v.to_vec(), w));
            Ok(())
        })?;
        Ok(rows)
    };
    // The FEM truth is cheap: a tighter tolerance, so its balance measures the quadrature.
    let truth = roll(&mut dyt, &Method::Dp5(Dp5Options::tol(1e-11, 1e-11)))?;
    let pred = roll(&mut dym, &method)?;
    let e0 = dyt.energy(&q0, &v0)?;
    let em0 = dym.energy(&q0, &v0)?;
    let (mut et, mut emod, mut bal) = (vec![0.0; nt], vec![0.0; nt], vec![0.0; nt]);
    let (mut res_truth, mut res_model, mut e_curve) = (0.0f64, 0.0f64, 0.0f64);
    for k in 0..nt {
        let (q, v, w) = &truth[k];
        dyt.time = times[k];
        et[k] = dyt.energy(q, v)?;
        let scale = e0.abs().max(w.dissipated);
        res_truth = res_truth.max((et[k] + w.dissipated - w.injected - e0).abs() / scale);
        let (q, v, w) = &pred[k];
        emod[k] = dyt.energy(q, v)?;
        let em = dym.energy(q, v)?;
        // The learned energy has its own constant: shift the balance line to start at E₀.
        bal[k] = e0 + (em + w.dissipated - w.injected - em0) / alpha;
        let scale = em0.abs().max(w.dissipated);
        res_model = res_model.max((em + w.dissipated - w.injected - em0).abs() / scale);
        e_curve = e_curve.max((emod[k] - et[k]).abs() / e0.abs());
    }
    let rms = |x: &[f64]| (x.iter().map(|x| x * x).sum::<f64>() / x.len() as f64).sqrt();
    let diff: Vec<f64> = pred[nt - 1]
        .0
        .iter()
        .zip(&truth[nt - 1].0)
        .map(|(a, b)| a - b)
        .collect();
    rep.metric(
        "mesh_rollout_rel_error_end",
        rms(&diff) / rms(&truth[nt - 1].0).max(1e-300),
    );
    rep.metric("mesh_energy_curve_error_max", e_curve);
    rep.metric("mesh_truth_power_balance_residual", res_truth);
    rep.metric("mesh_model_power_balance_residual", res_model);
    rep.metric("mesh_truth_w_dissipated_end", truth[nt - 1].2.dissipated);
    rep.metric("mesh_truth_w_injected_end", truth[nt - 1].2.injected);
    let f = opts.out.join("energy_decay_mesh.png");
    line_plot(
        &f,
        &format!("damped driven wave on {n} nodes: true FEM energy along truth and model rollouts"),
        "t",
        "E_true",
        &[
            Series::new("truth", times.clone(), et),
            Series::new(
                "learned L + D (true energy of its states)",
                times.clone(),
                emod,
            ),
            Series::new(
                "model balance: E₀ + (E_model + W_diss − W_inj − E_model(0))/α (flat)",
                times.clone(),
                bal,
            ),
        ],
        (900, 500),
        opts.force,
    )?;
    rep.files.push(f);
    rep.config("mesh_nodes", n as u64);
    rep.config("mesh_damping", c.damping);
    rep.config("mesh_forcing", FORCING);
    rep.config("mesh_n_train", c.n_train as u64);
    rep.config("mesh_hidden", c.hidden as u64);
    rep.config("mesh_epochs", c.epochs as u64);
    rep.config("mesh_t_end", c.t_end);
    rep.notes.push(
        "mesh: damping rate = γ_i/μ_i of the learned linear dissipation and kinetic terms (scale-free), truth c; α = mean μ_i/m_i; energies relative to E₀ of the held-out state".into(),
    );
    Ok(())
}
