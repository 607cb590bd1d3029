//! Losses on predicted accelerations (or, for the HNN, phase-space velocities).
//!
//! For a minibatch 𝔅 with per-sample weights w_n (1 when the data has none) and D outputs:
//!
//! ```text
//! MSE: ℓ = Σ_{n∈𝔅} w_n Σ_j (a_nj − y_nj)²  / (D Σ_{n∈𝔅} w_n)
//! L1:  ℓ = Σ_{n∈𝔅} w_n Σ_j |a_nj − y_nj|  / (D Σ_{n∈𝔅} w_n)
//! ```
//!
//! (unweighted MSE = `jnp.mean((a − y)²)`, the reference's loss). ∂ℓ/∂a_nj = w_n f'(r_nj)/(D Σw)
//! with f'(r) = 2r (MSE) or sign(r) (L1; 0 at r = 0, the subgradient of least norm).
//!
//! Huber (pseudo-Huber, δ = 1 in the units of the targets): f(r) = 2(√(1 + r²) − 1)
//! (evaluated as 2r²/(√(1 + r²) + 1), free of cancellation), which is
//! r² for small residuals (the MSE, once the fit is good) and 2|r| for large ones, so early
//! minibatches where a barely trained Lagrangian has a nearly singular mass matrix (huge
//! predicted accelerations) cannot dominate the step; f'(r) = 2r/√(1 + r²).

/// Which loss to minimise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    L1,
    /// Pseudo-Huber with δ = 1 (target units): MSE for small residuals, 2|r| for large ones.
    Huber,
}

crate::named!(LossKind {
    Mse => "mse": "mean squared error",
    L1 => "l1": "mean absolute error",
    Huber => "huber": "pseudo-Huber with δ = 1 (target units): MSE for small residuals, 2|r| for large ones",
});

impl LossKind {
    /// f(r) for one residual.
    #[inline]
    pub fn value(self, r: f64) -> f64 {
        match self {
            LossKind::Mse => r * r,
            LossKind::L1 => r.abs(),
            LossKind::Huber => 2.0 * r * r / ((1.0 + r * r).sqrt() + 1.0),
        }
    }

    /// f'(r).
    #[inline]
    pub fn deriv(self, r: f64) -> f64 {
        match self {
            LossKind::Mse => 2.0 * r,
            LossKind::L1 => {
                if r > 0.0 {
                    1.0
                } else if r < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            LossKind::Huber => 2.0 * r / (1.0 + r * r).sqrt(),
        }
    }

    /// Add one sample's loss (scaled by `scale` = w_n/(D Σw)) and write ∂ℓ/∂pred into `g`.
    #[inline]
    pub fn sample(self, pred: &[f64], target: &[f64], scale: f64, g: &mut [f64]) -> f64 {
        let mut l = 0.0;
        for ((gi, p), t) in g.iter_mut().zip(pred).zip(target) {
            let r = p - t;
            l += self.value(r);
            *gi = scale * self.deriv(r);
        }
        scale * l
    }

    pub fn name(self) -> &'static str {
        match self {
            LossKind::Mse => "mse",
            LossKind::L1 => "l1",
            LossKind::Huber => "huber",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_differences() {
        for k in [LossKind::Mse, LossKind::L1, LossKind::Huber] {
            for r in [-1.3, -0.2, 0.4, 2.0, 20.0] {
                let h = 1e-6;
                let fd = (k.value(r + h) - k.value(r - h)) / (2.0 * h);
                assert!(
                    (fd - k.deriv(r)).abs() < 1e-8 * (1.0 + k.value(r)),
                    "{k:?} at {r}"
                );
            }
        }
        let mut g = [0.0; 2];
        let l = LossKind::Mse.sample(&[1.0, 2.0], &[0.0, 0.0], 0.5, &mut g);
        assert_eq!(l, 2.5);
        assert_eq!(g, [1.0, 2.0]);
        // Huber: ≈ r² for small r, ≈ 2|r| − 2 for large r.
        let h = LossKind::Huber;
        assert!((h.value(1e-3) - 1e-6).abs() < 1e-12);
        assert!((h.value(1e4) - (2e4 - 2.0)).abs() < 1e-3);
        assert!(h.deriv(1e8) <= 2.0 && h.deriv(1e8) > 1.999);
    }
}
