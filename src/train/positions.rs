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

use super::gradient::{small_cond1, small_lu, small_lu_solve, Samples, MAX_MASS_COND};
use super::graph::{kinetic_backward, potential_adjoint_batch};
use super::hyperdual::{self, adjoint_block, n_params};
use super::loss::LossKind;
use super::{Trainable, TrainedModel};
use crate::density::{Density, MlpDensity, PotentialInput};
use crate::dynamics::Dynamics;
use crate::io::PositionsData;
use crate::model::{GraphModel, GraphTerm, SystemGraph};
use crate::solve::SolverKind;
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
}

impl Default for WeakForm {
    fn default() -> Self {
        WeakForm {
            half_width: 5,
            power: 4,
        }
    }
}

/// Frames beyond a window needed by the velocity stencil on each side.
const STENCIL: usize = 3;

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
        let centres = lo..t - lo;
        let nw = b * centres.len();
        crate::limits::check_alloc(
            "weak-form windows",
            (nw as u128) * (f as u128) * (2 * d as u128 + 1),
            8,
        )?;
        let mut input = Vec::with_capacity(nw * f * 2 * d);
        let mut target = Vec::with_capacity(nw * d);
        let vel = |bi: usize, k: usize, j: usize| {
            D6.iter()
                .enumerate()
                .map(|(m, c)| c * pos.q[[bi, k + m - 3, j]])
                .sum::<f64>()
                / h
        };
        for bi in 0..b {
            for c in centres.clone() {
                let mut abar = vec![0.0; d];
                for (jf, wdj) in wd.iter().enumerate().take(f) {
                    let k = c + jf - self.centre();
                    for j in 0..d {
                        input.push(pos.q[[bi, k, j]]);
                    }
                    for (j, a) in abar.iter_mut().enumerate() {
                        let v = vel(bi, k, j);
                        input.push(v);
                        *a -= wdj * v / phi;
                    }
                }
                target.extend(abar);
            }
        }
        let samples = Samples::new(f * 2 * d, d, input, target, None)
            .map_err(|e| Error::file(path, e.to_string()))?;
        Ok(WindowData {
            form: *self,
            h,
            dim: d,
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
    pub samples: Samples,
}

impl WindowData {
    /// The centre frame's (q, q̇) of every window as a samples set (input normalisation,
    /// model initialisation); targets are the windows' ā.
    pub fn centre_states(&self) -> Samples {
        let (d, f) = (self.dim, self.form.frames());
        let c = self.form.centre();
        let mut input = Vec::with_capacity(self.samples.n * 2 * d);
        for i in 0..self.samples.n {
            input.extend_from_slice(&self.samples.input_row(i)[c * 2 * d..(c + 1) * 2 * d]);
        }
        debug_assert_eq!(self.samples.in_dim, f * 2 * d);
        Samples {
            n: self.samples.n,
            in_dim: 2 * d,
            out_dim: d,
            input,
            target: self.samples.target.clone(),
            weights: None,
        }
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

/// One window's residual r (12.2) from the per-frame ∂L/∂q, ∂L/∂q̇ (`gq`, `gv`: F × D) and the
/// centre's factorised M (`lu`, `piv`): returns R/Φ solved in place.
fn residual((w, wd, phi): (&[f64], &[f64], f64), gq: &[f64], gv: &[f64], d: usize, r: &mut [f64]) {
    r.fill(0.0);
    for (k, (wk, wdk)) in w.iter().zip(wd).enumerate() {
        for j in 0..d {
            r[j] += (wk * gq[k * d + j] + wdk * gv[k * d + j]) / phi;
        }
    }
}

/// Loss (and with `grad` its exact gradient (12.3)) of a single-site density `dens` (arity 1,
/// dof D) over the windows `idx` of one block; windows whose centre M is singular or badly
/// conditioned are dropped (counted). `mlp` is the network for the reverse sweep (None: no
/// gradient, e.g. an analytic density).
#[allow(clippy::too_many_arguments)]
fn dense_block(
    dens: &dyn Density,
    mlp: Option<&crate::density::Mlp>,
    wdata: &WindowData,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    inv_norm: f64,
    grad: Option<&mut [f64]>,
) -> (f64, usize) {
    let d = wdata.dim;
    let p = 2 * d;
    let f = wdata.form.frames();
    let cf = wdata.form.centre();
    let (w, wd, phi) = wdata.form.weights(wdata.h);
    let lay = dens.layout();
    let stride = lay.stride();
    let ns = idx.len() * f;
    // Column-major p × ns: column = (window, frame).
    let mut x = Vec::with_capacity(p * ns);
    for &i in idx {
        x.extend_from_slice(data.input_row(i));
    }
    let mut rec = vec![0.0; stride * ns];
    dens.eval_block(&x, ns, &mut rec);
    let want = grad.is_some() && mlp.is_some();
    let mut sites: Vec<f64> = Vec::with_capacity(if want { 4 * p * ns } else { 0 });
    let (mut gq, mut gv) = (vec![0.0; f * d], vec![0.0; f * d]);
    let (mut m, mut r, mut g, mut pred) =
        (vec![0.0; d * d], vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let (mut total, mut dropped) = (0.0, 0usize);
    for (wi, &i) in idx.iter().enumerate() {
        for k in 0..f {
            let rk = &rec[(wi * f + k) * stride..(wi * f + k + 1) * stride];
            gq[k * d..(k + 1) * d].copy_from_slice(&rk[lay.grad_q()..lay.grad_q() + d]);
            gv[k * d..(k + 1) * d].copy_from_slice(&rk[lay.grad_v()..lay.grad_v() + d]);
        }
        let rc = &rec[(wi * f + cf) * stride..(wi * f + cf + 1) * stride];
        let m0 = &rc[lay.mass()..lay.mass() + d * d];
        m.copy_from_slice(m0);
        residual((&w, &wd, phi), &gq, &gv, d, &mut r);
        let ok = small_lu(&mut m, d).and_then(|piv| {
            if small_cond1(m0, &m, &piv, d) > MAX_MASS_COND {
                return None;
            }
            small_lu_solve(&m, &piv, d, &mut r);
            r.iter().all(|x| x.is_finite()).then_some(piv)
        });
        let Some(piv) = ok else {
            dropped += 1;
            continue;
        };
        let tgt = data.target_row(i);
        for j in 0..d {
            pred[j] = tgt[j] + r[j];
        }
        total += loss.sample(&pred, tgt, data.weight(i) * inv_norm, &mut g);
        if want {
            small_lu_solve(&m, &piv, d, &mut g); // y = M_c⁻¹ ∂ℓ/∂r
            let xr = data.input_row(i);
            for k in 0..f {
                sites.extend_from_slice(&xr[k * p..(k + 1) * p]);
                if k == cf {
                    // u1 = (0, y), u2 = (0, r): − D_(0,y) D_(0,r) L at the centre.
                    sites.extend(std::iter::repeat_n(0.0, d));
                    sites.extend_from_slice(&g);
                    sites.extend(std::iter::repeat_n(0.0, d));
                    sites.extend_from_slice(&r);
                } else {
                    sites.extend(std::iter::repeat_n(0.0, 2 * p));
                }
                sites.extend(g.iter().map(|y| w[k] * y / phi));
                sites.extend(g.iter().map(|y| wd[k] * y / phi));
            }
        }
    }
    if let (Some(grad), Some(mlp)) = (grad, mlp) {
        let nsw = sites.len() / (4 * p);
        if nsw > 0 {
            let mut xin = vec![0.0; 4 * p * nsw];
            for s in 0..nsw {
                for c in 0..4 {
                    let src = &sites[(s * 4 + c) * p..(s * 4 + c + 1) * p];
                    xin[(c * nsw + s) * p..(c * nsw + s + 1) * p].copy_from_slice(src);
                }
            }
            adjoint_block(mlp, &mut xin, nsw, grad);
        }
    }
    (total, dropped)
}

/// Windows per block of the dense path (fixed, so sums do not depend on the thread count).
const WINDOW_BLOCK: usize = 16;

/// Weak-form loss and gradient of a single-site density over `idx`, parallel over fixed blocks.
pub fn dense_weak_loss_grad(
    dens: &dyn Density,
    mlp: Option<&crate::density::Mlp>,
    wdata: &WindowData,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
) -> (f64, Vec<f64>, usize) {
    let np = match (want_grad, mlp) {
        (true, Some(m)) => n_params(&m.sizes),
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

/// A single-site LNN ([`TrainedModel`] of kind lnn) trained on weak-form windows.
pub struct WeakLnnTrainer {
    pub model: TrainedModel,
    pub windows: WindowData,
    dens: MlpDensity,
}

impl WeakLnnTrainer {
    /// `windows` must come from data with the model's D coordinates (already wrapped with
    /// [`WindowData::wrap_q`] when the model has a coordinate period).
    pub fn new(model: TrainedModel, windows: WindowData) -> Result<WeakLnnTrainer> {
        if model.kind != super::ModelKind::Lnn {
            return Err(Error::input(format!(
                "the weak-form objective trains single-site LNNs (--model lnn) and graph networks (--graph/--mesh); not '{}' (use --objective savgol for it)",
                model.kind.as_str()
            )));
        }
        if model.angle_embedding() {
            return Err(Error::input(
                "the weak-form objective does not train an angle-embedded lnn yet (--angles embed); use --angles wrap, or data with qdot/qddot (--objective accel)",
            ));
        }
        if model.net.sizes[0] != 2 * windows.dim {
            return Err(Error::input(format!(
                "the model takes {} coordinates but the data has {}",
                model.net.sizes[0] / 2,
                windows.dim
            )));
        }
        let dens = MlpDensity::new(model.net.clone(), 1, windows.dim, 0)?;
        Ok(WeakLnnTrainer {
            model,
            windows,
            dens,
        })
    }
}

impl Trainable for WeakLnnTrainer {
    fn params(&self) -> Vec<f64> {
        hyperdual::flatten(&self.model.net)
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        hyperdual::unflatten(&mut self.model.net, theta);
        self.dens = MlpDensity::new(self.model.net.clone(), 1, self.windows.dim, 0)?;
        Ok(())
    }
    fn loss_grad(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        if data.in_dim != self.windows.samples.in_dim {
            return Err(Error::input(
                "the data are not weak-form windows of this model",
            ));
        }
        Ok(dense_weak_loss_grad(
            &self.dens,
            Some(&self.dens.mlp),
            &self.windows,
            data,
            idx,
            loss,
            want_grad,
        ))
    }
}

/// A [`GraphModel`] trained on weak-form windows (node-edge models: kinetic and potential
/// terms), with one [`Dynamics`] per worker.
pub struct WeakGraphTrainer {
    pub model: GraphModel,
    pub graph: SystemGraph,
    pub windows: WindowData,
    dys: Vec<Dynamics>,
    stale: bool,
}

impl WeakGraphTrainer {
    pub fn new(
        model: GraphModel,
        graph: SystemGraph,
        windows: WindowData,
    ) -> Result<WeakGraphTrainer> {
        if let Some(t) = model
            .terms
            .iter()
            .find(|t| matches!(t, GraphTerm::Sites(_) | GraphTerm::Stencil(_)))
        {
            return Err(Error::input(format!(
                "the weak-form objective supports node-edge graph models (kinetic and potential terms); this model has a general '{}' term: use --density node-edge or --objective savgol",
                t.kind()
            )));
        }
        if windows.dim != graph.n_coords() {
            return Err(Error::input(format!(
                "the data has {} coordinates per frame but the graph {} has {}",
                windows.dim,
                graph.name,
                graph.n_coords()
            )));
        }
        let workers = rayon::current_num_threads().clamp(1, 8);
        let dys = (0..workers)
            .map(|_| model.dynamics(&graph, SolverKind::Auto))
            .collect::<Result<Vec<_>>>()?;
        Ok(WeakGraphTrainer {
            model,
            graph,
            windows,
            dys,
            stale: false,
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

/// One window of a graph model: loss, and with `acc` the gradient of the potential terms (into
/// `grad`) and ∂ℓ/∂M_jj (into `sens`, for the kinetic term's masses).
#[allow(clippy::too_many_arguments)]
fn graph_window(
    dy: &mut Dynamics,
    model: &GraphModel,
    offs: &[usize],
    wdata: &WindowData,
    (x, target): (&[f64], &[f64]),
    scale: f64,
    loss: LossKind,
    acc: Option<(&mut [f64], &mut [f64])>,
) -> Result<f64> {
    let n = wdata.dim;
    let f = wdata.form.frames();
    let cf = wdata.form.centre();
    let (w, wd, phi) = wdata.form.weights(wdata.h);
    let frame = |k: usize| {
        (
            &x[k * 2 * n..k * 2 * n + n],
            &x[k * 2 * n + n..(k + 1) * 2 * n],
        )
    };
    let (mut gq, mut gv) = (vec![0.0; n], vec![0.0; n]);
    let mut r = vec![0.0; n];
    for k in 0..f {
        let (q, v) = frame(k);
        dy.evaluate_sites(q, v)?;
        gather_gradients(dy, &mut gq, &mut gv);
        for j in 0..n {
            r[j] += (w[k] * gq[j] + wd[k] * gv[j]) / phi;
        }
        if k == cf {
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
    let Some((grad, sens)) = acc else {
        return Ok(l);
    };
    for &j in dy.fixed_coords() {
        y[j] = 0.0;
    }
    dy.solver.solve_in_place(&mut y)?;
    let d = dy.lagrangian.dof;
    let mut uq = vec![0.0; n];
    for k in 0..f {
        let (q, v) = frame(k);
        for j in 0..n {
            uq[j] = w[k] * y[j] / phi;
            // Kinetic ½ μ|q̇|²: ∂/∂μ of u_v·∂L/∂q̇ = u_v·q̇.
            sens[j] += wd[k] * y[j] / phi * v[j];
        }
        for (t, term) in model.terms.iter().enumerate() {
            let sites = &dy.lagrangian.terms[t].sites;
            let g = &mut grad[offs[t]..offs[t + 1]];
            match term {
                GraphTerm::EdgePotential(net) => {
                    let input = (PotentialInput::EdgeDiff, model.q_period);
                    potential_adjoint_batch(net, input, sites, d, &[(q, v, &[], &uq)], g)
                }
                GraphTerm::NodePotential(net) => {
                    let input = (PotentialInput::Node, model.q_period);
                    potential_adjoint_batch(net, input, sites, d, &[(q, v, &[], &uq)], g)
                }
                GraphTerm::EdgeDistance(net) => {
                    let input = (PotentialInput::EdgeDistance, None);
                    potential_adjoint_batch(net, input, sites, d, &[(q, v, &[], &uq)], g)
                }
                GraphTerm::Kinetic { .. } | GraphTerm::Closed(_) => {}
                GraphTerm::Sites(_) | GraphTerm::Stencil(_) => {
                    return Err(Error::input("general terms are not supported here"))
                }
            }
        }
    }
    // − yᵀ (∂M/∂μ) r with M = diag(μ).
    for j in 0..n {
        sens[j] -= y[j] * r[j];
    }
    Ok(l)
}

impl Trainable for WeakGraphTrainer {
    fn params(&self) -> Vec<f64> {
        self.model.params()
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        self.model.set_params(theta)?;
        self.stale = true;
        Ok(())
    }
    fn loss_grad(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        if data.in_dim != self.windows.samples.in_dim {
            return Err(Error::input(
                "the data are not weak-form windows of this graph",
            ));
        }
        if self.stale {
            for dy in &mut self.dys {
                self.model.refresh(dy, &self.graph)?;
            }
            self.stale = false;
        }
        let offs = self.model.param_offsets();
        let np = if want_grad { *offs.last().unwrap() } else { 0 };
        let n = self.windows.dim;
        let inv = data.inv_norm(idx);
        let per = idx.len().div_ceil(self.dys.len()).max(1);
        let (model, wdata) = (&self.model, &self.windows);
        #[allow(clippy::type_complexity)]
        let parts: Vec<Result<(f64, Vec<f64>, Vec<f64>)>> = self
            .dys
            .par_iter_mut()
            .zip(idx.par_chunks(per))
            .map(|(dy, chunk)| {
                let mut g = vec![0.0; np];
                let mut sens = vec![0.0; if want_grad { n } else { 0 }];
                let mut l = 0.0;
                for &i in chunk {
                    l += graph_window(
                        dy,
                        model,
                        &offs,
                        wdata,
                        (data.input_row(i), data.target_row(i)),
                        data.weight(i) * inv,
                        loss,
                        want_grad.then_some((g.as_mut_slice(), sens.as_mut_slice())),
                    )
                    .map_err(|e| e.context(&format!("window {i}")))?;
                }
                Ok((l, g, sens))
            })
            .collect();
        let mut total = 0.0;
        let mut grad = vec![0.0; np];
        let mut sens = vec![0.0; if want_grad { n } else { 0 }];
        for p in parts {
            let (l, g, s) = p?;
            total += l;
            grad.iter_mut().zip(&g).for_each(|(x, y)| *x += y);
            sens.iter_mut().zip(&s).for_each(|(x, y)| *x += y);
        }
        if want_grad {
            for (t, term) in model.terms.iter().enumerate() {
                if let GraphTerm::Kinetic { .. } = term {
                    kinetic_backward(
                        model,
                        t,
                        &self.graph,
                        &sens,
                        &mut grad[offs[t]..offs[t + 1]],
                    )?;
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

fn estimator(kind: ObjectiveKind) -> Result<crate::data::derivatives::Estimator> {
    use crate::data::derivatives::Estimator;
    match kind {
        ObjectiveKind::Savgol => Ok(Estimator::SAVGOL_DEFAULT),
        ObjectiveKind::Central => Ok(Estimator::Central),
        k => Err(Error::input(format!(
            "'{}' is not a derivative-estimation objective",
            k.as_str()
        ))),
    }
}

/// Train a single-site LNN (`model`, freshly initialised, kind lnn; its `q_period` is honoured)
/// on positions-only data with `spec.objective` (weak, or a derivative baseline): one call of
/// [`super::fit`]. `path` names the data in errors.
pub fn fit_lnn_positions(
    mut model: TrainedModel,
    pos: &PositionsData,
    path: &Path,
    spec: &PositionsFit,
    on_step: &mut dyn FnMut(&super::Progress),
) -> Result<(TrainedModel, super::TrainReport)> {
    match spec.objective {
        ObjectiveKind::Weak => {
            let mut w = spec.form.windows(pos, path)?;
            w.wrap_q(&model);
            super::fit_normalisation(&mut model, &w.centre_states());
            let data = w.samples.clone();
            let mut t = WeakLnnTrainer::new(model, w)?;
            let report = super::fit(&mut t, &data, &spec.cfg, on_step)?;
            Ok((t.model, report))
        }
        ObjectiveKind::Accel => Err(Error::file(
            path,
            "the acceleration objective needs measured qdot and qddot; this data holds positions only (use --objective weak, savgol or central)",
        )),
        k => {
            let h = pos.uniform_step(path)?;
            let raw = crate::data::derivatives::estimate_samples(pos, h, estimator(k)?)
                .map_err(|e| Error::file(path, e.to_string()))?;
            let mut samples =
                super::prepare_samples(model.kind, &raw, super::HnnCoords::Velocity)?;
            model.wrap_inputs(&mut samples);
            super::fit_normalisation(&mut model, &samples);
            super::train(model, &samples, &spec.cfg, on_step)
        }
    }
}

/// Train a graph model on positions-only data: `make` builds the model from the training
/// states' positions (e.g. [`GraphModel::node_edge`]); weak-form or derivative-baseline
/// objective as in [`fit_lnn_positions`].
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
    match spec.objective {
        ObjectiveKind::Weak => {
            let w = spec.form.windows(pos, path)?;
            let cs = w.centre_states();
            let qs: Vec<&[f64]> = (0..cs.n).map(|i| &cs.input_row(i)[..n]).collect();
            let model = make(&qs)?;
            let data = w.samples.clone();
            let mut t = WeakGraphTrainer::new(model, graph.clone(), w)?;
            let report = super::fit(&mut t, &data, &spec.cfg, on_step)?;
            Ok((t.model, report))
        }
        ObjectiveKind::Accel => Err(Error::file(
            path,
            "the acceleration objective needs measured qdot and qddot; this data holds positions only",
        )),
        k => {
            let h = pos.uniform_step(path)?;
            let raw = crate::data::derivatives::estimate_samples(pos, h, estimator(k)?)
                .map_err(|e| Error::file(path, e.to_string()))?;
            let samples = Samples::from_data(&raw)?;
            let qs: Vec<&[f64]> = (0..samples.n).map(|i| &samples.input_row(i)[..n]).collect();
            let model = make(&qs)?;
            let mut t = super::graph::GraphTrainer::new(model, graph.clone())?;
            let report = super::fit(&mut t, &samples, &spec.cfg, on_step)?;
            Ok((t.model, report))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Boundary, FeatureSet, NetShape};
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
            let h = 1e-5 * (1.0 + theta[k].abs());
            let mut t = theta.clone();
            t[k] += h;
            tr.set_params(&t).unwrap();
            let lp = tr.loss_grad(data, idx, loss, false).unwrap().0;
            t[k] -= 2.0 * h;
            tr.set_params(&t).unwrap();
            let lm = tr.loss_grad(data, idx, loss, false).unwrap().0;
            let fd = (lp - lm) / (2.0 * h);
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
        };
        let mut wdata = wf.windows(&pos, Path::new("mem")).unwrap();
        let mut model =
            TrainedModel::init(super::super::ModelKind::Lnn, "dblpend", 2, 8, 2, 4).unwrap();
        model.set_q_period(2.0 * std::f64::consts::PI).unwrap();
        wdata.wrap_q(&model);
        super::super::fit_normalisation(&mut model, &wdata.centre_states());
        let data = wdata.samples.clone();
        let mut tr = WeakLnnTrainer::new(model, wdata).unwrap();
        let idx: Vec<usize> = (0..data.n).step_by(3).collect();
        // A freshly initialised LNN has a nearly singular M at some centres (losses ~1e10), so the
        // central differences themselves are only good to ~1e-5 there.
        fd_check(&mut tr, &data, &idx, LossKind::Mse, 2e-4);
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
        let t = 22;
        let h = 0.1;
        let pos = PositionsData {
            t: Array1::from_iter((0..t).map(|k| k as f64 * h)),
            q: Array3::from_shape_fn((2, t, 2 * n), |(bi, k, j)| {
                (0.3 * j as f64 + 0.7 * bi as f64 + 1.1 * k as f64 * h).sin()
                    * (1.0 + 0.1 * j as f64)
            }),
            ..Default::default()
        };
        let wf = WeakForm {
            half_width: 3,
            power: 2,
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
}
