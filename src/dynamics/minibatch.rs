//! The forward pass of a minibatch of states of one graph in one site pass (docs/DESIGN.md §19).
//!
//! [`Dynamics::accelerations_into`] evaluates one state: its sites in parallel blocks of
//! [`super::SITE_BLOCK`], then assembly and solve. A training minibatch of B states of a small
//! graph (the ring of 100 nodes) called it B times: B forks and joins of the thread pool for a
//! few hundred microseconds of work each, and blocks of at most ns columns. Here the (sample,
//! site) pairs of all B states are the columns of one site pass: the samples are cut into fixed
//! groups of g = max(1, [`MINIBATCH_COLS`] / ns) consecutive samples, each group is one parallel
//! task that gathers its g·ns columns (sample-major) into blocks of at most
//! [`MINIBATCH_COLS`] — so each MLP layer is one GEMM over several samples' sites — and then,
//! sample by sample, assembles M and b from those records, factorises M and solves, with a
//! per-task worker (solver, M, b, scratch) taken from a pool kept in the [`Dynamics`]. One
//! parallel region per minibatch, no allocation once the pool is warm. The grouping depends on
//! B and ns only, never on the thread count, and every sample's records, M, b and solve are the
//! per-sample path's, so the results do not depend on it either.

use super::batch::BatchError;
use super::Dynamics;
use crate::density::gather_inputs;
use crate::solve::Solver;
use crate::{Error, Result};
use rayon::prelude::*;
use std::sync::Mutex;

/// Columns ((sample, site) pairs) per site-pass block of [`Dynamics::minibatch_forward`]
/// (128 since docs/DESIGN.md §24.3: the site pass is ≈ 10 % faster per site at ≤ 200 columns
/// than at 256, and the ring's samples of 100 sites become one task each).
pub const MINIBATCH_COLS: usize = 128;

/// Per-task buffers of [`Dynamics::minibatch_forward`].
struct Worker {
    solver: Solver,
    mass: Vec<f64>,
    rhs: Vec<f64>,
    /// Gathered inputs and records of one block.
    x: Vec<f64>,
    rec: Vec<f64>,
    /// ∂ℓ/∂a scratch when the caller keeps no adjoints.
    lam: Vec<f64>,
}

/// The pool of workers and the records of the last minibatch (a field of [`Dynamics`]).
#[derive(Default)]
pub struct Minibatch {
    workers: Mutex<Vec<Worker>>,
    /// Acceleration records of the last minibatch: sample k's records, laid out as
    /// [`Dynamics::accel_recs`], at `k · pattern.accel_len()`.
    recs: Vec<f64>,
    samples: usize,
}

/// Sample k's outputs in one group: its accelerations, adjoint slot and loss.
type GroupOut<'a> = ((&'a mut [f64], &'a mut [f64]), &'a mut [f64]);

impl Dynamics {
    /// Samples per task of [`Dynamics::minibatch_forward`]: g = max(1, COLS / max_t ns_t).
    pub fn minibatch_group(&self) -> usize {
        let ns = self
            .lagrangian
            .terms
            .iter()
            .map(|t| t.sites.len())
            .max()
            .unwrap_or(1)
            .max(1);
        (MINIBATCH_COLS / ns).max(1)
    }

    /// Accelerations of the B states `states` (each (q, q̇) of this system) with the site
    /// records of all of them evaluated in one pass (see the module documentation and
    /// docs/DESIGN.md §19), into `acc` (B × n) of the outputs `(acc, lams, losses)`. After each sample's solve a = M⁻¹ b,
    /// `per_sample(k, a, lam, solver)` runs with M still factorised in `solver` (so it can
    /// solve for an adjoint, or add M⁻¹F of a sample's own force to a) and `lam` either sample k's slot of `lams` (B × n) or, when
    /// `lams` is empty, n values of scratch; what it returns is sample k's entry of `losses`
    /// (B). The records stay available ([`Dynamics::minibatch_records`]). The first sample that
    /// fails (non-finite records, singular M, an error of `per_sample`) is reported with its
    /// index; `self.solver`, `self.mass`, `self.rhs` and `self.accel_recs` are not used.
    pub fn minibatch_forward<F>(
        &mut self,
        states: &[(&[f64], &[f64])],
        (acc, lams, losses): (&mut [f64], &mut [f64], &mut [f64]),
        per_sample: F,
    ) -> std::result::Result<(), BatchError>
    where
        F: Fn(usize, &mut [f64], &mut [f64], &mut Solver) -> Result<f64> + Sync,
    {
        let n = self.n_coords();
        let b = states.len();
        if acc.len() != b * n || losses.len() != b || !(lams.is_empty() || lams.len() == b * n) {
            return Err(BatchError {
                state: 0,
                error: Error::input(format!(
                    "minibatch of {b} states of {n} coordinates: acc has {} values, lams {} and losses {}",
                    acc.len(),
                    lams.len(),
                    losses.len()
                )),
            });
        }
        for (k, (q, v)) in states.iter().enumerate() {
            self.lagrangian
                .check_state(q, v)
                .map_err(|error| BatchError { state: k, error })?;
        }
        let alen = self.pattern.accel_len();
        let g = self.minibatch_group();
        let mut recs = std::mem::take(&mut self.minibatch.recs);
        recs.resize(b * alen, 0.0);
        let mut lam_chunks: Vec<&mut [f64]> = if lams.is_empty() {
            Vec::new()
        } else {
            lams.chunks_mut(g * n).collect()
        };
        lam_chunks.resize_with(b.div_ceil(g), Default::default);
        let this = &*self;
        let per_sample = &per_sample;
        let failed: Option<BatchError> = recs
            .par_chunks_mut(g * alen)
            .zip(acc.par_chunks_mut(g * n))
            .zip(lam_chunks.into_par_iter().zip(losses.par_chunks_mut(g)))
            .enumerate()
            .map(|(gi, ((rg, ag), (lg, ll)))| {
                let mut w = this.take_worker()?;
                let r = this.minibatch_group_task(
                    gi * g,
                    states,
                    rg,
                    ((ag, lg), ll),
                    &mut w,
                    per_sample,
                );
                this.minibatch.workers.lock().expect("worker pool").push(w);
                r
            })
            .filter_map(|r| r.err())
            .min_by_key(|e| e.state);
        self.minibatch.recs = recs;
        self.minibatch.samples = b;
        failed.map_or(Ok(()), Err)
    }

    /// The acceleration records of the last [`Dynamics::minibatch_forward`]: sample k's
    /// records (the layout of [`Dynamics::accel_recs`]) at `k · pattern.accel_len()`, and the
    /// number of samples.
    pub fn minibatch_records(&self) -> (&[f64], usize) {
        (&self.minibatch.recs, self.minibatch.samples)
    }

    fn take_worker(&self) -> std::result::Result<Worker, BatchError> {
        if let Some(w) = self.minibatch.workers.lock().expect("worker pool").pop() {
            return Ok(w);
        }
        let (mut px, mut pr) = (0, 0);
        for t in &self.lagrangian.terms {
            px = px.max(t.density.input_len());
            pr = pr.max(t.density.accel_layout().stride());
        }
        let solver = self
            .solver
            .replicate(&self.pattern)
            .map_err(|error| BatchError { state: 0, error })?;
        Ok(Worker {
            solver,
            mass: vec![0.0; self.pattern.nnz()],
            rhs: vec![0.0; self.pattern.n],
            x: vec![0.0; MINIBATCH_COLS * px],
            rec: vec![0.0; MINIBATCH_COLS * pr],
            lam: vec![0.0; self.pattern.n],
        })
    }

    /// One task: the site records of samples `k0 ..` (as many as `rg` holds) in blocks of
    /// [`MINIBATCH_COLS`] pairs, then each sample's assembly, solve and `per_sample`.
    fn minibatch_group_task<F>(
        &self,
        k0: usize,
        states: &[(&[f64], &[f64])],
        rg: &mut [f64],
        ((ag, lg), ll): GroupOut<'_>,
        w: &mut Worker,
        per_sample: &F,
    ) -> std::result::Result<(), BatchError>
    where
        F: Fn(usize, &mut [f64], &mut [f64], &mut Solver) -> Result<f64> + Sync,
    {
        let n = self.n_coords();
        let d = self.lagrangian.dof;
        let alen = self.pattern.accel_len();
        let gs = ll.len();
        for (t, term) in self.lagrangian.terms.iter().enumerate() {
            let dens = term.density.as_ref();
            let p = dens.input_len();
            let stride = dens.accel_layout().stride();
            let ns = term.sites.len();
            let off = self.pattern.accel_offsets[t];
            let pairs = gs * ns;
            let mut c0 = 0;
            while c0 < pairs {
                let nb = (pairs - c0).min(MINIBATCH_COLS);
                // The block's columns are runs of consecutive sites of one sample.
                let mut c = 0;
                while c < nb {
                    let (j, s) = ((c0 + c) / ns, (c0 + c) % ns);
                    let len = (ns - s).min(nb - c);
                    let (q, v) = states[k0 + j];
                    gather_inputs(&term.sites, d, q, v, s, len, &mut w.x[c * p..(c + len) * p]);
                    c += len;
                }
                dens.eval_block_accel(&w.x[..nb * p], nb, &mut w.rec[..nb * stride]);
                let mut c = 0;
                while c < nb {
                    let (j, s) = ((c0 + c) / ns, (c0 + c) % ns);
                    let len = (ns - s).min(nb - c);
                    let o = j * alen + off + s * stride;
                    rg[o..o + len * stride].copy_from_slice(&w.rec[c * stride..(c + len) * stride]);
                    c += len;
                }
                c0 += nb;
            }
        }
        for j in 0..gs {
            let k = k0 + j;
            let fail = |error: Error| BatchError { state: k, error };
            let r = &rg[j * alen..(j + 1) * alen];
            self.check_records(r).map_err(fail)?;
            self.pattern.assemble_accel(r, &mut w.mass, &mut w.rhs);
            self.fixed.apply(&mut w.mass, &mut w.rhs);
            if let Some(f) = &self.forces {
                let (q, v) = states[k];
                f.add_force(q, v, self.time, &mut w.rhs);
                for &c in &self.fixed.coords {
                    w.rhs[c] = 0.0;
                }
            }
            w.solver.factorize(&self.pattern, &w.mass).map_err(fail)?;
            let a = &mut ag[j * n..(j + 1) * n];
            a.copy_from_slice(&w.rhs);
            w.solver.solve_in_place(a).map_err(fail)?;
            let lam = if lg.is_empty() {
                &mut w.lam[..]
            } else {
                &mut lg[j * n..(j + 1) * n]
            };
            ll[j] = per_sample(k, a, lam, &mut w.solver).map_err(fail)?;
        }
        Ok(())
    }

    /// The error of [`Dynamics::accelerations_into`] for the first non-finite value of one
    /// sample's acceleration records `r`.
    fn check_records(&self, r: &[f64]) -> Result<()> {
        let Some(e) = r.iter().position(|x| !x.is_finite()) else {
            return Ok(());
        };
        let t = self.pattern.accel_offsets.partition_point(|&o| o <= e) - 1;
        let term = &self.lagrangian.terms[t];
        let s = (e - self.pattern.accel_offsets[t]) / term.density.accel_layout().stride();
        Err(Error::Input(format!(
            "density '{}' is not finite at site {s} (nodes {:?}); the state may be outside its domain",
            term.density.name(),
            term.sites.neighbourhood(s)
        )))
    }
}

#[cfg(test)]
mod tests {
    use crate::solve::SolverKind;

    /// The minibatch pass equals one `accelerations` call per state to 1e-12 — on the ring
    /// (one MLP term, several groups, a ragged last group and block) and on a spring chain
    /// with a held node and a learned node-edge model (several terms, fixed coordinates) —
    /// and the adjoint solved with the factorisation it hands over is M⁻¹ of that state.
    #[test]
    fn minibatch_forward_equals_per_sample_accelerations() {
        let ring =
            crate::bench::ring_system(150, 8, 2, SolverKind::Auto, crate::density::Precision::F64)
                .unwrap();
        check(ring, 7);
        let (tr, _) = crate::train::graph::tests::setup(true, true, None);
        let dy = tr.model.dynamics(&tr.graph, SolverKind::Auto).unwrap();
        check(dy, 5);
    }

    fn check(mut dy: crate::dynamics::Dynamics, b: usize) {
        let n = dy.n_coords();
        let q: Vec<f64> = (0..b * n).map(|i| 0.8 * (0.37 * i as f64).sin()).collect();
        let v: Vec<f64> = (0..b * n).map(|i| 0.6 * (0.91 * i as f64).cos()).collect();
        let states: Vec<(&[f64], &[f64])> = (0..b)
            .map(|k| (&q[k * n..(k + 1) * n], &v[k * n..(k + 1) * n]))
            .collect();
        let (mut acc, mut lams, mut losses) = (vec![0.0; b * n], vec![0.0; b * n], vec![0.0; b]);
        let ones = vec![1.0; n];
        dy.minibatch_forward(
            &states,
            (&mut acc, &mut lams, &mut losses),
            |k, a, lam, solver| {
                lam.copy_from_slice(&ones);
                solver.solve_in_place(lam)?;
                Ok(a.iter().sum::<f64>() + k as f64)
            },
        )
        .unwrap();
        let (recs, nb) = dy.minibatch_records();
        let recs = recs.to_vec();
        assert_eq!((recs.len(), nb), (b * dy.pattern.accel_len(), b));
        for (k, &(qk, vk)) in states.iter().enumerate() {
            let a = dy.accelerations(qk, vk).unwrap();
            let scale = a.iter().fold(1e-300f64, |m, x| m.max(x.abs()));
            for (x, y) in acc[k * n..(k + 1) * n].iter().zip(&a) {
                assert!((x - y).abs() <= 1e-12 * scale, "sample {k}: {x} vs {y}");
            }
            let l = a.iter().sum::<f64>() + k as f64;
            assert!((losses[k] - l).abs() <= 1e-12 * l.abs().max(1.0));
            let mut lam = ones.clone();
            dy.solver.solve_in_place(&mut lam).unwrap();
            let ls = lam.iter().fold(1e-300f64, |m, x| m.max(x.abs()));
            for (x, y) in lams[k * n..(k + 1) * n].iter().zip(&lam) {
                assert!(
                    (x - y).abs() <= 1e-12 * ls,
                    "sample {k} adjoint: {x} vs {y}"
                );
            }
            let r = &recs[k * dy.pattern.accel_len()..(k + 1) * dy.pattern.accel_len()];
            assert!(r
                .iter()
                .zip(&dy.accel_recs)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * (1.0 + y.abs())));
        }
        // A non-finite state is reported with its index.
        let mut bad = q.clone();
        bad[2 * n + 1] = f64::NAN;
        let states: Vec<(&[f64], &[f64])> = (0..b)
            .map(|k| (&bad[k * n..(k + 1) * n], &v[k * n..(k + 1) * n]))
            .collect();
        let e = dy
            .minibatch_forward(&states, (&mut acc, &mut [], &mut losses), |_, _, _, _| {
                Ok(0.0)
            })
            .unwrap_err();
        assert_eq!(e.state, 2, "{}", e.error);
    }
}
