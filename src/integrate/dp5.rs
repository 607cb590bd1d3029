//! Adaptive Dormand–Prince 5(4) (Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4–5) on
//! y = (q, q̇), with the classic step-size control (safety 0.9, factor in [0.2, 10], no growth
//! right after a rejection), Hairer's initial step selection and the 4th-order continuous
//! extension ("dense output") of `dopri5` for the requested output times — the scheme behind
//! scipy's `RK45` and JAX's `odeint`.

use super::{SecondOrder, Stats};
use crate::integrate::IntegrateError;
use crate::{Error, Result};

/// Options of the adaptive Dormand–Prince integrator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dp5Options {
    /// Relative tolerance (per component, on q and q̇).
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// First step; `None` picks one automatically.
    pub h0: Option<f64>,
    /// Largest step; `None` for no limit.
    pub h_max: Option<f64>,
    /// Limit on attempted steps (accepted + rejected) over the whole integration.
    pub max_steps: usize,
}

impl Default for Dp5Options {
    /// rtol = atol = 1e-10, 10⁷ steps.
    fn default() -> Self {
        Dp5Options {
            rtol: 1e-10,
            atol: 1e-10,
            h0: None,
            h_max: None,
            max_steps: 10_000_000,
        }
    }
}

impl Dp5Options {
    /// Tolerances rtol and atol, other options default.
    pub fn tol(rtol: f64, atol: f64) -> Self {
        Dp5Options {
            rtol,
            atol,
            ..Default::default()
        }
    }
}

// Butcher tableau.
const C2: f64 = 1.0 / 5.0;
const C3: f64 = 3.0 / 10.0;
const C4: f64 = 4.0 / 5.0;
const C5: f64 = 8.0 / 9.0;
const A21: f64 = 1.0 / 5.0;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
const A71: f64 = 35.0 / 384.0;
const A73: f64 = 500.0 / 1113.0;
const A74: f64 = 125.0 / 192.0;
const A75: f64 = -2187.0 / 6784.0;
const A76: f64 = 11.0 / 84.0;
// Error estimate: 5th minus embedded 4th-order weights.
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;
// Dense output (dopri5's contd5).
const D1: f64 = -12715105075.0 / 11282082432.0;
const D3: f64 = 87487479700.0 / 32700410799.0;
const D4: f64 = -10690763975.0 / 1880347072.0;
const D5: f64 = 701980252875.0 / 199316789632.0;
const D6: f64 = -1453857185.0 / 822651844.0;
const D7: f64 = 69997945.0 / 29380423.0;

/// y' = (v, a(q, v)) for y = (q, v). A non-finite stage state gives a NaN derivative (the step
/// is then rejected and retried smaller) instead of calling the system.
fn deriv<S: SecondOrder + ?Sized>(sys: &mut S, t: f64, y: &[f64], f: &mut [f64]) -> Result<()> {
    sys.set_time(t);
    if !y.iter().all(|x| x.is_finite()) {
        f.fill(f64::NAN);
        return Ok(());
    }
    let n = y.len() / 2;
    let (q, v) = y.split_at(n);
    let (fq, fv) = f.split_at_mut(n);
    fq.copy_from_slice(v);
    sys.accel(q, v, fv)
}

fn rms_scaled(x: &[f64], y: &[f64], rtol: f64, atol: f64) -> f64 {
    let s: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| {
            let r = a / (atol + rtol * b.abs());
            r * r
        })
        .sum();
    (s / x.len().max(1) as f64).sqrt()
}

pub(crate) fn dp5<S, F, T>(
    sys: &mut S,
    o: &Dp5Options,
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
    let valid = o.rtol.is_finite() && o.atol.is_finite() && o.rtol >= 0.0 && o.atol >= 0.0;
    if !valid || o.rtol + o.atol <= 0.0 {
        return Err(Error::input(format!(
            "DP5 tolerances must be non-negative, finite and not both zero (rtol = {}, atol = {})",
            o.rtol, o.atol
        )));
    }
    if o.rtol < 1e-15 && o.atol < 1e-300 {
        return Err(Error::input("DP5 tolerances are below machine precision"));
    }
    let n = q0.len();
    let m = 2 * n;
    let mut y: Vec<f64> = q0.iter().chain(v0).copied().collect();
    let mut stats = Stats::default();
    let mut k: [Vec<f64>; 7] = std::array::from_fn(|_| vec![0.0; m]);
    let mut yt = vec![0.0; m];
    let mut ynew = vec![0.0; m];
    let mut err = vec![0.0; m];
    let mut ymax = vec![0.0; m];
    let mut rc: [Vec<f64>; 5] = std::array::from_fn(|_| vec![0.0; m]);
    let mut ydense = vec![0.0; m];

    let t0 = times.at(0);
    let t_end = times.at(times.len() - 1);
    let mut t = t0;
    let mut next = 0usize;
    while next < times.len() && times.at(next) <= t {
        out(next, times.at(next), &y[..n], &y[n..])?;
        next += 1;
    }
    if next == times.len() {
        return Ok(stats);
    }

    deriv(sys, t, &y, &mut k[0])?;
    stats.evals += 1;
    let span = t_end - t0;
    let h_max = o.h_max.unwrap_or(f64::INFINITY).min(span);
    let mut h = match o.h0 {
        Some(h0) if h0.is_finite() && h0 > 0.0 => h0,
        Some(h0) => {
            return Err(Error::input(format!(
                "DP5 initial step must be positive and finite, got {h0}"
            )))
        }
        None => {
            // Hairer's starting step (scipy `select_initial_step`).
            let d0 = rms_scaled(&y, &y, o.rtol, o.atol);
            let d1 = rms_scaled(&k[0], &y, o.rtol, o.atol);
            let h0 = if d0 < 1e-5 || d1 < 1e-5 {
                1e-6
            } else {
                0.01 * d0 / d1
            };
            let h0 = h0.min(span);
            for j in 0..m {
                yt[j] = y[j] + h0 * k[0][j];
            }
            deriv(sys, t + h0, &yt, &mut k[1])?;
            stats.evals += 1;
            for j in 0..m {
                err[j] = (k[1][j] - k[0][j]) / h0;
            }
            let d2 = rms_scaled(&err, &y, o.rtol, o.atol);
            let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
                (h0 * 1e-3).max(1e-6)
            } else {
                (0.01 / d1.max(d2)).powf(0.2)
            };
            (100.0 * h0).min(h1)
        }
    };
    h = h.min(h_max);
    if !h.is_finite() || h <= 0.0 {
        h = span.min(1e-6);
    }
    let mut just_rejected = false;
    let mut last_h = h;
    while next < times.len() {
        if stats.steps + stats.rejected >= o.max_steps {
            return Err(IntegrateError::StepLimit {
                method: "DP5",
                t,
                t_end,
                max_steps: o.max_steps,
            }
            .into());
        }
        let h_min = 16.0 * f64::EPSILON * t.abs().max(span.abs()).max(f64::MIN_POSITIVE);
        if h < h_min {
            let bad = y.iter().any(|x| !x.is_finite()) || k[0].iter().any(|x| !x.is_finite());
            return Err(IntegrateError::StepUnderflow {
                method: "DP5",
                t,
                h,
                h_min,
                non_finite: bad,
            }
            .into());
        }
        let mut final_step = false;
        if t + h >= t_end || t + 1.01 * h > t_end {
            h = t_end - t;
            final_step = true;
        }
        // End the step at a kink of the forcing (a sampled input's sample time).
        let mut stop = None;
        if let Some(ts) = sys
            .next_stop(t)
            .filter(|&ts| ts < t_end && ts - t > 4.0 * h_min)
        {
            if t + h >= ts || t + 1.01 * h > ts {
                h = ts - t;
                stop = Some(ts);
                final_step = false;
            }
        }
        // Stages.
        macro_rules! stage {
            ($dst:expr, $tc:expr, $($c:expr => $i:expr),+) => {{
                for j in 0..m {
                    yt[j] = y[j] + h * (0.0 $(+ $c * k[$i][j])+);
                }
                deriv(sys, t + $tc * h, &yt, &mut k[$dst])?;
            }};
        }
        stage!(1, C2, A21 => 0);
        stage!(2, C3, A31 => 0, A32 => 1);
        stage!(3, C4, A41 => 0, A42 => 1, A43 => 2);
        stage!(4, C5, A51 => 0, A52 => 1, A53 => 2, A54 => 3);
        stage!(5, 1.0, A61 => 0, A62 => 1, A63 => 2, A64 => 3, A65 => 4);
        for j in 0..m {
            ynew[j] = y[j]
                + h * (A71 * k[0][j]
                    + A73 * k[2][j]
                    + A74 * k[3][j]
                    + A75 * k[4][j]
                    + A76 * k[5][j]);
        }
        deriv(sys, t + h, &ynew, &mut k[6])?;
        stats.evals += 6;
        for j in 0..m {
            err[j] = h
                * (E1 * k[0][j]
                    + E3 * k[2][j]
                    + E4 * k[3][j]
                    + E5 * k[4][j]
                    + E6 * k[5][j]
                    + E7 * k[6][j]);
            ymax[j] = y[j].abs().max(ynew[j].abs());
        }
        let en = rms_scaled(&err, &ymax, o.rtol, o.atol);
        let finite = en.is_finite() && k[6].iter().all(|x| x.is_finite());
        if finite && en <= 1.0 {
            // Accept: dense output coefficients, emit the requested times inside the step.
            let t_new = match (final_step, stop) {
                (true, _) => t_end,
                (false, Some(ts)) => ts,
                (false, None) => t + h,
            };
            for j in 0..m {
                let ydiff = ynew[j] - y[j];
                let bspl = h * k[0][j] - ydiff;
                rc[0][j] = y[j];
                rc[1][j] = ydiff;
                rc[2][j] = bspl;
                rc[3][j] = ydiff - h * k[6][j] - bspl;
                rc[4][j] = h
                    * (D1 * k[0][j]
                        + D3 * k[2][j]
                        + D4 * k[3][j]
                        + D5 * k[4][j]
                        + D6 * k[5][j]
                        + D7 * k[6][j]);
            }
            while next < times.len() && (times.at(next) <= t_new) {
                if times.at(next) >= t_new {
                    out(next, times.at(next), &ynew[..n], &ynew[n..])?;
                } else {
                    let th = (times.at(next) - t) / h;
                    let th1 = 1.0 - th;
                    for j in 0..m {
                        ydense[j] = rc[0][j]
                            + th * (rc[1][j] + th1 * (rc[2][j] + th * (rc[3][j] + th1 * rc[4][j])));
                    }
                    out(next, times.at(next), &ydense[..n], &ydense[n..])?;
                }
                next += 1;
            }
            t = t_new;
            std::mem::swap(&mut y, &mut ynew);
            k.swap(0, 6); // FSAL
            stats.steps += 1;
            let mut factor = if en == 0.0 {
                10.0
            } else {
                (0.9 * en.powf(-0.2)).min(10.0)
            };
            if just_rejected {
                factor = factor.min(1.0);
            }
            just_rejected = false;
            if !final_step && stop.is_none() {
                last_h = h;
            }
            h = (last_h * factor).min(h_max);
        } else {
            stats.rejected += 1;
            just_rejected = true;
            let factor = if finite {
                (0.9 * en.powf(-0.2)).max(0.2)
            } else {
                0.2
            };
            h *= factor;
            last_h = h;
        }
    }
    Ok(stats)
}
