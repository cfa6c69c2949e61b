//! Generalised linear models in closed form, for the leave-one-out estimators of MATH.md E3
//! (`loo-ridge`, `loo-newton`; not a method itself).
//!
//! An affine model (`linear` or binary `logistic`) has parameters `theta = [w; b]` in the flat order
//! of its layout (`linear.weight` `[1, d]`, then `linear.bias` `[1]`), so its logit is
//! `s_i = x~_i^T theta` with `x~_i = [x_i; 1]`. With per-example loss `l(s_i, y_i)` the weighted
//! objective of a run (MATH.md E1) is
//! `L(theta, w) = (1/n) sum_i w_i l(s_i, y_i) + (lambda/2) ||theta||^2` (the bias is penalised too,
//! as the trainer's weight decay applies to every parameter), with
//! `grad L = (1/n) sum_i w_i l'_i x~_i + lambda theta` and
//! `H = (1/n) sum_i w_i l''_i x~_i x~_i^T + lambda I`.
//!
//! ## Leave-one-out by one Newton step
//! Dropping `j` (weight 0, normalisation still `1/n` as in E1) removes `(1/n) l_j`. One Newton step
//! on the leave-one-out objective from its neighbour's optimum `theta`, with Sherman-Morrison for the
//! rank-one downdate `H - (1/n) l''_j x~_j x~_j^T`, gives
//! `theta_{-j} ~ theta + H^{-1} x~_j l'_j / (n - l''_j x~_j^T H^{-1} x~_j)`
//! (MATH.md E3's formula with `H_sum = n H`). For the squared loss the objective is quadratic and
//! the step is exact.

use data::{Dataset, Features, Labels};
use engine::Tensor;
use nn::{Model, ModelConfig, Optimizer, Task};
use rayon::prelude::*;

use crate::error::{MethodError, Result};
use crate::linalg::{cholesky, cholesky_inverse, cholesky_solve, dot, norm};
use run::{Run, Targets};

/// The per-example loss of a GLM as a function of the logit `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlmLoss {
    /// `(s - y)^2` (the trainer's `mse` with one output).
    Squared,
    /// `softplus((1 - 2y) s)`, `y in {0, 1}` (binary logistic loss).
    Logistic,
}

impl GlmLoss {
    /// `(l, l', l'')` at logit `s` and target `y`.
    pub fn derivs(self, s: f64, y: f64) -> (f64, f64, f64) {
        match self {
            GlmLoss::Squared => ((s - y) * (s - y), 2.0 * (s - y), 2.0),
            GlmLoss::Logistic => {
                let z = (1.0 - 2.0 * y) * s;
                // softplus(z), stable for both signs
                let l = z.max(0.0) + (-z.abs()).exp().ln_1p();
                let p = 1.0 / (1.0 + (-s).exp());
                (l, p - y, p * (1.0 - p))
            }
        }
    }
}

/// A GLM's data in closed form: `x~` rows with a trailing 1, targets, loss and L2 coefficient.
#[derive(Debug, Clone)]
pub struct Glm {
    /// `n x q` row-major, `q = d + 1`, last column 1.
    pub x: Vec<f64>,
    /// Targets (real values, or classes 0/1).
    pub y: Vec<f64>,
    /// The loss.
    pub loss: GlmLoss,
    /// `lambda`.
    pub l2: f64,
    /// Examples.
    pub n: usize,
    /// Parameters `d + 1`.
    pub q: usize,
}

/// What [`Glm::solve`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewtonInfo {
    /// Newton iterations.
    pub iters: usize,
    /// Final `||grad L||`.
    pub grad_norm: f64,
}

impl Glm {
    fn from_dataset(ds: &Dataset, loss: GlmLoss, l2: f64) -> Glm {
        let Features::Dense { values, .. } = &ds.features else {
            panic!("a GLM needs dense features (checked by the model)");
        };
        let n = ds.len();
        let d = ds.example_len();
        let q = d + 1;
        let mut x = Vec::with_capacity(n * q);
        for i in 0..n {
            x.extend(values[i * d..(i + 1) * d].iter().map(|&v| v as f64));
            x.push(1.0);
        }
        let y = match &ds.labels {
            Labels::Real(y) => y.iter().map(|&v| v as f64).collect(),
            Labels::Classes { y, .. } => y.iter().map(|&v| v as f64).collect(),
            Labels::None => panic!("a GLM needs labels (checked by the model)"),
        };
        Glm {
            x,
            y,
            loss,
            l2,
            n,
            q,
        }
    }

    /// Ridge least squares on `ds` (real labels).
    pub fn least_squares(ds: &Dataset, l2: f64) -> Glm {
        Glm::from_dataset(ds, GlmLoss::Squared, l2)
    }

    /// L2 binary logistic regression on `ds` (classes 0/1).
    pub fn binary_logistic(ds: &Dataset, l2: f64) -> Glm {
        Glm::from_dataset(ds, GlmLoss::Logistic, l2)
    }

    /// The GLM of a run whose model is `linear` (squared loss) or binary `logistic`.
    ///
    /// # Errors
    /// [`MethodError::Unsupported`] for any other model, naming `instead`.
    pub fn of_run(run: &Run, method: &str, instead: &str) -> Result<Glm> {
        let loss = match (&run.config.model, run.model.task()) {
            (ModelConfig::Linear {}, Task::Regression) => GlmLoss::Squared,
            (ModelConfig::Logistic {}, Task::Binary) => GlmLoss::Logistic,
            _ => {
                return Err(MethodError::Unsupported {
                    method: method.into(),
                    reason: format!(
                        "it needs a {} model, this run has {}; use {instead}",
                        match method {
                            "loo-ridge" => "model.kind = \"linear\" (least squares)",
                            _ => "binary model.kind = \"logistic\"",
                        },
                        model_name(&run.config.model, &run.model)
                    ),
                })
            }
        };
        let specs = run.model.layout().specs();
        assert!(
            specs.len() == 2 && specs[0].shape[0] == 1 && specs[1].shape == [1],
            "an affine model's layout is linear.weight [1, d], linear.bias [1]"
        );
        Ok(Glm::from_dataset(
            &run.splits.train,
            loss,
            run.config.optim.objective_l2(),
        ))
    }

    /// Row `i` of `x~`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.q..(i + 1) * self.q]
    }

    /// `(1/n) sum_i w_i l_i + (lambda/2) ||theta||^2`.
    pub fn objective(&self, theta: &[f64], w: &[f64]) -> f64 {
        let s: f64 = (0..self.n)
            .map(|i| w[i] * self.loss.derivs(dot(self.row(i), theta), self.y[i]).0)
            .sum();
        s / self.n as f64 + 0.5 * self.l2 * dot(theta, theta)
    }

    /// `(1/n) sum_i w_i l'_i x~_i + lambda theta`.
    pub fn gradient(&self, theta: &[f64], w: &[f64]) -> Vec<f64> {
        let mut g: Vec<f64> = theta.iter().map(|t| self.l2 * t).collect();
        let inv_n = 1.0 / self.n as f64;
        for (i, &wi) in w.iter().enumerate().take(self.n) {
            let d1 = self.loss.derivs(dot(self.row(i), theta), self.y[i]).1;
            crate::linalg::axpy(inv_n * wi * d1, self.row(i), &mut g);
        }
        g
    }

    /// `H = (1/n) sum_i w_i l''_i x~_i x~_i^T + lambda I` (row-major `q x q`), as one matrix
    /// product `X~^T (D X~)` on the engine's kernel.
    pub fn hessian(&self, theta: &[f64], w: &[f64]) -> Vec<f64> {
        let (n, q) = (self.n, self.q);
        let inv_n = 1.0 / n as f64;
        let mut dx = Vec::with_capacity(n * q);
        for (i, &wi) in w.iter().enumerate().take(n) {
            let d2 = self.loss.derivs(dot(self.row(i), theta), self.y[i]).2;
            dx.extend(self.row(i).iter().map(|&v| inv_n * wi * d2 * v));
        }
        let x = Tensor::from_vec(self.x.clone(), &[n, q]);
        let dx = Tensor::from_vec(dx, &[n, q]);
        let mut h = engine::kernels::matmul(&x, &dx, true, false).into_vec();
        crate::linalg::symmetrize(&mut h, q);
        for i in 0..q {
            h[i * q + i] += self.l2;
        }
        h
    }

    /// Minimises the weighted objective by Newton's method from `theta0` with a backtracking
    /// (Armijo) line search, until `||grad L|| <= tol`. The squared loss converges in one step
    /// (the closed-form ridge solution `H theta = (2/n) X~^T W y`).
    ///
    /// # Errors
    /// [`MethodError::Unsupported`] when `H` is not positive definite (no L2 and collinear
    /// features); [`MethodError::NoConvergence`] after `max_iters` iterations.
    pub fn solve(
        &self,
        theta0: &[f64],
        w: &[f64],
        tol: f64,
        max_iters: usize,
    ) -> Result<(Vec<f64>, NewtonInfo)> {
        let mut theta = theta0.to_vec();
        for it in 0..=max_iters {
            let g = self.gradient(&theta, w);
            let gn = norm(&g);
            if gn <= tol {
                return Ok((
                    theta,
                    NewtonInfo {
                        iters: it,
                        grad_norm: gn,
                    },
                ));
            }
            if it == max_iters {
                return Err(MethodError::NoConvergence {
                    method: "glm".into(),
                    solver: "Newton's method".into(),
                    iterations: it,
                    residual: gn,
                });
            }
            let l = self.factor(&self.hessian(&theta, w))?;
            let mut step = g.clone();
            cholesky_solve(&l, self.q, &mut step);
            let decrement = dot(&g, &step);
            let mut t = 1.0;
            // Backtrack only while the decrease is far above rounding; near the optimum take the
            // full Newton step (quadratic convergence).
            if decrement > 1e-14 {
                let f0 = self.objective(&theta, w);
                let trial = |t: f64| -> Vec<f64> {
                    theta.iter().zip(&step).map(|(a, s)| a - t * s).collect()
                };
                while t > 1e-12 && self.objective(&trial(t), w) > f0 - 1e-4 * t * decrement {
                    t *= 0.5;
                }
            }
            for (a, s) in theta.iter_mut().zip(&step) {
                *a -= t * s;
            }
        }
        unreachable!()
    }

    /// The Cholesky factor of `H`.
    ///
    /// # Errors
    /// [`MethodError::Unsupported`] when `H` is not positive definite.
    pub fn factor(&self, h: &[f64]) -> Result<Vec<f64>> {
        cholesky(h, self.q).map_err(|e| MethodError::Unsupported {
            method: "glm".into(),
            reason: format!(
                "the objective's Hessian is singular ({e}); train with optim.weight_decay > 0"
            ),
        })
    }

    /// `theta_{-j} - theta` for every training example by one Newton step with Sherman-Morrison
    /// (module docs), computed for rows `rows`: `c_j H^{-1} x~_j` with
    /// `c_j = l'_j / (n - l''_j x~_j^T H^{-1} x~_j)`.
    ///
    /// # Errors
    /// [`MethodError::Unsupported`] when `H` is singular or an example has leverage
    /// `l''_j x~_j^T H^{-1} x~_j >= n` (removing it makes the problem singular).
    pub fn loo_steps(
        &self,
        theta: &[f64],
        hinv: &[f64],
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<Vec<f64>>> {
        let q = self.q;
        let m = rows.len();
        let xs = Tensor::from_vec(self.x[rows.start * q..rows.end * q].to_vec(), &[m, q]);
        let hinv_t = Tensor::from_vec(hinv.to_vec(), &[q, q]);
        // Rows of X~ H^{-1} = (H^{-1} x~_j)^T (H^{-1} is symmetric).
        let u = engine::kernels::matmul(&xs, &hinv_t, false, false).into_vec();
        rows.clone()
            .zip(u.chunks(q))
            .map(|(j, uj)| {
                let (_, d1, d2) = self.loss.derivs(dot(self.row(j), theta), self.y[j]);
                let lev = d2 * dot(self.row(j), uj);
                let denom = self.n as f64 - lev;
                if denom.is_nan() || denom <= 0.0 {
                    return Err(MethodError::Unsupported {
                        method: "glm".into(),
                        reason: format!(
                            "training example {j} has leverage {lev:e} >= n = {}: without it the problem is singular; train with optim.weight_decay > 0",
                            self.n
                        ),
                    });
                }
                let c = d1 / denom;
                Ok(uj.iter().map(|v| c * v).collect())
            })
            .collect()
    }

    /// `H^{-1}` at `theta` (all weights 1).
    ///
    /// # Errors
    /// As [`Glm::factor`].
    pub fn hessian_inverse(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let l = self.factor(&self.hessian(theta, &vec![1.0; self.n]))?;
        Ok(cholesky_inverse(&l, self.q))
    }
}

/// The same error attributed to `method` (the GLM's own errors name "glm").
pub fn rename(e: MethodError, method: &str) -> MethodError {
    match e {
        MethodError::Unsupported { reason, .. } => MethodError::Unsupported {
            method: method.into(),
            reason,
        },
        MethodError::NoConvergence {
            solver,
            iterations,
            residual,
            ..
        } => MethodError::NoConvergence {
            method: method.into(),
            solver,
            iterations,
            residual,
        },
        e => e,
    }
}

/// A model's kind for messages.
pub fn model_name(cfg: &ModelConfig, model: &Model) -> String {
    let kind = cfg.kind();
    match model.task() {
        Task::Classes(k) => format!("model.kind = \"{kind}\" with {k} classes"),
        _ => format!("model.kind = \"{kind}\""),
    }
}

/// Leave-one-out scores `tau[t][j] = f_t(theta) - f_t(theta + delta_j)` for every target and
/// training example, with `delta_j` from [`Glm::loo_steps`]; the outputs are evaluated exactly by
/// the model at the shifted parameters (chunks of `chunk` rows, rows in parallel, ordered).
///
/// # Errors
/// As [`Glm::loo_steps`], with `method` named.
pub fn loo_scores(
    glm: &Glm,
    run: &Run,
    targets: &Targets,
    theta: &[f64],
    chunk: usize,
    method: &str,
) -> Result<Vec<Vec<f64>>> {
    let rename = |e| rename(e, method);
    let hinv = glm.hessian_inverse(theta).map_err(rename)?;
    let batch = run.target_batch::<f64>(targets);
    let base = nn::per_example::outputs(&run.model, theta, &batch, targets.output);
    let mut tau = vec![vec![0.0; glm.n]; targets.indices.len()];
    for start in (0..glm.n).step_by(chunk.max(1)) {
        let rows = start..(start + chunk.max(1)).min(glm.n);
        let steps = glm.loo_steps(theta, &hinv, rows.clone()).map_err(rename)?;
        let outs: Vec<Vec<f64>> = steps
            .par_iter()
            .map(|d| {
                let p: Vec<f64> = theta.iter().zip(d).map(|(a, b)| a + b).collect();
                nn::per_example::outputs(&run.model, &p, &batch, targets.output)
            })
            .collect();
        for (j, o) in rows.zip(outs) {
            for (t, row) in tau.iter_mut().enumerate() {
                row[j] = base[t] - o[t];
            }
        }
    }
    Ok(tau)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use engine::Graph;
    use nn::Output;

    #[test]
    fn logits_loss_and_gradient_match_the_model() {
        let run = logistic_at_optimum(1e-2);
        let glm = Glm::of_run(&run, "loo-newton", "if-exact").unwrap();
        let idx: Vec<usize> = (0..glm.n).collect();
        let batch = nn::Batch::<f64>::from_dataset(&run.splits.train, &idx);
        let losses = nn::per_example::outputs(&run.model, &run.params, &batch, Output::Loss);
        for i in [0, 7, 200] {
            let (l, _, _) = glm.loss.derivs(dot(glm.row(i), &run.params), glm.y[i]);
            assert!((l - losses[i]).abs() < 1e-12);
        }
        // The model's objective gradient (mean loss + weight decay) vs the GLM's.
        let g = Graph::<f64>::new();
        let leaves = run.model.layout().leaves(&g, &run.params, true);
        let ls = run.model.losses(&g, &leaves, &batch);
        let obj = g.weighted_mean(ls, &vec![1.0; glm.n]);
        let grads = g.backward(obj, None);
        let mut want = run.model.layout().flat_grad(&grads, &leaves);
        crate::linalg::axpy(glm.l2, &run.params, &mut want);
        let got = glm.gradient(&run.params, &vec![1.0; glm.n]);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-13);
        }
        assert!(norm(&got) <= 1e-12, "at the optimum");
    }

    #[test]
    fn ridge_is_solved_in_one_newton_step() {
        let run = ridge_run(1e-2);
        let glm = Glm::of_run(&run, "loo-ridge", "if-exact").unwrap();
        let w = vec![1.0; glm.n];
        let (theta, info) = glm.solve(&vec![0.0; glm.q], &w, 1e-11, 5).unwrap();
        assert_eq!(info.iters, 1);
        // Normal equations: ((2/n) X^T X + lambda I) theta = (2/n) X^T y.
        let h = glm.hessian(&theta, &w);
        let ht = crate::linalg::matvec(&h, glm.q, &theta);
        for (c, htc) in ht.iter().enumerate() {
            let rhs: f64 = (0..glm.n)
                .map(|i| 2.0 * glm.row(i)[c] * glm.y[i])
                .sum::<f64>()
                / glm.n as f64;
            assert!((htc - rhs).abs() < 1e-11);
        }
    }

    #[test]
    fn other_models_are_refused_with_the_alternative() {
        let run = tiny_mlp(0.0);
        let e = Glm::of_run(&run, "loo-newton", "if-exact")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("loo-newton") && e.contains("mlp") && e.contains("if-exact"),
            "{e}"
        );
    }
}
