//! Ground truth by real retraining (MATH.md E1, E6) on a small logistic-regression run: resuming from
//! the cache gives the same bits as an uninterrupted computation, and brute-force LOO equals
//! retraining by hand.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use attrib_eval::{loo_correlation, Loo};
use methods::{Grouping, ScoreMeta, Scores};
use nn::{Output, RunConfig};
use run::retrain::{ground_truth, MaskSource, Retraining};
use run::{GroundTruth, Run, Split, SubsetSpec, Targets};

type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Subset ground truth through the one retraining function, in this file's positional shorthand.
fn compute(
    run: &Run,
    spec: &SubsetSpec,
    output: Output,
    split: Split,
    cache: Option<&Path>,
    limit: Option<usize>,
    progress: Progress,
) -> run::Result<GroundTruth> {
    let r = Retraining::new(MaskSource::Subsets(*spec), output, split)
        .cache(cache)
        .limit(limit)
        .progress(progress);
    ground_truth(run, &r)
}

/// Group ground truth (whole groups of `groups` dropped), silent.
fn compute_groups(
    run: &Run,
    spec: &SubsetSpec,
    groups: &Grouping,
    output: Output,
    split: Split,
    cache: Option<&Path>,
    limit: Option<usize>,
) -> attrib_eval::Result<GroundTruth> {
    let source = attrib_eval::group_subsets(run, groups, *spec)?;
    let r = Retraining::new(source, output, split)
        .cache(cache)
        .limit(limit);
    Ok(ground_truth(run, &r)?)
}

/// Brute-force leave-one-out of `examples`.
fn loo(
    run: &Run,
    output: Output,
    split: Split,
    examples: &[usize],
    cache: Option<&Path>,
    progress: Progress,
) -> attrib_eval::Result<Loo> {
    let r = Retraining::new(MaskSource::LeaveOneOut(examples), output, split)
        .cache(cache)
        .progress(progress);
    attrib_eval::loo(run, &r)
}

fn run() -> Run {
    let cfg = RunConfig::from_toml_str(
        r#"
        data = { source = "breast_cancer" }
        model = { kind = "logistic" }
        optim = { kind = "sgd", lr = 0.1, momentum = 0.9 }
        train = { epochs = 5, batch_size = 64, precision = "f64" }
        "#,
        Path::new("test.toml"),
    )
    .unwrap();
    Run::train(cfg, Path::new(".")).unwrap()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn same_gt(a: &GroundTruth, b: &GroundTruth) {
    assert_eq!(a.spec, b.spec);
    assert_eq!(a.masks, b.masks);
    assert_eq!(a.run_hash, b.run_hash);
    assert_eq!(bits(&a.full), bits(&b.full));
    assert_eq!(a.outputs.len(), b.outputs.len());
    for (x, y) in a.outputs.iter().zip(&b.outputs) {
        assert_eq!(bits(x), bits(y));
    }
}

fn same_loo(a: &Loo, b: &Loo) {
    assert_eq!(a.examples, b.examples);
    assert_eq!(bits(&a.full), bits(&b.full));
    for (x, y) in a.outputs.iter().zip(&b.outputs) {
        assert_eq!(bits(x), bits(y));
    }
}

fn quiet(_: usize, _: usize) {}

#[test]
fn groundtruth_resumes_bitwise() {
    let run = run();
    let n = run.n_train();
    let n_test = run.dataset(Split::Test).len();
    let spec = SubsetSpec::drop(0.05, 8, 0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gt");

    // Interrupted after 3 subsets.
    let part = compute(
        &run,
        &spec,
        Output::Margin,
        Split::Test,
        Some(&dir),
        Some(3),
        &quiet,
    )
    .unwrap();
    assert!(!part.is_complete());
    assert_eq!(part.done(), 3);
    assert_eq!(part.missing(), vec![3, 4, 5, 6, 7]);
    assert!(dir.join("manifest.json").exists());
    assert!(dir.join("subset_00002.json").exists());
    assert!(!dir.join("subset_00003.json").exists());

    // Resumed: loads 3, computes 5, reporting progress up to 8 of 8.
    let last = AtomicUsize::new(0);
    let calls = AtomicUsize::new(0);
    let progress = |done: usize, total: usize| {
        assert_eq!(total, 8);
        last.fetch_max(done, Ordering::Relaxed);
        calls.fetch_add(1, Ordering::Relaxed);
    };
    let resumed = compute(
        &run,
        &spec,
        Output::Margin,
        Split::Test,
        Some(&dir),
        None,
        &progress,
    )
    .unwrap();
    assert!(resumed.is_complete());
    assert_eq!(last.load(Ordering::Relaxed), 8);
    assert_eq!(calls.load(Ordering::Relaxed), 1 + 5);

    let fresh_dir = tmp.path().join("fresh");
    let fresh = compute(
        &run,
        &spec,
        Output::Margin,
        Split::Test,
        Some(&fresh_dir),
        None,
        &quiet,
    )
    .unwrap();
    let uncached = compute(&run, &spec, Output::Margin, Split::Test, None, None, &quiet).unwrap();
    same_gt(&resumed, &fresh);
    same_gt(&resumed, &uncached);
    // Entirely from the cache.
    let cached = compute(
        &run,
        &spec,
        Output::Margin,
        Split::Test,
        Some(&dir),
        Some(0),
        &quiet,
    )
    .unwrap();
    assert!(cached.is_complete());
    same_gt(&cached, &uncached);

    // Each subset drops exactly round(0.05 n) examples; the full outputs are the run's.
    let k = (0.05 * n as f64).round() as usize;
    for j in 0..8 {
        assert_eq!(resumed.dropped(j).len(), k);
        assert_eq!(resumed.outputs[j].len(), n_test);
    }
    let all = Targets::test((0..n_test).collect(), Output::Margin);
    assert_eq!(
        bits(&resumed.full),
        bits(&run.target_outputs(&run.params, &all))
    );
    // Retraining changes the outputs, a little.
    assert!(resumed.outputs[0] != resumed.full);

    // Subset 5 by hand.
    let w: Vec<f64> = resumed.masks[5]
        .iter()
        .map(|&k| if k { 1.0 } else { 0.0 })
        .collect();
    let by_hand = run.target_outputs(&run.retrain(&w).unwrap(), &all);
    assert_eq!(bits(&by_hand), bits(&resumed.outputs[5]));

    // Another spec in the same folder: refused, naming the folder and the fix.
    let other = SubsetSpec::drop(0.05, 8, 1);
    let e = compute(
        &run,
        &other,
        Output::Margin,
        Split::Test,
        Some(&dir),
        None,
        &quiet,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, run::RunError::Cache { .. }), "{msg}");
    assert!(
        msg.contains(&dir.display().to_string()) && msg.contains("delete"),
        "{msg}"
    );
    // Another output too.
    let e = compute(
        &run,
        &spec,
        Output::Loss,
        Split::Test,
        Some(&dir),
        None,
        &quiet,
    )
    .unwrap_err();
    assert!(e.to_string().contains("loss"), "{e}");

    // A damaged subset file is named.
    std::fs::write(dir.join("subset_00004.json"), "{ not json").unwrap();
    let msg = compute(
        &run,
        &spec,
        Output::Margin,
        Split::Test,
        Some(&dir),
        None,
        &quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("subset_00004.json") && msg.contains("delete"),
        "{msg}"
    );

    // Subset files without a manifest are refused.
    let orphan = tmp.path().join("orphan");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::copy(
        dir.join("subset_00000.json"),
        orphan.join("subset_00000.json"),
    )
    .unwrap();
    let msg = compute(
        &run,
        &spec,
        Output::Margin,
        Split::Test,
        Some(&orphan),
        None,
        &quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("manifest.json"), "{msg}");

    // An invalid spec is an error, not a panic.
    let bad = SubsetSpec::drop(1.5, 8, 0);
    let msg = compute(&run, &bad, Output::Margin, Split::Test, None, None, &quiet)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("spec.kind.drop.fraction"), "{msg}");
}

#[test]
fn keep_half_groundtruth() {
    let run = run();
    let spec = SubsetSpec::keep(0.5, 2, 3);
    let gt = compute(&run, &spec, Output::Loss, Split::Train, None, None, &quiet).unwrap();
    let n = run.n_train();
    assert_eq!(gt.full.len(), n);
    for j in 0..2 {
        assert_eq!(
            gt.masks[j].iter().filter(|k| **k).count(),
            (0.5 * n as f64).round() as usize
        );
    }
}

#[test]
fn loo_matches_retraining_by_hand_and_resumes() {
    let run = run();
    let n_test = run.dataset(Split::Test).len();
    let examples = [0usize, 17, 100, 250, run.n_train() - 1];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("loo");

    // Interrupted: only the first two, then all five from the same cache.
    let part = loo(
        &run,
        Output::Margin,
        Split::Test,
        &examples[..2],
        Some(&dir),
        &quiet,
    )
    .unwrap();
    assert!(dir.join("loo_00017.json").exists());
    let resumed = loo(
        &run,
        Output::Margin,
        Split::Test,
        &examples,
        Some(&dir),
        &quiet,
    )
    .unwrap();
    let uncached = loo(&run, Output::Margin, Split::Test, &examples, None, &quiet).unwrap();
    same_loo(&resumed, &uncached);
    assert_eq!(bits(&part.outputs[1]), bits(&uncached.outputs[1]));

    let all = Targets::test((0..n_test).collect(), Output::Margin);
    for (k, &i) in examples.iter().enumerate() {
        let mut w = vec![1.0; run.n_train()];
        w[i] = 0.0;
        let by_hand = run.target_outputs(&run.retrain(&w).unwrap(), &all);
        assert_eq!(bits(&by_hand), bits(&resumed.outputs[k]), "example {i}");
        assert_eq!(resumed.change(3, k), by_hand[3] - resumed.full[3]);
    }

    // Scores equal to minus the true LOO changes correlate perfectly.
    let n = run.n_train();
    let targets: Vec<usize> = (0..10).collect();
    let mut values = vec![0.0; targets.len() * n];
    for (r, &t) in targets.iter().enumerate() {
        for (k, &i) in examples.iter().enumerate() {
            values[r * n + i] = -resumed.change(t, k);
        }
    }
    let scores = Scores {
        values,
        meta: ScoreMeta {
            method: "oracle-loo".into(),
            options: BTreeMap::new(),
            run_hash: run.hash.clone(),
            output: "margin".into(),
            split: "test".into(),
            targets,
            n_train: n,
            groups: None,
            seconds: 0.0,
            attrib_version: "test".into(),
            sign: methods::scores::SIGN.into(),
            rows: None,
        },
    };
    let (p, s) = loo_correlation(&resumed, &scores).unwrap();
    assert!((p - 1.0).abs() < 1e-12, "{p}");
    assert!((s - 1.0).abs() < 1e-12, "{s}");

    // Bad input is an error.
    assert!(loo(&run, Output::Margin, Split::Test, &[n], None, &quiet).is_err());
    assert!(loo(&run, Output::Margin, Split::Test, &[3, 3], None, &quiet).is_err());
    let e = loo(
        &run,
        Output::Loss,
        Split::Test,
        &examples,
        Some(&dir),
        &quiet,
    )
    .unwrap_err();
    assert!(e.to_string().contains("delete"), "{e}");
}

/// Group ground truth (MATH.md E5, E6): subsets drop whole groups, retrained with
/// `w = expand(group mask)`; resuming gives the same bits; the cache is keyed by the grouping.
#[test]
fn group_groundtruth_resumes_bitwise_and_is_keyed_by_grouping() {
    use run::retrain::group_cache_dir;
    let run = run();
    let n = run.n_train();
    let a = Grouping::new((0..n).map(|i| i % 10).collect(), 10, "mod 10").unwrap();
    let b = Grouping::new((0..n).map(|i| (i / 7) % 10).collect(), 10, "blocks").unwrap();
    let spec = SubsetSpec::drop(0.2, 5, 1);
    let tmp = tempfile::tempdir().unwrap();
    let (out, split) = (Output::Margin, Split::Test);
    let dir_a = group_cache_dir(tmp.path(), &spec, &a.hash(), out, split);
    let dir_b = group_cache_dir(tmp.path(), &spec, &b.hash(), out, split);
    assert_ne!(dir_a, dir_b);
    assert!(dir_a.to_string_lossy().contains(&a.hash()));

    let part = compute_groups(&run, &spec, &a, out, split, Some(&dir_a), Some(2)).unwrap();
    assert_eq!(part.done(), 2);
    let resumed = compute_groups(&run, &spec, &a, out, split, Some(&dir_a), None).unwrap();
    let fresh = compute_groups(&run, &spec, &a, out, split, None, None).unwrap();
    same_gt(&resumed, &fresh);

    // Each subset drops round(0.2 * 10) = 2 whole groups; subset 0 equals retraining by hand.
    let members = a.members();
    for m in &resumed.masks {
        let dropped: Vec<usize> = (0..a.k)
            .filter(|&g| members[g].iter().all(|&i| !m[i]))
            .collect();
        assert_eq!(dropped.len(), 2);
        let kept = members
            .iter()
            .filter(|mem| mem.iter().all(|&i| m[i]))
            .count();
        assert_eq!(kept, 8, "no group is split");
    }
    let gw: Vec<f64> = (0..a.k)
        .map(|g| {
            if resumed.masks[0][members[g][0]] {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let params = run.retrain(&a.expand(&gw)).unwrap();
    let by_hand = run::retrain::split_outputs(&run, &params, out, split);
    assert_eq!(bits(&by_hand), bits(&resumed.outputs[0]));

    // Another grouping never reads this folder.
    let e = compute_groups(&run, &spec, &b, out, split, Some(&dir_a), Some(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&b.hash()) && e.contains("delete the folder"),
        "{e}"
    );
    // A grouping of another size is refused.
    let small = Grouping::new(vec![0, 1, 0], 2, "small").unwrap();
    let e = compute_groups(&run, &spec, &small, out, split, None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("covers 3 examples"), "{e}");
}

/// The literature's protocol (MATH.md E6): with `seeds = K`, each subset's outputs are the mean
/// over the run and its members `1..K` (each retrained on the subset with its own trainer seed),
/// rebuilt here retraining by hand; the cache keeps them apart from the single-model folder, and
/// a resumed computation gives the same bits.
#[test]
fn seed_averaged_groundtruth_is_the_mean_of_seeded_retrainings() {
    let run = run();
    let spec = SubsetSpec::drop(0.1, 4, 0);
    let split = Split::Test;
    let r = Retraining::new(MaskSource::Subsets(spec), Output::Margin, split).seeds(3);
    let gt = ground_truth(&run, &r).unwrap();
    let members: Vec<Run> = (1..3)
        .map(|m| run::members::member(&run, m).unwrap())
        .collect();
    for m in &members {
        assert_ne!(m.params, run.params, "a member is another training");
    }
    let models: Vec<&Run> = std::iter::once(&run).chain(&members).collect();
    let n_test = run.splits.test.len();
    let targets = Targets {
        split,
        indices: (0..n_test).collect(),
        output: Output::Margin,
    };
    let mean = |outs: Vec<Vec<f64>>| -> Vec<f64> {
        (0..n_test)
            .map(|i| outs.iter().map(|o| o[i]).sum::<f64>() / 3.0)
            .collect()
    };
    let full = mean(
        models
            .iter()
            .map(|m| m.target_outputs(&m.params, &targets))
            .collect(),
    );
    assert_eq!(bits(&gt.full), bits(&full));
    for j in 0..4 {
        let mut w = vec![1.0; run.n_train()];
        for i in gt.dropped(j) {
            w[i] = 0.0;
        }
        let by_hand = mean(
            models
                .iter()
                .map(|m| m.target_outputs(&m.retrain(&w).unwrap(), &targets))
                .collect(),
        );
        let d = gt.outputs[j]
            .iter()
            .zip(&by_hand)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(d < 1e-12, "subset {j}: {d:e}");
    }
    let single = ground_truth(
        &run,
        &Retraining::new(MaskSource::Subsets(spec), Output::Margin, split),
    )
    .unwrap();
    assert_ne!(single.outputs, gt.outputs, "averaging changes the outputs");
    // Cached and resumed: two subsets first, then the rest, same bits as at once.
    let dir = tempfile::tempdir().unwrap();
    let cached = r.clone().cache(Some(dir.path()));
    let part = ground_truth(&run, &cached.clone().limit(Some(2))).unwrap();
    assert_eq!(part.done(), 2);
    let manifest = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    assert!(manifest.contains("\"seeds\": 3"), "{manifest}");
    same_gt(&ground_truth(&run, &cached).unwrap(), &gt);
    // A folder of one protocol refuses the other.
    let e = ground_truth(
        &run,
        &Retraining::new(MaskSource::Subsets(spec), Output::Margin, split).cache(Some(dir.path())),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("manifest") || e.contains("another"), "{e}");
}
