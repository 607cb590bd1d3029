//! Learning from positions only (issue 12): the weak-form Euler–Lagrange objective
//! (docs/DESIGN.md §12) with exact gradients, for single-site LNNs and for graph models, as
//! [`Trainable`]s driven by [`super::fit`].
//!
//! A *window* of the data is the 2K + 5 frames k = c − K − 2 … c + K + 2 around a centre frame c.
//! With the bump φ(s) = (1 − s²)^P, s = (t − t_c)/(K h), weights w_k = h φ_k (zero for |s| ≥ 1)
//! and w' = D w (D the sixth-order central difference, the summation-by-parts partner of the
//! same stencil applied to ∂L/∂q̇), the Euler–Lagrange equations tested against φ read
//!
//! ```text
//! R = Σ_k [ w_k ∂L/∂q(q_k, q̇_k) + w'_k ∂L/∂q̇(q_k, q̇_k) ] = Σ_k w_k [∂L/∂q − D(∂L/∂q̇)]_k ≈ 0   (12.1)
//! r = M_c⁻¹ R / Φ,   Φ = Σ_k w_k,   M_c = ∂²L/∂q̇² at the centre frame                               (12.2)
//! ```
//!
//! q̇_k is the sixth-order central difference (stencil D) of the measured positions (no q̈ is ever
//! estimated). r is an acceleration: for L = ½ q̇ᵀMq̇ − V it is the φ-weighted mean of
//! M⁻¹F − q̈ over the window. The loss is f(r) per coordinate ([`LossKind`]), presented to
//! [`super::fit`] as prediction ā + r against the target ā = −Σ_k w'_k q̇_k / Φ (the window's
//! weighted mean acceleration), so the normalisation ℓ₀ of [`super::fit`] is the loss of a
//! Lagrangian with no forces, and r is invariant under L → cL: a constant or vanishing
//! Lagrangian cannot satisfy the objective (its M is singular).
//!
//! Exact gradient (docs/DESIGN.md §12.3): with g = ∂ℓ/∂r and y = M_c⁻¹ g,
//!
//! ```text
//! dℓ/dθ = ∂/∂θ [ Σ_k D_(w_k y/Φ, w'_k y/Φ) L(x_k) − D_(0,y) D_(0,r) L(x_c) ]                          (12.3)
//! ```
//!
//! one hyper-dual sweep per frame ([`adjoint_block`] with u₃ = (w_k y, w'_k y)/Φ, and at the centre
//! u₁ = (0, y), u₂ = (0, r)).

use super::gradient::{mlp_sweep_batch, SampleState, SweepChannels};
use super::gradient::{small_lu_solve, solve_mass, Samples};
use super::graph::{kinetic_backward, potential_adjoint_batch, GraphTrainer};
use super::hyperdual::{self, n_params};
use super::loss::LossKind;
use super::mass_penalty::{self, MassPenalty};
use super::{Trainable, TrainedModel};
use crate::density::potential::wrap_opt;
use crate::density::{Density, MlpDensity, PotentialInput};
use crate::dynamics::Dynamics;
use crate::io::PositionsData;
use crate::model::{GraphModel, GraphTerm, SystemGraph};
use crate::{Error, Result};
use rayon::prelude::*;
use std::path::Path;

/// The training objective (`lgn train --objective`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveKind {
    /// Weak-form Euler–Lagrange residual on windows of positions (docs/DESIGN.md §12): no
    /// derivative estimates beyond the velocities inside L. Default for positions-only data.
    Weak,
    /// Baseline: Savitzky–Golay estimates of q̇ and q̈ (quartic, 11 frames), then the
    /// acceleration loss.
    Savgol,
    /// Baseline: central-difference estimates of q̇ and q̈, then the acceleration loss.
    Central,
    /// The acceleration loss on measured q̇ and q̈ (samples files, trajectories with qddot).
    Accel,
}

crate::named!(ObjectiveKind {
    Weak => "weak": "weak-form Euler–Lagrange residual on windows of positions (no derivative estimates)",
    Savgol => "savgol": "baseline: Savitzky–Golay estimates of q̇ and q̈, then the acceleration loss",
    Central => "central": "baseline: central-difference estimates of q̇ and q̈, then the acceleration loss",
    Accel => "accel": "the acceleration loss on measured q̇ and q̈",
});

/// Window shape of the weak-form objective.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeakForm {
    /// K: the test function spans 2K steps (2K − 1 frames carry weight).
    pub half_width: usize,
    /// P of φ(s) = (1 − s²)^P (P ≥ 2: φ and φ' vanish at the ends).
    pub power: i32,
    /// S: consecutive windows per training row (docs/DESIGN.md §12.5). A row holds the S + 2K + 4
    /// frames of S neighbouring windows, so each frame is evaluated once per row instead of
    /// once per window (the windows overlap by 2K + 4 frames): one network pass and one
    /// reverse-sweep site per frame. 1 = one window per row.
    pub segment: usize,
}

impl Default for WeakForm {
    fn default() -> Self {
        WeakForm {
            half_width: 5,
            power: 4,
            segment: 16,
        }
    }
}

/// Frames beyond a window needed by the velocity stencil on each side.
const STENCIL: usize = 3;

/// The velocity stencil [`D6`] (offsets −3..=3, times h).
pub fn velocity_stencil() -> &'static [f64; 7] {
    &D6
}

/// The sixth-order central first-difference stencil D (offsets −3..=3, times h):
/// f'(t) = Σ_m D_m f(t + m h)/h + O(h⁶ f⁽⁷⁾/140). Antisymmetric, so Σ_k w_k (D p)_k = −Σ_k (D w)_k p_k
/// for weights that vanish three frames before the ends.
const D6: [f64; 7] = [
    -1.0 / 60.0,
    9.0 / 60.0,
    -45.0 / 60.0,
    0.0,
    45.0 / 60.0,
    -9.0 / 60.0,
    1.0 / 60.0,
];

impl WeakForm {
    fn check(&self) -> Result<()> {
        if self.half_width < 2 || self.half_width > 1000 {
            return Err(Error::input(format!(
                "the weak-form half-width K must be in 2..=1000, got {}",
                self.half_width
            )));
        }
        if !(1..=4096).contains(&self.segment) {
            return Err(Error::input(format!(
                "the weak-form segment (windows per training row) must be in 1..=4096, got {}",
                self.segment
            )));
        }
        if !(2..=16).contains(&self.power) {
            return Err(Error::input(format!(
                "the weak-form test-function power must be in 2..=16, got {}",
                self.power
            )));
        }
        Ok(())
    }

    /// Frames per window (2K + 5): the 2K − 1 frames where φ > 0 and three more on each side,
    /// where the discrete derivative of the weights is non-zero.
    pub fn frames(&self) -> usize {
        2 * self.half_width - 1 + 2 * STENCIL
    }

    /// Index of the centre frame within a window.
    pub fn centre(&self) -> usize {
        self.half_width - 1 + STENCIL
    }

    /// Fewest frames per trajectory for one window (2K + 11: the window plus the velocity
    /// stencil).
    pub fn min_frames(&self) -> usize {
        self.frames() + 2 * STENCIL
    }

    /// Weights (w_k, w'_k) of the window's frames at step h and Φ = Σ w_k: w_k = h φ(s_k) and
    /// w' = D w, the sixth-order central difference of the weights (the summation-by-parts
    /// partner of the stencil that differentiates ∂L/∂q̇, docs/DESIGN.md §12.1).
    pub fn weights(&self, h: f64) -> (Vec<f64>, Vec<f64>, f64) {
        let k = self.half_width as f64;
        let p = self.power;
        let f = self.frames();
        let w: Vec<f64> = (0..f)
            .map(|j| {
                let s = (j as f64 - self.centre() as f64) / k;
                if s.abs() >= 1.0 {
                    0.0
                } else {
                    h * (1.0 - s * s).powi(p)
                }
            })
            .collect();
        let at = |j: isize| {
            if j < 0 || j >= f as isize {
                0.0
            } else {
                w[j as usize]
            }
        };
        let wd = (0..f as isize)
            .map(|j| {
                D6.iter()
                    .enumerate()
                    .map(|(m, c)| c * at(j + m as isize - 3))
                    .sum::<f64>()
                    / h
            })
            .collect();
        let phi = w.iter().sum();
        (w, wd, phi)
    }

    /// Cut every trajectory of `pos` (fixed step h, checked) into windows, one per centre frame:
    /// input rows [(q_k, q̇_k) for the 2K − 1 frames], target ā (see the module documentation).
    /// `path` names the data in errors. q̇ is the sixth-order central difference [`D6`].
    pub fn windows(&self, pos: &PositionsData, path: &Path) -> Result<WindowData> {
        self.check()?;
        let h = pos.uniform_step(path)?;
        let (b, t, d) = pos.q.dim();
        if t < self.min_frames() {
            return Err(Error::file_at(
                path,
                "/q",
                format!(
                    "has {t} frames per trajectory; the weak-form objective (window of {} frames, K = {}) needs at least {}",
                    self.frames(),
                    self.half_width,
                    self.min_frames()
                ),
            ));
        }
        let f = self.frames();
        let (_, wd, phi) = self.weights(h);
        let lo = self.centre() + STENCIL;
        // Centres lo..t − lo; rows of `per` consecutive windows, the tiling centred (the
        // remainder, fewer than `per` windows per trajectory, is left out at both ends).
        let nwin = t - 2 * lo;
        let per = self.segment.min(nwin);
        let rows = nwin / per;
        let first = lo + (nwin - rows * per) / 2;
        let fr = per + f - 1;
        let nr = b * rows;
        crate::limits::check_alloc(
            "weak-form windows",
            (nr as u128) * (fr as u128 * 2 * d as u128 + per as u128 * d as u128),
            8,
        )?;
        let mut input = Vec::with_capacity(nr * fr * 2 * d);
        let mut target = Vec::with_capacity(nr * per * d);
        let vel = |bi: usize, k: usize, j: usize| {
            D6.iter()
                .enumerate()
                .map(|(m, c)| c * pos.q[[bi, k + m - 3, j]])
                .sum::<f64>()
                / h
        };
        for bi in 0..b {
            for row in 0..rows {
                // Frame 0 of the row is frame c0 − centre of the trajectory.
                let c0 = first + row * per;
                let k0 = c0 - self.centre();
                for k in k0..k0 + fr {
                    input.extend((0..d).map(|j| pos.q[[bi, k, j]]));
                    input.extend((0..d).map(|j| vel(bi, k, j)));
                }
                for c in c0..c0 + per {
                    let k = c - self.centre();
                    target.extend((0..d).map(|j| {
                        -wd.iter()
                            .enumerate()
                            .map(|(jf, wdj)| wdj * vel(bi, k + jf, j))
                            .sum::<f64>()
                            / phi
                    }));
                }
            }
        }
        let samples = Samples::new(fr * 2 * d, per * d, input, target, None)
            .map_err(|e| Error::file(path, e.to_string()))?;
        Ok(WindowData {
            form: *self,
            h,
            dim: d,
            per_row: per,
            samples,
        })
    }
}

/// Windows of positions-only data (see [`WeakForm::windows`]).
#[derive(Clone, Debug)]
pub struct WindowData {
    pub form: WeakForm,
    pub h: f64,
    /// Coordinates per frame D.
    pub dim: usize,
    /// Windows per row S (≤ `form.segment`; a row holds S + F − 1 frames, F = `form.frames()`).
    pub per_row: usize,
    /// One row per segment: the (q_k, q̇_k) of its frames, targets ā of its S windows.
    pub samples: Samples,
}

impl WindowData {
    /// The centre frame's (q, q̇) of every window as a samples set (input normalisation,
    /// model initialisation); targets are the windows' ā (the rows' targets in order).
    pub fn centre_states(&self) -> Samples {
        let (d, per) = (self.dim, self.per_row);
        let c = self.form.centre();
        let n = self.samples.n * per;
        let mut input = Vec::with_capacity(n * 2 * d);
        for i in 0..self.samples.n {
            let row = self.samples.input_row(i);
            input.extend_from_slice(&row[c * 2 * d..(c + per) * 2 * d]);
        }
        Samples {
            n,
            in_dim: 2 * d,
            out_dim: d,
            input,
            target: self.samples.target.clone(),
            weights: None,
        }
    }

    /// Number of windows (rows × windows per row).
    pub fn n_windows(&self) -> usize {
        self.samples.n * self.per_row
    }

    /// Wrap the q slots of every frame (models of angles, see [`TrainedModel::wrap_q`]); the
    /// velocities and targets were computed from the unwrapped positions.
    pub fn wrap_q(&mut self, model: &TrainedModel) {
        let d = self.dim;
        for frame in self.samples.input.chunks_exact_mut(2 * d) {
            model.wrap_q(&mut frame[..d]);
        }
    }
}

/// Loss (and with `grad` its exact gradient (12.3)) of a single-site density `dens` (arity 1,
/// dof D) over the rows `idx` of one block (S windows each); windows whose centre M is
/// singular or badly conditioned are dropped (counted). Every frame of a row is evaluated once
/// and is one site of the reverse sweep: u₃ sums (w_k y, w'_k y)/Φ over the row's windows that
/// contain it, and at a window's centre u₁ = (0, y), u₂ = (0, r) (each frame is the centre of at
/// most one window). With `penalty`, the mass-matrix definiteness penalty (§8) on every centre
/// M. `mlp` is the learned density whose network gets the reverse sweep, through its angle
/// embedding when it has one (None: no gradient, e.g. an analytic density).
#[allow(clippy::too_many_arguments)]
fn dense_block(
    dens: &dyn Density,
    mlp: Option<&MlpDensity>,
    wdata: &WindowData,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    inv_norm: f64,
    penalty: Option<MassPenalty>,
    grad: Option<&mut [f64]>,
) -> (f64, usize) {
    let d = wdata.dim;
    let p = 2 * d;
    let (f, cf, per) = (wdata.form.frames(), wdata.form.centre(), wdata.per_row);
    let fr = per + f - 1;
    let (w, wd, phi) = wdata.form.weights(wdata.h);
    let lay = dens.layout();
    let stride = lay.stride();
    let ns = idx.len() * fr;
    // Column-major p × ns: column = (row, frame).
    let mut x = Vec::with_capacity(p * ns);
    for &i in idx {
        x.extend_from_slice(data.input_row(i));
    }
    let mut rec = vec![0.0; stride * ns];
    dens.eval_block(&x, ns, &mut rec);
    let want = grad.is_some() && mlp.is_some();
    // Reverse-sweep sites [x | u1 | u2 | u3], p values each.
    let mut sites: Vec<f64> = Vec::with_capacity(if want { 4 * p * ns } else { 0 });
    let mut u = vec![0.0; if want { 3 * p * fr } else { 0 }];
    let (mut m, mut r, mut g, mut pred) =
        (vec![0.0; d * d], vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let (mut total, mut dropped) = (0.0, 0usize);
    for (ri, &i) in idx.iter().enumerate() {
        let at = |k: usize| &rec[(ri * fr + k) * stride..(ri * fr + k + 1) * stride];
        let (xr, tr) = (data.input_row(i), data.target_row(i));
        let scale = data.weight(i) * inv_norm;
        u.fill(0.0);
        for j in 0..per {
            // R/Φ of window j (frames j..j + F of the row), then M_c⁻¹.
            r.fill(0.0);
            for k in 0..f {
                let rk = at(j + k);
                for c in 0..d {
                    r[c] += (w[k] * rk[lay.grad_q() + c] + wd[k] * rk[lay.grad_v() + c]) / phi;
                }
            }
            let m0 = &at(j + cf)[lay.mass()..lay.mass() + d * d];
            let Some(piv) = solve_mass(m0, &mut m, d, &mut r) else {
                dropped += 1;
                continue;
            };
            let tgt = &tr[j * d..(j + 1) * d];
            for c in 0..d {
                pred[c] = tgt[c] + r[c];
            }
            total += loss.sample(&pred, tgt, scale, &mut g);
            if want {
                small_lu_solve(&m, &piv, d, &mut g); // y = M_c⁻¹ ∂ℓ/∂r
                for k in 0..f {
                    let u3 = &mut u[(3 * (j + k) + 2) * p..(3 * (j + k) + 3) * p];
                    for c in 0..d {
                        u3[c] += w[k] * g[c] / phi;
                        u3[d + c] += wd[k] * g[c] / phi;
                    }
                }
                // − D_(0,y) D_(0,r) L at the centre.
                let uc = &mut u[3 * (j + cf) * p..(3 * (j + cf) + 2) * p];
                uc[d..p].copy_from_slice(&g);
                uc[p + d..2 * p].copy_from_slice(&r);
            }
        }
        if want {
            for k in 0..fr {
                let uk = &u[3 * k * p..3 * (k + 1) * p];
                if uk.iter().any(|&x| x != 0.0) {
                    sites.extend_from_slice(&xr[k * p..(k + 1) * p]);
                    sites.extend_from_slice(uk);
                }
            }
        }
    }
    if let Some(pen) = penalty {
        // The definiteness penalty of §8 on every window's centre M (each frame is the centre
        // of one window), dropped windows included: it is what pushes them back to a regular M.
        let mut ms = Vec::with_capacity(idx.len() * per * d * d);
        let mut pw = Vec::with_capacity(idx.len() * per);
        for (ri, &i) in idx.iter().enumerate() {
            for j in 0..per {
                let rc = &rec[(ri * fr + j + cf) * stride..(ri * fr + j + cf + 1) * stride];
                ms.extend_from_slice(&rc[lay.mass()..lay.mass() + d * d]);
                pw.push(pen.weight * data.weight(i) * inv_norm * d as f64);
            }
        }
        let (pv, dirs) = mass_penalty::block_penalty(&ms, d, &pw, pen, want);
        total += pv;
        for dir in &dirs {
            // S = −D_u1 D_u2 ρ with u1 = (0, −coef u), u2 = (0, u), u3 = 0: coef uᵀMu.
            let (ri, j) = (dir.sample / per, dir.sample % per);
            let xr = data.input_row(idx[ri]);
            sites.extend_from_slice(&xr[(j + cf) * p..(j + cf + 1) * p]);
            sites.extend(std::iter::repeat_n(0.0, d));
            sites.extend(dir.u.iter().map(|x| -dir.coef * x));
            sites.extend(std::iter::repeat_n(0.0, d));
            sites.extend_from_slice(&dir.u);
            sites.extend(std::iter::repeat_n(0.0, p));
        }
    }
    if let (Some(grad), Some(mlp)) = (grad, mlp) {
        // Through the angle embedding when the network has one (docs/DESIGN.md §14.6, §12.9).
        super::gradient::sweep_sites(mlp, &sites, d, grad);
    }
    (total, dropped)
}

/// Rows per block of the dense path (fixed, so sums do not depend on the thread count).
const WINDOW_BLOCK: usize = 4;

/// Weak-form loss and gradient of a single-site density over `idx`, parallel over fixed blocks.
#[allow(clippy::too_many_arguments)]
pub fn dense_weak_loss_grad(
    dens: &dyn Density,
    mlp: Option<&MlpDensity>,
    wdata: &WindowData,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    penalty: Option<MassPenalty>,
    want_grad: bool,
) -> (f64, Vec<f64>, usize) {
    let np = match (want_grad, mlp) {
        (true, Some(m)) => n_params(&m.mlp.sizes),
        _ => 0,
    };
    let inv = data.inv_norm(idx);
    let parts: Vec<(f64, Vec<f64>, usize)> = idx
        .par_chunks(WINDOW_BLOCK)
        .map(|chunk| {
            let mut g = vec![0.0; np];
            let (l, nd) = dense_block(
                dens,
                mlp,
                wdata,
                data,
                chunk,
                loss,
                inv,
                penalty,
                (np > 0).then_some(g.as_mut_slice()),
            );
            (l, g, nd)
        })
        .collect();
    let mut g = vec![0.0; np];
    let (mut l, mut nd) = (0.0, 0);
    for (pl, pg, pd) in parts {
        l += pl;
        nd += pd;
        for (a, b) in g.iter_mut().zip(&pg) {
            *a += b;
        }
    }
    (l, g, nd)
}

/// A single-site LNN ([`TrainedModel`] of kind lnn) trained on weak-form windows, with the
/// optional mass-matrix definiteness penalty of docs/DESIGN.md §8 on the windows' centre M
/// (training loss only, as in [`super::NetTrainer`]).
pub struct WeakLnnTrainer {
    pub model: TrainedModel,
    pub windows: WindowData,
    dens: MlpDensity,
    penalty: Option<MassPenalty>,
}

impl WeakLnnTrainer {
    /// `windows` must come from data with the model's D coordinates (already wrapped with
    /// [`WindowData::wrap_q`] when the model has a coordinate period).
    pub fn new(
        model: TrainedModel,
        windows: WindowData,
        penalty: Option<MassPenalty>,
    ) -> Result<WeakLnnTrainer> {
        if model.kind != super::ModelKind::Lnn {
            return Err(Error::input(format!(
                "the weak-form objective trains single-site LNNs (--model lnn) and graph networks (--graph/--mesh); not '{}' (use --objective savgol for it)",
                model.kind.as_str()
            )));
        }
        // The network's input: (q, q̇), or (cos q, sin q, q̇) with the angle embedding.
        let per_coord = if model.angle_embedding() { 3 } else { 2 };
        if model.net.sizes[0] != per_coord * windows.dim {
            return Err(Error::input(format!(
                "the model takes {} coordinates but the data has {}",
                model.net.sizes[0] / per_coord,
                windows.dim
            )));
        }
        let dens = Self::density(&model, windows.dim)?;
        Ok(WeakLnnTrainer {
            model,
            windows,
            dens,
            penalty,
        })
    }
}

impl WeakLnnTrainer {
    /// The model's density over `dim` coordinates, embedded when the model is (the windows'
    /// q are already wrapped when the model has a period, so no period here).
    fn density(model: &TrainedModel, dim: usize) -> Result<MlpDensity> {
        MlpDensity::with_input(model.net.clone(), 1, dim, 0, model.angle_embedding())
    }
}

impl Trainable for WeakLnnTrainer {
    fn params(&self) -> Vec<f64> {
        hyperdual::flatten(&self.model.net)
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        hyperdual::unflatten(&mut self.model.net, theta);
        self.dens = Self::density(&self.model, self.windows.dim)?;
        Ok(())
    }
    fn loss_grad(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        check_windows(data, &self.windows)?;
        Ok(dense_weak_loss_grad(
            &self.dens,
            Some(&self.dens),
            &self.windows,
            data,
            idx,
            loss,
            self.penalty,
            want_grad,
        ))
    }
    fn val_loss(&mut self, data: &Samples, idx: &[usize], loss: LossKind) -> Result<(f64, usize)> {
        let (l, _, nd) = dense_weak_loss_grad(
            &self.dens,
            Some(&self.dens),
            &self.windows,
            data,
            idx,
            loss,
            None,
            false,
        );
        Ok((l, nd))
    }
}

/// `data` must be the windows a weak-form trainer was built with (same window shape and D).
fn check_windows(data: &Samples, windows: &WindowData) -> Result<()> {
    let w = &windows.samples;
    if data.in_dim != w.in_dim || data.out_dim != w.out_dim {
        return Err(Error::input(format!(
            "the data are not weak-form windows of this model: rows of {} values and {} targets, the model's windows have {} and {}",
            data.in_dim, data.out_dim, w.in_dim, w.out_dim
        )));
    }
    Ok(())
}

/// A [`GraphModel`] trained on weak-form windows: every term kind (kinetic, potentials,
/// general `sites`/`stencil` densities, closed terms), on the workers of a [`GraphTrainer`].
pub struct WeakGraphTrainer {
    pub inner: GraphTrainer,
    pub windows: WindowData,
}

impl WeakGraphTrainer {
    pub fn new(
        model: GraphModel,
        graph: SystemGraph,
        windows: WindowData,
    ) -> Result<WeakGraphTrainer> {
        if windows.dim != graph.n_coords() {
            return Err(Error::input(format!(
                "the data has {} coordinates per frame but the graph {} has {}",
                windows.dim,
                graph.name,
                graph.n_coords()
            )));
        }
        Ok(WeakGraphTrainer {
            inner: GraphTrainer::new(model, graph)?,
            windows,
        })
    }
}

/// ∂L/∂q and ∂L/∂q̇ of the whole system from the site records of the last
/// [`Dynamics::evaluate_sites`], added into `gq`, `gv` (zeroed first).
fn gather_gradients(dy: &Dynamics, gq: &mut [f64], gv: &mut [f64]) {
    gq.fill(0.0);
    gv.fill(0.0);
    let d = dy.lagrangian.dof;
    for (ti, term) in dy.lagrangian.terms.iter().enumerate() {
        let lay = term.density.layout();
        let stride = lay.stride();
        let recs = &dy.derivs[dy.pattern.term_offsets[ti]..dy.pattern.term_offsets[ti + 1]];
        for (s, rec) in recs.chunks_exact(stride).enumerate() {
            for (ia, &node) in term.sites.neighbourhood(s).iter().enumerate() {
                for c in 0..d {
                    gq[node * d + c] += rec[lay.grad_q() + ia * d + c];
                    gv[node * d + c] += rec[lay.grad_v() + ia * d + c];
                }
            }
        }
    }
}

/// Forward pass of one window of a graph model: its loss, and with `out = (y, r)` the adjoint
/// y = M_c⁻¹ ∂ℓ/∂r and the residual r (12.2), both zero at fixed coordinates.
fn graph_window_forward(
    dy: &mut Dynamics,
    wdata: &WindowData,
    (x, target): (&[f64], &[f64]),
    scale: f64,
    loss: LossKind,
    out: Option<(&mut [f64], &mut [f64])>,
) -> Result<f64> {
    let n = wdata.dim;
    let (w, wd, phi) = wdata.form.weights(wdata.h);
    let (mut gq, mut gv) = (vec![0.0; n], vec![0.0; n]);
    let mut r = vec![0.0; n];
    for (k, xk) in x.chunks_exact(2 * n).enumerate() {
        dy.evaluate_sites(&xk[..n], &xk[n..])?;
        gather_gradients(dy, &mut gq, &mut gv);
        for j in 0..n {
            r[j] += (w[k] * gq[j] + wd[k] * gv[j]) / phi;
        }
        if k == wdata.form.centre() {
            dy.assemble();
            dy.solver.factorize(&dy.pattern, &dy.mass)?;
        }
    }
    for &j in dy.fixed_coords() {
        r[j] = 0.0;
    }
    dy.solver.solve_in_place(&mut r)?;
    let pred: Vec<f64> = target.iter().zip(&r).map(|(t, r)| t + r).collect();
    let mut y = vec![0.0; n];
    let l = loss.sample(&pred, target, scale, &mut y);
    if let Some((y_out, r_out)) = out {
        for &j in dy.fixed_coords() {
            y[j] = 0.0;
        }
        dy.solver.solve_in_place(&mut y)?;
        y_out.copy_from_slice(&y);
        r_out.copy_from_slice(&r);
    }
    Ok(l)
}

impl Trainable for WeakGraphTrainer {
    fn params(&self) -> Vec<f64> {
        self.inner.params()
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        self.inner.set_params(theta)
    }
    fn loss_grad(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        check_windows(data, &self.windows)?;
        let wdata = &self.windows;
        let n = wdata.dim;
        let inv = data.inv_norm(idx);
        let dys = self.inner.workers()?;
        let rows = idx.len().div_ceil(dys.len()).max(1);
        // Forward, parallel over rows (one Dynamics per worker): loss, y and r per window.
        let (f, cf, per) = (wdata.form.frames(), wdata.form.centre(), wdata.per_row);
        let m = if want_grad { idx.len() * per * n } else { 0 };
        let (mut ys, mut rs) = (vec![0.0; m], vec![0.0; m]);
        let chunk = if want_grad { rows * per * n } else { 1 };
        let mut y_chunks: Vec<&mut [f64]> = ys.chunks_mut(chunk).collect();
        let mut r_chunks: Vec<&mut [f64]> = rs.chunks_mut(chunk).collect();
        y_chunks.resize_with(dys.len(), Default::default);
        r_chunks.resize_with(dys.len(), Default::default);
        let parts: Vec<Result<f64>> = dys
            .par_iter_mut()
            .zip(idx.par_chunks(rows))
            .zip(y_chunks.into_par_iter().zip(r_chunks.into_par_iter()))
            .map(|((dy, chunk), (yc, rc))| {
                let mut l = 0.0;
                for (k, &i) in chunk.iter().enumerate() {
                    let (x, t) = (data.input_row(i), data.target_row(i));
                    for j in 0..per {
                        let o = (k * per + j) * n;
                        let out = want_grad.then(|| (&mut yc[o..o + n], &mut rc[o..o + n]));
                        l += graph_window_forward(
                            dy,
                            wdata,
                            (&x[j * 2 * n..(j + f) * 2 * n], &t[j * n..(j + 1) * n]),
                            data.weight(i) * inv,
                            loss,
                            out,
                        )
                        .map_err(|e| e.context(&format!("row {i}, window {j}")))?;
                    }
                }
                Ok(l)
            })
            .collect();
        let mut total = 0.0;
        for p in parts {
            total += p?;
        }
        let model = &self.inner.model;
        let offs = model.param_offsets();
        if !want_grad {
            return Ok((total, vec![], 0));
        }
        let mut grad = vec![0.0; *offs.last().unwrap()];
        // Backward (12.3), batched over all (window, frame) pairs of the minibatch per term;
        // window wi is window wi % S of row idx[wi / S].
        let (w, wd, phi) = wdata.form.weights(wdata.h);
        let frame = |wi: usize, k: usize| {
            let kk = wi % per + k;
            let row = &data.input_row(idx[wi / per])[kk * 2 * n..(kk + 1) * 2 * n];
            (&row[..n], &row[n..])
        };
        // u3 = (w_k y/Φ, w'_k y/Φ) per pair; the kinetic masses' ∂ℓ/∂μ_j =
        // Σ_k (w'_k y_j/Φ) q̇_kj − y_j r_j (M = diag(μ)).
        let nwin = idx.len() * per;
        let pairs = nwin * f;
        let (mut uq, mut uv) = (vec![0.0; pairs * n], vec![0.0; pairs * n]);
        let mut sens = vec![0.0; n];
        for wi in 0..nwin {
            let (y, r) = (&ys[wi * n..(wi + 1) * n], &rs[wi * n..(wi + 1) * n]);
            for k in 0..f {
                let pi = (wi * f + k) * n;
                let v = frame(wi, k).1;
                for j in 0..n {
                    uq[pi + j] = w[k] * y[j] / phi;
                    uv[pi + j] = wd[k] * y[j] / phi;
                    sens[j] += uv[pi + j] * v[j];
                }
            }
            for j in 0..n {
                sens[j] -= y[j] * r[j];
            }
        }
        let wrapped: Option<Vec<f64>> = model.q_period.map(|per| {
            (0..pairs)
                .flat_map(|p| {
                    frame(p / f, p % f)
                        .0
                        .iter()
                        .map(move |&x| wrap_opt(x, Some(per)))
                })
                .collect()
        });
        let lag = &self.inner.worker().lagrangian;
        let d = lag.dof;
        // Potential terms: ∂/∂θ of u_q·∂ρ/∂q at the frames where w_k ≠ 0.
        let potential_states = || -> Vec<SampleState<'_>> {
            (0..pairs)
                .filter(|p| w[p % f] != 0.0)
                .map(|p| {
                    let (q, v) = frame(p / f, p % f);
                    (q, v, &[][..], &uq[p * n..(p + 1) * n])
                })
                .collect()
        };
        for (t, term) in model.terms.iter().enumerate() {
            let sites = &lag.terms[t].sites;
            let g = &mut grad[offs[t]..offs[t + 1]];
            match term {
                GraphTerm::Kinetic { .. } => {
                    kinetic_backward(model, t, &self.inner.graph, &sens, g)?;
                }
                GraphTerm::Closed(_) => {}
                GraphTerm::EdgePotential(net) => {
                    let input = (PotentialInput::EdgeDiff, model.q_period);
                    potential_adjoint_batch(net, input, sites, d, &potential_states(), g)
                }
                GraphTerm::NodePotential(net) => {
                    let input = (PotentialInput::Node, model.q_period);
                    potential_adjoint_batch(net, input, sites, d, &potential_states(), g)
                }
                GraphTerm::EdgeDistance(net) => {
                    // docs/DESIGN.md §14.3: positions, never wrapped.
                    let input = (PotentialInput::EdgeDistance, None);
                    potential_adjoint_batch(net, input, sites, d, &potential_states(), g)
                }
                GraphTerm::Sites(net) | GraphTerm::Stencil(net) => {
                    // Full sweep: x = (q_k, q̇_k), u3 = (w_k y, w'_k y)/Φ and at the centre
                    // u1 = (0, y), u2 = (0, r); q wrapped as the density wraps it (§7).
                    let states: Vec<SweepChannels<'_>> = (0..pairs)
                        .map(|p| {
                            let (wi, k) = (p / f, p % f);
                            let (q, v) = frame(wi, k);
                            let q = wrapped.as_ref().map_or(q, |qw| &qw[p * n..(p + 1) * n]);
                            let (y, r): (&[f64], &[f64]) = if k == cf {
                                (&ys[wi * n..(wi + 1) * n], &rs[wi * n..(wi + 1) * n])
                            } else {
                                (&[], &[])
                            };
                            let (a, b) = (&uq[p * n..(p + 1) * n], &uv[p * n..(p + 1) * n]);
                            [q, v, &[], y, &[], r, a, b]
                        })
                        .collect();
                    mlp_sweep_batch(net, sites, d, &states, g)
                }
            }
        }
        Ok((total, grad, 0))
    }
}

/// How a model is initialised and trained from positions ([`fit_lnn_positions`],
/// [`fit_graph_positions`]).
#[derive(Clone, Debug)]
pub struct PositionsFit {
    pub objective: ObjectiveKind,
    pub form: WeakForm,
    pub cfg: super::TrainConfig,
}

/// `cfg` for rows of `w` (S windows each): the minibatch size counts windows, as a sample
/// count does for the other objectives, rounded up to whole rows.
fn row_config(cfg: &super::TrainConfig, w: &WindowData) -> super::TrainConfig {
    super::TrainConfig {
        batch: cfg.batch.div_ceil(w.per_row).max(1),
        ..cfg.clone()
    }
}

/// What an objective trains on: weak-form windows, or samples whose q̇ and q̈ were estimated
/// from the positions (the baselines).
enum ObjectiveData {
    Windows(WindowData),
    Estimated(crate::io::SamplesData),
}

/// The training data of `spec.objective` from positions-only `pos` (`path` names it in errors).
fn objective_data(pos: &PositionsData, path: &Path, spec: &PositionsFit) -> Result<ObjectiveData> {
    use crate::data::derivatives::{estimate_samples, Estimator};
    let est = match spec.objective {
        ObjectiveKind::Weak => return Ok(ObjectiveData::Windows(spec.form.windows(pos, path)?)),
        ObjectiveKind::Accel => {
            return Err(Error::file(
                path,
                "the acceleration objective needs measured qdot and qddot; this data holds positions only (use --objective weak, savgol or central)",
            ))
        }
        ObjectiveKind::Savgol => Estimator::SAVGOL_DEFAULT,
        ObjectiveKind::Central => Estimator::Central,
    };
    let h = pos.uniform_step(path)?;
    let raw = estimate_samples(pos, h, est).map_err(|e| Error::file(path, e.to_string()))?;
    Ok(ObjectiveData::Estimated(raw))
}

/// The ring LGN (`--model lgn`) as the graph model it is: one general density over the
/// stencils (i − 1, i, i + 1) of a ring of `n` nodes with one coordinate each (the same
/// Lagrangian as [`TrainedModel::dynamics`] builds).
pub fn ring_graph_model(model: &TrainedModel, n: usize) -> Result<(GraphModel, SystemGraph)> {
    if model.kind != super::ModelKind::Lgn {
        return Err(Error::input(format!(
            "a '{}' model is not a ring LGN",
            model.kind.as_str()
        )));
    }
    let graph = SystemGraph::line(n, 1, true)?;
    let gm = GraphModel {
        dof: 1,
        features: crate::model::FeatureSet::Graph,
        boundary: crate::model::Boundary::Free,
        q_period: model.q_period(),
        terms: vec![GraphTerm::Stencil(model.net.clone())],
        graph: graph.data.clone(),
        system: model.system.clone(),
        dissipation: None,
        input_map: None,
    };
    Ok((gm, graph))
}

/// Train a single-network model (`model`, freshly initialised; its `q_period` is honoured) on
/// positions-only data with `spec.objective`: one call of [`super::fit`]. The weak form trains
/// the Lagrangian kinds — lnn (single site) and lgn (the ring, through [`ring_graph_model`]);
/// the derivative baselines train every kind. `path` names the data in errors.
pub fn fit_lnn_positions(
    mut model: TrainedModel,
    pos: &PositionsData,
    path: &Path,
    spec: &PositionsFit,
    on_step: &mut dyn FnMut(&super::Progress),
) -> Result<(TrainedModel, super::TrainReport)> {
    use super::ModelKind;
    if spec.objective == ObjectiveKind::Weak
        && matches!(model.kind, ModelKind::Mlp | ModelKind::Hnn)
    {
        return Err(Error::input(format!(
            "the weak-form objective tests the Euler–Lagrange equations of a learned Lagrangian (--model lnn or lgn); a '{}' model has none (an mlp predicts q̈ directly, an hnn learns a Hamiltonian): use --objective savgol or central for it",
            model.kind.as_str()
        )));
    }
    if spec.cfg.mass_penalty.is_some() && model.kind != ModelKind::Lnn {
        return Err(Error::input(format!(
            "mass_penalty (--mass-penalty) applies to single-site LNNs (model kind lnn), not to {}",
            model.kind.as_str()
        )));
    }
    match objective_data(pos, path, spec)? {
        ObjectiveData::Windows(mut w) => {
            w.wrap_q(&model);
            super::fit_normalisation(&mut model, &w.centre_states());
            let (data, cfg) = (w.samples.clone(), row_config(&spec.cfg, &w));
            if model.kind == ModelKind::Lgn {
                let (gm, graph) = ring_graph_model(&model, w.dim)?;
                let mut t = WeakGraphTrainer::new(gm, graph, w)?;
                let report = super::fit(&mut t, &data, &cfg, on_step)?;
                hyperdual::unflatten(&mut model.net, &t.params());
                return Ok((model, report));
            }
            let mut t = WeakLnnTrainer::new(model, w, cfg.mass_penalty)?;
            let report = super::fit(&mut t, &data, &cfg, on_step)?;
            Ok((t.model, report))
        }
        ObjectiveData::Estimated(raw) => {
            let mut samples = super::prepare_samples(model.kind, &raw, super::HnnCoords::Velocity)?;
            model.wrap_inputs(&mut samples);
            super::fit_normalisation(&mut model, &samples);
            super::train(model, &samples, &spec.cfg, on_step)
        }
    }
}

/// Train a graph model on positions-only data: `make` builds the model from training states
/// (rows (q, q̇): e.g. [`GraphModel::node_edge`] from their positions or
/// [`GraphModel::general`]); weak-form or derivative-baseline objective as in
/// [`fit_lnn_positions`], for every term kind.
pub fn fit_graph_positions(
    graph: &SystemGraph,
    make: &dyn Fn(&[&[f64]]) -> Result<GraphModel>,
    pos: &PositionsData,
    path: &Path,
    spec: &PositionsFit,
    on_step: &mut dyn FnMut(&super::Progress),
) -> Result<(GraphModel, super::TrainReport)> {
    let n = graph.n_coords();
    if pos.dim() != n {
        return Err(Error::file(
            path,
            format!(
                "frames have {} coordinates but the graph {} has {n}",
                pos.dim(),
                graph.name
            ),
        ));
    }
    let states = |s: &Samples| -> Result<GraphModel> {
        make(&(0..s.n).map(|i| s.input_row(i)).collect::<Vec<_>>())
    };
    match objective_data(pos, path, spec)? {
        ObjectiveData::Windows(w) => {
            let model = states(&w.centre_states())?;
            let (data, cfg) = (w.samples.clone(), row_config(&spec.cfg, &w));
            let mut t = WeakGraphTrainer::new(model, graph.clone(), w)?;
            let report = super::fit(&mut t, &data, &cfg, on_step)?;
            Ok((t.inner.model, report))
        }
        ObjectiveData::Estimated(raw) => {
            let samples = Samples::from_data(&raw)?;
            let mut t = GraphTrainer::new(states(&samples)?, graph.clone())?;
            let report = super::fit(&mut t, &samples, &spec.cfg, on_step)?;
            Ok((t.model, report))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Boundary, FeatureSet, NetShape};
    use crate::solve::SolverKind;
    use ndarray::{Array1, Array3};

    /// Exact double-pendulum trajectories (DP5, tight tolerance) as positions.
    fn dblpend_positions(b: usize, frames: usize, h: f64) -> PositionsData {
        let times = crate::integrate::linspace_times(frames, h);
        let tr = crate::data::dblpend_trajectories(
            b,
            &times,
            9.8,
            2.0,
            5,
            &crate::data::default_method(),
        )
        .unwrap();
        PositionsData {
            system: tr.system,
            params: tr.params,
            t: tr.t,
            q: tr.q,
        }
    }

    #[test]
    fn true_lagrangian_satisfies_the_weak_form() {
        // Independent truth: the analytic double-pendulum Lagrangian on exact trajectories has
        // a weak-form residual far below the window accelerations (truncation O(h⁴)).
        // The residual is the truncation error of the sixth-order stencils: it falls by far
        // more than h² when the step is halved (preasymptotic at h = 0.05, where the fastest
        // swings have ω h ≈ 0.5).
        let mut prev = f64::INFINITY;
        for hh in [0.05, 0.025, 0.0125] {
            let pos = dblpend_positions(3, (3.0 / hh) as usize, hh);
            let wdata = WeakForm::default().windows(&pos, Path::new("mem")).unwrap();
            let dens = crate::density::DoublePendulum::paper(9.8);
            let idx: Vec<usize> = (0..wdata.samples.n).collect();
            let (l, _, _) = dense_weak_loss_grad(
                &dens,
                None,
                &wdata,
                &wdata.samples,
                &idx,
                LossKind::Mse,
                None,
                false,
            );
            let rel = (l / super::super::zero_loss(&wdata.samples, &idx, LossKind::Mse)).sqrt();
            assert!(
                rel < prev / 4.5,
                "h = {hh}: relative residual {rel}, previous {prev}"
            );
            prev = rel;
        }
        assert!(prev < 1e-3, "{prev}");
        let h = 0.05;
        let pos = dblpend_positions(3, 60, h);
        let wf = WeakForm::default();
        let wdata = wf.windows(&pos, Path::new("mem")).unwrap();
        let dens = crate::density::DoublePendulum::paper(9.8);
        let idx: Vec<usize> = (0..wdata.samples.n).collect();
        let (l, _, nd) = dense_weak_loss_grad(
            &dens,
            None,
            &wdata,
            &wdata.samples,
            &idx,
            LossKind::Mse,
            None,
            false,
        );
        assert_eq!(nd, 0);
        let zero = super::super::zero_loss(&wdata.samples, &idx, LossKind::Mse);
        assert!(zero > 1.0, "window accelerations too small: {zero}");
        assert!(l / zero < 1e-4, "relative residual² {}", l / zero);
        // A wrong Lagrangian (g = 9.0) does not satisfy it.
        let wrong = crate::density::DoublePendulum::paper(9.0);
        let (lw, _, _) = dense_weak_loss_grad(
            &wrong,
            None,
            &wdata,
            &wdata.samples,
            &idx,
            LossKind::Mse,
            None,
            false,
        );
        assert!(lw / zero > 10.0 * l / zero, "{} vs {}", lw / zero, l / zero);
    }

    #[test]
    fn data_errors_name_the_problem() {
        let wf = WeakForm::default();
        let mut pos = dblpend_positions(1, 20, 0.05);
        let e = wf.windows(&pos, Path::new("x.h5")).unwrap_err().to_string();
        assert!(e.contains("x.h5") && e.contains("needs at least 21"), "{e}");
        pos = dblpend_positions(1, 24, 0.05);
        pos.t[7] += 0.01;
        let e = wf.windows(&pos, Path::new("x.h5")).unwrap_err().to_string();
        assert!(
            e.contains("fixed time step") && e.contains("frame 7"),
            "{e}"
        );
        assert_eq!(ObjectiveKind::parse("savgol"), Some(ObjectiveKind::Savgol));
        assert!("bogus".parse::<ObjectiveKind>().is_err());
    }

    fn fd_check(tr: &mut dyn Trainable, data: &Samples, idx: &[usize], loss: LossKind, tol: f64) {
        let theta = tr.params();
        let (_, g, nd) = tr.loss_grad(data, idx, loss, true).unwrap();
        assert_eq!(nd, 0);
        let mut worst: f64 = 0.0;
        for k in 0..theta.len() {
            // Richardson-extrapolated central differences (truncation O(h⁴)): the residual's
            // M⁻¹ makes the loss strongly curved where a fresh network's M is poorly conditioned.
            let mut central = |h: f64| {
                let mut t = theta.clone();
                t[k] += h;
                tr.set_params(&t).unwrap();
                let lp = tr.loss_grad(data, idx, loss, false).unwrap().0;
                t[k] -= 2.0 * h;
                tr.set_params(&t).unwrap();
                let lm = tr.loss_grad(data, idx, loss, false).unwrap().0;
                (lp - lm) / (2.0 * h)
            };
            let h = 2e-5 * (1.0 + theta[k].abs());
            let fd = (4.0 * central(h / 2.0) - central(h)) / 3.0;
            let err = (g[k] - fd).abs() / (1e-7 + fd.abs().max(g[k].abs()));
            worst = worst.max(err);
            assert!(
                err < tol,
                "param {k}: exact {} vs finite difference {fd}",
                g[k]
            );
        }
        tr.set_params(&theta).unwrap();
        assert!(worst < tol);
    }

    #[test]
    fn lnn_gradient_matches_finite_differences() {
        let pos = dblpend_positions(2, 20, 0.05);
        let wf = WeakForm {
            half_width: 3,
            power: 3,
            segment: 3,
        };
        let mut wdata = wf.windows(&pos, Path::new("mem")).unwrap();
        let mut model =
            TrainedModel::init(super::super::ModelKind::Lnn, "dblpend", 2, 8, 2, 4).unwrap();
        model.set_q_period(2.0 * std::f64::consts::PI).unwrap();
        wdata.wrap_q(&model);
        super::super::fit_normalisation(&mut model, &wdata.centre_states());
        let data = wdata.samples.clone();
        let mut tr = WeakLnnTrainer::new(model.clone(), wdata.clone(), None).unwrap();
        let idx: Vec<usize> = (0..data.n).step_by(3).collect();
        // A freshly initialised LNN has a nearly singular M at some centres (losses ~1e10), so the
        // central differences themselves are only good to ~1e-5 there.
        fd_check(&mut tr, &data, &idx, LossKind::Mse, 2e-4);
        fd_check(&mut tr, &data, &idx, LossKind::Huber, 2e-4);
        // With the mass-matrix penalty (margin 0.9: most centres violate it), exact scale so
        // that the penalty is a function of θ alone.
        let pen = MassPenalty {
            exact_scale: true,
            ..MassPenalty::new(3.0, 0.9).unwrap()
        };
        let mut tr = WeakLnnTrainer::new(model, wdata, Some(pen)).unwrap();
        let with = tr.loss_grad(&data, &idx, LossKind::Huber, false).unwrap().0;
        let without = tr.val_loss(&data, &idx, LossKind::Huber).unwrap().0;
        assert!(with > without * (1.0 + 1e-6), "{with} vs {without}");
        fd_check(&mut tr, &data, &idx, LossKind::Huber, 2e-4);
    }

    #[test]
    fn embedded_lnn_gradient_matches_finite_differences() {
        // The angle embedding (cos q, sin q, q̇) (docs/DESIGN.md §14.6): unwrapped angles beyond
        // ±π, with and without the mass penalty.
        let mut pos = dblpend_positions(2, 20, 0.05);
        pos.q.mapv_inplace(|x| x + 3.0);
        let wf = WeakForm {
            half_width: 3,
            power: 3,
            segment: 3,
        };
        let wdata = wf.windows(&pos, Path::new("mem")).unwrap();
        let mut model =
            TrainedModel::init(super::super::ModelKind::Lnn, "dblpend", 2, 8, 2, 4).unwrap();
        model.set_angle_embedding(4).unwrap();
        super::super::fit_normalisation(&mut model, &wdata.centre_states());
        let data = wdata.samples.clone();
        let mut tr = WeakLnnTrainer::new(model.clone(), wdata.clone(), None).unwrap();
        let idx: Vec<usize> = (0..data.n).step_by(3).collect();
        fd_check(&mut tr, &data, &idx, LossKind::Mse, 2e-4);
        fd_check(&mut tr, &data, &idx, LossKind::Huber, 2e-4);
        // The embedded model is 2π-periodic: shifting every angle by 2π leaves the loss unchanged.
        let l0 = tr.val_loss(&data, &idx, LossKind::Mse).unwrap().0;
        let mut shifted = pos.clone();
        shifted.q.mapv_inplace(|x| x + 2.0 * std::f64::consts::PI);
        let ws = wf.windows(&shifted, Path::new("mem")).unwrap();
        let mut ts = WeakLnnTrainer::new(model.clone(), ws.clone(), None).unwrap();
        let l1 = ts.val_loss(&ws.samples, &idx, LossKind::Mse).unwrap().0;
        assert!((l1 - l0).abs() <= 1e-9 * l0.abs(), "{l0} vs {l1}");
        let pen = MassPenalty {
            exact_scale: true,
            ..MassPenalty::new(3.0, 0.9).unwrap()
        };
        let mut tr = WeakLnnTrainer::new(model, wdata, Some(pen)).unwrap();
        fd_check(&mut tr, &data, &idx, LossKind::Huber, 2e-4);
    }

    #[test]
    fn graph_gradient_matches_finite_differences() {
        // A chain of 5 nodes with d = 2, node and edge features, one fixed node, random smooth
        // positions; the node-edge model with a node potential.
        use ndarray::Array2;
        let n = 5;
        let mut g = crate::io::GraphData::new(n, 2, (0..n - 1).map(|i| [i, i + 1]).collect());
        g.node_features = Some(Array2::from_shape_fn((n, 1), |(i, _)| 1.0 + 0.3 * i as f64));
        g.edge_features = Some(Array2::from_shape_fn((n - 1, 1), |(i, _)| {
            0.5 + 0.1 * i as f64
        }));
        let mut b = vec![false; n];
        b[0] = true;
        g.boundary = Some(b);
        let graph = SystemGraph::from_data(g, "test").unwrap();
        let pos = smooth_positions(2, 22, 2 * n, 0.1);
        let wf = WeakForm {
            half_width: 3,
            power: 2,
            segment: 3,
        };
        let wdata = wf.windows(&pos, Path::new("mem")).unwrap();
        let cs = wdata.centre_states();
        let qs: Vec<&[f64]> = (0..cs.n).map(|i| &cs.input_row(i)[..2 * n]).collect();
        let shape = NetShape {
            hidden: 5,
            layers: 2,
            seed: 2,
        };
        let mut m = GraphModel::node_edge(&graph, FeatureSet::Graph, true, &shape, &qs).unwrap();
        m.boundary = Boundary::Fixed;
        let mut th = m.params();
        for (i, x) in th.iter_mut().enumerate() {
            *x += 0.05 * (0.37 * i as f64).sin();
        }
        m.set_params(&th).unwrap();
        let data = wdata.samples.clone();
        let mut tr = WeakGraphTrainer::new(m, graph, wdata).unwrap();
        let idx: Vec<usize> = (0..data.n).collect();
        fd_check(&mut tr, &data, &idx, LossKind::Mse, 1e-5);
    }

    /// Smooth, non-trivial positions of `b` trajectories × `t` frames × `nc` coordinates.
    fn smooth_positions(b: usize, t: usize, nc: usize, h: f64) -> PositionsData {
        PositionsData {
            t: Array1::from_iter((0..t).map(|k| k as f64 * h)),
            q: Array3::from_shape_fn((b, t, nc), |(bi, k, j)| {
                (0.3 * j as f64 + 0.7 * bi as f64 + 1.1 * k as f64 * h).sin()
                    * (1.0 + 0.1 * j as f64)
                    + 0.2 * (0.5 * j as f64 - 0.9 * k as f64 * h).cos()
            }),
            ..Default::default()
        }
    }

    /// Perturb every parameter a little (away from the symmetric initialisation).
    fn jiggle(tr: &mut dyn Trainable, amp: f64) {
        let mut th = tr.params();
        for (i, x) in th.iter_mut().enumerate() {
            *x += amp * (0.37 * i as f64).sin();
        }
        tr.set_params(&th).unwrap();
    }

    #[test]
    fn ring_lgn_weak_gradient_matches_finite_differences() {
        // `--model lgn` (the ring LGN) through its graph form: first the independent check that
        // the graph form is the same Lagrangian (accelerations of TrainedModel::dynamics), then
        // the weak-form gradient against central differences, with and without a period.
        let n = 6;
        let pos = smooth_positions(2, 22, n, 0.1);
        let wf = WeakForm {
            half_width: 3,
            power: 3,
            segment: 3,
        };
        for period in [None, Some(2.0)] {
            let mut model =
                TrainedModel::init(super::super::ModelKind::Lgn, "ring", n, 6, 2, 3).unwrap();
            model.params.insert("n".into(), n as f64);
            if let Some(p) = period {
                model.set_q_period(p).unwrap();
            }
            let mut wdata = wf.windows(&pos, Path::new("mem")).unwrap();
            wdata.wrap_q(&model);
            super::super::fit_normalisation(&mut model, &wdata.centre_states());
            let (gm, graph) = ring_graph_model(&model, n).unwrap();
            let mut a = model.dynamics(None, SolverKind::Auto).unwrap();
            let mut b = gm.dynamics(&graph, SolverKind::Auto).unwrap();
            let x = &wdata.samples.input_row(1)[4 * 2 * n..];
            let (q, v) = (&x[..n], &x[n..2 * n]);
            let (aa, ab) = (
                a.accelerations(q, v).unwrap(),
                b.accelerations(q, v).unwrap(),
            );
            for (u, w) in aa.iter().zip(&ab) {
                assert!((u - w).abs() <= 1e-10 * (1.0 + u.abs()), "{u} vs {w}");
            }
            let data = wdata.samples.clone();
            let mut tr = WeakGraphTrainer::new(gm, graph, wdata).unwrap();
            jiggle(&mut tr, 0.05);
            let idx: Vec<usize> = (0..data.n).step_by(2).collect();
            fd_check(&mut tr, &data, &idx, LossKind::Mse, 1e-5);
            fd_check(&mut tr, &data, &idx, LossKind::Huber, 1e-5);
        }
    }

    #[test]
    fn general_sites_weak_gradient_matches_finite_differences() {
        // A `sites` density (explicit triples, d = 2) with a fixed node and a coordinate period.
        use ndarray::Array2;
        let n = 5;
        let mut g = crate::io::GraphData::new(n, 2, (0..n - 1).map(|i| [i, i + 1]).collect());
        g.sites = Some(Array2::from_shape_fn((n - 2, 3), |(s, k)| s + k));
        let mut b = vec![false; n];
        b[n - 1] = true;
        g.boundary = Some(b);
        let graph = SystemGraph::from_data(g, "test").unwrap();
        let pos = smooth_positions(2, 22, 2 * n, 0.1);
        let wf = WeakForm {
            half_width: 3,
            power: 2,
            segment: 3,
        };
        let wdata = wf.windows(&pos, Path::new("mem")).unwrap();
        let cs = wdata.centre_states();
        let states: Vec<&[f64]> = (0..cs.n).map(|i| cs.input_row(i)).collect();
        let shape = NetShape {
            hidden: 5,
            layers: 2,
            seed: 4,
        };
        let mut m = GraphModel::general(&graph, false, &shape, &states).unwrap();
        m.boundary = Boundary::Fixed;
        m.q_period = Some(3.0);
        let data = wdata.samples.clone();
        let mut tr = WeakGraphTrainer::new(m, graph, wdata).unwrap();
        jiggle(&mut tr, 0.05);
        let idx: Vec<usize> = (0..data.n).collect();
        fd_check(&mut tr, &data, &idx, LossKind::Mse, 1e-5);
    }

    #[test]
    fn true_spring_chain_satisfies_the_weak_form() {
        // Independent truth for the graph path: the exact FPU chain Lagrangian (closed terms)
        // on DP5 trajectories of the same system has a relative weak-form residual ≪ 1, and a
        // wrong spring constant does not.
        let n = 8;
        let graph = SystemGraph::line(n, 1, false).unwrap();
        let (k, beta) = (16.0, 8.0);
        let mut truth =
            crate::systems::spring_network(&graph, 1.0, k, beta, false, SolverKind::Auto).unwrap();
        let h = 0.05;
        let times = crate::integrate::linspace_times(60, h);
        let mut q = Array3::zeros((2, times.len(), n));
        for bi in 0..2 {
            let q0: Vec<f64> = (0..n).map(|i| 0.3 * ((i + bi) as f64).sin()).collect();
            let v0: Vec<f64> = (0..n).map(|i| 0.5 * ((2 * i) as f64).cos()).collect();
            let s = crate::integrate::solve(
                &mut truth,
                &crate::integrate::Method::Dp5(crate::integrate::Dp5Options::tol(1e-11, 1e-11)),
                &q0,
                &v0,
                &times,
            )
            .unwrap();
            for kk in 0..times.len() {
                for i in 0..n {
                    q[[bi, kk, i]] = s.q_at(kk)[i];
                }
            }
        }
        let pos = PositionsData {
            t: Array1::from(times),
            q,
            ..Default::default()
        };
        let wdata = WeakForm::default().windows(&pos, Path::new("mem")).unwrap();
        let idx: Vec<usize> = (0..wdata.samples.n).collect();
        let zero = super::super::zero_loss(&wdata.samples, &idx, LossKind::Mse);
        let rel = |k: f64| {
            let m = GraphModel {
                dof: 1,
                features: FeatureSet::Graph,
                boundary: Boundary::Free,
                q_period: None,
                terms: vec![
                    GraphTerm::Closed(crate::model::ClosedTerm::NodeMass { mass: 1.0 }),
                    GraphTerm::Closed(crate::model::ClosedTerm::Spring { k, beta }),
                ],
                graph: graph.data.clone(),
                system: String::new(),
                dissipation: None,
                input_map: None,
            };
            let mut tr = WeakGraphTrainer::new(m, graph.clone(), wdata.clone()).unwrap();
            (tr.loss_grad(&wdata.samples, &idx, LossKind::Mse, false)
                .unwrap()
                .0
                / zero)
                .sqrt()
        };
        let (good, bad) = (rel(k), rel(0.9 * k));
        assert!(good < 2e-3, "relative residual {good}");
        assert!(bad > 20.0 * good, "{bad} vs {good}");
    }
}
