//! Data generators, the standard-stencil wave density, the streaming simulator and plotting.

use lgn::data::{self, RelativisticG, WaveConfig};
use lgn::integrate::{linspace_times, Dp5Options, Method};
use lgn::io::{SamplesData, TrajectoryData, TrajectoryWriter, TrajectoryWriterOptions};
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use rand::SeedableRng;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lgn-gen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn wave1d_standard_accelerations_are_the_standard_stencil() {
    for (n, solver) in [
        (7, SolverKind::Auto),
        (100, SolverKind::Auto),
        (64, SolverKind::Sparse),
    ] {
        let dx = 1.0 / n as f64;
        let mut dy = systems::wave1d_standard(n, dx, &DensityChoice::Analytic, solver).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
        let q: Vec<f64> = (0..n)
            .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
            .collect();
        let v: Vec<f64> = (0..n)
            .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
            .collect();
        let a = dy.accelerations(&q, &v).unwrap();
        let s = data::wave_stencil(&q, dx);
        let scale = s.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for i in 0..n {
            assert!(
                (a[i] - s[i]).abs() <= 1e-12 * scale,
                "n = {n}, i = {i}: {} vs {}",
                a[i],
                s[i]
            );
        }
        // Discrete energy: Σ ½φ̇² + ½((φ_{i+1} − φ_i)/Δx)².
        let e: f64 = (0..n)
            .map(|i| 0.5 * v[i] * v[i] + 0.5 * ((q[(i + 1) % n] - q[i]) / dx).powi(2))
            .sum();
        let e_dy = dy.energy(&q, &v).unwrap();
        assert!((e - e_dy).abs() <= 1e-12 * e.abs(), "{e} vs {e_dy}");
    }
}

#[test]
fn dblpend_samples_match_the_engine_and_the_reference_ranges() {
    let s = data::dblpend_samples(500, 9.8, 10.0, 7).unwrap();
    assert_eq!(s.q.dim(), (500, 2));
    let mut dy = systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    for i in 0..s.len() {
        let q = s.q.row(i).to_vec();
        let v = s.qdot.row(i).to_vec();
        let a = dy.accelerations(&q, &v).unwrap();
        for c in 0..2 {
            let want = s.qddot[[i, c]];
            assert!(
                (a[c] - want).abs() <= 1e-10 * (1.0 + want.abs()),
                "{a:?} vs {want}"
            );
        }
        assert!(q
            .iter()
            .all(|x| (0.0..2.0 * std::f64::consts::PI).contains(x)));
        assert!(v.iter().all(|x| x.abs() <= 10.0));
    }
    assert_eq!(s.params["g"], 9.8);
    // Round trip through the file, refusal to overwrite.
    let p = tmp("dp_samples.h5");
    s.write(&p, false).unwrap();
    assert_eq!(SamplesData::read(&p).unwrap().q, s.q);
    assert!(s
        .write(&p, false)
        .unwrap_err()
        .to_string()
        .contains("--force"));
    s.write(&p, true).unwrap();
}

fn max_rel_energy_drift(t: &TrajectoryData) -> f64 {
    let e = t.energy.as_ref().unwrap();
    let mut worst: f64 = 0.0;
    for b in 0..e.nrows() {
        let e0 = e[[b, 0]];
        for k in 0..e.ncols() {
            worst = worst.max((e[[b, k]] - e0).abs() / e0.abs().max(1.0));
        }
    }
    worst
}

#[test]
fn dblpend_trajectories_conserve_energy_to_the_tolerance() {
    let times = linspace_times(201, 0.05);
    for tol in [1e-8, 1e-10] {
        let t = data::dblpend_trajectories(
            6,
            &times,
            9.8,
            10.0,
            1,
            &Method::Dp5(Dp5Options::tol(tol, tol)),
        )
        .unwrap();
        assert_eq!(t.q.dim(), (6, 201, 2));
        let drift = max_rel_energy_drift(&t);
        eprintln!("dblpend DP5 tol {tol:e}: max relative energy drift over t ∈ [0, 10]: {drift:e}");
        assert!(drift < 1e3 * tol, "{drift}");
        // Stored accelerations are the dynamics at the stored states.
        let qdd = t.qddot.as_ref().unwrap();
        for b in 0..6 {
            for k in [0, 100, 200] {
                let q = t.q.slice(ndarray::s![b, k, ..]).to_vec();
                let v = t.qdot.slice(ndarray::s![b, k, ..]).to_vec();
                let a = data::dblpend_accel(&q, &v, 9.8);
                for c in 0..2 {
                    assert!((a[c] - qdd[[b, k, c]]).abs() < 1e-9 * (1.0 + a[c].abs()));
                }
            }
        }
    }
}

#[test]
fn relativistic_samples_and_trajectories() {
    let r = data::relativistic_samples(300, RelativisticG::Fixed(0.5), 2).unwrap();
    for i in 0..300 {
        let v = r.samples.qdot[[i, 0]];
        assert!(v.abs() < 1.0 && r.samples.q[[i, 0]].abs() < 1.0);
        let want = 0.5 * (1.0 - v * v).powf(2.5) / (1.0 + 2.0 * v * v);
        assert!((r.samples.qddot[[i, 0]] - want).abs() < 1e-14);
        assert!(
            (r.p[[i, 0]] - v / (1.0 - v * v).powf(1.5)).abs() < 1e-12 * r.p[[i, 0]].abs().max(1.0)
        );
    }
    let u = data::relativistic_samples(300, RelativisticG::Uniform(0.0, 1.0), 2).unwrap();
    let g = u.g.as_ref().unwrap();
    assert!(g.iter().all(|x| (0.0..1.0).contains(x)));
    let p = tmp("rel.h5");
    u.write(&p, false).unwrap();
    let f = hdf5::File::open(&p).unwrap();
    assert_eq!(f.dataset("p").unwrap().shape(), vec![300, 1]);
    assert_eq!(f.dataset("g").unwrap().shape(), vec![300]);
    drop(f);
    assert_eq!(SamplesData::read(&p).unwrap().len(), 300);

    let t = data::relativistic_trajectories(
        4,
        &linspace_times(101, 0.05),
        1.0,
        3,
        &data::default_method(),
    )
    .unwrap();
    let drift = max_rel_energy_drift(&t);
    eprintln!("relativistic DP5 energy drift {drift:e}");
    assert!(drift < 1e-7, "{drift}");
}

#[test]
fn wave1d_samples_satisfy_the_standard_stencil_and_trajectories_conserve_energy() {
    let cfg = WaveConfig {
        n: 50,
        ..Default::default()
    };
    let m = data::default_method();
    let s = data::wave1d_samples(25, &cfg, 10, 1.0, 4, &m).unwrap();
    assert_eq!(s.q.dim(), (25, 50));
    assert_eq!(s.params["dx"], 1.0 / 50.0);
    assert_eq!(s.params["n"], 50.0);
    for i in 0..25 {
        let q = s.q.row(i).to_vec();
        let st = data::wave_stencil(&q, cfg.dx());
        for (c, x) in st.iter().enumerate() {
            assert!((x - s.qddot[[i, c]]).abs() < 1e-12 * (1.0 + x.abs()));
        }
    }
    // Samples come from different times: not all identical to the initial states.
    assert!(s.q.row(0) != s.q.row(1));

    let t = data::wave1d_trajectories(2, &cfg, &linspace_times(51, 0.02), 5, &m).unwrap();
    let drift = max_rel_energy_drift(&t);
    eprintln!("wave1d DP5 energy drift {drift:e}");
    assert!(drift < 1e-8, "{drift}");
    // Trajectory qddot is the stencil too, and the exact-mode check: a single standing mode
    // oscillates at ω = 2 sin(πk/n)/Δx.
    let n = 16;
    let cfg = WaveConfig {
        n,
        ..Default::default()
    };
    let dx = cfg.dx();
    let k = 3.0;
    let q0: Vec<f64> = (0..n)
        .map(|i| (2.0 * std::f64::consts::PI * k * i as f64 / n as f64).sin())
        .collect();
    let omega = 2.0 * (std::f64::consts::PI * k / n as f64).sin() / dx;
    let tr = data::trajectories(
        || cfg.system(),
        &[(q0.clone(), vec![0.0; n])],
        &[0.0, 0.7],
        &m,
    )
    .unwrap();
    for (i, x) in q0.iter().enumerate() {
        let want = x * (omega * 0.7).cos();
        assert!(
            (tr.q[[0, 1, i]] - want).abs() < 1e-8,
            "{} vs {want}",
            tr.q[[0, 1, i]]
        );
    }
}

#[test]
fn simulate_streams_frames_and_plots_render() {
    let p = tmp("sim.h5");
    let opts = TrajectoryWriterOptions {
        system: Some("dblpend".into()),
        with_qddot: true,
        with_energy: true,
        chunk_frames: Some(16),
        ..Default::default()
    };
    let mut w = TrajectoryWriter::create(&p, 1, 2, &opts, false).unwrap();
    let times = linspace_times(101, 0.05);
    let mut seen = 0;
    data::simulate(
        || systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto),
        &Method::Rk4 { dt: 0.005 },
        &[1.0, 2.0],
        &[0.5, -0.3],
        &times,
        &mut w,
        |k| seen = k,
    )
    .unwrap();
    w.finish().unwrap();
    assert_eq!(seen, 101);
    let t = TrajectoryData::read(&p).unwrap();
    assert_eq!(t.q.dim(), (1, 101, 2));
    let drift = max_rel_energy_drift(&t);
    assert!(drift < 1e-5, "{drift}");

    // Plots: valid PNGs, and text is actually drawn (a title changes the pixels).
    let x: Vec<f64> = t.t.to_vec();
    let y: Vec<f64> = t.q.slice(ndarray::s![0, .., 0]).to_vec();
    let a = tmp("a.png");
    let b = tmp("b.png");
    let s = [lgn::plot::Series::new("truth", x.clone(), y.clone())];
    lgn::plot::line_plot(&a, "θ₁ vs time", "t", "θ₁", &s, (600, 400), false).unwrap();
    lgn::plot::line_plot(&b, "", "t", "θ₁", &s, (600, 400), false).unwrap();
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(&ba[1..4], b"PNG");
    assert_ne!(ba, bb);
    assert!(lgn::plot::line_plot(&a, "x", "t", "y", &s, (600, 400), false).is_err());
    let field = t.q.slice(ndarray::s![0, .., ..]);
    let c = tmp("c.png");
    lgn::plot::spacetime(
        &c,
        "test",
        &x,
        0.5,
        &[
            lgn::plot::Panel {
                title: "truth".into(),
                field,
            },
            lgn::plot::Panel {
                title: "diff".into(),
                field,
            },
        ],
        false,
    )
    .unwrap();
    assert_eq!(&std::fs::read(&c).unwrap()[1..4], b"PNG");
}
