//! Softplus MLP densities with exact input derivatives (docs/DESIGN.md §2).
//!
//! ρ(x) = w_Lᵀ a_{L-1} + b_L, a_l = σ(z_l), z_l = W_l a_{l-1} + b_l, a_0 = x (normalised).
//!
//! Forward tangents J_{l+1} = W_{l+1} diag(σ'(z_l)) J_l are propagated only along the D = kd + 1
//! directions we need (the kd velocity unit vectors and the direction (v_I, 0) in the q slots),
//! the backward adjoint δ_{l-1} = W_lᵀ(σ'(z_l) ⊙ δ_l) gives ∇ρ, and the exact Hessian is
//! ∇²ρ = Σ_l J_lᵀ diag(δ_l ⊙ σ''(z_l)) J_l restricted to those directions.
//!
//! Performance choices: the columns of a whole block of sites (value column + D tangent columns
//! per site) are stacked so each hidden layer is one GEMM `W_{l+1} · [a | σ'⊙T]` of width
//! B·(D + 1), and the backward pass one GEMM `W_lᵀ · G` of width B, both through faer's GEMM
//! (AVX-512/AVX2 kernels chosen at run time). Per site this is (kd + 3)·Σ h_l h_{l-1}
//! multiply-adds; the Hessian contraction is O(D² h) and the activations O(h).

use super::{Density, SiteLayout};
use faer::{Accum, MatMut, MatRef};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// A fully connected softplus network `sizes[0] → sizes[1] → … → 1` with input normalisation.
///
/// Weights are stored row-major (C order) as `out × in`, the layout of the HDF5 model schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Layer sizes, input first, last entry 1.
    pub sizes: Vec<usize>,
    /// `weights[l]` is `sizes[l+1] × sizes[l]`, row-major.
    pub weights: Vec<Vec<f64>>,
    /// `biases[l]` has `sizes[l+1]` entries.
    pub biases: Vec<Vec<f64>>,
    /// The network sees (x - input_shift) / input_scale.
    pub input_shift: Vec<f64>,
    pub input_scale: Vec<f64>,
}

impl Mlp {
    /// The paper's initialisation (appendix C; docs/DESIGN.md §4): biases 0, weights N(0, σ²) with
    /// σ = (1/√n)·{2.2 first layer; 0.58·i hidden layer i; n output layer}, n the layer's larger
    /// dimension. Deterministic for a given seed.
    pub fn paper_init(sizes: &[usize], seed: u64) -> Mlp {
        assert!(sizes.len() >= 2 && *sizes.last().unwrap() == 1);
        let mut rng = StdRng::seed_from_u64(seed);
        let nl = sizes.len() - 1;
        let mut weights = Vec::with_capacity(nl);
        let mut biases = Vec::with_capacity(nl);
        for l in 0..nl {
            let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
            let n = fan_in.max(fan_out) as f64;
            let factor = if l == 0 {
                2.2
            } else if l == nl - 1 {
                n
            } else {
                0.58 * l as f64
            };
            let std = factor / n.sqrt();
            let normal = Normal::new(0.0, std).expect("finite std");
            weights.push(
                (0..fan_in * fan_out)
                    .map(|_| normal.sample(&mut rng))
                    .collect(),
            );
            biases.push(vec![0.0; fan_out]);
        }
        Mlp {
            sizes: sizes.to_vec(),
            weights,
            biases,
            input_shift: vec![0.0; sizes[0]],
            input_scale: vec![1.0; sizes[0]],
        }
    }

    /// Number of hidden layers.
    pub fn n_hidden(&self) -> usize {
        self.sizes.len() - 2
    }

    /// Total number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.weights.iter().map(Vec::len).sum::<usize>()
            + self.biases.iter().map(Vec::len).sum::<usize>()
    }

    /// Check internal consistency (shapes, finite values, positive scales).
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        if self.sizes.len() < 2 || *self.sizes.last().unwrap() != 1 {
            return Err(Error::input(format!(
                "MLP layer sizes {:?} must end in 1",
                self.sizes
            )));
        }
        if self.weights.len() != self.sizes.len() - 1 || self.biases.len() != self.sizes.len() - 1 {
            return Err(Error::input(
                "MLP has the wrong number of layers for its sizes",
            ));
        }
        for l in 0..self.weights.len() {
            if self.weights[l].len() != self.sizes[l] * self.sizes[l + 1]
                || self.biases[l].len() != self.sizes[l + 1]
            {
                return Err(Error::input(format!(
                    "MLP layer {l} has the wrong shape for sizes {:?}",
                    self.sizes
                )));
            }
            crate::error::check_finite(&format!("layer {l} weight"), &self.weights[l])?;
            crate::error::check_finite(&format!("layer {l} bias"), &self.biases[l])?;
        }
        if self.input_shift.len() != self.sizes[0] || self.input_scale.len() != self.sizes[0] {
            return Err(Error::input("MLP input normalisation has the wrong length"));
        }
        crate::error::check_finite("input_shift", &self.input_shift)?;
        if self
            .input_scale
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(Error::input("MLP input_scale must be finite and positive"));
        }
        Ok(())
    }

    /// Plain forward pass for one input (no derivatives); used by tests and baselines.
    pub fn forward(&self, x: &[f64]) -> f64 {
        let mut a: Vec<f64> = x
            .iter()
            .zip(&self.input_shift)
            .zip(&self.input_scale)
            .map(|((x, m), s)| (x - m) / s)
            .collect();
        let nl = self.weights.len();
        for l in 0..nl {
            let (nin, nout) = (self.sizes[l], self.sizes[l + 1]);
            let mut z = self.biases[l].clone();
            for (i, zi) in z.iter_mut().enumerate() {
                let row = &self.weights[l][i * nin..(i + 1) * nin];
                *zi += row.iter().zip(&a).map(|(w, a)| w * a).sum::<f64>();
            }
            a = if l + 1 < nl {
                z.iter().map(|&z| softplus(z)).collect()
            } else {
                z
            };
            debug_assert_eq!(a.len(), nout);
        }
        a[0]
    }
}

use super::activation::{dot_g, softplus_slices_g};
pub use super::activation::{softplus, softplus_derivs};
use super::simd::{self, FmaMode, Kernel, Real, SimdLevel};

/// Floating-point precision of the MLP passes of an [`MlpDensity`].
///
/// `F32` evaluates the network (GEMMs, activations, Hessian contraction) in single precision,
/// with twice the SIMD lanes and half the memory traffic; the site records are returned in f64,
/// and assembly and the solve of M·a = b stay f64. The records then carry relative errors of
/// order 1e-6 (f32 rounding through the layers), which the solve passes on amplified by at most
/// M's condition number: see the README's precision section for measured acceleration errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F64,
    F32,
}

impl Precision {
    /// "f64" / "f32".
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
    /// Parse "f64" / "f32".
    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "f64" | "double" => Some(Precision::F64),
            "f32" | "single" => Some(Precision::F32),
            _ => None,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The network's parameters in the form the passes use, in one scalar type.
#[derive(Clone, Debug)]
struct Net<T> {
    /// `w[l]` row-major `sizes[l+1] × sizes[l]`; `w[0]` is the first layer with the input
    /// normalisation folded in, W₀' = W₀ diag(1/scale); `w[nh]` the output row.
    w: Vec<Vec<T>>,
    /// `b[0]` = b₀ − W₀' shift, then the other biases.
    b: Vec<Vec<T>>,
    /// Columns of W₀' for the velocity slots, column-major h₀ × kd: the (constant) layer-0
    /// tangents along the velocity unit vectors.
    w0_vcols: Vec<T>,
}

impl Net<f64> {
    fn cast<T: Real>(&self) -> Net<T> {
        let c = |v: &Vec<f64>| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        Net {
            w: self.w.iter().map(c).collect(),
            b: self.b.iter().map(c).collect(),
            w0_vcols: c(&self.w0_vcols),
        }
    }
}

/// An [`Mlp`] used as a site density with `arity` nodes of `dof` coordinates and `n_features`
/// extra inputs; input length 2·arity·dof + n_features must equal `mlp.sizes[0]`.
#[derive(Clone, Debug)]
pub struct MlpDensity {
    pub mlp: Mlp,
    arity: usize,
    dof: usize,
    n_features: usize,
    /// The parameters with the input normalisation folded in (f64), and their f32 copy when
    /// the precision is f32.
    net: Net<f64>,
    net32: Option<Net<f32>>,
    precision: Precision,
    /// A pinned SIMD level (tests, comparisons); `None`: [`simd::active`].
    simd: Option<SimdLevel>,
    /// Angle coordinates: when set to P, every q slot is wrapped into [−P/2, P/2] before the
    /// network sees it (see [`wrap_period`]); derivatives are unchanged (the wrap has slope 1).
    q_period: Option<f64>,
    /// Angle embedding (docs/DESIGN.md §14.6): the network's input is
    /// (cos q_I, sin q_I, v_I, f_s), length 3kd + n_features, and ρ is 2π-periodic and smooth
    /// in every q slot.
    embed: bool,
}

/// x − P·⌊x/P + 1/2⌋: the representative of x in the half-open [−P/2, P/2) (angles with
/// P = 2π: [−π, π), so θ = π and θ = −π both map to −π). This is the rule of docs/SCHEMA.md,
/// `x - P*np.floor(x/P + 0.5)` in numpy; ties never depend on a rounding mode (Rust's `round`
/// is half away from zero, numpy's half to even).
#[inline]
pub fn wrap_period(x: f64, period: f64) -> f64 {
    x - period * (x / period + 0.5).floor()
}

impl MlpDensity {
    pub fn new(mlp: Mlp, arity: usize, dof: usize, n_features: usize) -> crate::Result<Self> {
        Self::with_input(mlp, arity, dof, n_features, false)
    }

    /// [`MlpDensity::new`] with the choice of the network's input: `embed` false, the site
    /// input x_s itself (length 2kd + n_features); true, the angle embedding
    /// (cos q_I, sin q_I, v_I, f_s) of length 3kd + n_features (docs/DESIGN.md §14.6).
    pub fn with_input(
        mlp: Mlp,
        arity: usize,
        dof: usize,
        n_features: usize,
        embed: bool,
    ) -> crate::Result<Self> {
        mlp.validate()?;
        let kd = arity * dof;
        let p = if embed { 3 * kd } else { 2 * kd } + n_features;
        if mlp.sizes[0] != p {
            return Err(crate::Error::input(if embed {
                format!(
                    "MLP input size {} does not match the angle-embedded site input (cos q, sin q, v, f): 3·{arity}·{dof} + {n_features} = {p}",
                    mlp.sizes[0]
                )
            } else {
                format!(
                    "MLP input size {} does not match the site input 2·{arity}·{dof} + {n_features} = {p}",
                    mlp.sizes[0]
                )
            }));
        }
        if mlp.n_hidden() == 0 {
            return Err(crate::Error::input("an MLP density needs at least one hidden layer (a linear density has no mass matrix)"));
        }
        let h = mlp.sizes[1];
        let mut w0 = mlp.weights[0].clone();
        let mut b0 = mlp.biases[0].clone();
        for i in 0..h {
            for j in 0..p {
                w0[i * p + j] /= mlp.input_scale[j];
                b0[i] -= w0[i * p + j] * mlp.input_shift[j];
            }
        }
        let voff = if embed { 2 * kd } else { kd };
        let mut w0_vcols = vec![0.0; h * kd];
        for j in 0..kd {
            for i in 0..h {
                w0_vcols[j * h + i] = w0[i * p + voff + j];
            }
        }
        let mut w = mlp.weights.clone();
        let mut b = mlp.biases.clone();
        w[0] = w0;
        b[0] = b0;
        Ok(MlpDensity {
            mlp,
            arity,
            dof,
            n_features,
            net: Net { w, b, w0_vcols },
            net32: None,
            precision: Precision::F64,
            simd: None,
            q_period: None,
            embed,
        })
    }

    /// True when the network sees the angle embedding (cos q, sin q) instead of q (see
    /// [`MlpDensity::with_input`]).
    pub fn embedded(&self) -> bool {
        self.embed
    }

    /// Evaluate the network in this precision (see [`Precision`]); the default is f64.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self.net32 = match precision {
            Precision::F64 => None,
            Precision::F32 => Some(self.net.cast::<f32>()),
        };
        self
    }

    /// The precision of the passes.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Pin the SIMD level of the elementwise kernels (clamped to the CPU's; `None`: the
    /// detected level, [`simd::active`]). For comparisons and tests; results agree across
    /// levels to rounding.
    pub fn with_simd(mut self, level: Option<SimdLevel>) -> Self {
        self.simd = level;
        self
    }

    /// Treat the q coordinates as periodic with this period (angles: 2π): the network sees
    /// them wrapped into [−P/2, P/2]. `None` (the default) leaves them as they are.
    pub fn with_q_period(mut self, period: Option<f64>) -> crate::Result<Self> {
        if let Some(p) = period {
            if !(p.is_finite() && p > 0.0) {
                return Err(crate::Error::input(format!(
                    "the coordinate period must be positive, got {p}"
                )));
            }
        }
        self.q_period = period;
        Ok(self)
    }

    /// The period given to [`MlpDensity::with_q_period`].
    pub fn q_period(&self) -> Option<f64> {
        self.q_period
    }
}

impl Density for MlpDensity {
    fn arity(&self) -> usize {
        self.arity
    }
    fn dof(&self) -> usize {
        self.dof
    }
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn name(&self) -> String {
        let s: Vec<String> = self.mlp.sizes.iter().map(|s| s.to_string()).collect();
        match self.precision {
            Precision::F64 => format!("softplus mlp {}", s.join("-")),
            p => format!("softplus mlp {} ({p})", s.join("-")),
        }
    }

    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        debug_assert_eq!(x.len(), self.input_len() * nb);
        debug_assert_eq!(out.len(), self.layout().stride() * nb);
        let level = self.simd.unwrap_or_else(simd::active);
        match &self.net32 {
            Some(net) if self.precision == Precision::F32 => simd::dispatch(
                level,
                EvalBlock {
                    dens: self,
                    net,
                    x,
                    nb,
                    out,
                },
            ),
            _ => simd::dispatch(
                level,
                EvalBlock {
                    dens: self,
                    net: &self.net,
                    x,
                    nb,
                    out,
                },
            ),
        }
    }
}

/// One block of [`MlpDensity::eval_block`] as a dispatched kernel.
struct EvalBlock<'a, T> {
    dens: &'a MlpDensity,
    net: &'a Net<T>,
    x: &'a [f64],
    nb: usize,
    out: &'a mut [f64],
}

impl<T: Real> Kernel for EvalBlock<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<F: FmaMode>(self) {
        self.dens
            .eval_block_impl::<T, F>(self.net, self.x, self.nb, self.out)
    }
}

/// The next `len` values of a workspace.
#[inline(always)]
fn carve<'a, T>(rest: &mut &'a mut [T], len: usize) -> &'a mut [T] {
    let (head, tail) = std::mem::take(rest).split_at_mut(len);
    *rest = tail;
    head
}

/// Scratch buffers of one block pass (see `eval_block_impl`).
struct Buffers<'a, 'b, T> {
    r: &'a mut [&'b mut [T]],
    sd: &'a mut [&'b mut [T]],
    sdd: &'a mut [&'b mut [T]],
    u: &'b mut [T],
    rho_acc: &'b mut [T],
    delta: &'b mut [T],
    g: &'b mut [T],
    hess: &'b mut [T],
    grad_x: &'b mut [T],
    wj: &'b mut [T],
}

impl MlpDensity {
    #[inline(always)]
    fn eval_block_impl<T: Real, F: FmaMode>(
        &self,
        net: &Net<T>,
        x: &[f64],
        nb: usize,
        out: &mut [f64],
    ) {
        let kd = self.arity * self.dof;
        let p = self.input_len();
        let dd = kd + 1; // tangent directions: kd velocity units + (v_I, 0)
        let nh = self.mlp.n_hidden();
        let sizes = &self.mlp.sizes;
        let width = nb * (1 + dd);

        // r[l]: h_l × B(1+D) column-major: [z_l (B cols) | T_l (B·D cols, col s·D + j)].
        let hmax = sizes[1..=nh].iter().copied().max().unwrap_or(1);
        let hsum: usize = sizes[1..=nh].iter().sum();
        let pn = sizes[0];
        let direct = if self.q_period.is_none() && !self.embed {
            T::from_f64_slice(x)
        } else {
            None
        };
        let ndir = if self.embed { 2 * kd * nb } else { 0 };
        // One per-thread workspace, carved into the pass's buffers: no allocation or zeroing
        // per block (only the Hessian accumulator is cleared).
        let need = hsum * width
            + 2 * hsum * nb
            + hmax * width
            + nb
            + 2 * hmax * nb
            + nb * dd * dd
            + pn * nb
            + hmax
            + ndir
            + if direct.is_none() { pn * nb } else { 0 };
        let mut ws = T::take_workspace();
        if ws.len() < need {
            ws.resize(need, T::ZERO);
        }
        {
            let mut rest: &mut [T] = &mut ws[..need];
            let mut r: Vec<&mut [T]> = (0..nh)
                .map(|l| carve(&mut rest, sizes[l + 1] * width))
                .collect();
            let mut sd: Vec<&mut [T]> = (0..nh)
                .map(|l| carve(&mut rest, sizes[l + 1] * nb))
                .collect(); // σ'
            let mut sdd: Vec<&mut [T]> = (0..nh)
                .map(|l| carve(&mut rest, sizes[l + 1] * nb))
                .collect(); // σ''
            let u = carve(&mut rest, hmax * width);
            let rho_acc = carve(&mut rest, nb);
            let delta = carve(&mut rest, hmax * nb);
            let g = carve(&mut rest, hmax * nb);
            let hess = carve(&mut rest, nb * dd * dd);
            hess.fill(T::ZERO);
            let grad_x = carve(&mut rest, pn * nb);
            let wj = carve(&mut rest, hmax);
            let qdir = carve(&mut rest, ndir);
            let xt: &[T] = match direct {
                Some(x) => x,
                None if self.embed => {
                    // y = (cos q, sin q, v, f) and the direction J_q v = (−sin q ⊙ v, cos q ⊙ v)
                    // of the c-tangent (docs/DESIGN.md §14.6).
                    let xw = carve(&mut rest, pn * nb);
                    for ((yw, xs), dw) in xw
                        .chunks_exact_mut(pn)
                        .zip(x.chunks_exact(p))
                        .zip(qdir.chunks_exact_mut(2 * kd))
                    {
                        for i in 0..kd {
                            let (sn, cs) = xs[i].sin_cos();
                            let v = xs[kd + i];
                            yw[i] = T::from_f64(cs);
                            yw[kd + i] = T::from_f64(sn);
                            yw[2 * kd + i] = T::from_f64(v);
                            dw[i] = T::from_f64(-sn * v);
                            dw[kd + i] = T::from_f64(cs * v);
                        }
                        for (d, &f) in yw[3 * kd..].iter_mut().zip(&xs[2 * kd..]) {
                            *d = T::from_f64(f);
                        }
                    }
                    xw
                }
                None => {
                    let xw = carve(&mut rest, p * nb);
                    for (site, xs) in xw.chunks_exact_mut(p).zip(x.chunks_exact(p)) {
                        for (i, (d, &s)) in site.iter_mut().zip(xs).enumerate() {
                            *d = T::from_f64(match self.q_period {
                                Some(period) if i < kd => wrap_period(s, period),
                                _ => s,
                            });
                        }
                    }
                    xw
                }
            };
            self.passes::<T, F>(
                net,
                xt,
                nb,
                out,
                (!qdir.is_empty()).then_some(&*qdir),
                Buffers {
                    r: &mut r,
                    sd: &mut sd,
                    sdd: &mut sdd,
                    u,
                    rho_acc,
                    delta,
                    g,
                    hess,
                    grad_x,
                    wj,
                },
            );
        }
        T::put_workspace(ws);
    }

    /// The forward-tangent and backward passes for one block (docs/DESIGN.md §2). `x` is the
    /// network's input (`sizes[0]` rows per site); with the angle embedding `qdir` holds the
    /// c-direction J_q v_I in the (cos, sin) slots, 2kd rows per site (docs/DESIGN.md §14.6).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn passes<T: Real, F: FmaMode>(
        &self,
        net: &Net<T>,
        x: &[T],
        nb: usize,
        out: &mut [f64],
        qdir: Option<&[T]>,
        buf: Buffers<'_, '_, T>,
    ) {
        let Buffers {
            r,
            sd,
            sdd,
            u,
            rho_acc,
            delta,
            g,
            hess,
            grad_x,
            wj,
        } = buf;
        let lay = self.layout();
        let kd = lay.kd;
        let p = self.mlp.sizes[0];
        let dd = kd + 1;
        let nh = self.mlp.n_hidden();
        let sizes = &self.mlp.sizes;
        let width = nb * (1 + dd);
        let weight = |l: usize| MatRef::from_row_major_slice(&net.w[l], sizes[l + 1], sizes[l]);
        // Layer 0: z_0 = W₀'x + b₀', tangents T_0 = W₀' · directions.
        let h0 = sizes[1];
        let w0 = weight(0);
        {
            let (z, t) = r[0].split_at_mut(h0 * nb);
            T::gemm(
                MatMut::from_column_major_slice_mut(z, h0, nb),
                Accum::Replace,
                w0,
                MatRef::from_column_major_slice(x, p, nb),
            );
            for s in 0..nb {
                let zs = &mut z[s * h0..(s + 1) * h0];
                for (zi, bi) in zs.iter_mut().zip(&net.b[0]) {
                    *zi += *bi;
                }
            }
            // c-direction: W₀'[:, 0..kd] · v_I, into scratch u then copied to column s·D + kd.
            let tmp = &mut u[..h0 * nb];
            match qdir {
                Some(dir) => T::gemm(
                    MatMut::from_column_major_slice_mut(tmp, h0, nb),
                    Accum::Replace,
                    w0.subcols(0, 2 * kd),
                    MatRef::from_column_major_slice(dir, 2 * kd, nb),
                ),
                None => T::gemm(
                    MatMut::from_column_major_slice_mut(tmp, h0, nb),
                    Accum::Replace,
                    w0.subcols(0, kd),
                    MatRef::from_column_major_slice(x, p, nb).subrows(kd, kd),
                ),
            }
            for s in 0..nb {
                let base = s * dd * h0;
                t[base..base + kd * h0].copy_from_slice(&net.w0_vcols);
                t[base + kd * h0..base + (kd + 1) * h0].copy_from_slice(&tmp[s * h0..(s + 1) * h0]);
            }
        }

        // Hidden layers forward.
        for l in 0..nh {
            let h = sizes[l + 1];
            let (rl, rest) = r.split_at_mut(l + 1);
            let rl = &mut rl[l];
            let (z, t) = rl.split_at(h * nb);
            let sdl = &mut sd[l];
            let sddl = &mut sdd[l];
            // activations: u[:, s] = σ(z), σ', σ''
            softplus_slices_g::<T, F>(z, &mut u[..h * nb], sdl, sddl);
            if l + 1 < nh {
                // u[:, B + s·D + j] = σ'(z_s) ⊙ T[:, s·D + j]
                for s in 0..nb {
                    let sds = &sdl[s * h..(s + 1) * h];
                    for j in 0..dd {
                        let off = (s * dd + j) * h;
                        let src = &t[off..off + h];
                        let dst = &mut u[h * nb + off..h * nb + off + h];
                        for ((d, a), b) in dst.iter_mut().zip(sds).zip(src) {
                            *d = *a * *b;
                        }
                    }
                }
                let hn = sizes[l + 2];
                let rn = &mut rest[0];
                T::gemm(
                    MatMut::from_column_major_slice_mut(rn, hn, width),
                    Accum::Replace,
                    weight(l + 1),
                    MatRef::from_column_major_slice(&u[..h * width], h, width),
                );
                let b = &net.b[l + 1];
                for s in 0..nb {
                    for (zi, bi) in rn[s * hn..(s + 1) * hn].iter_mut().zip(b) {
                        *zi += *bi;
                    }
                }
            } else {
                // output layer: ρ = w_L · a + b_L
                let wl = &net.w[nh];
                let bl = net.b[nh][0];
                for s in 0..nb {
                    let a = &u[s * h..(s + 1) * h];
                    rho_acc[s] = bl + dot_g::<T, F>(a, wl);
                }
            }
        }

        // Backward: δ_{nh-1} = w_L; Hessian terms; δ_{l-1} = W_lᵀ(σ'(z_l) ⊙ δ_l).
        {
            let h = sizes[nh];
            let wl = &net.w[nh];
            for s in 0..nb {
                delta[s * h..(s + 1) * h].copy_from_slice(wl);
            }
        }
        for l in (0..nh).rev() {
            let h = sizes[l + 1];
            let t = &r[l][h * nb..];
            let (sdl, sddl) = (&sd[l], &sdd[l]);
            for s in 0..nb {
                let ds = &delta[s * h..(s + 1) * h];
                let ss = &sddl[s * h..(s + 1) * h];
                let hs = &mut hess[s * dd * dd..(s + 1) * dd * dd];
                for j in 0..kd {
                    let tj = &t[(s * dd + j) * h..(s * dd + j + 1) * h];
                    for (((w, a), b), c) in wj[..h].iter_mut().zip(ds).zip(ss).zip(tj) {
                        *w = *a * *b * *c;
                    }
                    for k in j..dd {
                        let tk = &t[(s * dd + k) * h..(s * dd + k + 1) * h];
                        hs[j * dd + k] += dot_g::<T, F>(&wj[..h], tk);
                    }
                }
                let gs = &mut g[s * h..(s + 1) * h];
                let sds = &sdl[s * h..(s + 1) * h];
                for ((g, a), b) in gs.iter_mut().zip(sds).zip(ds) {
                    *g = *a * *b;
                }
            }
            let gmat = MatRef::from_column_major_slice(&g[..h * nb], h, nb);
            if l > 0 {
                let hp = sizes[l];
                T::gemm(
                    MatMut::from_column_major_slice_mut(&mut delta[..hp * nb], hp, nb),
                    Accum::Replace,
                    weight(l).transpose(),
                    gmat,
                );
            } else {
                T::gemm(
                    MatMut::from_column_major_slice_mut(grad_x, p, nb),
                    Accum::Replace,
                    weight(0).transpose(),
                    gmat,
                );
            }
        }

        // Write records.
        let stride = lay.stride();
        for s in 0..nb {
            let rec = &mut out[s * stride..(s + 1) * stride];
            rec[SiteLayout::RHO] = rho_acc[s].to_f64();
            if qdir.is_some() {
                // ∂ρ/∂q_i = −sin q_i ∂N/∂c_i + cos q_i ∂N/∂s_i (docs/DESIGN.md §14.6).
                let (g, y) = (&grad_x[s * p..(s + 1) * p], &x[s * p..(s + 1) * p]);
                for i in 0..kd {
                    rec[lay.grad_q() + i] =
                        -y[kd + i].to_f64() * g[i].to_f64() + y[i].to_f64() * g[kd + i].to_f64();
                    rec[lay.grad_v() + i] = g[2 * kd + i].to_f64();
                }
            } else {
                for i in 0..kd {
                    rec[lay.grad_q() + i] = grad_x[s * p + i].to_f64();
                    rec[lay.grad_v() + i] = grad_x[s * p + kd + i].to_f64();
                }
            }
            let hs = &hess[s * dd * dd..(s + 1) * dd * dd];
            let m = lay.mass();
            for j in 0..kd {
                for k in j..kd {
                    rec[m + j * kd + k] = hs[j * dd + k].to_f64();
                    rec[m + k * kd + j] = hs[j * dd + k].to_f64();
                }
                rec[lay.cv() + j] = hs[j * dd + kd].to_f64();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::density::eval_one;

    fn random_x(p: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = Normal::new(0.0, 1.0).unwrap();
        (0..p).map(|_| n.sample(&mut rng)).collect()
    }

    #[test]
    fn softplus_is_stable() {
        for z in [-800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0] {
            let (a, s1, s2) = softplus_derivs(z);
            assert!(a.is_finite() && s1.is_finite() && s2.is_finite());
            assert!((a - softplus(z)).abs() <= 1e-15 * a.abs().max(1.0));
        }
        let (a, s1, s2) = softplus_derivs(0.3);
        assert!((a - (1.0f64 + 0.3f64.exp()).ln()).abs() < 1e-15);
        let sig = 1.0 / (1.0 + (-0.3f64).exp());
        assert!((s1 - sig).abs() < 1e-15 && (s2 - sig * (1.0 - sig)).abs() < 1e-15);
    }

    /// ρ, ∂ρ/∂x, m_s, c_s·v against central finite differences of the plain forward pass.
    #[test]
    fn exact_derivatives_match_finite_differences() {
        for (arity, dof, nf, hidden) in [
            (3, 1, 0, vec![16, 16]),
            (1, 2, 0, vec![12, 12, 12]),
            (2, 2, 1, vec![10]),
        ] {
            let kd = arity * dof;
            let p = 2 * kd + nf;
            let mut sizes = vec![p];
            sizes.extend(&hidden);
            sizes.push(1);
            let mut mlp = Mlp::paper_init(&sizes, 7);
            mlp.input_shift = random_x(p, 3).iter().map(|x| 0.1 * x).collect();
            mlp.input_scale = random_x(p, 4).iter().map(|x| 1.0 + 0.2 * x.abs()).collect();
            let dens = MlpDensity::new(mlp.clone(), arity, dof, nf).unwrap();
            let lay = dens.layout();
            for trial in 0..4 {
                let x = random_x(p, 100 + trial);
                let rec = eval_one(&dens, &x);
                assert!((rec[0] - mlp.forward(&x)).abs() < 1e-12 * (1.0 + rec[0].abs()));
                let f = |x: &[f64]| mlp.forward(x);
                let eps = 1e-5;
                // gradient
                for i in 0..2 * kd {
                    let mut xp = x.clone();
                    let mut xm = x.clone();
                    xp[i] += eps;
                    xm[i] -= eps;
                    let fd = (f(&xp) - f(&xm)) / (2.0 * eps);
                    let exact = if i < kd {
                        rec[lay.grad_q() + i]
                    } else {
                        rec[lay.grad_v() + i - kd]
                    };
                    assert!(
                        (fd - exact).abs() < 1e-7 * (1.0 + exact.abs()),
                        "grad {i}: fd {fd} exact {exact}"
                    );
                }
                // second derivatives: m_s = ∂²ρ/∂v∂v, c_s v = Σ_k ∂²ρ/∂v_j∂q_k v_k
                let grad = |x: &[f64], i: usize| {
                    let mut xp = x.to_vec();
                    let mut xm = x.to_vec();
                    xp[i] += eps;
                    xm[i] -= eps;
                    (f(&xp) - f(&xm)) / (2.0 * eps)
                };
                let e2 = 1e-4;
                for j in 0..kd {
                    for k in 0..kd {
                        let mut xp = x.clone();
                        let mut xm = x.clone();
                        xp[kd + k] += e2;
                        xm[kd + k] -= e2;
                        let fd = (grad(&xp, kd + j) - grad(&xm, kd + j)) / (2.0 * e2);
                        let exact = rec[lay.mass() + j * kd + k];
                        assert!(
                            (fd - exact).abs() < 1e-5 * (1.0 + exact.abs()),
                            "m[{j},{k}] fd {fd} exact {exact}"
                        );
                    }
                    let mut xp = x.clone();
                    let mut xm = x.clone();
                    for k in 0..kd {
                        xp[k] += e2 * x[kd + k];
                        xm[k] -= e2 * x[kd + k];
                    }
                    let fd = (grad(&xp, kd + j) - grad(&xm, kd + j)) / (2.0 * e2);
                    let exact = rec[lay.cv() + j];
                    assert!(
                        (fd - exact).abs() < 1e-5 * (1.0 + exact.abs()),
                        "cv[{j}] fd {fd} exact {exact}"
                    );
                }
            }
        }
    }

    /// With a coordinate period the q slots are seen modulo P (the record at q + kP equals the
    /// record at q, for a whole block), the velocity slots are not, and the plain density
    /// differs from the wrapped one outside [−P/2, P/2].
    #[test]
    fn periodic_coordinates_are_wrapped() {
        let tau = 2.0 * std::f64::consts::PI;
        let plain = MlpDensity::new(Mlp::paper_init(&[4, 16, 16, 1], 2), 1, 2, 0).unwrap();
        let dens = plain.clone().with_q_period(Some(tau)).unwrap();
        assert!(plain.clone().with_q_period(Some(-1.0)).is_err());
        let nb = 9;
        let x = random_x(4 * nb, 3);
        let mut shifted = x.clone();
        for (s, site) in shifted.chunks_exact_mut(4).enumerate() {
            site[0] += tau * (s as f64 - 4.0);
            site[1] -= 2.0 * tau;
        }
        let stride = dens.layout().stride();
        let (mut a, mut b, mut c) = (
            vec![0.0; stride * nb],
            vec![0.0; stride * nb],
            vec![0.0; stride * nb],
        );
        dens.eval_block(&x, nb, &mut a);
        dens.eval_block(&shifted, nb, &mut b);
        plain.eval_block(&shifted, nb, &mut c);
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() <= 1e-9 * (1.0 + u.abs()), "{u} vs {v}");
        }
        assert!(a.iter().zip(&c).any(|(u, v)| (u - v).abs() > 1e-3));
        let mut vshift = x.clone();
        vshift[2] += tau;
        dens.eval_block(&vshift, nb, &mut b);
        assert!((a[0] - b[0]).abs() > 1e-6, "velocities must not be wrapped");
        assert!((wrap_period(3.5, tau) - (3.5 - tau)).abs() < 1e-15);
        assert_eq!(wrap_period(-0.25, tau), -0.25);
    }

    #[test]
    fn block_evaluation_equals_single_site() {
        let dens = MlpDensity::new(Mlp::paper_init(&[6, 20, 20, 1], 1), 3, 1, 0).unwrap();
        let nb = 37;
        let x = random_x(6 * nb, 9);
        let stride = dens.layout().stride();
        let mut out = vec![0.0; stride * nb];
        dens.eval_block(&x, nb, &mut out);
        for s in [0, 5, 36] {
            let one = eval_one(&dens, &x[s * 6..(s + 1) * 6]);
            for (a, b) in one.iter().zip(&out[s * stride..(s + 1) * stride]) {
                assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
            }
        }
    }

    #[test]
    fn paper_init_scales() {
        let m = Mlp::paper_init(&[4, 500, 500, 1], 0);
        let std = |w: &Vec<f64>| (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
        assert!((std(&m.weights[0]) - 2.2 / 500f64.sqrt()).abs() < 0.05 * 2.2 / 500f64.sqrt());
        assert!((std(&m.weights[1]) - 0.58 / 500f64.sqrt()).abs() < 0.02 * 0.58 / 500f64.sqrt());
        assert!((std(&m.weights[2]) - 500f64.sqrt()).abs() < 0.2 * 500f64.sqrt());
        assert_eq!(m, Mlp::paper_init(&[4, 500, 500, 1], 0));
    }
}
