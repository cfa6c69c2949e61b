//! The group LDS (MATH.md E5, E6) on synthetic ground truth with a known answer (no training): a
//! linear `f` with `f(S_j) = c - sum_{i in D_j} tau*_i`, subsets that drop whole groups, so the
//! exact group scores are `tau*_G = sum_{i in G} tau*_i`.

use std::collections::BTreeMap;

use attrib_eval::{lds, lds_groups};
use engine::Rng;
use methods::{Grouping, ScoreMeta, Scores};
use run::retrain::group_subset_masks;
use run::subsets::subset_masks;
use run::{GroundTruth, SubsetSpec};

const N: usize = 240;
const K: usize = 30;
const TARGETS: usize = 20;
const SUBSETS: usize = 100;

fn scores(values: Vec<f64>, cols: usize, groups: Option<String>) -> Scores {
    Scores {
        values,
        meta: ScoreMeta {
            method: "synthetic".into(),
            options: BTreeMap::new(),
            run_hash: "aaaa".into(),
            output: "margin".into(),
            split: "test".into(),
            targets: (0..TARGETS).collect(),
            n_train: cols,
            groups,
            seconds: 0.0,
            attrib_version: "test".into(),
            sign: methods::scores::SIGN.into(),
            rows: None,
        },
    }
}

/// Per-example `tau*` rows, a random grouping, and the linear ground truth for `masks`.
fn truth(masks: Vec<Vec<bool>>, tau: &[Vec<f64>]) -> GroundTruth {
    let c: Vec<f64> = (0..TARGETS).map(|t| 0.3 * t as f64 - 1.0).collect();
    let outputs = masks
        .iter()
        .map(|m| {
            (0..TARGETS)
                .map(|t| c[t] - (0..N).filter(|&i| !m[i]).map(|i| tau[t][i]).sum::<f64>())
                .collect()
        })
        .collect();
    GroundTruth {
        spec: SubsetSpec::drop(0.1, SUBSETS, 3),
        output: "margin".into(),
        split: "test".into(),
        run_hash: "aaaa".into(),
        full: c,
        masks,
        outputs,
    }
}

fn setup() -> (Grouping, Vec<Vec<f64>>, GroundTruth) {
    let mut rng = Rng::derive(7, "groups", 0);
    // Every group non-empty: the first K examples seed the K groups, the rest are random.
    let assignment: Vec<usize> = (0..N)
        .map(|i| {
            if i < K {
                i
            } else {
                rng.below(K as u64) as usize
            }
        })
        .collect();
    let g = Grouping::new(assignment, K, "random test").unwrap();
    let tau: Vec<Vec<f64>> = (0..TARGETS)
        .map(|_| (0..N).map(|_| rng.normal()).collect())
        .collect();
    let spec = SubsetSpec::drop(0.1, SUBSETS, 3);
    let gt = truth(group_subset_masks(&g.assignment, g.k, &spec), &tau);
    (g, tau, gt)
}

#[test]
fn exact_group_scores_give_group_lds_one() {
    let (g, tau, gt) = setup();
    // Each subset drops round(0.1 K) = 3 whole groups.
    for m in &gt.masks {
        let dropped_groups = g
            .members()
            .iter()
            .filter(|mem| mem.iter().all(|&i| !m[i]))
            .count();
        assert_eq!(dropped_groups, 3);
    }
    let exact: Vec<f64> = g.sum_columns(&tau).concat();
    let r = lds_groups(&gt, &scores(exact.clone(), K, Some(g.hash())), &g).unwrap();
    assert!((r.lds - 1.0).abs() < 1e-12, "{}", r.lds);
    assert!((r.slope - 1.0).abs() < 1e-12, "{}", r.slope);
    assert_eq!((r.targets, r.subsets), (TARGETS, SUBSETS));

    // The same ground truth seen per example (tau*) also gives 1: the predictions are identical.
    let per = lds(&gt, &scores(tau.concat(), N, None)).unwrap();
    assert!((per.lds - 1.0).abs() < 1e-12, "{}", per.lds);

    // Group scores permuted across groups lose the ranking (the test can fail).
    let mut shuffled = g.sum_columns(&tau);
    for row in &mut shuffled {
        row.rotate_left(1);
    }
    let r = lds_groups(&gt, &scores(shuffled.concat(), K, Some(g.hash())), &g).unwrap();
    assert!(r.lds < 0.6, "{}", r.lds);
}

#[test]
fn group_lds_refuses_mismatches() {
    let (g, tau, gt) = setup();
    let exact: Vec<f64> = g.sum_columns(&tau).concat();
    // Per-example scores given as group scores.
    let e = lds_groups(&gt, &scores(tau.concat(), N, None), &g).unwrap_err();
    assert!(e.to_string().contains("per-example"), "{e}");
    // Group scores of another grouping.
    let e = lds_groups(&gt, &scores(exact.clone(), K, Some("beef".into())), &g).unwrap_err();
    assert!(e.to_string().contains("beef"), "{e}");
    // Group scores in the per-example LDS.
    let e = lds(&gt, &scores(exact.clone(), K, Some(g.hash()))).unwrap_err();
    assert!(e.to_string().contains("--groups"), "{e}");
    // A ground truth of single-example subsets does not drop whole groups.
    let single = truth(subset_masks(N, &SubsetSpec::drop(0.1, SUBSETS, 3)), &tau);
    let e = lds_groups(&single, &scores(exact, K, Some(g.hash())), &g).unwrap_err();
    assert!(e.to_string().contains("whole groups"), "{e}");
}
