//! Baselines trained in the same engine (paper §4): a plain MLP predicting q̈ from (q, q̇), and a
//! Hamiltonian neural network.
//!
//! * **Plain MLP** (the paper's "neural net" baseline): an [`Mlp`] whose last layer has D outputs
//!   instead of 1 (same storage: row-major out × in weights, biases, input normalisation; the
//!   scalar-only [`crate::density::MlpDensity`] rejects it). Prediction q̈ = f_θ(q, q̇), gradient
//!   by ordinary batched backprop.
//! * **HNN**: a scalar softplus MLP H_θ(x, y) with dynamics ẋ = ∂H/∂y, ẏ = −∂H/∂x, trained on
//!   (ẋ, ẏ). Predictions come from the exact input gradient (`MlpDensity::eval_block`, arity 1,
//!   "q" slots = x, "v" slots = y). The loss depends on ∇H, so its parameter gradient needs the
//!   mixed second derivative: with ḡ = ∂ℓ/∂(ẋ, ẏ),
//!   ḡ·(∂H/∂y, −∂H/∂x) = D_u H with u = (−ḡ_y, ḡ_x), and ∂/∂θ D_u H is the first-order case of
//!   [`adjoint_block`] (u1 = u2 = 0, u3 = u).

use super::gradient::{sum_partials, Samples, SAMPLE_BLOCK};
use super::hyperdual::{adjoint_block, n_params, param_offsets};
use super::loss::LossKind;
use crate::density::activation::softplus_slices;
use crate::density::{Density, Mlp, MlpDensity};
use crate::{Error, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

/// Initialise an MLP with `sizes` (any output width): hidden layers as in the paper (docs/DESIGN.md §4),
/// the output layer N(0, 1/fan_in) (the paper's √n output scale is meant for a scalar
/// Lagrangian; a vector regression head starts near unit scale instead).
pub fn vector_mlp_init(sizes: &[usize], seed: u64) -> Mlp {
    let mut tmp = sizes.to_vec();
    *tmp.last_mut().unwrap() = 1;
    let mut m = Mlp::paper_init(&tmp, seed);
    let nl = sizes.len() - 1;
    let (fi, fo) = (sizes[nl - 1], sizes[nl]);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let nd = Normal::new(0.0, 1.0 / (fi as f64).sqrt()).expect("finite");
    m.weights[nl - 1] = (0..fi * fo).map(|_| nd.sample(&mut rng)).collect();
    m.biases[nl - 1] = vec![0.0; fo];
    m.sizes = sizes.to_vec();
    m
}

/// Check shapes and values of an MLP with any output width.
pub fn validate_any_output(m: &Mlp) -> Result<()> {
    if m.sizes.len() < 3 {
        return Err(Error::input(format!(
            "MLP layer sizes {:?}: need at least one hidden layer",
            m.sizes
        )));
    }
    let mut probe = m.clone();
    let nl = m.sizes.len() - 1;
    *probe.sizes.last_mut().unwrap() = 1;
    if m.weights.len() != nl || m.biases.len() != nl {
        return Err(Error::input("MLP has the wrong number of layers"));
    }
    let last = m.sizes[nl];
    if m.weights[nl - 1].len() != last * m.sizes[nl - 1] || m.biases[nl - 1].len() != last {
        return Err(Error::input("MLP output layer has the wrong shape"));
    }
    probe.weights[nl - 1].truncate(m.sizes[nl - 1]);
    probe.biases[nl - 1].truncate(1);
    crate::error::check_finite("output weight", &m.weights[nl - 1])?;
    crate::error::check_finite("output bias", &m.biases[nl - 1])?;
    probe.validate()
}

/// Plain forward pass of a vector-output MLP for one input.
pub fn vector_mlp_forward(m: &Mlp, x: &[f64]) -> Vec<f64> {
    let mut a: Vec<f64> = x
        .iter()
        .zip(&m.input_shift)
        .zip(&m.input_scale)
        .map(|((x, s), c)| (x - s) / c)
        .collect();
    let nl = m.weights.len();
    for l in 0..nl {
        let nin = m.sizes[l];
        let z: Vec<f64> = (0..m.sizes[l + 1])
            .map(|i| {
                m.biases[l][i]
                    + m.weights[l][i * nin..(i + 1) * nin]
                        .iter()
                        .zip(&a)
                        .map(|(w, a)| w * a)
                        .sum::<f64>()
            })
            .collect();
        a = if l + 1 < nl {
            z.iter()
                .map(|&z| crate::density::mlp::softplus(z))
                .collect()
        } else {
            z
        };
    }
    a
}

/// Forward pass of a vector-output MLP over a block of `nb` normalised inputs `x` (column-major
/// p × nb: sample j's inputs contiguous). Returns the inputs of every layer (`acts[l]`), the
/// softplus derivatives of the hidden layers (`s1s[l]`) and the outputs (column-major
/// out × nb), what [`vector_mlp_backward`] needs.
pub(crate) fn vector_mlp_forward_block(
    m: &Mlp,
    x: Vec<f64>,
    nb: usize,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>) {
    let sizes = &m.sizes;
    let nl = sizes.len() - 1;
    let mut acts: Vec<Vec<f64>> = vec![x];
    let mut s1s: Vec<Vec<f64>> = vec![];
    let mut out = vec![];
    for l in 0..nl {
        let (hp, h) = (sizes[l], sizes[l + 1]);
        let mut z = vec![0.0; h * nb];
        matmul(
            MatMut::from_column_major_slice_mut(&mut z, h, nb),
            Accum::Replace,
            MatRef::from_row_major_slice(&m.weights[l], h, hp),
            MatRef::from_column_major_slice(&acts[l], hp, nb),
            1.0,
            Par::Seq,
        );
        for zc in z.chunks_exact_mut(h) {
            for (zi, b) in zc.iter_mut().zip(&m.biases[l]) {
                *zi += b;
            }
        }
        if l + 1 < nl {
            let mut a = vec![0.0; h * nb];
            let mut s1 = vec![0.0; h * nb];
            let mut s2 = vec![0.0; h * nb];
            softplus_slices(&z, &mut a, &mut s1, &mut s2);
            acts.push(a);
            s1s.push(s1);
        } else {
            out = z;
        }
    }
    (acts, s1s, out)
}

/// Reverse sweep of [`vector_mlp_forward_block`]: with `zbar` = ∂ℓ/∂(outputs) (column-major
/// out × nb), accumulate ∂ℓ/∂θ into `grad` (layout of [`super::hyperdual::flatten`]).
pub(crate) fn vector_mlp_backward(
    m: &Mlp,
    acts: &[Vec<f64>],
    s1s: &[Vec<f64>],
    zbar: Vec<f64>,
    nb: usize,
    grad: &mut [f64],
) {
    let sizes = &m.sizes;
    let nl = sizes.len() - 1;
    let offs = param_offsets(sizes);
    let mut zbar = zbar;
    for l in (0..nl).rev() {
        let (hp, h) = (sizes[l], sizes[l + 1]);
        let (woff, boff) = offs[l];
        for zc in zbar.chunks_exact(h) {
            for (g, v) in grad[boff..boff + h].iter_mut().zip(zc) {
                *g += v;
            }
        }
        matmul(
            MatMut::from_row_major_slice_mut(&mut grad[woff..woff + h * hp], h, hp),
            Accum::Add,
            MatRef::from_column_major_slice(&zbar, h, nb),
            MatRef::from_column_major_slice(&acts[l], hp, nb).transpose(),
            1.0,
            Par::Seq,
        );
        if l > 0 {
            let mut abar = vec![0.0; hp * nb];
            matmul(
                MatMut::from_column_major_slice_mut(&mut abar, hp, nb),
                Accum::Replace,
                MatRef::from_row_major_slice(&m.weights[l], h, hp).transpose(),
                MatRef::from_column_major_slice(&zbar, h, nb),
                1.0,
                Par::Seq,
            );
            for (a, s) in abar.iter_mut().zip(&s1s[l - 1]) {
                *a *= s;
            }
            zbar = abar;
        }
    }
}

/// Loss (and gradient into `grad`) of the plain MLP baseline over one block of samples.
pub fn mlp_baseline_block(
    m: &Mlp,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    inv_norm: f64,
    grad: Option<&mut [f64]>,
) -> Result<f64> {
    let sizes = &m.sizes;
    let nl = sizes.len() - 1;
    let p = sizes[0];
    let dout = sizes[nl];
    let nb = idx.len();
    let mut x = vec![0.0; p * nb];
    for (j, &i) in idx.iter().enumerate() {
        for (c, v) in data.input_row(i).iter().enumerate() {
            x[j * p + c] = (v - m.input_shift[c]) / m.input_scale[c];
        }
    }
    let (acts, s1s, out) = vector_mlp_forward_block(m, x, nb);
    let mut gout = vec![0.0; dout * nb];
    let mut total = 0.0;
    for (j, &i) in idx.iter().enumerate() {
        let pred = &out[j * dout..(j + 1) * dout];
        if let Some(c) = pred.iter().position(|x| !x.is_finite()) {
            return Err(Error::input(format!(
                "the MLP prediction is not finite (output {c}) at sample {i}"
            )));
        }
        total += loss.sample(
            pred,
            data.target_row(i),
            data.weight(i) * inv_norm,
            &mut gout[j * dout..(j + 1) * dout],
        );
    }
    let Some(grad) = grad else {
        return Ok(total);
    };
    vector_mlp_backward(m, &acts, &s1s, gout, nb, grad);
    Ok(total)
}

/// Phase-space predictions (ẋ, ẏ) = (∂H/∂y, −∂H/∂x) of an HNN for one block, row-major nb × 2D.
fn hnn_predict(dens: &MlpDensity, x: &[f64], nb: usize) -> Vec<f64> {
    let lay = dens.layout();
    let d = lay.kd;
    let stride = lay.stride();
    let mut rec = vec![0.0; stride * nb];
    dens.eval_block(x, nb, &mut rec);
    let mut out = vec![0.0; 2 * d * nb];
    for j in 0..nb {
        let r = &rec[j * stride..(j + 1) * stride];
        for c in 0..d {
            out[j * 2 * d + c] = r[lay.grad_v() + c];
            out[j * 2 * d + d + c] = -r[lay.grad_q() + c];
        }
    }
    out
}

/// Loss (and gradient into `grad`) of an HNN over one block; `data` rows are (x, y) → (ẋ, ẏ).
pub fn hnn_block(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    inv_norm: f64,
    grad: Option<&mut [f64]>,
) -> Result<f64> {
    let p = data.in_dim;
    let d = p / 2;
    let nb = idx.len();
    let mut x = vec![0.0; p * nb];
    for (j, &i) in idx.iter().enumerate() {
        x[j * p..(j + 1) * p].copy_from_slice(data.input_row(i));
    }
    let pred = hnn_predict(dens, &x, nb);
    let mut g = vec![0.0; p];
    let mut total = 0.0;
    let mut xin = if grad.is_some() {
        vec![0.0; 4 * p * nb]
    } else {
        vec![]
    };
    for (j, &i) in idx.iter().enumerate() {
        let pr = &pred[j * p..(j + 1) * p];
        if let Some(c) = pr.iter().position(|x| !x.is_finite()) {
            return Err(Error::input(format!(
                "the HNN prediction is not finite (output {c}) at sample {i}"
            )));
        }
        total += loss.sample(pr, data.target_row(i), data.weight(i) * inv_norm, &mut g);
        if grad.is_some() {
            xin[j * p..(j + 1) * p].copy_from_slice(data.input_row(i));
            let u = (3 * nb + j) * p;
            for c in 0..d {
                xin[u + c] = -g[d + c];
                xin[u + d + c] = g[c];
            }
        }
    }
    if let Some(grad) = grad {
        adjoint_block(&dens.mlp, &mut xin, nb, grad);
    }
    Ok(total)
}

/// Which block function a dense (per-sample independent) model uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DenseKind {
    Lnn,
    Hnn,
    Mlp,
}

/// Loss and gradient over `idx` for the per-sample models (LNN single site, HNN, plain MLP),
/// parallel over fixed blocks of [`SAMPLE_BLOCK`] samples, summed in block order.
pub(crate) fn dense_loss_grad(
    kind: DenseKind,
    net: &Mlp,
    dens: Option<&MlpDensity>,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
) -> Result<(f64, Vec<f64>)> {
    dense_loss_grad_counted((kind, None), net, dens, data, idx, loss, want_grad)
        .map(|(l, g, _)| (l, g))
}

/// [`dense_loss_grad`] plus the number of samples dropped (LNN: singular or badly conditioned
/// learned mass matrix, see [`super::gradient::lnn_dense_block_counted`]). `kind` comes with
/// the LNN's optional mass-matrix penalty ([`super::mass_penalty`]).
pub(crate) fn dense_loss_grad_counted(
    (kind, penalty): (DenseKind, Option<super::mass_penalty::MassPenalty>),
    net: &Mlp,
    dens: Option<&MlpDensity>,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
) -> Result<(f64, Vec<f64>, usize)> {
    let np = if want_grad { n_params(&net.sizes) } else { 0 };
    let inv = data.inv_norm(idx);
    let parts: Vec<Result<(f64, Vec<f64>, usize)>> = idx
        .par_chunks(SAMPLE_BLOCK)
        .map(|chunk| {
            let mut g = vec![0.0; np];
            let gr = want_grad.then_some(g.as_mut_slice());
            let (l, nd) = match kind {
                DenseKind::Lnn => {
                    let (l, nd, _) = super::gradient::lnn_dense_block_penalised(
                        dens.expect("density"),
                        data,
                        chunk,
                        loss,
                        inv,
                        penalty,
                        gr,
                    )?;
                    (l, nd)
                }
                DenseKind::Hnn => (
                    hnn_block(dens.expect("density"), data, chunk, loss, inv, gr)?,
                    0,
                ),
                DenseKind::Mlp => (mlp_baseline_block(net, data, chunk, loss, inv, gr)?, 0),
            };
            Ok((l, g, nd))
        })
        .collect();
    let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
    let dropped = parts.iter().map(|x| x.2).sum();
    let (l, g) = sum_partials(parts.into_iter().map(|(l, g, _)| (l, g)).collect(), np);
    Ok((l, g, dropped))
}

/// Loss and gradient of an HNN over `idx` (public wrapper for tests and tools).
pub fn hnn_loss_grad(
    dens: &MlpDensity,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
) -> Result<(f64, Vec<f64>)> {
    dense_loss_grad(
        DenseKind::Hnn,
        &dens.mlp,
        Some(dens),
        data,
        idx,
        loss,
        want_grad,
    )
}

/// Loss and gradient of the plain MLP baseline over `idx`.
pub fn mlp_loss_grad(
    net: &Mlp,
    data: &Samples,
    idx: &[usize],
    loss: LossKind,
    want_grad: bool,
) -> Result<(f64, Vec<f64>)> {
    dense_loss_grad(DenseKind::Mlp, net, None, data, idx, loss, want_grad)
}
