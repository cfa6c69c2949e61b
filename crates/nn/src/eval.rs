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

/// Examples per batch of an evaluation of a model trained in batches of `train_batch`: that
/// batch, but at least 64 and at most 256 (results do not depend on it beyond the rounding of
/// the mean). Every evaluation of a run (training's per-epoch figures, `attrib evaluate`,
/// unlearning and poisoning) uses it, so that they give the same bits.
///
/// Why the training batch: an evaluation holds a whole batch's forward pass at once, one batch
/// per worker, and the training batch is the size whose memory the run was planned for. At a
/// fixed 256 the Moby-Dick GPT evaluated its 256 test windows of 64 tokens in one pass on one
/// worker, 515 MB resident, and the kernel's zeroing of those fresh pages (`clear_page_erms`)
/// took 16% of `attrib train` under `perf`; at 64 it peaks at 152 MB, with the windows spread
/// over the workers. Why at least 64: a recipe of tiny batches would otherwise build a graph per
/// handful of examples.
pub fn eval_batch_size(train_batch: usize) -> usize {
    train_batch.clamp(64, 256)
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
