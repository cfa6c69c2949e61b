//! Accuracy and loss of a model on a dataset.

use data::Dataset;
use engine::{Float, Graph, Tensor};
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
pub fn evaluate<F: Float>(
    model: &Model,
    params: &[F],
    ds: &Dataset,
    batch_size: usize,
) -> Evaluation {
    let mut loss = 0.0;
    let mut correct = 0usize;
    let idx: Vec<usize> = (0..ds.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let batch = Batch::<F>::from_dataset(ds, chunk);
        let g = Graph::<F, Tensor<F>>::new();
        let p = model.layout().leaves(&g, params, false);
        let logits = model.forward(&g, &p, &batch.input);
        let z = g.tensor(logits);
        // The loss from the same logits: a second forward pass would double the cost.
        let l = model.output_of_logits(&g, logits, &batch, Output::Loss);
        loss += g.tensor(l).sum_all_f64();
        if let (crate::batch::Target::Classes(y), Task::Classes(_) | Task::Binary) =
            (&batch.target, model.task())
        {
            correct += model
                .predict_classes(&z)
                .iter()
                .zip(y)
                .filter(|(a, b)| a == b)
                .count();
        }
    }
    let n = ds.len().max(1) as f64;
    let accuracy =
        matches!(model.task(), Task::Classes(_) | Task::Binary).then(|| correct as f64 / n);
    Evaluation {
        examples: ds.len(),
        loss: loss / n,
        accuracy,
    }
}
