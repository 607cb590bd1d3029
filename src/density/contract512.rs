//! The fused backward step of the MLP passes with AVX-512 register tiles (docs/DESIGN.md §15.5).
//!
//! Per hidden layer and block of nb sites it forms g = δ ⊙ σ′ (for the backward GEMM) and adds
//! the layer's Hessian terms Σ_i (δ ⊙ σ″)_i T_ij T_ik for every pair (j, k), j < kd, j ≤ k ≤ kd,
//! in one sweep over the hidden units: eight sites per zmm register, all the pair accumulators
//! of an eight-site chunk held in registers across the sweep (kd ≤ 4: at most 14 of them), so
//! each tangent value is loaded once per layer instead of once per pair and δ ⊙ σ″ is never
//! stored. For the first layer the velocity tangents are the constant columns of W₀′
//! (`vconst`), broadcast instead of loaded, so the pass never writes them out per site.
//!
//! The generic path of [`super::mlp`] (any SIMD level, any kd) computes the same sums in a
//! different order; the two agree to rounding (tests/simd_dispatch.rs).
//!
//! The AVX-512 intrinsics are stable since Rust 1.89, newer than the crate's MSRV: build.rs sets
//! cfg `lgn_avx512` when rustc has them, and without it [`supported`] is false.

// Everything using the intrinsics is compiled only under cfg `lgn_avx512` (rustc ≥ 1.89).
#![allow(clippy::incompatible_msrv)]

#[cfg(all(target_arch = "x86_64", lgn_avx512))]
use std::arch::x86_64::*;

/// Largest kd the register tile handles.
pub(crate) const MAX_KD: usize = 4;

/// Number of Hessian pairs (j, k), j < kd, j ≤ k ≤ kd.
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
const fn n_pairs(kd: usize) -> usize {
    kd * (kd + 3) / 2
}

#[cfg(all(target_arch = "x86_64", lgn_avx512))]
/// Operands of one layer's fused step; slices in the feature-major layout of the MLP pass
/// (row i = hidden unit i, nb sites per row; tangent buffer rows `[z | T_0 | … | T_kd]`).
pub(crate) struct Layer<'a, T> {
    pub h: usize,
    pub nb: usize,
    pub width: usize,
    pub kd: usize,
    /// δ, h × nb.
    pub delta: &'a [f64],
    /// σ′ and σ″, h × nb.
    pub s1: &'a [T],
    pub s2: &'a [T],
    /// The layer's buffer, h × width.
    pub t: &'a [T],
    /// First layer: W₀′'s velocity columns, column-major h × kd (T_j for j < kd).
    pub vconst: Option<&'a [T]>,
}

/// Index of the pair (j, k) in the pair-major Hessian buffer (as `mlp::pair_index`).
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
#[inline(always)]
const fn pair(kd: usize, j: usize, k: usize) -> usize {
    j * (kd + 1) - j * j.saturating_sub(1) / 2 + (k - j)
}

/// Whether the AVX-512 tile can run this layer (the caller checked the CPU level).
pub(crate) fn supported(kd: usize) -> bool {
    cfg!(all(target_arch = "x86_64", lgn_avx512)) && (1..=MAX_KD).contains(&kd)
}

/// g = δ ⊙ σ′ (h × nb) and hess[p·nb + s] += Σ_i δσ″ T_j T_k for pair p = (j, k).
///
/// # Safety
/// The CPU must have AVX-512 F/VL/DQ, AVX2 and FMA, `T` must be f64 or f32, and
/// `supported(l.kd)`.
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
pub(crate) unsafe fn fused_layer<T: super::simd::Real>(
    l: &Layer<'_, T>,
    g: &mut [f64],
    hess: &mut [f64],
) {
    let n = l.h * l.nb;
    assert!(
        l.delta.len() >= n
            && l.s1.len() >= n
            && l.s2.len() >= n
            && g.len() >= n
            && l.t.len() >= l.h * l.width
            && l.width >= (l.kd + 2) * l.nb
            && hess.len() >= n_pairs(l.kd) * l.nb
            && l.vconst.is_none_or(|v| v.len() >= l.h * l.kd)
    );
    let f32 = match std::mem::size_of::<T>() {
        4 => true,
        8 => false,
        _ => unreachable!("Real is f64 or f32"),
    };
    macro_rules! go {
        ($kd:literal, $np:literal) => {
            match (l.vconst.is_some(), f32) {
                (false, false) => tile::<T, $kd, $np, false, false>(l, g, hess),
                (true, false) => tile::<T, $kd, $np, true, false>(l, g, hess),
                (false, true) => tile::<T, $kd, $np, false, true>(l, g, hess),
                (true, true) => tile::<T, $kd, $np, true, true>(l, g, hess),
            }
        };
    }
    match l.kd {
        1 => go!(1, 2),
        2 => go!(2, 5),
        3 => go!(3, 9),
        4 => go!(4, 14),
        _ => unreachable!("checked by supported()"),
    }
}

/// Eight values from `p[i..]` widened to f64.
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
#[inline(always)]
unsafe fn ld<const F32: bool>(p: *const u8, i: usize) -> __m512d {
    if F32 {
        _mm512_cvtps_pd(_mm256_loadu_ps((p as *const f32).add(i)))
    } else {
        _mm512_loadu_pd((p as *const f64).add(i))
    }
}

/// One value widened to f64.
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
#[inline(always)]
unsafe fn ld1<const F32: bool>(p: *const u8, i: usize) -> f64 {
    if F32 {
        *(p as *const f32).add(i) as f64
    } else {
        *(p as *const f64).add(i)
    }
}

// Index loops over the constant-size register arrays: the iterator form (enumerate/skip/take)
// made the whole pass 15–20 % slower (CPU time, ring n = 2·10⁴).
#[allow(clippy::needless_range_loop)]
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
unsafe fn tile<T, const KD: usize, const NP: usize, const VC: bool, const F32: bool>(
    l: &Layer<'_, T>,
    g: &mut [f64],
    hess: &mut [f64],
) {
    let (h, nb, width) = (l.h, l.nb, l.width);
    let delta = l.delta.as_ptr();
    let s1 = l.s1.as_ptr() as *const u8;
    let s2 = l.s2.as_ptr() as *const u8;
    let t = l.t.as_ptr() as *const u8;
    let vc = l
        .vconst
        .map_or(std::ptr::null(), |v| v.as_ptr() as *const u8);
    let gp = g.as_mut_ptr();
    let hp = hess.as_mut_ptr();
    let mut c = 0;
    while c + 8 <= nb {
        let mut acc = [_mm512_setzero_pd(); NP];
        for i in 0..h {
            let o = i * nb + c;
            let d = _mm512_loadu_pd(delta.add(o));
            _mm512_storeu_pd(gp.add(o), _mm512_mul_pd(d, ld::<F32>(s1, o)));
            let w = _mm512_mul_pd(d, ld::<F32>(s2, o));
            let mut tv = [_mm512_setzero_pd(); MAX_KD + 1];
            for (j, v) in tv.iter_mut().enumerate().take(KD + 1) {
                *v = if VC && j < KD {
                    _mm512_set1_pd(ld1::<F32>(vc, j * h + i))
                } else {
                    ld::<F32>(t, i * width + (1 + j) * nb + c)
                };
            }
            for j in 0..KD {
                let wt = _mm512_mul_pd(w, tv[j]);
                for k in j..=KD {
                    let p = pair(KD, j, k);
                    acc[p] = _mm512_fmadd_pd(wt, tv[k], acc[p]);
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            let q = hp.add(p * nb + c);
            _mm512_storeu_pd(q, _mm512_add_pd(_mm512_loadu_pd(q), *a));
        }
        c += 8;
    }
    // the last nb mod 8 sites, one at a time
    for s in c..nb {
        let mut acc = [0.0f64; NP];
        for i in 0..h {
            let o = i * nb + s;
            let d = *delta.add(o);
            *gp.add(o) = d * ld1::<F32>(s1, o);
            let w = d * ld1::<F32>(s2, o);
            let mut tv = [0.0f64; MAX_KD + 1];
            for (j, v) in tv.iter_mut().enumerate().take(KD + 1) {
                *v = if VC && j < KD {
                    ld1::<F32>(vc, j * h + i)
                } else {
                    ld1::<F32>(t, i * width + (1 + j) * nb + s)
                };
            }
            for j in 0..KD {
                let wt = w * tv[j];
                for k in j..=KD {
                    let p = pair(KD, j, k);
                    acc[p] = wt.mul_add(tv[k], acc[p]);
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            *hp.add(p * nb + s) += *a;
        }
    }
}
