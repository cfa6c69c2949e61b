//! `attrib attribute`, `attrib methods`: score matrices from a registered method, written to
//! `RUN/scores/NAME.npy` + `NAME.json` (format: `methods::scores`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use methods::{Grouping, Options, Scores};
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
    let len = run.dataset(split).len();
    let indices = match range {
        Some(r) => Targets::parse_range(r, split, len).map_err(anyhow::Error::msg)?,
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
    let scored = match &groups {
        None => {
            methods::attribute_in_blocks(&run, method.as_ref(), used, &targets, args.target_block)
        }
        Some(g) => {
            ctx.out
                .info(format!("scoring {} groups ({})", g.k, g.how))?;
            methods::attribute_groups(&run, method.as_ref(), used, &targets, g)
        }
    };
    drop(bars);
    let scores = match scored {
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
    let path = scores.save(&args.run.join(run::files::SCORES), &name)?;
    ctx.out.event(&Event::Scores {
        run: args.run.display().to_string(),
        method: &args.method,
        path: path.display().to_string(),
        targets: targets.indices.len(),
        seconds: scores.meta.seconds,
    })?;
    ctx.out.result(format!(
        "{:<14} {:>4} targets  {:>8.2} s  -> {}",
        args.method,
        targets.indices.len(),
        scores.meta.seconds,
        path.display()
    ))?;
    Ok(())
}

/// Runs `attrib merge`: joins score files of one method computed for different target ranges.
///
/// # Errors
/// Unreadable parts, or parts that do not belong together.
pub fn merge(args: &MergeArgs, ctx: &Ctx) -> Result<()> {
    let parts = args
        .parts
        .iter()
        .map(|p| {
            Scores::load(p)
                .map(|s| (p.clone(), s))
                .with_context(|| format!("cannot read {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let merged = Scores::merge(parts)?;
    let dir = args.out.parent().map(PathBuf::from).unwrap_or_default();
    let stem = args
        .out
        .file_stem()
        .and_then(|s| s.to_str())
        .context("--out needs a file name like scores/if-cg.npy")?;
    let path = merged.save(&dir, stem)?;
    ctx.out.result(format!(
        "merged {} targets -> {}",
        merged.rows(),
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
