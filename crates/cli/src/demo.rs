//! `attrib demo [--out DIR]`: trains the digits MLP of `examples/digits_mlp.toml` (compiled into
//! the binary, like the digits data), so that it runs on a fresh machine with no files at all.
//!
//! It prints, in order: what it should reach, the data, the model (every parameter tensor), the
//! optimisation, one line per epoch with train and test accuracy, the final accuracy and time, and
//! where the files went.

use std::path::Path;

use anyhow::Result;
use nn::RunConfig;

use crate::args::DemoArgs;
use crate::output::{percent, Event};
use crate::train::{train, Job};
use crate::Ctx;

/// The recipe (the same bytes as `examples/digits_mlp.toml`).
pub const RECIPE: &str = include_str!("../../../examples/digits_mlp.toml");
/// Where the recipe comes from, for messages.
pub const RECIPE_NAME: &str = "examples/digits_mlp.toml (compiled in)";
/// What the demo should reach: the first line it prints.
pub const EXPECTATION: &str =
    "This should reach about 97% test accuracy: an MLP 64-128-128-10 on the \
                               embedded UCI digits, 20 epochs of SGD (a few seconds in release).";

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
    out.result(if reached >= 0.95 {
        format!("reached  {} test accuracy, as expected", percent(outcome.test.accuracy))
    } else {
        format!(
            "reached  {} test accuracy, below the expected ~97%: please report this with the output \
             of `attrib --version`",
            percent(outcome.test.accuracy)
        )
    })?;
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
        assert!(RECIPE.starts_with("# This should reach about 97% test accuracy"));
    }
}
