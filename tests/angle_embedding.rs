//! The angle embedding (cos q, sin q, q̇) of an LNN's input (docs/DESIGN.md §14.6): exact
//! derivatives through the embedding against finite differences of N(φ(x)), the adjoint channels
//! through it against differences (the training loss's gradient: tests/train_gradient.rs), and
//! the learned Lagrangian and energy continuous across θ = ±π (where the wrapped network jumps).

use lgn::density::embed::{embed_adjoint_channels, embed_input};
use lgn::density::{eval_one, Density, Mlp, MlpDensity};
use lgn::train::hyperdual::{adjoint_block, flatten, unflatten};
use lgn::train::{load_model, ModelKind, TrainedModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f64::consts::PI;

fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random_range(1e-12..1.0);
    let v: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
}

/// A random embedded network for d coordinates (non-zero biases and normalisation).
fn embedded_mlp(d: usize, hidden: &[usize], seed: u64) -> Mlp {
    let mut sizes = vec![3 * d];
    sizes.extend(hidden);
    sizes.push(1);
    let mut m = Mlp::paper_init(&sizes, seed);
    let mut rng = StdRng::seed_from_u64(seed + 100);
    for b in m.biases.iter_mut() {
        for x in b.iter_mut() {
            *x = 0.3 * normal(&mut rng);
        }
    }
    m.input_shift = (0..3 * d).map(|_| 0.2 * normal(&mut rng)).collect();
    m.input_scale = (0..3 * d)
        .map(|_| 0.8 + 0.4 * rng.random::<f64>())
        .collect();
    m
}

/// ρ(x) = N(φ(x)) by the plain forward pass.
fn rho(m: &Mlp, x: &[f64], kd: usize) -> f64 {
    let mut y = vec![0.0; x.len() + kd];
    embed_input(x, kd, &mut y);
    m.forward(&y)
}

/// Record (ρ, ∂ρ/∂q, ∂ρ/∂v, M, c·v) of the embedded density against central differences of
/// N(φ(x)); a single site and a block of sites agree.
#[test]
fn embedded_record_matches_finite_differences() {
    for (d, hidden) in [(2usize, vec![12usize, 12]), (3, vec![10, 8, 6])] {
        let m = embedded_mlp(d, &hidden, 5 + d as u64);
        let dens = MlpDensity::with_input(m.clone(), 1, d, 0, true).unwrap();
        assert!(MlpDensity::with_input(m.clone(), 1, d, 0, false).is_err());
        assert_eq!(dens.input_len(), 2 * d);
        let lay = dens.layout();
        let mut rng = StdRng::seed_from_u64(7);
        let f = |x: &[f64]| rho(&m, x, d);
        for _ in 0..5 {
            let x: Vec<f64> = (0..2 * d).map(|_| 3.0 * normal(&mut rng)).collect();
            let rec = eval_one(&dens, &x);
            assert!((rec[0] - f(&x)).abs() < 1e-12 * (1.0 + rec[0].abs()));
            let eps = 1e-5;
            let grad = |x: &[f64], i: usize| {
                let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
                xp[i] += eps;
                xm[i] -= eps;
                (f(&xp) - f(&xm)) / (2.0 * eps)
            };
            for i in 0..2 * d {
                let exact = if i < d {
                    rec[lay.grad_q() + i]
                } else {
                    rec[lay.grad_v() + i - d]
                };
                let fd = grad(&x, i);
                assert!(
                    (fd - exact).abs() < 1e-7 * (1.0 + exact.abs()),
                    "grad {i}: fd {fd} exact {exact}"
                );
            }
            let e2 = 1e-4;
            for j in 0..d {
                for k in 0..d {
                    let (mut xp, mut xm) = (x.clone(), x.clone());
                    xp[d + k] += e2;
                    xm[d + k] -= e2;
                    let fd = (grad(&xp, d + j) - grad(&xm, d + j)) / (2.0 * e2);
                    let exact = rec[lay.mass() + j * d + k];
                    assert!(
                        (fd - exact).abs() < 1e-5 * (1.0 + exact.abs()),
                        "M[{j},{k}] fd {fd} exact {exact}"
                    );
                }
                let (mut xp, mut xm) = (x.clone(), x.clone());
                for k in 0..d {
                    xp[k] += e2 * x[d + k];
                    xm[k] -= e2 * x[d + k];
                }
                let fd = (grad(&xp, d + j) - grad(&xm, d + j)) / (2.0 * e2);
                let exact = rec[lay.cv() + j];
                assert!(
                    (fd - exact).abs() < 1e-5 * (1.0 + exact.abs()),
                    "cv[{j}] fd {fd} exact {exact}"
                );
            }
        }
        // A block of sites equals site-by-site evaluation.
        let nb = 13;
        let x: Vec<f64> = (0..2 * d * nb).map(|_| 4.0 * normal(&mut rng)).collect();
        let stride = lay.stride();
        let mut out = vec![0.0; stride * nb];
        dens.eval_block(&x, nb, &mut out);
        for s in [0, 6, 12] {
            let one = eval_one(&dens, &x[s * 2 * d..(s + 1) * 2 * d]);
            for (a, b) in one.iter().zip(&out[s * stride..(s + 1) * stride]) {
                assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
            }
        }
    }
}

/// S = D_{u3} ρ − D_{u1} D_{u2} ρ through the embedding, with q parts in all three directions
/// (so the diagonal second-derivative term of φ enters): its value against nested central
/// differences of N(φ(x)), and its parameter gradient against differences of that value.
#[test]
fn embedded_adjoint_matches_finite_differences() {
    let d = 2;
    let m = embedded_mlp(d, &[10, 10], 21);
    let mut rng = StdRng::seed_from_u64(3);
    let ns = 3;
    let p = 2 * d;
    let chans: Vec<Vec<f64>> = (0..4 * ns)
        .map(|_| (0..p).map(|_| 2.0 * normal(&mut rng)).collect())
        .collect();
    // Channel-major: column c·ns + s.
    let xin = |c: usize, s: usize| &chans[c * ns + s];
    let raw: Vec<f64> = chans.iter().flatten().copied().collect();
    let s_of = |mlp: &Mlp| -> (f64, Vec<f64>) {
        let mut e = embed_adjoint_channels(&raw, ns, d);
        let mut g = vec![0.0; mlp.n_params()];
        let v = adjoint_block(mlp, &mut e, ns, &mut g);
        (v, g)
    };
    let (s_val, g) = s_of(&m);
    // Value against finite differences in x.
    let mut want = 0.0;
    let h = 1e-4;
    for s in 0..ns {
        let (x, u1, u2, u3) = (xin(0, s), xin(1, s), xin(2, s), xin(3, s));
        let at = |a: f64, b: f64| -> f64 {
            let y: Vec<f64> = (0..p).map(|i| x[i] + a * u1[i] + b * u2[i]).collect();
            rho(&m, &y, d)
        };
        let at3 = |a: f64| -> f64 {
            let y: Vec<f64> = (0..p).map(|i| x[i] + a * u3[i]).collect();
            rho(&m, &y, d)
        };
        let d3 = (at3(h) - at3(-h)) / (2.0 * h);
        let d12 = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4.0 * h * h);
        want += d3 - d12;
    }
    assert!(
        (s_val - want).abs() < 1e-5 * (1.0 + want.abs()),
        "S: adjoint {s_val} vs differences {want}"
    );
    // Without the diagonal term the value would be off: check that it matters here.
    let mut no_w = embed_adjoint_channels(&raw, ns, d);
    let pn = 3 * d;
    for s in 0..ns {
        let (x, u3) = (xin(0, s), xin(3, s));
        let o = &mut no_w[(3 * ns + s) * pn..(3 * ns + s + 1) * pn];
        for i in 0..d {
            o[i] = -x[i].sin() * u3[i];
            o[d + i] = x[i].cos() * u3[i];
        }
    }
    let mut g0 = vec![0.0; m.n_params()];
    let s_no_w = adjoint_block(&m, &mut no_w, ns, &mut g0);
    assert!(
        (s_no_w - want).abs() > 1e-3 * (1.0 + want.abs()),
        "the diagonal term must matter in this test ({s_no_w} vs {want})"
    );
    // Parameter gradient against central differences of S.
    let theta = flatten(&m);
    let gmax = g.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let mut worst = 0.0f64;
    for i in 0..theta.len() {
        let e = 1e-5 * (1.0 + theta[i].abs());
        let f = |x: f64| {
            let mut th = theta.clone();
            th[i] += x;
            let mut mm = m.clone();
            unflatten(&mut mm, &th);
            s_of(&mm).0
        };
        let fd = (8.0 * (f(e) - f(-e)) - (f(2.0 * e) - f(-2.0 * e))) / (12.0 * e);
        worst = worst.max((fd - g[i]).abs() / g[i].abs().max(1e-3 * gmax));
    }
    println!("embedded adjoint: S {s_val:.6e} (fd {want:.6e}), worst gradient rel err {worst:.2e}");
    assert!(worst < 1e-6, "worst relative gradient error {worst:e}");
}

/// Learned L and energy E = q̇·∂L/∂q̇ − L of a model at (q, q̇), through the model's density.
fn l_and_e(dens: &MlpDensity, q: &[f64], v: &[f64]) -> (f64, f64) {
    let x: Vec<f64> = q.iter().chain(v).copied().collect();
    let rec = eval_one(dens, &x);
    let lay = dens.layout();
    let pv: f64 = (0..q.len()).map(|i| v[i] * rec[lay.grad_v() + i]).sum();
    (rec[0], pv - rec[0])
}

/// An embedded lnn (built as `lgn train --embed-angles` builds it, saved and reloaded): L and
/// E are the same on both sides of θ = ±π and along a path crossing ±π change smoothly (no jump
/// between neighbouring points), to 1e-9; the wrapped network of the same width jumps there.
/// An old-style (wrapped) model file still loads and keeps its behaviour.
#[test]
fn learned_energy_is_continuous_across_the_seam() {
    let mut emb = TrainedModel::init(ModelKind::Lnn, "dblpend", 2, 32, 2, 4).unwrap();
    emb.set_angle_embedding(4).unwrap();
    assert!(emb.angle_embedding());
    assert_eq!(emb.net.sizes[0], 6);
    let dir = std::env::temp_dir().join(format!("lgn-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("emb.h5");
    emb.save(&path, None, false).unwrap();
    let emb = load_model(&path).unwrap();
    assert!(emb.angle_embedding());
    let de = emb.density().unwrap();
    let mut wrapped = TrainedModel::init(ModelKind::Lnn, "dblpend", 2, 32, 2, 4).unwrap();
    wrapped.set_q_period(2.0 * PI).unwrap();
    let wpath = dir.join("wrapped.h5");
    wrapped.save(&wpath, None, false).unwrap();
    let wrapped = load_model(&wpath).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!wrapped.angle_embedding());
    let dw = wrapped.density().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let (mut worst_e, mut worst_w) = (0.0f64, 0.0f64);
    for _ in 0..50 {
        let th2 = rng.random_range(-PI..PI);
        let v = [3.0 * normal(&mut rng), 3.0 * normal(&mut rng)];
        for seam in 0..2 {
            let mut a = [th2, th2];
            let mut b = [th2, th2];
            // Two points 2e-10 apart across the seam (the wrap maps π itself to −π).
            a[seam] = PI - 1e-10;
            b[seam] = -PI + 1e-10;
            let (la, ea) = l_and_e(&de, &a, &v);
            let (lb, eb) = l_and_e(&de, &b, &v);
            worst_e = worst_e.max((la - lb).abs()).max((ea - eb).abs());
            // At θ = π and θ = −π exactly (one point) the embedded values agree to rounding.
            let (mut c, mut e) = ([th2, th2], [th2, th2]);
            c[seam] = PI;
            e[seam] = -PI;
            let (lc, ec) = l_and_e(&de, &c, &v);
            let (le, ee) = l_and_e(&de, &e, &v);
            assert!((lc - le).abs() <= 1e-12 * (1.0 + lc.abs()));
            assert!((ec - ee).abs() <= 1e-12 * (1.0 + ec.abs()));
            let (wa, _) = l_and_e(&dw, &a, &v);
            let (wb, _) = l_and_e(&dw, &b, &v);
            worst_w = worst_w.max((wa - wb).abs());
        }
    }
    println!("seam: embedded |ΔL|,|ΔE| ≤ {worst_e:.2e}; wrapped |ΔL| up to {worst_w:.3}");
    assert!(worst_e <= 1e-9, "embedded model jumps by {worst_e:e} at ±π");
    assert!(
        worst_w > 1e-3,
        "control: the wrapped network should jump at ±π"
    );
    // Along a path θ₁(t) = π − 0.01 + 0.02 t (crossing π at t = ½, the unwrapped and the
    // wrapped coordinate are the same point for the embedded model) the learned energy
    // moves by at most its slope times the step: no jump at the crossing.
    let v = [1.3, -0.7];
    let steps = 200;
    let e_at = |d: &MlpDensity, t: f64, wrap: bool| {
        let mut th1 = PI - 0.01 + 0.02 * t;
        if wrap && th1 > PI {
            th1 -= 2.0 * PI;
        }
        l_and_e(d, &[th1, 0.4], &v).1
    };
    let (mut max_step_e, mut max_step_w) = (0.0f64, 0.0f64);
    for k in 0..steps {
        let (t0, t1) = (k as f64 / steps as f64, (k + 1) as f64 / steps as f64);
        for wrap in [false, true] {
            assert!((e_at(&de, t0, wrap) - e_at(&de, t0, !wrap)).abs() <= 1e-9);
        }
        max_step_e = max_step_e.max((e_at(&de, t1, true) - e_at(&de, t0, true)).abs());
        max_step_w = max_step_w.max((e_at(&dw, t1, true) - e_at(&dw, t0, true)).abs());
    }
    println!(
        "path across π: embedded max |ΔE| per step {max_step_e:.2e}, wrapped {max_step_w:.3e}"
    );
    assert!(max_step_e < 1e-2 * max_step_w.max(1e-12) || max_step_e < 1e-3);
    assert!(max_step_w > 10.0 * max_step_e);
}
