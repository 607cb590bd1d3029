//! Closed-form densities: ground truths for tests and data generation.

use super::{Density, SiteLayout};

/// Falling ball (paper appendix B): one node with d = 2, L = ½|v|² − g q₁ (gravity along q₁).
/// Accelerations are exactly (−g, 0).
#[derive(Clone, Debug)]
pub struct Ball {
    pub g: f64,
}

/// Double pendulum with masses m₁, m₂ and lengths l₁, l₂ (paper: all 1, g = 9.8), as a
/// single-node graph with d = 2: q = (θ₁, θ₂), v = (ω₁, ω₂).
///
/// L = ½(m₁+m₂)l₁²ω₁² + ½m₂l₂²ω₂² + m₂l₁l₂ω₁ω₂cos(θ₁−θ₂) + (m₁+m₂)g l₁cos θ₁ + m₂ g l₂ cos θ₂.
#[derive(Clone, Debug)]
pub struct DoublePendulum {
    pub m1: f64,
    pub m2: f64,
    pub l1: f64,
    pub l2: f64,
    pub g: f64,
}

impl DoublePendulum {
    /// The paper's configuration: m = l = 1.
    pub fn paper(g: f64) -> Self {
        DoublePendulum {
            m1: 1.0,
            m2: 1.0,
            l1: 1.0,
            l2: 1.0,
            g,
        }
    }
    /// Total energy T + V for a state.
    pub fn energy(&self, q: &[f64], v: &[f64]) -> f64 {
        let (t1, t2, w1, w2) = (q[0], q[1], v[0], v[1]);
        let t = 0.5 * (self.m1 + self.m2) * self.l1 * self.l1 * w1 * w1
            + 0.5 * self.m2 * self.l2 * self.l2 * w2 * w2
            + self.m2 * self.l1 * self.l2 * w1 * w2 * (t1 - t2).cos();
        let y = -(self.m1 + self.m2) * self.g * self.l1 * t1.cos()
            - self.m2 * self.g * self.l2 * t2.cos();
        t + y
    }
}

/// Relativistic particle in a uniform field (paper §4.2): L = (1 − q̇²)^(−1/2) − 1 + g q,
/// so q̈ = g (1 − q̇²)^(5/2) / (1 + 2q̇²). Defined for |q̇| < 1.
#[derive(Clone, Debug)]
pub struct Relativistic {
    pub g: f64,
}

/// Centred-difference wave density on a 1D grid (docs/DESIGN.md §5), site I_i = (i−1, i, i+1), d = 1:
/// ρ_i = φ̇_i² − ((φ_{i+1} − φ_{i−1}) / 2Δx)², so that
/// φ̈_i = (φ_{i+2} − 2φ_i + φ_{i−2}) / (4Δx²).
#[derive(Clone, Debug)]
pub struct Wave1d {
    pub dx: f64,
}

/// Standard second-order wave density on a 1D grid, site I_i = (i−1, i, i+1), d = 1:
/// ρ_i = ½φ̇_i² − ½((φ_{i+1} − φ_i)/Δx)², so that M = I and
/// φ̈_i = (φ_{i+1} − 2φ_i + φ_{i−1}) / Δx² (the standard three-point stencil, c = 1).
/// Energy E = Σ_i ½φ̇_i² + ½((φ_{i+1} − φ_i)/Δx)².
#[derive(Clone, Debug)]
pub struct Wave1dStandard {
    pub dx: f64,
}

fn for_each_site(
    x: &[f64],
    p: usize,
    nb: usize,
    out: &mut [f64],
    stride: usize,
    mut f: impl FnMut(&[f64], &mut [f64]),
) {
    for s in 0..nb {
        let rec = &mut out[s * stride..(s + 1) * stride];
        rec.fill(0.0);
        f(&x[s * p..(s + 1) * p], rec);
    }
}

impl Density for Ball {
    fn arity(&self) -> usize {
        1
    }
    fn dof(&self) -> usize {
        2
    }
    fn name(&self) -> String {
        format!("falling ball (g = {})", self.g)
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let lay = self.layout();
        for_each_site(x, 4, nb, out, lay.stride(), |x, r| {
            let (q1, v1, v2) = (x[0], x[2], x[3]);
            r[SiteLayout::RHO] = 0.5 * (v1 * v1 + v2 * v2) - self.g * q1;
            r[lay.grad_q()] = -self.g;
            r[lay.grad_v()] = v1;
            r[lay.grad_v() + 1] = v2;
            r[lay.mass()] = 1.0;
            r[lay.mass() + 3] = 1.0;
        });
    }
}

impl Density for DoublePendulum {
    fn arity(&self) -> usize {
        1
    }
    fn dof(&self) -> usize {
        2
    }
    fn name(&self) -> String {
        format!(
            "double pendulum (m = {}, {}; l = {}, {}; g = {})",
            self.m1, self.m2, self.l1, self.l2, self.g
        )
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let lay = self.layout();
        let (m1, m2, l1, l2, g) = (self.m1, self.m2, self.l1, self.l2, self.g);
        for_each_site(x, 4, nb, out, lay.stride(), |x, r| {
            let (t1, t2, w1, w2) = (x[0], x[1], x[2], x[3]);
            let (sd, cd) = (t1 - t2).sin_cos();
            let k = m2 * l1 * l2;
            r[SiteLayout::RHO] = self.energy(&x[0..2], &x[2..4])
                - 2.0 * (-(m1 + m2) * g * l1 * t1.cos() - m2 * g * l2 * t2.cos());
            r[lay.grad_q()] = -k * w1 * w2 * sd - (m1 + m2) * g * l1 * t1.sin();
            r[lay.grad_q() + 1] = k * w1 * w2 * sd - m2 * g * l2 * t2.sin();
            r[lay.grad_v()] = (m1 + m2) * l1 * l1 * w1 + k * w2 * cd;
            r[lay.grad_v() + 1] = m2 * l2 * l2 * w2 + k * w1 * cd;
            let m = lay.mass();
            r[m] = (m1 + m2) * l1 * l1;
            r[m + 1] = k * cd;
            r[m + 2] = k * cd;
            r[m + 3] = m2 * l2 * l2;
            r[lay.cv()] = k * w2 * sd * (w2 - w1);
            r[lay.cv() + 1] = k * w1 * sd * (w2 - w1);
        });
    }

    /// The lean records directly: b = ∂ρ/∂q − c·v = (−k ω₂² sin Δ − (m₁+m₂) g l₁ sin θ₁,
    /// k ω₁² sin Δ − m₂ g l₂ sin θ₂) with k = m₂l₁l₂, Δ = θ₁ − θ₂, then the mass block; the
    /// sines and cosines of a block by [`sin_cos_block`], compiled per SIMD level.
    fn eval_block_accel(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        super::simd::dispatch(
            super::simd::active(),
            DpAccel {
                dp: self,
                x: &x[..4 * nb],
                out: &mut out[..6 * nb],
            },
        )
    }

    /// q̈ = m⁻¹ b of every state in one pass (docs/DESIGN.md §18.1): the lean record's b and
    /// m = [[a, c], [c, e]] per lane, then the 2×2 solve by the pivoted elimination of
    /// [`crate::dynamics::Dynamics::accelerations_batch`]'s small solver, written as
    /// branch-free selects so that the lanes vectorise.
    fn site_accelerations(&self, q: &[f64], v: &[f64], out: &mut [f64]) -> Option<usize> {
        let n = out.len().min(q.len()).min(v.len()) / 2;
        Some(super::simd::dispatch(
            super::simd::active(),
            DpSolve {
                dp: self,
                q: &q[..2 * n],
                v: &v[..2 * n],
                out: &mut out[..2 * n],
            },
        ))
    }
}

/// The double pendulum's accelerations of a batch (see [`DoublePendulum::site_accelerations`]).
struct DpSolve<'a> {
    dp: &'a DoublePendulum,
    q: &'a [f64],
    v: &'a [f64],
    out: &'a mut [f64],
}

/// Relative pivot tolerance of [`DpSolve`] (that of the batch path's small solver).
const DP_PIVOT_TOL: f64 = 1e-12;

impl super::simd::Kernel for DpSolve<'_> {
    type Output = usize;
    #[inline(always)]
    fn run<F: super::simd::FmaMode>(self) -> usize {
        let dp = self.dp;
        let k = dp.m2 * dp.l1 * dp.l2;
        let (a, e) = ((dp.m1 + dp.m2) * dp.l1 * dp.l1, dp.m2 * dp.l2 * dp.l2);
        let (g1, g2) = ((dp.m1 + dp.m2) * dp.g * dp.l1, dp.m2 * dp.g * dp.l2);
        const C: usize = 64;
        let mut ang = [[0.0; C]; 3];
        let mut sn = [[0.0; C]; 3];
        let mut cs = [[0.0; C]; 3];
        let mut bad = [false; C];
        let nq = self.q.len() / 2;
        for (blk, ((q, v), out)) in self
            .q
            .chunks(2 * C)
            .zip(self.v.chunks(2 * C))
            .zip(self.out.chunks_mut(2 * C))
            .enumerate()
        {
            let n = dp_trig(q, 2, &mut ang, &mut sn, &mut cs);
            for (j, (v, o)) in v.chunks_exact(2).zip(out.chunks_exact_mut(2)).enumerate() {
                let (w1, w2) = (v[0], v[1]);
                let (sd, cd) = (sn[2][j], cs[2][j]);
                let b0 = -k * w2 * w2 * sd - g1 * sn[0][j];
                let b1 = k * w1 * w1 * sd - g2 * sn[1][j];
                let c = k * cd;
                // Partial pivoting on the first column (rows (a, c | b0) and (c, e | b1)).
                let swap = c.abs() > a.abs();
                let (p, r01, s, r11) = if swap { (c, e, a, c) } else { (a, c, c, e) };
                let (bp, bs) = if swap { (b1, b0) } else { (b0, b1) };
                let tol = DP_PIVOT_TOL * a.abs().max(c.abs()).max(e.abs());
                let f = s / p;
                let p1 = r11 - f * r01;
                let x1 = (bs - f * bp) / p1;
                let x0 = (bp - r01 * x1) / p;
                o[0] = x0;
                o[1] = x1;
                bad[j] = !(p.abs() > tol && p1.abs() > tol && x0.is_finite() && x1.is_finite());
            }
            if let Some(j) = bad[..n].iter().position(|&b| b) {
                return blk * C + j;
            }
        }
        nq
    }
}

/// The double pendulum's lean records of a block (see [`DoublePendulum::eval_block_accel`]).
struct DpAccel<'a> {
    dp: &'a DoublePendulum,
    x: &'a [f64],
    out: &'a mut [f64],
}

impl super::simd::Kernel for DpAccel<'_> {
    type Output = ();
    #[inline(always)]
    fn run<F: super::simd::FmaMode>(self) {
        let dp = self.dp;
        let k = dp.m2 * dp.l1 * dp.l2;
        let (m00, m11) = ((dp.m1 + dp.m2) * dp.l1 * dp.l1, dp.m2 * dp.l2 * dp.l2);
        let (g1, g2) = ((dp.m1 + dp.m2) * dp.g * dp.l1, dp.m2 * dp.g * dp.l2);
        let rec = |r: &mut [f64], x: &[f64], s1: f64, s2: f64, (sd, cd): (f64, f64)| {
            let (w1, w2) = (x[2], x[3]);
            r[0] = -k * w2 * w2 * sd - g1 * s1;
            r[1] = k * w1 * w1 * sd - g2 * s2;
            r[2] = m00;
            r[3] = k * cd;
            r[4] = k * cd;
            r[5] = m11;
        };
        const C: usize = 64;
        if self.x.len() < 4 * 8 {
            // A few sites (single evaluations): no block buffers.
            for (x, r) in self.x.chunks_exact(4).zip(self.out.chunks_exact_mut(6)) {
                let (s1, s2) = (sin_cos1(x[0]).0, sin_cos1(x[1]).0);
                rec(r, x, s1, s2, sin_cos1(x[0] - x[1]));
            }
            return;
        }
        let mut ang = [[0.0; C]; 3];
        let mut sn = [[0.0; C]; 3];
        let mut cs = [[0.0; C]; 3];
        for (x, out) in self.x.chunks(4 * C).zip(self.out.chunks_mut(6 * C)) {
            dp_trig(x, 4, &mut ang, &mut sn, &mut cs);
            for (j, (x, r)) in x.chunks_exact(4).zip(out.chunks_exact_mut(6)).enumerate() {
                rec(r, x, sn[0][j], sn[1][j], (sn[2][j], cs[2][j]));
            }
        }
    }
}

/// The double pendulum's angles θ₁, θ₂, Δ = θ₁ − θ₂ of the states of a block (rows of
/// `stride` values starting with θ₁, θ₂; at most C rows) and their sines and cosines (by
/// [`sin_cos_block`]); returns the number of rows.
#[inline(always)]
fn dp_trig<const C: usize>(
    x: &[f64],
    stride: usize,
    ang: &mut [[f64; C]; 3],
    sn: &mut [[f64; C]; 3],
    cs: &mut [[f64; C]; 3],
) -> usize {
    let n = x.len() / stride;
    for (j, x) in x.chunks_exact(stride).enumerate() {
        ang[0][j] = x[0];
        ang[1][j] = x[1];
        ang[2][j] = x[0] - x[1];
    }
    for a in 0..3 {
        sin_cos_block(&ang[a][..n], &mut sn[a][..n], &mut cs[a][..n]);
    }
    n
}

/// |x| up to which [`sin_cos_block`] uses its own range reduction (beyond: the standard
/// library's).
const TRIG_MAX: f64 = 1048576.0;

/// sin and cos of every x (`s`, `c` as long as `x`): a branch-free form the compiler
/// vectorises. x = kπ/2 + r with k the nearest integer of 2x/π and r reduced by a two-part
/// π/2 (Cody–Waite; the first part has 33 bits, so k·part is exact for |k| < 2²⁰), then the
/// fdlibm minimax polynomials of sin and cos on |r| ≤ π/4 and the quadrant k mod 4. Accurate
/// to a few units in the last place; non-finite and huge arguments go through `f64::sin_cos`.
#[inline(always)]
fn sin_cos_block(x: &[f64], s: &mut [f64], c: &mut [f64]) {
    for ((&x, s), c) in x.iter().zip(s.iter_mut()).zip(c.iter_mut()) {
        (*s, *c) = sin_cos_poly(x);
    }
    for ((&x, s), c) in x.iter().zip(s.iter_mut()).zip(c.iter_mut()) {
        if !in_range(x) {
            (*s, *c) = x.sin_cos();
        }
    }
}

/// |x| ≤ [`TRIG_MAX`] (false for NaN).
#[inline(always)]
fn in_range(x: f64) -> bool {
    x.abs() <= TRIG_MAX
}

/// [`sin_cos_block`] of one argument.
#[inline(always)]
fn sin_cos1(x: f64) -> (f64, f64) {
    if x.abs() <= TRIG_MAX {
        sin_cos_poly(x)
    } else {
        x.sin_cos()
    }
}

/// The reduction and polynomials of [`sin_cos_block`], valid for |x| ≤ [`TRIG_MAX`].
#[inline(always)]
fn sin_cos_poly(x: f64) -> (f64, f64) {
    const MAGIC: f64 = 6755399441055744.0; // 1.5 · 2⁵²: adding it rounds to an integer
    const PIO2_1: f64 = 1.570_796_326_734_125_6;
    const PIO2_1T: f64 = 6.077_100_506_506_192e-11;
    const S: [f64; 6] = [
        -1.666_666_666_666_663_2e-1,
        8.333_333_333_322_49e-3,
        -1.984_126_982_985_795e-4,
        2.755_731_370_707_006_8e-6,
        -2.505_076_025_340_686_3e-8,
        1.589_690_995_211_55e-10,
    ];
    const K: [f64; 6] = [
        4.166_666_666_666_66e-2,
        -1.388_888_888_887_411e-3,
        2.480_158_728_947_673e-5,
        -2.755_731_435_139_066_3e-7,
        2.087_572_321_298_175e-9,
        -1.135_964_755_778_819_5e-11,
    ];
    let m = x * std::f64::consts::FRAC_2_PI + MAGIC;
    let q = m.to_bits() & 3;
    let k = m - MAGIC;
    let r = (x - k * PIO2_1) - k * PIO2_1T;
    let z = r * r;
    let ps = S[0] + z * (S[1] + z * (S[2] + z * (S[3] + z * (S[4] + z * S[5]))));
    let pc = K[0] + z * (K[1] + z * (K[2] + z * (K[3] + z * (K[4] + z * K[5]))));
    let sr = r + r * z * ps;
    let cr = 1.0 - 0.5 * z + z * z * pc;
    let (a, b) = if q & 1 == 0 { (sr, cr) } else { (cr, -sr) };
    if q & 2 != 0 {
        (-a, -b)
    } else {
        (a, b)
    }
}

impl Density for Relativistic {
    fn arity(&self) -> usize {
        1
    }
    fn dof(&self) -> usize {
        1
    }
    fn name(&self) -> String {
        format!("relativistic particle (g = {})", self.g)
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let lay = self.layout();
        for_each_site(x, 2, nb, out, lay.stride(), |x, r| {
            let (q, v) = (x[0], x[1]);
            let w = 1.0 - v * v; // NaN below propagates to a clear "non-finite" error upstream
            let gamma = 1.0 / w.sqrt();
            r[SiteLayout::RHO] = gamma - 1.0 + self.g * q;
            r[lay.grad_q()] = self.g;
            r[lay.grad_v()] = v * gamma / w;
            r[lay.mass()] = (1.0 + 2.0 * v * v) * gamma / (w * w);
        });
    }
}

impl Density for Wave1d {
    fn arity(&self) -> usize {
        3
    }
    fn dof(&self) -> usize {
        1
    }
    fn name(&self) -> String {
        format!("wave1d centred difference (dx = {})", self.dx)
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let lay = self.layout();
        let h = 2.0 * self.dx;
        for_each_site(x, 6, nb, out, lay.stride(), |x, r| {
            let grad = (x[2] - x[0]) / h;
            r[SiteLayout::RHO] = x[4] * x[4] - grad * grad;
            r[lay.grad_q()] = 2.0 * grad / h;
            r[lay.grad_q() + 2] = -2.0 * grad / h;
            r[lay.grad_v() + 1] = 2.0 * x[4];
            r[lay.mass() + 4] = 2.0;
        });
    }
}

impl Density for Wave1dStandard {
    fn arity(&self) -> usize {
        3
    }
    fn dof(&self) -> usize {
        1
    }
    fn name(&self) -> String {
        format!("wave1d standard stencil (dx = {})", self.dx)
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let lay = self.layout();
        let h = self.dx;
        for_each_site(x, 6, nb, out, lay.stride(), |x, r| {
            let grad = (x[2] - x[1]) / h;
            r[SiteLayout::RHO] = 0.5 * x[4] * x[4] - 0.5 * grad * grad;
            r[lay.grad_q() + 1] = grad / h;
            r[lay.grad_q() + 2] = -grad / h;
            r[lay.grad_v() + 1] = x[4];
            r[lay.mass() + 4] = 1.0;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_accelerations_solve_the_lean_records() {
        // Unequal masses and lengths, 300 states (blocks of 64 and a ragged tail): q̈ from
        // `site_accelerations` must satisfy m q̈ = b with the lean record's m and b.
        let dp = DoublePendulum {
            m1: 1.3,
            m2: 0.7,
            l1: 0.9,
            l2: 1.6,
            g: 9.81,
        };
        let n = 300;
        let q: Vec<f64> = (0..2 * n).map(|i| (i as f64 * 0.731).sin() * 3.0).collect();
        let v: Vec<f64> = (0..2 * n).map(|i| (i as f64 * 1.37).cos() * 2.0).collect();
        let mut acc = vec![f64::NAN; 2 * n];
        assert_eq!(dp.site_accelerations(&q, &v, &mut acc), Some(n));
        let x: Vec<f64> = (0..n)
            .flat_map(|i| [q[2 * i], q[2 * i + 1], v[2 * i], v[2 * i + 1]])
            .collect();
        let mut rec = vec![0.0; 6 * n];
        dp.eval_block_accel(&x, n, &mut rec);
        for i in 0..n {
            let (r, a) = (&rec[6 * i..6 * i + 6], &acc[2 * i..2 * i + 2]);
            for c in 0..2 {
                let lhs = r[2 + 2 * c] * a[0] + r[3 + 2 * c] * a[1];
                assert!(
                    (lhs - r[c]).abs() <= 1e-13 * (1.0 + r[c].abs()),
                    "state {i} row {c}: {lhs} vs {}",
                    r[c]
                );
            }
        }
        // m₁ = 0 and θ₁ = θ₂: det m = m₂l₁²l₂²(m₁ + m₂ sin²Δ) = 0, the state is refused.
        let dg = DoublePendulum { m1: 0.0, ..dp };
        let (q, v) = ([0.1, 0.2, 0.5, 0.5, 0.3, 0.1], [0.1; 6]);
        let mut out = [f64::NAN; 6];
        assert_eq!(dg.site_accelerations(&q, &v, &mut out), Some(1));
        assert!(out[0].is_finite() && out[1].is_finite());
    }

    #[test]
    fn block_sin_cos_agrees_with_the_standard_library() {
        // Around every quadrant boundary, small and large arguments, both signs, and the
        // arguments the range reduction hands back to the standard library.
        let mut x: Vec<f64> = (-4000..4000).map(|i| i as f64 * 0.0123).collect();
        for k in -40..40 {
            let b = k as f64 * std::f64::consts::FRAC_PI_2;
            x.extend([b, b + 1e-9, b - 1e-12, b + 0.785, b - 0.785]);
        }
        x.extend([
            1e-300,
            -3e-8,
            1e5 + 0.3,
            -7.5e5,
            2e6,
            -1e12,
            f64::NAN,
            f64::INFINITY,
        ]);
        let (mut s, mut c) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        sin_cos_block(&x, &mut s, &mut c);
        for (i, &xi) in x.iter().enumerate() {
            let one = sin_cos1(xi);
            assert!(one.0.to_bits() == s[i].to_bits() && one.1.to_bits() == c[i].to_bits());
            let (ws, wc) = xi.sin_cos();
            if !xi.is_finite() {
                assert!(s[i].is_nan() && c[i].is_nan(), "{xi}");
                continue;
            }
            // A few ulps of 1 absolutely, and relatively near the zeros of sin.
            let tol = 4e-16 * (1.0 + (xi.abs() / 1e3).min(1e3));
            assert!(
                (s[i] - ws).abs() <= tol.max(4e-16 * ws.abs()),
                "sin {xi}: {} vs {ws}",
                s[i]
            );
            assert!((c[i] - wc).abs() <= tol, "cos {xi}: {} vs {wc}", c[i]);
            if xi.abs() < 1e-6 {
                assert!((s[i] - ws).abs() <= 2e-16 * ws.abs(), "sin {xi}");
            }
        }
    }

    #[test]
    fn double_pendulum_lean_records_equal_the_full_ones() {
        // Unequal masses and lengths so that every parameter enters.
        let dp = DoublePendulum {
            m1: 1.3,
            m2: 0.7,
            l1: 0.9,
            l2: 1.4,
            g: 9.8,
        };
        let x = [0.4, -1.1, 0.8, -0.3, 2.9, 0.2, -1.7, 1.5];
        let lay = dp.layout();
        let mut full = vec![0.0; 2 * lay.stride()];
        dp.eval_block(&x, 2, &mut full);
        let mut lean = vec![0.0; 2 * dp.accel_layout().stride()];
        dp.eval_block_accel(&x, 2, &mut lean);
        for s in 0..2 {
            let (r, o) = (&full[s * lay.stride()..], &lean[s * 6..]);
            for i in 0..2 {
                let b = r[lay.grad_q() + i] - r[lay.cv() + i];
                assert!((o[i] - b).abs() <= 1e-13 * (1.0 + b.abs()), "{s}/{i}");
            }
            for i in 0..4 {
                assert!((o[2 + i] - r[lay.mass() + i]).abs() <= 1e-15);
            }
        }
    }
}
