//! `attrib poison`: craft the worst training data for a run and verify each attack by retraining
//! (MATH.md E7, "Poisoning"; the algorithms are `methods::apps::poison`).
//!
//! For each budget (a fraction of the training set) and attack, the poisoned training set is
//! built, the run's recipe is retrained on it from scratch, and the validation loss (the
//! attacker's objective) and the test loss and accuracy (the damage; the attacks never read the
//! test split) are printed. Attacks: `random-flips` and `flips` (chosen by attribution),
//! `noise` (random input noise) and `features` (projected gradient ascent on input
//! metagradients). Each poisoned set is kept in `RUN/poison/` as `BUDGET-ATTACK.json` (the
//! flips, or the perturbed examples, and the outcome) plus, for input attacks,
//! `BUDGET-ATTACK.npy` (`[k, ...example_shape]` f32, the perturbed examples' new features, in
//! the order of the JSON's `indices`), so that anyone can rebuild and retrain it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use data::{Dataset, Features};
use methods::apps::poison::{self, Flip, Outcome, PgdParams};
use run::Run;
use serde::Serialize;

use crate::output::{percent, Event};
use crate::Ctx;

/// The poisoned sets' folder inside a run directory.
pub const POISON_DIR: &str = "poison";

/// `attrib poison`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Needs a run with a validation split (data.val_fraction > 0): the attacks \
                       raise the mean validation loss, and the damage is measured on the test \
                       split they never see. Every figure marked actual comes from retraining the \
                       run's recipe on the poisoned training set; `pred` is the first-order \
                       prediction of the validation loss by MAGIC metagradients."
)]
pub struct PoisonArgs {
    /// The run directory (needs data.val_fraction > 0).
    ///
    /// Example: attrib poison --run runs/digits
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// Fractions of the training set to change.
    ///
    /// Default: 0.01,0.025,0.05.
    ///
    /// Example: attrib poison --run runs/digits --budget 0.05
    #[arg(long, value_delimiter = ',', default_values_t = [0.01, 0.025, 0.05], hide_default_value = true, value_name = "FRACTION")]
    pub budget: Vec<f64>,

    /// Attacks to run (default: all four).
    ///
    /// random-flips, flips, noise, features.
    ///
    /// Example: attrib poison --run runs/digits --attack flips,random-flips
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Attack::RandomFlips, Attack::Flips, Attack::Noise, Attack::Features], hide_default_value = true, hide_possible_values = true, value_name = "ATTACK")]
    pub attack: Vec<Attack>,

    /// Outer steps of the feature attack.
    ///
    /// Each retrains and differentiates once.
    ///
    /// Example: attrib poison --run runs/digits --attack features --steps 3
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub steps: usize,

    /// L-inf radius, a fraction of the range.
    ///
    /// 1 (the default) allows the whole box.
    ///
    /// The range is the smallest to the largest feature value of the training set.
    ///
    /// Example: attrib poison --run runs/digits --eps 0.25
    #[arg(long, default_value_t = 1.0, value_name = "FRACTION")]
    pub eps: f64,

    /// Seed of the random baselines.
    ///
    /// Example: attrib poison --run runs/digits --seed 3
    #[arg(long, default_value_t = 0, value_name = "SEED")]
    pub seed: u64,
}

/// One attack of `attrib poison`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// Random label flips (baseline).
    RandomFlips,
    /// Label flips chosen by metagradients of the validation loss (E7 (a)).
    Flips,
    /// Random input noise of +-eps on random examples (baseline).
    Noise,
    /// Projected gradient ascent on inputs by input metagradients (E7 (b)).
    Features,
}

impl Attack {
    /// The name used in files and output.
    pub fn name(self) -> &'static str {
        match self {
            Attack::RandomFlips => "random-flips",
            Attack::Flips => "flips",
            Attack::Noise => "noise",
            Attack::Features => "features",
        }
    }
}

/// What `BUDGET-ATTACK.json` holds.
#[derive(Debug, Serialize)]
struct Record<'a> {
    attack: &'a str,
    budget: f64,
    examples: usize,
    /// Flipped examples: `[index, from, to]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flips: Vec<[usize; 3]>,
    /// Examples whose features changed (rows of the `.npy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    indices: Vec<usize>,
    predicted_val_loss: Option<f64>,
    val_loss: f64,
    test_loss: f64,
    test_accuracy: Option<f64>,
}

/// Runs `attrib poison`.
///
/// # Errors
/// A run without a validation split, bad budgets, MAGIC's and training errors, unwritable files.
pub fn run(args: &PoisonArgs, ctx: &Ctx) -> Result<()> {
    if let Some(b) = args.budget.iter().find(|b| !(**b > 0.0 && **b < 1.0)) {
        bail!("--budget {b}: each budget is a fraction of the training set in (0, 1), e.g. 0.01");
    }
    if !(args.eps > 0.0 && args.eps <= 1.0) {
        bail!(
            "--eps {}: the radius is a fraction of the input range in (0, 1]",
            args.eps
        );
    }
    if args.steps == 0 {
        bail!("--steps 0: the feature attack needs at least one step");
    }
    let clean = Run::load(&args.run)?;
    poison::validation_targets(&clean)?;
    let out_dir = args.run.join(POISON_DIR);
    let n = clean.n_train();
    let base = poison::outcome_of(&clean);
    ctx.out.info(format!(
        "{n} training, {} validation (the objective), {} test examples (the damage)",
        clean.splits.val.len(),
        clean.splits.test.len()
    ))?;
    ctx.out.result(format!(
        "{:<7} {:<13} {:>8} {:>10} {:>10} {:>10} {:>9}",
        "budget", "attack", "examples", "val (pred)", "val loss", "test loss", "test acc"
    ))?;
    print_row(ctx, "0", "clean", 0, None, &base)?;
    for &b in &args.budget {
        let k = poison::budget(b, n);
        let label = format!("{:.1}%", 100.0 * b);
        for &attack in &args.attack {
            let (record, outcome, rows) = match attack {
                Attack::RandomFlips | Attack::Flips => {
                    let flips = if attack == Attack::Flips {
                        ctx.out
                            .info(format!("{label} flips: scoring every relabelled copy"))?;
                        poison::attributed_flips(&clean, k)?
                    } else {
                        poison::random_flips(&clean, k, args.seed)?
                    };
                    let train = poison::apply_flips(&clean.splits.train, &flips);
                    let outcome = poison::retrained(&clean, &train)?;
                    let predicted = (attack == Attack::Flips)
                        .then(|| base.val_loss + flips.iter().map(|f| f.predicted).sum::<f64>());
                    let record = record(attack, b, &outcome, predicted, &flips, &[]);
                    (record, outcome, None)
                }
                Attack::Noise | Attack::Features => {
                    let (train, indices) = if attack == Attack::Features {
                        let params = PgdParams {
                            steps: args.steps,
                            eps: args.eps,
                        };
                        let attack = poison::feature_attack(&clean, k, params, |s, val| {
                            let _ = ctx.out.info(format!(
                                "{label} features: outer step {}/{}, val loss {val:.4}",
                                s + 1,
                                params.steps
                            ));
                        })?;
                        (attack.train, attack.indices)
                    } else {
                        poison::random_noise(&clean, k, args.eps, args.seed)?
                    };
                    let outcome = poison::retrained(&clean, &train)?;
                    let record = record(attack, b, &outcome, None, &[], &indices);
                    (record, outcome, Some(rows_of(&train, &indices)))
                }
            };
            let stem = format!("{b}-{}", attack.name());
            save(&out_dir, &stem, &record, rows.as_ref(), &clean.splits.train)?;
            ctx.out.event(&Event::Poison {
                run: args.run.display().to_string(),
                budget: b,
                attack: attack.name(),
                examples: k,
                predicted_val_loss: record.predicted_val_loss,
                val_loss: outcome.val_loss,
                test: outcome.test,
                path: out_dir.join(format!("{stem}.json")).display().to_string(),
            })?;
            print_row(
                ctx,
                &label,
                attack.name(),
                k,
                record.predicted_val_loss,
                &outcome,
            )?;
        }
    }
    Ok(())
}

fn record<'a>(
    attack: Attack,
    budget: f64,
    outcome: &Outcome,
    predicted: Option<f64>,
    flips: &[Flip],
    indices: &[usize],
) -> Record<'a> {
    Record {
        attack: attack.name(),
        budget,
        examples: flips.len().max(indices.len()),
        flips: flips
            .iter()
            .map(|f| [f.index, f.from as usize, f.to as usize])
            .collect(),
        indices: indices.to_vec(),
        predicted_val_loss: predicted,
        val_loss: outcome.val_loss,
        test_loss: outcome.test.loss,
        test_accuracy: outcome.test.accuracy,
    }
}

fn print_row(
    ctx: &Ctx,
    budget: &str,
    attack: &str,
    k: usize,
    predicted: Option<f64>,
    o: &Outcome,
) -> Result<()> {
    let pred = predicted.map_or_else(|| "".to_string(), |p| format!("{p:.4}"));
    ctx.out.result(format!(
        "{budget:<7} {attack:<13} {k:>8} {pred:>10} {:>10.4} {:>10.4} {:>9}",
        o.val_loss,
        o.test.loss,
        percent(o.test.accuracy)
    ))?;
    Ok(())
}

/// The features of examples `indices` of `ds`, row after row.
fn rows_of(ds: &Dataset, indices: &[usize]) -> Vec<f32> {
    let Features::Dense { values, shape } = &ds.features else {
        unreachable!("input attacks need dense features (checked by methods::apps::poison)")
    };
    let d: usize = shape.iter().product();
    indices
        .iter()
        .flat_map(|&i| values[i * d..(i + 1) * d].iter().copied())
        .collect()
}

/// Writes `dir/stem.json` and, for input attacks, `dir/stem.npy`, each atomically.
fn save(
    dir: &Path,
    stem: &str,
    record: &Record<'_>,
    rows: Option<&Vec<f32>>,
    train: &Dataset,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {} ({e}); check the run directory's permissions",
            dir.display()
        )
    })?;
    if let Some(rows) = rows {
        let mut shape = vec![record.indices.len()];
        shape.extend(train.example_shape());
        data::write_npy_f32(&dir.join(format!("{stem}.npy")), rows, &shape)?;
    }
    let text = serde_json::to_string_pretty(record).expect("records serialise");
    data::write_atomic(&dir.join(format!("{stem}.json")), text.as_bytes())?;
    Ok(())
}
