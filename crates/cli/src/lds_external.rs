//! `attrib lds --masks FILE --outputs FILE --scores FILE [--layout L] [--base FILE]`: the LDS of
//! any library's scores against subsets retrained outside attrib (MATH.md E6), from `.npy` files,
//! by the same code as every other LDS (`eval::external`, which the Python `attrib.lds` calls too).

use std::path::Path;

use anyhow::{bail, Context, Result};
use eval::external::{lds_external, Array2, Layout};

use crate::args::LdsArgs;
use crate::output::{Event, LdsRow};
use crate::Ctx;

/// A 2-D `.npy` (any numeric or bool dtype) as f64, with the flag that named it.
fn matrix(flag: &str, path: &Path) -> Result<(Vec<f64>, usize, usize)> {
    let (values, shape) =
        data::read_npy_f64(path).with_context(|| format!("{flag} {}", path.display()))?;
    match shape[..] {
        [rows, cols] => Ok((values, rows, cols)),
        _ => bail!(
            "{flag} {}: expected a 2-D array, found shape {shape:?}",
            path.display()
        ),
    }
}

/// Runs the outside-ground-truth form of `attrib lds`.
///
/// # Errors
/// Unreadable files, shapes that do not fit one another, values that are not finite, masks other
/// than 0/1; each names the flag and the file.
pub fn run(args: &LdsArgs, ctx: &Ctx) -> Result<()> {
    let masks_path = args.masks.as_deref().expect("called with --masks");
    let outputs_path = args
        .outputs
        .as_deref()
        .context("--masks needs --outputs FILE ([subsets, targets] retrained outputs)")?;
    let [scores_path] = &args.scores[..] else {
        bail!(
            "with --masks, give one score matrix (--scores FILE.npy); got {}",
            args.scores.len()
        );
    };
    let layout = Layout::parse(&args.layout).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let (s, sr, sc) = matrix("--scores", scores_path)?;
    let (m, mr, mc) = matrix("--masks", masks_path)?;
    let (o, or, oc) = matrix("--outputs", outputs_path)?;
    let base = match &args.base {
        Some(p) => {
            let (b, shape) =
                data::read_npy_f64(p).with_context(|| format!("--base {}", p.display()))?;
            if shape.len() != 1 {
                bail!(
                    "--base {}: expected a 1-D array, found shape {shape:?}",
                    p.display()
                );
            }
            Some(b)
        }
        None => None,
    };
    let r = lds_external(
        Array2::new(&s, sr, sc),
        layout,
        Array2::new(&m, mr, mc),
        Array2::new(&o, or, oc),
        base.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let dropped = m.iter().filter(|&&x| x == 0.0).count() as f64 / m.len().max(1) as f64;
    let row = LdsRow {
        method: "external".into(),
        scores: scores_path.display().to_string(),
        subsets_kind: "drop",
        fraction: dropped,
        subsets: r.subsets,
        targets: r.targets,
        lds: r.lds,
        ci: r.ci,
        pearson: r.pearson,
        slope: r.slope,
        method_seconds: 0.0,
    };
    ctx.out.event(&Event::Lds(&row))?;
    ctx.out.info(format!(
        "ground truth from {} and {} ({} subsets, {:.1}% of the examples dropped on average)",
        masks_path.display(),
        outputs_path.display(),
        r.subsets,
        100.0 * dropped
    ))?;
    ctx.out.result(format!(
        "{:<16} {:>7} {:>8}  {:<17} {:>8} {:>7}",
        "scores", "targets", "LDS", "95% interval", "pearson", "slope"
    ))?;
    let label = scores_path
        .file_stem()
        .map_or_else(|| "scores".into(), |s| s.to_string_lossy().into_owned());
    ctx.out.result(format!(
        "{:<16} {:>7} {:>8.3}  [{:>6.3}, {:>6.3}] {:>8.3} {:>7.3}",
        label, r.targets, r.lds, r.ci.0, r.ci.1, r.pearson, r.slope
    ))?;
    Ok(())
}
