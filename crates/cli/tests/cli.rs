//! Integration tests of the `attrib` binary: one test binary of themed modules; every test runs
//! in its own temporary directory (the `cli_test!` macro), which is also the working directory of
//! the commands it runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Defines a test that gets a fresh temporary directory as `$dir`.
macro_rules! cli_test {
    ($name:ident, |$dir:ident| $body:block) => {
        #[test]
        fn $name() {
            let tmp = tempfile::tempdir().unwrap();
            let $dir: &std::path::Path = tmp.path();
            $body
        }
    };
}

/// Asserts that `haystack` contains every needle, printing the haystack when it does not.
macro_rules! assert_contains {
    ($haystack:expr, $($needle:expr),+ $(,)?) => {{
        let h: &str = &$haystack;
        $(assert!(h.contains($needle), "expected {:?} in:\n{}", $needle, h);)+
    }};
}

mod util {
    use super::*;

    /// The outcome of one command.
    pub struct Out {
        pub code: i32,
        pub stdout: String,
        pub stderr: String,
    }

    impl Out {
        /// Panics with both streams unless the command succeeded.
        pub fn ok(self) -> Out {
            assert_eq!(
                self.code, 0,
                "command failed\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            );
            self
        }

        /// Panics unless the command failed with `code`.
        pub fn fails(self, code: i32) -> Out {
            assert_eq!(
                self.code, code,
                "expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            );
            self
        }

        /// Every stdout line parsed as JSON.
        pub fn json_lines(&self) -> Vec<serde_json::Value> {
            self.stdout
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect()
        }
    }

    /// Runs `attrib args...` with `dir` as the working directory.
    pub fn attrib(dir: &Path, args: &[&str]) -> Out {
        let o = Command::new(env!("CARGO_BIN_EXE_attrib"))
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Writes a file into `dir`.
    pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Breast cancer, logistic regression, 2 epochs: trains in a blink.
    pub const LOGISTIC: &str = r#"
[data]
source = "breast_cancer"
[model]
kind = "logistic"
[optim]
kind = "sgd"
lr = 0.1
momentum = 0.9
[train]
epochs = 2
batch_size = 64
"#;

    /// Digits MLP with large batches, so that matrix products run on several threads.
    pub const WIDE: &str = r#"
[data]
source = "digits"
[model]
kind = "mlp"
hidden = [256]
[optim]
kind = "sgd"
lr = 0.05
momentum = 0.9
[train]
epochs = 2
batch_size = 512
"#;

    pub fn read(p: impl AsRef<Path>) -> Vec<u8> {
        std::fs::read(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
    }
}

#[path = "cli/faults.rs"]
mod faults;

#[path = "cli/tokens.rs"]
mod tokens;

mod train {
    use super::util::*;

    cli_test!(writes_the_run_directory, |dir| {
        write(dir, "bc.toml", LOGISTIC);
        let out = attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        assert_contains!(
            out.stdout,
            "test accuracy",
            "run: config.toml, metrics.jsonl, params.safetensors"
        );
        for f in ["config.toml", "metrics.jsonl", "params.safetensors"] {
            assert!(dir.join("run").join(f).is_file(), "{f} missing");
        }
        assert!(!dir.join("run/trajectory").exists());
        // 456 training examples in batches of 64: 8 steps an epoch.
        let metrics = String::from_utf8(read(dir.join("run/metrics.jsonl"))).unwrap();
        let lines: Vec<serde_json::Value> = metrics
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let steps: Vec<_> = lines.iter().filter(|v| v["type"] == "step").collect();
        let epochs: Vec<_> = lines.iter().filter(|v| v["type"] == "epoch").collect();
        assert_eq!((steps.len(), epochs.len()), (16, 2));
        for (i, s) in steps.iter().enumerate() {
            assert_eq!(s["step"], i);
            assert!(s["loss"].as_f64().unwrap().is_finite() && s["lr"].as_f64().unwrap() > 0.0);
        }
        let last = epochs[1];
        assert_eq!(
            (last["epoch"].as_u64(), last["step"].as_u64()),
            (Some(1), Some(16))
        );
        assert!(last["test"]["accuracy"].as_f64().unwrap() > 0.9, "{last}");
        assert!(last["train"]["loss"].as_f64().is_some());
        let meta = nn::io::read_metadata(&dir.join("run/params.safetensors")).unwrap();
        assert_eq!(meta["precision"], "f32");
        assert_eq!(meta["steps"], "16");
        assert_eq!(meta["seed"], "0");
        assert_eq!(meta["attrib_version"], env!("CARGO_PKG_VERSION"));
    });

    cli_test!(json_output_is_one_object_per_line, |dir| {
        write(dir, "bc.toml", LOGISTIC);
        let out = attrib(
            dir,
            &["--json", "train", "--config", "bc.toml", "--out", "run"],
        )
        .ok();
        let lines = out.json_lines();
        let types: Vec<&str> = lines.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(types.first(), Some(&"start"));
        assert_eq!(types.last(), Some(&"summary"));
        assert_eq!(types.iter().filter(|t| **t == "step").count(), 16);
        assert_eq!(types.iter().filter(|t| **t == "epoch").count(), 2);
        assert_eq!(lines[0]["parameters"], 31);
        assert_eq!(
            lines[0]["train_examples"].as_u64().unwrap()
                + lines[0]["test_examples"].as_u64().unwrap(),
            569
        );
        let summary = lines.last().unwrap();
        assert!(summary["test"]["accuracy"].as_f64().unwrap() > 0.9);
        assert_eq!(summary["examples"], 2 * 456);
    });

    cli_test!(checkpoints_hold_params_and_optimizer_buffers, |dir| {
        write(
            dir,
            "bc.toml",
            &LOGISTIC.replace("batch_size = 64", "batch_size = 64\ncheckpoint_every = 5"),
        );
        attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        let mut names: Vec<String> = std::fs::read_dir(dir.join("run/trajectory"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let expected: Vec<String> = [0, 5, 10, 15, 16]
            .iter()
            .map(|s| format!("step_{s:08}.safetensors"))
            .collect();
        assert_eq!(names, expected);
        let bytes = read(dir.join("run/trajectory/step_00000016.safetensors"));
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = st.names();
        tensors.sort();
        assert_eq!(tensors, ["linear.bias", "linear.weight", "opt.0"]);
        assert_eq!(st.tensor("opt.0").unwrap().shape(), &[31]);
        // The last checkpoint holds the final parameters.
        let final_bytes = read(dir.join("run/params.safetensors"));
        let fin = safetensors::SafeTensors::deserialize(&final_bytes).unwrap();
        assert_eq!(
            st.tensor("linear.weight").unwrap().data(),
            fin.tensor("linear.weight").unwrap().data()
        );
    });

    cli_test!(init_from_is_relative_to_the_config, |dir| {
        std::fs::create_dir(dir.join("cfg")).unwrap();
        write(&dir.join("cfg"), "a.toml", LOGISTIC);
        attrib(dir, &["train", "--config", "cfg/a.toml", "--out", "cfg/a"]).ok();
        let b = LOGISTIC.replace(
            "batch_size = 64",
            "batch_size = 64\ninit_from = \"a/params.safetensors\"",
        );
        write(&dir.join("cfg"), "b.toml", &b);
        attrib(dir, &["train", "--config", "cfg/b.toml", "--out", "b"]).ok();
        let resolved = String::from_utf8(read(dir.join("b/config.toml"))).unwrap();
        assert_contains!(resolved, "init_from", "params.safetensors");
        // The stored config is usable from anywhere: its paths are absolute.
        attrib(dir, &["evaluate", "--run", "b"]).ok();
        let e = attrib(
            dir,
            &[
                "train",
                "--config",
                "cfg/b.toml",
                "--out",
                "c",
                "--threads",
                "1",
            ],
        )
        .ok();
        assert_contains!(e.stdout, "test accuracy");
    });
}

mod evaluate {
    use super::util::*;

    cli_test!(prints_loss_and_accuracy, |dir| {
        write(dir, "bc.toml", LOGISTIC);
        attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        let out = attrib(dir, &["evaluate", "--run", "run"]).ok();
        assert_contains!(
            out.stdout,
            "split     test",
            "examples  113",
            "loss",
            "accuracy"
        );
        let out = attrib(
            dir,
            &["--json", "evaluate", "--run", "run", "--split", "train"],
        )
        .ok();
        let lines = out.json_lines();
        assert_eq!(lines.len(), 1);
        let v = &lines[0];
        assert_eq!(
            (
                v["type"].as_str(),
                v["split"].as_str(),
                v["examples"].as_u64()
            ),
            (Some("evaluation"), Some("train"), Some(456))
        );
        assert!(v["accuracy"].as_f64().unwrap() > 0.9 && v["loss"].as_f64().unwrap() > 0.0);
    });

    // An epoch's training figures are running means over its batches (taken before each update):
    // with a learning rate too small to move the parameters, they are the figures of `evaluate`
    // on the whole training split, so the running sums miss and repeat no example.
    cli_test!(
        running_train_figures_are_the_split_s_with_frozen_parameters,
        |dir| {
            write(dir, "bc.toml", &LOGISTIC.replace("lr = 0.1", "lr = 1e-30"));
            let train = attrib(
                dir,
                &["--json", "train", "--config", "bc.toml", "--out", "run"],
            )
            .ok();
            let epoch = train
                .json_lines()
                .into_iter()
                .rfind(|v| v["type"] == "epoch")
                .unwrap();
            let eval = attrib(
                dir,
                &["--json", "evaluate", "--run", "run", "--split", "train"],
            )
            .ok()
            .json_lines()
            .pop()
            .unwrap();
            let running = &epoch["train"];
            assert_eq!(running["examples"], eval["examples"]);
            assert_eq!(running["accuracy"], eval["accuracy"]);
            let (a, b) = (
                running["loss"].as_f64().unwrap(),
                eval["loss"].as_f64().unwrap(),
            );
            assert!((a - b).abs() <= 1e-6 * b, "running {a} vs evaluated {b}");
        }
    );

    // A loss that rises without overflowing is a warning naming both losses and the fix; a
    // learning rate that trains normally gives none.
    cli_test!(a_rising_training_loss_is_called_diverged, |dir| {
        let wild = LOGISTIC
            .replace("lr = 0.1", "lr = 1000.0")
            .replace("momentum = 0.9", "momentum = 0.99");
        write(dir, "wild.toml", &wild);
        let out = attrib(dir, &["train", "--config", "wild.toml", "--out", "wild"]).ok();
        assert_contains!(
            out.stderr,
            "training diverged",
            "on the first batch",
            "over the last epoch's batches",
            "optim.lr (now 1000)"
        );
        write(dir, "bc.toml", LOGISTIC);
        let out = attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        assert!(!out.stderr.contains("diverged"), "{}", out.stderr);
    });

    cli_test!(agrees_with_the_last_epoch_of_training, |dir| {
        write(dir, "bc.toml", LOGISTIC);
        let train = attrib(
            dir,
            &["--json", "train", "--config", "bc.toml", "--out", "run"],
        )
        .ok();
        let summary = train.json_lines().pop().unwrap();
        let eval = attrib(dir, &["--json", "evaluate", "--run", "run"])
            .ok()
            .json_lines()
            .pop()
            .unwrap();
        assert_eq!(summary["test"]["loss"], eval["loss"]);
        assert_eq!(summary["test"]["accuracy"], eval["accuracy"]);
    });

    cli_test!(evaluates_a_validation_split_held_out_of_training, |dir| {
        write(
            dir,
            "bc.toml",
            &LOGISTIC.replace(
                "source = \"breast_cancer\"",
                "source = \"breast_cancer\"\nval_fraction = 0.1",
            ),
        );
        attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        let count = |split: &str| {
            let out = attrib(
                dir,
                &["--json", "evaluate", "--run", "run", "--split", split],
            )
            .ok();
            out.json_lines()[0]["examples"].as_u64().unwrap()
        };
        let (train, val, test) = (count("train"), count("val"), count("test"));
        // 569 examples: the test split is unchanged (113), the other 456 lose about 10% to val.
        assert_eq!((test, train + val), (113, 456));
        assert!((44..=48).contains(&val), "{val}");
        let config = String::from_utf8(read(dir.join("run/config.toml"))).unwrap();
        assert_contains!(config, "val_fraction = 0.1");
        // A run without a validation split says how to get one.
        write(dir, "plain.toml", LOGISTIC);
        attrib(dir, &["train", "--config", "plain.toml", "--out", "plain"]).ok();
        let plain = String::from_utf8(read(dir.join("plain/config.toml"))).unwrap();
        assert!(!plain.contains("val_fraction"), "{plain}");
        let out = attrib(dir, &["evaluate", "--run", "plain", "--split", "val"]).fails(1);
        assert_contains!(out.stderr, "val split is empty", "data.val_fraction");
    });

    cli_test!(refuses_a_folder_that_is_not_a_run, |dir| {
        let out = attrib(dir, &["evaluate", "--run", "."]).fails(1);
        assert_contains!(out.stderr, ". is not a run directory (no config.toml); create one with `attrib train --config FILE --out .`");
    });

    cli_test!(explains_an_unfinished_run, |dir| {
        write(dir, "bc.toml", LOGISTIC);
        attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        std::fs::remove_file(dir.join("run/params.safetensors")).unwrap();
        let out = attrib(dir, &["evaluate", "--run", "run"]).fails(1);
        assert_contains!(out.stderr, "no params.safetensors", "attrib train --config");
    });
}

mod determinism {
    use super::util::*;

    cli_test!(same_config_same_dir_gives_identical_bytes, |dir| {
        write(dir, "bc.toml", LOGISTIC);
        attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        let (params, metrics) = (
            read(dir.join("run/params.safetensors")),
            read(dir.join("run/metrics.jsonl")),
        );
        attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
        assert!(
            params == read(dir.join("run/params.safetensors")),
            "params.safetensors differs between reruns"
        );
        assert!(
            metrics == read(dir.join("run/metrics.jsonl")),
            "metrics.jsonl differs between reruns"
        );
    });

    cli_test!(thread_count_does_not_change_params, |dir| {
        write(dir, "wide.toml", WIDE);
        attrib(
            dir,
            &[
                "--threads",
                "1",
                "train",
                "--config",
                "wide.toml",
                "--out",
                "t1",
            ],
        )
        .ok();
        attrib(
            dir,
            &[
                "--threads",
                "2",
                "train",
                "--config",
                "wide.toml",
                "--out",
                "t2",
            ],
        )
        .ok();
        assert!(read(dir.join("t1/params.safetensors")) == read(dir.join("t2/params.safetensors")));
        assert!(read(dir.join("t1/metrics.jsonl")) == read(dir.join("t2/metrics.jsonl")));
    });

    cli_test!(different_config_needs_force, |dir| {
        write(dir, "a.toml", LOGISTIC);
        write(dir, "b.toml", &LOGISTIC.replace("lr = 0.1", "lr = 0.05"));
        attrib(dir, &["train", "--config", "a.toml", "--out", "run"]).ok();
        let before = read(dir.join("run/params.safetensors"));
        let out = attrib(dir, &["train", "--config", "b.toml", "--out", "run"]).fails(1);
        assert_contains!(
            out.stderr,
            "different configuration",
            "- optim.lr = 0.1",
            "+ optim.lr = 0.05",
            "--force"
        );
        assert!(
            before == read(dir.join("run/params.safetensors")),
            "a refused run must not touch the folder"
        );
        attrib(
            dir,
            &["train", "--config", "b.toml", "--out", "run", "--force"],
        )
        .ok();
        assert_contains!(
            String::from_utf8(read(dir.join("run/config.toml"))).unwrap(),
            "lr = 0.05"
        );
        assert!(before != read(dir.join("run/params.safetensors")));
    });
}

mod errors {
    use super::util::*;

    cli_test!(unknown_field_names_file_and_field, |dir| {
        write(dir, "typo.toml", &LOGISTIC.replace("momentum", "momentun"));
        let out = attrib(dir, &["train", "--config", "typo.toml", "--out", "run"]);
        assert_ne!(out.code, 0);
        assert_contains!(out.stderr, "typo.toml", "momentun");
        assert!(
            !dir.join("run").exists(),
            "nothing is written for a bad config"
        );
    });

    cli_test!(missing_config_names_the_file, |dir| {
        let out = attrib(dir, &["train", "--config", "nowhere.toml", "--out", "run"]).fails(1);
        assert_contains!(out.stderr, "nowhere.toml", "does not exist");
    });

    cli_test!(divergence_names_the_step, |dir| {
        let cfg = "[data]\nsource = \"digits\"\n[model]\nkind = \"mlp\"\nhidden = [64]\n[optim]\nkind = \"sgd\"\nlr = 1e6\n[train]\nepochs = 1\n";
        write(dir, "hot.toml", cfg);
        let out = attrib(dir, &["train", "--config", "hot.toml", "--out", "run"]).fails(1);
        assert_contains!(out.stderr, "diverged", "step ", "optim.lr");
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(!dir.join("run/params.safetensors").exists());
    });

    cli_test!(ragged_csv_row_names_file_and_line, |dir| {
        write(
            dir,
            "data.csv",
            "x1,x2,label\n0.5,1.0,0\n0.25,1\n1.5,2.0,1\n",
        );
        let cfg = "[data]\nsource = \"csv\"\npath = \"data.csv\"\nlabel_column = \"label\"\n[model]\nkind = \"logistic\"\n[optim]\nkind = \"sgd\"\nlr = 0.1\n";
        write(dir, "csv.toml", cfg);
        let out = attrib(dir, &["train", "--config", "csv.toml", "--out", "run"]).fails(1);
        assert_contains!(out.stderr, "data.csv", "line 3");
    });

    cli_test!(csv_label_outside_num_classes_is_explained, |dir| {
        let mut rows = String::from("x1,x2,label\n");
        for i in 0..20 {
            rows.push_str(&format!(
                "{}.0,{}.5,{}\n",
                i,
                i % 3,
                if i == 7 { 5 } else { i % 2 }
            ));
        }
        write(dir, "data.csv", &rows);
        let cfg = "[data]\nsource = \"csv\"\npath = \"data.csv\"\nlabel_column = \"label\"\nnum_classes = 2\n[model]\nkind = \"logistic\"\n[optim]\nkind = \"sgd\"\nlr = 0.1\n";
        write(dir, "csv.toml", cfg);
        let out = attrib(dir, &["train", "--config", "csv.toml", "--out", "run"]).fails(1);
        assert_contains!(out.stderr, "data.csv", "line 9", "class 5", "num_classes");
    });

    cli_test!(zero_threads_is_a_usage_error, |dir| {
        let out = attrib(dir, &["--threads", "0", "demo"]).fails(2);
        assert_contains!(out.stderr, "--threads", "at least 1");
    });

    cli_test!(unknown_command_and_flag_are_usage_errors, |dir| {
        let out = attrib(dir, &["fly"]).fails(2);
        assert_contains!(out.stderr, "unrecognized subcommand 'fly'");
        let out = attrib(dir, &["evaluate", "--run", "r", "--fast"]).fails(2);
        assert_contains!(out.stderr, "unexpected argument '--fast'");
        attrib(dir, &["--help"]).ok();
        attrib(dir, &["--version"]).ok();
    });

    cli_test!(json_errors_are_events_too, |dir| {
        let out = attrib(dir, &["--json", "evaluate", "--run", "nothing"]).fails(1);
        let lines = out.json_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["type"], "error");
        assert_contains!(lines[0]["message"].as_str().unwrap(), "not a run directory");
        assert_contains!(out.stderr, "error: nothing is not a run directory");
    });

    cli_test!(model_that_does_not_fit_the_data_is_explained, |dir| {
        let cfg = LOGISTIC.replace("kind = \"logistic\"", "kind = \"cnn\"\nchannels = [4]");
        write(dir, "cnn.toml", &cfg);
        let out = attrib(dir, &["train", "--config", "cnn.toml", "--out", "run"]).fails(1);
        assert_contains!(out.stderr, "example_shape");
    });
}

mod demo {
    use super::util::*;

    // The one demo run of the suite (a few seconds in release).
    cli_test!(demo_trains_and_explains, |dir| {
        let out = attrib(dir, &["demo", "--out", "demo"]).ok();
        let first = out.stdout.lines().next().unwrap();
        assert!(
            first.starts_with("This should reach about 96% test accuracy"),
            "{first}"
        );
        assert_contains!(
            out.stdout,
            "26,122 parameters",
            "epoch 20/20",
            "files    demo",
            "reached"
        );
        let acc = nn::io::read_metadata(&dir.join("demo/params.safetensors")).unwrap();
        assert_eq!(acc["steps"], "460");
        let eval = attrib(dir, &["--json", "evaluate", "--run", "demo"])
            .ok()
            .json_lines()
            .pop()
            .unwrap();
        assert!(eval["accuracy"].as_f64().unwrap() > 0.95, "{eval}");
        // The demo ends with the report: 2 methods x 6 targets, each gallery the target and its
        // 8 proponents and 8 opponents.
        assert_contains!(out.stdout, "report   demo/report/index.html");
        let html = dir.join("demo/report/index.html");
        let text = String::from_utf8(read(&html)).unwrap();
        assert_eq!(text.matches("class=\"gallery target-gallery\"").count(), 12);
        assert_eq!(text.matches("<img ").count(), 12 * 17);
        // The training curves include the logged batch-gradient norms.
        assert_contains!(text, "Training loss", "Batch gradient norm (median ");
        super::browser::check_report(&html, 12, 12 * 17);
    });
}

/// The demo's report in a real browser (headless Chromium): it must render offline, with every
/// picture decoded and a page that is not blank.
mod browser {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Chromium's names on Debian and elsewhere.
    const BROWSERS: [&str; 4] = [
        "chromium",
        "chromium-headless-shell",
        "chromium-browser",
        "google-chrome",
    ];

    fn find_browser() -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        BROWSERS.iter().find_map(|b| {
            std::env::split_paths(&path)
                .map(|d| d.join(b))
                .find(|p| p.is_file())
        })
    }

    fn headless(browser: &Path, profile: &Path) -> Command {
        let mut c = Command::new(browser);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
        c
    }

    /// Decodes a PNG, returning its RGBA-or-grey bytes and channel count.
    fn decode_png(bytes: &[u8]) -> (Vec<u8>, usize, u32, u32) {
        let mut r = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("a PNG header");
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).expect("PNG data");
        buf.truncate(info.buffer_size());
        (buf, info.color_type.samples(), info.width, info.height)
    }

    /// Renders `html` headless and checks galleries, images and the screenshot. Without a
    /// browser, says so on the test's real stderr (visible in the normal `cargo test` output).
    pub fn check_report(html: &Path, galleries: usize, images: usize) {
        let Some(browser) = find_browser() else {
            // CI installs Chromium and sets this: there, a missing browser is a failure.
            assert!(
                std::env::var_os("ATTRIB_REQUIRE_BROWSER").is_none(),
                "ATTRIB_REQUIRE_BROWSER is set but no Chromium is on PATH ({BROWSERS:?})"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED browser check of the demo report: no Chromium on PATH (install the \
                 Debian package `chromium`; .ci/run does)"
            );
            return;
        };
        let profile = tempfile::tempdir().unwrap();
        let url = format!("file://{}", html.canonicalize().unwrap().display());
        let dom = headless(&browser, profile.path())
            .arg("--dump-dom")
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            dom.status.success(),
            "{}",
            String::from_utf8_lossy(&dom.stderr)
        );
        let dom = String::from_utf8(dom.stdout).unwrap();
        assert_eq!(
            dom.matches("class=\"gallery target-gallery\"").count(),
            galleries
        );
        assert_eq!(dom.matches("<img ").count(), images);
        assert!(
            !dom.contains("http://") && !dom.contains("https://"),
            "the report must not reference the network"
        );
        // The page's script counts what the browser decoded.
        let decoded = format!("data-images-decoded=\"{images}/{images}\"");
        assert!(dom.contains(&decoded), "expected {decoded} on <body>");
        // And every data URI is a PNG that decodes here too.
        for uri in dom.split("src=\"data:image/png;base64,").skip(1) {
            use base64::Engine;
            let b64 = &uri[..uri.find('"').unwrap()];
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let (_, _, w, h) = decode_png(&bytes);
            assert!(w >= 4 && h >= 4);
        }
        let shot = profile.path().join("report.png");
        let out = headless(&browser, profile.path())
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1280,1600")
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (pixels, channels, w, h) = decode_png(&std::fs::read(&shot).unwrap());
        assert_eq!((w, h), (1280, 1600));
        // Not blank: a real share of the pixels differs from the page's background.
        let bg = &pixels[..channels.min(3)];
        let differing = pixels
            .chunks(channels)
            .filter(|p| p[..channels.min(3)] != *bg)
            .count();
        let share = differing as f64 / (w * h) as f64;
        assert!(
            share > 0.02,
            "screenshot is nearly blank ({:.2}% of pixels drawn)",
            100.0 * share
        );
        if let Some(keep) = std::env::var_os("ATTRIB_KEEP_SCREENSHOT") {
            std::fs::copy(&shot, keep).unwrap();
        }
    }
}

mod bench {
    use super::util::*;

    cli_test!(quick_bench_reports_gflops, |dir| {
        let out = attrib(
            dir,
            &["--json", "--threads", "2", "bench", "train", "--quick"],
        )
        .ok();
        let lines = out.json_lines();
        let gemm: Vec<_> = lines.iter().filter(|v| v["type"] == "gemm").collect();
        let train: Vec<_> = lines
            .iter()
            .filter(|v| v["type"] == "bench_train")
            .collect();
        // 3 GEMM shapes x 2 thread counts; 6 workloads (digits MLP, two wide MLPs, two CNNs, the
        // GPT) x 2 modes x 2 thread counts.
        assert_eq!((gemm.len(), train.len()), (6, 24));
        for v in gemm.iter().chain(&train) {
            assert!(v["gflops"].as_f64().unwrap() > 0.0, "{v}");
        }
        assert!(train.iter().all(|v| v["ratio"].as_f64().unwrap() > 0.0));
    });
}

/// Every config in examples/ parses and says on its first line what it should reach.
#[test]
fn examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "examples/ lost configs: {names:?}");
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# This should reach"),
            "{}: the first line must state the expected result",
            path.display()
        );
        nn::RunConfig::from_toml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// `attribute`, `merge`, `groundtruth`, `lds` (issue 3): the whole measuring loop on a tiny run.
mod attribution {
    use super::util::*;

    /// Trains the logistic config into `dir/run` in f64 (so closed forms apply exactly).
    fn trained(dir: &std::path::Path, name: &str) -> String {
        let cfg = LOGISTIC.replace("[train]", "[train]\nprecision = \"f64\"");
        write(dir, &format!("{name}.toml"), &cfg);
        attrib(
            dir,
            &[
                "--quiet",
                "train",
                "--config",
                &format!("{name}.toml"),
                "--out",
                name,
            ],
        )
        .ok();
        name.to_string()
    }

    cli_test!(attribute_groundtruth_and_lds_measure_a_method, |dir| {
        let run = trained(dir, "run");
        // MAGIC differentiates this exact (16-step) training run, so it must predict its retraining.
        let out = attrib(
            dir,
            &[
                "attribute",
                "--run",
                &run,
                "--method",
                "magic",
                "--targets",
                "0..6",
            ],
        )
        .ok();
        assert_contains!(out.stdout, "magic", "run/scores/magic@0-6.npy");
        assert!(dir.join("run/scores/magic@0-6.json").exists());
        attrib(
            dir,
            &[
                "--quiet",
                "groundtruth",
                "--run",
                &run,
                "--drop",
                "0.05",
                "--subsets",
                "12",
            ],
        )
        .ok();
        let lds = attrib(
            dir,
            &[
                "--json",
                "lds",
                "--run",
                &run,
                "--scores",
                "run/scores/magic@0-6.npy",
                "--drop",
                "0.05",
                "--subsets",
                "12",
            ],
        )
        .ok();
        let rows: Vec<_> = lds
            .json_lines()
            .into_iter()
            .filter(|v| v["type"] == "lds")
            .collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["method"], "magic");
        assert_eq!(rows[0]["targets"], 6);
        assert_eq!(rows[0]["subsets"], 12);
        let l = rows[0]["lds"].as_f64().unwrap();
        assert!(
            l > 0.9,
            "MAGIC on a 16-step logistic regression should predict retraining: LDS {l}"
        );
    });

    cli_test!(ekfac_fits_factors_once_and_reuses_them, |dir| {
        let run = trained(dir, "run");
        let go = |name: &str| {
            attrib(
                dir,
                &[
                    "--quiet",
                    "attribute",
                    "--run",
                    &run,
                    "--method",
                    "ekfac",
                    "--targets",
                    "0..4",
                    "--name",
                    name,
                ],
            )
            .ok();
        };
        go("first");
        // The store's one EK-FAC factor file (its name is the key's fingerprint).
        let store = dir.join("run/store/ekfac-factors");
        let files: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
        assert_eq!(files.len(), 1, "one factor file in {}", store.display());
        let factors = files[0].as_ref().unwrap().path();
        let saved = std::fs::metadata(&factors).unwrap().modified().unwrap();
        go("second");
        assert_eq!(
            std::fs::metadata(&factors).unwrap().modified().unwrap(),
            saved,
            "the factors were refitted instead of reused"
        );
        let a = std::fs::read(dir.join("run/scores/first.npy")).unwrap();
        let b = std::fs::read(dir.join("run/scores/second.npy")).unwrap();
        assert_eq!(a, b, "scores from saved factors differ from the first fit");
    });

    cli_test!(target_ranges_merge_into_the_whole, |dir| {
        let run = trained(dir, "run");
        for r in ["0..3", "3..5"] {
            attrib(
                dir,
                &[
                    "--quiet",
                    "attribute",
                    "--run",
                    &run,
                    "--method",
                    "similarity",
                    "--targets",
                    r,
                ],
            )
            .ok();
        }
        attrib(
            dir,
            &[
                "--quiet",
                "attribute",
                "--run",
                &run,
                "--method",
                "similarity",
                "--targets",
                "0..5",
                "--name",
                "whole",
            ],
        )
        .ok();
        attrib(
            dir,
            &[
                "merge",
                "--out",
                "run/scores/merged.npy",
                "run/scores/similarity@3-5.npy",
                "run/scores/similarity@0-3.npy",
            ],
        )
        .ok();
        let a = std::fs::read(dir.join("run/scores/merged.npy")).unwrap();
        let b = std::fs::read(dir.join("run/scores/whole.npy")).unwrap();
        assert_eq!(a, b, "merged parts differ from one computation");
    });

    cli_test!(unknown_methods_and_options_are_named, |dir| {
        let run = trained(dir, "run");
        let e = attrib(dir, &["attribute", "--run", &run, "--method", "influence"]).fails(1);
        assert_contains!(e.stderr, "unknown method \"influence\"", "if-cg", "magic");
        let e = attrib(
            dir,
            &[
                "attribute",
                "--run",
                &run,
                "--method",
                "if-cg",
                "--option",
                "dampnig=1",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "no option \"dampnig\"", "damping (auto)");
        let e = attrib(
            dir,
            &[
                "attribute",
                "--run",
                &run,
                "--method",
                "if-cg",
                "--targets",
                "0..500",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "outside the test split");
        let e = attrib(dir, &["attribute", "--run", "nowhere", "--method", "if-cg"]).fails(1);
        assert_contains!(e.stderr, "not a run directory", "attrib train");
    });

    cli_test!(scores_of_another_run_or_shape_are_refused, |dir| {
        let run = trained(dir, "run");
        attrib(
            dir,
            &[
                "--quiet",
                "attribute",
                "--run",
                &run,
                "--method",
                "similarity",
                "--targets",
                "0..4",
            ],
        )
        .ok();
        // Another dataset: digits has 1,437 training examples, breast cancer 456.
        write(dir, "other.toml", "[data]\nsource = \"digits\"\n[model]\nkind = \"logistic\"\n[optim]\nkind = \"sgd\"\nlr = 0.1\n[train]\nepochs = 1\n");
        attrib(
            dir,
            &[
                "--quiet",
                "train",
                "--config",
                "other.toml",
                "--out",
                "other",
            ],
        )
        .ok();
        let e = attrib(
            dir,
            &[
                "lds",
                "--run",
                "other",
                "--scores",
                "run/scores/similarity@0-4.npy",
                "--subsets",
                "4",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "another dataset");
        // The same data, retrained differently: another run fingerprint.
        write(
            dir,
            "again.toml",
            &LOGISTIC
                .replace("epochs = 2", "epochs = 3")
                .replace("[train]", "[train]\nprecision = \"f64\""),
        );
        attrib(
            dir,
            &[
                "--quiet",
                "train",
                "--config",
                "again.toml",
                "--out",
                "again",
            ],
        )
        .ok();
        let e = attrib(
            dir,
            &[
                "lds",
                "--run",
                "again",
                "--scores",
                "run/scores/similarity@0-4.npy",
                "--subsets",
                "4",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "computed for run", "attrib attribute");
        // A matrix whose shape disagrees with its sidecar.
        std::fs::copy(
            dir.join("run/scores/similarity@0-4.json"),
            dir.join("run/scores/bad.json"),
        )
        .unwrap();
        let npy = dir.join("run/scores/bad.npy");
        let mut bytes = std::fs::read(dir.join("run/scores/similarity@0-4.npy")).unwrap();
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("run/scores/bad.json")).unwrap(),
        )
        .unwrap();
        let n = meta["n_train"].as_u64().unwrap();
        // Same bytes, header claiming [2, 2n]: the header is ASCII, so swap it in place.
        let (from, to) = (format!("(4, {n}, )"), format!("(2, {}, )", 2 * n));
        let at = bytes
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .expect("npy header");
        bytes.splice(at..at + from.len(), to.bytes());
        // Keep the header length a multiple of 64 by trimming one padding space if it grew.
        if to.len() > from.len() {
            let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
            bytes.remove(nl - 1);
        }
        std::fs::write(&npy, &bytes).unwrap();
        let e = attrib(
            dir,
            &[
                "lds",
                "--run",
                &run,
                "--scores",
                "run/scores/bad.npy",
                "--subsets",
                "4",
            ],
        )
        .fails(1);
        assert_contains!(
            e.stderr,
            "bad.npy",
            &format!("[2, {}]", 2 * n),
            &format!("[4, {n}]")
        );
    });
}

/// `group`, `attribute --groups`, `retrain-score`, `noisy-labels` (issue 6).
mod groups {
    use super::util::*;

    fn trained(dir: &std::path::Path) -> String {
        let cfg = LOGISTIC.replace("[train]", "[train]\nprecision = \"f64\"");
        write(dir, "run.toml", &cfg);
        attrib(
            dir,
            &["--quiet", "train", "--config", "run.toml", "--out", "run"],
        )
        .ok();
        "run".into()
    }

    /// Reads a grouping CSV into its assignment.
    fn assignment(path: &std::path::Path) -> Vec<usize> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    cli_test!(group_scores_are_summed_example_scores_end_to_end, |dir| {
        let run = trained(dir);
        let g = |out: &str| {
            attrib(
                dir,
                &[
                    "--quiet",
                    "group",
                    "--run",
                    &run,
                    "--method",
                    "grad-kmeans",
                    "--groups",
                    "20",
                    "--out",
                    out,
                ],
            )
            .ok()
        };
        g("a.csv");
        g("b.csv");
        // Same seed, same file; a partition of the 456 training examples into 20 groups.
        let a = std::fs::read(dir.join("a.csv")).unwrap();
        assert_eq!(a, std::fs::read(dir.join("b.csv")).unwrap());
        let groups = assignment(&dir.join("a.csv"));
        assert_eq!(groups.len(), 456);
        for k in 0..20 {
            assert!(groups.contains(&k), "group {k} empty");
        }
        assert!(groups.iter().all(|&k| k < 20));
        let attribute = |extra: &[&str]| {
            let mut args = vec![
                "--quiet",
                "attribute",
                "--run",
                &run,
                "--method",
                "if-exact",
                "--targets",
                "0..3",
                "--output",
                "loss",
            ];
            args.extend_from_slice(extra);
            attrib(dir, &args).ok()
        };
        attribute(&[]);
        attribute(&["--groups", "a.csv", "--name", "grouped"]);
        let read = |name: &str| -> (Vec<f32>, serde_json::Value) {
            let bytes = std::fs::read(dir.join(format!("run/scores/{name}.npy"))).unwrap();
            let start = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
            let vals = bytes[start..]
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let meta =
                std::fs::read_to_string(dir.join(format!("run/scores/{name}.json"))).unwrap();
            (vals, serde_json::from_str(&meta).unwrap())
        };
        let (per, _) = read("if-exact@0-3");
        let (grouped, meta) = read("grouped");
        assert_eq!(meta["n_train"], 20);
        assert!(meta["groups"].is_string());
        for t in 0..3 {
            for k in 0..20 {
                let sum: f64 = (0..456)
                    .filter(|&i| groups[i] == k)
                    .map(|i| per[t * 456 + i] as f64)
                    .sum();
                let got = grouped[t * 20 + k] as f64;
                assert!(
                    (got - sum).abs() <= 1e-5 * sum.abs().max(1e-3),
                    "{t} {k}: {got} vs {sum}"
                );
            }
        }
        let out = attrib(
            dir,
            &[
                "--json",
                "retrain-score",
                "--run",
                &run,
                "--scores",
                "run/scores/grouped.npy",
                "--groups",
                "a.csv",
                "--remove",
                "0.1",
            ],
        )
        .ok();
        let lines = out.json_lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0]["removed"].as_u64().unwrap() >= 46);
        // Group scores without their grouping, and with another one, are refused.
        let e = attrib(
            dir,
            &[
                "retrain-score",
                "--run",
                &run,
                "--scores",
                "run/scores/grouped.npy",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "group scores", "--groups");
        attrib(
            dir,
            &[
                "--quiet", "group", "--run", &run, "--method", "random", "--groups", "20", "--out",
                "r.csv",
            ],
        )
        .ok();
        let e = attrib(
            dir,
            &[
                "retrain-score",
                "--run",
                &run,
                "--scores",
                "run/scores/grouped.npy",
                "--groups",
                "r.csv",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "computed for grouping");
    });

    cli_test!(group_lds_and_user_groupings_end_to_end, |dir| {
        let run = trained(dir);
        // A user-given grouping: equal values of a CSV column (7 sources, numbered by appearance).
        let mut csv = String::from("id,source\n");
        for i in 0..456 {
            csv.push_str(&format!("{i},s{}\n", (i * 3) % 7));
        }
        write(dir, "meta.csv", &csv);
        let out = attrib(dir, &["group", "--run", &run, "--csv", "meta.csv:source"]).ok();
        assert_contains!(out.stdout, "column source", "run/groups/csv-source.csv");
        let user = assignment(&dir.join("run/groups/csv-source.csv"));
        let first: Vec<usize> = (0..456).map(|i| (i * 3) % 7).collect();
        for i in 0..456 {
            for j in 0..456 {
                assert_eq!(user[i] == user[j], first[i] == first[j], "{i} {j}");
            }
        }
        attrib(
            dir,
            &[
                "--quiet", "group", "--run", &run, "--method", "random", "--groups", "20", "--out",
                "r.csv",
            ],
        )
        .ok();
        let attribute = |extra: &[&str]| {
            let mut args = vec![
                "--quiet",
                "attribute",
                "--run",
                &run,
                "--method",
                "if-exact",
                "--targets",
                "0..4",
            ];
            args.extend_from_slice(extra);
            attrib(dir, &args).ok()
        };
        attribute(&[]);
        attribute(&["--groups", "r.csv", "--name", "grouped"]);
        let lds_args = |scores: &'static str, groups: &'static str| {
            vec![
                "lds",
                "--run",
                "run",
                "--scores",
                scores,
                "--drop",
                "0.1",
                "--subsets",
                "6",
                "--groups",
                groups,
            ]
        };
        let both = "run/scores/grouped.npy,run/scores/if-exact@0-4.npy";
        let lds = |scores: &'static str, groups: &'static str| {
            let mut args = vec!["--json"];
            args.extend(lds_args(scores, groups));
            let out = attrib(dir, &args).ok();
            out.json_lines()
                .into_iter()
                .filter(|v| v["type"] == "lds")
                .collect::<Vec<_>>()
        };
        let rows = lds(both, "r.csv");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["method"], "if-exact");
        assert_eq!(rows[1]["method"], "if-exact (summed)");
        // Group scores of a linear method are the summed example scores (f32 files): same LDS.
        let (g, s) = (
            rows[0]["lds"].as_f64().unwrap(),
            rows[1]["lds"].as_f64().unwrap(),
        );
        assert!((g - s).abs() < 1e-6 && g.is_finite(), "{g} vs {s}");
        // Per-example scores against the user grouping: a second cache folder, keyed by grouping.
        write(
            dir,
            "u.csv",
            &std::fs::read_to_string(dir.join("run/groups/csv-source.csv")).unwrap(),
        );
        let rows = lds("run/scores/if-exact@0-4.npy", "u.csv");
        assert_eq!(rows.len(), 1);
        assert!(rows[0]["lds"].as_f64().unwrap().is_finite());
        let folders: Vec<String> = std::fs::read_dir(dir.join("run/groundtruth"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.contains("-groups-"))
            .collect();
        assert_eq!(folders.len(), 2, "{folders:?}");

        // Bad input: group scores of another grouping, or without --groups; a bad CSV column.
        let e = attrib(dir, &lds_args(both, "u.csv")).fails(1);
        assert_contains!(e.stderr, "grouped.npy", "computed for grouping");
        let e = attrib(
            dir,
            &[
                "lds",
                "--run",
                &run,
                "--scores",
                "run/scores/grouped.npy",
                "--subsets",
                "6",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "group scores", "--groups");
        let e = attrib(dir, &["group", "--run", &run, "--csv", "meta.csv:vendor"]).fails(1);
        assert_contains!(e.stderr, "no column \"vendor\"", "id, source");
        write(dir, "short.csv", "id,source\n0,a\n1,b\n");
        let e = attrib(dir, &["group", "--run", &run, "--csv", "short.csv:source"]).fails(1);
        assert_contains!(e.stderr, "covers 2 examples", "--csv");
        let e = attrib(dir, &["group", "--run", &run, "--method", "random"]).fails(2);
        assert_contains!(e.stderr, "--groups");
    });

    cli_test!(bad_groupings_are_explained, |dir| {
        let run = trained(dir);
        let e = attrib(
            dir,
            &[
                "group", "--run", &run, "--method", "spectral", "--groups", "3",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "grad-kmeans");
        let e = attrib(
            dir,
            &["group", "--run", &run, "--method", "class", "--groups", "1"],
        )
        .fails(1);
        assert_contains!(e.stderr, "at least 2 groups");
        let e = attrib(
            dir,
            &[
                "group", "--run", &run, "--method", "random", "--groups", "9999",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "1..=456");
        let e = attrib(
            dir,
            &["noisy-labels", "--run", &run, "--grouping", "random"],
        )
        .fails(1);
        assert_contains!(e.stderr, "KIND:K");
        let out = attrib(
            dir,
            &[
                "--json",
                "noisy-labels",
                "--run",
                &run,
                "--grouping",
                "grad-kmeans:46",
                "--inspect",
                "0.2",
            ],
        )
        .ok();
        assert_eq!(out.json_lines().len(), 2);
    });
}

/// `attrib unlearn` and `attrib select` (MATH.md E7): every printed "actual" equals an independent
/// retraining with `attrib train` at the weights the command wrote.
mod act {
    use super::util::*;

    /// Trains the weights file's recipe independently (the config with `train.weights` set) and
    /// returns `attrib evaluate`'s test loss and accuracy lines.
    fn independent(
        dir: &std::path::Path,
        base_config: &str,
        weights: &std::path::Path,
    ) -> (String, String) {
        let cfg = base_config.replace(
            "[train]",
            &format!("[train]\nweights = {:?}", weights.to_str().unwrap()),
        );
        write(dir, "indep.toml", &cfg);
        attrib(
            dir,
            &[
                "train",
                "--config",
                "indep.toml",
                "--out",
                "indep",
                "--force",
            ],
        )
        .ok();
        let out = attrib(dir, &["evaluate", "--run", "indep"]).ok().stdout;
        let get = |key: &str| {
            out.lines()
                .find(|l| l.starts_with(key))
                .unwrap()
                .split_whitespace()
                .last()
                .unwrap()
                .to_string()
        };
        (get("loss"), get("accuracy"))
    }

    cli_test!(
        unlearn_writes_a_model_and_its_actual_is_a_retraining,
        |dir| {
            write(dir, "bc.toml", LOGISTIC);
            attrib(dir, &["train", "--config", "bc.toml", "--out", "run"]).ok();
            let forget: String = (0..30).map(|i| format!("{}\n", 3 * i)).collect();
            write(dir, "forget.csv", &format!("example\n{forget}"));
            let out = attrib(
                dir,
                &[
                    "unlearn",
                    "--run",
                    "run",
                    "--forget",
                    "forget.csv",
                    "--out",
                    "gone",
                    "--verify",
                ],
            )
            .ok()
            .stdout;
            assert_contains!(
                out,
                "unlearned model",
                "no change",
                "gradient ascent",
                "forget r"
            );
            let line = out
                .lines()
                .find(|l| l.starts_with("retrained without the forget set"))
                .unwrap();
            let (loss, acc) = independent(dir, LOGISTIC, &dir.join("gone/weights.csv"));
            assert_contains!(
                line,
                &format!("test loss {loss},"),
                &format!("accuracy {acc}")
            );
            // --json: one unlearn event per prediction and set.
            let json = attrib(
                dir,
                &[
                    "--json",
                    "unlearn",
                    "--run",
                    "run",
                    "--forget",
                    "forget.csv",
                    "--out",
                    "gone",
                    "--verify",
                ],
            )
            .ok();
            let events: Vec<_> = (json.json_lines().into_iter())
                .filter(|v| v["type"] == "unlearn")
                .map(|v| format!("{} {} {}", v["model"], v["set"], v["examples"]))
                .collect();
            assert_eq!(events.len(), 6, "{events:?}");
            assert!(
                events.contains(&"\"jvp\" \"forget\" 30".to_string()),
                "{events:?}"
            );
            // The weights file drops exactly the forget set; the unlearned run is usable as a run.
            let w = String::from_utf8(read(dir.join("gone/weights.csv"))).unwrap();
            let zeros = w.lines().skip(1).filter(|l| *l == "0").count();
            assert_eq!(zeros, 30);
            let e = attrib(dir, &["evaluate", "--run", "gone"]).ok().stdout;
            assert_contains!(e, "examples  113");
            // A forget index outside the training set names the file and the line.
            write(dir, "bad.csv", "1\n99999\n");
            let err = attrib(dir, &["unlearn", "--run", "run", "--forget", "bad.csv"]).fails(1);
            assert_contains!(err.stderr, "bad.csv line 2", "99999");
            // With --groups the forget file lists group ids: forgetting class 1 zeroes exactly
            // the weights of its members.
            attrib(
                dir,
                &[
                    "group", "--run", "run", "--method", "class", "--groups", "2",
                ],
            )
            .ok();
            let groups = String::from_utf8(read(dir.join("run/groups/class-k2.csv"))).unwrap();
            let class1: Vec<usize> = groups
                .lines()
                .skip(1)
                .filter(|l| l.ends_with(",1"))
                .map(|l| l.split(',').next().unwrap().parse().unwrap())
                .collect();
            write(dir, "ids.csv", "group\n1\n");
            let g = "run/groups/class-k2.csv";
            let args = [
                "unlearn", "--run", "run", "--forget", "ids.csv", "--groups", g,
            ];
            let out = attrib(dir, &[&args[..], &["--out", "gone1"]].concat()).ok();
            let said = format!("{}{}", out.stdout, out.stderr);
            assert_contains!(said, &format!("forget   {} of", class1.len()));
            let w = String::from_utf8(read(dir.join("gone1/weights.csv"))).unwrap();
            let zeros: Vec<usize> = (w.lines().skip(1).enumerate())
                .filter(|(_, l)| *l == "0")
                .map(|(i, _)| i)
                .collect();
            assert_eq!(zeros, class1);
            write(dir, "ids.csv", "7\n");
            let err = attrib(dir, &args).fails(1);
            assert_contains!(err.stderr, "group ids", "ids.csv line 1");
        }
    );

    const VAL: &str = r#"
[data]
source = "breast_cancer"
val_fraction = 0.2
[model]
kind = "logistic"
[optim]
kind = "sgd"
lr = 0.1
momentum = 0.9
[train]
epochs = 2
batch_size = 64
"#;

    cli_test!(select_one_shot_and_mgd_rows_are_retrainings, |dir| {
        write(dir, "v.toml", VAL);
        attrib(dir, &["train", "--config", "v.toml", "--out", "run"]).ok();
        // Without validation-loss scores the command says what to compute.
        attrib(
            dir,
            &[
                "attribute",
                "--run",
                "run",
                "--method",
                "magic",
                "--targets",
                "0..5",
            ],
        )
        .ok();
        let e = attrib(
            dir,
            &[
                "select",
                "--run",
                "run",
                "--scores",
                "run/scores/magic@0-5.npy",
            ],
        )
        .fails(1);
        assert_contains!(e.stderr, "--split val --output loss");
        attrib(
            dir,
            &[
                "attribute",
                "--run",
                "run",
                "--method",
                "magic",
                "--split",
                "val",
                "--output",
                "loss",
                "--targets",
                "0..91",
                "--name",
                "mval",
            ],
        )
        .ok();
        let out = attrib(
            dir,
            &[
                "select",
                "--run",
                "run",
                "--scores",
                "run/scores/mval.npy",
                "--keep",
                "0.9",
                "--random",
                "1",
            ],
        )
        .ok()
        .stdout;
        assert_contains!(out, "full data", "drop by mval", "random, seed 0");
        let test_loss = |line: &str| line.split_whitespace().rev().nth(1).unwrap().to_string();
        let row = out.lines().find(|l| l.starts_with("drop by mval")).unwrap();
        let (loss, acc) = independent(dir, VAL, &dir.join("run/selected/oneshot-mval-keep0.9.csv"));
        assert_eq!(
            (
                test_loss(row),
                row.split_whitespace().last().unwrap().to_string()
            ),
            (loss, acc)
        );
        let out = attrib(dir, &["select", "--run", "run", "--steps", "1"])
            .ok()
            .stdout;
        let row = out.lines().find(|l| l.starts_with("MGD step 1")).unwrap();
        let (loss, _) = independent(dir, VAL, &dir.join("run/selected/mgd-c0.5-step1.csv"));
        assert_eq!(test_loss(row), loss);
        // --harmful-only drops every example with a positive mean score: the row's kept count
        // is the weights file's, and the row is a retraining at them.
        let out = attrib(
            dir,
            &[
                "select",
                "--run",
                "run",
                "--scores",
                "run/scores/mval.npy",
                "--harmful-only",
                "--random",
                "0",
            ],
        )
        .ok()
        .stdout;
        let row = out.lines().find(|l| l.starts_with("drop by mval")).unwrap();
        let file = dir.join("run/selected/oneshot-mval-harmful.csv");
        let w = String::from_utf8(read(&file)).unwrap();
        let kept = w.lines().skip(1).filter(|l| *l != "0").count();
        assert_eq!(row.split_whitespace().nth(3).unwrap(), kept.to_string());
        assert_eq!(test_loss(row), independent(dir, VAL, &file).0);
        // The rule itself, from the score file: --harmful-only drops exactly the examples with a
        // positive mean score (unit weights), --keep 0.9 the round(0.1 n) largest.
        let (tau, shape) = data::read_npy_f64(&dir.join("run/scores/mval.npy")).unwrap();
        let (rows, n) = (shape[0], shape[1]);
        let mean: Vec<f64> = (0..n)
            .map(|j| (0..rows).map(|r| tau[r * n + j] / rows as f64).sum())
            .collect();
        let dropped = |file: &str| -> Vec<bool> {
            let w = String::from_utf8(read(dir.join("run/selected").join(file))).unwrap();
            w.lines().skip(1).map(|l| l == "0").collect()
        };
        let harmful: Vec<bool> = mean.iter().map(|&m| m > 0.0).collect();
        let count = harmful.iter().filter(|&&x| x).count();
        assert!(
            count > 0 && count < n,
            "{count} of {n} harmful: a rule test needs both"
        );
        assert_eq!(dropped("oneshot-mval-harmful.csv"), harmful);
        let d = dropped("oneshot-mval-keep0.9.csv");
        assert_eq!(
            d.iter().filter(|&&x| x).count(),
            n - (0.9 * n as f64).round() as usize
        );
        let lowest_dropped = (0..n)
            .filter(|&j| d[j])
            .map(|j| mean[j])
            .fold(f64::MAX, f64::min);
        let highest_kept = (0..n)
            .filter(|&j| !d[j])
            .map(|j| mean[j])
            .fold(f64::MIN, f64::max);
        assert!(
            lowest_dropped >= highest_kept,
            "{lowest_dropped} < {highest_kept}"
        );
    });

    // With data.label_noise the oracle row drops exactly the flipped examples ("flips out"
    // 100%), and it too is an independent retraining.
    cli_test!(select_with_label_noise_adds_the_oracle, |dir| {
        let noisy = VAL.replace(
            "val_fraction = 0.2",
            "val_fraction = 0.2\nlabel_noise = { fraction = 0.2, seed = 1 }",
        );
        write(dir, "n.toml", &noisy);
        attrib(dir, &["train", "--config", "n.toml", "--out", "run"]).ok();
        let out = attrib(dir, &["select", "--run", "run", "--steps", "1"])
            .ok()
            .stdout;
        assert_contains!(out, "flips out");
        let full = out.lines().find(|l| l.starts_with("full data")).unwrap();
        assert_eq!(full.split_whitespace().nth(3).unwrap(), "0.0%");
        let row = out.lines().find(|l| l.starts_with("oracle")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[6], "100.0%", "{row}");
        let file = dir.join("run/selected/oracle.csv");
        let w = String::from_utf8(read(&file)).unwrap();
        let zeros = w.lines().skip(1).filter(|l| *l == "0").count();
        assert_eq!(cells[5], (w.lines().count() - 1 - zeros).to_string());
        let test_loss = cells[cells.len() - 2].to_string();
        assert_eq!(test_loss, independent(dir, &noisy, &file).0);
        // --json: one selection event per row, with the same figures.
        let out = attrib(dir, &["--json", "select", "--run", "run", "--steps", "1"]).ok();
        let rows: Vec<_> = (out.json_lines().into_iter())
            .filter(|v| v["type"] == "selection")
            .collect();
        let names: Vec<&str> = rows
            .iter()
            .map(|v| v["selection"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(rows[1]["flipped_removed"], 1.0);
        assert_eq!(rows[0]["flipped_removed"], 0.0);
        assert_eq!(
            format!("{:.6}", rows[1]["test"]["loss"].as_f64().unwrap()),
            test_loss
        );
    });
}

mod explain {
    use super::util::*;
    use std::path::Path;

    /// A CSV of three Gaussian classes in 4-D plus `pairs` isolated twin pairs (consecutive
    /// lines, the second 0.01 away from the first), each pair far from everything else; with
    /// `flip`, the second of each pair carries another label (a mislabelled duplicate).
    fn twins_csv(pairs: usize, flip: bool) -> String {
        let mut state: u64 = 12345;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64) / ((1u64 << 53) as f64)
        };
        // 4 cluster features, then one feature per pair that only that pair uses (so that, even
        // for a linear model, nothing but its twin resembles a pair's example).
        let d = 4 + pairs;
        let mut s: Vec<String> = (0..4).map(|j| format!("x{j}")).collect();
        s.extend((0..pairs).map(|p| format!("pair{p}")));
        let mut s = format!("{},label\n", s.join(","));
        let row = |x: &[f64], label: usize| {
            let f: Vec<String> = x.iter().map(|v| format!("{v:.4}")).collect();
            format!("{},{label}\n", f.join(","))
        };
        for i in 0..120 {
            let c = i % 3;
            let x: Vec<f64> = (0..d)
                .map(|j| match j {
                    j if j == c => 4.0 + (uniform() - 0.5) * 2.0,
                    j if j < 4 => (uniform() - 0.5) * 2.0,
                    _ => (uniform() - 0.5) * 0.1,
                })
                .collect();
            s.push_str(&row(&x, c));
        }
        for p in 0..pairs {
            let c = p % 3;
            let mut x = vec![0.0; d];
            x[4 + p] = 5.0;
            s.push_str(&row(&x, c));
            x[4 + p] = 5.01;
            s.push_str(&row(&x, if flip { (c + 1) % 3 } else { c }));
        }
        s
    }

    const RECIPE: &str = r#"
[data]
source = "csv"
path = "twins.csv"
label_column = "label"
[model]
kind = "logistic"
[optim]
kind = "sgd"
lr = 0.2
momentum = 0.9
weight_decay = 0.02
[train]
epochs = 10
batch_size = 32
precision = "f64"
"#;

    /// `(file line, label)` of each position of a split, from the run's provenance.
    fn provenance(dir: &Path, split: &str) -> Vec<(u64, String)> {
        let text =
            String::from_utf8(read(dir.join(format!("run/provenance/{split}.csv")))).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("position,file,index,line,byte_offset,byte_len,label")
        );
        lines
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                assert_eq!(f[1], "twins.csv");
                (f[3].parse().unwrap(), f[6].to_string())
            })
            .collect()
    }

    /// Test positions whose twin (the other line of its pair) is a training position, with that
    /// training position. Pair lines start at line 122 (header + 120 cluster rows).
    fn split_pairs(dir: &Path) -> Vec<(usize, usize)> {
        let train = provenance(dir, "train");
        let test = provenance(dir, "test");
        let twin_line = |l: u64| {
            if (l - 122).is_multiple_of(2) {
                l + 1
            } else {
                l - 1
            }
        };
        test.iter()
            .enumerate()
            .filter(|(_, (l, _))| *l >= 122)
            .filter_map(|(t, (l, _))| {
                let w = twin_line(*l);
                train.iter().position(|(tl, _)| *tl == w).map(|i| (t, i))
            })
            .collect()
    }

    fn train_and_score(dir: &Path, flip: bool, output: &str) -> usize {
        write(dir, "twins.csv", &twins_csv(12, flip));
        write(dir, "run.toml", RECIPE);
        attrib(
            dir,
            &["--quiet", "train", "--config", "run.toml", "--out", "run"],
        )
        .ok();
        let n_test = provenance(dir, "test").len();
        let range = format!("0..{n_test}");
        attrib(
            dir,
            &[
                "--quiet",
                "attribute",
                "--run",
                "run",
                "--method",
                "if-exact",
                "--output",
                output,
                "--targets",
                &range,
                "--name",
                "if-exact",
            ],
        )
        .ok();
        let sidecar: serde_json::Value =
            serde_json::from_slice(&read(dir.join("run/scores/if-exact.json"))).unwrap();
        assert_eq!(sidecar["rows"]["columns"], "provenance/train.csv");
        assert_eq!(sidecar["rows"]["targets"], "provenance/test.csv");
        n_test
    }

    fn explain_json(dir: &Path, target: usize, extra: &[&str]) -> Vec<serde_json::Value> {
        let t = target.to_string();
        let mut args = vec![
            "--json",
            "explain",
            "--run",
            "run",
            "--scores",
            "run/scores/if-exact.npy",
            "--target",
            &t,
            "--top",
            "3",
        ];
        args.extend_from_slice(extra);
        attrib(dir, &args).ok().json_lines()
    }

    cli_test!(a_near_duplicate_of_the_target_ranks_first, |dir| {
        train_and_score(dir, false, "margin");
        let pairs = split_pairs(dir);
        assert!(
            !pairs.is_empty(),
            "some twin pair should be split across train and test"
        );
        let train = provenance(dir, "train");
        for (t, twin) in pairs {
            let e = &explain_json(dir, t, &[])[0];
            assert_eq!(e["type"], "explanation");
            let top = &e["proponents"][0];
            assert_eq!(top["position"], twin, "target {t}: {e}");
            assert_eq!(
                top["source"]["line"], train[twin].0,
                "the row of the user's file"
            );
            assert_eq!(top["label_differs"], false);
            assert!(top["predicted_change"].as_f64().unwrap() < 0.0);
            assert!(
                !e["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f.as_str().unwrap().starts_with("proponent 1 ")),
                "{e}"
            );
        }
        // The human output names the row of the file.
        let out = attrib(
            dir,
            &[
                "explain",
                "-r",
                "run",
                "-s",
                "run/scores/if-exact.npy",
                "--targets",
                "0..2",
                "-k",
                "2",
            ],
        )
        .ok();
        assert_contains!(
            out.stdout,
            "target 0 (test split, twins.csv line ",
            "proponents",
            "opponents"
        );
    });

    cli_test!(a_flipped_label_duplicate_is_flagged, |dir| {
        // With the loss as output, the mislabelled twin is the example whose removal lowers the
        // target's loss most: the top proponent, with another label.
        train_and_score(dir, true, "loss");
        let pairs = split_pairs(dir);
        assert!(!pairs.is_empty());
        for (t, twin) in pairs {
            let e = &explain_json(dir, t, &[])[0];
            let top = &e["proponents"][0];
            assert_eq!(top["position"], twin, "target {t}: {e}");
            assert_eq!(top["label_differs"], true, "{e}");
            let flags = e["flags"].as_array().unwrap();
            assert!(
                flags
                    .iter()
                    .any(|f| f.as_str().unwrap().contains("possible mislabel")),
                "{e}"
            );
        }
    });

    cli_test!(verify_retrains_without_the_top_examples_and_caches, |dir| {
        train_and_score(dir, false, "margin");
        let (t, _) = split_pairs(dir)[0];
        let lines = explain_json(dir, t, &["--verify"]);
        let v: Vec<_> = lines
            .iter()
            .filter(|l| l["type"] == "verification")
            .collect();
        assert_eq!(v.len(), 2, "proponents and opponents: {lines:?}");
        assert_eq!(v[0]["removed"], "proponents");
        assert_eq!(v[1]["removed"], "opponents");
        // Ground truth by brute force: retrain the run with those examples at weight 0.
        let run = run::Run::load(&dir.join("run")).unwrap();
        for x in &v {
            let dropped: Vec<usize> = x["dropped"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(dropped.len(), 3);
            let mut w = vec![1.0; run.n_train()];
            for &i in &dropped {
                w[i] = 0.0;
            }
            let params = run.retrain(&w).unwrap();
            let targets = run::Targets::test(vec![t], nn::Output::Margin);
            let after = run.target_outputs(&params, &targets)[0];
            let before = run.target_outputs(&run.params, &targets)[0];
            assert_eq!(x["after"].as_f64().unwrap(), after);
            assert_eq!(x["actual"].as_f64().unwrap(), after - before);
        }
        // Removing the proponents lowers the margin, as predicted; removing opponents raises it.
        assert!(
            v[0]["predicted"].as_f64().unwrap() < 0.0 && v[0]["actual"].as_f64().unwrap() < 0.0
        );
        assert!(
            v[1]["predicted"].as_f64().unwrap() > 0.0 && v[1]["actual"].as_f64().unwrap() > 0.0
        );
        let cached = std::fs::read_dir(dir.join("run/store/retrain"))
            .unwrap()
            .count();
        assert_eq!(cached, 2, "one file per retraining");
        // A rerun reads the cache: same numbers, no new files.
        let again = explain_json(dir, t, &["--verify"]);
        assert_eq!(again, lines);
        assert_eq!(
            std::fs::read_dir(dir.join("run/store/retrain"))
                .unwrap()
                .count(),
            2
        );
    });

    cli_test!(a_target_outside_the_score_file_is_explained, |dir| {
        train_and_score(dir, false, "margin");
        let out = attrib(
            dir,
            &[
                "explain",
                "-r",
                "run",
                "-s",
                "run/scores/if-exact.npy",
                "--target",
                "999",
            ],
        )
        .fails(1);
        assert_contains!(
            out.stderr,
            "target 999 is not in",
            "attrib attribute --targets"
        );
    });

    cli_test!(report_of_a_tabular_run_has_no_pictures, |dir| {
        train_and_score(dir, false, "margin");
        let out = attrib(
            dir,
            &["report", "--run", "run", "--galleries", "2", "--top", "3"],
        )
        .ok();
        assert_contains!(out.stdout, "report   run/report/index.html");
        let html = String::from_utf8(read(dir.join("run/report/index.html"))).unwrap();
        assert_eq!(html.matches("class=\"gallery target-gallery\"").count(), 2);
        assert_eq!(
            html.matches("<img").count(),
            0,
            "tabular data is shown as values"
        );
        assert_contains!(html, "if-exact.npy", "twins.csv line ");
    });
}
