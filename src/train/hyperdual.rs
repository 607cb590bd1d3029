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

use crate::density::activation::{dot_g, softplus_derivs_g};
use crate::density::simd::Real;
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
    adjoint_block_dirs_at(level, mlp, xin, nb, SecondOrder::NONE, grad)
}

/// Extra second-order columns of a sweep block (docs/DESIGN.md §24): column 4nb + j of the
/// input holds a tangent u_j (in the site's input slots, raw like u1…u3) at site `site[j]` of
/// the block, and adds `coef[j] · D_{u_j} D_{u_j} ρ(x_site)` to that site's S. Such a term
/// needs one channel Z_j = D_{u_j} z per layer (the value channel is the site's own), where a
/// separate site with u1 = −coef·u_j, u2 = u_j, u3 = 0 needs four.
#[derive(Clone, Copy, Debug)]
pub struct SecondOrder<'a> {
    pub site: &'a [usize],
    pub coef: &'a [f64],
}

impl SecondOrder<'_> {
    /// No extra columns.
    pub const NONE: SecondOrder<'static> = SecondOrder {
        site: &[],
        coef: &[],
    };

    /// Number of extra columns.
    pub fn len(&self) -> usize {
        self.site.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.site.is_empty()
    }
}

/// [`adjoint_block`] with extra second-order columns ([`SecondOrder`]): `xin` is column-major
/// `p × (4nb + nd)`, the `nd = dirs.len()` direction columns after the four channel blocks;
/// accumulates ∂/∂θ Σ_s (S_s + Σ_{j: site j = s} coef_j D_{u_j}D_{u_j} ρ(x_s)) and returns
/// that sum. With no extra columns this is [`adjoint_block`].
pub fn adjoint_block_dirs(
    mlp: &Mlp,
    xin: &mut [f64],
    nb: usize,
    dirs: SecondOrder<'_>,
    grad: &mut [f64],
) -> f64 {
    adjoint_block_dirs_at(simd::active(), mlp, xin, nb, dirs, grad)
}

/// [`adjoint_block_dirs`] at a given SIMD level (clamped to the CPU's).
pub fn adjoint_block_dirs_at(
    level: simd::SimdLevel,
    mlp: &Mlp,
    xin: &mut [f64],
    nb: usize,
    dirs: SecondOrder<'_>,
    grad: &mut [f64],
) -> f64 {
    assert_eq!(dirs.site.len(), dirs.coef.len(), "second-order columns");
    assert!(
        dirs.site.iter().all(|&s| s < nb),
        "second-order column outside the block"
    );
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
                dirs,
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
                dirs,
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
    dirs: SecondOrder<'a>,
    grad: &'a mut [f64],
}

impl Kernel for AdjointBlock<'_> {
    type Output = f64;
    #[inline(always)]
    fn run<F: FmaMode>(self) -> f64 {
        adjoint_block_ws::<F>(self.ws, self.mlp, self.xin, self.nb, self.dirs, self.grad)
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

/// Split a layer buffer (h rows, column-major) into its four channel blocks of `hn` values and
/// the rest (the second-order columns).
#[inline(always)]
fn channels(v: &[f64], hn: usize) -> [&[f64]; 5] {
    let (c0, r) = v.split_at(hn);
    let (c1, r) = r.split_at(hn);
    let (c2, r) = r.split_at(hn);
    let (c3, r) = r.split_at(hn);
    [c0, c1, c2, c3, r]
}

/// [`channels`], mutable.
#[inline(always)]
fn channels_mut(v: &mut [f64], hn: usize) -> [&mut [f64]; 5] {
    let (c0, r) = v.split_at_mut(hn);
    let (c1, r) = r.split_at_mut(hn);
    let (c2, r) = r.split_at_mut(hn);
    let (c3, r) = r.split_at_mut(hn);
    [c0, c1, c2, c3, r]
}

/// The forward elementwise step of hidden layer `l` (docs/DESIGN.md §24.2): σ, σ′, σ″ of the
/// value channel z + b (σ itself only when a later layer reads it), the tangent channels
/// A1 = σ′Z1, A2 = σ′Z2, A_j = σ′Z_j and AY = σ′Y − σ″Z1Z2 + Σ_j coef_j σ″ Z_j², in one pass
/// over each site's column. With `last` only AY is written (into `a`, `hn` values): the output
/// S = w_L · AY reads nothing else.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_act<F: FmaMode>(
    h: usize,
    nb: usize,
    bias: &[f64],
    z: &[f64],
    a: &mut [f64],
    (s1, s2): (&mut [f64], &mut [f64]),
    dirs: SecondOrder<'_>,
    last: bool,
) {
    let hn = h * nb;
    let [z0, z1, z2, y, zk] = channels(z, hn);
    let bias = &bias[..h];
    if last {
        let ay = &mut a[..hn];
        for s in 0..nb {
            let r = s * h..(s + 1) * h;
            let (z0, z1, z2, y) = (
                &z0[r.clone()],
                &z1[r.clone()],
                &z2[r.clone()],
                &y[r.clone()],
            );
            let (s1, s2, ay) = (&mut s1[r.clone()], &mut s2[r.clone()], &mut ay[r]);
            for i in 0..h {
                let x = z0[i] + bias[i];
                let e = f64::exp_nonpos::<F>(-x.abs());
                let inv = 1.0 / (1.0 + e);
                let sig = if x >= 0.0 { inv } else { e * inv };
                let d2 = e * inv * inv;
                s1[i] = sig;
                s2[i] = d2;
                ay[i] = sig * y[i] - d2 * z1[i] * z2[i];
            }
        }
        for (j, (&s, &c)) in dirs.site.iter().zip(dirs.coef).enumerate() {
            let r = s * h..(s + 1) * h;
            let (s2, ay) = (&s2[r.clone()], &mut ay[r]);
            let zj = &zk[j * h..(j + 1) * h];
            for i in 0..h {
                ay[i] += c * s2[i] * zj[i] * zj[i];
            }
        }
        return;
    }
    let [a0, a1, a2, ay, ak] = channels_mut(a, hn);
    for s in 0..nb {
        let r = s * h..(s + 1) * h;
        let (z0, z1, z2, y) = (
            &z0[r.clone()],
            &z1[r.clone()],
            &z2[r.clone()],
            &y[r.clone()],
        );
        let (s1, s2) = (&mut s1[r.clone()], &mut s2[r.clone()]);
        let (a0, a1, a2, ay) = (
            &mut a0[r.clone()],
            &mut a1[r.clone()],
            &mut a2[r.clone()],
            &mut ay[r],
        );
        for i in 0..h {
            let (sp, sig, d2) = softplus_derivs_g::<f64, F>(z0[i] + bias[i]);
            a0[i] = sp;
            s1[i] = sig;
            s2[i] = d2;
            a1[i] = sig * z1[i];
            a2[i] = sig * z2[i];
            ay[i] = sig * y[i] - d2 * z1[i] * z2[i];
        }
    }
    for (j, (&s, &c)) in dirs.site.iter().zip(dirs.coef).enumerate() {
        let r = s * h..(s + 1) * h;
        let (s1, s2, ay) = (&s1[r.clone()], &s2[r.clone()], &mut ay[r]);
        let zj = &zk[j * h..(j + 1) * h];
        let aj = &mut ak[j * h..(j + 1) * h];
        for i in 0..h {
            aj[i] = s1[i] * zj[i];
            ay[i] += c * s2[i] * zj[i] * zj[i];
        }
    }
}

/// The reverse elementwise step of hidden layer `l` (docs/DESIGN.md §3, §24.2): the adjoints of
/// the pre-activation channels from those of the activation channels `abar` (with `last`,
/// ĀY = w_L at every site and the other adjoints zero, and `abar` is not read):
///
/// ```text
/// Ȳ = ĀY σ′,  Z̄1 = Ā1σ′ − ĀYσ″Z2,  Z̄2 = Ā2σ′ − ĀYσ″Z1,  Z̄_j = Ā_jσ′ + 2 coef_j ĀY σ″ Z_j,
/// z̄ = Ā0σ′ + σ″(Ā1Z1 + Ā2Z2 + ĀY Y + Σ_j Ā_j Z_j) − ĀY σ‴ (Z1Z2 − Σ_j coef_j Z_j²)
/// ```
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn reverse_act(
    h: usize,
    nb: usize,
    z: &[f64],
    (s1, s2): (&[f64], &[f64]),
    abar: Option<&[f64]>,
    wl: &[f64],
    zb: &mut [f64],
    dirs: SecondOrder<'_>,
) {
    let hn = h * nb;
    let [_, z1, z2, y, zk] = channels(z, hn);
    let [zb0, zb1, zb2, zby, zbk] = channels_mut(zb, hn);
    match abar {
        None => {
            let wl = &wl[..h];
            for s in 0..nb {
                let r = s * h..(s + 1) * h;
                let (z1, z2, y) = (&z1[r.clone()], &z2[r.clone()], &y[r.clone()]);
                let (s1, s2) = (&s1[r.clone()], &s2[r.clone()]);
                let (zb0, zb1, zb2, zby) = (
                    &mut zb0[r.clone()],
                    &mut zb1[r.clone()],
                    &mut zb2[r.clone()],
                    &mut zby[r],
                );
                for i in 0..h {
                    let w = wl[i];
                    let ws2 = w * s2[i];
                    zby[i] = w * s1[i];
                    zb1[i] = -ws2 * z2[i];
                    zb2[i] = -ws2 * z1[i];
                    // σ‴ = σ″(1 − 2σ′)
                    let s3 = s2[i] * (1.0 - 2.0 * s1[i]);
                    zb0[i] = ws2 * y[i] - w * s3 * z1[i] * z2[i];
                }
            }
            for (j, (&s, &c)) in dirs.site.iter().zip(dirs.coef).enumerate() {
                let r = s * h..(s + 1) * h;
                let (s1, s2, zb0) = (&s1[r.clone()], &s2[r.clone()], &mut zb0[r]);
                let zj = &zk[j * h..(j + 1) * h];
                let zbj = &mut zbk[j * h..(j + 1) * h];
                for i in 0..h {
                    let w = wl[i];
                    let s3 = s2[i] * (1.0 - 2.0 * s1[i]);
                    zbj[i] = 2.0 * c * w * s2[i] * zj[i];
                    zb0[i] += w * s3 * c * zj[i] * zj[i];
                }
            }
        }
        Some(abar) => {
            let [ab0, ab1, ab2, aby, abk] = channels(abar, hn);
            for s in 0..nb {
                let r = s * h..(s + 1) * h;
                let (z1, z2, y) = (&z1[r.clone()], &z2[r.clone()], &y[r.clone()]);
                let (s1, s2) = (&s1[r.clone()], &s2[r.clone()]);
                let (ab0, ab1, ab2, aby) = (
                    &ab0[r.clone()],
                    &ab1[r.clone()],
                    &ab2[r.clone()],
                    &aby[r.clone()],
                );
                let (zb0, zb1, zb2, zby) = (
                    &mut zb0[r.clone()],
                    &mut zb1[r.clone()],
                    &mut zb2[r.clone()],
                    &mut zby[r],
                );
                for i in 0..h {
                    let (a0b, a1b, a2b, ayb) = (ab0[i], ab1[i], ab2[i], aby[i]);
                    zby[i] = ayb * s1[i];
                    zb1[i] = a1b * s1[i] - ayb * s2[i] * z2[i];
                    zb2[i] = a2b * s1[i] - ayb * s2[i] * z1[i];
                    let s3 = s2[i] * (1.0 - 2.0 * s1[i]);
                    zb0[i] = a0b * s1[i] + s2[i] * (a1b * z1[i] + a2b * z2[i] + ayb * y[i])
                        - ayb * s3 * z1[i] * z2[i];
                }
            }
            for (j, (&s, &c)) in dirs.site.iter().zip(dirs.coef).enumerate() {
                let r = s * h..(s + 1) * h;
                let (s1, s2, aby, zb0) =
                    (&s1[r.clone()], &s2[r.clone()], &aby[r.clone()], &mut zb0[r]);
                let zj = &zk[j * h..(j + 1) * h];
                let abj = &abk[j * h..(j + 1) * h];
                let zbj = &mut zbk[j * h..(j + 1) * h];
                for i in 0..h {
                    let s3 = s2[i] * (1.0 - 2.0 * s1[i]);
                    zbj[i] = abj[i] * s1[i] + 2.0 * c * aby[i] * s2[i] * zj[i];
                    zb0[i] += s2[i] * abj[i] * zj[i] + aby[i] * s3 * c * zj[i] * zj[i];
                }
            }
        }
    }
}

#[inline(always)]
fn adjoint_block_ws<F: FmaMode>(
    ws: &mut AdjointWork,
    mlp: &Mlp,
    xin: &mut [f64],
    nb: usize,
    dirs: SecondOrder<'_>,
    grad: &mut [f64],
) -> f64 {
    let sizes = &mlp.sizes;
    let p = sizes[0];
    let nh = sizes.len() - 2;
    debug_assert!(nh >= 1 && sizes[nh + 1] == 1);
    let w4 = 4 * nb + dirs.len();
    debug_assert_eq!(xin.len(), p * w4);
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
    let hl = sizes[nh];
    let wl = &mlp.weights[nh];

    // Forward: z[l] (h × w4 pre-activation channels, without the bias), a[l] (activation
    // channels; the last layer only AY), σ′, σ″.
    for l in 0..nh {
        let (hp, h) = (sizes[l], sizes[l + 1]);
        let hn = h * nb;
        let last = l + 1 == nh;
        let (done, rest) = acts.split_at_mut(l);
        let a = sized(&mut rest[0], if last { hn } else { h * w4 });
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
        let s1 = sized(&mut s1s[l], hn);
        let s2 = sized(&mut s2s[l], hn);
        forward_act::<F>(h, nb, &mlp.biases[l], z, a, (s1, s2), dirs, last);
    }

    // Output layer: S = w_L · AY.
    let ay_last = &acts[nh - 1][..hl * nb];
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
    for l in (0..nh).rev() {
        let (hp, h) = (sizes[l], sizes[l + 1]);
        let hn = h * nb;
        let woff = weight_offset(sizes, l);
        let boff = woff + h * hp;
        let zb = sized(zbar, h * w4);
        let ab = (l + 1 < nh).then(|| &abar[..h * w4]);
        reverse_act(
            h,
            nb,
            &zs[l][..h * w4],
            (&s1s[l][..hn], &s2s[l][..hn]),
            ab,
            wl,
            zb,
            dirs,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// A block with second-order columns equals the block without them plus, per direction, a
    /// separate site of the plain sweep at the same input with u1 = −coef·u, u2 = u, u3 = 0
    /// (S = coef·D_u D_u ρ): S and every parameter's gradient to 1e-12, for one, two and three
    /// hidden layers, several directions on one site, sites with none, both signs of coef.
    #[test]
    fn second_order_columns_equal_separate_sites() {
        let mut seed = 11u64;
        for sizes in [vec![5, 7, 1], vec![5, 9, 6, 1], vec![5, 8, 8, 4, 1]] {
            let mut mlp = Mlp::paper_init(&sizes, 3);
            let p = sizes[0];
            for (m, s) in mlp.input_shift.iter_mut().zip(mlp.input_scale.iter_mut()) {
                *m = 0.2 * rnd(&mut seed);
                *s = 1.0 + 0.5 * rnd(&mut seed).abs();
            }
            let nb = 6;
            let xin: Vec<f64> = (0..p * 4 * nb).map(|_| rnd(&mut seed)).collect();
            let site = [0usize, 2, 2, 2, 5];
            let coef = [0.7, -1.3, 0.4, 2.1, -0.6];
            let nd = site.len();
            let us: Vec<f64> = (0..p * nd).map(|_| rnd(&mut seed)).collect();
            let np = n_params(&sizes);
            // Fused: the block plus its second-order columns.
            let mut xf = xin.clone();
            xf.extend_from_slice(&us);
            let mut gf = vec![0.0; np];
            let sf = adjoint_block_dirs(
                &mlp,
                &mut xf,
                nb,
                SecondOrder {
                    site: &site,
                    coef: &coef,
                },
                &mut gf,
            );
            // Reference: the block alone, then the directions as sites of their own.
            let mut g = vec![0.0; np];
            let mut x0 = xin.clone();
            let mut s = adjoint_block(&mlp, &mut x0, nb, &mut g);
            let mut xd = vec![0.0; p * 4 * nd];
            for (j, (&sj, &c)) in site.iter().zip(&coef).enumerate() {
                let u = &us[j * p..(j + 1) * p];
                xd[j * p..(j + 1) * p].copy_from_slice(&xin[sj * p..(sj + 1) * p]);
                for (k, &uk) in u.iter().enumerate() {
                    xd[(nd + j) * p + k] = -c * uk;
                    xd[(2 * nd + j) * p + k] = uk;
                }
            }
            s += adjoint_block(&mlp, &mut xd, nd, &mut g);
            assert!(
                (sf - s).abs() <= 1e-12 * s.abs().max(1.0),
                "{sizes:?}: S {sf} vs {s}"
            );
            let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (k, (a, b)) in gf.iter().zip(&g).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-12 * scale,
                    "{sizes:?} param {k}: {a} vs {b}"
                );
            }
            // Without columns the fused kernel is the plain one.
            let (mut x1, mut x2) = (xin.clone(), xin.clone());
            let (mut g1, mut g2) = (vec![0.0; np], vec![0.0; np]);
            let s1 = adjoint_block_dirs(&mlp, &mut x1, nb, SecondOrder::NONE, &mut g1);
            let s2 = adjoint_block(&mlp, &mut x2, nb, &mut g2);
            assert_eq!((s1, g1), (s2, g2));
        }
    }

    /// ∂/∂θ of coef·D_u D_u ρ(x) from a second-order column against central differences of
    /// coef·uᵀ∇²ρ u, the Hessian itself by central differences of ρ along u.
    #[test]
    fn second_order_column_matches_finite_differences() {
        let mut seed = 5u64;
        let sizes = vec![4, 6, 5, 1];
        let mlp = Mlp::paper_init(&sizes, 9);
        let p = sizes[0];
        let x: Vec<f64> = (0..p).map(|_| rnd(&mut seed)).collect();
        let u: Vec<f64> = (0..p).map(|_| rnd(&mut seed)).collect();
        let coef = 1.7;
        // One site whose own channels vanish (u1 = u2 = u3 = 0): S = coef·uᵀ∇²ρ u only.
        let mut xin = vec![0.0; p * 5];
        xin[..p].copy_from_slice(&x);
        xin[4 * p..].copy_from_slice(&u);
        let mut g = vec![0.0; n_params(&sizes)];
        let s = adjoint_block_dirs(
            &mlp,
            &mut xin,
            1,
            SecondOrder {
                site: &[0],
                coef: &[coef],
            },
            &mut g,
        );
        let theta = flatten(&mlp);
        let hess_uu = |th: &[f64]| {
            let mut m = mlp.clone();
            unflatten(&mut m, th);
            // Fourth-order five-point second difference (truncation ~e⁴).
            let e = 1e-2;
            let at = |t: f64| {
                let xt: Vec<f64> = x.iter().zip(&u).map(|(a, b)| a + t * b).collect();
                m.forward(&xt)
            };
            let d2 = -at(2.0 * e) + 16.0 * at(e) - 30.0 * at(0.0) + 16.0 * at(-e) - at(-2.0 * e);
            coef * d2 / (12.0 * e * e)
        };
        assert!(
            (hess_uu(&theta) - s).abs() <= 1e-5 * s.abs().max(1.0),
            "S {s}"
        );
        // Central differences with one Richardson step: the third derivatives in some weights are
        // large (plain central differences converge as h², 7e-6 at h = 4e-3), and below h ≈ 5e-4
        // the rounding of the nested differences (≈ 1e-7) dominates.
        let cd = |k: usize, h: f64| {
            let mut tp = theta.clone();
            tp[k] += h;
            let lp = hess_uu(&tp);
            tp[k] -= 2.0 * h;
            (lp - hess_uu(&tp)) / (2.0 * h)
        };
        for (k, &gk) in g.iter().enumerate() {
            let fd = (4.0 * cd(k, 1e-3) - cd(k, 2e-3)) / 3.0;
            assert!(
                (fd - gk).abs() <= 1e-5 * (fd.abs().max(gk.abs()) + 1e-2),
                "param {k}: fd {fd} vs {gk}"
            );
        }
    }
}
