//! Integrators: convergence orders, energy behaviour, tolerances, errors.

use lgn::integrate::{integrate, solve, Dp5Options, Method, MidpointOptions, SecondOrder};
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use lgn::Result;

fn sho(q: &[f64], _v: &[f64], a: &mut [f64]) -> Result<()> {
    a[0] = -q[0];
    Ok(())
}

/// Max error of (q, v) at t = T vs the exact harmonic oscillator q = cos t.
fn sho_error(method: Method, t_end: f64) -> f64 {
    let mut f = sho;
    let s = solve(&mut f, &method, &[1.0], &[0.0], &[0.0, t_end]).unwrap();
    let (q, v) = (s.q_at(1)[0], s.v_at(1)[0]);
    (q - t_end.cos()).abs().max((v + t_end.sin()).abs())
}

fn order(errs: &[f64]) -> Vec<f64> {
    errs.windows(2).map(|w| (w[0] / w[1]).log2()).collect()
}

#[test]
fn rk4_is_fourth_order() {
    let dts = [0.2, 0.1, 0.05, 0.025];
    let errs: Vec<f64> = dts
        .iter()
        .map(|&dt| sho_error(Method::Rk4 { dt }, 10.0))
        .collect();
    let p = order(&errs);
    eprintln!("rk4 errors {errs:?} orders {p:?}");
    for x in p {
        assert!((x - 4.0).abs() < 0.15, "rk4 order {x}");
    }
}

#[test]
fn dp5_is_fifth_order_with_fixed_steps() {
    // Accept every step (huge tolerance) and cap the step: a fixed-step DP5.
    let dts = [0.4, 0.2, 0.1, 0.05];
    let errs: Vec<f64> = dts
        .iter()
        .map(|&dt| {
            sho_error(
                Method::Dp5(Dp5Options {
                    rtol: 1e10,
                    atol: 1e10,
                    h0: Some(dt),
                    h_max: Some(dt),
                    max_steps: 1_000_000,
                }),
                10.0,
            )
        })
        .collect();
    let p = order(&errs);
    eprintln!("dp5 errors {errs:?} orders {p:?}");
    for x in p {
        assert!((x - 5.0).abs() < 0.3, "dp5 order {x}");
    }
}

#[test]
fn verlet_and_midpoint_are_second_order() {
    let dts = [0.1, 0.05, 0.025];
    let verlet: Vec<f64> = dts
        .iter()
        .map(|&dt| sho_error(Method::Verlet { dt }, 10.0))
        .collect();
    // The midpoint integrator needs a Lagrangian: one Fourier mode of the analytic wave ring.
    let midpoint: Vec<f64> = dts
        .iter()
        .map(|&dt| {
            wave_single_mode_error(Method::Midpoint {
                dt: dt / 10.0,
                opts: MidpointOptions::default(),
            })
        })
        .collect();
    for (name, errs) in [("verlet", verlet), ("midpoint", midpoint)] {
        let p = order(&errs);
        eprintln!("{name} errors {errs:?} orders {p:?}");
        for x in p {
            assert!((x - 2.0).abs() < 0.1, "{name} order {x}");
        }
    }
}

/// Error of a single Fourier mode of the analytic wave1d ring (n = 8) at t = 2 vs its exact
/// harmonic motion.
fn wave_single_mode_error(m: Method) -> f64 {
    let n = 8;
    let dx = 1.0 / n as f64;
    let mut dy = systems::wave1d(n, dx, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let k = 2.0 * std::f64::consts::PI / n as f64; // mode 1
    let q0: Vec<f64> = (0..n).map(|i| (k * i as f64).cos()).collect();
    let v0 = vec![0.0; n];
    // Wide stencil: φ̈ = (φ_{i+2} − 2φ_i + φ_{i−2})/(4dx²) → ω = sin(k)/dx.
    let omega = k.sin() / dx;
    let t_end = 2.0;
    let s = solve(&mut dy, &m, &q0, &v0, &[0.0, t_end]).unwrap();
    (0..n)
        .map(|i| (s.q_at(1)[i] - q0[i] * (omega * t_end).cos()).abs())
        .fold(0.0, f64::max)
}

/// Max |E − E₀| over two halves of a run, energies at every output.
fn energy_halves(energies: &[f64]) -> (f64, f64) {
    let e0 = energies[0];
    let h = energies.len() / 2;
    let m = |s: &[f64]| s.iter().map(|e| (e - e0).abs()).fold(0.0, f64::max);
    (m(&energies[..h]), m(&energies[h..]))
}

#[test]
fn verlet_energy_is_bounded_on_the_oscillator_over_1e5_steps() {
    let mut f = sho;
    let dt = 0.1;
    let times: Vec<f64> = (0..=100_000).map(|k| k as f64 * dt).collect();
    let mut energies = Vec::with_capacity(times.len());
    let stats = integrate(
        &mut f,
        &Method::Verlet { dt },
        &[1.0],
        &[0.0],
        &times,
        |_, _, q, v| {
            energies.push(0.5 * (q[0] * q[0] + v[0] * v[0]));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(stats.steps, 100_000);
    let (a, b) = energy_halves(&energies);
    eprintln!("verlet SHO max |ΔE| first half {a:e}, second half {b:e}");
    // Bounded by O(dt²) (modified energy), and no growth between the halves.
    assert!(b < 0.5 * dt * dt, "{b}");
    assert!(b < 1.05 * a, "drift: {a} then {b}");
    // RK4 by contrast dissipates monotonically.
    let mut f = sho;
    let mut e_rk4 = Vec::new();
    integrate(
        &mut f,
        &Method::Rk4 { dt: 0.5 },
        &[1.0],
        &[0.0],
        &times[..20_001],
        |_, _, q, v| {
            e_rk4.push(0.5 * (q[0] * q[0] + v[0] * v[0]));
            Ok(())
        },
    )
    .unwrap();
    let (a, b) = energy_halves(&e_rk4);
    assert!(b > 1.5 * a, "rk4 drift expected: {a} then {b}");
}

#[test]
fn verlet_energy_is_bounded_on_the_wave1d_ring() {
    let n = 100;
    let dx = 1.0 / n as f64;
    let mut dy = systems::wave1d(n, dx, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let x = |i: usize| i as f64 * dx;
    let q0: Vec<f64> = (0..n)
        .map(|i| (-((x(i) - 0.5) / 0.1).powi(2)).exp())
        .collect();
    let v0: Vec<f64> = (0..n)
        .map(|i| 0.3 * (2.0 * std::f64::consts::PI * x(i)).sin())
        .collect();
    let dt = 0.002; // ω_max = 1/dx = 100: ω_max·dt = 0.2
    let steps = 100_000;
    let every = 100;
    let times: Vec<f64> = (0..=steps / every)
        .map(|k| (k * every) as f64 * dt)
        .collect();
    let mut states = Vec::new();
    let st = integrate(
        &mut dy,
        &Method::Verlet { dt },
        &q0,
        &v0,
        &times,
        |_, _, q, v| {
            states.push((q.to_vec(), v.to_vec()));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(st.steps, steps);
    let energies: Vec<f64> = states
        .iter()
        .map(|(q, v)| dy.energy(q, v).unwrap())
        .collect();
    let (a, b) = energy_halves(&energies);
    let rel = b / energies[0].abs();
    eprintln!(
        "verlet wave1d E0 = {}, max |ΔE| halves {a:e} {b:e} (relative {rel:e})",
        energies[0]
    );
    assert!(rel < 1e-2, "{rel}");
    assert!(b < 1.2 * a + 1e-12, "drift: {a} then {b}");
}

fn dblpend_state() -> (Vec<f64>, Vec<f64>) {
    (vec![1.0, 2.0], vec![0.5, -0.3])
}

#[test]
fn dp5_meets_tolerance_on_the_double_pendulum() {
    let mut dy = systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let (q0, v0) = dblpend_state();
    let times: Vec<f64> = (0..=20).map(|k| k as f64 * 0.25).collect();
    let reference = solve(&mut dy, &Method::Rk4 { dt: 2e-4 }, &q0, &v0, &times).unwrap();
    for tol in [1e-6, 1e-8, 1e-10] {
        let s = solve(
            &mut dy,
            &Method::Dp5(Dp5Options::tol(tol, tol)),
            &q0,
            &v0,
            &times,
        )
        .unwrap();
        let mut worst: f64 = 0.0;
        for k in 0..times.len() {
            for (a, b) in s
                .q_at(k)
                .iter()
                .chain(s.v_at(k))
                .zip(reference.q_at(k).iter().chain(reference.v_at(k)))
            {
                worst = worst.max((a - b).abs() / (tol + tol * b.abs()));
            }
        }
        eprintln!(
            "dp5 tol {tol:e}: worst error/tolerance {worst:.3} over t ∈ [0, 5] (dense output), {:?}",
            s.stats
        );
        // Local error control: the global error over a few Lyapunov times is a modest multiple.
        assert!(worst < 20.0, "tol {tol}: error is {worst} × tolerance");
    }
}

#[test]
fn dp5_dense_output_matches_the_exact_oscillator() {
    let mut f = sho;
    let times: Vec<f64> = (0..=1000).map(|k| k as f64 * 0.0137).collect();
    let tol = 1e-9;
    let s = solve(
        &mut f,
        &Method::Dp5(Dp5Options::tol(tol, tol)),
        &[1.0],
        &[0.0],
        &times,
    )
    .unwrap();
    let worst = (0..times.len())
        .map(|k| (s.q_at(k)[0] - times[k].cos()).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "dp5 dense output worst error {worst:e} with {} steps for {} outputs",
        s.stats.steps,
        times.len()
    );
    assert!(worst < 20.0 * tol, "{worst}");
    let plain = solve(
        &mut f,
        &Method::Dp5(Dp5Options::tol(tol, tol)),
        &[1.0],
        &[0.0],
        &[0.0, times[times.len() - 1]],
    )
    .unwrap();
    assert!(
        s.stats.steps <= plain.stats.steps + 2,
        "dense output should not force small steps: {} vs {}",
        s.stats.steps,
        plain.stats.steps
    );
}

#[test]
fn midpoint_energy_is_bounded_on_the_double_pendulum_and_converges_on_the_relativistic_particle() {
    // Double pendulum: velocity-independent but configuration-dependent M.
    let mut dy = systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let (q0, v0) = dblpend_state();
    let dt = 0.01;
    let times: Vec<f64> = (0..=1000).map(|k| k as f64 * 100.0 * dt).collect(); // 10^5 steps
    let mut e = Vec::new();
    let m = Method::Midpoint {
        dt,
        opts: MidpointOptions::default(),
    };
    let mut states = Vec::new();
    integrate(&mut dy, &m, &q0, &v0, &times, |_, _, q, v| {
        states.push((q.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    for (q, v) in &states {
        e.push(dy.energy(q, v).unwrap());
    }
    let (a, b) = energy_halves(&e);
    eprintln!("midpoint dblpend over 1e5 steps: max |ΔE| halves {a:e} {b:e}");
    assert!(b < 0.05 && b < 2.0 * a, "{a} {b}");

    // Relativistic particle: velocity-dependent M (in a uniform field the motion is not
    // periodic: q̇ → −1 and M → ∞, so only accuracy is checked here).
    // Accuracy against DP5.
    let mut dy2 = systems::relativistic(-1.0, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let t = [0.0, 3.0];
    let r = solve(
        &mut dy2,
        &Method::Dp5(Dp5Options::tol(1e-12, 1e-12)),
        &[0.0],
        &[0.9],
        &t,
    )
    .unwrap();
    let errs: Vec<f64> = [0.02, 0.01, 0.005]
        .iter()
        .map(|&dt| {
            let s = solve(
                &mut dy2,
                &Method::Midpoint {
                    dt,
                    opts: MidpointOptions::default(),
                },
                &[0.0],
                &[0.9],
                &t,
            )
            .unwrap();
            (s.q_at(1)[0] - r.q_at(1)[0])
                .abs()
                .max((s.v_at(1)[0] - r.v_at(1)[0]).abs())
        })
        .collect();
    let p = order(&errs);
    eprintln!("midpoint relativistic errors {errs:?} orders {p:?}");
    for x in p {
        assert!((x - 2.0).abs() < 0.2, "{x}");
    }
}

#[test]
fn dp5_reports_step_limit_and_errors_from_the_system() {
    let mut f = sho;
    let e = solve(
        &mut f,
        &Method::Dp5(Dp5Options {
            max_steps: 5,
            ..Dp5Options::tol(1e-12, 1e-12)
        }),
        &[1.0],
        &[0.0],
        &[0.0, 100.0],
    )
    .unwrap_err();
    assert!(e.to_string().contains("limit of 5 steps"), "{e}");
    // Singular point: q̈ = 1/q hits q = 0.
    let mut g = |q: &[f64], _: &[f64], a: &mut [f64]| -> Result<()> {
        a[0] = -1.0 / q[0];
        Ok(())
    };
    let e = solve(
        &mut g,
        &Method::Dp5(Dp5Options::default()),
        &[1.0],
        &[0.0],
        &[0.0, 10.0],
    )
    .unwrap_err();
    eprintln!("{e}");
    assert!(
        matches!(
            e,
            lgn::Error::Integrate(lgn::error::IntegrateError::NonFiniteState { .. })
                | lgn::Error::Integrate(lgn::error::IntegrateError::StepUnderflow { .. })
        ),
        "{e}"
    );
    assert!(std::error::Error::source(&e).is_some(), "typed source: {e}");
    // A system error propagates unchanged.
    let mut h = |_: &[f64], _: &[f64], _: &mut [f64]| -> Result<()> {
        Err(lgn::error::SolveError::ZeroMass.into())
    };
    let e = solve(
        &mut h,
        &Method::Rk4 { dt: 0.1 },
        &[1.0],
        &[0.0],
        &[0.0, 1.0],
    )
    .unwrap_err();
    assert!(matches!(
        e,
        lgn::Error::Solve(lgn::error::SolveError::ZeroMass)
    ));
    // Dynamics as a trait object works too.
    let mut dy = systems::dblpend(9.8, &DensityChoice::Analytic, SolverKind::Auto).unwrap();
    let sys: &mut dyn SecondOrder = &mut dy;
    assert!(solve(
        sys,
        &Method::Rk4 { dt: 0.01 },
        &[0.1, 0.2],
        &[0.0, 0.0],
        &[0.0, 1.0]
    )
    .is_ok());
}
