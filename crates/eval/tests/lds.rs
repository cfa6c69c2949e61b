//! The LDS on synthetic ground truth with known answers (no training): a linear `f` with
//! `f(S_j) = c - sum_{i in D_j} tau*_i` (MATH.md E6 sign convention).

use std::collections::BTreeMap;

use attrib_eval::{lds, EvalError};
use engine::Rng;
use methods::{ScoreMeta, Scores};
use run::subsets::subset_masks;
use run::{GroundTruth, SubsetSpec};

const N: usize = 300;
const TARGETS: usize = 50;
const SUBSETS: usize = 200;

fn scores(values: Vec<f64>, run_hash: &str) -> Scores {
    Scores {
        values,
        meta: ScoreMeta {
            method: "synthetic".into(),
            options: BTreeMap::new(),
            run_hash: run_hash.into(),
            output: "margin".into(),
            split: "test".into(),
            targets: (0..TARGETS).collect(),
            n_train: N,
            groups: None,
            seconds: 0.0,
            attrib_version: "test".into(),
            sign: methods::scores::SIGN.into(),
            rows: None,
        },
    }
}

/// `tau*` (row-major `[TARGETS, N]`) and the ground truth of the linear model it defines.
fn linear_truth() -> (Vec<f64>, GroundTruth) {
    let mut rng = Rng::derive(11, "tau", 0);
    let tau: Vec<f64> = (0..TARGETS * N).map(|_| rng.normal()).collect();
    let c: Vec<f64> = (0..TARGETS).map(|t| t as f64 * 0.1 - 2.0).collect();
    let spec = SubsetSpec::drop(0.1, SUBSETS, 5);
    let masks = subset_masks(N, &spec);
    let outputs = masks
        .iter()
        .map(|m| {
            (0..TARGETS)
                .map(|t| {
                    let s: f64 = (0..N).filter(|&i| !m[i]).map(|i| tau[t * N + i]).sum();
                    c[t] - s
                })
                .collect()
        })
        .collect();
    let gt = GroundTruth {
        spec,
        output: "margin".into(),
        split: "test".into(),
        run_hash: "aaaa".into(),
        full: c,
        masks,
        outputs,
    };
    (tau, gt)
}

#[test]
fn exact_scores_give_lds_one() {
    let (tau, gt) = linear_truth();
    assert!(gt.is_complete());
    let r = lds(&gt, &scores(tau.clone(), "aaaa")).unwrap();
    assert!((r.lds - 1.0).abs() < 1e-12, "{}", r.lds);
    assert!((r.slope - 1.0).abs() < 1e-12, "{}", r.slope);
    assert!((r.pearson - 1.0).abs() < 1e-12, "{}", r.pearson);
    assert!(r.ci.0 <= r.lds && r.lds <= r.ci.1 + 1e-12);
    assert_eq!(
        (r.targets, r.subsets, r.per_target.len()),
        (TARGETS, SUBSETS, TARGETS)
    );

    // Twice the scores: same ranking, half the slope.
    let doubled: Vec<f64> = tau.iter().map(|t| 2.0 * t).collect();
    let r = lds(&gt, &scores(doubled, "aaaa")).unwrap();
    assert!((r.lds - 1.0).abs() < 1e-12, "{}", r.lds);
    assert!((r.slope - 0.5).abs() < 1e-12, "{}", r.slope);

    // The opposite sign convention is caught: LDS -1.
    let flipped: Vec<f64> = tau.iter().map(|t| -t).collect();
    let r = lds(&gt, &scores(flipped, "aaaa")).unwrap();
    assert!((r.lds + 1.0).abs() < 1e-12, "{}", r.lds);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"lds\""));
}

#[test]
fn random_scores_give_lds_near_zero() {
    let (_, gt) = linear_truth();
    let mut rng = Rng::derive(99, "random-scores", 0);
    let random: Vec<f64> = (0..TARGETS * N).map(|_| rng.normal()).collect();
    let r = lds(&gt, &scores(random, "aaaa")).unwrap();
    assert!(r.lds.abs() < 0.15, "{}", r.lds);
    assert!(r.ci.0 < r.ci.1);
}

#[test]
fn mismatches_are_errors() {
    let (tau, mut gt) = linear_truth();
    let e = lds(&gt, &scores(tau.clone(), "bbbb")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("aaaa") && msg.contains("bbbb"), "{msg}");

    let mut s = scores(tau.clone(), "aaaa");
    s.meta.output = "loss".into();
    let msg = lds(&gt, &s).unwrap_err().to_string();
    assert!(
        msg.contains("scores (synthetic) explain output loss but the ground truth measured margin"),
        "{msg}"
    );

    let mut s = scores(tau.clone(), "aaaa");
    s.meta.split = "train".into();
    assert!(lds(&gt, &s).unwrap_err().to_string().contains("split"));

    let mut s = scores(tau.clone(), "aaaa");
    s.meta.targets[3] = 500;
    assert!(lds(&gt, &s).unwrap_err().to_string().contains("target 500"));

    let mut s = scores(tau[..N].to_vec(), "aaaa");
    s.meta.targets = vec![0];
    s.meta.n_train = N - 1;
    s.values.pop();
    assert!(lds(&gt, &s).is_err());

    gt.outputs[7].clear();
    let e = lds(&gt, &scores(tau, "aaaa")).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::Incomplete {
                done: 199,
                total: 200
            }
        ),
        "{e}"
    );
}
