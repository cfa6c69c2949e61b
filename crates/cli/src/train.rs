//! `attrib train`, and the training loop that `attrib demo` shares.
//!
//! Everything that can be checked is checked before the run directory is touched: the config is
//! parsed and validated, the data loaded, the model built, the initial parameters read. Only then
//! is `DIR/config.toml` written and training started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use data::Splits;
use engine::Float;
use nn::{evaluate, Evaluation, Model, Optimizer, Precision, RunConfig, TrainState, Trainer};
use serde::Serialize;

use crate::args::TrainArgs;
use crate::output::{percent, thousands, EpochRecord, Event, Start, StepRecord, Summary};
use crate::progress::Progress;
use crate::Ctx;
use run::dir::{absolute_paths, config_base};
use run::files::{CONFIG, METRICS, PARAMS, TRAJECTORY};
use run::RunDir;

/// `attrib train --config FILE --out DIR [--force]`.
///
/// # Errors
/// A missing or invalid config, unreadable data, a model that does not fit the data, a run
/// directory holding another run (without `--force`), divergence, I/O errors.
pub fn run(args: &TrainArgs, ctx: &Ctx) -> Result<()> {
    let job = Job {
        cfg: load_config(&args.config)?,
        config: args.config.display().to_string(),
        out: args.out.clone(),
        force: args.force,
        command: "train",
        show_layers: false,
    };
    train(&job, ctx).map(|_| ())
}

/// Reads a config file and makes its paths absolute (they are relative to the file's folder).
///
/// # Errors
/// A missing file, or any parse/validation error (naming the file and the field).
pub fn load_config(path: &Path) -> Result<RunConfig> {
    if path.is_dir() {
        bail!(
            "config {} is a folder, not a file; pass the path of a TOML run configuration \
             (e.g. examples/digits_mlp.toml), or `--run {}` to commands that read a run",
            path.display(),
            path.display()
        );
    }
    if !path.is_file() {
        bail!(
            "config file {} does not exist; pass the path of a TOML run configuration \
             (examples/*.toml at the repository root show every table)",
            path.display()
        );
    }
    let cfg = RunConfig::from_toml_file(path)?;
    Ok(absolute_paths(cfg, &config_base(path)))
}

/// A training job: the resolved config and where it goes.
pub struct Job {
    /// Resolved config (absolute paths).
    pub cfg: RunConfig,
    /// Where the config came from, for messages.
    pub config: String,
    /// The run directory.
    pub out: PathBuf,
    /// Replace a different run in `out`.
    pub force: bool,
    /// `train` or `demo`, for messages.
    pub command: &'static str,
    /// Print every parameter tensor in the header.
    pub show_layers: bool,
}

/// What a finished run reports.
pub struct Outcome {
    /// Final test evaluation.
    pub test: Evaluation,
}

/// Loads the data, builds the model and trains into `job.out`.
///
/// # Errors
/// As [`run`].
pub fn train(job: &Job, ctx: &Ctx) -> Result<Outcome> {
    // Paths in the resolved config are absolute, so the base folder is irrelevant.
    let (splits, provenance) = data::load_splits_with_provenance(&job.cfg.data, Path::new("."))?;
    let model = Model::new(&job.cfg.model, &splits.train)?;
    model.check_data(&splits.test, "the test set")?;
    match job.cfg.train.precision {
        Precision::F32 => fit::<f32>(job, ctx, &splits, &provenance, &model),
        Precision::F64 => fit::<f64>(job, ctx, &splits, &provenance, &model),
    }
}

/// The `kind` of a tagged config enum (`"mlp"`, `"sgd"`, `"cosine"`).
pub fn kind<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.get("kind").and_then(|k| k.as_str()).map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::F64 => "f64",
    }
}

fn fit<F: Float>(
    job: &Job,
    ctx: &Ctx,
    splits: &Splits,
    provenance: &data::Provenance,
    model: &Model,
) -> Result<Outcome> {
    let started = Instant::now();
    let cfg = &job.cfg;
    let out = &ctx.out;
    let eval_batch = nn::eval_batch_size(cfg.train.batch_size);
    let mut trainer = Trainer::<F>::new(model, cfg, &splits.train)?;
    if let Some(w) = run::data_weights(cfg, &splits.train, Path::new("."))? {
        trainer = trainer.with_weights(w.iter().map(|&x| F::from_f64(x)).collect())?;
    }
    let init = match &cfg.train.init_from {
        Some(p) => Some(
            nn::io::load_params::<F>(p, model.layout())
                .context("cannot use the initial parameters of train.init_from")?,
        ),
        None => None,
    };
    let mut state = trainer.init_state(init)?;
    let dir = RunDir::create(&job.out, cfg, job.force)?;
    // Where every training and test position came from in the user's files (README, run dir).
    provenance.write(dir.root())?;

    let steps = trainer.steps();
    let epochs = cfg.train.epochs;
    let per_epoch = steps / epochs; // every epoch has the same number of batches
    let layout = model.layout();
    let start = Start {
        command: job.command,
        config: job.config.clone(),
        out: job.out.display().to_string(),
        dataset: splits.train.name.clone(),
        train_examples: splits.train.len(),
        test_examples: splits.test.len(),
        example_shape: splits.train.example_shape(),
        model: kind(&cfg.model),
        parameters: layout.total(),
        steps,
        epochs,
        batch_size: cfg.train.batch_size,
        precision: precision_name(cfg.train.precision),
        threads: ctx.threads,
    };
    out.event(&Event::Start(&start))?;
    print_header(job, ctx, &start, splits, model, per_epoch)?;

    // The training loss before the first step is the first batch's (the step reports it at the
    // initial parameters): a run whose last epoch ends above it diverged (issue 13). Each epoch's
    // training figures are running means over its batches, as training loops report them: an
    // evaluation of the whole training split would cost a third of an epoch each time (issue 19).
    let mut initial_train_loss = None;
    let mut last_train_loss = f64::NEG_INFINITY;
    let mut running = Running::default();
    let progress = Progress::steps(steps, !out.quiet && !out.json);
    let mut metrics = MetricsFile::create(dir.root().join(run::files::METRICS_PARTIAL))?;
    let mut examples = 0usize;
    let mut train_time = Duration::ZERO;
    let mut checkpoints = 0usize;
    let mut last_test = None;
    if cfg.train.checkpoint_every.is_some() {
        save_checkpoint(&dir, model, cfg, &state, steps)?;
        out.event(&Event::Checkpoint {
            step: 0,
            path: dir.checkpoint(0).display().to_string(),
        })?;
        checkpoints += 1;
    }
    while state.opt.step < steps {
        let t0 = Instant::now();
        let stepped = trainer.step(&mut state);
        train_time += t0.elapsed();
        let info = match stepped {
            Ok(info) => info,
            Err(e) => {
                progress.finish();
                // Keep the metrics up to the failure: they show how the loss blew up. They go to
                // the partial file, so that a finished run's metrics.jsonl is never replaced by
                // those of a failed retraining.
                let _ = metrics.catch_up();
                return Err(e.into());
            }
        };
        let batch = trainer.plan()[info.step].len();
        examples += batch;
        initial_train_loss.get_or_insert(info.loss);
        running.add(batch, info.loss, info.correct);
        let rec = Event::Step(StepRecord {
            step: info.step,
            epoch: info.epoch,
            lr: info.lr,
            loss: info.loss,
            grad_norm: info.grad_norm,
        });
        metrics.record(&rec);
        out.event(&rec)?;
        progress.step(info.epoch, epochs, info.loss, info.lr);

        let taken = state.opt.step;
        if let Some(k) = cfg.train.checkpoint_every {
            if taken % k == 0 || taken == steps {
                save_checkpoint(&dir, model, cfg, &state, steps)?;
                out.event(&Event::Checkpoint {
                    step: taken,
                    path: dir.checkpoint(taken).display().to_string(),
                })?;
                checkpoints += 1;
            }
        }
        if taken % per_epoch == 0 {
            let train = std::mem::take(&mut running).figures();
            let test = evaluate(model, &state.params, &splits.test, eval_batch);
            let rec = Event::Epoch(EpochRecord {
                epoch: info.epoch,
                step: taken,
                train,
                test,
            });
            metrics.record(&rec);
            metrics.catch_up()?;
            out.event(&rec)?;
            progress.suspend(|| {
                out.info(format!(
                    "epoch {:>w$}/{epochs}  train loss {:.4} acc {:>7}  test loss {:.4} acc {:>7}",
                    info.epoch + 1,
                    train.loss,
                    percent(train.accuracy),
                    test.loss,
                    percent(test.accuracy),
                    w = epochs.to_string().len(),
                ))
            })?;
            last_test = Some(test);
            last_train_loss = train.loss;
        }
    }
    progress.finish();
    if let Some(initial) = initial_train_loss.filter(|&l| last_train_loss > l) {
        out.warn(format!(
            "training diverged: the training loss rose from {initial:.4} on the first batch \
             before any step to a mean of {last_train_loss:.4} over the last epoch's batches; \
             lower optim.lr (now {}) and retrain with --force",
            cfg.optim.lr()
        ))?;
    }

    let mut meta = BTreeMap::new();
    meta.insert(
        "attrib_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    meta.insert("model".to_string(), kind(&cfg.model));
    meta.insert(
        "precision".to_string(),
        precision_name(cfg.train.precision).to_string(),
    );
    meta.insert("seed".to_string(), cfg.train.seed.to_string());
    meta.insert("steps".to_string(), steps.to_string());
    nn::io::save_params(&dir.params(), layout, &state.params, &meta)?;
    // The whole metrics replace the previous ones in one rename (issue 13, item 2), and the
    // fingerprint is written last: a run is complete once it matches its params.
    metrics.publish(&dir.metrics())?;
    run::Fingerprint::of(cfg, splits, &state.params).write(dir.root())?;

    let test =
        last_test.unwrap_or_else(|| evaluate(model, &state.params, &splits.test, eval_batch));
    let mut files = vec![
        CONFIG.to_string(),
        METRICS.to_string(),
        PARAMS.to_string(),
        run::files::FINGERPRINT.to_string(),
        format!("{}/", data::PROVENANCE_DIR),
    ];
    if checkpoints > 0 {
        files.push(format!("{TRAJECTORY}/"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let summary = Summary {
        command: job.command,
        out: job.out.display().to_string(),
        steps,
        examples,
        seconds,
        train_seconds: train_time.as_secs_f64(),
        examples_per_second: examples as f64 / train_time.as_secs_f64().max(1e-9),
        test,
        files,
    };
    out.event(&Event::Summary(&summary))?;
    let accuracy = match test.accuracy {
        Some(a) => format!("test accuracy {}, ", percent(Some(a))),
        None => String::new(),
    };
    out.result(format!(
        "done     {} steps in {} ({} examples/s); {accuracy}test loss {:.4}",
        thousands(steps),
        duration(seconds),
        thousands(summary.examples_per_second.round() as usize),
        test.loss
    ))?;
    let traj = if checkpoints > 0 {
        format!(", {TRAJECTORY}/ ({checkpoints} checkpoints)")
    } else {
        String::new()
    };
    out.result(format!(
        "files    {}: {CONFIG}, {METRICS}, {PARAMS}{traj}, {}, {}/",
        job.out.display(),
        run::files::FINGERPRINT,
        data::PROVENANCE_DIR
    ))?;
    out.info(format!(
        "next     attrib evaluate --run {}",
        job.out.display()
    ))?;
    Ok(Outcome { test })
}

/// `metrics.partial.jsonl`: the metrics so far, appended at each epoch's end, so that a failed or
/// killed run leaves its curve without rewriting (and syncing) the whole file every epoch. A
/// finished run's file is synced and renamed to `metrics.jsonl`, so the records are written
/// once and never held in memory all together. (Under `perf` their growth in one `String` had
/// looked like a tenth of the digits MLP's step time in page faults; the wall clock of the
/// whole `train` did not move when it went, issue 19.)
struct MetricsFile {
    path: PathBuf,
    file: std::fs::File,
    /// The lines recorded since the last [`MetricsFile::catch_up`] (its capacity is reused).
    pending: String,
}

impl MetricsFile {
    fn create(path: PathBuf) -> Result<MetricsFile> {
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(MetricsFile {
            path,
            file,
            pending: String::new(),
        })
    }

    /// Adds `event` as the next JSON line.
    fn record(&mut self, event: &Event) {
        self.pending.push_str(&event.to_json());
        self.pending.push('\n');
    }

    /// Appends the lines recorded since the last call to the file.
    fn catch_up(&mut self) -> Result<()> {
        use std::io::Write;
        self.file
            .write_all(self.pending.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is pending, syncs the file and renames it to `to` (replacing what was there:
    /// one rename, so a reader sees the old metrics or the new ones, never a mixture).
    fn publish(mut self, to: &Path) -> Result<()> {
        self.catch_up()?;
        // On disk before the rename, so a power loss cannot leave the new name with no content.
        self.file
            .sync_all()
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        drop(self.file);
        std::fs::rename(&self.path, to)
            .with_context(|| format!("cannot rename {} to {}", self.path.display(), to.display()))
    }
}

/// An epoch's running training figures: its batches' losses (each the weighted batch mean the
/// step reports) and correct predictions, before each batch's update.
#[derive(Default)]
struct Running {
    examples: usize,
    loss_sum: f64,
    correct: Option<usize>,
}

impl Running {
    fn add(&mut self, batch: usize, loss: f64, correct: Option<usize>) {
        self.examples += batch;
        self.loss_sum += loss * batch as f64;
        if let Some(c) = correct {
            *self.correct.get_or_insert(0) += c;
        }
    }

    fn figures(self) -> Evaluation {
        let n = self.examples.max(1) as f64;
        Evaluation {
            examples: self.examples,
            loss: self.loss_sum / n,
            accuracy: self.correct.map(|c| c as f64 / n),
        }
    }
}

/// `0.42 s`, `12.3 s`, `3 min 05 s`.
fn duration(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.2} s")
    } else if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else {
        let s = seconds.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

fn print_header(
    job: &Job,
    ctx: &Ctx,
    s: &Start,
    splits: &Splits,
    model: &Model,
    per_epoch: usize,
) -> Result<()> {
    let out = &ctx.out;
    let cfg = &job.cfg;
    let classes = match splits.train.num_classes() {
        Some(k) => format!(", {k} classes"),
        None => String::new(),
    };
    out.info(format!("config   {}", job.config))?;
    let val = match splits.val.len() {
        0 => String::new(),
        n => format!(" / {} val", thousands(n)),
    };
    out.info(format!(
        "data     {}: {} train / {} test{val} examples of shape {:?}{classes}",
        s.dataset,
        thousands(s.train_examples),
        thousands(s.test_examples),
        s.example_shape
    ))?;
    let layout = model.layout();
    out.info(format!(
        "model    {}: {} parameters in {} tensors",
        s.model,
        thousands(layout.total()),
        layout.specs().len()
    ))?;
    if job.show_layers {
        for spec in layout.specs() {
            let n: usize = spec.shape.iter().product();
            out.info(format!(
                "           {:<18} {:<12} {:>8}",
                spec.name,
                format!("{:?}", spec.shape),
                thousands(n)
            ))?;
        }
    }
    out.info(format!(
        "training {} steps = {} epochs x {} batches of {}; {} lr {}, {} schedule; {}, {} threads",
        thousands(s.steps),
        s.epochs,
        per_epoch,
        s.batch_size,
        kind(&cfg.optim),
        cfg.optim.lr(),
        kind(&cfg.schedule),
        s.precision,
        s.threads
    ))?;
    out.info(format!("output   {}", job.out.display()))?;
    Ok(())
}

/// Writes `trajectory/step_NNNNNNNN.safetensors`: parameters and optimizer buffers `opt.{i}`.
fn save_checkpoint<F: Float>(
    dir: &RunDir,
    model: &Model,
    cfg: &RunConfig,
    state: &TrainState<F>,
    steps: usize,
) -> Result<()> {
    let mut meta = BTreeMap::new();
    meta.insert(
        "attrib_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    meta.insert("optimizer".to_string(), kind(&cfg.optim));
    meta.insert(
        "precision".to_string(),
        precision_name(cfg.train.precision).to_string(),
    );
    meta.insert("seed".to_string(), cfg.train.seed.to_string());
    meta.insert("steps".to_string(), steps.to_string());
    dir.write_checkpoint(model.layout(), state, &meta)?;
    Ok(())
}
