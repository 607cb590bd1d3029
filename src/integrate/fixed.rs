//! Fixed-step integrators: classical RK4 and velocity Verlet.

use super::{accel_checked, check_state, SecondOrder, Stats};
use crate::Result;

/// Number of equal steps of at most `dt` covering `span` (0 for an empty interval).
pub(crate) fn substeps(span: f64, dt: f64) -> usize {
    if span <= 0.0 {
        return 0;
    }
    // Tolerate round-off: 1.0 / 0.1 must give 10 steps, not 11.
    let n = span / dt;
    let r = n.round();
    if (n - r).abs() <= 1e-9 * r.max(1.0) {
        (r as usize).max(1)
    } else {
        n.ceil() as usize
    }
}

/// The output interval [t0, t1] cut at the kinks of the forcing ([`SecondOrder::next_stop`],
/// docs/DESIGN.md §13.10), each piece with its number of equal steps of at most `dt` and the
/// step: fixed-step integrators then end a step at every kink instead of stepping across it.
fn pieces<S: SecondOrder + ?Sized>(sys: &S, t0: f64, t1: f64, dt: f64) -> Vec<(f64, usize, f64)> {
    let mut out = vec![];
    let mut a = t0;
    // Kinks closer than a round-off to an end are not worth a sliver step.
    let eps = 1e-12 * t1.abs().max(1.0);
    while a < t1 {
        let b = match sys.next_stop(a) {
            Some(ts) if ts > a + eps && ts < t1 - eps => ts,
            _ => t1,
        };
        let m = substeps(b - a, dt);
        out.push((a, m, if m > 0 { (b - a) / m as f64 } else { 0.0 }));
        a = b;
    }
    out
}

pub(crate) fn rk4<S, F, T>(
    sys: &mut S,
    dt: f64,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    mut out: F,
) -> Result<Stats>
where
    S: SecondOrder + ?Sized,
    F: FnMut(usize, f64, &[f64], &[f64]) -> Result<()>,
    T: super::OutputTimes + ?Sized,
{
    let n = q0.len();
    let (mut q, mut v) = (q0.to_vec(), v0.to_vec());
    let mut stats = Stats::default();
    let (mut qt, mut vt) = (vec![0.0; n], vec![0.0; n]);
    let mut k: [Vec<f64>; 4] = std::array::from_fn(|_| vec![0.0; n]); // accelerations
    let mut kv: [Vec<f64>; 4] = std::array::from_fn(|_| vec![0.0; n]); // velocities
    out(0, times.at(0), &q, &v)?;
    for i in 1..times.len() {
        let (t0, t1) = (times.at(i - 1), times.at(i));
        for (ta, m, h) in pieces(sys, t0, t1, dt) {
            for s in 0..m {
                let t = ta + s as f64 * h;
                kv[0].copy_from_slice(&v);
                sys.set_time(t);
                sys.accel(&q, &v, &mut k[0])?;
                for (stage, c) in [(1usize, 0.5), (2, 0.5), (3, 1.0)] {
                    for j in 0..n {
                        qt[j] = q[j] + c * h * kv[stage - 1][j];
                        vt[j] = v[j] + c * h * k[stage - 1][j];
                    }
                    kv[stage].copy_from_slice(&vt);
                    accel_checked(sys, t + c * h, &qt, &vt, &mut k[stage])?;
                }
                for j in 0..n {
                    q[j] += h / 6.0 * (kv[0][j] + 2.0 * kv[1][j] + 2.0 * kv[2][j] + kv[3][j]);
                    v[j] += h / 6.0 * (k[0][j] + 2.0 * k[1][j] + 2.0 * k[2][j] + k[3][j]);
                }
                stats.steps += 1;
                stats.evals += 4;
                check_state(t + h, &q, &v)?;
            }
        }
        out(i, t1, &q, &v)?;
    }
    Ok(stats)
}

pub(crate) fn verlet<S, F, T>(
    sys: &mut S,
    dt: f64,
    q0: &[f64],
    v0: &[f64],
    times: &T,
    mut out: F,
) -> Result<Stats>
where
    S: SecondOrder + ?Sized,
    F: FnMut(usize, f64, &[f64], &[f64]) -> Result<()>,
    T: super::OutputTimes + ?Sized,
{
    let n = q0.len();
    let (mut q, mut v) = (q0.to_vec(), v0.to_vec());
    let mut a = vec![0.0; n];
    let mut stats = Stats::default();
    sys.set_time(times.at(0));
    sys.accel(&q, &v, &mut a)?;
    stats.evals += 1;
    out(0, times.at(0), &q, &v)?;
    for i in 1..times.len() {
        let (t0, t1) = (times.at(i - 1), times.at(i));
        for (ta, m, h) in pieces(sys, t0, t1, dt) {
            for s in 0..m {
                for j in 0..n {
                    v[j] += 0.5 * h * a[j]; // half kick
                    q[j] += h * v[j]; // drift
                }
                // q̈ at the new position; for velocity-dependent systems the half-step velocity is
                // passed (documented: Verlet is meant for velocity-independent accelerations).
                accel_checked(sys, ta + (s + 1) as f64 * h, &q, &v, &mut a)?;
                for j in 0..n {
                    v[j] += 0.5 * h * a[j]; // half kick
                }
                stats.steps += 1;
                stats.evals += 1;
                check_state(ta + (s + 1) as f64 * h, &q, &v)?;
            }
        }
        out(i, t1, &q, &v)?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::substeps;

    #[test]
    fn substeps_tolerate_round_off() {
        assert_eq!(substeps(1.0, 0.1), 10);
        assert_eq!(substeps(0.3, 0.1), 3);
        assert_eq!(substeps(1.0, 0.3), 4);
        assert_eq!(substeps(0.0, 0.1), 0);
        assert_eq!(substeps(1e-3, 0.1), 1);
    }
}
