//! Brute-force leave-one-out (MATH.md E6): retrain without each chosen training example (weight 0,
//! MATH.md E1) and measure the output on every example of a split. Cached and resumable like the
//! subset ground truth (layout in [`crate::groundtruth`]): `manifest.json` with `"kind": "loo"` and
//! one `loo_{training index:05}.json` per left-out example, so different example lists share a cache.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use methods::run::{files, output_name};
use methods::{Run, Split};
use nn::Output;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{invalid, Result};
use methods::groundtruth::cache::{self, Manifest};
use methods::groundtruth::split_outputs;

/// Outputs of the full run and of each leave-one-out retraining (MATH.md E6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loo {
    /// Training indices left out, one per retraining.
    pub examples: Vec<usize>,
    /// Name of the measured output.
    pub output: String,
    /// Name of the measured split.
    pub split: String,
    /// Fingerprint of the run.
    pub run_hash: String,
    /// `f(S)` for every example of the split.
    pub full: Vec<f64>,
    /// `f(S \ {examples[k]})` for every example of the split, one vector per `k`.
    pub outputs: Vec<Vec<f64>>,
}

impl Loo {
    /// True LOO change of split example `target` when `examples[k]` is left out (MATH.md E6):
    /// `f(S \ {z_k}) - f(S)`; attribution predicts `-tau_k`.
    ///
    /// # Panics
    /// If `target` or `k` is out of range.
    pub fn change(&self, target: usize, k: usize) -> f64 {
        self.outputs[k][target] - self.full[target]
    }
}

/// Canonical cache folder of brute-force LOO: `RUN/groundtruth/loo-{output}-{split}`.
pub fn loo_cache_dir(run_dir: &Path, output: Output, split: Split) -> PathBuf {
    run_dir
        .join(files::GROUNDTRUTH)
        .join(format!("loo-{}-{}", output_name(output), split.name()))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LooEntry {
    example: usize,
    outputs: Vec<Value>,
}

const PREFIX: &str = "loo";

/// Brute-force LOO (MATH.md E6): for each training index in `examples`, retrains with `w_i = 0`
/// (MATH.md E1) and measures `output` on every example of `split`, in parallel. `cache`: a folder
/// to store and resume from; `progress(done, total)` is called as retrainings finish.
///
/// # Errors
/// An index outside the training set or listed twice, an empty split, a cache folder of another
/// computation or a corrupt cache file, I/O errors, or training errors.
pub fn loo(
    run: &Run,
    output: Output,
    split: Split,
    examples: &[usize],
    cache: Option<&Path>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Loo> {
    let n = run.n_train();
    let mut seen = HashSet::new();
    for &i in examples {
        if i >= n {
            return Err(invalid(
                "examples",
                format!(
                    "training index {i} is outside the training set of {n}; use indices 0..{n}"
                ),
            ));
        }
        if !seen.insert(i) {
            return Err(invalid(
                "examples",
                format!("training index {i} is listed twice; list each example once"),
            ));
        }
    }
    let n_split = run.dataset(split).len();
    if n_split == 0 {
        return Err(invalid(
            "split",
            format!("the {} split is empty; measure another split", split.name()),
        ));
    }
    let full = split_outputs(run, &run.params, output, split);
    let mut outputs: Vec<Vec<f64>> = vec![Vec::new(); examples.len()];
    if let Some(dir) = cache {
        let manifest = Manifest {
            kind: "loo".into(),
            spec: None,
            groups: None,
            output: output_name(output).into(),
            split: split.name().into(),
            run_hash: run.hash.clone(),
            n_train: n,
            n_split,
            attrib_version: env!("CARGO_PKG_VERSION").into(),
        };
        cache::prepare(dir, &manifest, PREFIX)?;
        for (k, &i) in examples.iter().enumerate() {
            let path = cache::entry_path(dir, PREFIX, i);
            if let Some(e) = cache::read_entry::<LooEntry>(&path)? {
                if e.example != i {
                    return Err(cache::corrupt(
                        &path,
                        &format!("it says example {} where {i} belongs", e.example),
                    )
                    .into());
                }
                let v = cache::decode_outputs(&path, &e.outputs, n_split)?;
                outputs[k] = v;
            }
        }
    }
    let total = examples.len();
    let done = AtomicUsize::new(outputs.iter().filter(|o| !o.is_empty()).count());
    progress(done.load(Ordering::Relaxed), total);
    let todo: Vec<usize> = (0..total).filter(|&k| outputs[k].is_empty()).collect();
    let new = cache::parallel(todo, |k| {
        let i = examples[k];
        let mut w = vec![1.0; n];
        w[i] = 0.0;
        // A subset of a weighted run keeps the run's weights on the examples it keeps (E7).
        let params = run.retrain(&run.subset_weights(&w))?;
        let out = split_outputs(run, &params, output, split);
        if let Some(dir) = cache {
            let entry = LooEntry {
                example: i,
                outputs: cache::encode(&out),
            };
            cache::write_entry(&cache::entry_path(dir, PREFIX, i), &entry)?;
        }
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        Ok(out)
    })?;
    for (k, out) in new {
        outputs[k] = out;
    }
    Ok(Loo {
        examples: examples.to_vec(),
        output: output_name(output).into(),
        split: split.name().into(),
        run_hash: run.hash.clone(),
        full,
        outputs,
    })
}
