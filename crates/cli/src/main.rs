//! The `attrib` binary: parses the arguments, runs one command, prints errors.
//!
//! Glue only: the numerics live in `attrib-engine`, the models and the trainer in `attrib-nn`, the
//! datasets in `attrib-data`, the run directory, retraining and the artefact store in
//! `attrib-run`, the attribution methods in `attrib-methods`, every measurement (LDS, LOO,
//! retraining score, noisy labels) in `attrib-eval`.
//!
//! Exit codes: 0 on success (also when stdout is closed early, e.g. `attrib ... | head`), 1 when the
//! command fails (the error chain is printed once on stderr, and as an `error` event with
//! `--json`), 2 on a usage error (unknown command or flag, bad flag value).

mod args;
mod attribute;
mod bench;
mod demo;
mod disk;
mod evaluate;
mod explain;
mod groundtruth;
mod groups;
mod lds_external;
mod output;
mod poison;
mod progress;
mod report;
mod select;
mod slurm;
mod status;
mod train;
mod unlearn;
mod verify;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::args::{BenchCommand, Cli, Command};
use crate::output::{Event, Output};

// mimalloc keeps freed tensor buffers for reuse; glibc malloc returns large ones to the kernel and
// faults them back in zeroed on the next step (about 10% of a MAGIC sweep; see `bench magic`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What every command needs: where to print, and the thread count in force.
pub struct Ctx {
    /// Printing policy (`--json`, `--quiet`).
    pub out: Output,
    /// Threads of the global rayon pool.
    pub threads: usize,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors (exit code 2), or --help / --version (exit code 0).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let out = Output {
        json: cli.global.json,
        quiet: cli.global.quiet,
    };
    match run(&cli, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let message = render(&e);
            let _ = out.event(&Event::Error { message: &message });
            let _ = writeln!(io::stderr().lock(), "error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, out: Output) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cli.global.threads.unwrap_or(cores);
    if threads > cores {
        // Oversubscribed kernels spin and wait on each other: far slower, same results.
        out.warn(format!(
            "--threads {threads} exceeds the {cores} cores of this machine; the results are the \
             same but the work runs slower (up to 100x); use --threads {cores} or omit --threads"
        ))?;
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .with_context(|| {
            format!("cannot start {threads} worker threads; try a smaller --threads")
        })?;
    let ctx = Ctx { out, threads };
    match &cli.command {
        Command::Train(a) => train::run(a, &ctx),
        Command::Evaluate(a) => evaluate::run(a, &ctx),
        Command::Demo(a) => demo::run(a, &ctx),
        Command::Attribute(a) => attribute::run(a, &ctx),
        Command::Methods => attribute::list(&ctx),
        Command::Merge(a) => attribute::merge(a, &ctx),
        Command::Status(a) => status::run(a, &ctx),
        Command::Slurm(a) => slurm::run(a, &ctx),
        Command::Groundtruth(a) => groundtruth::run(a, &ctx),
        Command::Lds(a) => groundtruth::lds(a, &ctx),
        Command::Group(a) => groups::group(a, &ctx),
        Command::RetrainScore(a) => groups::retrain_score(a, &ctx),
        Command::NoisyLabels(a) => groups::noisy_labels(a, &ctx),
        Command::Poison(a) => poison::run(a, &ctx),
        Command::Unlearn(a) => unlearn::run(a, &ctx),
        Command::Select(a) => select::run(a, &ctx),
        Command::Explain(a) => explain::run(a, &ctx),
        Command::Report(a) => report::run(a, &ctx),
        Command::Bench(BenchCommand::Train(a)) => bench::run(a, &ctx),
    }
}

/// The error chain as `outer: inner: ...` (anyhow's `{:#}`), skipping a cause whose text the
/// message already contains (library errors often print their source themselves).
fn render(e: &anyhow::Error) -> String {
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn broken_pipe_is_detected_through_context() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("printing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
