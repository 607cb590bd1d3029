//! A definiteness penalty on the learned mass matrix M = ∂²L/∂q̇² of single-site LNNs.
//!
//! The Euler–Lagrange accelerations do not determine the sign or the definiteness of the
//! Lagrangian's kinetic part: an LNN can fit the training accelerations with an *indefinite* M
//! (alternative, non-physical Lagrangians of the same equations exist approximately). Such a
//! model conserves its own energy, but that energy is not bounded below and says nothing about
//! the true one, and M passes through singular points along trajectories. For mechanical
//! systems M is definite, so we penalise violations, sign-agnostically (L and −L have the same
//! dynamics):
//!
//! ```text
//! P = β/N Σ_i Σ_k relu(μ m̄ − s λ_k(M_i))² / m̄²
//! ```
//!
//! over the N samples of a block, λ_k the eigenvalues of M_i, s = sign(Σ_i tr M_i) and
//! m̄ = mean_i ‖M_i‖_F / √D the block's typical eigenvalue magnitude (s and m̄ held constant,
//! so P is invariant under L → cL). True mechanical mass matrices satisfy it with μ = 0.1
//! easily (double pendulum: λ_min / mean λ ≈ 0.25).
//!
//! Gradient: ∂λ_k/∂θ = u_kᵀ (∂M/∂θ) u_k = ∂/∂θ D_(0,u_k) D_(0,u_k) ρ, so each active (sample,
//! eigenvalue) pair becomes one extra site of the hyper-dual reverse sweep with
//! u1 = (0, −g_k u_k), u2 = (0, u_k), u3 = 0, where g_k = ∂P/∂λ_k
//! ([`crate::train::hyperdual`], S = D_u3 ρ − D_u1 D_u2 ρ = g_k λ_k).

use crate::solve::eigen::sym_eigen_in;
#[cfg(test)]
use crate::solve::sym_eigen;
use crate::{Error, Result};
use rayon::prelude::*;

/// Weight β and relative margin μ of the penalty (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MassPenalty {
    pub weight: f64,
    pub margin: f64,
    /// Differentiate through the block scale m̄ too (the exact total derivative of P; costs D
    /// extra reverse-sweep sites per sample of every block with a violation). Off in training:
    /// m̄ is then a constant of the step, like a normalisation statistic, and only violated
    /// eigen-directions enter the sweep.
    pub exact_scale: bool,
    /// Lower bound on m̄ (docs/DESIGN.md §17): the block scale used is max(m̄, floor). With m̄
    /// held constant the penalty's gradient shrinks the whole learned L while M is indefinite
    /// ((17.1)); below the floor it grows it again, so L cannot collapse to M → 0. None: no floor.
    pub scale_floor: Option<f64>,
    /// Before the data loss sees the network, make M definite by Adam steps on this penalty
    /// alone (single-site LNNs in [`crate::train::train`]; docs/DESIGN.md §21.6,
    /// [`crate::train::definite_start`]). None: start from the initial network as it is.
    pub definite_start: Option<crate::train::definite_start::DefiniteStart>,
}

impl MassPenalty {
    /// Default relative margin μ.
    pub const DEFAULT_MARGIN: f64 = 0.1;

    pub fn new(weight: f64, margin: f64) -> Result<MassPenalty> {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(Error::input(format!(
                "mass penalty weight (--mass-penalty) must be positive, got {weight}"
            )));
        }
        if !(margin.is_finite() && margin > 0.0 && margin < 1.0) {
            return Err(Error::input(format!(
                "mass penalty margin (--mass-margin) must be in (0, 1), got {margin}"
            )));
        }
        Ok(MassPenalty {
            weight,
            margin,
            exact_scale: false,
            scale_floor: None,
            definite_start: None,
        })
    }
}

/// Sign s and scale m̄ of a block of row-major d × d mass matrices (`ms` holds them back to
/// back), and the number of finite matrices counted. None when the block has no usable scale.
pub fn block_sign_scale(ms: &[f64], d: usize) -> Option<(f64, f64, usize)> {
    let n = ms.len() / (d * d);
    let (mut sum, mut norm, mut count) = (0.0, 0.0, 0usize);
    for i in 0..n {
        let mi = &ms[i * d * d..(i + 1) * d * d];
        let tr: f64 = (0..d).map(|k| mi[k * d + k]).sum();
        let fro = mi.iter().map(|x| x * x).sum::<f64>().sqrt();
        if tr.is_finite() && fro.is_finite() {
            sum += tr;
            norm += fro;
            count += 1;
        }
    }
    let scale = norm / (count as f64 * (d as f64).sqrt());
    (count > 0 && scale > 0.0 && scale.is_finite())
        .then(|| (if sum >= 0.0 { 1.0 } else { -1.0 }, scale, count))
}

/// One eigen-direction of one sample that enters the gradient: dP/dθ gets `coef` · ∂λ/∂θ with
/// ∂λ/∂θ = uᵀ (∂M/∂θ) u.
#[derive(Clone, Debug)]
pub struct Direction {
    pub sample: usize,
    pub coef: f64,
    pub u: Vec<f64>,
}

/// Penalty of a block of mass matrices `ms` (row-major d × d, back to back) with per-sample
/// weights `w` (β/N and sample weights folded in). Returns P and, when `want_grad`, the
/// directions of its derivative: with `pen.exact_scale` the exact total derivative, including
/// the dependence of m̄ on θ (∂m̄/∂θ = Σ_i Σ_k λ_ik/(N√d ‖M_i‖_F) ∂λ_ik/∂θ), otherwise with m̄
/// held constant; s is piecewise constant.
pub fn block_penalty(
    ms: &[f64],
    d: usize,
    w: &[f64],
    pen: MassPenalty,
    want_grad: bool,
) -> (f64, Vec<Direction>) {
    let Some((sign, mbar, count)) = block_sign_scale(ms, d) else {
        return (0.0, vec![]);
    };
    // Below the floor m̄ is a constant (its derivative is zero there).
    let (mbar, floored) = match pen.scale_floor {
        Some(f) if f > mbar => (f, true),
        _ => (mbar, false),
    };
    let n = ms.len() / (d * d);
    let floor = pen.margin * mbar;
    let inv2 = 1.0 / (mbar * mbar);
    // Per block, in parallel (docs/DESIGN.md §19): its terms of P and ∂P/∂m̄, and the
    // eigen-decomposition where a direction may follow (into one buffer: eigenvalues,
    // eigenvectors, ∂P/∂λ_k per block, no allocation per block); summed below in block order.
    let ew = d * d + 2 * d;
    let mut eig = vec![0.0; if want_grad { n * ew } else { ew }];
    let mut per = vec![BlockTerms::default(); n];
    let work = |i: usize, t: &mut BlockTerms, e: &mut [f64]| {
        let mi = &ms[i * d * d..(i + 1) * d * d];
        if !mi.iter().all(|x| x.is_finite())
            || (!pen.exact_scale && clearly_above(mi, d, sign, floor))
        {
            // Not finite, or no violated eigenvalue: no term and (m̄ held constant) no
            // direction.
            return;
        }
        let (vals, rest) = e.split_at_mut(d);
        let (vecs, g) = rest.split_at_mut(d * d);
        let mut stack = [0.0; 64];
        let mut heap = Vec::new();
        let a: &mut [f64] = if d * d <= stack.len() {
            &mut stack[..d * d]
        } else {
            heap.resize(d * d, 0.0);
            &mut heap
        };
        a.copy_from_slice(mi);
        sym_eigen_in(a, vecs, d);
        for k in 0..d {
            vals[k] = a[k * d + k];
        }
        g.fill(0.0);
        for k in 0..d {
            let viol = floor - sign * vals[k];
            if viol > 0.0 {
                t.p += w[i] * viol * viol * inv2;
                g[k] = -2.0 * w[i] * viol * inv2 * sign;
                t.dp += w[i] * (2.0 * viol * pen.margin * inv2 - 2.0 * viol * viol * inv2 / mbar);
            }
        }
        t.eig = want_grad && (pen.exact_scale || g.iter().any(|&x| x != 0.0));
    };
    if want_grad {
        per.par_iter_mut()
            .zip(eig.par_chunks_mut(ew))
            .enumerate()
            .with_min_len(256)
            .for_each(|(i, (t, e))| work(i, t, e));
    } else {
        per.par_iter_mut()
            .enumerate()
            .with_min_len(256)
            .for_each_init(|| vec![0.0; ew], |e, (i, t)| work(i, t, e));
    }
    let (mut p, mut dp_dmbar) = (0.0, 0.0);
    for t in &per {
        p += t.p;
        dp_dmbar += t.dp;
    }
    if !want_grad || p == 0.0 {
        return (p, vec![]);
    }
    let dm = if pen.exact_scale && !floored {
        dp_dmbar / (count as f64 * (d as f64).sqrt())
    } else {
        0.0
    };
    let mut dirs = Vec::new();
    for (i, (t, e)) in per.iter().zip(eig.chunks_exact(ew)).enumerate() {
        if !t.eig {
            continue;
        }
        let (vals, rest) = e.split_at(d);
        let (vecs, g) = rest.split_at(d * d);
        let fro = vals.iter().map(|x| x * x).sum::<f64>().sqrt();
        for k in 0..d {
            let coef = g[k] + if fro > 0.0 { dm * vals[k] / fro } else { 0.0 };
            if coef != 0.0 {
                dirs.push(Direction {
                    sample: i,
                    coef,
                    u: (0..d).map(|r| vecs[r * d + k]).collect(),
                });
            }
        }
    }
    (p, dirs)
}

/// One block's share of [`block_penalty`]: its terms of P and ∂P/∂m̄, and whether it may give
/// a direction (its eigen-decomposition is then in the caller's buffer).
#[derive(Clone, Copy, Default)]
struct BlockTerms {
    p: f64,
    dp: f64,
    eig: bool,
}

/// True when every eigenvalue of s·m (m d × d, symmetrised) exceeds `floor` beyond rounding:
/// the Cholesky factorisation of s·m − (floor + δ)·I, δ = 1e-10·max(|floor|, max|m_ij|), has
/// positive pivots (its backward error, a few ε·‖m‖, is far below δ). A cheap test that lets
/// [`block_penalty`] skip the eigen-decomposition of blocks without a violation
/// (docs/DESIGN.md §19); blocks larger than 8 × 8 are not screened.
fn clearly_above(m: &[f64], d: usize, sign: f64, floor: f64) -> bool {
    const MAX: usize = 8;
    if d > MAX {
        return false;
    }
    let scale = m.iter().fold(floor.abs(), |s, x| s.max(x.abs()));
    let shift = floor + 1e-10 * scale;
    let mut a = [0.0; MAX * MAX];
    for i in 0..d {
        for j in 0..=i {
            a[i * d + j] = sign * 0.5 * (m[i * d + j] + m[j * d + i]);
        }
        a[i * d + i] -= shift;
    }
    for k in 0..d {
        let mut p = a[k * d + k];
        for j in 0..k {
            p -= a[k * d + j] * a[k * d + j];
        }
        if p.is_nan() || p <= 0.0 {
            return false;
        }
        let l = p.sqrt();
        a[k * d + k] = l;
        for i in k + 1..d {
            let mut x = a[i * d + k];
            for j in 0..k {
                x -= a[i * d + j] * a[k * d + j];
            }
            a[i * d + k] = x / l;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The screen agrees with the eigenvalues: true exactly when λ_min(s·m) > floor (away
    /// from a 1e-8 band around it), on random symmetric 1×1 … 4×4 blocks of both signs.
    #[test]
    fn screen_agrees_with_the_eigenvalues() {
        let mut seed = 7u64;
        let mut r = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let (mut yes, mut no) = (0, 0);
        for trial in 0..4000 {
            let d = 1 + trial % 4;
            // Lower triangle random, mirrored, the diagonal shifted towards definiteness.
            let lower: Vec<f64> = (0..d * d)
                .map(|e| if e % d <= e / d { r() } else { 0.0 })
                .collect();
            let m: Vec<f64> = (0..d * d)
                .map(|e| {
                    let (i, j) = (e / d, e % d);
                    lower[i.max(j) * d + i.min(j)] + if i == j { 1.2 } else { 0.0 }
                })
                .collect();
            let sign = if trial % 3 == 0 { -1.0 } else { 1.0 };
            let m: Vec<f64> = m.iter().map(|x| sign * x).collect();
            let floor = 0.3 * r().abs();
            let (vals, _) = sym_eigen(&m, d);
            let min = vals.iter().map(|v| sign * v).fold(f64::INFINITY, f64::min);
            if (min - floor).abs() < 1e-8 {
                continue;
            }
            assert_eq!(
                clearly_above(&m, d, sign, floor),
                min > floor,
                "{m:?} {sign} {floor}"
            );
            if min > floor {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 500 && no > 500, "{yes} {no}");
    }

    #[test]
    fn penalty_vanishes_on_definite_blocks_and_is_sign_agnostic() {
        let pen = MassPenalty::new(1.0, 0.1).unwrap();
        // Double pendulum's true M at Δθ = 0.3, and its negative.
        let c = 0.3f64.cos();
        for sgn in [1.0, -1.0] {
            let m = [2.0 * sgn, c * sgn, c * sgn, sgn];
            assert_eq!(block_sign_scale(&m, 2).unwrap().0, sgn);
            let (p, dirs) = block_penalty(&m, 2, &[1.0], pen, true);
            assert_eq!(p, 0.0);
            assert!(dirs.is_empty());
        }
        // An indefinite M is penalised on its negative eigenvalue: diag(2, −1) has s = +1,
        // m̄ = √5/√2, floor 0.1 m̄, violation 0.1 m̄ + 1; with m̄ held constant only the
        // violated direction enters the gradient, with the exact scale both do.
        let m = [2.0, 0.0, 0.0, -1.0];
        let (s, sc, n) = block_sign_scale(&m, 2).unwrap();
        assert_eq!((s, n), (1.0, 1));
        assert!((sc - 2.5f64.sqrt()).abs() < 1e-14);
        let viol = 0.1 * sc + 1.0;
        let (p, dirs) = block_penalty(&m, 2, &[1.0], pen, true);
        assert!((p - viol * viol / 2.5).abs() < 1e-12);
        assert_eq!(dirs.len(), 1);
        assert!((dirs[0].coef + 2.0 * viol / 2.5).abs() < 1e-12);
        assert!((dirs[0].u[1].abs() - 1.0).abs() < 1e-12);
        let exact = MassPenalty {
            exact_scale: true,
            ..pen
        };
        assert_eq!(block_penalty(&m, 2, &[1.0], exact, true).1.len(), 2);
        assert!(MassPenalty::new(0.0, 0.1).is_err());
        assert!(MassPenalty::new(1.0, 1.5).is_err());
    }

    /// (17.1): along L → cL the m̄-constant gradient Σ coef·λ of an indefinite block is positive
    /// (descent shrinks M); with a floor above the block's scale it is negative (descent grows
    /// M back), and with the exact scale it vanishes.
    #[test]
    fn scale_floor_reverses_the_shrinking_of_an_indefinite_m() {
        let base = MassPenalty::new(1.0, 0.1).unwrap();
        // Tiny indefinite matrices (a collapsing learned M).
        let ms = [2e-9, 0.3e-9, 0.3e-9, -0.5e-9, 1.5e-9, 0.0, 0.0, 0.4e-9];
        let w = [0.5, 0.5];
        let along = |pen: MassPenalty| -> f64 {
            let (_, dirs) = block_penalty(&ms, 2, &w, pen, true);
            dirs.iter()
                .map(|dd| {
                    let m = &ms[dd.sample * 4..dd.sample * 4 + 4];
                    let mu = [
                        m[0] * dd.u[0] + m[1] * dd.u[1],
                        m[2] * dd.u[0] + m[3] * dd.u[1],
                    ];
                    dd.coef * (dd.u[0] * mu[0] + dd.u[1] * mu[1])
                })
                .sum()
        };
        let frozen = along(base);
        let exact = along(MassPenalty {
            exact_scale: true,
            ..base
        });
        let floored = along(MassPenalty {
            scale_floor: Some(1e-6),
            ..base
        });
        assert!(frozen > 0.0, "{frozen}");
        assert!(exact.abs() < 1e-12 * frozen.abs(), "{exact} vs {frozen}");
        assert!(floored < 0.0, "{floored}");
        // Above the floor nothing changes.
        let high = MassPenalty {
            scale_floor: Some(1e-12),
            ..base
        };
        assert_eq!(
            block_penalty(&ms, 2, &w, high, false).0,
            block_penalty(&ms, 2, &w, base, false).0
        );
    }

    /// P as a function of the matrix entries: the directions' Σ coef uuᵀ is dP/dM; compare
    /// with central differences over symmetric perturbations.
    #[test]
    fn penalty_derivative_matches_finite_differences() {
        let pen = MassPenalty {
            exact_scale: true,
            ..MassPenalty::new(2.0, 0.3).unwrap()
        };
        let ms = vec![
            2.0, 0.4, 0.4, -0.5, // indefinite
            1.5, 0.2, 0.2, 0.1, // small eigenvalue below the floor
            3.0, -0.7, -0.7, 2.0, // fine
        ];
        let w = [0.5, 1.0, 0.25];
        let (_, dirs) = block_penalty(&ms, 2, &w, pen, true);
        for e in 0..ms.len() {
            let (i, r, c) = (e / 4, (e % 4) / 2, e % 2);
            if r > c {
                continue;
            }
            let exact: f64 = dirs
                .iter()
                .filter(|dd| dd.sample == i)
                .map(|dd| dd.coef * dd.u[r] * dd.u[c] * if r == c { 1.0 } else { 2.0 })
                .sum();
            let h = 1e-6;
            let at = |x: f64| {
                let mut m2 = ms.clone();
                m2[i * 4 + r * 2 + c] += x;
                if r != c {
                    m2[i * 4 + c * 2 + r] += x;
                }
                block_penalty(&m2, 2, &w, pen, false).0
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (fd - exact).abs() < 1e-7 * (1.0 + exact.abs()),
                "entry {e}: fd {fd} exact {exact}"
            );
        }
    }
}
