//! Non-conservative forces (docs/DESIGN.md §13): a Rayleigh dissipation function summed over
//! site families and generalised forces B u(t), entering the Euler–Lagrange equations as
//!
//! ```text
//! M q̈ = ∂L/∂q − C q̇ − ∂D/∂q̇ + B u(t)                                               (13.1)
//! ```
//!
//! Every dissipation form here is ½ q̇ᵀ R(q) q̇ with R ⪰ 0 by construction, so D ≥ 0 and
//! D(q, 0) = 0, and ∂D/∂q̇ = R q̇ is local (a node's own velocity, or an edge's two ends): it is a
//! vector added to the right-hand side b, M and its pattern are unchanged and the solve stays
//! the same sparse O(n) solve.
//!
//! * [`DissipationTerm::Linear`]: D = ½ Σ_j c_j q̇_j² (per coordinate: joint friction, viscous
//!   drag on every node);
//! * [`DissipationTerm::Edge`]: D = ½ Σ_{e=(a,b)} c_e |q̇_b − q̇_a|² (dampers between nodes);
//! * [`DissipationTerm::Learned`]: D = ½ Σ_i γ_i(q_i) |q̇_i|², γ_i = s_i · softplus(N(q_i, f_i)), a
//!   learned, state-dependent, always non-negative coefficient.

use super::mlp::{softplus, softplus_derivs, Mlp};
use crate::{Error, Result};
use rayon::prelude::*;

/// Which dissipation a model learns (`lgn train --dissipation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DissipationKind {
    /// Conservative: no dissipation term.
    #[default]
    None,
    /// Linear viscous damping with learned constant coefficients c ≥ 0.
    Linear,
    /// A learned state-dependent coefficient γ(q, f) = s·softplus(N(q, f)) ≥ 0 per node.
    Learned,
}

crate::named!(DissipationKind {
    None => "none": "conservative: no dissipation term",
    Linear => "linear": "linear viscous damping ½ Σ c_k q̇_k² with learned constants c_k ≥ 0",
    Learned => "learned": "a learned state-dependent coefficient γ(q, f) = s·softplus(N(q, f)) ≥ 0 per node",
});

/// A learned per-node dissipation coefficient γ_i = s_i · softplus(N(x_i)), x_i = (q_i, f_i)
/// (q_i left out when `q_input` is false: a coefficient that depends on the features alone).
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedNodeDissipation {
    pub net: Mlp,
    /// Feed the node's coordinates to the network.
    pub q_input: bool,
    /// Coordinates per node.
    pub dof: usize,
    /// Per-node features (n × `n_features`, row-major).
    pub features: Vec<f64>,
    pub n_features: usize,
    /// Per-node scale s_i (1, or the lumped area on meshes).
    pub scale: Vec<f64>,
}

impl LearnedNodeDissipation {
    /// Network input width: d (when `q_input`) + features, at least 1 (a constant input 1).
    pub fn input_len(q_input: bool, dof: usize, n_features: usize) -> usize {
        ((if q_input { dof } else { 0 }) + n_features).max(1)
    }

    fn n_nodes(&self) -> usize {
        self.scale.len()
    }

    fn input(&self, i: usize, q: &[f64], x: &mut [f64]) {
        let d = self.dof;
        let mut k = 0;
        if self.q_input {
            x[..d].copy_from_slice(&q[i * d..(i + 1) * d]);
            k = d;
        }
        let nf = self.n_features;
        x[k..k + nf].copy_from_slice(&self.features[i * nf..(i + 1) * nf]);
        if k + nf == 0 {
            x[0] = 1.0;
        }
    }

    /// γ_i for every node into `out`.
    pub fn coefficients(&self, q: &[f64], out: &mut [f64]) {
        let p = self.net.sizes[0];
        let wmax = *self.net.sizes.iter().max().unwrap();
        out.par_chunks_mut(256).enumerate().for_each_init(
            || (vec![0.0; p], vec![0.0; wmax], vec![0.0; wmax]),
            |(x, a, z), (b, chunk)| {
                for (j, o) in chunk.iter_mut().enumerate() {
                    let i = b * 256 + j;
                    self.input(i, q, x);
                    *o = self.scale[i] * softplus(forward(&self.net, x, a, z));
                }
            },
        );
    }
}

/// Columns (sample, node) per block of [`LearnedNodeDissipation::adjoint_batch`].
const ADJOINT_COLS: usize = 512;
/// Fixed number of block groups summed in order (deterministic whatever the thread count).
const ADJOINT_GROUPS: usize = 8;

impl LearnedNodeDissipation {
    /// Accumulate Σ_samples ∂/∂θ λᵀ(−∂D/∂q̇) = −Σ_{samples, i} (λ_i·q̇_i) s_i σ(N_i) ∂N_i/∂θ
    /// (docs/DESIGN.md (13.3)) into `grad` (layout of [`crate::train::hyperdual::flatten`]).
    /// The (sample, node) columns are packed into blocks of [`ADJOINT_COLS`]: every layer's
    /// forward and backward pass is one matrix product per block; blocks run in parallel in
    /// [`ADJOINT_GROUPS`] groups summed in order.
    pub fn adjoint_batch(&self, samples: &[(&[f64], &[f64], &[f64])], grad: &mut [f64]) {
        use ndarray::{Array2, ArrayView2, Axis};
        let (n, d) = (self.n_nodes(), self.dof);
        let total = samples.len() * n;
        if total == 0 {
            return;
        }
        let net = &self.net;
        let nl = net.weights.len();
        let p = net.sizes[0];
        let offs = crate::train::hyperdual::param_offsets(&net.sizes);
        let blocks = total.div_ceil(ADJOINT_COLS);
        let per = blocks.div_ceil(ADJOINT_GROUPS).max(1);
        let np = grad.len();
        let parts: Vec<Vec<f64>> = (0..blocks.div_ceil(per))
            .into_par_iter()
            .map(|grp| {
                let mut g = vec![0.0; np];
                let mut x = vec![0.0; p];
                for b in grp * per..((grp + 1) * per).min(blocks) {
                    let j0 = b * ADJOINT_COLS;
                    let cols = ADJOINT_COLS.min(total - j0);
                    let mut a0 = Array2::<f64>::zeros((p, cols));
                    let mut w = vec![0.0; cols];
                    for c in 0..cols {
                        let (smp, i) = ((j0 + c) / n, (j0 + c) % n);
                        let (q, v, lam) = samples[smp];
                        w[c] = (0..d).map(|k| lam[i * d + k] * v[i * d + k]).sum::<f64>()
                            * self.scale[i];
                        self.input(i, q, &mut x);
                        for r in 0..p {
                            a0[[r, c]] = (x[r] - net.input_shift[r]) / net.input_scale[r];
                        }
                    }
                    // Forward: activations and softplus' = σ of every hidden layer.
                    let mut acts = vec![a0];
                    let mut sigs: Vec<Array2<f64>> = Vec::with_capacity(nl);
                    for l in 0..nl {
                        let (nin, nout) = (net.sizes[l], net.sizes[l + 1]);
                        let wl = ArrayView2::from_shape((nout, nin), &net.weights[l]).expect("W");
                        let mut z = wl.dot(&acts[l]);
                        for (mut row, bias) in z.axis_iter_mut(Axis(0)).zip(&net.biases[l]) {
                            row += *bias;
                        }
                        let sg = z.mapv(|z| softplus_derivs(z).1);
                        if l + 1 < nl {
                            acts.push(z.mapv(softplus));
                        }
                        sigs.push(sg);
                    }
                    // δ at the output: −(λ_i·v_i) s_i σ(N_i).
                    let mut delta = Array2::<f64>::zeros((1, cols));
                    for c in 0..cols {
                        delta[[0, c]] = -w[c] * sigs[nl - 1][[0, c]];
                    }
                    for l in (0..nl).rev() {
                        let (nin, nout) = (net.sizes[l], net.sizes[l + 1]);
                        let (wo, bo) = offs[l];
                        let gw = delta.dot(&acts[l].t());
                        for (gk, x) in g[wo..wo + nout * nin].iter_mut().zip(gw.iter()) {
                            *gk += x;
                        }
                        for (gk, x) in g[bo..bo + nout].iter_mut().zip(delta.sum_axis(Axis(1))) {
                            *gk += x;
                        }
                        if l > 0 {
                            let wl =
                                ArrayView2::from_shape((nout, nin), &net.weights[l]).expect("W");
                            delta = wl.t().dot(&delta) * &sigs[l - 1];
                        }
                    }
                }
                g
            })
            .collect();
        for part in parts {
            for (g, x) in grad.iter_mut().zip(part) {
                *g += x;
            }
        }
    }
}

/// Allocation-free forward pass of a scalar MLP (scratch `a`, `z` of the widest layer).
fn forward(net: &Mlp, x: &[f64], a: &mut [f64], z: &mut [f64]) -> f64 {
    let n0 = net.sizes[0];
    for j in 0..n0 {
        a[j] = (x[j] - net.input_shift[j]) / net.input_scale[j];
    }
    let nl = net.weights.len();
    for l in 0..nl {
        let (nin, nout) = (net.sizes[l], net.sizes[l + 1]);
        for (i, zi) in z.iter_mut().enumerate().take(nout) {
            let row = &net.weights[l][i * nin..(i + 1) * nin];
            *zi = net.biases[l][i] + row.iter().zip(&a[..nin]).map(|(w, a)| w * a).sum::<f64>();
        }
        for (ai, &zi) in a.iter_mut().zip(z.iter()).take(nout) {
            *ai = if l + 1 < nl { softplus(zi) } else { zi };
        }
    }
    a[0]
}

/// One family of dissipative sites.
#[derive(Clone, Debug, PartialEq)]
pub enum DissipationTerm {
    /// D = ½ Σ_j c_j q̇_j², one c_j ≥ 0 per coordinate (n·d values).
    Linear { c: Vec<f64> },
    /// D = ½ Σ_e c_e |q̇_b − q̇_a|² over edges e = (a, b), c_e ≥ 0; `dof` coordinates per node.
    Edge {
        edges: Vec<[usize; 2]>,
        c: Vec<f64>,
        dof: usize,
    },
    /// D = ½ Σ_i γ_i(q_i) |q̇_i|² with a learned γ_i ≥ 0.
    Learned(LearnedNodeDissipation),
    /// D = ½ q̇ᵀ L(q)L(q)ᵀ q̇ with a learned lower-triangular L of positive diagonal (a
    /// single-network model's learned dissipation, docs/DESIGN.md §22.1).
    Matrix(super::dissipation_matrix::MatrixDissipation),
}

impl DissipationTerm {
    /// Name in model files and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            DissipationTerm::Linear { .. } => "linear",
            DissipationTerm::Edge { .. } => "edge_linear",
            DissipationTerm::Learned(_) => "learned",
            DissipationTerm::Matrix(_) => "learned_matrix",
        }
    }

    /// Check the term against a system of `n_coords` coordinates.
    pub fn check(&self, n_coords: usize) -> Result<()> {
        let nonneg = |name: &str, c: &[f64]| -> Result<()> {
            if let Some(i) = c.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err(Error::input(format!(
                    "{name} damping coefficient [{i}] = {} must be finite and ≥ 0 (a negative one would inject energy)",
                    c[i]
                )));
            }
            Ok(())
        };
        match self {
            DissipationTerm::Linear { c } => {
                if c.len() != n_coords {
                    return Err(Error::input(format!(
                        "linear damping has {} coefficients, the system has {n_coords} coordinates",
                        c.len()
                    )));
                }
                nonneg("linear", c)
            }
            DissipationTerm::Edge { edges, c, dof } => {
                if c.len() != edges.len() {
                    return Err(Error::input(format!(
                        "edge damping has {} coefficients for {} edges",
                        c.len(),
                        edges.len()
                    )));
                }
                let nn = n_coords / (*dof).max(1);
                if let Some(e) = edges.iter().find(|e| e[0] >= nn || e[1] >= nn) {
                    return Err(Error::input(format!(
                        "edge damping: edge {e:?} refers to a node ≥ {nn}"
                    )));
                }
                nonneg("edge", c)
            }
            DissipationTerm::Learned(l) => {
                if l.n_nodes() * l.dof != n_coords {
                    return Err(Error::input(format!(
                        "learned dissipation is built for {} nodes × {} coordinates, the system has {n_coords}",
                        l.n_nodes(),
                        l.dof
                    )));
                }
                let p = LearnedNodeDissipation::input_len(l.q_input, l.dof, l.n_features);
                if l.net.sizes[0] != p || *l.net.sizes.last().unwrap() != 1 {
                    return Err(Error::input(format!(
                        "learned dissipation network takes {} inputs and gives {} outputs, need {p} and 1",
                        l.net.sizes[0],
                        l.net.sizes.last().unwrap()
                    )));
                }
                if l.features.len() != l.n_nodes() * l.n_features {
                    return Err(Error::input(
                        "learned dissipation: feature table size mismatch",
                    ));
                }
                l.net.validate()
            }
            DissipationTerm::Matrix(m) => m.check(n_coords),
        }
    }

    /// Add R(q) q̇ = ∂D/∂q̇ into `g`; `work` holds per-node coefficients (learned term).
    fn add_grad_v(&self, q: &[f64], v: &[f64], g: &mut [f64], work: &mut Vec<f64>) {
        match self {
            DissipationTerm::Linear { c } => {
                for ((g, c), v) in g.iter_mut().zip(c).zip(v) {
                    *g += c * v;
                }
            }
            DissipationTerm::Edge { edges, c, dof } => {
                let d = *dof;
                for (&[a, b], &ce) in edges.iter().zip(c) {
                    for k in 0..d {
                        let r = ce * (v[b * d + k] - v[a * d + k]);
                        g[b * d + k] += r;
                        g[a * d + k] -= r;
                    }
                }
            }
            DissipationTerm::Learned(l) => {
                work.resize(l.n_nodes(), 0.0);
                l.coefficients(q, work);
                let d = l.dof;
                for (i, &gi) in work.iter().enumerate() {
                    for k in 0..d {
                        g[i * d + k] += gi * v[i * d + k];
                    }
                }
            }
            DissipationTerm::Matrix(m) => {
                work.resize(v.len(), 0.0);
                m.forces_block(q, v, 1, work);
                for (g, w) in g.iter_mut().zip(work.iter()) {
                    *g += w;
                }
            }
        }
    }

    /// D(q, q̇) of this term.
    pub fn value(&self, q: &[f64], v: &[f64]) -> f64 {
        let mut g = vec![0.0; v.len()];
        self.add_grad_v(q, v, &mut g, &mut vec![]);
        // Quadratic in q̇: D = ½ q̇ᵀR q̇ = ½ q̇·∂D/∂q̇.
        0.5 * g.iter().zip(v).map(|(g, v)| g * v).sum::<f64>()
    }

    /// Trainable parameters (the learned network; none for the closed forms).
    pub fn n_params(&self) -> usize {
        match self {
            DissipationTerm::Learned(l) => l.net.n_params(),
            DissipationTerm::Matrix(m) => m.net.n_params(),
            _ => 0,
        }
    }

    /// Accumulate ∂/∂θ of λᵀ(−∂D/∂q̇) (the dissipation's part of the adjoint (3.1), see
    /// docs/DESIGN.md §13.2) into `grad`.
    pub fn adjoint(&self, q: &[f64], v: &[f64], lam: &[f64], grad: &mut [f64]) {
        match self {
            DissipationTerm::Learned(l) => l.adjoint_batch(&[(q, v, lam)], grad),
            DissipationTerm::Matrix(m) => m.adjoint_block(q, v, lam, 1, -1.0, grad),
            _ => {}
        }
    }
}

/// A time signal u(t) ∈ R^m.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// Samples (t_k, u_k), linearly interpolated; held constant outside [t_0, t_last].
    Sampled {
        times: Vec<f64>,
        /// T × m, row-major.
        values: Vec<f64>,
        width: usize,
    },
    /// u_j(t) = amp_j sin(ω t + φ) (a prescribed harmonic drive).
    Sine {
        amp: Vec<f64>,
        omega: f64,
        phase: f64,
    },
    /// A constant u (set per training sample).
    Constant(Vec<f64>),
    /// u_j(t) = amp_j sin(ω_j t + φ_j): one harmonic drive per component, each with its own
    /// frequency and phase (`lgn generate wave-mesh --forcing`).
    Harmonics {
        amp: Vec<f64>,
        omega: Vec<f64>,
        phase: Vec<f64>,
    },
}

impl Signal {
    pub fn width(&self) -> usize {
        match self {
            Signal::Sampled { width, .. } => *width,
            Signal::Sine { amp, .. } => amp.len(),
            Signal::Constant(u) => u.len(),
            Signal::Harmonics { amp, .. } => amp.len(),
        }
    }

    /// A sampled signal with its checks (`what` names the source in messages).
    pub fn sampled(times: Vec<f64>, values: Vec<f64>, width: usize, what: &str) -> Result<Signal> {
        if times.is_empty() || width == 0 || values.len() != times.len() * width {
            return Err(Error::input(format!(
                "{what}: u has {} values, expected {} times × width {width}",
                values.len(),
                times.len()
            )));
        }
        crate::error::check_finite(&format!("{what}: u"), &values)?;
        crate::error::check_finite(&format!("{what}: times"), &times)?;
        if let Some(k) = (1..times.len()).find(|&k| times[k] <= times[k - 1]) {
            return Err(Error::input(format!(
                "{what}: the input times must increase, but t[{k}] = {} ≤ t[{}] = {}",
                times[k],
                k - 1,
                times[k - 1]
            )));
        }
        Ok(Signal::Sampled {
            times,
            values,
            width,
        })
    }

    /// The first sample time after `t` of a sampled signal (where its linear interpolation
    /// has a kink; times within a few ulps of `t` count as reached). `None` for smooth signals.
    pub fn next_kink(&self, t: f64) -> Option<f64> {
        let Signal::Sampled { times, .. } = self else {
            return None;
        };
        let tiny = 64.0 * f64::EPSILON * t.abs().max(1.0);
        let k = times.partition_point(|&x| x <= t + tiny);
        times.get(k).copied()
    }

    /// u(t) into `out` (length [`Signal::width`]).
    pub fn eval(&self, t: f64, out: &mut [f64]) {
        match self {
            Signal::Sampled {
                times,
                values,
                width,
            } => {
                let m = *width;
                let last = times.len() - 1;
                if t <= times[0] || last == 0 {
                    out.copy_from_slice(&values[..m]);
                } else if t >= times[last] {
                    out.copy_from_slice(&values[last * m..]);
                } else {
                    let k = times.partition_point(|&x| x <= t) - 1;
                    let w = (t - times[k]) / (times[k + 1] - times[k]);
                    for j in 0..m {
                        out[j] = (1.0 - w) * values[k * m + j] + w * values[(k + 1) * m + j];
                    }
                }
            }
            Signal::Sine { amp, omega, phase } => {
                let s = (omega * t + phase).sin();
                for (o, a) in out.iter_mut().zip(amp) {
                    *o = a * s;
                }
            }
            Signal::Constant(u) => out.copy_from_slice(u),
            Signal::Harmonics { amp, omega, phase } => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = amp[j] * (omega[j] * t + phase[j]).sin();
                }
            }
        }
    }
}

/// Generalised force B u(t): a given input map B (n·d × m, row-major) and a signal u.
#[derive(Clone, Debug, PartialEq)]
pub struct InputForce {
    pub map: Vec<f64>,
    pub signal: Signal,
}

impl InputForce {
    pub fn width(&self) -> usize {
        self.signal.width()
    }
    fn check(&self, n_coords: usize) -> Result<()> {
        let m = self.width();
        if self.map.len() != n_coords * m {
            return Err(Error::input(format!(
                "the input map B has {} values; the system has {n_coords} coordinates and u has width {m}, so B needs {n_coords} × {m}",
                self.map.len()
            )));
        }
        crate::error::check_finite("input map B", &self.map)
    }
}

/// Everything non-conservative acting on a system: dissipation terms and an input force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forces {
    pub dissipation: Vec<DissipationTerm>,
    pub input: Option<InputForce>,
}

/// Dissipated and injected power at one state: P_diss = q̇·∂D/∂q̇ ≥ 0, P_inj = q̇·B u(t).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Power {
    pub dissipated: f64,
    pub injected: f64,
}

impl Forces {
    pub fn is_empty(&self) -> bool {
        self.dissipation.is_empty() && self.input.is_none()
    }

    /// Check every part against a system of `n_coords` coordinates.
    pub fn check(&self, n_coords: usize) -> Result<()> {
        for t in &self.dissipation {
            t.check(n_coords)?;
        }
        if let Some(i) = &self.input {
            i.check(n_coords)?;
        }
        Ok(())
    }

    /// ∂D/∂q̇ (summed over terms) into `g` (overwritten).
    pub fn dissipation_grad(&self, q: &[f64], v: &[f64], g: &mut [f64]) {
        g.fill(0.0);
        let mut work = vec![];
        for t in &self.dissipation {
            t.add_grad_v(q, v, g, &mut work);
        }
    }

    /// B u(t) into `f` (overwritten; zero without an input).
    pub fn input_force(&self, t: f64, f: &mut [f64]) {
        f.fill(0.0);
        if let Some(inp) = &self.input {
            let m = inp.width();
            let mut u = vec![0.0; m];
            inp.signal.eval(t, &mut u);
            for (fi, row) in f.iter_mut().zip(inp.map.chunks_exact(m)) {
                *fi = row.iter().zip(&u).map(|(b, u)| b * u).sum();
            }
        }
    }

    /// The generalised force F = −∂D/∂q̇ + B u(t), added to `f`.
    pub fn add_force(&self, q: &[f64], v: &[f64], t: f64, f: &mut [f64]) {
        let n = f.len();
        let mut g = vec![0.0; n];
        self.dissipation_grad(q, v, &mut g);
        let mut bu = vec![0.0; n];
        self.input_force(t, &mut bu);
        for j in 0..n {
            f[j] += bu[j] - g[j];
        }
    }

    /// D(q, q̇) summed over the terms.
    pub fn dissipation_value(&self, q: &[f64], v: &[f64]) -> f64 {
        self.dissipation.iter().map(|t| t.value(q, v)).sum()
    }

    /// Dissipated and injected power at (q, q̇, t).
    pub fn power(&self, q: &[f64], v: &[f64], t: f64) -> Power {
        let n = v.len();
        let mut g = vec![0.0; n];
        self.dissipation_grad(q, v, &mut g);
        let mut bu = vec![0.0; n];
        self.input_force(t, &mut bu);
        Power {
            dissipated: g.iter().zip(v).map(|(g, v)| g * v).sum(),
            injected: bu.iter().zip(v).map(|(b, v)| b * v).sum(),
        }
    }

    /// Parameters of the learned terms, term after term.
    pub fn params(&self) -> Vec<f64> {
        self.dissipation
            .iter()
            .filter_map(|t| match t {
                DissipationTerm::Learned(l) => Some(crate::train::hyperdual::flatten(&l.net)),
                DissipationTerm::Matrix(m) => Some(crate::train::hyperdual::flatten(&m.net)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Number of parameters of [`Forces::params`].
    pub fn n_params(&self) -> usize {
        self.dissipation.iter().map(|t| t.n_params()).sum()
    }

    /// Write parameters back (inverse of [`Forces::params`]).
    pub fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        if theta.len() != self.n_params() {
            return Err(Error::input(format!(
                "{} dissipation parameters given, need {}",
                theta.len(),
                self.n_params()
            )));
        }
        let mut o = 0;
        for t in &mut self.dissipation {
            let net = match t {
                DissipationTerm::Learned(l) => &mut l.net,
                DissipationTerm::Matrix(m) => &mut m.net,
                _ => continue,
            };
            let k = net.n_params();
            crate::train::hyperdual::unflatten(net, &theta[o..o + k]);
            o += k;
        }
        Ok(())
    }

    /// Accumulate the adjoint gradient ∂/∂θ λᵀ(−∂D/∂q̇) of the learned terms (layout of
    /// [`Forces::params`]).
    pub fn adjoint(&self, q: &[f64], v: &[f64], lam: &[f64], grad: &mut [f64]) {
        let mut o = 0;
        for t in &self.dissipation {
            let k = t.n_params();
            if k > 0 {
                t.adjoint(q, v, lam, &mut grad[o..o + k]);
            }
            o += k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(n: usize, d: usize, q_input: bool, seed: u64) -> LearnedNodeDissipation {
        let nf = 2;
        let p = LearnedNodeDissipation::input_len(q_input, d, nf);
        LearnedNodeDissipation {
            net: Mlp::paper_init(&[p, 6, 6, 1], seed),
            q_input,
            dof: d,
            features: (0..n * nf).map(|k| 0.3 + 0.1 * (k % 5) as f64).collect(),
            n_features: nf,
            scale: (0..n).map(|i| 0.5 + 0.1 * i as f64).collect(),
        }
    }

    fn state(n: usize, seed: f64) -> (Vec<f64>, Vec<f64>) {
        let q = (0..n).map(|j| (seed + 0.7 * j as f64).sin()).collect();
        let v = (0..n)
            .map(|j| (seed * 1.3 + 0.4 * j as f64).cos())
            .collect();
        (q, v)
    }

    fn forces(n: usize, d: usize) -> Forces {
        let nc = n * d;
        Forces {
            dissipation: vec![
                DissipationTerm::Linear {
                    c: (0..nc).map(|j| 0.1 * (j + 1) as f64).collect(),
                },
                DissipationTerm::Edge {
                    edges: (0..n - 1).map(|i| [i, i + 1]).collect(),
                    c: (0..n - 1).map(|i| 0.2 + 0.05 * i as f64).collect(),
                    dof: d,
                },
                DissipationTerm::Learned(learned(n, d, true, 3)),
            ],
            input: Some(InputForce {
                map: (0..nc * 2).map(|k| ((k * 7) % 5) as f64 * 0.1).collect(),
                signal: Signal::Sine {
                    amp: vec![1.0, 0.5],
                    omega: 2.0,
                    phase: 0.3,
                },
            }),
        }
    }

    #[test]
    fn grad_v_matches_finite_differences_and_d_is_nonnegative() {
        let (n, d) = (5, 2);
        let f = forces(n, d);
        f.check(n * d).unwrap();
        let (q, v) = state(n * d, 0.4);
        let mut g = vec![0.0; n * d];
        f.dissipation_grad(&q, &v, &mut g);
        let h = 1e-6;
        for j in 0..n * d {
            let (mut vp, mut vm) = (v.clone(), v.clone());
            vp[j] += h;
            vm[j] -= h;
            let fd = (f.dissipation_value(&q, &vp) - f.dissipation_value(&q, &vm)) / (2.0 * h);
            assert!(
                (fd - g[j]).abs() < 1e-7 * (1.0 + g[j].abs()),
                "{j}: {fd} vs {}",
                g[j]
            );
        }
        assert!(f.dissipation_value(&q, &v) > 0.0);
        assert_eq!(f.dissipation_value(&q, &vec![0.0; n * d]), 0.0);
        // Non-negative at many random states, whatever the network's weights.
        for s in 0..50 {
            let mut l = learned(n, d, true, 100 + s);
            for w in &mut l.net.weights[2] {
                *w *= -30.0;
            }
            let t = DissipationTerm::Learned(l);
            let (q, v) = state(n * d, s as f64);
            assert!(t.value(&q, &v) >= 0.0);
        }
        // Power = q̇·∂D/∂q̇ = 2D for these quadratic forms.
        let p = f.power(&q, &v, 0.0);
        assert!((p.dissipated - 2.0 * f.dissipation_value(&q, &v)).abs() < 1e-12);
    }

    #[test]
    fn adjoint_matches_finite_differences() {
        let (n, d) = (4, 2);
        for q_input in [true, false] {
            let mut terms = vec![DissipationTerm::Learned(learned(n, d, q_input, 5))];
            if q_input {
                // With a matrix term next to it: the parameters of both, in order.
                let m = super::super::dissipation_matrix::MatrixDissipation::new(
                    n * d,
                    false,
                    None,
                    5,
                    1,
                    7,
                    0.2,
                    &[],
                )
                .unwrap();
                terms.push(DissipationTerm::Matrix(m));
            }
            let f = Forces {
                dissipation: terms,
                input: None,
            };
            let (q, v) = state(n * d, 1.1);
            let lam: Vec<f64> = (0..n * d).map(|j| 0.3 - 0.1 * j as f64).collect();
            let obj = |f: &Forces| {
                let mut g = vec![0.0; n * d];
                f.dissipation_grad(&q, &v, &mut g);
                -g.iter().zip(&lam).map(|(g, l)| g * l).sum::<f64>()
            };
            let mut grad = vec![0.0; f.n_params()];
            f.adjoint(&q, &v, &lam, &mut grad);
            let theta = f.params();
            let h = 1e-6;
            let mut worst = 0.0f64;
            for k in 0..theta.len() {
                let mut fp = f.clone();
                let mut tp = theta.clone();
                tp[k] += h;
                fp.set_params(&tp).unwrap();
                let mut fm = f.clone();
                tp[k] -= 2.0 * h;
                fm.set_params(&tp).unwrap();
                let fd = (obj(&fp) - obj(&fm)) / (2.0 * h);
                worst = worst.max((fd - grad[k]).abs() / (1e-6 + fd.abs().max(grad[k].abs())));
            }
            assert!(
                worst < 1e-5,
                "q_input {q_input}: worst relative error {worst}"
            );
        }
    }

    #[test]
    fn checks_reject_negative_and_mismatched() {
        let bad = Forces {
            dissipation: vec![DissipationTerm::Linear { c: vec![0.1, -0.2] }],
            input: None,
        };
        let e = bad.check(2).unwrap_err().to_string();
        assert!(e.contains("≥ 0"), "{e}");
        assert!(bad.check(3).is_err());
        let inp = Forces {
            dissipation: vec![],
            input: Some(InputForce {
                map: vec![1.0; 5],
                signal: Signal::Constant(vec![1.0, 2.0]),
            }),
        };
        let e = inp.check(3).unwrap_err().to_string();
        assert!(e.contains("3 × 2"), "{e}");
        assert!(Signal::sampled(vec![0.0, 1.0], vec![1.0; 3], 2, "u.h5").is_err());
        assert!(Signal::sampled(vec![0.0, 0.0], vec![1.0; 2], 1, "u.h5").is_err());
    }

    #[test]
    fn sampled_signal_interpolates() {
        let s = Signal::sampled(
            vec![0.0, 1.0, 3.0],
            vec![0.0, 10.0, 2.0, 20.0, 6.0, 60.0],
            2,
            "x",
        )
        .unwrap();
        let mut u = [0.0; 2];
        s.eval(2.0, &mut u);
        assert!((u[0] - 4.0).abs() < 1e-14 && (u[1] - 40.0).abs() < 1e-12);
        s.eval(-1.0, &mut u);
        assert_eq!(u, [0.0, 10.0]);
        s.eval(5.0, &mut u);
        assert_eq!(u, [6.0, 60.0]);
    }
}
