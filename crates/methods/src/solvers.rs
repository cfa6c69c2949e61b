//! Iterative solvers over a matrix-free symmetric operator (MATH.md E3): conjugate gradients,
//! LiSSA and Lanczos. Each takes a [`LinOp`] (in attrib: a damped Hessian or Gauss-Newton matrix
//! whose products come from one dual pass over the training set), a parameter struct with
//! documented defaults, and returns its result with an info struct, or a [`SolveError`] when it
//! misses its tolerance: never a silent best effort.
//!
//! Block right-hand sides: the operator is applied to all still-active columns at once (one pass
//! over the data carries `k` tangents), but each column runs its own recurrence and stopping test,
//! so a column's result does not depend on which other columns were solved with it (up to the
//! rounding of the batched products).

use std::sync::atomic::{AtomicUsize, Ordering};

use engine::Rng;

use crate::error::MethodError;
use crate::linalg::{axpy, dot, norm, sym_eigen};
use run::Progress;

/// A symmetric linear operator `A` on `R^dim`, applied to a block of vectors.
pub trait LinOp: Sync {
    /// The dimension.
    fn dim(&self) -> usize;
    /// `[A v_j]_j` for each of `vs` (each of length [`LinOp::dim`]).
    fn apply(&self, vs: &[&[f64]]) -> Vec<Vec<f64>>;
}

/// `op`, reporting each block product to a [`Progress`] hook as one unit of `what` out of
/// `total`, the solver's budget of products (a solver that converges early stops short of it).
/// The products themselves are `op`'s, untouched.
pub struct Reported<'a, O: ?Sized> {
    op: &'a O,
    progress: &'a Progress,
    what: &'a str,
    total: usize,
    done: AtomicUsize,
}

impl<'a, O: LinOp + ?Sized> Reported<'a, O> {
    /// `op` reporting to `progress` (see the type's docs).
    pub fn new(op: &'a O, progress: &'a Progress, what: &'a str, total: usize) -> Self {
        Reported {
            op,
            progress,
            what,
            total,
            done: AtomicUsize::new(0),
        }
    }

    /// Counts one more product and reports it (for products computed outside [`LinOp::apply`],
    /// such as stochastic LiSSA's mini-batch products).
    pub fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.progress
            .report(self.what, done.min(self.total), self.total);
    }
}

impl<O: LinOp + ?Sized> LinOp for Reported<'_, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }
    fn apply(&self, vs: &[&[f64]]) -> Vec<Vec<f64>> {
        let out = self.op.apply(vs);
        self.tick();
        out
    }
}

/// Why an iterative solver stopped without a result.
#[derive(Debug, Clone, PartialEq)]
pub enum SolveError {
    /// The iteration budget ran out before the tolerance was met.
    NoConvergence {
        /// Iterations run.
        iterations: usize,
        /// The worst relative residual reached.
        residual: f64,
    },
    /// Conjugate gradients met a direction with `p^T A p <= 0`: `A` is not positive definite.
    NegativeCurvature {
        /// Iteration at which it happened.
        iteration: usize,
        /// `p^T A p / p^T p`.
        curvature: f64,
    },
    /// The LiSSA recursion grew: `scale` is below the largest eigenvalue (or `A` is indefinite).
    Diverged {
        /// Iteration at which the residual exceeded `1e6` times the right-hand side.
        iteration: usize,
        /// The relative residual then.
        residual: f64,
    },
    /// Lanczos found an invariant subspace of lower dimension than the pairs asked for.
    InvariantSubspace {
        /// Dimension of the Krylov space found.
        dimension: usize,
        /// Pairs asked for.
        wanted: usize,
    },
}

impl std::fmt::Display for SolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SolveError::NoConvergence {
                iterations,
                residual,
            } => write!(
                f,
                "no convergence in {iterations} iterations (relative residual {residual:e})"
            ),
            SolveError::NegativeCurvature {
                iteration,
                curvature,
            } => write!(
                f,
                "negative curvature p^T A p / p^T p = {curvature:e} at iteration {iteration}: the damped \
                 matrix is not positive definite; raise the damping"
            ),
            SolveError::Diverged {
                iteration,
                residual,
            } => write!(
                f,
                "the recursion diverged at iteration {iteration} (relative residual {residual:e}): \
                 raise scale above the largest eigenvalue, or raise the damping"
            ),
            SolveError::InvariantSubspace { dimension, wanted } => write!(
                f,
                "the Krylov space has dimension {dimension} < {wanted} pairs asked for; lower the rank to {dimension}"
            ),
        }
    }
}

/// Parameters of [`cg`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgParams {
    /// Stop a column when `||b - A x|| <= tol ||b||` (recursive residual). Default `1e-8`.
    pub tol: f64,
    /// Iterations per column before [`SolveError::NoConvergence`]. Default `200`.
    pub max_iters: usize,
    /// Keep the iterate after `max_iters` instead of failing: *truncated* CG, whose early stop is
    /// a regulariser of its own (dattri's IF-CG runs a fixed 10 iterations). Default `false`.
    pub truncate: bool,
}

impl Default for CgParams {
    fn default() -> Self {
        CgParams {
            tol: 1e-8,
            max_iters: 200,
            truncate: false,
        }
    }
}

/// What [`cg`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgInfo {
    /// Most iterations used by a column.
    pub iters: usize,
    /// Worst final relative residual over the columns.
    pub residual: f64,
}

/// Conjugate gradients (Hestenes-Stiefel) for `A x_j = b_j`, `A` symmetric positive definite,
/// from `x_j = 0`: `alpha = r^T r / p^T A p`, `x += alpha p`, `r -= alpha A p`,
/// `p = r + (r_new^T r_new / r^T r) p`. A zero right-hand side gives `x = 0` at once.
///
/// # Errors
/// [`SolveError::NegativeCurvature`] when `p^T A p <= 0`; [`SolveError::NoConvergence`] when a
/// column misses `tol` after `max_iters` iterations, unless `truncate` (then `info.residual` is
/// the worst column's).
pub fn cg(
    op: &dyn LinOp,
    rhs: &[Vec<f64>],
    params: CgParams,
) -> Result<(Vec<Vec<f64>>, CgInfo), SolveError> {
    let dim = op.dim();
    let k = rhs.len();
    let mut x = vec![vec![0.0; dim]; k];
    let mut r: Vec<Vec<f64>> = rhs.to_vec();
    let mut p: Vec<Vec<f64>> = rhs.to_vec();
    let bnorm: Vec<f64> = rhs.iter().map(|b| norm(b)).collect();
    let mut rs: Vec<f64> = r.iter().map(|v| dot(v, v)).collect();
    let mut active: Vec<usize> = (0..k).filter(|&j| bnorm[j] > 0.0).collect();
    let mut info = CgInfo {
        iters: 0,
        residual: 0.0,
    };
    let mut iter = 0;
    while !active.is_empty() {
        if iter == params.max_iters {
            let residual = active
                .iter()
                .map(|&j| rs[j].sqrt() / bnorm[j])
                .fold(0.0, f64::max);
            if params.truncate {
                info.iters = iter;
                info.residual = info.residual.max(residual);
                break;
            }
            return Err(SolveError::NoConvergence {
                iterations: iter,
                residual,
            });
        }
        iter += 1;
        let dirs: Vec<&[f64]> = active.iter().map(|&j| p[j].as_slice()).collect();
        let ap = op.apply(&dirs);
        let mut still = Vec::with_capacity(active.len());
        for (&j, apj) in active.iter().zip(&ap) {
            let pap = dot(&p[j], apj);
            let pp = dot(&p[j], &p[j]);
            if pap.is_nan() || pap <= 0.0 {
                return Err(SolveError::NegativeCurvature {
                    iteration: iter,
                    curvature: pap / pp,
                });
            }
            let alpha = rs[j] / pap;
            axpy(alpha, &p[j], &mut x[j]);
            axpy(-alpha, apj, &mut r[j]);
            let rs_new = dot(&r[j], &r[j]);
            let rel = rs_new.sqrt() / bnorm[j];
            if rel <= params.tol {
                info.residual = info.residual.max(rel);
                info.iters = info.iters.max(iter);
                continue;
            }
            let beta = rs_new / rs[j];
            rs[j] = rs_new;
            for (pi, &ri) in p[j].iter_mut().zip(&r[j]) {
                *pi = ri + beta * *pi;
            }
            still.push(j);
        }
        active = still;
    }
    Ok((x, info))
}

/// Parameters of [`lissa`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LissaParams {
    /// Recursion steps. Default `2000`.
    pub depth: usize,
    /// `s` in `v <- b + (I - A / s) v`; must exceed half the largest eigenvalue of `A` (use about
    /// 1.1 times the largest). No default: estimate it with [`lanczos`].
    pub scale: f64,
    /// Stop when the relative residual `||b - A x|| / ||b|| <= tol`. Default `1e-4`.
    pub tol: f64,
}

/// What [`lissa`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LissaInfo {
    /// Most steps used by a column.
    pub iters: usize,
    /// Worst final relative residual.
    pub residual: f64,
}

/// LiSSA (Agarwal et al. 2017) with exact products: `v_0 = b`, `v_{t+1} = b + (I - A/s) v_t`,
/// `x_t = v_t / s`, which converges to `A^{-1} b` when the eigenvalues of `A / s` lie in `(0, 2)`.
/// The residual of `x_t` is free: `b - A x_t = v_{t+1} - v_t`; a column stops when it is below
/// `tol ||b||`. (`A` applied to a stochastic mini-batch is the original LiSSA; see
/// [`lissa_sampled`].)
///
/// # Errors
/// [`SolveError::Diverged`] when a residual exceeds `1e6 ||b||` (the scale is too small);
/// [`SolveError::NoConvergence`] when a column misses `tol` after `depth` steps.
pub fn lissa(
    op: &dyn LinOp,
    rhs: &[Vec<f64>],
    params: LissaParams,
) -> Result<(Vec<Vec<f64>>, LissaInfo), SolveError> {
    let k = rhs.len();
    let s = params.scale;
    let bnorm: Vec<f64> = rhs.iter().map(|b| norm(b)).collect();
    let mut v: Vec<Vec<f64>> = rhs.to_vec();
    let mut done: Vec<Option<Vec<f64>>> = (0..k)
        .map(|j| (bnorm[j] == 0.0).then(|| vec![0.0; op.dim()]))
        .collect();
    let mut info = LissaInfo {
        iters: 0,
        residual: 0.0,
    };
    let mut step = 0;
    loop {
        let active: Vec<usize> = (0..k).filter(|&j| done[j].is_none()).collect();
        if active.is_empty() {
            break;
        }
        if step == params.depth {
            // Residual of the current iterate: one more product.
            let dirs: Vec<&[f64]> = active.iter().map(|&j| v[j].as_slice()).collect();
            let av = op.apply(&dirs);
            let residual = active
                .iter()
                .zip(&av)
                .map(|(&j, avj)| residual_of(&rhs[j], avj, 1.0 / s) / bnorm[j])
                .fold(0.0, f64::max);
            return Err(SolveError::NoConvergence {
                iterations: step,
                residual,
            });
        }
        let dirs: Vec<&[f64]> = active.iter().map(|&j| v[j].as_slice()).collect();
        let av = op.apply(&dirs);
        for (&j, avj) in active.iter().zip(&av) {
            // r = b - A v / s = v_{t+1} - v_t
            let r: Vec<f64> = rhs[j].iter().zip(avj).map(|(&b, &a)| b - a / s).collect();
            let rel = norm(&r) / bnorm[j];
            if !rel.is_finite() || rel > 1e6 {
                return Err(SolveError::Diverged {
                    iteration: step,
                    residual: rel,
                });
            }
            if rel <= params.tol {
                done[j] = Some(v[j].iter().map(|x| x / s).collect());
                info.iters = info.iters.max(step);
                info.residual = info.residual.max(rel);
            } else {
                axpy(1.0, &r, &mut v[j]);
            }
        }
        step += 1;
    }
    Ok((done.into_iter().map(|x| x.unwrap()).collect(), info))
}

/// `||b - c A v||` given `A v`.
fn residual_of(b: &[f64], av: &[f64], c: f64) -> f64 {
    b.iter()
        .zip(av)
        .map(|(&bi, &ai)| (bi - c * ai) * (bi - c * ai))
        .sum::<f64>()
        .sqrt()
}

/// A family of operators indexed by `(sample, step)`: `sampled(s, t, vs)` applies the operator of
/// mini-batch `t` of sample `s` to each of `vs`.
pub type SampledOp<'a> = dyn Fn(usize, usize, &[&[f64]]) -> Vec<Vec<f64>> + Sync + 'a;

/// Stochastic LiSSA: `samples` independent recursions of `depth` steps
/// `v <- b + (I - A_{s,t} / scale) v` where `A_{s,t}` is the operator on mini-batch `t` of sample
/// `s` (given by `sampled(s, t, vs)`), averaged: `x = mean_s v_s / scale`. The estimate is then
/// checked against the exact operator `op`.
///
/// # Errors
/// [`SolveError::Diverged`] when an iterate grows beyond `1e6 ||b|| / scale`-relative bounds;
/// [`SolveError::NoConvergence`] when the averaged estimate's exact relative residual exceeds `tol`.
pub fn lissa_sampled(
    op: &dyn LinOp,
    sampled: &SampledOp<'_>,
    rhs: &[Vec<f64>],
    params: LissaParams,
    samples: usize,
) -> Result<(Vec<Vec<f64>>, LissaInfo), SolveError> {
    let k = rhs.len();
    let s = params.scale;
    let dim = op.dim();
    let bnorm: Vec<f64> = rhs.iter().map(|b| norm(b)).collect();
    let mut x = vec![vec![0.0; dim]; k];
    for sample in 0..samples {
        let mut v: Vec<Vec<f64>> = rhs.to_vec();
        for step in 0..params.depth {
            let dirs: Vec<&[f64]> = v.iter().map(|x| x.as_slice()).collect();
            let av = sampled(sample, step, &dirs);
            for j in 0..k {
                for ((vi, &ai), &bi) in v[j].iter_mut().zip(&av[j]).zip(&rhs[j]) {
                    *vi += bi - ai / s;
                }
                let growth =
                    norm(&v[j]) / (bnorm[j] * (params.depth as f64 + 1.0)).max(f64::MIN_POSITIVE);
                if bnorm[j] > 0.0 && (!growth.is_finite() || growth > 1e6) {
                    return Err(SolveError::Diverged {
                        iteration: step,
                        residual: growth,
                    });
                }
            }
        }
        for j in 0..k {
            axpy(1.0 / (s * samples as f64), &v[j], &mut x[j]);
        }
    }
    let dirs: Vec<&[f64]> = x.iter().map(|v| v.as_slice()).collect();
    let ax = op.apply(&dirs);
    let residual = (0..k)
        .filter(|&j| bnorm[j] > 0.0)
        .map(|j| residual_of(&rhs[j], &ax[j], 1.0) / bnorm[j])
        .fold(0.0, f64::max);
    if residual > params.tol {
        return Err(SolveError::NoConvergence {
            iterations: params.depth * samples,
            residual,
        });
    }
    Ok((
        x,
        LissaInfo {
            iters: params.depth,
            residual,
        },
    ))
}

/// Parameters of [`lanczos`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanczosParams {
    /// Eigenpairs wanted (the largest, algebraically). Capped at the dimension.
    pub rank: usize,
    /// Lanczos steps (at least `rank`; capped at the dimension).
    pub iters: usize,
    /// Each returned pair must have `||A u - theta u|| <= tol * |theta_max|`; `f64::INFINITY`
    /// accepts any (an estimate).
    pub tol: f64,
    /// Seed of the Gaussian start vector.
    pub seed: u64,
}

/// Top eigenpairs of a symmetric operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Eigenpairs {
    /// Ritz values, decreasing.
    pub values: Vec<f64>,
    /// Unit Ritz vectors, one per value.
    pub vectors: Vec<Vec<f64>>,
    /// Lanczos steps taken.
    pub iters: usize,
    /// Worst `||A u - theta u|| / |theta_max|` over the returned pairs.
    pub residual: f64,
}

/// The largest eigenpairs of a symmetric operator by Lanczos with full reorthogonalisation
/// (classical Gram-Schmidt applied twice): `beta_j q_{j+1} = A q_j - alpha_j q_j - beta_{j-1} q_{j-1}`,
/// then the tridiagonal `T = tridiag(beta, alpha, beta)` is diagonalised by [`sym_eigen`] and the
/// Ritz pairs are `(theta_i, Q y_i)` with residual `|beta_m y_{m,i}|`. For a symmetric operator
/// this is the Arnoldi iteration (Schioppa et al. 2022) with a tridiagonal Hessenberg matrix.
/// An exhausted Krylov space (`beta ~ 0`, e.g. after `dim` steps) makes the pairs exact.
///
/// # Errors
/// [`SolveError::NoConvergence`] when a returned pair's residual exceeds `tol`;
/// [`SolveError::InvariantSubspace`] when the Krylov space is exhausted with fewer than `rank`
/// dimensions (the start vector misses part of the spectrum).
pub fn lanczos(op: &dyn LinOp, params: LanczosParams) -> Result<Eigenpairs, SolveError> {
    let dim = op.dim();
    let rank = params.rank.min(dim).max(1);
    let iters = params.iters.max(rank).min(dim);
    let mut rng = Rng::derive(params.seed, "lanczos", 0);
    let mut q0: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
    let n0 = norm(&q0);
    q0.iter_mut().for_each(|x| *x /= n0);
    let mut q: Vec<Vec<f64>> = vec![q0];
    let mut alpha: Vec<f64> = Vec::new();
    let mut beta: Vec<f64> = Vec::new();
    let mut scale = 0.0f64;
    let mut exhausted = false;
    for j in 0..iters {
        let mut w = op.apply(&[q[j].as_slice()]).pop().unwrap();
        let a = dot(&q[j], &w);
        alpha.push(a);
        scale = scale.max(a.abs());
        for _ in 0..2 {
            for qi in &q {
                let c = dot(qi, &w);
                axpy(-c, qi, &mut w);
            }
        }
        let b = norm(&w);
        scale = scale.max(b);
        if j + 1 == iters {
            beta.push(b);
            break;
        }
        if b <= 1e-10 * scale {
            beta.push(0.0);
            exhausted = true;
            break;
        }
        beta.push(b);
        w.iter_mut().for_each(|x| *x /= b);
        q.push(w);
    }
    let m = alpha.len();
    if exhausted && m < rank {
        return Err(SolveError::InvariantSubspace {
            dimension: m,
            wanted: rank,
        });
    }
    let mut t = vec![0.0; m * m];
    for i in 0..m {
        t[i * m + i] = alpha[i];
        if i + 1 < m {
            t[i * m + i + 1] = beta[i];
            t[(i + 1) * m + i] = beta[i];
        }
    }
    let eig = sym_eigen(&t, m).map_err(|e| SolveError::NoConvergence {
        iterations: e.sweeps,
        residual: e.off_diagonal,
    })?;
    let last_beta = if exhausted || m == dim {
        0.0
    } else {
        beta[m - 1]
    };
    let theta_max = eig.values.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    let mut residual = 0.0f64;
    let mut values = Vec::with_capacity(rank);
    let mut vectors = Vec::with_capacity(rank);
    for i in 0..rank.min(m) {
        let y = &eig.vectors[i];
        residual = residual.max((last_beta * y[m - 1]).abs() / theta_max.max(f64::MIN_POSITIVE));
        let mut u = vec![0.0; dim];
        for (yj, qj) in y.iter().zip(&q) {
            axpy(*yj, qj, &mut u);
        }
        values.push(eig.values[i]);
        vectors.push(u);
    }
    if residual > params.tol {
        return Err(SolveError::NoConvergence {
            iterations: m,
            residual,
        });
    }
    Ok(Eigenpairs {
        values,
        vectors,
        iters: m,
        residual,
    })
}

/// Converts a solver failure into the method's error.
pub fn solve_error(method: &str, solver: &str, e: SolveError) -> MethodError {
    match e {
        SolveError::NoConvergence {
            iterations,
            residual,
        } => MethodError::NoConvergence {
            method: method.into(),
            solver: solver.into(),
            iterations,
            residual,
        },
        other => MethodError::Unsupported {
            method: method.into(),
            reason: format!("{solver}: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::{cholesky, cholesky_solve, matvec};

    /// A dense symmetric matrix as an operator.
    struct Dense {
        a: Vec<f64>,
        n: usize,
    }

    impl LinOp for Dense {
        fn dim(&self) -> usize {
            self.n
        }
        fn apply(&self, vs: &[&[f64]]) -> Vec<Vec<f64>> {
            vs.iter().map(|v| matvec(&self.a, self.n, v)).collect()
        }
    }

    /// `B B^T / n + shift I`: SPD with eigenvalues in about `[shift, 4 + shift]`.
    fn spd(n: usize, shift: f64, seed: u64) -> Dense {
        let mut r = Rng::new(seed);
        let b: Vec<f64> = (0..n * n).map(|_| r.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = dot(&b[i * n..(i + 1) * n], &b[j * n..(j + 1) * n]) / n as f64;
            }
            a[i * n + i] += shift;
        }
        Dense { a, n }
    }

    fn rhs(n: usize, k: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut r = Rng::new(seed);
        (0..k)
            .map(|_| (0..n).map(|_| r.normal()).collect())
            .collect()
    }

    fn rel_residual(op: &Dense, x: &[f64], b: &[f64]) -> f64 {
        residual_of(b, &matvec(&op.a, op.n, x), 1.0) / norm(b)
    }

    #[test]
    fn cg_solves_block_systems_to_tolerance() {
        for (n, seed) in [(1, 1), (10, 2), (60, 3)] {
            let op = spd(n, 0.1, seed);
            let mut b = rhs(n, 3, seed + 10);
            b.push(vec![0.0; n]); // a zero column is solved at once
            let (x, info) = cg(
                &op,
                &b,
                CgParams {
                    tol: 1e-10,
                    max_iters: 500,
                    truncate: false,
                },
            )
            .unwrap();
            for (xj, bj) in x.iter().zip(&b).take(3) {
                assert!(rel_residual(&op, xj, bj) <= 1e-9, "n = {n}");
            }
            assert!(x[3].iter().all(|&v| v == 0.0));
            assert!(info.iters <= n.max(1) + 5 || info.iters <= 500);
            // Same answer as a dense Cholesky solve.
            let l = cholesky(&op.a, n).unwrap();
            let mut want = b[0].clone();
            cholesky_solve(&l, n, &mut want);
            let diff: f64 = x[0]
                .iter()
                .zip(&want)
                .map(|(p, q)| (p - q).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(diff <= 1e-8 * norm(&want));
        }
    }

    #[test]
    fn cg_columns_do_not_depend_on_their_neighbours() {
        let op = spd(40, 0.05, 7);
        let b = rhs(40, 4, 8);
        let (all, _) = cg(&op, &b, CgParams::default()).unwrap();
        let (one, _) = cg(&op, &b[2..3], CgParams::default()).unwrap();
        assert_eq!(all[2], one[0]);
    }

    #[test]
    fn cg_reports_budget_and_indefiniteness() {
        let op = spd(50, 1e-4, 9);
        let e = cg(
            &op,
            &rhs(50, 1, 1),
            CgParams {
                tol: 1e-14,
                max_iters: 3,
                truncate: false,
            },
        )
        .unwrap_err();
        assert!(
            matches!(e, SolveError::NoConvergence { iterations: 3, .. }),
            "{e}"
        );
        // Truncated, the same budget returns the third iterate: the residual the error named,
        // and exactly the first three steps of a longer run.
        let SolveError::NoConvergence { residual, .. } = e else {
            unreachable!()
        };
        let truncated = CgParams {
            tol: 1e-14,
            max_iters: 3,
            truncate: true,
        };
        let (x3, info) = cg(&op, &rhs(50, 1, 1), truncated).unwrap();
        assert_eq!((info.iters, info.residual), (3, residual));
        let b = rhs(50, 1, 1);
        assert!(rel_residual(&op, &x3[0], &b[0]) > 1e-6);
        let (x4, _) = cg(
            &op,
            &b,
            CgParams {
                max_iters: 4,
                ..truncated
            },
        )
        .unwrap();
        assert_ne!(x3, x4);
        let neg = Dense {
            a: vec![1.0, 0.0, 0.0, -1.0],
            n: 2,
        };
        let e = cg(&neg, &[vec![1.0, 1.0]], CgParams::default()).unwrap_err();
        assert!(matches!(e, SolveError::NegativeCurvature { .. }), "{e}");
        assert!(e.to_string().contains("damping"));
    }

    #[test]
    fn lissa_converges_with_a_safe_scale_and_reports_divergence() {
        let op = spd(20, 0.5, 11);
        let top = lanczos(
            &op,
            LanczosParams {
                rank: 1,
                iters: 20,
                tol: 1e-8,
                seed: 0,
            },
        )
        .unwrap();
        let b = rhs(20, 2, 12);
        let params = LissaParams {
            depth: 5000,
            scale: 1.1 * top.values[0],
            tol: 1e-10,
        };
        let (x, info) = lissa(&op, &b, params).unwrap();
        for (xj, bj) in x.iter().zip(&b) {
            assert!(rel_residual(&op, xj, bj) <= 1e-10 * 1.0001, "{info:?}");
        }
        let bad = LissaParams {
            scale: 0.3 * top.values[0],
            ..params
        };
        assert!(matches!(
            lissa(&op, &b, bad).unwrap_err(),
            SolveError::Diverged { .. }
        ));
        let short = LissaParams { depth: 3, ..params };
        assert!(matches!(
            lissa(&op, &b, short).unwrap_err(),
            SolveError::NoConvergence { iterations: 3, .. }
        ));
    }

    #[test]
    fn sampled_lissa_with_the_exact_operator_is_lissa() {
        let op = spd(15, 0.5, 13);
        let b = rhs(15, 2, 14);
        let params = LissaParams {
            depth: 3000,
            scale: 6.0,
            tol: 1e-8,
        };
        let exact = |_: usize, _: usize, vs: &[&[f64]]| op.apply(vs);
        let (x, info) = lissa_sampled(&op, &exact, &b, params, 2).unwrap();
        assert!(info.residual <= 1e-8);
        for (xj, bj) in x.iter().zip(&b) {
            assert!(rel_residual(&op, xj, bj) <= 1e-8);
        }
    }

    #[test]
    fn lanczos_finds_the_top_eigenpairs() {
        let n = 40;
        let op = spd(n, 0.0, 15);
        let want = sym_eigen(&op.a, n).unwrap();
        // Full Krylov space: exact.
        let full = lanczos(
            &op,
            LanczosParams {
                rank: n,
                iters: n,
                tol: 1e-8,
                seed: 1,
            },
        )
        .unwrap();
        for i in 0..n {
            assert!(
                (full.values[i] - want.values[i]).abs() <= 1e-9 * want.values[0],
                "{i}"
            );
        }
        // Fewer steps: the top pairs converge first.
        let top = lanczos(
            &op,
            LanczosParams {
                rank: 3,
                iters: 30,
                tol: 1e-6,
                seed: 1,
            },
        )
        .unwrap();
        for (i, u) in top.vectors.iter().enumerate() {
            assert!((top.values[i] - want.values[i]).abs() <= 1e-8 * want.values[0]);
            let au = matvec(&op.a, n, u);
            assert!(residual_of(&au, u, top.values[i]) <= 1e-6 * want.values[0]);
            assert!((norm(u) - 1.0).abs() < 1e-12);
        }
        assert!(matches!(
            lanczos(
                &op,
                LanczosParams {
                    rank: 20,
                    iters: 21,
                    tol: 1e-12,
                    seed: 1
                }
            )
            .unwrap_err(),
            SolveError::NoConvergence { .. }
        ));
        // A diagonal matrix seen from a start vector inside a 1-d eigenspace.
        let diag = Dense {
            a: vec![2.0, 0.0, 0.0, 2.0],
            n: 2,
        };
        let e = lanczos(
            &diag,
            LanczosParams {
                rank: 2,
                iters: 2,
                tol: 1e-8,
                seed: 3,
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                SolveError::InvariantSubspace {
                    dimension: 1,
                    wanted: 2
                }
            ),
            "{e:?}"
        );
    }
}
