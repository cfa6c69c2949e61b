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
use crate::scores::{ScoreMeta, ScoreWriter, Scores, SIGN};
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

    /// [`Method::attribute_timed`] with the rows handed to `sink` in target order, a block of
    /// targets at a time, instead of returned: a method that scores its targets block by block
    /// (MAGIC's reverse sweeps) need not hold every row (module `scores`, "Bounded memory"). The
    /// default hands all rows over at once.
    ///
    /// # Errors
    /// As [`Method::attribute`]; the sink's errors.
    fn attribute_streamed(
        &self,
        run: &Run,
        targets: &Targets,
        sink: &mut RowSink<'_>,
    ) -> Result<Option<f64>> {
        let (rows, seconds) = self.attribute_timed(run, targets)?;
        sink(&rows)?;
        Ok(seconds)
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

/// Receives the rows of a score matrix a block of targets at a time, in target order.
pub type RowSink<'a> = dyn FnMut(&[Vec<f64>]) -> Result<()> + 'a;

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
    check_block(method, block)?;
    scored(run, method, options, targets, None, block)
}

fn check_block(method: &dyn Method, block: usize) -> Result<()> {
    if block == 0 {
        return Err(MethodError::Unsupported {
            method: method.name().into(),
            reason: "a block of 0 targets scores nothing; give --target-block 1 or more".into(),
        });
    }
    Ok(())
}

/// [`attribute_in_blocks`], or [`attribute_groups`] with `groups`, writing the score file
/// `dir/stem.npy` + `stem.json` as the rows arrive ([`ScoreWriter`]): a method that scores in
/// blocks of targets (every per-target method, and MAGIC) holds one block of rows at a time, not
/// the whole matrix. The bytes are those of [`Scores::save`] on the matrix [`attribute_in_blocks`]
/// returns. Returns the path and the sidecar; a shard ([`MethodError::Incomplete`]) writes no
/// file.
///
/// # Errors
/// As [`attribute_in_blocks`] and [`attribute_groups`]; I/O errors naming the file.
#[allow(clippy::too_many_arguments)] // the computation's inputs, then where its file goes
pub fn attribute_to_file(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
    groups: Option<&Grouping>,
    block: usize,
    dir: &std::path::Path,
    stem: &str,
) -> Result<(std::path::PathBuf, ScoreMeta)> {
    check_block(method, block)?;
    if let Some(g) = groups {
        g.check_n(run.n_train())?;
    }
    let per_example = method.values_per_example(run);
    let shape = describe(run, method, options.clone(), targets, groups, 0.0).shape(per_example);
    // Created at the first block, so that a shard, which hands over no rows, leaves no file.
    let mut writer: Option<ScoreWriter> = None;
    let meta = scored_into(run, method, options, targets, groups, block, &mut |rows| {
        if writer.is_none() {
            writer = Some(ScoreWriter::create(dir, stem, &shape)?);
        }
        writer.as_mut().expect("created above").write_rows(rows)
    })?;
    let writer = match writer {
        Some(w) => w,
        // No targets: an empty matrix.
        None => ScoreWriter::create(dir, stem, &shape)?,
    };
    let path = writer.finish(&meta)?;
    Ok((path, meta))
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
    let mut values = Vec::new();
    let meta = scored_into(run, method, options, targets, groups, block, &mut |rows| {
        values.extend(rows.iter().flatten());
        Ok(())
    })?;
    Ok(Scores { values, meta })
}

/// The sidecar of `method`'s scores of `targets` (columns: the training set, or the groups of
/// `groups`), `seconds` to compute.
fn describe(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
    groups: Option<&Grouping>,
    seconds: f64,
) -> ScoreMeta {
    ScoreMeta {
        method: method.name().into(),
        options,
        run_hash: run.hash.clone(),
        output: output_name(targets.output).into(),
        split: targets.split.name().into(),
        targets: targets.indices.clone(),
        n_train: groups.map_or(run.n_train(), |g| g.k),
        groups: groups.map(Grouping::hash),
        seconds,
        attrib_version: env!("CARGO_PKG_VERSION").into(),
        sign: SIGN.into(),
        rows: match groups {
            None => crate::scores::ScoreRows::of_run(run, targets.split.name()),
            Some(_) => None,
        },
    }
}

/// Scores `targets`, handing the rows to `sink` in target order a block at a time, and returns
/// their sidecar.
fn scored_into(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
    groups: Option<&Grouping>,
    block: usize,
    sink: &mut RowSink<'_>,
) -> Result<ScoreMeta> {
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
    let n = groups.map_or(run.n_train(), |g| g.k);
    let mut handed = 0;
    let mut checked = |rows: &[Vec<f64>]| {
        assert!(
            rows.iter().all(|r| r.len() == n * per_example),
            "{} returned a score row of the wrong length",
            method.name()
        );
        handed += rows.len();
        sink(rows)
    };
    let compute_seconds = match groups {
        None if in_blocks => Some(crate::target_blocks::scores_in_blocks_into(
            run,
            method,
            &options,
            targets,
            block,
            &mut checked,
        )?),
        None => method.attribute_streamed(run, targets, &mut checked)?,
        Some(g) => {
            checked(&method.attribute_groups(run, targets, g)?)?;
            None
        }
    };
    assert!(
        handed == targets.indices.len(),
        "{} returned {handed} score rows for {} targets",
        method.name(),
        targets.indices.len()
    );
    let seconds = compute_seconds.unwrap_or_else(|| start.elapsed().as_secs_f64());
    Ok(describe(run, method, options, targets, groups, seconds))
}
