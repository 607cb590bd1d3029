//! Symmetric learned densities: conservation laws by construction (Noether; docs/DESIGN.md §14).
//!
//! * Shift invariance of the ring-stencil MLP ([`project_shift_invariant`]): the density of
//!   site (i−1, i, i+1) sees the coordinates only through the differences q_{i+1} − q_i and
//!   q_i − q_{i−1} (velocities as they are). It is a linear constraint on the first layer —
//!   every row of W₁ has zero sum over the q slots of each coordinate component — kept exactly
//!   by training in the reparameterisation W₁ = P(θ) with P the orthogonal projection onto
//!   that subspace (gradient P∇, see `crate::train`). The velocity columns are untouched, so
//!   the mass matrix M = ∂²L/∂q̇∂q̇ is exactly what an unconstrained network of the same
//!   velocity weights would give: the uniform shift is a zero mode of ∂²L/∂q∂q only.
//!   L(q + c·1, q̇) = L(q, q̇) ⇒ Σᵢ ∂L/∂qᵢ = 0 ⇒ total momentum P = Σᵢ ∂L/∂q̇ᵢ is conserved,
//!   and exactly (to the implicit solve's tolerance) by the variational integrator, whose
//!   discrete Lagrangian inherits the symmetry.
//! * [`EdgeDistanceMlp`]: a rotation- and translation-invariant edge potential
//!   ρ_ab = N(|x_b − x_a|) for particles in 2-D or 3-D: linear and angular momentum conserved.
//! * [`total_momentum`], [`angular_momentum`], [`momentum_drift`]: the conserved quantities
//!   along rollouts.

use super::activation::softplus_derivs;
use super::{Density, Mlp, SiteLayout};
use crate::dynamics::Dynamics;
use crate::integrate::Variational;
use crate::{Error, Result};

/// Project the first layer of a site MLP with inputs (q_I, q̇_I, …) of `arity` nodes × `dof`
/// coordinates onto the shift-invariant subspace: for every hidden row and every coordinate
/// component c, subtract the mean of the weights on q_{I_a, c} over the nodes a. Requires the
/// q slots of each component to share one input scale (checked), so that zero weight sums on
/// the normalised inputs mean invariance under q_{·,c} → q_{·,c} + const.
pub fn project_shift_invariant(net: &mut Mlp, arity: usize, dof: usize) -> Result<()> {
    check_shared_scale(net, arity, dof)?;
    let p = net.sizes[0];
    let w = &mut net.weights[0];
    project_rows(w, p, arity, dof);
    Ok(())
}

/// The same projection applied to a flat parameter (or gradient) vector in the layout of
/// [`crate::train::hyperdual::flatten`] (first layer's weights first, row-major).
pub fn project_shift_invariant_flat(theta: &mut [f64], sizes: &[usize], arity: usize, dof: usize) {
    let (p, h) = (sizes[0], sizes[1]);
    project_rows(&mut theta[..p * h], p, arity, dof);
}

fn project_rows(w: &mut [f64], p: usize, arity: usize, dof: usize) {
    let k = arity as f64;
    for row in w.chunks_exact_mut(p) {
        for c in 0..dof {
            let m = (0..arity).map(|a| row[a * dof + c]).sum::<f64>() / k;
            for a in 0..arity {
                row[a * dof + c] -= m;
            }
        }
    }
}

fn check_shared_scale(net: &Mlp, arity: usize, dof: usize) -> Result<()> {
    if net.sizes[0] < 2 * arity * dof {
        return Err(Error::input(format!(
            "a shift-invariant density needs (q, q̇) inputs of {arity} nodes × {dof} coordinates; the network takes {}",
            net.sizes[0]
        )));
    }
    for c in 0..dof {
        let s0 = net.input_scale[c];
        for a in 1..arity {
            let s = net.input_scale[a * dof + c];
            if (s - s0).abs() > 1e-12 * s0.abs() {
                return Err(Error::input(format!(
                    "a shift-invariant density needs one input scale for q of every node; component {c} has {s0} at node 0 and {s} at node {a}"
                )));
            }
        }
    }
    Ok(())
}

/// Largest |Σ_a W₁[h, a·d + c]| over rows h and components c, relative to max |W₁| on the q
/// slots: 0 up to round-off for a shift-invariant network.
pub fn shift_invariance_defect(net: &Mlp, arity: usize, dof: usize) -> f64 {
    let p = net.sizes[0];
    let w = &net.weights[0];
    let wmax = w
        .chunks_exact(p)
        .flat_map(|r| r[..arity * dof].iter())
        .fold(0.0f64, |m, x| m.max(x.abs()))
        .max(1e-300);
    let mut worst = 0.0f64;
    for row in w.chunks_exact(p) {
        for c in 0..dof {
            let s: f64 = (0..arity).map(|a| row[a * dof + c]).sum();
            worst = worst.max(s.abs());
        }
    }
    worst / wmax
}

/// Canonical momenta p = ∂L/∂q̇ of every coordinate at (q, q̇) (n·d values, node-major).
pub fn momenta(dy: &mut Dynamics, q: &[f64], v: &[f64]) -> Result<Vec<f64>> {
    let n = q.len();
    let (mut dq, mut dv) = (vec![0.0; n], vec![0.0; n]);
    dy.gradients(q, v, &mut dq, &mut dv)?;
    Ok(dv)
}

/// Total momentum per coordinate component: P_c = Σ_i p_{i,c} (`dof` values), and the momentum
/// scale Σ_i |p_i| (sum of the nodes' momentum magnitudes) it is compared with.
pub fn total_momentum(p: &[f64], dof: usize) -> (Vec<f64>, f64) {
    let mut tot = vec![0.0; dof];
    let mut scale = 0.0;
    for node in p.chunks_exact(dof) {
        for c in 0..dof {
            tot[c] += node[c];
        }
        scale += node.iter().map(|x| x * x).sum::<f64>().sqrt();
    }
    (tot, scale)
}

/// Angular momentum Σ_i x_i × p_i of particles in 2-D (one value, the z component) or 3-D
/// (three values), and its scale Σ_i |x_i|·|p_i|.
pub fn angular_momentum(x: &[f64], p: &[f64], dof: usize) -> Result<(Vec<f64>, f64)> {
    if !(dof == 2 || dof == 3) || x.len() != p.len() || x.len() % dof != 0 {
        return Err(Error::input(format!(
            "angular momentum needs 2-D or 3-D particles with matching positions and momenta (dof {dof}, {} and {} values)",
            x.len(),
            p.len()
        )));
    }
    let mut scale = 0.0;
    let mut l = vec![0.0; if dof == 2 { 1 } else { 3 }];
    for (xi, pi) in x.chunks_exact(dof).zip(p.chunks_exact(dof)) {
        if dof == 2 {
            l[0] += xi[0] * pi[1] - xi[1] * pi[0];
        } else {
            l[0] += xi[1] * pi[2] - xi[2] * pi[1];
            l[1] += xi[2] * pi[0] - xi[0] * pi[2];
            l[2] += xi[0] * pi[1] - xi[1] * pi[0];
        }
        let nx = xi.iter().map(|a| a * a).sum::<f64>().sqrt();
        let np = pi.iter().map(|a| a * a).sum::<f64>().sqrt();
        scale += nx * np;
    }
    Ok((l, scale))
}

/// max_t ‖Q(t) − Q(0)‖_∞ / scale(0) of a conserved vector quantity sampled along a rollout
/// (`series[k]` = (Q(t_k), scale(t_k))): the relative drift reported in the metrics.
pub fn momentum_drift(series: &[(Vec<f64>, f64)]) -> f64 {
    let Some((q0, s0)) = series.first() else {
        return 0.0;
    };
    let s0 = s0.max(1e-300);
    series
        .iter()
        .map(|(q, _)| {
            q.iter()
                .zip(q0)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max)
        / s0
}

/// The kinetic scale of a learned energy along a rollout, independent of the energy's arbitrary
/// additive constant: K̄ = mean_k [E(q_k, q̇_k) − E(q_k, 0)] (`e[k]` = E(q_k, q̇_k), `e_rest[k]` =
/// E(q_k, 0)); for a Lagrangian quadratic in q̇ this is the mean kinetic energy
/// (docs/DESIGN.md §14.5). Falls back to 1e-300 when it vanishes.
pub fn kinetic_scale(e: &[f64], e_rest: &[f64]) -> f64 {
    let n = e.len().min(e_rest.len()).max(1) as f64;
    let k = e.iter().zip(e_rest).map(|(a, b)| a - b).sum::<f64>() / n;
    if k.is_finite() && k.abs() > 1e-300 {
        k.abs()
    } else {
        1e-300
    }
}

/// max_k |E_k − E_0| / scale: an energy drift that does not depend on E's additive constant
/// when `scale` does not (e.g. [`kinetic_scale`], or the energy's variation over the data).
pub fn scaled_drift(e: &[f64], scale: f64) -> f64 {
    let Some(&e0) = e.first() else {
        return 0.0;
    };
    e.iter().map(|x| (x - e0).abs()).fold(0.0, f64::max) / scale
}

/// Rotation- and translation-invariant edge potential for particles in `dof` = 2 or 3
/// dimensions: ρ_ab = N(r), r = |x_b − x_a| (the sign of a Lagrangian term, −U), N a softplus
/// MLP with one input (normalised by the network's input shift and scale). Symmetric under
/// swapping the endpoints; potential only (m_s = 0, c_s = 0). With a kinetic term of the
/// velocities alone, the Lagrangian is invariant under rigid motions: linear and angular
/// momentum are conserved (docs/DESIGN.md §14.3).
#[derive(Clone, Debug)]
pub struct EdgeDistanceMlp {
    pub mlp: Mlp,
    dof: usize,
}

impl EdgeDistanceMlp {
    pub fn new(mlp: Mlp, dof: usize) -> Result<Self> {
        mlp.validate()?;
        if mlp.sizes[0] != 1 {
            return Err(Error::input(format!(
                "an edge-distance network takes 1 input (the distance), not {}",
                mlp.sizes[0]
            )));
        }
        if !(dof == 2 || dof == 3) {
            return Err(Error::input(format!(
                "an edge-distance density is for particles in 2-D or 3-D, not dof {dof}"
            )));
        }
        Ok(EdgeDistanceMlp { mlp, dof })
    }

    /// (N(r), dN/dr) by forward-mode differentiation through the layers.
    pub fn value_slope(&self, r: f64) -> (f64, f64) {
        let net = &self.mlp;
        let mut a = vec![(r - net.input_shift[0]) / net.input_scale[0]];
        let mut da = vec![1.0 / net.input_scale[0]];
        let nl = net.weights.len();
        for l in 0..nl {
            let (nin, nout) = (net.sizes[l], net.sizes[l + 1]);
            let mut z = net.biases[l].clone();
            let mut dz = vec![0.0; nout];
            for i in 0..nout {
                let row = &net.weights[l][i * nin..(i + 1) * nin];
                for j in 0..nin {
                    z[i] += row[j] * a[j];
                    dz[i] += row[j] * da[j];
                }
            }
            if l + 1 < nl {
                for i in 0..nout {
                    let (s, s1, _) = softplus_derivs(z[i]);
                    z[i] = s;
                    dz[i] *= s1;
                }
            }
            a = z;
            da = dz;
        }
        (a[0], da[0])
    }
}

impl Density for EdgeDistanceMlp {
    fn arity(&self) -> usize {
        2
    }
    fn dof(&self) -> usize {
        self.dof
    }
    fn name(&self) -> String {
        let s: Vec<String> = self.mlp.sizes.iter().map(|x| x.to_string()).collect();
        format!("edge-distance mlp {}", s.join("-"))
    }
    fn mass_is_zero(&self) -> bool {
        true
    }
    fn eval_block(&self, x: &[f64], nb: usize, out: &mut [f64]) {
        let d = self.dof;
        let lay = self.layout();
        let (p, stride) = (4 * d, lay.stride());
        for s in 0..nb {
            let xs = &x[s * p..(s + 1) * p];
            let r_out = &mut out[s * stride..(s + 1) * stride];
            r_out.fill(0.0);
            let delta: Vec<f64> = (0..d).map(|c| xs[d + c] - xs[c]).collect();
            let r = delta.iter().map(|x| x * x).sum::<f64>().sqrt();
            let (n, dn) = self.value_slope(r);
            r_out[SiteLayout::RHO] = n;
            if r > 0.0 {
                for c in 0..d {
                    let g = dn * delta[c] / r;
                    r_out[lay.grad_q() + c] = -g;
                    r_out[lay.grad_q() + d + c] = g;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::density::eval_one;

    #[test]
    fn projection_makes_rows_sum_to_zero_and_keeps_velocity_weights() {
        let mut net = Mlp::paper_init(&[6, 16, 16, 1], 3);
        let before = net.weights[0].clone();
        project_shift_invariant(&mut net, 3, 1).unwrap();
        assert!(shift_invariance_defect(&net, 3, 1) < 1e-15);
        for (r, (a, b)) in net.weights[0]
            .chunks_exact(6)
            .zip(before.chunks_exact(6))
            .enumerate()
        {
            assert_eq!(&a[3..], &b[3..], "row {r}: velocity weights changed");
        }
        // Idempotent.
        let once = net.weights[0].clone();
        project_shift_invariant(&mut net, 3, 1).unwrap();
        for (a, b) in once.iter().zip(&net.weights[0]) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn projected_density_is_shift_invariant_and_still_sees_velocities() {
        let mut net = Mlp::paper_init(&[6, 16, 16, 1], 5);
        net.input_scale = vec![0.7, 0.7, 0.7, 1.3, 1.3, 1.3];
        net.input_shift = vec![0.2, 0.2, 0.2, -0.1, -0.1, -0.1];
        project_shift_invariant(&mut net, 3, 1).unwrap();
        let x = [0.3, -0.4, 1.1, 0.5, -0.2, 0.8];
        let mut y = x;
        for q in &mut y[..3] {
            *q += 2.75;
        }
        let (a, b) = (net.forward(&x), net.forward(&y));
        assert!((a - b).abs() < 1e-13 * a.abs().max(1.0), "{a} vs {b}");
        // The density is not invariant under a velocity shift (it still depends on q̇ itself).
        let mut z = x;
        for v in &mut z[3..] {
            *v += 0.5;
        }
        assert!((net.forward(&z) - a).abs() > 1e-6);
    }

    #[test]
    fn unequal_scales_are_refused() {
        let mut net = Mlp::paper_init(&[6, 4, 1], 1);
        net.input_scale = vec![1.0, 2.0, 1.0, 1.0, 1.0, 1.0];
        let e = project_shift_invariant(&mut net, 3, 1).unwrap_err();
        assert!(e.to_string().contains("input scale"), "{e}");
    }

    #[test]
    fn edge_distance_gradient_matches_finite_differences() {
        for d in [2usize, 3] {
            let mut net = Mlp::paper_init(&[1, 12, 12, 1], 9);
            net.input_shift[0] = 1.0;
            net.input_scale[0] = 0.5;
            let dens = EdgeDistanceMlp::new(net, d).unwrap();
            let lay = dens.layout();
            let x: Vec<f64> = (0..4 * d)
                .map(|i| 0.3 * (i as f64).sin() + 0.1 * i as f64)
                .collect();
            let rec = eval_one(&dens, &x);
            let h = 1e-6;
            for j in 0..2 * d {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[j] += h;
                xm[j] -= h;
                let fd = (eval_one(&dens, &xp)[0] - eval_one(&dens, &xm)[0]) / (2.0 * h);
                let g = rec[lay.grad_q() + j];
                assert!(
                    (fd - g).abs() < 1e-7 * (1.0 + g.abs()),
                    "d {d} slot {j}: {g} vs fd {fd}"
                );
            }
            // Rotation invariance: rotate both endpoints in the (0, 1) plane.
            let (c, s) = (0.6f64, 0.8f64);
            let mut xr = x.clone();
            for a in 0..2 {
                let (u, w) = (x[a * d], x[a * d + 1]);
                xr[a * d] = c * u - s * w;
                xr[a * d + 1] = s * u + c * w;
            }
            let r2 = eval_one(&dens, &xr)[0];
            assert!((r2 - rec[0]).abs() < 1e-13 * rec[0].abs().max(1.0));
        }
    }

    #[test]
    fn angular_momentum_of_a_rigid_rotation() {
        // Two unit masses at (±1, 0) moving (0, ±ω): L_z = 2ω, scale 2ω.
        let x = [1.0, 0.0, -1.0, 0.0];
        let p = [0.0, 0.5, 0.0, -0.5];
        let (l, s) = angular_momentum(&x, &p, 2).unwrap();
        assert!((l[0] - 1.0).abs() < 1e-15 && (s - 1.0).abs() < 1e-15);
        assert!(angular_momentum(&x, &p, 1).is_err());
        let (tot, sc) = total_momentum(&p, 2);
        assert!(tot.iter().all(|x| x.abs() < 1e-15) && (sc - 1.0).abs() < 1e-15);
        assert!(momentum_drift(&[(vec![1.0], 2.0), (vec![1.5], 2.0)]) - 0.25 < 1e-15);
    }

    #[test]
    fn scaled_drift_ignores_the_energy_constant() {
        let e = [3.0, 3.5, 2.75];
        let rest = [1.0, 1.5, 0.75];
        let shifted: Vec<f64> = e.iter().map(|x| x + 3320.0).collect();
        let rest_s: Vec<f64> = rest.iter().map(|x| x + 3320.0).collect();
        let (k, ks) = (kinetic_scale(&e, &rest), kinetic_scale(&shifted, &rest_s));
        assert!((k - 2.0).abs() < 1e-12 && (ks - 2.0).abs() < 1e-9);
        assert!((scaled_drift(&e, k) - 0.25).abs() < 1e-12);
        assert!((scaled_drift(&shifted, ks) - 0.25).abs() < 1e-9);
    }
}
