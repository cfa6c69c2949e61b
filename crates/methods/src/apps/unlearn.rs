//! Unlearning a forget set `F` (MATH.md E7): outputs and a model as if `F` had never been trained
//! on, next to what retraining without `F` gives.
//!
//! - Outputs: `f(w0 - w0 1_F) ~ f(w0) - sum_{i in F} w0_i tau_i` from a score file (E7; for unit
//!   weights the familiar `f(S) - sum_{i in F} tau_i`).
//! - Model: `theta_T + J v` with `v = -w0 1_F`, by [`super::jvp::weight_jvp`].
//! - Baselines: the original model ("no change") and `k` steps of gradient ascent on the mean loss
//!   of `F` (the common heuristic).
//!
//! How well each matches retraining is measured by `attrib_eval::agreement`.

use nn::{Batch, Output};

use crate::error::{MethodError, Result};
use run::{Run, Split, Targets};

/// The weight direction that removes `forget`: `v_i = -w0_i` for `i` in `forget`, 0 elsewhere.
///
/// # Errors
/// An index outside the training set, named with the fix.
pub fn forget_direction(run: &Run, forget: &[usize]) -> Result<Vec<f64>> {
    let w0 = run.base_weights();
    let mut v = vec![0.0; w0.len()];
    for &i in forget {
        if i >= w0.len() {
            return Err(MethodError::Run {
                path: run.dir.clone().unwrap_or_default(),
                reason: format!(
                    "forget-set example {i} is outside the {} training examples; list training \
                     indices 0..{}",
                    w0.len(),
                    w0.len()
                ),
            });
        }
        v[i] = -w0[i];
    }
    Ok(v)
}

/// Predicted outputs without `forget`: `f_r + sum_i v_i tau_{r,i}` per score row `r`, with
/// `v` from [`forget_direction`] (first order, E7).
pub fn predicted_outputs(outputs: &[f64], scores: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
    outputs
        .iter()
        .zip(scores)
        .map(|(f, row)| f + row.iter().zip(v).map(|(t, d)| t * d).sum::<f64>())
        .collect()
}

/// `steps` steps of gradient ascent `theta <- theta + lr grad (mean_{i in F} l_i)` from `params`
/// (f64), the heuristic the unlearning literature compares with.
pub fn gradient_ascent(
    run: &Run,
    params: &[f64],
    forget: &[usize],
    steps: usize,
    lr: f64,
) -> Vec<f64> {
    let batch = Batch::<f64>::from_dataset(&run.splits.train, forget);
    let ones = vec![1.0; forget.len()];
    let mut p = params.to_vec();
    for _ in 0..steps {
        let (g, _) = nn::per_example::objective_hvps(&run.model, &p, &batch, &ones, &[]);
        for (x, d) in p.iter_mut().zip(g) {
            *x += lr * d;
        }
    }
    p
}

/// Margins and predicted classes of `params` on `targets` (output forced to the margin).
pub fn margins_and_classes(run: &Run, params: &[f64], targets: &Targets) -> (Vec<f64>, Vec<usize>) {
    let t = Targets {
        output: Output::Margin,
        ..targets.clone()
    };
    let margins = run.target_outputs(params, &t);
    let batch = run.target_batch::<f64>(&t);
    let g = engine::Graph::<f64, engine::Tensor<f64>>::new();
    let p = run.model.layout().leaves(&g, params, false);
    let logits = run.model.forward(&g, &p, &batch.input);
    let classes = run.model.predict_classes(&g.tensor(logits));
    (margins, classes)
}

/// The forget set's examples as targets of the training split.
pub fn forget_targets(forget: &[usize]) -> Targets {
    Targets {
        split: Split::Train,
        indices: forget.to_vec(),
        output: Output::Margin,
    }
}
