//! CPU time and counted work per phase of the MLP block pass (docs/DESIGN.md §20.2), for
//! `lgn bench accel --breakdown`. Off by default: a disabled clock costs one relaxed atomic
//! load per phase boundary. While on, every thread adds its own time, so the figures are CPU
//! seconds summed over the threads (divide counted work by them for per-thread FLOP/s).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The phases of one block pass (docs/DESIGN.md §15.3, §20.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassPhase {
    /// z₀ = W₀′x + b₀′ and the c-direction tangent W₀′[:, q]·v (two small GEMMs).
    Layer0,
    /// Softplus / sigmoid and their derivatives, σ′ ⊙ T, the output dot product.
    Activations,
    /// The hidden-layer forward GEMMs W_{l+1}·[a | σ′⊙T] of width nb·(kd + 2).
    ForwardGemm,
    /// g = δ ⊙ σ′ and the Hessian sums Σ_i δσ″T_jT_k (the register tile or the slice kernels).
    BackwardTile,
    /// The hidden-layer backward GEMMs W_lᵀ g (width nb).
    BackwardGemm,
    /// ∂ρ/∂x = W₀ᵀ g.
    InputGrad,
    /// Writing the site records, and the workspace.
    Records,
}

impl PassPhase {
    pub const ALL: [PassPhase; 7] = [
        PassPhase::Layer0,
        PassPhase::Activations,
        PassPhase::ForwardGemm,
        PassPhase::BackwardTile,
        PassPhase::BackwardGemm,
        PassPhase::InputGrad,
        PassPhase::Records,
    ];
    pub fn name(self) -> &'static str {
        match self {
            PassPhase::Layer0 => "layer0",
            PassPhase::Activations => "activations",
            PassPhase::ForwardGemm => "forward_gemm",
            PassPhase::BackwardTile => "backward_tile",
            PassPhase::BackwardGemm => "backward_gemm",
            PassPhase::InputGrad => "input_grad",
            PassPhase::Records => "records",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];
static FLOPS: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];
static VALUES: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];

/// One phase's totals since the last [`take`].
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PhaseTotal {
    pub name: &'static str,
    /// CPU seconds summed over threads.
    pub cpu_seconds: f64,
    /// Counted floating-point work (2 per multiply-add; docs/DESIGN.md §15.3 for what counts).
    pub flops: f64,
    /// Elementwise values produced (activations: hidden units × sites).
    pub values: f64,
}

/// Switch the clock on or off (process-wide).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The totals since the last call, and reset them.
pub fn take() -> Vec<PhaseTotal> {
    PassPhase::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| PhaseTotal {
            name: p.name(),
            cpu_seconds: NANOS[i].swap(0, Ordering::Relaxed) as f64 * 1e-9,
            flops: FLOPS[i].swap(0, Ordering::Relaxed) as f64,
            values: VALUES[i].swap(0, Ordering::Relaxed) as f64,
        })
        .collect()
}

/// A running clock of one pass: `None` when the clock is off.
#[derive(Clone, Copy)]
pub(crate) struct Lap(Option<Instant>);

impl Lap {
    #[inline(always)]
    pub(crate) fn start() -> Lap {
        Lap(ENABLED.load(Ordering::Relaxed).then(Instant::now))
    }
    /// Charge the time since the previous lap, `flops` counted flops and `values` elementwise
    /// values to `phase`.
    #[inline(always)]
    pub(crate) fn lap(&mut self, phase: PassPhase, flops: usize, values: usize) {
        if let Some(t0) = self.0 {
            let now = Instant::now();
            let i = phase as usize;
            NANOS[i].fetch_add((now - t0).as_nanos() as u64, Ordering::Relaxed);
            FLOPS[i].fetch_add(flops as u64, Ordering::Relaxed);
            VALUES[i].fetch_add(values as u64, Ordering::Relaxed);
            self.0 = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_charge_their_phase_only_when_enabled() {
        // (the only test touching the process-wide clock)
        let _ = take();
        let mut l = Lap::start();
        l.lap(PassPhase::ForwardGemm, 10, 0);
        assert!(take()
            .iter()
            .all(|t| t.flops == 0.0 && t.cpu_seconds == 0.0));
        enable(true);
        let mut l = Lap::start();
        std::thread::sleep(std::time::Duration::from_millis(2));
        l.lap(PassPhase::ForwardGemm, 10, 3);
        l.lap(PassPhase::Records, 0, 0);
        enable(false);
        let t = take();
        let f = &t[PassPhase::ForwardGemm as usize];
        // (≥: another test's pass may run meanwhile)
        assert!(f.flops >= 10.0 && f.values >= 3.0, "{f:?}");
        assert!(f.cpu_seconds >= 1.5e-3, "{}", f.cpu_seconds);
        assert!(t[PassPhase::Records as usize].cpu_seconds < f.cpu_seconds);
        assert!(take().iter().all(|t| t.flops == 0.0));
    }
}
