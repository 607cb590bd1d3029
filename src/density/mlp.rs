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

use super::activation::{sigmoid_bias_slices_g, softplus_bias_slices_g};
pub use super::activation::{softplus, softplus_derivs};
use super::phase_clock::{Lap, PassPhase};
use super::simd::{self, FmaMode, Kernel, Real, SimdLevel};

/// Floating-point precision of the MLP passes of an [`MlpDensity`].
///
/// `F32` evaluates the forward GEMMs, the activations and the hidden-layer backward GEMM in
/// single precision, with twice the SIMD lanes and half the memory traffic; δ, the Hessian sums
/// and ∂ρ/∂x are f64 (docs/DESIGN.md §15.4), and assembly and the solve of M·a = b stay f64.
/// The records then carry relative errors of order 1e-7 … 5e-7 (f32 rounding of the forward
/// tangents), which the solve passes on amplified by M's conditioning: docs/DESIGN.md §15.4 for
/// the measured acceleration errors, §20.1 for which roundings dominate (the weights', coherent
/// across sites) and why no cheap f64 part removes them on an ill-conditioned M.
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
        self.run_block(x, nb, out, Record::Full);
    }

    /// The lean acceleration record straight from the passes: no ρ (the last hidden layer
    /// then needs σ′ and σ″ only, no log), no ∂ρ/∂v_I (docs/DESIGN.md §15.3).
    fn eval_block_accel(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        debug_assert_eq!(x.len(), self.input_len() * nb);
        debug_assert_eq!(out.len(), self.accel_layout().stride() * nb);
        self.run_block(x, nb, out, Record::Accel);
    }
}

/// Which record a block pass writes: the full [`SiteLayout`] record or the acceleration record
/// ([`crate::density::AccelLayout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    Full,
    Accel,
}

impl MlpDensity {
    fn run_block(&self, x: &[f64], nb: usize, out: &mut [f64], record: Record) {
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
                    record,
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
                    record,
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
    record: Record,
}

impl<T: Real> Kernel for EvalBlock<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<F: FmaMode>(self) {
        self.dens
            .eval_block_impl::<T, F>(self.net, self.x, self.nb, self.out, self.record)
    }
}

/// The next `len` values of a workspace.
#[inline(always)]
fn carve<'a, T>(rest: &mut &'a mut [T], len: usize) -> &'a mut [T] {
    let (head, tail) = std::mem::take(rest).split_at_mut(len);
    *rest = tail;
    head
}

/// A row-major `nrows × ncols` view with row stride `row_stride` (faer 0.24.4's
/// `MatMut::from_row_major_slice_with_stride_mut` passes the stride as a column stride).
#[inline(always)]
fn row_major_strided<T>(
    slice: &mut [T],
    nrows: usize,
    ncols: usize,
    row_stride: usize,
) -> MatMut<'_, T> {
    MatMut::from_column_major_slice_with_stride_mut(slice, ncols, nrows, row_stride).transpose_mut()
}

/// The Hessian contraction of one layer for one direction j against NK directions k₀ … k₀+NK−1
/// (docs/DESIGN.md §15.3): `out[kk·nb + s] += Σ_i ds[i, s] · T[i, j, s] · T[i, k₀ + kk, s]`,
/// with ds = δ ⊙ σ″ h × nb and T the tangent part of a layer buffer (row i = `[z | T_0 | … | T_kd]`, each
/// nb wide, row stride `width`). Sites are the SIMD lanes: no horizontal reductions; the NK
/// accumulator rows (NK·nb values) stay in L1. δ and the sums are f64 whatever T is: with f32
/// passes only σ″ and the tangents are f32 (docs/DESIGN.md §15.4).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn contract<T: Real, F: FmaMode, const NK: usize>(
    h: usize,
    nb: usize,
    width: usize,
    ds: &[f64],
    t: &[T],
    j: usize,
    k0: usize,
    out: &mut [f64],
) {
    let (ja, kb) = ((1 + j) * nb, (1 + k0) * nb);
    let out = &mut out[..NK * nb];
    for i in 0..h {
        let row = &t[i * width..(i + 1) * width];
        let wr = &ds[i * nb..(i + 1) * nb];
        let ar = &row[ja..ja + nb];
        for (kk, o) in out.chunks_exact_mut(nb).enumerate() {
            let br = &row[kb + kk * nb..kb + (kk + 1) * nb];
            for (((o, w), a), b) in o.iter_mut().zip(wr).zip(ar).zip(br) {
                *o = F::fma(*w * a.to_f64(), b.to_f64(), *o);
            }
        }
    }
}

/// Index of the Hessian pair (j, k), j < kd, j ≤ k ≤ kd, in the pair-major buffer.
#[inline(always)]
fn pair_index(kd: usize, j: usize, k: usize) -> usize {
    let dd = kd + 1;
    // Σ_{j' < j} (dd − j') + (k − j)
    j * dd - j * j.saturating_sub(1) / 2 + (k - j)
}

/// Scratch buffers of one block pass (see `eval_block_impl`).
struct Buffers<'a, 'b, T> {
    r: &'a mut [&'b mut [T]],
    sd: &'a mut [&'b mut [T]],
    sdd: &'a mut [&'b mut [T]],
    u: &'b mut [T],
    rho: &'b mut [T],
    /// The backward quantities, f64 for either T (docs/DESIGN.md §15.4).
    delta: &'b mut [f64],
    g: &'b mut [f64],
    /// δ⊙σ″ of the layer (the contraction's weights).
    ds: &'b mut [f64],
    hess: &'b mut [f64],
    grad_x: &'b mut [f64],
    /// δ⊙σ′ and the next δ in T, for the backward GEMM W_lᵀ(δ⊙σ′) of the hidden layers.
    g_t: &'b mut [T],
    delta_t: &'b mut [T],
    /// Run the AVX-512 register-tiled backward step ([`super::contract512`]); the first
    /// layer's velocity tangents are then never written per site.
    fused: bool,
}

thread_local! {
    /// Per-thread f64 scratch of the backward pass (δ, δ⊙σ′, the Hessian sums, ∂ρ/∂x).
    static BACKWARD_WS: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
}

impl MlpDensity {
    #[inline(always)]
    fn eval_block_impl<T: Real, F: FmaMode>(
        &self,
        net: &Net<T>,
        x: &[f64],
        nb: usize,
        out: &mut [f64],
        record: Record,
    ) {
        let kd = self.arity * self.dof;
        let p = self.input_len();
        let dd = kd + 1; // tangent directions: kd velocity units + (v_I, 0)
        let nh = self.mlp.n_hidden();
        let sizes = &self.mlp.sizes;
        let width = nb * (1 + dd);
        let npairs = pair_index(kd, kd - 1, kd) + 1;
        let fused = super::contract512::supported(kd)
            && simd::clamp(self.simd.unwrap_or_else(simd::active)) == SimdLevel::Avx512;

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
            + ndir
            + if direct.is_none() { pn * nb } else { 0 };
        let need_back = 3 * hmax * nb + npairs * nb + pn * nb;
        let mut ws = T::take_workspace();
        if ws.len() < need {
            ws.resize(need, T::ZERO);
        }
        let mut ws_back = BACKWARD_WS.with(|c| c.take());
        if ws_back.len() < need_back {
            ws_back.resize(need_back, 0.0);
        }
        {
            let mut rest: &mut [T] = &mut ws[..need];
            let mut back: &mut [f64] = &mut ws_back[..need_back];
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
            let rho = carve(&mut rest, nb);
            let g_t = carve(&mut rest, hmax * nb);
            let delta_t = carve(&mut rest, hmax * nb);
            let qdir = carve(&mut rest, ndir);
            let delta = carve(&mut back, hmax * nb);
            let g = carve(&mut back, hmax * nb);
            let ds = carve(&mut back, hmax * nb);
            let hess = carve(&mut back, npairs * nb);
            hess.fill(0.0);
            let grad_x = carve(&mut back, pn * nb);
            let xt: &[T] = match direct {
                Some(x) => x,
                None if self.embed => {
                    // y = (cos q, sin q, v, f) and the direction J_q v = (−sin q ⊙ v, cos q ⊙ v)
                    // of the c-tangent (docs/DESIGN.md §14.6), both site-contiguous.
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
            let mut buf = Buffers {
                r: &mut r,
                sd: &mut sd,
                sdd: &mut sdd,
                u,
                rho,
                delta,
                g,
                ds,
                hess,
                grad_x,
                g_t,
                delta_t,
                fused,
            };
            let qdir = (!qdir.is_empty()).then_some(&*qdir);
            let mut clk = Lap::start();
            self.passes::<T, F>(
                net,
                xt,
                qdir,
                nb,
                record == Record::Full,
                &mut buf,
                &mut clk,
            );
            self.write_records(nb, out, record, &buf, qdir.map(|_| xt));
            clk.lap(PassPhase::Records, 0, 0);
        }
        T::put_workspace(ws);
        BACKWARD_WS.with(|c| c.set(ws_back));
    }

    /// The forward-tangent and backward passes for one block (docs/DESIGN.md §2, §15.3), in
    /// feature-major layout: row i of a layer buffer holds hidden unit i for all nb sites,
    /// `[z (nb) | T_0 (nb) | … | T_kd (nb)]`, so each layer is one GEMM `W · U` of width
    /// nb·(kd + 2) and every elementwise step runs over contiguous sites. `x` is the network's
    /// input (`sizes[0]` values per site); with the angle embedding `qdir` holds the c-direction
    /// J_q v_I in the (cos, sin) slots, 2kd values per site (docs/DESIGN.md §14.6).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn passes<T: Real, F: FmaMode>(
        &self,
        net: &Net<T>,
        x: &[T],
        qdir: Option<&[T]>,
        nb: usize,
        want_rho: bool,
        buf: &mut Buffers<'_, '_, T>,
        clk: &mut Lap,
    ) {
        let kd = self.arity * self.dof;
        let p = self.mlp.sizes[0];
        let dd = kd + 1;
        let nh = self.mlp.n_hidden();
        let sizes = &self.mlp.sizes;
        let width = nb * (1 + dd);
        let weight = |l: usize| MatRef::from_row_major_slice(&net.w[l], sizes[l + 1], sizes[l]);
        let xmat = MatRef::from_column_major_slice(x, p, nb);

        // Layer 0: z_0 = W₀'x + b₀', tangents T_0 = W₀' · directions (velocity units: the
        // constant columns of W₀', the c-direction W₀'[:, q] · v).
        let h0 = sizes[1];
        {
            let r0 = &mut *buf.r[0];
            T::gemm(
                row_major_strided(r0, h0, nb, width),
                Accum::Replace,
                weight(0),
                xmat,
            );
            match qdir {
                Some(dir) => T::gemm(
                    row_major_strided(&mut r0[(1 + kd) * nb..], h0, nb, width),
                    Accum::Replace,
                    weight(0).subcols(0, 2 * kd),
                    MatRef::from_column_major_slice(dir, 2 * kd, nb),
                ),
                None => T::gemm(
                    row_major_strided(&mut r0[(1 + kd) * nb..], h0, nb, width),
                    Accum::Replace,
                    weight(0).subcols(0, kd),
                    xmat.subrows(kd, kd),
                ),
            }
            // (the bias b₀′ is added inside the activation)
            for i in 0..h0 {
                let row = &mut r0[i * width..(i + 1) * width];
                if !buf.fused {
                    for j in 0..kd {
                        row[(1 + j) * nb..(2 + j) * nb].fill(net.w0_vcols[j * h0 + i]);
                    }
                }
            }
            let cdir = qdir.map_or(kd, |_| 2 * kd);
            clk.lap(PassPhase::Layer0, 2 * h0 * (p + cdir) * nb, 0);
        }

        // Hidden layers forward.
        for l in 0..nh {
            let h = sizes[l + 1];
            let last = l + 1 == nh;
            let (rl, rnext) = buf.r.split_at_mut(l + 1);
            let rl = &*rl[l];
            let (sdl, sddl) = (&mut *buf.sd[l], &mut *buf.sdd[l]);
            let u = &mut *buf.u;
            for i in 0..h {
                let row = &rl[i * width..(i + 1) * width];
                let (s1, s2) = (
                    &mut sdl[i * nb..(i + 1) * nb],
                    &mut sddl[i * nb..(i + 1) * nb],
                );
                let urow = &mut u[i * width..(i + 1) * width];
                let bias = net.b[l][i];
                if last && !want_rho {
                    sigmoid_bias_slices_g::<T, F>(&row[..nb], bias, s1, s2);
                    continue;
                }
                softplus_bias_slices_g::<T, F>(&row[..nb], bias, &mut urow[..nb], s1, s2);
                if !last {
                    // u[i, (1+j)·nb + s] = σ'(z_is) T[i, j, s]; the first layer's velocity
                    // tangents are the constants W₀′[i, v_j]
                    for (j, (uc, tc)) in urow[nb..]
                        .chunks_exact_mut(nb)
                        .zip(row[nb..].chunks_exact(nb))
                        .enumerate()
                    {
                        if l == 0 && j < kd {
                            let c = net.w0_vcols[j * h + i];
                            for (d, a) in uc.iter_mut().zip(&*s1) {
                                *d = *a * c;
                            }
                        } else {
                            for ((d, a), b) in uc.iter_mut().zip(&*s1).zip(tc) {
                                *d = *a * *b;
                            }
                        }
                    }
                }
            }
            if !last {
                let hn = sizes[l + 2];
                let rn = &mut *rnext[0];
                clk.lap(PassPhase::Activations, 0, h * nb);
                // R_{l+1} = W_{l+1} · U (f64 on AVX-512: lgn's kernel, docs/DESIGN.md §23)
                T::gemm_rm(
                    (hn, width, h),
                    &net.w[l + 1],
                    (h, 1),
                    &u[..h * width],
                    width,
                    &mut rn[..hn * width],
                    width,
                    false,
                );
                clk.lap(PassPhase::ForwardGemm, 2 * h * hn * width, 0);
            } else if want_rho {
                // output layer: ρ = w_L · a + b_L, accumulated row by row over the sites
                let rho = &mut *buf.rho;
                rho.fill(net.b[nh][0]);
                for (i, &wi) in net.w[nh].iter().enumerate() {
                    for (r, a) in rho.iter_mut().zip(&u[i * width..i * width + nb]) {
                        *r = F::fma(wi, *a, *r);
                    }
                }
            }
            if last {
                clk.lap(PassPhase::Activations, 0, h * nb);
            }
        }

        // Backward: δ_{nh-1} = w_L; Hessian terms; δ_{l-1} = W_lᵀ(σ'(z_l) ⊙ δ_l), in f64 with
        // the f64 weights whatever T is (docs/DESIGN.md §15.4).
        {
            for (i, &wi) in self.net.w[nh].iter().enumerate() {
                buf.delta[i * nb..(i + 1) * nb].fill(wi);
            }
        }
        for l in (0..nh).rev() {
            let h = sizes[l + 1];
            let t = &*buf.r[l];
            let (sdl, sddl) = (&*buf.sd[l], &*buf.sdd[l]);
            let n = h * nb;
            if buf.fused {
                #[cfg(all(target_arch = "x86_64", lgn_avx512))]
                {
                    let layer = super::contract512::Layer {
                        h,
                        nb,
                        width,
                        kd,
                        delta: &buf.delta[..n],
                        s1: &sdl[..n],
                        s2: &sddl[..n],
                        t,
                        vconst: (l == 0).then_some(&net.w0_vcols[..]),
                    };
                    // SAFETY: `fused` is set only when the CPU has AVX-512 (checked level) and
                    // `contract512::supported(kd)`; T is f64 or f32; the slices are checked.
                    unsafe { super::contract512::fused_layer(&layer, buf.g, buf.hess) };
                }
            } else {
                self.backward_generic::<T, F>(
                    (h, nb, width),
                    (t, sdl, sddl),
                    buf.delta,
                    buf.g,
                    buf.ds,
                    buf.hess,
                );
            }
            clk.lap(
                PassPhase::BackwardTile,
                2 * (pair_index(kd, kd - 1, kd) + 1) * n,
                0,
            );
            if l > 0 && T::from_f64_slice(&[]).is_some() {
                // f64 passes: δ_{l-1} = W_lᵀ g straight into δ (g is a separate buffer); Wᵀ
                // as the strided view (1, h_{l-1}) of the row-major W_l
                let hp = sizes[l];
                f64::gemm_rm(
                    (hp, nb, h),
                    &self.net.w[l],
                    (1, hp),
                    &buf.g[..n],
                    nb,
                    &mut buf.delta[..hp * nb],
                    nb,
                    false,
                );
            } else if l > 0 {
                // the hidden-layer backward GEMM in T (f32: the only backward GEMM of size
                // h_l·h_{l+1}), its δ kept in f64
                let hp = sizes[l];
                for (a, b) in buf.g_t[..n].iter_mut().zip(&buf.g[..n]) {
                    *a = T::from_f64(*b);
                }
                T::gemm_rm(
                    (hp, nb, h),
                    &net.w[l],
                    (1, hp),
                    &buf.g_t[..n],
                    nb,
                    &mut buf.delta_t[..hp * nb],
                    nb,
                    false,
                );
                for (a, b) in buf.delta[..hp * nb].iter_mut().zip(&buf.delta_t[..hp * nb]) {
                    *a = b.to_f64();
                }
            } else {
                f64::gemm_rm(
                    (p, nb, h),
                    &self.net.w[0],
                    (1, p),
                    &buf.g[..n],
                    nb,
                    &mut buf.grad_x[..p * nb],
                    nb,
                    false,
                );
            }
            if l > 0 {
                clk.lap(PassPhase::BackwardGemm, 2 * h * sizes[l] * nb, 0);
            } else {
                clk.lap(PassPhase::InputGrad, 2 * h * p * nb, 0);
            }
        }
    }

    /// g = δ⊙σ′ and the layer's Hessian terms with the slice kernels of any SIMD level
    /// ([`contract`]; the AVX-512 tile is [`super::contract512`]).
    #[inline(always)]
    fn backward_generic<T: Real, F: FmaMode>(
        &self,
        (h, nb, width): (usize, usize, usize),
        (t, sdl, sddl): (&[T], &[T], &[T]),
        delta: &[f64],
        g: &mut [f64],
        ds: &mut [f64],
        hess: &mut [f64],
    ) {
        let kd = self.arity * self.dof;
        let dd = kd + 1;
        let n = h * nb;
        for ((g, d), s1) in g[..n].iter_mut().zip(&delta[..n]).zip(&sdl[..n]) {
            *g = *d * s1.to_f64();
        }
        for ((w, d), s2) in ds[..n].iter_mut().zip(&delta[..n]).zip(&sddl[..n]) {
            *w = *d * s2.to_f64();
        }
        for j in 0..kd {
            let mut k0 = j;
            while k0 < dd {
                let nk = (dd - k0).min(4);
                let o = &mut hess[pair_index(kd, j, k0) * nb..];
                let w = &ds[..n];
                match nk {
                    1 => contract::<T, F, 1>(h, nb, width, w, t, j, k0, o),
                    2 => contract::<T, F, 2>(h, nb, width, w, t, j, k0, o),
                    3 => contract::<T, F, 3>(h, nb, width, w, t, j, k0, o),
                    _ => contract::<T, F, 4>(h, nb, width, w, t, j, k0, o),
                }
                k0 += nk;
            }
        }
    }

    /// Site records from the pass buffers (feature-major → one record per site). With the
    /// angle embedding `y` is the network input (cos q, sin q, v, f) per site, and
    /// ∂ρ/∂q_i = −sin q_i ∂N/∂c_i + cos q_i ∂N/∂s_i, ∂ρ/∂v from the v rows (docs/DESIGN.md §14.6).
    fn write_records<T: Real>(
        &self,
        nb: usize,
        out: &mut [f64],
        record: Record,
        buf: &Buffers<'_, '_, T>,
        y: Option<&[T]>,
    ) {
        let lay = self.layout();
        let kd = lay.kd;
        let (gx, hess) = (&*buf.grad_x, &*buf.hess);
        let h = |j: usize, k: usize, s: usize| hess[pair_index(kd, j, k) * nb + s];
        let pn = self.mlp.sizes[0];
        let gq = |i: usize, s: usize| match y {
            Some(y) => {
                let ys = &y[s * pn..(s + 1) * pn];
                -ys[kd + i].to_f64() * gx[i * nb + s] + ys[i].to_f64() * gx[(kd + i) * nb + s]
            }
            None => gx[i * nb + s],
        };
        let voff = if y.is_some() { 2 * kd } else { kd };
        match record {
            Record::Full => {
                let stride = lay.stride();
                for (s, rec) in out.chunks_exact_mut(stride).take(nb).enumerate() {
                    rec[SiteLayout::RHO] = buf.rho[s].to_f64();
                    let m = lay.mass();
                    for i in 0..kd {
                        rec[lay.grad_q() + i] = gq(i, s);
                        rec[lay.grad_v() + i] = gx[(voff + i) * nb + s];
                        for k in i..kd {
                            let v = h(i, k, s);
                            rec[m + i * kd + k] = v;
                            rec[m + k * kd + i] = v;
                        }
                        rec[lay.cv() + i] = h(i, kd, s);
                    }
                }
            }
            Record::Accel => {
                let stride = self.accel_layout().stride();
                for (s, rec) in out.chunks_exact_mut(stride).take(nb).enumerate() {
                    for i in 0..kd {
                        rec[i] = gq(i, s) - h(i, kd, s);
                        for k in i..kd {
                            let v = h(i, k, s);
                            rec[kd + i * kd + k] = v;
                            rec[kd + k * kd + i] = v;
                        }
                    }
                }
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

    /// The lean acceleration record (no ρ, σ′/σ″ only in the last layer) equals the one
    /// compacted from the full record, for block sizes that are and are not multiples of the
    /// SIMD width, in both precisions.
    #[test]
    fn acceleration_record_equals_the_full_record() {
        for (arity, dof, hidden) in [
            (3, 1, vec![24, 20]),
            (1, 2, vec![16, 16, 12]),
            (2, 2, vec![9]),
        ] {
            let kd = arity * dof;
            let p = 2 * kd;
            let mut sizes = vec![p];
            sizes.extend(&hidden);
            sizes.push(1);
            for precision in [Precision::F64, Precision::F32] {
                let dens = MlpDensity::new(Mlp::paper_init(&sizes, 5), arity, dof, 0)
                    .unwrap()
                    .with_precision(precision);
                let (lay, al) = (dens.layout(), dens.accel_layout());
                for nb in [1, 7, 16, 64, 70] {
                    let x = random_x(p * nb, 11 + nb as u64);
                    let mut full = vec![0.0; lay.stride() * nb];
                    let mut acc = vec![0.0; al.stride() * nb];
                    dens.eval_block(&x, nb, &mut full);
                    dens.eval_block_accel(&x, nb, &mut acc);
                    for s in 0..nb {
                        let (r, a) = (&full[s * lay.stride()..], &acc[s * al.stride()..]);
                        for i in 0..kd {
                            let b = r[lay.grad_q() + i] - r[lay.cv() + i];
                            assert!((a[i] - b).abs() <= 1e-12 * (1.0 + b.abs()), "b[{i}]");
                        }
                        for e in 0..kd * kd {
                            let m = r[lay.mass() + e];
                            assert!((a[kd + e] - m).abs() <= 1e-12 * (1.0 + m.abs()), "m[{e}]");
                        }
                    }
                }
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
