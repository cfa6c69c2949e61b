//! The linear datamodeling score (MATH.md E6) and the brute-force LOO comparison.
//!
//! Scores follow `tau_i = d f / d w_i`, so dropping the set `D_j` of subset `j` predicts
//! `f(S_j) ~ f(S) - sum_{i in D_j} tau_i`. The LDS of one target is the Spearman correlation, over
//! the `m` subsets, of these predictions with the measured `f(S_j)`; the report gives the mean over
//! targets with a bootstrap 95% interval. [`lds_groups`] is the group LDS (MATH.md E5): group
//! scores `tau_G` against subsets that drop whole groups, predicting `f(S) - sum_{G in D_j} tau_G`.

use rayon::prelude::*;
use serde::Serialize;

use methods::{Grouping, ScoreMeta, Scores};

use crate::error::{invalid, EvalError, Result};
use crate::loo::Loo;
use crate::stats::{bootstrap_mean_ci, mean, pearson, slope, spearman};
use run::subsets::dropped_of;
use run::GroundTruth;

/// Bootstrap resamples of the LDS interval.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;
/// Seed of the LDS bootstrap.
pub const BOOTSTRAP_SEED: u64 = 0;

/// Result of [`lds`] (MATH.md E6).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LdsReport {
    /// The method that produced the scores.
    pub method: String,
    /// Mean over targets of the per-target Spearman correlation (the LDS).
    pub lds: f64,
    /// Bootstrap 95% interval of that mean (1000 resamples over targets, seed 0).
    pub ci: (f64, f64),
    /// Mean over targets of the Pearson correlation of predicted and true `f(S_j)`.
    pub pearson: f64,
    /// Mean over targets of the least-squares slope of the true change `f(S_j) - f(S)` on the
    /// predicted change `-sum_{i in D_j} tau_i`: 1 = well calibrated, below 1 = overconfident scale.
    pub slope: f64,
    /// Per-target Spearman correlation, in score-row order.
    pub per_target: Vec<f64>,
    /// Number of targets.
    pub targets: usize,
    /// Number of subsets.
    pub subsets: usize,
}

/// What a score matrix is compared with.
struct Reference<'a> {
    what: &'a str,
    run_hash: &'a str,
    output: &'a str,
    split: &'a str,
    n_split: usize,
}

fn check(scores: &Scores, r: &Reference<'_>) -> Result<()> {
    check_meta(&scores.meta, r)?;
    check_values(scores)
}

/// The checks of [`check`] that need only the sidecar.
fn check_meta(m: &ScoreMeta, r: &Reference<'_>) -> Result<()> {
    let what = r.what;
    if m.run_hash != r.run_hash {
        return Err(EvalError::Mismatch(format!(
            "scores ({}) were computed for run {} but the {what} was measured on run {}; compare scores and {what} of the same run (recompute one of them)",
            m.method, m.run_hash, r.run_hash
        )));
    }
    if m.output != r.output {
        return Err(EvalError::Mismatch(format!(
            "scores ({}) explain output {} but the {what} measured {}; compute the {what} with output {} or score output {}",
            m.method, m.output, r.output, m.output, r.output
        )));
    }
    if m.split != r.split {
        return Err(EvalError::Mismatch(format!(
            "scores ({}) explain {} examples but the {what} measured the {} split; use the same split for both",
            m.method, m.split, r.split
        )));
    }
    if m.targets.is_empty() {
        return Err(EvalError::Mismatch(format!(
            "scores ({}) have no targets; score at least one target",
            m.method
        )));
    }
    if let Some(&t) = m.targets.iter().find(|&&t| t >= r.n_split) {
        return Err(EvalError::Mismatch(format!(
            "scores ({}) have target {t} but the {what} covers {} {} examples; score targets in 0..{}",
            m.method, r.n_split, r.split, r.n_split
        )));
    }
    Ok(())
}

/// That the matrix holds one row of `n_train` numbers per target of its sidecar.
fn check_values(scores: &Scores) -> Result<()> {
    let m = &scores.meta;
    if scores.values.len() != m.targets.len() * m.n_train {
        return Err(EvalError::Mismatch(format!(
            "scores ({}) hold {} values but describe {} targets x {} training examples; the score file is damaged, recompute it",
            m.method,
            scores.values.len(),
            m.targets.len(),
            m.n_train
        )));
    }
    Ok(())
}

/// The linear datamodeling score (MATH.md E6) of `scores` against measured subset retrainings.
///
/// For score row `r` (target `t = scores.meta.targets[r]`) and subset `j` dropping `D_j`: true
/// `f(S_j) = gt.outputs[j][t]`, predicted `gt.full[t] - sum_{i in D_j} tau[r][i]`; the per-target LDS
/// is their Spearman correlation over subsets. [`LdsStream`] computes the same report from a
/// score matrix read a block of rows at a time.
///
/// # Errors
/// Scores of another run, output, split or training-set size; targets outside the split; an
/// incomplete ground truth or one with fewer than 2 subsets.
pub fn lds(gt: &GroundTruth, scores: &Scores) -> Result<LdsReport> {
    let mut stream = LdsStream::new(gt, &scores.meta)?;
    stream.add(scores)?;
    stream.finish()
}

/// The group LDS (MATH.md E5, E6) of group scores (one column per group of `groups`) against a
/// ground truth whose subsets drop whole groups (`eval::group_subsets` with `run::ground_truth`): subset
/// `j` dropping the groups `D_j` predicts `f(S_j) ~ f(S) - sum_{G in D_j} tau_G`; the rest is as
/// in [`lds`].
///
/// # Errors
/// As [`lds`]; per-example scores or scores of another grouping; a ground truth over another
/// training set or one whose subsets split a group of `groups`.
pub fn lds_groups(gt: &GroundTruth, scores: &Scores, groups: &Grouping) -> Result<LdsReport> {
    let mut stream = LdsStream::groups(gt, &scores.meta, groups)?;
    stream.add(scores)?;
    stream.finish()
}

/// The LDS of a score matrix handed over a block of rows at a time, in row order (module
/// `methods::scores`, "Bounded memory"): it holds the ground truth and three numbers per target,
/// never the matrix. [`LdsStream::finish`] gives, to the bit, the report [`lds`] (or
/// [`lds_groups`]) gives for the whole matrix.
pub struct LdsStream<'a> {
    gt: &'a GroundTruth,
    meta: ScoreMeta,
    /// Per subset, the score columns it drops (examples or groups).
    dropped: Vec<Vec<usize>>,
    /// Per target row seen so far: (Spearman, Pearson, slope).
    rows: Vec<RowStats>,
}

impl<'a> LdsStream<'a> {
    /// The LDS of per-example scores described by `meta` against `gt`, as [`lds`].
    ///
    /// # Errors
    /// As [`lds`].
    pub fn new(gt: &'a GroundTruth, meta: &ScoreMeta) -> Result<LdsStream<'a>> {
        check_ground_truth(gt, meta)?;
        let n = meta.n_train;
        if meta.groups.is_some() {
            return Err(EvalError::Mismatch(format!(
                "scores ({}) are group scores (one column per group); compare them with a group ground truth (`attrib lds --groups FILE`)",
                meta.method
            )));
        }
        if let Some(j) = gt.masks.iter().position(|mask| mask.len() != n) {
            return Err(EvalError::Mismatch(format!(
                "scores ({}) have {n} training examples but subset {j} of the ground truth masks {}; they belong to different training sets",
                meta.method,
                gt.masks[j].len()
            )));
        }
        let dropped = gt.masks.iter().map(|mk| dropped_of(mk)).collect();
        Ok(LdsStream::with(gt, meta, dropped))
    }

    /// The group LDS of group scores described by `meta` against `gt`, as [`lds_groups`].
    ///
    /// # Errors
    /// As [`lds_groups`].
    pub fn groups(
        gt: &'a GroundTruth,
        meta: &ScoreMeta,
        groups: &Grouping,
    ) -> Result<LdsStream<'a>> {
        check_ground_truth(gt, meta)?;
        let want = groups.hash();
        if meta.groups.as_deref() != Some(want.as_str()) || meta.n_train != groups.k {
            return Err(EvalError::Mismatch(format!(
                "scores ({}) have {} columns for grouping {} but the grouping is {want} with {} groups ({}); score the same grouping (`attrib attribute --groups FILE`)",
                meta.method,
                meta.n_train,
                meta.groups.as_deref().unwrap_or("none (per-example scores)"),
                groups.k,
                groups.how
            )));
        }
        let members = groups.members();
        let mut dropped = Vec::with_capacity(gt.masks.len());
        for (j, mask) in gt.masks.iter().enumerate() {
            if mask.len() != groups.n() {
                return Err(EvalError::Mismatch(format!(
                    "the grouping covers {} training examples but subset {j} of the ground truth masks {}; they belong to different training sets",
                    groups.n(),
                    mask.len()
                )));
            }
            let mut d = Vec::new();
            for (g, m) in members.iter().enumerate() {
                let kept = m.iter().filter(|&&i| mask[i]).count();
                if kept == 0 {
                    d.push(g);
                } else if kept != m.len() {
                    return Err(EvalError::Mismatch(format!(
                        "subset {j} of the ground truth drops part of group {g}; compare group scores with a ground truth that drops whole groups of this grouping (`attrib groundtruth --groups FILE`)"
                    )));
                }
            }
            dropped.push(d);
        }
        Ok(LdsStream::with(gt, meta, dropped))
    }

    fn with(gt: &'a GroundTruth, meta: &ScoreMeta, dropped: Vec<Vec<usize>>) -> LdsStream<'a> {
        LdsStream {
            gt,
            rows: Vec::with_capacity(meta.targets.len()),
            meta: meta.clone(),
            dropped,
        }
    }

    /// Adds the next rows of the matrix: `block`'s targets must be the next ones of the sidecar
    /// the stream was made with.
    ///
    /// # Errors
    /// A block whose targets are not the next ones, or whose values are not whole rows.
    pub fn add(&mut self, block: &Scores) -> Result<()> {
        check_values(block)?;
        let done = self.rows.len();
        let want = self.meta.targets.get(done..done + block.rows());
        if want != Some(block.meta.targets.as_slice()) || block.meta.n_train != self.meta.n_train {
            return Err(EvalError::Mismatch(format!(
                "a block of {} rows of scores ({}) with {} columns does not continue the {}-column matrix after its row {done}; read the rows of one score file in order",
                block.rows(),
                block.meta.method,
                block.meta.n_train,
                self.meta.n_train
            )));
        }
        let (gt, dropped) = (self.gt, &self.dropped);
        let stats: Vec<RowStats> = (0..block.rows())
            .into_par_iter()
            .map(|r| {
                let t = block.meta.targets[r];
                let tau = block.row(r);
                row_stats(dropped.len(), |truth, sums| {
                    for (j, d) in dropped.iter().enumerate() {
                        sums.push(d.iter().map(|&i| tau[i]).sum());
                        truth.push(gt.outputs[j][t]);
                    }
                    gt.full[t]
                })
            })
            .collect();
        self.rows.extend(stats);
        Ok(())
    }

    /// The report, once every row has been added.
    ///
    /// # Errors
    /// Rows still missing.
    pub fn finish(self) -> Result<LdsReport> {
        if self.rows.len() != self.meta.targets.len() {
            return Err(EvalError::Mismatch(format!(
                "scores ({}) describe {} targets but only {} rows were read; the score file is damaged, recompute it",
                self.meta.method,
                self.meta.targets.len(),
                self.rows.len()
            )));
        }
        Ok(report(&self.meta.method, self.dropped.len(), &self.rows))
    }
}

/// The checks [`lds`] and [`lds_groups`] share: same run, output and split, a complete ground
/// truth of at least 2 subsets with outputs of the right length.
fn check_ground_truth(gt: &GroundTruth, meta: &ScoreMeta) -> Result<()> {
    let n_split = gt.full.len();
    check_meta(
        meta,
        &Reference {
            what: "ground truth",
            run_hash: &gt.run_hash,
            output: &gt.output,
            split: &gt.split,
            n_split,
        },
    )?;
    if !gt.is_complete() {
        return Err(EvalError::Incomplete {
            done: gt.done(),
            total: gt.masks.len(),
        });
    }
    let m = gt.masks.len();
    if m < 2 {
        return Err(invalid(
            "ground truth",
            format!("{m} subset; the LDS needs at least 2 (100 or more for a stable value)"),
        ));
    }
    if let Some(j) = gt.outputs.iter().position(|o| o.len() != n_split) {
        return Err(EvalError::Mismatch(format!(
            "ground-truth subset {j} has {} outputs but the full run has {n_split}; recompute the ground truth",
            gt.outputs[j].len()
        )));
    }
    Ok(())
}

/// One target's (Spearman, Pearson, slope) of MATH.md E6.
type RowStats = (f64, f64, f64);

/// The statistics of one target over `m` subsets. `measure(truth, sums)` pushes, for each subset
/// `j` in order, the retrained output `f(S_j)` to `truth` and the sum of the scores of the
/// examples `S_j` drops to `sums`, and returns `f(S)`.
fn row_stats(m: usize, measure: impl FnOnce(&mut Vec<f64>, &mut Vec<f64>) -> f64) -> RowStats {
    let mut truth = Vec::with_capacity(m);
    let mut sums = Vec::with_capacity(m);
    let f0 = measure(&mut truth, &mut sums);
    let predicted: Vec<f64> = sums.iter().map(|s| f0 - s).collect();
    let true_change: Vec<f64> = truth.iter().map(|y| y - f0).collect();
    let predicted_change: Vec<f64> = sums.iter().map(|s| -s).collect();
    (
        spearman(&truth, &predicted),
        pearson(&truth, &predicted),
        slope(&predicted_change, &true_change),
    )
}

/// The report of per-target statistics over `m` subsets.
fn report(method: &str, m: usize, rows: &[RowStats]) -> LdsReport {
    let per_target: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let pearsons: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let slopes: Vec<f64> = rows.iter().map(|r| r.2).collect();
    LdsReport {
        method: method.to_string(),
        lds: mean(&per_target),
        ci: bootstrap_mean_ci(&per_target, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
        pearson: mean(&pearsons),
        slope: mean(&slopes),
        targets: per_target.len(),
        subsets: m,
        per_target,
    }
}

/// The LDS report of `rows` targets over `m` subsets (MATH.md E6). `measure(r, truth, sums)`
/// pushes, for target row `r` and each subset `j` in order, the retrained output `f_r(S_j)` to
/// `truth` and the sum of the scores of the examples `S_j` drops to `sums`, and returns `f_r(S)`.
pub(crate) fn lds_report(
    method: &str,
    m: usize,
    rows: usize,
    measure: impl Fn(usize, &mut Vec<f64>, &mut Vec<f64>) -> f64 + Sync,
) -> LdsReport {
    let stats: Vec<RowStats> = (0..rows)
        .into_par_iter()
        .map(|r| row_stats(m, |truth, sums| measure(r, truth, sums)))
        .collect();
    report(method, m, &stats)
}

/// Brute-force LOO comparison (MATH.md E6): per target, the Pearson and Spearman correlation over
/// the left-out examples `k` of the true change `f(S \ {z_k}) - f(S)` with the predicted `-tau_k`;
/// returns `(pearson, spearman)` averaged over targets.
///
/// # Errors
/// Scores of another run, output or split, targets outside the split, or left-out examples
/// outside the scores' training set.
pub fn loo_correlation(loo: &Loo, scores: &Scores) -> Result<(f64, f64)> {
    check(
        scores,
        &Reference {
            what: "leave-one-out ground truth",
            run_hash: &loo.run_hash,
            output: &loo.output,
            split: &loo.split,
            n_split: loo.full.len(),
        },
    )?;
    let n = scores.meta.n_train;
    if let Some(&i) = loo.examples.iter().find(|&&i| i >= n) {
        return Err(EvalError::Mismatch(format!(
            "the leave-one-out ground truth leaves out training example {i} but the scores ({}) cover {n} training examples",
            scores.meta.method
        )));
    }
    if loo.outputs.len() != loo.examples.len()
        || loo.outputs.iter().any(|o| o.len() != loo.full.len())
    {
        return Err(EvalError::Mismatch(
            "the leave-one-out ground truth has outputs of the wrong shape; recompute it".into(),
        ));
    }
    let (p, s): (Vec<f64>, Vec<f64>) = (0..scores.rows())
        .map(|r| {
            let t = scores.meta.targets[r];
            let tau = scores.row(r);
            let truth: Vec<f64> = (0..loo.examples.len()).map(|k| loo.change(t, k)).collect();
            let predicted: Vec<f64> = loo.examples.iter().map(|&i| -tau[i]).collect();
            (pearson(&truth, &predicted), spearman(&truth, &predicted))
        })
        .unzip();
    Ok((mean(&p), mean(&s)))
}
