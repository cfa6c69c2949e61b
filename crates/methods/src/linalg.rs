//! Small dense linear algebra in `f64` for the classical estimators (MATH.md E3): Cholesky
//! factorisation and solves, the inverse of a symmetric positive definite matrix, and the symmetric
//! eigendecomposition by cyclic Jacobi rotations.
//!
//! Matrices are square, row-major `Vec<f64>` of `n * n` entries. Every routine is sequential with a
//! fixed operation order, so results are bitwise reproducible. These are meant for `n` up to a few
//! thousand (the explicit Hessian of `if-exact`, the `d + 1` parameters of a GLM, the tridiagonal
//! matrix of Lanczos); they are written here rather than taken from `faer` because `faer` 0.24's
//! matrix product corrupts memory for row-major destinations (see the crate's history).
//!
//! Tests check the defining identities: `A x = b`, `A A^{-1} = I`, `A v = lambda v`, `V^T V = I`.

/// Cholesky failed: the matrix is not (numerically) symmetric positive definite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotPositiveDefinite {
    /// The row where the factorisation broke down.
    pub pivot: usize,
    /// The non-positive (or non-finite) value found for `L[pivot][pivot]^2`.
    pub value: f64,
}

impl std::fmt::Display for NotPositiveDefinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the matrix is not positive definite (Cholesky pivot {} is {:e})",
            self.pivot, self.value
        )
    }
}

/// `<a, b>` summed left to right.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    // Four partial sums in a fixed order: deterministic and vectorisable.
    let mut s = [0.0f64; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for l in 0..4 {
            s[l] += a[4 * c + l] * b[4 * c + l];
        }
    }
    let mut tail = 0.0;
    for i in 4 * chunks..a.len() {
        tail += a[i] * b[i];
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// Euclidean norm.
#[inline]
pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `y <- y + alpha x`.
#[inline]
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// The lower-triangular Cholesky factor `L` (row-major, zeros above the diagonal) with
/// `A = L L^T`, by the row-oriented (Cholesky-Banachiewicz) recurrence
/// `L_ij = (A_ij - sum_{k<j} L_ik L_jk) / L_jj`, `L_jj = sqrt(A_jj - sum_{k<j} L_jk^2)`.
/// Only the lower triangle of `a` is read.
///
/// # Errors
/// [`NotPositiveDefinite`] when a pivot `A_jj - sum_k L_jk^2` is not a positive finite number.
///
/// # Panics
/// If `a.len() != n * n`.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>, NotPositiveDefinite> {
    assert_eq!(a.len(), n * n, "cholesky: {} entries for n = {n}", a.len());
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let (done, row_i) = l.split_at_mut(i * n);
            let s = if j < i {
                dot(&row_i[..j], &done[j * n..j * n + j])
            } else {
                dot(&row_i[..j], &row_i[..j])
            };
            let v = a[i * n + j] - s;
            if j == i {
                if !(v > 0.0 && v.is_finite()) {
                    return Err(NotPositiveDefinite { pivot: i, value: v });
                }
                row_i[i] = v.sqrt();
            } else {
                row_i[j] = v / done[j * n + j];
            }
        }
    }
    Ok(l)
}

/// Solves `L L^T x = b` in place (`b` becomes `x`) for a factor from [`cholesky`].
///
/// # Panics
/// If the sizes disagree.
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    assert!(l.len() == n * n && b.len() == n, "cholesky_solve: sizes");
    // L y = b
    for i in 0..n {
        let s = dot(&l[i * n..i * n + i], &b[..i]);
        b[i] = (b[i] - s) / l[i * n + i];
    }
    // L^T x = y, column access of L
    for i in (0..n).rev() {
        let mut s = 0.0;
        for k in i + 1..n {
            s += l[k * n + i] * b[k];
        }
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// `A^{-1}` (row-major, symmetrised) from the Cholesky factor of `A`.
pub fn cholesky_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    for c in 0..n {
        e.iter_mut().for_each(|x| *x = 0.0);
        e[c] = 1.0;
        cholesky_solve(l, n, &mut e);
        for r in 0..n {
            inv[r * n + c] = e[r];
        }
    }
    symmetrize(&mut inv, n);
    inv
}

/// Replaces `A` by `(A + A^T) / 2`.
pub fn symmetrize(a: &mut [f64], n: usize) {
    for i in 0..n {
        for j in 0..i {
            let m = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = m;
            a[j * n + i] = m;
        }
    }
}

/// `y = A x` for a row-major square `A`.
pub fn matvec(a: &[f64], n: usize, x: &[f64]) -> Vec<f64> {
    (0..n).map(|i| dot(&a[i * n..(i + 1) * n], x)).collect()
}

/// A symmetric eigendecomposition `A = V diag(values) V^T`.
#[derive(Debug, Clone, PartialEq)]
pub struct SymEigen {
    /// Eigenvalues in decreasing order.
    pub values: Vec<f64>,
    /// Unit eigenvectors, `vectors[i]` for `values[i]`, mutually orthogonal.
    pub vectors: Vec<Vec<f64>>,
    /// Jacobi sweeps used.
    pub sweeps: usize,
}

/// The Jacobi iteration did not reduce the off-diagonal part below its tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EigenNoConvergence {
    /// Sweeps run.
    pub sweeps: usize,
    /// Remaining off-diagonal Frobenius norm relative to the matrix's.
    pub off_diagonal: f64,
}

/// Eigendecomposition of a symmetric matrix by cyclic Jacobi rotations (Golub & Van Loan, 8.5):
/// each rotation `J` in the plane `(p, q)` with `t = sign(theta) / (|theta| + sqrt(theta^2 + 1))`,
/// `theta = (A_qq - A_pp) / (2 A_pq)`, zeroes `A_pq` in `J^T A J`. Sweeps stop when the
/// off-diagonal Frobenius norm is below `4 n eps ||A||_F`. Quadratically convergent; meant for
/// `n` up to a few hundred.
///
/// # Errors
/// [`EigenNoConvergence`] after 100 sweeps (never seen for finite symmetric input).
///
/// # Panics
/// If `a.len() != n * n`.
pub fn sym_eigen(a: &[f64], n: usize) -> Result<SymEigen, EigenNoConvergence> {
    assert_eq!(a.len(), n * n, "sym_eigen: {} entries for n = {n}", a.len());
    let mut a = a.to_vec();
    symmetrize(&mut a, n);
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total = norm(&a);
    let tol = 4.0 * n as f64 * f64::EPSILON * total;
    let off = |a: &[f64]| {
        let mut s = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    s += a[i * n + j] * a[i * n + j];
                }
            }
        }
        s.sqrt()
    };
    let mut sweeps = 0;
    while off(&a) > tol {
        if sweeps == 100 {
            return Err(EigenNoConvergence {
                sweeps,
                off_diagonal: off(&a) / total.max(f64::MIN_POSITIVE),
            });
        }
        sweeps += 1;
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- A J (columns p, q), then A <- J^T A (rows p, q).
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                a[p * n + q] = 0.0;
                a[q * n + p] = 0.0;
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]).then(i.cmp(&j)));
    Ok(SymEigen {
        values: order.iter().map(|&i| a[i * n + i]).collect(),
        vectors: order
            .iter()
            .map(|&i| (0..n).map(|k| v[k * n + i]).collect())
            .collect(),
        sweeps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Rng;

    /// `B B^T + shift I` for a random `B`: symmetric positive definite with a controlled spectrum.
    fn spd(n: usize, shift: f64, seed: u64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        let b: Vec<f64> = (0..n * n).map(|_| r.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = dot(&b[i * n..(i + 1) * n], &b[j * n..(j + 1) * n]);
            }
            a[i * n + i] += shift;
        }
        a
    }

    #[test]
    fn cholesky_solves_and_inverts_at_several_sizes() {
        for (n, seed) in [(1, 1), (2, 2), (7, 3), (31, 4), (120, 5)] {
            let a = spd(n, 1.0, seed);
            let l = cholesky(&a, n).unwrap();
            // L L^T == A
            for i in 0..n {
                for j in 0..n {
                    let s: f64 = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
                    assert!(
                        (s - a[i * n + j]).abs() <= 1e-12 * n as f64 * (1.0 + a[i * n + j].abs())
                    );
                }
            }
            let mut r = Rng::new(seed + 100);
            let b: Vec<f64> = (0..n).map(|_| r.normal()).collect();
            let mut x = b.clone();
            cholesky_solve(&l, n, &mut x);
            let ax = matvec(&a, n, &x);
            let err = ax
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(
                err <= 1e-10 * n as f64 * norm(&b),
                "n = {n}: |Ax - b| = {err}"
            );
            let inv = cholesky_inverse(&l, n);
            for i in 0..n {
                for j in 0..n {
                    let s = dot(&a[i * n..(i + 1) * n], &inv[j * n..(j + 1) * n]);
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (s - want).abs() <= 1e-9 * n as f64,
                        "n = {n}: (A A^-1)[{i}][{j}] = {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn cholesky_rejects_indefinite_matrices_naming_the_pivot() {
        // [[1, 2], [2, 1]] has eigenvalues 3 and -1.
        let e = cholesky(&[1.0, 2.0, 2.0, 1.0], 2).unwrap_err();
        assert_eq!(e.pivot, 1);
        assert!(e.value < 0.0);
        assert!(e.to_string().contains("pivot 1"));
        assert!(cholesky(&[f64::NAN], 1).is_err());
    }

    #[test]
    fn jacobi_eigenpairs_satisfy_the_defining_identities() {
        for (n, seed) in [(1, 1), (2, 2), (5, 3), (30, 4), (80, 5)] {
            // An indefinite symmetric matrix: B B^T - 3 n I.
            let a = spd(n, -3.0 * n as f64, seed);
            let e = sym_eigen(&a, n).unwrap();
            let scale = e.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for w in e.values.windows(2) {
                assert!(w[0] >= w[1], "values must decrease");
            }
            for (lambda, v) in e.values.iter().zip(&e.vectors) {
                let av = matvec(&a, n, v);
                let res = av
                    .iter()
                    .zip(v)
                    .map(|(p, q)| (p - lambda * q).abs())
                    .fold(0.0, f64::max);
                assert!(
                    res <= 1e-12 * n as f64 * scale,
                    "n = {n}: |Av - lv| = {res}"
                );
            }
            for i in 0..n {
                for j in 0..n {
                    let d = dot(&e.vectors[i], &e.vectors[j]);
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (d - want).abs() <= 1e-12 * n as f64,
                        "n = {n}: <v{i}, v{j}> = {d}"
                    );
                }
            }
            let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
            let sum: f64 = e.values.iter().sum();
            assert!((trace - sum).abs() <= 1e-10 * n as f64 * scale);
        }
    }

    #[test]
    fn jacobi_handles_diagonal_and_repeated_eigenvalues() {
        let e = sym_eigen(&[2.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 2.0], 3).unwrap();
        assert_eq!(e.values, vec![5.0, 2.0, 2.0]);
        assert_eq!(e.sweeps, 0);
    }
}
