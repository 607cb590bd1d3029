//! `lgn experiment damped`: a damped double pendulum (linear joint damping, docs/DESIGN.md
//! §13.5) learned from accelerations — the Lagrangian network and the damping coefficients
//! together ([`crate::train::damped`]) — then rolled out from held-out initial conditions; a
//! second row learns D = ½ q̇ᵀ L(q)L(q)ᵀ q̇ instead (docs/DESIGN.md §22, metrics `learned_d_…`).
//!
//! Reported: the learned damping against the truth, acceleration and rollout errors, the energy
//! decay of model and truth (true energy E_true evaluated on both trajectories, relative to the
//! initial energy above the ground state, E₀ + 3g), and the power-balance residual
//! |E + W_diss − E₀| / (E₀ + 3g) of the model's own DP5 rollout.

use super::{ExperimentOptions, ExperimentReport};
use crate::data::damped::{dblpend_damped, dblpend_damped_samples};
use crate::density::dissipation::DissipationKind;
use crate::integrate::{integrate_with_work, solve, Dp5Options, Method};
use crate::plot::{line_plot, Series};
use crate::solve::SolverKind;
use crate::train::damped::{model_damping, train_dissipative_lnn};
use crate::train::loss::LossKind;
use crate::train::mass_penalty::MassPenalty;
use crate::train::optim::Schedule;
use crate::train::{self, ModelKind, TrainConfig, TrainedModel};
use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f64::consts::PI;

const G: f64 = 9.8;
/// Energy of the pendulum at rest at the bottom: −(m₁ + m₂) g l₁ − m₂ g l₂ = −3g.
const E_GROUND: f64 = -3.0 * G;

struct Config {
    damping: f64,
    n_train: usize,
    omega_max: f64,
    hidden: usize,
    epochs: usize,
    batch: usize,
    n_ic: usize,
    t_end: f64,
    dt_frame: f64,
    /// The LNN sees the angles through the embedding (cos θ, sin θ, θ̇) (docs/DESIGN.md §14.6).
    embed: bool,
}

fn config(quick: bool) -> Config {
    if quick {
        Config {
            damping: 0.2,
            n_train: 30_000,
            omega_max: 10.0,
            // 64 wide: 1.1 % acceleration error, c/α within 2.7 %, energy curve within 2.9 %.
            hidden: 128,
            epochs: 150,
            batch: 128,
            n_ic: 5,
            t_end: 10.0,
            dt_frame: 0.05,
            embed: true,
        }
    } else {
        Config {
            damping: 0.2,
            // 100k × 300 epochs did not fit a day of this shared 2-core machine (symm2's bench:
            // ≈ 4900 samples/s at 128×2 under load): 60k × 200.
            n_train: 60_000,
            omega_max: 10.0,
            hidden: 128,
            epochs: 200,
            batch: 256,
            n_ic: 40,
            t_end: 10.0,
            dt_frame: 0.05,
            embed: true,
        }
    }
}

/// Held-out initial conditions: angles uniform in [−1.5, 1.5], at rest.
fn initial_conditions(n: usize, seed: u64) -> Vec<[f64; 2]> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| [rng.random_range(-1.5..1.5), rng.random_range(-1.5..1.5)])
        .collect()
}

pub fn run(opts: &ExperimentOptions) -> Result<ExperimentReport> {
    let c = config(opts.quick);
    let mut rep = ExperimentReport::new("damped", opts);
    let train_raw = dblpend_damped_samples(c.n_train, G, c.omega_max, c.damping, opts.seed)?;
    let test_raw =
        dblpend_damped_samples(2_000, G, c.omega_max, c.damping, opts.seed.wrapping_add(99))?;
    // The linear row (metrics without prefix, as before), then the learned D = ½ q̇ᵀ L Lᵀ q̇
    // (docs/DESIGN.md §22) on the same data and recipe (metrics `learned_d_…`).
    pendulum_row(
        opts,
        &c,
        &train_raw,
        &test_raw,
        DissipationKind::Linear,
        &mut rep,
    )?;
    pendulum_row(
        opts,
        &c,
        &train_raw,
        &test_raw,
        DissipationKind::Learned,
        &mut rep,
    )?;
    rep.config("damping", c.damping);
    rep.config("n_train", c.n_train as u64);
    rep.config("omega_max", c.omega_max);
    rep.config("hidden", c.hidden as u64);
    rep.config("epochs", c.epochs as u64);
    rep.config("n_ic", c.n_ic as u64);
    rep.config("t_end", c.t_end);
    rep.config("angle_embedding", c.embed as u64);
    rep.notes.push(
        "damping_learned_k = c_k / α with α the least-squares fit M_learned ≈ α M_true over the held-out states (mass_fit_rel_residual = its relative residual; lagrangian_scale_alpha_trace = the older trace ratio); damping_from_accel_k reads c off the model's damping acceleration: f = M_true M_learned⁻¹ ∂D/∂q̇ fitted per joint by f_k ≈ c_k θ̇_k".into(),
    );
    rep.notes.push(
        "learned_d_*: the same with D = ½ q̇ᵀ R(q) q̇, R = L Lᵀ learned (docs/DESIGN.md §22): learned_d_damping_learned_k = mean R_kk/α over the held-out states, learned_d_damping_offdiag = mean R_01/α (truth 0), learned_d_damping_matrix_rel_error = mean ‖R/α − c I‖_F / ‖c I‖_F".into(),
    );
    rep.notes.push(
        "energy errors: max over t ≤ t_end of |E_true(model state) − E_true(true state)| / (E₀ − E_ground), E_ground = −3g".into(),
    );
    super::damped_mesh::run_mesh(opts, &mut rep)?;
    Ok(rep)
}

/// One double-pendulum row: train L with the dissipation `kind`, report it against the truth.
fn pendulum_row(
    opts: &ExperimentOptions,
    c: &Config,
    train_raw: &crate::io::SamplesData,
    test_raw: &crate::io::SamplesData,
    kind: DissipationKind,
    rep: &mut ExperimentReport,
) -> Result<()> {
    let learned_d = kind == DissipationKind::Learned;
    let pre = if learned_d { "learned_d_" } else { "" };
    let key = |k: &str| format!("{pre}{k}");
    let mut samples =
        train::prepare_samples(ModelKind::Lnn, train_raw, train::HnnCoords::Velocity)?;
    let mut model = TrainedModel::init(ModelKind::Lnn, "dblpend", 2, c.hidden, 2, opts.seed)?;
    model.params = train_raw.params.clone();
    if c.embed {
        model.set_angle_embedding(opts.seed)?;
    }
    model.set_q_period(2.0 * PI)?;
    model.wrap_inputs(&mut samples);
    train::fit_normalisation(&mut model, &samples);
    let mean_sq = train_raw.qddot.iter().map(|x| x * x).sum::<f64>() / train_raw.qddot.len() as f64;
    let cfg = TrainConfig {
        epochs: c.epochs,
        batch: c.batch,
        lr: 3e-3,
        schedule: Schedule::Onecycle,
        clip: Some(100.0),
        val_fraction: 0.05,
        seed: opts.seed,
        // The recipe of `lgn experiment dblpend` (0.34 % energy error): pseudo-Huber loss,
        // onecycle, clip 100, and the mass-definiteness penalty (weight = mean q̈²) that keeps
        // the learned M definite, so α = tr M_learned / tr M_true stays away from 0.
        loss: LossKind::Huber,
        mass_penalty: Some(MassPenalty::new(mean_sq, MassPenalty::DEFAULT_MARGIN)?),
        ..TrainConfig::unstabilised()
    };
    let (model, report) = train_dissipative_lnn(model, kind, &samples, &cfg, &mut |_| {})?;
    if report.epochs == 0 {
        return Err(Error::input(format!(
            "training the damped LNN ({} D) failed in its first epoch: {}",
            kind.as_str(),
            report.stopped_by_error.clone().unwrap_or_default()
        )));
    }
    let raw_c = if learned_d {
        vec![]
    } else {
        model_damping(&model).ok_or_else(|| Error::input("no learned damping"))?
    };
    // Σ over the test states of R (learned units): the learned matrix's mean, and of the
    // squared distance to α c I once α is known (accumulated as moments of R).
    let (mut r_sum, mut r_sq) = ([0.0; 4], [0.0; 4]);
    // L is learned up to a factor α (αL, αD give the same motion, docs/DESIGN.md §13.8), so the
    // physical coefficient is c_learned / α. Over the held-out states: α by least squares,
    // M_learned ≈ α M_true (Frobenius), with the fit's relative residual; the older trace
    // ratio; and the damping read off the model's damping acceleration M_l⁻¹ C_l θ̇ directly:
    // its force in true units f = M_true M_l⁻¹ C_l θ̇, fitted per joint by f_k ≈ c_k θ̇_k.
    let mut dym = model.dynamics(None, SolverKind::Auto)?;
    let (mut num, mut den) = (0.0, 0.0);
    let (mut mm, mut tt, mut ll, mut tr_l) = (0.0, 0.0, 0.0, 0.0);
    let (mut cf, mut cv) = ([0.0; 2], [0.0; 2]);
    for i in 0..test_raw.q.nrows() {
        let mut q = [test_raw.q[[i, 0]], test_raw.q[[i, 1]]];
        model.wrap_q(&mut q);
        let v = [test_raw.qdot[[i, 0]], test_raw.qdot[[i, 1]]];
        let a = dym.accelerations(&q, &v)?;
        for (k, ak) in a.iter().enumerate() {
            num += (ak - test_raw.qddot[[i, k]]).powi(2);
            den += test_raw.qddot[[i, k]].powi(2);
        }
        let ml = dym.mass_matrix().to_dense();
        let cd = (q[0] - q[1]).cos();
        let mt = [[2.0, cd], [cd, 1.0]];
        for r in 0..2 {
            for s in 0..2 {
                mm += ml[[r, s]] * mt[r][s];
                tt += mt[r][s] * mt[r][s];
                ll += ml[[r, s]] * ml[[r, s]];
            }
        }
        tr_l += ml[[0, 0]] + ml[[1, 1]];
        let det = ml[[0, 0]] * ml[[1, 1]] - ml[[0, 1]] * ml[[1, 0]];
        // The model's dissipation force ∂D/∂q̇ (learned units), whatever its form.
        let mut fl = [0.0; 2];
        if let Some(f) = &dym.forces {
            f.dissipation_grad(&q, &v, &mut fl);
        }
        if let Some(m) = &model.dissipation {
            let r = m.matrix(&q);
            for k in 0..4 {
                r_sum[k] += r[k];
                r_sq[k] += r[k] * r[k];
            }
        }
        let y = [
            (ml[[1, 1]] * fl[0] - ml[[0, 1]] * fl[1]) / det,
            (-ml[[1, 0]] * fl[0] + ml[[0, 0]] * fl[1]) / det,
        ];
        for k in 0..2 {
            let f = mt[k][0] * y[0] + mt[k][1] * y[1];
            cf[k] += f * v[k];
            cv[k] += v[k] * v[k];
        }
    }
    let n_test = test_raw.q.nrows() as f64;
    let alpha = mm / tt;
    let mass_residual =
        ((ll - 2.0 * alpha * mm + alpha * alpha * tt).max(0.0) / (alpha * alpha * tt)).sqrt();
    // tr M_true = 3 for m = l = 1.
    let alpha_trace = tr_l / (3.0 * n_test);
    let raw: Vec<f64> = if learned_d {
        vec![r_sum[0] / n_test, r_sum[3] / n_test]
    } else {
        raw_c.clone()
    };
    let learned: Vec<f64> = raw.iter().map(|x| x / alpha).collect();
    let from_accel: Vec<f64> = (0..2).map(|k| cf[k] / cv[k]).collect();
    let rel = |v: &[f64]| {
        v.iter()
            .map(|x| (x - c.damping).abs() / c.damping)
            .fold(0.0, f64::max)
    };
    rep.metric(&key("lagrangian_scale_alpha"), alpha);
    rep.metric(&key("lagrangian_scale_alpha_trace"), alpha_trace);
    rep.metric(&key("mass_fit_rel_residual"), mass_residual);
    if !learned_d {
        rep.metric("damping_true", c.damping);
    }
    rep.metric(&key("damping_learned_raw_0"), raw[0]);
    rep.metric(&key("damping_learned_raw_1"), raw[1]);
    rep.metric(&key("damping_learned_0"), learned[0]);
    rep.metric(&key("damping_learned_1"), learned[1]);
    rep.metric(&key("damping_rel_error_max"), rel(&learned));
    if learned_d {
        // ‖R/α − cI‖²_F summed over the states from the moments of R: per entry,
        // Σ (r/α − t)² = Σ r²/α² − 2 t Σ r/α + N t², t = c on the diagonal, 0 off it.
        let mut dist = 0.0;
        for k in 0..4 {
            let t = if k == 0 || k == 3 { c.damping } else { 0.0 };
            dist += r_sq[k] / (alpha * alpha) - 2.0 * t * r_sum[k] / alpha + n_test * t * t;
        }
        let norm = 2.0 * c.damping * c.damping * n_test;
        rep.metric(&key("damping_offdiag"), r_sum[1] / n_test / alpha);
        // Root mean square over the states of the relative Frobenius distance.
        rep.metric(
            &key("damping_matrix_rel_error"),
            (dist.max(0.0) / norm).sqrt(),
        );
    }
    rep.metric(&key("damping_from_accel_0"), from_accel[0]);
    rep.metric(&key("damping_from_accel_1"), from_accel[1]);
    rep.metric(&key("damping_from_accel_rel_error_max"), rel(&from_accel));
    rep.metric(&key("best_val_loss"), report.best_val_loss);
    rep.metric(&key("accel_rel_error"), (num / den).sqrt());

    // Rollouts from held-out initial conditions.
    let nt = (c.t_end / c.dt_frame).round() as usize + 1;
    let times: Vec<f64> = (0..nt).map(|k| k as f64 * c.dt_frame).collect();
    let method = Method::Dp5(Dp5Options::tol(1e-10, 1e-10));
    let mut dyt = dblpend_damped(G, c.damping, SolverKind::Auto)?;
    let mut worst_e = 0.0f64;
    let mut mean_e = 0.0;
    let mut worst_balance = 0.0f64;
    let mut worst_balance_truth = 0.0f64;
    let mut q_err_1s = 0.0;
    let mut failed = 0usize;
    let mut curves: Vec<Series> = vec![];
    let ics = initial_conditions(c.n_ic, opts.seed.wrapping_add(7));
    let (mut mean_true, mut mean_model) = (vec![0.0; nt], vec![0.0; nt]);
    for (j, q0) in ics.iter().enumerate() {
        let v0 = [0.0, 0.0];
        let tr = solve(&mut dyt, &method, q0, &v0, &times)?;
        let mut rows = vec![];
        if let Err(e) =
            integrate_with_work(&mut dym, &method, q0, &v0, &times, 8, |_, _, q, v, w| {
                rows.push((q.to_vec(), v.to_vec(), w));
                Ok(())
            })
        {
            // A learned model may reach a singular mass matrix: the IC counts as failed.
            failed += 1;
            rep.notes
                .push(format!("model rollout from IC {j} failed: {e}"));
            continue;
        }
        let e0 = dyt.energy(q0, &v0)?;
        let scale = e0 - E_GROUND;
        let em0 = dym.energy(q0, &v0)?;
        let (mut et, mut emod) = (vec![0.0; nt], vec![0.0; nt]);
        let mut ic_worst = 0.0f64;
        for k in 0..nt {
            et[k] = dyt.energy(tr.q_at(k), tr.v_at(k))?;
            let (q, v, w) = &rows[k];
            emod[k] = dyt.energy(q, v)?;
            ic_worst = ic_worst.max((emod[k] - et[k]).abs() / scale);
            let em = dym.energy(q, v)?;
            worst_balance = worst_balance.max((em + w.dissipated - em0).abs() / scale);
            mean_true[k] += (et[k] - E_GROUND) / scale;
            mean_model[k] += (emod[k] - E_GROUND) / scale;
        }
        // The truth's own balance, from the analytic system with its work.
        let mut last = None;
        integrate_with_work(&mut dyt, &method, q0, &v0, &times, 8, |_, _, q, v, w| {
            last = Some((q.to_vec(), v.to_vec(), w));
            Ok(())
        })?;
        let (q, v, w) = last.expect("frames");
        worst_balance_truth =
            worst_balance_truth.max((dyt.energy(&q, &v)? + w.dissipated - e0).abs() / scale);
        let k1 = (1.0 / c.dt_frame).round() as usize;
        q_err_1s += (0..2)
            .map(|i| (rows[k1].0[i] - tr.q_at(k1)[i]).abs())
            .fold(0.0, f64::max);
        worst_e = worst_e.max(ic_worst);
        mean_e += ic_worst;
        if curves.is_empty() {
            curves.push(Series::new(
                format!("truth (IC {j})"),
                times.clone(),
                et.clone(),
            ));
            curves.push(Series::new(
                format!("learned L + D (IC {j})"),
                times.clone(),
                emod.clone(),
            ));
        }
    }
    rep.metric(&key("model_rollouts_failed"), failed as f64);
    rep.metric(&key("energy_curve_error_max"), worst_e);
    let ok = (c.n_ic - failed).max(1) as f64;
    rep.metric(&key("energy_curve_error_mean"), mean_e / ok);
    rep.metric(&key("model_power_balance_residual"), worst_balance);
    if !learned_d {
        rep.metric("truth_power_balance_residual", worst_balance_truth);
    }
    rep.metric(&key("angle_error_after_1s_mean"), q_err_1s / ok);
    for x in mean_true.iter_mut().chain(mean_model.iter_mut()) {
        *x /= ok;
    }
    if curves.is_empty() {
        return Err(Error::input(format!(
            "every model rollout failed: {}",
            rep.notes.join("; ")
        )));
    }
    let f1 = opts.out.join(format!(
        "energy_decay{}.png",
        if learned_d { "_learned_d" } else { "" }
    ));
    let what = if learned_d {
        "learned D = ½ q̇ᵀLLᵀq̇"
    } else {
        "linear D"
    };
    line_plot(
        &f1,
        &format!("damped double pendulum ({what}): true energy along truth and model rollouts"),
        "t",
        "E_true",
        &curves,
        (900, 500),
        opts.force,
    )?;
    let f2 = opts.out.join(format!(
        "energy_decay_mean{}.png",
        if learned_d { "_learned_d" } else { "" }
    ));
    line_plot(
        &f2,
        &format!(
            "mean (E − E_ground)/(E₀ − E_ground) over {} held-out ICs",
            c.n_ic
        ),
        "t",
        "relative energy",
        &[
            Series::new("truth", times.clone(), mean_true),
            Series::new("learned L + D", times.clone(), mean_model),
        ],
        (900, 500),
        opts.force,
    )?;
    rep.files.push(f1);
    rep.files.push(f2);
    opts.observer.stage(
        "damped",
        &format!(
            "double pendulum ({what}): c/α = ({:.4}, {:.4}) against {}, energy curve max {:.4}, accel error {:.4}",
            learned[0],
            learned[1],
            c.damping,
            worst_e,
            (num / den).sqrt()
        ),
    );
    Ok(())
}
