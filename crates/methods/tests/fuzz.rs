//! Fuzzing as property tests (issue 13): the grouping CSV and the score files (matrix and
//! sidecar), given random bytes or mutated valid files, give `Ok` or a typed error and never
//! panic (harness: `attrib-data`'s `tests/support/mutate.rs`).

use attrib_methods::{Grouping, Scores};

#[path = "../../data/tests/support/mutate.rs"]
mod mutate;
use mutate::{fuzz, CASES};

const SIDECAR: &str = r#"{
  "method": "if-exact",
  "options": { "damping": "0.001" },
  "run_hash": "0123456789abcdef",
  "output": "margin",
  "split": "test",
  "targets": [0, 1],
  "n_train": 3,
  "seconds": 0.5,
  "attrib_version": "0.1.0",
  "sign": "tau_i = d f / d w_i"
}"#;

#[test]
fn grouping_and_score_files_return_ok_or_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = b"example,group\n0,0\n1,1\n2,1\n3,0\n";
    let (ok, err) = fuzz(dir, "g.csv", csv, Grouping::load);
    let mut total = ok + err;

    // The sidecar mutated next to a valid matrix, then the matrix next to a valid sidecar.
    let npy = dir.join("s.npy");
    data::write_npy_f32(&npy, &[0.5, -1.0, 2.0, 0.0, 1.0, 3.0], &[2, 3]).unwrap();
    let (ok, err) = fuzz(dir, "s.json", SIDECAR.as_bytes(), |_| Scores::load(&npy));
    total += ok + err;
    std::fs::write(dir.join("m.json"), SIDECAR).unwrap();
    let matrix = std::fs::read(&npy).unwrap();
    let (ok, err) = fuzz(dir, "m.npy", &matrix, Scores::load);
    total += ok + err;
    assert_eq!(total, 3 * CASES as usize);
}
