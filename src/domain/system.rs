//! Domain-decomposed accelerations: halo exchange, local assembly, distributed solve
//! (docs/DESIGN.md §16.5.3–4).
//!
//! [`DistDynamics`] is one rank's view of a system split by a [`Subdomain`]. Its state vectors
//! are the rank's *owned* coordinates; every evaluation first exchanges q and q̇ on the halo,
//! evaluates the local sites and gathers the owned rows of M and b (bitwise those of the
//! global system), then solves M q̈ = b over all ranks: a division when M is diagonal, a
//! Jacobi-preconditioned conjugate gradient whose matrix–vector products exchange the halo of
//! the direction and whose dot products are fixed-order sums ([`Comm::sum`]) otherwise. It
//! implements [`SecondOrder`] and [`Variational`], so the fixed-step integrators (rk4, verlet)
//! and the variational midpoint integrator run on it unchanged: only their convergence tests
//! take global maxima ([`Variational::global_max`]).

use super::subdomain::Subdomain;
use crate::dynamics::Dynamics;
use crate::integrate::{SecondOrder, Variational};
use crate::parallel::{agree, Comm};
use crate::solve::SolveError;
use crate::{Error, Result};

/// Stopping rule of the distributed conjugate gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CgOptions {
    /// Stop when ‖r‖₂ ≤ tol · ‖b‖₂ (global norms).
    pub tol: f64,
    /// Iterations before [`SolveError::CgNotConverged`].
    pub max_iter: usize,
}

impl Default for CgOptions {
    /// tol = 1e-14, 2000 iterations.
    fn default() -> Self {
        CgOptions {
            tol: 1e-14,
            max_iter: 2000,
        }
    }
}

/// Communication and solve counters of a [`DistDynamics`] (since construction).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct DistStats {
    /// Halo exchanges (state and CG directions).
    pub exchanges: u64,
    /// f64 values this rank sent in halo exchanges.
    pub values_sent: u64,
    /// Global reductions ([`Comm::sum`] calls).
    pub reductions: u64,
    /// Conjugate-gradient iterations.
    pub cg_iterations: u64,
    /// Seconds spent in halo exchanges and reductions.
    pub comm_seconds: f64,
}

/// One rank's part of a domain-decomposed system.
pub struct DistDynamics<'c> {
    pub comm: &'c dyn Comm,
    pub sub: Subdomain,
    /// The local system (owned rows of M and b complete).
    pub dy: Dynamics,
    pub cg: CgOptions,
    pub stats: DistStats,
    /// True when M is structurally diagonal on every rank.
    diagonal: bool,
    /// Local state (owned + halo coordinates).
    ql: Vec<f64>,
    vl: Vec<f64>,
    /// Per neighbour: packed send buffer and receive buffer (q then q̇).
    send: Vec<Vec<f64>>,
    recv: Vec<Vec<f64>>,
    /// CG work vectors: the direction over local coordinates, and owned-length vectors.
    p: Vec<f64>,
    r: Vec<f64>,
    z: Vec<f64>,
    ap: Vec<f64>,
    inv_diag: Vec<f64>,
}

impl<'c> DistDynamics<'c> {
    /// Rank `comm.rank()`'s part of a system: `sub` must be that rank's subdomain.
    /// Non-conservative forces are not decomposed yet (an error names them).
    pub fn new(comm: &'c dyn Comm, sub: Subdomain) -> Result<DistDynamics<'c>> {
        if sub.rank != comm.rank() || sub.parts != comm.size() {
            return Err(Error::input(format!(
                "subdomain {} of {} used on rank {} of {}",
                sub.rank,
                sub.parts,
                comm.rank(),
                comm.size()
            )));
        }
        let dy = agree(comm, sub.dynamics())?;
        let mut flag = [f64::from(u8::from(!dy.pattern.is_diagonal()))];
        comm.sum(&mut flag)?;
        let d = sub.dof;
        let nl = sub.n_local() * d;
        let no = sub.n_owned_coords();
        let send = sub
            .neighbours
            .iter()
            .map(|nb| vec![0.0; 2 * nb.send.len() * d])
            .collect();
        let recv = sub
            .neighbours
            .iter()
            .map(|nb| vec![0.0; 2 * nb.recv.len() * d])
            .collect();
        Ok(DistDynamics {
            comm,
            diagonal: flag[0] == 0.0,
            sub,
            dy,
            cg: CgOptions::default(),
            stats: DistStats::default(),
            ql: vec![0.0; nl],
            vl: vec![0.0; nl],
            send,
            recv,
            p: vec![0.0; nl],
            r: vec![0.0; no],
            z: vec![0.0; no],
            ap: vec![0.0; no],
            inv_diag: vec![0.0; no],
        })
    }

    /// Whether M is diagonal (solved by division, no CG).
    pub fn is_diagonal(&self) -> bool {
        self.diagonal
    }

    /// Owned coordinates (the length of the state vectors).
    pub fn n_owned_coords(&self) -> usize {
        self.sub.n_owned_coords()
    }

    /// A fixed-order sum over ranks, counted in the stats.
    fn sum(&mut self, buf: &mut [f64]) -> Result<()> {
        let t = std::time::Instant::now();
        let r = self.comm.sum(buf);
        self.stats.reductions += 1;
        self.stats.comm_seconds += t.elapsed().as_secs_f64();
        r
    }

    /// The largest of `x` over ranks (NaN when any rank has NaN).
    pub fn max_over_ranks(&mut self, x: f64) -> Result<f64> {
        if self.comm.size() == 1 {
            return Ok(x);
        }
        let mut all = vec![0.0; self.comm.size()];
        all[self.comm.rank()] = x;
        self.sum(&mut all)?;
        Ok(all.iter().fold(f64::NEG_INFINITY, |m, &v| {
            if v.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(v)
            }
        }))
    }

    /// Copy the owned state in and exchange q and q̇ on the halo.
    fn load_state(&mut self, q: &[f64], v: &[f64]) -> Result<()> {
        let no = self.n_owned_coords();
        if q.len() != no || v.len() != no {
            return Err(Error::input(format!(
                "rank {}: state has {} + {} values, it owns {no} coordinates",
                self.sub.rank,
                q.len(),
                v.len()
            )));
        }
        self.ql[..no].copy_from_slice(q);
        self.vl[..no].copy_from_slice(v);
        let d = self.sub.dof;
        for (nb, buf) in self.sub.neighbours.iter().zip(&mut self.send) {
            let (bq, bv) = buf.split_at_mut(nb.send.len() * d);
            for (k, &l) in nb.send.iter().enumerate() {
                bq[k * d..(k + 1) * d].copy_from_slice(&q[l * d..(l + 1) * d]);
                bv[k * d..(k + 1) * d].copy_from_slice(&v[l * d..(l + 1) * d]);
            }
        }
        self.exchange_buffers()?;
        for (nb, buf) in self.sub.neighbours.iter().zip(&self.recv) {
            let (bq, bv) = buf.split_at(nb.recv.len() * d);
            let r = nb.recv.start * d..nb.recv.end * d;
            self.ql[r.clone()].copy_from_slice(bq);
            self.vl[r].copy_from_slice(bv);
        }
        Ok(())
    }

    fn exchange_buffers(&mut self) -> Result<()> {
        let t = std::time::Instant::now();
        let sends: Vec<(usize, &[f64])> = self
            .sub
            .neighbours
            .iter()
            .zip(&self.send)
            .map(|(nb, b)| (nb.rank, b.as_slice()))
            .collect();
        let mut recvs: Vec<(usize, &mut [f64])> = self
            .sub
            .neighbours
            .iter()
            .zip(&mut self.recv)
            .map(|(nb, b)| (nb.rank, b.as_mut_slice()))
            .collect();
        let r = self.comm.exchange(&sends, &mut recvs);
        self.stats.exchanges += 1;
        self.stats.values_sent += sends.iter().map(|s| s.1.len() as u64).sum::<u64>();
        self.stats.comm_seconds += t.elapsed().as_secs_f64();
        r
    }

    /// Exchange the halo of the CG direction `p` (local coordinates), received in place.
    fn exchange_direction(&mut self) -> Result<()> {
        let t = std::time::Instant::now();
        let d = self.sub.dof;
        let no = self.n_owned_coords();
        for (nb, buf) in self.sub.neighbours.iter().zip(&mut self.send) {
            for (k, &l) in nb.send.iter().enumerate() {
                buf[k * d..(k + 1) * d].copy_from_slice(&self.p[l * d..(l + 1) * d]);
            }
        }
        let sends: Vec<(usize, &[f64])> = self
            .sub
            .neighbours
            .iter()
            .zip(&self.send)
            .map(|(nb, b)| (nb.rank, &b[..nb.send.len() * d]))
            .collect();
        // The halo ranges are consecutive and ascending: split the halo part of p.
        let mut recvs: Vec<(usize, &mut [f64])> = Vec::with_capacity(self.sub.neighbours.len());
        let mut rest = &mut self.p[no..];
        for nb in &self.sub.neighbours {
            let (head, tail) = rest.split_at_mut(nb.recv.len() * d);
            recvs.push((nb.rank, head));
            rest = tail;
        }
        let r = self.comm.exchange(&sends, &mut recvs);
        self.stats.exchanges += 1;
        self.stats.values_sent += sends.iter().map(|s| s.1.len() as u64).sum::<u64>();
        self.stats.comm_seconds += t.elapsed().as_secs_f64();
        r
    }

    /// The owned rows of M (local CSR) times the local vector `x` into `y`.
    fn owned_matvec(
        pattern: &crate::assembly::MassPattern,
        mass: &[f64],
        x: &[f64],
        y: &mut [f64],
    ) {
        use rayon::prelude::*;
        y.par_chunks_mut(4096).enumerate().for_each(|(c, ys)| {
            for (k, yi) in ys.iter_mut().enumerate() {
                let i = c * 4096 + k;
                let (a, b) = (pattern.indptr[i], pattern.indptr[i + 1]);
                *yi = pattern.indices[a..b]
                    .iter()
                    .zip(&mass[a..b])
                    .map(|(&j, m)| m * x[j])
                    .sum();
            }
        });
    }

    /// Solve M x = b over all ranks for the owned rows (M, b from the last assembly, b in
    /// `x` on entry).
    fn solve_owned(&mut self, x: &mut [f64]) -> Result<()> {
        let no = self.n_owned_coords();
        let p = &self.dy.pattern;
        // Diagonal entries of the owned rows (always stored).
        let mut min_diag = f64::INFINITY;
        for i in 0..no {
            let row = &p.indices[p.indptr[i]..p.indptr[i + 1]];
            let k = p.indptr[i] + row.binary_search(&i).expect("diagonal stored");
            let m = self.dy.mass[k];
            min_diag = min_diag.min(m);
            self.inv_diag[i] = 1.0 / m;
        }
        let min_diag = -self.max_over_ranks(-min_diag)?;
        if min_diag.is_nan() || min_diag <= 0.0 {
            return Err(SolveError::NotDefinite {
                iteration: 0,
                curvature: min_diag,
            }
            .into());
        }
        if self.diagonal {
            for (xi, di) in x.iter_mut().zip(&self.inv_diag) {
                *xi *= di;
            }
            return Ok(());
        }
        self.pcg(x)
    }

    /// Jacobi-preconditioned CG from x = 0 (b in `x` on entry, the solution on exit).
    fn pcg(&mut self, x: &mut [f64]) -> Result<()> {
        let no = self.n_owned_coords();
        self.r.copy_from_slice(x);
        x.fill(0.0);
        for i in 0..no {
            self.z[i] = self.inv_diag[i] * self.r[i];
        }
        self.p[..no].copy_from_slice(&self.z);
        let mut s = [dot(&self.r, &self.r), dot(&self.r, &self.z)];
        self.sum(&mut s)?;
        let bnorm = s[0].sqrt();
        let mut rz = s[1];
        if bnorm == 0.0 {
            return Ok(());
        }
        let tol = self.cg.tol;
        let mut rel = 1.0;
        for it in 1..=self.cg.max_iter {
            self.exchange_direction()?;
            Self::owned_matvec(&self.dy.pattern, &self.dy.mass, &self.p, &mut self.ap);
            let mut pap = [dot(&self.p[..no], &self.ap)];
            self.sum(&mut pap)?;
            self.stats.cg_iterations += 1;
            if pap[0].is_nan() || pap[0] <= 0.0 {
                return Err(SolveError::NotDefinite {
                    iteration: it,
                    curvature: pap[0],
                }
                .into());
            }
            let alpha = rz / pap[0];
            for (i, xi) in x.iter_mut().enumerate() {
                *xi += alpha * self.p[i];
                self.r[i] -= alpha * self.ap[i];
                self.z[i] = self.inv_diag[i] * self.r[i];
            }
            let mut s = [dot(&self.r, &self.r), dot(&self.r, &self.z)];
            self.sum(&mut s)?;
            rel = s[0].sqrt() / bnorm;
            if rel <= tol {
                return Ok(());
            }
            if !rel.is_finite() {
                break;
            }
            let beta = s[1] / rz;
            rz = s[1];
            for i in 0..no {
                self.p[i] = self.z[i] + beta * self.p[i];
            }
        }
        Err(SolveError::CgNotConverged {
            iterations: self.cg.max_iter,
            residual: rel,
            tol,
        }
        .into())
    }

    /// Accelerations of the owned coordinates at the owned state (q, q̇).
    pub fn accelerations_into(&mut self, q: &[f64], v: &[f64], a: &mut [f64]) -> Result<()> {
        if a.len() != self.n_owned_coords() {
            return Err(Error::input(format!(
                "acceleration buffer has {} values, rank {} owns {} coordinates",
                a.len(),
                self.sub.rank,
                self.n_owned_coords()
            )));
        }
        self.load_state(q, v)?;
        let ev = self.dy.evaluate_sites_accel(&self.ql, &self.vl);
        agree(self.comm, ev)?;
        self.dy.assemble_accel();
        let no = self.n_owned_coords();
        a.copy_from_slice(&self.dy.rhs[..no]);
        self.solve_owned(a)
    }

    /// The global energy E = Σ_s (∂ρ_s/∂v_I · v_I − ρ_s), each site counted on one rank.
    pub fn energy(&mut self, q: &[f64], v: &[f64]) -> Result<f64> {
        self.load_state(q, v)?;
        let ev = self.dy.evaluate_sites(&self.ql, &self.vl);
        agree(self.comm, ev)?;
        let d = self.sub.dof;
        let mut e = 0.0;
        for (ti, term) in self.dy.lagrangian.terms.iter().enumerate() {
            let lay = term.density.layout();
            let recs = &self.dy.derivs
                [self.dy.pattern.term_offsets[ti]..self.dy.pattern.term_offsets[ti + 1]];
            for (s, rec) in recs.chunks_exact(lay.stride()).enumerate() {
                if !self.sub.counted[ti][s] {
                    continue;
                }
                let gv = &rec[lay.grad_v()..lay.grad_v() + lay.kd];
                let mut k = 0.0;
                for (a, &node) in term.sites.neighbourhood(s).iter().enumerate() {
                    for c in 0..d {
                        k += gv[a * d + c] * self.vl[node * d + c];
                    }
                }
                e += k - rec[0];
            }
        }
        let mut s = [e];
        self.sum(&mut s)?;
        Ok(s[0])
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl SecondOrder for DistDynamics<'_> {
    fn accel(&mut self, q: &[f64], v: &[f64], a: &mut [f64]) -> Result<()> {
        self.accelerations_into(q, v, a)
    }
    fn variational(&mut self) -> Option<&mut dyn Variational> {
        Some(self)
    }
    fn set_time(&mut self, t: f64) {
        self.dy.time = t;
    }
}

impl Variational for DistDynamics<'_> {
    fn n_coords(&self) -> usize {
        self.n_owned_coords()
    }
    fn gradients(&mut self, q: &[f64], v: &[f64], dq: &mut [f64], dv: &mut [f64]) -> Result<()> {
        self.load_state(q, v)?;
        let ev = self.dy.evaluate_sites(&self.ql, &self.vl);
        agree(self.comm, ev)?;
        self.dy.assemble();
        let d = self.sub.dof;
        let no = self.n_owned_coords();
        dq.fill(0.0);
        dv.fill(0.0);
        // Owned rows only: the same site order as the global gradients.
        for (ti, term) in self.dy.lagrangian.terms.iter().enumerate() {
            let lay = term.density.layout();
            let recs = &self.dy.derivs
                [self.dy.pattern.term_offsets[ti]..self.dy.pattern.term_offsets[ti + 1]];
            for (s, rec) in recs.chunks_exact(lay.stride()).enumerate() {
                for (a, &node) in term.sites.neighbourhood(s).iter().enumerate() {
                    for c in 0..d {
                        let j = node * d + c;
                        if j < no {
                            dq[j] += rec[lay.grad_q() + a * d + c];
                            dv[j] += rec[lay.grad_v() + a * d + c];
                        }
                    }
                }
            }
        }
        for &j in &self.sub.fixed {
            if j < no {
                dq[j] = 0.0;
                dv[j] = 0.0;
            }
        }
        Ok(())
    }
    fn solve_mass(&mut self, x: &mut [f64]) -> Result<()> {
        self.solve_owned(x)
    }
    fn global_max(&mut self, x: f64) -> Result<f64> {
        self.max_over_ranks(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{testing, Partition};
    use crate::parallel::SerialComm;

    /// One rank through the distributed path (CG for the ring and the graph, division for the
    /// mesh) against the direct sparse/banded solve of the global system.
    #[test]
    fn one_rank_matches_the_direct_solve() {
        for case in testing::cases().unwrap() {
            let mut g = case.dynamics;
            let want = g.accelerations(&case.q, &case.v).unwrap();
            let e_want = g.energy(&case.q, &case.v).unwrap();
            let sub = Subdomain::new(
                &g.lagrangian,
                g.fixed_coords(),
                &Partition::single(g.lagrangian.n_nodes),
                0,
            )
            .unwrap();
            let comm = SerialComm;
            let mut dd = DistDynamics::new(&comm, sub).unwrap();
            assert_eq!(dd.is_diagonal(), case.name == "mesh");
            let mut a = vec![0.0; want.len()];
            dd.accelerations_into(&case.q, &case.v, &mut a).unwrap();
            let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let err = a
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(err <= 1e-12 * scale, "{}: {err:e} vs {scale:e}", case.name);
            let e = dd.energy(&case.q, &case.v).unwrap();
            assert!(
                (e - e_want).abs() <= 1e-12 * e_want.abs(),
                "{}: {e} vs {e_want}",
                case.name
            );
        }
    }

    /// An indefinite M is a typed error, not a hang or a wrong answer.
    #[test]
    fn indefinite_mass_is_reported() {
        let case = testing::ring(12).unwrap();
        let mut g = case.dynamics;
        // Flip the node mass: M = −4 I + (MLP part) is indefinite.
        let term = &mut g.lagrangian.terms[0];
        for f in &mut term.sites.features {
            *f = -*f;
        }
        let sub = Subdomain::new(&g.lagrangian, &[], &Partition::single(12), 0).unwrap();
        let comm = SerialComm;
        let mut dd = DistDynamics::new(&comm, sub).unwrap();
        let mut a = vec![0.0; 12];
        let err = dd.accelerations_into(&case.q, &case.v, &mut a).unwrap_err();
        assert!(
            matches!(err, Error::Solve(SolveError::NotDefinite { .. })),
            "{err}"
        );
    }
}
