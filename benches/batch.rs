//! Accelerations of a batch of single-site states in one call
//! ([`lgn::dynamics::Dynamics::accelerations_batch`]) vs a loop of single evaluations
//! ([`lgn::dynamics::Dynamics::accelerations_into`]): the closed-form double pendulum (10⁴
//! states) and the paper's LNN on it (a 4 → 128 → 128 → 1 softplus MLP, 10³ states).
//!
//! Run with `cargo bench --bench batch` (filter e.g. `-- dblpend`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use std::time::Duration;

fn states(b: usize) -> (Vec<f64>, Vec<f64>) {
    let q = (0..2 * b).map(|i| 2.0 * (i as f64 * 0.37).sin()).collect();
    let v = (0..2 * b).map(|i| 0.5 * (i as f64 * 0.11).cos()).collect();
    (q, v)
}

fn bench(c: &mut Criterion, name: &str, density: DensityChoice, b: usize) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(b as u64));
    let mut dy = systems::dblpend(9.8, &density, SolverKind::Auto).expect("system");
    let (q, v) = states(b);
    let mut out = vec![0.0; 2 * b];
    group.bench_function("batch", |bn| {
        bn.iter(|| dy.accelerations_batch(&q, &v, &mut out).expect("batch"))
    });
    group.bench_function("loop", |bn| {
        bn.iter(|| {
            for i in 0..b {
                let r = 2 * i..2 * i + 2;
                dy.accelerations_into(&q[r.clone()], &v[r.clone()], &mut out[r])
                    .expect("accelerations");
            }
        })
    });
    group.finish();
}

fn batches(c: &mut Criterion) {
    bench(c, "dblpend_closed_form", DensityChoice::Analytic, 10_000);
    let lnn = DensityChoice::Mlp {
        hidden: 128,
        layers: 2,
        seed: 0,
    };
    bench(c, "dblpend_lnn128", lnn, 1_000);
}

criterion_group!(benches, batches);
criterion_main!(benches);
