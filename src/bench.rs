//! Measurements behind `lgn bench` and the criterion benches.

use crate::density::{Mlp, MlpDensity, Precision};
use crate::solve::SolverKind;
use crate::systems;
use crate::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// Result of timing one acceleration evaluation on the periodic ring.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AccelBench {
    pub n: usize,
    pub solver: String,
    pub hidden: usize,
    pub layers: usize,
    /// Median wall time of one acceleration evaluation (site derivatives, assembly, factorise, solve).
    pub seconds: f64,
    /// One-off set-up: pattern, ordering, symbolic factorisation, buffers.
    pub setup_seconds: f64,
    pub seconds_per_node: f64,
    pub reps: usize,
    pub threads: usize,
    /// Multiply-add work of the MLP derivative passes, counted as 2 flops each, per second of
    /// the whole acceleration.
    pub mlp_gflops: f64,
    /// The same counted work per second of the site-derivative phase alone (compare with
    /// `lgn bench gemm`).
    pub sites_gflops: f64,
    /// Peak resident memory of the process so far (VmHWM), MB.
    pub peak_rss_mb: f64,
    pub precision: &'static str,
    /// Phase breakdown of the median evaluation's neighbourhood (last timed call).
    pub phases: crate::dynamics::PhaseTimes,
    /// Stored entries of M.
    pub nnz: usize,
    /// CPU brand string and the SIMD level of lgn's kernels on it (see [`crate::density::simd`]).
    pub cpu: String,
    pub simd: &'static str,
    /// With f32 passes: max |a_f32 − a_f64| / max |a_f64| over the nodes (same state).
    pub rel_err_vs_f64: Option<f64>,
    /// With f32 passes: ‖a_f32 − a_f64‖₂ / ‖a_f64‖₂, and the median over nodes of
    /// |a_f32 − a_f64| / |a_f64|.
    pub rel_l2_err_vs_f64: Option<f64>,
    pub median_rel_err_vs_f64: Option<f64>,
}

/// The CPU's brand string and the active SIMD level name, for benchmark records.
pub fn cpu_simd() -> (String, &'static str) {
    use crate::density::simd;
    (simd::cpu_name(), simd::active().name())
}

/// Floating-point operations of one site's exact-derivative pass (docs/DESIGN.md §2):
/// forward value + D = kd + 1 tangent columns, one backward column.
pub fn mlp_flops_per_site(sizes: &[usize], kd: usize) -> f64 {
    let dd = (kd + 1) as f64;
    let mut macs = sizes[1] as f64 * (sizes[0] as f64 + kd as f64); // z₀ and the c-direction tangent
    for l in 1..sizes.len() - 2 {
        macs += (sizes[l + 1] * sizes[l]) as f64 * (1.0 + dd); // forward GEMM
        macs += (sizes[l + 1] * sizes[l]) as f64; // backward GEMM
    }
    macs += (sizes[0] * sizes[1]) as f64; // W₀ᵀ backward
    2.0 * macs
}

/// Peak resident set size (VmHWM) in MB, where /proc is available.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Time the acceleration of the wave LGN on a periodic ring of n nodes with a
/// 6 → hidden^layers → 1 softplus MLP density evaluated in `precision` (assembly and solve in
/// f64). `min_seconds` bounds the measuring time.
pub fn accel(
    n: usize,
    hidden: usize,
    layers: usize,
    solver: SolverKind,
    precision: Precision,
    min_seconds: f64,
) -> Result<AccelBench> {
    let t0 = Instant::now();
    let (q, v) = ring_state(n);
    let build = |p: Precision| ring_system(n, hidden, layers, solver, p);
    let sizes = bench_mlp(hidden, layers).sizes;
    time_ring_accel(&build, &q, &v, &sizes, precision, min_seconds, t0)
}

/// [`accel`] for a trained ring model (`lgn bench accel --model M.h5`, an `lgn` model): its
/// density on a periodic ring of n nodes at the training grid's spacing, on a state from the
/// training data's distribution — a random smooth field of the training grid
/// ([`crate::experiment::wave1d::random_wave_state`] with the model's `n`, `dx`, `modes`,
/// `amplitude`; 4 modes of amplitude 1 when the file does not record them), repeated around
/// the ring (it is periodic, so the copies join smoothly). n must be a multiple of the
/// training grid's n. A trained model's mass matrix is what its data make it (definite for a
/// wave), unlike the random benchmark network's (docs/DESIGN.md §20.1), so this is where the
/// f32 error of a model a user has shows.
pub fn accel_model(
    model: &crate::train::TrainedModel,
    n: usize,
    solver: SolverKind,
    precision: Precision,
    min_seconds: f64,
) -> Result<AccelBench> {
    use crate::Error;
    let t0 = Instant::now();
    if model.kind != crate::train::ModelKind::Lgn {
        return Err(Error::input(format!(
            "--model: `lgn bench accel` times ring models (kind 'lgn'), this is a '{}' model",
            model.kind.as_str()
        )));
    }
    let param = |k: &str| model.params.get(k).copied();
    let n_train = param("n").map(|x| x as usize).ok_or_else(|| {
        Error::input("--model: the model file records no training grid size n (attribute params/n)")
    })?;
    if n_train < 3 || n % n_train != 0 {
        return Err(Error::input(format!(
            "--n {n}: must be a multiple of the model's training grid n = {n_train} (the benchmark \
             state repeats a training-distribution field of that grid around the ring)"
        )));
    }
    let dx = param("dx").unwrap_or(1.0 / n_train as f64);
    let modes = param("modes").map_or(4, |m| m as usize);
    let amplitude = param("amplitude").unwrap_or(1.0);
    let mut rng = StdRng::seed_from_u64(n as u64);
    let (q0, v0) =
        crate::experiment::wave1d::random_wave_state(n_train, dx, modes, amplitude, &mut rng);
    let reps = n / n_train;
    let (q, v) = (q0.repeat(reps), v0.repeat(reps));
    let build = |p: Precision| model.dynamics_in(Some(n), solver, p);
    time_ring_accel(&build, &q, &v, &model.net.sizes, precision, min_seconds, t0)
}

/// Time one acceleration of the ring system `build(precision)` at (q, v): the median of
/// [`repeat_accel`], the counted MLP work of the site network `sizes`, and with f32 passes the
/// error against `build(F64)`.
fn time_ring_accel(
    build: &dyn Fn(Precision) -> Result<crate::dynamics::Dynamics>,
    q: &[f64],
    v: &[f64],
    sizes: &[usize],
    precision: Precision,
    min_seconds: f64,
    t0: Instant,
) -> Result<AccelBench> {
    let n = q.len();
    let mut dy = build(precision)?;
    let mut a = vec![0.0; n];
    let setup_seconds = t0.elapsed().as_secs_f64();
    // warm-up (first touch of buffers, GEMM kernel dispatch)
    dy.accelerations_into(q, v, &mut a)?;
    let mut times: Vec<f64> = repeat_accel(&mut dy, q, v, &mut a, min_seconds)?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    let flops = mlp_flops_per_site(sizes, 3) * n as f64;
    let (cpu, simd) = cpu_simd();
    let errs = if precision == Precision::F64 {
        None
    } else {
        let a64 = build(Precision::F64)?.accelerations(q, v)?;
        Some(rel_errors(&a, &a64))
    };
    let hidden = sizes.get(1).copied().unwrap_or(0);
    let layers = sizes.len().saturating_sub(2);
    Ok(AccelBench {
        n,
        solver: dy.solver.kind().to_string(),
        hidden,
        layers,
        seconds,
        setup_seconds,
        seconds_per_node: seconds / n as f64,
        reps: times.len(),
        threads: rayon::current_num_threads(),
        mlp_gflops: flops / seconds / 1e9,
        sites_gflops: flops / dy.timings.sites / 1e9,
        peak_rss_mb: peak_rss_mb(),
        precision: precision.name(),
        phases: dy.timings,
        nnz: dy.pattern.nnz(),
        cpu,
        simd,
        rel_err_vs_f64: errs.map(|e| e[0]),
        rel_l2_err_vs_f64: errs.map(|e| e[1]),
        median_rel_err_vs_f64: errs.map(|e| e[2]),
    })
}

/// Time `accelerations_into` at least 3 times and for `min_seconds` (at most 50 times): the wall
/// seconds of each call and of its site phase.
fn repeat_accel(
    dy: &mut crate::dynamics::Dynamics,
    q: &[f64],
    v: &[f64],
    a: &mut [f64],
    min_seconds: f64,
) -> Result<Vec<(f64, f64)>> {
    let mut times = vec![];
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < min_seconds && times.len() < 50) {
        let t = Instant::now();
        dy.accelerations_into(q, v, a)?;
        times.push((t.elapsed().as_secs_f64(), dy.timings.sites));
    }
    Ok(times)
}

/// [max-norm, 2-norm, median elementwise] relative errors of `a` against `truth`.
pub fn rel_errors(a: &[f64], truth: &[f64]) -> [f64; 3] {
    let inf = truth.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let err = truth
        .iter()
        .zip(a)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    let l2 = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let d = l2(&mut truth.iter().zip(a).map(|(x, y)| x - y));
    let t = l2(&mut truth.iter().copied());
    let mut el: Vec<f64> = truth
        .iter()
        .zip(a)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1e-300))
        .collect();
    el.sort_by(f64::total_cmp);
    let med = el.get(el.len() / 2).copied().unwrap_or(0.0);
    [err / inf.max(1e-300), d / t.max(1e-300), med]
}

/// The benchmark ring: the wave LGN on a periodic ring of n nodes, sites (i−1, i, i+1), a
/// 6 → hidden^layers → 1 softplus MLP (paper initialisation, seed 0) in `precision`.
pub fn ring_system(
    n: usize,
    hidden: usize,
    layers: usize,
    solver: SolverKind,
    precision: Precision,
) -> Result<crate::dynamics::Dynamics> {
    let graph = crate::graph::Graph::ring(n, 1)?;
    let sites = crate::sites::Sites::stencil3(&graph)?;
    let dens = MlpDensity::new(bench_mlp(hidden, layers), 3, 1, 0)?.with_precision(precision);
    let lag = crate::lagrangian::Lagrangian::new(n, 1, sites, std::sync::Arc::new(dens))?;
    crate::dynamics::Dynamics::new(lag, solver, graph.kind)
}

/// The benchmark state on the ring: q, q̇ uniform in [−1, 1] (seed n).
pub fn ring_state(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let q: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    (q, v)
}

/// GEMM throughput in GFLOP/s for an m×k by k×n product through faer, run on every rayon
/// thread at once (independent products), to compare the MLP passes with the machine's peak.
pub fn gemm_gflops(m: usize, k: usize, n: usize, min_seconds: f64) -> f64 {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, Mat, Par};
    let a = Mat::<f64>::from_fn(m, k, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.1);
    let b = Mat::<f64>::from_fn(k, n, |i, j| ((i * 5 + j) % 13) as f64 * 0.1);
    let reps = ((2e8 / (2.0 * (m * k * n) as f64)) as usize).max(1);
    let flops = 2.0 * (m * k * n) as f64 * reps as f64;
    on_every_thread(min_seconds, flops, || {
        let mut c = Mat::<f64>::zeros(m, n);
        for _ in 0..reps {
            matmul(
                c.as_mut(),
                Accum::Replace,
                a.as_ref(),
                b.as_ref(),
                1.0,
                Par::Seq,
            );
        }
        std::hint::black_box(&c);
    })
}

/// The same product as [`gemm_gflops`] (C = A·B, m×k by k×n, f64, every thread at once) through
/// lgn's own AVX-512 kernel (docs/DESIGN.md §23), row-major as the site pass calls it; `None`
/// where that kernel does not run (the pass then uses faer).
pub fn own_gemm_gflops(m: usize, k: usize, n: usize, min_seconds: f64) -> Option<f64> {
    use crate::density::gemm512;
    if !gemm512::available() || m == 0 || n == 0 || k == 0 {
        return None;
    }
    let a: Vec<f64> = (0..m * k)
        .map(|x| ((x / k * 7 + x % k * 3) % 11) as f64 * 0.1)
        .collect();
    let b: Vec<f64> = (0..k * n)
        .map(|x| ((x / n * 5 + x % n) % 13) as f64 * 0.1)
        .collect();
    let reps = ((2e8 / (2.0 * (m * k * n) as f64)) as usize).max(1);
    let flops = 2.0 * (m * k * n) as f64 * reps as f64;
    Some(on_every_thread(min_seconds, flops, || {
        let mut c = vec![0.0; m * n];
        for _ in 0..reps {
            gemm512::gemm_f64((m, n, k), &a, (k, 1), &b, n, &mut c, n, false);
        }
        std::hint::black_box(&c);
    }))
}

/// The machine's f64 FMA peak in GFLOP/s, every rayon thread at once: 12 independent chains of
/// vector FMAs in registers at the CPU's best width (zmm / ymm), dispatched at run time; `None`
/// on CPUs without FMA (docs/DESIGN.md §23). The best of ≈ 10 ms bursts over `min_seconds`,
/// so that time slices lost to other processes do not lower a peak.
pub fn fma_peak_gflops(min_seconds: f64) -> Option<f64> {
    use crate::density::gemm512::fma_peak_loop;
    const ITERS: u64 = 200_000;
    let flops = fma_peak_loop(1)? * ITERS as f64;
    let start = Instant::now();
    let mut best = 0.0f64;
    while start.elapsed().as_secs_f64() < min_seconds || best == 0.0 {
        best = best.max(on_every_thread(0.0, flops, || {
            std::hint::black_box(fma_peak_loop(std::hint::black_box(ITERS)));
        }));
    }
    Some(best)
}

/// Runs `work` (which does `flops_per_call` flops) on every rayon thread at once, repeatedly
/// for at least `min_seconds`, and returns the total GFLOP/s.
fn on_every_thread(min_seconds: f64, flops_per_call: f64, work: impl Fn() + Sync) -> f64 {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed().as_secs_f64() < min_seconds || done == 0 {
        (0..threads).into_par_iter().for_each(|_| work());
        done += threads;
    }
    flops_per_call * done as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Default MLP used by benchmarks.
pub fn bench_mlp(hidden: usize, layers: usize) -> Mlp {
    let mut sizes = vec![6];
    sizes.extend(std::iter::repeat_n(hidden, layers));
    sizes.push(1);
    Mlp::paper_init(&sizes, 0)
}

/// Result of timing full training steps of the single-site double-pendulum LNN.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainBench {
    pub samples_per_second: f64,
    pub hidden: usize,
    pub layers: usize,
    pub batch: usize,
    /// Median wall time of one step: loss, exact gradient (adjoint), Adam update.
    pub seconds_per_step: f64,
    /// Counted GEMM work (forward derivative pass + hyper-dual adjoint pass, 2 flops per
    /// multiply-add) per second.
    pub gflops: f64,
    pub threads: usize,
    pub steps: usize,
    pub precision: &'static str,
    pub cpu: String,
    pub simd: &'static str,
}

/// Time full training steps (loss, gradient through the Euler–Lagrange solve, Adam update) of a
/// 4 → hidden^layers → 1 softplus LNN for the double pendulum on random states and targets
/// (like the JAX reference `jax_dblpend_train.py`), f64.
pub fn train_step(
    hidden: usize,
    layers: usize,
    batch: usize,
    min_seconds: f64,
) -> Result<TrainBench> {
    use crate::train::gradient::{lnn_dense_loss_grad, Samples};
    use crate::train::hyperdual::{adjoint_flops_per_site, flatten, unflatten};
    use crate::train::{Adam, LossKind};
    use rand_distr::{Distribution, StandardNormal};
    let mut sizes = vec![4];
    sizes.extend(std::iter::repeat_n(hidden, layers));
    sizes.push(1);
    let mut mlp = Mlp::paper_init(&sizes, 0);
    let mut rng = StdRng::seed_from_u64(0);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let input: Vec<f64> = (0..batch * 4).map(|_| normal()).collect();
    let target: Vec<f64> = (0..batch * 2).map(|_| normal()).collect();
    let data = Samples::new(4, 2, input, target, None)?;
    let idx: Vec<usize> = (0..batch).collect();
    let mut theta = flatten(&mlp);
    let mut adam = Adam::new(theta.len(), 0.0);
    let mut step = |mlp: &mut Mlp| -> Result<()> {
        let dens = crate::density::MlpDensity::new(mlp.clone(), 1, 2, 0)?;
        let (_, g) = lnn_dense_loss_grad(&dens, &data, &idx, LossKind::Mse, true)?;
        adam.step(&mut theta, &g, 1e-4);
        unflatten(mlp, &theta);
        Ok(())
    };
    step(&mut mlp)?; // warm-up
    let mut times = vec![];
    let start = Instant::now();
    while times.len() < 5 || (start.elapsed().as_secs_f64() < min_seconds && times.len() < 10_000) {
        let t = Instant::now();
        step(&mut mlp)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let seconds_per_step = times[times.len() / 2];
    let flops = (mlp_flops_per_site(&sizes, 2) + adjoint_flops_per_site(&sizes)) * batch as f64;
    Ok(TrainBench {
        samples_per_second: batch as f64 / seconds_per_step,
        hidden,
        layers,
        batch,
        seconds_per_step,
        gflops: flops / seconds_per_step / 1e9,
        threads: rayon::current_num_threads(),
        steps: times.len(),
        precision: "f64",
        cpu: cpu_simd().0,
        simd: cpu_simd().1,
    })
}

/// Result of timing full training steps of the ring LGN (graph network, `lgn train --model lgn`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct RingTrainBench {
    pub system: &'static str,
    pub samples_per_second: f64,
    /// Ring nodes (= sites, 3-node stencils).
    pub n: usize,
    pub hidden: usize,
    pub layers: usize,
    pub batch: usize,
    /// Median wall time of one step: forward (site records of the whole minibatch, assembly,
    /// banded solves, adjoints), the default site mass penalty, the batched backward sweep,
    /// clipping and the Adam update.
    pub seconds_per_step: f64,
    pub threads: usize,
    pub steps: usize,
    pub precision: &'static str,
    /// Whether the site mass penalty (on by default in `lgn train --model lgn`) was included.
    pub mass_penalty: bool,
    pub cpu: String,
    pub simd: &'static str,
}

/// Time full training steps of the wave LGN on a periodic ring of `n` nodes (sites (i−1, i,
/// i+1), a 6 → hidden^layers → 1 softplus MLP, f64) as `lgn train --model lgn --no-normalise`
/// runs them — the default site mass penalty included — on smooth random fields (three Fourier
/// modes) with the exact stencil accelerations as targets; minibatches of `batch` out of
/// 8·batch samples, in order (docs/DESIGN.md §19).
pub fn train_ring_step(
    n: usize,
    hidden: usize,
    layers: usize,
    batch: usize,
    min_seconds: f64,
) -> Result<RingTrainBench> {
    use crate::train::{Adam, LossKind, ModelKind, NetTrainer, Samples, Trainable, TrainedModel};
    let mut rng = StdRng::seed_from_u64(1);
    let dx = 1.0 / n as f64;
    let total = 8 * batch;
    let (mut input, mut target) = (Vec::new(), Vec::new());
    for _ in 0..total {
        let mut q = vec![0.0; n];
        let mut v = vec![0.0; n];
        for m in 1..=3 {
            let k = 2.0 * std::f64::consts::PI * m as f64;
            let (a, b, pa, pb) = (
                rng.random_range(-1.0..1.0) / m as f64,
                rng.random_range(-1.0..1.0),
                rng.random_range(0.0..6.3),
                rng.random_range(0.0..6.3),
            );
            for i in 0..n {
                let x = i as f64 * dx;
                q[i] += a * (k * x + pa).sin();
                v[i] += b * (k * x + pb).sin();
            }
        }
        target.extend(crate::data::wave_stencil(&q, dx));
        input.extend(q);
        input.extend(v);
    }
    let data = Samples::new(2 * n, n, input, target, None)?;
    let model = TrainedModel::init(ModelKind::Lgn, "wave1d", n, hidden, layers, 0)?;
    let mut tr = NetTrainer::new(model, &data, None)?;
    let mass_penalty = crate::train::site_penalty::default_graph_penalty(&data).is_some();
    let mut theta = tr.params();
    let mut adam = Adam::new(theta.len(), 0.0);
    let order: Vec<usize> = (0..total).collect();
    let mut next = 0;
    let mut step = |tr: &mut NetTrainer| -> Result<()> {
        let chunk = &order[next * batch..(next + 1) * batch];
        next = (next + 1) % 8;
        let (_, mut g, _) = tr.loss_grad(&data, chunk, LossKind::Mse, true)?;
        crate::train::optim::clip_global_norm(&mut g, 1.0);
        adam.step(&mut theta, &g, 1e-3);
        tr.set_params(&theta)
    };
    step(&mut tr)?; // warm-up
    let mut times = vec![];
    let start = Instant::now();
    while times.len() < 5 || (start.elapsed().as_secs_f64() < min_seconds && times.len() < 100_000)
    {
        let t = Instant::now();
        step(&mut tr)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let seconds_per_step = times[times.len() / 2];
    let (cpu, simd) = cpu_simd();
    Ok(RingTrainBench {
        system: "ring",
        samples_per_second: batch as f64 / seconds_per_step,
        n,
        hidden,
        layers,
        batch,
        seconds_per_step,
        threads: rayon::current_num_threads(),
        steps: times.len(),
        precision: "f64",
        mass_penalty,
        cpu,
        simd,
    })
}

/// Keep freed memory in the process instead of returning it to the OS after every call.
///
/// The MLP passes allocate their per-block buffers (hundreds of kB each) on every call from
/// rayon worker threads. With glibc's defaults those buffers are mmapped / trimmed back to the
/// kernel on free, so every call page-faults its buffers in again: measured on the 2-core
/// machine, a double-pendulum training step ran at ~32k samples/s with the defaults and ~150k
/// with this setting (page faults and memset were > 20 % of the profile). Sets
/// `M_MMAP_THRESHOLD` to 32 MiB (glibc's maximum) and `M_TRIM_THRESHOLD` to 1 GiB (glibc Linux only; a no-op elsewhere).
/// The `lgn` binary calls this at start-up; library users may call it once themselves.
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; called before heavy allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
/// Result of timing one acceleration evaluation of the wave equation on a triangle mesh.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MeshAccelBench {
    /// Mesh nodes (= coordinates, d = 1).
    pub n: usize,
    pub n_triangles: usize,
    pub n_edges: usize,
    /// "fem" or "mlp".
    pub density: String,
    /// MLP hidden width and layers (0 for fem).
    pub hidden: usize,
    pub layers: usize,
    /// Solver in use (`auto` resolved) and, for the sparse one, the factorisation used.
    pub solver: String,
    pub factorization: String,
    /// Median wall time of one acceleration evaluation (site derivatives, assembly, factorise, solve).
    pub seconds: f64,
    /// The same evaluation split into its phases (medians).
    pub sites_seconds: f64,
    pub assemble_seconds: f64,
    pub factor_solve_seconds: f64,
    /// One-off set-up: sites, features, pattern, ordering, symbolic factorisation, buffers
    /// (mesh generation or reading not included: `mesh_seconds`).
    pub setup_seconds: f64,
    pub mesh_seconds: f64,
    pub seconds_per_node: f64,
    pub reps: usize,
    pub threads: usize,
    pub peak_rss_mb: f64,
    /// Stored entries of M (both triangles).
    pub nnz: usize,
    /// Stored values of the factor (sparse: faer's L storage; banded: n·(w+1); dense: n²).
    pub factor_nnz: usize,
    /// factor_nnz / nnz(lower triangle of M).
    pub fill: f64,
    /// Sparse plan: faer chose the supernodal Cholesky.
    pub supernodal: Option<bool>,
    pub precision: &'static str,
    pub cpu: String,
    pub simd: &'static str,
}

/// Time the acceleration of the wave equation on `mesh` with the FEM ground truth or a
/// randomly initialised learned density (hidden^layers node and edge MLPs). State: q uniform in
/// [−1, 1], q̇ uniform in [−0.3, 0.3] (fixed seed).
pub fn accel_mesh(
    mesh: &crate::mesh::TriMesh,
    density: &systems::MeshDensity,
    solver: SolverKind,
    min_seconds: f64,
    mesh_seconds: f64,
) -> Result<MeshAccelBench> {
    accel_mesh_dissipative(mesh, density, solver, min_seconds, mesh_seconds, None)
}

/// [`accel_mesh`] with a dissipation term on the nodes (docs/DESIGN.md §13): `Some((hidden,
/// layers))` adds a learned coefficient γ_i = m_i softplus(N(φ_i, m_i)) (a random network of
/// that size, m_i the lumped area), so one acceleration also evaluates N on every node and adds
/// −γ_i φ̇_i to b.
pub fn accel_mesh_dissipative(
    mesh: &crate::mesh::TriMesh,
    density: &systems::MeshDensity,
    solver: SolverKind,
    min_seconds: f64,
    mesh_seconds: f64,
    dissipation: Option<(usize, usize)>,
) -> Result<MeshAccelBench> {
    let t0 = Instant::now();
    let n = mesh.n_nodes();
    let mut sys = systems::wave_mesh(mesh, density, solver)?;
    if let Some((h, l)) = dissipation {
        use crate::density::dissipation::{DissipationTerm, Forces, LearnedNodeDissipation};
        let area = crate::mesh::fem::lumped_mass(mesh);
        let mut sizes = vec![2];
        sizes.extend(std::iter::repeat_n(h, l));
        sizes.push(1);
        let term = LearnedNodeDissipation {
            net: crate::density::Mlp::paper_init(&sizes, 11),
            q_input: true,
            dof: 1,
            features: area.clone(),
            n_features: 1,
            scale: area,
        };
        sys.dynamics.set_forces(Forces {
            dissipation: vec![DissipationTerm::Learned(term)],
            input: None,
        })?;
    }
    let mut rng = StdRng::seed_from_u64(n as u64);
    let q: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-0.3..0.3)).collect();
    let mut a = vec![0.0; n];
    let setup_seconds = t0.elapsed().as_secs_f64();
    let dy = &mut sys.dynamics;
    dy.accelerations_into(&q, &v, &mut a)?; // warm-up
    let mut times: Vec<[f64; 4]> = vec![];
    let start = Instant::now();
    // The timed call is exactly the production path (`accelerations_into`); its own phase
    // timers give the split. At least 5 repetitions, the median reported.
    while times.len() < 5 || (start.elapsed().as_secs_f64() < min_seconds && times.len() < 50) {
        let t = Instant::now();
        dy.accelerations_into(&q, &v, &mut a)?;
        let total = t.elapsed().as_secs_f64();
        let ph = dy.timings;
        times.push([total, ph.sites, ph.assembly, ph.solve]);
    }
    let median = |k: usize| {
        let mut x: Vec<f64> = times.iter().map(|t| t[k]).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let seconds = median(0);
    let (hidden, layers, name) = match density {
        systems::MeshDensity::Mlp { hidden, layers, .. } => (*hidden, *layers, "mlp"),
        systems::MeshDensity::Trained { node, .. } => (node.sizes[1], node.n_hidden(), "mlp"),
        systems::MeshDensity::Fem => (0, 0, "fem"),
        systems::MeshDensity::FemTriangles => (0, 0, "fem-triangles"),
    };
    let nnz = dy.pattern.nnz();
    let factor_nnz = dy.solver.factor_nnz();
    let factorization = match dy.solver.kind() {
        SolverKind::Sparse if dy.solver.used_lu_fallback => "lu",
        SolverKind::Sparse if dy.solver.used_ldlt => "ldlt",
        SolverKind::Sparse => "llt",
        SolverKind::Banded => "banded ldlt",
        _ => "svd pinv",
    };
    Ok(MeshAccelBench {
        n,
        n_triangles: mesh.n_triangles(),
        n_edges: sys.graph.n_edges(),
        density: name.into(),
        hidden,
        layers,
        solver: dy.solver.kind().to_string(),
        factorization: factorization.into(),
        seconds,
        sites_seconds: median(1),
        assemble_seconds: median(2),
        factor_solve_seconds: median(3),
        setup_seconds,
        mesh_seconds,
        seconds_per_node: seconds / n as f64,
        reps: times.len(),
        threads: rayon::current_num_threads(),
        peak_rss_mb: peak_rss_mb(),
        nnz,
        factor_nnz,
        fill: factor_nnz as f64 / ((nnz + n) / 2) as f64,
        supernodal: dy.solver.supernodal(),
        precision: "f64",
        cpu: cpu_simd().0,
        simd: cpu_simd().1,
    })
}

/// One timed point of a scaling sweep.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScalingPoint {
    /// "ring" or "mesh".
    pub system: String,
    pub solver: String,
    /// Nodes (= coordinates).
    pub n: usize,
    /// Median wall time of one acceleration evaluation.
    pub seconds: f64,
    pub seconds_per_node: f64,
}

/// Least-squares fit time ≈ c·n^k of one (system, solver) curve.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScalingFit {
    pub system: String,
    pub solver: String,
    /// The exponent k.
    pub k: f64,
    /// The prefactor c (seconds at n = 1).
    pub c: f64,
    /// Range of n the fit used (points with n ≥ `fit_n_min`, or all when fewer than 2).
    pub n_min: usize,
    pub n_max: usize,
    pub points: usize,
}

/// Result of [`scaling`]: the points and the fitted exponents, with the machine.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScalingBench {
    pub hidden: usize,
    pub layers: usize,
    pub points: Vec<ScalingPoint>,
    pub fits: Vec<ScalingFit>,
    /// Dense pseudo-inverse points stop once the next one is predicted (n³ from the last)
    /// to take longer than this.
    pub dense_budget_seconds: f64,
    pub threads: usize,
    pub cpu: String,
    pub simd: &'static str,
}

/// What [`scaling`] sweeps.
#[derive(Clone, Debug)]
pub struct ScalingSpec {
    /// Ring sizes (empty: no ring sweep).
    pub ring_ns: Vec<usize>,
    /// Approximate node counts of generated unit-square meshes (empty: no mesh sweep).
    pub mesh_ns: Vec<usize>,
    pub hidden: usize,
    pub layers: usize,
    pub solvers: Vec<SolverKind>,
    pub dense_budget_seconds: f64,
    /// Minimum measuring time per point (at least 3 repetitions, median reported).
    pub min_seconds: f64,
    /// Fit only points with n at least this (when at least two qualify).
    pub fit_n_min: usize,
}

/// Fit log t = log c + k log n by least squares.
pub fn fit_power_law(ns: &[usize], ts: &[f64]) -> (f64, f64) {
    let m = ns.len() as f64;
    let x: Vec<f64> = ns.iter().map(|&n| (n as f64).ln()).collect();
    let y: Vec<f64> = ts.iter().map(|t| t.ln()).collect();
    let (mx, my) = (x.iter().sum::<f64>() / m, y.iter().sum::<f64>() / m);
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let k = if sxx > 0.0 { sxy / sxx } else { f64::NAN };
    (k, (my - k * mx).exp())
}

fn time_accel(dy: &mut crate::dynamics::Dynamics, q: &[f64], v: &[f64], min_s: f64) -> Result<f64> {
    let mut a = vec![0.0; q.len()];
    dy.accelerations_into(q, v, &mut a)?; // warm-up
    let mut times = vec![];
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < min_s && times.len() < 50) {
        let t = Instant::now();
        dy.accelerations_into(q, v, &mut a)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Time one acceleration evaluation over a sweep of n for each solver on the ring (MLP density
/// 6 → hidden^layers → 1) and on generated unit-square meshes (node + edge MLPs), and fit each
/// curve's exponent in time ∝ n^k. The dense pseudo-inverse path is cut off by a time budget.
pub fn scaling(spec: &ScalingSpec) -> Result<ScalingBench> {
    let mut points = Vec::new();
    for system in ["ring", "mesh"] {
        let ns = if system == "ring" {
            &spec.ring_ns
        } else {
            &spec.mesh_ns
        };
        for &solver in &spec.solvers {
            let mut last: Option<(usize, f64)> = None;
            for &n in ns {
                if solver == SolverKind::Dense {
                    if let Some((n0, t0)) = last {
                        if t0 * (n as f64 / n0 as f64).powi(3) > spec.dense_budget_seconds {
                            break;
                        }
                    }
                }
                let (n_nodes, seconds) = if system == "ring" {
                    let mut dy = ring_system(n, spec.hidden, spec.layers, solver, Precision::F64)?;
                    let (q, v) = ring_state(n);
                    (n, time_accel(&mut dy, &q, &v, spec.min_seconds)?)
                } else {
                    let mesh = crate::mesh::generate::unit_square_nodes(n)?;
                    let nn = mesh.n_nodes();
                    let density = systems::MeshDensity::Mlp {
                        hidden: spec.hidden,
                        layers: spec.layers,
                        seed: 0,
                    };
                    let mut sys = systems::wave_mesh(&mesh, &density, solver)?;
                    let mut rng = StdRng::seed_from_u64(nn as u64);
                    let q: Vec<f64> = (0..nn).map(|_| rng.random_range(-1.0..1.0)).collect();
                    let v: Vec<f64> = (0..nn).map(|_| rng.random_range(-0.3..0.3)).collect();
                    (nn, time_accel(&mut sys.dynamics, &q, &v, spec.min_seconds)?)
                };
                last = Some((n_nodes, seconds));
                points.push(ScalingPoint {
                    system: system.into(),
                    solver: solver.to_string(),
                    n: n_nodes,
                    seconds,
                    seconds_per_node: seconds / n_nodes as f64,
                });
            }
        }
    }
    let mut fits = Vec::new();
    for system in ["ring", "mesh"] {
        for solver in &spec.solvers {
            let name = solver.to_string();
            let all: Vec<&ScalingPoint> = points
                .iter()
                .filter(|p| p.system == system && p.solver == name)
                .collect();
            let big: Vec<&ScalingPoint> = all
                .iter()
                .copied()
                .filter(|p| p.n >= spec.fit_n_min)
                .collect();
            let used = if big.len() >= 2 { big } else { all };
            if used.len() < 2 {
                continue;
            }
            let ns: Vec<usize> = used.iter().map(|p| p.n).collect();
            let ts: Vec<f64> = used.iter().map(|p| p.seconds).collect();
            let (k, c) = fit_power_law(&ns, &ts);
            fits.push(ScalingFit {
                system: system.into(),
                solver: name,
                k,
                c,
                n_min: ns[0],
                n_max: *ns.last().unwrap(),
                points: ns.len(),
            });
        }
    }
    let (cpu, simd) = cpu_simd();
    Ok(ScalingBench {
        hidden: spec.hidden,
        layers: spec.layers,
        points,
        fits,
        dense_budget_seconds: spec.dense_budget_seconds,
        threads: rayon::current_num_threads(),
        cpu,
        simd,
    })
}

/// Draw a scaling sweep as a log-log PNG: measured times (markers and solid lines, one colour
/// per system and solver) and the fitted power laws (dashed; the legend gives each exponent k).
pub fn plot_scaling(r: &ScalingBench, path: &std::path::Path, force: bool) -> Result<()> {
    use plotters::prelude::*;
    const COLOURS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
    ];
    if r.points.is_empty() {
        return Err(crate::Error::input("no scaling points to plot"));
    }
    let fold = |f: &dyn Fn(&ScalingPoint) -> f64| {
        r.points
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            })
    };
    let (x0, x1) = fold(&|p| p.n as f64);
    let (y0, y1) = fold(&|p| p.seconds);
    let title = format!(
        "Time per acceleration, MLP {}×{} — {} ({}, {} threads)",
        r.hidden, r.layers, r.cpu, r.simd, r.threads
    );
    crate::plot::with_png(path, (1100, 720), force, |root| {
        let e = |err| crate::plot::plot_err(path, err);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(80)
            .build_cartesian_2d(
                ((x0 / 1.5)..(x1 * 1.5)).log_scale(),
                ((y0 / 2.0)..(y1 * 2.0)).log_scale(),
            )
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("n (nodes)")
            .y_desc("seconds per acceleration")
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(e)?;
        for (i, f) in r.fits.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> = r
                .points
                .iter()
                .filter(|p| p.system == f.system && p.solver == f.solver)
                .map(|p| (p.n as f64, p.seconds))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(e)?
                .label(format!("{} {}: t ∝ n^{:.2}", f.system, f.solver, f.k))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(e)?;
            let fit = |n: f64| f.c * n.powf(f.k);
            let (a, b) = (f.n_min as f64, f.n_max as f64);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(a, fit(a)), (b, fit(b))],
                    8,
                    6,
                    c.mix(0.6).stroke_width(2),
                ))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
        Ok(())
    })
}

/// Where the f32 passes lose accuracy (docs/DESIGN.md §15.4): each stage of one acceleration
/// evaluated with f32 and with f64 MLP passes on the same state, as max-norm errors relative to
/// the f64 stage's max-norm (`max|x32 − x64| / max|x64|`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PrecisionBreakdown {
    /// Site records: ∂ρ/∂q_I, m_s (all kd² entries), c_s·v_I, and the record's b part
    /// ∂ρ/∂q_I − c_s·v_I.
    pub rec_grad_q: f64,
    pub rec_mass: f64,
    pub rec_cv: f64,
    pub rec_b: f64,
    /// max(|∂ρ/∂q_I| + |c_s·v_I|) / max|∂ρ/∂q_I − c_s·v_I| over the records (f64): the
    /// cancellation factor of the b part.
    pub b_cancellation: f64,
    /// Assembled M (all stored entries) and b.
    pub mass: f64,
    pub rhs: f64,
    /// Accelerations from the f64 solve of (M32, b64) and (M64, b32): the share of each.
    pub accel_mass_only: f64,
    pub accel_rhs_only: f64,
    /// The f32 accelerations, [max-norm, 2-norm, median elementwise] (see [`rel_errors`]).
    pub accel: [f64; 3],
    /// max |a64| / (max |b64| / max |M64|): how much the solve magnifies (≈ ‖M⁻¹‖·‖M‖ seen
    /// by this b).
    pub solve_gain: f64,
    /// Normwise backward error of the f32 accelerations in the f64 system:
    /// ‖M64 a32 − b64‖∞ / (‖M64‖∞ ‖a32‖∞ + ‖b64‖∞) — the relative perturbation of (M, b) that
    /// a32 solves exactly; independent of M's conditioning.
    pub backward: f64,
}

/// Max-norm error of `a` against `truth`, relative to max |truth|.
fn max_rel(a: &[f64], truth: &[f64]) -> f64 {
    rel_errors(a, truth)[0]
}

/// [`PrecisionBreakdown`] of `precision`'s MLP passes against f64 on the benchmark ring.
pub fn precision_breakdown(
    n: usize,
    hidden: usize,
    layers: usize,
    solver: SolverKind,
    precision: Precision,
) -> Result<PrecisionBreakdown> {
    let (q, v) = ring_state(n);
    let mut lo = ring_system(n, hidden, layers, solver, precision)?;
    let mut hi = ring_system(n, hidden, layers, solver, Precision::F64)?;
    let parts = |dy: &mut crate::dynamics::Dynamics| -> Result<[Vec<f64>; 4]> {
        dy.evaluate_sites(&q, &v)?;
        let lay = dy.lagrangian.terms[0].density.layout();
        let kd = lay.kd;
        let stride = lay.stride();
        let (mut gq, mut m, mut cv, mut b) = (vec![], vec![], vec![], vec![]);
        for rec in dy.derivs.chunks_exact(stride) {
            for i in 0..kd {
                let (g, c) = (rec[lay.grad_q() + i], rec[lay.cv() + i]);
                gq.push(g);
                cv.push(c);
                b.push(g - c);
            }
            m.extend_from_slice(&rec[lay.mass()..lay.mass() + kd * kd]);
        }
        Ok([gq, m, cv, b])
    };
    let [gq32, m32, cv32, b32] = parts(&mut lo)?;
    let [gq64, m64, cv64, b64] = parts(&mut hi)?;
    let sum_abs = gq64
        .iter()
        .zip(&cv64)
        .fold(0.0f64, |s, (g, c)| s.max(g.abs() + c.abs()));
    let bmax = b64.iter().fold(0.0f64, |s, x| s.max(x.abs()));
    let a32 = lo.accelerations(&q, &v)?;
    let a64 = hi.accelerations(&q, &v)?;
    let (mass32, rhs32) = (lo.mass.clone(), lo.rhs.clone());
    let (mass64, rhs64) = (hi.mass.clone(), hi.rhs.clone());
    let mut solve = |m: &[f64], b: &[f64]| -> Result<Vec<f64>> {
        hi.solver.factorize(&hi.pattern, m)?;
        let mut a = b.to_vec();
        hi.solver.solve_in_place(&mut a)?;
        Ok(a)
    };
    let a_m = solve(&mass32, &rhs64)?;
    let a_b = solve(&mass64, &rhs32)?;
    let inf = |x: &[f64]| x.iter().fold(0.0f64, |s, y| s.max(y.abs()));
    let (ip, ix) = (&hi.pattern.indptr, &hi.pattern.indices);
    let (mut res, mut mnorm) = (0.0f64, 0.0f64);
    for r in 0..hi.pattern.n {
        let row = ip[r]..ip[r + 1];
        let ma: f64 = row.clone().map(|e| mass64[e] * a32[ix[e]]).sum();
        res = res.max((ma - rhs64[r]).abs());
        mnorm = mnorm.max(row.map(|e| mass64[e].abs()).sum());
    }
    Ok(PrecisionBreakdown {
        rec_grad_q: max_rel(&gq32, &gq64),
        rec_mass: max_rel(&m32, &m64),
        rec_cv: max_rel(&cv32, &cv64),
        rec_b: max_rel(&b32, &b64),
        b_cancellation: sum_abs / bmax.max(1e-300),
        mass: max_rel(&mass32, &mass64),
        rhs: max_rel(&rhs32, &rhs64),
        accel_mass_only: max_rel(&a_m, &a64),
        accel_rhs_only: max_rel(&a_b, &a64),
        accel: rel_errors(&a32, &a64),
        solve_gain: inf(&a64) / (inf(&rhs64) / inf(&mass64)).max(1e-300),
        backward: res / (mnorm * inf(&a32) + inf(&rhs64)).max(1e-300),
    })
}

/// One phase of the MLP block pass in [`PassBreakdown`] (docs/DESIGN.md §20.2).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PassPhaseFigure {
    pub name: &'static str,
    /// CPU seconds per acceleration (summed over the threads).
    pub cpu_seconds: f64,
    /// Share of the pass's CPU time.
    pub share: f64,
    /// Counted work of the phase per CPU second, GFLOP/s per thread (`None`: elementwise
    /// phases without counted flops).
    pub gflops_per_thread: Option<f64>,
    /// `gflops_per_thread` over the same process's f64 `bench gemm` figure per thread.
    pub of_gemm: Option<f64>,
    /// `gflops_per_thread` over lgn's own kernel on the same product (`None` where it does not
    /// run) and over the register-only FMA peak, per thread (docs/DESIGN.md §23).
    pub of_own_gemm: Option<f64>,
    pub of_peak: Option<f64>,
    /// Elementwise values per CPU second (activations: hidden units × sites), 10⁹/s.
    pub gvalues_per_second: Option<f64>,
}

/// Where the site-derivative pass spends its CPU time, phase by phase, with counted FLOP/s
/// against the machine's GEMM rate measured in the same process (`lgn bench accel
/// --breakdown`; docs/DESIGN.md §20.2).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PassBreakdown {
    pub n: usize,
    pub hidden: usize,
    pub layers: usize,
    pub precision: &'static str,
    pub threads: usize,
    pub reps: usize,
    /// Median wall time of one acceleration and of its site phase.
    pub seconds: f64,
    pub sites_seconds: f64,
    /// `lgn bench gemm`'s default product (128 × 128 by 128 × 320, f64, every thread at once), per
    /// thread, measured just before the accelerations.
    pub gemm_gflops_per_thread: f64,
    /// [`mlp_flops_per_site`] · n per CPU second of the pass (all its phases), per thread, and
    /// that over `gemm_gflops_per_thread`: the "site kernels against `bench gemm`".
    pub pass_gflops_per_thread: f64,
    pub pass_of_gemm: f64,
    /// lgn's own AVX-512 kernel on the same product, per thread (`None` on CPUs where the pass
    /// runs faer), and the pass against it (docs/DESIGN.md §23).
    pub own_gemm_gflops_per_thread: Option<f64>,
    pub pass_of_own_gemm: Option<f64>,
    /// The register-only FMA loop's rate per thread, and the pass against it.
    pub fma_peak_gflops_per_thread: Option<f64>,
    pub pass_of_peak: Option<f64>,
    /// CPU seconds of the site phase outside the pass (input gather, finiteness check, rayon
    /// scheduling and idle time): threads × wall − Σ phases.
    pub outside_pass_cpu_seconds: f64,
    pub phases: Vec<PassPhaseFigure>,
    pub cpu: String,
    pub simd: &'static str,
}

/// The benchmark ring of [`ring_system`]: n nodes, a 6 → hidden^layers → 1 MLP in `precision`.
#[derive(Clone, Copy, Debug)]
pub struct RingSpec {
    pub n: usize,
    pub hidden: usize,
    pub layers: usize,
    pub solver: SolverKind,
    pub precision: Precision,
}

/// [`PassBreakdown`] of the benchmark ring (the accelerations of [`accel`], repeated for at
/// least `min_seconds`).
pub fn pass_breakdown(ring: &RingSpec, min_seconds: f64) -> Result<PassBreakdown> {
    use crate::density::phase_clock;
    let RingSpec {
        n,
        hidden,
        layers,
        solver,
        precision,
    } = *ring;
    let threads = rayon::current_num_threads();
    let gemm = gemm_gflops(128, 128, 320, 1.0) / threads as f64;
    let own = own_gemm_gflops(128, 128, 320, 1.0).map(|g| g / threads as f64);
    let peak = fma_peak_gflops(0.5).map(|g| g / threads as f64);
    let mut dy = ring_system(n, hidden, layers, solver, precision)?;
    let (q, v) = ring_state(n);
    let mut a = vec![0.0; n];
    dy.accelerations_into(&q, &v, &mut a)?;
    let _ = phase_clock::take();
    phase_clock::enable(true);
    let run = repeat_accel(&mut dy, &q, &v, &mut a, min_seconds);
    phase_clock::enable(false);
    let (mut times, mut sites): (Vec<f64>, Vec<f64>) = run?.into_iter().unzip();
    let sites_total: f64 = sites.iter().sum();
    let totals = phase_clock::take();
    let reps = times.len() as f64;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let pass_cpu: f64 = totals.iter().map(|t| t.cpu_seconds).sum::<f64>() / reps;
    let mut sizes = vec![6];
    sizes.extend(std::iter::repeat_n(hidden, layers));
    sizes.push(1);
    let pass_gflops = mlp_flops_per_site(&sizes, 3) * n as f64 / pass_cpu.max(1e-300) / 1e9;
    let phases = totals
        .iter()
        .map(|t| {
            let cpu = t.cpu_seconds / reps;
            let gf = (t.flops > 0.0).then(|| t.flops / t.cpu_seconds.max(1e-300) / 1e9);
            PassPhaseFigure {
                name: t.name,
                cpu_seconds: cpu,
                share: cpu / pass_cpu.max(1e-300),
                gflops_per_thread: gf,
                of_gemm: gf.map(|g| g / gemm),
                of_own_gemm: gf.zip(own).map(|(g, o)| g / o),
                of_peak: gf.zip(peak).map(|(g, p)| g / p),
                gvalues_per_second: (t.values > 0.0)
                    .then(|| t.values / t.cpu_seconds.max(1e-300) / 1e9),
            }
        })
        .collect();
    let (cpu, simd) = cpu_simd();
    Ok(PassBreakdown {
        n,
        hidden,
        layers,
        precision: precision.name(),
        threads,
        reps: times.len(),
        seconds: median(&mut times),
        sites_seconds: median(&mut sites),
        gemm_gflops_per_thread: gemm,
        pass_gflops_per_thread: pass_gflops,
        pass_of_gemm: pass_gflops / gemm,
        own_gemm_gflops_per_thread: own,
        pass_of_own_gemm: own.map(|o| pass_gflops / o),
        fma_peak_gflops_per_thread: peak,
        pass_of_peak: peak.map(|p| pass_gflops / p),
        outside_pass_cpu_seconds: threads as f64 * sites_total / reps - pass_cpu,
        phases,
        cpu,
        simd,
    })
}
