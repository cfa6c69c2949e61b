//! `attrib unlearn --run R --forget FILE [--groups G] [--scores S] [--out DIR] [--verify]`
//! (MATH.md E7, "Unlearning").
//!
//! The forget set `F` is a list of training indices, or with `--groups` a list of group ids of a
//! grouping (`attrib group`), whose members are forgotten together.
//!
//! Writes the unlearned model `theta_T + J v`, `v = -w0 1_F`, computed by one forward-mode pass
//! through the whole run (`methods::apps::jvp`), as a run directory `DIR` (default
//! `RUN/unlearned/forget-KEY/`): `config.toml` is the run's with `train.weights` pointing at
//! `DIR/weights.csv` (the weights without `F`, so retraining or replaying `DIR` gives the exact
//! model without `F`), and `params.safetensors` holds the one-pass approximation, which
//! `evaluate`, `attribute` and the other commands read like any run's parameters. With `--scores`
//! the score file's targets get the first-order outputs `f(S) - sum_{i in F} w0_i tau_i`.
//!
//! `--verify` retrains without `F` (cached in the run's store) and prints, over the test split and
//! over the forget set: Pearson and mean absolute error of predicted against retrained margins,
//! the Pearson of the predicted against the retrained *change* of the margins (which tells a
//! prediction from "no change", whose margins already correlate near 1 with the retrained ones)
//! and the fraction of predicted classes that agree with the retrained model, for the JVP model, the
//! score prediction (its targets only; "classes" there compares the sign of the margin, i.e.
//! right or wrong), the unchanged model and gradient ascent on `F`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use engine::hash::fingerprint;
use engine::Float;
use eval::agreement::{compare, Agreement};
use methods::apps::jvp::weight_jvp;
use methods::apps::unlearn::{
    forget_direction, forget_targets, gradient_ascent, margins_and_classes, predicted_outputs,
};
use methods::groups::Grouping;
use methods::Scores;
use nn::Optimizer;
use nn::{Output, Precision};
use run::parse_output;
use run::retrain::retrain_cached;
use run::{Run, Split, Targets};

use crate::args::UnlearnArgs;
use crate::output::{percent, Event};
use crate::progress::Progress;
use crate::Ctx;

/// Reads a forget set: one training index per line (an optional non-numeric header line), as a
/// sorted list without repeats.
///
/// # Errors
/// An unreadable file, a line that is not a whole number (naming the line), or an empty set.
pub fn read_index_file(path: &Path, n: usize) -> Result<Vec<usize>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the forget set {}", path.display()))?;
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let field = line.split(',').next().unwrap_or("").trim();
        if field.is_empty() {
            continue;
        }
        match field.parse::<usize>() {
            Ok(i) if i < n => out.push(i),
            Ok(i) => bail!(
                "{} line {}: training example {i} does not exist; indices run 0..{n} in \
                 training order",
                path.display(),
                k + 1
            ),
            Err(_) if k == 0 => {}
            Err(_) => bail!(
                "{} line {}: \"{field}\" is not a training index; write one whole number per line",
                path.display(),
                k + 1
            ),
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        bail!(
            "{}: the forget set is empty; list at least one training index",
            path.display()
        );
    }
    Ok(out)
}

/// The forget set of `--forget` (training indices), or with `--groups` the members of the listed
/// group ids, sorted without repeats.
///
/// # Errors
/// A bad forget file, a grouping of another training set, a group id outside the grouping.
fn forget_set(args: &UnlearnArgs, run: &Run) -> Result<Vec<usize>> {
    let Some(gpath) = &args.groups else {
        return read_index_file(&args.forget, run.n_train());
    };
    let g = Grouping::load(gpath)?;
    g.check_n(run.n_train())
        .with_context(|| format!("--groups {}", gpath.display()))?;
    let members = g.members();
    let ids = read_index_file(&args.forget, members.len()).with_context(|| {
        format!(
            "with --groups, {} lists group ids of {} (0..{})",
            args.forget.display(),
            gpath.display(),
            members.len()
        )
    })?;
    let mut out: Vec<usize> = ids.iter().flat_map(|&k| members[k].clone()).collect();
    out.sort_unstable();
    Ok(out)
}

/// Runs `attrib unlearn`.
///
/// # Errors
/// A bad run, forget set or score file, training errors, I/O errors.
pub fn run(args: &UnlearnArgs, ctx: &Ctx) -> Result<()> {
    let run = Run::load(&args.run)?;
    let forget = forget_set(args, &run)?;
    let v = forget_direction(&run, &forget)?;
    let w_without: Vec<f64> = run
        .base_weights()
        .iter()
        .zip(&v)
        .map(|(a, d)| a + d)
        .collect();
    let key = fingerprint(&[run.hash.as_bytes(), format!("{forget:?}").as_bytes()]);
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join("unlearned").join(format!("forget-{key}")));
    ctx.out.info(format!(
        "forget   {} of {} training examples ({})",
        forget.len(),
        run.n_train(),
        args.forget.display()
    ))?;
    let steps = run.trainer::<f64>()?.steps();
    let bar = Progress::count(steps, "steps", !ctx.out.quiet && !ctx.out.json);
    let jvp = weight_jvp(&run, &v, &mut |done, _| bar.set(done))?;
    bar.finish();
    let unlearned: Vec<f64> = jvp
        .params
        .iter()
        .zip(&jvp.tangent)
        .map(|(a, b)| a + b)
        .collect();
    write_run_dir(&run, &out_dir, &w_without, &unlearned)?;
    ctx.out.result(format!(
        "unlearned model  {} (one forward-mode pass, {steps} steps; use it as --run)",
        out_dir.display()
    ))?;
    let scores = match &args.scores {
        Some(p) => {
            let s =
                Scores::load(p).with_context(|| format!("cannot read scores {}", p.display()))?;
            s.check_run(&run, p)?;
            let output = parse_output(&s.meta.output).map_err(anyhow::Error::msg)?;
            let split = Split::from_name(&s.meta.split).unwrap_or(Split::Test);
            let targets = Targets {
                split,
                indices: s.meta.targets.clone(),
                output,
            };
            let rows: Vec<Vec<f64>> = (0..s.rows()).map(|r| s.row(r).to_vec()).collect();
            let f = run.target_outputs(&run.params, &targets);
            let pred = predicted_outputs(&f, &rows, &v);
            Some((targets, f, pred))
        }
        None => None,
    };
    if !args.verify {
        return Ok(());
    }
    let retrained = retrain_cached(&run, &w_without)?;
    let eval = evaluate_in_precision(&run, &retrained);
    ctx.out.result(format!(
        "retrained without the forget set: test loss {:.6}, accuracy {}",
        eval.loss,
        percent(eval.accuracy)
    ))?;
    let lr = args.ascent_lr.unwrap_or_else(|| run.config.optim.lr());
    let ascent = gradient_ascent(&run, &run.params, &forget, args.ascent_steps, lr);
    let test = Targets::test((0..run.splits.test.len()).collect(), Output::Margin);
    let sets = [("test", test), ("forget set", forget_targets(&forget))];
    ctx.out.result(format!(
        "{:<28} {:>8} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8} {:>8}",
        "prediction vs retrained",
        "test r",
        "change r",
        "mae",
        "classes",
        "forget r",
        "change r",
        "mae",
        "classes"
    ))?;
    let models: [(&str, &str, &[f64]); 3] = [
        ("unlearned model (JVP)", "jvp", &unlearned),
        ("no change", "no_change", &run.params),
        ("gradient ascent", "gradient_ascent", &ascent),
    ];
    let run_name = args.run.display().to_string();
    let event = |model: &str, set: &str, examples: usize, a: &Agreement| {
        ctx.out.event(&Event::Unlearn {
            run: run_name.clone(),
            model,
            set,
            examples,
            pearson: a.pearson,
            change_pearson: a.change_pearson,
            mae: a.mae,
            class_agreement: a.class_agreement,
        })
    };
    let actual: Vec<(Vec<f64>, Vec<usize>)> = sets
        .iter()
        .map(|(_, t)| margins_and_classes(&run, &retrained, t))
        .collect();
    let base: Vec<Vec<f64>> = sets
        .iter()
        .map(|(_, t)| margins_and_classes(&run, &run.params, t).0)
        .collect();
    for (name, key, params) in models {
        let cells: Vec<Agreement> = sets
            .iter()
            .zip(actual.iter().zip(&base))
            .map(|((_, t), ((m, c), b))| {
                let (pm, pc) = margins_and_classes(&run, params, t);
                compare(b, &pm, &pc, m, c)
            })
            .collect();
        for (((_, t), set), a) in sets.iter().zip(["test", "forget"]).zip(&cells) {
            event(key, set, t.indices.len(), a)?;
        }
        print_row(ctx, name, &cells)?;
    }
    if let Some((targets, f, pred)) = &scores {
        if targets.output != Output::Margin {
            ctx.out.info(
                "note     the score file's output is not the margin; its row compares outputs",
            )?;
        }
        let actual_out = run.target_outputs(&retrained, targets);
        let sign = |x: &[f64]| x.iter().map(|&m| usize::from(m > 0.0)).collect::<Vec<_>>();
        let a = compare(f, pred, &sign(pred), &actual_out, &sign(&actual_out));
        event("scores", targets.split.name(), targets.indices.len(), &a)?;
        ctx.out.result(format!(
            "{:<28} {:>8.4} {:>8.4} {:>8.4} {:>7.1}%   ({} {} targets)",
            "outputs f - sum tau (scores)",
            a.pearson,
            a.change_pearson,
            a.mae,
            100.0 * a.class_agreement,
            targets.indices.len(),
            targets.split.name()
        ))?;
    }
    ctx.out.event(&Event::Note {
        message: "unlearn: figures compare against a retraining without the forget set",
    })?;
    Ok(())
}

fn print_row(ctx: &Ctx, name: &str, cells: &[Agreement]) -> Result<()> {
    let cell = |a: &Agreement| {
        format!(
            "{:>8.4} {:>8.4} {:>8.4} {:>7.1}%",
            a.pearson,
            a.change_pearson,
            a.mae,
            100.0 * a.class_agreement
        )
    };
    ctx.out.result(format!(
        "{name:<28} {}   {}",
        cell(&cells[0]),
        cell(&cells[1])
    ))?;
    Ok(())
}

/// Test loss and accuracy of `params` evaluated in the run's precision (the same bits as
/// `attrib evaluate` of a run trained at the same weights).
pub fn evaluate_in_precision(run: &Run, params: &[f64]) -> nn::Evaluation {
    evaluate_split(run, params, Split::Test)
}

/// Loss and accuracy of `params` on a split, evaluated in the run's precision.
pub fn evaluate_split(run: &Run, params: &[f64], split: Split) -> nn::Evaluation {
    fn go<F: Float>(run: &Run, params: &[f64], ds: &data::Dataset) -> nn::Evaluation {
        let p: Vec<F> = params.iter().map(|&x| F::from_f64(x)).collect();
        nn::evaluate(
            &run.model,
            &p,
            ds,
            nn::eval_batch_size(run.config.train.batch_size),
        )
    }
    let ds = run.dataset(split);
    match run.config.train.precision {
        Precision::F32 => go::<f32>(run, params, ds),
        Precision::F64 => go::<f64>(run, params, ds),
    }
}

/// Writes `dir/config.toml` (the run's config at `weights`, stored in `dir/weights.csv`) and
/// `dir/params.safetensors` (`params`), each atomically.
pub fn write_run_dir(run: &Run, dir: &Path, weights: &[f64], params: &[f64]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| PathBuf::from(dir));
    let wpath = dir.join("weights.csv");
    let text: String = std::iter::once("weight".to_string())
        .chain(weights.iter().map(|w| format!("{w}")))
        .collect::<Vec<_>>()
        .join("\n");
    data::write_atomic(&wpath, text.as_bytes())?;
    let mut cfg = run.config.clone();
    cfg.train.weights = Some(wpath);
    data::write_atomic(&dir.join(run::files::CONFIG), cfg.to_toml().as_bytes())?;
    let mut meta = BTreeMap::new();
    meta.insert(
        "attrib_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    meta.insert(
        "made_by".to_string(),
        "attrib unlearn (theta_T + J v)".to_string(),
    );
    // Commands that read the unlearned run check it like a trained one: the fingerprint is of
    // the parameters as stored, in the run's precision.
    let fingerprint = match run.config.train.precision {
        Precision::F32 => {
            let p: Vec<f32> = params.iter().map(|&x| x as f32).collect();
            nn::io::save_params(&dir.join(run::files::PARAMS), run.model.layout(), &p, &meta)?;
            run::Fingerprint::of(&cfg, &run.splits, &p)
        }
        Precision::F64 => {
            nn::io::save_params(
                &dir.join(run::files::PARAMS),
                run.model.layout(),
                params,
                &meta,
            )?;
            run::Fingerprint::of(&cfg, &run.splits, params)
        }
    };
    fingerprint.write(&dir)?;
    Ok(())
}
