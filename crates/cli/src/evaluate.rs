//! `attrib evaluate --run DIR [--split train|test|val]`: loss and accuracy of a trained run.
//!
//! The split is rebuilt from `DIR/config.toml` (same split seed, same standardisation), so it is
//! exactly the split the run was trained and tested on.

use anyhow::{bail, Result};
use data::Splits;
use engine::Float;
use nn::{Evaluation, Model, Precision, RunConfig};

use crate::args::EvaluateArgs;
use crate::output::{percent, thousands, Event};
use crate::Ctx;
use run::RunDir;

/// Runs the command.
///
/// # Errors
/// A folder that is not a run directory, a run whose training did not finish, unreadable data
/// or parameters.
pub fn run(args: &EvaluateArgs, ctx: &Ctx) -> Result<()> {
    let dir = RunDir::open(&args.run)?;
    let cfg = dir.read_config()?;
    if !dir.params().is_file() {
        bail!(
            "{} has no params.safetensors: its training did not finish; train it again with \
             `attrib train --config {} --out {}`",
            args.run.display(),
            dir.config().display(),
            args.run.display()
        );
    }
    let splits = data::load_splits(&cfg.data, dir.root())?;
    let model = Model::new(&cfg.model, &splits.train)?;
    let ds = match args.split {
        crate::args::Split::Train => &splits.train,
        crate::args::Split::Test => &splits.test,
        crate::args::Split::Val => &splits.val,
    };
    if ds.is_empty() {
        bail!(
            "{}: the {} split is empty; set data.val_fraction (e.g. 0.1) in {} and train again",
            args.run.display(),
            args.split.name(),
            dir.config().display()
        );
    }
    model.check_data(ds, &format!("the {} split", args.split.name()))?;
    let eval = match cfg.train.precision {
        Precision::F32 => eval_with::<f32>(&dir, &cfg, &splits, &model, ds)?,
        Precision::F64 => eval_with::<f64>(&dir, &cfg, &splits, &model, ds)?,
    };
    let out = &ctx.out;
    out.event(&Event::Evaluation {
        run: args.run.display().to_string(),
        split: args.split.name(),
        eval,
    })?;
    out.result(format!("run       {}", args.run.display()))?;
    out.result(format!("split     {}", args.split.name()))?;
    out.result(format!("examples  {}", thousands(eval.examples)))?;
    out.result(format!("loss      {:.6}", eval.loss))?;
    if eval.accuracy.is_some() {
        out.result(format!("accuracy  {}", percent(eval.accuracy)))?;
    }
    Ok(())
}

/// Loads the params, checks the run's fingerprint (a config, data or params changed since
/// training is an error, issue 13) and evaluates `ds`.
fn eval_with<F: Float>(
    dir: &RunDir,
    cfg: &RunConfig,
    splits: &Splits,
    model: &Model,
    ds: &data::Dataset,
) -> Result<Evaluation> {
    let p = nn::io::load_params::<F>(&dir.params(), model.layout())?;
    run::Fingerprint::check(dir.root(), &run::Fingerprint::of(cfg, splits, &p))?;
    run::dir::sweep_stale_temporaries(dir.root());
    Ok(nn::evaluate(
        model,
        &p,
        ds,
        nn::eval_batch_size(cfg.train.batch_size),
    ))
}
