//! The README cannot drift from the tool: every command of its ```sh blocks runs here, as written,
//! in the README's order, in one scratch folder holding a copy of `examples/` (issue 13, item 21).
//!
//! Each logical command line (continuations joined; `# comments` are left to bash) runs with
//! `bash -e -c`, with the built `attrib` first on `PATH`; `cargo run --release -- ARGS` is
//! `attrib ARGS`. A command may read what an earlier block wrote (`runs/digits` of the tour is
//! unlearned in "Act on attributions"), exactly as a reader following the README would. The few
//! lines that cannot run here are listed in [`NOT_RUN`] with the reason, and each skip is printed
//! in the normal test output; any other line must exit 0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Lines of the README that are shown but not run here (matched by prefix), and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo test --release --workspace",
        "the test command itself (this test is part of it)",
    ),
    (
        "cargo test --release -p attrib-methods --test magic_bench",
        "the ignored MAGIC speed benchmark (about 12 minutes)",
    ),
    (
        "attrib attribute --run R --method M",
        "a template: one such line per row of the table",
    ),
    (
        "attrib lds --run R --scores R/scores/datamodels.npy",
        "a template: its scores are the table's rows",
    ),
    (
        "python3 -m venv .venv && .venv/bin/pip install ./python",
        "the Python package: .ci/run builds it in a fresh venv and runs its tests",
    ),
    (
        ".venv/bin/python -m pytest python/tests",
        "the Python package's tests: .ci/run runs them after building it",
    ),
    (
        "scripts/bench_vs_torch.sh",
        "the PyTorch comparison: installs torch (gigabytes) and takes minutes; not for CI",
    ),
    (
        "QUICK=1 RUNS=5 scripts/bench_vs_torch.sh",
        "the PyTorch comparison (as above)",
    ),
    (
        "attrib slurm ",
        "--submit needs a Slurm cluster; crates/cli/tests/slurm.rs runs it on a local one",
    ),
];

/// The README's ```sh blocks, each as its logical command lines.
fn command_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + "```sh\n".len()..];
        let end = body.find("```").expect("every ```sh block is closed");
        let mut lines = Vec::new();
        let mut pending = String::new();
        for raw in body[..end].lines() {
            if let Some(head) = raw.strip_suffix('\\') {
                pending.push_str(head);
                continue;
            }
            pending.push_str(raw);
            let line = pending.trim().to_string();
            pending.clear();
            if !line.is_empty() && !line.starts_with('#') {
                lines.push(line);
            }
        }
        blocks.push(lines);
        rest = &body[end + 3..];
    }
    blocks
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Printed past the test harness's capture, so that skips and timings show in the normal output.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[test]
fn every_readme_command_runs_as_written() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = command_blocks(&readme);
    assert!(
        blocks.len() >= 10,
        "found only {} ```sh blocks",
        blocks.len()
    );

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root.join("examples"), &dir.path().join("examples"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_attrib"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let (mut ran, mut skipped) = (0, 0);
    let started = Instant::now();
    for line in blocks.iter().flatten() {
        if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| line.starts_with(p)) {
            say(&format!("README command not run ({why}): {line}"));
            skipped += 1;
            continue;
        }
        let command = match line.strip_prefix("cargo run --release -- ") {
            Some(args) => format!("attrib {args}"),
            None => line.clone(),
        };
        assert!(
            !command.starts_with("cargo "),
            "a README cargo command this test does not know how to run: {line}"
        );
        let t = Instant::now();
        let out = Command::new("bash")
            .args(["-e", "-c", &command])
            .current_dir(dir.path())
            .env("PATH", &path)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "README command failed ({}): {line}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        say(&format!(
            "README command ok in {:.1} s: {line}",
            t.elapsed().as_secs_f64()
        ));
        ran += 1;
    }
    say(&format!(
        "README: {ran} commands ran, {skipped} shown but not run, {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    assert!(ran >= 40, "only {ran} README commands ran");
}

#[test]
fn blocks_are_split_into_logical_lines() {
    let text = "x\n```sh\na b \\\n    c   # note\n\n# only a comment\nd\n```\ny\n```sh\ne\n```\n";
    assert_eq!(
        command_blocks(text),
        vec![
            vec!["a b     c   # note".to_string(), "d".to_string()],
            vec!["e".to_string()]
        ]
    );
}
