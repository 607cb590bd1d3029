//! The angle embedding of a network's input (docs/DESIGN.md §14.6).
//!
//! A density ρ(x) = N(φ(x)) whose network N sees φ(q, v, f) = (cos q, sin q, v, f) is smooth
//! and 2π-periodic in every q slot. Its derivatives follow from N's by the chain rule with the
//! Jacobian J = ∂φ/∂x (J u = (−sin q ⊙ u_q, cos q ⊙ u_q, u_v, u_f)) and the only non-zero
//! second derivatives of φ, ∂²cos q_i/∂q_i² = −cos q_i and ∂²sin q_i/∂q_i² = −sin q_i: a
//! term diagonal in q. [`crate::density::MlpDensity`] evaluates the records with it; this
//! module maps the adjoint channels of the training gradient ([`embed_adjoint_channels`]).

/// φ(x) for one site: `x` = (q (kd), v (kd), f), `y` = (cos q, sin q, v, f) of length
/// `x.len() + kd`.
pub fn embed_input(x: &[f64], kd: usize, y: &mut [f64]) {
    debug_assert_eq!(y.len(), x.len() + kd);
    for i in 0..kd {
        let (s, c) = x[i].sin_cos();
        y[i] = c;
        y[kd + i] = s;
    }
    y[2 * kd..].copy_from_slice(&x[kd..]);
}

/// The input channels [x | u1 | u2 | u3] of [`crate::train::hyperdual::adjoint_block`] (for
/// S = D_{u3} ρ − D_{u1} D_{u2} ρ) mapped through the embedding: with ρ = N∘φ,
///
/// ```text
/// S = D_{J u3 − w} N − D_{J u1} D_{J u2} N   at φ(x),   w = (−cos q ⊙ u1_q ⊙ u2_q, −sin q ⊙ u1_q ⊙ u2_q, 0, 0)
/// ```
///
/// so the same sweep on [φ(x) | J u1 | J u2 | J u3 − w] gives the exact ∂S/∂θ. `xin` is
/// channel-major (column c·ns + s holds channel c of site s, p = 2kd + nf rows each); the
/// result has the same arrangement with 3kd + nf rows.
pub fn embed_adjoint_channels(xin: &[f64], ns: usize, kd: usize) -> Vec<f64> {
    let p = xin.len() / (4 * ns.max(1));
    let pn = p + kd;
    let mut out = vec![0.0; 4 * pn * ns];
    let col = |c: usize, s: usize| (c * ns + s) * p;
    let ocol = |c: usize, s: usize| (c * ns + s) * pn;
    for s in 0..ns {
        let x = &xin[col(0, s)..col(0, s) + p];
        embed_input(x, kd, &mut out[ocol(0, s)..ocol(0, s) + pn]);
        let u1 = &xin[col(1, s)..col(1, s) + p];
        let u2 = &xin[col(2, s)..col(2, s) + p];
        for c in 1..4 {
            let u = &xin[col(c, s)..col(c, s) + p];
            let o = &mut out[ocol(c, s)..ocol(c, s) + pn];
            for i in 0..kd {
                let (sn, cs) = x[i].sin_cos();
                o[i] = -sn * u[i];
                o[kd + i] = cs * u[i];
                if c == 3 {
                    let w = u1[i] * u2[i];
                    o[i] += cs * w;
                    o[kd + i] += sn * w;
                }
            }
            o[2 * kd..].copy_from_slice(&u[kd..]);
        }
    }
    out
}
