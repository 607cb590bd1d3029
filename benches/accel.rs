//! Acceleration evaluation of the wave LGN (6 → 128 → 128 → 1 softplus MLP density, f64) on a
//! periodic ring: linear-time sparse path vs the paper's dense pseudo-inverse.
//!
//! Run with `cargo bench --bench accel` (filter e.g. `-- sparse`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use std::time::Duration;

fn state(n: usize) -> (Vec<f64>, Vec<f64>) {
    let q = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
    let v = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
    (q, v)
}

fn bench(c: &mut Criterion, solver: SolverKind, ns: &[usize]) {
    let mut group = c.benchmark_group(format!("accel_{solver}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let density = DensityChoice::Mlp {
        hidden: 128,
        layers: 2,
        seed: 0,
    };
    for &n in ns {
        let mut dy = systems::wave1d(n, 1.0 / n as f64, &density, solver).expect("system");
        let (q, v) = state(n);
        let mut a = vec![0.0; n];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                dy.accelerations_into(&q, &v, &mut a)
                    .expect("accelerations")
            })
        });
    }
    group.finish();
}

fn sparse(c: &mut Criterion) {
    bench(
        c,
        SolverKind::Sparse,
        &[64, 256, 1024, 4096, 16_384, 100_000, 1_000_000],
    );
}

fn banded(c: &mut Criterion) {
    bench(c, SolverKind::Banded, &[1024, 100_000]);
}

fn dense(c: &mut Criterion) {
    bench(c, SolverKind::Dense, &[64, 256, 1024, 4096]);
}

criterion_group!(benches, sparse, banded, dense);
criterion_main!(benches);
