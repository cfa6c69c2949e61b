//! Faults and bad inputs that must end in finished work or a precise error (issue 13). Each test
//! names the item of the issue it covers.

use std::path::Path;
use std::process::{Command, Stdio};

use super::util::*;

/// Trains the breast-cancer logistic recipe into `dir/run`.
fn trained(dir: &Path) -> &'static str {
    write(dir, "bc.toml", LOGISTIC);
    attrib(
        dir,
        &["--quiet", "train", "--config", "bc.toml", "--out", "run"],
    )
    .ok();
    "run"
}

/// Runs `attrib args...` with stdout a pipe whose reader is gone before the first write (what
/// `attrib ... | head -0` does); returns the exit code and stderr.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

// See: issue 13, item 1.
cli_test!(closed_stdout_never_stops_the_work, |dir| {
    write(dir, "bc.toml", LOGISTIC);
    for (json, out) in [(false, "a"), (true, "b")] {
        let mut args = vec!["train", "--config", "bc.toml", "--out", out];
        if json {
            args.insert(0, "--json");
        }
        let (code, stderr) = with_closed_stdout(dir, &args);
        assert_eq!(code, 0, "{stderr}");
        for f in ["config.toml", "metrics.jsonl", "params.safetensors"] {
            assert!(dir.join(out).join(f).is_file(), "{out}/{f} missing");
        }
    }
    // The run trained with stdout closed is the same run.
    attrib(
        dir,
        &["--quiet", "train", "--config", "bc.toml", "--out", "c"],
    )
    .ok();
    assert_eq!(
        read(dir.join("a/params.safetensors")),
        read(dir.join("c/params.safetensors"))
    );
    let (code, stderr) = with_closed_stdout(
        dir,
        &[
            "attribute",
            "--run",
            "a",
            "--method",
            "tracin",
            "--targets",
            "0..3",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(dir.join("a/scores/tracin@0-3.npy").is_file());
    assert!(dir.join("a/scores/tracin@0-3.json").is_file());
    let (code, stderr) = with_closed_stdout(
        dir,
        &["--quiet", "groundtruth", "--run", "a", "--subsets", "2"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(dir.join("a/groundtruth").is_dir());
});

// See: issue 13, item 11.
cli_test!(a_huge_target_range_is_an_error_not_a_panic, |dir| {
    let run = trained(dir);
    let out = attrib(
        dir,
        &[
            "attribute",
            "--run",
            run,
            "--method",
            "tracin",
            "--targets",
            "0..18446744073709551615",
        ],
    )
    .fails(1);
    assert_contains!(
        out.stderr,
        "is outside the test split of 113 examples",
        "0..113"
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
});

// See: issue 13, item 16.
cli_test!(score_names_cannot_leave_the_scores_folder, |dir| {
    let run = trained(dir);
    for name in ["../../escaped", "a/b", ".."] {
        let out = attrib(
            dir,
            &[
                "attribute",
                "--run",
                run,
                "--method",
                "tracin",
                "--name",
                name,
            ],
        )
        .fails(2);
        assert_contains!(out.stderr, "inside RUN/scores/");
    }
    assert!(
        !dir.join("escaped.npy").exists() && !dir.parent().unwrap().join("escaped.npy").exists()
    );
});

// See: issue 13, item 18.
cli_test!(more_threads_than_cores_warns, |dir| {
    let run = trained(dir);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let many = (cores + 1).to_string();
    let out = attrib(dir, &["--threads", &many, "evaluate", "--run", run]).ok();
    assert_contains!(
        out.stderr,
        &format!("warning: --threads {many} exceeds the {cores} cores")
    );
    let out = attrib(
        dir,
        &["--threads", &many, "--json", "evaluate", "--run", run],
    )
    .ok();
    assert_eq!(out.json_lines()[0]["type"], "warning");
    let out = attrib(
        dir,
        &["--threads", &cores.to_string(), "evaluate", "--run", run],
    )
    .ok();
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
});

// See: issue 13, item 13.
cli_test!(lds_names_the_missing_matrix_not_the_sidecar, |dir| {
    let run = trained(dir);
    // A mistyped name: neither NAME.npy nor NAME.json exists, and the .npy is what was asked for.
    let out = attrib(
        dir,
        &[
            "lds",
            "--run",
            run,
            "--scores",
            "run/scores/tracn.npy",
            "--subsets",
            "2",
        ],
    )
    .fails(1);
    assert_contains!(out.stderr, "run/scores/tracn.npy: No such file");
    assert!(!out.stderr.contains("sidecar"), "{}", out.stderr);
});

// See: issue 13, item 14.
cli_test!(merge_errors_name_the_files_and_what_differs, |dir| {
    let run = trained(dir);
    for r in ["0..3", "2..5"] {
        attrib(
            dir,
            &[
                "--quiet",
                "attribute",
                "--run",
                run,
                "--method",
                "similarity",
                "--targets",
                r,
            ],
        )
        .ok();
    }
    let out = attrib(
        dir,
        &[
            "merge",
            "--out",
            "m.npy",
            "run/scores/similarity@0-3.npy",
            "run/scores/similarity@2-5.npy",
        ],
    )
    .fails(1);
    assert_contains!(
        out.stderr,
        "target 2 is also in",
        "similarity@0-3.npy",
        "similarity@2-5.npy"
    );
    // Parts of two runs: the message names the run hashes, which differ.
    write(
        dir,
        "bc2.toml",
        &LOGISTIC.replace("epochs = 2", "epochs = 3"),
    );
    attrib(
        dir,
        &["--quiet", "train", "--config", "bc2.toml", "--out", "run2"],
    )
    .ok();
    attrib(
        dir,
        &[
            "--quiet",
            "attribute",
            "--run",
            "run2",
            "--method",
            "similarity",
            "--targets",
            "3..5",
        ],
    )
    .ok();
    let out = attrib(
        dir,
        &[
            "merge",
            "--out",
            "m.npy",
            "run/scores/similarity@0-3.npy",
            "run2/scores/similarity@3-5.npy",
        ],
    )
    .fails(1);
    assert_contains!(
        out.stderr,
        "run2/scores/similarity@3-5.npy",
        "run/scores/similarity@0-3.npy",
        "its run is"
    );
    assert!(!out.stderr.contains("error: :"), "{}", out.stderr);
});

// See: issue 13, item 15.
cli_test!(misleading_messages_are_fixed, |dir| {
    std::fs::create_dir(dir.join("cfgdir")).unwrap();
    let out = attrib(dir, &["train", "--config", "cfgdir", "--out", "r"]).fails(1);
    assert_contains!(out.stderr, "is a folder, not a file");
    let out = attrib(
        dir,
        &["lds", "--run", "r", "--scores", "s.npy", "--drop", "0"],
    )
    .fails(2);
    assert_contains!(out.stderr, "--drop", "strictly between 0 and 1");
    assert!(!out.stderr.contains("spec.kind"), "{}", out.stderr);
    // A CSV with only a header: the hint must not name a field the config refuses.
    write(dir, "h.csv", "a,b,label\n");
    write(
        dir,
        "h.toml",
        "[data]\nsource = \"csv\"\npath = \"h.csv\"\n[model]\nkind = \"logistic\"\n[optim]\nkind = \"sgd\"\nlr = 0.1\n[train]\nepochs = 1\n",
    );
    let out = attrib(dir, &["train", "--config", "h.toml", "--out", "r"]).fails(1);
    assert_contains!(out.stderr, "h.csv", "no data rows");
    assert!(!out.stderr.contains("has_header"), "{}", out.stderr);
});

// See: issue 13, item 12.
cli_test!(empty_training_data_names_the_real_cause, |dir| {
    let text = |name: &str, body: &str, seq_len: usize| {
        write(dir, &format!("{name}.txt"), body);
        write(
            dir,
            &format!("{name}.toml"),
            &format!(
                "[data]\nsource = \"text\"\npath = \"{name}.txt\"\nseq_len = {seq_len}\n\
                 [model]\nkind = \"gpt\"\nd_model = 8\nn_layer = 1\nn_head = 1\n\
                 [optim]\nkind = \"sgd\"\nlr = 0.1\n[train]\nepochs = 1\nbatch_size = 2\n"
            ),
        );
        attrib(
            dir,
            &["train", "--config", &format!("{name}.toml"), "--out", name],
        )
        .fails(1)
    };
    for out in [
        text("empty", "", 16),
        text("short", "abcdef", 16),
        text("huge", "abc def ghi", 1 << 40),
    ] {
        assert_contains!(out.stderr, ".txt", "data.seq_len");
        assert!(!out.stderr.contains("batch_size"), "{}", out.stderr);
    }
    write(
        dir,
        "m.toml",
        &LOGISTIC.replace("[model]", "max_train = 0\n[model]"),
    );
    let out = attrib(dir, &["train", "--config", "m.toml", "--out", "m"]).fails(1);
    assert_contains!(out.stderr, "data.max_train = 0");
});

// See: issue 13, item 17.
cli_test!(
    quiet_groundtruth_prints_its_summary_and_logs_get_progress_lines,
    |dir| {
        let run = trained(dir);
        let out = attrib(
            dir,
            &["--quiet", "groundtruth", "--run", run, "--subsets", "2"],
        )
        .ok();
        assert_contains!(out.stdout, "ground truth", "2 subsets");
        // stderr is a pipe here, not a terminal: plain lines instead of a bar.
        let o = Command::new(env!("CARGO_BIN_EXE_attrib"))
            .args(["groundtruth", "--run", run, "--subsets", "3", "--seed", "1"])
            .env("ATTRIB_PROGRESS_EVERY", "0")
            .current_dir(dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{stderr}");
        assert_contains!(stderr, "progress: 3/3 retrained subsets");
        assert!(
            !stderr.contains('\u{1b}'),
            "control characters in a log: {stderr:?}"
        );
        let o = Command::new(env!("CARGO_BIN_EXE_attrib"))
            .args(["train", "--config", "bc.toml", "--out", "again"])
            .env("ATTRIB_PROGRESS_EVERY", "0")
            .current_dir(dir)
            .output()
            .unwrap();
        assert_contains!(String::from_utf8_lossy(&o.stderr), "progress: 16/16 steps");
    }
);

// See: issue 13, item 5.
cli_test!(flipped_bytes_in_the_params_are_refused, |dir| {
    let run = trained(dir);
    let path = dir.join("run/params.safetensors");
    let mut bytes = read(&path);
    // Flip the low bit of the last tensor byte: a finite float either way.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let out = attrib(dir, &["evaluate", "--run", run]).fails(1);
    assert_contains!(out.stderr, "params.safetensors", "corrupt");
});

// See: issue 13, item 6.
cli_test!(num_classes_that_the_data_cannot_have_is_refused, |dir| {
    let cfg = super::util::WIDE.replace(
        "source = \"digits\"",
        "source = \"digits\"\nnum_classes = 3",
    );
    write(dir, "d.toml", &cfg);
    let out = attrib(dir, &["train", "--config", "d.toml", "--out", "d"]).fails(1);
    assert_contains!(out.stderr, "data.num_classes = 3", "exactly 10 classes");
    assert!(!dir.join("d/params.safetensors").exists());
});

// See: issue 13, item 8.
cli_test!(a_diverged_run_warns, |dir| {
    write(dir, "hot.toml", &LOGISTIC.replace("lr = 0.1", "lr = 1e6"));
    let out = attrib(dir, &["train", "--config", "hot.toml", "--out", "hot"]).ok();
    assert_contains!(out.stderr, "warning: training diverged", "lower optim.lr");
    write(dir, "bc.toml", LOGISTIC);
    let out = attrib(dir, &["train", "--config", "bc.toml", "--out", "fine"]).ok();
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
});

// See: issue 13, item 4.
cli_test!(
    a_run_changed_after_training_is_refused_naming_what_changed,
    |dir| {
        let run = trained(dir);
        let cfg_path = dir.join("run/config.toml");
        let trained_cfg = String::from_utf8(read(&cfg_path)).unwrap();
        let out = attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        assert_contains!(out.stdout, "fingerprint.json");
        attrib(dir, &["evaluate", "--run", run]).ok();

        // Another split seed: the "test" split would hold training examples.
        std::fs::write(
            &cfg_path,
            trained_cfg.replace("split_seed = 0", "split_seed = 7"),
        )
        .unwrap();
        for args in [
            vec!["evaluate", "--run", run],
            vec!["attribute", "--run", run, "--method", "tracin"],
            vec!["lds", "--run", run, "--scores", "run/scores/x.npy"],
        ] {
            let out = attrib(dir, &args).fails(1);
            assert_contains!(
                out.stderr,
                "config.toml was edited after training",
                "- data.split_seed = 0",
                "+ data.split_seed = 7",
                "--force"
            );
        }
        // Edits that change nothing (a comment) pass; the epochs field does not.
        std::fs::write(&cfg_path, format!("# mine\n{trained_cfg}")).unwrap();
        attrib(dir, &["evaluate", "--run", run]).ok();
        std::fs::write(&cfg_path, trained_cfg.replace("epochs = 2", "epochs = 3")).unwrap();
        let out = attrib(dir, &["evaluate", "--run", run]).fails(1);
        assert_contains!(out.stderr, "+ train.epochs = 3");
        std::fs::write(&cfg_path, &trained_cfg).unwrap();

        // Another run's parameters copied in.
        write(
            dir,
            "other.toml",
            &LOGISTIC.replace("lr = 0.1", "lr = 0.05"),
        );
        attrib(
            dir,
            &["--quiet", "train", "--config", "other.toml", "--out", "o"],
        )
        .ok();
        std::fs::copy(
            dir.join("o/params.safetensors"),
            dir.join("run/params.safetensors"),
        )
        .unwrap();
        let out = attrib(dir, &["evaluate", "--run", run]).fails(1);
        assert_contains!(
            out.stderr,
            "params.safetensors is not the file that training wrote"
        );

        // A data file edited after training.
        let mut csv = String::from("a,b,label\n");
        for i in 0..40 {
            csv.push_str(&format!(
                "{},{},{}\n",
                i as f32 * 0.1,
                (i % 7) as f32,
                i % 2
            ));
        }
        write(dir, "d.csv", &csv);
        let c = LOGISTIC.replace(
            "source = \"breast_cancer\"",
            "source = \"csv\"\npath = \"d.csv\"\nlabel_column = \"label\"",
        );
        write(dir, "c.toml", &c);
        attrib(
            dir,
            &["--quiet", "train", "--config", "c.toml", "--out", "c"],
        )
        .ok();
        attrib(dir, &["evaluate", "--run", "c"]).ok();
        write(dir, "d.csv", &csv.replace("\n0,0,0\n", "\n0,0,1\n"));
        let out = attrib(dir, &["evaluate", "--run", "c"]).fails(1);
        assert_contains!(
            out.stderr,
            "the data changed after training",
            "restore the data"
        );
    }
);

// See: issue 13, item 2.
cli_test!(a_killed_retrain_keeps_the_finished_runs_metrics, |dir| {
    use std::io::BufRead;
    // 200 epochs of 8 steps: far more output than a pipe holds, so the child blocks on its
    // stdout (which this test stops reading) long before it could finish.
    let long = LOGISTIC.replace("epochs = 2", "epochs = 200");
    write(dir, "long.toml", &long);
    attrib(
        dir,
        &["--quiet", "train", "--config", "long.toml", "--out", "run"],
    )
    .ok();
    let (params, metrics) = (
        read(dir.join("run/params.safetensors")),
        read(dir.join("run/metrics.jsonl")),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(["--json", "train", "--config", "long.toml", "--out", "run"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut epochs = 0;
    for line in stdout.lines() {
        if line.unwrap().contains("\"type\":\"epoch\"") {
            epochs += 1;
            if epochs == 3 {
                break;
            }
        }
    }
    assert_eq!(epochs, 3, "the retraining ended before its third epoch");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(read(dir.join("run/params.safetensors")) == params);
    assert!(
        read(dir.join("run/metrics.jsonl")) == metrics,
        "the killed retraining replaced the finished run's metrics.jsonl"
    );
    attrib(dir, &["evaluate", "--run", "run"]).ok();
    // The next retraining finishes and swaps in the same metrics.
    attrib(
        dir,
        &["--quiet", "train", "--config", "long.toml", "--out", "run"],
    )
    .ok();
    assert!(read(dir.join("run/metrics.jsonl")) == metrics);
    assert!(!dir.join("run/metrics.partial.jsonl").exists());
});

// See: issue 13, item 3.
cli_test!(stale_temporaries_are_swept_by_the_next_command, |dir| {
    let run = trained(dir);
    std::fs::create_dir_all(dir.join("run/scores")).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = [
        dir.join(format!("run/.params.safetensors.{dead}.tmp")),
        dir.join(format!("run/scores/.tracin.npy.{dead}.tmp")),
    ];
    // A live writer (this test process) may be writing into the run: its file stays.
    let live = dir.join(format!("run/.metrics.jsonl.{}.tmp", std::process::id()));
    for f in stale.iter().chain([&live]) {
        std::fs::write(f, b"half a file").unwrap();
    }
    attrib(dir, &["evaluate", "--run", run]).ok();
    for f in &stale {
        assert!(!f.exists(), "{} was not swept", f.display());
    }
    assert!(live.exists());
});

// See: issue 13, item 7.
cli_test!(
    loo_newton_refuses_an_ill_posed_optimum_and_the_example_is_well_posed,
    |dir| {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/breast_cancer_logistic.toml"
        );
        let shipped = std::fs::read_to_string(example).unwrap();
        assert_contains!(shipped, "weight_decay = 1e-2");
        write(dir, "bc.toml", &shipped);
        write(
            dir,
            "flat.toml",
            &shipped.replace("weight_decay = 1e-2", "weight_decay = 0.0"),
        );
        for (cfg, out) in [("bc.toml", "bc"), ("flat.toml", "flat")] {
            attrib(dir, &["--quiet", "train", "--config", cfg, "--out", out]).ok();
        }
        let loo = |run: &str| {
            attrib(
                dir,
                &[
                    "--quiet",
                    "attribute",
                    "--run",
                    run,
                    "--method",
                    "loo-newton",
                    "--targets",
                    "0..3",
                ],
            )
        };
        let e = loo("flat").fails(1);
        assert_contains!(e.stderr, "ill-posed", "optim.weight_decay");
        loo("bc").ok();
        let bytes = read(dir.join("bc/scores/loo-newton@0-3.npy"));
        let start = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let vals: Vec<f32> = bytes[start..]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(vals.len(), 3 * 456);
        // Bounded scores, not the 1e6 of a run to infinity, and not mostly zeros.
        assert!(
            vals.iter().all(|v| v.is_finite() && v.abs() < 10.0),
            "{:?}",
            &vals[..8]
        );
        assert!(vals.iter().filter(|v| **v == 0.0).count() < 10);
    }
);

// See: issue 13, item 9.
cli_test!(magic_blocks_are_kept_per_replay_strategy, |dir| {
    let run = trained(dir);
    let magic = |replay: &str, name: &str| {
        attrib(
            dir,
            &[
                "--quiet",
                "attribute",
                "--run",
                run,
                "--method",
                "magic",
                "--targets",
                "0..2",
                "--option",
                &format!("replay={replay}"),
                "--name",
                name,
            ],
        )
        .ok();
    };
    magic("tree", "t");
    magic("store", "s");
    let blocks = std::fs::read_dir(dir.join("run/store/magic-block"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "f64"))
        .count();
    assert_eq!(
        blocks, 2,
        "replay=store reused the blocks that replay=tree computed"
    );
    // Both strategies give the same bits (so either cache is right; the sidecar is now true).
    let body = |n: &str| read(dir.join(format!("run/scores/{n}.npy")));
    assert!(body("t") == body("s"));
    let meta = String::from_utf8(read(dir.join("run/scores/s.json"))).unwrap();
    assert_contains!(meta, "\"replay\": \"store\"");
});

// See: issue 13, item 10. Each of these aborted (allocation failure or the OOM killer).
cli_test!(
    work_too_large_for_memory_is_refused_with_the_figure_and_the_knob,
    |dir| {
        let huge = WIDE.replace("hidden = [256]", "hidden = [1000000, 1000000]");
        write(dir, "huge.toml", &huge);
        let e = attrib(dir, &["train", "--config", "huge.toml", "--out", "h"]).fails(1);
        assert_contains!(
            e.stderr,
            "model",
            "needs at least",
            "TB",
            "make the model smaller"
        );
        assert!(!dir.join("h/params.safetensors").exists());
        write(
            dir,
            "long.toml",
            &LOGISTIC.replace("epochs = 2", "epochs = 1000000000000"),
        );
        let e = attrib(dir, &["train", "--config", "long.toml", "--out", "l"]).fails(1);
        assert_contains!(
            e.stderr,
            "train.epochs",
            "needs at least",
            "lower train.epochs"
        );

        let run = trained(dir);
        let e = attrib(
            dir,
            &[
                "attribute",
                "--run",
                run,
                "--method",
                "trak",
                "--targets",
                "0..2",
                "--option",
                "k=1000000000",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "k = 1000000000", "needs at least", "--option k=");
        // A chunked pass (TracIn's dual forward pass over chunks of training examples) that
        // would not fit: refused before it allocates, with a chunk that fits.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_attrib"))
            .args([
                "attribute",
                "--run",
                run,
                "--method",
                "tracin",
                "--targets",
                "0..2",
                "--option",
                "chunk=512",
            ])
            .env("ATTRIB_MEMORY_LIMIT", "20K")
            .current_dir(dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_contains!(
            stderr,
            "dual forward pass with 2 directions over",
            "ATTRIB_MEMORY_LIMIT",
            "--option chunk="
        );
        let e = attrib(
            dir,
            &["groundtruth", "--run", run, "--subsets", "1000000000000"],
        )
        .fails(1);
        assert_contains!(e.stderr, "subsets", "needs at least", "fewer subsets");
        // A budget set by the user is honoured.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_attrib"))
            .args(["train", "--config", "bc.toml", "--out", "tiny"])
            .env("ATTRIB_MEMORY_LIMIT", "100")
            .current_dir(dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_contains!(
            String::from_utf8_lossy(&out.stderr),
            "ATTRIB_MEMORY_LIMIT",
            "100 B"
        );
    }
);

// See: issue 13, item 21: the README's "demo's recipe" block is the demo's config.
cli_test!(the_readmes_demo_recipe_is_the_demos_config, |dir| {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let after = &readme[readme
        .find("The demo's recipe")
        .expect("the README shows the demo's recipe")..];
    let start = after.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &after[start..start + after[start..].find("```").unwrap()];
    let parse = |text: &str| nn::RunConfig::from_toml_str(text, &dir.join("x.toml")).unwrap();
    let example = std::fs::read_to_string(format!("{root}/examples/digits_mlp.toml")).unwrap();
    assert_eq!(parse(block), parse(&example), "README block:\n{block}");
    let examples = std::fs::read_dir(format!("{root}/examples"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_contains!(
        readme,
        &format!(
            "`examples/` holds {} configs",
            [
                "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"
            ][examples]
        )
    );
});
