//! Space-time figure of the wave on a periodic ring: truth (standard stencil), a "model" (here
//! the engine's wide-stencil density) and their difference, plus θ-style line plots.
//!
//! cargo run --release --example wave_spacetime -- OUT_DIR

use lgn::data::WaveConfig;
use lgn::integrate::{linspace_times, solve, Dp5Options, Method};
use lgn::plot::{self, Panel, Series};
use lgn::solve::SolverKind;
use lgn::systems::{self, DensityChoice};
use ndarray::Array2;
use rand::SeedableRng;

fn main() -> lgn::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let cfg = WaveConfig::default();
    let (q0, v0) = cfg.random_state(&mut rand::rngs::StdRng::seed_from_u64(3));
    let times = linspace_times(201, 0.005);
    let m = Method::Dp5(Dp5Options::tol(1e-9, 1e-9));
    let truth = solve(&mut cfg.system()?, &m, &q0, &v0, &times)?;
    let mut wide = systems::wave1d(cfg.n, cfg.dx(), &DensityChoice::Analytic, SolverKind::Auto)?;
    let model = solve(&mut wide, &m, &q0, &v0, &times)?;
    let (nt, n) = (times.len(), cfg.n);
    let a = Array2::from_shape_vec((nt, n), truth.q.clone()).unwrap();
    let b = Array2::from_shape_vec((nt, n), model.q.clone()).unwrap();
    let d = &b - &a;
    let out = std::path::Path::new(&dir);
    plot::spacetime(
        out.join("wave_spacetime.png"),
        "wave1d: truth (standard stencil), wide stencil, difference",
        &times,
        cfg.dx(),
        &[
            Panel {
                title: "truth".into(),
                field: a.view(),
            },
            Panel {
                title: "wide stencil".into(),
                field: b.view(),
            },
            Panel {
                title: "difference".into(),
                field: d.view(),
            },
        ],
        true,
    )?;
    plot::line_plot(
        out.join("wave_point.png"),
        "φ at x = 0.5 vs time",
        "t",
        "φ",
        &[
            Series::new(
                "truth",
                times.clone(),
                (0..nt).map(|k| a[[k, n / 2]]).collect(),
            ),
            Series::new(
                "wide stencil",
                times.clone(),
                (0..nt).map(|k| b[[k, n / 2]]).collect(),
            ),
        ],
        (900, 500),
        true,
    )?;
    println!("wrote {}/wave_spacetime.png and wave_point.png", dir);
    Ok(())
}
