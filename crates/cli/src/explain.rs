//! `attrib explain --run R --scores FILE [--target J | --targets a..b] [--top K] [--verify]`: for
//! each target, the training examples that made its output (proponents: largest `tau`, whose
//! removal lowers the output most, by the predicted `-tau_i`; MATH.md notation) and those that
//! held it back (opponents: most negative `tau`), each traced back to its row of the user's file
//! through the run's provenance, with warnings where a proponent's label differs from the
//! target's (a possible mislabel) and where one example dominates.
//!
//! `--verify` retrains without the top-K proponents, and separately without the top-K opponents,
//! of each target ([`crate::verify`], cached in the run's store) and prints the predicted change
//! (`-sum of tau` over the dropped set, MATH.md "Sign convention") next to the actual one.
//!
//! With `--json`, each target is one `explanation` object (the fields of [`Explained`]) and each
//! verification one `verification` object (the fields of [`Verified`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use data::{Dataset, Features, Labels, SourceRow, SplitRows};
use engine::{Graph, Tensor};
use methods::{ScoreFile, ScoreMeta};
use nn::{Batch, Output, Task};
use run::{parse_output, Run, Split, Targets};
use serde::Serialize;

use crate::args::ExplainArgs;
use crate::output::Event;
use crate::progress::Progress;
use crate::Ctx;

/// A training example whose share of the target's total `|tau|` is at least this is flagged as
/// dominating: one example carries a tenth of all the attribution mass.
pub const DOMINANT_SHARE: f64 = 0.1;

/// One training example in a target's explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Influencer {
    /// Rank among the proponents or opponents (1 = strongest).
    pub rank: usize,
    /// Training position (the score column).
    pub position: usize,
    /// Where it came from in the user's file.
    pub source: SourceRow,
    /// Its label as a name (class name, or the class index), if the data has labels.
    pub label: Option<String>,
    /// `tau_i`.
    pub score: f64,
    /// Predicted change of the output when it is removed: `-tau_i`.
    pub predicted_change: f64,
    /// `|tau_i|` over the sum of `|tau|` over all training examples.
    pub share: f64,
    /// A proponent whose label differs from the target's true label.
    pub label_differs: bool,
    /// `share >= DOMINANT_SHARE`.
    pub dominant: bool,
    /// The example's text, for text data.
    pub text: Option<String>,
}

/// The explanation of one target.
#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    /// Target index in its split.
    pub target: usize,
    /// Split of the target.
    pub split: String,
    /// Where the target came from.
    pub source: SourceRow,
    /// True label (name), if any.
    pub label: Option<String>,
    /// Predicted class (name), for classifiers.
    pub predicted: Option<String>,
    /// The attributed output (`margin`, `loss`, ...).
    pub output: String,
    /// Its value at the trained parameters.
    pub value: f64,
    /// For a per-token target (output `token`): the position `p` of its window whose
    /// prediction of token `p + 1` is scored.
    pub position: Option<usize>,
    /// The target's text, for text data; for a per-token target, with the predicted token
    /// marked `⟦x⟧`.
    pub text: Option<String>,
    /// Sum of `|tau_i|` over the training set.
    pub total_abs: f64,
    /// Largest `tau`, strongest first.
    pub proponents: Vec<Influencer>,
    /// Most negative `tau`, strongest first.
    pub opponents: Vec<Influencer>,
    /// Warnings, in words.
    pub flags: Vec<String>,
}

/// Predicted vs actual output change after retraining without a set of training examples.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// Target index.
    pub target: usize,
    /// `proponents` or `opponents`.
    pub removed: &'static str,
    /// Training positions dropped (weight 0).
    pub dropped: Vec<usize>,
    /// Predicted change `-sum of tau` over the dropped set.
    pub predicted: f64,
    /// Retrained output minus the original output.
    pub actual: f64,
    /// The original output.
    pub before: f64,
    /// The retrained output.
    pub after: f64,
}

/// What explanations are built from: the run, one score file, and the provenance of both splits.
pub struct Sources<'a> {
    /// The run.
    pub run: &'a Run,
    /// The score file (per example, of this run), read a row at a time.
    pub scores: &'a ScoreFile,
    /// Source rows of the training set.
    pub train_rows: &'a SplitRows,
    /// Source rows of the targets' split.
    pub target_rows: &'a SplitRows,
}

/// Split named by a score file's sidecar.
pub fn split_of(meta: &ScoreMeta, path: &Path) -> Result<Split> {
    Split::from_name(&meta.split).with_context(|| {
        format!(
            "{}: unknown split \"{}\" in the sidecar; explain reads train, test or val targets",
            path.display(),
            meta.split
        )
    })
}

/// Reads the provenance of `split` from the run directory, or rebuilds it from the run's config
/// (the same rows, for runs trained before provenance was recorded).
pub fn split_rows(run: &Run, dir: &Path, split: &str) -> Result<SplitRows> {
    match SplitRows::read(dir, split) {
        Ok(rows) => Ok(rows),
        Err(_) => {
            let (_, prov) = data::load_splits_with_provenance(&run.config.data, dir)?;
            prov.split(split)
                .cloned()
                .with_context(|| format!("no {split} split in the run's data"))
        }
    }
}

/// Class name of class `c` in `ds`, or the index.
fn class_name(ds: &Dataset, c: usize) -> String {
    match &ds.labels {
        Labels::Classes {
            class_names: Some(names),
            ..
        } => names.get(c).cloned().unwrap_or_else(|| c.to_string()),
        _ => c.to_string(),
    }
}

/// The label of position `k`, as a name.
fn label_name(ds: &Dataset, k: usize) -> Option<String> {
    match &ds.labels {
        Labels::Classes { y, .. } => Some(class_name(ds, y[k] as usize)),
        Labels::Real(y) => Some(y[k].to_string()),
        Labels::None => None,
    }
}

fn class_of(ds: &Dataset, k: usize) -> Option<u32> {
    match &ds.labels {
        Labels::Classes { y, .. } => Some(y[k]),
        _ => None,
    }
}

/// The text of a token example, escaped (control characters as `\n`, `\t`, ...).
pub fn example_text(ds: &Dataset, k: usize) -> Option<String> {
    match &ds.features {
        Features::Tokens { ids, seq_len, .. } => {
            let vocab = ds.feature_names.as_ref()?;
            let raw = data::decode_chars(vocab, &ids[k * seq_len..(k + 1) * seq_len]);
            Some(raw.escape_debug().to_string())
        }
        Features::Dense { .. } => None,
    }
}

/// The window and position of target `t`: a per-token target ([`Output::Token`]) names the
/// prediction at position `t mod (L - 1)` of window `t div (L - 1)`; other targets are examples.
pub fn target_example(ds: &Dataset, output: Output, t: usize) -> (usize, Option<usize>) {
    match (&ds.features, output) {
        (Features::Tokens { seq_len, .. }, Output::Token) => {
            let (window, position) = nn::batch::token_target(t, *seq_len);
            (window, Some(position))
        }
        _ => (t, None),
    }
}

/// [`example_text`] of window `k` in three parts: the context up to `position`, the token
/// `position + 1` predicted there (a per-token target's token), and the rest.
pub fn token_parts(ds: &Dataset, k: usize, position: usize) -> Option<[String; 3]> {
    let Features::Tokens { ids, seq_len, .. } = &ds.features else {
        return None;
    };
    let vocab = ds.feature_names.as_ref()?;
    let window = &ids[k * seq_len..(k + 1) * seq_len];
    let part = |r: &[u32]| data::decode_chars(vocab, r).escape_debug().to_string();
    let at = position + 1;
    Some([
        part(&window[..at]),
        part(&window[at..=at]),
        part(&window[at + 1..]),
    ])
}

/// [`token_parts`] with the predicted token marked `⟦x⟧`.
pub fn token_text(ds: &Dataset, k: usize, position: usize) -> Option<String> {
    token_parts(ds, k, position).map(|[a, t, b]| format!("{a}⟦{t}⟧{b}"))
}

/// Predicted classes of positions `idx` of `split` (classifiers only).
pub fn predicted_classes(run: &Run, split: Split, idx: &[usize]) -> Option<Vec<usize>> {
    if !matches!(run.model.task(), Task::Classes(_) | Task::Binary) {
        return None;
    }
    let batch = Batch::<f64>::from_dataset(run.dataset(split), idx);
    let g = Graph::<f64, Tensor<f64>>::new();
    let p = run.model.layout().leaves(&g, &run.params, false);
    let logits = run.model.forward(&g, &p, &batch.input);
    Some(run.model.predict_classes(&g.tensor(logits)))
}

/// Indices of the `k` largest values of `row` (ties by position), strongest first.
fn top(row: &[f64], k: usize, largest: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    let key = |i: usize| if largest { -row[i] } else { row[i] };
    idx.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Explains score row `r` (target `scores.meta.targets[r]`) with the top `k` of each side,
/// reading that row alone from the file.
///
/// # Errors
/// The row cannot be read.
pub fn explain_row(
    src: &Sources,
    r: usize,
    k: usize,
    output: Output,
    split: Split,
) -> Result<Explained> {
    let run = src.run;
    let target = src.scores.meta.targets[r];
    let row = src.scores.row(r)?;
    let train = &run.splits.train;
    let tds = run.dataset(split);
    let (example, position) = target_example(tds, output, target);
    let total_abs: f64 = row.iter().map(|v| v.abs()).sum();
    let target_class = class_of(tds, example);
    let influencer = |rank: usize, i: usize, proponent: bool| {
        let share = if total_abs > 0.0 {
            row[i].abs() / total_abs
        } else {
            0.0
        };
        let differs =
            proponent && matches!((class_of(train, i), target_class), (Some(a), Some(b)) if a != b);
        Influencer {
            rank,
            position: i,
            source: src.train_rows.rows[i].clone(),
            label: label_name(train, i),
            score: row[i],
            predicted_change: -row[i],
            share,
            label_differs: differs,
            dominant: share >= DOMINANT_SHARE,
            text: example_text(train, i),
        }
    };
    // Only examples on the right side of zero count: a proponent raises the output.
    let proponents: Vec<Influencer> = top(&row, k, true)
        .into_iter()
        .filter(|&i| row[i] > 0.0)
        .enumerate()
        .map(|(n, i)| influencer(n + 1, i, true))
        .collect();
    let opponents: Vec<Influencer> = top(&row, k, false)
        .into_iter()
        .filter(|&i| row[i] < 0.0)
        .enumerate()
        .map(|(n, i)| influencer(n + 1, i, false))
        .collect();
    let value = run.target_outputs(
        &run.params,
        &Targets {
            split,
            indices: vec![target],
            output,
        },
    )[0];
    let predicted = predicted_classes(run, split, &[example]).map(|p| class_name(tds, p[0]));
    let label = label_name(tds, example);
    let mut flags = Vec::new();
    for p in &proponents {
        if p.label_differs {
            flags.push(format!(
                "proponent {} (training position {}, {}) has label {}, not the target's {}: a \
                 possible mislabel",
                p.rank,
                p.position,
                describe(&p.source),
                p.label.as_deref().unwrap_or("-"),
                label.as_deref().unwrap_or("-")
            ));
        }
    }
    for p in proponents.iter().chain(&opponents) {
        if p.dominant {
            flags.push(format!(
                "training position {} ({}) carries {:.0}% of the total |tau|: one example \
                 dominates this prediction",
                p.position,
                describe(&p.source),
                100.0 * p.share
            ));
        }
    }
    Ok(Explained {
        target,
        split: split.name().into(),
        source: src.target_rows.rows[example].clone(),
        label,
        predicted,
        output: src.scores.meta.output.clone(),
        value,
        position,
        text: match position {
            Some(p) => token_text(tds, example, p),
            None => example_text(tds, example),
        },
        total_abs,
        proponents,
        opponents,
        flags,
    })
}

/// A source row in words: `points.csv line 12`, `book.txt bytes 640..704`, `embedded:digits #55`.
pub fn describe(s: &SourceRow) -> String {
    match (s.line, s.byte_offset, s.byte_len) {
        (Some(l), _, _) => format!("{} line {l}", s.file),
        (None, Some(a), Some(n)) => format!("{} bytes {a}..{}", s.file, a + n),
        _ => format!("{} #{}", s.file, s.index),
    }
}

/// Retrains without the proponents and without the opponents of each explanation (cached) and
/// returns predicted vs actual changes, two per target (proponents first). With `compute =
/// false`, only cached retrainings are used and the others are left out.
///
/// # Errors
/// As [`crate::verify::cached_outputs`].
pub fn verify(
    run: &Run,
    explained: &[Explained],
    output: Output,
    split: Split,
    compute: bool,
    ctx: &Ctx,
) -> Result<Vec<Verified>> {
    let mut sets = Vec::new();
    for e in explained {
        for (removed, side) in [("proponents", &e.proponents), ("opponents", &e.opponents)] {
            if side.is_empty() {
                continue;
            }
            let mut dropped: Vec<usize> = side.iter().map(|p| p.position).collect();
            dropped.sort_unstable();
            let predicted = -side.iter().map(|p| p.score).sum::<f64>();
            sets.push((e.target, e.value, removed, dropped, predicted));
        }
    }
    let drops: Vec<Vec<usize>> = sets.iter().map(|s| s.3.clone()).collect();
    let bar = Progress::count(
        drops.len(),
        "retrainings",
        compute && !ctx.out.quiet && !ctx.out.json,
    );
    let outs =
        crate::verify::cached_outputs(run, output, split, &drops, compute, &|d, _| bar.set(d))?;
    bar.finish();
    Ok(sets
        .into_iter()
        .zip(outs)
        .filter_map(|((target, before, removed, dropped, predicted), out)| {
            let after = out?[target];
            Some(Verified {
                target,
                removed,
                dropped,
                predicted,
                actual: after - before,
                before,
                after,
            })
        })
        .collect())
}

/// Loads the run and opens its score file for `explain` (rows are read when explained).
///
/// # Errors
/// A missing run or score file, group scores, or scores of another run.
pub fn load(run_dir: &Path, scores: &Path) -> Result<(Run, ScoreFile)> {
    let run = Run::load(run_dir)?;
    let s = ScoreFile::open(scores)?;
    s.meta.check_run(&run, scores)?;
    Ok((run, s))
}

/// `attrib explain`.
///
/// # Errors
/// As [`load`], a target not in the score file, retraining errors with `--verify`.
pub fn run(args: &ExplainArgs, ctx: &Ctx) -> Result<()> {
    let (run, scores) = load(&args.run, &args.scores)?;
    let split = split_of(&scores.meta, &args.scores)?;
    let output = parse_output(&scores.meta.output).map_err(anyhow::Error::msg)?;
    let wanted: Vec<usize> = match (&args.target, &args.targets) {
        (Some(j), _) => vec![*j],
        (None, Some(r)) => Targets::parse_range(r, split, run.target_count(split, output), output)
            .map_err(anyhow::Error::msg)?,
        (None, None) => scores.meta.targets.clone(),
    };
    let mut rows = Vec::new();
    for t in &wanted {
        match scores.meta.targets.iter().position(|x| x == t) {
            Some(r) => rows.push(r),
            None => bail!(
                "target {t} is not in {} (it holds targets {}); pick one of those, or compute \
                 scores for it with `attrib attribute --targets`",
                args.scores.display(),
                range_text(&scores.meta.targets)
            ),
        }
    }
    if args.top == 0 {
        bail!("--top 0 shows nothing; use --top 10 or any K >= 1");
    }
    let train_rows = split_rows(&run, &args.run, "train")?;
    let target_rows = split_rows(&run, &args.run, split.name())?;
    let src = Sources {
        run: &run,
        scores: &scores,
        train_rows: &train_rows,
        target_rows: &target_rows,
    };
    let explained: Vec<Explained> = rows
        .iter()
        .map(|&r| explain_row(&src, r, args.top, output, split))
        .collect::<Result<_>>()?;
    let verified = if args.verify {
        verify(&run, &explained, output, split, true, ctx)?
    } else {
        Vec::new()
    };
    for e in &explained {
        ctx.out.event(&Event::Explanation(e))?;
        print_explained(e, ctx)?;
        for v in verified.iter().filter(|v| v.target == e.target) {
            ctx.out.event(&Event::Verification(v))?;
            ctx.out.result(format!(
                "  verify   without the top {} {:<10}  predicted {:+.4}  actual {:+.4}  ({} {:.4} -> {:.4}, retrained)",
                v.dropped.len(),
                v.removed,
                v.predicted,
                v.actual,
                e.output,
                v.before,
                v.after
            ))?;
        }
        ctx.out.result("")?;
    }
    Ok(())
}

/// `0..20`, or the list when it is not a range.
fn range_text(t: &[usize]) -> String {
    match (t.first(), t.last()) {
        (Some(&a), Some(&b)) if t.windows(2).all(|w| w[1] == w[0] + 1) => format!("{a}..{}", b + 1),
        _ => format!("{t:?}"),
    }
}

fn print_explained(e: &Explained, ctx: &Ctx) -> Result<()> {
    let out = &ctx.out;
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let at = e
        .position
        .map(|p| format!(", predicting token {} from position {p}", p + 1))
        .unwrap_or_default();
    out.result(format!(
        "target {} ({} split, {}{at}): label {}, predicted {}, {} {:.4}",
        e.target,
        e.split,
        describe(&e.source),
        opt(&e.label),
        opt(&e.predicted),
        e.output,
        e.value
    ))?;
    if let Some(t) = &e.text {
        out.result(format!("  text     \"{t}\""))?;
    }
    for (title, side) in [
        (
            "proponents (removing one lowers the output by tau)",
            &e.proponents,
        ),
        (
            "opponents (removing one raises the output by -tau)",
            &e.opponents,
        ),
    ] {
        out.result(format!("  {title}:"))?;
        if side.is_empty() {
            out.result("    none")?;
            continue;
        }
        out.result(format!(
            "    {:>3}  {:>8}  {:<28} {:<8} {:>11} {:>11} {:>6}",
            "#", "position", "source", "label", "tau", "change", "share"
        ))?;
        for p in side {
            let mark = match (p.label_differs, p.dominant) {
                (true, true) => "  <- label differs; dominates",
                (true, false) => "  <- label differs",
                (false, true) => "  <- dominates",
                (false, false) => "",
            };
            out.result(format!(
                "    {:>3}  {:>8}  {:<28} {:<8} {:>+11.4e} {:>+11.4e} {:>5.1}%{mark}",
                p.rank,
                p.position,
                describe(&p.source),
                opt(&p.label),
                p.score,
                p.predicted_change,
                100.0 * p.share
            ))?;
            if let Some(t) = &p.text {
                out.result(format!("{:>15}\"{t}\"", ""))?;
            }
        }
    }
    for f in &e.flags {
        out.result(format!("  warning  {f}"))?;
    }
    Ok(())
}
