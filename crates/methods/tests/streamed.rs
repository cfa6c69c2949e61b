//! Score files written as the rows arrive ([`attribute_to_file`], module `scores`, "Bounded
//! memory") hold the bytes [`Scores::save`] writes for the matrix in memory: a per-target method
//! in several blocks of targets, MAGIC in several reverse sweeps (data weights and input
//! derivatives), group scores; [`ScoreFile::merge_into`] writes the bytes of `Scores::merge` then
//! `save`; and a file read back a few rows at a time gives the matrix `Scores::load` gives.

use std::path::Path;

use attrib_methods::{
    attribute, attribute_groups, attribute_in_blocks, attribute_to_file, build, Grouping, Options,
    ScoreFile, Scores,
};
use nn::{Output, RunConfig};
use run::{Run, Targets};

/// A breast-cancer MLP with 48 training examples, trained in f64 and kept in `dir` (whose store
/// holds the finished blocks of targets).
fn run_in(dir: &Path) -> Run {
    let cfg = RunConfig::from_toml_str(
        r#"
data = { source = "breast_cancer", max_train = 48, max_test = 8 }
model = { kind = "mlp", hidden = [6], activation = "gelu" }
optim = { kind = "sgd", lr = 0.1, momentum = 0.9 }
train = { epochs = 2, batch_size = 16, precision = "f64", seed = 5 }
"#,
        "streamed.toml".as_ref(),
    )
    .unwrap();
    let mut run = Run::train(cfg, ".".as_ref()).unwrap();
    run.dir = Some(dir.to_path_buf());
    run
}

fn read(dir: &Path, stem: &str) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join(format!("{stem}.npy"))).unwrap(),
        std::fs::read(dir.join(format!("{stem}.json"))).unwrap(),
    )
}

/// The sidecar without its timing, which differs between two computations.
fn untimed(json: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(json).unwrap();
    v.as_object_mut().unwrap().remove("seconds");
    v
}

/// `method` with `options` on targets 0..5 in blocks of 2: streamed (computing every block, then
/// again, from the stored blocks when `stores_blocks`) against the in-memory path.
fn check_method(method: &str, options: &[(&str, &str)], stores_blocks: bool) {
    let run_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = run_in(run_dir.path());
    let mut opts = Options::empty(method);
    for (k, v) in options {
        opts = opts.set(k, v);
    }
    let (m, used) = build(method, opts).unwrap();
    let targets = Targets::test((0..5).collect(), Output::Margin);
    let streamed = |stem: &str| {
        attribute_to_file(
            &run,
            m.as_ref(),
            used.clone(),
            &targets,
            None,
            2,
            out.path(),
            stem,
        )
        .unwrap()
    };
    let (path, meta) = streamed("computed");
    assert_eq!(path, out.path().join("computed.npy"));
    attribute_in_blocks(&run, m.as_ref(), used.clone(), &targets, 2)
        .unwrap()
        .save(out.path(), "memory")
        .unwrap();
    streamed("stored");
    let (computed, stored, memory) = (
        read(out.path(), "computed"),
        read(out.path(), "stored"),
        read(out.path(), "memory"),
    );
    assert!(computed.0.len() > 128, "{method}: an empty matrix");
    assert!(
        computed.0 == memory.0,
        "{method} {options:?}: computed blocks"
    );
    assert_eq!(untimed(&computed.1), untimed(&memory.1), "{method}");
    assert!(stored.0 == memory.0, "{method} {options:?}: stored blocks");
    if stores_blocks {
        // From the store both paths report the blocks' recorded times: the same bytes throughout.
        assert!(
            stored.1 == memory.1,
            "{method}: the sidecar of stored blocks"
        );
    }
    assert_eq!(meta.targets, targets.indices);
    // Row by row, the file holds what the method gives each target on its own.
    let file = Scores::load(&path).unwrap();
    for (r, &t) in targets.indices.iter().enumerate() {
        let alone = Targets::test(vec![t], Output::Margin);
        let one = attribute(&run, m.as_ref(), used.clone(), &alone).unwrap();
        let want: Vec<f64> = one.values.iter().map(|&v| f64::from(v as f32)).collect();
        assert!(file.row(r) == want, "{method} {options:?}: row {r}");
    }
}

#[test]
fn a_per_target_method_in_blocks_streams_the_bytes_of_save() {
    check_method("if-exact", &[], true);
    check_method("tracin", &[], true);
}

#[test]
fn magic_in_several_sweeps_streams_the_bytes_of_save() {
    check_method("magic", &[("block", "2")], true);
    // Input derivatives are one computation, not resumed from blocks.
    check_method("magic", &[("block", "2"), ("wrt", "inputs")], false);
}

#[test]
fn group_scores_stream_the_bytes_of_save() {
    let run_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = run_in(run_dir.path());
    let g = Grouping::new((0..48).map(|i| i % 7).collect(), 7, "mod 7").unwrap();
    let (m, used) = build("if-exact", Options::empty("if-exact")).unwrap();
    let targets = Targets::test((0..4).collect(), Output::Margin);
    attribute_to_file(
        &run,
        m.as_ref(),
        used.clone(),
        &targets,
        Some(&g),
        2,
        out.path(),
        "s",
    )
    .unwrap();
    attribute_groups(&run, m.as_ref(), used, &targets, &g)
        .unwrap()
        .save(out.path(), "memory")
        .unwrap();
    let (s, memory) = (read(out.path(), "s"), read(out.path(), "memory"));
    assert!(s.0 == memory.0, "group scores differ");
    assert_eq!(untimed(&s.1), untimed(&memory.1));
}

#[test]
fn merge_into_writes_the_bytes_of_merge_and_save_and_blocks_read_the_matrix() {
    let run_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = run_in(run_dir.path());
    let (m, used) = build("if-exact", Options::empty("if-exact")).unwrap();
    // Parts given out of target order.
    let mut parts = Vec::new();
    for (stem, range) in [("late", 3..8), ("early", 0..3)] {
        let targets = Targets::test(range.collect(), Output::Margin);
        let (path, _) = attribute_to_file(
            &run,
            m.as_ref(),
            used.clone(),
            &targets,
            None,
            2,
            out.path(),
            stem,
        )
        .unwrap();
        parts.push(path);
    }
    let loaded: Vec<_> = parts
        .iter()
        .map(|p| (p.clone(), Scores::load(p).unwrap()))
        .collect();
    Scores::merge(loaded)
        .unwrap()
        .save(out.path(), "memory")
        .unwrap();
    let files: Vec<ScoreFile> = parts.iter().map(|p| ScoreFile::open(p).unwrap()).collect();
    let (path, meta) = ScoreFile::merge_into(&files, out.path(), "merged").unwrap();
    assert!(
        read(out.path(), "merged") == read(out.path(), "memory"),
        "merged files differ"
    );
    assert_eq!(meta.targets, (0..8).collect::<Vec<_>>());
    // Read back three rows at a time: the rows, and their targets, of the whole matrix.
    let whole = Scores::load(&path).unwrap();
    let file = ScoreFile::open(&path).unwrap();
    let mut values = Vec::new();
    let mut targets = Vec::new();
    for block in file.blocks_of(3) {
        let block = block.unwrap();
        assert!(block.rows() <= 3);
        values.extend(block.values);
        targets.extend(block.meta.targets);
    }
    assert_eq!(values, whole.values);
    assert_eq!(targets, whole.meta.targets);
    assert_eq!(file.row(4).unwrap(), whole.row(4));
    assert_eq!(
        file.blocks().count(),
        1,
        "8 short rows fit one 64 MiB block"
    );
}
