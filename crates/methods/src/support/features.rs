//! Penultimate features ([`nn::Model::features`]): the representation similarity baseline
//! (`similarity`, MATH.md E4) and k-means on representations (E5) read them.

use engine::{Graph, Tensor};
use nn::{Batch, Model};
use rayon::prelude::*;

use super::chunks::TrainChunks;
use run::Run;

/// Penultimate features ([`nn::Model::target_features`]) of a batch at `params`, one row per
/// example (per target, for per-token targets).
pub fn features(model: &Model, params: &[f64], batch: &Batch<f64>) -> Vec<Vec<f64>> {
    let g = Graph::<f64, Tensor<f64>>::new();
    let p = model.layout().leaves(&g, params, false);
    let f = g.tensor(model.target_features(&g, &p, batch));
    let b = batch.len();
    let d = f.len() / b.max(1);
    f.data()
        .chunks(d.max(1))
        .take(b)
        .map(|row| row.to_vec())
        .collect()
}

/// Penultimate features of every training example, computed chunk by chunk in parallel and
/// concatenated in index order.
pub fn train_features(run: &Run, chunk: usize) -> Vec<Vec<f64>> {
    TrainChunks::new(&run.splits.train, chunk)
        .batches
        .par_iter()
        .map(|b| features(&run.model, &run.params, b))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect()
}
