//! softplus and its first two derivatives, vectorisable and accurate to a few ulps.
//!
//! The MLP passes evaluate σ, σ', σ'' for every hidden unit of every site; with libm's scalar
//! `exp`/`log1p` that costs more than the GEMMs. Here both are branch-free polynomials the
//! compiler vectorises:
//! * e = exp(−|z|) by Cody–Waite range reduction (x = k ln2 + r, |r| ≤ ln2/2), a degree-13
//!   Taylor polynomial for e^r, and 2^k put into the exponent bits;
//! * log1p(e) = 2 atanh(s), s = e/(2 + e) ∈ [0, 1/3], an odd series to s³⁷ — no cancellation
//!   for small e.
//!
//! softplus(z) = max(z, 0) + log1p(e), σ' = sigmoid(z), σ'' = e/(1 + e)².

const LOG2E: f64 = std::f64::consts::LOG2_E;
#[allow(clippy::excessive_precision)] // fdlibm's split of ln 2: LN2_HI has trailing zero bits
const LN2_HI: f64 = 6.931_471_803_691_238_164_9e-1;
#[allow(clippy::excessive_precision)]
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5·2⁵², rounds to integer on addition

/// exp(x) for x ≤ 0 (clamped at −708, where e^x ≈ 3e−308).
#[inline(always)]
pub fn exp_nonpos(x: f64) -> f64 {
    let x = x.max(-708.0);
    let kf = x.mul_add(LOG2E, SHIFT);
    let k = kf - SHIFT;
    let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, x));
    // Taylor coefficients 1/n!, n = 13 … 0
    let mut p: f64 = 1.0 / 6_227_020_800.0;
    p = p.mul_add(r, 1.0 / 479_001_600.0);
    p = p.mul_add(r, 1.0 / 39_916_800.0);
    p = p.mul_add(r, 1.0 / 3_628_800.0);
    p = p.mul_add(r, 1.0 / 362_880.0);
    p = p.mul_add(r, 1.0 / 40_320.0);
    p = p.mul_add(r, 1.0 / 5_040.0);
    p = p.mul_add(r, 1.0 / 720.0);
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    let ki = (kf.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    f64::from_bits((p.to_bits() as i64).wrapping_add(ki << 52) as u64)
}

/// log(1 + e) for e ∈ [0, 1].
#[inline(always)]
pub fn log1p_unit(e: f64) -> f64 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    // Σ_{m=0}^{18} s^{2m}/(2m+1), Horner in s²
    let mut p: f64 = 1.0 / 37.0;
    p = p.mul_add(s2, 1.0 / 35.0);
    p = p.mul_add(s2, 1.0 / 33.0);
    p = p.mul_add(s2, 1.0 / 31.0);
    p = p.mul_add(s2, 1.0 / 29.0);
    p = p.mul_add(s2, 1.0 / 27.0);
    p = p.mul_add(s2, 1.0 / 25.0);
    p = p.mul_add(s2, 1.0 / 23.0);
    p = p.mul_add(s2, 1.0 / 21.0);
    p = p.mul_add(s2, 1.0 / 19.0);
    p = p.mul_add(s2, 1.0 / 17.0);
    p = p.mul_add(s2, 1.0 / 15.0);
    p = p.mul_add(s2, 1.0 / 13.0);
    p = p.mul_add(s2, 1.0 / 11.0);
    p = p.mul_add(s2, 1.0 / 9.0);
    p = p.mul_add(s2, 1.0 / 7.0);
    p = p.mul_add(s2, 1.0 / 5.0);
    p = p.mul_add(s2, 1.0 / 3.0);
    p = p.mul_add(s2, 1.0);
    2.0 * s * p
}

/// (softplus(z), sigmoid(z), sigmoid'(z)).
#[inline(always)]
pub fn softplus_derivs(z: f64) -> (f64, f64, f64) {
    let e = exp_nonpos(-z.abs());
    let inv = 1.0 / (1.0 + e);
    let sp = z.max(0.0) + log1p_unit(e);
    let sig = if z >= 0.0 { inv } else { e * inv };
    (sp, sig, e * inv * inv)
}

/// softplus(z) = log(1 + eᶻ).
#[inline(always)]
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + log1p_unit(exp_nonpos(-z.abs()))
}

/// Apply [`softplus_derivs`] elementwise: a = σ(z), s1 = σ'(z), s2 = σ''(z).
pub fn softplus_slices(z: &[f64], a: &mut [f64], s1: &mut [f64], s2: &mut [f64]) {
    let n = z.len();
    let (a, s1, s2) = (&mut a[..n], &mut s1[..n], &mut s2[..n]);
    for i in 0..n {
        let (x, y, w) = softplus_derivs(z[i]);
        a[i] = x;
        s1[i] = y;
        s2[i] = w;
    }
}

/// Dot product with eight independent accumulators (vectorises without fast-math).
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s = x.mul_add(*y, s);
    }
    s
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
        assert!(worst < 4e-16, "worst rel err {worst:e}");
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

    #[test]
    fn dot_is_exact_enough() {
        let a: Vec<f64> = (0..37).map(|i| (i as f64).sin()).collect();
        let b: Vec<f64> = (0..37).map(|i| (i as f64 * 0.5).cos()).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-14);
    }
}
