//! `data::dblpend_samples_bounded`: double-pendulum states in the energy shell
//! (docs/DESIGN.md §21.2), against the independent energy of `density::DoublePendulum`.

use lgn::data::{dblpend_accel, dblpend_samples_bounded};
use lgn::density::DoublePendulum;

#[test]
fn states_fill_the_energy_shell_uniformly() {
    let (g, e_max) = (9.8, 35.0);
    let s = dblpend_samples_bounded(20_000, g, e_max, 7).unwrap();
    let dp = DoublePendulum::paper(g);
    // Independent truth: the energy of DoublePendulum, and T / (e_max − V) = r² / r_max²,
    // which is uniform on [0, 1] for ω uniform in the ellipse.
    let mut hist = [0usize; 10];
    for i in 0..s.len() {
        let (q, v) = ([s.q[[i, 0]], s.q[[i, 1]]], [s.qdot[[i, 0]], s.qdot[[i, 1]]]);
        let e = dp.energy(&q, &v);
        let pot = dp.energy(&q, &[0.0, 0.0]);
        assert!(e <= e_max + 1e-9, "sample {i}: E = {e} > {e_max}");
        let frac = (e - pot) / (e_max - pot);
        hist[((frac * 10.0) as usize).min(9)] += 1;
        let a = dblpend_accel(&q, &v, g);
        assert_eq!([s.qddot[[i, 0]], s.qddot[[i, 1]]], a);
    }
    // 2000 expected per bin, σ ≈ 42: 5σ.
    for (b, &c) in hist.iter().enumerate() {
        assert!((c as f64 - 2000.0).abs() < 210.0, "bin {b}: {c} of 20000");
    }
    // ω spans the shell: the largest |ω| reaches the fastest state at the bottom,
    // ½ ωᵀMω = e_max + 3g with ω along M's smallest eigenvector.
    let wmax = s.qdot.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    assert!(wmax > 10.0 && wmax < 20.0, "max |ω| = {wmax}");
    assert_eq!(s, dblpend_samples_bounded(20_000, g, e_max, 7).unwrap());
}

#[test]
fn bad_shells_are_refused_by_name() {
    for (g, e) in [(9.8, f64::NAN), (9.8, -40.0), (0.0, 30.0), (9.8, f64::MAX)] {
        let err = dblpend_samples_bounded(10, g, e, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("e_max") || err.contains("g"), "{err}");
    }
    assert!(dblpend_samples_bounded(0, 9.8, 30.0, 0).is_err());
}
