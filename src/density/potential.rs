//! Learned densities with a fixed structure (docs/DESIGN.md §11.1–11.2): a kinetic node term with
//! positive masses and potential-only MLP terms on nodes and on edges.
//!
//! * [`NodeKinetic`]: ρ_i = ½ μ_i |q̇_i|², μ_i > 0 given per node as the site's feature. M is
//!   diagonal and positive definite at every state.
//! * [`PotentialMlp`] with [`PotentialInput::Node`]: ρ_i = N(q_i, f_i) (= −U, a potential
//!   energy with the sign of a Lagrangian term).
//! * [`PotentialMlp`] with [`PotentialInput::EdgeDiff`]: ρ_ab = N(q_b − q_a, f_ab) +
//!   N(q_a − q_b, f_ab): symmetric under swapping the endpoints (the Reynolds symmetrisation of
//!   docs/DESIGN.md §6) and invariant under q → q + c (a density of differences conserves
//!   total momentum).
//!
//! Potential terms do not depend on q̇, so m_s = 0 and c_s = 0 ([`Density::mass_is_zero`]): with
//! a [`NodeKinetic`] term M stays diagonal and the solve is O(n) with no factorisation.
//! Their exact input gradient comes from one batched forward/backward pass
//! ([`mlp_value_grad`]); the training gradient from [`crate::train::hyperdual::adjoint_block`]
//! with u₁ = u₂ = 0 (docs/DESIGN.md §3).

use super::activation::softplus_slices;
use super::{Density, Mlp, SiteLayout};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// ½ μ_i |q̇_i|² per node with the mass μ_i as the site's single feature.
#[derive(Clone, Copy, Debug)]
pub struct NodeKinetic {
    pub dof: usize,
}

impl Density for NodeKinetic {
    fn arity(&self) -> usize {
        1
    }
    fn dof(&self) -> usize {
        self.dof
    }
    fn n_features(&self) -> usize {
        1
    }
    fn name(&self) -> String {
        "kinetic ½μ|q̇|²".into()
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let d = self.dof;
        let lay = self.layout();
        let (p, stride) = (2 * d + 1, lay.stride());
        for s in 0..nb {
            let xs = &x[s * p..(s + 1) * p];
            let (v, m) = (&xs[d..2 * d], xs[2 * d]);
            let r = &mut out[s * stride..(s + 1) * stride];
            r.fill(0.0);
            r[SiteLayout::RHO] = 0.5 * m * v.iter().map(|x| x * x).sum::<f64>();
            for c in 0..d {
                r[lay.grad_v() + c] = m * v[c];
                r[lay.mass() + c * d + c] = m;
            }
        }
    }
    fn eval_sites_accel(
        &self,
        sites: &crate::sites::Sites,
        _q: &[f64],
        _v: &[f64],
        s0: usize,
        nb: usize,
        _x: &mut [f64],
        out: &mut [f64],
    ) {
        let d = self.dof;
        let stride = d + d * d;
        for (r, &m) in out
            .chunks_exact_mut(stride)
            .zip(&sites.features[s0..s0 + nb])
        {
            r.fill(0.0);
            for c in 0..d {
                r[d + c * d + c] = m;
            }
        }
    }
}

/// A closed-form nonlinear spring on every edge (a Fermi–Pasta–Ulam–Tsingou chain for dof 1):
/// ρ_ab = −Σ_c [½ k Δ_c² + ¼ β Δ_c⁴] with Δ = q_b − q_a (q measured from the rest positions).
#[derive(Clone, Copy, Debug)]
pub struct SpringEdge {
    pub dof: usize,
    pub k: f64,
    pub beta: f64,
}

impl Density for SpringEdge {
    fn arity(&self) -> usize {
        2
    }
    fn dof(&self) -> usize {
        self.dof
    }
    fn name(&self) -> String {
        format!("spring k = {}, β = {}", self.k, self.beta)
    }
    fn mass_is_zero(&self) -> bool {
        true
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let d = self.dof;
        let lay = self.layout();
        let (p, stride) = (4 * d, lay.stride());
        for s in 0..nb {
            let xs = &x[s * p..(s + 1) * p];
            let r = &mut out[s * stride..(s + 1) * stride];
            r.fill(0.0);
            for c in 0..d {
                let dl = xs[d + c] - xs[c];
                r[SiteLayout::RHO] -= 0.5 * self.k * dl * dl + 0.25 * self.beta * dl.powi(4);
                let f = self.k * dl + self.beta * dl.powi(3);
                r[lay.grad_q() + c] = f;
                r[lay.grad_q() + d + c] = -f;
            }
        }
    }
}

/// What a potential network sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PotentialInput {
    /// One node: U(q_i, f_i).
    Node,
    /// One edge (a, b): U(q_b − q_a, f) + U(q_a − q_b, f).
    EdgeDiff,
    /// One edge (a, b) of particles with positions q (dof 2 or 3): U(|q_b − q_a|, f), invariant
    /// under translations and rotations (docs/DESIGN.md §14.3); the network takes 1 + nf inputs.
    EdgeDistance,
}

impl PotentialInput {
    /// Inputs of the network besides the features: d for node and edge-difference potentials,
    /// 1 (the distance) for [`PotentialInput::EdgeDistance`].
    pub fn coord_inputs(self, dof: usize) -> usize {
        match self {
            PotentialInput::EdgeDistance => 1,
            _ => dof,
        }
    }
}

/// |Δ| and the unit vector Δ/|Δ| (0 at Δ = 0) of the edge difference Δ = q_b − q_a of one site
/// input `xs` = (q_a, q_b, …).
#[inline]
pub(crate) fn edge_distance(xs: &[f64], d: usize, unit: &mut [f64]) -> f64 {
    let mut r2 = 0.0;
    for k in 0..d {
        unit[k] = xs[d + k] - xs[k];
        r2 += unit[k] * unit[k];
    }
    let r = r2.sqrt();
    let inv = if r > 0.0 { 1.0 / r } else { 0.0 };
    for u in &mut unit[..d] {
        *u *= inv;
    }
    r
}

/// A potential-only density ρ = N(…) (see the module documentation). The network takes
/// `dof + n_features` inputs.
#[derive(Clone, Debug)]
pub struct PotentialMlp {
    pub mlp: Mlp,
    pub input: PotentialInput,
    dof: usize,
    n_features: usize,
    /// Coordinates are angles of this period: the network sees q_i (node) or q_b − q_a (edge)
    /// wrapped into [−P/2, P/2) (docs/DESIGN.md §7); the wrap's derivative is 1.
    pub period: Option<f64>,
}

/// x wrapped by `period` when there is one (see [`PotentialMlp::period`]).
#[inline]
pub(crate) fn wrap_opt(x: f64, period: Option<f64>) -> f64 {
    match period {
        Some(p) => super::wrap_period(x, p),
        None => x,
    }
}

impl PotentialMlp {
    pub fn new(
        mlp: Mlp,
        input: PotentialInput,
        dof: usize,
        n_features: usize,
    ) -> crate::Result<Self> {
        mlp.validate()?;
        if input == PotentialInput::EdgeDistance && !(2..=3).contains(&dof) {
            return Err(crate::Error::input(format!(
                "an edge-distance potential needs particle positions in 2-D or 3-D (dof 2 or 3), not dof {dof}"
            )));
        }
        let ci = input.coord_inputs(dof);
        if mlp.sizes[0] != ci + n_features {
            return Err(crate::Error::input(format!(
                "potential network input size {} does not match {ci} coordinate input(s) + {n_features} features",
                mlp.sizes[0]
            )));
        }
        if mlp.n_hidden() == 0 {
            return Err(crate::Error::input(
                "a potential network needs at least one hidden layer",
            ));
        }
        Ok(PotentialMlp {
            mlp,
            input,
            dof,
            n_features,
            period: None,
        })
    }

    /// The same network seeing angles of `period` (see [`PotentialMlp::period`]).
    pub fn with_period(mut self, period: Option<f64>) -> crate::Result<Self> {
        if let Some(p) = period {
            if !(p.is_finite() && p > 0.0) {
                return Err(crate::Error::input(format!(
                    "the coordinate period must be positive and finite, got {p}"
                )));
            }
        }
        self.period = period;
        Ok(self)
    }

    /// Network inputs of `nb` sites (column-major `(d + nf) × nb·copies`) from site inputs `x`
    /// (column-major `(2kd + nf) × nb`); edge sites give two columns, +Δ then −Δ.
    fn net_inputs(&self, x: &[f64], nb: usize, xn: &mut [f64]) {
        let (d, nf) = (self.dof, self.n_features);
        let p = self.input_len();
        let pn = self.mlp.sizes[0];
        let mut unit = [0.0; 3];
        for s in 0..nb {
            let xs = &x[s * p..(s + 1) * p];
            let f = &xs[p - nf..];
            match self.input {
                PotentialInput::Node => {
                    let c = &mut xn[s * pn..(s + 1) * pn];
                    for k in 0..d {
                        c[k] = wrap_opt(xs[k], self.period);
                    }
                    c[d..].copy_from_slice(f);
                }
                PotentialInput::EdgeDiff => {
                    let (c0, c1) = xn[2 * s * pn..(2 * s + 2) * pn].split_at_mut(pn);
                    for k in 0..d {
                        let delta = wrap_opt(xs[d + k] - xs[k], self.period);
                        c0[k] = delta;
                        c1[k] = -delta;
                    }
                    c0[d..].copy_from_slice(f);
                    c1[d..].copy_from_slice(f);
                }
                PotentialInput::EdgeDistance => {
                    let c = &mut xn[s * pn..(s + 1) * pn];
                    c[0] = edge_distance(xs, d, &mut unit);
                    c[1..].copy_from_slice(f);
                }
            }
        }
    }

    fn copies(&self) -> usize {
        match self.input {
            PotentialInput::Node | PotentialInput::EdgeDistance => 1,
            PotentialInput::EdgeDiff => 2,
        }
    }

    /// ρ and ∂ρ/∂q_I of `nb` sites: `rho[s]`, `gq[s·kd ..]`.
    fn eval(&self, x: &[f64], nb: usize, rho: &mut [f64], gq: &mut [f64]) {
        let d = self.dof;
        let pn = self.mlp.sizes[0];
        let m = nb * self.copies();
        POT_WS.with(|cell| {
            let mut ws = cell.borrow_mut();
            let need = 2 * pn * m + m;
            if ws.len() < need {
                ws.resize(need, 0.0);
            }
            let (xn, rest) = ws.split_at_mut(pn * m);
            let (g, rest) = rest.split_at_mut(pn * m);
            let val = &mut rest[..m];
            self.net_inputs(x, nb, xn);
            mlp_value_grad(&self.mlp, xn, m, val, g);
            match self.input {
                PotentialInput::Node => {
                    for s in 0..nb {
                        rho[s] = val[s];
                        for k in 0..d {
                            gq[s * d + k] = g[s * pn + k];
                        }
                    }
                }
                PotentialInput::EdgeDiff => {
                    for s in 0..nb {
                        rho[s] = val[2 * s] + val[2 * s + 1];
                        for k in 0..d {
                            // ∂/∂q_b [U(Δ) + U(−Δ)] = U'(Δ) − U'(−Δ); ∂/∂q_a is its negative.
                            let gb = g[2 * s * pn + k] - g[(2 * s + 1) * pn + k];
                            gq[s * 2 * d + k] = -gb;
                            gq[s * 2 * d + d + k] = gb;
                        }
                    }
                }
                PotentialInput::EdgeDistance => {
                    // ∂/∂q_b U(|Δ|) = U'(r) Δ/r; ∂/∂q_a is its negative.
                    let p = self.input_len();
                    let mut unit = [0.0; 3];
                    for s in 0..nb {
                        rho[s] = val[s];
                        edge_distance(&x[s * p..(s + 1) * p], d, &mut unit);
                        for k in 0..d {
                            let gb = g[s * pn] * unit[k];
                            gq[s * 2 * d + k] = -gb;
                            gq[s * 2 * d + d + k] = gb;
                        }
                    }
                }
            }
        });
    }
}

thread_local! {
    static POT_WS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    static GRAD_WS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Density for PotentialMlp {
    fn arity(&self) -> usize {
        match self.input {
            PotentialInput::Node => 1,
            PotentialInput::EdgeDiff | PotentialInput::EdgeDistance => 2,
        }
    }
    fn dof(&self) -> usize {
        self.dof
    }
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn name(&self) -> String {
        let s: Vec<String> = self.mlp.sizes.iter().map(|s| s.to_string()).collect();
        let what = match self.input {
            PotentialInput::Node => "node",
            PotentialInput::EdgeDiff => "edge-difference",
            PotentialInput::EdgeDistance => "edge-distance",
        };
        format!("{what} potential mlp {}", s.join("-"))
    }
    fn mass_is_zero(&self) -> bool {
        true
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let lay = self.layout();
        let (kd, stride) = (lay.kd, lay.stride());
        let mut rho = vec![0.0; nb];
        let mut gq = vec![0.0; nb * kd];
        self.eval(x, nb, &mut rho, &mut gq);
        for s in 0..nb {
            let r = &mut out[s * stride..(s + 1) * stride];
            r.fill(0.0);
            r[SiteLayout::RHO] = rho[s];
            r[lay.grad_q()..lay.grad_q() + kd].copy_from_slice(&gq[s * kd..(s + 1) * kd]);
        }
    }
    fn eval_block_accel(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        // Record: b contribution ∂ρ/∂q_I (kd values), no mass block.
        let kd = self.arity() * self.dof;
        GRAD_WS.with(|cell| {
            let mut rho = cell.borrow_mut();
            if rho.len() < nb {
                rho.resize(nb, 0.0);
            }
            self.eval(x, nb, &mut rho[..nb], &mut out[..nb * kd]);
        });
    }
}

/// Values and input gradients of a scalar softplus MLP at `m` inputs: `x` column-major
/// `sizes[0] × m` (raw, un-normalised), `val[j]` = network(x_j), `grad` column-major
/// `sizes[0] × m` with ∂network/∂x. One forward and one backward GEMM per layer.
pub fn mlp_value_grad(mlp: &Mlp, x: &[f64], m: usize, val: &mut [f64], grad: &mut [f64]) {
    let sizes = &mlp.sizes;
    let p = sizes[0];
    let nh = mlp.n_hidden();
    let hsum: usize = sizes[1..=nh].iter().sum();
    let hmax = sizes[1..=nh].iter().copied().max().unwrap_or(1);
    MLP_WS.with(|cell| {
        let mut ws = cell.borrow_mut();
        let need = p * m + 2 * hsum * m + 3 * hmax * m;
        if ws.len() < need {
            ws.resize(need, 0.0);
        }
        let (xn, rest) = ws.split_at_mut(p * m);
        let (acts, rest) = rest.split_at_mut(hsum * m);
        let (sig, rest) = rest.split_at_mut(hsum * m);
        let (z, rest) = rest.split_at_mut(hmax * m);
        let (dl, rest) = rest.split_at_mut(hmax * m);
        let tmp = &mut rest[..hmax * m];
        for j in 0..m {
            for i in 0..p {
                xn[j * p + i] = (x[j * p + i] - mlp.input_shift[i]) / mlp.input_scale[i];
            }
        }
        // Forward.
        let mut off = 0;
        let mut offs = Vec::with_capacity(nh);
        for l in 0..nh {
            let (nin, nout) = (sizes[l], sizes[l + 1]);
            let input: &[f64] = if l == 0 {
                xn
            } else {
                &acts[offs[l - 1]..offs[l - 1] + nin * m]
            };
            let z = &mut z[..nout * m];
            matmul(
                MatMut::from_column_major_slice_mut(z, nout, m),
                Accum::Replace,
                MatRef::from_row_major_slice(&mlp.weights[l], nout, nin),
                MatRef::from_column_major_slice(input, nin, m),
                1.0,
                Par::Seq,
            );
            for col in z.chunks_exact_mut(nout) {
                for (zi, b) in col.iter_mut().zip(&mlp.biases[l]) {
                    *zi += b;
                }
            }
            let (a, s1) = (
                &mut acts[off..off + nout * m],
                &mut sig[off..off + nout * m],
            );
            softplus_slices(z, a, s1, &mut tmp[..nout * m]);
            offs.push(off);
            off += nout * m;
        }
        // Output layer and the last adjoint δ = w_L ⊙ σ'.
        let hl = sizes[nh];
        let wl = &mlp.weights[nh];
        let bl = mlp.biases[nh][0];
        let al = &acts[offs[nh - 1]..offs[nh - 1] + hl * m];
        let sl = &sig[offs[nh - 1]..offs[nh - 1] + hl * m];
        for j in 0..m {
            let a = &al[j * hl..(j + 1) * hl];
            val[j] = bl + super::activation::dot(wl, a);
            for i in 0..hl {
                dl[j * hl + i] = wl[i] * sl[j * hl + i];
            }
        }
        // Backward through the hidden layers: δ_{l−1} = (W_lᵀ δ_l) ⊙ σ'_{l−1}.
        for l in (1..nh).rev() {
            let (nin, nout) = (sizes[l], sizes[l + 1]);
            let t = &mut tmp[..nin * m];
            matmul(
                MatMut::from_column_major_slice_mut(t, nin, m),
                Accum::Replace,
                MatRef::from_row_major_slice(&mlp.weights[l], nout, nin).transpose(),
                MatRef::from_column_major_slice(&dl[..nout * m], nout, m),
                1.0,
                Par::Seq,
            );
            let s = &sig[offs[l - 1]..offs[l - 1] + nin * m];
            for ((d, t), s) in dl[..nin * m].iter_mut().zip(t.iter()).zip(s) {
                *d = t * s;
            }
        }
        let h0 = sizes[1];
        matmul(
            MatMut::from_column_major_slice_mut(&mut grad[..p * m], p, m),
            Accum::Replace,
            MatRef::from_row_major_slice(&mlp.weights[0], h0, p).transpose(),
            MatRef::from_column_major_slice(&dl[..h0 * m], h0, m),
            1.0,
            Par::Seq,
        );
        for j in 0..m {
            for i in 0..p {
                grad[j * p + i] /= mlp.input_scale[i];
            }
        }
    });
}

thread_local! {
    static MLP_WS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::density::eval_one;

    fn net(p: usize, seed: u64) -> Mlp {
        let mut m = Mlp::paper_init(&[p, 7, 5, 1], seed);
        for (i, b) in m.biases.iter_mut().flatten().enumerate() {
            *b = 0.1 * (i as f64).sin();
        }
        m.input_shift = (0..p).map(|i| 0.1 * i as f64).collect();
        m.input_scale = (0..p).map(|i| 0.5 + 0.3 * i as f64).collect();
        m
    }

    #[test]
    fn value_grad_matches_forward_and_finite_differences() {
        let mlp = net(3, 4);
        let x = [0.3, -0.7, 1.1, -0.2, 0.4, 0.9];
        let (mut val, mut g) = (vec![0.0; 2], vec![0.0; 6]);
        mlp_value_grad(&mlp, &x, 2, &mut val, &mut g);
        for j in 0..2 {
            let xj = &x[j * 3..(j + 1) * 3];
            assert!((val[j] - mlp.forward(xj)).abs() < 1e-12);
            for i in 0..3 {
                let h = 1e-6;
                let (mut a, mut b) = (xj.to_vec(), xj.to_vec());
                a[i] += h;
                b[i] -= h;
                let fd = (mlp.forward(&a) - mlp.forward(&b)) / (2.0 * h);
                assert!((g[j * 3 + i] - fd).abs() < 1e-8, "{} vs {fd}", g[j * 3 + i]);
            }
        }
    }

    #[test]
    fn edge_potential_is_symmetric_shift_invariant_and_exact() {
        // dof 2, one feature: site input (q_a, q_b, v_a, v_b, f).
        let pot = PotentialMlp::new(net(3, 9), PotentialInput::EdgeDiff, 2, 1).unwrap();
        let x = [0.2, -0.4, 1.0, 0.3, 0.5, 0.6, -0.1, 0.2, 0.7];
        let r = eval_one(&pot, &x);
        let lay = pot.layout();
        let swapped = [1.0, 0.3, 0.2, -0.4, -0.1, 0.2, 0.5, 0.6, 0.7];
        assert!((eval_one(&pot, &swapped)[0] - r[0]).abs() < 1e-13);
        let shifted = [1.2, 0.6, 2.0, 1.3, 0.5, 0.6, -0.1, 0.2, 0.7];
        assert!((eval_one(&pot, &shifted)[0] - r[0]).abs() < 1e-12);
        for i in 0..4 {
            let h = 1e-6;
            let (mut a, mut b) = (x, x);
            a[i] += h;
            b[i] -= h;
            let fd = (eval_one(&pot, &a)[0] - eval_one(&pot, &b)[0]) / (2.0 * h);
            assert!((r[lay.grad_q() + i] - fd).abs() < 1e-8);
        }
        // No velocity dependence: ∂ρ/∂v, m and c·v vanish.
        assert!(r[lay.grad_v()..].iter().all(|&x| x == 0.0));
        // The lean record equals the full record's b contribution.
        let mut acc = vec![0.0; 4];
        pot.eval_block_accel(&x, 1, &mut acc);
        for i in 0..4 {
            assert!((acc[i] - r[lay.grad_q() + i]).abs() < 1e-15);
        }
    }

    /// U(|q_b − q_a|): invariant under a rotation and a translation of both particles and under
    /// swapping them; its gradient against central differences (dof 2 and 3).
    #[test]
    fn edge_distance_potential_is_rigid_motion_invariant_and_exact() {
        for d in [2usize, 3] {
            let pot = PotentialMlp::new(net(2, 5), PotentialInput::EdgeDistance, d, 1).unwrap();
            assert!(PotentialMlp::new(net(2, 5), PotentialInput::EdgeDistance, 1, 1).is_err());
            let mut x: Vec<f64> = (0..4 * d).map(|i| 0.3 * (i as f64 * 1.7).sin()).collect();
            x.push(0.8);
            let r = eval_one(&pot, &x);
            let lay = pot.layout();
            // Rotation about the last axis by 0.7 and a translation, applied to both nodes.
            let (c, sn) = (0.7f64.cos(), 0.7f64.sin());
            let mut y = x.clone();
            for a in 0..2 {
                let (q0, q1) = (x[a * d], x[a * d + 1]);
                y[a * d] = c * q0 - sn * q1 + 0.4;
                y[a * d + 1] = sn * q0 + c * q1 - 1.1;
            }
            assert!((eval_one(&pot, &y)[0] - r[0]).abs() < 1e-12);
            let mut sw = x.clone();
            for k in 0..d {
                sw.swap(k, d + k);
            }
            assert!((eval_one(&pot, &sw)[0] - r[0]).abs() < 1e-13);
            for i in 0..2 * d {
                let h = 1e-6;
                let (mut a, mut b) = (x.clone(), x.clone());
                a[i] += h;
                b[i] -= h;
                let fd = (eval_one(&pot, &a)[0] - eval_one(&pot, &b)[0]) / (2.0 * h);
                assert!((r[lay.grad_q() + i] - fd).abs() < 1e-8, "{i}: {fd}");
            }
        }
    }

    #[test]
    fn node_kinetic_record() {
        let k = NodeKinetic { dof: 2 };
        let r = eval_one(&k, &[0.1, 0.2, 3.0, -4.0, 2.0]);
        let lay = k.layout();
        assert!((r[0] - 25.0).abs() < 1e-14);
        assert_eq!(&r[lay.grad_v()..lay.grad_v() + 2], &[6.0, -8.0]);
        assert_eq!(&r[lay.mass()..lay.mass() + 4], &[2.0, 0.0, 0.0, 2.0]);
    }
}
