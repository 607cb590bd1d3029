//! Double-pendulum states inside an energy shell: the part of state space that trajectories
//! released from rest can reach (docs/DESIGN.md §21.2).

use super::{check_alloc_rows, check_count, check_param};
use crate::io::SamplesData;
use crate::{Error, Result};
use rand::Rng;
use std::f64::consts::PI;

/// Double pendulum samples (m = l = 1) with total energy at most `e_max`: θ uniform in
/// [0, 2π)², then ω uniform (by area) in the ellipse ½ ωᵀM(θ)ω ≤ e_max − V(θ), V(θ) =
/// −2g cos θ₁ − g cos θ₂, M(θ) = [[2, cos Δ], [cos Δ, 1]] (docs/DESIGN.md (21.1)); exact q̈.
/// Where V(θ) ≥ e_max the state is at rest. `e_max` ≥ 3g (the maximum potential energy)
/// contains every trajectory released from rest.
pub fn dblpend_samples_bounded(n: usize, g: f64, e_max: f64, seed: u64) -> Result<SamplesData> {
    check_count("samples", n)?;
    check_alloc_rows("samples", n, 6)?;
    check_param("g", g)?;
    check_param("e_max", e_max)?;
    // check_param has refused NaN and ±∞.
    if g <= 0.0 || e_max <= -3.0 * g || !(e_max * 4.0).is_finite() {
        return Err(Error::input(format!(
            "the energy shell needs g > 0 and a finite e_max above the minimum energy −3g, got g = {g}, e_max = {e_max}"
        )));
    }
    super::dblpend_samples_from(n, g, seed, ("e_max", e_max), |rng| {
        let t = [
            rng.random_range(0.0..2.0 * PI),
            rng.random_range(0.0..2.0 * PI),
        ];
        let v_pot = -2.0 * g * t[0].cos() - g * t[1].cos();
        // u = Lᵀω with M = L Lᵀ: ½ ωᵀMω = ½ |u|², so u uniform in the disc of radius
        // √(2 (e_max − V)) is ω uniform in the ellipse (a linear image of the disc).
        let r = (2.0 * (e_max - v_pot).max(0.0)).sqrt() * rng.random::<f64>().sqrt();
        let phi = rng.random_range(0.0..2.0 * PI);
        let cd = (t[0] - t[1]).cos();
        let (l11, l21, l22) = (2f64.sqrt(), cd / 2f64.sqrt(), (1.0 - 0.5 * cd * cd).sqrt());
        let w2 = r * phi.sin() / l22;
        let w1 = (r * phi.cos() - l21 * w2) / l11;
        (t, [w1, w2])
    })
}
