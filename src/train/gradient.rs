//! Loss and exact parameter gradient of Lagrangian models through the Euler–Lagrange solve
//! (adjoint method, docs/DESIGN.md §3).
//!
//! For each sample: a = M⁻¹ b (docs/DESIGN.md §1), λ = M⁻¹ ∂ℓ/∂a (M symmetric, so the same
//! factorisation serves), then
//!
//! ```text
//! dℓ/dθ = λᵀ(∂b/∂θ − (∂M/∂θ) a) = ∂/∂θ Σ_s S_s(θ),  S_s = D_(λ_I,0) ρ − D_(0,λ_I) D_(v_I,a_I) ρ
//! ```
//!
//! with q, v, a, λ held fixed; ∂S_s/∂θ comes from [`adjoint_block`].
//!
//! Two paths:
//! * [`lnn_dense_block_counted`]: single-site LNNs (double pendulum, relativistic particle): the sites of
//!   *all* samples of a block go through one `eval_block` and one `adjoint_block` call (every
//!   layer a GEMM over the block), and each kd × kd mass matrix is solved by a small dense LU
//!   with partial pivoting.
//! * [`lnn_graph_sample_sens`]: any graph and any number of MLP terms (ring LGN, node + edge terms):
//!   the sample's [`Dynamics`] assembles and factorises the sparse/banded M, the same
//!   factorisation gives λ, and the sites go through `adjoint_block` in fixed blocks.
//!
//! Determinism: partial gradients are kept per fixed block (or fixed group of blocks) and
//! summed in block order, never in rayon's dynamic reduction order.

use super::hyperdual::{adjoint_block, adjoint_block_dirs, n_params, SecondOrder};
use super::loss::LossKind;
use super::mass_penalty::{self, MassPenalty};
use crate::density::{Density, Mlp, MlpDensity};
use crate::dynamics::Dynamics;
use crate::{Error, Result};
use rayon::prelude::*;

/// LU factorisation with partial pivoting of a small dense row-major n × n matrix, in place.
/// Returns the pivot order, or `None` if a pivot is below `1e-13·max|M|` (numerically singular).
pub fn small_lu(m: &mut [f64], n: usize) -> Option<Vec<usize>> {
    let scale = m.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let mut piv: Vec<usize> = (0..n).collect();
    for k in 0..n {
        let (mut best, mut bi) = (m[k * n + k].abs(), k);
        for i in k + 1..n {
            if m[i * n + k].abs() > best {
                best = m[i * n + k].abs();
                bi = i;
            }
        }
        if best <= 1e-13 * scale {
            return None;
        }
        if bi != k {
            for j in 0..n {
                m.swap(k * n + j, bi * n + j);
            }
            piv.swap(k, bi);
        }
        let d = m[k * n + k];
        for i in k + 1..n {
            let f = m[i * n + k] / d;
            m[i * n + k] = f;
            for j in k + 1..n {
                m[i * n + j] -= f * m[k * n + j];
            }
        }
    }
    Some(piv)
}

/// Solve with a factorisation from [`small_lu`]; `x` holds b on entry.
pub fn small_lu_solve(lu: &[f64], piv: &[usize], n: usize, x: &mut [f64]) {
    let b: Vec<f64> = piv.iter().map(|&p| x[p]).collect();
    x[..n].copy_from_slice(&b);
    for i in 0..n {
        let mut s = x[i];
        for j in 0..i {
            s -= lu[i * n + j] * x[j];
        }
        x[i] = s;
    }
    for i in (0..n).rev() {
        let mut s = x[i];
        for j in i + 1..n {
            s -= lu[i * n + j] * x[j];
        }
        x[i] = s / lu[i * n + i];
    }
}

/// Training samples: `n` rows of inputs (`in_dim`, e.g. (q, q̇)) and targets (`out_dim`, e.g. q̈),
/// row-major, with optional non-negative weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    pub n: usize,
    pub in_dim: usize,
    pub out_dim: usize,
    pub input: Vec<f64>,
    pub target: Vec<f64>,
    pub weights: Option<Vec<f64>>,
}

impl Samples {
    /// Check shapes and values; names the first problem.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        input: Vec<f64>,
        target: Vec<f64>,
        weights: Option<Vec<f64>>,
    ) -> Result<Samples> {
        if in_dim == 0 || out_dim == 0 {
            return Err(Error::input("sample dimensions must be positive"));
        }
        if input.len() % in_dim != 0 {
            return Err(Error::input(format!(
                "{} input values are not a multiple of the input dimension {in_dim}",
                input.len()
            )));
        }
        let n = input.len() / in_dim;
        if n == 0 {
            return Err(Error::input("the data set is empty (0 samples)"));
        }
        if target.len() != n * out_dim {
            return Err(Error::input(format!(
                "{n} samples need {} target values ({out_dim} each), got {}",
                n * out_dim,
                target.len()
            )));
        }
        if let Some(i) = input.iter().position(|x| !x.is_finite()) {
            return Err(Error::input(format!(
                "sample {} has a non-finite input value {} (column {})",
                i / in_dim,
                input[i],
                i % in_dim
            )));
        }
        if let Some(i) = target.iter().position(|x| !x.is_finite()) {
            return Err(Error::input(format!(
                "sample {} has a non-finite target value {} (column {})",
                i / out_dim,
                target[i],
                i % out_dim
            )));
        }
        if let Some(w) = &weights {
            if w.len() != n {
                return Err(Error::input(format!(
                    "{} weights given for {n} samples",
                    w.len()
                )));
            }
            if let Some(i) = w.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err(Error::input(format!(
                    "weight of sample {i} is {}, need a finite value ≥ 0",
                    w[i]
                )));
            }
            if w.iter().sum::<f64>() <= 0.0 {
                return Err(Error::input("all sample weights are zero"));
            }
        }
        Ok(Samples {
            n,
            in_dim,
            out_dim,
            input,
            target,
            weights,
        })
    }

    /// Acceleration targets of a whole-state model (graph models, LNNs): input rows (q, q̇),
    /// targets q̈, with the file's weights.
    pub fn from_data(data: &crate::io::SamplesData) -> Result<Samples> {
        let (n, d) = data.q.dim();
        if data.qdot.dim() != (n, d) || data.qddot.dim() != (n, d) {
            return Err(Error::input(format!(
                "q is {n}×{d} but qdot is {:?} and qddot {:?}",
                data.qdot.dim(),
                data.qddot.dim()
            )));
        }
        let mut input = Vec::with_capacity(n * 2 * d);
        for i in 0..n {
            input.extend(data.q.row(i).iter());
            input.extend(data.qdot.row(i).iter());
        }
        Samples::new(
            2 * d,
            d,
            input,
            data.qddot.iter().copied().collect(),
            data.weights.as_ref().map(|w| w.to_vec()),
        )
    }

    pub fn weight(&self, i: usize) -> f64 {
        self.weights.as_ref().map_or(1.0, |w| w[i])
    }

    pub fn input_row(&self, i: usize) -> &[f64] {
        &self.input[i * self.in_dim..(i + 1) * self.in_dim]
    }

    pub fn target_row(&self, i: usize) -> &[f64] {
        &self.target[i * self.out_dim..(i + 1) * self.out_dim]
    }

    /// 1/(D Σ_{i∈idx} w_i): the loss normalisation of a minibatch (see [`super::loss`]).
    pub fn inv_norm(&self, idx: &[usize]) -> f64 {
        let sw: f64 = idx.iter().map(|&i| self.weight(i)).sum();
        1.0 / (self.out_dim as f64 * sw)
    }

    /// The subset `idx` as a new data set.
    pub fn subset(&self, idx: &[usize]) -> Samples {
        Samples {
            n: idx.len(),
            in_dim: self.in_dim,
            out_dim: self.out_dim,
            input: idx
                .iter()
                .flat_map(|&i| self.input_row(i).iter().copied())
                .collect(),
            target: idx
                .iter()
                .flat_map(|&i| self.target_row(i).iter().copied())
                .collect(),
            weights: self
                .weights
                .as_ref()
                .map(|w| idx.iter().map(|&i| w[i]).collect()),
        }
    }
}

/// Samples per block of the dense single-site paths (one GEMM per layer per block).
pub const SAMPLE_BLOCK: usize = 128;

/// Largest 1-norm condition number of a learned mass matrix M = ∂²L/∂q̇² that training
/// accepts; samples beyond it (or with a numerically singular M, or a non-finite
/// acceleration) are dropped from the minibatch's loss and gradient, see
/// [`lnn_dense_block_counted`].
pub const MAX_MASS_COND: f64 = 1e10;

/// 1-norm condition number of the n × n matrix `m0` from its LU factors (`lu`, `piv`), by
/// solving for the columns of M⁻¹ (n is small: single-site dof).
pub(crate) fn small_cond1(m0: &[f64], lu: &[f64], piv: &[usize], n: usize) -> f64 {
    let norm1 = |col: &dyn Fn(usize, usize) -> f64| -> f64 {
        (0..n)
            .map(|j| (0..n).map(|i| col(i, j).abs()).sum::<f64>())
            .fold(0.0, f64::max)
    };
    let mut inv = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    for j in 0..n {
        e.fill(0.0);
        e[j] = 1.0;
        small_lu_solve(lu, piv, n, &mut e);
        for i in 0..n {
            inv[i * n + j] = e[i];
        }
    }
    let c = norm1(&|i, j| m0[i * n + j]) * norm1(&|i, j| inv[i * n + j]);
    if c.is_finite() {
        c
    } else {
        f64::INFINITY
    }
}

/// Loss (and, with `grad`, its exact gradient accumulated into `grad`) of a single-site LNN
/// (arity 1, dof D = `data.out_dim`, input (q, q̇)) over the samples `idx` of one block, and how many samples were dropped: a sample whose learned
/// mass matrix is numerically singular, has a 1-norm condition number above
/// [`MAX_MASS_COND`], or gives a non-finite acceleration (or, with a gradient, a non-finite
/// adjoint M⁻¹ ∂ℓ/∂q̈) contributes neither loss nor gradient
/// (the other samples keep their exact terms and the minibatch normalisation is unchanged).
pub fn lnn_dense_block_counted(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    inv_norm: f64,
    grad: Option<&mut [f64]>,
) -> Result<(f64, usize)> {
    lnn_dense_block_penalised(dens, data, idx, loss, inv_norm, None, grad).map(|(l, nd, _)| (l, nd))
}

/// [`lnn_dense_block_counted`] plus, with `penalty`, the mass-matrix definiteness penalty of
/// [`super::mass_penalty`] over the block (its value is added to the returned loss and also
/// returned separately; its gradient is added to `grad`). Dropped samples (singular M) still
/// receive the penalty, which is what pushes them back to a regular M.
pub fn lnn_dense_block_penalised(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    inv_norm: f64,
    penalty: Option<MassPenalty>,
    grad: Option<&mut [f64]>,
) -> Result<(f64, usize, f64)> {
    lnn_dense_block_damped(dens, data, idx, loss, inv_norm, penalty, grad, None)
}

/// The dissipation of a single-network LNN in training ([`lnn_dense_block_damped`]).
#[derive(Clone, Copy, Debug)]
pub enum LnnDamping<'a> {
    /// D = ½ Σ_k c_k q̇_k² with these (signed) c (docs/DESIGN.md §13.2); gradient slot ∂ℓ/∂c.
    Linear(&'a [f64]),
    /// D = ½ s q̇ᵀ R(q) q̇, R = L Lᵀ (docs/DESIGN.md §22) with the sign s of the learned mass;
    /// gradient slot ∂ℓ/∂θ of R's network.
    Matrix(
        &'a crate::density::dissipation_matrix::MatrixDissipation,
        f64,
    ),
}

/// [`lnn_dense_block_penalised`] with dissipation: M a = ∂L/∂q − C q̇ − ∂D/∂q̇. Linear damping
/// D = ½ Σ_k c_k q̇_k² (docs/DESIGN.md §13.2): with `damping = (Linear(c), dc)`,
/// ∂ℓ/∂c_k = −Σ λ_k q̇_k is accumulated into `dc` when a gradient is asked for. A learned matrix
/// D = ½ s q̇ᵀR(q)q̇ (§22): ∂ℓ/∂θ = −s Σ ∂(λᵀRq̇)/∂θ into the slot, one reverse sweep per block.
#[allow(clippy::too_many_arguments)]
pub fn lnn_dense_block_damped(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    inv_norm: f64,
    penalty: Option<MassPenalty>,
    grad: Option<&mut [f64]>,
    mut damping: Option<(LnnDamping<'_>, &mut [f64])>,
) -> Result<(f64, usize, f64)> {
    let d = data.out_dim;
    let p = 2 * d;
    let nb = idx.len();
    let lay = dens.layout();
    debug_assert_eq!(lay.kd, d);
    let stride = lay.stride();
    let mut x = vec![0.0; p * nb];
    for (j, &i) in idx.iter().enumerate() {
        x[j * p..(j + 1) * p].copy_from_slice(data.input_row(i));
    }
    let mut rec = vec![0.0; stride * nb];
    dens.eval_block(&x, nb, &mut rec);
    let want = grad.is_some();
    // Reverse-sweep sites, row by row: [x | u1 | u2 | u3], p values each.
    let mut sites: Vec<f64> = if want {
        Vec::with_capacity(4 * p * nb)
    } else {
        vec![]
    };
    let mut m = vec![0.0; d * d];
    let mut a = vec![0.0; d];
    let mut g = vec![0.0; d];
    let mut total = 0.0;
    let mut dropped = 0usize;
    // The matrix dissipation's force s R(q) q̇ of every sample of the block, and the states and
    // adjoints of the kept samples for its reverse sweep.
    let mut mat_force = vec![];
    let (mut kq, mut kv, mut kl) = (vec![], vec![], vec![]);
    if let Some((LnnDamping::Matrix(md, s), _)) = &damping {
        let (mut qb, mut vb) = (Vec::with_capacity(nb * d), Vec::with_capacity(nb * d));
        for &i in idx {
            let xr = data.input_row(i);
            qb.extend_from_slice(&xr[..d]);
            vb.extend_from_slice(&xr[d..2 * d]);
        }
        mat_force = vec![0.0; nb * d];
        md.forces_block(&qb, &vb, nb, &mut mat_force);
        mat_force.iter_mut().for_each(|f| *f *= s);
    }
    for (j, &i) in idx.iter().enumerate() {
        let r = &rec[j * stride..(j + 1) * stride];
        let m0 = &r[lay.mass()..lay.mass() + d * d];
        for c in 0..d {
            a[c] = r[lay.grad_q() + c] - r[lay.cv() + c];
        }
        match &damping {
            Some((LnnDamping::Linear(dc), _)) => {
                let v = &data.input_row(i)[d..];
                for c in 0..d {
                    a[c] -= dc[c] * v[c];
                }
            }
            Some((LnnDamping::Matrix(..), _)) => {
                for c in 0..d {
                    a[c] -= mat_force[j * d + c];
                }
            }
            None => {}
        }
        let Some(piv) = solve_mass(m0, &mut m, d, &mut a) else {
            // Dropped: no loss and no site in the reverse sweep.
            dropped += 1;
            continue;
        };
        let scale = data.weight(i) * inv_norm;
        let li = loss.sample(&a, data.target_row(i), scale, &mut g);
        if want {
            // λ = M⁻¹ ∂ℓ/∂a (M symmetric).
            small_lu_solve(&m, &piv, d, &mut g);
            if !g.iter().all(|x| x.is_finite()) {
                // A tiny learned M (|M| ≪ 1 with a moderate condition number) can overflow
                // the adjoint: drop the sample rather than poison its minibatch.
                dropped += 1;
                continue;
            }
            let xr = data.input_row(i);
            match &mut damping {
                Some((LnnDamping::Linear(_), gc)) => {
                    for c in 0..d {
                        gc[c] -= g[c] * xr[d + c];
                    }
                }
                Some((LnnDamping::Matrix(..), _)) => {
                    kq.extend_from_slice(&xr[..d]);
                    kv.extend_from_slice(&xr[d..2 * d]);
                    kl.extend_from_slice(&g);
                }
                None => {}
            }
            sites.extend_from_slice(xr);
            // u1 = (0, λ), u2 = (v, a), u3 = (λ, 0).
            sites.extend(std::iter::repeat_n(0.0, d));
            sites.extend_from_slice(&g);
            sites.extend_from_slice(&xr[d..]);
            sites.extend_from_slice(&a);
            sites.extend_from_slice(&g);
            sites.extend(std::iter::repeat_n(0.0, d));
        }
        total += li;
    }
    if let Some((LnnDamping::Matrix(md, s), gm)) = &mut damping {
        md.adjoint_block(&kq, &kv, &kl, kl.len() / d, -*s, gm);
    }
    let pen_total = match penalty {
        Some(pen) => penalty_sites(&rec, (lay, d), data, idx, inv_norm, pen, want, &mut sites),
        None => 0.0,
    };
    if let Some(grad) = grad {
        sweep_sites(dens, &sites, d, grad);
    }
    Ok((total + pen_total, dropped, pen_total))
}

/// The mass penalty (8.1) of a block from its forward records `rec` (layout `lay`, `d`
/// coordinates): its value, and, when `want`, one reverse-sweep site per active eigen-direction
/// appended to `sites` ([x | u1 | u2 | u3] rows, docs/DESIGN.md (8.2)).
#[allow(clippy::too_many_arguments)]
fn penalty_sites(
    rec: &[f64],
    (lay, d): (crate::density::SiteLayout, usize),
    data: &Samples,
    idx: &[usize],
    inv_norm: f64,
    pen: MassPenalty,
    want: bool,
    sites: &mut Vec<f64>,
) -> f64 {
    let stride = lay.stride();
    let p = 2 * d;
    let ms: Vec<f64> = (0..idx.len())
        .flat_map(|j| {
            let r = &rec[j * stride..(j + 1) * stride];
            r[lay.mass()..lay.mass() + d * d].iter().copied()
        })
        .collect();
    let w: Vec<f64> = idx
        .iter()
        .map(|&i| pen.weight * data.weight(i) * inv_norm * d as f64)
        .collect();
    let (pv, dirs) = mass_penalty::block_penalty(&ms, d, &w, pen, want);
    for dir in &dirs {
        // S = D_u3 ρ − D_u1 D_u2 ρ with u1 = (0, −coef u), u2 = (0, u), u3 = 0: coef uᵀMu.
        sites.extend_from_slice(data.input_row(idx[dir.sample]));
        sites.extend(std::iter::repeat_n(0.0, d));
        sites.extend(dir.u.iter().map(|x| -dir.coef * x));
        sites.extend(std::iter::repeat_n(0.0, d));
        sites.extend_from_slice(&dir.u);
        sites.extend(std::iter::repeat_n(0.0, p));
    }
    pv
}

/// ∂/∂θ Σ_s S_s of the reverse-sweep `sites` ([x | u1 | u2 | u3] rows of 2d values each),
/// through the angle embedding when the density has one; added into `grad`.
pub(crate) fn sweep_sites(dens: &MlpDensity, sites: &[f64], d: usize, grad: &mut [f64]) {
    let p = 2 * d;
    let ns = sites.len() / (4 * p);
    if ns == 0 {
        return;
    }
    // Channel-major columns: column c·ns + s holds channel c of site s.
    let mut xin = vec![0.0; 4 * p * ns];
    for s in 0..ns {
        for c in 0..4 {
            let src = &sites[(s * 4 + c) * p..(s * 4 + c + 1) * p];
            xin[(c * ns + s) * p..(c * ns + s + 1) * p].copy_from_slice(src);
        }
    }
    if dens.embedded() {
        // Through the angle embedding (docs/DESIGN.md §14.6).
        xin = crate::density::embed::embed_adjoint_channels(&xin, ns, d);
    }
    adjoint_block(&dens.mlp, &mut xin, ns, grad);
}

/// The mass penalty (8.1) alone over the minibatch `idx` of a single-site LNN, no data loss
/// (docs/DESIGN.md §21.6): its value and, with `grad`, its gradient added into `grad` (m̄ held
/// constant, floored as `pen` says). Parallel over fixed blocks of [`SAMPLE_BLOCK`] samples like
/// [`lnn_dense_loss_grad`]; the weights are those of the training loss (β/N).
pub fn lnn_dense_penalty_grad(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    pen: MassPenalty,
    want_grad: bool,
) -> (f64, Vec<f64>) {
    let d = data.out_dim;
    let p = 2 * d;
    let np = if want_grad {
        n_params(&dens.mlp.sizes)
    } else {
        0
    };
    let inv = data.inv_norm(idx);
    let lay = dens.layout();
    let parts: Vec<(f64, Vec<f64>)> = idx
        .par_chunks(SAMPLE_BLOCK)
        .map(|chunk| {
            let nb = chunk.len();
            let mut x = vec![0.0; p * nb];
            for (j, &i) in chunk.iter().enumerate() {
                x[j * p..(j + 1) * p].copy_from_slice(data.input_row(i));
            }
            let mut rec = vec![0.0; lay.stride() * nb];
            dens.eval_block(&x, nb, &mut rec);
            let mut sites = vec![];
            let pv = penalty_sites(&rec, (lay, d), data, chunk, inv, pen, want_grad, &mut sites);
            let mut g = vec![0.0; np];
            if want_grad {
                sweep_sites(dens, &sites, d, &mut g);
            }
            (pv, g)
        })
        .collect();
    sum_partials(parts, np)
}

/// Factorise a learned mass matrix `m0` (d × d) into `m` and solve `rhs` in place: the pivots,
/// or None when M is singular, worse conditioned than [`MAX_MASS_COND`] or the solution is not
/// finite (the sample is then dropped from its minibatch).
pub(crate) fn solve_mass(
    m0: &[f64],
    m: &mut [f64],
    d: usize,
    rhs: &mut [f64],
) -> Option<Vec<usize>> {
    m.copy_from_slice(m0);
    small_lu(m, d).and_then(|piv| {
        if small_cond1(m0, m, &piv, d) > MAX_MASS_COND {
            return None;
        }
        small_lu_solve(m, &piv, d, rhs);
        rhs.iter().all(|x| x.is_finite()).then_some(piv)
    })
}

/// Partial results of fixed blocks summed in block order: (loss, gradient).
pub(crate) fn sum_partials(parts: Vec<(f64, Vec<f64>)>, np: usize) -> (f64, Vec<f64>) {
    let mut g = vec![0.0; np];
    let mut l = 0.0;
    for (pl, pg) in parts {
        l += pl;
        for (a, b) in g.iter_mut().zip(&pg) {
            *a += b;
        }
    }
    (l, g)
}

/// Loss and gradient of a single-site LNN over the minibatch `idx`, parallel over fixed blocks
/// of [`SAMPLE_BLOCK`] samples (deterministic for any thread count).
/// Samples with a singular or badly conditioned learned M are dropped (see
/// [`lnn_dense_block_counted`]); [`lnn_dense_loss_grad_counted`] also returns their number.
pub fn lnn_dense_loss_grad(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
) -> Result<(f64, Vec<f64>)> {
    lnn_dense_loss_grad_counted(dens, data, idx, loss, want_grad).map(|(l, g, _)| (l, g))
}

/// [`lnn_dense_loss_grad`] plus the number of dropped samples.
pub fn lnn_dense_loss_grad_counted(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
) -> Result<(f64, Vec<f64>, usize)> {
    lnn_dense_loss_grad_penalised(dens, data, idx, loss, None, want_grad)
}

/// [`lnn_dense_loss_grad_counted`] with the optional mass-matrix definiteness penalty of
/// [`super::mass_penalty`] added to the loss and gradient.
pub fn lnn_dense_loss_grad_penalised(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    penalty: Option<MassPenalty>,
    want_grad: bool,
) -> Result<(f64, Vec<f64>, usize)> {
    let np = if want_grad {
        n_params(&dens.mlp.sizes)
    } else {
        0
    };
    let inv = data.inv_norm(idx);
    let parts: Vec<Result<(f64, Vec<f64>, usize)>> = idx
        .par_chunks(SAMPLE_BLOCK)
        .map(|chunk| {
            let mut g = vec![0.0; np];
            let (l, nd, _) = lnn_dense_block_penalised(
                dens,
                data,
                chunk,
                loss,
                inv,
                penalty,
                want_grad.then_some(g.as_mut_slice()),
            )?;
            Ok((l, g, nd))
        })
        .collect();
    let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
    let dropped = parts.iter().map(|x| x.2).sum();
    let (l, g) = sum_partials(parts.into_iter().map(|(l, g, _)| (l, g)).collect(), np);
    Ok((l, g, dropped))
}

/// Offsets of each term's parameters in the concatenated parameter vector (fixed terms, `None`,
/// take no room).
pub fn term_offsets(mlps: &[Option<&Mlp>]) -> Vec<usize> {
    let mut o = vec![0];
    for m in mlps {
        let last = *o.last().unwrap();
        o.push(last + m.map_or(0, |m| n_params(&m.sizes)));
    }
    o
}

/// Number of site-block groups whose gradients are kept apart (fixed, so the summation order
/// does not depend on the thread count).
const GRAPH_GROUPS: usize = 16;

/// One sample of a graph Lagrangian with MLP terms: returns the sample's loss
/// `scale·Σ_j f(a_j − y_j)` and accumulates its exact gradient into `grad` (concatenated per-term
/// parameters, see [`term_offsets`]; `mlps[t]` is the network of term t, `None` for a fixed
/// term) and, when `mass_diag_sens` is given, the sensitivity of
/// the loss to the diagonal of M: ∂ℓ/∂M_jj = −λ_j a_j with λ = M⁻¹ ∂ℓ/∂a (from a = M⁻¹ b). This
/// is what a trainer needs for a kinetic term ½ Σ_j μ_j q̇_j² whose masses μ_j come from a separate
/// (e.g. feature-only) network.
#[allow(clippy::too_many_arguments)]
pub fn lnn_graph_sample_sens(
    dy: &mut Dynamics,
    mlps: &[Option<&Mlp>],
    q: &[f64],
    v: &[f64],
    target: &[f64],
    scale: f64,
    loss: LossKind,
    grad: Option<&mut [f64]>,
    mass_diag_sens: Option<&mut [f64]>,
) -> Result<f64> {
    if mlps.len() != dy.lagrangian.terms.len() {
        return Err(Error::input(format!(
            "{} networks given for {} Lagrangian terms",
            mlps.len(),
            dy.lagrangian.terms.len()
        )));
    }
    let n = dy.n_coords();
    let a = dy.accelerations(q, v)?;
    let mut lam = vec![0.0; n];
    let l = loss.sample(&a, target, scale, &mut lam);
    if grad.is_none() && mass_diag_sens.is_none() {
        return Ok(l);
    }
    dy.solver.solve_in_place(&mut lam)?;
    if let Some(sens) = mass_diag_sens {
        if sens.len() != n {
            return Err(Error::input(format!(
                "mass sensitivity buffer has {} values, need {n}",
                sens.len()
            )));
        }
        for ((s, l), a) in sens.iter_mut().zip(&lam).zip(&a) {
            *s -= l * a;
        }
    }
    let Some(grad) = grad else {
        return Ok(l);
    };
    let d = dy.lagrangian.dof;
    let offs = term_offsets(mlps);
    for (t, term) in dy.lagrangian.terms.iter().enumerate() {
        let Some(mlp) = mlps[t] else {
            continue;
        };
        let p = 2 * term.sites.arity * d + term.sites.n_features;
        if mlp.sizes[0] != p {
            return Err(Error::input(format!(
                "network {t} has input size {} but its sites need {p}",
                mlp.sizes[0]
            )));
        }
        raw_mlp_adjoint(
            mlp,
            &term.sites,
            d,
            (q, v, &a, &lam),
            &mut grad[offs[t]..offs[t + 1]],
        );
    }
    Ok(l)
}

/// Columns (sites × copies) of one [`adjoint_block`] call in the batched sweeps: the sites of
/// all samples of a minibatch are packed into blocks this wide, so each layer is a GEMM of
/// width 4·BATCH_COLS whatever the graph's size (docs/DESIGN.md §15). 64 since §24.3: at
/// hidden 32 a block of 64 sites keeps a layer's channels (≈ 64 KB) in L2 and was the fastest
/// width of the sweep (≈ 10 % faster than 256).
pub(crate) const BATCH_COLS: usize = 64;

/// The batched hyper-dual sweep over all `pairs` = samples × `ns` (sample, site) pairs:
/// blocks of at most [`BATCH_COLS`] columns (`copies` columns per pair), grouped into at most
/// [`GRAPH_GROUPS`] contiguous groups evaluated in parallel (one gradient buffer and one input
/// buffer per group, reused across its blocks) and summed in group order, so the result does
/// not depend on the thread count. `fill(xin, nb, col, sample, site)` writes the raw input
/// channels of one pair into columns `col..col + copies` of a block of width `nb`
/// (column-major `p × 4nb`, channel c of column j at `(c·nb + j)·p`; `xin` is zeroed first).
pub(crate) fn batched_adjoint<F>(
    net: &Mlp,
    pairs: usize,
    ns: usize,
    copies: usize,
    grad: &mut [f64],
    fill: F,
) where
    F: Fn(&mut [f64], usize, usize, usize, usize) + Sync,
{
    batched_adjoint_with(
        net,
        (pairs, ns, copies),
        None::<PairDirs<'_, fn(&mut [f64], usize)>>,
        grad,
        fill,
    )
}

/// Second-order columns of a batched sweep (docs/DESIGN.md §24): direction j belongs to pair
/// `pair[j]` (ascending), adds `coef[j]·D_u D_u ρ` there, and `fill(col, j)` writes its raw
/// tangent u into one input column (`p` values, zeroed first).
pub(crate) struct PairDirs<'a, G> {
    pub pair: &'a [usize],
    pub coef: &'a [f64],
    pub fill: G,
}

/// [`batched_adjoint`] with optional second-order columns ([`PairDirs`], only with one column
/// per pair): each block carries, after its 4·nb channel columns, the directions of its pairs
/// ([`hyperdual::adjoint_block_dirs`]).
pub(crate) fn batched_adjoint_with<F, G>(
    net: &Mlp,
    (pairs, ns, copies): (usize, usize, usize),
    dirs: Option<PairDirs<'_, G>>,
    grad: &mut [f64],
    fill: F,
) where
    F: Fn(&mut [f64], usize, usize, usize, usize) + Sync,
    G: Fn(&mut [f64], usize) + Sync,
{
    assert!(
        dirs.is_none() || copies == 1,
        "second-order columns need one column per pair"
    );
    let p = net.sizes[0];
    let per_block = (BATCH_COLS / copies).max(1);
    let nblocks = pairs.div_ceil(per_block);
    if nblocks == 0 {
        return;
    }
    let groups = nblocks.clamp(1, GRAPH_GROUPS);
    let per = nblocks.div_ceil(groups);
    let np = grad.len();
    let dirs = dirs.as_ref();
    let parts: Vec<Vec<f64>> = (0..groups)
        .into_par_iter()
        .map(|gi| {
            let mut g = vec![0.0; np];
            let mut buf: Vec<f64> = Vec::new();
            let mut site: Vec<usize> = Vec::new();
            for b in gi * per..((gi + 1) * per).min(nblocks) {
                let k0 = b * per_block;
                let m = (pairs - k0).min(per_block);
                let nb = m * copies;
                let (e0, e1) = dirs.map_or((0, 0), |d| {
                    (
                        d.pair.partition_point(|&k| k < k0),
                        d.pair.partition_point(|&k| k < k0 + m),
                    )
                });
                let nd = e1 - e0;
                let len = p * (4 * nb + nd);
                if buf.len() < len {
                    buf.resize(len, 0.0);
                }
                let xin = &mut buf[..len];
                xin.fill(0.0);
                for j in 0..m {
                    let k = k0 + j;
                    fill(xin, nb, j * copies, k / ns, k % ns);
                }
                let sd = match dirs {
                    Some(d) if nd > 0 => {
                        site.clear();
                        site.extend(d.pair[e0..e1].iter().map(|&k| k - k0));
                        for (j, col) in xin[4 * nb * p..].chunks_exact_mut(p).enumerate() {
                            (d.fill)(col, e0 + j);
                        }
                        SecondOrder {
                            site: &site,
                            coef: &d.coef[e0..e1],
                        }
                    }
                    _ => SecondOrder::NONE,
                };
                adjoint_block_dirs(net, xin, nb, sd, &mut g);
            }
            g
        })
        .collect();
    for pg in parts {
        for (x, y) in grad.iter_mut().zip(&pg) {
            *x += y;
        }
    }
}

/// One sample's state for the batched adjoint sweeps: q, q̇, q̈ and the adjoint λ.
pub(crate) type SampleState<'a> = (&'a [f64], &'a [f64], &'a [f64], &'a [f64]);

/// ∂/∂θ Σ_s S_s of a general MLP term ρ(q_I, v_I, f) (docs/DESIGN.md §3) with
/// S_s = λ_I·∂ρ/∂q_I − λ_Iᵀ(C_s v_I + m_s a_I), accumulated into `grad` (the term's parameters):
/// `(q, v, a, lam)` are the state, the accelerations and the adjoint λ = M⁻¹ ∂ℓ/∂a.
pub(crate) fn raw_mlp_adjoint(
    mlp: &Mlp,
    sites: &crate::sites::Sites,
    d: usize,
    state: SampleState<'_>,
    grad: &mut [f64],
) {
    raw_mlp_adjoint_batch(mlp, sites, d, &[state], grad)
}

/// [`raw_mlp_adjoint`] summed over several samples, their sites packed together into the
/// blocks of one batched sweep ([`batched_adjoint`]).
pub(crate) fn raw_mlp_adjoint_batch(
    mlp: &Mlp,
    sites: &crate::sites::Sites,
    d: usize,
    samples: &[SampleState<'_>],
    grad: &mut [f64],
) {
    // u1 = (0, λ), u2 = (v, a), u3 = (λ, 0).
    let channels: Vec<SweepChannels<'_>> = samples
        .iter()
        .map(|&(q, v, a, lam)| [q, v, &[], lam, v, a, lam, &[]])
        .collect();
    mlp_sweep_batch(mlp, sites, d, &channels, grad)
}

/// Global vectors of one state's hyper-dual channels for [`mlp_sweep_batch`]: the point
/// x = (q, q̇) and the directions u1, u2, u3, each as (q part, q̇ part) — 8 slices of the
/// system's coordinates; an empty slice stands for zero.
pub(crate) type SweepChannels<'a> = [&'a [f64]; 8];

/// ∂/∂θ Σ_states Σ_s S_s of a general MLP term ρ(q_I, v_I, f) with
/// S_s = D_u3 ρ − D_u1 D_u2 ρ at x (docs/DESIGN.md §3), each channel gathered from the
/// state's global vectors onto the site's neighbourhood; all (state, site) pairs in one batched
/// sweep ([`batched_adjoint`]), accumulated into `grad` (the term's parameters).
pub(crate) fn mlp_sweep_batch(
    mlp: &Mlp,
    sites: &crate::sites::Sites,
    d: usize,
    states: &[SweepChannels<'_>],
    grad: &mut [f64],
) {
    mlp_sweep_batch_dirs(mlp, sites, d, states, None, grad)
}

/// Eigen-directions of the site mass penalty that ride in a graph sweep as second-order
/// columns (docs/DESIGN.md §24): direction j at (sample, site) pair `pair[j]` (sample-major,
/// ascending) with velocity tangent `u[j·kd..(j + 1)·kd]` and weight `coef[j]`.
pub(crate) struct SiteDirs {
    pub pair: Vec<usize>,
    pub coef: Vec<f64>,
    pub u: Vec<f64>,
}

impl SiteDirs {
    /// From [`mass_penalty::block_penalty`]'s directions (`sample` = the pair index).
    pub(crate) fn new(dirs: &[mass_penalty::Direction], kd: usize) -> SiteDirs {
        let mut u = Vec::with_capacity(dirs.len() * kd);
        for dir in dirs {
            u.extend_from_slice(&dir.u);
        }
        SiteDirs {
            pair: dirs.iter().map(|d| d.sample).collect(),
            coef: dirs.iter().map(|d| d.coef).collect(),
            u,
        }
    }
}

/// [`mlp_sweep_batch`] with the penalty's directions `dirs` (pairs of the same states) as
/// second-order columns of the same blocks: adds ∂/∂θ Σ_j coef_j u_jᵀ m_s u_j, m_s = ∂²ρ/∂v_I²
/// at the pair's input (docs/DESIGN.md §18.2, §24).
pub(crate) fn mlp_sweep_batch_dirs(
    mlp: &Mlp,
    sites: &crate::sites::Sites,
    d: usize,
    states: &[SweepChannels<'_>],
    dirs: Option<&SiteDirs>,
    grad: &mut [f64],
) {
    let (k, nf) = (sites.arity, sites.n_features);
    let kd = k * d;
    let p = 2 * kd + nf;
    let ns = sites.len();
    let pd = dirs.map(|dr| PairDirs {
        pair: &dr.pair,
        coef: &dr.coef,
        fill: move |col: &mut [f64], j: usize| {
            col[kd..2 * kd].copy_from_slice(&dr.u[j * kd..(j + 1) * kd]);
        },
    });
    let fill = |xin: &mut [f64], nb: usize, j: usize, smp: usize, s: usize| {
        let ch = &states[smp];
        let col = |c: usize| (c * nb + j) * p;
        for (ia, &node) in sites.neighbourhood(s).iter().enumerate() {
            for c in 0..d {
                let (li, gi) = (ia * d + c, node * d + c);
                for (m, v) in ch.iter().enumerate() {
                    if !v.is_empty() {
                        xin[col(m / 2) + (m % 2) * kd + li] = v[gi];
                    }
                }
            }
        }
        xin[col(0) + 2 * kd..col(0) + p].copy_from_slice(sites.features_of(s));
    };
    batched_adjoint_with(mlp, (states.len() * ns, ns, 1), pd, grad, fill);
}

/// Loss and gradient of a graph Lagrangian over samples `idx` (each row of `data.input` a whole
/// state (q, q̇) of the graph, targets q̈), processed one sample after another; site blocks are
/// parallel inside each sample. `dy`'s densities must be built from `mlps`.
pub fn lnn_graph_loss_grad(
    dy: &mut Dynamics,
    mlps: &[Option<&Mlp>],
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
) -> Result<(f64, Vec<f64>)> {
    lnn_graph_loss_grad_sens(dy, mlps, data, idx, loss, want_grad, None)
}

/// [`lnn_graph_loss_grad`] that also accumulates ∂loss/∂M_jj into `mass_diag_sens` when given
/// (see [`lnn_graph_sample_sens`]).
pub fn lnn_graph_loss_grad_sens(
    dy: &mut Dynamics,
    mlps: &[Option<&Mlp>],
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
    mass_diag_sens: Option<&mut [f64]>,
) -> Result<(f64, Vec<f64>)> {
    graph_loss_grad(
        dy,
        mlps,
        (data, idx),
        (loss, None),
        want_grad,
        mass_diag_sens,
    )
}

/// [`lnn_graph_loss_grad`] with the site mass penalty of docs/DESIGN.md §18.2 on every MLP
/// term whose sites have a kinetic block (its value added to the loss): the blocks m_s are read
/// from the forward pass's records (§19.2) and the penalty's eigen-directions ride in the same
/// batched sweep as the Euler–Lagrange residual, one second-order column each (§24). Equal to
/// [`lnn_graph_loss_grad`] plus [`super::site_penalty::sites_mass_penalty_blocks`] of each term
/// up to the order of floating-point additions.
pub fn lnn_graph_loss_grad_penalised(
    dy: &mut Dynamics,
    mlps: &[Option<&Mlp>],
    data: &Samples,
    idx: &[usize],
    (loss, penalty): (LossKind, Option<MassPenalty>),
    want_grad: bool,
) -> Result<(f64, Vec<f64>)> {
    graph_loss_grad(dy, mlps, (data, idx), (loss, penalty), want_grad, None)
}

/// The body of [`lnn_graph_loss_grad_sens`] and [`lnn_graph_loss_grad_penalised`].
fn graph_loss_grad(
    dy: &mut Dynamics,
    mlps: &[Option<&Mlp>],
    (data, idx): (&Samples, &[usize]),
    (loss, penalty): (LossKind, Option<MassPenalty>),
    want_grad: bool,
    mass_diag_sens: Option<&mut [f64]>,
) -> Result<(f64, Vec<f64>)> {
    let n = dy.n_coords();
    if data.in_dim != 2 * n || data.out_dim != n {
        return Err(Error::input(format!(
            "the data has states of dimension {} and targets of {}, the graph model needs {} and {n}",
            data.in_dim / 2,
            data.out_dim,
            n
        )));
    }
    if mlps.len() != dy.lagrangian.terms.len() {
        return Err(Error::input(format!(
            "{} networks given for {} Lagrangian terms",
            mlps.len(),
            dy.lagrangian.terms.len()
        )));
    }
    let offs = term_offsets(mlps);
    let np = *offs.last().unwrap();
    let mut grad = vec![0.0; if want_grad { np } else { 0 }];
    let inv = data.inv_norm(idx);
    let mut total = 0.0;
    // Forward: accelerations, loss and adjoint λ = M⁻¹ ∂ℓ/∂a of every sample, the sites of all
    // samples in one pass (docs/DESIGN.md §19), kept for the batched sweep below.
    let need_adj = want_grad || mass_diag_sens.is_some();
    let mut acc = vec![0.0; idx.len() * n];
    let mut lams = vec![0.0; if need_adj { idx.len() * n } else { 0 }];
    let mut losses = vec![0.0; idx.len()];
    let states: Vec<(&[f64], &[f64])> = idx
        .iter()
        .map(|&i| {
            let row = data.input_row(i);
            (&row[..n], &row[n..])
        })
        .collect();
    dy.minibatch_forward(
        &states,
        (&mut acc, &mut lams, &mut losses),
        |k, a, lam, solver| {
            let i = idx[k];
            let l = loss.sample(a, data.target_row(i), data.weight(i) * inv, lam);
            if need_adj {
                solver.solve_in_place(lam)?;
            }
            Ok(l)
        },
    )
    .map_err(|e| e.error.context(&format!("sample {}", idx[e.state])))?;
    for l in &losses {
        total += l;
    }
    if let Some(sens) = mass_diag_sens {
        if sens.len() != n {
            return Err(Error::input(format!(
                "mass sensitivity buffer has {} values, need {n}",
                sens.len()
            )));
        }
        for (a, l) in acc.chunks_exact(n).zip(lams.chunks_exact(n)) {
            for ((s, l), a) in sens.iter_mut().zip(l).zip(a) {
                *s -= l * a;
            }
        }
    }
    // The site mass penalty of each term from the forward's records (docs/DESIGN.md §19.2).
    let mut pen_dirs: Vec<Option<SiteDirs>> = Vec::new();
    if let Some(pen) = penalty {
        let (recs, _) = dy.minibatch_records();
        let alen = dy.pattern.accel_len();
        for (t, term) in dy.lagrangian.terms.iter().enumerate() {
            let lay = term.density.accel_layout();
            let ns = term.sites.len();
            if mlps[t].is_none() || !lay.with_mass || ns == 0 {
                pen_dirs.push(None);
                continue;
            }
            let (kk, stride, off) = (lay.kd * lay.kd, lay.stride(), dy.pattern.accel_offsets[t]);
            let mut ms = Vec::with_capacity(idx.len() * ns * kk);
            for r in recs.chunks_exact(alen) {
                for rs in r[off..off + ns * stride].chunks_exact(stride) {
                    ms.extend_from_slice(&rs[lay.mass()..lay.mass() + kk]);
                }
            }
            let w = super::site_penalty::pair_weights(pen, data, idx, ns);
            let (pv, dirs) = mass_penalty::block_penalty(&ms, lay.kd, &w, pen, want_grad);
            total += pv;
            pen_dirs.push((!dirs.is_empty()).then(|| SiteDirs::new(&dirs, lay.kd)));
        }
    }
    if !want_grad {
        return Ok((total, grad));
    }
    // Backward: the sites of all samples in one batched sweep per term.
    let states: Vec<SampleState<'_>> = idx
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let row = data.input_row(i);
            (
                &row[..n],
                &row[n..],
                &acc[k * n..(k + 1) * n],
                &lams[k * n..(k + 1) * n],
            )
        })
        .collect();
    let d = dy.lagrangian.dof;
    for (t, term) in dy.lagrangian.terms.iter().enumerate() {
        let Some(mlp) = mlps[t] else {
            continue;
        };
        let p = 2 * term.sites.arity * d + term.sites.n_features;
        if mlp.sizes[0] != p {
            return Err(Error::input(format!(
                "network {t} has input size {} but its sites need {p}",
                mlp.sizes[0]
            )));
        }
        // u1 = (0, λ), u2 = (v, a), u3 = (λ, 0).
        let channels: Vec<SweepChannels<'_>> = states
            .iter()
            .map(|&(q, v, a, lam)| [q, v, &[], lam, v, a, lam, &[]])
            .collect();
        mlp_sweep_batch_dirs(
            mlp,
            &term.sites,
            d,
            &channels,
            pen_dirs.get(t).and_then(|x| x.as_ref()),
            &mut grad[offs[t]..offs[t + 1]],
        );
    }
    Ok((total, grad))
}

/// Replace the densities of `dy` by MLP densities of the given networks (same sites/arity);
/// `None` leaves a term unchanged.
pub fn set_mlp_terms(dy: &mut Dynamics, mlps: &[Option<&Mlp>]) -> Result<()> {
    set_mlp_terms_with(dy, mlps, crate::density::Precision::F64)
}

/// [`set_mlp_terms`] with the densities evaluated in `precision` (f32: single-precision MLP
/// passes inside the f64 assembly; see `MlpDensity::with_precision`).
pub fn set_mlp_terms_with(
    dy: &mut Dynamics,
    mlps: &[Option<&Mlp>],
    precision: crate::density::Precision,
) -> Result<()> {
    let d = dy.lagrangian.dof;
    for (term, mlp) in dy.lagrangian.terms.iter_mut().zip(mlps) {
        let Some(mlp) = mlp else {
            continue;
        };
        let dens = MlpDensity::new((*mlp).clone(), term.sites.arity, d, term.sites.n_features)?
            .with_precision(precision);
        term.density = std::sync::Arc::new(dens) as std::sync::Arc<dyn Density>;
    }
    Ok(())
}
