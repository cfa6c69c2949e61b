//! Sharded computations (`--shard I/N` and the schedulers' environment variables) assemble to the
//! single-process result, bit for bit, whatever order or concurrency the shards ran in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::RECIPE;

fn attrib_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_attrib"));
    c.args(args).current_dir(dir);
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "ATTRIB_SHARD_COUNT",
    ] {
        c.env_remove(v);
    }
    c
}

fn ok(o: Output) -> String {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "failed\nstdout:\n{out}\nstderr:\n{err}");
    out + &err
}

fn attrib(dir: &Path, args: &[&str]) -> String {
    ok(attrib_cmd(dir, args).output().unwrap())
}

/// Trains the recipe into `dir/r`.
fn train(dir: &Path) {
    std::fs::write(dir.join("r.toml"), RECIPE).unwrap();
    attrib(
        dir,
        &["--quiet", "train", "--config", "r.toml", "--out", "r"],
    );
}

/// Every file of the run's ground-truth folders, by relative path, with its bytes.
fn ground_truth_files(run: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let root = run.join("groundtruth");
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            out.push((
                f.strip_prefix(&root).unwrap().to_path_buf(),
                std::fs::read(&f).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

const GT: [&str; 6] = ["--drop", "0.05", "--subsets", "12", "--output", "margin"];

#[test]
fn ground_truth_shards_in_any_order_assemble_to_the_single_process_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    for d in [&single, &sharded] {
        std::fs::create_dir(d).unwrap();
        train(d);
    }
    let gt = |dir: &Path, extra: &[&str]| {
        let mut args = vec!["--json", "groundtruth", "--run", "r"];
        args.extend_from_slice(&GT);
        args.extend_from_slice(extra);
        attrib(dir, &args)
    };
    gt(&single, &[]);

    // Shards 3 and 2 at once, then 1 through the Slurm variables, then 0 through an indexed
    // job's: each computes exactly its own subsets.
    let spawn = |shard: &str| {
        let mut args = vec!["--json", "groundtruth", "--run", "r", "--shard", shard];
        args.extend_from_slice(&GT);
        attrib_cmd(&sharded, &args).spawn().unwrap()
    };
    let (a, b) = (spawn("3/4"), spawn("2/4"));
    for child in [a, b] {
        ok(child.wait_with_output().unwrap());
    }
    let mut args = vec!["--json", "groundtruth", "--run", "r"];
    args.extend_from_slice(&GT);
    let slurm = ok(attrib_cmd(&sharded, &args)
        .env("SLURM_ARRAY_TASK_ID", "11")
        .env("SLURM_ARRAY_TASK_MIN", "10")
        .env("SLURM_ARRAY_TASK_COUNT", "4")
        .output()
        .unwrap());
    assert!(slurm.contains(r#""shard":"1/4""#), "{slurm}");
    assert!(slurm.contains(r#""computed":3"#), "{slurm}");
    assert!(slurm.contains(r#""done":9"#), "{slurm}");
    let k8s = ok(attrib_cmd(&sharded, &args)
        .env("JOB_COMPLETION_INDEX", "0")
        .env("ATTRIB_SHARD_COUNT", "4")
        .output()
        .unwrap());
    assert!(k8s.contains(r#""computed":3"#), "{k8s}");
    assert!(k8s.contains(r#""done":12"#), "{k8s}");

    // Assembling computes nothing and the files are the single process's, byte for byte.
    let assembled = gt(&sharded, &[]);
    assert!(assembled.contains(r#""computed":0"#), "{assembled}");
    let (want, got) = (
        ground_truth_files(&single.join("r")),
        ground_truth_files(&sharded.join("r")),
    );
    assert_eq!(want.len(), 13, "a manifest and 12 subsets");
    assert_eq!(
        want.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        got.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for ((p, a), (_, b)) in want.iter().zip(&got) {
        assert!(a == b, "{} differs", p.display());
    }
}

#[test]
fn a_missing_shard_leaves_exactly_its_subsets_to_compute() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir);
    for shard in ["0/3", "2/3"] {
        let mut args = vec!["--json", "groundtruth", "--run", "r", "--shard", shard];
        args.extend_from_slice(&GT);
        attrib(dir, &args);
    }
    // `attrib status` names what shard 1 of 3 owns: subsets 1, 4, 7, 10.
    let status = attrib(dir, &["--json", "status", "--run", "r"]);
    assert!(
        status.contains(r#""present":8,"expected":12,"missing":[1,4,7,10]"#),
        "{status}"
    );
    let text = attrib(dir, &["status", "--run", "r"]);
    assert!(
        text.contains("8 of 12 subsets, missing 4 (1 4 7 10)"),
        "{text}"
    );
    let mut args = vec!["--json", "groundtruth", "--run", "r"];
    args.extend_from_slice(&GT);
    let rest = attrib(dir, &args);
    assert!(rest.contains(r#""computed":4"#), "{rest}");
    let text = attrib(dir, &["status", "--run", "r"]);
    assert!(text.contains("12 of 12 subsets, complete"), "{text}");
}

#[test]
fn a_bad_shard_is_refused_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir);
    let o = attrib_cmd(dir, &["groundtruth", "--run", "r", "--shard", "4/4"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0 <= I < N"), "{err}");
    let o = attrib_cmd(dir, &["groundtruth", "--run", "r"])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ATTRIB_SHARD_COUNT"), "{err}");
}

/// The score matrix (`.npy` bytes) of `RUN/scores/NAME`.
fn npy(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join("r/scores").join(format!("{name}.npy"))).unwrap()
}

#[test]
fn magic_shards_assemble_to_the_single_process_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    for d in [&single, &sharded] {
        std::fs::create_dir(d).unwrap();
        train(d);
    }
    // 10 targets in blocks of 2: 5 blocks, shard I of 3 owns blocks I, I + 3.
    let magic = [
        "attribute",
        "--run",
        "r",
        "--method",
        "magic",
        "--targets",
        "0..10",
    ];
    let opts = ["--option", "block=2", "--name", "m"];
    let run = |dir: &Path, shard: Option<&str>| {
        let mut args = vec!["--json"];
        args.extend_from_slice(&magic);
        args.extend_from_slice(&opts);
        if let Some(s) = shard {
            args.extend_from_slice(&["--shard", s]);
        }
        attrib(dir, &args)
    };
    run(&single, None);
    let first = run(&sharded, Some("2/3"));
    assert!(first.contains(r#""type":"shard""#), "{first}");
    assert!(first.contains(r#""done":1"#), "{first}");
    assert!(
        !sharded.join("r/scores/m.npy").exists(),
        "a shard writes no score file"
    );
    run(&sharded, Some("0/3"));
    // The last shard completes the set but leaves writing the scores to the assemble step.
    let last = run(&sharded, Some("1/3"));
    assert!(last.contains(r#""done":5,"total":5"#), "{last}");
    assert!(
        !sharded.join("r/scores/m.npy").exists(),
        "a shard writes no score file"
    );
    let assembled = run(&sharded, None);
    assert!(assembled.contains(r#""type":"scores""#), "{assembled}");
    assert!(npy(&single, "m") == npy(&sharded, "m"), "scores differ");

    // The sidecar's seconds are the computation's: the sum of the blocks' recorded times (each
    // block's sweep and its share of its shard's forward replay), not the assembling run's.
    let seconds = |dir: &Path| -> f64 {
        let text = std::fs::read_to_string(dir.join("r/scores/m.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["seconds"].as_f64().unwrap()
    };
    let blocks: f64 = std::fs::read_dir(sharded.join("r/store/magic-block"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seconds"))
        .map(|e| f64::from_le_bytes(std::fs::read(e.path()).unwrap().try_into().unwrap()))
        .collect::<Vec<_>>()
        .iter()
        .sum();
    assert!(seconds(&sharded) > 0.0);
    assert!(
        (seconds(&sharded) - blocks).abs() <= 1e-9 * blocks,
        "{} vs {blocks}",
        seconds(&sharded)
    );
    // Recomputed from the finished blocks, the single process's file keeps its time.
    let first = seconds(&single);
    std::fs::remove_file(single.join("r/scores/m.npy")).unwrap();
    run(&single, None);
    assert_eq!(seconds(&single), first);
}

#[test]
fn every_method_shards_by_blocks_of_targets_and_assembles_the_single_process_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    for d in [&single, &sharded] {
        std::fs::create_dir(d).unwrap();
        train(d);
    }
    // 10 targets in blocks of 4: blocks {0..4, 4..8, 8..10}, shard I of 3 owns block I.
    for method in ["tracin", "if-cg"] {
        let run = |dir: &Path, shard: Option<&str>| {
            let mut args = vec![
                "--json",
                "attribute",
                "--run",
                "r",
                "--method",
                method,
                "--targets",
                "0..10",
                "--target-block",
                "4",
                "--name",
                method,
            ];
            if let Some(s) = shard {
                args.extend_from_slice(&["--shard", s]);
            }
            attrib(dir, &args)
        };
        run(&single, None);
        for (shard, done) in [("2/3", 1), ("1/3", 2), ("0/3", 3)] {
            let out = run(&sharded, Some(shard));
            assert!(out.contains(r#""type":"shard""#), "{out}");
            assert!(
                out.contains(&format!(r#""done":{done},"total":3"#)),
                "{method} {shard}: {out}"
            );
            assert!(
                !sharded.join(format!("r/scores/{method}.npy")).exists(),
                "a shard writes no score file"
            );
        }
        let assembled = run(&sharded, None);
        assert!(assembled.contains(r#""type":"scores""#), "{assembled}");
        assert!(
            npy(&single, method) == npy(&sharded, method),
            "{method}: assembled scores differ from the single process's"
        );
    }
    // Three blocks per method, each stored once (rows and seconds).
    let stored = std::fs::read_dir(sharded.join("r/store/target-block"))
        .unwrap()
        .count();
    assert_eq!(stored, 2 * 3 * 2);
    let status = attrib(&sharded, &["status", "--run", "r"]);
    assert!(status.contains("target-block"), "{status}");

    // Assembling computes nothing: the stored blocks are not rewritten.
    let modified = || -> Vec<std::time::SystemTime> {
        let mut files: Vec<_> = std::fs::read_dir(sharded.join("r/store/target-block"))
            .unwrap()
            .flatten()
            .map(|e| (e.file_name(), e.metadata().unwrap().modified().unwrap()))
            .collect();
        files.sort();
        files.into_iter().map(|(_, t)| t).collect()
    };
    let before = modified();
    std::fs::remove_file(sharded.join("r/scores/tracin.npy")).unwrap();
    attrib(
        &sharded,
        &[
            "--quiet",
            "attribute",
            "--run",
            "r",
            "--method",
            "tracin",
            "--targets",
            "0..10",
            "--target-block",
            "4",
            "--name",
            "tracin",
        ],
    );
    assert_eq!(modified(), before);
    assert!(npy(&single, "tracin") == npy(&sharded, "tracin"));
}

#[test]
fn group_scores_refuse_a_shard_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir);
    attrib(
        dir,
        &[
            "--quiet", "group", "--run", "r", "--method", "random", "--groups", "5", "--out",
            "g.csv",
        ],
    );
    let o = attrib_cmd(
        dir,
        &[
            "attribute",
            "--run",
            "r",
            "--method",
            "tracin",
            "--groups",
            "g.csv",
            "--shard",
            "0/2",
        ],
    )
    .output()
    .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("do not split into shards"), "{err}");
    assert!(err.contains("attrib merge"), "{err}");
}

#[test]
fn trak_member_shards_assemble_to_the_single_process_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    for d in [&single, &sharded] {
        std::fs::create_dir(d).unwrap();
        train(d);
    }
    // 5 models: the run and members 1..=4, one trained member per shard.
    let trak = [
        "--json",
        "attribute",
        "--run",
        "r",
        "--method",
        "trak",
        "--targets",
        "0..6",
        "--option",
        "models=5",
        "--option",
        "k=32",
        "--name",
        "t",
    ];
    attrib(&single, &trak);
    for shard in ["3/4", "1/4", "0/4", "2/4"] {
        let mut args = trak.to_vec();
        args.extend_from_slice(&["--shard", shard]);
        let out = attrib(&sharded, &args);
        assert!(out.contains(r#""type":"shard""#), "{out}");
    }
    let members = std::fs::read_dir(sharded.join("r/store/trak-member"))
        .unwrap()
        .count();
    assert_eq!(members, 4);
    assert!(!sharded.join("r/scores/t.npy").exists());
    attrib(&sharded, &trak);
    assert!(npy(&single, "t") == npy(&sharded, "t"), "scores differ");
}

#[test]
fn datamodels_shards_assemble_to_the_single_process_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    for d in [&single, &sharded] {
        std::fs::create_dir(d).unwrap();
        train(d);
    }
    let dm = [
        "--json",
        "attribute",
        "--run",
        "r",
        "--method",
        "datamodels",
        "--targets",
        "0..4",
        "--option",
        "subsets=20",
        "--name",
        "d",
    ];
    attrib(&single, &dm);
    for shard in ["1/2", "0/2"] {
        let mut args = dm.to_vec();
        args.extend_from_slice(&["--shard", shard]);
        let out = attrib(&sharded, &args);
        assert!(out.contains(r#""type":"shard""#), "{out}");
    }
    assert!(!sharded.join("r/scores/d.npy").exists());
    attrib(&sharded, &dm);
    assert!(npy(&single, "d") == npy(&sharded, "d"), "scores differ");
}

/// Retrained models in the run's store, by file name.
fn stored_retrainings(run: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir(run.join("store/retrain")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = dir
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn retrain_score_shards_store_the_retrainings_the_table_then_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    for d in [&single, &sharded] {
        std::fs::create_dir(d).unwrap();
        train(d);
        attrib(
            d,
            &[
                "--quiet",
                "attribute",
                "--run",
                "r",
                "--method",
                "tracin",
                "--name",
                "t",
            ],
        );
    }
    // Three fractions: six retrainings (ours and random for each), shard I of 2 owns j = I mod 2.
    let cmd = [
        "retrain-score",
        "--run",
        "r",
        "--scores",
        "r/scores/t.npy",
        "--remove",
        "0.05,0.1,0.2",
    ];
    let table = |dir: &Path| {
        let out = attrib(dir, &cmd);
        out.lines()
            .filter(|l| l.ends_with('%'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let want = table(&single);
    assert_eq!(want.lines().count(), 3, "{want}");
    let shard = |i: &str| {
        let mut args = vec!["--json"];
        args.extend_from_slice(&cmd);
        args.extend_from_slice(&["--shard", i]);
        attrib(&sharded, &args)
    };
    let first = shard("1/2");
    assert!(
        first.contains(r#""type":"shard""#) && first.contains(r#""done":3,"total":6"#),
        "{first}"
    );
    assert!(!first.contains('%'), "a shard prints no table: {first}");
    shard("0/2");
    let stored = stored_retrainings(&sharded.join("r"));
    assert_eq!(stored.len(), 6);
    assert_eq!(
        stored,
        stored_retrainings(&single.join("r")),
        "the shards stored the single process's models, bit for bit"
    );
    // The assembling command retrains nothing: same table, no stored file rewritten.
    let modified = |run: &Path| -> Vec<std::time::SystemTime> {
        let mut files: Vec<_> = std::fs::read_dir(run.join("store/retrain"))
            .unwrap()
            .flatten()
            .map(|e| (e.file_name(), e.metadata().unwrap().modified().unwrap()))
            .collect();
        files.sort();
        files.into_iter().map(|(_, t)| t).collect()
    };
    let before = modified(&sharded.join("r"));
    assert_eq!(table(&sharded), want);
    assert_eq!(stored_retrainings(&sharded.join("r")), stored);
    assert_eq!(modified(&sharded.join("r")), before);
}

#[test]
fn seed_averaged_ground_truth_shards_assemble_to_the_single_process_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    for d in [&single, &sharded] {
        std::fs::create_dir(d).unwrap();
        train(d);
    }
    let gt = |dir: &Path, shard: Option<&str>| {
        let mut args = vec!["--json", "groundtruth", "--run", "r"];
        args.extend_from_slice(&GT);
        args.extend_from_slice(&["--seeds", "3"]);
        if let Some(s) = shard {
            args.extend_from_slice(&["--shard", s]);
        }
        attrib(dir, &args)
    };
    gt(&single, None);
    gt(&sharded, Some("1/2"));
    gt(&sharded, Some("0/2"));
    let assembled = gt(&sharded, None);
    assert!(assembled.contains(r#""computed":0"#), "{assembled}");
    let (want, got) = (
        ground_truth_files(&single.join("r")),
        ground_truth_files(&sharded.join("r")),
    );
    assert_eq!(want.len(), 13, "a manifest and 12 subsets");
    assert!(
        want.iter()
            .all(|(p, _)| p.to_string_lossy().contains("-seeds3")),
        "the seed-averaged folder is its own: {:?}",
        want.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert!(want == got, "sharded seed-averaged ground truth differs");
    // lds says which protocol its table uses.
    attrib(
        &single,
        &[
            "--quiet",
            "attribute",
            "--run",
            "r",
            "--method",
            "tracin",
            "--name",
            "t",
        ],
    );
    let mut args = vec!["lds", "--run", "r", "--scores", "r/scores/t.npy"];
    args.extend_from_slice(&GT[..4]);
    let one = attrib(&single, &args);
    assert!(one.contains("protocol: single model"), "{one}");
    args.extend_from_slice(&["--seeds", "3"]);
    let three = attrib(&single, &args);
    assert!(three.contains("protocol: 3 trainer seeds"), "{three}");
}

#[test]
fn select_shards_store_the_retrainings_the_table_then_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    let recipe = RECIPE.replace("[data]\n", "[data]\nval_fraction = 0.2\n");
    for d in [&single, &sharded] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("v.toml"), &recipe).unwrap();
        attrib(d, &["--quiet", "train", "--config", "v.toml", "--out", "r"]);
        attrib(
            d,
            &[
                "--quiet",
                "attribute",
                "--run",
                "r",
                "--method",
                "tracin",
                "--split",
                "val",
                "--output",
                "loss",
                "--targets",
                "0..10",
                "--name",
                "t",
            ],
        );
    }
    // Four retrainings: the selection by t, then random subsets 0, 1, 2.
    let cmd = [
        "select",
        "--run",
        "r",
        "--scores",
        "r/scores/t.npy",
        "--random",
        "3",
    ];
    let table = |dir: &Path| attrib(dir, &cmd);
    let want = table(&single);
    assert!(want.contains("random, seed 2"), "{want}");
    for (shard, done) in [("1/2", 2), ("0/2", 4)] {
        let mut args = vec!["--json"];
        args.extend_from_slice(&cmd);
        args.extend_from_slice(&["--shard", shard]);
        let out = attrib(&sharded, &args);
        assert!(
            out.contains(r#""type":"shard""#)
                && out.contains(&format!(r#""done":{done},"total":4"#)),
            "{shard}: {out}"
        );
        assert!(
            !out.contains("random, seed"),
            "a shard prints no table: {out}"
        );
    }
    let stored = stored_retrainings(&sharded.join("r"));
    assert_eq!(stored.len(), 4);
    assert_eq!(
        stored,
        stored_retrainings(&single.join("r")),
        "the shards stored the single process's models, bit for bit"
    );
    let modified = |run: &Path| -> Vec<std::time::SystemTime> {
        let mut files: Vec<_> = std::fs::read_dir(run.join("store/retrain"))
            .unwrap()
            .flatten()
            .map(|e| (e.file_name(), e.metadata().unwrap().modified().unwrap()))
            .collect();
        files.sort();
        files.into_iter().map(|(_, t)| t).collect()
    };
    let before = modified(&sharded.join("r"));
    assert_eq!(table(&sharded), want);
    assert_eq!(modified(&sharded.join("r")), before);
    // Metagradient descent is sequential and says so.
    let o = attrib_cmd(
        &sharded,
        &["select", "--run", "r", "--steps", "2", "--shard", "0/2"],
    )
    .output()
    .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--steps") && err.contains("drop --shard"),
        "{err}"
    );
}

// See: issue 17, item 4.
#[test]
fn attribute_prints_what_it_will_write_and_refuses_when_the_disk_is_too_small() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir);
    let cmd = [
        "attribute",
        "--run",
        "r",
        "--method",
        "tracin",
        "--targets",
        "0..10",
        "--target-block",
        "4",
    ];
    let out = attrib(dir, &cmd);
    assert!(out.contains("will write"), "{out}");
    let o = attrib_cmd(dir, &cmd)
        .env("ATTRIB_FREE_BYTES", "1000")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("needs") && err.contains("--targets a..b") && err.contains("--shard"),
        "{err}"
    );
}

/// Modification times of the files of `dir`, by name.
fn modified(dir: &Path) -> Vec<(std::ffi::OsString, std::time::SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name(), e.metadata().unwrap().modified().unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn tmc_shapley_shards_by_permutation_and_assembles_the_single_process_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded, partial) = (
        tmp.path().join("single"),
        tmp.path().join("sharded"),
        tmp.path().join("partial"),
    );
    // Eight training examples: a permutation is seven retrainings of milliseconds.
    let recipe = RECIPE.replace("[data]\n", "[data]\nmax_train = 8\n");
    for d in [&single, &sharded, &partial] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("t.toml"), &recipe).unwrap();
        attrib(d, &["--quiet", "train", "--config", "t.toml", "--out", "r"]);
    }
    // 12 permutations, shard I of 3 owns p = I, I + 3, I + 6, I + 9 (for all five targets).
    let run = |dir: &Path, shard: Option<&str>| {
        let mut args = vec![
            "--json",
            "attribute",
            "--run",
            "r",
            "--method",
            "tmc-shapley",
            "--targets",
            "0..5",
            "--option",
            "permutations=12",
            "--option",
            "window=2",
            "--option",
            "tol=0",
            "--option",
            "truncation=0.05",
            "--name",
            "s",
        ];
        if let Some(s) = shard {
            args.extend_from_slice(&["--shard", s]);
        }
        attrib(dir, &args)
    };
    run(&single, None);
    for (shard, done) in [("2/3", 4), ("1/3", 8), ("0/3", 12)] {
        let out = run(&sharded, Some(shard));
        assert!(
            out.contains(r#""type":"shard""#)
                && out.contains(&format!(r#""done":{done},"total":12"#)),
            "{shard}: {out}"
        );
        assert!(
            !sharded.join("r/scores/s.npy").exists(),
            "a shard writes no score file"
        );
    }
    let store = sharded.join("r/store/tmc-permutation");
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), 12);
    let before = modified(&store);
    let assembled = run(&sharded, None);
    assert!(assembled.contains(r#""type":"scores""#), "{assembled}");
    assert!(npy(&single, "s") == npy(&sharded, "s"), "scores differ");
    assert_eq!(modified(&store), before, "assembling walked nothing");
    let status = attrib(&sharded, &["status", "--run", "r"]);
    assert!(status.contains("tmc-permutation"), "{status}");

    // Without shard 1, the assembly walks exactly its four permutations.
    run(&partial, Some("0/3"));
    run(&partial, Some("2/3"));
    let store = partial.join("r/store/tmc-permutation");
    let before = modified(&store);
    assert_eq!(before.len(), 8);
    run(&partial, None);
    let after = modified(&store);
    assert_eq!(after.len(), 12);
    assert!(
        before.iter().all(|b| after.contains(b)),
        "the stored permutations were not rewritten"
    );
    assert!(npy(&single, "s") == npy(&partial, "s"), "scores differ");
}

/// Every file of `dir`, by name, with its bytes.
fn files_of(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

/// Trains the recipe with a validation split into `dir/r`.
fn train_with_val(dir: &Path) {
    let recipe = RECIPE.replace("[data]\n", "[data]\nval_fraction = 0.2\n");
    std::fs::write(dir.join("v.toml"), recipe).unwrap();
    attrib(
        dir,
        &["--quiet", "train", "--config", "v.toml", "--out", "r"],
    );
}

#[test]
fn poison_shards_store_the_attacks_the_table_then_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded, partial) = (
        tmp.path().join("single"),
        tmp.path().join("sharded"),
        tmp.path().join("partial"),
    );
    for d in [&single, &sharded, &partial] {
        std::fs::create_dir(d).unwrap();
        train_with_val(d);
    }
    // Two budgets x four attacks: items j = 0..8, shard I of 3 owns j = I, I + 3, I + 6.
    let cmd = [
        "poison",
        "--run",
        "r",
        "--budget",
        "0.01,0.02",
        "--steps",
        "1",
        "--eps",
        "0.5",
    ];
    let table = |dir: &Path| -> String {
        let o = attrib_cmd(dir, &cmd).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // The table's rows, without the progress lines of the attacks computed now.
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.contains(':') && !l.contains("training,"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let want = table(&single);
    assert_eq!(want.lines().count(), 10, "header, clean, 8 attacks: {want}");
    let shard = |dir: &Path, i: &str| {
        let mut args = vec!["--json"];
        args.extend_from_slice(&cmd);
        args.extend_from_slice(&["--shard", i]);
        attrib(dir, &args)
    };
    for (i, done) in [("2/3", 2), ("1/3", 5), ("0/3", 8)] {
        let out = shard(&sharded, i);
        assert!(
            out.contains(r#""type":"shard""#)
                && out.contains(&format!(r#""done":{done},"total":8"#)),
            "{i}: {out}"
        );
        assert!(
            !out.contains(r#""type":"poison""#),
            "a shard prints no row: {out}"
        );
        assert!(
            !sharded.join("r/poison").exists(),
            "a shard writes no files"
        );
    }
    let store = sharded.join("r/store/poison");
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), 8);
    let before = modified(&store);
    assert_eq!(table(&sharded), want);
    assert_eq!(modified(&store), before, "assembling attacked nothing");
    let poisoned = files_of(&single.join("r/poison"));
    assert_eq!(
        poisoned.len(),
        8 + 4,
        "a JSON per row, an npy per input attack"
    );
    assert!(
        poisoned == files_of(&sharded.join("r/poison")),
        "the assembled files differ from the single process's"
    );

    // Without shard 1, the assembly attacks exactly its rows 1, 4, 7.
    shard(&partial, "0/3");
    shard(&partial, "2/3");
    let store = partial.join("r/store/poison");
    let before = modified(&store);
    assert_eq!(before.len(), 5);
    assert_eq!(table(&partial), want);
    let after = modified(&store);
    assert_eq!(after.len(), 8);
    assert!(before.iter().all(|b| after.contains(b)));
    assert!(poisoned == files_of(&partial.join("r/poison")));
}

#[test]
fn noisy_labels_shards_store_the_rows_the_table_then_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded, partial) = (
        tmp.path().join("single"),
        tmp.path().join("sharded"),
        tmp.path().join("partial"),
    );
    for d in [&single, &sharded, &partial] {
        std::fs::create_dir(d).unwrap();
        train(d);
    }
    // Rows: individual examples, then the two groupings; shard I of 3 owns row I.
    let cmd = [
        "noisy-labels",
        "--run",
        "r",
        "--flip",
        "0.1",
        "--grouping",
        "grad-kmeans:20,random:20",
    ];
    let table = |dir: &Path| -> String {
        let o = attrib_cmd(dir, &cmd).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.ends_with('%'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let want = table(&single);
    assert_eq!(want.lines().count(), 4, "{want}");
    let shard = |dir: &Path, i: &str| {
        let mut args = vec!["--json"];
        args.extend_from_slice(&cmd);
        args.extend_from_slice(&["--shard", i]);
        attrib(dir, &args)
    };
    for (i, done) in [("2/3", 1), ("1/3", 2), ("0/3", 3)] {
        let out = shard(&sharded, i);
        assert!(
            out.contains(r#""type":"shard""#)
                && out.contains(&format!(r#""done":{done},"total":3"#)),
            "{i}: {out}"
        );
        assert!(
            !out.contains(r#""type":"noisy_labels""#),
            "a shard prints no row: {out}"
        );
    }
    // The retraining with flipped labels was trained once and read by the later shards.
    let retrained = sharded.join("r/store/noisy-labels-retrain");
    assert_eq!(std::fs::read_dir(&retrained).unwrap().count(), 1);
    assert!(
        files_of(&retrained) == files_of(&single.join("r/store/noisy-labels-retrain")),
        "the shards' retraining differs from the single process's"
    );
    let store = sharded.join("r/store/noisy-labels-row");
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), 3);
    let before = (modified(&store), modified(&retrained));
    assert_eq!(table(&sharded), want);
    assert_eq!(
        (modified(&store), modified(&retrained)),
        before,
        "assembling computed nothing"
    );

    // Without shard 1, the assembly ranks exactly its row (grad-kmeans).
    shard(&partial, "0/3");
    shard(&partial, "2/3");
    let store = partial.join("r/store/noisy-labels-row");
    let before = modified(&store);
    assert_eq!(before.len(), 2);
    assert_eq!(table(&partial), want);
    let after = modified(&store);
    assert_eq!(after.len(), 3);
    assert!(before.iter().all(|b| after.contains(b)));
}
