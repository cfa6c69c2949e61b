//! `loo-newton`: approximate leave-one-out for L2-regularised binary logistic regression by one
//! Newton step (MATH.md E3).
//!
//! The run's objective (MATH.md E1, [`super::glm`]) is
//! `L(theta, w) = (1/n) sum_i w_i l(s_i, y_i) + (lambda/2) ||theta||^2`, `s_i = x~_i^T theta`,
//! `l(s, y) = softplus((1 - 2y) s)`, `l' = sigma(s) - y`, `l'' = sigma(s)(1 - sigma(s))`, `lambda` =
//! `optim.weight_decay` (biases penalised too). Its Hessian is
//! `H = (1/n) sum_i l''_i x~_i x~_i^T + lambda I`. Dropping `j` removes `(1/n) l_j`; one Newton step
//! of the leave-one-out objective from the optimum `theta`, with the Sherman-Morrison downdate of
//! its Hessian, is
//! `theta_{-j} ~ theta + H^{-1} x~_j l'_j / (n - l''_j x~_j^T H^{-1} x~_j)`
//! (MATH.md E3's `theta + H_sum^{-1} L'_j x_j / (1 - L''_j x_j^T H_sum^{-1} x_j)` with the
//! un-normalised `H_sum = n H`).
//!
//! The step is only accurate from the exact optimum, and an SGD run is only approximately optimal:
//! with `refit = true` (default) the method first solves the regularised problem by Newton's method
//! from the run's parameters to `||grad L|| <= 1e-10`, then steps from there.
//!
//! Scores: `tau_j = f(theta) - f(theta_{-j})` (the predicted LOO change, sign-flipped, so that
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`), with `f` evaluated by the model at both points.
//!
//! Options: `refit` (true), `chunk` (512).

use super::glm::{loo_scores, Glm};
use crate::error::{MethodError, Result};
use crate::method::{Method, Registration};
use crate::options::{any, Options};
use run::{Run, Targets};

/// The registry entry.
pub const REGISTRATION: Registration = Registration {
    name: "loo-newton",
    summary: "one-Newton-step leave-one-out of L2 binary logistic regression (E3)",
    build,
};

/// Gradient norm at which the refit stops.
pub const REFIT_TOL: f64 = 1e-10;

/// Newton iterations allowed for the refit.
pub const REFIT_ITERS: usize = 100;

/// One-Newton-step leave-one-out (module docs).
#[derive(Debug, Clone)]
pub struct LooNewton {
    refit: bool,
    chunk: usize,
}

/// Reads the options: `refit` (true: solve to the optimum first), `chunk` (512).
///
/// # Errors
/// A bad option value.
pub fn build(opts: &mut Options) -> Result<Box<dyn Method>> {
    Ok(Box::new(LooNewton {
        refit: opts.get("refit", true, any)?,
        chunk: crate::support::chunks::chunk_option(opts)?,
    }))
}

impl Method for LooNewton {
    fn name(&self) -> &'static str {
        "loo-newton"
    }

    /// # Errors
    /// [`MethodError::Unsupported`] for a model other than binary `logistic` (use `if-exact`; for
    /// `linear` use `loo-ridge`) or a singular Hessian; [`MethodError::NoConvergence`] when the
    /// refit misses its tolerance.
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        if matches!(run.config.model, nn::ModelConfig::Linear {}) {
            return Err(MethodError::Unsupported {
                method: self.name().into(),
                reason: "least squares has an exact leave-one-out; use loo-ridge".into(),
            });
        }
        let glm = Glm::of_run(run, self.name(), "if-exact or if-cg")?;
        if glm.l2 == 0.0 && separates(&glm, &run.params) {
            return Err(ill_posed(self.name(), "the run's parameters classify every training example correctly: the training set is linearly separable"));
        }
        let theta = if self.refit {
            glm.solve(&run.params, &vec![1.0; glm.n], REFIT_TOL, REFIT_ITERS)
                .map_err(|e| match glm.l2 {
                    0.0 => ill_posed(
                        self.name(),
                        &format!("the refit to the optimum failed ({e})"),
                    ),
                    _ => super::glm::rename(e, self.name()),
                })?
                .0
        } else {
            run.params.clone()
        };
        if glm.l2 == 0.0 && separates(&glm, &theta) {
            return Err(ill_posed(
                self.name(),
                "the optimum separates the training set",
            ));
        }
        let cond = condition_bound(&glm, &theta)?;
        if cond > MAX_CONDITION {
            return Err(ill_posed(
                self.name(),
                &format!("the Hessian at the optimum has condition number at least {cond:.1e}, past the {MAX_CONDITION:.0e} that f64 solves"),
            ));
        }
        loo_scores(&glm, run, targets, &theta, self.chunk, self.name())
    }
}

/// Largest Hessian condition number accepted: past it, `H^{-1}` in f64 keeps fewer than about 4
/// significant digits (machine epsilon 2.2e-16 times the condition number).
pub const MAX_CONDITION: f64 = 1e12;

/// Whether `theta` classifies every training example strictly correctly: then, without L2, the
/// logistic objective has no minimiser (it decreases along `theta` forever, MATH.md E3 assumes a
/// finite optimum) and the Newton step's scores blow up.
fn separates(glm: &Glm, theta: &[f64]) -> bool {
    (0..glm.n).all(|i| {
        let s: f64 = glm.row(i).iter().zip(theta).map(|(a, b)| a * b).sum();
        (2.0 * glm.y[i] - 1.0) * s > 0.0
    })
}

/// A lower bound on the condition number of `H` at `theta`: `(max_i L_ii / min_i L_ii)^2` for
/// its Cholesky factor `L` (the diagonal of `L` squared are pivots, each between the extreme
/// eigenvalues).
fn condition_bound(glm: &Glm, theta: &[f64]) -> Result<f64> {
    let l = glm.factor(&glm.hessian(theta, &vec![1.0; glm.n]))?;
    let diag = (0..glm.q).map(|i| l[i * glm.q + i].abs());
    let (lo, hi) = diag.fold((f64::INFINITY, 0.0f64), |(lo, hi), d| {
        (lo.min(d), hi.max(d))
    });
    Ok((hi / lo).powi(2))
}

fn ill_posed(method: &str, why: &str) -> MethodError {
    MethodError::Unsupported {
        method: method.into(),
        reason: format!(
            "the leave-one-out problem is ill-posed: {why}, so the unregularised optimum is not \
             finite and one Newton step from it predicts nothing; add optim.weight_decay (e.g. \
             1e-2) to the config and train again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use nn::Output;

    /// Acceptance test: Newton-step LOO vs brute-force LOO (the problem re-solved without each
    /// example by Newton's method to `||grad|| <= 1e-12`), Pearson over all training examples for
    /// the test loss of the first ten test points, weight decay 1e-2.
    #[test]
    fn newton_loo_matches_brute_force_logistic() {
        let run = logistic_at_optimum(1e-2);
        let targets = Targets::test((0..10).collect(), Output::Loss);
        let m = build(&mut Options::empty("loo-newton")).unwrap();
        let tau = m.attribute(&run, &targets).unwrap();
        let truth = brute_force_loo(&run, "loo-newton", &targets);
        assert_pearson_at_least(
            "newton_loo_matches_brute_force_logistic",
            &tau,
            &truth,
            0.99,
        );
    }

    #[test]
    fn refit_reaches_the_optimum_from_an_sgd_run() {
        // One epoch of SGD: not optimal. With refit the scores equal those at the exact optimum.
        let cfg = config(r#"{ kind = "logistic" }"#, 1e-2, 1, 64, 0.1);
        let sgd = Run::train(cfg, ".".as_ref()).unwrap();
        let opt = logistic_at_optimum(1e-2);
        let targets = Targets::test(vec![1, 2], Output::Margin);
        let m = build(&mut Options::empty("loo-newton")).unwrap();
        let a = m.attribute(&sgd, &targets).unwrap();
        let b = m.attribute(&opt, &targets).unwrap();
        assert!(rel_diff(&a, &b) < 1e-8, "{}", rel_diff(&a, &b));
        let mut o = Options::empty("loo-newton").set("refit", false);
        let stale = build(&mut o).unwrap().attribute(&sgd, &targets).unwrap();
        assert!(rel_diff(&stale, &b) > 1e-4);
    }

    // See: issue 13, item 7.
    #[test]
    fn separable_data_without_l2_is_refused() {
        // 456 breast-cancer training examples are linearly separable: without L2 the refit runs
        // to infinity.
        let cfg = config(r#"{ kind = "logistic" }"#, 0.0, 30, 32, 0.1);
        let run = Run::train(cfg, ".".as_ref()).unwrap();
        let m = build(&mut Options::empty("loo-newton")).unwrap();
        let e = m
            .attribute(&run, &Targets::test(vec![0], Output::Loss))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ill-posed") && e.contains("optim.weight_decay"),
            "{e}"
        );
    }

    #[test]
    fn linear_runs_are_sent_to_loo_ridge() {
        let run = ridge_run(1e-2);
        let m = build(&mut Options::empty("loo-newton")).unwrap();
        let e = m
            .attribute(&run, &Targets::test(vec![0], Output::Loss))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loo-ridge"), "{e}");
    }
}
