//! Exact loss gradients of [`GraphModel`]s (docs/DESIGN.md §3, §11.3): the adjoint through the
//! sparse Euler–Lagrange solve, then per term
//!
//! * potential terms N(…): ∂/∂θ of λ_I·∂ρ/∂q_I, a first-order hyper-dual sweep
//!   ([`adjoint_block`] with u₁ = u₂ = 0, u₃ the adjoint mapped like the network's input);
//! * general terms (sites, stencils): the full S_s = λ·∂ρ/∂q − λᵀ(C v + m a) sweep;
//! * the kinetic term: ∂ℓ/∂μ_i = −Σ_c λ_{ic} a_{ic} (from M = diag(μ)), summed over the
//!   minibatch, then back through μ_i = s_i softplus(g(f_i)).
//!
//! The forward pass (accelerations, loss, adjoint solve) runs over contiguous chunks of the
//! minibatch in parallel, one [`Dynamics`] per worker. The backward pass is batched
//! (docs/DESIGN.md §15): per term, the sites of *all* samples of the minibatch are packed into
//! blocks of [`BATCH_COLS`](super::gradient::BATCH_COLS) columns, so every layer is one large
//! GEMM, and the blocks run in parallel in a fixed number of groups summed in order:
//! deterministic for a given seed, whatever the thread count.

use super::gradient::{batched_adjoint, raw_mlp_adjoint_batch, SampleState, Samples};
use super::hyperdual::param_offsets;
use super::loss::LossKind;
use super::Trainable;
use crate::density::potential::wrap_opt;
use crate::density::{Mlp, PotentialInput};
use crate::dynamics::Dynamics;
use crate::model::{GraphModel, GraphTerm, SystemGraph};
use crate::sites::Sites;
use crate::solve::SolverKind;
use crate::{Error, Result};

/// A [`GraphModel`] bound to the graph it is trained on, with one [`Dynamics`] per worker.
pub struct GraphTrainer {
    pub model: GraphModel,
    pub graph: SystemGraph,
    dys: Vec<Dynamics>,
    stale: bool,
    /// Input map B (n·d × m, row-major) and m: the data rows then hold (q, q̇, u) and the force
    /// B u enters every sample's equations (docs/DESIGN.md §13.7).
    input_map: Option<(Vec<f64>, usize)>,
    /// Mass-definiteness penalty of the general terms' site blocks (docs/DESIGN.md §18.2),
    /// training loss only.
    penalty: Option<super::MassPenalty>,
}

impl GraphTrainer {
    pub fn new(model: GraphModel, graph: SystemGraph) -> Result<GraphTrainer> {
        let workers = rayon::current_num_threads().clamp(1, 8);
        let dys = (0..workers)
            .map(|_| model.dynamics(&graph, SolverKind::Auto))
            .collect::<Result<Vec<_>>>()?;
        Ok(GraphTrainer {
            model,
            graph,
            dys,
            stale: false,
            input_map: None,
            penalty: None,
        })
    }

    /// The per-worker [`Dynamics`], their densities rebuilt first when the parameters changed
    /// since the last call (shared with the weak-form trainer of [`super::positions`]).
    pub(crate) fn workers(&mut self) -> Result<&mut [Dynamics]> {
        if self.stale {
            for dy in &mut self.dys {
                self.model.refresh(dy, &self.graph)?;
            }
            self.stale = false;
        }
        Ok(&mut self.dys)
    }

    /// The first worker's [`Dynamics`] (sites and layout; densities as of the last
    /// [`GraphTrainer::workers`]).
    pub(crate) fn worker(&self) -> &Dynamics {
        &self.dys[0]
    }

    /// Train on driven data: rows (q, q̇, u) with u ∈ R^m entering as the force B u
    /// (`map`: n·d × m, row-major). Use [`append_inputs`] to build such rows.
    pub fn with_input_map(mut self, map: Vec<f64>, m: usize) -> Result<GraphTrainer> {
        let n = self.graph.n_coords();
        if m == 0 || map.len() != n * m {
            return Err(Error::input(format!(
                "the input map B has {} values; the graph has {n} coordinates and u width {m}, so B needs {n} × {m}",
                map.len()
            )));
        }
        crate::error::check_finite("input map B", &map)?;
        self.input_map = Some((map, m));
        Ok(self)
    }

    /// Train on driven data (as [`GraphTrainer::with_input_map`]) with a *learned* input map
    /// B = s_i β of width `m` (docs/DESIGN.md §13.9), stored in the model
    /// ([`GraphModel::input_map`]) and trained with the other parameters; it starts from `init`
    /// (a B of n·d × m values) or from zero.
    pub fn with_learned_input_map(
        mut self,
        m: usize,
        init: Option<&[f64]>,
    ) -> Result<GraphTrainer> {
        let map = crate::model::LearnedInputMap::new(&self.model, &self.graph, m, init)?;
        let b = map.map(&self.graph, self.model.dof)?;
        self.model.input_map = Some(map);
        self.with_input_map(b, m)
    }

    /// Add the site mass penalty to the training loss (docs/DESIGN.md §18.2); see
    /// [`super::site_penalty::default_graph_penalty`] for the default weight.
    pub fn with_mass_penalty(mut self, penalty: Option<super::MassPenalty>) -> GraphTrainer {
        self.penalty = penalty;
        self
    }

    fn check_data(&self, data: &Samples) -> Result<()> {
        let n = self.graph.n_coords();
        let m = self.input_map.as_ref().map_or(0, |(_, m)| *m);
        if data.in_dim != 2 * n + m || data.out_dim != n {
            return Err(Error::input(format!(
                "the data has states of {} coordinates but the graph {} has {} nodes × {} = {n}",
                data.out_dim,
                self.graph.name,
                self.graph.n_nodes(),
                self.graph.dof()
            )));
        }
        Ok(())
    }
}

impl Trainable for GraphTrainer {
    fn params(&self) -> Vec<f64> {
        self.model.params()
    }

    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        self.model.set_params(theta)?;
        if let Some(b) = &self.model.input_map {
            self.input_map = Some((b.map(&self.graph, self.model.dof)?, b.width));
        }
        self.stale = true;
        Ok(())
    }

    fn val_loss(&mut self, data: &Samples, idx: &[usize], loss: LossKind) -> Result<(f64, usize)> {
        let pen = self.penalty.take();
        let r = self.loss_grad(data, idx, loss, false);
        self.penalty = pen;
        r.map(|(l, _, n)| (l, n))
    }

    fn loss_grad(
        &mut self,
        data: &Samples,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        self.check_data(data)?;
        self.workers()?;
        let offs = self.model.param_offsets();
        let np = if want_grad { *offs.last().unwrap() } else { 0 };
        let n = self.graph.n_coords();
        let inv = data.inv_norm(idx);
        let b = idx.len();
        let (mut acc, mut lams) = (
            vec![0.0; b * n],
            vec![0.0; if want_grad { b * n } else { 0 }],
        );
        let mut losses = vec![0.0; b];
        // Forward: accelerations, loss and the adjoint λ of every sample, the sites of all
        // samples in one pass (docs/DESIGN.md §19), kept for the batched backward sweep.
        let input_map = self.input_map.as_ref();
        let states: Vec<(&[f64], &[f64])> = idx
            .iter()
            .map(|&i| {
                let row = data.input_row(i);
                (&row[..n], &row[n..2 * n])
            })
            .collect();
        let dy = &mut self.dys[0];
        let fixed = dy.fixed_coords().to_vec();
        dy.minibatch_forward(
            &states,
            (&mut acc, &mut lams, &mut losses),
            |k, a, lam, solver| {
                let i = idx[k];
                let row = data.input_row(i);
                if let Some((bm, m)) = input_map {
                    // M a = b + B u with M factorised: add M⁻¹ B u (held coordinates get no force).
                    let mut x = input_force(bm, *m, &row[2 * n..]);
                    for &j in &fixed {
                        x[j] = 0.0;
                    }
                    solver.solve_in_place(&mut x)?;
                    for (a, x) in a.iter_mut().zip(&x) {
                        *a += x;
                    }
                }
                let l = loss.sample(a, data.target_row(i), data.weight(i) * inv, lam);
                if want_grad {
                    // λ = M⁻¹ ∂ℓ/∂a, zero at held coordinates (their a does not depend on θ).
                    for &j in &fixed {
                        lam[j] = 0.0;
                    }
                    solver.solve_in_place(lam)?;
                }
                Ok(l)
            },
        )
        .map_err(|e| e.error.context(&format!("sample {}", idx[e.state])))?;
        let mut total = 0.0;
        for l in &losses {
            total += l;
        }
        let mut grad = vec![0.0; np];
        if let (Some(pen), false) = (self.penalty, want_grad) {
            let lag = &self.dys[0].lagrangian;
            total += super::site_penalty::graph_mass_penalty(
                &self.model,
                lag,
                &offs,
                data,
                idx,
                pen,
                None,
            );
        }
        if !want_grad {
            return Ok((total, grad, 0));
        }
        // ∂ℓ/∂M_jj = −Σ_samples λ_j a_j, summed in sample order.
        let mut sens = vec![0.0; n];
        for (a, l) in acc.chunks_exact(n).zip(lams.chunks_exact(n)) {
            for ((s, l), a) in sens.iter_mut().zip(l).zip(a) {
                *s -= l * a;
            }
        }
        // Mass-proportional damping (docs/DESIGN.md §13.11): the force −r_i μ_i q̇_i depends on
        // μ too, ∂ℓ/∂μ_i += −Σ_samples λ_i·r_i q̇_i.
        if let (Some(dis), Some(crate::density::dissipation::Forces { dissipation, .. })) =
            (&self.model.dissipation, &self.dys[0].forces)
        {
            if let Some(crate::density::dissipation::DissipationTerm::Learned(l)) = dissipation
                .iter()
                .find(|t| matches!(t, crate::density::dissipation::DissipationTerm::Learned(_)))
            {
                if dis.relative_to_mass {
                    let d = self.model.dof;
                    let mut gam = vec![0.0; self.graph.n_nodes()];
                    for (k, &i) in idx.iter().enumerate() {
                        let row = data.input_row(i);
                        l.coefficients(&row[..n], &mut gam);
                        let lam = &lams[k * n..(k + 1) * n];
                        for (node, g) in gam.iter().enumerate() {
                            let r = g / l.scale[node];
                            for c in node * d..(node + 1) * d {
                                sens[c] -= lam[c] * r * row[n + c];
                            }
                        }
                    }
                }
            }
        }
        // Backward: per term, the sites of all samples of the minibatch in one batched sweep
        // (blocks of BATCH_COLS columns, parallel over block groups).
        let states: Vec<SampleState<'_>> = idx
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let row = data.input_row(i);
                (
                    &row[..n],
                    &row[n..2 * n],
                    &acc[k * n..(k + 1) * n],
                    &lams[k * n..(k + 1) * n],
                )
            })
            .collect();
        let model = &self.model;
        // Wrapped coordinates of every sample, for general terms of a periodic model.
        let wrapped: Option<Vec<f64>> = model.q_period.map(|p| {
            states
                .iter()
                .flat_map(|&(q, _, _, _)| q.iter().map(move |&x| wrap_opt(x, Some(p))))
                .collect()
        });
        let lag = &self.dys[0].lagrangian;
        let d = lag.dof;
        for (t, term) in model.terms.iter().enumerate() {
            let sites = &lag.terms[t].sites;
            let g = &mut grad[offs[t]..offs[t + 1]];
            match term {
                GraphTerm::Kinetic { .. } => {
                    kinetic_backward(model, t, &self.graph, &sens, g)?;
                }
                GraphTerm::Closed(_) => {}
                GraphTerm::EdgePotential(net) => {
                    let input = (PotentialInput::EdgeDiff, model.q_period);
                    potential_adjoint_batch(net, input, sites, d, &states, g)
                }
                GraphTerm::NodePotential(net) => {
                    let input = (PotentialInput::Node, model.q_period);
                    potential_adjoint_batch(net, input, sites, d, &states, g)
                }
                GraphTerm::EdgeDistance(net) => {
                    let input = (PotentialInput::EdgeDistance, None);
                    potential_adjoint_batch(net, input, sites, d, &states, g)
                }
                GraphTerm::Sites(net) | GraphTerm::Stencil(net) => match &wrapped {
                    // The density wraps each q (docs/DESIGN.md §7): the adjoint sees the same inputs.
                    Some(qw) => {
                        let ws: Vec<SampleState<'_>> = states
                            .iter()
                            .zip(qw.chunks_exact(n))
                            .map(|(&(_, v, a, l), q)| (q, v, a, l))
                            .collect();
                        raw_mlp_adjoint_batch(net, sites, d, &ws, g)
                    }
                    None => raw_mlp_adjoint_batch(net, sites, d, &states, g),
                },
            }
        }
        if let Some(pen) = self.penalty {
            total += super::site_penalty::graph_mass_penalty(
                model,
                lag,
                &offs,
                data,
                idx,
                pen,
                Some(&mut grad),
            );
        }
        // The dissipation's parameters come last: (13.3), batched over samples and nodes.
        if let Some(crate::density::dissipation::Forces { dissipation, .. }) = &self.dys[0].forces {
            if let Some(crate::density::dissipation::DissipationTerm::Learned(l)) = dissipation
                .iter()
                .find(|t| matches!(t, crate::density::dissipation::DissipationTerm::Learned(_)))
            {
                let (o, e) = (offs[model.terms.len()], offs[model.terms.len() + 1]);
                let st: Vec<(&[f64], &[f64], &[f64])> =
                    states.iter().map(|&(q, v, _, l)| (q, v, l)).collect();
                l.adjoint_batch(&st, &mut grad[o..e]);
            }
        }
        // A learned input map's β last: (13.9), ∂ℓ/∂β = s_i Σ_samples λ_i u_j.
        if let Some(b) = &model.input_map {
            let o = offs[offs.len() - 2];
            let lam: Vec<&[f64]> = states.iter().map(|&(_, _, _, l)| l).collect();
            let us: Vec<&[f64]> = idx.iter().map(|&i| &data.input_row(i)[2 * n..]).collect();
            b.gradient(&self.graph, model.dof, &lam, &us, &mut grad[o..])?;
        }
        Ok((total, grad, 0))
    }
}

/// B u of one sample (B: n·d × m row-major).
fn input_force(b: &[f64], m: usize, u: &[f64]) -> Vec<f64> {
    b.chunks_exact(m)
        .map(|row| row.iter().zip(u).map(|(b, u)| b * u).sum())
        .collect()
}

/// What [`driven_from_file`] found in a training file.
#[derive(Clone, Debug, PartialEq)]
pub enum DrivenData {
    /// No `/u`: conservative (or damped) data, trainer and samples unchanged.
    None,
    /// `/u` of width `m` enters as the force B u with the file's `/B`.
    Given { m: usize },
    /// `/u` of width `m` enters as B u with B learned, starting from the file's `/B` or zero.
    Learned { m: usize, from_file: bool },
}

/// Driven training data (docs/DESIGN.md §13.7, `lgn train` and `lgn.fit` alike): when the file
/// `path` holds inputs `u` (and `B`), the rows become (q, q̇, u) and the trainer gets the input
/// map — the file's B, or (with `map` = [`crate::model::InputMapKind::Learned`]) a learned one.
/// A learned map needs driven data: a file without `/u` is then an error naming it.
pub fn driven_from_file(
    path: &std::path::Path,
    trainer: GraphTrainer,
    samples: Samples,
    map: crate::model::InputMapKind,
) -> Result<(GraphTrainer, Samples, DrivenData)> {
    let n = trainer.graph.n_coords();
    let on_file = |e: Error| Error::file(path, e.to_string());
    if map == crate::model::InputMapKind::Learned {
        let Some((u, b, m)) =
            crate::io::inputs::read_training_inputs_map_optional(path, samples.n, n)?
        else {
            return Err(Error::file(
                path,
                "a learned input map needs driven data, but the file has no /u",
            ));
        };
        let samples = append_inputs(&samples, &u, m).map_err(on_file)?;
        let from_file = b.is_some();
        let trainer = trainer.with_learned_input_map(m, b.as_deref())?;
        return Ok((trainer, samples, DrivenData::Learned { m, from_file }));
    }
    let Some((u, b, m)) = crate::io::inputs::read_training_inputs(path, samples.n, n)? else {
        return Ok((trainer, samples, DrivenData::None));
    };
    let samples = append_inputs(&samples, &u, m).map_err(on_file)?;
    Ok((
        trainer.with_input_map(b, m)?,
        samples,
        DrivenData::Given { m },
    ))
}

/// Rows (q, q̇, u) of driven training data: `u` holds m values per sample of `data`.
pub fn append_inputs(data: &Samples, u: &[f64], m: usize) -> Result<Samples> {
    if u.len() != data.n * m {
        return Err(Error::input(format!(
            "{} input values for {} samples of width {m}",
            u.len(),
            data.n
        )));
    }
    let input = (0..data.n)
        .flat_map(|i| {
            data.input_row(i)
                .iter()
                .chain(&u[i * m..(i + 1) * m])
                .copied()
        })
        .collect();
    Samples::new(
        data.in_dim + m,
        data.out_dim,
        input,
        data.target.clone(),
        data.weights.clone(),
    )
}

/// ∂/∂θ Σ_samples Σ_s λ_{I_s}·∂ρ_s/∂q_{I_s} of a potential term, accumulated into `grad`
/// (q and λ of each sample are used); the sites of all samples are packed together into the
/// blocks of one batched sweep ([`batched_adjoint`]).
pub(crate) fn potential_adjoint_batch(
    net: &Mlp,
    (input, period): (PotentialInput, Option<f64>),
    sites: &Sites,
    d: usize,
    samples: &[SampleState<'_>],
    grad: &mut [f64],
) {
    let pn = net.sizes[0];
    let nf = sites.n_features;
    let copies = if input == PotentialInput::EdgeDiff {
        2
    } else {
        1
    };
    let ns = sites.len();
    let ci = input.coord_inputs(d);
    batched_adjoint(
        net,
        samples.len() * ns,
        ns,
        copies,
        grad,
        |xin, nb, j0, smp, s| {
            let (q, _, _, lam) = samples[smp];
            let nodes = sites.neighbourhood(s);
            let f = sites.features_of(s);
            // Edge-distance sites: r = |q_b − q_a| and the unit vector (docs/DESIGN.md §14.3).
            let mut unit = [0.0; 3];
            let r = if input == PotentialInput::EdgeDistance {
                let mut xs = [0.0; 6];
                xs[..d].copy_from_slice(&q[nodes[0] * d..nodes[0] * d + d]);
                xs[d..2 * d].copy_from_slice(&q[nodes[1] * d..nodes[1] * d + d]);
                crate::density::potential::edge_distance(&xs, d, &mut unit)
            } else {
                0.0
            };
            for c in 0..copies {
                let col = j0 + c;
                let x0 = &mut xin[col * pn..(col + 1) * pn];
                match input {
                    PotentialInput::Node => {
                        for k in 0..d {
                            x0[k] = wrap_opt(q[nodes[0] * d + k], period);
                        }
                    }
                    PotentialInput::EdgeDiff => {
                        let sign = if c == 0 { 1.0 } else { -1.0 };
                        for k in 0..d {
                            let delta = q[nodes[1] * d + k] - q[nodes[0] * d + k];
                            x0[k] = sign * wrap_opt(delta, period);
                        }
                    }
                    PotentialInput::EdgeDistance => x0[0] = r,
                }
                x0[ci..ci + nf].copy_from_slice(f);
                // u3: the adjoint through the same linear input map.
                let u3 = &mut xin[(3 * nb + col) * pn..(3 * nb + col + 1) * pn];
                match input {
                    PotentialInput::Node => {
                        u3[..d].copy_from_slice(&lam[nodes[0] * d..nodes[0] * d + d])
                    }
                    PotentialInput::EdgeDiff => {
                        let sign = if c == 0 { 1.0 } else { -1.0 };
                        for k in 0..d {
                            u3[k] = sign * (lam[nodes[1] * d + k] - lam[nodes[0] * d + k]);
                        }
                    }
                    // D_u r = (Δ/r)·(u_b − u_a): the distance is the network's only q input.
                    PotentialInput::EdgeDistance => {
                        u3[0] = (0..d)
                            .map(|k| unit[k] * (lam[nodes[1] * d + k] - lam[nodes[0] * d + k]))
                            .sum();
                    }
                }
            }
        },
    );
}

/// Back through μ_i = s_i softplus(g(f_i)) of kinetic term `t`: `sens` holds ∂ℓ/∂M_jj.
pub(crate) fn kinetic_backward(
    model: &GraphModel,
    t: usize,
    graph: &SystemGraph,
    sens: &[f64],
    grad: &mut [f64],
) -> Result<()> {
    let GraphTerm::Kinetic {
        net,
        scale,
        n_features,
    } = &model.terms[t]
    else {
        return Ok(());
    };
    let d = model.dof;
    let (nf, f) = graph.node_features(model.features)?;
    debug_assert_eq!(nf, *n_features);
    let s = graph.mass_scale(*scale)?;
    let one = [1.0];
    for i in 0..graph.n_nodes() {
        let dmu: f64 = sens[i * d..(i + 1) * d].iter().sum();
        if dmu == 0.0 {
            continue;
        }
        let x = if nf == 0 {
            &one[..]
        } else {
            &f[i * nf..(i + 1) * nf]
        };
        let gi = net.forward(x);
        // dμ/dg = s_i · sigmoid(g)
        let dg = dmu * s[i] / (1.0 + (-gi).exp());
        mlp_param_grad(net, x, dg, grad);
    }
    Ok(())
}

/// Accumulate dout · ∂net(x)/∂θ into `grad` (layout of [`super::hyperdual::flatten`]) for one
/// input: a plain forward and backward pass (small networks, e.g. the mass network).
pub fn mlp_param_grad(net: &Mlp, x: &[f64], dout: f64, grad: &mut [f64]) {
    let sizes = &net.sizes;
    let nl = sizes.len() - 1;
    let offs = param_offsets(sizes);
    let mut acts: Vec<Vec<f64>> = Vec::with_capacity(nl);
    let mut sigs: Vec<Vec<f64>> = Vec::with_capacity(nl);
    acts.push(
        x.iter()
            .zip(&net.input_shift)
            .zip(&net.input_scale)
            .map(|((x, m), s)| (x - m) / s)
            .collect(),
    );
    for l in 0..nl - 1 {
        let (nin, nout) = (sizes[l], sizes[l + 1]);
        let mut a = vec![0.0; nout];
        let mut sg = vec![0.0; nout];
        for i in 0..nout {
            let row = &net.weights[l][i * nin..(i + 1) * nin];
            let z = net.biases[l][i] + row.iter().zip(&acts[l]).map(|(w, a)| w * a).sum::<f64>();
            let (sp, sig, _) = crate::density::mlp::softplus_derivs(z);
            a[i] = sp;
            sg[i] = sig;
        }
        acts.push(a);
        sigs.push(sg);
    }
    // δ at the output is dout.
    let mut delta = vec![dout];
    for l in (0..nl).rev() {
        let (nin, nout) = (sizes[l], sizes[l + 1]);
        let (wo, bo) = offs[l];
        for i in 0..nout {
            for j in 0..nin {
                grad[wo + i * nin + j] += delta[i] * acts[l][j];
            }
            grad[bo + i] += delta[i];
        }
        if l > 0 {
            let mut prev = vec![0.0; nin];
            for (j, p) in prev.iter_mut().enumerate() {
                let s: f64 = (0..nout)
                    .map(|i| net.weights[l][i * nin + j] * delta[i])
                    .sum();
                *p = s * sigs[l - 1][j];
            }
            delta = prev;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Boundary, FeatureSet, NetShape};

    /// A small spring chain with node and edge features and random states.
    pub(crate) fn setup(
        node_potential: bool,
        fixed: bool,
        period: Option<f64>,
    ) -> (GraphTrainer, Samples) {
        setup_with(node_potential, fixed, period, false)
    }

    /// [`setup`]; with `distance` the edge potential is the edge-distance one.
    fn setup_with(
        node_potential: bool,
        fixed: bool,
        period: Option<f64>,
        distance: bool,
    ) -> (GraphTrainer, Samples) {
        use ndarray::Array2;
        let n = 6;
        let mut g = crate::io::GraphData::new(n, 2, (0..n - 1).map(|i| [i, i + 1]).collect());
        g.node_features = Some(Array2::from_shape_fn((n, 1), |(i, _)| 1.0 + 0.3 * i as f64));
        g.edge_features = Some(Array2::from_shape_fn((n - 1, 2), |(i, j)| {
            0.5 + (i + j) as f64 * 0.1
        }));
        let mut b = vec![false; n];
        b[0] = true;
        g.boundary = Some(b);
        let graph = SystemGraph::from_data(g, "test").unwrap();
        let nc = graph.n_coords();
        let states: Vec<f64> = (0..4 * 2 * nc).map(|i| (0.7 * i as f64).sin()).collect();
        let target: Vec<f64> = (0..4 * nc).map(|i| (1.3 * i as f64).cos()).collect();
        let data =
            Samples::new(2 * nc, nc, states, target, Some(vec![1.0, 0.5, 2.0, 1.0])).unwrap();
        let qs: Vec<&[f64]> = (0..data.n).map(|i| &data.input_row(i)[..nc]).collect();
        let shape = NetShape {
            hidden: 6,
            layers: 2,
            seed: 3,
        };
        let mut m =
            GraphModel::node_edge(&graph, FeatureSet::Graph, node_potential, &shape, &qs).unwrap();
        if distance {
            m = m.with_edge_distance(&graph, &shape, &qs).unwrap();
        }
        if fixed {
            m.boundary = Boundary::Fixed;
        }
        m.q_period = period;
        // Non-trivial biases so every parameter matters.
        let mut th = m.params();
        for (i, x) in th.iter_mut().enumerate() {
            *x += 0.05 * (0.37 * i as f64).sin();
        }
        m.set_params(&th).unwrap();
        (GraphTrainer::new(m, graph).unwrap(), data)
    }

    fn check_gradient(node_potential: bool, fixed: bool, period: Option<f64>) {
        let (tr, data) = setup(node_potential, fixed, period);
        check_fd(tr, data, 1e-5);
    }

    /// Central differences of step h0·(1 + |θ_k|) against the adjoint gradient, 1e-5 relative.
    pub(crate) fn check_fd(mut tr: GraphTrainer, data: Samples, h0: f64) {
        let idx = [0, 1, 2, 3];
        let theta = tr.params();
        let (_, g, _) = tr.loss_grad(&data, &idx, LossKind::Mse, true).unwrap();
        let mut worst: f64 = 0.0;
        for k in 0..theta.len() {
            let h = h0 * (1.0 + theta[k].abs());
            let mut t = theta.clone();
            t[k] += h;
            tr.set_params(&t).unwrap();
            let lp = tr.loss_grad(&data, &idx, LossKind::Mse, false).unwrap().0;
            t[k] -= 2.0 * h;
            tr.set_params(&t).unwrap();
            let lm = tr.loss_grad(&data, &idx, LossKind::Mse, false).unwrap().0;
            let fd = (lp - lm) / (2.0 * h);
            // minus the central difference's rounding floor (one ulp of each loss over 2h),
            // which near-zero components of the gradient would otherwise be compared against
            let noise = f64::EPSILON * (lp.abs() + lm.abs()) / (2.0 * h);
            let err = ((g[k] - fd).abs() - noise).max(0.0) / (1e-6 + fd.abs().max(g[k].abs()));
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "param {k}: adjoint {} vs finite difference {fd} (loss {lp}, rounding floor {noise:e})",
                g[k]
            );
        }
        tr.set_params(&theta).unwrap();
        assert!(worst < 1e-5);
    }

    /// A learned (and a linear) dissipation term with a driven input: the adjoint gradient of
    /// every parameter, the dissipation's included, against central differences; the input
    /// force enters the accelerations (the loss changes with u).
    #[test]
    fn dissipation_and_input_gradient_matches_finite_differences() {
        use crate::density::dissipation::DissipationKind;
        for (kind, fixed) in [
            (DissipationKind::Learned, false),
            (DissipationKind::Linear, true),
        ] {
            let (tr, data) = setup(true, fixed, None);
            let (mut model, graph) = (tr.model, tr.graph);
            let nc = graph.n_coords();
            let qs: Vec<&[f64]> = (0..data.n).map(|i| &data.input_row(i)[..nc]).collect();
            model.dissipation =
                crate::model::GraphDissipation::new(kind, &model, &graph, 5, 2, 9, &qs).unwrap();
            // Non-trivial weights so every parameter matters.
            let mut th = model.params();
            for (i, x) in th.iter_mut().enumerate() {
                *x += 0.05 * (0.53 * i as f64).cos();
            }
            model.set_params(&th).unwrap();
            let m = 2;
            let u: Vec<f64> = (0..data.n * m).map(|k| (0.9 * k as f64).sin()).collect();
            let b: Vec<f64> = (0..nc * m).map(|k| 0.2 * ((k * 3) % 7) as f64).collect();
            let driven = append_inputs(&data, &u, m).unwrap();
            let mut tr = GraphTrainer::new(model.clone(), graph.clone())
                .unwrap()
                .with_input_map(b.clone(), m)
                .unwrap();
            let l_driven = tr
                .loss_grad(&driven, &[0, 1], LossKind::Mse, false)
                .unwrap()
                .0;
            let mut zero = GraphTrainer::new(model, graph)
                .unwrap()
                .with_input_map(vec![0.0; nc * m], m)
                .unwrap();
            let l_zero = zero
                .loss_grad(&driven, &[0, 1], LossKind::Mse, false)
                .unwrap()
                .0;
            assert!(
                (l_driven - l_zero).abs() > 1e-6 * l_zero,
                "{l_driven} vs {l_zero}"
            );
            check_fd(tr, driven, 1e-5);
        }
    }

    /// A learned input map B = s_i β (docs/DESIGN.md §13.9), with a dissipation term, free and
    /// held boundaries, and on a mesh (s_i = the lumped area): every parameter's adjoint
    /// gradient, β's included, against central differences; the map enters the accelerations
    /// and survives a model-file round trip.
    #[test]
    fn learned_input_map_gradient_matches_finite_differences() {
        use crate::density::dissipation::DissipationKind;
        let m = 2;
        let check = |tr: GraphTrainer, data: &Samples| {
            let nc = tr.graph.n_coords();
            let u: Vec<f64> = (0..data.n * m).map(|k| (0.9 * k as f64).sin()).collect();
            let init: Vec<f64> = (0..nc * m).map(|k| 0.2 * ((k * 3) % 7) as f64).collect();
            let driven = append_inputs(data, &u, m).unwrap();
            let mut tr = tr.with_learned_input_map(m, Some(&init)).unwrap();
            // The learned map starts at the given B.
            let b = tr.model.input_map.as_ref().unwrap();
            let back = b.map(&tr.graph, tr.model.dof).unwrap();
            for (x, y) in back.iter().zip(&init) {
                assert!((x - y).abs() < 1e-12 * (1.0 + y.abs()));
            }
            // β matters: zeroing it changes the loss.
            let l0 = tr
                .loss_grad(&driven, &[0, 1], LossKind::Mse, false)
                .unwrap()
                .0;
            let mut th = tr.params();
            let nb = nc * m;
            let o = th.len() - nb;
            th[o..].iter_mut().for_each(|x| *x = 0.0);
            tr.set_params(&th).unwrap();
            let l1 = tr
                .loss_grad(&driven, &[0, 1], LossKind::Mse, false)
                .unwrap()
                .0;
            assert!((l0 - l1).abs() > 1e-6 * l1, "{l0} vs {l1}");
            // Non-trivial β for the check.
            for (k, x) in th[o..].iter_mut().enumerate() {
                *x = 0.3 * (0.37 * k as f64).sin();
            }
            tr.set_params(&th).unwrap();
            // Model-file round trip keeps β.
            let dir = std::env::temp_dir().join(format!("lgn-inputmap-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("m{nc}.h5"));
            tr.model.save(&path, None, true).unwrap();
            let loaded = crate::model::load_graph_model(&path).unwrap();
            assert_eq!(loaded.input_map, tr.model.input_map);
            std::fs::remove_dir_all(&dir).ok();
            check_fd(tr, driven, 1e-5);
        };
        for fixed in [false, true] {
            let (tr, data) = setup(true, fixed, None);
            let (mut model, graph) = (tr.model, tr.graph);
            let nc = graph.n_coords();
            let qs: Vec<&[f64]> = (0..data.n).map(|i| &data.input_row(i)[..nc]).collect();
            model.dissipation = crate::model::GraphDissipation::new(
                DissipationKind::Linear,
                &model,
                &graph,
                5,
                2,
                9,
                &qs,
            )
            .unwrap();
            check(GraphTrainer::new(model, graph).unwrap(), &data);
        }
        // A mesh: the lumped area scales β.
        let mesh = crate::mesh::generate::unit_square_nodes(16).unwrap();
        let graph = SystemGraph::from_mesh(mesh, "square");
        let nc = graph.n_coords();
        let states: Vec<f64> = (0..4 * 2 * nc).map(|i| (0.7 * i as f64).sin()).collect();
        let target: Vec<f64> = (0..4 * nc).map(|i| (1.3 * i as f64).cos()).collect();
        let data = Samples::new(2 * nc, nc, states, target, None).unwrap();
        let qs: Vec<&[f64]> = (0..data.n).map(|i| &data.input_row(i)[..nc]).collect();
        let shape = NetShape {
            hidden: 5,
            layers: 2,
            seed: 2,
        };
        let model =
            GraphModel::node_edge(&graph, crate::model::FeatureSet::Mesh, false, &shape, &qs)
                .unwrap();
        assert_eq!(model.mass_scale_kind(), crate::model::MassScale::LumpedArea);
        check(GraphTrainer::new(model, graph).unwrap(), &data);
    }

    #[test]
    fn node_edge_gradient_matches_finite_differences() {
        check_gradient(false, false, None);
        check_gradient(true, true, None);
        // Angles: states in [−1, 1], differences up to 2, wrapped by 1.5.
        check_gradient(true, false, Some(1.5));
    }

    /// The edge-distance potential (docs/DESIGN.md §14.3): the adjoint through r = |q_b − q_a|,
    /// with node potential and fixed nodes as well.
    #[test]
    fn edge_distance_gradient_matches_finite_differences() {
        let (tr, data) = setup_with(false, false, None, true);
        assert!(matches!(tr.model.terms[1], GraphTerm::EdgeDistance(_)));
        check_fd(tr, data, 1e-5);
        let (tr, data) = setup_with(true, true, None, true);
        check_fd(tr, data, 1e-5);
    }

    /// The general stencil density on a ring of angles: the adjoint through the wrapped inputs.
    #[test]
    fn periodic_stencil_gradient_matches_finite_differences() {
        let graph = SystemGraph::line(7, 1, true).unwrap();
        let nc = graph.n_coords();
        let states: Vec<f64> = (0..4 * 2 * nc)
            .map(|i| 1.2 * (0.7 * i as f64).sin())
            .collect();
        let target: Vec<f64> = (0..4 * nc).map(|i| (1.3 * i as f64).cos()).collect();
        let data = Samples::new(2 * nc, nc, states, target, None).unwrap();
        let rows: Vec<&[f64]> = (0..data.n).map(|i| data.input_row(i)).collect();
        let shape = NetShape {
            hidden: 5,
            layers: 2,
            seed: 4,
        };
        let mut m = GraphModel::general(&graph, true, &shape, &rows).unwrap();
        m.q_period = Some(2.0);
        // Wrapped neighbours jump by up to 2 inside one stencil, so the untrained loss curves
        // strongly: a smaller step keeps the central difference's O(h²) error below 1e-5.
        check_fd(GraphTrainer::new(m, graph).unwrap(), data, 3e-6);
    }

    /// With a coordinate period, L is periodic in every coordinate: shifting one node by P
    /// leaves every acceleration unchanged; without it, the shift changes them.
    #[test]
    fn periodic_graph_model_is_invariant_under_a_shift_by_the_period() {
        for period in [None, Some(1.5)] {
            let (tr, data) = setup(true, false, period);
            let mut dy = tr.model.dynamics(&tr.graph, SolverKind::Auto).unwrap();
            let nc = tr.graph.n_coords();
            let row = data.input_row(1);
            let (q, v) = (&row[..nc], &row[nc..]);
            let a = dy.accelerations(q, v).unwrap();
            let mut q2 = q.to_vec();
            q2[3] += 1.5;
            let a2 = dy.accelerations(&q2, v).unwrap();
            let diff = a
                .iter()
                .zip(&a2)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            match period {
                Some(_) => assert!(diff < 1e-12 * scale, "{diff} vs {scale}"),
                None => assert!(diff > 1e-6 * scale, "{diff}"),
            }
        }
    }

    /// The batched backward pass (the sites of all samples packed into shared blocks) equals
    /// the weighted sum of one-sample minibatches (each normalised by its own weight) to 1e-12.
    #[test]
    fn batched_minibatch_equals_the_sum_of_single_samples() {
        for (node_potential, fixed, period) in [
            (false, false, None),
            (true, true, None),
            (true, false, Some(1.5)),
        ] {
            let (mut tr, data) = setup(node_potential, fixed, period);
            let idx = [2, 0, 3, 1];
            let (l, g, _) = tr.loss_grad(&data, &idx, LossKind::Huber, true).unwrap();
            let sw: f64 = idx.iter().map(|&i| data.weight(i)).sum();
            let (mut lr, mut gr) = (0.0, vec![0.0; g.len()]);
            for &i in &idx {
                let (li, gi, _) = tr.loss_grad(&data, &[i], LossKind::Huber, true).unwrap();
                let w = data.weight(i) / sw;
                lr += w * li;
                for (a, b) in gr.iter_mut().zip(&gi) {
                    *a += w * b;
                }
            }
            assert!((l - lr).abs() <= 1e-12 * lr.abs(), "{l} vs {lr}");
            let m = gr.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let e = g
                .iter()
                .zip(&gr)
                .fold(0.0f64, |e, (x, y)| e.max((x - y).abs()));
            assert!(e <= 1e-12 * m, "max difference {e:e} of {m:e}");
        }
    }

    #[test]
    fn mlp_param_grad_matches_finite_differences() {
        let mut net = Mlp::paper_init(&[2, 5, 4, 1], 3);
        net.input_scale = vec![0.7, 1.3];
        let x = [0.4, -0.9];
        let theta = super::super::hyperdual::flatten(&net);
        let mut g = vec![0.0; theta.len()];
        mlp_param_grad(&net, &x, 1.0, &mut g);
        for k in 0..theta.len() {
            let h = 1e-6;
            let (mut a, mut b) = (net.clone(), net.clone());
            let mut ta = theta.clone();
            ta[k] += h;
            super::super::hyperdual::unflatten(&mut a, &ta);
            ta[k] -= 2.0 * h;
            super::super::hyperdual::unflatten(&mut b, &ta);
            let fd = (a.forward(&x) - b.forward(&x)) / (2.0 * h);
            assert!(
                (g[k] - fd).abs() < 1e-7 * (1.0 + fd.abs()),
                "param {k}: {} vs {fd}",
                g[k]
            );
        }
    }
}
