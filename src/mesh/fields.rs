//! Random smooth fields on a mesh: sums of random low-frequency plane waves.
//!
//! The initial states and training inputs of the mesh wave experiments (`lgn experiment mesh`,
//! `lgn generate wave-mesh`):
//!
//! ```text
//! f(x) = Σ_{j=1..waves} c_j cos(k_j·x + p_j),   |k_j| = k_max √u_j,  angle(k_j), p_j ~ U[0, 2π),
//!                                                c_j ~ U[−1, 1),     u_j ~ U[0, 1)
//! φ(x_i) = (f(x_i) − mean_i f) / rms_i(f − mean f) + level
//! ```
//!
//! so every field has RMS 1 over the nodes around the constant `level` (|k| drawn with density
//! ∝ |k|, i.e. uniformly over the disk |k| ≤ k_max).

use super::TriMesh;
use rand::Rng;
use std::f64::consts::PI;

/// Plane-wave content of a random smooth field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothFieldConfig {
    /// Plane waves per field (≥ 1).
    pub waves: usize,
    /// Largest wavenumber |k| (radians per unit length).
    pub k_max: f64,
}

impl SmoothFieldConfig {
    /// The experiment's default content for a domain of size `extent` (e.g. the larger side of
    /// the bounding box): 4 waves, k_max = 2.5π / extent (up to 1.25 wavelengths across).
    pub fn for_extent(extent: f64) -> SmoothFieldConfig {
        let e = if extent > 0.0 && extent.is_finite() {
            extent
        } else {
            1.0
        };
        SmoothFieldConfig {
            waves: 4,
            k_max: 2.5 * PI / e,
        }
    }

    /// [`for_extent`](Self::for_extent) with the larger side of `mesh`'s bounding box.
    pub fn for_mesh(mesh: &TriMesh) -> SmoothFieldConfig {
        let (lo, hi) = mesh.bounding_box();
        SmoothFieldConfig::for_extent((hi[0] - lo[0]).max(hi[1] - lo[1]))
    }

    /// Checks: at least one wave, k_max positive and finite.
    pub fn check(&self) -> crate::Result<()> {
        if self.waves == 0 {
            return Err(crate::Error::input(
                "a smooth field needs at least one plane wave (waves = 0)",
            ));
        }
        if !(self.k_max.is_finite() && self.k_max > 0.0) {
            return Err(crate::Error::input(format!(
                "k_max must be positive and finite, got {}",
                self.k_max
            )));
        }
        Ok(())
    }
}

/// A random smooth field at the points `positions` (see the module documentation), RMS 1 about
/// the constant `level`. Deterministic given the state of `rng`; draws 4 numbers per wave.
pub fn smooth_field<R: Rng + ?Sized>(
    positions: &[[f64; 2]],
    rng: &mut R,
    cfg: &SmoothFieldConfig,
    level: f64,
) -> Vec<f64> {
    let mut f = vec![0.0; positions.len()];
    if f.is_empty() {
        return f;
    }
    for _ in 0..cfg.waves {
        let k = cfg.k_max * rng.random::<f64>().sqrt();
        let th = 2.0 * PI * rng.random::<f64>();
        let (kx, ky) = (k * th.cos(), k * th.sin());
        let p = 2.0 * PI * rng.random::<f64>();
        let c = rng.random::<f64>() * 2.0 - 1.0;
        for (fi, x) in f.iter_mut().zip(positions) {
            *fi += c * (kx * x[0] + ky * x[1] + p).cos();
        }
    }
    let mean = f.iter().sum::<f64>() / f.len() as f64;
    let rms = (f.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f.len() as f64).sqrt();
    let s = if rms > 0.0 { 1.0 / rms } else { 1.0 };
    f.iter().map(|x| (x - mean) * s + level).collect()
}

/// A random state (φ, φ̇) as in the mesh experiment: φ a smooth field about a level drawn
/// uniformly in [−1, 1), φ̇ a smooth field about 0.
pub fn random_state<R: Rng + ?Sized>(
    positions: &[[f64; 2]],
    rng: &mut R,
    cfg: &SmoothFieldConfig,
) -> (Vec<f64>, Vec<f64>) {
    let level = 2.0 * rng.random::<f64>() - 1.0;
    let phi = smooth_field(positions, rng, cfg, level);
    let phidot = smooth_field(positions, rng, cfg, 0.0);
    (phi, phidot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rms_one_about_the_level() {
        let mesh = crate::mesh::generate::square(10).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let cfg = SmoothFieldConfig::for_mesh(&mesh);
        assert!((cfg.k_max - 2.5 * PI).abs() < 1e-12);
        let f = smooth_field(&mesh.positions, &mut rng, &cfg, 0.7);
        let n = f.len() as f64;
        let mean = f.iter().sum::<f64>() / n;
        let rms = (f.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((mean - 0.7).abs() < 1e-12, "mean {mean}");
        assert!((rms - 1.0).abs() < 1e-12, "rms {rms}");
        assert!(SmoothFieldConfig {
            waves: 0,
            k_max: 1.0
        }
        .check()
        .is_err());
        assert!(SmoothFieldConfig {
            waves: 1,
            k_max: f64::NAN
        }
        .check()
        .is_err());
    }
}
