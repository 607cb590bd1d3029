//! softplus and its first two derivatives, vectorisable and accurate to a few ulps.
//!
//! The MLP passes evaluate σ, σ', σ'' for every hidden unit of every site; with libm's scalar
//! `exp`/`log1p` that costs more than the GEMMs. Here both are branch-free polynomials the
//! compiler vectorises:
//! * e = exp(−|z|) by Cody–Waite range reduction (x = k ln2 + r, |r| ≤ ln2/2), a degree-11
//!   minimax polynomial for e^r, and 2^k put into the exponent bits;
//! * log1p(e) = 2 atanh(s) = 2s + 2s·s²·R(s²), s = e/(2 + e) ∈ [0, 1/3], R a degree-9 minimax
//!   polynomial — no cancellation for small e (docs/DESIGN.md §15.5).
//!
//! softplus(z) = max(z, 0) + log1p(e), σ' = sigmoid(z), σ'' = e/(1 + e)².
//!
//! The polynomials live in [`Real`] (f64 and an f32 variant); the `_g` functions are generic over
//! the scalar type and the multiply-add mode so the dispatched kernels of [`super::simd`] inline
//! them; the plain functions use the build target's own mode (no software fma).

use super::simd::{self, FmaMode, Kernel, Real, SimdLevel, StaticFma};

/// exp(x) for x ≤ 0 (clamped at −708, where e^x ≈ 3e−308).
#[inline(always)]
pub fn exp_nonpos(x: f64) -> f64 {
    f64::exp_nonpos::<StaticFma>(x)
}

/// log(1 + e) for e ∈ [0, 1].
#[inline(always)]
pub fn log1p_unit(e: f64) -> f64 {
    f64::log1p_unit::<StaticFma>(e)
}

/// (softplus(z), sigmoid(z), sigmoid'(z)) in T with multiply-adds formed by F.
#[inline(always)]
pub fn softplus_derivs_g<T: Real, F: FmaMode>(z: T) -> (T, T, T) {
    let e = T::exp_nonpos::<F>(-z.abs());
    let inv = T::ONE / (T::ONE + e);
    let sp = z.max(T::ZERO) + T::log1p_unit::<F>(e);
    let sig = if z >= T::ZERO { inv } else { e * inv };
    (sp, sig, e * inv * inv)
}

/// (softplus(z), sigmoid(z), sigmoid'(z)).
#[inline(always)]
pub fn softplus_derivs(z: f64) -> (f64, f64, f64) {
    softplus_derivs_g::<f64, StaticFma>(z)
}

/// softplus(z) = log(1 + eᶻ).
#[inline(always)]
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + log1p_unit(exp_nonpos(-z.abs()))
}

/// [`softplus_slices`] inside a dispatched kernel (T, F chosen by the caller).
#[inline(always)]
pub fn softplus_slices_g<T: Real, F: FmaMode>(z: &[T], a: &mut [T], s1: &mut [T], s2: &mut [T]) {
    let n = z.len();
    let (a, s1, s2) = (&mut a[..n], &mut s1[..n], &mut s2[..n]);
    for i in 0..n {
        let (x, y, w) = softplus_derivs_g::<T, F>(z[i]);
        a[i] = x;
        s1[i] = y;
        s2[i] = w;
    }
}

/// [`softplus_slices_g`] of z + bias (the layer's bias added on the fly, saving a pass over z).
#[inline(always)]
pub fn softplus_bias_slices_g<T: Real, F: FmaMode>(
    z: &[T],
    bias: T,
    a: &mut [T],
    s1: &mut [T],
    s2: &mut [T],
) {
    let n = z.len();
    let (a, s1, s2) = (&mut a[..n], &mut s1[..n], &mut s2[..n]);
    for i in 0..n {
        let (x, y, w) = softplus_derivs_g::<T, F>(z[i] + bias);
        a[i] = x;
        s1[i] = y;
        s2[i] = w;
    }
}

/// [`sigmoid_slices_g`] of z + bias.
#[inline(always)]
pub fn sigmoid_bias_slices_g<T: Real, F: FmaMode>(z: &[T], bias: T, s1: &mut [T], s2: &mut [T]) {
    let n = z.len();
    let (s1, s2) = (&mut s1[..n], &mut s2[..n]);
    for i in 0..n {
        let x = z[i] + bias;
        let e = T::exp_nonpos::<F>(-x.abs());
        let inv = T::ONE / (T::ONE + e);
        s1[i] = if x >= T::ZERO { inv } else { e * inv };
        s2[i] = e * inv * inv;
    }
}

/// σ' = sigmoid(z) and σ'' = sigmoid'(z) elementwise, without softplus itself (one exp and one
/// division per value, no log): the last hidden layer of an acceleration pass needs no values.
#[inline(always)]
pub fn sigmoid_slices_g<T: Real, F: FmaMode>(z: &[T], s1: &mut [T], s2: &mut [T]) {
    let n = z.len();
    let (s1, s2) = (&mut s1[..n], &mut s2[..n]);
    for i in 0..n {
        let e = T::exp_nonpos::<F>(-z[i].abs());
        let inv = T::ONE / (T::ONE + e);
        s1[i] = if z[i] >= T::ZERO { inv } else { e * inv };
        s2[i] = e * inv * inv;
    }
}

struct SoftplusSlices<'a, T> {
    z: &'a [T],
    a: &'a mut [T],
    s1: &'a mut [T],
    s2: &'a mut [T],
}

impl<T: Real> Kernel for SoftplusSlices<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<F: FmaMode>(self) {
        softplus_slices_g::<T, F>(self.z, self.a, self.s1, self.s2)
    }
}

/// Apply [`softplus_derivs`] elementwise: a = σ(z), s1 = σ'(z), s2 = σ''(z), with the
/// vector kernel of the CPU ([`simd::active`]).
pub fn softplus_slices(z: &[f64], a: &mut [f64], s1: &mut [f64], s2: &mut [f64]) {
    softplus_slices_at(simd::active(), z, a, s1, s2)
}

/// [`softplus_slices`] at a given SIMD level (clamped to the CPU's); any T.
pub fn softplus_slices_at<T: Real>(
    level: SimdLevel,
    z: &[T],
    a: &mut [T],
    s1: &mut [T],
    s2: &mut [T],
) {
    simd::dispatch(level, SoftplusSlices { z, a, s1, s2 })
}

/// Dot product with eight independent accumulators (vectorises without fast-math).
#[inline(always)]
pub fn dot_g<T: Real, F: FmaMode>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::ZERO; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] = F::fma(x[l], y[l], acc[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s = F::fma(*x, *y, s);
    }
    s
}

/// Dot product with eight independent accumulators (scalar code of the build target).
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    dot_g::<f64, StaticFma>(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -700.0;
        while x <= 0.0 {
            let rel = (exp_nonpos(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
            x += 0.001_37;
        }
        assert!(worst < 6e-16, "worst rel err {worst:e}");
        assert_eq!(exp_nonpos(0.0), 1.0);
    }

    #[test]
    fn log1p_matches_libm() {
        let mut worst = 0.0f64;
        for i in 0..=100_000 {
            let e = i as f64 / 100_000.0;
            let e = e * e * e; // dense near 0
            let rel = if e == 0.0 {
                log1p_unit(e).abs()
            } else {
                (log1p_unit(e) - e.ln_1p()).abs() / e.ln_1p()
            };
            worst = worst.max(rel);
        }
        assert!(worst < 1e-15, "worst rel err {worst:e}");
    }

    #[test]
    fn softplus_and_derivatives() {
        for z in [-800.0, -40.0, -3.0, -1e-9, 0.0, 1e-9, 0.3, 2.0, 40.0, 800.0] {
            let (a, s1, s2) = softplus_derivs(z);
            let e = (-f64::abs(z)).exp();
            let sp = f64::max(z, 0.0) + e.ln_1p();
            let sig = 1.0 / (1.0 + (-z).exp());
            assert!((a - sp).abs() <= 4e-16 * sp + 1e-300, "softplus({z})");
            assert!((s1 - sig).abs() <= 4e-16 * sig + 1e-300, "sigmoid({z})");
            let s2_ref = e / ((1.0 + e) * (1.0 + e)); // = σ(1 − σ) without cancellation
            assert!(
                (s2 - s2_ref).abs() <= 1e-15 * s2_ref + 1e-300,
                "sigmoid'({z})"
            );
        }
    }

    /// Both multiply-add modes of the f64 polynomials stay within a few ulps of libm.
    #[test]
    fn both_fma_modes_match_libm() {
        use crate::density::simd::{Fused, Unfused};
        let (mut wu, mut wf) = (0.0f64, 0.0f64);
        let mut x = -700.0f64;
        while x <= 0.0 {
            let r = x.exp();
            wu = wu.max((f64::exp_nonpos::<Unfused>(x) - r).abs() / r);
            wf = wf.max((f64::exp_nonpos::<Fused>(x) - r).abs() / r);
            x += 0.013_7;
        }
        assert!(
            wu < 6e-16 && wf < 4e-16,
            "exp: unfused {wu:e}, fused {wf:e}"
        );
        for i in 0..=20_000 {
            let e = (i as f64 / 20_000.0).powi(3);
            let r = e.ln_1p().max(1e-300);
            let du = (f64::log1p_unit::<Unfused>(e) - e.ln_1p()).abs() / r;
            let df = (f64::log1p_unit::<Fused>(e) - e.ln_1p()).abs() / r;
            assert!(du < 1e-15 && df < 1e-15, "log1p({e}): {du:e} {df:e}");
        }
    }

    /// The f32 polynomials against libm in f64: relative error a few f32 ulps.
    #[test]
    fn f32_polynomials_match_libm() {
        use crate::density::simd::{Fused, Unfused};
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let r = (x as f64).exp();
            for v in [f32::exp_nonpos::<Unfused>(x), f32::exp_nonpos::<Fused>(x)] {
                worst = worst.max((v as f64 - r).abs() / r);
            }
            x += 0.001_3;
        }
        assert!(worst < 4.0 * f32::EPSILON as f64, "exp f32 {worst:e}");
        let mut worst = 0.0f64;
        for i in 1..=20_000 {
            let e = (i as f32 / 20_000.0).powi(3);
            let r = (e as f64).ln_1p();
            for v in [f32::log1p_unit::<Unfused>(e), f32::log1p_unit::<Fused>(e)] {
                worst = worst.max((v as f64 - r).abs() / r);
            }
        }
        assert!(worst < 4.0 * f32::EPSILON as f64, "log1p f32 {worst:e}");
    }

    /// softplus, σ′, σ″ against libm over z ∈ [−700, 700] (geometric steps) and densely near 0,
    /// with both multiply-add modes: a few ulps everywhere, including large |z|.
    #[test]
    fn softplus_family_over_a_wide_range() {
        use crate::density::simd::{Fused, Unfused};
        let mut zs = Vec::new();
        let mut z = -700.0f64;
        while z <= 700.0 {
            zs.push(z);
            z += 0.000_731 * (1.0 + z.abs());
        }
        zs.extend((0..200_000).map(|i| (i as f64 - 100_000.0) * 1e-5));
        let mut worst = [[0.0f64; 3]; 2];
        for &z in &zs {
            let e = (-z.abs()).exp();
            let refs = [
                z.max(0.0) + e.ln_1p(),
                if z >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                },
                e / ((1.0 + e) * (1.0 + e)),
            ];
            let got = [
                softplus_derivs_g::<f64, Fused>(z),
                softplus_derivs_g::<f64, Unfused>(z),
            ];
            for (w, g) in worst.iter_mut().zip(got) {
                for (k, v) in [g.0, g.1, g.2].into_iter().enumerate() {
                    w[k] = w[k].max((v - refs[k]).abs() / (refs[k] + 1e-300));
                }
            }
        }
        for w in worst {
            assert!(
                w[0] < 6e-16 && w[1] < 6e-16 && w[2] < 1e-15,
                "worst rel err (softplus, σ′, σ″) {w:?}"
            );
        }
    }

    /// Every SIMD level the CPU has gives the scalar kernel's values to rounding.
    #[test]
    fn dispatched_softplus_equals_scalar() {
        use crate::density::simd::{detected, SimdLevel};
        let z: Vec<f64> = (0..1003).map(|i| (i as f64 * 0.731).sin() * 30.0).collect();
        let n = z.len();
        let run = |level| {
            let (mut a, mut b, mut c) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            softplus_slices_at(level, &z, &mut a, &mut b, &mut c);
            (a, b, c)
        };
        let s = run(SimdLevel::Scalar);
        for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
            if level > detected() {
                continue;
            }
            let v = run(level);
            for (x, y) in [(&s.0, &v.0), (&s.1, &v.1), (&s.2, &v.2)] {
                for (a, b) in x.iter().zip(y.iter()) {
                    assert!(
                        (a - b).abs() <= 2e-15 * a.abs() + 1e-300,
                        "{level}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn dot_is_exact_enough() {
        let a: Vec<f64> = (0..37).map(|i| (i as f64).sin()).collect();
        let b: Vec<f64> = (0..37).map(|i| (i as f64 * 0.5).cos()).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-14);
    }
}
