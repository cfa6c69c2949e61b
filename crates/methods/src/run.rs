//! A trained run as methods see it: configuration, data splits, model, final parameters, and the
//! ability to retrain it deterministically with other data weights (MATH.md E1).

use std::path::{Path, PathBuf};

use data::{Dataset, Splits};
use engine::Float;
use nn::{Batch, Model, Output, Precision, RunConfig, TrainState, Trainer};

use crate::error::{MethodError, Result};

/// Names of the files in a run directory (ARCHITECTURE.md "Files on disk").
pub mod files {
    /// The resolved configuration.
    pub const CONFIG: &str = "config.toml";
    /// Final parameters.
    pub const PARAMS: &str = "params.safetensors";
    /// Per-step metrics, JSON lines.
    pub const METRICS: &str = "metrics.jsonl";
    /// Trajectory checkpoints.
    pub const TRAJECTORY: &str = "trajectory";
    /// Score files (`METHOD.npy` + `METHOD.json`).
    pub const SCORES: &str = "scores";
    /// Groupings of the training set (`attrib group`).
    pub const GROUPS: &str = "groups";
    /// Cached ground truth.
    pub const GROUNDTRUTH: &str = "groundtruth";
}

/// Which split the target examples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training set (self-influence).
    Train,
    /// The held-out set.
    Test,
    /// The validation set (`data.val_fraction`), held out from training and from the test split.
    Val,
}

impl Split {
    /// `"train"`, `"test"` or `"val"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::Val => "val",
        }
    }

    /// The split named `name` (as [`Split::name`] writes it), if any.
    pub fn from_name(name: &str) -> Option<Split> {
        [Split::Train, Split::Test, Split::Val]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// The model outputs `f` to attribute: one per target example.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// Split of the target examples.
    pub split: Split,
    /// Indices into that split.
    pub indices: Vec<usize>,
    /// Which output (loss, margin, log-likelihood).
    pub output: Output,
}

impl Targets {
    /// Test examples `indices` with output `output`.
    pub fn test(indices: Vec<usize>, output: Output) -> Self {
        Targets {
            split: Split::Test,
            indices,
            output,
        }
    }

    /// Parses a range `a..b` (or a single index `a`) of target indices.
    ///
    /// # Errors
    /// Malformed text or an empty range.
    pub fn parse_range(text: &str) -> std::result::Result<Vec<usize>, String> {
        let bad =
            || format!("\"{text}\" is not a target range; write a..b (e.g. 0..50) or one index");
        let r = match text.split_once("..") {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                (a..b).collect::<Vec<_>>()
            }
            None => vec![text.trim().parse().map_err(|_| bad())?],
        };
        if r.is_empty() {
            return Err(format!("target range \"{text}\" is empty"));
        }
        Ok(r)
    }
}

/// Name of an output for files and messages.
pub fn output_name(o: Output) -> &'static str {
    match o {
        Output::Loss => "loss",
        Output::Margin => "margin",
        Output::LogLikelihood => "log_likelihood",
    }
}

/// Parses an output name.
///
/// # Errors
/// An unknown name, listing the valid ones.
pub fn parse_output(s: &str) -> std::result::Result<Output, String> {
    match s {
        "loss" => Ok(Output::Loss),
        "margin" => Ok(Output::Margin),
        "log_likelihood" | "loglik" => Ok(Output::LogLikelihood),
        _ => Err(format!(
            "unknown output \"{s}\"; use loss, margin or log_likelihood"
        )),
    }
}

/// A trained run.
pub struct Run {
    /// The run directory, when loaded from disk.
    pub dir: Option<PathBuf>,
    /// The resolved configuration.
    pub config: RunConfig,
    /// Training and test data.
    pub splits: Splits,
    /// The model.
    pub model: Model,
    /// Final parameters, widened to f64 exactly.
    pub params: Vec<f64>,
    /// Fingerprint of configuration and parameters (ties scores and ground truth to this run).
    pub hash: String,
    /// Initial parameters when the config starts from a file (`train.init_from`), else `None` for
    /// the seeded initialisation.
    pub init: Option<Vec<f64>>,
    /// Where long computations on this run report progress (silent by default).
    pub progress: crate::Progress,
    /// The data weights `w0` the run was trained with (`train.weights`), `None` for all ones.
    /// Every method attributes at these weights (MATH.md E7).
    pub weights: Option<Vec<f64>>,
}

/// FNV-1a 64-bit, as hex.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Run {
    /// Builds a run from parts (tests, or code that trained in memory).
    ///
    /// # Errors
    /// If the parameters do not fit the model.
    pub fn from_parts(
        config: RunConfig,
        splits: Splits,
        model: Model,
        params: Vec<f64>,
    ) -> Result<Run> {
        if params.len() != model.layout().total() {
            return Err(MethodError::Run {
                path: PathBuf::from("<memory>"),
                reason: format!(
                    "{} parameters for a model with {}",
                    params.len(),
                    model.layout().total()
                ),
            });
        }
        let bytes: Vec<u8> = params.iter().flat_map(|p| p.to_le_bytes()).collect();
        let hash = fingerprint(&[config.to_toml().as_bytes(), &bytes]);
        Ok(Run {
            dir: None,
            config,
            splits,
            model,
            params,
            hash,
            init: None,
            progress: crate::Progress::default(),
            weights: None,
        })
    }

    /// Trains `config` on its data (unit weights) and wraps the result.
    ///
    /// # Errors
    /// Data, model or training errors.
    pub fn train(config: RunConfig, base: &Path) -> Result<Run> {
        let splits = data::load_splits(&config.data, base)?;
        let model = Model::new(&config.model, &splits.train)?;
        let init = initial_params(&config, &model, base)?;
        let weights = data_weights(&config, &splits.train, base)?;
        let params = retrain_with(
            &config,
            &model,
            &splits.train,
            init.as_deref(),
            weights.as_deref(),
        )?;
        let mut run = Run::from_parts(config, splits, model, params)?;
        run.init = init;
        run.weights = weights;
        Ok(run)
    }

    /// Loads a run directory written by `attrib train`.
    ///
    /// # Errors
    /// A folder without `config.toml` or `params.safetensors`, or files that do not fit each other.
    pub fn load(dir: &Path) -> Result<Run> {
        let cfg_path = dir.join(files::CONFIG);
        if !cfg_path.exists() {
            return Err(MethodError::Run {
                path: dir.to_path_buf(),
                reason: "not a run directory (no config.toml); create one with `attrib train --config FILE --out DIR`".into(),
            });
        }
        let config = RunConfig::from_toml_file(&cfg_path)?;
        let splits = data::load_splits(&config.data, dir)?;
        let model = Model::new(&config.model, &splits.train)?;
        let params = nn::io::load_params::<f64>(&dir.join(files::PARAMS), model.layout())?;
        let init = initial_params(&config, &model, dir)?;
        let weights = data_weights(&config, &splits.train, dir)?;
        let mut run = Run::from_parts(config, splits, model, params)?;
        run.dir = Some(dir.to_path_buf());
        run.init = init;
        run.weights = weights;
        Ok(run)
    }

    /// Number of training examples (the columns of every score matrix).
    pub fn n_train(&self) -> usize {
        self.splits.train.len()
    }

    /// The dataset of a split.
    pub fn dataset(&self, split: Split) -> &Dataset {
        match split {
            Split::Train => &self.splits.train,
            Split::Test => &self.splits.test,
            Split::Val => &self.splits.val,
        }
    }

    /// Checks that the targets exist.
    ///
    /// # Errors
    /// An index outside the split.
    pub fn check_targets(&self, t: &Targets) -> Result<()> {
        let n = self.dataset(t.split).len();
        if t.split == Split::Val && n == 0 {
            return Err(MethodError::Run {
                path: self.dir.clone().unwrap_or_default(),
                reason: "the run has no validation split; set data.val_fraction (e.g. 0.1) in \
                         its config and train it again"
                    .into(),
            });
        }
        if let Some(&i) = t.indices.iter().find(|&&i| i >= n) {
            return Err(MethodError::Run {
                path: self.dir.clone().unwrap_or_default(),
                reason: format!(
                    "target {i} is outside the {} split of {n} examples; use indices 0..{n}",
                    t.split.name()
                ),
            });
        }
        Ok(())
    }

    /// The targets' examples as a batch.
    pub fn target_batch<F: Float>(&self, t: &Targets) -> Batch<F> {
        Batch::from_dataset(self.dataset(t.split), &t.indices)
    }

    /// Target outputs `f(theta)` at the given parameters, evaluated in f64.
    pub fn target_outputs(&self, params: &[f64], t: &Targets) -> Vec<f64> {
        nn::per_example::outputs(&self.model, params, &self.target_batch::<f64>(t), t.output)
    }

    /// The data weights `w0` of the run: `train.weights`, or all ones.
    pub fn base_weights(&self) -> Vec<f64> {
        self.weights
            .clone()
            .unwrap_or_else(|| vec![1.0; self.n_train()])
    }

    /// The weights that keep the examples with `keep_i = 1` at their run weight and drop those
    /// with `keep_i = 0`: `w0 * keep`, elementwise (a subset of a weighted run, MATH.md E7).
    pub fn subset_weights(&self, keep: &[f64]) -> Vec<f64> {
        match &self.weights {
            None => keep.to_vec(),
            Some(w0) => w0.iter().zip(keep).map(|(a, b)| a * b).collect(),
        }
    }

    /// A trainer of this run's recipe at its data weights `w0` (MATH.md E1): what MAGIC and the
    /// checkpoint replays differentiate and replay.
    ///
    /// # Errors
    /// As [`Trainer::new`].
    pub fn trainer<F: Float>(&self) -> Result<Trainer<'_, F>> {
        let t = Trainer::<F>::new(&self.model, &self.config, &self.splits.train)?;
        Ok(match &self.weights {
            None => t,
            Some(w) => t.with_weights(w.iter().map(|&x| F::from_f64(x)).collect())?,
        })
    }

    /// Retrains with data weights `w` (absolute, not relative to the run's `w0`; same seed, order
    /// and precision as the run) and returns the final parameters widened to f64.
    ///
    /// # Errors
    /// Training errors (divergence) or a wrong number of weights.
    pub fn retrain(&self, w: &[f64]) -> Result<Vec<f64>> {
        retrain_with(
            &self.config,
            &self.model,
            &self.splits.train,
            self.init.as_deref(),
            Some(w),
        )
    }

    /// An independent model of the same recipe: this run's configuration with trainer seed `seed`
    /// (another initialisation, unless `train.init_from` fixes it, and another batch order), unit
    /// data weights, wrapped with `params` when given (e.g. from a cache) or trained here. The
    /// result has no run directory.
    ///
    /// # Errors
    /// Training errors, or `params` that do not fit the model.
    pub fn reseeded(&self, seed: u64, params: Option<Vec<f64>>) -> Result<Run> {
        let mut config = self.config.clone();
        config.train.seed = seed;
        let params = match params {
            Some(p) => p,
            None => retrain_with(
                &config,
                &self.model,
                &self.splits.train,
                self.init.as_deref(),
                self.weights.as_deref(),
            )?,
        };
        let mut run = Run::from_parts(config, self.splits.clone(), self.model.clone(), params)?;
        run.init = self.init.clone();
        run.weights = self.weights.clone();
        Ok(run)
    }

    /// The training states at steps `0, every, 2 every, ..` and the last step, by replaying the run
    /// (bitwise the original trajectory, MATH.md E1), each with the learning rate of its step.
    ///
    /// # Errors
    /// Training errors.
    pub fn checkpoints(&self, every: usize) -> Result<Vec<Checkpoint>> {
        match self.config.train.precision {
            Precision::F32 => checkpoints_at::<f32>(self, every),
            Precision::F64 => checkpoints_at::<f64>(self, every),
        }
    }
}

/// A parameter vector along the trajectory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Steps taken before this state.
    pub step: usize,
    /// Learning rate of the step taken from this state.
    pub lr: f64,
    /// Parameters, widened to f64.
    pub params: Vec<f64>,
}

fn checkpoints_at<F: Float>(run: &Run, every: usize) -> Result<Vec<Checkpoint>> {
    let t = run.trainer::<F>()?;
    let mut state = t.init_state(
        run.init
            .as_ref()
            .map(|p| p.iter().map(|&x| F::from_f64(x)).collect()),
    )?;
    let widen = |s: &TrainState<F>| s.params.iter().map(|p| p.to_f64()).collect::<Vec<f64>>();
    let mut out = Vec::new();
    let every = every.max(1);
    while state.opt.step < t.steps() {
        if state.opt.step % every == 0 {
            out.push(Checkpoint {
                step: state.opt.step,
                lr: t.lr_at(state.opt.step).to_f64(),
                params: widen(&state),
            });
        }
        t.step(&mut state)?;
    }
    Ok(out)
}

/// The data weights named by `train.weights` (relative to `base`), one per example of `train`,
/// if any (`data::read_weights`).
///
/// # Errors
/// An unreadable file, a wrong count, or a negative or non-finite weight (naming the file, the
/// row and the fix).
pub fn data_weights(cfg: &RunConfig, train: &Dataset, base: &Path) -> Result<Option<Vec<f64>>> {
    match &cfg.train.weights {
        None => Ok(None),
        Some(p) => {
            let path = if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            };
            Ok(Some(data::read_weights(&path, train.len())?))
        }
    }
}

/// The parameters named by `train.init_from` (relative to `base`), if any.
fn initial_params(cfg: &RunConfig, model: &Model, base: &Path) -> Result<Option<Vec<f64>>> {
    match &cfg.train.init_from {
        None => Ok(None),
        Some(p) => {
            let path = if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            };
            Ok(Some(nn::io::load_params::<f64>(&path, model.layout())?))
        }
    }
}

fn retrain_with(
    cfg: &RunConfig,
    model: &Model,
    train: &Dataset,
    init: Option<&[f64]>,
    w: Option<&[f64]>,
) -> Result<Vec<f64>> {
    fn go<F: Float>(
        cfg: &RunConfig,
        model: &Model,
        train: &Dataset,
        init: Option<&[f64]>,
        w: Option<&[f64]>,
    ) -> Result<Vec<f64>> {
        let cast = |v: &[f64]| v.iter().map(|&x| F::from_f64(x)).collect::<Vec<F>>();
        let mut t = Trainer::<F>::new(model, cfg, train)?;
        if let Some(w) = w {
            t = t.with_weights(cast(w))?;
        }
        let s = t.run(t.init_state(init.map(cast))?, &mut |_, _| {})?;
        Ok(s.params.iter().map(|p| p.to_f64()).collect())
    }
    match cfg.train.precision {
        Precision::F32 => go::<f32>(cfg, model, train, init, w),
        Precision::F64 => go::<f64>(cfg, model, train, init, w),
    }
}
