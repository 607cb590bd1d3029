//! Batched hyper-dual forward pass through a scalar softplus MLP and its reverse sweep for the
//! parameter gradient of S_s = D_{u3} ρ − D_{u1} D_{u2} ρ (docs/DESIGN.md §3).
//!
//! # Channels
//!
//! The design's five channels (value, ε1 = u1, ε2 = u2, ε3 = u3, ε1ε2) are reduced to four by
//! linearity: the ε3 and ε1ε2 channels propagate through the same linear maps and are only ever
//! needed as the difference A3 − A12 at the output, so we carry Y = Z3 − Z12 directly:
//!
//! ```text
//! pre-activations   z_l, Z1_l, Z2_l, Y_l           (Z1 = D_{u1} z, Z2 = D_{u2} z)
//! activations       a0 = σ(z)
//!                   A1 = σ'(z) Z1,  A2 = σ'(z) Z2
//!                   AY = σ'(z) Y − σ''(z) Z1 Z2   (= D_{u3}a − D_{u1}D_{u2}a)
//! next layer        [z Z1 Z2 Y]_{l+1} = W_{l+1} [a0 A1 A2 AY]_l + [b, 0, 0, 0]
//! input             [x̃ ũ1 ũ2 ũ3] with x̃ = (x − shift)/scale, ũ = u/scale
//! output            S = w_L · AY_{L−1}
//! ```
//!
//! # Reverse sweep (holding x, u1, u2, u3 fixed)
//!
//! With adjoints Ā0, Ā1, Ā2, ĀY of the activation channels (at the last hidden layer
//! ĀY = w_L and the others vanish):
//!
//! ```text
//! Ȳ  = ĀY σ'
//! Z̄1 = Ā1 σ' − ĀY σ'' Z2
//! Z̄2 = Ā2 σ' − ĀY σ'' Z1
//! z̄  = Ā0 σ' + σ''(Ā1 Z1 + Ā2 Z2 + ĀY Y) − ĀY σ''' Z1 Z2
//! W̄_l += [z̄ Z̄1 Z̄2 Ȳ] · [a0 A1 A2 AY]_{l−1}ᵀ,   b̄_l += Σ_s z̄_s,
//! [Ā0 Ā1 Ā2 ĀY]_{l−1} = W_lᵀ [z̄ Z̄1 Z̄2 Ȳ],        w̄_L += Σ_s AY_s.
//! ```
//!
//! For softplus σ' = sigmoid =: s, σ'' = s(1 − s), σ''' = σ''(1 − 2s).
//!
//! The four channels of all `nb` sites of a block are stacked channel-major (column c·nb + s),
//! so each layer is one GEMM of width 4·nb forward and two (Wᵀ·Z̄ and Z̄·Aᵀ) backward, all
//! through faer with `Par::Seq` (callers parallelise over blocks). With u1 = u2 = 0 the same
//! pass gives ∂/∂θ D_{u3} ρ, the first-order case used by the HNN baseline.

use crate::density::activation::{dot_g, softplus_slices_g};
use crate::density::simd::{self, FmaMode, Kernel};
use crate::density::Mlp;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Offsets of each layer's weight and bias inside the flat parameter vector: layer l occupies
/// `[w_off, w_off + out·in)` (row-major weight) followed by `out` biases.
pub fn param_offsets(sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut offs = Vec::with_capacity(sizes.len() - 1);
    let mut o = 0;
    for l in 0..sizes.len() - 1 {
        let w = o;
        o += sizes[l] * sizes[l + 1];
        offs.push((w, o));
        o += sizes[l + 1];
    }
    offs
}

/// Number of trainable parameters of a network with these layer sizes.
pub fn n_params(sizes: &[usize]) -> usize {
    (0..sizes.len() - 1)
        .map(|l| sizes[l] * sizes[l + 1] + sizes[l + 1])
        .sum()
}

/// The parameters of `mlp` as one flat vector: per layer, the row-major weight then the bias.
pub fn flatten(mlp: &Mlp) -> Vec<f64> {
    let mut v = Vec::with_capacity(n_params(&mlp.sizes));
    for (w, b) in mlp.weights.iter().zip(&mlp.biases) {
        v.extend_from_slice(w);
        v.extend_from_slice(b);
    }
    v
}

/// Write a flat parameter vector (see [`flatten`]) back into `mlp`.
pub fn unflatten(mlp: &mut Mlp, theta: &[f64]) {
    assert_eq!(theta.len(), n_params(&mlp.sizes), "parameter vector length");
    let mut o = 0;
    for (w, b) in mlp.weights.iter_mut().zip(mlp.biases.iter_mut()) {
        let (nw, nb) = (w.len(), b.len());
        w.copy_from_slice(&theta[o..o + nw]);
        o += nw;
        b.copy_from_slice(&theta[o..o + nb]);
        o += nb;
    }
}

/// Normalise a channel-stacked input block in place: column c·nb + s of the `p × 4nb` matrix
/// holds channel c of site s; channel 0 gets (x − shift)/scale, the tangents u/scale.
fn normalise_input(mlp: &Mlp, xin: &mut [f64], nb: usize) {
    let p = mlp.sizes[0];
    for (col, xs) in xin.chunks_exact_mut(p).enumerate() {
        if col < nb {
            for ((x, m), s) in xs.iter_mut().zip(&mlp.input_shift).zip(&mlp.input_scale) {
                *x = (*x - m) / s;
            }
        } else {
            for (x, s) in xs.iter_mut().zip(&mlp.input_scale) {
                *x /= s;
            }
        }
    }
}

/// Accumulate ∂/∂θ Σ_s S_s into `grad` (flat layout of [`flatten`]) for one block of `nb` sites
/// and return Σ_s S_s.
///
/// `xin` is column-major `p × 4nb` with the raw (un-normalised) inputs: columns `0..nb` the site
/// inputs x_s, then `nb` columns each of u1, u2, u3 (zero in feature slots). It is normalised in
/// place. The network must end in a single output.
///
/// The elementwise channel updates run in the CPU's SIMD kernel ([`simd::active`]).
pub fn adjoint_block(mlp: &Mlp, xin: &mut [f64], nb: usize, grad: &mut [f64]) -> f64 {
    adjoint_block_at(simd::active(), mlp, xin, nb, grad)
}

/// [`adjoint_block`] at a given SIMD level (clamped to the CPU's).
pub fn adjoint_block_at(
    level: simd::SimdLevel,
    mlp: &Mlp,
    xin: &mut [f64],
    nb: usize,
    grad: &mut [f64],
) -> f64 {
    // The workspace is borrowed here, outside the dispatch: the kernel must be inlined into
    // the `#[target_feature]` entry point, not into a thread-local closure (where `mul_add`
    // would become a software fma, 100× slower).
    WORK.with(|w| match w.try_borrow_mut() {
        Ok(mut ws) => simd::dispatch(
            level,
            AdjointBlock {
                ws: &mut ws,
                mlp,
                xin,
                nb,
                grad,
            },
        ),
        // Re-entered on this thread (lgn never does): a fresh workspace.
        Err(_) => simd::dispatch(
            level,
            AdjointBlock {
                ws: &mut AdjointWork::default(),
                mlp,
                xin,
                nb,
                grad,
            },
        ),
    })
}

struct AdjointBlock<'a> {
    ws: &'a mut AdjointWork,
    mlp: &'a Mlp,
    xin: &'a mut [f64],
    nb: usize,
    grad: &'a mut [f64],
}

impl Kernel for AdjointBlock<'_> {
    type Output = f64;
    #[inline(always)]
    fn run<F: FmaMode>(self) -> f64 {
        adjoint_block_ws::<F>(self.ws, self.mlp, self.xin, self.nb, self.grad)
    }
}

/// Per-thread buffers of [`adjoint_block`]: the forward channels and activation derivatives σ′, σ″ of
/// every hidden layer and the two reverse-sweep buffers. They only grow, so after the first
/// block of a given shape a call allocates nothing.
#[derive(Default)]
struct AdjointWork {
    zs: Vec<Vec<f64>>,
    acts: Vec<Vec<f64>>,
    s1s: Vec<Vec<f64>>,
    s2s: Vec<Vec<f64>>,
    abar: Vec<f64>,
    zbar: Vec<f64>,
}

thread_local! {
    static WORK: std::cell::RefCell<AdjointWork> = std::cell::RefCell::new(AdjointWork::default());
}

/// The first `n` values of `v`, growing it if needed (never shrinking its allocation); the
/// contents are unspecified: every caller overwrites all of them.
#[inline]
fn sized(v: &mut Vec<f64>, n: usize) -> &mut [f64] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// Offset of layer `l`'s weight in the flat parameter vector (as [`param_offsets`], without
/// allocating).
#[inline]
fn weight_offset(sizes: &[usize], l: usize) -> usize {
    (0..l).map(|k| sizes[k] * sizes[k + 1] + sizes[k + 1]).sum()
}

#[inline(always)]
fn adjoint_block_ws<F: FmaMode>(
    ws: &mut AdjointWork,
    mlp: &Mlp,
    xin: &mut [f64],
    nb: usize,
    grad: &mut [f64],
) -> f64 {
    let sizes = &mlp.sizes;
    let p = sizes[0];
    let nh = sizes.len() - 2;
    debug_assert!(nh >= 1 && sizes[nh + 1] == 1);
    debug_assert_eq!(xin.len(), p * 4 * nb);
    let w4 = 4 * nb;
    normalise_input(mlp, xin, nb);
    for v in [&mut ws.zs, &mut ws.acts, &mut ws.s1s, &mut ws.s2s] {
        if v.len() < nh {
            v.resize_with(nh, Vec::new);
        }
    }
    let AdjointWork {
        zs,
        acts,
        s1s,
        s2s,
        abar,
        zbar,
    } = ws;

    // Forward: z[l] (h × 4nb pre-activation channels), a[l] (activation channels), σ', σ'', σ'''.
    for l in 0..nh {
        let (hp, h) = (sizes[l], sizes[l + 1]);
        let hn = h * nb;
        let (done, rest) = acts.split_at_mut(l);
        let a = sized(&mut rest[0], h * w4);
        let z = sized(&mut zs[l], h * w4);
        {
            let prev: &[f64] = if l == 0 { xin } else { &done[l - 1][..hp * w4] };
            matmul(
                MatMut::from_column_major_slice_mut(z, h, w4),
                Accum::Replace,
                MatRef::from_row_major_slice(&mlp.weights[l], h, hp),
                MatRef::from_column_major_slice(prev, hp, w4),
                1.0,
                Par::Seq,
            );
        }
        let b = &mlp.biases[l];
        for zc in z[..hn].chunks_exact_mut(h) {
            for (zi, bi) in zc.iter_mut().zip(b) {
                *zi += bi;
            }
        }
        let s1 = sized(&mut s1s[l], hn);
        let s2 = sized(&mut s2s[l], hn);
        softplus_slices_g::<f64, F>(&z[..hn], &mut a[..hn], s1, s2);
        {
            let (_, zt) = z.split_at(hn);
            let (z1, zt) = zt.split_at(hn);
            let (z2, y) = zt.split_at(hn);
            let (_, at) = a.split_at_mut(hn);
            let (a1, at) = at.split_at_mut(hn);
            let (a2, ay) = at.split_at_mut(hn);
            for i in 0..hn {
                a1[i] = s1[i] * z1[i];
                a2[i] = s1[i] * z2[i];
                ay[i] = s1[i] * y[i] - s2[i] * z1[i] * z2[i];
            }
        }
    }

    // Output layer: S = w_L · AY.
    let hl = sizes[nh];
    let wl = &mlp.weights[nh];
    let ay_last = &acts[nh - 1][3 * hl * nb..4 * hl * nb];
    let mut s_total = 0.0;
    {
        let w_out = weight_offset(sizes, nh);
        let gw = &mut grad[w_out..w_out + hl];
        for ays in ay_last.chunks_exact(hl) {
            s_total += dot_g::<f64, F>(wl, ays);
            for (g, a) in gw.iter_mut().zip(ays) {
                *g += a;
            }
        }
    }

    // Reverse sweep.
    {
        let ab = sized(abar, hl * w4);
        ab[..3 * hl * nb].fill(0.0);
        for c in ab[3 * hl * nb..].chunks_exact_mut(hl) {
            c.copy_from_slice(wl);
        }
    }
    for l in (0..nh).rev() {
        let (hp, h) = (sizes[l], sizes[l + 1]);
        let hn = h * nb;
        let woff = weight_offset(sizes, l);
        let boff = woff + h * hp;
        let zb = sized(zbar, h * w4);
        {
            let z = &zs[l][..h * w4];
            let (s1, s2) = (&s1s[l][..hn], &s2s[l][..hn]);
            let (ab0, abt) = abar[..h * w4].split_at(hn);
            let (ab1, abt) = abt.split_at(hn);
            let (ab2, aby) = abt.split_at(hn);
            let (z1, zt) = z[hn..].split_at(hn);
            let (z2, y) = zt.split_at(hn);
            let (zb0, zbt) = zb.split_at_mut(hn);
            let (zb1, zbt) = zbt.split_at_mut(hn);
            let (zb2, zby) = zbt.split_at_mut(hn);
            for i in 0..hn {
                let (a0b, a1b, a2b, ayb) = (ab0[i], ab1[i], ab2[i], aby[i]);
                zby[i] = ayb * s1[i];
                zb1[i] = a1b * s1[i] - ayb * s2[i] * z2[i];
                zb2[i] = a2b * s1[i] - ayb * s2[i] * z1[i];
                // σ‴ = σ″(1 − 2σ′), formed here instead of stored by the forward.
                let s3 = s2[i] * (1.0 - 2.0 * s1[i]);
                zb0[i] = a0b * s1[i] + s2[i] * (a1b * z1[i] + a2b * z2[i] + ayb * y[i])
                    - ayb * s3 * z1[i] * z2[i];
            }
        }
        {
            let gb = &mut grad[boff..boff + h];
            for zc in zb[..hn].chunks_exact(h) {
                for (g, v) in gb.iter_mut().zip(zc) {
                    *g += v;
                }
            }
        }
        let prev: &[f64] = if l == 0 { xin } else { &acts[l - 1][..hp * w4] };
        matmul(
            MatMut::from_row_major_slice_mut(&mut grad[woff..woff + h * hp], h, hp),
            Accum::Add,
            MatRef::from_column_major_slice(zb, h, w4),
            MatRef::from_column_major_slice(prev, hp, w4).transpose(),
            1.0,
            Par::Seq,
        );
        if l > 0 {
            let ab = sized(abar, hp * w4);
            matmul(
                MatMut::from_column_major_slice_mut(ab, hp, w4),
                Accum::Replace,
                MatRef::from_row_major_slice(&mlp.weights[l], h, hp).transpose(),
                MatRef::from_column_major_slice(zb, h, w4),
                1.0,
                Par::Seq,
            );
        }
    }
    s_total
}

/// Flops of [`adjoint_block`] per site (multiply-adds of the three GEMMs per layer counted as 2).
pub fn adjoint_flops_per_site(sizes: &[usize]) -> f64 {
    let nh = sizes.len() - 2;
    let mut macs = 0.0;
    for l in 0..nh {
        let mn = (sizes[l] * sizes[l + 1]) as f64;
        macs += 4.0 * mn; // forward
        macs += 4.0 * mn; // weight gradient
        if l > 0 {
            macs += 4.0 * mn; // Wᵀ Z̄
        }
    }
    macs += sizes[nh] as f64;
    2.0 * macs
}
