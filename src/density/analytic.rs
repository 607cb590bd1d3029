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
