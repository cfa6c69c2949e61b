//! Retraining on many masks, cached and resumable: the one code path behind subset ground truth
//! (MATH.md E6), group ground truth (MATH.md E5), brute-force leave-one-out and a user's list of
//! masks. Every retraining is the run's own deterministic weighted training (MATH.md E1): same
//! seed, order and precision, a dropped example keeps its batch slot with weight 0. Retrainings
//! are independent and run in parallel; results are placed by index, so they do not depend on
//! the thread count.
//!
//! [`retrain`] takes a [`Retraining`]: where the masks come from ([`MaskSource`]), what to measure
//! (an [`Output`] on every example of a [`Split`]), the cache folder, a limit, a progress hook and
//! a [`Shard`] (compute only retrainings `j` with `j mod N == I`; each entry is the same file
//! whichever process writes it, so shards assemble to the single-process bits).
//!
//! # Cache folder
//!
//! The retrainings are expensive and reused by every method, so they are cached, by default in
//! `RUN/groundtruth/{slug}/` (see [`cache_dir`], [`group_cache_dir`], [`loo_cache_dir`]), e.g.
//! `RUN/groundtruth/drop-0.0100-m100-s0-margin-test/`:
//!
//! ```text
//! manifest.json        written first: what the folder holds (the store key, field by field)
//! subset_00000.json    one file per finished retraining, written atomically (temp file + rename)
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
//! On start, files already present are checked (index, dropped set, length) and loaded instead of
//! retrained, so an interrupted computation resumes where it stopped. A folder whose manifest
//! describes another computation (run hash, spec, output, split, sizes) is refused with an error
//! naming the folder; delete it or pick another. A folder with entries but no manifest is refused
//! too.
//!
//! The mask sources differ only in their manifest and entry names:
//! - **Subsets** of examples: `"kind": "subsets"` with `spec`.
//! - **Group subsets** (MATH.md E5): subset `j` drops `max(1, round(p K))` of the `K` groups, drawn
//!   exactly as [`subset_masks`] draws examples (with `K` in place of `n`); members of a dropped
//!   group get weight 0. The folder is `{spec slug}-groups-{grouping hash}-{output}-{split}` and the
//!   manifest has a `"groups": HASH` field, so two groupings never share a cache.
//! - **Leave-one-out**: `"kind": "loo"`, no `spec`, files `loo_{training index:05}.json`
//!   (`{"example": 7, "outputs": [...]}`), so different example lists share a cache.
//! - **A user's masks**: `"kind": "masks"` with `"masks": HASH` (of the masks), files like subsets.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::hash::fingerprint;
use nn::Output;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{invalid, Result};
use crate::files;
use crate::shard::Shard;
use crate::store::{self, Manifest};
use crate::subsets::{dropped_of, subset_masks, SubsetSpec};
use crate::{output_name, Run, Split, Targets};

/// Examples evaluated per forward pass by [`split_outputs`].
pub const CHUNK: usize = 1024;

/// Where the masks of a [`Retraining`] come from (module docs).
#[derive(Debug, Clone)]
pub enum MaskSource<'a> {
    /// Random subsets of the training set (MATH.md E6).
    Subsets(SubsetSpec),
    /// Random subsets of the groups of a partition, dropping whole groups (MATH.md E5).
    Groups {
        /// How the groups are drawn (`spec` counts groups).
        spec: SubsetSpec,
        /// Group of each training example, in `0..k`.
        assignment: &'a [usize],
        /// Number of groups.
        k: usize,
        /// Fingerprint of the grouping (recorded in the cache manifest).
        hash: String,
    },
    /// One retraining without each listed training example.
    LeaveOneOut(&'a [usize]),
    /// A user's masks over the training set, `true` = kept.
    Masks(&'a [Vec<bool>]),
}

/// One retraining computation (module docs): masks, measurement, cache, limit and progress.
#[derive(Clone)]
pub struct Retraining<'a> {
    /// The masks.
    pub masks: MaskSource<'a>,
    /// The measured output.
    pub output: Output,
    /// The split whose every example is measured.
    pub split: Split,
    /// A folder to store and resume from; `None` keeps nothing.
    pub cache: Option<&'a Path>,
    /// Stop after this many newly computed retrainings (the result is then incomplete).
    pub limit: Option<usize>,
    /// Called from worker threads as `(done, total)` when retrainings finish (cached ones count).
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
    /// Compute only this shard's retrainings (`j mod N == I`, [`Shard`]); the others are loaded
    /// when cached and otherwise left missing.
    pub shard: Option<Shard>,
    /// Trainer seeds per mask (MATH.md E6's two protocols): 1 measures the run's own
    /// deterministic retraining (same seed and order, E1); `K > 1` averages the outputs of the
    /// run and its members `1..K` ([`crate::members`]), each retrained on the mask, and `full`
    /// over their unmodified models, as the literature's LDS does.
    pub seeds: usize,
}

impl<'a> Retraining<'a> {
    /// Retrain on `masks` and measure `output` on `split`: no cache, no limit, silent.
    pub fn new(masks: MaskSource<'a>, output: Output, split: Split) -> Self {
        Retraining {
            masks,
            output,
            split,
            cache: None,
            limit: None,
            progress: &|_, _| {},
            shard: None,
            seeds: 1,
        }
    }

    /// Averages every measurement over `seeds` trainer seeds (1: the run's own; see
    /// [`Retraining::seeds`]).
    pub fn seeds(self, seeds: usize) -> Self {
        Retraining { seeds, ..self }
    }

    /// Computes only `shard`'s retrainings (`None`: all).
    pub fn shard(self, shard: Option<Shard>) -> Self {
        Retraining { shard, ..self }
    }

    /// Stores and resumes in `dir` (or keeps nothing for `None`).
    pub fn cache(self, dir: Option<&'a Path>) -> Self {
        Retraining { cache: dir, ..self }
    }

    /// Stops after `limit` newly computed retrainings (`None`: all).
    pub fn limit(self, limit: Option<usize>) -> Self {
        Retraining { limit, ..self }
    }

    /// Reports `(done, total)` as retrainings finish.
    pub fn progress(self, progress: &'a (dyn Fn(usize, usize) + Sync)) -> Self {
        Retraining { progress, ..self }
    }
}

/// The measured outputs of the full run and of each retraining.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrained {
    /// Training examples dropped (weight 0) by each retraining, ascending.
    pub dropped: Vec<Vec<usize>>,
    /// `f(S)`: outputs of the unmodified run for every example of the split.
    pub full: Vec<f64>,
    /// Outputs of each retraining, one value per example of the split; an EMPTY vector marks a
    /// retraining not computed yet.
    pub outputs: Vec<Vec<f64>>,
}

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
    grouping_hash: &str,
    output: Output,
    split: Split,
) -> PathBuf {
    run_dir.join(files::GROUNDTRUTH).join(format!(
        "{}-groups-{grouping_hash}-{}-{}",
        spec.slug(),
        output_name(output),
        split.name()
    ))
}

/// Canonical cache folder of brute-force LOO: `RUN/groundtruth/loo-{output}-{split}`.
pub fn loo_cache_dir(run_dir: &Path, output: Output, split: Split) -> PathBuf {
    run_dir
        .join(files::GROUNDTRUTH)
        .join(format!("loo-{}-{}", output_name(output), split.name()))
}

/// Masks over the training set, `true` = kept, of subsets that drop whole groups (MATH.md E5):
/// subset `j` drops the groups [`subset_masks`]`(k, spec)[j]` drops, with all their members.
pub fn group_subset_masks(assignment: &[usize], k: usize, spec: &SubsetSpec) -> Vec<Vec<bool>> {
    subset_masks(k, spec)
        .iter()
        .map(|gm| assignment.iter().map(|&g| gm[g]).collect())
        .collect()
}

/// Outputs `f` at `params` of every example of `split`, evaluated in f64 in chunks of [`CHUNK`].
pub fn split_outputs(run: &Run, params: &[f64], output: Output, split: Split) -> Vec<f64> {
    let n = run.target_count(split, output);
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

/// One cached retraining. Subset-like sources write `subset` and `dropped`, leave-one-out writes
/// `example`; the field order keeps the files of both byte for byte as they always were.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subset: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    example: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropped: Option<Vec<usize>>,
    outputs: Vec<Value>,
}

/// What a mask source expands to: the manifest's identifying fields, the entry names, and the
/// dropped examples of each retraining.
struct Plan {
    kind: &'static str,
    spec: Option<SubsetSpec>,
    groups: Option<String>,
    masks: Option<String>,
    /// `"subset"` or `"loo"`: entry file prefix and which identity field the entries carry.
    prefix: &'static str,
    /// Per retraining: the index in its file name (subset index, or the left-out example).
    ids: Vec<usize>,
    dropped: Vec<Vec<usize>>,
}

impl Plan {
    /// Validates `source` for a training set of `n` and expands it.
    fn new(source: &MaskSource, n: usize) -> Result<Plan> {
        let subsets = |kind, spec, groups, masks: &[Vec<bool>], hash| Plan {
            kind,
            spec,
            groups,
            masks: hash,
            prefix: "subset",
            ids: (0..masks.len()).collect(),
            dropped: masks.iter().map(|m| dropped_of(m)).collect(),
        };
        Ok(match source {
            &MaskSource::Subsets(spec) => {
                spec.validate(n)?;
                subsets("subsets", Some(spec), None, &subset_masks(n, &spec), None)
            }
            MaskSource::Groups {
                spec,
                assignment,
                k,
                hash,
            } => {
                if assignment.len() != n {
                    return Err(invalid(
                        "groups",
                        format!(
                            "the grouping covers {} examples but the training set has {n}; make it for this run with `attrib group`",
                            assignment.len()
                        ),
                    ));
                }
                spec.validate(*k)?;
                let masks = group_subset_masks(assignment, *k, spec);
                subsets("subsets", Some(*spec), Some(hash.clone()), &masks, None)
            }
            MaskSource::Masks(masks) => {
                if let Some(j) = masks.iter().position(|m| m.len() != n) {
                    return Err(invalid(
                        "masks",
                        format!(
                            "mask {j} has {} entries for a training set of {n}; give one entry per training example",
                            masks[j].len()
                        ),
                    ));
                }
                let bytes: Vec<u8> = masks.iter().flatten().map(|&k| k as u8).collect();
                let hash = fingerprint(&[&(n as u64).to_le_bytes(), &bytes]);
                subsets("masks", None, None, masks, Some(hash))
            }
            MaskSource::LeaveOneOut(examples) => {
                let mut seen = HashSet::new();
                for &i in *examples {
                    if i >= n {
                        return Err(invalid(
                            "examples",
                            format!("training index {i} is outside the training set of {n}; use indices 0..{n}"),
                        ));
                    }
                    if !seen.insert(i) {
                        return Err(invalid(
                            "examples",
                            format!("training index {i} is listed twice; list each example once"),
                        ));
                    }
                }
                Plan {
                    kind: "loo",
                    spec: None,
                    groups: None,
                    masks: None,
                    prefix: "loo",
                    ids: examples.to_vec(),
                    dropped: examples.iter().map(|&i| vec![i]).collect(),
                }
            }
        })
    }

    fn entry(&self, j: usize, outputs: Vec<Value>) -> Entry {
        let loo = self.prefix == "loo";
        Entry {
            subset: (!loo).then_some(self.ids[j]),
            example: loo.then_some(self.ids[j]),
            dropped: (!loo).then(|| self.dropped[j].clone()),
            outputs,
        }
    }

    /// Checks that a cached entry is retraining `j`'s.
    fn check(&self, path: &Path, j: usize, e: &Entry) -> Result<()> {
        let id = self.ids[j];
        if self.prefix == "loo" {
            if e.example != Some(id) {
                return Err(store::corrupt(
                    path,
                    &format!("it says example {} where {id} belongs", shown(e.example)),
                ));
            }
        } else {
            if e.subset != Some(id) {
                return Err(store::corrupt(
                    path,
                    &format!("it says subset {} where {id} belongs", shown(e.subset)),
                ));
            }
            if e.dropped.as_ref() != Some(&self.dropped[j]) {
                return Err(store::corrupt(
                    path,
                    "its dropped examples differ from the subset's",
                ));
            }
        }
        Ok(())
    }
}

/// An entry's identity field for messages.
fn shown(id: Option<usize>) -> String {
    id.map_or_else(|| "none".into(), |i| i.to_string())
}

/// Retrains the run on every mask of `r.masks` (data weights 0 for dropped examples, 1 for the
/// rest, MATH.md E1) and measures `r.output` on every example of `r.split`, in parallel, cached
/// in and resumed from `r.cache` (module docs).
///
/// # Errors
/// An invalid source (a bad subset spec, an index outside the training set or listed twice, a
/// grouping or mask of another size), an empty split, a cache folder of another computation or a
/// corrupt cache file, I/O errors, or training errors.
pub fn retrain(run: &Run, r: &Retraining) -> Result<Retrained> {
    let n = run.n_train();
    let plan = Plan::new(&r.masks, n)?;
    let n_split = run.target_count(r.split, r.output);
    if n_split == 0 {
        return Err(invalid(
            "split",
            format!(
                "the {} split is empty; measure another split",
                r.split.name()
            ),
        ));
    }
    if r.seeds == 0 {
        return Err(invalid(
            "seeds",
            "0 trainer seeds measure nothing; use 1 (the run's own retraining) or more",
        ));
    }
    // The run, then its members 1..seeds: each mask is retrained once per model and the outputs
    // averaged in this order, so the bits do not depend on threads or shards.
    let members = (1..r.seeds)
        .map(|m| crate::members::member(run, m))
        .collect::<Result<Vec<_>>>()?;
    let models: Vec<&Run> = std::iter::once(run).chain(&members).collect();
    let mean_of = |per_model: Vec<Vec<f64>>| -> Vec<f64> {
        if per_model.len() == 1 {
            return per_model.into_iter().next().expect("one model");
        }
        let k = per_model.len() as f64;
        (0..per_model[0].len())
            .map(|i| per_model.iter().map(|o| o[i]).sum::<f64>() / k)
            .collect()
    };
    let full = mean_of(
        models
            .iter()
            .map(|m| split_outputs(m, &m.params, r.output, r.split))
            .collect(),
    );
    let total = plan.ids.len();
    let mut outputs: Vec<Vec<f64>> = vec![Vec::new(); total];
    if let Some(dir) = r.cache {
        let manifest = Manifest {
            kind: plan.kind.into(),
            spec: plan.spec,
            groups: plan.groups.clone(),
            masks: plan.masks.clone(),
            output: output_name(r.output).into(),
            split: r.split.name().into(),
            run_hash: run.hash.clone(),
            n_train: n,
            n_split,
            seeds: (r.seeds > 1).then_some(r.seeds),
            attrib_version: env!("CARGO_PKG_VERSION").into(),
        };
        store::prepare(dir, &manifest, plan.prefix)?;
        for (j, out) in outputs.iter_mut().enumerate() {
            let path = store::entry_path(dir, plan.prefix, plan.ids[j]);
            if let Some(e) = store::read_entry::<Entry>(&path)? {
                plan.check(&path, j, &e)?;
                *out = store::decode_outputs(&path, &e.outputs, n_split)?;
            }
        }
    }

    let done = AtomicUsize::new(outputs.iter().filter(|o| !o.is_empty()).count());
    (r.progress)(done.load(Ordering::Relaxed), total);
    let todo: Vec<usize> = (0..total)
        .filter(|&j| outputs[j].is_empty() && r.shard.is_none_or(|s| s.owns(j)))
        .take(r.limit.unwrap_or(usize::MAX))
        .collect();
    let new = store::parallel(todo, |j| {
        // A subset of a weighted run keeps the run's weights on the examples it keeps (E7).
        let per_model = models
            .iter()
            .map(|m| {
                let params = m.retrain(&m.weights_without(&plan.dropped[j]))?;
                Ok(split_outputs(m, &params, r.output, r.split))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = mean_of(per_model);
        if let Some(dir) = r.cache {
            let entry = plan.entry(j, store::encode(&out));
            store::write_entry(&store::entry_path(dir, plan.prefix, plan.ids[j]), &entry)?;
        }
        (r.progress)(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        Ok(out)
    })?;
    for (j, out) in new {
        outputs[j] = out;
    }
    Ok(Retrained {
        dropped: plan.dropped,
        full,
        outputs,
    })
}

/// Subset ground truth (MATH.md E5, E6): [`retrain`] over a [`MaskSource::Subsets`] or
/// [`MaskSource::Groups`] source, with its masks and spec.
///
/// # Errors
/// As [`retrain`], and a source that is not a subset source.
pub fn ground_truth(run: &Run, r: &Retraining) -> Result<GroundTruth> {
    let spec = match &r.masks {
        MaskSource::Subsets(spec) | MaskSource::Groups { spec, .. } => *spec,
        _ => {
            return Err(invalid(
                "masks",
                "ground truth for the LDS needs random subsets (of examples or groups); use `retrain` for other masks",
            ))
        }
    };
    let done = retrain(run, r)?;
    let n = run.n_train();
    let masks = done
        .dropped
        .iter()
        .map(|d| {
            let mut m = vec![true; n];
            for &i in d {
                m[i] = false;
            }
            m
        })
        .collect();
    Ok(GroundTruth {
        spec,
        output: output_name(r.output).into(),
        split: r.split.name().into(),
        run_hash: run.hash.clone(),
        full: done.full,
        masks,
        outputs: done.outputs,
    })
}

/// The store kind of one retraining at given data weights (`RUN/store/retrain/KEY.f64`).
pub const RETRAIN_KIND: &str = "retrain";

/// The final parameters of `run`'s recipe retrained at data weights `w` (absolute, not relative
/// to the run's `w0`), from the run's store when present, else retrained and stored: the final
/// parameters as little-endian f64, keyed by the run and the weights' bits. Every "actual"
/// figure of the applications (`attrib select`, `unlearn`) comes from here, so reruns reuse it.
/// A run without a directory is not cached.
///
/// # Errors
/// Training errors, or the store's folder cannot be written.
pub fn retrain_cached(run: &Run, w: &[f64]) -> Result<Vec<f64>> {
    if let Some(params) = stored_retraining(run, w) {
        return Ok(params);
    }
    let params = run.retrain(w)?;
    let bytes: Vec<u8> = params.iter().flat_map(|p| p.to_le_bytes()).collect();
    crate::Store::of(run).put(&retrain_key(run, w), "f64", &bytes)?;
    Ok(params)
}

/// The final parameters that [`retrain_cached`] stored for data weights `w`, without training:
/// `None` when they are not in the run's store (or are not this model's size).
pub fn stored_retraining(run: &Run, w: &[f64]) -> Option<Vec<f64>> {
    let bytes = crate::Store::of(run).get(&retrain_key(run, w), "f64")?;
    (bytes.len() == 8 * run.model.layout().total()).then(|| {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    })
}

/// The store key of one retraining: the run and the weights' bits.
fn retrain_key(run: &Run, w: &[f64]) -> crate::Key {
    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
    crate::Key::for_run(RETRAIN_KIND, run).with("weights", bytes)
}
