//! `attrib demo [--out DIR]`: trains the digits MLP of `examples/digits_mlp.toml` (compiled into
//! the binary, like the digits data), so that it runs on a fresh machine with no files at all.
//!
//! It prints, in order: what it should reach, the data, the model (every parameter tensor), the
//! optimisation, one line per epoch with train and test accuracy, the final accuracy and time, and
//! where the files went. Then it attributes the margins of the first test examples with MAGIC and
//! TracIn, retrains the model on random subsets that each drop 5% of the training set, and prints
//! how well each method predicted those retrainings (the LDS table of `attrib lds`), and ends by
//! writing the run's HTML report (`attrib report`) and printing its path.

use std::path::Path;

use anyhow::Result;
use methods::{Options, Scores};
use nn::{Output, RunConfig};
use run::SubsetSpec;
use run::{Run, Split, Targets};

use crate::args::DemoArgs;
use crate::groundtruth::{ground_truth, LdsTable};
use crate::output::{percent, Event};
use crate::train::{train, Job};
use crate::Ctx;

/// The recipe (the same bytes as `examples/digits_mlp.toml`).
pub const RECIPE: &str = include_str!("../../../examples/digits_mlp.toml");
/// Where the recipe comes from, for messages.
pub const RECIPE_NAME: &str = "examples/digits_mlp.toml (compiled in)";
/// What the demo should reach: the first line it prints.
pub const EXPECTATION: &str =
    "This should reach about 96% test accuracy: an MLP 64-128-128-10 on the \
     embedded UCI digits, 20 epochs of SGD (a few seconds in release); then MAGIC should predict \
     retraining with an LDS near 0.97, far above TracIn (about a minute in all).";

/// Methods the demo compares, and how many test margins it attributes.
const DEMO_METHODS: [&str; 2] = ["magic", "tracin"];
/// Test targets attributed by the demo.
const DEMO_TARGETS: usize = 20;
/// Retrained subsets of the demo's ground truth (each drops [`DEMO_DROP`] of the training set).
const DEMO_SUBSETS: usize = 40;
/// Fraction each subset drops.
const DEMO_DROP: f64 = 0.05;
/// Targets with a gallery in the demo's report, per method.
pub const DEMO_GALLERIES: usize = 6;
/// Proponents and opponents per gallery.
pub const DEMO_TOP: usize = 8;

/// Runs the command.
///
/// # Errors
/// A run directory holding another run (without `--force`), I/O errors.
pub fn run(args: &DemoArgs, ctx: &Ctx) -> Result<()> {
    let out = &ctx.out;
    out.event(&Event::Note {
        message: EXPECTATION,
    })?;
    out.result(EXPECTATION)?;
    // The recipe names no file (its data is embedded), so it needs no path resolution.
    let cfg = RunConfig::from_toml_str(RECIPE, Path::new(RECIPE_NAME))?;
    let job = Job {
        cfg,
        config: RECIPE_NAME.into(),
        out: args.out.clone(),
        force: args.force,
        command: "demo",
        show_layers: true,
    };
    let outcome = train(&job, ctx)?;
    let reached = outcome.test.accuracy.unwrap_or(0.0);
    let accuracy_line = if reached >= 0.95 {
        format!(
            "reached  {} test accuracy, as expected",
            percent(outcome.test.accuracy)
        )
    } else {
        format!(
            "reached  {} test accuracy, below the expected ~96%: please report this with the output \
             of `attrib --version`",
            percent(outcome.test.accuracy)
        )
    };
    out.result(accuracy_line)?;
    attribute_and_measure(&args.out, ctx)
}

/// Attributes the first test margins with [`DEMO_METHODS`] and prints their LDS.
fn attribute_and_measure(dir: &Path, ctx: &Ctx) -> Result<()> {
    let out = &ctx.out;
    let run = Run::load(dir)?;
    let targets = Targets::test((0..DEMO_TARGETS).collect(), Output::Margin);
    out.info(format!(
        "attribute the margins of test examples 0..{DEMO_TARGETS} to the {} training examples",
        run.n_train()
    ))?;
    let mut scores = Vec::new();
    for name in DEMO_METHODS {
        let (method, used) = methods::build(name, Options::empty(name))?;
        let s = methods::attribute(&run, method.as_ref(), used, &targets)?;
        let path = s.save(&dir.join(run::files::SCORES), name)?;
        out.info(format!(
            "  {name:<10} {:>6.1} s  -> {}",
            s.meta.seconds,
            path.display()
        ))?;
        scores.push((path.display().to_string(), s));
    }
    let spec = SubsetSpec::drop(DEMO_DROP, DEMO_SUBSETS, 0);
    out.info(format!(
        "retrain on {DEMO_SUBSETS} random subsets that each drop {:.0}% of the training set (cached in {})",
        100.0 * DEMO_DROP,
        dir.join(run::files::GROUNDTRUTH).display()
    ))?;
    let gt = ground_truth(&run, dir, &spec, "margin", Split::Test, ctx)?;
    let refs: Vec<&(String, Scores)> = scores.iter().collect();
    LdsTable::default().rows(&gt, &spec, &refs, ctx)?;
    out.info(
        "LDS: rank correlation between each method's predicted and the actually retrained margins \
         (1 = perfect). `attrib lds --help` explains the columns.",
    )?;
    let opts = crate::report::ReportOptions {
        galleries: DEMO_GALLERIES,
        top: DEMO_TOP,
    };
    crate::report::write(dir, &dir.join(crate::report::REPORT_FILE), &opts, ctx)?;
    out.info(format!(
        "explain  attrib explain --run {} --scores {} --target 0 --verify",
        dir.display(),
        dir.join(run::files::SCORES).join("magic.npy").display()
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_is_the_documented_one() {
        let cfg = RunConfig::from_toml_str(RECIPE, Path::new(RECIPE_NAME)).unwrap();
        assert_eq!(cfg.train.epochs, 20);
        assert_eq!(cfg.train.batch_size, 64);
        assert_eq!(crate::train::kind(&cfg.model), "mlp");
        assert!(RECIPE.starts_with("# This should reach about 96% test accuracy"));
    }
}
