//! Measurements behind `lgn bench` and the criterion benches.

use crate::density::Mlp;
use crate::solve::SolverKind;
use crate::systems::{self, DensityChoice};
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
    /// Multiply-add work of the MLP derivative passes, counted as 2 flops each, per second.
    pub mlp_gflops: f64,
    /// Peak resident memory of the process so far (VmHWM), MB.
    pub peak_rss_mb: f64,
    pub precision: &'static str,
    /// Phase breakdown of the median evaluation's neighbourhood (last timed call).
    pub phases: crate::dynamics::PhaseTimes,
    /// Stored entries of M.
    pub nnz: usize,
}

/// Floating-point operations of one site's exact-derivative pass (DESIGN §2):
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
/// 6 → hidden^layers → 1 softplus MLP density (f64). `min_seconds` bounds the measuring time.
pub fn accel(
    n: usize,
    hidden: usize,
    layers: usize,
    solver: SolverKind,
    min_seconds: f64,
) -> Result<AccelBench> {
    let t0 = Instant::now();
    let density = DensityChoice::Mlp {
        hidden,
        layers,
        seed: 0,
    };
    let mut dy = systems::wave1d(n, 1.0 / n as f64, &density, solver)?;
    let mut rng = StdRng::seed_from_u64(n as u64);
    let q: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut a = vec![0.0; n];
    let setup_seconds = t0.elapsed().as_secs_f64();
    // warm-up (first touch of buffers, GEMM kernel dispatch)
    dy.accelerations_into(&q, &v, &mut a)?;
    let mut times = vec![];
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < min_seconds && times.len() < 50) {
        let t = Instant::now();
        dy.accelerations_into(&q, &v, &mut a)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    let mut sizes = vec![6];
    sizes.extend(std::iter::repeat_n(hidden, layers));
    sizes.push(1);
    let flops = mlp_flops_per_site(&sizes, 3) * n as f64;
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
        peak_rss_mb: peak_rss_mb(),
        precision: "f64",
        phases: dy.timings,
        nnz: dy.pattern.nnz(),
    })
}

/// GEMM throughput in GFLOP/s for an m×k by k×n product through faer, run on every rayon
/// thread at once (independent products), to compare the MLP passes with the machine's peak.
pub fn gemm_gflops(m: usize, k: usize, n: usize, min_seconds: f64) -> f64 {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, Mat, Par};
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    let a = Mat::<f64>::from_fn(m, k, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.1);
    let b = Mat::<f64>::from_fn(k, n, |i, j| ((i * 5 + j) % 13) as f64 * 0.1);
    let reps_per_check = ((2e8 / (2.0 * (m * k * n) as f64)) as usize).max(1);
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed().as_secs_f64() < min_seconds || done == 0 {
        (0..threads).into_par_iter().for_each(|_| {
            let mut c = Mat::<f64>::zeros(m, n);
            for _ in 0..reps_per_check {
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
        });
        done += reps_per_check * threads;
    }
    2.0 * (m * k * n) as f64 * done as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Default MLP used by benchmarks.
pub fn bench_mlp(hidden: usize, layers: usize) -> Mlp {
    let mut sizes = vec![6];
    sizes.extend(std::iter::repeat_n(hidden, layers));
    sizes.push(1);
    Mlp::paper_init(&sizes, 0)
}
