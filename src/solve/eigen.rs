//! Eigen-decomposition of small dense symmetric matrices (cyclic Jacobi rotations): the
//! learned mass matrices of single-site models (D ≤ a few) and small test matrices. Not meant
//! for large systems (O(n³) per sweep).

/// Eigenvalues and eigenvectors of a small symmetric matrix (row-major d × d) by cyclic Jacobi
/// rotations; eigenvector k is column k of the returned row-major matrix.
pub fn sym_eigen(m: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v = vec![0.0; d * d];
    sym_eigen_in(&mut a, &mut v, d);
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// [`sym_eigen`] in caller buffers (no allocation): `a` holds the matrix on entry and its
/// eigenvalues on the diagonal on return, `v` (d × d) receives the eigenvectors as columns.
/// Orders 2, 3 and 4 (the kinetic blocks of graph sites, the single-site mass matrices) run the
/// same rotations compiled for their size (unrolled: the same operations in the same order,
/// so the same results, several times faster).
pub fn sym_eigen_in(a: &mut [f64], v: &mut [f64], d: usize) {
    match d {
        2 => jacobi(a, v, 2),
        3 => jacobi(a, v, 3),
        4 => jacobi(a, v, 4),
        _ => jacobi(a, v, d),
    }
}

/// The cyclic Jacobi sweeps of [`sym_eigen_in`]; inlined into each arm there, so a constant `d`
/// unrolls the loops.
#[inline(always)]
fn jacobi(a: &mut [f64], v: &mut [f64], d: usize) {
    let (a, v) = (&mut a[..d * d], &mut v[..d * d]);
    // Symmetrise (M is symmetric up to rounding).
    for i in 0..d {
        for j in 0..i {
            let s = 0.5 * (a[i * d + j] + a[j * d + i]);
            a[i * d + j] = s;
            a[j * d + i] = s;
        }
    }
    v.fill(0.0);
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..50 {
        let (mut off, mut diag) = (0.0, 0.0);
        for i in 0..d {
            for j in 0..d {
                if j != i {
                    off += a[i * d + j] * a[i * d + j];
                }
            }
        }
        for i in 0..d {
            diag += a[i * d + i] * a[i * d + i];
        }
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) || !off.is_finite() {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let akp = a[k * d + p];
                    let akq = a[k * d + q];
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let apk = a[p * d + k];
                    let aqk = a[q * d + k];
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let vkp = v[k * d + p];
                    let vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_reconstructs_symmetric_matrices() {
        for (d, seed) in [(1usize, 1u64), (2, 2), (3, 3), (5, 4)] {
            let mut s = seed;
            let mut rnd = || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            };
            let mut m = vec![0.0; d * d];
            for i in 0..d {
                for j in 0..=i {
                    let x = rnd();
                    m[i * d + j] = x;
                    m[j * d + i] = x;
                }
            }
            let (vals, v) = sym_eigen(&m, d);
            // M u_k = λ_k u_k and VᵀV = I.
            for k in 0..d {
                for i in 0..d {
                    let mu: f64 = (0..d).map(|j| m[i * d + j] * v[j * d + k]).sum();
                    assert!((mu - vals[k] * v[i * d + k]).abs() < 1e-12, "d={d}");
                }
                for l in 0..d {
                    let dot: f64 = (0..d).map(|i| v[i * d + k] * v[i * d + l]).sum();
                    let want = if k == l { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-12);
                }
            }
        }
    }
}
