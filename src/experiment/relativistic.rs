//! `lgn experiment relativistic` (paper §4.2, fig. 3): a relativistic particle in a uniform
//! field, L = (1 − q̇²)^(−1/2) − 1 + g q, learned by
//! (a) an HNN on the non-canonical pair (q, q̇), (b) an HNN on canonical (q, p) with
//! p = ∂L/∂q̇ = q̇(1 − q̇²)^(−3/2), and (c) an LNN on (q, q̇).
//!
//! Every model is scored on the same quantity, the acceleration q̈ at held-out (q, q̇):
//! * LNN: q̈ from its Euler–Lagrange equation;
//! * HNN (q, q̇): q̈ = ẏ = −∂H/∂q;
//! * HNN (q, p): along its own flow q̇ = ∂H/∂p, ṗ = −∂H/∂q, so
//!   q̈ = d/dt ∂H/∂p = H_pp ṗ + H_pq q̇ = −H_pp H_q + H_pq H_p, evaluated at p = p(q̇)
//!   (H_pp exact from the network's input derivatives, H_pq by a central difference in q).
//!
//! Metrics: `*_accel_error` = mean |q̈_pred − q̈_true| over the held-out samples,
//! `*_accel_rel_error` = ‖q̈_pred − q̈_true‖₂ / ‖q̈_true‖₂.

use super::dblpend::{fit, Clock, FitSpec};
use super::{ExperimentOptions, ExperimentReport};
use crate::data::{self, RelativisticG};
use crate::density::{eval_one, Density, MlpDensity};
use crate::plot::{self, LinePanel, Series};
use crate::solve::SolverKind;
use crate::train::{HnnCoords, LossKind, ModelKind, TrainedModel};
use crate::Result;

const G: f64 = 1.0;

struct Config {
    n_train: usize,
    n_test: usize,
    hidden: usize,
    layers: usize,
    epochs: usize,
    batch: usize,
    lr: f64,
}

fn config(quick: bool) -> Config {
    if quick {
        Config {
            n_train: 10_000,
            n_test: 2_000,
            hidden: 64,
            layers: 2,
            epochs: 150,
            batch: 128,
            lr: 3e-3,
        }
    } else {
        Config {
            n_train: 50_000,
            n_test: 10_000,
            hidden: 128,
            layers: 2,
            epochs: 150,
            batch: 128,
            lr: 2e-3,
        }
    }
}

/// Predicted q̈ of one model at (q, q̇).
struct Predictor {
    kind: ModelKind,
    coords: Option<HnnCoords>,
    dy: Option<crate::dynamics::Dynamics>,
    dens: Option<MlpDensity>,
}

impl Predictor {
    fn new(m: &TrainedModel) -> Result<Predictor> {
        Ok(match m.kind {
            ModelKind::Hnn => Predictor {
                kind: m.kind,
                coords: m.hnn_coords,
                dy: None,
                dens: Some(MlpDensity::new(m.net.clone(), 1, 1, 0)?),
            },
            _ => Predictor {
                kind: m.kind,
                coords: None,
                dy: Some(m.dynamics(None, SolverKind::Auto)?),
                dens: None,
            },
        })
    }

    fn qddot(&mut self, q: f64, v: f64) -> Result<f64> {
        if let Some(dy) = &mut self.dy {
            return Ok(dy.accelerations(&[q], &[v])?[0]);
        }
        let dens = self.dens.as_ref().expect("hnn density");
        let lay = dens.layout();
        match (self.kind, self.coords) {
            (ModelKind::Hnn, Some(HnnCoords::Momentum)) => {
                let p = data::relativistic_momentum(v);
                let r = eval_one(dens, &[q, p]);
                let (hq, hp, hpp) = (r[lay.grad_q()], r[lay.grad_v()], r[lay.mass()]);
                let h = 1e-4;
                let hp_plus = eval_one(dens, &[q + h, p])[lay.grad_v()];
                let hp_minus = eval_one(dens, &[q - h, p])[lay.grad_v()];
                let hpq = (hp_plus - hp_minus) / (2.0 * h);
                Ok(-hpp * hq + hpq * hp)
            }
            _ => {
                let r = eval_one(dens, &[q, v]);
                Ok(-r[lay.grad_q()])
            }
        }
    }
}

pub fn run(opts: &ExperimentOptions) -> Result<ExperimentReport> {
    let clock = Clock::start();
    let c = config(opts.quick);
    let mut rep = ExperimentReport::new("relativistic", opts);
    let seed = opts.seed;
    let out = |name: &str| opts.out.join(name);

    let train =
        data::relativistic_samples(c.n_train, RelativisticG::Fixed(G), seed.wrapping_add(1))?;
    let test = data::relativistic_samples(c.n_test, RelativisticG::Fixed(G), seed.wrapping_add(2))?;
    let p = out("relativistic_samples.h5");
    train.write(&p, opts.force)?;
    rep.files.push(p);

    let models = [
        ("lnn", ModelKind::Lnn, HnnCoords::Velocity, "LNN (q, v)"),
        (
            "hnn_canonical",
            ModelKind::Hnn,
            HnnCoords::Momentum,
            "HNN (q, p)",
        ),
        (
            "hnn_velocity",
            ModelKind::Hnn,
            HnnCoords::Velocity,
            "HNN (q, v)",
        ),
    ];
    let mut trained = Vec::new();
    for (i, (name, kind, coords, label)) in models.iter().enumerate() {
        let t = Clock::start();
        let (m, r, tr) = fit(&FitSpec {
            kind: *kind,
            hnn_coords: *coords,
            raw: &train.samples,
            system: "relativistic",
            hidden: c.hidden,
            layers: c.layers,
            epochs: c.epochs,
            batch: c.batch,
            lr: c.lr,
            seed: seed.wrapping_add(10 + i as u64),
            label: name,
            observer: &opts.observer,
            robust: *coords == HnnCoords::Momentum,
            angles: false,
            mass_penalty: None,
            loss: LossKind::Mse,
        })?;
        rep.metric(&format!("{name}_train_seconds"), t.secs());
        rep.metric(&format!("{name}_best_val_loss"), r.best_val_loss);
        let p = out(&format!("{name}.h5"));
        m.save(&p, Some(tr), opts.force)?;
        rep.files.push(p);
        trained.push((*name, m, *label));
    }

    let n = test.samples.len();
    let mut preds = Vec::new();
    for (name, m, _) in &trained {
        let mut pr = Predictor::new(m)?;
        let (mut abs, mut num, mut den) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (q, v, a) = (
                test.samples.q[[i, 0]],
                test.samples.qdot[[i, 0]],
                test.samples.qddot[[i, 0]],
            );
            let ap = pr.qddot(q, v)?;
            abs += (ap - a).abs();
            num += (ap - a).powi(2);
            den += a * a;
        }
        rep.metric(&format!("{name}_accel_error"), abs / n as f64);
        rep.metric(&format!("{name}_accel_rel_error"), (num / den).sqrt());
        // Curve q̈(q̇) at q = 0 for the figure (the true q̈ does not depend on q).
        let vs: Vec<f64> = (0..=200).map(|k| -0.99 + 1.98 * k as f64 / 200.0).collect();
        let ys = vs
            .iter()
            .map(|&v| pr.qddot(0.0, v))
            .collect::<Result<Vec<f64>>>()?;
        preds.push((vs, ys));
    }
    let metrics = rep.metrics.clone();
    let get = |k: &str| metrics.get(k).copied().unwrap_or(f64::NAN);
    let (l, hc, hv) = (
        get("lnn_accel_error"),
        get("hnn_canonical_accel_error"),
        get("hnn_velocity_accel_error"),
    );
    rep.metric("lnn_over_hnn_canonical", l / hc);
    rep.metric("hnn_velocity_over_lnn", hv / l);

    let panels: Vec<LinePanel> = trained
        .iter()
        .zip(&preds)
        .map(|((name, _, label), (vs, ys))| {
            let truth: Vec<f64> = vs.iter().map(|&v| data::relativistic_accel(v, G)).collect();
            LinePanel {
                title: format!(
                    "{label}: mean |Δa| = {:.2e}",
                    get(&format!("{name}_accel_error"))
                ),
                x_label: "v = dq/dt  (q = 0)".into(),
                y_label: "a = d²q/dt²".into(),
                series: vec![
                    Series::new("truth", vs.clone(), truth),
                    Series::new(label.to_string(), vs.clone(), ys.clone()),
                ],
            }
        })
        .collect();
    let p = out("relativistic_accel.png");
    plot::line_panels(
        &p,
        &format!("Relativistic particle (g = {G}): predicted vs true acceleration"),
        &panels,
        (1500, 500),
        opts.force,
    )?;
    rep.files.push(p);

    rep.config("g", G);
    rep.config("lagrangian", "L = (1 - qdot^2)^(-1/2) - 1 + g q");
    rep.config("state_range", "q, qdot uniform in (-1, 1)");
    rep.config("n_train", c.n_train);
    rep.config("n_test_samples", c.n_test);
    rep.config(
        "network",
        format!(
            "2 -> {}x{} softplus -> 1 (all three models)",
            c.hidden, c.layers
        ),
    );
    rep.config("epochs", c.epochs);
    rep.config("batch", c.batch);
    rep.config("lr", c.lr);
    rep.config(
        "schedule",
        "onecycle, MSE loss, Adam, clip 100, 5% validation",
    );
    rep.config("seed", seed);
    rep.notes.push("g is fixed (g = 1) for all samples: the models take only (q, q̇) or (q, p) as inputs, so a per-sample g would be unobservable.".into());
    rep.notes.push("HNN (q, q̇) is trained on targets (q̇, q̈) (y = q̇ treated as if canonical) and HNN (q, p) on (q̇, ṗ) with p = q̇(1 − q̇²)^(−3/2), ṗ = g; the LNN on q̈.".into());
    rep.notes.push("All three are scored on q̈ at the same held-out (q, q̇): for the canonical HNN q̈ = −H_pp H_q + H_pq H_p at p = p(q̇) (its own predicted q̇ and ṗ, chain rule); metrics *_accel_error = mean |q̈_pred − q̈_true|, *_accel_rel_error = ‖Δq̈‖/‖q̈‖.".into());
    rep.notes.push(format!(
        "Total wall time of training + evaluation: {:.1} s",
        clock.secs()
    ));
    Ok(rep)
}
