//! The one trait every attribution method implements, the [`Registration`] each method file
//! exports, and the runners that time a method and describe its scores.
//!
//! A new method is one file with a struct implementing [`Method`] and a `build` function reading its
//! options, plus one line in [`crate::registry::REGISTRY`] (kept in `estimators/mod.rs`).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::error::{MethodError, Result};
use crate::groups::Grouping;
use crate::options::Options;
use crate::scores::{ScoreMeta, Scores, SIGN};
use crate::target_blocks::TARGET_BLOCK;
use run::{output_name, Run, Targets};

/// An attribution method.
pub trait Method: Send + Sync {
    /// The registered name.
    fn name(&self) -> &'static str;

    /// Scores `tau[target][i] = d f_target / d w_i` for every target and training example
    /// (MATH.md sign convention; ranking-only methods may differ by a positive scale).
    ///
    /// # Errors
    /// When the run does not suit the method, or a solver fails.
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>>;

    /// Numbers per training example in each row that [`Method::attribute`] returns: 1 for
    /// data-weight scores (the default); `d`, the features per example, for a method that
    /// differentiates the training inputs instead (MAGIC with `wrt = inputs`, MATH.md E7 (b):
    /// rows `[n_train, d]` flat, saved as a `[targets, n_train, d]` array).
    fn values_per_example(&self, run: &Run) -> usize {
        let _ = run;
        1
    }

    /// [`Method::attribute`], with the seconds the scores took to compute when the method knows
    /// better than the wall time of this call: a method that assembles its scores from parts
    /// kept in the run's store (MAGIC's finished blocks, computed by earlier or sharded runs)
    /// reports the parts' own compute time, so a score file's `seconds` is the computation's cost
    /// however it was assembled. The default returns `None` (the caller times the call).
    ///
    /// # Errors
    /// As [`Method::attribute`].
    fn attribute_timed(
        &self,
        run: &Run,
        targets: &Targets,
    ) -> Result<(Vec<Vec<f64>>, Option<f64>)> {
        Ok((self.attribute(run, targets)?, None))
    }

    /// Group scores `tau[target][G] = d f_target / d w_G` for every group of `groups` (MATH.md
    /// E5: `w_G` scales all of `G`'s members). The default sums the per-example scores, which is
    /// exact for every method linear in the data weights; methods that can work with group
    /// gradients directly (cost in `K`, not `n`) override it.
    ///
    /// # Errors
    /// As [`Method::attribute`].
    fn attribute_groups(
        &self,
        run: &Run,
        targets: &Targets,
        groups: &Grouping,
    ) -> Result<Vec<Vec<f64>>> {
        groups.check_n(run.n_train())?;
        Ok(groups.sum_columns(&self.attribute(run, targets)?))
    }
}

/// A registered method: its name, a one-line summary, and how to build it from options.
pub struct Registration {
    /// Name used on the command line.
    pub name: &'static str,
    /// One line for `--help` and error messages.
    pub summary: &'static str,
    /// Reads the options (each getter documents its default) and builds the method.
    pub build: fn(&mut Options) -> Result<Box<dyn Method>>,
}

/// Runs a built method on a run and targets, timing it and describing the result.
///
/// # Errors
/// Invalid targets or the method's own errors.
pub fn attribute(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
) -> Result<Scores> {
    scored(run, method, options, targets, None, TARGET_BLOCK)
}

/// [`attribute`] with `block` targets per block of the sharded path ([`crate::target_blocks`]:
/// every method but those that shard their own work scores its targets block by block, keeps
/// finished blocks in the run's store, and under `Run::shard` scores only its own blocks).
///
/// # Errors
/// As [`attribute`]; `block` is 0; [`MethodError::Incomplete`] for a shard.
pub fn attribute_in_blocks(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
    block: usize,
) -> Result<Scores> {
    if block == 0 {
        return Err(MethodError::Unsupported {
            method: method.name().into(),
            reason: "a block of 0 targets scores nothing; give --target-block 1 or more".into(),
        });
    }
    scored(run, method, options, targets, None, block)
}

/// [`attribute`] for the groups of a grouping ([`Method::attribute_groups`]): one column per
/// group, the grouping's hash in the sidecar.
///
/// # Errors
/// Invalid targets, a grouping of another training set, or the method's own errors.
pub fn attribute_groups(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
    groups: &Grouping,
) -> Result<Scores> {
    groups.check_n(run.n_train())?;
    scored(run, method, options, targets, Some(groups), TARGET_BLOCK)
}

/// Whether `method` returns more than one value per training example (input derivatives).
fn per_example_inputs(method: &dyn Method, run: &Run) -> bool {
    method.values_per_example(run) != 1
}

fn scored(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
    groups: Option<&Grouping>,
    block: usize,
) -> Result<Scores> {
    run.check_targets(targets)?;
    let per_example = method.values_per_example(run);
    if groups.is_some() && per_example != 1 {
        return Err(MethodError::Unsupported {
            method: method.name().into(),
            reason:
                "input derivatives are per example and feature; drop --groups (or the wrt option)"
                    .into(),
        });
    }
    // Methods that shard their own work do it; every other per-example score matrix is scored in
    // blocks of targets (`target_blocks`); group scores and input derivatives are one call.
    let own_shards = crate::registry::SHARDABLE.contains(&method.name());
    let in_blocks = !own_shards && groups.is_none() && per_example == 1;
    if let Some(shard) = run.shard {
        if !own_shards && !in_blocks {
            let what = match groups {
                Some(_) => "group scores (--groups)",
                None => "input derivatives",
            };
            return Err(MethodError::Unsupported {
                method: method.name().into(),
                reason: format!(
                    "{what} do not split into shards (asked for shard {shard}); drop --shard, or \
                     split the targets with --targets and join the files with `attrib merge`"
                ),
            });
        }
        if own_shards && per_example_inputs(method, run) {
            return Err(MethodError::Unsupported {
                method: method.name().into(),
                reason: format!(
                    "input derivatives do not split into shards (asked for shard {shard}); drop \
                     --shard, or split the targets with --targets and join the files with \
                     `attrib merge`"
                ),
            });
        }
    }
    let start = Instant::now();
    let (rows, compute_seconds) = match groups {
        None if in_blocks => {
            let (rows, seconds) =
                crate::target_blocks::scores_in_blocks(run, method, &options, targets, block)?;
            (rows, Some(seconds))
        }
        None => method.attribute_timed(run, targets)?,
        Some(g) => (method.attribute_groups(run, targets, g)?, None),
    };
    let seconds = compute_seconds.unwrap_or_else(|| start.elapsed().as_secs_f64());
    let n = groups.map_or(run.n_train(), |g| g.k);
    assert!(
        rows.len() == targets.indices.len() && rows.iter().all(|r| r.len() == n * per_example),
        "{} returned a score matrix of the wrong shape",
        method.name()
    );
    Ok(Scores {
        values: rows.into_iter().flatten().collect(),
        meta: ScoreMeta {
            method: method.name().into(),
            options,
            run_hash: run.hash.clone(),
            output: output_name(targets.output).into(),
            split: targets.split.name().into(),
            targets: targets.indices.clone(),
            n_train: n,
            groups: groups.map(Grouping::hash),
            seconds,
            attrib_version: env!("CARGO_PKG_VERSION").into(),
            sign: SIGN.into(),
            rows: match groups {
                None => crate::scores::ScoreRows::of_run(run, targets.split.name()),
                Some(_) => None,
            },
        },
    })
}
