//! `attrib slurm`: an `sbatch` array script for a shardable command (each array task is one
//! `run::Shard`, read from `SLURM_ARRAY_TASK_ID`/`COUNT`) and an assemble job that depends on
//! the whole array (`--dependency=afterok`) and runs the same command without a shard. With
//! `--submit`, both are submitted with `sbatch --parsable`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::args::SlurmArgs;
use crate::Ctx;

/// Commands whose work splits into shards, and what a shard of each is.
const SHARDABLE: &[(&str, &str)] = &[
    ("groundtruth", "subsets j with j mod N = I"),
    (
        "attribute",
        "MAGIC blocks b with b mod N = I, TRAK members m with (m - 1) mod N = I, datamodels \
         subsets j with j mod N = I, tmc-shapley permutations p with p mod N = I, any other \
         method's blocks of --target-block targets b with \
         b mod N = I",
    ),
    ("retrain-score", "retrainings j with j mod N = I"),
    (
        "select",
        "one-shot retrainings j (table order) with j mod N = I",
    ),
    (
        "poison",
        "(budget, attack) rows j (table order) with j mod N = I",
    ),
    (
        "noisy-labels",
        "rows j (individual examples, then each grouping) with j mod N = I",
    ),
];

/// Long commands that do not shard, and why: `attrib slurm` names the reason instead of only
/// listing the shardable commands.
const NOT_SHARDABLE: &[(&str, &str)] = &[
    (
        "unlearn",
        "its only long part is one retraining (--verify), which is already cached in          RUN/store/retrain/ and cannot be split; run `attrib unlearn` directly (in one batch job          if it is long)",
    ),
    (
        "train",
        "one training run is one sequential trajectory; train directly (in one batch job if it          is long), then shard the commands that use the run",
    ),
];

/// Quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `#SBATCH` header of one job.
fn header(args: &SlurmArgs, name: &str, logs: &Path, array: Option<usize>) -> String {
    let mut h = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name={}", quote(name)),
        format!("#SBATCH --time={}", quote(&args.time)),
        format!("#SBATCH --cpus-per-task={}", args.cpus_per_task),
        format!("#SBATCH --mem={}", quote(&args.mem)),
    ];
    if let Some(p) = &args.partition {
        h.push(format!("#SBATCH --partition={}", quote(p)));
    }
    let log = match array {
        Some(n) => {
            let throttle = args
                .max_running
                .map(|k| format!("%{k}"))
                .unwrap_or_default();
            h.push(format!("#SBATCH --array=0-{}{throttle}", n - 1));
            logs.join("%x-%A_%a.out")
        }
        None => logs.join("%x-%j.out"),
    };
    h.push(format!(
        "#SBATCH --output={}",
        quote(&log.display().to_string())
    ));
    h.join("\n")
}

/// Writes (and with `--submit` submits) the array and assemble scripts.
///
/// # Errors
/// A command that does not shard, a missing run directory, unwritable scripts, or `sbatch`
/// failing (its message is shown).
pub fn run(args: &SlurmArgs, ctx: &Ctx) -> Result<()> {
    let Some(command) = args.command.first() else {
        bail!("give the attrib command after `--`, e.g. `attrib slurm --run R -- groundtruth --run R --drop 0.01 --subsets 100`");
    };
    if let Some((_, why)) = NOT_SHARDABLE.iter().find(|(c, _)| c == command) {
        bail!("`{command}` does not run in shards: {why}");
    }
    let Some((_, what)) = SHARDABLE.iter().find(|(c, _)| c == command) else {
        bail!(
            "`{command}` does not run in shards; shardable commands: {}",
            SHARDABLE
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if args.command.iter().any(|a| a == "--shard") {
        bail!(
            "leave --shard out of the command: each array task is one shard (SLURM_ARRAY_TASK_ID)"
        );
    }
    if args.shards == 0 {
        bail!("--shards must be at least 1");
    }
    if args.max_running == Some(0) {
        bail!(
            "--max-running 0 would never run a task; give 1 or more, or leave it out for no limit"
        );
    }
    if !args.run.join(run::files::CONFIG).is_file() {
        bail!(
            "{}: not a run directory (no {}); train it first",
            args.run.display(),
            run::files::CONFIG
        );
    }
    let exe = std::env::current_exe().context("cannot find the attrib binary's path")?;
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let dir = args.run.join("slurm");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let logs = std::fs::canonicalize(&logs).unwrap_or(logs);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("attrib-{command}"));
    let line = std::iter::once(exe.display().to_string())
        .chain(args.command.iter().cloned())
        .map(|a| quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let cd = format!("cd {}", quote(&cwd.display().to_string()));
    let array = format!(
        "{}\n# One shard per array task ({what}); attrib reads SLURM_ARRAY_TASK_ID/COUNT.\n{cd}\nexec {line}\n",
        header(args, &name, &logs, Some(args.shards))
    );
    let assemble = format!(
        "{}\n# Runs after every array task succeeded: assembles the shards' entries, computing only\n# what is missing.\n{cd}\nexec {line}\n",
        header(args, &format!("{name}-assemble"), &logs, None)
    );
    let array_path = dir.join(format!("{name}.sbatch"));
    let assemble_path = dir.join(format!("{name}-assemble.sbatch"));
    data::write_atomic(&array_path, array.as_bytes())?;
    data::write_atomic(&assemble_path, assemble.as_bytes())?;
    ctx.out.result(format!(
        "wrote {} ({} array tasks)",
        array_path.display(),
        args.shards
    ))?;
    ctx.out
        .result(format!("wrote {}", assemble_path.display()))?;
    if !args.submit {
        ctx.out.result(format!(
            "submit with: jid=$(sbatch --parsable {}) && sbatch --dependency=afterok:$jid {}",
            array_path.display(),
            assemble_path.display()
        ))?;
        return Ok(());
    }
    let array_id = sbatch(&array_path, None)?;
    let assemble_id = sbatch(&assemble_path, Some(&array_id))?;
    ctx.out.result(format!(
        "submitted array job {array_id} and assemble job {assemble_id} (afterok:{array_id})"
    ))?;
    Ok(())
}

/// Submits `script` (after job `after` succeeded, when given) and returns the job id.
fn sbatch(script: &PathBuf, after: Option<&str>) -> Result<String> {
    let mut c = Command::new("sbatch");
    c.arg("--parsable");
    if let Some(id) = after {
        c.arg(format!("--dependency=afterok:{id}"));
    }
    let o = c.arg(script).output().context(
        "cannot run sbatch; is Slurm installed here? (without --submit the scripts are only written)",
    )?;
    if !o.status.success() {
        bail!(
            "sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    // --parsable prints "ID" or "ID;cluster".
    let out = String::from_utf8_lossy(&o.stdout);
    let id = out.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() {
        bail!("sbatch {} printed no job id", script.display());
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> SlurmArgs {
        let mut argv = vec!["attrib", "slurm", "--run", "r", "--shards", "3"];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["--", "groundtruth", "--run", "r"]);
        match crate::args::Cli::try_parse_from(argv).unwrap().command {
            crate::args::Command::Slurm(a) => a,
            _ => panic!("slurm"),
        }
    }

    #[test]
    fn unlearn_is_refused_with_the_reason_and_the_new_commands_are_accepted() {
        let parse = |command: &str| match crate::args::Cli::try_parse_from([
            "attrib", "slurm", "--run", "r", "--", command, "--run", "r",
        ])
        .unwrap()
        .command
        {
            crate::args::Command::Slurm(a) => a,
            _ => panic!("slurm"),
        };
        let ctx = crate::quiet_ctx();
        let e = run(&parse("unlearn"), &ctx).unwrap_err().to_string();
        assert!(
            e.contains("unlearn") && e.contains("one retraining") && e.contains("cached"),
            "{e}"
        );
        for command in ["poison", "noisy-labels"] {
            assert!(SHARDABLE.iter().any(|(c, _)| *c == command), "{command}");
            // Accepted: it fails only later, on the missing run directory.
            let e = run(&parse(command), &ctx).unwrap_err().to_string();
            assert!(e.contains("not a run directory"), "{command}: {e}");
        }
    }

    #[test]
    fn test_max_running_throttles_the_array() {
        let logs = Path::new("logs");
        let plain = header(&args(&[]), "gt", logs, Some(3));
        assert!(plain.contains("#SBATCH --array=0-2\n"), "{plain}");
        let throttled = header(&args(&["--max-running", "1"]), "gt", logs, Some(3));
        assert!(throttled.contains("#SBATCH --array=0-2%1\n"), "{throttled}");
        let assemble = header(&args(&["--max-running", "1"]), "gt", logs, None);
        assert!(!assemble.contains("--array"), "{assemble}");
    }
}
