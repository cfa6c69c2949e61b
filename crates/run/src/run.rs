//! A trained run: configuration, data splits, model, final parameters, and the ability to retrain
//! it deterministically with other data weights (MATH.md E1) or replay its trajectory.

use std::path::{Path, PathBuf};

use data::{Dataset, Splits};
use engine::Float;
use nn::{Batch, Model, Output, Precision, RunConfig, TrainState, Trainer};

use engine::hash::fingerprint;

use crate::error::{Result, RunError};
use crate::files;

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

    /// Parses a range `a..b` (or a single index `a`) of target indices into `split`, which has
    /// `len` targets of `output` ([`Run::target_count`]).
    ///
    /// # Errors
    /// Malformed text, an empty range, or one that reaches past `len` (checked before the indices
    /// are listed, so that `0..18446744073709551615` is an error, not an allocation failure).
    pub fn parse_range(
        text: &str,
        split: Split,
        len: usize,
        output: Output,
    ) -> std::result::Result<Vec<usize>, String> {
        let bad =
            || format!("\"{text}\" is not a target range; write a..b (e.g. 0..50) or one index");
        let r = match text.split_once("..") {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if b > len {
                    return Err(format!(
                        "target range \"{text}\" is outside the {} split of {len} {}; \
                         use indices within 0..{len}",
                        split.name(),
                        target_noun(output)
                    ));
                }
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

/// What one target of `output` is, in messages: an example, or a next-token prediction.
fn target_noun(output: Output) -> &'static str {
    match output {
        Output::Token => "token predictions",
        _ => "examples",
    }
}

/// Name of an output for files and messages.
pub fn output_name(o: Output) -> &'static str {
    match o {
        Output::Loss => "loss",
        Output::Margin => "margin",
        Output::LogLikelihood => "log_likelihood",
        Output::Token => "token",
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
        "token" => Ok(Output::Token),
        _ => Err(format!(
            "unknown output \"{s}\"; use loss, margin, log_likelihood or token (per-token loss \
             of a gpt run)"
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
    /// Compute only this shard's part of a long computation (`None`: all of it): MAGIC, TRAK and
    /// datamodels split their own work (`methods::registry::SHARDABLE`), every other method is
    /// split by blocks of targets (`methods::target_blocks`).
    pub shard: Option<crate::Shard>,
    /// The data weights `w0` the run was trained with (`train.weights`), `None` for all ones.
    /// Every method attributes at these weights (MATH.md E7).
    pub weights: Option<Vec<f64>>,
}

/// Windows evaluated at once when measuring token targets ([`Run::target_outputs`]).
const TOKEN_WINDOWS: usize = 64;

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
            return Err(RunError::Run {
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
            shard: None,
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
    /// Checks the run's [`crate::Fingerprint`] (a config, data or params changed since training
    /// is an error naming what changed) and sweeps temporaries left by killed processes.
    ///
    /// # Errors
    /// A folder without `config.toml` or `params.safetensors`, files that do not fit each other,
    /// or a run changed since training.
    pub fn load(dir: &Path) -> Result<Run> {
        let cfg_path = dir.join(files::CONFIG);
        if !cfg_path.exists() {
            return Err(RunError::Run {
                path: dir.to_path_buf(),
                reason: "not a run directory (no config.toml); create one with `attrib train --config FILE --out DIR`".into(),
            });
        }
        let config = RunConfig::from_toml_file(&cfg_path)?;
        let splits = data::load_splits(&config.data, dir)?;
        let model = Model::new(&config.model, &splits.train)?;
        let params = nn::io::load_params::<f64>(&dir.join(files::PARAMS), model.layout())?;
        crate::Fingerprint::check(dir, &crate::Fingerprint::of(&config, &splits, &params))?;
        crate::dir::sweep_stale_temporaries(dir);
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
        if t.output == Output::Token && self.model.has_dense_input() {
            return Err(RunError::Run {
                path: self.dir.clone().unwrap_or_default(),
                reason: "output \"token\" scores one next-token prediction of a language model, \
                         and this run's data has no tokens; use loss, margin or log_likelihood"
                    .into(),
            });
        }
        let n = self.target_count(t.split, t.output);
        if t.split == Split::Val && n == 0 {
            return Err(RunError::Run {
                path: self.dir.clone().unwrap_or_default(),
                reason: "the run has no validation split; set data.val_fraction (e.g. 0.1) in \
                         its config and train it again"
                    .into(),
            });
        }
        if let Some(&i) = t.indices.iter().find(|&&i| i >= n) {
            return Err(RunError::Run {
                path: self.dir.clone().unwrap_or_default(),
                reason: format!(
                    "target {i} is outside the {} split of {n} {}; use indices 0..{n}",
                    t.split.name(),
                    target_noun(t.output)
                ),
            });
        }
        Ok(())
    }

    /// How many targets `split` offers for `output`: its examples, or for [`Output::Token`] its
    /// windows times their `L - 1` next-token predictions (target `s (L - 1) + p`).
    pub fn target_count(&self, split: Split, output: Output) -> usize {
        let ds = self.dataset(split);
        match (&ds.features, output) {
            (data::Features::Tokens { seq_len, .. }, Output::Token) => ds.len() * (seq_len - 1),
            _ => ds.len(),
        }
    }

    /// The targets' examples as a batch (for [`Output::Token`], each target's window with its
    /// position, [`Batch::token_targets`]).
    pub fn target_batch<F: Float>(&self, t: &Targets) -> Batch<F> {
        match t.output {
            Output::Token => Batch::token_targets(self.dataset(t.split), &t.indices),
            _ => Batch::from_dataset(self.dataset(t.split), &t.indices),
        }
    }

    /// Target outputs `f(theta)` at the given parameters, evaluated in f64.
    pub fn target_outputs(&self, params: &[f64], t: &Targets) -> Vec<f64> {
        if t.output == Output::Token {
            return self.token_outputs(params, t);
        }
        nn::per_example::outputs(&self.model, params, &self.target_batch::<f64>(t), t.output)
    }

    /// [`Run::target_outputs`] of token targets: each distinct window is evaluated once, in
    /// batches of [`TOKEN_WINDOWS`], and its per-position losses are read by the targets. (The
    /// target batch repeats a window once per target: every prediction of a split, which ground
    /// truth measures, made `L - 1` copies of the split in one batch.)
    fn token_outputs(&self, params: &[f64], t: &Targets) -> Vec<f64> {
        let ds = self.dataset(t.split);
        let data::Features::Tokens { seq_len, .. } = &ds.features else {
            return nn::per_example::outputs(
                &self.model,
                params,
                &self.target_batch::<f64>(t),
                t.output,
            );
        };
        let at: Vec<(usize, usize)> = t
            .indices
            .iter()
            .map(|&i| nn::batch::token_target(i, *seq_len))
            .collect();
        let mut windows: Vec<usize> = at.iter().map(|&(w, _)| w).collect();
        windows.sort_unstable();
        windows.dedup();
        let mut losses = Vec::with_capacity(windows.len() * (seq_len - 1));
        for chunk in windows.chunks(TOKEN_WINDOWS) {
            let batch = nn::Batch::<f64>::from_dataset(ds, chunk);
            losses.extend(nn::per_example::token_losses(&self.model, params, &batch));
        }
        at.iter()
            .map(|&(w, p)| {
                let k = windows.binary_search(&w).expect("window listed above");
                losses[k * (seq_len - 1) + p]
            })
            .collect()
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

    /// [`Run::subset_weights`] of the subset that drops the training positions `dropped` and
    /// keeps the rest: `w0` with zeros at `dropped`.
    pub fn weights_without(&self, dropped: &[usize]) -> Vec<f64> {
        let mut keep = vec![1.0; self.n_train()];
        for &i in dropped {
            keep[i] = 0.0;
        }
        self.subset_weights(&keep)
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

    /// The training states at steps `0, every, 2 every, ..` below the last step, each with the
    /// learning rate of its step (MATH.md E1). They are read from the run's `trajectory/`
    /// checkpoints when `train.checkpoint_every` divides `every` and the trajectory's last state
    /// is the run's final parameters (then they are the same bits as a replay, and no training
    /// step is recomputed); otherwise, or when a file is missing or unreadable, the run is
    /// replayed (bitwise the original trajectory).
    ///
    /// # Errors
    /// Training errors.
    pub fn checkpoints(&self, every: usize) -> Result<Vec<Checkpoint>> {
        let every = every.max(1);
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
    if let Some(saved) = saved_checkpoints(run, &t, every) {
        return Ok(saved);
    }
    let mut state = t.init_state(
        run.init
            .as_ref()
            .map(|p| p.iter().map(|&x| F::from_f64(x)).collect()),
    )?;
    let widen = |s: &TrainState<F>| s.params.iter().map(|p| p.to_f64()).collect::<Vec<f64>>();
    let mut out = Vec::new();
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
/// [`Run::checkpoints`] from the files of `trajectory/`, or `None` when they cannot stand in for
/// a replay: no run directory, no or another checkpoint spacing, a missing or unreadable file, or
/// a last state that is not the run's final parameters (a trajectory of another training).
/// Checkpoints hold the states in the training precision, widened here exactly as a replay
/// widens them.
fn saved_checkpoints<F: Float>(run: &Run, t: &Trainer<F>, every: usize) -> Option<Vec<Checkpoint>> {
    let dir = run.dir.as_ref()?.join(files::TRAJECTORY);
    let k = run.config.train.checkpoint_every?;
    if k == 0 || !every.is_multiple_of(k) {
        return None;
    }
    let read = |step: usize| {
        nn::io::load_params::<f64>(&dir.join(files::checkpoint_name(step)), run.model.layout()).ok()
    };
    let last = read(t.steps())?;
    let same = |a: &[f64], b: &[f64]| {
        a.iter()
            .map(|x| x.to_bits())
            .eq(b.iter().map(|x| x.to_bits()))
    };
    if !same(&last, &run.params) {
        return None;
    }
    (0..t.steps())
        .step_by(every)
        .map(|step| {
            Some(Checkpoint {
                step,
                lr: t.lr_at(step).to_f64(),
                params: read(step)?,
            })
        })
        .collect()
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
        Some(p) => Ok(Some(data::read_weights(
            &relative_to(base, p),
            train.len(),
        )?)),
    }
}

/// `p` itself when absolute, else `base/p` (config paths are relative to the config's folder).
fn relative_to(base: &Path, p: &Path) -> std::path::PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The parameters named by `train.init_from` (relative to `base`), if any.
fn initial_params(cfg: &RunConfig, model: &Model, base: &Path) -> Result<Option<Vec<f64>>> {
    match &cfg.train.init_from {
        None => Ok(None),
        Some(p) => Ok(Some(nn::io::load_params::<f64>(
            &relative_to(base, p),
            model.layout(),
        )?)),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Breast-cancer logistic regression (f32, momentum) trained into `dir` with a checkpoint
    /// every `k` steps and after the last, written as `attrib train` writes them.
    fn trained_with_trajectory(dir: &Path, k: usize) -> Run {
        let text = format!(
            "data = {{ source = \"breast_cancer\" }}\nmodel = {{ kind = \"logistic\" }}\n\
             optim = {{ kind = \"sgd\", lr = 0.1, momentum = 0.9 }}\n\
             train = {{ epochs = 3, batch_size = 64, checkpoint_every = {k} }}\n"
        );
        let cfg = RunConfig::from_toml_str(&text, Path::new("t.toml")).unwrap();
        let rd = crate::RunDir::create(dir, &cfg, false).unwrap();
        let splits = data::load_splits(&cfg.data, dir).unwrap();
        let model = Model::new(&cfg.model, &splits.train).unwrap();
        let t = Trainer::<f32>::new(&model, &cfg, &splits.train).unwrap();
        let mut state = t.init_state(None).unwrap();
        let meta = BTreeMap::new();
        rd.write_checkpoint(model.layout(), &state, &meta).unwrap();
        while state.opt.step < t.steps() {
            t.step(&mut state).unwrap();
            if state.opt.step.is_multiple_of(k) || state.opt.step == t.steps() {
                rd.write_checkpoint(model.layout(), &state, &meta).unwrap();
            }
        }
        nn::io::save_params(&rd.params(), model.layout(), &state.params, &meta).unwrap();
        Run::load(dir).unwrap()
    }

    type Bits = Vec<(usize, u64, Vec<u64>)>;

    fn bits(c: &[Checkpoint]) -> Bits {
        c.iter()
            .map(|c| {
                let p = c.params.iter().map(|p| p.to_bits()).collect();
                (c.step, c.lr.to_bits(), p)
            })
            .collect()
    }

    #[test]
    fn checkpoints_are_read_from_the_trajectory_with_the_bits_of_a_replay() {
        let tmp = tempfile::tempdir().unwrap();
        let run = trained_with_trajectory(tmp.path(), 4);
        let mut replayed = Run::load(tmp.path()).unwrap();
        replayed.dir = None;
        for every in [4, 8, 6] {
            let (a, b) = (
                run.checkpoints(every).unwrap(),
                replayed.checkpoints(every).unwrap(),
            );
            assert!(a.len() >= 3, "{} checkpoints", a.len());
            assert_eq!(bits(&a), bits(&b), "every {every}");
        }
        // Read, not replayed: a changed file shows in the result.
        let path = tmp
            .path()
            .join(files::TRAJECTORY)
            .join(files::checkpoint_name(4));
        let mut p = nn::io::load_params::<f32>(&path, run.model.layout()).unwrap();
        p[0] += 1.0;
        nn::io::save_params(&path, run.model.layout(), &p, &BTreeMap::new()).unwrap();
        assert_eq!(run.checkpoints(4).unwrap()[1].params[0], f64::from(p[0]));
        // A spacing the trajectory does not divide is replayed (6 is not a multiple of 4).
        assert_eq!(
            bits(&run.checkpoints(6).unwrap()),
            bits(&replayed.checkpoints(6).unwrap())
        );
        // A trajectory without the run's last state is not trusted: replayed.
        let steps = Trainer::<f32>::new(&run.model, &run.config, &run.splits.train)
            .unwrap()
            .steps();
        let last = tmp
            .path()
            .join(files::TRAJECTORY)
            .join(files::checkpoint_name(steps));
        std::fs::remove_file(last).unwrap();
        assert_eq!(
            bits(&run.checkpoints(4).unwrap()),
            bits(&replayed.checkpoints(4).unwrap())
        );
    }
}
