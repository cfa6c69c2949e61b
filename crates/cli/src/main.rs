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

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use attrib_cli::args::Cli;
use attrib_cli::output::{Event, Output};
use attrib_cli::{execute, render, Ctx};

// mimalloc keeps freed tensor buffers for reuse; glibc malloc returns large ones to the kernel and
// faults them back in zeroed on the next step (about 10% of a MAGIC sweep; see `bench magic`).
// mimalloc itself returned memory left free for a second, until `keep_freed_memory` (below).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    attrib_cli::allocator::keep_freed_memory();
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
        // The command itself runs on a worker (below), so it gets the main thread's stack size.
        .stack_size(MAIN_STACK_BYTES)
        .build_global()
        .with_context(|| {
            format!("cannot start {threads} worker threads; try a smaller --threads")
        })?;
    let ctx = Ctx { out, threads };
    // `rayon::scope` called from outside the pool runs its body on one of the pool's workers.
    // Kernels called from there split their work in place; called from the main thread, every
    // parallel kernel would be sent to the pool and the main thread put to sleep until it is done,
    // with each tensor allocated on one thread and freed on another, which mimalloc then cannot
    // reuse at once. A GPT training step took 57 ms that way against 36 ms on a worker (1 thread).
    rayon::scope(|_| execute(&cli.command, &ctx))
}

/// The stack of Linux's main thread (8 MiB), given to the workers that run the command.
const MAIN_STACK_BYTES: usize = 8 << 20;

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
    fn broken_pipe_is_detected_through_context() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("printing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
