//! `attrib select` (MATH.md E7, "Selection"): choose training data that minimises the mean
//! validation loss `L_val(w)`, retrain, and compare on the validation and the test split.
//!
//! - One shot (`--scores`): `tau_bar` = mean of a score file's rows (validation losses); removing
//!   example `i` changes `L_val` by `-w0_i tau_bar_i` to first order, so the examples with the
//!   largest positive `w0_i tau_bar_i` are dropped first, down to `--keep` of the data, or, with
//!   `--harmful-only`, every example with `w0_i tau_bar_i > 0` (predicted harmful).
//! - With `data.label_noise` (the noisy-label benchmark) the oracle that drops exactly the flipped
//!   examples is one more row, and every row says which fraction of the flipped examples it drops.
//! - Metagradient descent (`--steps N`): `w_{k+1} = proj_[0,1](w_k - eta_k grad L_val(w_k))`,
//!   `grad L_val` by MAGIC at `w_k` (mean over the validation losses), and the normalised step
//!   `eta_k = c / max_i |grad_i|` (`--step-size c`: the largest weight change of a step).
//!
//! Every figure printed for a selection comes from a retraining at its weights (cached in
//! `RUN/store/retrain/`), written to `RUN/selected/NAME.csv` so that `attrib train` with
//! `train.weights` set to it reproduces the row. One-shot selection shards (`--shard I/N`, or a
//! scheduler's array task): the retrainings in table order are items `j`, a shard retrains its
//! `j mod N` into the store and prints no table, and the command without a shard reads them.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use methods::estimators::magic::{magic_scores, MagicConfig};
use methods::Scores;
use nn::{Evaluation, Output};
use run::retrain::retrain_cached;
use run::{Run, Split, Targets};

use crate::args::SelectArgs;
use crate::output::{percent, Event};
use crate::unlearn::evaluate_split;
use crate::Ctx;

/// Runs `attrib select`.
///
/// # Errors
/// A run without a validation split, score files of other targets, training errors.
pub fn run(args: &SelectArgs, ctx: &Ctx) -> Result<()> {
    let run = Run::load(&args.run)?;
    let shard = match args.shard {
        Some(s) => Some(s),
        None => run::Shard::from_env()?,
    };
    if let (Some(s), Some(_)) = (shard, args.steps) {
        bail!(
            "metagradient descent (--steps) does not split into shards (asked for shard {s}): \
             each step retrains at the weights of the one before; drop --shard"
        );
    }
    let jobs = Retrainings {
        shard,
        seen: RefCell::new(Vec::new()),
    };
    if run.splits.val.is_empty() {
        bail!(
            "{}: the run has no validation split, and selection must not look at the test split \
             that judges it; set data.val_fraction (e.g. 0.1) in its config and train it again",
            args.run.display()
        );
    }
    if !(args.keep > 0.0 && args.keep <= 1.0) {
        bail!("--keep {} must be in (0, 1], e.g. 0.8", args.keep);
    }
    let out_dir = args.run.join("selected");
    if shard.is_none() {
        header(ctx, &run)?;
        row(ctx, "full data", &run, &run.params, &run.base_weights())?;
    }
    if !run.splits.flipped.is_empty() {
        // The oracle: exactly the examples data.label_noise flipped, dropped.
        let w = run.weights_without(&run.splits.flipped);
        save_weights(&out_dir, "oracle", &w)?;
        if let Some(params) = jobs.retrain(&run, &w)? {
            row(ctx, "oracle: drop the flipped labels", &run, &params, &w)?;
        }
    }
    match args.steps {
        Some(steps) => mgd(args, ctx, &run, steps, &out_dir),
        None => {
            one_shot(args, ctx, &run, &out_dir, &jobs)?;
            jobs.report(ctx, &run)
        }
    }
}

/// The one-shot retrainings in the order the table lists them (the oracle, each score file's
/// selection, each random subset): item `j` belongs to shard `j mod N`. Without a shard every
/// item is retrained (or read from `RUN/store/retrain/`) and its row printed; a shard retrains
/// only its own items into the store and prints no row.
struct Retrainings {
    shard: Option<run::Shard>,
    /// Weights of the items met so far.
    seen: RefCell<Vec<Vec<f64>>>,
}

impl Retrainings {
    /// The retrained parameters of the next item, or `None` under a shard (after retraining it
    /// when it is the shard's).
    fn retrain(&self, run: &Run, w: &[f64]) -> Result<Option<Vec<f64>>> {
        let j = {
            let mut seen = self.seen.borrow_mut();
            seen.push(w.to_vec());
            seen.len() - 1
        };
        match self.shard {
            None => Ok(Some(retrain_cached(run, w)?)),
            Some(s) => {
                if s.owns(j) {
                    retrain_cached(run, w)?;
                }
                Ok(None)
            }
        }
    }

    /// Under a shard: how many of the items are stored now (the `shard` event).
    fn report(&self, ctx: &Ctx, run: &Run) -> Result<()> {
        let Some(shard) = self.shard else {
            return Ok(());
        };
        let seen = self.seen.borrow();
        let done = seen
            .iter()
            .filter(|w| run::retrain::stored_retraining(run, w).is_some())
            .count();
        ctx.out.event(&Event::Shard {
            method: "select",
            shard: shard.to_string(),
            done,
            total: seen.len(),
        })?;
        ctx.out.info(format!(
            "select shard {shard}: {done} of {} retrainings stored in RUN/store/retrain/; run the \
             command without a shard for the table",
            seen.len()
        ))?;
        Ok(())
    }
}

fn header(ctx: &Ctx, run: &Run) -> Result<()> {
    let flips = if run.splits.flipped.is_empty() {
        String::new()
    } else {
        format!(" {:>9}", "flips out")
    };
    ctx.out.result(format!(
        "{:<34} {:>6}{flips} {:>9} {:>8} {:>9} {:>8}",
        "selection", "kept", "val loss", "val acc", "test loss", "test acc"
    ))?;
    Ok(())
}

/// Retrained-model figures of one selection: the row printed by [`row`].
struct RowFigures {
    val: Evaluation,
    test: Evaluation,
}

/// Prints one selection's row: examples kept (weight above 0), with `data.label_noise` the
/// fraction of flipped examples at weight 0, then validation and test loss and accuracy of
/// `params` (a retraining at `w`).
fn row(ctx: &Ctx, name: &str, run: &Run, params: &[f64], w: &[f64]) -> Result<RowFigures> {
    let (val, test) = (
        evaluate_split(run, params, Split::Val),
        evaluate_split(run, params, Split::Test),
    );
    let kept = w.iter().filter(|&&x| x > 0.0).count();
    let flipped = &run.splits.flipped;
    let removed = (!flipped.is_empty())
        .then(|| flipped.iter().filter(|&&i| w[i] == 0.0).count() as f64 / flipped.len() as f64);
    let flips = removed.map_or(String::new(), |f| format!(" {:>8.1}%", 100.0 * f));
    ctx.out.event(&Event::Selection {
        run: run
            .dir
            .as_deref()
            .unwrap_or(Path::new(""))
            .display()
            .to_string(),
        selection: name,
        kept,
        weight_sum: w.iter().sum(),
        flipped_removed: removed,
        val,
        test,
    })?;
    ctx.out.result(format!(
        "{name:<34} {kept:>6}{flips} {:>9.6} {:>8} {:>9.6} {:>8}",
        val.loss,
        percent(val.accuracy),
        test.loss,
        percent(test.accuracy)
    ))?;
    Ok(RowFigures { val, test })
}

/// Writes the weights of a selection as `dir/NAME.csv` (header `weight`), atomically.
fn save_weights(dir: &Path, name: &str, w: &[f64]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.csv"));
    let text: String = std::iter::once("weight".to_string())
        .chain(w.iter().map(|x| format!("{x}")))
        .collect::<Vec<_>>()
        .join("\n");
    data::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// The mean row of a score file of validation losses, checked against the run.
fn mean_validation_scores(run: &Run, path: &Path) -> Result<Vec<f64>> {
    let s = Scores::load(path).with_context(|| format!("cannot read scores {}", path.display()))?;
    s.check_run(run, path)?;
    if s.meta.split != "val" || s.meta.output != "loss" {
        bail!(
            "{}: scores of {} {} targets; selection needs validation losses: `attrib attribute \
             --run {} --method M --split val --output loss --targets 0..{}`",
            path.display(),
            s.meta.split,
            s.meta.output,
            run.dir.as_deref().unwrap_or(Path::new("RUN")).display(),
            run.splits.val.len()
        );
    }
    let mut mean = vec![0.0; run.n_train()];
    for r in 0..s.rows() {
        for (m, x) in mean.iter_mut().zip(s.row(r)) {
            *m += x / s.rows() as f64;
        }
    }
    Ok(mean)
}

fn one_shot(
    args: &SelectArgs,
    ctx: &Ctx,
    run: &Run,
    out_dir: &Path,
    jobs: &Retrainings,
) -> Result<()> {
    if args.scores.is_empty() {
        bail!("give --scores FILE (validation-loss scores) for one-shot selection, or --steps N");
    }
    let n = run.n_train();
    let w0 = run.base_weights();
    let drop = n - ((args.keep * n as f64).round() as usize).min(n);
    let mut dropped_counts = Vec::new();
    for path in &args.scores {
        let tau = mean_validation_scores(run, path)?;
        // Predicted change of L_val from dropping i: -w0_i tau_i; drop the largest gains first.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            (w0[b] * tau[b])
                .total_cmp(&(w0[a] * tau[a]))
                .then(a.cmp(&b))
        });
        let chosen: Vec<usize> = if args.harmful_only {
            order
                .into_iter()
                .take_while(|&i| w0[i] * tau[i] > 0.0)
                .collect()
        } else {
            order.into_iter().take(drop).collect()
        };
        let w = run.weights_without(&chosen);
        let stem = path
            .file_stem()
            .map_or("scores".into(), |s| s.to_string_lossy().into_owned());
        let rule = if args.harmful_only {
            "harmful".to_string()
        } else {
            format!("keep{}", args.keep)
        };
        let file = save_weights(out_dir, &format!("oneshot-{stem}-{rule}"), &w)?;
        dropped_counts.push(chosen.len());
        let Some(params) = jobs.retrain(run, &w)? else {
            continue;
        };
        let predicted: f64 = -chosen.iter().map(|&i| w0[i] * tau[i]).sum::<f64>();
        let val = row(ctx, &format!("drop by {stem}"), run, &params, &w)?.val;
        let full = evaluate_split(run, &run.params, Split::Val).loss;
        ctx.out.info(format!(
            "    predicted val loss change {predicted:+.6}, actual {:+.6}; weights {}",
            val.loss - full,
            file.display()
        ))?;
    }
    // Random subsets of the same size as the first selection.
    let k = dropped_counts.first().copied().unwrap_or(drop);
    let mut vals = Vec::new();
    let mut tests = Vec::new();
    for seed in 0..args.random as u64 {
        let perm = engine::Rng::derive(seed, "select-random", 0).permutation(n);
        let w = run.weights_without(&perm[..k.min(n)]);
        let Some(params) = jobs.retrain(run, &w)? else {
            continue;
        };
        let r = row(ctx, &format!("random, seed {seed}"), run, &params, &w)?;
        vals.push(r.val);
        tests.push(r.test);
    }
    if !tests.is_empty() {
        let stat = |xs: Vec<f64>| {
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let sd = (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt();
            (m, sd)
        };
        let (tl, tls) = stat(tests.iter().map(|e| e.loss).collect());
        let (ta, tas) = stat(
            tests
                .iter()
                .map(|e| e.accuracy.unwrap_or(f64::NAN))
                .collect(),
        );
        let (vl, vls) = stat(vals.iter().map(|e| e.loss).collect());
        ctx.out.result(format!(
            "random mean +- sd ({} seeds): val loss {vl:.4} +- {vls:.4}, test loss {tl:.4} +- \
             {tls:.4}, test acc {:.2}% +- {:.2}",
            tests.len(),
            100.0 * ta,
            100.0 * tas
        ))?;
    }
    Ok(())
}

fn mgd(args: &SelectArgs, ctx: &Ctx, run: &Run, steps: usize, out_dir: &Path) -> Result<()> {
    let n = run.n_train();
    let c = args.step_size;
    if !(c.is_finite() && c > 0.0) {
        bail!("--step-size {c} must be a positive number, e.g. 0.5");
    }
    let targets = Targets {
        split: Split::Val,
        indices: (0..run.splits.val.len()).collect(),
        output: Output::Loss,
    };
    let mut w: Vec<f64> = run
        .base_weights()
        .iter()
        .map(|x| x.clamp(0.0, 1.0))
        .collect();
    let mut params = retrain_cached(run, &w)?;
    for k in 0..steps {
        // The run at the current weights: MAGIC differentiates there.
        let mut at = Run::from_parts(
            run.config.clone(),
            run.splits.clone(),
            run.model.clone(),
            params.clone(),
        )?;
        at.init = run.init.clone();
        at.weights = Some(w.clone());
        let tau = magic_scores(&at, &targets, &MagicConfig::default())?.scores;
        let mut grad = vec![0.0; n];
        for r in &tau {
            for (g, x) in grad.iter_mut().zip(r) {
                *g += x / tau.len() as f64;
            }
        }
        let max = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        if max == 0.0 {
            ctx.out.info("the metagradient is zero; stopping")?;
            break;
        }
        let eta = c / max;
        let next: Vec<f64> = w
            .iter()
            .zip(&grad)
            .map(|(x, g)| (x - eta * g).clamp(0.0, 1.0))
            .collect();
        let predicted: f64 = grad
            .iter()
            .zip(next.iter().zip(&w))
            .map(|(g, (a, b))| g * (a - b))
            .sum();
        let before = evaluate_split(run, &params, Split::Val).loss;
        w = next;
        params = retrain_cached(run, &w)?;
        save_weights(out_dir, &format!("mgd-c{c}-step{}", k + 1), &w)?;
        let val = row(
            ctx,
            &format!("MGD step {} (eta = {c}/max|g|)", k + 1),
            run,
            &params,
            &w,
        )?
        .val;
        ctx.out.info(format!(
            "    sum of weights {:.1}; predicted val loss change {predicted:+.6}, actual {:+.6}{}",
            w.iter().sum::<f64>(),
            val.loss - before,
            flipped_weight(run, &w)
        ))?;
    }
    Ok(())
}

/// With `data.label_noise`: the mean weight of the flipped and of the clean examples, as a clause
/// of the MGD step line (empty otherwise).
fn flipped_weight(run: &Run, w: &[f64]) -> String {
    let flipped = &run.splits.flipped;
    if flipped.is_empty() {
        return String::new();
    }
    let on_flipped: f64 = flipped.iter().map(|&i| w[i]).sum();
    let clean = (w.len() - flipped.len()).max(1) as f64;
    format!(
        "; mean weight of flipped examples {:.3}, of the others {:.3}",
        on_flipped / flipped.len() as f64,
        (w.iter().sum::<f64>() - on_flipped) / clean
    )
}
