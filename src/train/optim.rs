//! Adam with L2 regularisation, learning-rate schedules and global-norm gradient clipping.
//!
//! Update for step t = 1, 2, … (Kingma & Ba), with the L2 term added to the gradient (classic
//! "Adam + L2", as in `optax.chain(add_decayed_weights, adam)` applied before the moments):
//!
//! ```text
//! g ← clip(g) + wd·θ,  m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²
//! θ ← θ − η_t · (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)
//! ```

/// Learning-rate schedule over `total` optimisation steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// η_t = η.
    Constant,
    /// The reference's piecewise-constant decay: η for the first third of the steps, η/10 for
    /// the second, η/100 for the last.
    Piecewise,
    /// One-cycle cosine: linear warm-up from η/25 to η over the first 30 % of the steps, then
    /// cosine annealing down to η/10⁴.
    Onecycle,
}

crate::named!(Schedule {
    Constant => "constant": "η_t = η",
    Piecewise => "piecewise": "η for the first third of the steps, η/10 for the second, η/100 for the last",
    Onecycle => "onecycle": "linear warm-up from η/25 to η over 30 % of the steps, then cosine down to η/10⁴",
});

impl Schedule {
    /// Learning rate at step `t` (0-based) of `total`.
    pub fn lr(self, base: f64, t: usize, total: usize) -> f64 {
        let total = total.max(1);
        let f = t as f64 / total as f64;
        match self {
            Schedule::Constant => base,
            Schedule::Piecewise => {
                if 3 * t < total {
                    base
                } else if 3 * t < 2 * total {
                    base / 10.0
                } else {
                    base / 100.0
                }
            }
            Schedule::Onecycle => {
                let warm = 0.3;
                let (lo, end) = (base / 25.0, base / 1e4);
                if f < warm {
                    lo + (base - lo) * f / warm
                } else {
                    let c = (f - warm) / (1.0 - warm);
                    end + (base - end) * 0.5 * (1.0 + (std::f64::consts::PI * c).cos())
                }
            }
        }
    }
}

/// Adam state for a flat parameter vector.
#[derive(Clone, Debug)]
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: u64,
}

impl Adam {
    pub fn new(n: usize, weight_decay: f64) -> Adam {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One update of `theta` with gradient `g` (clipped beforehand if wanted) and rate `lr`.
    pub fn step(&mut self, theta: &mut [f64], g: &[f64], lr: f64) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 / (1.0 - b1.powi(self.t as i32));
        let c2 = 1.0 / (1.0 - b2.powi(self.t as i32));
        let wd = self.weight_decay;
        for i in 0..theta.len() {
            let gi = g[i] + wd * theta[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * gi;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * gi * gi;
            theta[i] -= lr * (self.m[i] * c1) / ((self.v[i] * c2).sqrt() + self.eps);
        }
    }
}

/// Scale `g` so that its Euclidean norm is at most `max_norm`; returns the norm before clipping.
pub fn clip_global_norm(g: &mut [f64], max_norm: f64) -> f64 {
    let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > max_norm && norm > 0.0 {
        let s = max_norm / norm;
        g.iter_mut().for_each(|x| *x *= s);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(Schedule::Piecewise.lr(1.0, 0, 9), 1.0);
        assert_eq!(Schedule::Piecewise.lr(1.0, 3, 9), 0.1);
        assert_eq!(Schedule::Piecewise.lr(1.0, 6, 9), 0.01);
        let oc: Vec<f64> = (0..100)
            .map(|t| Schedule::Onecycle.lr(1.0, t, 100))
            .collect();
        assert!((oc[0] - 0.04).abs() < 1e-12);
        assert!((oc[30] - 1.0).abs() < 1e-12);
        assert!(oc[99] < 0.01 && oc[99] > 0.0);
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut th = vec![3.0, -2.0];
        let mut opt = Adam::new(2, 0.0);
        for _ in 0..2000 {
            let g = vec![2.0 * th[0], 20.0 * th[1]];
            opt.step(&mut th, &g, 0.05);
        }
        assert!(th[0].abs() < 1e-3 && th[1].abs() < 1e-3, "{th:?}");
        let mut g = vec![3.0, 4.0];
        assert_eq!(clip_global_norm(&mut g, 1.0), 5.0);
        assert!((g[0] - 0.6).abs() < 1e-15 && (g[1] - 0.8).abs() < 1e-15);
    }
}
