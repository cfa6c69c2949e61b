//! `loo-ridge`: exact leave-one-out for ridge least squares (MATH.md E3, Sherman-Morrison).
//!
//! For a `linear` run the objective (MATH.md E1, [`super::glm`]) is
//! `L(theta, w) = (1/n) sum_i w_i (x~_i^T theta - y_i)^2 + (lambda/2) ||theta||^2`
//! with `theta = [w; b]`, the bias penalised like every other parameter (the trainer's weight decay
//! applies to all of them), `lambda` = `optim.weight_decay`. The method ignores the run's trained
//! parameters and solves the problem in closed form at its exact optimum,
//! `((2/n) X~^T X~ + lambda I) theta* = (2/n) X~^T y`. Dropping example `j` (weight 0) moves the
//! optimum by exactly
//! `theta*_{-j} - theta* = H^{-1} x~_j l'_j / (n - l''_j x~_j^T H^{-1} x~_j)`, with `l'_j = 2 r_j`,
//! `r_j = x~_j^T theta* - y_j`, `l'' = 2`, `H = (2/n) X~^T X~ + lambda I` (the objective is quadratic,
//! so the Newton step with the Sherman-Morrison downdate is exact).
//!
//! Scores: `tau_j = -(f(theta*_{-j}) - f(theta*))`, the exact LOO change sign-flipped so that `-tau_j`
//! is the predicted (here: exact) change of the target output when `j` is dropped, matching
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`. `f` is evaluated by the model at both parameter vectors.
//!
//! Options: `chunk` (default 512): training rows per block of the `X~ H^{-1}` product.

use super::glm::{loo_scores, Glm};
use crate::error::{MethodError, Result};
use crate::method::{Method, Registration};
use crate::options::Options;
use run::{Run, Targets};

/// The registry entry.
pub const REGISTRATION: Registration = Registration {
    name: "loo-ridge",
    summary: "exact leave-one-out of ridge least squares by Sherman-Morrison (linear models; E3)",
    build,
};

/// Exact leave-one-out for least squares with ridge penalty (module docs).
#[derive(Debug, Clone)]
pub struct LooRidge {
    chunk: usize,
}

/// Reads the options: `chunk` (512).
///
/// # Errors
/// A bad option value.
pub fn build(opts: &mut Options) -> Result<Box<dyn Method>> {
    Ok(Box::new(LooRidge {
        chunk: crate::support::chunks::chunk_option(opts)?,
    }))
}

impl Method for LooRidge {
    fn name(&self) -> &'static str {
        "loo-ridge"
    }

    /// # Errors
    /// [`crate::MethodError::Unsupported`] for a model other than `linear` (use `if-exact` or
    /// `if-cg`), or a singular problem (no weight decay and collinear features).
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        if !matches!(run.config.model, nn::ModelConfig::Linear {}) {
            return Err(MethodError::Unsupported {
                method: self.name().into(),
                reason: format!(
                    "it needs a model.kind = \"linear\" run (least squares), this run has {}; use if-exact or if-cg (loo-newton for binary logistic regression)",
                    super::glm::model_name(&run.config.model, &run.model)
                ),
            });
        }
        let glm = Glm::of_run(run, self.name(), "if-exact or if-cg")?;
        let theta = closed_form(&glm).map_err(|e| super::glm::rename(e, self.name()))?;
        loo_scores(&glm, run, targets, &theta, self.chunk, self.name())
    }
}

/// `theta* = H^{-1} (2/n) X~^T y`: the normal equations solved by Cholesky.
///
/// # Errors
/// A singular `H` (no weight decay and collinear features).
pub fn closed_form(glm: &Glm) -> Result<Vec<f64>> {
    let w = vec![1.0; glm.n];
    let zero = vec![0.0; glm.q];
    let l = glm.factor(&glm.hessian(&zero, &w))?;
    // -grad L(0) = (2/n) X~^T y
    let mut theta: Vec<f64> = glm.gradient(&zero, &w).iter().map(|g| -g).collect();
    crate::linalg::cholesky_solve(&l, glm.q, &mut theta);
    Ok(theta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use nn::Output;

    /// Acceptance test: Sherman-Morrison LOO equals re-solving the ridge problem without each
    /// training example (exact closed form, weight 0), for the test loss and margin.
    #[test]
    fn ridge_closed_form_loo_equals_brute_force() {
        let run = ridge_run(1e-2);
        let m = build(&mut Options::empty("loo-ridge")).unwrap();
        let glm = Glm::of_run(&run, "loo-ridge", "").unwrap();
        let mut worst = 0.0f64;
        for output in [Output::Loss, Output::Margin] {
            let targets = Targets::test(vec![0, 5, 17, 42], output);
            let tau = m.attribute(&run, &targets).unwrap();
            let theta = closed_form(&glm).unwrap();
            let base = run.target_outputs(&theta, &targets);
            for j in 0..run.n_train() {
                let mut w = vec![1.0; glm.n];
                w[j] = 0.0;
                let l = glm.factor(&glm.hessian(&theta, &w)).unwrap();
                let zero = vec![0.0; glm.q];
                let mut tj: Vec<f64> = glm.gradient(&zero, &w).iter().map(|g| -g).collect();
                crate::linalg::cholesky_solve(&l, glm.q, &mut tj);
                let out = run.target_outputs(&tj, &targets);
                for t in 0..targets.indices.len() {
                    let truth = base[t] - out[t];
                    let err = (tau[t][j] - truth).abs();
                    worst = worst.max(err);
                    assert!(
                        err <= 1e-8,
                        "target {t}, example {j}: {} vs {truth}",
                        tau[t][j]
                    );
                }
            }
        }
        eprintln!("ridge_closed_form_loo_equals_brute_force: max |tau - brute force| = {worst:e}");
    }

    #[test]
    fn ridge_refuses_other_models_naming_the_alternative() {
        let run = logistic_at_optimum(1e-2);
        let m = build(&mut Options::empty("loo-ridge")).unwrap();
        let e = m
            .attribute(&run, &Targets::test(vec![0], Output::Loss))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("loo-ridge") && e.contains("linear") && e.contains("if-exact"),
            "{e}"
        );
    }
}
