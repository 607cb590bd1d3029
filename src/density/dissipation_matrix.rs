//! A learned Rayleigh dissipation of a single-network model (docs/DESIGN.md §22.1):
//!
//! ```text
//! D(q, q̇) = ½ q̇ᵀ R(q) q̇,   R = L Lᵀ,   L lower triangular, L_kk = softplus(o_kk), L_jk = o_jk,   (22.1)
//! ```
//!
//! with o = N(x(q)) the d(d+1)/2 outputs of a small network of the coordinates (x = q, wrapped
//! when the model has a coordinate period, or the angle embedding (cos q, sin q) when the
//! Lagrangian network embeds the angles). L has a positive diagonal, so R is symmetric positive
//! definite for every weight: D ≥ 0 and D(q, 0) = 0 by construction, and the dissipated power
//! q̇·∂D/∂q̇ = |Lᵀq̇|² ≥ 0. ∂D/∂q̇ = R q̇ = L (Lᵀ q̇) is exact (no differentiation of the network
//! is needed for the dynamics); the training gradient (22.2) is one reverse sweep of N.

use super::mlp::{softplus, softplus_derivs, Mlp};
use crate::train::baselines::{vector_mlp_backward, vector_mlp_forward_block, vector_mlp_init};
use crate::{Error, Result};

/// D = ½ q̇ᵀ L(q)L(q)ᵀ q̇ with L from a network of q (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixDissipation {
    /// The network N: input [`MatrixDissipation::input_len`], output d(d+1)/2 (row-major lower
    /// triangle of L: entry (j, k ≤ j) at j(j+1)/2 + k).
    pub net: Mlp,
    /// Coordinates of the system.
    pub dof: usize,
    /// N sees (cos q, sin q) instead of q (the LNN's angle embedding, docs/DESIGN.md §14.6).
    pub embed: bool,
    /// Without the embedding: wrap q into [−P/2, P/2) first (the model's `q_period`).
    pub q_period: Option<f64>,
}

/// Index of L_jk (k ≤ j) in the network's output.
fn tri(j: usize, k: usize) -> usize {
    j * (j + 1) / 2 + k
}

impl MatrixDissipation {
    /// Network input width: 2d with the embedding, else d.
    pub fn input_len(dof: usize, embed: bool) -> usize {
        if embed {
            2 * dof
        } else {
            dof
        }
    }

    /// Network output width d(d+1)/2.
    pub fn output_len(dof: usize) -> usize {
        dof * (dof + 1) / 2
    }

    /// A new term with R ≈ `r0`·I at the start (small output weights, diagonal biases
    /// softplus⁻¹(√r0)); `q_samples` (rows of d coordinates) set the input normalisation
    /// without the embedding.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dof: usize,
        embed: bool,
        q_period: Option<f64>,
        hidden: usize,
        layers: usize,
        seed: u64,
        r0: f64,
        q_samples: &[&[f64]],
    ) -> Result<MatrixDissipation> {
        if dof == 0 || hidden == 0 || layers == 0 {
            return Err(Error::input(
                "a learned dissipation needs at least one coordinate, hidden unit and layer",
            ));
        }
        if !(r0.is_finite() && r0 > 0.0) {
            return Err(Error::input(format!(
                "the initial dissipation rate must be positive, got {r0}"
            )));
        }
        let p = Self::input_len(dof, embed);
        let no = Self::output_len(dof);
        let mut sizes = vec![p];
        sizes.extend(std::iter::repeat_n(hidden, layers));
        sizes.push(no);
        let mut net = vector_mlp_init(&sizes, seed.wrapping_add(0xd155));
        let last = net.weights.len() - 1;
        let width = net.sizes[last] as f64;
        for w in &mut net.weights[last] {
            *w *= 0.2 / width;
        }
        let diag = r0.sqrt().exp_m1().ln();
        for j in 0..dof {
            for k in 0..=j {
                net.biases[last][tri(j, k)] = if j == k { diag } else { 0.0 };
            }
        }
        let mut m = MatrixDissipation {
            net,
            dof,
            embed,
            q_period,
        };
        if !embed && !q_samples.is_empty() {
            for c in 0..dof {
                let xs: Vec<f64> = q_samples.iter().map(|q| m.wrap(q[c])).collect();
                let mean = xs.iter().sum::<f64>() / xs.len() as f64;
                let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
                m.net.input_shift[c] = mean;
                m.net.input_scale[c] = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
            }
        }
        Ok(m)
    }

    fn wrap(&self, x: f64) -> f64 {
        match self.q_period {
            Some(p) => super::wrap_period(x, p),
            None => x,
        }
    }

    /// Check the network's shapes against `n_coords` coordinates.
    pub fn check(&self, n_coords: usize) -> Result<()> {
        let d = self.dof;
        if d != n_coords {
            return Err(Error::input(format!(
                "learned dissipation matrix is built for {d} coordinates, the system has {n_coords}"
            )));
        }
        let (p, no) = (Self::input_len(d, self.embed), Self::output_len(d));
        let s = &self.net.sizes;
        if s.len() < 3 || s[0] != p || *s.last().unwrap() != no {
            return Err(Error::input(format!(
                "learned dissipation network has layer sizes {s:?}; it needs {p} inputs, a hidden layer and {no} outputs (the lower triangle of L)"
            )));
        }
        crate::train::baselines::validate_any_output(&self.net)
    }

    /// Normalised network inputs of `nb` states (rows of d coordinates), sample-contiguous.
    fn inputs(&self, q: &[f64], nb: usize) -> Vec<f64> {
        let (d, p) = (self.dof, self.net.sizes[0]);
        let mut x = vec![0.0; p * nb];
        for j in 0..nb {
            let qj = &q[j * d..(j + 1) * d];
            let xj = &mut x[j * p..(j + 1) * p];
            for c in 0..d {
                if self.embed {
                    xj[c] = qj[c].cos();
                    xj[d + c] = qj[c].sin();
                } else {
                    xj[c] = self.wrap(qj[c]);
                }
            }
            for (c, xc) in xj.iter_mut().enumerate() {
                *xc = (*xc - self.net.input_shift[c]) / self.net.input_scale[c];
            }
        }
        x
    }

    /// L (row-major d × d, zero above the diagonal) from one state's outputs `o`.
    fn factor(&self, o: &[f64], l: &mut [f64]) {
        let d = self.dof;
        l.fill(0.0);
        for j in 0..d {
            for k in 0..j {
                l[j * d + k] = o[tri(j, k)];
            }
            l[j * d + j] = softplus(o[tri(j, j)]);
        }
    }

    /// ∂D/∂q̇ = R(q_j) v_j of `nb` states (q, v: rows of d) into `out` (nb × d, overwritten).
    pub fn forces_block(&self, q: &[f64], v: &[f64], nb: usize, out: &mut [f64]) {
        let d = self.dof;
        let no = Self::output_len(d);
        let (_, _, o) = vector_mlp_forward_block(&self.net, self.inputs(q, nb), nb);
        let mut l = vec![0.0; d * d];
        let mut y = vec![0.0; d];
        for j in 0..nb {
            self.factor(&o[j * no..(j + 1) * no], &mut l);
            let vj = &v[j * d..(j + 1) * d];
            for (k, yk) in y.iter_mut().enumerate() {
                *yk = (k..d).map(|r| l[r * d + k] * vj[r]).sum();
            }
            for r in 0..d {
                out[j * d + r] = (0..=r).map(|k| l[r * d + k] * y[k]).sum();
            }
        }
    }

    /// R(q) (row-major d × d).
    pub fn matrix(&self, q: &[f64]) -> Vec<f64> {
        let d = self.dof;
        let no = Self::output_len(d);
        let (_, _, o) = vector_mlp_forward_block(&self.net, self.inputs(q, 1), 1);
        let mut l = vec![0.0; d * d];
        self.factor(&o[..no], &mut l);
        let mut r = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                r[i * d + j] = (0..d).map(|k| l[i * d + k] * l[j * d + k]).sum();
            }
        }
        r
    }

    /// Accumulate `scale` · Σ_j ∂(λ_jᵀ R(q_j) v_j)/∂θ into `grad` (layout of
    /// [`crate::train::hyperdual::flatten`]), docs/DESIGN.md (22.2): with y = Lᵀv, z = Lᵀλ,
    /// ∂(λᵀLLᵀv)/∂L_jk = λ_j y_k + v_j z_k (k ≤ j), times σ(o_kk) on the diagonal; then one
    /// reverse sweep of N over the block.
    pub fn adjoint_block(
        &self,
        q: &[f64],
        v: &[f64],
        lam: &[f64],
        nb: usize,
        scale: f64,
        grad: &mut [f64],
    ) {
        if nb == 0 {
            return;
        }
        let d = self.dof;
        let no = Self::output_len(d);
        let (acts, s1s, o) = vector_mlp_forward_block(&self.net, self.inputs(q, nb), nb);
        let mut obar = vec![0.0; no * nb];
        let mut l = vec![0.0; d * d];
        let (mut y, mut z) = (vec![0.0; d], vec![0.0; d]);
        for j in 0..nb {
            let oj = &o[j * no..(j + 1) * no];
            self.factor(oj, &mut l);
            let (vj, lj) = (&v[j * d..(j + 1) * d], &lam[j * d..(j + 1) * d]);
            for k in 0..d {
                y[k] = (k..d).map(|r| l[r * d + k] * vj[r]).sum();
                z[k] = (k..d).map(|r| l[r * d + k] * lj[r]).sum();
            }
            let ob = &mut obar[j * no..(j + 1) * no];
            for r in 0..d {
                for k in 0..=r {
                    let g = lj[r] * y[k] + vj[r] * z[k];
                    ob[tri(r, k)] = scale
                        * if r == k {
                            g * softplus_derivs(oj[tri(r, r)]).1
                        } else {
                            g
                        };
                }
            }
        }
        vector_mlp_backward(&self.net, &acts, &s1s, obar, nb, grad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::hyperdual::{flatten, unflatten};

    fn term(d: usize, embed: bool, seed: u64) -> MatrixDissipation {
        let mut m = MatrixDissipation::new(
            d,
            embed,
            Some(2.0 * std::f64::consts::PI),
            6,
            2,
            seed,
            0.3,
            &[],
        )
        .unwrap();
        // Output weights of order one, so that R varies with q and L has off-diagonal entries.
        let last = m.net.weights.len() - 1;
        for w in &mut m.net.weights[last] {
            *w *= 30.0;
        }
        m.net.biases[last]
            .iter_mut()
            .enumerate()
            .for_each(|(k, b)| *b += 0.2 * k as f64 - 0.3);
        m
    }

    fn states(d: usize, nb: usize, s: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let f = |a: f64, k: usize| (a + 0.77 * k as f64).sin() * 2.0;
        (
            (0..nb * d).map(|k| f(s, k)).collect(),
            (0..nb * d).map(|k| f(s + 1.3, 3 * k)).collect(),
            (0..nb * d).map(|k| f(s - 0.4, 2 * k + 1)).collect(),
        )
    }

    fn value(m: &MatrixDissipation, q: &[f64], v: &[f64]) -> f64 {
        let mut g = vec![0.0; v.len()];
        m.forces_block(q, v, 1, &mut g);
        0.5 * g.iter().zip(v).map(|(g, v)| g * v).sum::<f64>()
    }

    #[test]
    fn force_is_the_velocity_gradient_of_a_nonnegative_d() {
        for (d, embed) in [(2, true), (2, false), (3, true)] {
            let m = term(d, embed, 3);
            m.check(d).unwrap();
            let (q, v, _) = states(d, 1, 0.4);
            // ∂D/∂q̇ against central differences of D = ½ q̇ᵀ R q̇ built from R itself.
            let r = m.matrix(&q);
            let dval = |v: &[f64]| {
                0.5 * (0..d)
                    .map(|i| (0..d).map(|j| v[i] * r[i * d + j] * v[j]).sum::<f64>())
                    .sum::<f64>()
            };
            let mut g = vec![0.0; d];
            m.forces_block(&q, &v, 1, &mut g);
            let h = 1e-6;
            for k in 0..d {
                let (mut vp, mut vm) = (v.clone(), v.clone());
                vp[k] += h;
                vm[k] -= h;
                let fd = (dval(&vp) - dval(&vm)) / (2.0 * h);
                assert!(
                    (fd - g[k]).abs() < 1e-8 * (1.0 + g[k].abs()),
                    "{fd} vs {}",
                    g[k]
                );
            }
            // R symmetric with off-diagonal entries, positive definite.
            assert!((r[1] - r[d]).abs() < 1e-14 && r[1].abs() > 1e-3, "{r:?}");
            assert!(r[0] > 0.0 && r[0] * r[d + 1] - r[1] * r[d] > 0.0);
            assert_eq!(value(&m, &q, &vec![0.0; d]), 0.0);
        }
        // D ≥ 0 whatever the weights: random large weights, many states.
        for s in 0..40u64 {
            let mut m = term(2, s % 2 == 0, 100 + s);
            for w in m.net.weights.iter_mut().flatten() {
                *w *= -7.0;
            }
            let (q, v, _) = states(2, 1, s as f64);
            assert!(value(&m, &q, &v) >= 0.0);
        }
    }

    #[test]
    fn adjoint_matches_finite_differences() {
        for (d, embed) in [(2, true), (2, false), (3, true)] {
            let m = term(d, embed, 5);
            let nb = 7;
            let (q, v, lam) = states(d, nb, 1.1);
            let obj = |m: &MatrixDissipation| {
                let mut g = vec![0.0; nb * d];
                m.forces_block(&q, &v, nb, &mut g);
                g.iter().zip(&lam).map(|(g, l)| g * l).sum::<f64>()
            };
            let theta = flatten(&m.net);
            let mut grad = vec![0.0; theta.len()];
            m.adjoint_block(&q, &v, &lam, nb, -2.0, &mut grad);
            let h = 1e-6;
            let gmax = grad.iter().fold(0.0f64, |a, g| a.max(g.abs()));
            let mut worst = 0.0f64;
            for k in 0..theta.len() {
                let mut tp = theta.clone();
                let (mut mp, mut mm) = (m.clone(), m.clone());
                tp[k] += h;
                unflatten(&mut mp.net, &tp);
                tp[k] -= 2.0 * h;
                unflatten(&mut mm.net, &tp);
                let fd = -2.0 * (obj(&mp) - obj(&mm)) / (2.0 * h);
                worst =
                    worst.max((fd - grad[k]).abs() / (1e-4 * gmax + fd.abs().max(grad[k].abs())));
            }
            assert!(
                worst < 1e-6,
                "d {d} embed {embed}: worst relative error {worst}"
            );
        }
    }

    #[test]
    fn new_starts_near_the_given_rate_and_checks_shapes() {
        let qs: Vec<Vec<f64>> = (0..20)
            .map(|k| vec![0.1 * k as f64, -0.05 * k as f64])
            .collect();
        let rows: Vec<&[f64]> = qs.iter().map(|q| q.as_slice()).collect();
        let m = MatrixDissipation::new(2, false, None, 8, 2, 1, 0.2, &rows).unwrap();
        let r = m.matrix(&[0.3, -0.4]);
        assert!(
            (r[0] - 0.2).abs() < 0.03 && (r[3] - 0.2).abs() < 0.03,
            "{r:?}"
        );
        assert!(r[1].abs() < 0.03, "{r:?}");
        assert!(m.check(3).is_err());
        assert!(MatrixDissipation::new(2, false, None, 8, 2, 1, -1.0, &rows).is_err());
    }
}
