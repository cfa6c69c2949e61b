//! Timings of MAGIC (issue "MAGIC", benchmark section). Prints figures, asserts nothing about time.
//! Run with
//!
//! ```text
//! cargo test --release -p attrib-methods --test magic_bench -- --ignored --nocapture
//! ```
//!
//! Workloads, f32, 20 epochs of batch 64 (460 steps): (a) the digits MLP of
//! `examples/digits_mlp.toml` (64-128-128-10 GELU, SGD momentum 0.9, peak lr 0.03 cosine, wd 5e-4);
//! (b) the same recipe with hidden layers of 512 (64-512-512-10, 12x the parameters). For each:
//! the time of one training run, then MAGIC for 1 target and for blocks of 16 and 64 targets in one
//! sweep, as ratios to that training run (measured in the same process, one after the other), and
//! the resident training states of store-all vs checkpointed replay. Targets of the issue: <= 2x a
//! training run for one target, <= 0.3x per target at 64. One untimed 1-target sweep warms up
//! each workload first; then `MAGIC_BENCH_REPS` (3) repetitions each time a training run followed
//! by every sweep, and the median ratio is printed. `MAGIC_BENCH_QUICK=1` runs only the 1- and
//! 64-target lines, of (a) alone or, with `MAGIC_BENCH_WIDE=1`, of (b) alone.
//! `MAGIC_BENCH_BLOCKS` sets the block sizes timed after the single target (default `16,64`;
//! empty for the single target alone).

use std::path::Path;
use std::time::Instant;

use attrib_methods::estimators::magic::replay::ByteSize;
use attrib_methods::estimators::magic::{
    magic_scores, MagicConfig, MagicOutput, MagicReport, ReplayChoice,
};
use attrib_methods::options::Auto;
use eval::stats::median;
use nn::{ModelConfig, Output, RunConfig};
use run::{Run, Targets};

// The allocator of the `attrib` binary, so that the figures are the ones users get.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn line(what: &str, targets: usize, train_s: f64, r: &MagicReport) {
    let mib = |states: usize| states as f64 * r.state_bytes as f64 / (1u64 << 20) as f64;
    let per = r.seconds / targets as f64;
    eprintln!(
        "  {what:<30} {targets:>3} targets: {:>7.2} s, {per:>6.3} s/target = {:>5.2}x training/target | replay {}, peak {} states ({:.1} MiB, bound {}), {} steps run",
        r.seconds,
        per / train_s,
        r.replay,
        r.peak_states,
        mib(r.peak_states),
        r.resident_bound,
        r.steps_run,
    );
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The smallest and largest of a few figures.
fn range(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    (lo, xs.iter().copied().fold(0.0, f64::max))
}

/// Repetitions of each timing (`MAGIC_BENCH_REPS`, default 3).
fn reps() -> usize {
    std::env::var("MAGIC_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// Trains `cfg` and times MAGIC on it; returns the run, the 1-target output and the median
/// training time.
///
/// Each repetition times one training run and then every MAGIC line right after it, and the
/// ratios are taken within a repetition: the shared machines this runs on drift by tens of
/// percent over a minute, and side-by-side ratios cancel most of the drift. Medians (and the
/// range) over the repetitions are printed.
fn workload(name: &str, cfg: RunConfig, blocks: &[usize]) -> (Run, MagicOutput, f64) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Run::train(cfg.clone(), base).unwrap();
    eprintln!(
        "{name}: {} train examples, {} parameters, {} threads, {} repetitions",
        run.n_train(),
        run.params.len(),
        rayon::current_num_threads(),
        reps()
    );
    let store = MagicConfig {
        replay: ReplayChoice::Store,
        ..MagicConfig::default()
    };
    let go = |k: usize| {
        let targets = Targets::test((0..k).collect(), Output::Margin);
        magic_scores(&run, &targets, &store).unwrap()
    };
    // Warm-up (threads, caches). Every timed sweep still stores its states in fresh pages: the
    // allocator returns freed memory to the system, and faulting it back in is slow on virtual
    // machines, so the figures include it as a one-sweep `attrib attribute` run would.
    let one = go(1);
    let sizes: Vec<usize> = std::iter::once(1).chain(blocks.iter().copied()).collect();
    let mut train_times = Vec::new();
    let mut ratios = vec![Vec::new(); sizes.len()];
    let mut seconds = vec![Vec::new(); sizes.len()];
    let mut forward = vec![Vec::new(); sizes.len()];
    let mut last = Vec::new();
    for _ in 0..reps() {
        let start = Instant::now();
        Run::train(cfg.clone(), base).unwrap();
        let train_s = start.elapsed().as_secs_f64();
        train_times.push(train_s);
        last.clear();
        for (((&k, r), secs), fwd) in sizes
            .iter()
            .zip(&mut ratios)
            .zip(&mut seconds)
            .zip(&mut forward)
        {
            let out = go(k);
            r.push(out.report.seconds / k as f64 / train_s);
            secs.push(out.report.seconds);
            fwd.push(out.report.forward_seconds);
            last.push(out);
        }
    }
    let train_s = median(&train_times);
    let (lo, hi) = range(&train_times);
    eprintln!("  one training run: median {train_s:.2} s (range {lo:.2}-{hi:.2} s)");
    for ((((&k, r), secs), fwd), out) in sizes
        .iter()
        .zip(&ratios)
        .zip(&seconds)
        .zip(&forward)
        .zip(&last)
    {
        let (lo, hi) = range(r);
        eprintln!(
            "  store-all, {k:>2} target(s) per sweep: median {:.2} s (forward run {:.2} s), {:.2}x training per target (range {lo:.2}-{hi:.2}x); replay {}, peak {} states ({:.1} MiB)",
            median(secs),
            median(fwd),
            median(r),
            out.report.replay,
            out.report.peak_states,
            out.report.peak_states as f64 * out.report.state_bytes as f64 / (1u64 << 20) as f64,
        );
        // Row 0 of a block sweep is the single-target sweep up to rounding (a lone target's
        // dual passes are split over batch shards, `magic::batch_shards`).
        let (a, b) = (&one.scores[0], &out.scores[0]);
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
        assert!(
            worst <= 1e-3 * scale,
            "block of {k}: row 0 differs by {worst:e} of {scale:e}"
        );
    }
    (run, one, train_s)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn magic_timings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/digits_mlp.toml");
    let cfg = RunConfig::from_toml_file(&path).unwrap();
    let quick = std::env::var_os("MAGIC_BENCH_QUICK").is_some();
    let blocks: Vec<usize> = match std::env::var("MAGIC_BENCH_BLOCKS") {
        Ok(list) => list
            .split(',')
            .filter(|b| !b.trim().is_empty())
            .map(|b| {
                b.trim()
                    .parse()
                    .expect("MAGIC_BENCH_BLOCKS: a list like 16,64")
            })
            .collect(),
        Err(_) if quick => vec![64],
        Err(_) => vec![16, 64],
    };
    let blocks = &blocks[..];
    let wide_only = std::env::var_os("MAGIC_BENCH_WIDE").is_some();
    let mut wide = cfg.clone();
    if let ModelConfig::Mlp { hidden, .. } = &mut wide.model {
        *hidden = vec![512, 512];
    }
    if wide_only {
        workload("(b) wider MLP 64-512-512-10", wide, blocks);
        return;
    }
    let (run, one, train_s) = workload("(a) digits MLP 64-128-128-10", cfg.clone(), blocks);
    if quick {
        return;
    }
    // Checkpointed replay: far fewer resident states, the same bits.
    for (what, config) in [
        (
            "tree, budget 8M (auto arity)",
            MagicConfig {
                memory_budget: ByteSize(8 << 20),
                ..MagicConfig::default()
            },
        ),
        (
            "tree, arity 2",
            MagicConfig {
                replay: ReplayChoice::Tree,
                arity: Auto::Value(2),
                ..MagicConfig::default()
            },
        ),
    ] {
        let targets = Targets::test(vec![0], Output::Margin);
        let out = magic_scores(&run, &targets, &config).unwrap();
        line(what, 1, train_s, &out.report);
        assert!(
            same_bits(&out.scores[0], &one.scores[0]),
            "{what}: replay changed the bits"
        );
    }
    // The same recipe in f64: how much the f32 sweep differs.
    let mut cfg64 = cfg.clone();
    cfg64.train.precision = nn::Precision::F64;
    let run64 = Run::train(cfg64, path.parent().unwrap()).unwrap();
    let out64 = magic_scores(
        &run64,
        &Targets::test(vec![0], Output::Margin),
        &MagicConfig::default(),
    )
    .unwrap();
    let (a, b) = (&one.scores[0], &out64.scores[0]);
    let rel = (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>()
        / b.iter().map(|y| y * y).sum::<f64>())
    .sqrt();
    eprintln!(
        "  f32 vs f64 scores, target 0: Pearson {:.6}, relative L2 difference {rel:.2e}",
        eval::stats::pearson(a, b)
    );

    let (wide_run, _, wide_s) = workload("(b) wider MLP 64-512-512-10", wide, blocks);
    let targets = Targets::test(vec![0], Output::Margin);
    let tree = MagicConfig {
        memory_budget: ByteSize(32 << 20),
        ..MagicConfig::default()
    };
    let out = magic_scores(&wide_run, &targets, &tree).unwrap();
    line("tree, budget 32M (auto arity)", 1, wide_s, &out.report);
}
