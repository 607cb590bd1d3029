//! The weak form's window chosen from the data (docs/DESIGN.md §12.10): the position noise σ
//! is estimated from tenth differences of the recorded positions, the noise that σ puts into
//! the window-mean acceleration ā is known exactly for every half-width K (ā is linear in the
//! positions), and K is the shortest window whose predicted label noise stays below
//! [`LABEL_NOISE_TARGET`] of the data's RMS acceleration.

use super::positions::{ObjectiveKind, WeakForm};
use crate::io::PositionsData;
use crate::{Error, Result};
use std::path::Path;

/// Half-widths `auto` chooses from (docs/DESIGN.md §12.10).
pub const CANDIDATES: std::ops::RangeInclusive<usize> = 3..=10;

/// Largest predicted label noise (relative to the RMS window acceleration) that `auto` accepts.
pub const LABEL_NOISE_TARGET: f64 = 0.03;

/// Binomial coefficients of the tenth difference Δ¹⁰ (alternating signs); Σ c² = C(20, 10).
const DELTA: [f64; 11] = [
    1.0, -10.0, 45.0, -120.0, 210.0, -252.0, 210.0, -120.0, 45.0, -10.0, 1.0,
];
/// Σ c² of [`DELTA`]: the variance gain of white noise.
const DELTA_GAIN: f64 = 184_756.0;

/// Φ⁻¹(3/4): the median of |z| for z ~ N(0, 1).
const MAD_NORMAL: f64 = 0.674_489_750_196_081_7;

/// What [`choose_window`] estimated and chose.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct WindowChoice {
    /// The chosen half-width K.
    pub half_width: usize,
    /// Estimated position noise σ̂ (coordinates' units).
    pub noise: f64,
    /// RMS of the window-mean accelerations ā at the finest candidate window, less the noise.
    pub accel_rms: f64,
    /// Predicted standard deviation of ā at the chosen K, relative to `accel_rms`.
    pub label_noise: f64,
}

/// Robust estimate of independent position noise: σ̂ = median |Δ¹⁰q| / (Φ⁻¹(¾) √C(20, 10)) over
/// every trajectory, frame and coordinate. White noise of standard deviation σ gives Δ¹⁰ the
/// standard deviation √C(20, 10) σ ≈ 430 σ; a smooth motion contributes h¹⁰ q⁽¹⁰⁾ ≈ (ω h)¹⁰ A, far
/// smaller wherever ω h ≲ 0.5, and the median ignores the few faster frames. Noise-free data
/// give that (small) smooth floor.
pub fn estimate_position_noise(pos: &PositionsData) -> f64 {
    let (b, t, d) = pos.q.dim();
    let w = DELTA.len();
    if t < w {
        return 0.0;
    }
    let mut v = Vec::with_capacity(b * (t - w + 1) * d);
    for bi in 0..b {
        for k in 0..=t - w {
            for j in 0..d {
                let s: f64 = (0..w).map(|m| DELTA[m] * pos.q[[bi, k + m, j]]).sum();
                if s.is_finite() {
                    v.push(s.abs());
                }
            }
        }
    }
    // Frames where the motion itself is fast contribute |Δ¹⁰q| ≫ the noise and shift the
    // median up; they are dropped by clipping at 3 σ̂ and the median re-taken (three rounds;
    // the median of |z| given |z| < 3 is 0.6725 instead of 0.6745, below the estimate's spread).
    let scale = MAD_NORMAL * DELTA_GAIN.sqrt();
    let mut sigma = median(&mut v) / scale;
    for _ in 0..3 {
        let cut = 3.0 * sigma * DELTA_GAIN.sqrt();
        let mut kept: Vec<f64> = v.iter().copied().filter(|&x| x <= cut).collect();
        if kept.len() < v.len() / 2 {
            break;
        }
        sigma = median(&mut kept) / (CLIPPED_MAD_NORMAL * DELTA_GAIN.sqrt());
    }
    sigma
}

/// The median of |z| for z ~ N(0, 1) conditioned on |z| < 3.
const CLIPPED_MAD_NORMAL: f64 = 0.6725;

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

impl WeakForm {
    /// Noise gain of the label: ā = Σ_i c_i q_i is linear in the window's positions (with the
    /// velocities q̇ = D q / h inside it), so white position noise σ gives ā the standard
    /// deviation σ ‖c‖₂. Returns ‖c‖₂ (units 1/time²) at step h.
    pub fn label_noise_gain(&self, h: f64) -> f64 {
        let (_, wd, phi) = self.weights(h);
        // ā = −(1/Φ) Σ_j w'_j Σ_m D_m q_{j+m−3} / h: the coefficient of q_{i−3} collects j + m = i.
        let d6 = super::positions::velocity_stencil();
        let mut c = vec![0.0; wd.len() + d6.len() - 1];
        for (j, wdj) in wd.iter().enumerate() {
            for (m, dm) in d6.iter().enumerate() {
                c[j + m] -= wdj * dm / (h * phi);
            }
        }
        c.iter().map(|x| x * x).sum::<f64>().sqrt()
    }
}

/// Choose the weak form's half-width K from the data (docs/DESIGN.md §12.10): the smallest
/// K in [`CANDIDATES`] whose predicted label noise σ̂ ‖c_K‖ is at most [`LABEL_NOISE_TARGET`]
/// of the RMS window acceleration, else the widest candidate that fits the trajectories.
/// `base` gives the other weak-form settings (power, segment); `path` names the data in errors.
pub fn choose_window(pos: &PositionsData, path: &Path, base: WeakForm) -> Result<WindowChoice> {
    let h = pos.uniform_step(path)?;
    let frames = pos.n_frames();
    let fits: Vec<usize> = CANDIDATES
        .filter(|&k| {
            WeakForm {
                half_width: k,
                ..base
            }
            .min_frames()
                <= frames
        })
        .collect();
    let (&first, &widest) = match (fits.first(), fits.last()) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            return Err(Error::file_at(
                path,
                "/q",
                format!(
                    "has {frames} frames per trajectory; the weak-form objective needs at least {} (K = {})",
                    WeakForm {
                        half_width: *CANDIDATES.start(),
                        ..base
                    }
                    .min_frames(),
                    CANDIDATES.start()
                ),
            ))
        }
    };
    let noise = estimate_position_noise(pos);
    let form = |k| WeakForm {
        half_width: k,
        ..base
    };
    // The signal's RMS window acceleration at the finest candidate: the targets' mean square
    // less the label noise's variance (docs/DESIGN.md §12.10).
    let fine = form(first).windows(pos, path)?;
    let tgt = &fine.samples.target;
    let ms = tgt.iter().map(|a| a * a).sum::<f64>() / tgt.len().max(1) as f64;
    let noise_ms = (noise * form(first).label_noise_gain(h)).powi(2);
    let accel_rms = (ms - noise_ms).max(0.25 * ms).sqrt();
    let rel = |k: usize| {
        if accel_rms > 0.0 {
            noise * form(k).label_noise_gain(h) / accel_rms
        } else {
            0.0
        }
    };
    let half_width = fits
        .iter()
        .copied()
        .find(|&k| rel(k) <= LABEL_NOISE_TARGET)
        .unwrap_or(widest);
    Ok(WindowChoice {
        half_width,
        noise,
        accel_rms,
        label_noise: rel(half_width),
    })
}

/// The weak form of a positions fit: half-width `window` when given, else (weak objective)
/// chosen from the data by [`choose_window`], returned with what it estimated; the baselines
/// get the default form. `lgn train --window` and `lgn.fit(window=)` both resolve through it.
pub fn weak_form(
    pos: &PositionsData,
    path: &Path,
    objective: ObjectiveKind,
    window: Option<usize>,
) -> Result<(WeakForm, Option<WindowChoice>)> {
    let base = WeakForm::default();
    match (objective, window) {
        (_, Some(k)) => Ok((
            WeakForm {
                half_width: k,
                ..base
            },
            None,
        )),
        (ObjectiveKind::Weak, None) => {
            let c = choose_window(pos, path, base)?;
            Ok((
                WeakForm {
                    half_width: c.half_width,
                    ..base
                },
                Some(c),
            ))
        }
        (_, None) => Ok((base, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array3};

    fn pendulum(sigma: f64, seed: u64) -> PositionsData {
        let times = crate::integrate::linspace_times(201, 0.05);
        let tr = crate::data::dblpend_trajectories(
            12,
            &times,
            9.8,
            1.0,
            3,
            &crate::data::default_method(),
        )
        .unwrap();
        let mut q = tr.q.clone();
        crate::data::derivatives::add_position_noise(&mut q, sigma, seed).unwrap();
        PositionsData {
            system: tr.system,
            params: tr.params,
            t: tr.t,
            q,
        }
    }

    #[test]
    fn noise_estimate_recovers_the_injected_noise() {
        // Independent truth: the σ of the Gaussian noise added to exact trajectories.
        for sigma in [1e-3, 1e-2, 1e-1] {
            let s = estimate_position_noise(&pendulum(sigma, 7));
            assert!((s / sigma - 1.0).abs() < 0.15, "σ = {sigma}: estimated {s}");
        }
        // Noise-free chaotic trajectories: the smooth floor is far below 1e-3.
        let s0 = estimate_position_noise(&pendulum(0.0, 7));
        assert!(s0 < 2e-4, "noise-free estimate {s0}");
    }

    #[test]
    fn label_noise_gain_matches_monte_carlo() {
        // Pure noise positions: the window targets ā are Σ c_i q_i, so their standard deviation
        // is σ ‖c‖ (a second computation: through `WeakForm::windows`).
        let (b, t, d, h, sigma) = (40, 400, 2, 0.05, 0.3);
        let mut q = Array3::zeros((b, t, d));
        crate::data::derivatives::add_position_noise(&mut q, sigma, 11).unwrap();
        let pos = PositionsData {
            t: Array1::from_iter((0..t).map(|k| k as f64 * h)),
            q,
            ..Default::default()
        };
        for k in [3, 5, 8] {
            let form = WeakForm {
                half_width: k,
                ..WeakForm::default()
            };
            let w = form.windows(&pos, Path::new("noise")).unwrap();
            let a = &w.samples.target;
            let sd = (a.iter().map(|x| x * x).sum::<f64>() / a.len() as f64).sqrt();
            let pred = sigma * form.label_noise_gain(h);
            assert!((sd / pred - 1.0).abs() < 0.05, "K = {k}: {sd} vs {pred}");
        }
    }

    #[test]
    fn window_widens_with_the_noise() {
        let p = Path::new("dblpend");
        let ks: Vec<WindowChoice> = [0.0, 1e-3, 1e-2, 1e-1]
            .iter()
            .map(|&s| choose_window(&pendulum(s, 5), p, WeakForm::default()).unwrap())
            .collect();
        assert_eq!(ks[0].half_width, *CANDIDATES.start());
        for w in ks.windows(2) {
            assert!(w[1].half_width >= w[0].half_width, "{ks:?}");
        }
        assert!(ks[2].half_width > ks[1].half_width, "{ks:?}");
        // The chosen window meets the target unless it is the widest.
        for c in &ks {
            assert!(c.label_noise <= LABEL_NOISE_TARGET || c.half_width == *CANDIDATES.end());
        }
        // Too short for any window: a clear error naming /q.
        let short = PositionsData {
            t: Array1::from_iter((0..12).map(|k| k as f64 * 0.05)),
            q: Array3::zeros((1, 12, 2)),
            ..Default::default()
        };
        let e = choose_window(&short, p, WeakForm::default()).unwrap_err();
        assert!(e.to_string().contains("/q"), "{e}");
    }
}
