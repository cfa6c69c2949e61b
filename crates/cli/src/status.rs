//! `attrib status`: what a run directory holds of each long computation (`run::status`), so that
//! a person (or a script) sees which shards still have to run.

use anyhow::Result;

use crate::args::StatusArgs;
use crate::output::Event;
use crate::Ctx;

/// At most this many missing subset indices are printed per folder (all are in `--json`).
const SHOWN: usize = 12;

/// Runs `attrib status`.
///
/// # Errors
/// Not a run directory, or a folder that cannot be listed.
pub fn run(args: &StatusArgs, ctx: &Ctx) -> Result<()> {
    if !args.run.join(run::files::CONFIG).is_file() {
        anyhow::bail!(
            "{}: not a run directory (no {}); give the folder `attrib train --out` wrote",
            args.run.display(),
            run::files::CONFIG
        );
    }
    let st = run::status::status(&args.run)?;
    if st.ground_truth.is_empty() && st.store.is_empty() {
        ctx.out.result("no ground truth and nothing stored yet")?;
    }
    for g in &st.ground_truth {
        ctx.out.event(&Event::GroundTruthStatus {
            path: g.path.display().to_string(),
            present: g.present,
            expected: g.expected,
            missing: &g.missing,
        })?;
        let state = match g.expected {
            None => format!("{} entries", g.present),
            Some(m) if g.missing.is_empty() => format!("{m} of {m} subsets, complete"),
            Some(m) => {
                let mut shown: Vec<String> = g
                    .missing
                    .iter()
                    .take(SHOWN)
                    .map(|j| j.to_string())
                    .collect();
                if g.missing.len() > SHOWN {
                    shown.push("...".into());
                }
                format!(
                    "{} of {m} subsets, missing {} ({})",
                    g.present,
                    g.missing.len(),
                    shown.join(" ")
                )
            }
        };
        let kind = g
            .manifest
            .as_ref()
            .map_or("no manifest", |m| m.kind.as_str());
        ctx.out.result(format!(
            "ground truth  {:<44} {kind:<8} {state}",
            g.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ))?;
    }
    for s in &st.store {
        ctx.out.event(&Event::StoreStatus {
            kind: &s.kind,
            entries: s.entries,
            bytes: s.bytes,
        })?;
        ctx.out.result(format!(
            "store         {:<44} {:>5} entries  {:>10.1} MiB",
            s.kind,
            s.entries,
            s.bytes as f64 / (1 << 20) as f64
        ))?;
    }
    Ok(())
}
