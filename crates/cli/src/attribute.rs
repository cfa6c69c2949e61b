//! `attrib attribute`, `attrib methods`: score matrices from a registered method, written to
//! `RUN/scores/NAME.npy` + `NAME.json` (format: `methods::scores`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use methods::{Grouping, Options, ScoreFile};
use run::{parse_output, Run, Split, Targets};

use crate::args::{AttributeArgs, MergeArgs};
use crate::output::Event;
use crate::progress::MethodBars;
use crate::Ctx;

/// Default number of test targets when `--targets` is not given.
pub const DEFAULT_TARGETS: usize = 50;

/// The targets named by the arguments: `--targets a..b` or the first [`DEFAULT_TARGETS`].
pub fn targets(
    run: &Run,
    range: Option<&str>,
    output: &str,
    split: crate::args::Split,
) -> Result<Targets> {
    let output = parse_output(output).map_err(anyhow::Error::msg)?;
    let split = Split::from(split);
    let len = run.target_count(split, output);
    let indices = match range {
        Some(r) => Targets::parse_range(r, split, len, output).map_err(anyhow::Error::msg)?,
        None => (0..len.min(DEFAULT_TARGETS)).collect(),
    };
    Ok(Targets {
        split,
        indices,
        output,
    })
}

/// Runs `attrib attribute`.
///
/// # Errors
/// Unknown method or option, targets outside the split, or the method's own errors.
pub fn run(args: &AttributeArgs, ctx: &Ctx) -> Result<()> {
    let options = Options::parse(&args.method, &args.option)?;
    let (method, used) = methods::build(&args.method, options)?;
    let mut run = Run::load(&args.run)?;
    run.shard = match args.shard {
        Some(s) => Some(s),
        None => run::Shard::from_env()?,
    };
    let bars = MethodBars::new(!ctx.out.quiet && !ctx.out.json);
    run.progress = bars.hook();
    let targets = targets(&run, args.targets.as_deref(), &args.output, args.split)?;
    ctx.out.info(format!(
        "{}: {} targets ({} {}), {} training examples",
        args.method,
        targets.indices.len(),
        targets.split.name(),
        args.output,
        run.n_train()
    ))?;
    let groups = args.groups.as_deref().map(Grouping::load).transpose()?;
    check_disk(args, &run, method.as_ref(), &targets, groups.as_ref(), ctx)?;
    if let Some(g) = &groups {
        ctx.out
            .info(format!("scoring {} groups ({})", g.k, g.how))?;
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let mut name = match &args.targets {
            None => args.method.clone(),
            Some(_) => format!(
                "{}@{}-{}",
                args.method,
                targets.indices[0],
                targets.indices[targets.indices.len() - 1] + 1
            ),
        };
        if let Some(g) = &groups {
            name.push_str(&format!("@groups-{}", g.hash()));
        }
        name
    });
    // The rows go to the file as each block of targets is scored (`methods::scores`, "Bounded
    // memory").
    let scored = methods::attribute_to_file(
        &run,
        method.as_ref(),
        used,
        &targets,
        groups.as_ref(),
        args.target_block,
        &args.run.join(run::files::SCORES),
        &name,
    );
    drop(bars);
    let (path, meta) = match scored {
        // A shard that stored its part has done its job: say so, write no score file.
        Err(e @ methods::MethodError::Incomplete { .. }) => {
            if let methods::MethodError::Incomplete {
                shard, done, total, ..
            } = &e
            {
                ctx.out.event(&Event::Shard {
                    method: &args.method,
                    shard: shard.clone(),
                    done: *done,
                    total: *total,
                })?;
            }
            ctx.out.info(e.to_string())?;
            return Ok(());
        }
        other => other?,
    };
    ctx.out.event(&Event::Scores {
        run: args.run.display().to_string(),
        method: &args.method,
        path: path.display().to_string(),
        targets: targets.indices.len(),
        seconds: meta.seconds,
    })?;
    ctx.out.result(format!(
        "{:<14} {:>4} targets  {:>8.2} s  -> {}",
        args.method,
        targets.indices.len(),
        meta.seconds,
        path.display()
    ))?;
    Ok(())
}

/// Prints what scoring `targets` will write (the score file, and the blocks kept in the run's
/// store) and refuses when it will not fit the run's disk ([`crate::disk`]).
///
/// # Errors
/// Too little free space: the message names `--targets` (and `attrib merge`) as the knob.
fn check_disk(
    args: &AttributeArgs,
    run: &Run,
    method: &dyn methods::Method,
    targets: &Targets,
    groups: Option<&Grouping>,
    ctx: &Ctx,
) -> Result<()> {
    let rows = targets.indices.len() as u64;
    let n = run.n_train() as u64;
    let cols = groups.map_or(n * method.values_per_example(run) as u64, |g| g.k as u64);
    let shards = run.shard.map_or(1, |s| s.count as u64);
    // A shard writes no score file; the npy header is at most a few hundred bytes.
    let score_file = match run.shard {
        Some(_) => 0,
        None => rows * cols * 4 + 256,
    };
    let blocks = targets.indices.len().div_ceil(args.target_block);
    let stored = if groups.is_some() || method.values_per_example(run) != 1 {
        0
    } else if methods::registry::SHARDABLE.contains(&method.name()) {
        // MAGIC keeps every finished block (TRAK and datamodels keep models, not rows).
        if method.name() == "magic" {
            (rows * n * 8).div_ceil(shards)
        } else {
            0
        }
    } else if blocks > 1 || run.shard.is_some() {
        (rows * n * 8).div_ceil(shards)
    } else {
        0
    };
    let total = score_file + stored;
    ctx.out.info(format!(
        "will write {}: score file {}, finished blocks in RUN/store/ {}",
        crate::disk::mib(total),
        crate::disk::mib(score_file),
        crate::disk::mib(stored)
    ))?;
    crate::disk::check_fits(
        &args.run,
        total,
        &format!("scoring {rows} targets x {cols} columns"),
        "score fewer targets at a time with --targets a..b (join the files with `attrib merge`), \
         spread them over machines with --shard I/N, or free space on this disk",
    )
}

/// Runs `attrib merge`: joins score files of one method computed for different target ranges.
///
/// # Errors
/// Unreadable parts, or parts that do not belong together.
pub fn merge(args: &MergeArgs, ctx: &Ctx) -> Result<()> {
    // Each part is opened (sidecar checked), then copied block by block: no part is held whole.
    let parts = args
        .parts
        .iter()
        .map(|p| ScoreFile::open(p).with_context(|| format!("cannot read {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let dir = args.out.parent().map(PathBuf::from).unwrap_or_default();
    let stem = args
        .out
        .file_stem()
        .and_then(|s| s.to_str())
        .context("--out needs a file name like scores/if-cg.npy")?;
    let (path, meta) = ScoreFile::merge_into(&parts, &dir, stem)?;
    ctx.out.result(format!(
        "merged {} targets -> {}",
        meta.targets.len(),
        path.display()
    ))?;
    Ok(())
}

/// Runs `attrib methods`: lists the registered methods.
///
/// # Errors
/// Write errors.
pub fn list(ctx: &Ctx) -> Result<()> {
    for r in methods::REGISTRY {
        ctx.out.event(&Event::Method {
            name: r.name,
            summary: r.summary,
        })?;
        ctx.out.result(format!("{:<14} {}", r.name, r.summary))?;
    }
    Ok(())
}
