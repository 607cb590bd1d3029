//! lgn's own f64 GEMM for AVX-512 CPUs, register-tiled for the site pass's products
//! (docs/DESIGN.md §23).
//!
//! `C = A·B` or `C += A·B` with C and B row-major with unit column stride (the feature-major
//! layer buffers of the MLP pass, §15.3: B = U, k rows of ≈ nb·(kd + 2) contiguous columns) and
//! A given by any pair of strides (the weights W, row-major, or Wᵀ as a view of them). The
//! micro-kernel keeps an MR × 8·NZ block of C in MR·NZ zmm accumulators (6 × 32: 24 registers),
//! loads NZ zmm of a row of B per step of the inner dimension and multiplies them by MR
//! broadcast elements of A (`vfmadd231pd` with an embedded broadcast). The column loop is
//! outermost, so a panel of B (k × 32 values, 32 KB at k = 128) stays in L1 while every row
//! block of A passes over it; column tails use masked loads and stores, row tails smaller MR.
//!
//! faer remains the path on other CPUs ([`available`] false) and without the `lgn_avx512` cfg
//! (rustc older than 1.89, see build.rs).

// Everything using the intrinsics is compiled only under cfg `lgn_avx512` (rustc ≥ 1.89).
#![allow(clippy::incompatible_msrv)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of C per register tile.
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
const MR: usize = 6;
/// Inner-dimension block of one pass over a column panel (the packed panel of B is at most
/// KC × NR values, 64 KB; k = 128 panels are 32 KB and stay in L1).
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
const KC: usize = 256;

/// Whether [`gemm_f64`] runs lgn's kernel on this CPU (AVX-512 F with a rustc that has the
/// intrinsics); otherwise it returns `false` and the caller uses faer.
pub(crate) fn available() -> bool {
    cfg!(all(target_arch = "x86_64", lgn_avx512))
        && super::simd::detected() == super::simd::SimdLevel::Avx512
}

/// Whether the MLP passes use lgn's kernel: [`available`], unless the environment variable
/// `LGN_GEMM=faer` (read once) asks for faer everywhere, for comparisons in one binary.
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        available()
            && !std::env::var("LGN_GEMM").is_ok_and(|v| v.trim().eq_ignore_ascii_case("faer"))
    })
}

/// `c[i·ldc + j] (=|+=) Σ_p a[i·rsa + p·csa] · b[p·ldb + j]` for i < m, j < n, p < k, with
/// lgn's AVX-512 kernel (docs/DESIGN.md §23). `accumulate` false replaces C, true adds to it.
/// Returns `false` without touching C when the kernel is not [`available`] (the caller then
/// runs faer).
///
/// Any m, n, k and strides work (rsa, csa may be any values including 0; `ldb`, `ldc` ≥ n
/// unless the matrix has one row); the slices are checked against the largest index used.
/// The kernel is fastest when B's rows are at least 32 columns long and `csa` is 1 or A is
/// small enough to stay in L2.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f64(
    mnk: (usize, usize, usize),
    a: &[f64],
    a_strides: (usize, usize),
    b: &[f64],
    ldb: usize,
    c: &mut [f64],
    ldc: usize,
    accumulate: bool,
) -> bool {
    gemm_any(mnk, a, a_strides, b, ldb, c, ldc, accumulate)
}

/// [`gemm_f64`] for f32: the same tile with 16 lanes per zmm (6 × 64 values of C).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32(
    mnk: (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) -> bool {
    gemm_any(mnk, a, a_strides, b, ldb, c, ldc, accumulate)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_any<T: Lane>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    (rsa, csa): (usize, usize),
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
) -> bool {
    if !available() {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    assert!(
        c.len() >= (m - 1) * ldc + n,
        "gemm512: C slice too short for {m} × {n} with row stride {ldc}"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(T::default());
            }
        }
        return true;
    }
    assert!(
        a.len() > (m - 1) * rsa + (k - 1) * csa,
        "gemm512: A slice too short for {m} × {k} with strides ({rsa}, {csa})"
    );
    assert!(
        b.len() >= (k - 1) * ldb + n,
        "gemm512: B slice too short for {k} × {n} with row stride {ldb}"
    );
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    {
        let g = Gemm {
            m,
            n,
            k,
            a: a.as_ptr(),
            rsa,
            csa,
            b: b.as_ptr(),
            ldb,
            c: c.as_mut_ptr(),
            ldc,
            accumulate,
        };
        // SAFETY: `available()` checked AVX-512 F at run time; the asserts above bound every
        // index the kernel forms (i < m, p < k, j < n).
        unsafe { g.run() };
        true
    }
    #[cfg(not(all(target_arch = "x86_64", lgn_avx512)))]
    {
        let _ = (rsa, csa, ldb, accumulate);
        unreachable!("available() is false without lgn_avx512")
    }
}

/// The element types of the kernel and their zmm operations (8 f64 or 16 f32 lanes).
#[cfg_attr(not(all(target_arch = "x86_64", lgn_avx512)), allow(dead_code))]
pub(crate) trait Lane: Copy + Default + 'static {
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    type V: Copy;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    type M: Copy;
    /// Lanes per zmm register.
    const W: usize;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    fn full() -> Self::M;
    /// The mask of the first `t` lanes, 1 ≤ t ≤ W.
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    fn first(t: usize) -> Self::M;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    unsafe fn zero() -> Self::V;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    unsafe fn load(p: *const Self) -> Self::V;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    unsafe fn loadz(m: Self::M, p: *const Self) -> Self::V;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    unsafe fn store(p: *mut Self, v: Self::V);
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    unsafe fn store_masked(p: *mut Self, m: Self::M, v: Self::V);
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    unsafe fn splat(x: Self) -> Self::V;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// This thread's panel buffer (put it back with [`Lane::put_panel`]).
    fn take_panel() -> Vec<Self>;
    fn put_panel(v: Vec<Self>);
}

thread_local! {
    /// Per-thread buffers of the packed panel of B (grow once, then no allocation).
    static PANEL64: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
    static PANEL32: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Lane for f64 {
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    type V = __m512d;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    type M = __mmask8;
    const W: usize = 8;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    fn full() -> __mmask8 {
        0xff
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    fn first(t: usize) -> __mmask8 {
        if t >= 8 {
            0xff
        } else {
            (1u8 << t) - 1
        }
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn zero() -> __m512d {
        _mm512_setzero_pd()
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn load(p: *const f64) -> __m512d {
        _mm512_loadu_pd(p)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn loadz(m: __mmask8, p: *const f64) -> __m512d {
        _mm512_maskz_loadu_pd(m, p)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: __m512d) {
        _mm512_storeu_pd(p, v)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn store_masked(p: *mut f64, m: __mmask8, v: __m512d) {
        _mm512_mask_storeu_pd(p, m, v)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn splat(x: f64) -> __m512d {
        _mm512_set1_pd(x)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn fmadd(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        _mm512_fmadd_pd(a, b, c)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn add(a: __m512d, b: __m512d) -> __m512d {
        _mm512_add_pd(a, b)
    }
    fn take_panel() -> Vec<f64> {
        PANEL64.with(|c| c.take())
    }
    fn put_panel(v: Vec<f64>) {
        PANEL64.with(|c| c.set(v))
    }
}

impl Lane for f32 {
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    type V = __m512;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    type M = __mmask16;
    const W: usize = 16;
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    fn full() -> __mmask16 {
        0xffff
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    fn first(t: usize) -> __mmask16 {
        if t >= 16 {
            0xffff
        } else {
            (1u16 << t) - 1
        }
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn loadz(m: __mmask16, p: *const f32) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        _mm512_mask_storeu_ps(p, m, v)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    fn take_panel() -> Vec<f32> {
        PANEL32.with(|c| c.take())
    }
    fn put_panel(v: Vec<f32>) {
        PANEL32.with(|c| c.set(v))
    }
}

#[cfg(all(target_arch = "x86_64", lgn_avx512))]
#[derive(Clone, Copy)]
struct Gemm<T> {
    m: usize,
    n: usize,
    k: usize,
    a: *const T,
    rsa: usize,
    csa: usize,
    b: *const T,
    ldb: usize,
    c: *mut T,
    ldc: usize,
    accumulate: bool,
}

/// Row blocks of a column panel: MR rows while more than MR + 2 remain, then the rest split
/// into at most two blocks of ≥ 3 rows (8 → 4 + 4, 7 → 4 + 3), so no block is latency-bound
/// with fewer than 12 accumulators where that can be avoided.
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
#[inline(always)]
fn next_rows(rem: usize) -> usize {
    match rem {
        r if r > MR + 2 || r == MR => MR,
        7 | 8 => 4,
        r => r,
    }
}

#[cfg(all(target_arch = "x86_64", lgn_avx512))]
impl<T: Lane> Gemm<T> {
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run(&self) {
        let (w, nr) = (T::W, 4 * T::W);
        let mut panel = T::take_panel();
        let depth = self.k.min(KC);
        if panel.len() < depth * nr {
            panel.resize(depth * nr, T::default());
        }
        let pb = panel.as_mut_ptr();
        let mut j0 = 0;
        while j0 < self.n {
            let cols = (self.n - j0).min(nr);
            let nz = cols.div_ceil(w);
            let mask = T::first(cols - w * (nz - 1));
            let mut p0 = 0;
            while p0 < self.k {
                let pk = (self.k - p0).min(KC);
                // this panel of B, pk × w·nz, copied contiguously (row stride nr)
                for p in 0..pk {
                    let src = self.b.add((p0 + p) * self.ldb + j0);
                    let dst = pb.add(p * nr);
                    for z in 0..nz {
                        let m = if z + 1 == nz { mask } else { T::full() };
                        T::store(dst.add(w * z), T::loadz(m, src.add(w * z)));
                    }
                }
                let part = Gemm {
                    a: self.a.add(p0 * self.csa),
                    b: pb,
                    ldb: nr,
                    k: pk,
                    accumulate: self.accumulate || p0 > 0,
                    ..*self
                };
                let mut i0 = 0;
                while i0 < self.m {
                    let mr = next_rows(self.m - i0);
                    macro_rules! go {
                        ($($r:literal),*) => {
                            match (mr, nz) {
                                $(
                                    ($r, 1) => part.tile::<$r, 1>(i0, j0, mask),
                                    ($r, 2) => part.tile::<$r, 2>(i0, j0, mask),
                                    ($r, 3) => part.tile::<$r, 3>(i0, j0, mask),
                                    ($r, 4) => part.tile::<$r, 4>(i0, j0, mask),
                                )*
                                _ => unreachable!("mr ≤ MR, nz ≤ 4"),
                            }
                        };
                    }
                    go!(1, 2, 3, 4, 5, 6);
                    i0 += mr;
                }
                p0 += pk;
            }
            j0 += nr;
        }
        T::put_panel(panel);
    }

    /// C[i0..i0+R, j0..j0+W·NZ] (the last zmm masked by `mask`) over the whole inner
    /// dimension, the R·NZ accumulators in registers; B is the packed panel (row stride ldb).
    #[inline(always)]
    unsafe fn tile<const R: usize, const NZ: usize>(&self, i0: usize, j0: usize, mask: T::M) {
        let w = T::W;
        let mut acc = [[T::zero(); NZ]; R];
        let a = self.a.add(i0 * self.rsa);
        let m = |z: usize| if z + 1 == NZ { mask } else { T::full() };
        for p in 0..self.k {
            let bp = self.b.add(p * self.ldb);
            let mut bv = [T::zero(); NZ];
            for (z, v) in bv.iter_mut().enumerate() {
                // the panel's padding lanes are zero: full loads
                *v = T::load(bp.add(w * z));
            }
            let ap = a.add(p * self.csa);
            for (i, row) in acc.iter_mut().enumerate() {
                let av = T::splat(*ap.add(i * self.rsa));
                for (z, acc) in row.iter_mut().enumerate() {
                    *acc = T::fmadd(av, bv[z], *acc);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let cp = self.c.add((i0 + i) * self.ldc + j0);
            for (z, v) in row.iter().enumerate() {
                let q = cp.add(w * z);
                let v = if self.accumulate {
                    T::add(*v, T::loadz(m(z), q))
                } else {
                    *v
                };
                T::store_masked(q, m(z), v);
            }
        }
    }
}

/// Runs `iters` rounds of 12 independent f64 FMA chains in registers (no memory traffic) at
/// the best vector width of this CPU (zmm with AVX-512, ymm with AVX2 + FMA) and returns the
/// flops done (2 per lane and FMA), or `None` on other CPUs: the machine's FMA peak for
/// `lgn bench gemm` (docs/DESIGN.md §23).
pub(crate) fn fma_peak_loop(iters: u64) -> Option<f64> {
    use super::simd::{detected, SimdLevel};
    let level = detected();
    #[cfg(all(target_arch = "x86_64", lgn_avx512))]
    if level == SimdLevel::Avx512 {
        // SAFETY: AVX-512 F detected at run time.
        let s = unsafe { peak512(iters) };
        std::hint::black_box(s);
        return Some(iters as f64 * 12.0 * 16.0);
    }
    #[cfg(target_arch = "x86_64")]
    if level >= SimdLevel::Avx2 {
        // SAFETY: AVX2 and FMA detected at run time.
        let s = unsafe { peak256(iters) };
        std::hint::black_box(s);
        return Some(iters as f64 * 12.0 * 8.0);
    }
    let _ = (level, iters);
    None
}

#[cfg(all(target_arch = "x86_64", lgn_avx512))]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn peak512(iters: u64) -> f64 {
    let x = _mm512_set1_pd(std::hint::black_box(0.999_999));
    let y = _mm512_set1_pd(std::hint::black_box(1e-7));
    let mut acc = [_mm512_set1_pd(1.0); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_pd(*a, x, y);
        }
    }
    let mut s = _mm512_setzero_pd();
    for a in acc {
        s = _mm512_add_pd(s, a);
    }
    _mm512_reduce_add_pd(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn peak256(iters: u64) -> f64 {
    let x = _mm256_set1_pd(std::hint::black_box(0.999_999));
    let y = _mm256_set1_pd(std::hint::black_box(1e-7));
    let mut acc = [_mm256_set1_pd(1.0); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_pd(*a, x, y);
        }
    }
    let mut out = [0.0f64; 4];
    let mut s = _mm256_setzero_pd();
    for a in acc {
        s = _mm256_add_pd(s, a);
    }
    _mm256_storeu_pd(out.as_mut_ptr(), s);
    out.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::linalg::matmul::matmul;
    use faer::{Accum, MatMut, MatRef, Par};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// lgn's kernel against faer on random shapes (tails in every dimension), strided views of
    /// A (row-major, transposed, with padding), padded B and C rows, both accumulate modes.
    #[test]
    fn kernel_equals_faer_on_random_shapes_and_strides() {
        if !available() {
            return; // faer is the path on this CPU; nothing of lgn's to compare
        }
        let mut rng = StdRng::seed_from_u64(17);
        let mut shapes = vec![
            (128, 320, 128),
            (128, 64, 128),
            (6, 32, 1),
            (1, 1, 1),
            (7, 9, 3),
        ];
        for _ in 0..60 {
            shapes.push((
                rng.random_range(1..70),
                rng.random_range(1..140),
                rng.random_range(1..90),
            ));
        }
        for (t, &(m, n, k)) in shapes.iter().enumerate() {
            let transposed = t % 2 == 1;
            let pad = t % 3;
            let (rsa, csa) = if transposed {
                (1, m + pad)
            } else {
                (k + pad, 1)
            };
            let a: Vec<f64> = (0..(m - 1) * rsa + (k - 1) * csa + 1)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let ldb = n + 2 * pad;
            let b: Vec<f64> = (0..(k - 1) * ldb + n)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let ldc = n + pad + (t % 5);
            let c0: Vec<f64> = (0..(m - 1) * ldc + n)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            for accumulate in [false, true] {
                let mut c = c0.clone();
                let mut want = c0.clone();
                assert!(gemm_f64(
                    (m, n, k),
                    &a,
                    (rsa, csa),
                    &b,
                    ldb,
                    &mut c,
                    ldc,
                    accumulate
                ));
                // faer on views with the same strides
                let av = if transposed {
                    MatRef::from_column_major_slice_with_stride(&a, m, k, csa)
                } else {
                    MatRef::from_column_major_slice_with_stride(&a, k, m, rsa).transpose()
                };
                let bv = MatRef::from_column_major_slice_with_stride(&b, n, k, ldb).transpose();
                let cv = MatMut::from_column_major_slice_with_stride_mut(&mut want, n, m, ldc)
                    .transpose_mut();
                let acc = if accumulate {
                    Accum::Add
                } else {
                    Accum::Replace
                };
                matmul(cv, acc, av, bv, 1.0, Par::Seq);
                let scale = want.iter().fold(1.0f64, |s, x| s.max(x.abs()));
                for i in 0..m {
                    for j in 0..ldc.min(c.len() - i * ldc) {
                        let (x, y) = (c[i * ldc + j], want[i * ldc + j]);
                        if j < n {
                            assert!(
                                (x - y).abs() <= 1e-13 * scale * (k as f64).sqrt().max(1.0),
                                "{m}×{n}×{k} strides ({rsa},{csa}) acc {accumulate}: \
                                 C[{i},{j}] {x} vs faer {y}"
                            );
                        } else {
                            // the padding between rows is never written
                            assert_eq!(x, c0[i * ldc + j], "padding C[{i},{j}] written");
                        }
                    }
                }
            }
        }
        // f32: the 16-lane tile against an f64 reference of the same f32 inputs
        for (t, &(m, n, k)) in shapes.iter().enumerate().take(40) {
            let transposed = t % 2 == 0;
            let pad = t % 4;
            let (rsa, csa) = if transposed {
                (1, m + pad)
            } else {
                (k + pad, 1)
            };
            let a: Vec<f32> = (0..(m - 1) * rsa + (k - 1) * csa + 1)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let ldb = n + pad;
            let b: Vec<f32> = (0..(k - 1) * ldb + n)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let ldc = n + 2 * pad;
            let c0: Vec<f32> = (0..(m - 1) * ldc + n)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            for accumulate in [false, true] {
                let mut c = c0.clone();
                assert!(gemm_f32(
                    (m, n, k),
                    &a,
                    (rsa, csa),
                    &b,
                    ldb,
                    &mut c,
                    ldc,
                    accumulate
                ));
                for i in 0..m {
                    for j in 0..n {
                        let mut want = if accumulate {
                            c0[i * ldc + j] as f64
                        } else {
                            0.0
                        };
                        for p in 0..k {
                            want += a[i * rsa + p * csa] as f64 * b[p * ldb + j] as f64;
                        }
                        let got = c[i * ldc + j] as f64;
                        assert!(
                            (got - want).abs() <= 4e-7 * (k as f64 + 1.0),
                            "f32 {m}×{n}×{k} acc {accumulate}: C[{i},{j}] {got} vs {want}"
                        );
                    }
                    for j in n..ldc.min(c.len() - i * ldc) {
                        assert_eq!(c[i * ldc + j], c0[i * ldc + j], "f32 padding written");
                    }
                }
            }
        }
        // k = 0: replace zeroes, accumulate leaves C alone
        let mut c = vec![3.0; 6];
        assert!(gemm_f64((2, 3, 0), &[], (0, 0), &[], 3, &mut c, 3, true));
        assert_eq!(c, vec![3.0; 6]);
        assert!(gemm_f64((2, 3, 0), &[], (0, 0), &[], 3, &mut c, 3, false));
        assert_eq!(c, vec![0.0; 6]);
    }
}
