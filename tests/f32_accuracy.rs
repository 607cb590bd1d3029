//! f32 MLP passes (f32 forward GEMMs and activations, f64 backward δ, Hessian sums and
//! gradient; docs/DESIGN.md §15.4) against the f64 passes on the same state: accelerations on
//! the benchmark ring and on a learned mesh model, in both error measures of §15.4.

use lgn::density::Precision;
use lgn::mesh::read_msh;
use lgn::solve::SolverKind;
use lgn::systems;

/// [max-norm relative to max |a64|, ‖a32 − a64‖₂ / ‖a64‖₂].
fn errors(a32: &[f64], a64: &[f64]) -> [f64; 2] {
    let e = lgn::bench::rel_errors(a32, a64);
    [e[0], e[1]]
}

/// The benchmark ring (6-128-128-1) at n = 20 000 against issue 15's target, 1e-4 relative:
/// measured 5.3e-5 max-norm, 5.0e-5 in the 2-norm (the all-f32 pass of before §15.4 gave 4.1e-4
/// here, the f64 backward then 1.7e-4; the minimax activations and the register tile of §15.5
/// moved the rounding). The forward error is the f32 rounding of the weights and the forward
/// GEMMs amplified by M's conditioning (docs/DESIGN.md §20.1), so a change of summation order
/// can move it by a few times: the backward error (condition-free) ≈ 1.2e-7 is the stable part.
#[test]
fn f32_ring_accelerations_track_f64() {
    let n = 20_000;
    let b = lgn::bench::precision_breakdown(n, 128, 2, SolverKind::Sparse, Precision::F32).unwrap();
    let [max, l2, _] = b.accel;
    eprintln!(
        "ring n = {n}: max {max:e}, l2 {l2:e}, backward {:e}",
        b.backward
    );
    assert!(
        max > 0.0,
        "the f32 path must differ from f64 (is it f32 at all?)"
    );
    assert!(
        max <= 1e-4 && l2 <= 1e-4,
        "ring n = {n}: max {max:e}, l2 {l2:e}"
    );
    assert!(b.backward <= 5e-7, "backward error {:e}", b.backward);
    // b = ∂L/∂q − C q̇ is not where the error is made (docs/DESIGN.md §15.4)
    assert!(b.accel_rhs_only <= 5e-6, "{:e}", b.accel_rhs_only);
}

/// A learned mesh model (annulus, node and edge 64 × 2 MLPs) in f32 against f64: M is well
/// conditioned here, measured 3.8e-7 max-norm, 2.0e-7 in the 2-norm.
#[test]
fn f32_mesh_accelerations_track_f64() {
    let (m, _) = read_msh(format!("{}/meshes/annulus.msh", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let (nm, em) = systems::mesh_mlps(&m, 64, 2, 3);
    let n = m.n_nodes();
    let (q, v) = lgn::bench::ring_state(n);
    let mut a = Vec::new();
    for p in [Precision::F64, Precision::F32] {
        let mut sys =
            systems::wave_mesh_learned(&m, nm.clone(), em.clone(), SolverKind::Sparse).unwrap();
        lgn::train::gradient::set_mlp_terms_with(&mut sys.dynamics, &[Some(&nm), Some(&em)], p)
            .unwrap();
        a.push(sys.dynamics.accelerations(&q, &v).unwrap());
    }
    let [max, l2] = errors(&a[1], &a[0]);
    assert!(max > 0.0, "the f32 path must differ from f64");
    eprintln!("mesh n = {n}: max {max:e}, l2 {l2:e}");
    assert!(
        max <= 1e-5 && l2 <= 1e-5,
        "mesh n = {n}: max {max:e}, l2 {l2:e}"
    );
}
