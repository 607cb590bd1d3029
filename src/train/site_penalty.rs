//! The mass-definiteness penalty of [`super::mass_penalty`] on the sites of graph Lagrangians
//! (ring LGNs, general `sites`/`stencil` terms of graph models): docs/DESIGN.md §18.2.
//!
//! A graph Lagrangian's mass matrix is M = Σ_s P_sᵀ m_s P_s with the kinetic block
//! m_s = ∂²ρ/∂v_I² of each site s (kd × kd, its neighbourhood's velocities). A learned M can
//! vanish or turn indefinite along a rollout (the solve then fails with a singular M); when every
//! m_s is definite with one sign, so is M. The penalty is the single-site one over all (sample,
//! site) pairs of a minibatch, each pair a "sample" of [`mass_penalty::block_penalty`]:
//!
//! ```text
//! P = β Σ_i w_i/(Σ w · n_s) Σ_s Σ_k relu(μ m̄ − s λ_k(m_is))² / m̄²
//! ```
//!
//! with the sign s and scale m̄ read over the minibatch's blocks (held constant in training,
//! exactly differentiated with [`MassPenalty::exact_scale`]). Its gradient: each active
//! eigen-direction u of m_is is one extra column of the hyper-dual reverse sweep at the site's
//! input x_is with u1 = (0, −coef·u), u2 = (0, u), u3 = 0 (S = coef·uᵀ m_is u).

use super::gradient::{batched_adjoint, Samples};
use super::mass_penalty::{self, MassPenalty};
use crate::density::potential::wrap_opt;
use crate::density::{gather_inputs, Density, Mlp};
use crate::model::{GraphModel, GraphTerm};
use crate::sites::Sites;

/// Penalty of the kinetic blocks of one MLP term (density `dens` built from `mlp`, on `sites`
/// with `d` coordinates per node) over the states `states` (rows (q, q̇) of `data`, indices
/// `idx`; with `q_period` the density wraps its positions, and so does the sweep). Adds its
/// gradient (the term's parameters) to `grad` when given; returns P.
#[allow(clippy::too_many_arguments)]
pub fn sites_mass_penalty(
    mlp: &Mlp,
    dens: &dyn Density,
    sites: &Sites,
    d: usize,
    q_period: Option<f64>,
    data: &Samples,
    idx: &[usize],
    pen: MassPenalty,
    grad: Option<&mut [f64]>,
) -> f64 {
    let (n, ns) = (data.out_dim, sites.len());
    if ns == 0 || idx.is_empty() || dens.mass_is_zero() {
        return 0.0;
    }
    // The kinetic blocks of every (sample, site) pair, from the lean acceleration records.
    let lay = dens.accel_layout();
    let (stride, kd) = (lay.stride(), lay.kd);
    let mut ms = vec![0.0; idx.len() * ns * kd * kd];
    let mut x = vec![0.0; ns * dens.input_len()];
    let mut rec = vec![0.0; ns * stride];
    for (j, &i) in idx.iter().enumerate() {
        let row = data.input_row(i);
        dens.eval_sites_accel(sites, &row[..n], &row[n..2 * n], 0, ns, &mut x, &mut rec);
        for s in 0..ns {
            let r = &rec[s * stride + lay.mass()..s * stride + lay.mass() + kd * kd];
            ms[(j * ns + s) * kd * kd..(j * ns + s + 1) * kd * kd].copy_from_slice(r);
        }
    }
    sites_mass_penalty_blocks(mlp, (sites, d, q_period), (data, idx), pen, &ms, grad)
}

/// [`sites_mass_penalty`] of given kinetic blocks: `ms` holds m_s of every (sample, site)
/// pair, sample-major (kd × kd row-major each) — e.g. read from the records of
/// [`crate::dynamics::Dynamics::minibatch_forward`], which the forward pass computed anyway
/// (docs/DESIGN.md §19).
pub fn sites_mass_penalty_blocks(
    mlp: &Mlp,
    (sites, d, q_period): (&Sites, usize, Option<f64>),
    (data, idx): (&Samples, &[usize]),
    pen: MassPenalty,
    ms: &[f64],
    grad: Option<&mut [f64]>,
) -> f64 {
    let n = data.out_dim;
    let ns = sites.len();
    let (k, nf) = (sites.arity, sites.n_features);
    let kd = k * d;
    let p = 2 * kd + nf;
    if ns == 0 || idx.is_empty() || ms.len() != idx.len() * ns * kd * kd {
        return 0.0;
    }
    let w = pair_weights(pen, data, idx, ns);
    let (pv, dirs) = mass_penalty::block_penalty(ms, kd, &w, pen, grad.is_some());
    let Some(grad) = grad else { return pv };
    if dirs.is_empty() {
        return pv;
    }
    // One sweep column per direction: x = the pair's site input, u1 = (0, −coef u), u2 = (0, u).
    batched_adjoint(mlp, dirs.len(), 1, 1, grad, |xin, nb, col, di, _| {
        let dir = &dirs[di];
        let (smp, s) = (dir.sample / ns, dir.sample % ns);
        let row = data.input_row(idx[smp]);
        let c = |ch: usize| (ch * nb + col) * p;
        gather_inputs(
            sites,
            d,
            &row[..n],
            &row[n..2 * n],
            s,
            1,
            &mut xin[c(0)..c(0) + p],
        );
        for x in &mut xin[c(0)..c(0) + kd] {
            *x = wrap_opt(*x, q_period);
        }
        for (a, &u) in dir.u.iter().enumerate() {
            xin[c(1) + kd + a] = -dir.coef * u;
            xin[c(2) + kd + a] = u;
        }
    });
    pv
}

/// The penalty's weight of every (sample, site) pair of the samples `idx` (sample-major, `ns`
/// sites each): β w_i / (Σ_j w_j · n_s), docs/DESIGN.md §18.2.
pub(crate) fn pair_weights(pen: MassPenalty, data: &Samples, idx: &[usize], ns: usize) -> Vec<f64> {
    let sw: f64 = idx.iter().map(|&i| data.weight(i)).sum();
    idx.iter()
        .flat_map(|&i| std::iter::repeat_n(pen.weight * data.weight(i) / (sw * ns as f64), ns))
        .collect()
}

/// [`sites_mass_penalty`] over every general term (`sites`, `stencil`) of a graph model, whose
/// densities and sites are those of `lag` (the model's Lagrangian); gradients into `grad` at
/// the terms' parameter offsets `offs` ([`GraphModel::param_offsets`]) when given.
#[allow(clippy::too_many_arguments)]
pub fn graph_mass_penalty(
    model: &GraphModel,
    lag: &crate::lagrangian::Lagrangian,
    offs: &[usize],
    data: &Samples,
    idx: &[usize],
    pen: MassPenalty,
    mut grad: Option<&mut [f64]>,
) -> f64 {
    let mut total = 0.0;
    for (t, term) in model.terms.iter().enumerate() {
        let (GraphTerm::Sites(net) | GraphTerm::Stencil(net)) = term else {
            continue;
        };
        let lt = &lag.terms[t];
        let g = grad.as_deref_mut().map(|g| &mut g[offs[t]..offs[t + 1]]);
        total += sites_mass_penalty(
            net,
            lt.density.as_ref(),
            &lt.sites,
            lag.dof,
            model.q_period,
            data,
            idx,
            pen,
            g,
        );
    }
    total
}

/// The penalty a graph model trains with: `explicit` (e.g. `--mass-penalty`) or, when it has
/// general terms, [`default_graph_penalty`] of its training data; None for models whose
/// kinetic terms are definite by construction (node-edge: M = diag(μ), μ > 0).
pub fn for_graph(
    model: &GraphModel,
    explicit: Option<MassPenalty>,
    data: &Samples,
) -> Option<MassPenalty> {
    if !has_general_terms(model) {
        return None;
    }
    explicit.or_else(|| default_graph_penalty(data))
}

/// Whether a graph model has terms the site penalty applies to (`sites`, `stencil`).
pub fn has_general_terms(model: &GraphModel) -> bool {
    model
        .terms
        .iter()
        .any(|t| matches!(t, GraphTerm::Sites(_) | GraphTerm::Stencil(_)))
}

/// The default penalty of graph Lagrangians: weight = mean q̈² of the training targets (the
/// scale of the unnormalised loss, so that a violation costs as much as the loss of predicting
/// zero), margin [`MassPenalty::DEFAULT_MARGIN`]. None for data with no motion.
pub fn default_graph_penalty(data: &Samples) -> Option<MassPenalty> {
    let (mut s, mut c) = (0.0, 0usize);
    for i in 0..data.n {
        for a in data.target_row(i) {
            if a.is_finite() {
                s += a * a;
                c += 1;
            }
        }
    }
    let w = s / c.max(1) as f64;
    MassPenalty::new(w, MassPenalty::DEFAULT_MARGIN).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::hyperdual;
    use crate::train::{ModelKind, TrainedModel};

    /// The ring model's network at parameters `th` and its dynamics on n nodes.
    fn ring_at(model: &TrainedModel, n: usize, th: &[f64]) -> (Mlp, crate::dynamics::Dynamics) {
        let mut net = model.net.clone();
        hyperdual::unflatten(&mut net, th);
        let mut dy = model
            .dynamics(Some(n), crate::solve::SolverKind::Auto)
            .unwrap();
        crate::train::gradient::set_mlp_terms(&mut dy, &[Some(&net)]).unwrap();
        (net, dy)
    }

    /// `count` states (q, q̇) of an n-node ring, entry j of state i `state(i, j)`, targets
    /// `target(flat index)`.
    fn ring_samples(
        n: usize,
        count: usize,
        state: impl Fn(usize, usize) -> f64,
        target: impl Fn(usize) -> f64,
    ) -> Samples {
        Samples {
            n: count,
            in_dim: 2 * n,
            out_dim: n,
            input: (0..count)
                .flat_map(|i| (0..2 * n).map(move |j| (i, j)))
                .map(|(i, j)| state(i, j))
                .collect(),
            target: (0..count * n).map(target).collect(),
            weights: None,
        }
    }

    /// A periodic general graph model (stencils of a 7-ring, q wrapped with period 2) trained
    /// with the penalty: the whole loss (Euler–Lagrange residual + P) against central
    /// differences, and the validation loss without P.
    #[test]
    fn graph_trainer_penalty_gradient_matches_finite_differences() {
        use crate::model::{NetShape, SystemGraph};
        use crate::train::graph::GraphTrainer;
        use crate::train::{LossKind, Trainable};
        let graph = SystemGraph::line(7, 1, true).unwrap();
        let nc = graph.n_coords();
        let states: Vec<f64> = (0..4 * 2 * nc)
            .map(|i| 0.8 * (0.7 * i as f64).sin())
            .collect();
        let target: Vec<f64> = (0..4 * nc).map(|i| (1.3 * i as f64).cos()).collect();
        let data = Samples::new(2 * nc, nc, states, target, None).unwrap();
        let rows: Vec<&[f64]> = (0..data.n).map(|i| data.input_row(i)).collect();
        let shape = NetShape {
            hidden: 6,
            layers: 2,
            seed: 4,
        };
        let mut m = GraphModel::general(&graph, true, &shape, &rows).unwrap();
        m.q_period = Some(2.0);
        let pen = MassPenalty {
            exact_scale: true,
            ..MassPenalty::new(3.0, 0.9).unwrap()
        };
        let mut tr = GraphTrainer::new(m, graph)
            .unwrap()
            .with_mass_penalty(Some(pen));
        let idx = [0, 1, 2, 3];
        let (l, _, _) = tr.loss_grad(&data, &idx, LossKind::Mse, true).unwrap();
        let (v, _) = tr.val_loss(&data, &idx, LossKind::Mse).unwrap();
        assert!(l > v * (1.0 + 1e-9), "the penalty is active: {l} vs {v}");
        // The training loss (with P) against central differences, on samples 0..4.
        crate::train::graph::tests::check_fd(tr, data, 3e-6);
    }

    /// A ring LGN's stencil term (kd = 3) at random parameters: P and its gradient with the
    /// exact scale against central differences of P over the parameters.
    #[test]
    fn ring_penalty_gradient_matches_finite_differences() {
        let n = 7;
        let model = TrainedModel::init(ModelKind::Lgn, "wave1d", n, 12, 2, 5).unwrap();
        let dy = model
            .dynamics(Some(n), crate::solve::SolverKind::Auto)
            .unwrap();
        let sites = dy.lagrangian.terms[0].sites.clone();
        let data = ring_samples(n, 6, |i, j| ((i * 31 + j * 7) as f64 * 0.37).sin(), |_| 1.0);
        let idx: Vec<usize> = (0..data.n).collect();
        // A margin near 1 makes most eigenvalues violate it at a random initialisation.
        let pen = MassPenalty {
            exact_scale: true,
            ..MassPenalty::new(1.5, 0.9).unwrap()
        };
        let theta = hyperdual::flatten(&model.net);
        let at = |th: &[f64], g: Option<&mut [f64]>| {
            let (net, dy) = ring_at(&model, n, th);
            let dens = dy.lagrangian.terms[0].density.clone();
            sites_mass_penalty(&net, dens.as_ref(), &sites, 1, None, &data, &idx, pen, g)
        };
        let mut g = vec![0.0; theta.len()];
        let p0 = at(&theta, Some(&mut g));
        assert!(p0 > 0.0, "the test needs violations");
        assert!((at(&theta, None) - p0).abs() <= 1e-15 * p0);
        let h = 1e-6;
        for kk in (0..theta.len()).step_by(5) {
            let mut tp = theta.clone();
            tp[kk] += h;
            let lp = at(&tp, None);
            tp[kk] -= 2.0 * h;
            let lm = at(&tp, None);
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (fd - g[kk]).abs() <= 1e-6 * (fd.abs().max(g[kk].abs()) + 1e-4),
                "param {kk}: fd {fd} vs {}",
                g[kk]
            );
        }
    }

    /// The ring objective's fused path (docs/DESIGN.md §24): loss + P and the gradient with the
    /// penalty's directions as second-order columns of the Euler–Lagrange sweep equal the
    /// separate path (`lnn_graph_loss_grad` + [`sites_mass_penalty`]) to 1e-12, with m̄ held
    /// and with its exact derivative, and the fused total matches central differences. 30
    /// nodes × 5 samples: 150 pairs, three sweep blocks with their own directions.
    #[test]
    fn fused_ring_penalty_equals_separate_sweep_and_finite_differences() {
        use crate::train::gradient::{lnn_graph_loss_grad, lnn_graph_loss_grad_penalised};
        use crate::train::LossKind;
        let n = 30;
        assert!(5 * n > 2 * crate::train::gradient::BATCH_COLS);
        let model = TrainedModel::init(ModelKind::Lgn, "wave1d", n, 10, 2, 8).unwrap();
        let mut data = ring_samples(
            n,
            5,
            |i, j| 0.6 * ((i * 17 + j * 5) as f64 * 0.41).sin(),
            |i| (0.9 * i as f64).cos(),
        );
        data.weights = Some(vec![1.0, 0.5, 2.0, 1.0, 0.7]);
        let idx = [0usize, 1, 2, 3, 4];
        let theta = hyperdual::flatten(&model.net);
        let at = |th: &[f64], pen: MassPenalty, fused: bool, want: bool| {
            let (net, mut dy) = ring_at(&model, n, th);
            if fused {
                let lp = (LossKind::Mse, Some(pen));
                return lnn_graph_loss_grad_penalised(
                    &mut dy,
                    &[Some(&net)],
                    &data,
                    &idx,
                    lp,
                    want,
                )
                .unwrap();
            }
            let (l, mut g) =
                lnn_graph_loss_grad(&mut dy, &[Some(&net)], &data, &idx, LossKind::Mse, want)
                    .unwrap();
            let term = &dy.lagrangian.terms[0];
            let gr = want.then_some(&mut g[..]);
            let p = sites_mass_penalty(
                &net,
                term.density.as_ref(),
                &term.sites,
                1,
                None,
                &data,
                &idx,
                pen,
                gr,
            );
            assert!(p > 0.0, "the test needs violations");
            (l + p, g)
        };
        for exact_scale in [false, true] {
            let pen = MassPenalty {
                exact_scale,
                ..MassPenalty::new(2.5, 0.9).unwrap()
            };
            let (lf, gf) = at(&theta, pen, true, true);
            let (ls, gs) = at(&theta, pen, false, true);
            assert!((lf - ls).abs() <= 1e-12 * ls.abs(), "{lf} vs {ls}");
            let scale = gs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (k, (a, b)) in gf.iter().zip(&gs).enumerate() {
                assert!((a - b).abs() <= 1e-12 * scale, "param {k}: {a} vs {b}");
            }
            if !exact_scale {
                continue;
            }
            let h = 1e-6;
            for k in (0..theta.len()).step_by(3) {
                let mut tp = theta.clone();
                tp[k] += h;
                let lp = at(&tp, pen, true, false).0;
                tp[k] -= 2.0 * h;
                let lm = at(&tp, pen, true, false).0;
                let fd = (lp - lm) / (2.0 * h);
                assert!(
                    (fd - gf[k]).abs() <= 1e-6 * (fd.abs().max(gf[k].abs()) + 1e-3),
                    "param {k}: fd {fd} vs {}",
                    gf[k]
                );
            }
        }
    }
}
