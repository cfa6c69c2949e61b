//! The LDS of a score file read a block of rows at a time ([`LdsStream`], issue 17's bounded
//! memory) is, to the bit, the LDS of the whole matrix in memory, per example and per group; and a
//! stream fed the wrong rows says so instead of answering.

use std::collections::BTreeMap;

use attrib_eval::{lds, lds_groups, LdsStream};
use engine::Rng;
use methods::{Grouping, ScoreFile, ScoreMeta, Scores};
use run::retrain::group_subset_masks;
use run::subsets::subset_masks;
use run::{GroundTruth, SubsetSpec};

const N: usize = 90;
const K: usize = 12;
const TARGETS: usize = 11;
const SUBSETS: usize = 40;

fn meta(cols: usize, groups: Option<String>) -> ScoreMeta {
    ScoreMeta {
        method: "noisy".into(),
        options: BTreeMap::new(),
        run_hash: "aaaa".into(),
        output: "margin".into(),
        split: "test".into(),
        targets: (0..TARGETS).map(|t| 2 * t + 1).collect(),
        n_train: cols,
        groups,
        seconds: 0.0,
        attrib_version: "test".into(),
        sign: methods::scores::SIGN.into(),
        rows: None,
    }
}

/// Random outputs for `masks`: the LDS of random scores against them is some value in (-1, 1),
/// different per target, so a reordered or dropped row changes it.
fn ground_truth(masks: Vec<Vec<bool>>, rng: &mut Rng) -> GroundTruth {
    let n_split = 2 * TARGETS + 1;
    GroundTruth {
        spec: SubsetSpec::drop(0.1, SUBSETS, 3),
        output: "margin".into(),
        split: "test".into(),
        run_hash: "aaaa".into(),
        full: (0..n_split).map(|_| rng.normal()).collect(),
        outputs: masks
            .iter()
            .map(|_| (0..n_split).map(|_| rng.normal()).collect())
            .collect(),
        masks,
    }
}

/// Saves `scores`, reads the file back in blocks of `rows` rows and streams them.
fn streamed(scores: &Scores, rows: usize, mut stream: LdsStream<'_>) -> attrib_eval::LdsReport {
    let dir = tempfile::tempdir().unwrap();
    let npy = scores.save(dir.path(), "s").unwrap();
    let file = ScoreFile::open(&npy).unwrap();
    for start in (0..file.rows()).step_by(rows) {
        let block = file.read(start..(start + rows).min(file.rows())).unwrap();
        stream.add(&block).unwrap();
    }
    stream.finish().unwrap()
}

/// The scores as the file stores them (f32), so that both sides see the same numbers.
fn rounded(values: Vec<f64>) -> Vec<f64> {
    values.into_iter().map(|v| f64::from(v as f32)).collect()
}

#[test]
fn streamed_lds_has_the_bits_of_the_whole_matrix() {
    let mut rng = Rng::derive(11, "lds-stream", 0);
    let gt = ground_truth(
        subset_masks(N, &SubsetSpec::drop(0.1, SUBSETS, 3)),
        &mut rng,
    );
    let scores = Scores {
        values: rounded((0..TARGETS * N).map(|_| rng.normal()).collect()),
        meta: meta(N, None),
    };
    let whole = lds(&gt, &scores).unwrap();
    assert!(whole.lds.abs() < 0.9 && whole.per_target.len() == TARGETS);
    for rows in [1, 3, 4, TARGETS, 64] {
        let report = streamed(&scores, rows, LdsStream::new(&gt, &scores.meta).unwrap());
        assert_eq!(report, whole, "blocks of {rows} rows");
        assert_eq!(report.lds.to_bits(), whole.lds.to_bits());
    }
}

#[test]
fn streamed_group_lds_has_the_bits_of_the_whole_matrix() {
    let mut rng = Rng::derive(12, "lds-stream", 0);
    let assignment: Vec<usize> = (0..N).map(|i| i % K).collect();
    let g = Grouping::new(assignment, K, "round robin").unwrap();
    let spec = SubsetSpec::drop(0.25, SUBSETS, 5);
    let gt = ground_truth(group_subset_masks(&g.assignment, g.k, &spec), &mut rng);
    let scores = Scores {
        values: rounded((0..TARGETS * K).map(|_| rng.normal()).collect()),
        meta: meta(K, Some(g.hash())),
    };
    let whole = lds_groups(&gt, &scores, &g).unwrap();
    let report = streamed(
        &scores,
        2,
        LdsStream::groups(&gt, &scores.meta, &g).unwrap(),
    );
    assert_eq!(report, whole);
}

#[test]
fn a_stream_refuses_rows_out_of_order_or_missing() {
    let mut rng = Rng::derive(13, "lds-stream", 0);
    let gt = ground_truth(
        subset_masks(N, &SubsetSpec::drop(0.1, SUBSETS, 3)),
        &mut rng,
    );
    let scores = Scores {
        values: (0..TARGETS * N).map(|_| rng.normal()).collect(),
        meta: meta(N, None),
    };
    let block = |rows: std::ops::Range<usize>| {
        let mut m = scores.meta.clone();
        m.targets = m.targets[rows.clone()].to_vec();
        Scores {
            values: scores.values[rows.start * N..rows.end * N].to_vec(),
            meta: m,
        }
    };
    // Rows 2.. before rows 0..2.
    let mut stream = LdsStream::new(&gt, &scores.meta).unwrap();
    let e = stream.add(&block(2..4)).unwrap_err().to_string();
    assert!(
        e.contains("does not continue") && e.contains("in order"),
        "{e}"
    );
    // A block cut short of whole rows.
    let mut short = block(0..2);
    short.values.pop();
    let e = stream.add(&short).unwrap_err().to_string();
    assert!(e.contains("damaged"), "{e}");
    // Stopped before the last rows.
    stream.add(&block(0..5)).unwrap();
    let e = stream.finish().unwrap_err().to_string();
    assert!(e.contains("only 5 rows were read"), "{e}");
}
