//! `--verify`: retrain without a set of training examples and measure the change of the outputs,
//! so that a hypothesis drawn from scores ("these examples made the prediction") is checked, not
//! trusted.
//!
//! The retraining is the run's own deterministic weighted training (MATH.md E1): the dropped
//! examples get data weight 0 and keep their batch slots, so order, seed and precision are the
//! run's, exactly as the LDS ground truth retrains subsets (`Run::retrain`, `split_outputs`).
//!
//! # Cache
//!
//! Each retraining is one file `RUN/verify/{key}.json`, written atomically, where `key` is the
//! FNV-1a hash ([`methods::run::fingerprint`]) of the run fingerprint, the output, the split and
//! the dropped training positions:
//!
//! ```json
//! {"run_hash": "9f0c...", "output": "margin", "split": "test", "dropped": [3, 18, 40],
//!  "outputs": [1.25, -0.5, 3.0]}
//! ```
//!
//! `outputs` holds the retrained model's output for every example of the split. [`cached_outputs`]
//! is the one function that reads and writes these files, so the cache can move into a shared
//! store without touching its callers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use methods::groundtruth::{cache, split_outputs};
use methods::run::{fingerprint, output_name};
use methods::{Run, Split};
use nn::Output;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Folder of the verification cache inside a run directory.
pub const VERIFY_DIR: &str = "verify";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    run_hash: String,
    output: String,
    split: String,
    dropped: Vec<usize>,
    outputs: Vec<Value>,
}

/// The cache file of one retraining (see the [module docs](self)).
pub fn entry_path(
    run_dir: &Path,
    run: &Run,
    output: Output,
    split: Split,
    dropped: &[usize],
) -> PathBuf {
    let mask: Vec<u8> = dropped
        .iter()
        .flat_map(|&i| (i as u64).to_le_bytes())
        .collect();
    let key = fingerprint(&[
        run.hash.as_bytes(),
        output_name(output).as_bytes(),
        split.name().as_bytes(),
        &mask,
    ]);
    run_dir.join(VERIFY_DIR).join(format!("{key}.json"))
}

/// Outputs of every example of `split` after retraining without each set of `drops` (training
/// positions, ascending), read from the cache or retrained in parallel and cached. `progress(done,
/// total)` is called as retrainings finish. With `compute = false` nothing is retrained and
/// uncached sets give `None` (the report shows what is cached).
///
/// # Errors
/// A corrupt cache file (naming it), I/O or training errors.
pub fn cached_outputs(
    run: &Run,
    run_dir: &Path,
    output: Output,
    split: Split,
    drops: &[Vec<usize>],
    compute: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Option<Vec<f64>>>> {
    let n_split = run.dataset(split).len();
    let mut found: Vec<Option<Vec<f64>>> = Vec::with_capacity(drops.len());
    for d in drops {
        let path = entry_path(run_dir, run, output, split, d);
        found.push(match cache::read_entry::<Entry>(&path)? {
            Some(e) => {
                if e.dropped != *d || e.run_hash != run.hash {
                    return Err(cache::corrupt(
                        &path,
                        "its dropped set or run differs from its name's",
                    )
                    .into());
                }
                Some(cache::decode_outputs(&path, &e.outputs, n_split)?)
            }
            None => None,
        });
    }
    if !compute {
        return Ok(found);
    }
    let total = drops.len();
    let done = AtomicUsize::new(found.iter().filter(|f| f.is_some()).count());
    progress(done.load(Ordering::Relaxed), total);
    let todo: Vec<usize> = (0..total).filter(|&j| found[j].is_none()).collect();
    let dir = run_dir.join(VERIFY_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let new = cache::parallel(todo, |j| {
        let mut w = vec![1.0; run.n_train()];
        for &i in &drops[j] {
            w[i] = 0.0;
        }
        let params = run.retrain(&w)?;
        let out = split_outputs(run, &params, output, split);
        let entry = Entry {
            run_hash: run.hash.clone(),
            output: output_name(output).into(),
            split: split.name().into(),
            dropped: drops[j].clone(),
            outputs: cache::encode(&out),
        };
        cache::write_entry(&entry_path(run_dir, run, output, split, &drops[j]), &entry)?;
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        Ok(out)
    })?;
    for (j, out) in new {
        found[j] = Some(out);
    }
    Ok(found)
}
