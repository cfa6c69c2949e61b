//! Subset ground truth for the LDS (MATH.md E6): retrain on `m` random subsets with the run's seed,
//! order and precision (MATH.md E1, a dropped example keeps its batch slot with weight 0) and record
//! the output `f(S_j)` of every example of the measured split. Subsets are independent and retrained
//! in parallel; results are placed by subset index, so they do not depend on the thread count.
//!
//! The store lives in `attrib-methods` (not `attrib-eval`, which re-exports it) so that methods can
//! learn from subset retrainings too (datamodels, MATH.md E6).
//!
//! # Cache folder
//!
//! The retrainings are expensive and reused by every method, so they are cached, by default in
//! `RUN/groundtruth/{kind}-{fraction:.4}-m{subsets}-s{seed}-{output}-{split}/` (see [`cache_dir`]),
//! e.g. `RUN/groundtruth/drop-0.0100-m100-s0-margin-test/`:
//!
//! ```text
//! manifest.json        written first: what the folder holds
//! subset_00000.json    one file per finished subset, written atomically (temp file + rename)
//! subset_00001.json
//! ...
//! ```
//!
//! `manifest.json`:
//! ```json
//! {"kind": "subsets", "spec": {"kind": {"drop": {"fraction": 0.01}}, "subsets": 100, "seed": 0},
//!  "output": "margin", "split": "test", "run_hash": "9f0c...", "n_train": 455, "n_split": 114,
//!  "attrib_version": "0.1.0"}
//! ```
//! `subset_00007.json` (subset 7; `dropped` lists the training indices with weight 0, ascending;
//! `outputs` has one value per example of the split, in split order):
//! ```json
//! {"subset": 7, "dropped": [3, 18, 40], "outputs": [1.25, -0.5, 3.0]}
//! ```
//! Outputs are JSON numbers written in their shortest form that reads back to the same bits
//! (non-finite values as the strings `"NaN"`, `"inf"`, `"-inf"`).
//!
//! On start, subset files already present are checked (index, dropped set, length) and loaded
//! instead of retrained, so an interrupted computation resumes where it stopped. A folder whose
//! manifest describes another computation (run hash, spec, output, split, sizes) is refused with an
//! error naming the folder; delete it or pick another. A folder with subset files but no manifest is
//! refused too.
//!
//! # Group ground truth
//!
//! [`compute_groups`] drops whole groups of a [`Grouping`] (MATH.md E5): subset `j` drops
//! `max(1, round(p K))` of the `K` groups, drawn exactly as [`subset_masks`] draws examples (with
//! `K` in place of `n`), and retrains with data weights `w_i = w_G(i)` (MATH.md E1, via
//! [`Grouping::expand`]). Its folder is `{spec slug}-groups-{grouping hash}-{output}-{split}`
//! ([`group_cache_dir`]) and its manifest has a `"groups": HASH` field, so two groupings never share
//! a cache and example-subset folders (which have no such field) are untouched.
//!
//! The brute-force LOO cache (`attrib-eval`'s `loo` module) uses the same scheme with
//! `"kind": "loo"`, no `spec`, and files `loo_{training index:05}.json`
//! (`{"example": 7, "outputs": [...]}`).

pub mod cache;
pub mod subsets;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nn::Output;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{invalid, Result};
use crate::run::{files, output_name};
use crate::{Grouping, Run, Split, Targets};
use cache::Manifest;
pub use cache::MANIFEST;
pub use subsets::{dropped_of, subset_masks, SubsetKind, SubsetSpec};

/// Examples evaluated per forward pass by [`split_outputs`].
pub const CHUNK: usize = 1024;

/// Measured outputs of the full run and of `m` subset retrainings (MATH.md E6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The subsets.
    pub spec: SubsetSpec,
    /// Name of the measured output (`margin`, `loss`, `log_likelihood`).
    pub output: String,
    /// Name of the measured split (`train`, `test`).
    pub split: String,
    /// Fingerprint of the run retrained.
    pub run_hash: String,
    /// `f(S)`: outputs of the unmodified run for every example of the split.
    pub full: Vec<f64>,
    /// Subset masks over the training set, `true` = kept.
    pub masks: Vec<Vec<bool>>,
    /// `f(S_j)` per subset, one value per example of the split; an EMPTY vector marks a subset not
    /// computed yet (see [`GroundTruth::is_complete`]).
    pub outputs: Vec<Vec<f64>>,
}

impl GroundTruth {
    /// Whether every subset has its outputs.
    pub fn is_complete(&self) -> bool {
        self.missing().is_empty()
    }

    /// Number of subsets with outputs.
    pub fn done(&self) -> usize {
        self.outputs.iter().filter(|o| !o.is_empty()).count()
    }

    /// Subsets still to compute.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.masks.len())
            .filter(|&j| !matches!(self.outputs.get(j), Some(o) if !o.is_empty()))
            .collect()
    }

    /// Training examples dropped by subset `j`, ascending (empty if `j` is out of range).
    pub fn dropped(&self, j: usize) -> Vec<usize> {
        self.masks.get(j).map(|m| dropped_of(m)).unwrap_or_default()
    }

    /// Size of the training set.
    pub fn n_train(&self) -> usize {
        self.masks.first().map_or(0, Vec::len)
    }
}

/// Canonical cache folder of a subset ground truth:
/// `RUN/groundtruth/{spec slug}-{output}-{split}` (MATH.md E6), e.g.
/// `RUN/groundtruth/drop-0.0100-m100-s0-margin-test`.
pub fn cache_dir(run_dir: &Path, spec: &SubsetSpec, output: Output, split: Split) -> PathBuf {
    run_dir.join(files::GROUNDTRUTH).join(format!(
        "{}-{}-{}",
        spec.slug(),
        output_name(output),
        split.name()
    ))
}

/// Cache folder of a group ground truth (see the [module docs](self)):
/// `RUN/groundtruth/{spec slug}-groups-{grouping hash}-{output}-{split}`.
pub fn group_cache_dir(
    run_dir: &Path,
    spec: &SubsetSpec,
    groups: &Grouping,
    output: Output,
    split: Split,
) -> PathBuf {
    run_dir.join(files::GROUNDTRUTH).join(format!(
        "{}-groups-{}-{}-{}",
        spec.slug(),
        groups.hash(),
        output_name(output),
        split.name()
    ))
}

/// Masks over the training set, `true` = kept, of subsets that drop whole groups (MATH.md E5):
/// subset `j` drops the groups [`subset_masks`]`(K, spec)[j]` drops, with all their members.
pub fn group_subset_masks(groups: &Grouping, spec: &SubsetSpec) -> Vec<Vec<bool>> {
    subset_masks(groups.k, spec)
        .iter()
        .map(|gm| groups.assignment.iter().map(|&g| gm[g]).collect())
        .collect()
}

/// Outputs `f` at `params` of every example of `split`, evaluated in f64 in chunks of [`CHUNK`].
pub fn split_outputs(run: &Run, params: &[f64], output: Output, split: Split) -> Vec<f64> {
    let n = run.dataset(split).len();
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let t = Targets {
            split,
            indices: (start..(start + CHUNK).min(n)).collect(),
            output,
        };
        out.extend(run.target_outputs(params, &t));
    }
    out
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubsetEntry {
    subset: usize,
    dropped: Vec<usize>,
    outputs: Vec<Value>,
}

const PREFIX: &str = "subset";

/// Retrains the run on every subset of `spec` (data weights = mask as 0/1, MATH.md E1) and measures
/// `output` on every example of `split` (MATH.md E6), in parallel.
///
/// `cache`: a folder to store and resume from (layout in the [module docs](self)); `limit`: stop
/// after this many newly computed subsets (the result is then incomplete); `progress(done, total)`
/// is called from worker threads as subsets finish (cached ones count as done).
///
/// # Errors
/// An invalid spec, an empty split, a cache folder of another computation or a corrupt cache file,
/// I/O errors, or training errors.
pub fn compute(
    run: &Run,
    spec: &SubsetSpec,
    output: Output,
    split: Split,
    cache: Option<&Path>,
    limit: Option<usize>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<GroundTruth> {
    let n = run.n_train();
    spec.validate(n)?;
    let masks = subset_masks(n, spec);
    retrain_masks(
        run, spec, masks, None, output, split, cache, limit, progress,
    )
}

/// [`compute`] for subsets that drop whole groups of `groups` (MATH.md E5, E6): `spec` counts
/// groups (`max(1, round(p K))` dropped), members of a dropped group get data weight 0 (MATH.md
/// E1, [`Grouping::expand`]). The cache manifest records the grouping's hash; use
/// [`group_cache_dir`] for the folder.
///
/// # Errors
/// As [`compute`], and a grouping of another training-set size or a spec that drops all `K` groups.
#[allow(clippy::too_many_arguments)]
pub fn compute_groups(
    run: &Run,
    spec: &SubsetSpec,
    groups: &Grouping,
    output: Output,
    split: Split,
    cache: Option<&Path>,
    limit: Option<usize>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<GroundTruth> {
    groups.check_n(run.n_train())?;
    spec.validate(groups.k)?;
    let masks = group_subset_masks(groups, spec);
    let hash = Some(groups.hash());
    retrain_masks(
        run, spec, masks, hash, output, split, cache, limit, progress,
    )
}

/// Retrains on every mask (weights 0/1), cached and resumable: the shared body of [`compute`] and
/// [`compute_groups`].
#[allow(clippy::too_many_arguments)]
fn retrain_masks(
    run: &Run,
    spec: &SubsetSpec,
    masks: Vec<Vec<bool>>,
    groups: Option<String>,
    output: Output,
    split: Split,
    cache: Option<&Path>,
    limit: Option<usize>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<GroundTruth> {
    let n = run.n_train();
    let n_split = run.dataset(split).len();
    if n_split == 0 {
        return Err(invalid(
            "split",
            format!("the {} split is empty; measure another split", split.name()),
        ));
    }
    let full = split_outputs(run, &run.params, output, split);
    let mut outputs: Vec<Vec<f64>> = vec![Vec::new(); masks.len()];

    if let Some(dir) = cache {
        let manifest = Manifest {
            kind: "subsets".into(),
            spec: Some(*spec),
            groups,
            output: output_name(output).into(),
            split: split.name().into(),
            run_hash: run.hash.clone(),
            n_train: n,
            n_split,
            attrib_version: env!("CARGO_PKG_VERSION").into(),
        };
        cache::prepare(dir, &manifest, PREFIX)?;
        for (j, mask) in masks.iter().enumerate() {
            let path = cache::entry_path(dir, PREFIX, j);
            if let Some(e) = cache::read_entry::<SubsetEntry>(&path)? {
                if e.subset != j {
                    return Err(cache::corrupt(
                        &path,
                        &format!("it says subset {} where {j} belongs", e.subset),
                    ));
                }
                if e.dropped != dropped_of(mask) {
                    return Err(cache::corrupt(
                        &path,
                        "its dropped examples differ from the subset's",
                    ));
                }
                let v = cache::decode_outputs(&path, &e.outputs, n_split)?;
                outputs[j] = v;
            }
        }
    }

    let total = masks.len();
    let done = AtomicUsize::new(outputs.iter().filter(|o| !o.is_empty()).count());
    progress(done.load(Ordering::Relaxed), total);
    let todo: Vec<usize> = (0..total)
        .filter(|&j| outputs[j].is_empty())
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let new = cache::parallel(todo, |j| {
        let w: Vec<f64> = masks[j]
            .iter()
            .map(|&k| if k { 1.0 } else { 0.0 })
            .collect();
        // A subset of a weighted run keeps the run's weights on the examples it keeps (E7).
        let params = run.retrain(&run.subset_weights(&w))?;
        let out = split_outputs(run, &params, output, split);
        if let Some(dir) = cache {
            let entry = SubsetEntry {
                subset: j,
                dropped: dropped_of(&masks[j]),
                outputs: cache::encode(&out),
            };
            cache::write_entry(&cache::entry_path(dir, PREFIX, j), &entry)?;
        }
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        Ok(out)
    })?;
    for (j, out) in new {
        outputs[j] = out;
    }
    Ok(GroundTruth {
        spec: *spec,
        output: output_name(output).into(),
        split: split.name().into(),
        run_hash: run.hash.clone(),
        full,
        masks,
        outputs,
    })
}
