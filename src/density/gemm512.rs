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
/// Columns of C per register tile (4 zmm of 8 f64).
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
const NR: usize = 32;
/// Inner-dimension block of one pass over a column panel (the packed panel of B is at most
/// KC × NR values, 64 KB; k = 128 panels are 32 KB and stay in L1).
#[cfg(all(target_arch = "x86_64", lgn_avx512))]
const KC: usize = 256;

#[cfg(all(target_arch = "x86_64", lgn_avx512))]
thread_local! {
    /// Per-thread buffer of the packed panel of B (grows once, then no allocation).
    static PANEL: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
}

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
    (m, n, k): (usize, usize, usize),
    a: &[f64],
    (rsa, csa): (usize, usize),
    b: &[f64],
    ldb: usize,
    c: &mut [f64],
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
        "gemm_f64: C slice too short for {m} × {n} with row stride {ldc}"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return true;
    }
    assert!(
        a.len() > (m - 1) * rsa + (k - 1) * csa,
        "gemm_f64: A slice too short for {m} × {k} with strides ({rsa}, {csa})"
    );
    assert!(
        b.len() >= (k - 1) * ldb + n,
        "gemm_f64: B slice too short for {k} × {n} with row stride {ldb}"
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
        unreachable!("available() is false without lgn_avx512")
    }
}

#[cfg(all(target_arch = "x86_64", lgn_avx512))]
#[derive(Clone, Copy)]
struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    a: *const f64,
    rsa: usize,
    csa: usize,
    b: *const f64,
    ldb: usize,
    c: *mut f64,
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
impl Gemm {
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run(&self) {
        let mut panel = PANEL.with(|c| c.take());
        let depth = self.k.min(KC);
        if panel.len() < depth * NR {
            panel.resize(depth * NR, 0.0);
        }
        let pb = panel.as_mut_ptr();
        let mut j0 = 0;
        while j0 < self.n {
            let cols = (self.n - j0).min(NR);
            let nz = cols.div_ceil(8);
            let tail = cols - 8 * (nz - 1);
            let mask: __mmask8 = if tail == 8 { 0xff } else { (1u8 << tail) - 1 };
            let mut p0 = 0;
            while p0 < self.k {
                let pk = (self.k - p0).min(KC);
                // this panel of B, pk × 8·nz, copied contiguously (row stride NR)
                for p in 0..pk {
                    let src = self.b.add((p0 + p) * self.ldb + j0);
                    let dst = pb.add(p * NR);
                    for z in 0..nz {
                        let m = if z + 1 == nz { mask } else { 0xff };
                        _mm512_storeu_pd(dst.add(8 * z), _mm512_maskz_loadu_pd(m, src.add(8 * z)));
                    }
                }
                let part = Gemm {
                    a: self.a.add(p0 * self.csa),
                    b: pb,
                    ldb: NR,
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
            j0 += NR;
        }
        PANEL.with(|c| c.set(panel));
    }

    /// C[i0..i0+R, j0..j0+8·NZ] (the last zmm masked by `mask`) over the whole inner
    /// dimension, the R·NZ accumulators in registers.
    #[inline(always)]
    unsafe fn tile<const R: usize, const NZ: usize>(&self, i0: usize, j0: usize, mask: __mmask8) {
        let mut acc = [[_mm512_setzero_pd(); NZ]; R];
        let a = self.a.add(i0 * self.rsa);
        let b = self.b;
        let m = |z: usize| if z + 1 == NZ { mask } else { 0xff };
        for p in 0..self.k {
            let bp = b.add(p * self.ldb);
            let mut bv = [_mm512_setzero_pd(); NZ];
            for (z, v) in bv.iter_mut().enumerate() {
                *v = if z + 1 == NZ {
                    _mm512_maskz_loadu_pd(mask, bp.add(8 * z))
                } else {
                    _mm512_loadu_pd(bp.add(8 * z))
                };
            }
            let ap = a.add(p * self.csa);
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_pd(*ap.add(i * self.rsa));
                for (z, acc) in row.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_pd(av, bv[z], *acc);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let cp = self.c.add((i0 + i) * self.ldc + j0);
            for (z, v) in row.iter().enumerate() {
                let q = cp.add(8 * z);
                let v = if self.accumulate {
                    _mm512_add_pd(*v, _mm512_maskz_loadu_pd(m(z), q))
                } else {
                    *v
                };
                _mm512_mask_storeu_pd(q, m(z), v);
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
        // k = 0: replace zeroes, accumulate leaves C alone
        let mut c = vec![3.0; 6];
        assert!(gemm_f64((2, 3, 0), &[], (0, 0), &[], 3, &mut c, 3, true));
        assert_eq!(c, vec![3.0; 6]);
        assert!(gemm_f64((2, 3, 0), &[], (0, 0), &[], 3, &mut c, 3, false));
        assert_eq!(c, vec![0.0; 6]);
    }
}
