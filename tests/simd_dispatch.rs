//! The run-time dispatched SIMD kernels against the scalar kernel, the f32 passes against f64,
//! and a benchmark-shaped smoke run of the binary as built (CI builds without any RUSTFLAGS, so
//! this exercises exactly what a dependent crate or a Python wheel gets). No timing assertions.

use lgn::density::simd::{self, SimdLevel};
use lgn::density::{Density, Mlp, MlpDensity, Precision};
use lgn::solve::SolverKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| scale * rng.random_range(-1.0..1.0))
        .collect()
}

/// Levels to compare with the scalar one: every level this CPU supports.
fn levels() -> Vec<SimdLevel> {
    [SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter(|&l| l <= simd::detected())
        .collect()
}

fn eval(d: &MlpDensity, x: &[f64], nb: usize) -> Vec<f64> {
    let mut out = vec![0.0; d.layout().stride() * nb];
    d.eval_block(x, nb, &mut out);
    out
}

#[test]
fn dispatched_mlp_records_equal_scalar() {
    for (arity, dof, nf, hidden, nb) in [
        (3, 1, 0, vec![128, 128], 67),
        (1, 2, 0, vec![33, 17, 9], 5),
        (2, 1, 2, vec![20], 13),
        // the AVX-512 register tile for kd = 4 and kd = 1, full chunks and a tail; kd = 5
        // takes the slice kernels at every level
        (2, 2, 0, vec![24, 16], 21),
        (1, 1, 1, vec![16, 16], 19),
        (5, 1, 0, vec![12, 12], 9),
    ] {
        let p = 2 * arity * dof + nf;
        let mut sizes = vec![p];
        sizes.extend(&hidden);
        sizes.push(1);
        let dens = MlpDensity::new(Mlp::paper_init(&sizes, 3), arity, dof, nf).unwrap();
        let x = random(p * nb, 11, 2.0);
        let scalar = eval(&dens.clone().with_simd(Some(SimdLevel::Scalar)), &x, nb);
        assert!(scalar.iter().all(|v| v.is_finite()));
        let scale = scalar.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut all = levels();
        all.push(simd::active());
        for level in all {
            let v = eval(&dens.clone().with_simd(Some(level)), &x, nb);
            for (i, (a, b)) in scalar.iter().zip(&v).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-12 * scale,
                    "{level} record value {i}: scalar {a} vs {b} (sizes {sizes:?})"
                );
            }
        }
    }
}

#[test]
fn dispatched_adjoint_equals_scalar() {
    use lgn::train::hyperdual::{adjoint_block_at, n_params};
    let sizes = [4, 48, 48, 1];
    let mlp = Mlp::paper_init(&sizes, 5);
    let nb = 19;
    let xin = random(4 * 4 * nb, 2, 1.5);
    let run = |level| {
        let mut x = xin.clone();
        let mut g = vec![0.0; n_params(&sizes)];
        let s = adjoint_block_at(level, &mlp, &mut x, nb, &mut g);
        (s, g)
    };
    let (s0, g0) = run(SimdLevel::Scalar);
    let gs = g0.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for level in levels() {
        let (s, g) = run(level);
        assert!(
            (s - s0).abs() <= 1e-12 * s0.abs().max(1.0),
            "{level}: {s} vs {s0}"
        );
        for (a, b) in g0.iter().zip(&g) {
            assert!((a - b).abs() <= 1e-12 * gs, "{level}: {a} vs {b}");
        }
    }
}

/// f32 passes: site records within f32 rounding of the f64 ones, ring accelerations within
/// 1e-4 relative (the target), for the benchmark's 6-128-128-1 density.
#[test]
fn f32_passes_track_f64() {
    let dens = MlpDensity::new(Mlp::paper_init(&[6, 128, 128, 1], 0), 3, 1, 0).unwrap();
    let d32 = dens.clone().with_precision(Precision::F32);
    assert_eq!(d32.precision(), Precision::F32);
    let nb = 40;
    let x = random(6 * nb, 4, 1.0);
    let (r64, r32) = (eval(&dens, &x, nb), eval(&d32, &x, nb));
    let stride = dens.layout().stride();
    for (a, b) in r64.chunks(stride).zip(r32.chunks(stride)) {
        let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (u, v) in a.iter().zip(b) {
            assert!((u - v).abs() <= 2e-5 * scale, "{u} vs {v} (scale {scale})");
        }
    }
    for n in [200, 5000] {
        let mut a = Vec::new();
        for p in [Precision::F64, Precision::F32] {
            let mut dy = lgn::bench::ring_system(n, 128, 2, SolverKind::Sparse, p).unwrap();
            let (q, v) = lgn::bench::ring_state(n);
            a.push(dy.accelerations(&q, &v).unwrap());
        }
        let inf = a[0].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = a[0]
            .iter()
            .zip(&a[1])
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            err <= 1e-4 * inf,
            "n = {n}: max |a32 − a64| = {err:e}, max |a64| = {inf:e}"
        );
    }
}

/// The benchmark as a user runs it, at a small size: finite, and the record names the CPU and
/// the SIMD level the kernels ran at.
#[test]
fn bench_accel_smoke() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lgn"))
        .args([
            "bench",
            "accel",
            "--n",
            "3000",
            "--hidden",
            "128",
            "--min-seconds",
            "0",
            "--json",
        ])
        .output()
        .expect("run lgn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    assert!(v["mlp_gflops"].as_f64().unwrap().is_finite());
    assert_eq!(v["simd"].as_str().unwrap(), simd::active().name());
    assert!(!v["cpu"].as_str().unwrap().is_empty());
    let r = lgn::bench::accel(3000, 128, 2, SolverKind::Sparse, Precision::F32, 0.0).unwrap();
    assert_eq!(r.precision, "f32");
    assert!(r.seconds > 0.0 && r.mlp_gflops.is_finite());
}
