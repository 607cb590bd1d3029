//! Accelerations of a batch of states of one system in one call (the Python package's
//! `accel(q, qdot)` on arrays (B, D), benchmarks).
//!
//! A system that is one site holding every coordinate (the paper's single-system models: the
//! double pendulum, the relativistic particle, the ball, and the LNNs learned for them) has
//! q̈ = m(x)⁻¹ b(x) with the site's mass block m = ∂²ρ/∂q̇² and b = ∂ρ/∂q − (∂²ρ/∂q̇∂q) q̇ (+ the
//! non-conservative forces), x = (q, q̇): a batch of states is a batch of sites of one density.
//! [`Dynamics::accelerations_batch`] then evaluates the lean acceleration records of 64 states
//! per [`crate::density::Density::eval_block_accel`] call and solves each d×d system in place
//! in the output, with no allocation per state and rayon only when the batch is long enough
//! to pay for it. A state whose record is not finite or whose mass block is singular (to the
//! relative pivot tolerance 1e-12) goes through [`Dynamics::accelerations_into`], which either
//! succeeds or reports lgn's error for that state. Other systems evaluate their states one
//! after the other with [`Dynamics::accelerations_into`] (parallel inside each evaluation).

use super::Dynamics;
use crate::Error;
use rayon::prelude::*;

/// States per [`crate::density::Density::eval_block_accel`] call.
const SITE_BLOCK: usize = 64;
/// States per parallel task.
const TASK: usize = 1024;
/// Work (estimated from the first task's wall time) below which the batch stays on the calling
/// thread: waking the pool and joining costs some microseconds, more on a loaded machine.
const PAR_MIN_SECONDS: f64 = 100e-6;
/// Relative pivot tolerance of the in-place solves.
const PIVOT_TOL: f64 = 1e-12;

/// The state of a batch that failed, and why.
#[derive(Debug)]
pub struct BatchError {
    /// Index of the state in the batch.
    pub state: usize,
    pub error: Error,
}

impl Dynamics {
    /// True when the system is one site whose nodes are every node, in order, with no fixed
    /// coordinates: then [`Dynamics::accelerations_batch`] takes the per-site path.
    pub fn is_single_site(&self) -> bool {
        let l = &self.lagrangian;
        l.terms.len() == 1
            && l.terms[0].sites.len() == 1
            && l.terms[0]
                .sites
                .neighbourhood(0)
                .iter()
                .copied()
                .eq(0..l.n_nodes)
            && l.n_nodes * l.dof == self.n_coords()
            && self.fixed_coords().is_empty()
    }

    /// Accelerations of the states (q, v) (row-major, B × D each; B = len / D) into `out`
    /// (B × D), see the module documentation. The first state that fails is reported with its
    /// index; the states before it are written.
    pub fn accelerations_batch(
        &mut self,
        q: &[f64],
        v: &[f64],
        out: &mut [f64],
    ) -> Result<(), BatchError> {
        let d = self.n_coords();
        if d == 0 || q.len() != out.len() || v.len() != out.len() || out.len() % d != 0 {
            return Err(BatchError {
                state: 0,
                error: Error::input(format!(
                    "batch of states: q has {} values, qdot {} and the output {}; each needs B × {d}",
                    q.len(),
                    v.len(),
                    out.len()
                )),
            });
        }
        let b = out.len() / d;
        if !self.is_single_site() {
            for i in 0..b {
                let r = i * d..(i + 1) * d;
                self.accelerations_into(&q[r.clone()], &v[r.clone()], &mut out[r])
                    .map_err(|error| BatchError { state: i, error })?;
            }
            return Ok(());
        }
        let mut start = 0;
        while start < b {
            let s = start * d;
            match self.site_states(&q[s..], &v[s..], &mut out[s..]) {
                None => return Ok(()),
                Some(j) => {
                    // The careful path decides: a state lgn's solver accepts is kept, else its
                    // error is the batch's.
                    let i = start + j;
                    let r = i * d..(i + 1) * d;
                    self.accelerations_into(&q[r.clone()], &v[r.clone()], &mut out[r])
                        .map_err(|error| BatchError { state: i, error })?;
                    start = i + 1;
                }
            }
        }
        Ok(())
    }

    /// The per-site path on states `q`, `v` (B × D) into `out`: the first state (index in this
    /// call) whose record is not finite or whose mass block is singular, else None. The first
    /// task runs on the calling thread; its wall time decides whether the rest goes parallel.
    fn site_states(&self, q: &[f64], v: &[f64], out: &mut [f64]) -> Option<usize> {
        let d = self.n_coords();
        let b = out.len() / d;
        let first = b.min(TASK);
        let t0 = std::time::Instant::now();
        let mut scratch = SiteScratch::new(self);
        let (head, tail) = out.split_at_mut(first * d);
        if let Some(j) = self.site_task(q, v, head, &mut scratch) {
            return Some(j);
        }
        if tail.is_empty() {
            return None;
        }
        let rest = (b - first) as f64 / first as f64 * t0.elapsed().as_secs_f64();
        let (q, v) = (&q[first * d..], &v[first * d..]);
        if rest < PAR_MIN_SECONDS || rayon::current_num_threads() < 2 {
            return self.site_task(q, v, tail, &mut scratch).map(|j| first + j);
        }
        tail.par_chunks_mut(TASK * d)
            .enumerate()
            .map_init(
                || SiteScratch::new(self),
                |s, (k, oc)| {
                    let o = k * TASK * d;
                    let n = oc.len();
                    self.site_task(&q[o..o + n], &v[o..o + n], oc, s)
                        .map(|j| first + k * TASK + j)
                },
            )
            .flatten()
            .min()
    }

    /// One task of the per-site path, sequential (see [`Dynamics::site_states`]).
    fn site_task(
        &self,
        q: &[f64],
        v: &[f64],
        out: &mut [f64],
        s: &mut SiteScratch,
    ) -> Option<usize> {
        let term = &self.lagrangian.terms[0];
        let dens = term.density.as_ref();
        let feats = term.sites.features_of(0);
        let d = self.n_coords();
        let p = dens.input_len();
        let lay = dens.accel_layout();
        let stride = lay.stride();
        if self.forces.is_none() && feats.is_empty() {
            // A density with a fused path (docs/DESIGN.md §18.1) writes q̈ directly.
            if let Some(j) = dens.site_accelerations(q, v, out) {
                return (j < out.len() / d).then_some(j);
            }
        }
        for (blk, ob) in out.chunks_mut(SITE_BLOCK * d).enumerate() {
            let nb = ob.len() / d;
            let s0 = blk * SITE_BLOCK * d;
            for (j, col) in s.x.chunks_exact_mut(p).take(nb).enumerate() {
                col[..d].copy_from_slice(&q[s0 + j * d..s0 + (j + 1) * d]);
                col[d..2 * d].copy_from_slice(&v[s0 + j * d..s0 + (j + 1) * d]);
                col[2 * d..].copy_from_slice(feats);
            }
            dens.eval_block_accel(&s.x[..nb * p], nb, &mut s.rec[..nb * stride]);
            for (j, a) in ob.chunks_exact_mut(d).enumerate() {
                let r = &s.rec[j * stride..(j + 1) * stride];
                a.copy_from_slice(&r[..d]);
                if let Some(f) = &self.forces {
                    let o = s0 + j * d;
                    f.add_force(&q[o..o + d], &v[o..o + d], self.time, a);
                }
                let ok = if lay.with_mass {
                    s.m.copy_from_slice(&r[lay.mass()..lay.mass() + d * d]);
                    solve_small(&mut s.m, a)
                } else {
                    false // no mass: singular, the careful path reports it
                };
                if !ok {
                    return Some(blk * SITE_BLOCK + j);
                }
            }
        }
        None
    }
}

/// Per-task scratch of the per-site path (inputs, records, one mass block).
struct SiteScratch {
    x: Vec<f64>,
    rec: Vec<f64>,
    m: Vec<f64>,
}

impl SiteScratch {
    fn new(dy: &Dynamics) -> Self {
        let dens = dy.lagrangian.terms[0].density.as_ref();
        let d = dy.n_coords();
        SiteScratch {
            x: vec![0.0; SITE_BLOCK * dens.input_len()],
            rec: vec![0.0; SITE_BLOCK * dens.accel_layout().stride()],
            m: vec![0.0; d * d],
        }
    }
}

/// A pivot clearly non-zero (false for NaN).
fn clear(pivot: f64, tol: f64) -> bool {
    pivot.abs() > tol
}

/// Solve m a = b in place (`a` holds b on entry; m is d×d row-major and is overwritten):
/// closed forms for d ≤ 2, Gaussian elimination with partial pivoting beyond. False when a
/// pivot is not clearly non-zero (relative to the largest |m_ij|) or a result is not finite.
fn solve_small(m: &mut [f64], a: &mut [f64]) -> bool {
    let d = a.len();
    let scale = m.iter().fold(0.0f64, |s, x| s.max(x.abs()));
    let tol = PIVOT_TOL * scale;
    match d {
        1 => {
            if !clear(m[0], tol) {
                return false;
            }
            a[0] /= m[0];
        }
        2 => {
            // Partial pivoting on the first column, then back substitution: the same
            // criterion as the general case.
            let (mut r0, mut r1) = ([m[0], m[1]], [m[2], m[3]]);
            let (mut b0, mut b1) = (a[0], a[1]);
            if r1[0].abs() > r0[0].abs() {
                std::mem::swap(&mut r0, &mut r1);
                std::mem::swap(&mut b0, &mut b1);
            }
            if !clear(r0[0], tol) {
                return false;
            }
            let f = r1[0] / r0[0];
            let p1 = r1[1] - f * r0[1];
            if !clear(p1, tol) {
                return false;
            }
            let x1 = (b1 - f * b0) / p1;
            a[1] = x1;
            a[0] = (b0 - r0[1] * x1) / r0[0];
        }
        _ => {
            for c in 0..d {
                let p = (c..d)
                    .max_by(|&i, &j| m[i * d + c].abs().total_cmp(&m[j * d + c].abs()))
                    .unwrap_or(c);
                if !clear(m[p * d + c], tol) {
                    return false;
                }
                if p != c {
                    for k in 0..d {
                        m.swap(c * d + k, p * d + k);
                    }
                    a.swap(c, p);
                }
                for r in c + 1..d {
                    let f = m[r * d + c] / m[c * d + c];
                    for k in c..d {
                        m[r * d + k] -= f * m[c * d + k];
                    }
                    a[r] -= f * a[c];
                }
            }
            for c in (0..d).rev() {
                let mut x = a[c];
                for k in c + 1..d {
                    x -= m[c * d + k] * a[k];
                }
                a[c] = x / m[c * d + c];
            }
        }
    }
    a.iter().all(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::density::{DoublePendulum, Relativistic};
    use crate::solve::SolverKind;
    use crate::systems::{single_site, DensityChoice};
    use std::sync::Arc;

    fn states(b: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut s = seed;
        let mut r = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let q = (0..b * d).map(|_| 2.0 * r()).collect();
        let v = (0..b * d).map(|_| 0.9 * r()).collect();
        (q, v)
    }

    /// The textbook double-pendulum accelerations (m = l = 1).
    fn dp_truth(q: &[f64], v: &[f64], g: f64) -> [f64; 2] {
        let (t1, t2, w1, w2) = (q[0], q[1], v[0], v[1]);
        let dlt = t1 - t2;
        let den = 3.0 - (2.0 * dlt).cos();
        let a1 = (-3.0 * g * t1.sin()
            - g * (t1 - 2.0 * t2).sin()
            - 2.0 * dlt.sin() * (w2 * w2 + w1 * w1 * dlt.cos()))
            / den;
        let a2 =
            (2.0 * dlt.sin() * (2.0 * w1 * w1 + 2.0 * g * t1.cos() + w2 * w2 * dlt.cos())) / den;
        [a1, a2]
    }

    #[test]
    fn double_pendulum_batch_matches_closed_form_and_single_calls() {
        let g = 9.8;
        let mut dy = single_site(Arc::new(DoublePendulum::paper(g)), SolverKind::Auto).unwrap();
        assert!(dy.is_single_site());
        // Long enough for the parallel tasks, with a ragged last block.
        let b = 5 * TASK + 37;
        let (q, v) = states(b, 2, 3);
        let mut out = vec![f64::NAN; b * 2];
        dy.accelerations_batch(&q, &v, &mut out).unwrap();
        for i in 0..b {
            let (qi, vi) = (&q[2 * i..2 * i + 2], &v[2 * i..2 * i + 2]);
            let t = dp_truth(qi, vi, g);
            let one = dy.accelerations(qi, vi).unwrap();
            for c in 0..2 {
                let a = out[2 * i + c];
                assert!(
                    (a - t[c]).abs() <= 1e-11 * (1.0 + t[c].abs()),
                    "{i}: {a} vs {}",
                    t[c]
                );
                assert!((a - one[c]).abs() <= 1e-12 * (1.0 + one[c].abs()));
            }
        }
    }

    #[test]
    fn learned_density_batch_matches_single_calls() {
        // An MLP density (the paper's LNN) on the double pendulum's two coordinates.
        let mlp = DensityChoice::Mlp {
            hidden: 16,
            layers: 2,
            seed: 4,
        };
        let mut dy = crate::systems::dblpend(9.8, &mlp, SolverKind::Auto).unwrap();
        assert!(dy.is_single_site());
        let b = 2 * TASK + 5;
        let (q, v) = states(b, 2, 9);
        let mut out = vec![f64::NAN; b * 2];
        dy.accelerations_batch(&q, &v, &mut out).unwrap();
        for i in 0..b {
            let one = dy
                .accelerations(&q[2 * i..2 * i + 2], &v[2 * i..2 * i + 2])
                .unwrap();
            for c in 0..2 {
                let a = out[2 * i + c];
                assert!(
                    (a - one[c]).abs() <= 1e-10 * (1.0 + one[c].abs()),
                    "{i}: {a} vs {}",
                    one[c]
                );
            }
        }
    }

    #[test]
    fn a_failing_state_is_named_and_the_earlier_ones_written() {
        // Relativistic particle: |q̇| ≥ 1 has no real Lagrangian (non-finite record).
        let mut dy = single_site(Arc::new(Relativistic { g: 1.0 }), SolverKind::Auto).unwrap();
        let b = 3000;
        let (q, mut v) = states(b, 1, 5);
        v[2500] = 1.5;
        let mut out = vec![f64::NAN; b];
        let e = dy.accelerations_batch(&q, &v, &mut out).unwrap_err();
        assert_eq!(e.state, 2500);
        let want = dy
            .accelerations(&q[2500..2501], &v[2500..2501])
            .unwrap_err();
        assert_eq!(e.error.to_string(), want.to_string());
        for i in 0..2500 {
            let w = v[i];
            let t = (1.0 - w * w).powf(2.5) / (1.0 + 2.0 * w * w);
            assert!((out[i] - t).abs() <= 1e-12 * (1.0 + t.abs()), "{i}");
        }
    }

    #[test]
    fn small_solves_agree_with_the_inverse_and_refuse_singular_blocks() {
        // 3×3 (general path) and 2×2 with a row swap, against a = m⁻¹ b computed by hand.
        let m3 = [2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0];
        let x = [0.5, -1.0, 2.0];
        let b: Vec<f64> = (0..3)
            .map(|r| (0..3).map(|c| m3[3 * r + c] * x[c]).sum())
            .collect();
        let (mut m, mut a) = (m3.to_vec(), b.clone());
        assert!(solve_small(&mut m, &mut a));
        for c in 0..3 {
            assert!((a[c] - x[c]).abs() < 1e-14);
        }
        let (mut m, mut a) = (vec![1e-3, 2.0, 3.0, 1.0], vec![2.0 * 4.0 + 1e-3, 3.0 + 4.0]);
        assert!(solve_small(&mut m, &mut a));
        assert!(
            (a[0] - 1.0).abs() < 1e-13 && (a[1] - 4.0).abs() < 1e-13,
            "{a:?}"
        );
        let (mut m, mut a) = (vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 1.0]);
        assert!(!solve_small(&mut m, &mut a));
        let (mut m, mut a) = (vec![0.0], vec![1.0]);
        assert!(!solve_small(&mut m, &mut a));
    }
}
