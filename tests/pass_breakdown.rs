//! `lgn::bench::pass_breakdown` (docs/DESIGN.md §20.2): the phase clock of the MLP block pass
//! charges every counted multiply-add of the pass to its phase. Its own test binary: the clock
//! is process-wide, and no other pass may run while it is on.

use lgn::density::Precision;
use lgn::solve::SolverKind;

#[test]
fn phase_flops_add_up_to_the_counted_pass_work() {
    let (n, hidden, layers) = (300, 16, 2);
    for precision in [Precision::F64, Precision::F32] {
        let ring = lgn::bench::RingSpec {
            n,
            hidden,
            layers,
            solver: SolverKind::Sparse,
            precision,
        };
        let b = lgn::bench::pass_breakdown(&ring, 0.0).unwrap();
        assert_eq!(b.phases.len(), 7);
        // counted work per acceleration = Σ flops/s · CPU seconds of the GEMM-type phases
        let phase = |name: &str| b.phases.iter().find(|p| p.name == name).unwrap();
        let counted: f64 = ["layer0", "forward_gemm", "backward_gemm", "input_grad"]
            .iter()
            .map(|p| {
                let f = phase(p);
                f.gflops_per_thread.expect("a GEMM phase has counted flops") * 1e9 * f.cpu_seconds
            })
            .sum();
        let truth = lgn::bench::mlp_flops_per_site(&[6, hidden, hidden, 1], 3) * n as f64;
        assert!(
            (counted - truth).abs() <= 1e-9 * truth,
            "{precision}: phases count {counted}, the pass {truth}"
        );
        // the Hessian sums: kd(kd + 3)/2 = 9 pairs per hidden unit, layer and site
        let tile = phase("backward_tile");
        let tile_flops = tile.gflops_per_thread.unwrap() * 1e9 * tile.cpu_seconds;
        let want = 2.0 * 9.0 * (2 * hidden * n) as f64;
        assert!(
            (tile_flops - want).abs() <= 1e-9 * want,
            "{tile_flops} vs {want}"
        );
        let act = phase("activations");
        let values = act.gvalues_per_second.unwrap() * 1e9 * act.cpu_seconds;
        assert!((values - (2 * hidden * n) as f64).abs() <= 1e-9 * values);
        let share: f64 = b.phases.iter().map(|p| p.share).sum();
        assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
        assert!(b.gemm_gflops_per_thread > 0.0 && b.pass_of_gemm > 0.0);
        // the own-kernel and peak ratios are the same pass figure over their own rates
        for (rate, ratio) in [
            (b.own_gemm_gflops_per_thread, b.pass_of_own_gemm),
            (b.fma_peak_gflops_per_thread, b.pass_of_peak),
        ] {
            assert_eq!(rate.is_some(), ratio.is_some());
            if let (Some(r), Some(q)) = (rate, ratio) {
                assert!(r > 0.0 && (q * r - b.pass_gflops_per_thread).abs() <= 1e-9 * r * q);
            }
        }
        let fwd = phase("forward_gemm");
        if let (Some(o), Some(g)) = (b.own_gemm_gflops_per_thread, fwd.gflops_per_thread) {
            assert!((fwd.of_own_gemm.unwrap() * o - g).abs() <= 1e-9 * g);
        }
    }
}
