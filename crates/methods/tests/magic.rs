//! MAGIC (MATH.md E2) against its defining identity and its invariances, in f64 on tiny runs:
//! - `tau_i` equals the derivative of `f(theta_T)` in `w_i` by central differences of two full
//!   retrainings (Richardson-extrapolated), for SGD with momentum, Nesterov, Adam and AdamW, on an
//!   MLP, a CNN and a GPT (per-sequence and per-token outputs);
//! - stored and checkpoint-tree replay give the same bits, and the tree keeps its memory bound;
//! - a block of targets equals one target at a time; the thread count does not change any bit;
//! - an interrupted computation resumes from its finished blocks, with the same bits;
//! - the errors a user can hit.

use attrib_methods::estimators::magic::replay::{
    best_arity, state_bytes, tree_bound, tree_levels, Buffers, ByteSize, Replay, Trajectory,
};
use attrib_methods::estimators::magic::{magic_scores, MagicConfig, MagicOutput, ReplayChoice};
use attrib_methods::options::Auto;
use attrib_methods::{MethodError, Options};
use nn::{Optimizer, Output, RunConfig, Trainer};
use run::{Run, Split, Targets};

fn run(toml: &str) -> Run {
    let cfg = RunConfig::from_toml_str(toml, "magic-test.toml".as_ref()).unwrap();
    Run::train(cfg, ".".as_ref()).unwrap()
}

/// A breast-cancer MLP (64 examples, hidden [8] GELU, 4 batches of 16 per epoch) with `optim` and
/// `schedule` (inline TOML tables).
fn mlp(optim: &str, schedule: &str, epochs: usize) -> Run {
    run(&format!(
        r#"
data = {{ source = "breast_cancer", max_train = 64, max_test = 8 }}
model = {{ kind = "mlp", hidden = [8], activation = "gelu" }}
optim = {optim}
schedule = {schedule}
train = {{ epochs = {epochs}, batch_size = 16, precision = "f64", seed = 3 }}
"#
    ))
}

/// Digits as 1x8x8 images, a two-stage CNN with 4 channels, group norm and max pooling.
fn cnn(optim: &str) -> Run {
    run(&format!(
        r#"
data = {{ source = "digits", example_shape = [1, 8, 8], max_train = 64, max_test = 8 }}
model = {{ kind = "cnn", channels = [4, 4], groups = 2, pool = "max", residual = false }}
optim = {optim}
schedule = {{ kind = "cosine" }}
train = {{ epochs = 4, batch_size = 16, precision = "f64", seed = 1 }}
"#
    ))
}

fn magic(run: &Run, targets: &Targets, config: MagicConfig) -> MagicOutput {
    magic_scores(run, targets, &config).unwrap()
}

/// Two examples from each of the first four batches of the first epoch.
fn examples_from_batches(run: &Run) -> Vec<usize> {
    let t = &run.config.train;
    let plan = nn::batch_plan(run.n_train(), t.batch_size, 1, t.seed, t.drop_last);
    plan.iter().take(4).flat_map(|b| b[..2].to_vec()).collect()
}

/// `d f_target(theta_T(w)) / d w_i` at `w = 1` by central differences of retrainings with one
/// Richardson step, `(4 D(h/2) - D(h)) / 3`: error O(h^4).
fn finite_difference(run: &Run, targets: &Targets, i: usize, h: f64) -> Vec<f64> {
    let f = |e: f64| {
        let mut w = vec![1.0; run.n_train()];
        w[i] += e;
        run.target_outputs(&run.retrain(&w).unwrap(), targets)
    };
    let d = |h: f64| -> Vec<f64> {
        f(h).iter()
            .zip(f(-h))
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect()
    };
    let (half, full) = (d(h / 2.0), d(h));
    half.iter()
        .zip(full)
        .map(|(a, b)| (4.0 * a - b) / 3.0)
        .collect()
}

/// Checks MAGIC against finite differences on examples from different batches; returns the worst
/// relative error. The relative error is taken against `max(|tau|, |fd|, 1e-6 max_i |tau_i|)` so
/// that a score that is zero up to rounding does not divide by zero.
fn check_fd(name: &str, run: &Run, targets: &Targets) -> f64 {
    let out = magic(run, targets, MagicConfig::default());
    let examples = examples_from_batches(run);
    let mut worst: f64 = 0.0;
    for &i in &examples {
        let fd = finite_difference(run, targets, i, 1e-4);
        for (r, &want) in fd.iter().enumerate() {
            let got = out.scores[r][i];
            let scale = out.scores[r].iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let rel = (got - want).abs() / got.abs().max(want.abs()).max(1e-6 * scale);
            worst = worst.max(rel);
            assert!(
                rel <= 1e-5,
                "{name}: target {r}, example {i}: magic {got:e} vs finite differences {want:e} (relative error {rel:e})"
            );
        }
    }
    eprintln!(
        "{name}: {} steps, {} examples x {} targets, worst relative error vs finite differences {worst:.2e}",
        out.report.steps,
        examples.len(),
        targets.indices.len()
    );
    worst
}

#[test]
fn magic_mlp_sgd_momentum_cosine_matches_finite_differences() {
    let r = mlp(
        r#"{ kind = "sgd", lr = 0.1, momentum = 0.9, weight_decay = 1e-3 }"#,
        r#"{ kind = "cosine" }"#,
        8,
    );
    check_fd(
        "mlp sgd+momentum",
        &r,
        &Targets::test(vec![0, 5], Output::Margin),
    );
}

#[test]
fn magic_mlp_nesterov_and_plain_sgd_match_finite_differences() {
    let r = mlp(
        r#"{ kind = "sgd", lr = 0.1, momentum = 0.8, nesterov = true, weight_decay = 1e-2 }"#,
        r#"{ kind = "step", every = 5, gamma = 0.5 }"#,
        8,
    );
    check_fd("mlp nesterov", &r, &Targets::test(vec![1, 2], Output::Loss));
    let r = mlp(r#"{ kind = "sgd", lr = 0.2 }"#, r#"{ kind = "linear" }"#, 8);
    check_fd("mlp sgd", &r, &Targets::test(vec![3], Output::Margin));
}

/// The breast-cancer MLP with `optim` and `clip` (inline TOML tables).
fn clipped_mlp(optim: &str, clip: &str) -> Run {
    run(&format!(
        r#"
data = {{ source = "breast_cancer", max_train = 64, max_test = 8 }}
model = {{ kind = "mlp", hidden = [8], activation = "gelu" }}
optim = {optim}
schedule = {{ kind = "cosine" }}
train = {{ epochs = 8, batch_size = 16, precision = "f64", seed = 3, clip = {clip} }}
"#
    ))
}

#[test]
fn magic_with_gradient_clipping_matches_finite_differences() {
    let sgd = r#"{ kind = "sgd", lr = 0.1, momentum = 0.9, weight_decay = 1e-3 }"#;
    // AdamW rescales each coordinate by its second moment, so a clip's scale reaches the update
    // through both moments and the square root: the moby-gpt-finetune recipe with clipping.
    let adamw = r#"{ kind = "adamw", lr = 0.01, beta1 = 0.95, beta2 = 0.975, eps_root = 1e-8, weight_decay = 0.01 }"#;
    // max_norm well below the batch gradients' norms, so that clipping acts at every step.
    for (name, optim, clip) in [
        ("smooth clip", sgd, r#"{ max_norm = 0.05 }"#),
        ("hard clip", sgd, r#"{ max_norm = 0.05, kind = "hard" }"#),
        ("adamw smooth clip", adamw, r#"{ max_norm = 0.05 }"#),
    ] {
        let unclipped = mlp(optim, r#"{ kind = "cosine" }"#, 8);
        let r = clipped_mlp(optim, clip);
        assert_ne!(r.params, unclipped.params, "{name} changed nothing");
        check_fd(name, &r, &Targets::test(vec![0, 5], Output::Margin));
    }
}

#[test]
fn magic_mlp_adam_matches_finite_differences() {
    let r = mlp(
        r#"{ kind = "adam", lr = 0.01, weight_decay = 1e-3 }"#,
        r#"{ kind = "linear", end = 0.1 }"#,
        8,
    );
    check_fd("mlp adam", &r, &Targets::test(vec![0, 4], Output::Margin));
}

#[test]
fn magic_mlp_adamw_with_eps_root_matches_finite_differences() {
    let r = mlp(
        r#"{ kind = "adamw", lr = 0.01, eps = 1e-6, eps_root = 1e-8, weight_decay = 0.1 }"#,
        r#"{ kind = "one_cycle" }"#,
        8,
    );
    check_fd(
        "mlp adamw eps_root",
        &r,
        &Targets::test(vec![2, 6], Output::LogLikelihood),
    );
}

#[test]
fn magic_cnn_sgd_momentum_matches_finite_differences() {
    let r = cnn(r#"{ kind = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }"#);
    check_fd(
        "cnn sgd+momentum",
        &r,
        &Targets::test(vec![0, 3], Output::Margin),
    );
}

#[test]
fn magic_cnn_adamw_matches_finite_differences() {
    let r = cnn(r#"{ kind = "adamw", lr = 0.01, eps_root = 1e-10 }"#);
    check_fd("cnn adamw", &r, &Targets::test(vec![1], Output::Loss));
}

/// A tiny character GPT (1 layer, width 8, windows of 8 characters of Moby-Dick) trained with
/// AdamW as bergson's MAGIC replication does (eps_root > 0, warm-up then decay), in f64.
fn tiny_gpt() -> Run {
    run(r#"
data = { source = "text", path = "../../examples/data/moby-dick-excerpt.txt", seq_len = 8, max_train = 32, max_test = 4 }
model = { kind = "gpt", d_model = 8, n_layer = 1, n_head = 2 }
optim = { kind = "adamw", lr = 0.01, beta1 = 0.95, beta2 = 0.975, eps = 1e-8, eps_root = 1e-8, weight_decay = 0.01 }
schedule = { kind = "one_cycle" }
train = { epochs = 2, batch_size = 8, precision = "f64", seed = 2 }
"#)
}

#[test]
fn magic_gpt_sequence_and_token_outputs_match_finite_differences() {
    let r = tiny_gpt();
    check_fd(
        "gpt sequence loss",
        &r,
        &Targets::test(vec![0, 3], Output::Loss),
    );
    // Token targets s * 7 + p: the first and last prediction of window 0, two of window 2.
    check_fd(
        "gpt token loss",
        &r,
        &Targets::test(vec![0, 6, 15, 19], Output::Token),
    );
}

/// Token targets are measured one forward pass per distinct window: in any order, repeated or
/// spread over windows, they are the losses of the one-target-per-row batch that MAGIC
/// differentiates (to rounding).
#[test]
fn token_outputs_read_once_per_window_are_the_targets_losses() {
    let r = tiny_gpt();
    let t = Targets::test(vec![19, 0, 6, 15, 6, 1, 14, 20], Output::Token);
    let fast = r.target_outputs(&r.params, &t);
    let one_per_row =
        nn::per_example::outputs(&r.model, &r.params, &r.target_batch::<f64>(&t), t.output);
    assert_eq!(fast.len(), one_per_row.len());
    for (k, (a, b)) in fast.iter().zip(&one_per_row).enumerate() {
        assert!((a - b).abs() <= 1e-12 * b.abs(), "target {k}: {a} vs {b}");
    }
    assert_eq!(
        fast[2].to_bits(),
        fast[4].to_bits(),
        "the same target twice"
    );
}

/// A window's loss is the mean of its token losses (so targets `7..14` are window 1's
/// predictions), and MAGIC is linear in the output, so the per-token scores of a window average
/// to its sequence score.
#[test]
fn magic_token_scores_of_a_window_average_to_its_sequence_score() {
    let r = tiny_gpt();
    let (seq_targets, token_targets) = (
        Targets::test(vec![1], Output::Loss),
        Targets::test((7..14).collect(), Output::Token),
    );
    let f_seq = r.target_outputs(&r.params, &seq_targets)[0];
    let f_tokens = r.target_outputs(&r.params, &token_targets);
    assert!((f_tokens.iter().sum::<f64>() / 7.0 - f_seq).abs() <= 1e-12 * f_seq.abs());
    assert!(
        f_tokens.windows(2).any(|w| w[0] != w[1]),
        "token losses differ"
    );
    let seq = magic(&r, &seq_targets, MagicConfig::default());
    let tokens = magic(&r, &token_targets, MagicConfig::default());
    let scale = seq.scores[0].iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for i in 0..r.n_train() {
        let mean = tokens.scores.iter().map(|row| row[i]).sum::<f64>() / 7.0;
        assert!(
            (mean - seq.scores[0][i]).abs() <= 1e-10 * scale,
            "example {i}: mean token score {mean:e} vs sequence score {:e}",
            seq.scores[0][i]
        );
    }
}

fn same_bits(a: &[Vec<f64>], b: &[Vec<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

fn with_replay(replay: ReplayChoice, arity: Auto<usize>) -> MagicConfig {
    MagicConfig {
        replay,
        arity,
        ..MagicConfig::default()
    }
}

#[test]
fn magic_stored_and_tree_replay_give_the_same_bits_within_the_memory_bound() {
    // Adam's reverse rule reads the stored moments; momentum's reads no buffer, so store-all
    // keeps half as much per state as the tree's checkpoints.
    for (optim, buffers_stored) in [
        (r#"{ kind = "adam", lr = 0.01 }"#, 2),
        (r#"{ kind = "sgd", lr = 0.1, momentum = 0.9 }"#, 0),
    ] {
        stored_and_tree_replay_agree(&mlp(optim, r#"{ kind = "cosine" }"#, 6), buffers_stored);
    }
}

fn stored_and_tree_replay_agree(r: &Run, buffers_stored: usize) {
    let targets = Targets::test(vec![0, 1, 2], Output::Margin);
    let store = magic(r, &targets, with_replay(ReplayChoice::Store, Auto::Auto));
    assert_eq!(store.report.replay, Replay::Store);
    assert_eq!(store.report.peak_states, store.report.steps + 1);
    let params = store.report.params;
    let checkpoint = state_bytes::<f64>(params, r.config.optim.buffers());
    assert_eq!(
        store.report.state_bytes,
        state_bytes::<f64>(params, buffers_stored)
    );
    for arity in [2, 3, 5] {
        let tree = magic(
            r,
            &targets,
            with_replay(ReplayChoice::Tree, Auto::Value(arity)),
        );
        assert!(
            same_bits(&tree.scores, &store.scores),
            "arity {arity}: tree replay changed the scores"
        );
        let rep = &tree.report;
        assert_eq!(rep.replay, Replay::Tree { arity });
        assert!(
            rep.peak_states <= rep.resident_bound && rep.resident_bound < rep.steps + 1,
            "arity {arity}: {rep:?}"
        );
        eprintln!(
            "arity {arity}: {} steps, peak {} states (bound {}), {} steps run",
            rep.steps, rep.peak_states, rep.resident_bound, rep.steps_run
        );
    }
    // A budget that holds only a tree selects one, with the same bits.
    let budget = MagicConfig {
        memory_budget: ByteSize(checkpoint * 12),
        ..MagicConfig::default()
    };
    let auto = magic(r, &targets, budget);
    assert!(
        matches!(auto.report.replay, Replay::Tree { .. }),
        "{:?}",
        auto.report
    );
    assert_eq!(auto.report.state_bytes, checkpoint);
    assert!(auto.report.peak_states <= 12);
    assert!(same_bits(&auto.scores, &store.scores));
    // A budget that holds every stored state selects store-all.
    let budget = MagicConfig {
        memory_budget: ByteSize(store.report.state_bytes * (store.report.steps as u64 + 1)),
        ..MagicConfig::default()
    };
    assert_eq!(magic(r, &targets, budget).report.replay, Replay::Store);
}

#[test]
fn magic_trajectory_answers_every_state_bitwise_within_the_tree_bound() {
    // Logistic regression on breast cancer (455 training examples) for runs of 4 to 182 steps.
    for (batch, epochs) in [(5, 2), (8, 2), (16, 1), (50, 2), (113, 1), (455, 4)] {
        let cfg = RunConfig::from_toml_str(
            &format!(
                r#"
data = {{ source = "breast_cancer" }}
model = {{ kind = "logistic" }}
optim = {{ kind = "sgd", lr = 0.05, momentum = 0.9 }}
train = {{ epochs = {epochs}, batch_size = {batch}, precision = "f64" }}
"#
            ),
            "t.toml".as_ref(),
        )
        .unwrap();
        let splits = data::load_splits(&cfg.data, ".".as_ref()).unwrap();
        let model = nn::Model::new(&cfg.model, &splits.train).unwrap();
        let trainer = Trainer::<f64>::new(&model, &cfg, &splits.train).unwrap();
        let steps = trainer.steps();
        let s0 = trainer.init_state(None).unwrap();
        let mut store =
            Trajectory::new(&trainer, s0.clone(), Replay::Store, Buffers::Keep).unwrap();
        // Store-all without buffers: the same parameters and step counters.
        let mut lean = Trajectory::new(&trainer, s0.clone(), Replay::Store, Buffers::Drop).unwrap();
        for t in 0..=steps {
            let (a, b) = (lean.state(t).unwrap().clone(), store.state(t).unwrap());
            assert!(a.opt.bufs.is_empty() && a.opt.step == t && b.opt.step == t);
            let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.params), bits(&b.params), "step {t}");
        }
        for arity in [2, 3, 4, 7, 200] {
            let mut tree =
                Trajectory::new(&trainer, s0.clone(), Replay::Tree { arity }, Buffers::Drop)
                    .unwrap();
            for t in (0..=steps).rev() {
                let a = tree.state(t).unwrap();
                assert!(
                    a.bitwise_eq(store.state(t).unwrap()),
                    "T = {steps}, arity {arity}, step {t}"
                );
            }
            let (levels, bound) = (tree_levels(steps, arity), tree_bound(steps, arity));
            assert!(
                tree.peak_states() <= bound,
                "T = {steps}, arity {arity}: peak {} > bound {bound}",
                tree.peak_states()
            );
            assert!(
                tree.steps_run() <= steps * levels,
                "T = {steps}, arity {arity}"
            );
            if batch == 8 {
                eprintln!(
                    "T = {steps}, arity {arity}: peak {} states (bound {bound}), {} steps run ({levels} levels)",
                    tree.peak_states(),
                    tree.steps_run()
                );
            }
            // Out-of-order queries are answered too (from the nearest held state).
            assert!(tree
                .state(steps / 2)
                .unwrap()
                .bitwise_eq(store.state(steps / 2).unwrap()));
            assert!(tree
                .state(steps)
                .unwrap()
                .bitwise_eq(store.state(steps).unwrap()));
        }
    }
    // The bound as a formula, and the budget rule: the fewest levels, then the smallest arity.
    assert_eq!(tree_bound(114, 2), 2 + 7);
    assert_eq!(tree_bound(114, 5), 2 + 4 * 3);
    assert_eq!(tree_bound(1, 5), 2);
    assert_eq!(tree_bound(3, 5), 4);
    assert_eq!(best_arity(114, 10, 10 * 8), None);
    assert_eq!(best_arity(114, 10, 10 * 9), Some(2));
    assert_eq!(best_arity(114, 10, 10 * 14), Some(5));
    assert_eq!(best_arity(114, 1, 40), Some(11));
}

#[test]
fn magic_a_block_of_targets_equals_one_target_at_a_time() {
    let r = mlp(
        r#"{ kind = "sgd", lr = 0.1, momentum = 0.9, weight_decay = 1e-3 }"#,
        r#"{ kind = "cosine" }"#,
        3,
    );
    // Twelve training examples' own margins: two dual passes per step in one sweep
    // (TANGENTS_PER_PASS = 8) against one target per sweep and against blocks of 5, whose dual
    // passes each split the batch into two shards (`batch_shards`).
    let targets = Targets {
        split: Split::Train,
        indices: (0..12).collect(),
        output: Output::Margin,
    };
    let at = |block| {
        magic(
            &r,
            &targets,
            MagicConfig {
                block,
                ..MagicConfig::default()
            },
        )
    };
    let all = at(64);
    assert_eq!(all.report.sweeps, 1);
    for block in [1, 5] {
        let other = at(block);
        assert_eq!(other.report.sweeps, targets.indices.len().div_ceil(block));
        for (a, b) in all.scores.iter().zip(&other.scores) {
            let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let worst = a
                .iter()
                .zip(b)
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                worst <= 1e-12 * scale,
                "block {block}: {worst:e} of {scale:e}"
            );
        }
    }
}

#[test]
fn magic_scores_do_not_depend_on_the_thread_count() {
    let r = cnn(r#"{ kind = "sgd", lr = 0.05, momentum = 0.9 }"#);
    let targets = Targets {
        split: Split::Train,
        indices: (0..20).collect(),
        output: Output::Loss,
    };
    let in_pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| magic(&r, &targets, MagicConfig::default()).scores)
    };
    assert!(same_bits(&in_pool(1), &in_pool(3)));
}

#[test]
fn magic_registry_options_and_initial_parameters() {
    let mut r = mlp(
        r#"{ kind = "sgd", lr = 0.1 }"#,
        r#"{ kind = "constant" }"#,
        1,
    );
    // A run that starts from given parameters (train.init_from): magic must replay from them.
    let p0: Vec<f64> = r.params.iter().map(|x| 0.5 * x).collect();
    r.init = Some(p0);
    r.params = r.retrain(&vec![1.0; r.n_train()]).unwrap();
    let targets = Targets::test(vec![0, 1], Output::Loss);
    let (m, used) = attrib_methods::build(
        "magic",
        Options::empty("magic")
            .set("replay", "tree")
            .set("arity", 3)
            .set("memory_budget", "64M"),
    )
    .unwrap();
    assert_eq!(used["block"], "64");
    assert_eq!(used["memory_budget"], "64M");
    let scores = attrib_methods::attribute(&r, m.as_ref(), used, &targets).unwrap();
    let direct = magic(&r, &targets, MagicConfig::default());
    assert_eq!(scores.row(1), &direct.scores[1][..]);

    for (key, value) in [
        ("arity", "1"),
        ("replay", "sometimes"),
        ("memory_budget", "lots"),
        ("block", "0"),
    ] {
        let e = attrib_methods::build("magic", Options::empty("magic").set(key, value))
            .err()
            .unwrap();
        assert!(
            matches!(e, MethodError::BadOption { .. }) && e.to_string().contains(key),
            "{key}={value}: {e}"
        );
    }
}

#[test]
fn magic_errors_name_the_problem_and_the_fix() {
    let mut r = mlp(
        r#"{ kind = "sgd", lr = 0.1 }"#,
        r#"{ kind = "constant" }"#,
        2,
    );
    let targets = Targets::test(vec![0], Output::Margin);
    // Nothing fits in a tiny budget.
    let tiny = MagicConfig {
        memory_budget: ByteSize(1000),
        ..MagicConfig::default()
    };
    let e = magic_scores(&r, &targets, &tiny).unwrap_err();
    assert!(
        matches!(e, MethodError::Unsupported { .. }) && e.to_string().contains("memory_budget"),
        "{e}"
    );
    // Parameters that training does not reproduce.
    r.params.iter_mut().for_each(|p| *p += 1.0);
    let e = magic_scores(&r, &targets, &MagicConfig::default()).unwrap_err();
    assert!(e.to_string().contains("replay"), "{e}");
    // Targets outside the split.
    let e = magic_scores(
        &r,
        &Targets::test(vec![10_000], Output::Margin),
        &MagicConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
}

#[test]
fn magic_byte_sizes_parse_and_print() {
    assert_eq!("64M".parse::<ByteSize>().unwrap(), ByteSize(64 << 20));
    assert_eq!("2g".parse::<ByteSize>().unwrap(), ByteSize(2 << 30));
    assert_eq!("512KiB".parse::<ByteSize>().unwrap(), ByteSize(512 << 10));
    assert_eq!("1000".parse::<ByteSize>().unwrap(), ByteSize(1000));
    assert!("x".parse::<ByteSize>().is_err());
    assert_eq!(ByteSize(64 << 20).to_string(), "64M");
    assert_eq!(ByteSize(1000).to_string(), "1000");
}

#[test]
fn magic_one_dual_pass_gives_the_hessian_products_and_the_per_example_loss_tangents() {
    let r = cnn(r#"{ kind = "sgd", lr = 0.05 }"#);
    let batch = nn::Batch::<f64>::from_dataset(&r.splits.train, &(0..16).collect::<Vec<_>>());
    let w: Vec<f64> = (0..16).map(|i| 0.5 + i as f64 / 16.0).collect();
    let mut rng = engine::Rng::new(9);
    let dirs: Vec<Vec<f64>> = (0..3)
        .map(|_| (0..r.params.len()).map(|_| rng.normal()).collect())
        .collect();
    let d: Vec<&[f64]> = dirs.iter().map(Vec::as_slice).collect();
    let (g, h, j) = nn::per_example::objective_hvps_with_jvps(&r.model, &r.params, &batch, &w, &d);
    let (g0, h0) = nn::per_example::objective_hvps(&r.model, &r.params, &batch, &w, &d);
    let (_, j0) = nn::per_example::output_jvps(&r.model, &r.params, &batch, Output::Loss, &d);
    assert_eq!((g, h), (g0, h0));
    assert_eq!(j, j0);
}

#[test]
fn magic_reports_its_reverse_steps_without_changing_the_scores() {
    let mut r = mlp(
        r#"{ kind = "sgd", lr = 0.1, momentum = 0.9 }"#,
        r#"{ kind = "cosine" }"#,
        2,
    );
    let targets = Targets {
        split: Split::Test,
        indices: (0..5).collect(),
        output: Output::Margin,
    };
    let config = MagicConfig {
        block: 2,
        ..MagicConfig::default()
    };
    let silent = magic(&r, &targets, config);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&seen);
    r.progress = run::Progress::new(move |what, done, total| {
        sink.lock().unwrap().push((what.to_string(), done, total));
    });
    let reported = magic(&r, &targets, config);
    assert!(same_bits(&silent.scores, &reported.scores));
    let seen = seen.lock().unwrap();
    // Three sweeps (blocks of 2 of 5 targets) of every step, counted in order.
    let total = 3 * silent.report.steps;
    assert_eq!(seen.len(), total);
    for (i, (what, done, t)) in seen.iter().enumerate() {
        assert_eq!(
            (what.as_str(), *done, *t),
            ("magic reverse steps", i, total)
        );
    }
}

#[test]
fn magic_resumes_from_the_blocks_an_interrupted_computation_finished() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = mlp(
        r#"{ kind = "sgd", lr = 0.1, momentum = 0.9 }"#,
        r#"{ kind = "cosine" }"#,
        2,
    );
    let targets = Targets::test((0..5).collect(), Output::Margin);
    let config = MagicConfig {
        block: 2,
        ..MagicConfig::default()
    };
    let fresh = magic(&r, &targets, config);
    assert_eq!((fresh.report.sweeps, fresh.report.resumed), (3, 0));
    r.dir = Some(dir.path().to_path_buf());
    // An "interrupted" computation: only the first block (targets 0 and 1) finished.
    let first = magic(&r, &Targets::test(vec![0, 1], Output::Margin), config);
    assert_eq!((first.report.sweeps, first.report.resumed), (1, 0));
    let blocks = dir.path().join("store/magic-block");
    let rows_files = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "f64"))
            .count()
    };
    assert_eq!(rows_files(&blocks), 1);
    // Resuming sweeps the two other blocks only, with the bits of a fresh computation.
    let resumed = magic(&r, &targets, config);
    assert_eq!((resumed.report.sweeps, resumed.report.resumed), (2, 1));
    assert!(same_bits(&resumed.scores, &fresh.scores));
    // Finished: nothing is swept or replayed.
    let again = magic(&r, &targets, config);
    assert_eq!((again.report.sweeps, again.report.resumed), (0, 3));
    assert_eq!(again.report.steps_run, 0);
    assert!(same_bits(&again.scores, &fresh.scores));
    // A damaged file is swept again and replaced, not trusted.
    for entry in std::fs::read_dir(&blocks).unwrap() {
        std::fs::write(entry.unwrap().path(), b"truncated").unwrap();
    }
    let repaired = magic(&r, &targets, config);
    assert_eq!((repaired.report.sweeps, repaired.report.resumed), (3, 0));
    assert!(same_bits(&repaired.scores, &fresh.scores));
    // Other targets, outputs or block sizes never read these blocks.
    let other = magic(&r, &Targets::test((0..5).collect(), Output::Loss), config);
    assert_eq!(other.report.resumed, 0);
    let wider = MagicConfig { block: 5, ..config };
    assert_eq!(magic(&r, &targets, wider).report.resumed, 0);
}
