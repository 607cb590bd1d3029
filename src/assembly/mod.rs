//! Assembly of M = Σ_s P_sᵀ m_s P_s and b = Σ_s P_sᵀ (∂ρ/∂q_I − c_s v_I) (docs/DESIGN.md §1).
//!
//! The sparsity pattern of M (coordinates i, j coupled when their nodes share a site: graph
//! distance ≤ 2 for node-centred sites) depends on the graph alone. [`MassPattern`] builds it once,
//! in CSR with sorted columns and both triangles, together with *gather lists*: for every stored
//! entry of M (and every coordinate of b) the positions in the site-derivative buffer that add
//! up to it. Refilling M and b is then a parallel, write-conflict-free, deterministic gather.
//!
//! Two record formats are gathered: the full site records of [`crate::density::SiteLayout`]
//! (ρ, gradients, m_s, c_s·v_I; used by energies, the variational integrator and training) and
//! the lean acceleration records of [`crate::density::AccelLayout`] (b contribution and m_s
//! only, nothing at all for the mass of a stiffness-only term), which the acceleration path uses.
//! The acceleration gather lists hold 32-bit positions and fill M and b in one pass over the
//! rows, so a memory-bound density (the P1 FEM) moves as few bytes per node as possible.

use crate::density::{AccelLayout, SiteLayout};
use crate::lagrangian::Lagrangian;
use crate::{Error, Result};
use rayon::prelude::*;

/// Pattern of M plus gather lists into the concatenated site-derivative records.
#[derive(Clone, Debug)]
pub struct MassPattern {
    /// Coordinates N = n·d.
    pub n: usize,
    /// CSR row pointers (N + 1).
    pub indptr: Vec<usize>,
    /// CSR column indices, sorted within each row.
    pub indices: Vec<usize>,
    /// Offset of each term's records in the derivative buffer, plus the total at the end.
    pub term_offsets: Vec<usize>,
    /// Offset of each term's acceleration records ([`AccelLayout`]), plus the total at the end.
    pub accel_offsets: Vec<usize>,
    m_ptr: Vec<usize>,
    m_src: Vec<usize>,
    b_ptr: Vec<usize>,
    b_src: Vec<[usize; 2]>,
    /// Like `m_src` / `b_src` (same `m_ptr` / `b_ptr`), positions in the acceleration records.
    am_src: Vec<u32>,
    ab_src: Vec<u32>,
}

impl MassPattern {
    /// Build the pattern and gather lists for a Lagrangian: O(Σ_s (kd)²) work. Fails only when
    /// the acceleration records would exceed 2³² values (32-bit gather positions).
    pub fn new(lag: &Lagrangian) -> Result<MassPattern> {
        let n = lag.n_coords();
        let d = lag.dof;
        let mut term_offsets = vec![0usize];
        let mut accel_offsets = vec![0usize];
        for t in &lag.terms {
            let last = *term_offsets.last().unwrap();
            term_offsets.push(last + t.sites.len() * t.density.layout().stride());
            let last = *accel_offsets.last().unwrap();
            accel_offsets.push(last + t.sites.len() * t.density.accel_layout().stride());
        }
        if *accel_offsets.last().unwrap() > u32::MAX as usize {
            return Err(Error::input(format!(
                "the Lagrangian's site records hold {} values, more than the 2^32 supported",
                accel_offsets.last().unwrap()
            )));
        }
        // Pass 1: row counts with duplicates, then columns, then sort + dedup per row.
        // Terms whose mass blocks are structurally zero (`Density::mass_is_zero`) stay out of
        // M's pattern; every diagonal entry is always stored (a row of M that no site fills is
        // then an explicit zero pivot, reported as singular, not a malformed matrix).
        let in_mass: Vec<bool> = lag
            .terms
            .iter()
            .map(|t| !t.density.mass_is_zero())
            .collect();
        let mut cnt = vec![1usize; n + 1];
        for t in lag.terms.iter().filter(|t| !t.density.mass_is_zero()) {
            let k = t.sites.arity;
            for s in 0..t.sites.len() {
                for &a in t.sites.neighbourhood(s) {
                    for c in 0..d {
                        cnt[a * d + c] += k * d;
                    }
                }
            }
        }
        let mut ptr = vec![0usize; n + 1];
        for i in 0..n {
            ptr[i + 1] = ptr[i] + cnt[i];
        }
        let mut cols = vec![0usize; ptr[n]];
        let mut fill = ptr.clone();
        for (i, f) in fill.iter_mut().take(n).enumerate() {
            cols[*f] = i;
            *f += 1;
        }
        for t in lag.terms.iter().filter(|t| !t.density.mass_is_zero()) {
            for s in 0..t.sites.len() {
                let nb = t.sites.neighbourhood(s);
                for &a in nb {
                    for ca in 0..d {
                        let r = a * d + ca;
                        for &b in nb {
                            for cb in 0..d {
                                cols[fill[r]] = b * d + cb;
                                fill[r] += 1;
                            }
                        }
                    }
                }
            }
        }
        let mut rows: Vec<&mut [usize]> = Vec::with_capacity(n);
        {
            let mut rest = cols.as_mut_slice();
            for i in 0..n {
                let (head, tail) = rest.split_at_mut(ptr[i + 1] - ptr[i]);
                rows.push(head);
                rest = tail;
            }
        }
        let lens: Vec<usize> = rows
            .par_iter_mut()
            .map(|r| {
                r.sort_unstable();
                let mut w = 0;
                for i in 0..r.len() {
                    if i == 0 || r[i] != r[w - 1] {
                        r[w] = r[i];
                        w += 1;
                    }
                }
                w
            })
            .collect();
        let mut indptr = vec![0usize; n + 1];
        for i in 0..n {
            indptr[i + 1] = indptr[i] + lens[i];
        }
        let mut indices = Vec::with_capacity(indptr[n]);
        for i in 0..n {
            indices.extend_from_slice(&cols[ptr[i]..ptr[i] + lens[i]]);
        }
        drop(cols);
        let position = |r: usize, c: usize| -> usize {
            let row = &indices[indptr[r]..indptr[r + 1]];
            indptr[r] + row.binary_search(&c).expect("column in pattern")
        };

        // Gather lists for M: count, then fill.
        let nnz = indices.len();
        let mut m_ptr = vec![0usize; nnz + 1];
        let mut b_ptr = vec![0usize; n + 1];
        for (ti, t) in lag.terms.iter().enumerate() {
            for s in 0..t.sites.len() {
                let nb = t.sites.neighbourhood(s);
                for &a in nb {
                    for ca in 0..d {
                        b_ptr[a * d + ca + 1] += 1;
                        if !in_mass[ti] {
                            continue;
                        }
                        for &b in nb {
                            for cb in 0..d {
                                m_ptr[position(a * d + ca, b * d + cb) + 1] += 1;
                            }
                        }
                    }
                }
            }
        }
        for e in 0..nnz {
            m_ptr[e + 1] += m_ptr[e];
        }
        for i in 0..n {
            b_ptr[i + 1] += b_ptr[i];
        }
        let mut m_src = vec![0usize; m_ptr[nnz]];
        let mut b_src = vec![[0usize; 2]; b_ptr[n]];
        let mut am_src = vec![0u32; m_ptr[nnz]];
        let mut ab_src = vec![0u32; b_ptr[n]];
        let mut m_fill = m_ptr.clone();
        let mut b_fill = b_ptr.clone();
        for (ti, t) in lag.terms.iter().enumerate() {
            let lay: SiteLayout = t.density.layout();
            let al: AccelLayout = t.density.accel_layout();
            let kd = lay.kd;
            for s in 0..t.sites.len() {
                let base = term_offsets[ti] + s * lay.stride();
                let abase = accel_offsets[ti] + s * al.stride();
                let nb = t.sites.neighbourhood(s);
                for (ia, &a) in nb.iter().enumerate() {
                    for ca in 0..d {
                        let la = ia * d + ca;
                        let r = a * d + ca;
                        b_src[b_fill[r]] = [base + lay.grad_q() + la, base + lay.cv() + la];
                        ab_src[b_fill[r]] = (abase + AccelLayout::RHS + la) as u32;
                        b_fill[r] += 1;
                        if !in_mass[ti] {
                            continue;
                        }
                        for (ib, &b) in nb.iter().enumerate() {
                            for cb in 0..d {
                                let lb = ib * d + cb;
                                let e = position(r, b * d + cb);
                                m_src[m_fill[e]] = base + lay.mass() + la * kd + lb;
                                // `in_mass` terms have `with_mass` accel records.
                                am_src[m_fill[e]] = (abase + al.mass() + la * kd + lb) as u32;
                                m_fill[e] += 1;
                            }
                        }
                    }
                }
            }
        }
        Ok(MassPattern {
            n,
            indptr,
            indices,
            term_offsets,
            accel_offsets,
            m_ptr,
            m_src,
            b_ptr,
            b_src,
            am_src,
            ab_src,
        })
    }

    /// Length of the acceleration-record buffer the acceleration gather lists index.
    pub fn accel_len(&self) -> usize {
        *self.accel_offsets.last().unwrap()
    }

    /// Gather M's values (CSR order) and b from the acceleration records
    /// ([`crate::density::AccelLayout`]), in one parallel pass over blocks of rows.
    pub fn assemble_accel(&self, recs: &[f64], mass: &mut [f64], b: &mut [f64]) {
        const ROWS: usize = 4096;
        // Split M's values at the row-block boundaries so each block owns its rows of M and b.
        let mut mass_blocks = Vec::with_capacity(self.n.div_ceil(ROWS));
        let mut rest = mass;
        for r0 in (0..self.n).step_by(ROWS) {
            let r1 = (r0 + ROWS).min(self.n);
            let (head, tail) = rest.split_at_mut(self.indptr[r1] - self.indptr[r0]);
            mass_blocks.push(head);
            rest = tail;
        }
        b.par_chunks_mut(ROWS)
            .zip(mass_blocks.into_par_iter())
            .enumerate()
            .for_each(|(ci, (bo, mo))| {
                let r0 = ci * ROWS;
                let e0 = self.indptr[r0];
                for (k, m) in mo.iter_mut().enumerate() {
                    let e = e0 + k;
                    *m = self.am_src[self.m_ptr[e]..self.m_ptr[e + 1]]
                        .iter()
                        .map(|&j| recs[j as usize])
                        .sum();
                }
                for (k, bi) in bo.iter_mut().enumerate() {
                    let i = r0 + k;
                    *bi = self.ab_src[self.b_ptr[i]..self.b_ptr[i + 1]]
                        .iter()
                        .map(|&j| recs[j as usize])
                        .sum();
                }
            });
    }

    /// Stored entries of M.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Whether M is structurally diagonal (one stored entry per row).
    pub fn is_diagonal(&self) -> bool {
        self.indices.len() == self.n
    }

    /// Length of the derivative buffer the gather lists index.
    pub fn derivs_len(&self) -> usize {
        *self.term_offsets.last().unwrap()
    }

    /// Gather M's values (CSR order) and b from the site-derivative buffer, in parallel.
    pub fn assemble(&self, derivs: &[f64], mass: &mut [f64], b: &mut [f64]) {
        const CHUNK: usize = 4096;
        mass.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(ci, out)| {
                let e0 = ci * CHUNK;
                for (k, m) in out.iter_mut().enumerate() {
                    let e = e0 + k;
                    *m = self.m_src[self.m_ptr[e]..self.m_ptr[e + 1]]
                        .iter()
                        .map(|&j| derivs[j])
                        .sum();
                }
            });
        b.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, out)| {
            let i0 = ci * CHUNK;
            for (k, bi) in out.iter_mut().enumerate() {
                let i = i0 + k;
                *bi = self.b_src[self.b_ptr[i]..self.b_ptr[i + 1]]
                    .iter()
                    .map(|&[g, c]| derivs[g] - derivs[c])
                    .sum();
            }
        });
    }
}
