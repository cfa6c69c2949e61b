//! `attrib groundtruth` and `attrib lds`: retrained subsets (cached in `RUN/groundtruth/`, resumable)
//! and the linear datamodeling score of score files against them (MATH.md E6).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use methods::{Grouping, ScoreFile, Scores};
use run::retrain::{cache_dir, group_cache_dir, MaskSource, Retraining};
use run::{parse_output, Run, Shard, Split};
use run::{GroundTruth, SubsetKind, SubsetSpec};

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
    Split::from(s)
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
    let want = Wanted {
        spec,
        groups: None,
        output,
        split,
        shard: None,
        seeds: 1,
    };
    ground_truth_of(run, dir, &want, ctx, false)
}

/// Which ground truth to load or compute.
pub(crate) struct Wanted<'a> {
    /// The subsets.
    pub spec: &'a SubsetSpec,
    /// Drop whole groups of this grouping (group LDS, MATH.md E5).
    pub groups: Option<&'a Grouping>,
    /// The measured output's name.
    pub output: &'a str,
    /// The measured split.
    pub split: Split,
    /// Compute only this shard's subsets (the result is then incomplete).
    pub shard: Option<Shard>,
    /// Trainer seeds averaged per subset (1: the single-model protocol).
    pub seeds: usize,
}

/// [`ground_truth`] for any [`Wanted`]: group subsets, one shard. The summary line is a result
/// (printed under `--quiet`) when `summary_is_result`, as for `attrib groundtruth`, and chatter
/// otherwise (a step of `lds` or `demo`).
pub(crate) fn ground_truth_of(
    run: &Run,
    dir: &Path,
    want: &Wanted<'_>,
    ctx: &Ctx,
    summary_is_result: bool,
) -> Result<GroundTruth> {
    let Wanted {
        spec,
        groups,
        output,
        split,
        shard,
        seeds,
    } = *want;
    let out = parse_output(output).map_err(anyhow::Error::msg)?;
    let (cache, source) = match groups {
        Some(g) => {
            let source = eval::group_subsets(run, g, *spec)?;
            spec.validate(g.k)
                .with_context(|| format!("--drop counts the {} groups of --groups", g.k))?;
            (group_cache_dir(dir, spec, &g.hash(), out, split), source)
        }
        None => {
            spec.validate(run.n_train())?;
            (cache_dir(dir, spec, out, split), MaskSource::Subsets(*spec))
        }
    };
    let cache = seeded_cache_dir(cache, seeds);
    let retraining = Retraining::new(source, out, split)
        .cache(Some(&cache))
        .shard(shard)
        .seeds(seeds);
    let compute = |limit: Option<usize>, progress: &(dyn Fn(usize, usize) + Sync)| {
        run::ground_truth(run, &retraining.clone().limit(limit).progress(progress))
    };
    let start = Instant::now();
    // limit = 0 loads what the cache holds without training, so the summary can say what was new.
    let cached = compute(Some(0), &|_, _| {})?.done();
    let bar = Progress::count(
        spec.subsets,
        "retrained subsets",
        !ctx.out.quiet && !ctx.out.json,
    );
    bar.set(cached);
    let gt = compute(None, &|done, _| bar.set(done))?;
    bar.finish();
    let done = gt.done();
    let computed = done - cached;
    let seconds = start.elapsed().as_secs_f64();
    ctx.out.event(&Event::GroundTruth {
        path: cache.display().to_string(),
        subsets: spec.subsets,
        computed,
        done,
        shard: shard.map(|s| s.to_string()),
        seconds,
    })?;
    let line = match shard {
        None => format!(
            "ground truth {} ({} subsets, {computed} computed now, {:.1} s)",
            cache.display(),
            spec.subsets,
            seconds
        ),
        Some(s) => format!(
            "ground truth {} shard {s}: {computed} subsets computed, {done} of {} present \
             ({:.1} s); run `attrib groundtruth` without a shard to compute what is missing",
            cache.display(),
            spec.subsets,
            seconds
        ),
    };
    if summary_is_result {
        ctx.out.result(line)?;
    } else {
        ctx.out.info(line)?;
    }
    Ok(gt)
}

/// The ground-truth folder of `seeds` averaged trainer seeds: `dir` itself for the single-model
/// protocol, `dir-seedsK` otherwise.
fn seeded_cache_dir(dir: std::path::PathBuf, seeds: usize) -> std::path::PathBuf {
    if seeds <= 1 {
        return dir;
    }
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!("-seeds{seeds}"));
    dir.with_file_name(name)
}

/// The line that says which LDS protocol a table uses (MATH.md E6).
pub(crate) fn protocol(seeds: usize) -> String {
    if seeds <= 1 {
        "protocol: single model - each subset is the run's own retraining, same seed and order \
         (MATH.md E1); --seeds K averages K trainer seeds"
            .into()
    } else {
        format!(
            "protocol: {seeds} trainer seeds - each subset's outputs are the mean of {seeds} \
             retrainings with different seeds, as in the literature's LDS"
        )
    }
}

/// The grouping of `--groups`, checked against the run.
fn load_groups(path: Option<&Path>, run: &Run) -> Result<Option<Grouping>> {
    path.map(|p| {
        let g = Grouping::load(p)?;
        g.check_n(run.n_train())
            .with_context(|| format!("--groups {}", p.display()))?;
        Ok(g)
    })
    .transpose()
}

/// Runs `attrib groundtruth`.
///
/// # Errors
/// Not a run directory, an invalid spec, a cache folder of another run, training errors.
pub fn run(args: &GroundTruthArgs, ctx: &Ctx) -> Result<()> {
    let run = Run::load(&args.run)?;
    let groups = load_groups(args.groups.as_deref(), &run)?;
    let shard = match args.shard {
        Some(s) => Some(s),
        None => Shard::from_env()?,
    };
    for spec in specs(&args.subsets) {
        let want = Wanted {
            spec: &spec,
            groups: groups.as_ref(),
            output: &args.output,
            split: split_of(args.split),
            shard,
            seeds: args.subsets.seeds,
        };
        ground_truth_of(&run, &args.run, &want, ctx, true)?;
    }
    Ok(())
}

/// `("drop" | "keep", fraction)` of a subset spec, as the LDS table and its events name it.
fn kind_and_fraction(spec: &SubsetSpec) -> (&'static str, f64) {
    match spec.kind {
        SubsetKind::Drop { fraction } => ("drop", fraction),
        SubsetKind::Keep { fraction } => ("keep", fraction),
    }
}

/// The LDS table: a header before the first row, then one row per score file and ground truth.
#[derive(Default)]
pub(crate) struct LdsTable {
    header_printed: bool,
}

impl LdsTable {
    /// Prints (and emits as `lds` events) the LDS of each score file against `gt`, and returns
    /// the reports in the order of `scores`.
    pub(crate) fn rows(
        &mut self,
        gt: &GroundTruth,
        spec: &SubsetSpec,
        scores: &[&(String, Scores)],
        ctx: &Ctx,
    ) -> Result<Vec<eval::LdsReport>> {
        self.rows_of(gt, spec, None, scores, ctx)
    }

    /// [`LdsTable::rows`]; with `groups`, the group LDS of group scores of that grouping.
    pub(crate) fn rows_of(
        &mut self,
        gt: &GroundTruth,
        spec: &SubsetSpec,
        groups: Option<&Grouping>,
        scores: &[&(String, Scores)],
        ctx: &Ctx,
    ) -> Result<Vec<eval::LdsReport>> {
        let mut reports = Vec::with_capacity(scores.len());
        for (path, s) in scores {
            let r = match groups {
                Some(g) => eval::lds_groups(gt, s, g)?,
                None => eval::lds(gt, s)?,
            };
            self.row(spec, path, &s.meta, &r, ctx)?;
            reports.push(r);
        }
        Ok(reports)
    }

    /// [`LdsTable::rows_of`] for score files read a block of rows at a time (module
    /// `methods::scores`, "Bounded memory"): per-example files are summed into group scores block
    /// by block when `groups` is given.
    pub(crate) fn file_rows(
        &mut self,
        gt: &GroundTruth,
        spec: &SubsetSpec,
        groups: Option<&Grouping>,
        files: &[&ScoreFile],
        ctx: &Ctx,
    ) -> Result<Vec<eval::LdsReport>> {
        let mut reports = Vec::with_capacity(files.len());
        for file in files {
            let (r, meta) = lds_and_meta(gt, file, groups)?;
            self.row(spec, &file.path.display().to_string(), &meta, &r, ctx)?;
            reports.push(r);
        }
        Ok(reports)
    }

    /// Prints (and emits as an `lds` event) the table's row for the scores at `path`.
    fn row(
        &mut self,
        spec: &SubsetSpec,
        path: &str,
        meta: &methods::ScoreMeta,
        r: &eval::LdsReport,
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
        let (kind, fraction) = kind_and_fraction(spec);
        let row = LdsRow {
            method: meta.method.clone(),
            scores: path.to_string(),
            subsets_kind: kind,
            fraction,
            subsets: r.subsets,
            targets: r.targets,
            lds: r.lds,
            ci: r.ci,
            pearson: r.pearson,
            slope: r.slope,
            method_seconds: meta.seconds,
        };
        ctx.out.event(&Event::Lds(&row))?;
        // The file's stem: the method's name unless `attribute --name` chose another, so that
        // two runs of one method with different options stay apart.
        let label = std::path::Path::new(path)
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
        Ok(())
    }
}

/// Runs `attrib lds`: one table row per score file and subset spec.
///
/// # Errors
/// Unreadable or mismatched score files (another run, another output), ground-truth errors.
pub fn lds(args: &LdsArgs, ctx: &Ctx) -> Result<()> {
    if args.masks.is_some() {
        return crate::lds_external::run(args, ctx);
    }
    if !args.runs.is_empty() {
        return lds_runs(args, ctx);
    }
    let run_dir = args
        .run
        .as_deref()
        .context("attrib lds needs --run DIR, or --masks and --outputs for outside ground truth")?;
    let run = Run::load(run_dir)?;
    let groups = load_groups(args.groups.as_deref(), &run)?;
    // Opened, not read: each file's rows are streamed per table row (module `methods::scores`).
    let files: Vec<ScoreFile> = args
        .scores
        .iter()
        .map(|p| {
            let f = ScoreFile::open(p)
                .with_context(|| format!("cannot read scores {}", p.display()))?;
            match &groups {
                Some(g) if f.meta.groups.is_some() => f.meta.check_groups(&run, g, p)?,
                _ => f.meta.check_run(&run, p)?,
            }
            Ok(f)
        })
        .collect::<Result<_>>()?;
    ctx.out.info(protocol(args.subsets.seeds))?;
    let mut table = LdsTable::default();
    for spec in specs(&args.subsets) {
        // One ground truth per (spec, output, split) among the score files.
        let mut keys: Vec<(String, String)> = files
            .iter()
            .map(|f| (f.meta.output.clone(), f.meta.split.clone()))
            .collect();
        keys.dedup();
        for (output, split) in keys {
            let split_v = Split::from_name(&split).unwrap_or(Split::Test);
            let want = Wanted {
                spec: &spec,
                groups: groups.as_ref(),
                output: &output,
                split: split_v,
                shard: None,
                seeds: args.subsets.seeds,
            };
            let gt = ground_truth_of(&run, run_dir, &want, ctx, false)?;
            let matching: Vec<&ScoreFile> = files
                .iter()
                .filter(|f| f.meta.output == output && f.meta.split == split)
                .collect();
            table.file_rows(&gt, &spec, groups.as_ref(), &matching, ctx)?;
        }
    }
    Ok(())
}

/// `attrib lds --runs R1,R2,...`: each run's LDS table, then each score name's mean, spread and
/// range over the runs (issue 20: one run's bootstrap interval resamples targets, not runs).
fn lds_runs(args: &LdsArgs, ctx: &Ctx) -> Result<()> {
    ctx.out.info(protocol(args.subsets.seeds))?;
    let specs = specs(&args.subsets);
    // lds[score name][spec] = one value per run.
    let mut values = vec![vec![Vec::new(); specs.len()]; args.scores.len()];
    let mut widths = vec![vec![Vec::new(); specs.len()]; args.scores.len()];
    let mut table = LdsTable::default();
    for run_dir in &args.runs {
        let run = Run::load(run_dir)?;
        for (k, name) in args.scores.iter().enumerate() {
            let path = run_dir.join(run::files::SCORES).join(name);
            let file = ScoreFile::open(&path).with_context(|| {
                format!(
                    "cannot read scores {} (--scores names a file in each run's scores/)",
                    path.display()
                )
            })?;
            file.meta.check_run(&run, &path)?;
            let split = Split::from_name(&file.meta.split).unwrap_or(Split::Test);
            for (q, spec) in specs.iter().enumerate() {
                let want = Wanted {
                    spec,
                    groups: None,
                    output: &file.meta.output,
                    split,
                    shard: None,
                    seeds: args.subsets.seeds,
                };
                let gt = ground_truth_of(&run, run_dir, &want, ctx, false)?;
                let [r] = &table.file_rows(&gt, spec, None, &[&file], ctx)?[..] else {
                    unreachable!("one score file, one report")
                };
                values[k][q].push(r.lds);
                widths[k][q].push((r.ci.1 - r.ci.0) / 2.0);
            }
        }
    }
    ctx.out.result(format!(
        "{:<16} {:>10} {:>5} {:>8} {:>7}  {:<17} {:>10}",
        "over runs", "subsets", "runs", "mean", "sd", "range", "run +-95%"
    ))?;
    for (k, name) in args.scores.iter().enumerate() {
        let name = name.display().to_string();
        for (q, spec) in specs.iter().enumerate() {
            let v = &values[k][q];
            let mean = eval::stats::mean(v);
            let sd = if v.len() > 1 {
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
            } else {
                0.0
            };
            let half = eval::stats::mean(&widths[k][q]);
            let (kind, fraction) = kind_and_fraction(spec);
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            ctx.out.event(&Event::LdsRuns {
                scores: &name,
                subsets_kind: kind,
                fraction,
                runs: v.len(),
                lds: v,
                mean,
                sd,
                ci_half_width: half,
            })?;
            let label = std::path::Path::new(&name)
                .file_stem()
                .map_or(name.clone(), |s| s.to_string_lossy().into_owned());
            ctx.out.result(format!(
                "{:<16} {:>4} {:>4.0}% {:>5} {:>8.3} {:>7.3}  [{:>6.3}, {:>6.3}] {:>10.3}",
                label,
                kind,
                100.0 * fraction,
                v.len(),
                mean,
                sd,
                lo,
                hi,
                half
            ))?;
        }
    }
    Ok(())
}

/// Per-example scores summed over the groups of `g` (`tau_G = sum_{i in G} tau_i`, MATH.md E5), as
/// group scores of `g` named `METHOD (summed)`.
fn summed(s: Scores, g: &Grouping) -> Scores {
    let rows: Vec<Vec<f64>> = (0..s.rows()).map(|r| s.row(r).to_vec()).collect();
    Scores {
        values: g.sum_columns(&rows).concat(),
        meta: summed_meta(s.meta, g),
    }
}

/// The LDS (with `groups`, the group LDS) of a score file against `gt`, read a block of rows at a
/// time: per-example scores are summed into group scores block by block when `groups` is given.
///
/// # Errors
/// As [`eval::lds`] and [`eval::lds_groups`]; unreadable rows.
pub(crate) fn lds_of_file(
    gt: &GroundTruth,
    file: &ScoreFile,
    groups: Option<&Grouping>,
) -> Result<eval::LdsReport> {
    Ok(lds_and_meta(gt, file, groups)?.0)
}

/// [`lds_of_file`] and the sidecar of the scores compared (renamed when summed).
fn lds_and_meta(
    gt: &GroundTruth,
    file: &ScoreFile,
    groups: Option<&Grouping>,
) -> Result<(eval::LdsReport, methods::ScoreMeta)> {
    let summing = groups.filter(|_| file.meta.groups.is_none());
    let meta = match summing {
        Some(g) => summed_meta(file.meta.clone(), g),
        None => file.meta.clone(),
    };
    let mut stream = match groups {
        Some(g) => eval::LdsStream::groups(gt, &meta, g)?,
        None => eval::LdsStream::new(gt, &meta)?,
    };
    for block in file.blocks() {
        let block = block?;
        match summing {
            Some(g) => stream.add(&summed(block, g))?,
            None => stream.add(&block)?,
        }
    }
    Ok((stream.finish()?, meta))
}

/// The sidecar of [`summed`] scores.
fn summed_meta(mut meta: methods::ScoreMeta, g: &Grouping) -> methods::ScoreMeta {
    meta.method = format!("{} (summed)", meta.method);
    meta.n_train = g.k;
    meta.groups = Some(g.hash());
    meta
}
