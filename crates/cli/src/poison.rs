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
//!
//! Each (budget, attack) row is item `j = budget index * attacks + attack index` and its result
//! (flips or perturbed rows, and the retrained outcome) is kept in the run's store
//! (`RUN/store/poison/KEY.json`, keyed by the run and every argument the attack reads). Under
//! `--shard I/N` a process computes and stores the items `j mod N = I` and prints no table; the
//! command without a shard then prints the table and writes `RUN/poison/` from the stored items,
//! computing only the missing ones, byte for byte as one process would.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use data::{Dataset, Features};
use methods::apps::poison::{self, Outcome, PgdParams};
use nn::Evaluation;
use run::{Key, Run, Store};
use serde::{Deserialize, Serialize};

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

    /// Run only shard I of N of the (budget, attack) rows.
    ///
    /// Row j of the table (j = budget index x attacks + attack index, the clean row aside) with
    /// j mod N = I is attacked, retrained and stored in RUN/store/poison/; the command without a
    /// shard afterwards prints the table and writes RUN/poison/ from the stored rows, computing
    /// only the missing ones. Without the flag, a Slurm array task or a Kubernetes indexed job is
    /// one shard.
    ///
    /// Example: attrib poison --run runs/digits --budget 0.01,0.05 --shard 0/4
    #[arg(long, value_name = "I/N")]
    pub shard: Option<run::Shard>,
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

/// The store kind of one (budget, attack) item's result.
pub const POISON_KIND: &str = "poison";

/// Bumped when what a stored item holds would change for the same key.
const ITEM_FORMAT: &str = "poison-item-1";

/// One (budget, attack) item's result: everything its row, its event and its files need, floats
/// as their bits so that the store gives them back exactly (NaN included).
#[derive(Debug, Serialize, Deserialize)]
struct Item {
    /// Flipped examples: `[index, from, to]`.
    flips: Vec<[usize; 3]>,
    /// Examples whose features changed.
    indices: Vec<usize>,
    /// f32 bits of their new features, row after row (input attacks).
    rows: Option<Vec<u32>>,
    predicted_val_loss: Option<u64>,
    val_loss: u64,
    test_examples: usize,
    test_loss: u64,
    test_accuracy: Option<u64>,
}

impl Item {
    fn predicted(&self) -> Option<f64> {
        self.predicted_val_loss.map(f64::from_bits)
    }

    fn test(&self) -> Evaluation {
        Evaluation {
            examples: self.test_examples,
            loss: f64::from_bits(self.test_loss),
            accuracy: self.test_accuracy.map(f64::from_bits),
        }
    }

    fn val_loss(&self) -> f64 {
        f64::from_bits(self.val_loss)
    }

    fn record(&self, attack: Attack, budget: f64) -> Record<'static> {
        let test = self.test();
        Record {
            attack: attack.name(),
            budget,
            examples: self.flips.len().max(self.indices.len()),
            flips: self.flips.clone(),
            indices: self.indices.clone(),
            predicted_val_loss: self.predicted(),
            val_loss: self.val_loss(),
            test_loss: test.loss,
            test_accuracy: test.accuracy,
        }
    }
}

/// The store key of item (`budget`, `attack`): the run and every argument the attack reads.
fn item_key(clean: &Run, args: &PoisonArgs, budget: f64, attack: Attack) -> Key {
    let key = Key::for_run(POISON_KIND, clean)
        .with("poison_format", ITEM_FORMAT)
        .with("budget", budget.to_bits().to_le_bytes())
        .with("attack", attack.name());
    let (seed, eps, steps) = (
        args.seed.to_le_bytes(),
        args.eps.to_bits().to_le_bytes(),
        (args.steps as u64).to_le_bytes(),
    );
    match attack {
        Attack::RandomFlips => key.with("seed", seed),
        Attack::Flips => key,
        Attack::Noise => key.with("eps", eps).with("seed", seed),
        Attack::Features => key.with("eps", eps).with("steps", steps),
    }
}

/// Item (`budget`, `attack`) from the run's store, if a shard or an earlier run stored it.
fn stored(clean: &Run, args: &PoisonArgs, budget: f64, attack: Attack) -> Option<Item> {
    let bytes = Store::of(clean).get(&item_key(clean, args, budget, attack), "json")?;
    serde_json::from_slice(&bytes).ok()
}

/// Item (`budget`, `attack`): stored, or attacked, retrained and stored now.
fn item(
    clean: &Run,
    args: &PoisonArgs,
    ctx: &Ctx,
    (budget, attack): (f64, Attack),
    base: &Outcome,
) -> Result<Item> {
    if let Some(item) = stored(clean, args, budget, attack) {
        return Ok(item);
    }
    let k = poison::budget(budget, clean.n_train());
    let label = format!("{:.1}%", 100.0 * budget);
    let (outcome, predicted, flips, indices, rows) = match attack {
        Attack::RandomFlips | Attack::Flips => {
            let flips = if attack == Attack::Flips {
                ctx.out
                    .info(format!("{label} flips: scoring every relabelled copy"))?;
                poison::attributed_flips(clean, k)?
            } else {
                poison::random_flips(clean, k, args.seed)?
            };
            let train = poison::apply_flips(&clean.splits.train, &flips);
            let outcome = poison::retrained(clean, &train)?;
            let predicted = (attack == Attack::Flips)
                .then(|| base.val_loss + flips.iter().map(|f| f.predicted).sum::<f64>());
            (outcome, predicted, flips, Vec::new(), None)
        }
        Attack::Noise | Attack::Features => {
            let (train, indices) = if attack == Attack::Features {
                let params = PgdParams {
                    steps: args.steps,
                    eps: args.eps,
                };
                let attack = poison::feature_attack(clean, k, params, |s, val| {
                    let _ = ctx.out.info(format!(
                        "{label} features: outer step {}/{}, val loss {val:.4}",
                        s + 1,
                        params.steps
                    ));
                })?;
                (attack.train, attack.indices)
            } else {
                poison::random_noise(clean, k, args.eps, args.seed)?
            };
            let outcome = poison::retrained(clean, &train)?;
            let rows = rows_of(&train, &indices);
            (outcome, None, Vec::new(), indices, Some(rows))
        }
    };
    let item = Item {
        flips: flips
            .iter()
            .map(|f| [f.index, f.from as usize, f.to as usize])
            .collect(),
        indices,
        rows: rows.map(|r| r.iter().map(|x| x.to_bits()).collect()),
        predicted_val_loss: predicted.map(f64::to_bits),
        val_loss: outcome.val_loss.to_bits(),
        test_examples: outcome.test.examples,
        test_loss: outcome.test.loss.to_bits(),
        test_accuracy: outcome.test.accuracy.map(f64::to_bits),
    };
    let bytes = serde_json::to_vec(&item).expect("items serialise");
    Store::of(clean).put(&item_key(clean, args, budget, attack), "json", &bytes)?;
    Ok(item)
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
    let shard = match args.shard {
        Some(s) => Some(s),
        None => run::Shard::from_env()?,
    };
    let clean = Run::load(&args.run)?;
    poison::validation_targets(&clean)?;
    let out_dir = args.run.join(POISON_DIR);
    let n = clean.n_train();
    let base = poison::outcome_of(&clean);
    // Item j = budget_index * attacks + attack_index, the order of the table's rows.
    let items: Vec<(f64, Attack)> = args
        .budget
        .iter()
        .flat_map(|&b| args.attack.iter().map(move |&a| (b, a)))
        .collect();
    if let Some(shard) = shard {
        for (j, &it) in items.iter().enumerate() {
            if shard.owns(j) {
                item(&clean, args, ctx, it, &base)?;
            }
        }
        let done = items
            .iter()
            .filter(|&&(b, a)| stored(&clean, args, b, a).is_some())
            .count();
        ctx.out.event(&Event::Shard {
            method: "poison",
            shard: shard.to_string(),
            done,
            total: items.len(),
        })?;
        ctx.out.info(format!(
            "poison shard {shard}: {done} of {} attacks (budget, attack) stored in {}; run the \
             command without a shard for the table and the files of {}",
            items.len(),
            args.run.join("store").join(POISON_KIND).display(),
            out_dir.display()
        ))?;
        return Ok(());
    }
    ctx.out.info(format!(
        "{n} training, {} validation (the objective), {} test examples (the damage)",
        clean.splits.val.len(),
        clean.splits.test.len()
    ))?;
    ctx.out.result(format!(
        "{:<7} {:<13} {:>8} {:>10} {:>10} {:>10} {:>9}",
        "budget", "attack", "examples", "val (pred)", "val loss", "test loss", "test acc"
    ))?;
    print_row(ctx, "0", "clean", 0, None, base.val_loss, &base.test)?;
    for &(b, attack) in &items {
        let k = poison::budget(b, n);
        let label = format!("{:.1}%", 100.0 * b);
        let it = item(&clean, args, ctx, (b, attack), &base)?;
        let record = it.record(attack, b);
        let rows: Option<Vec<f32>> = it
            .rows
            .as_ref()
            .map(|r| r.iter().map(|&x| f32::from_bits(x)).collect());
        let stem = format!("{b}-{}", attack.name());
        save(&out_dir, &stem, &record, rows.as_ref(), &clean.splits.train)?;
        ctx.out.event(&Event::Poison {
            run: args.run.display().to_string(),
            budget: b,
            attack: attack.name(),
            examples: k,
            predicted_val_loss: record.predicted_val_loss,
            val_loss: it.val_loss(),
            test: it.test(),
            path: out_dir.join(format!("{stem}.json")).display().to_string(),
        })?;
        print_row(
            ctx,
            &label,
            attack.name(),
            k,
            record.predicted_val_loss,
            it.val_loss(),
            &it.test(),
        )?;
    }
    Ok(())
}

fn print_row(
    ctx: &Ctx,
    budget: &str,
    attack: &str,
    k: usize,
    predicted: Option<f64>,
    val_loss: f64,
    test: &Evaluation,
) -> Result<()> {
    let pred = predicted.map_or_else(|| "".to_string(), |p| format!("{p:.4}"));
    ctx.out.result(format!(
        "{budget:<7} {attack:<13} {k:>8} {pred:>10} {val_loss:>10.4} {:>10.4} {:>9}",
        test.loss,
        percent(test.accuracy)
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
