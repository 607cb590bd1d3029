//! A single-network LNN with learned dissipation: the Lagrangian network plus per-coordinate
//! coefficients c_k = softplus(θ_k) ≥ 0 of D = ½ Σ_k c_k q̇_k² (`linear`, docs/DESIGN.md §13.2)
//! or a network of q giving D = ½ q̇ᵀ L(q)L(q)ᵀ q̇ (`learned`, §22), trained together by
//! [`super::fit`] with exact adjoint gradients.

use super::gradient::{lnn_dense_block_damped, LnnDamping, Samples, SAMPLE_BLOCK};
use super::loss::LossKind;
use super::mass_penalty::MassPenalty;
use super::{hyperdual, ModelKind, Trainable, TrainedModel};
use crate::density::dissipation::DissipationKind;
use crate::density::dissipation_matrix::MatrixDissipation;
use crate::density::mlp::{softplus, softplus_derivs};
use crate::density::MlpDensity;
use crate::{Error, Result};
use rayon::prelude::*;

/// Model-file parameter (root attribute) holding the k-th learned damping coefficient c_k.
pub fn damping_key(k: usize) -> String {
    format!("damping_{k}")
}

/// The linear damping coefficients stored in a model's parameters, if any.
pub fn model_damping(model: &TrainedModel) -> Option<Vec<f64>> {
    let d = model.dof;
    let c: Vec<f64> = (0..d)
        .filter_map(|k| model.params.get(&damping_key(k)).copied())
        .collect();
    (c.len() == d).then_some(c)
}

/// Mean trace of the learned mass matrix ∂²L/∂q̇² over the first `max` samples of `data`.
pub fn mean_mass_trace(dens: &MlpDensity, data: &Samples, max: usize) -> f64 {
    let d = data.out_dim;
    let lay = crate::density::Density::layout(dens);
    let k = data.n.min(max).max(1);
    (0..data.n.min(max))
        .map(|i| {
            let r = crate::density::eval_one(dens, data.input_row(i));
            (0..d).map(|c| r[lay.mass() + c * d + c]).sum::<f64>()
        })
        .sum::<f64>()
        / k as f64
}

/// Hidden width of the network of a learned dissipation matrix (two layers; docs/DESIGN.md §22).
pub const MATRIX_HIDDEN: usize = 32;
/// Initial R = `INITIAL_RATE`·I of a learned dissipation matrix (as the linear c_k = 0.1).
pub const INITIAL_RATE: f64 = 0.1;

/// An LNN and its learned damping, as one [`Trainable`].
pub struct DampedLnnTrainer {
    pub model: TrainedModel,
    /// Raw parameters θ_k of c_k = softplus(θ_k) (linear damping; empty with a matrix).
    theta_c: Vec<f64>,
    /// The learned dissipation matrix D = ½ q̇ᵀ L Lᵀ q̇ (docs/DESIGN.md §22), used as s·R.
    matrix: Option<MatrixDissipation>,
    dens: MlpDensity,
    penalty: Option<MassPenalty>,
    /// States on which the sign of the learned mass is read.
    probe: Option<Samples>,
    /// s = sign of the mean trace of the learned mass matrix.
    sign: f64,
}

impl DampedLnnTrainer {
    /// Start from `model` (an lnn) with every |c_k| = `c0` > 0.
    ///
    /// L and αL (any α ≠ 0) have the same conservative dynamics; with damping the learned pair
    /// is (αL, αD), so D ≥ 0 in physical units needs c to carry the sign of α. The trainer uses
    /// c_k = s · softplus(θ_k) with s the sign of the learned mass matrix's mean trace over the
    /// first 256 states of `data`, and [`DampedLnnTrainer::finish`] normalises the model to
    /// s = +1 (negating the network when needed), so the stored coefficients are ≥ 0 and the
    /// stored D is non-negative by construction (docs/DESIGN.md §13.2).
    pub fn new(
        model: TrainedModel,
        c0: f64,
        penalty: Option<MassPenalty>,
        data: Option<&Samples>,
    ) -> Result<Self> {
        if model.kind != ModelKind::Lnn {
            return Err(Error::input(format!(
                "learned linear damping of a single-network model needs an lnn, not {}",
                model.kind.as_str()
            )));
        }
        if !(c0.is_finite() && c0 > 0.0) {
            return Err(Error::input("the initial damping must be positive"));
        }
        let d = model.dof;
        let theta = (c0.exp() - 1.0).ln();
        let dens = MlpDensity::with_input(model.net.clone(), 1, d, 0, model.angle_embedding())?;
        let probe = data.map(|x| {
            let idx: Vec<usize> = (0..x.n.min(256)).collect();
            x.subset(&idx)
        });
        let mut t = DampedLnnTrainer {
            model,
            theta_c: vec![theta; d],
            matrix: None,
            dens,
            penalty,
            probe,
            sign: 1.0,
        };
        t.update_sign();
        t.store();
        Ok(t)
    }

    /// Start from `model` (an lnn) with a learned dissipation matrix D = ½ q̇ᵀ L(q)L(q)ᵀ q̇
    /// (docs/DESIGN.md §22): a network of q (of (cos q, sin q) when the model embeds the angles)
    /// of [`MATRIX_HIDDEN`] × 2, starting at R ≈ `r0`·I. The sign convention of
    /// [`DampedLnnTrainer::new`] applies: the trainer uses s·R, the stored R is ⪰ 0.
    pub fn new_learned(
        model: TrainedModel,
        r0: f64,
        seed: u64,
        penalty: Option<MassPenalty>,
        data: Option<&Samples>,
    ) -> Result<Self> {
        let mut t = Self::new(model, r0, penalty, data)?;
        let d = t.model.dof;
        let qs: Vec<&[f64]> = data
            .map(|x| (0..x.n).map(|i| &x.input_row(i)[..d]).collect())
            .unwrap_or_default();
        t.matrix = Some(MatrixDissipation::new(
            d,
            t.model.angle_embedding(),
            t.model.q_period(),
            MATRIX_HIDDEN,
            2,
            seed,
            r0,
            &qs,
        )?);
        t.theta_c.clear();
        for k in 0..d {
            t.model.params.remove(&damping_key(k));
        }
        t.store();
        Ok(t)
    }

    /// The current coefficients c_k = s · softplus(θ_k) (in the learned Lagrangian's units).
    pub fn damping(&self) -> Vec<f64> {
        self.theta_c
            .iter()
            .map(|&t| self.sign * softplus(t))
            .collect()
    }

    fn update_sign(&mut self) {
        if let Some(p) = &self.probe {
            self.sign = if mean_mass_trace(&self.dens, p, 256) < 0.0 {
                -1.0
            } else {
                1.0
            };
        }
    }

    fn store(&mut self) {
        for (k, t) in self.theta_c.iter().enumerate() {
            self.model.params.insert(damping_key(k), softplus(*t));
        }
        self.model.dissipation = self.matrix.clone().map(Box::new);
    }

    /// The learned dissipation matrix (with `new_learned`), R ⪰ 0 in the units of the model
    /// after [`DampedLnnTrainer::finish`].
    pub fn matrix(&self) -> Option<&MatrixDissipation> {
        self.matrix.as_ref()
    }

    /// The trained model normalised to a positive learned mass (L → −L when s = −1), with
    /// its coefficients softplus(θ_k) ≥ 0 stored as `damping_k`.
    pub fn finish(mut self) -> TrainedModel {
        if self.sign < 0.0 {
            let nl = self.model.net.weights.len();
            self.model.net.weights[nl - 1]
                .iter_mut()
                .for_each(|w| *w = -*w);
            self.model.net.biases[nl - 1]
                .iter_mut()
                .for_each(|b| *b = -*b);
        }
        self.store();
        self.model
    }

    fn eval(
        &self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
        penalty: Option<MassPenalty>,
    ) -> Result<(f64, Vec<f64>, usize)> {
        let d = self.model.dof;
        if data.in_dim != 2 * d || data.out_dim != d {
            return Err(Error::input(format!(
                "the data has {} coordinates per sample, the model {d}",
                data.out_dim
            )));
        }
        let c = self.damping();
        let nn = self.model.net.n_params();
        let nd_par = self.matrix.as_ref().map_or(d, |m| m.net.n_params());
        let np = if want_grad { nn + nd_par } else { 0 };
        let inv = data.inv_norm(idx);
        let parts: Vec<Result<(f64, Vec<f64>, usize)>> = idx
            .par_chunks(SAMPLE_BLOCK)
            .map(|chunk| {
                let mut g = vec![0.0; np];
                let (gn, gc) = g.split_at_mut(nn.min(np));
                let mut gc_dummy = vec![0.0; nd_par];
                let form = match &self.matrix {
                    Some(m) => LnnDamping::Matrix(m, self.sign),
                    None => LnnDamping::Linear(&c),
                };
                let (l, nd, _) = lnn_dense_block_damped(
                    &self.dens,
                    data,
                    chunk,
                    loss,
                    inv,
                    penalty,
                    want_grad.then_some(gn),
                    Some((form, if want_grad { gc } else { &mut gc_dummy })),
                )?;
                Ok((l, g, nd))
            })
            .collect();
        let mut total = 0.0;
        let mut grad = vec![0.0; np];
        let mut dropped = 0;
        for p in parts {
            let (l, g, nd) = p?;
            total += l;
            dropped += nd;
            for (x, y) in grad.iter_mut().zip(&g) {
                *x += y;
            }
        }
        if want_grad && self.matrix.is_none() {
            // dc/dθ = sigmoid(θ).
            for k in 0..d {
                grad[nn + k] *= self.sign * softplus_derivs(self.theta_c[k]).1;
            }
        }
        Ok((total, grad, dropped))
    }
}

impl Trainable for DampedLnnTrainer {
    fn params(&self) -> Vec<f64> {
        let mut p = hyperdual::flatten(&self.model.net);
        p.extend_from_slice(&self.theta_c);
        if let Some(m) = &self.matrix {
            p.extend(hyperdual::flatten(&m.net));
        }
        p
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        let nn = self.model.net.n_params();
        let nm = self.matrix.as_ref().map_or(0, |m| m.net.n_params());
        if theta.len() != nn + self.theta_c.len() + nm {
            return Err(Error::input("parameter vector length mismatch"));
        }
        hyperdual::unflatten(&mut self.model.net, &theta[..nn]);
        let nc = self.theta_c.len();
        self.theta_c.copy_from_slice(&theta[nn..nn + nc]);
        if let Some(m) = &mut self.matrix {
            hyperdual::unflatten(&mut m.net, &theta[nn + nc..]);
        }
        self.dens = MlpDensity::with_input(
            self.model.net.clone(),
            1,
            self.model.dof,
            0,
            self.model.angle_embedding(),
        )?;
        self.update_sign();
        self.store();
        Ok(())
    }
    fn loss_grad(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        self.eval(data, idx, loss, want_grad, self.penalty)
    }
    fn val_loss(&mut self, data: &Samples, idx: &[usize], loss: LossKind) -> Result<(f64, usize)> {
        self.eval(data, idx, loss, false, None)
            .map(|(l, _, d)| (l, d))
    }
}

/// Train an lnn with learned linear damping (initial c_k = 0.1) by [`super::fit`]; the best
/// coefficients are in the returned model's parameters (`damping_k`, see [`model_damping`]).
pub fn train_damped_lnn(
    model: TrainedModel,
    data: &Samples,
    cfg: &super::TrainConfig,
    on_step: &mut dyn FnMut(&super::Progress),
) -> Result<(TrainedModel, super::TrainReport)> {
    train_dissipative_lnn(model, DissipationKind::Linear, data, cfg, on_step)
}

/// The trainer of `lgn train --model lnn --dissipation KIND` (`linear`: c_k = 0.1 initially;
/// `learned`: R = 0.1·I initially, docs/DESIGN.md §22). `none` is refused: it is the
/// conservative [`super::NetTrainer`].
pub fn dissipative_lnn_trainer(
    model: TrainedModel,
    kind: DissipationKind,
    data: &Samples,
    penalty: Option<MassPenalty>,
    seed: u64,
) -> Result<DampedLnnTrainer> {
    match kind {
        DissipationKind::Linear => DampedLnnTrainer::new(model, INITIAL_RATE, penalty, Some(data)),
        DissipationKind::Learned => {
            DampedLnnTrainer::new_learned(model, INITIAL_RATE, seed, penalty, Some(data))
        }
        DissipationKind::None => Err(Error::input(
            "a dissipative lnn needs --dissipation linear or learned",
        )),
    }
}

/// Train an lnn with its dissipation (`linear` or `learned`, see [`dissipative_lnn_trainer`])
/// by [`super::fit`]; the best model carries `damping_k` or its
/// [`TrainedModel::dissipation`].
pub fn train_dissipative_lnn(
    model: TrainedModel,
    kind: DissipationKind,
    data: &Samples,
    cfg: &super::TrainConfig,
    on_step: &mut dyn FnMut(&super::Progress),
) -> Result<(TrainedModel, super::TrainReport)> {
    let mut t = dissipative_lnn_trainer(model, kind, data, cfg.mass_penalty, cfg.seed)?;
    let report = super::fit(&mut t, data, cfg, on_step)?;
    Ok((t.finish(), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (ℓ(θ + h e_k) − ℓ(θ − h e_k)) / 2h of the trainer's MSE loss.
    fn central_difference(
        t: &mut DampedLnnTrainer,
        samples: &Samples,
        idx: &[usize],
        theta: &[f64],
        k: usize,
        h: f64,
    ) -> f64 {
        let mut tp = theta.to_vec();
        tp[k] += h;
        t.set_params(&tp).unwrap();
        let lp = t.loss_grad(samples, idx, LossKind::Mse, false).unwrap().0;
        tp[k] -= 2.0 * h;
        t.set_params(&tp).unwrap();
        let lm = t.loss_grad(samples, idx, LossKind::Mse, false).unwrap().0;
        (lp - lm) / (2.0 * h)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let model = TrainedModel::init(ModelKind::Lnn, "dblpend", 2, 16, 2, 3).unwrap();
        let data = crate::data::damped::dblpend_damped_samples(40, 9.8, 3.0, 0.5, 1).unwrap();
        let samples = Samples::from_data(&data).unwrap();
        let mut t = DampedLnnTrainer::new(model, 0.3, None, Some(&samples)).unwrap();
        let idx: Vec<usize> = (0..40).collect();
        let (_, g, _) = t.loss_grad(&samples, &idx, LossKind::Mse, true).unwrap();
        let theta = t.params();
        let h = 1e-6;
        let n = theta.len();
        // The damping parameters and a spread of network parameters.
        let check: Vec<usize> = (0..n).step_by(7).chain([n - 2, n - 1]).collect();
        for &k in &check {
            let fd = central_difference(&mut t, &samples, &idx, &theta, k, h);
            assert!(
                (fd - g[k]).abs() <= 1e-5 * (fd.abs().max(g[k].abs()) + 1e-3),
                "param {k}: fd {fd} vs {}",
                g[k]
            );
        }
        t.set_params(&theta).unwrap();
        // finish(): normalised to a positive mass, c ≥ 0, the same accelerations.
        let row = samples.input_row(0).to_vec();
        let c_signed = t.damping();
        let mut before = crate::systems::single_site(
            std::sync::Arc::new(t.dens.clone()),
            crate::solve::SolverKind::Auto,
        )
        .unwrap();
        let a0 = before.accelerations(&row[..2], &row[2..]).unwrap();
        let m = before.mass_matrix().to_dense();
        let model = t.finish();
        let c = model_damping(&model).unwrap();
        assert!(c.iter().all(|&x| x > 0.0));
        let dens = MlpDensity::new(model.net.clone(), 1, 2, 0).unwrap();
        assert!(mean_mass_trace(&dens, &samples, 256) > 0.0);
        let a = model
            .dynamics(None, crate::solve::SolverKind::Auto)
            .unwrap()
            .accelerations(&row[..2], &row[2..])
            .unwrap();
        let f: Vec<f64> = (0..2).map(|k| c_signed[k] * row[2 + k]).collect();
        let det = m[[0, 0]] * m[[1, 1]] - m[[0, 1]] * m[[1, 0]];
        for k in 0..2 {
            let minv_f = if k == 0 {
                (m[[1, 1]] * f[0] - m[[0, 1]] * f[1]) / det
            } else {
                (-m[[1, 0]] * f[0] + m[[0, 0]] * f[1]) / det
            };
            let expect = a0[k] - minv_f;
            assert!(
                (a[k] - expect).abs() < 1e-8 * (1.0 + expect.abs()),
                "{a:?} vs {expect}"
            );
        }
    }

    /// Accelerations of the trainer's current (signed) model, from its conservative part and
    /// s·R(q) q̇ assembled here: M a = b − s R q̇.
    fn signed_accel(t: &DampedLnnTrainer, row: &[f64]) -> Vec<f64> {
        let mut dy = crate::systems::single_site(
            std::sync::Arc::new(t.dens.clone()),
            crate::solve::SolverKind::Auto,
        )
        .unwrap();
        let a0 = dy.accelerations(&row[..2], &row[2..]).unwrap();
        let m = dy.mass_matrix().to_dense();
        let r = t.matrix().unwrap().matrix(&row[..2]);
        let f: Vec<f64> = (0..2)
            .map(|k| t.sign * (r[2 * k] * row[2] + r[2 * k + 1] * row[3]))
            .collect();
        let det = m[[0, 0]] * m[[1, 1]] - m[[0, 1]] * m[[1, 0]];
        let mf = [
            (m[[1, 1]] * f[0] - m[[0, 1]] * f[1]) / det,
            (-m[[1, 0]] * f[0] + m[[0, 0]] * f[1]) / det,
        ];
        vec![a0[0] - mf[0], a0[1] - mf[1]]
    }

    #[test]
    fn learned_matrix_gradient_matches_finite_differences() {
        let data = crate::data::damped::dblpend_damped_samples(30, 9.8, 3.0, 0.5, 2).unwrap();
        let samples = Samples::from_data(&data).unwrap();
        let idx: Vec<usize> = (0..30).collect();
        let mut signs = vec![];
        for (embed, negate) in [(true, false), (true, true), (false, false), (false, true)] {
            let mut model = TrainedModel::init(ModelKind::Lnn, "dblpend", 2, 12, 2, 4).unwrap();
            if embed {
                model.set_angle_embedding(4).unwrap();
            }
            if negate {
                // A negative learned mass: the trainer uses s = −1 (docs/DESIGN.md §13.2).
                let nl = model.net.weights.len();
                model.net.weights[nl - 1].iter_mut().for_each(|w| *w = -*w);
            }
            let mut t = DampedLnnTrainer::new_learned(model, 0.3, 9, None, Some(&samples)).unwrap();
            signs.push(t.sign);
            // Output weights of order one: R varies with q, L has off-diagonal entries.
            let mut theta = t.params();
            let n = theta.len();
            let msz = t.matrix().unwrap().net.sizes.clone();
            let nm = t.matrix().unwrap().net.n_params();
            let (wo, _) = *hyperdual::param_offsets(&msz).last().unwrap();
            let nout_w = msz[msz.len() - 1] * msz[msz.len() - 2];
            for x in &mut theta[n - nm + wo..n - nm + wo + nout_w] {
                *x *= 10.0;
            }
            t.set_params(&theta).unwrap();
            let (_, g, _) = t.loss_grad(&samples, &idx, LossKind::Mse, true).unwrap();
            let check: Vec<usize> = (0..n).step_by(5).chain(n - nm..n).collect();
            let mut worst = 0.0f64;
            for &k in &check {
                // The loss is ~2·10³: the dissipation's parameters (a smooth, nearly quadratic
                // dependence) take h = 1e-4 so that the round-off ε·ℓ/h stays below 1e-8; the
                // Lagrangian's (strongly curved) h = 1e-6.
                let h = if k >= n - nm { 1e-4 } else { 1e-6 };
                let fd = central_difference(&mut t, &samples, &idx, &theta, k, h);
                worst = worst.max((fd - g[k]).abs() / (fd.abs().max(g[k].abs()) + 1e-3));
            }
            assert!(worst < 1e-5, "embed {embed}: worst relative error {worst}");
            t.set_params(&theta).unwrap();
            // finish(): positive mass, R stored ⪰ 0, the same accelerations; the file keeps it.
            let row = samples.input_row(3).to_vec();
            let expect = signed_accel(&t, &row);
            let model = t.finish();
            assert!(model.dissipation.is_some() && model_damping(&model).is_none());
            let a = model
                .dynamics(None, crate::solve::SolverKind::Auto)
                .unwrap()
                .accelerations(&row[..2], &row[2..])
                .unwrap();
            for k in 0..2 {
                assert!(
                    (a[k] - expect[k]).abs() < 1e-9 * (1.0 + expect[k].abs()),
                    "{a:?} vs {expect:?}"
                );
            }
            let path = std::env::temp_dir()
                .join(format!("lgn-lnn-matrix-{}-{embed}.h5", std::process::id()));
            model.save(&path, None, true).unwrap();
            let back = super::super::load_model(&path).unwrap();
            assert_eq!(back.dissipation, model.dissipation);
            let b = back
                .dynamics(None, crate::solve::SolverKind::Auto)
                .unwrap()
                .accelerations(&row[..2], &row[2..])
                .unwrap();
            assert_eq!(a, b);
            std::fs::remove_file(&path).ok();
        }
        // Negating the network flips the sign the trainer uses: both signs were checked.
        assert!(signs[0] == -signs[1] && signs[2] == -signs[3], "{signs:?}");
    }
}
