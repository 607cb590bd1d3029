//! Banded LDLᵀ for symmetric M with half-bandwidth w under a permutation: O(N w²) time,
//! O(N w) memory. No pivoting: indefinite M is accepted as long as no pivot is (numerically)
//! zero; a pivot with |d_i| ≤ tol·max|M_ii| is reported as singular, naming the coordinate.

use crate::solve::SolveError;
use crate::Result;

/// A reusable banded factorisation: the permutation and band are fixed by the pattern.
#[derive(Clone, Debug)]
pub struct Banded {
    /// new position → original coordinate.
    pub perm: Vec<usize>,
    /// original coordinate → new position.
    pub iperm: Vec<usize>,
    /// Half-bandwidth in the permuted order.
    pub bw: usize,
    /// Row i holds L[i, i−w..i] then D[i] (w + 1 values per row).
    band: Vec<f64>,
    factored: bool,
    /// `perm` is the identity.
    natural: bool,
}

/// Relative pivot tolerance.
pub const PIVOT_TOL: f64 = 1e-13;

impl Banded {
    /// Plan from a CSR pattern and an ordering (`perm[new] = old`).
    pub fn new(n: usize, indptr: &[usize], indices: &[usize], perm: Vec<usize>) -> Banded {
        let mut iperm = vec![0; n];
        for (new, &old) in perm.iter().enumerate() {
            iperm[old] = new;
        }
        let bw = bandwidth(n, indptr, indices, &iperm);
        let natural = perm.iter().enumerate().all(|(i, &p)| p == i);
        Banded {
            natural,
            perm,
            iperm,
            bw,
            band: vec![0.0; n * (bw + 1)],
            factored: false,
        }
    }

    /// Factorise M (CSR values matching the pattern given to `new`).
    pub fn factorize(&mut self, indptr: &[usize], indices: &[usize], values: &[f64]) -> Result<()> {
        let n = self.perm.len();
        let w = self.bw;
        let ld = w + 1;
        self.factored = false;
        if w == 0 {
            return self.factorize_diagonal(indptr, indices, values);
        }
        self.band.fill(0.0);
        let mut scale = 0.0f64;
        for i in 0..n {
            let old = self.perm[i];
            for e in indptr[old]..indptr[old + 1] {
                let j = self.iperm[indices[e]];
                if j <= i {
                    self.band[i * ld + w - (i - j)] = values[e];
                }
                if j == i {
                    scale = scale.max(values[e].abs());
                }
            }
        }
        if scale == 0.0 {
            return Err(SolveError::ZeroMass.into());
        }
        let tol = PIVOT_TOL * scale;
        let band = &mut self.band;
        let mut ld_row = vec![0.0; w]; // L[i,k]·D[k] for the current row
        for i in 0..n {
            let j0 = i.saturating_sub(w);
            // L[i,j] for j in j0..i: (A_ij − Σ_k L_ik D_k L_jk) / D_j
            for j in j0..i {
                let mut s = band[i * ld + w - (i - j)];
                let k0 = j0.max(j.saturating_sub(w));
                for k in k0..j {
                    s -= ld_row[k - j0] * band[j * ld + w - (j - k)];
                }
                let dj = band[j * ld + w];
                ld_row[j - j0] = s;
                band[i * ld + w - (i - j)] = s / dj;
            }
            let mut d = band[i * ld + w];
            for j in j0..i {
                d -= ld_row[j - j0] * band[i * ld + w - (i - j)];
            }
            if d.abs() <= tol || !d.is_finite() {
                return Err(SolveError::ZeroPivot {
                    coordinate: self.perm[i],
                    pivot: d,
                    scale,
                }
                .into());
            }
            band[i * ld + w] = d;
        }
        self.factored = true;
        Ok(())
    }

    /// Half-bandwidth 0 (e.g. a lumped mass): D = diag(M) in one pass.
    fn factorize_diagonal(
        &mut self,
        indptr: &[usize],
        indices: &[usize],
        values: &[f64],
    ) -> Result<()> {
        let mut scale = 0.0f64;
        let mut min_abs = f64::INFINITY;
        let mut sum = 0.0f64; // NaN / ±inf propagate into it (max and min skip NaN)
        let n = self.perm.len();
        // One stored entry per row in the natural order (a structurally diagonal M): a copy.
        let plain = values.len() == n && indptr.len() == n + 1 && indptr[n] == n;
        if plain && self.natural {
            for (bi, &d) in self.band.iter_mut().zip(values) {
                *bi = d;
                scale = scale.max(d.abs());
                min_abs = min_abs.min(d.abs());
                sum += d;
            }
        } else {
            for (bi, &old) in self.band.iter_mut().zip(&self.perm) {
                let mut d = 0.0;
                for e in indptr[old]..indptr[old + 1] {
                    if indices[e] == old {
                        d = values[e];
                    }
                }
                *bi = d;
                scale = scale.max(d.abs());
                min_abs = min_abs.min(d.abs());
                sum += d;
            }
        }
        if scale == 0.0 {
            return Err(SolveError::ZeroMass.into());
        }
        let tol = PIVOT_TOL * scale;
        if !(min_abs > tol && sum.is_finite()) {
            if let Some(i) = self
                .band
                .iter()
                .position(|d| d.abs() <= tol || !d.is_finite())
            {
                return Err(SolveError::ZeroPivot {
                    coordinate: self.perm[i],
                    pivot: self.band[i],
                    scale,
                }
                .into());
            }
        }
        self.factored = true;
        Ok(())
    }

    /// Solve M x = b in place (b in original ordering).
    #[allow(clippy::needless_range_loop)] // band index arithmetic reads clearer with explicit indices
    pub fn solve_in_place(&self, x: &mut [f64], work: &mut Vec<f64>) {
        assert!(self.factored, "factorize before solve");
        let n = self.perm.len();
        let w = self.bw;
        let ld = w + 1;
        if w == 0 {
            if self.natural {
                for (xi, &d) in x.iter_mut().zip(&self.band) {
                    *xi /= d;
                }
            } else {
                for (&d, &old) in self.band.iter().zip(&self.perm) {
                    x[old] /= d;
                }
            }
            return;
        }
        work.resize(n, 0.0);
        let y = work;
        for i in 0..n {
            y[i] = x[self.perm[i]];
        }
        for i in 0..n {
            let j0 = i.saturating_sub(w);
            let mut s = y[i];
            for j in j0..i {
                s -= self.band[i * ld + w - (i - j)] * y[j];
            }
            y[i] = s;
        }
        for i in 0..n {
            y[i] /= self.band[i * ld + w];
        }
        for i in (0..n).rev() {
            let s = y[i];
            let j0 = i.saturating_sub(w);
            for j in j0..i {
                y[j] -= self.band[i * ld + w - (i - j)] * s;
            }
        }
        for i in 0..n {
            x[self.perm[i]] = y[i];
        }
    }
}

/// Half-bandwidth of a pattern under `iperm`.
pub fn bandwidth(n: usize, indptr: &[usize], indices: &[usize], iperm: &[usize]) -> usize {
    let mut bw = 0;
    for r in 0..n {
        for &c in &indices[indptr[r]..indptr[r + 1]] {
            bw = bw.max(iperm[r].abs_diff(iperm[c]));
        }
    }
    bw
}
