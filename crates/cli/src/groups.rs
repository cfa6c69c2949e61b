//! `attrib group`, `attrib retrain-score`, `attrib noisy-labels`: group attribution (MATH.md E5,
//! GGDA) on the command line. Groupings are made by `methods::groups`, the evaluations are
//! `eval::groups`. `retrain-score` shards by retraining, `noisy-labels` by row (grouping) of its
//! table; each keeps its parts in the run's store.

use std::path::Path;

use anyhow::{Context, Result};
use eval::groups::{
    detected_fraction, helpfulness, removal_weights, retraining_score, self_influence,
    with_flipped_labels,
};
use methods::groups::make::{make, GroupingKind, GroupingSpec};
use methods::{Grouping, Scores};
use run::{files, parse_output, Run};

use crate::args::{GroupArgs, NoisyLabelsArgs, RetrainScoreArgs};
use crate::output::Event;
use crate::Ctx;

fn kind(name: &str) -> Result<GroupingKind> {
    name.parse::<GroupingKind>()
        .map_err(|e| anyhow::anyhow!("--method: {e}"))
}

/// Runs `attrib group`: makes a grouping and writes it.
///
/// # Errors
/// An unknown kind, K outside 1..=n, a kind that does not suit the run, write errors.
pub fn group(args: &GroupArgs, ctx: &Ctx) -> Result<()> {
    let run = Run::load(&args.run)?;
    let (g, default_name) = match (&args.from_csv, &args.method, args.groups) {
        (Some(spec), _, _) => {
            let (file, column) = spec.rsplit_once(':').with_context(|| {
                format!("--csv {spec}: expected FILE:COLUMN, e.g. meta.csv:vendor")
            })?;
            let g = Grouping::from_csv_column(Path::new(file), column)?;
            g.check_n(run.n_train())
                .with_context(|| format!("--csv {spec}: one row per training example"))?;
            (g, format!("csv-{column}.csv"))
        }
        (None, Some(method), Some(k)) => {
            let spec = GroupingSpec {
                kind: kind(method)?,
                k,
                seed: args.seed,
                proj: args.proj,
            };
            (make(&run, &spec)?, format!("{method}-k{k}.csv"))
        }
        _ => anyhow::bail!("give --method KIND and --groups K, or --csv FILE:COLUMN"),
    };
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join(files::GROUPS).join(default_name));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    g.save(&path)?;
    ctx.out.event(&Event::Grouping {
        path: path.display().to_string(),
        how: &g.how,
        k: g.k,
        n: g.n(),
        hash: g.hash(),
    })?;
    ctx.out.result(format!(
        "{} ({} examples, hash {}) -> {}",
        g.how,
        g.n(),
        g.hash(),
        path.display()
    ))?;
    Ok(())
}

/// Runs `attrib retrain-score`.
///
/// # Errors
/// Unreadable or mismatched scores or grouping, fractions outside (0, 1), training errors.
pub fn retrain_score(args: &RetrainScoreArgs, ctx: &Ctx) -> Result<()> {
    let run = Run::load(&args.run)?;
    let scores = Scores::load(&args.scores)
        .with_context(|| format!("cannot read scores {}", args.scores.display()))?;
    let groups = match &args.groups {
        Some(p) => {
            let g = Grouping::load(p)?;
            scores.check_groups(&run, &g, &args.scores)?;
            g
        }
        None => {
            scores.check_run(&run, &args.scores)?;
            singletons(run.n_train())
        }
    };
    let rows: Vec<Vec<f64>> = (0..scores.rows()).map(|r| scores.row(r).to_vec()).collect();
    let output = parse_output(&scores.meta.output).map_err(anyhow::Error::msg)?;
    let helpful = helpfulness(&rows, output);
    // Random removal: a seeded random priority over single examples.
    let mut rng = engine::Rng::derive(0, "retrain-score", 0);
    let random: Vec<f64> = (0..run.n_train()).map(|_| rng.uniform()).collect();
    let name = args.scores.display().to_string();
    let shard = match args.shard {
        Some(s) => Some(s),
        None => run::Shard::from_env()?,
    };
    if let Some(shard) = shard {
        // Retraining 2j is the scores' removal at fraction j, 2j + 1 the random one.
        let mut weights = Vec::new();
        for &f in &args.remove {
            weights.push(removal_weights(&run, &groups, &helpful, f)?.1);
            weights.push(removal_weights(&run, &singletons(run.n_train()), &random, f)?.1);
        }
        for (j, w) in weights.iter().enumerate() {
            if shard.owns(j) {
                run::retrain::retrain_cached(&run, w)?;
            }
        }
        let done = weights
            .iter()
            .filter(|w| run::retrain::stored_retraining(&run, w).is_some())
            .count();
        ctx.out.event(&Event::Shard {
            method: "retrain-score",
            shard: shard.to_string(),
            done,
            total: weights.len(),
        })?;
        ctx.out.info(format!(
            "retrain-score shard {shard}: {done} of {} retrainings stored in {}; run the command \
             without a shard for the table",
            weights.len(),
            args.run.join("store/retrain").display()
        ))?;
        return Ok(());
    }
    ctx.out.result(format!(
        "{:<10} {:>8} {:>8} {:>9}",
        "removed", "examples", "accuracy", "random"
    ))?;
    for &f in &args.remove {
        let ours = retraining_score(&run, &groups, &helpful, f)?;
        let base = retraining_score(&run, &singletons(run.n_train()), &random, f)?;
        for (label, r) in [(name.as_str(), &ours), ("random", &base)] {
            ctx.out.event(&Event::RetrainingScore {
                scores: label,
                fraction: f,
                removed: r.removed,
                accuracy: r.accuracy,
            })?;
        }
        ctx.out.result(format!(
            "{:<10} {:>8} {:>7.2}% {:>8.2}%",
            format!("{:.0}%", 100.0 * f),
            ours.removed,
            100.0 * ours.accuracy,
            100.0 * base.accuracy
        ))?;
    }
    Ok(())
}

fn singletons(n: usize) -> Grouping {
    Grouping::new((0..n).collect(), n, "individual").expect("a partition")
}

/// The store kind of one row of `attrib noisy-labels`: a grouping made on the noisy run and the
/// self-influence of its columns.
pub const NOISY_ROW_KIND: &str = "noisy-labels-row";

/// Bumped when what a stored row holds would change for the same key.
const NOISY_ROW_FORMAT: &str = "noisy-labels-row-1";

/// One row of `attrib noisy-labels`: the grouping and its self-influence (bits, read back
/// exactly), from which the row's detected fractions follow for any `--inspect`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct NoisyRow {
    how: String,
    k: usize,
    assignment: Vec<usize>,
    influence: Vec<u64>,
}

/// The store key of row `spec` (`None`: individual examples): the clean run, the flips and the
/// grouping's spec.
fn noisy_row_key(clean: &Run, args: &NoisyLabelsArgs, spec: Option<&GroupingSpec>) -> run::Key {
    run::Key::for_run(NOISY_ROW_KIND, clean)
        .with("row_format", NOISY_ROW_FORMAT)
        .with("flip", args.flip.to_bits().to_le_bytes())
        .with("seed", args.seed.to_le_bytes())
        .with(
            "grouping",
            spec.map_or("individual".to_string(), |s| format!("{s:?}")),
        )
}

/// Row `spec` from the clean run's store, if a shard or an earlier run stored it.
fn stored_row(
    clean: &Run,
    args: &NoisyLabelsArgs,
    spec: Option<&GroupingSpec>,
) -> Option<NoisyRow> {
    let bytes = run::Store::of(clean).get(&noisy_row_key(clean, args, spec), "json")?;
    serde_json::from_slice(&bytes).ok()
}

/// Row `spec` of the noisy run: stored, or made, ranked and stored now.
fn noisy_row(
    clean: &Run,
    noisy: &Run,
    args: &NoisyLabelsArgs,
    spec: Option<&GroupingSpec>,
) -> Result<(Grouping, Vec<f64>)> {
    let row = match stored_row(clean, args, spec) {
        Some(row) => row,
        None => {
            let g = match spec {
                None => singletons(noisy.n_train()),
                Some(s) => make(noisy, s)?,
            };
            let s = self_influence(noisy, &g, methods::support::chunks::DEFAULT_CHUNK)?;
            let row = NoisyRow {
                how: g.how.clone(),
                k: g.k,
                assignment: g.assignment.clone(),
                influence: s.iter().map(|x| x.to_bits()).collect(),
            };
            let bytes = serde_json::to_vec(&row).expect("rows serialise");
            run::Store::of(clean).put(&noisy_row_key(clean, args, spec), "json", &bytes)?;
            row
        }
    };
    let g = Grouping::new(row.assignment, row.k, row.how)?;
    Ok((g, row.influence.into_iter().map(f64::from_bits).collect()))
}

/// Runs `attrib noisy-labels`. Row `j` of the table (0: individual examples, then each
/// `--grouping`) is item `j` of the shards; the retraining with flipped labels is stored once.
///
/// # Errors
/// A run without class labels, bad `KIND:K` specs, fractions outside (0, 1), training errors.
pub fn noisy_labels(args: &NoisyLabelsArgs, ctx: &Ctx) -> Result<()> {
    let clean = Run::load(&args.run)?;
    let specs: Vec<GroupingSpec> = args
        .grouping
        .iter()
        .map(|s| {
            let (k, n) = s.split_once(':').with_context(|| {
                format!("--grouping {s}: expected KIND:K, e.g. grad-kmeans:100")
            })?;
            let n: usize = n
                .parse()
                .with_context(|| format!("--grouping {s}: K must be a whole number"))?;
            Ok(GroupingSpec::new(kind(k)?, n, args.seed))
        })
        .collect::<Result<_>>()?;
    let shard = match args.shard {
        Some(s) => Some(s),
        None => run::Shard::from_env()?,
    };
    ctx.out.info(format!(
        "flipping {:.0}% of {} labels and retraining",
        100.0 * args.flip,
        clean.n_train()
    ))?;
    let (run, flipped) = with_flipped_labels(&clean, args.flip, args.seed)?;
    let rows: Vec<Option<&GroupingSpec>> = std::iter::once(None)
        .chain(specs.iter().map(Some))
        .collect();
    if let Some(shard) = shard {
        for (j, &spec) in rows.iter().enumerate() {
            if shard.owns(j) {
                noisy_row(&clean, &run, args, spec)?;
            }
        }
        let done = rows
            .iter()
            .filter(|&&spec| stored_row(&clean, args, spec).is_some())
            .count();
        ctx.out.event(&Event::Shard {
            method: "noisy-labels",
            shard: shard.to_string(),
            done,
            total: rows.len(),
        })?;
        ctx.out.info(format!(
            "noisy-labels shard {shard}: {done} of {} rows stored in {}; run the command \
             without a shard for the table",
            rows.len(),
            args.run.join("store").join(NOISY_ROW_KIND).display()
        ))?;
        return Ok(());
    }
    let head: Vec<String> = args
        .inspect
        .iter()
        .map(|f| format!("{:>7}", format!("{:.0}%", 100.0 * f)))
        .collect();
    ctx.out
        .result(format!("{:<34} {}", "found in the top", head.join(" ")))?;
    for &spec in &rows {
        let (g, s) = noisy_row(&clean, &run, args, spec)?;
        let mut cells = Vec::new();
        for &f in &args.inspect {
            let found = detected_fraction(&g, &s, &flipped, f);
            ctx.out.event(&Event::NoisyLabels {
                grouping: &g.how,
                flipped: flipped.len(),
                inspected: f,
                found,
            })?;
            cells.push(format!("{:>6.1}%", 100.0 * found));
        }
        ctx.out
            .result(format!("{:<34} {}", g.how, cells.join(" ")))?;
    }
    Ok(())
}
