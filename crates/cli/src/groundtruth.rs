//! `attrib groundtruth` and `attrib lds`: retrained subsets (cached in `RUN/groundtruth/`, resumable)
//! and the linear datamodeling score of score files against them (MATH.md E6).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use eval::{GroundTruth, SubsetKind, SubsetSpec};
use methods::{run::parse_output, Run, Scores, Split};

use crate::args::{GroundTruthArgs, LdsArgs, SubsetArgs};
use crate::output::{Event, LdsRow};
use crate::progress::Progress;
use crate::Ctx;

/// The subset specs named by `--drop`/`--keep`, `--subsets`, `--seed`.
fn specs(a: &SubsetArgs) -> Vec<SubsetSpec> {
    let mut out: Vec<SubsetSpec> = a
        .drop
        .iter()
        .map(|&f| SubsetSpec::drop(f, a.subsets, a.seed))
        .collect();
    out.extend(
        a.keep
            .iter()
            .map(|&f| SubsetSpec::keep(f, a.subsets, a.seed)),
    );
    if out.is_empty() {
        out.push(SubsetSpec::drop(0.01, a.subsets, a.seed));
    }
    out
}

fn split_of(s: crate::args::Split) -> Split {
    match s {
        crate::args::Split::Train => Split::Train,
        crate::args::Split::Test => Split::Test,
    }
}

/// Loads or computes (and caches) the ground truth of one spec.
pub(crate) fn ground_truth(
    run: &Run,
    dir: &Path,
    spec: &SubsetSpec,
    output: &str,
    split: Split,
    ctx: &Ctx,
) -> Result<GroundTruth> {
    let out = parse_output(output).map_err(anyhow::Error::msg)?;
    spec.validate(run.n_train())?;
    let cache = eval::cache_dir(dir, spec, out, split);
    let start = Instant::now();
    // limit = 0 loads what the cache holds without training, so the summary can say what was new.
    let cached = eval::compute(run, spec, out, split, Some(&cache), Some(0), &|_, _| {})?.done();
    let bar = Progress::count(
        spec.subsets,
        "retrained subsets",
        !ctx.out.quiet && !ctx.out.json,
    );
    bar.set(cached);
    let gt = eval::compute(run, spec, out, split, Some(&cache), None, &|done, _| {
        bar.set(done)
    })?;
    bar.finish();
    let computed = spec.subsets - cached;
    let seconds = start.elapsed().as_secs_f64();
    ctx.out.event(&Event::GroundTruth {
        path: cache.display().to_string(),
        subsets: spec.subsets,
        computed,
        seconds,
    })?;
    ctx.out.info(format!(
        "ground truth {} ({} subsets, {:.1} s)",
        cache.display(),
        spec.subsets,
        seconds
    ))?;
    Ok(gt)
}

/// Runs `attrib groundtruth`.
///
/// # Errors
/// Not a run directory, an invalid spec, a cache folder of another run, training errors.
pub fn run(args: &GroundTruthArgs, ctx: &Ctx) -> Result<()> {
    let run = Run::load(&args.run)?;
    for spec in specs(&args.subsets) {
        ground_truth(
            &run,
            &args.run,
            &spec,
            &args.output,
            split_of(args.split),
            ctx,
        )?;
    }
    Ok(())
}

/// The LDS table: a header before the first row, then one row per score file and ground truth.
#[derive(Default)]
pub(crate) struct LdsTable {
    header_printed: bool,
}

impl LdsTable {
    /// Prints (and emits as `lds` events) the LDS of each score file against `gt`.
    pub(crate) fn rows(
        &mut self,
        gt: &GroundTruth,
        spec: &SubsetSpec,
        scores: &[&(String, Scores)],
        ctx: &Ctx,
    ) -> Result<()> {
        if !self.header_printed {
            ctx.out.result(format!(
                "{:<16} {:>10} {:>7} {:>8}  {:<17} {:>8} {:>7} {:>9}",
                "scores",
                "subsets",
                "targets",
                "LDS",
                "95% interval",
                "pearson",
                "slope",
                "time (s)"
            ))?;
            self.header_printed = true;
        }
        let (kind, fraction) = match spec.kind {
            SubsetKind::Drop { fraction } => ("drop", fraction),
            SubsetKind::Keep { fraction } => ("keep", fraction),
        };
        for (path, s) in scores {
            let r = eval::lds(gt, s)?;
            let row = LdsRow {
                method: s.meta.method.clone(),
                scores: path.clone(),
                subsets_kind: kind,
                fraction,
                subsets: r.subsets,
                targets: r.targets,
                lds: r.lds,
                ci: r.ci,
                pearson: r.pearson,
                slope: r.slope,
                method_seconds: s.meta.seconds,
            };
            ctx.out.event(&Event::Lds(&row))?;
            // The file's stem: the method's name unless `attribute --name` chose another, so that
            // two runs of one method with different options stay apart.
            let label = std::path::Path::new(path.as_str())
                .file_stem()
                .map_or(row.method.clone(), |s| s.to_string_lossy().into_owned());
            ctx.out.result(format!(
                "{:<16} {:>4} {:>4.0}% {:>7} {:>8.3}  [{:>6.3}, {:>6.3}] {:>8.3} {:>7.3} {:>9.2}",
                label,
                kind,
                100.0 * fraction,
                row.targets,
                row.lds,
                row.ci.0,
                row.ci.1,
                row.pearson,
                row.slope,
                row.method_seconds
            ))?;
        }
        Ok(())
    }
}

/// Runs `attrib lds`: one table row per score file and subset spec.
///
/// # Errors
/// Unreadable or mismatched score files (another run, another output), ground-truth errors.
pub fn lds(args: &LdsArgs, ctx: &Ctx) -> Result<()> {
    let run = Run::load(&args.run)?;
    let scores: Vec<(String, Scores)> = args
        .scores
        .iter()
        .map(|p| {
            let s =
                Scores::load(p).with_context(|| format!("cannot read scores {}", p.display()))?;
            s.check_run(&run, p)?;
            Ok((p.display().to_string(), s))
        })
        .collect::<Result<_>>()?;
    let mut table = LdsTable::default();
    for spec in specs(&args.subsets) {
        // One ground truth per (spec, output, split) among the score files.
        let mut keys: Vec<(String, String)> = scores
            .iter()
            .map(|(_, s)| (s.meta.output.clone(), s.meta.split.clone()))
            .collect();
        keys.dedup();
        for (output, split) in keys {
            let split_v = if split == "train" {
                Split::Train
            } else {
                Split::Test
            };
            let gt = ground_truth(&run, &args.run, &spec, &output, split_v, ctx)?;
            let matching: Vec<&(String, Scores)> = scores
                .iter()
                .filter(|(_, s)| s.meta.output == output && s.meta.split == split)
                .collect();
            table.rows(&gt, &spec, &matching, ctx)?;
        }
    }
    Ok(())
}
