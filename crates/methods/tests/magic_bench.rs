//! Timings of MAGIC on the digits MLP recipe (`examples/digits_mlp.toml`: 64-128-128-10 GELU,
//! batch 64, 20 epochs, SGD momentum 0.9, lr 0.03 cosine, wd 5e-4, f32). Prints figures, asserts
//! nothing about time. Run with
//!
//! ```text
//! cargo test --release -p attrib-methods --test magic_bench -- --ignored --nocapture
//! ```

use std::time::Instant;

use attrib_methods::estimators::magic::replay::ByteSize;
use attrib_methods::estimators::magic::{magic_scores, MagicConfig, MagicReport, ReplayChoice};
use attrib_methods::estimators::Auto;
use attrib_methods::{Run, Targets};
use nn::{Output, RunConfig};

fn line(what: &str, targets: usize, r: &MagicReport) {
    let mib = |states: usize| states as f64 * r.state_bytes as f64 / (1u64 << 20) as f64;
    eprintln!(
        "{what:<34} {targets:>3} targets: {:>7.2} s total, {:>6.3} s/target | replay {}, peak {} states ({:.1} MiB, bound {}), {} steps run, {} sweep(s)",
        r.seconds,
        r.seconds / targets as f64,
        r.replay,
        r.peak_states,
        mib(r.peak_states),
        r.resident_bound,
        r.steps_run,
        r.sweeps
    );
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn magic_on_the_digits_mlp_recipe() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/digits_mlp.toml");
    let cfg = RunConfig::from_toml_file(&path).unwrap();
    let start = Instant::now();
    let run = Run::train(cfg, path.parent().unwrap()).unwrap();
    let train_s = start.elapsed().as_secs_f64();
    eprintln!(
        "digits MLP: {} train examples, {} parameters, {} threads; one training run {train_s:.2} s",
        run.n_train(),
        run.params.len(),
        rayon::current_num_threads()
    );
    let go = |what: &str, k: usize, config: MagicConfig| {
        let targets = Targets::test((0..k).collect(), Output::Margin);
        let out = magic_scores(&run, &targets, &config).unwrap();
        line(what, k, &out.report);
        out
    };
    let store = MagicConfig {
        replay: ReplayChoice::Store,
        ..MagicConfig::default()
    };
    let one = go("store, 1 target", 1, store);
    go("store, block 16", 16, store);
    let many = go("store, block 64", 64, store);
    // Row 0 of the 64-target sweep is the single-target sweep up to rounding.
    let (a, b) = (&one.scores[0], &many.scores[0]);
    let scale = a.iter().fold(0.0f32 as f64, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    eprintln!("block 64 vs 1 target, f32: max |difference| {diff:.2e} of max |tau| {scale:.2e}");
    // The same recipe in f64: how much the f32 sweep (adjoints carried in f32) differs.
    let mut cfg64 = run.config.clone();
    cfg64.train.precision = nn::Precision::F64;
    let run64 = Run::train(cfg64, path.parent().unwrap()).unwrap();
    let targets = Targets::test(vec![0], Output::Margin);
    let out64 = magic_scores(&run64, &targets, &store).unwrap();
    line("f64 run, store, 1 target", 1, &out64.report);
    let (a, b) = (&one.scores[0], &out64.scores[0]);
    let rel = (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>()
        / b.iter().map(|y| y * y).sum::<f64>())
    .sqrt();
    eprintln!(
        "f32 vs f64 scores, target 0: Pearson {:.6}, relative L2 difference {rel:.2e}",
        attrib_methods::estimators::pearson(a, b)
    );
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
        let out = go(what, 1, config);
        assert_eq!(
            out.scores[0]
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>(),
            one.scores[0]
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>(),
            "{what}: replay changed the bits"
        );
    }
}
