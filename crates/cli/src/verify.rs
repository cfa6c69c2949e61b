//! `--verify`: retrain without a set of training examples and measure the change of the outputs,
//! so that a hypothesis drawn from scores ("these examples made the prediction") is checked, not
//! trusted.
//!
//! The retraining is the run's own deterministic weighted training (MATH.md E1): the dropped
//! examples get data weight 0 and keep their batch slots, so order, seed and precision are the
//! run's, exactly as the LDS ground truth retrains subsets.
//!
//! # Cache
//!
//! The retrained parameters live in the run's store like every other application's retraining
//! (`RUN/store/retrain/KEY.f64`, [`run::retrain::retrain_cached`]: keyed by the run's fingerprint
//! and the data weights' bits, written atomically), so `explain --verify`, `attrib report`,
//! `select` and `unlearn` share one cache and a rerun retrains nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use nn::Output;
use run::retrain::{retrain_cached, split_outputs, stored_retraining};
use run::store::parallel;
use run::{Run, Split};

/// Outputs of every example of `split` after retraining without each set of `drops` (training
/// positions), read from the run's store or retrained in parallel and stored. `progress(done,
/// total)` is called as retrainings finish. With `compute = false` nothing is retrained and sets
/// not in the store give `None` (the report shows what is cached).
///
/// # Errors
/// Training errors, or the store cannot be written.
pub fn cached_outputs(
    run: &Run,
    output: Output,
    split: Split,
    drops: &[Vec<usize>],
    compute: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Option<Vec<f64>>>> {
    let weights = |drop: &[usize]| {
        let mut w = vec![1.0; run.n_train()];
        for &i in drop {
            w[i] = 0.0;
        }
        w
    };
    let outputs = |params: Vec<f64>| split_outputs(run, &params, output, split);
    let mut found: Vec<Option<Vec<f64>>> = drops
        .iter()
        .map(|d| stored_retraining(run, &weights(d)).map(outputs))
        .collect();
    if !compute {
        return Ok(found);
    }
    let total = drops.len();
    let done = AtomicUsize::new(found.iter().filter(|f| f.is_some()).count());
    progress(done.load(Ordering::Relaxed), total);
    let todo: Vec<usize> = (0..total).filter(|&j| found[j].is_none()).collect();
    let new = parallel(todo, |j| {
        let params = retrain_cached(run, &weights(&drops[j]))?;
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        Ok(outputs(params))
    })?;
    for (j, out) in new {
        found[j] = Some(out);
    }
    Ok(found)
}
