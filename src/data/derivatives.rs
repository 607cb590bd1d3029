//! Derivatives estimated from positions sampled at a fixed step (the baseline of issue 12,
//! docs/DESIGN.md §12.4): central differences and Savitzky–Golay filters turn a positions-only
//! trajectory into (q, q̇, q̈) samples for the ordinary acceleration loss; plus measurement
//! noise for synthetic experiments.

use crate::io::{PositionsData, SamplesData};
use crate::{Error, Result};
use ndarray::{Array2, Array3};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// How q̇ and q̈ are estimated from the positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Estimator {
    /// q̇ = (q_{k+1} − q_{k−1})/2h, q̈ = (q_{k+1} − 2q_k + q_{k−1})/h² (q kept as measured).
    Central,
    /// Savitzky–Golay: a least-squares polynomial of degree `order` through the 2m+1 frames
    /// around each frame gives the smoothed q and its first two derivatives there.
    Savgol { half_window: usize, order: usize },
}

impl Estimator {
    /// The baseline's default Savitzky–Golay filter: quartic over 11 frames.
    pub const SAVGOL_DEFAULT: Estimator = Estimator::Savgol {
        half_window: 5,
        order: 4,
    };

    /// Frames the estimate needs on each side of a frame.
    pub fn half_window(self) -> usize {
        match self {
            Estimator::Central => 1,
            Estimator::Savgol { half_window, .. } => half_window,
        }
    }

    /// Filter taps (c0, c1, c2) over the 2m+1 frames k−m..k+m for q, h·q̇ and h²·q̈.
    pub fn taps(self) -> Result<[Vec<f64>; 3]> {
        match self {
            Estimator::Central => Ok([
                vec![0.0, 1.0, 0.0],
                vec![-0.5, 0.0, 0.5],
                vec![1.0, -2.0, 1.0],
            ]),
            Estimator::Savgol { half_window, order } => Ok([
                savgol_taps(half_window, order, 0)?,
                savgol_taps(half_window, order, 1)?,
                savgol_taps(half_window, order, 2)?,
            ]),
        }
    }
}

/// Savitzky–Golay taps for the `deriv`-th derivative (times h^deriv) at the centre of 2m+1
/// equally spaced points, for a least-squares polynomial of degree `order` (≥ 2, < 2m+1).
pub fn savgol_taps(m: usize, order: usize, deriv: usize) -> Result<Vec<f64>> {
    let n = 2 * m + 1;
    if order < 2 || order >= n || deriv > order {
        return Err(Error::input(format!(
            "a Savitzky–Golay filter of degree {order} over {n} frames cannot give derivative {deriv}: need 2 ≤ degree < frames"
        )));
    }
    let p = order + 1;
    // Normal equations G c = e_deriv with G = AᵀA, A_{j,i} = x_j^i, x_j = j − m; the taps are
    // deriv! · (A G⁻¹ e_deriv)_j.
    let x: Vec<f64> = (0..n).map(|j| j as f64 - m as f64).collect();
    let mut g = vec![0.0; p * p];
    for a in 0..p {
        for b in 0..p {
            g[a * p + b] = x.iter().map(|&xj| xj.powi((a + b) as i32)).sum();
        }
    }
    let mut e = vec![0.0; p];
    e[deriv] = 1.0;
    let piv = crate::train::gradient::small_lu(&mut g, p)
        .ok_or_else(|| Error::input("Savitzky–Golay normal equations are singular"))?;
    crate::train::gradient::small_lu_solve(&g, &piv, p, &mut e);
    let fact: f64 = (1..=deriv).map(|i| i as f64).product();
    Ok(x.iter()
        .map(|&xj| fact * (0..p).map(|i| e[i] * xj.powi(i as i32)).sum::<f64>())
        .collect())
}

/// (q, q̇, q̈) samples of every frame that has `est.half_window()` frames on each side, from
/// positions at the fixed step `h`. Errors when no frame qualifies.
pub fn estimate_samples(pos: &PositionsData, h: f64, est: Estimator) -> Result<SamplesData> {
    let (b, t, d) = pos.q.dim();
    let m = est.half_window();
    if t < 2 * m + 1 {
        return Err(Error::input(format!(
            "the derivative estimate needs at least {} frames per trajectory, the data has {t}",
            2 * m + 1
        )));
    }
    let [c0, c1, c2] = est.taps()?;
    let rows = b * (t - 2 * m);
    let (mut q, mut v, mut a) = (
        Array2::zeros((rows, d)),
        Array2::zeros((rows, d)),
        Array2::zeros((rows, d)),
    );
    let mut r = 0;
    for bi in 0..b {
        for k in m..t - m {
            for j in 0..d {
                let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
                for (w, kk) in (k - m..=k + m).enumerate() {
                    let x = pos.q[[bi, kk, j]];
                    s0 += c0[w] * x;
                    s1 += c1[w] * x;
                    s2 += c2[w] * x;
                }
                q[[r, j]] = s0;
                v[[r, j]] = s1 / h;
                a[[r, j]] = s2 / (h * h);
            }
            r += 1;
        }
    }
    Ok(SamplesData {
        system: pos.system.clone(),
        params: pos.params.clone(),
        q,
        qdot: v,
        qddot: a,
        weights: None,
    })
}

/// Add independent Gaussian noise of standard deviation `sigma` to every position (seeded).
pub fn add_position_noise(q: &mut Array3<f64>, sigma: f64, seed: u64) -> Result<()> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::input(format!(
            "the noise level must be a finite number ≥ 0, got {sigma}"
        )));
    }
    if sigma == 0.0 {
        return Ok(());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for x in q.iter_mut() {
        let z: f64 = StandardNormal.sample(&mut rng);
        *x += sigma * z;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    #[test]
    fn taps_are_exact_on_polynomials() {
        // Quartic SG is exact for polynomials of degree ≤ 4; central differences for ≤ 2 (q̈)
        // and ≤ 2 (q̇).
        let h = 0.1;
        let f = |t: f64| 0.3 + 1.1 * t - 0.7 * t * t + 0.2 * t.powi(3) - 0.05 * t.powi(4);
        let df = |t: f64| 1.1 - 1.4 * t + 0.6 * t * t - 0.2 * t.powi(3);
        let ddf = |t: f64| -1.4 + 1.2 * t - 0.6 * t * t;
        let pos = PositionsData {
            t: Array1::from_iter((0..15).map(|k| k as f64 * h)),
            q: Array3::from_shape_fn((1, 15, 1), |(_, k, _)| f(k as f64 * h)),
            ..Default::default()
        };
        let s = estimate_samples(&pos, h, Estimator::SAVGOL_DEFAULT).unwrap();
        assert_eq!(s.q.nrows(), 5);
        for r in 0..5 {
            let t = (r + 5) as f64 * h;
            assert!((s.q[[r, 0]] - f(t)).abs() < 1e-12);
            assert!((s.qdot[[r, 0]] - df(t)).abs() < 1e-10);
            assert!((s.qddot[[r, 0]] - ddf(t)).abs() < 1e-9);
        }
        // Central differences on a sine: errors h²/6 q''' and h²/12 q''''.
        let pos = PositionsData {
            t: Array1::from_iter((0..3).map(|k| k as f64 * h)),
            q: Array3::from_shape_fn((1, 3, 1), |(_, k, _)| (k as f64 * h).sin()),
            ..Default::default()
        };
        let s = estimate_samples(&pos, h, Estimator::Central).unwrap();
        let t = h;
        assert!((s.qdot[[0, 0]] - t.cos()).abs() < h * h / 6.0 * 1.01);
        assert!((s.qddot[[0, 0]] + t.sin()).abs() < h * h / 12.0 * 1.01);
        assert!(estimate_samples(&pos, h, Estimator::SAVGOL_DEFAULT).is_err());
    }

    #[test]
    fn noise_has_the_requested_spread() {
        let mut q = Array3::zeros((4, 500, 2));
        add_position_noise(&mut q, 0.01, 3).unwrap();
        let n = q.len() as f64;
        let sd = (q.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
        assert!((sd - 0.01).abs() < 0.0005, "{sd}");
        assert!(add_position_noise(&mut q, -1.0, 3).is_err());
    }
}
