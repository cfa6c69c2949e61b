//! `tracin`: gradient dot products along the training trajectory (MATH.md E4; Pruthi et al. 2020,
//! TracInCP).
//!
//! ## Formula, sign and scale
//! Over checkpoints `c` at steps `t_c` (from replaying the run, [`Run::checkpoints`]), each standing
//! for the `m_c` steps until the next one,
//!
//! `tau_i = -sum_c (eta_c m_c / n) <grad f(theta_c), grad l_i(theta_c)>`.
//!
//! Derivation: an SGD step that contains example `i` moves `theta` by `-(eta / |B|) w_i grad l_i`,
//! so to first order it changes `f` by `-(eta / |B|) <grad f, grad l_i>` per unit of `w_i`; over
//! `m_c` steps example `i` is visited `m_c |B| / n` times on average, which gives the factor
//! `eta_c m_c / n`. With this scale `tau` estimates `d f / d w_i` (MATH.md sign convention) for plain
//! SGD with a small learning rate; momentum, Adam and weight decay are ignored (TracIn's usual
//! simplification), so for them it is a ranking up to a positive scale.
//!
//! Sign: TracIn's "proponent" score `+<grad loss_test, grad l_i>` is positive for examples that
//! reduce the test loss. With `tau = d f / d w` and `f` the test loss, such a helpful example has
//! *negative* `tau`; for a margin or log-likelihood it has positive `tau`.
//!
//! ## Computation
//! Per checkpoint: the targets' gradients (one reverse pass per target), then one dual forward pass
//! over the training set with the target gradients as directions gives `<grad f_t, grad l_i>` for all
//! `i` and `t`.
//!
//! Group scores (MATH.md E5) dot the target gradients with group gradients `sum_{i in G} grad l_i`
//! instead (one reverse pass per batch of a group's members per checkpoint).
//!
//! Options: `checkpoints` (10): number of evenly spaced checkpoints (every `ceil(T / checkpoints)`
//! steps, starting at step 0); `chunk` (`auto`: at most 512, fewer for a model whose pass would
//! not fit in a fixed budget, [`crate::support::chunks`]).

use nn::Trainer;

use crate::error::Result;
use crate::groups::Grouping;
use crate::method::{Method, Registration};
use crate::options::{at_least_one, Auto, Options};
use crate::support::chunks::{planned_chunk_option, Columns, Pass, TrainChunks};
use run::{Run, Targets};

/// The registry entry.
pub const REGISTRATION: Registration = Registration {
    name: "tracin",
    summary: "TracInCP: learning-rate-weighted gradient dot products over checkpoints (E4)",
    build,
};

/// TracIn over replayed checkpoints (module docs).
#[derive(Debug, Clone)]
pub struct TracIn {
    checkpoints: usize,
    chunk: Auto<usize>,
}

/// Reads the options: `checkpoints` (10), `chunk` (auto).
///
/// # Errors
/// A bad option value.
pub fn build(opts: &mut Options) -> Result<Box<dyn Method>> {
    Ok(Box::new(TracIn {
        checkpoints: opts.get("checkpoints", 10usize, at_least_one)?,
        chunk: planned_chunk_option(opts)?,
    }))
}

impl Method for TracIn {
    fn name(&self) -> &'static str {
        "tracin"
    }

    /// # Errors
    /// Training errors while replaying the run.
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        self.scores(run, targets, Columns::Examples)
    }

    /// Group scores from group gradients at each checkpoint:
    /// `tau_G = -sum_c (eta_c m_c / n) <grad f(theta_c), sum_{i in G} grad l_i(theta_c)>`, one
    /// reverse pass per batch of each group's members per checkpoint (exactly the sum of the
    /// members' scores, up to rounding).
    ///
    /// # Errors
    /// As [`Method::attribute`].
    fn attribute_groups(
        &self,
        run: &Run,
        targets: &Targets,
        groups: &Grouping,
    ) -> Result<Vec<Vec<f64>>> {
        groups.check_n(run.n_train())?;
        self.scores(run, targets, Columns::Groups(groups))
    }
}

impl TracIn {
    /// Scores for the given columns (examples or groups; module docs, "Computation").
    fn scores(&self, run: &Run, targets: &Targets, columns: Columns<'_>) -> Result<Vec<Vec<f64>>> {
        let n = run.n_train();
        let steps = Trainer::<f64>::new(&run.model, &run.config, &run.splits.train)?.steps();
        let every = steps.div_ceil(self.checkpoints);
        let checkpoints = run.checkpoints(every)?;
        let pass = Pass::Forward {
            dirs: targets.indices.len(),
        };
        let data = TrainChunks::planned("tracin", &run.splits.train, &run.model, self.chunk, pass)?;
        let batch = run.target_batch::<f64>(targets);
        let mut tau = vec![vec![0.0; columns.count(n)]; targets.indices.len()];
        for c in &checkpoints {
            let m = every.min(steps - c.step);
            let scale = c.lr * m as f64 / n as f64;
            let grads =
                nn::per_example::output_grads(&run.model, &c.params, &batch, targets.output);
            let dirs: Vec<&[f64]> = grads.iter().map(|g| g.as_slice()).collect();
            let dots = data.loss_dots(&run.splits.train, &run.model, &c.params, columns, &dirs);
            for (row, d) in tau.iter_mut().zip(dots) {
                for (t, v) in row.iter_mut().zip(d) {
                    *t -= scale * v;
                }
            }
        }
        Ok(tau)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use eval::stats::pearson;
    use nn::Output;

    /// For plain SGD with a small learning rate, one epoch and a checkpoint at every step, TracIn is
    /// the first-order effect of a data weight: compare with central differences of retraining.
    #[test]
    fn tracin_matches_the_metagradient_for_small_steps() {
        // 455 training examples = 7 batches of 65: every example is visited exactly once, so the
        // expected number of visits is the actual one. A tiny learning rate keeps theta_c ~ theta_T,
        // where TracIn's grad f(theta_c) is exact.
        let cfg = nn::RunConfig::from_toml_str(
            r#"
data = { source = "breast_cancer", max_train = 455 }
model = { kind = "logistic" }
optim = { kind = "sgd", lr = 1e-4 }
train = { epochs = 1, batch_size = 65, precision = "f64" }
"#,
            "t.toml".as_ref(),
        )
        .unwrap();
        let run = Run::train(cfg, ".".as_ref()).unwrap();
        let targets = Targets::test(vec![0, 4], Output::Loss);
        let (m, _) =
            crate::registry::build("tracin", Options::empty("tracin").set("checkpoints", 7))
                .unwrap();
        let tau = m.attribute(&run, &targets).unwrap();
        let eps = 1e-3;
        let examples: Vec<usize> = (0..run.n_train()).step_by(7).collect();
        let mut fd = vec![Vec::new(); 2];
        for &i in &examples {
            let mut w = vec![1.0; run.n_train()];
            w[i] = 1.0 + eps;
            let up = run.target_outputs(&run.retrain(&w).unwrap(), &targets);
            w[i] = 1.0 - eps;
            let down = run.target_outputs(&run.retrain(&w).unwrap(), &targets);
            for t in 0..2 {
                fd[t].push((up[t] - down[t]) / (2.0 * eps));
            }
        }
        for t in 0..2 {
            let ours: Vec<f64> = examples.iter().map(|&i| tau[t][i]).collect();
            let r = pearson(&ours, &fd[t]);
            let ratio = ours.iter().map(|x| x.abs()).sum::<f64>()
                / fd[t].iter().map(|x| x.abs()).sum::<f64>();
            eprintln!("tracin vs finite-difference metagradient, target {t}: Pearson {r:.4}, scale ratio {ratio:.3}");
            assert!(r > 0.999 && (0.99..1.01).contains(&ratio), "{r} {ratio}");
        }
    }

    #[test]
    fn tracin_sign_helpful_examples_lower_the_loss() {
        // A training example's own loss: its gradient dot itself is positive, so tau < 0 for f = loss.
        let run = tiny_mlp(0.0);
        let targets = Targets {
            split: run::Split::Train,
            indices: vec![0, 1, 2],
            output: Output::Loss,
        };
        let (m, _) = crate::registry::build("tracin", Options::empty("tracin")).unwrap();
        let tau = m.attribute(&run, &targets).unwrap();
        for (t, &i) in targets.indices.iter().enumerate() {
            assert!(tau[t][i] < 0.0);
        }
    }
}
