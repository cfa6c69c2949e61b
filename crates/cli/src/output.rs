//! What attrib prints: human-readable lines, or with `--json` one JSON object per line.
//!
//! Human output goes to stdout (results) and stderr (progress bar, errors). `--quiet` keeps the
//! results (summaries, evaluations, tables) and drops the chatter (headers, per-epoch lines).
//!
//! ## Wire format (`--json`)
//!
//! With `--json`, stdout carries only JSON lines: each line is one object whose `"type"` field
//! names the event. Numbers are JSON numbers (a non-finite loss is `null`); paths are strings.
//! Fields marked `?` may be `null`. Errors are also printed as text on stderr.
//!
//! | type | when | fields |
//! |---|---|---|
//! | `note` | `demo`, first line | `message` (what the demo should reach) |
//! | `start` | `train`/`demo`, before the first step | `command`, `config` (file, or the embedded recipe), `out`, `dataset`, `train_examples`, `test_examples`, `example_shape`, `model` (kind), `parameters`, `steps`, `epochs`, `batch_size`, `precision`, `threads` |
//! | `step` | after every optimizer step | `step` (0-based), `epoch` (0-based), `lr`, `loss` (batch loss before the update), `grad_norm` (its gradient's norm before clipping and weight decay) |
//! | `epoch` | after the last step of each epoch | `epoch`, `step` (steps taken so far), `train` and `test`: evaluation objects |
//! | `checkpoint` | a trajectory file was written | `step` (steps taken), `path` |
//! | `summary` | `train`/`demo`, at the end | `command`, `out`, `steps`, `examples` (seen in training), `seconds` (wall time), `train_seconds` (steps only), `examples_per_second`, `test` (evaluation object), `files` |
//! | `evaluation` | `evaluate` | `run`, `split`, `examples`, `loss`, `accuracy?` |
//! | `gemm` | `bench train` | `m`, `k`, `n`, `threads`, `calls`, `seconds`, `gflops` |
//! | `bench_train` | `bench train` | `workload`, `mode` (`step` or `gradient`), `threads`, `batch`, `iterations`, `seconds`, `examples_per_second`, `gflops`, `gemm_gflops` (best GEMM of this run at the same thread count), `ratio` (`gflops / gemm_gflops`) |
//! | `scores` | `attribute` | `run`, `method`, `path` (the `.npy`), `targets`, `seconds` |
//! | `shard` | `attribute --shard` when other shards' parts are still missing; `retrain-score --shard` | `method` (or `retrain-score`), `shard` (`I/N`), `done`, `total` (parts: MAGIC's blocks of targets, TRAK members, retrainings) |
//! | `ground_truth` | `groundtruth`, `lds` | `path` (cache folder), `subsets`, `computed` (by this invocation), `done` (subsets present now), `shard?` (`I/N` when sharded), `seconds` |
//! | `ground_truth_status` | `status`, one per ground-truth folder | `path`, `present`, `expected?` (random subsets), `missing` (subset indices) |
//! | `store_status` | `status`, one per store kind | `kind`, `entries`, `bytes` |
//! | `lds` | `lds`, one per score file and subset spec | `method`, `scores`, `subsets_kind` (`drop`/`keep`), `fraction`, `subsets`, `targets`, `lds`, `ci` ([lo, hi]), `pearson`, `slope`, `method_seconds` |
//! | `lds_runs` | `lds --runs`, one per score name and subset spec | `scores`, `subsets_kind`, `fraction`, `runs`, `lds` (per run), `mean`, `sd`, `ci_half_width` |
//! | `grouping` | `group` | `path` (the CSV), `how`, `k`, `n`, `hash` |
//! | `retraining_score` | `retrain-score`, one per fraction and ranking | `scores` (file, or `random`), `fraction`, `removed`, `accuracy` |
//! | `noisy_labels` | `noisy-labels`, one per ranking and fraction | `grouping` (`individual` or how it was made), `flipped`, `inspected` (fraction), `found` (fraction of flipped labels) |
//! | `poison` | `poison`, one per budget and attack | `run`, `budget`, `attack`, `examples`, `predicted_val_loss?`, `val_loss`, `test` (evaluation object of the retrained model), `path` |
//! | `selection` | `select`, one per row | `run`, `selection` (the row's name), `kept` (weights above 0), `weight_sum`, `flipped_removed?` (with `data.label_noise`), `val` and `test` (evaluation objects of the retrained model) |
//! | `unlearn` | `unlearn --verify`, one per prediction and set | `run`, `model` (`jvp`, `no_change`, `gradient_ascent`, `scores`), `set` (`test`, `forget`, or the score file's split), `examples`, `pearson`, `change_pearson`, `mae`, `class_agreement` |
//! | `method` | `methods` | `name`, `summary` |
//! | `warning` | something suspicious that does not stop the command (more threads than cores, a diverged run) | `message` |
//! | `explanation` | `explain`, one per target | `target`, `split`, `source` (source row: `file`, `index`, `line?`, `byte_offset?`, `byte_len?`, `label`), `label?`, `predicted?`, `output`, `value`, `position?` (per-token targets: the position whose next-token prediction is scored), `text?` (the predicted token marked `⟦x⟧`), `total_abs`, `proponents` and `opponents` (lists of `rank`, `position`, `source`, `label?`, `score`, `predicted_change`, `share`, `label_differs`, `dominant`, `text?`), `flags` (warnings in words) |
//! | `verification` | `explain --verify`, two per target | `target`, `removed` (`proponents`/`opponents`), `dropped` (training positions), `predicted` (`-sum tau`), `actual`, `before`, `after` |
//! | `report` | `report`, `demo` | `path`, `bytes`, `seconds` |
//! | `setting` | `settings list`, one per setting | `name`, `summary`, `recipe`, `data`, `output`, `methods`, `quick_methods`, `expected`, `time` |
//! | `bench_lds` | `bench lds`, at the end (after its `lds` rows) | `setting`, `quick`, `run`, `seconds` |
//! | `error` | a command failed | `message` |
//!
//! An evaluation object is `{"examples": 360, "loss": 0.0912, "accuracy": 0.975}` (`accuracy` is
//! `null` for regression and language models).
//!
//! The `step` and `epoch` lines of `metrics.jsonl` in a run directory are these same objects.
//!
//! Example (`attrib --json train ...`, shortened):
//!
//! ```text
//! {"type":"start","command":"train","config":"run.toml","out":"runs/a","dataset":"breast_cancer",...}
//! {"type":"step","step":0,"epoch":0,"lr":0.1,"loss":0.6931,"grad_norm":0.42}
//! {"type":"epoch","epoch":0,"step":8,"train":{"examples":455,"loss":0.12,"accuracy":0.96},"test":{...}}
//! {"type":"summary","command":"train","out":"runs/a","steps":16,...,"test":{"examples":114,"loss":0.09,"accuracy":0.97}}
//! ```

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nn::Evaluation;
use serde::Serialize;

/// One event of the wire format (see the module documentation).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    /// `attrib settings list`: one named setting.
    Setting {
        /// Its name.
        name: &'a str,
        /// What it is.
        summary: &'a str,
        /// The recipe in `examples/`.
        recipe: &'a str,
        /// Where the data comes from.
        data: &'a str,
        /// The attributed output.
        output: &'a str,
        /// Methods of the full size.
        methods: Vec<&'a str>,
        /// Methods of `--quick`.
        quick_methods: Vec<&'a str>,
        /// What the full size should reach.
        expected: &'a str,
        /// Run times.
        time: &'a str,
    },
    /// `attrib bench lds`: the setting is done.
    BenchLds {
        /// The setting.
        setting: &'a str,
        /// `--quick`.
        quick: bool,
        /// The run directory.
        run: String,
        /// Wall time of the whole command.
        seconds: f64,
    },
    /// `attrib explain`: one target's explanation.
    Explanation(&'a crate::explain::Explained),
    /// `attrib explain --verify`: predicted vs actual change after retraining.
    Verification(&'a crate::explain::Verified),
    /// `attrib report` wrote the HTML file.
    Report {
        /// The HTML file.
        path: String,
        /// Its size.
        bytes: usize,
        /// Time to write it.
        seconds: f64,
    },
    /// `attrib group` wrote a grouping.
    Grouping {
        /// The CSV.
        path: String,
        /// How it was made.
        how: &'a str,
        /// Groups.
        k: usize,
        /// Training examples.
        n: usize,
        /// Hash of the assignment.
        hash: String,
    },
    /// One point of `attrib retrain-score`.
    RetrainingScore {
        /// The score file, or `random`.
        scores: &'a str,
        /// Fraction of the data asked to be removed.
        fraction: f64,
        /// Examples removed.
        removed: usize,
        /// Test accuracy after retraining.
        accuracy: f64,
    },
    /// One point of `attrib noisy-labels`.
    NoisyLabels {
        /// `individual`, or how the grouping was made.
        grouping: &'a str,
        /// Labels flipped.
        flipped: usize,
        /// Fraction of the data inspected.
        inspected: f64,
        /// Fraction of the flipped labels found.
        found: f64,
    },
    /// `attrib poison`: one attack at one budget, measured by retraining.
    Poison {
        /// The run directory.
        run: String,
        /// Fraction of the training set changed.
        budget: f64,
        /// `random-flips`, `flips`, `noise` or `features`.
        attack: &'a str,
        /// Training examples changed.
        examples: usize,
        /// First-order prediction of the validation loss (attributed flips only).
        predicted_val_loss: Option<f64>,
        /// Validation loss of the retrained model (the attacker's objective).
        val_loss: f64,
        /// Test evaluation of the retrained model (the damage).
        test: Evaluation,
        /// The record of the poisoned set (`RUN/poison/BUDGET-ATTACK.json`).
        path: String,
    },
    /// `attrib select`: one selection, retrained.
    Selection {
        /// The run directory.
        run: String,
        /// The row's name (`full data`, `drop by NAME`, `random, seed S`, `MGD step K ...`).
        selection: &'a str,
        /// Training examples at a weight above 0.
        kept: usize,
        /// Sum of the data weights.
        weight_sum: f64,
        /// With `data.label_noise`: fraction of the flipped examples at weight 0.
        flipped_removed: Option<f64>,
        /// Validation evaluation of the retrained model (the objective).
        val: Evaluation,
        /// Test evaluation of the retrained model (the judge).
        test: Evaluation,
    },
    /// `attrib unlearn --verify`: one prediction against the retraining without the forget set.
    Unlearn {
        /// The run directory.
        run: String,
        /// `jvp`, `no_change`, `gradient_ascent` or `scores`.
        model: &'a str,
        /// `test`, `forget` or the score file's split.
        set: &'a str,
        /// Examples compared.
        examples: usize,
        /// Pearson of predicted and retrained margins.
        pearson: f64,
        /// Pearson of predicted and retrained changes from the original margins.
        change_pearson: f64,
        /// Mean absolute error of the margins.
        mae: f64,
        /// Fraction of examples whose predicted class agrees with the retrained model's.
        class_agreement: f64,
    },
    /// A sentence for the reader (the demo's expectation).
    Note {
        /// The sentence.
        message: &'a str,
    },
    /// Training is about to start.
    Start(&'a Start),
    /// One optimizer step.
    Step(StepRecord),
    /// The end of an epoch.
    Epoch(EpochRecord),
    /// A trajectory file was written.
    Checkpoint {
        /// Steps taken when the state was saved.
        step: usize,
        /// The file.
        path: String,
    },
    /// Training finished.
    Summary(&'a Summary),
    /// `attrib evaluate`.
    Evaluation {
        /// The run directory.
        run: String,
        /// `train`, `test` or `val`.
        split: &'a str,
        /// The figures.
        #[serde(flatten)]
        eval: Evaluation,
    },
    /// A GEMM measurement.
    Gemm(&'a GemmRecord),
    /// A training throughput measurement.
    BenchTrain(&'a BenchTrainRecord),
    /// `attribute`: a score file was written.
    Scores {
        /// The run directory.
        run: String,
        /// The method.
        method: &'a str,
        /// The `.npy` file.
        path: String,
        /// Number of targets (rows).
        targets: usize,
        /// Wall time of the method.
        seconds: f64,
    },
    /// `groundtruth`: retrained subsets are cached.
    GroundTruth {
        /// The cache folder.
        path: String,
        /// Subsets in the spec.
        subsets: usize,
        /// Subsets computed by this invocation (the rest came from the cache).
        computed: usize,
        /// Subsets present in the cache after this invocation (all of them unless sharded).
        done: usize,
        /// `I/N` when this invocation was one shard.
        #[serde(skip_serializing_if = "Option::is_none")]
        shard: Option<String>,
        /// Wall time.
        seconds: f64,
    },
    /// `attribute --shard`: one shard stored its part; no score file yet.
    Shard {
        /// The method.
        method: &'a str,
        /// `I/N`.
        shard: String,
        /// Parts stored (this shard's and others').
        done: usize,
        /// Parts in all.
        total: usize,
    },
    /// `status`: one ground-truth folder.
    GroundTruthStatus {
        /// The folder.
        path: String,
        /// Subsets present.
        present: usize,
        /// Subsets asked for (random subsets only).
        expected: Option<usize>,
        /// Missing subset indices.
        missing: &'a [usize],
    },
    /// `status`: one kind of the artefact store.
    StoreStatus {
        /// The kind.
        kind: &'a str,
        /// Entries.
        entries: usize,
        /// Total bytes.
        bytes: u64,
    },
    /// `lds`: one row of the table.
    Lds(&'a LdsRow),
    /// `lds --runs`: one score name and subset spec over independently seeded runs.
    LdsRuns {
        /// The score file's name in each run's `scores/`.
        scores: &'a str,
        /// `drop` or `keep`.
        subsets_kind: &'static str,
        /// The fraction.
        fraction: f64,
        /// The runs, in the order given.
        runs: usize,
        /// Each run's LDS, in that order.
        lds: &'a [f64],
        /// Their mean.
        mean: f64,
        /// Their sample standard deviation (0 for one run).
        sd: f64,
        /// The mean half-width of the runs' bootstrap 95% intervals (which resample targets).
        ci_half_width: f64,
    },
    /// `methods`: one registered method.
    Method {
        /// Its name.
        name: &'a str,
        /// One line.
        summary: &'a str,
    },
    /// Something suspicious that does not stop the command.
    Warning {
        /// What, and what to do about it.
        message: &'a str,
    },
    /// A failure.
    Error {
        /// The error chain, outermost first.
        message: &'a str,
    },
}

/// One row of the `lds` table.
#[derive(Debug, Serialize)]
pub struct LdsRow {
    /// Method of the score file.
    pub method: String,
    /// The score file.
    pub scores: String,
    /// `drop` or `keep`.
    pub subsets_kind: &'static str,
    /// Fraction dropped (or kept).
    pub fraction: f64,
    /// Number of retrained subsets.
    pub subsets: usize,
    /// Number of targets.
    pub targets: usize,
    /// Mean Spearman correlation over targets.
    pub lds: f64,
    /// Bootstrap 95% interval of the mean.
    pub ci: (f64, f64),
    /// Mean Pearson correlation.
    pub pearson: f64,
    /// Mean least-squares slope of true on predicted change (1 = well calibrated).
    pub slope: f64,
    /// Wall time of the method that made the scores.
    pub method_seconds: f64,
}

/// Fields of a `start` event.
#[derive(Debug, Serialize)]
pub struct Start {
    pub command: &'static str,
    pub config: String,
    pub out: String,
    pub dataset: String,
    pub train_examples: usize,
    pub test_examples: usize,
    pub example_shape: Vec<usize>,
    pub model: String,
    pub parameters: usize,
    pub steps: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub precision: &'static str,
    pub threads: usize,
}

/// A `step` event and a `metrics.jsonl` line.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    /// The batch gradient's norm before clipping and weight decay ([`nn::StepInfo::grad_norm`]).
    pub grad_norm: f64,
}

/// An `epoch` event and a `metrics.jsonl` line.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub step: usize,
    /// Running figures over the epoch's batches, each taken before its update (weighted batch
    /// losses when `train.weights` is set), as training loops report them; `attrib evaluate
    /// --split train` evaluates the final parameters on the whole split.
    pub train: Evaluation,
    /// The test split evaluated at the end of the epoch.
    pub test: Evaluation,
}

/// Fields of a `summary` event.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub command: &'static str,
    pub out: String,
    pub steps: usize,
    pub examples: usize,
    pub seconds: f64,
    pub train_seconds: f64,
    pub examples_per_second: f64,
    pub test: Evaluation,
    pub files: Vec<String>,
}

/// Fields of a `gemm` event.
#[derive(Debug, Serialize)]
pub struct GemmRecord {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub threads: usize,
    pub calls: usize,
    pub seconds: f64,
    pub gflops: f64,
}

/// Fields of a `bench_train` event.
#[derive(Debug, Serialize)]
pub struct BenchTrainRecord {
    pub workload: String,
    pub mode: &'static str,
    pub threads: usize,
    pub batch: usize,
    pub iterations: usize,
    pub seconds: f64,
    pub examples_per_second: f64,
    pub gflops: f64,
    pub gemm_gflops: f64,
    pub ratio: f64,
}

impl Event<'_> {
    /// The event as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }
}

/// Where results and chatter go, according to `--json` and `--quiet`.
///
/// A closed stdout (`attrib train ... | head -1`) never stops the work: the first write that finds
/// the pipe closed switches printing off for the rest of the process, and the command goes on to
/// finish and write its files. Other write errors (a full disk behind `> log`) are returned.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
}

impl Output {
    /// A result line (human mode only).
    pub fn result(&self, line: impl AsRef<str>) -> io::Result<()> {
        if self.json || CAPTURING.load(Ordering::Relaxed) {
            return Ok(());
        }
        write_stdout(|out| writeln!(out, "{}", line.as_ref()))
    }

    /// An informational line (human mode without `--quiet` only).
    pub fn info(&self, line: impl AsRef<str>) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.result(line)
    }

    /// A warning: `warning: LINE` on stderr in every mode (also `--quiet`), and a `warning` event
    /// with `--json`.
    pub fn warn(&self, line: impl AsRef<str>) -> io::Result<()> {
        let message = line.as_ref();
        self.event(&Event::Warning { message })?;
        // stderr is unbuffered and a failure to warn must not stop the work.
        let _ = writeln!(io::stderr().lock(), "warning: {message}");
        Ok(())
    }

    /// An event (`--json` only).
    pub fn event(&self, event: &Event<'_>) -> io::Result<()> {
        if CAPTURING.load(Ordering::Relaxed) {
            if let Some(events) = CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                events.push(event.to_json());
            }
            return Ok(());
        }
        if !self.json {
            return Ok(());
        }
        write_stdout(|out| {
            writeln!(out, "{}", event.to_json())?;
            out.flush()
        })
    }
}

/// Whether [`capture`] is running: events are collected instead of printed, lines dropped.
static CAPTURING: AtomicBool = AtomicBool::new(false);
/// The events collected by the running [`capture`].
static CAPTURED: Mutex<Option<Vec<String>>> = Mutex::new(None);
/// One capture at a time: a second caller (another Python thread) waits for the first.
static CAPTURE_TURN: Mutex<()> = Mutex::new(());

/// Runs `f` with every event collected (as its JSON line) instead of printed, and human-readable
/// lines dropped: how a host process (the Python package) runs a command in-process and reads
/// its results. Warnings still go to stderr.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let _turn = CAPTURE_TURN.lock().unwrap_or_else(|e| e.into_inner());
    *CAPTURED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    CAPTURING.store(true, Ordering::Relaxed);
    let value = f();
    CAPTURING.store(false, Ordering::Relaxed);
    let events = CAPTURED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    (value, events)
}

/// Set once stdout turned out to be closed: nothing more is printed there.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write to stdout found it closed (the reader of a pipe went away).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Runs `write` on the locked stdout unless it is known to be closed; a broken pipe marks it
/// closed and counts as success, so that the command carries on.
fn write_stdout(write: impl FnOnce(&mut io::StdoutLock<'_>) -> io::Result<()>) -> io::Result<()> {
    if stdout_closed() {
        return Ok(());
    }
    match write(&mut io::stdout().lock()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    groups.join(",")
}

/// An accuracy as a percentage, or `-` when there is none.
pub fn percent(acc: Option<f64>) -> String {
    acc.map_or_else(|| "-".to_string(), |a| format!("{:.2}%", 100.0 * a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_type() {
        let s = Event::Step(StepRecord {
            step: 3,
            epoch: 0,
            lr: 0.5,
            loss: f64::NAN,
            grad_norm: 1.5,
        })
        .to_json();
        assert_eq!(
            s,
            r#"{"type":"step","step":3,"epoch":0,"lr":0.5,"loss":null,"grad_norm":1.5}"#
        );
        let eval = Evaluation {
            examples: 10,
            loss: 0.25,
            accuracy: Some(0.9),
        };
        let s = Event::Evaluation {
            run: "r".into(),
            split: "test",
            eval,
        }
        .to_json();
        assert_eq!(
            s,
            r#"{"type":"evaluation","run":"r","split":"test","examples":10,"loss":0.25,"accuracy":0.9}"#
        );
        let s = Event::Error { message: "bad" }.to_json();
        assert_eq!(s, r#"{"type":"error","message":"bad"}"#);
    }

    #[test]
    fn numbers_are_readable() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(26122), "26,122");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(percent(Some(0.975)), "97.50%");
        assert_eq!(percent(None), "-");
    }
}
