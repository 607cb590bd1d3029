//! Run-time SIMD dispatch for the hot elementwise loops (activations, Hessian contractions,
//! hyper-dual channel updates).
//!
//! lgn is built for the baseline of its target (x86-64: SSE2, no FMA) unless the user asks
//! otherwise, so a dependent crate or a Python wheel gets the same speed as a `target-cpu=native`
//! build. The hot kernels are written once, generic over the scalar type ([`Real`]: f64 or f32)
//! and over how a multiply-add is formed ([`FmaMode`]), and instantiated three times:
//!
//! * [`SimdLevel::Avx512`]: compiled with `avx512f,avx512vl,avx512bw,avx512dq,avx2,fma`,
//!   multiply-adds fused (`vfmadd`);
//! * [`SimdLevel::Avx2`]: compiled with `avx2,fma`, fused;
//! * [`SimdLevel::Scalar`]: the target's baseline with *unfused* `a·b + c` (an `f64::mul_add`
//!   without the `fma` feature compiles to a software fma, ~100× slower).
//!
//! The level is detected once (`is_x86_feature_detected!`) and cached; [`Kernel`] objects are
//! run through [`dispatch`], which calls a `#[target_feature]` trampoline whose body, the
//! kernel's `#[inline(always)]` generic code, the compiler then vectorises for that level.
//! GEMMs go through faer, which dispatches on its own. The environment variable `LGN_SIMD`
//! (`scalar`, `avx2`, `avx512`) caps the level, read once, for comparisons; a density may also
//! pin a level (`MlpDensity::with_simd`), which is how the tests compare the paths in one
//! process.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};
use std::sync::OnceLock;

/// Instruction-set level a kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// The build target's baseline, unfused multiply-adds.
    Scalar,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/VL/BW/DQ + AVX2 + FMA (x86-64-v4).
    Avx512,
}

impl SimdLevel {
    /// "scalar", "avx2+fma" or "avx512".
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2+fma",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// Parse "scalar", "avx2" / "avx2+fma", "avx512".
    pub fn parse(s: &str) -> Option<SimdLevel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" => Some(SimdLevel::Scalar),
            "avx2" | "avx2+fma" | "fma" => Some(SimdLevel::Avx2),
            "avx512" | "avx-512" => Some(SimdLevel::Avx512),
            _ => None,
        }
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The best level this CPU supports (detected once).
pub fn detected() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> SimdLevel {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
    {
        SimdLevel::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        SimdLevel::Avx2
    } else {
        SimdLevel::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> SimdLevel {
    SimdLevel::Scalar
}

/// The level kernels run at: [`detected`], capped by `LGN_SIMD` if set (read once).
pub fn active() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("LGN_SIMD")
            .ok()
            .and_then(|s| SimdLevel::parse(&s));
        match cap {
            Some(c) => c.min(detected()),
            None => detected(),
        }
    })
}

/// A requested level limited to what the CPU supports.
pub fn clamp(level: SimdLevel) -> SimdLevel {
    level.min(detected())
}

/// The CPU's brand string (x86-64: CPUID leaves 0x8000_0002–4; elsewhere /proc/cpuinfo).
pub fn cpu_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::__cpuid;
            // SAFETY: CPUID is available on every x86-64 CPU.
            let max = __cpuid(0x8000_0000).eax;
            if max >= 0x8000_0004 {
                let mut bytes = Vec::with_capacity(48);
                for leaf in 0x8000_0002u32..=0x8000_0004 {
                    let r = __cpuid(leaf);
                    for w in [r.eax, r.ebx, r.ecx, r.edx] {
                        bytes.extend_from_slice(&w.to_le_bytes());
                    }
                }
                let s = String::from_utf8_lossy(&bytes)
                    .trim_matches(char::from(0))
                    .trim()
                    .to_string();
                if !s.is_empty() {
                    return s;
                }
            }
        }
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into())
    })
    .clone()
}

/// How a multiply-add a·b + c is formed inside a kernel.
pub trait FmaMode: Copy + 'static {
    fn fma<T: Real>(a: T, b: T, c: T) -> T;
}

/// Fused (one rounding, `vfmadd`): only inside kernels compiled with the `fma` feature.
#[derive(Clone, Copy, Debug)]
pub struct Fused;
/// Separate multiply and add: the baseline path.
#[derive(Clone, Copy, Debug)]
pub struct Unfused;

impl FmaMode for Fused {
    #[inline(always)]
    fn fma<T: Real>(a: T, b: T, c: T) -> T {
        a.mul_add_fused(b, c)
    }
}
impl FmaMode for Unfused {
    #[inline(always)]
    fn fma<T: Real>(a: T, b: T, c: T) -> T {
        a * b + c
    }
}

/// The mode of code compiled outside any dispatched kernel: fused only when the build target
/// itself has FMA (e.g. `-C target-cpu=native`, aarch64).
#[cfg(any(target_feature = "fma", target_arch = "aarch64"))]
pub type StaticFma = Fused;
/// The mode of code compiled outside any dispatched kernel: fused only when the build target
/// itself has FMA (e.g. `-C target-cpu=native`, aarch64).
#[cfg(not(any(target_feature = "fma", target_arch = "aarch64")))]
pub type StaticFma = Unfused;

/// Scalar types of the MLP passes (f64, f32).
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    /// "f64" / "f32".
    const NAME: &'static str;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn max(self, o: Self) -> Self;
    fn abs(self) -> Self;
    /// `mul_add` (hardware fma only where the caller is compiled with it).
    fn mul_add_fused(self, b: Self, c: Self) -> Self;
    /// exp(x) for x ≤ 0.
    fn exp_nonpos<F: FmaMode>(x: Self) -> Self;
    /// log(1 + e) for e ∈ [0, 1].
    fn log1p_unit<F: FmaMode>(e: Self) -> Self;
    /// `dst = accum·dst + lhs·rhs` through faer, sequential.
    fn gemm(dst: MatMut<'_, Self>, accum: Accum, lhs: MatRef<'_, Self>, rhs: MatRef<'_, Self>);
    /// The site pass's row-major product (docs/DESIGN.md §23): `c[i·ldc + j] (=|+=)
    /// Σ_p a[i·rsa + p·csa] · b[p·ldb + j]`, i < m, j < n, p < k (`accumulate` false replaces C).
    /// On AVX-512 CPUs lgn's register-tiled kernel runs (`gemm512::gemm_f64` / `gemm_f32`),
    /// elsewhere faer on the same strided views. The slices are checked against the largest index.
    #[allow(clippy::too_many_arguments)]
    fn gemm_rm(
        mnk: (usize, usize, usize),
        a: &[Self],
        a_strides: (usize, usize),
        b: &[Self],
        ldb: usize,
        c: &mut [Self],
        ldc: usize,
        accumulate: bool,
    ) {
        gemm_rm_faer(mnk, a, a_strides, b, ldb, c, ldc, accumulate)
    }
    /// The slice itself when `Self` is f64 (no conversion needed).
    fn from_f64_slice(x: &[f64]) -> Option<&[Self]>;
    /// Take this thread's scratch vector (put it back with [`Real::put_workspace`]).
    fn take_workspace() -> Vec<Self>;
    fn put_workspace(v: Vec<Self>);
}

/// [`Real::gemm_rm`] through faer (sequential) on strided views of the slices.
#[allow(clippy::too_many_arguments)]
fn gemm_rm_faer<T: Real>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    (rsa, csa): (usize, usize),
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + n, "gemm_rm: C slice too short");
    assert!(
        k == 0 || (a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() >= (k - 1) * ldb + n),
        "gemm_rm: A or B slice too short"
    );
    let as_isize = |x: usize| isize::try_from(x).expect("stride fits isize");
    // SAFETY: the asserts bound every element the views address (i < m, p < k, j < n); the
    // views live only for this call and C is borrowed mutably.
    let (av, bv, cv) = unsafe {
        (
            MatRef::from_raw_parts(a.as_ptr(), m, k, as_isize(rsa), as_isize(csa)),
            MatRef::from_raw_parts(b.as_ptr(), k, n, as_isize(ldb), 1),
            MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, as_isize(ldc), 1),
        )
    };
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    T::gemm(cv, accum, av, bv);
}

/// Σ c_k x^(n−k) by Horner's rule, coefficients highest first.
#[inline(always)]
fn horner<T: Real, F: FmaMode>(c: &[T], x: T) -> T {
    let mut p = c[0];
    for &ck in &c[1..] {
        p = F::fma(p, x, ck);
    }
    p
}

/// 2 atanh(s) = 2s + 2s·t·R(t), t = s², R given by its coefficients (highest first).
#[inline(always)]
fn atanh_tail<T: Real, F: FmaMode>(s: T, r: &[T]) -> T {
    let t = s * s;
    let s2 = s + s;
    F::fma(s2 * t, horner::<T, F>(r, t), s2)
}

thread_local! {
    static WS64: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
    static WS32: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

const F64_LOG2E: f64 = std::f64::consts::LOG2_E;
#[allow(clippy::excessive_precision)] // fdlibm's split of ln 2: LN2_HI has trailing zero bits
const F64_LN2_HI: f64 = 6.931_471_803_691_238_164_9e-1;
#[allow(clippy::excessive_precision)]
const F64_LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
const F64_SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5·2⁵², rounds to integer on addition
/// e^r on [−ln2/2, ln2/2], degree 11, highest first (Chebyshev fit in 40-digit arithmetic,
/// mpmath `chebyfit`; relative error 4.5e-18).
#[allow(clippy::excessive_precision)]
const F64_EXP: [f64; 12] = [
    2.511_003_760_596_377_7e-8,
    2.763_263_963_904_103e-7,
    2.755_724_091_857_897e-6,
    2.480_148_548_232_849_4e-5,
    1.984_126_989_004_711_3e-4,
    1.388_888_895_231_477_5e-3,
    8.333_333_333_319_601e-3,
    4.166_666_666_648_81e-2,
    0.166_666_666_666_666_8,
    0.500_000_000_000_001_9,
    1.0,
    1.0,
];
/// (atanh(√t)/√t − 1)/t on [0, 1/9], degree 9, highest first (as above; error 4.5e-17).
#[allow(clippy::excessive_precision)]
const F64_ATANH: [f64; 10] = [
    8.082_022_805_971_766e-2,
    4.400_369_243_072_337e-2,
    6.000_536_404_795_356e-2,
    6.657_072_104_827_468e-2,
    7.692_785_032_479_312e-2,
    9.090_894_718_066_429e-2,
    0.111_111_113_587_139_32,
    0.142_857_142_835_543_8,
    0.200_000_000_000_072_92,
    0.333_333_333_333_333_3,
];

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn from_f64(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn max(self, o: f64) -> f64 {
        f64::max(self, o)
    }
    #[inline(always)]
    fn abs(self) -> f64 {
        f64::abs(self)
    }
    #[inline(always)]
    fn mul_add_fused(self, b: f64, c: f64) -> f64 {
        f64::mul_add(self, b, c)
    }
    /// Cody–Waite reduction x = k ln2 + r (|r| ≤ ln2/2), a degree-11 minimax polynomial for
    /// e^r (relative error 4.5e-18 on the interval; docs/DESIGN.md §15.5), 2^k into the
    /// exponent bits; clamped at −708.
    #[inline(always)]
    fn exp_nonpos<F: FmaMode>(x: f64) -> f64 {
        let x = x.max(-708.0);
        let kf = F::fma(x, F64_LOG2E, F64_SHIFT);
        let k = kf - F64_SHIFT;
        // k·LN2_HI is exact (|k| < 2¹¹, LN2_HI has 32 trailing zero bits).
        let r = F::fma(-k, F64_LN2_LO, F::fma(-k, F64_LN2_HI, x));
        let p = horner::<f64, F>(&F64_EXP, r);
        let ki = (kf.to_bits() as i64).wrapping_sub(F64_SHIFT.to_bits() as i64);
        f64::from_bits((p.to_bits() as i64).wrapping_add(ki << 52) as u64)
    }
    /// 2 atanh(s) = 2s + 2s·t·R(t), s = e/(2 + e) ∈ [0, 1/3], t = s², R a degree-9 minimax
    /// polynomial for (atanh(√t)/√t − 1)/t on [0, 1/9] (relative error of the result below
    /// 1e-17; docs/DESIGN.md §15.5) — no cancellation for small e.
    #[inline(always)]
    fn log1p_unit<F: FmaMode>(e: f64) -> f64 {
        let s = e / (2.0 + e);
        atanh_tail::<f64, F>(s, &F64_ATANH)
    }
    #[inline]
    fn gemm(dst: MatMut<'_, f64>, accum: Accum, lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>) {
        matmul(dst, accum, lhs, rhs, 1.0, Par::Seq);
    }
    #[inline]
    fn gemm_rm(
        mnk: (usize, usize, usize),
        a: &[f64],
        a_strides: (usize, usize),
        b: &[f64],
        ldb: usize,
        c: &mut [f64],
        ldc: usize,
        accumulate: bool,
    ) {
        if !(super::gemm512::enabled()
            && super::gemm512::gemm_f64(mnk, a, a_strides, b, ldb, c, ldc, accumulate))
        {
            gemm_rm_faer(mnk, a, a_strides, b, ldb, c, ldc, accumulate)
        }
    }
    #[inline(always)]
    fn from_f64_slice(x: &[f64]) -> Option<&[f64]> {
        Some(x)
    }
    fn take_workspace() -> Vec<f64> {
        WS64.with(|c| c.take())
    }
    fn put_workspace(v: Vec<f64>) {
        WS64.with(|c| c.set(v))
    }
}

const F32_LOG2E: f32 = std::f32::consts::LOG2_E;
const F32_LN2_HI: f32 = 0.693_359_4; // 0x3f318000: 9 significant bits, k·LN2_HI exact
#[allow(clippy::excessive_precision)]
const F32_LN2_LO: f32 = -2.121_944_4e-4;
const F32_SHIFT: f32 = 12_582_912.0; // 1.5·2²³
/// e^r on [−ln2/2, ln2/2], degree 6, highest first (as [`F64_EXP`]).
#[allow(clippy::excessive_precision)]
const F32_EXP: [f32; 7] = [
    1.394_110_843_397_267_4e-3,
    8.375_126_398_153_335e-3,
    4.166_635_289_677_516e-2,
    0.166_664_155_146_532_77,
    0.500_000_004_711_775_7,
    1.000_000_037_716_214,
    1.0,
];
/// (atanh(√t)/√t − 1)/t on [0, 1/9], degree 4, highest first.
#[allow(clippy::excessive_precision)]
const F32_ATANH: [f32; 5] = [
    0.116_121_646_120_116_74,
    0.108_532_879_004_401_87,
    0.142_961_789_971_514_18,
    0.199_998_531_659_649_8,
    0.333_333_336_602_637_1,
];

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn max(self, o: f32) -> f32 {
        f32::max(self, o)
    }
    #[inline(always)]
    fn abs(self) -> f32 {
        f32::abs(self)
    }
    #[inline(always)]
    fn mul_add_fused(self, b: f32, c: f32) -> f32 {
        f32::mul_add(self, b, c)
    }
    /// As for f64 with a degree-6 minimax polynomial (relative error 2.8e-9 on |r| ≤ ln2/2);
    /// clamped at −87 (e⁻⁸⁷ ≈ 1.6e−38, still normal).
    #[inline(always)]
    fn exp_nonpos<F: FmaMode>(x: f32) -> f32 {
        let x = x.max(-87.0);
        let kf = F::fma(x, F32_LOG2E, F32_SHIFT);
        let k = kf - F32_SHIFT;
        let r = F::fma(-k, F32_LN2_LO, F::fma(-k, F32_LN2_HI, x));
        let p = horner::<f32, F>(&F32_EXP, r);
        let ki = (kf.to_bits() as i32).wrapping_sub(F32_SHIFT.to_bits() as i32);
        f32::from_bits((p.to_bits() as i32).wrapping_add(ki << 23) as u32)
    }
    /// 2s + 2s·t·R(t) as for f64, R of degree 4 (relative error 4e-10).
    #[inline(always)]
    fn log1p_unit<F: FmaMode>(e: f32) -> f32 {
        let s = e / (2.0 + e);
        atanh_tail::<f32, F>(s, &F32_ATANH)
    }
    #[inline]
    fn gemm(dst: MatMut<'_, f32>, accum: Accum, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
        matmul(dst, accum, lhs, rhs, 1.0, Par::Seq);
    }
    #[inline]
    fn gemm_rm(
        mnk: (usize, usize, usize),
        a: &[f32],
        a_strides: (usize, usize),
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        if !(super::gemm512::enabled()
            && super::gemm512::gemm_f32(mnk, a, a_strides, b, ldb, c, ldc, accumulate))
        {
            gemm_rm_faer(mnk, a, a_strides, b, ldb, c, ldc, accumulate)
        }
    }
    #[inline(always)]
    fn from_f64_slice(_: &[f64]) -> Option<&[f32]> {
        None
    }
    fn take_workspace() -> Vec<f32> {
        WS32.with(|c| c.take())
    }
    fn put_workspace(v: Vec<f32>) {
        WS32.with(|c| c.set(v))
    }
}

/// A kernel that [`dispatch`] compiles per [`SimdLevel`]: `run` and everything it calls in
/// lgn should be `#[inline(always)]`, so the code lands inside the `#[target_feature]`
/// trampoline and is vectorised for that level.
pub trait Kernel {
    type Output;
    fn run<F: FmaMode>(self) -> Self::Output;
}

/// Run `k` at `level` (clamped to what the CPU supports).
#[inline]
pub fn dispatch<K: Kernel>(level: SimdLevel, k: K) -> K::Output {
    match clamp(level) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `clamp` never returns a level the CPU lacks (runtime detection).
        SimdLevel::Avx512 => unsafe { run_avx512(k) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdLevel::Avx2 => unsafe { run_avx2(k) },
        _ => k.run::<StaticFma>(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn run_avx512<K: Kernel>(k: K) -> K::Output {
    k.run::<Fused>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn run_avx2<K: Kernel>(k: K) -> K::Output {
    k.run::<Fused>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(SimdLevel::parse("AVX2"), Some(SimdLevel::Avx2));
        assert_eq!(SimdLevel::parse("scalar"), Some(SimdLevel::Scalar));
        assert_eq!(SimdLevel::parse("avx512"), Some(SimdLevel::Avx512));
        assert_eq!(SimdLevel::parse("sse9"), None);
        assert!(SimdLevel::Scalar < SimdLevel::Avx2 && SimdLevel::Avx2 < SimdLevel::Avx512);
        assert!(active() <= detected());
        assert!(!cpu_name().is_empty());
    }
}
