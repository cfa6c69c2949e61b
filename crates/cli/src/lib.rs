//! The `attrib` command-line tool as a library: every command of the binary, callable in-process.
//!
//! The binary (`main.rs`) parses the arguments, sets up the thread pool and calls [`execute`]; the
//! Python package (`python/`) runs the same commands through [`run_captured`], so a run made from
//! Python is the run the CLI makes, file for file and bit for bit.
//!
//! Glue only: the numerics live in `attrib-engine`, the models and the trainer in `attrib-nn`, the
//! datasets in `attrib-data`, the run directory, retraining and the artefact store in
//! `attrib-run`, the attribution methods in `attrib-methods`, every measurement (LDS, LOO,
//! retraining score, noisy labels) in `attrib-eval`.

pub mod allocator;
pub mod args;
mod attribute;
mod bench;
mod demo;
mod disk;
mod evaluate;
mod explain;
mod groundtruth;
mod groups;
mod lds_external;
pub mod output;
mod poison;
mod progress;
mod report;
mod select;
mod settings;
mod slurm;
mod status;
mod train;
mod unlearn;
mod verify;

use anyhow::Result;
use clap::Parser;

use crate::args::{BenchCommand, Cli, Command, SettingsCommand};
use crate::output::Output;

/// What every command needs: where to print, and the thread count in force.
pub struct Ctx {
    /// Printing policy (`--json`, `--quiet`).
    pub out: Output,
    /// Threads of the global rayon pool.
    pub threads: usize,
}

/// Runs one parsed command.
///
/// # Errors
/// The command's own errors (bad input named with its flag and fix, I/O, training failures).
pub fn execute(command: &Command, ctx: &Ctx) -> Result<()> {
    match command {
        Command::Train(a) => train::run(a, ctx),
        Command::Evaluate(a) => evaluate::run(a, ctx),
        Command::Demo(a) => demo::run(a, ctx),
        Command::Attribute(a) => attribute::run(a, ctx),
        Command::Methods => attribute::list(ctx),
        Command::Merge(a) => attribute::merge(a, ctx),
        Command::Status(a) => status::run(a, ctx),
        Command::Slurm(a) => slurm::run(a, ctx),
        Command::Groundtruth(a) => groundtruth::run(a, ctx),
        Command::Lds(a) => groundtruth::lds(a, ctx),
        Command::Group(a) => groups::group(a, ctx),
        Command::RetrainScore(a) => groups::retrain_score(a, ctx),
        Command::NoisyLabels(a) => groups::noisy_labels(a, ctx),
        Command::Poison(a) => poison::run(a, ctx),
        Command::Unlearn(a) => unlearn::run(a, ctx),
        Command::Select(a) => select::run(a, ctx),
        Command::Explain(a) => explain::run(a, ctx),
        Command::Report(a) => report::run(a, ctx),
        Command::Bench(BenchCommand::Train(a)) => bench::run(a, ctx),
        Command::Bench(BenchCommand::Lds(a)) => settings::bench_lds(a, ctx),
        Command::Settings(SettingsCommand::List(a)) => settings::list(a, ctx),
    }
}

/// Runs `attrib ARGS...` in this process (without the program name) on the current rayon pool,
/// and returns the events it emitted (the `--json` wire format, one JSON object each) instead of
/// printing them; human-readable lines are dropped, warnings still go to stderr.
///
/// `attrib slurm` is refused: its array scripts call the `attrib` binary, which a host process
/// (Python) is not.
///
/// # Errors
/// A usage error (clap's message), `slurm`, or the command's own errors.
pub fn run_captured(args: &[String]) -> Result<Vec<String>> {
    let cli =
        Cli::try_parse_from(std::iter::once("attrib".to_string()).chain(args.iter().cloned()))
            .map_err(|e| anyhow::anyhow!("{}", e.render().to_string().trim_end()))?;
    if matches!(cli.command, Command::Slurm(_)) {
        anyhow::bail!(
            "`attrib slurm` writes array scripts that call the attrib binary; run it from a shell \
             (`attrib slurm --run DIR -- COMMAND ...`), not in-process"
        );
    }
    let (done, events) = output::capture(|| execute(&cli.command, &quiet_ctx()));
    done.map(|()| events)
}

/// Loads or computes (and caches in the run's folder, as `attrib groundtruth` does) the ground
/// truth of `spec` on `split` with `seeds` trainer seeds per subset; events are captured.
///
/// # Errors
/// A bad output name or spec, training or I/O errors.
pub fn ground_truth(
    run: &run::Run,
    dir: &std::path::Path,
    spec: &run::SubsetSpec,
    output: &str,
    split: run::Split,
    seeds: usize,
) -> Result<run::GroundTruth> {
    let want = groundtruth::Wanted {
        spec,
        groups: None,
        output,
        split,
        shard: None,
        seeds,
    };
    output::capture(|| groundtruth::ground_truth_of(run, dir, &want, &quiet_ctx(), false)).0
}

/// Trains `cfg` (paths already absolute; `origin` names where it came from, for messages) into
/// `out`, as `attrib train` does; returns the captured events.
///
/// # Errors
/// As `attrib train`: a run directory holding another run (without `force`), bad data, divergence.
pub fn train_config(
    cfg: nn::RunConfig,
    origin: &str,
    out: &std::path::Path,
    force: bool,
) -> Result<Vec<String>> {
    let job = train::Job {
        cfg,
        config: origin.to_string(),
        out: out.to_path_buf(),
        force,
        command: "train",
        show_layers: false,
    };
    let (done, events) = output::capture(|| train::train(&job, &quiet_ctx()));
    done.map(|_| events)
}

/// The context of an in-process command: events on, lines off, the current pool's threads.
fn quiet_ctx() -> Ctx {
    Ctx {
        out: Output {
            json: true,
            quiet: true,
        },
        threads: rayon::current_num_threads(),
    }
}

/// The error chain as `outer: inner: ...` (anyhow's `{:#}`), skipping a cause whose text the
/// message already contains (library errors often print their source themselves).
pub fn render(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn render_skips_repeated_causes() {
        let io = io::Error::new(io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(io)
            .context("run.toml: No such file")
            .context("cannot train");
        assert_eq!(render(&e), "cannot train: run.toml: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(render(&e), "outer: inner");
    }
}
