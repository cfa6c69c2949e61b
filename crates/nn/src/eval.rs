//! Accuracy and loss of a model on a dataset.

use data::Dataset;
use engine::{Float, Graph, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use crate::batch::Batch;
use crate::model::{Model, Output, Task};

/// Evaluation figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    /// Examples evaluated.
    pub examples: usize,
    /// Mean per-example loss.
    pub loss: f64,
    /// Fraction classified correctly (classification tasks only).
    pub accuracy: Option<f64>,
}

/// Evaluates in batches of `batch_size` (results do not depend on it beyond rounding of the mean).
///
/// The batches run in parallel (a small model's ops are too small to use the cores on their own,
/// and evaluating both splits every epoch cost half as much as the training steps); their loss
/// sums are added in batch order, so the figures are those of a sequential loop, bit for bit.
pub fn evaluate<F: Float>(
    model: &Model,
    params: &[F],
    ds: &Dataset,
    batch_size: usize,
) -> Evaluation {
    let idx: Vec<usize> = (0..ds.len()).collect();
    let parts: Vec<(f64, usize)> = idx
        .par_chunks(batch_size.max(1))
        .map(|chunk| batch_figures(model, params, ds, chunk))
        .collect();
    let loss = parts.iter().fold(0.0, |acc, &(l, _)| acc + l);
    let correct: usize = parts.iter().map(|&(_, c)| c).sum();
    let n = ds.len().max(1) as f64;
    let accuracy =
        matches!(model.task(), Task::Classes(_) | Task::Binary).then(|| correct as f64 / n);
    Evaluation {
        examples: ds.len(),
        loss: loss / n,
        accuracy,
    }
}

/// The summed loss and the number classified correctly of the examples `chunk` of `ds`.
fn batch_figures<F: Float>(
    model: &Model,
    params: &[F],
    ds: &Dataset,
    chunk: &[usize],
) -> (f64, usize) {
    let batch = Batch::<F>::from_dataset(ds, chunk);
    let g = Graph::<F, Tensor<F>>::new();
    let p = model.layout().leaves(&g, params, false);
    let logits = model.forward(&g, &p, &batch.input);
    let z = g.tensor(logits);
    // The loss from the same logits: a second forward pass would double the cost.
    let l = model.output_of_logits(&g, logits, &batch, Output::Loss);
    let loss = g.tensor(l).sum_all_f64();
    (loss, model.correct_predictions(&z, &batch).unwrap_or(0))
}
