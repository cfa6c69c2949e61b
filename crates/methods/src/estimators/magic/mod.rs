//! `magic`: exact data-weight metagradients by reverse-mode differentiation through the whole
//! training run (MATH.md E2; Ilyas & Engstrom 2025, "MAGIC").
//!
//! ## What it computes
//! For every target output `f` (a test example's loss, margin or log-likelihood at the final
//! parameters) and every training example `i`, `tau_i = d f(theta_T) / d w_i` of the deterministic
//! weighted training of MATH.md E1, at `w = 1`, exactly up to floating point: no convexity, no
//! optimum, no Hessian inverse. Sign convention of the crate: dropping a set `D` predicts
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`. Only the first-order (linear) prediction is exact; how well
//! it predicts *removals* depends on how smooth training is in `w` (MATH.md E2, "Smoothness").
//!
//! ## The reverse sweep
//! Step `t` computes `g_t = (1/|B_t|) sum_{i in B_t} w_i grad l_i(theta_t) + lambda theta_t` and
//! `(theta_{t+1}, s_{t+1}) = step(theta_t, s_t, g_t, eta_t)`. Starting from `A_theta_T = grad f(theta_T)`
//! and zero buffer adjoints, for `t = T-1 .. 0`:
//! 1. `b_t = A_{g_t}` and the direct adjoints of `theta_t` and `s_t` from the reverse rule of the
//!    optimizer update ([`nn::Optimizer::step_vjp`]; SGD, momentum, Nesterov, Adam, AdamW with
//!    bias correction, `eps`, `eps_root` and decoupled decay, each derived next to its forward
//!    formula in `nn::optim`);
//! 2. one dual reverse pass over batch `B_t` at `theta_t` with tangents `b_t` gives both
//!    `<grad l_i(theta_t), b_t>` for every `i in B_t` (the tangents of the per-example losses,
//!    [`nn::per_example::objective_hvps_with_jvps`]) and `H_t b_t`, the Hessian of the batch
//!    objective applied to `b_t` (forward-over-reverse);
//! 3. `tau_i += (1/|B_t|) <grad l_i(theta_t), b_t>` for `i in B_t` (the partial of `g_t` in `w_i`),
//!    and `A_theta_t = direct + H_t b_t + lambda b_t`.
//!
//! With gradient clipping (`train.clip`), `g_t = s(||g||) g + lambda theta_t` for the batch loss
//! gradient `g`, and steps 2-3 use `c_t = s b_t + (s'(r) / r) <g, b_t> g` (`r = ||g||`) in place of
//! `b_t`, the weight-decay term keeping `lambda b_t`; `g` comes from one extra gradient pass.
//!
//! Several targets share one sweep: their adjoints are carried side by side (`block` at a time), so
//! each state is replayed once per block and step 2 runs dual passes of [`TANGENTS_PER_PASS`]
//! tangents each (wider matrix products), in parallel. A block that fits in one pass (a lone
//! target) splits the step's batch into two shards instead, one dual pass each, so that it too
//! keeps two cores busy ([`batch_shards`]; the HVPs are sums over examples, so the shards' add up
//! exactly, up to rounding). The passes of one step evaluate the same values and differ only in
//! their tangents, so they run in one stream per thread under an [`engine::ValueMemo`]: each
//! stream's first pass records the values, the later ones reuse them (bitwise the same, so the
//! stream count never shows). Adam's rule reads `g_t`, recomputed by one plain gradient pass per
//! step (bitwise the step's gradient).
//!
//! Past states come from a [`replay::Trajectory`]: all stored when `(T + 1)` states fit in
//! `memory_budget` (without the optimizer buffers when the reverse rule does not read them, as
//! for SGD with momentum: [`nn::Optimizer::reads_buffers`]), otherwise a `k`-ary checkpoint tree
//! holding at most `2 + (k - 1) ceil(log_k T)` states and recomputing `O(T log_k T)` steps. Both
//! give the same bits. Everything runs in the run's
//! precision (`train.precision`, so that replay reproduces the run bitwise); scores are accumulated
//! in f64.
//!
//! Cost per block of `m` targets: replay, plus per step dual reverse passes carrying `m` tangents in
//! all (roughly `2 + 4m` plain passes of work; Adam adds one plain gradient). Memory: the held
//! states plus `m` adjoints of `params * (1 + buffers)` numbers.
//!
//! ## Exactness
//! Every operation of the models is differentiated exactly, including its second derivative. ReLU
//! and max pooling are piecewise linear: their derivatives are exact wherever no pre-activation sits
//! exactly on a kink (almost everywhere), where the metagradient is the derivative of the smooth
//! piece training is on; predictions across kinks degrade (MATH.md E2, Remark 2 of the paper), so
//! GELU, softplus, tanh and average pooling are the better choices. Nothing in the supported model,
//! optimizer and schedule kinds is refused.
//!
//! ## Resuming
//! In a run directory, every finished block of targets is written to `RUN/magic/blocks/`
//! ([`resume`]); a computation interrupted after some blocks redoes only the others, with the
//! same bits.
//!
//! ## Options
//! - `block` (64): targets per reverse sweep (bounds the adjoint memory; results depend on it only
//!   through rounding);
//! - `replay` (`auto`): `store`, `tree`, or `auto` = `store` when `(T + 1)` states fit in
//!   `memory_budget`, else `tree`;
//! - `memory_budget` (`1G`): bytes for held training states, e.g. `64M`; read by the `auto` choices;
//! - `arity` (`auto`): the tree's arity `>= 2`; `auto` = the fewest tree levels (least
//!   recomputation) whose resident states fit in `memory_budget`, smallest arity among those.
//!
//! - `wrt` (`weights`): `inputs` differentiates the training *inputs* instead (below): rows of
//!   `n * d` numbers, `d` features per example;
//! - `norm` (`false`): with `wrt = inputs`, write `||d f / d x_i||` per example instead.
//!
//! An explicit `replay = store` or explicit `arity` is used as given, whatever the budget.
//!
//! ## Input metagradients and relabelled copies (MATH.md E7)
//! The same sweep also gives, for a training example `i` with features `x_i`,
//! `d f / d x_i = sum_{t: i in B_t} (w_i / |B_t|) grad_{x_i} <b_t, grad_theta l_i(theta_t; x_i)>`
//! (E7 (b); `c_t` in place of `b_t` with clipping): the features join the dual reverse pass of
//! step 2 as a tracked leaf, and the tangent of their cotangent is exactly this mixed second
//! derivative ([`nn::per_example::objective_hvp_input_pass`]), so it costs one more product per
//! first layer and per pass. That is the whole derivative: every later effect of step `t` is in
//! `b_t`. From the logits' tangents of the same pass come the loss tangents of every other label,
//! hence `d f / d u_{i,y}` for a copy of example `i` relabelled `y` added at weight `u = 0` in
//! `i`'s own batch slots (E7 (a); flipping `i` to `y` is `w_i: 1 -> 0, u_{i,y}: 0 -> 1`, first
//! order `-tau_i + d f / d u_{i,y}`). Both through [`objective_metagradients`], which also takes
//! a single objective such as a mean validation loss ([`Objective::MeanOf`]); the data-weight
//! scores keep their bits whatever else is asked for. Inputs are the model's features after
//! the data pipeline (standardisation, scaling); targets from the training split get only the
//! derivative through training, not their own direct `grad_x f`.
//!
//! ## Errors
//! - [`MethodError::Run`] when replaying the run's configuration does not reproduce its final
//!   parameters (relative difference above [`REPLAY_TOLERANCE`]): the scores would explain another
//!   model (the run was trained elsewhere, or its config, data or parameters changed);
//! - [`MethodError::Unsupported`] when an `auto` choice finds no strategy within `memory_budget`;
//! - training errors (divergence) while replaying.

pub mod replay;
pub mod resume;

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use engine::Float;
use nn::{Adjoint, Optimizer, Precision, Trainer};
use rayon::prelude::*;

use self::replay::{Buffers, ByteSize, Replay, Trajectory};
use self::resume::BlockStore;
use crate::error::{MethodError, Result};
use crate::method::{Method, Registration, RowSink};
use crate::options::{at_least_one, Auto, Options};
use run::{Run, Targets};

/// The registry entry.
pub const REGISTRATION: Registration = Registration {
    name: "magic",
    summary: "MAGIC: exact metagradients by reverse-mode through the whole training run (E2)",
    build,
};

/// Largest relative difference `||theta_T(replay) - theta_T(run)|| / ||theta_T(run)||` accepted
/// between the replayed final parameters and the run's stored ones.
pub const REPLAY_TOLERANCE: f64 = 1e-3;

/// Tangents per dual pass: a block's adjoints are split into passes of this many directions, run
/// in parallel (a fixed number, so the bits never depend on the thread count). Wider passes make
/// wider matrix products but the engine's elementwise work on `[k, ...]` tangents is sequential;
/// 8 measured fastest on 2 cores for the digits MLP.
pub const TANGENTS_PER_PASS: usize = 8;

/// Default targets per sweep.
pub const DEFAULT_BLOCK: usize = 64;

/// Default memory budget for held training states: 1 GiB.
pub const DEFAULT_MEMORY_BUDGET: ByteSize = ByteSize(1 << 30);

/// The `replay` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayChoice {
    /// Store all states when they fit in the budget, else a checkpoint tree.
    Auto,
    /// Store all states.
    Store,
    /// Checkpoint tree.
    Tree,
}

impl FromStr for ReplayChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "auto" => Ok(ReplayChoice::Auto),
            "store" => Ok(ReplayChoice::Store),
            "tree" => Ok(ReplayChoice::Tree),
            _ => Err(format!("\"{s}\": use auto, store or tree")),
        }
    }
}

impl fmt::Display for ReplayChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplayChoice::Auto => "auto",
            ReplayChoice::Store => "store",
            ReplayChoice::Tree => "tree",
        })
    }
}

/// MAGIC's settings (module docs, "Options").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MagicConfig {
    /// Targets per reverse sweep (`>= 1`).
    pub block: usize,
    /// Replay strategy.
    pub replay: ReplayChoice,
    /// Bytes for held training states (read by the `auto` choices).
    pub memory_budget: ByteSize,
    /// Tree arity (`>= 2`), or `auto` from the budget.
    pub arity: Auto<usize>,
}

impl Default for MagicConfig {
    fn default() -> Self {
        MagicConfig {
            block: DEFAULT_BLOCK,
            replay: ReplayChoice::Auto,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            arity: Auto::Auto,
        }
    }
}

impl MagicConfig {
    /// The strategy for a run of `steps` steps whose stored states (store-all) take `stored`
    /// bytes each and whose checkpoints (tree) take `checkpoint` bytes each (more when store-all
    /// drops the optimizer buffers, [`replay::Buffers`]).
    ///
    /// # Errors
    /// [`MethodError::Unsupported`] when an `auto` choice finds nothing within the budget;
    /// [`MethodError::BadOption`] for an arity below 2.
    pub fn plan(&self, steps: usize, stored: u64, checkpoint: u64) -> Result<Replay> {
        let budget = self.memory_budget.0;
        let tree = || match self.arity {
            Auto::Value(arity) if arity < 2 => Err(MethodError::BadOption {
                method: "magic".into(),
                key: "arity".into(),
                value: arity.to_string(),
                reason: "must be `auto` or an integer >= 2".into(),
            }),
            Auto::Value(arity) => Ok(Replay::Tree { arity }),
            Auto::Auto => replay::best_arity(steps, checkpoint, budget)
                .map(|arity| Replay::Tree { arity })
                .ok_or_else(|| self.nothing_fits(steps, checkpoint)),
        };
        match self.replay {
            ReplayChoice::Store => Ok(Replay::Store),
            ReplayChoice::Tree => tree(),
            ReplayChoice::Auto if replay::fits(steps + 1, stored, budget) => Ok(Replay::Store),
            ReplayChoice::Auto => tree(),
        }
    }

    fn nothing_fits(&self, steps: usize, state: u64) -> MethodError {
        let least = replay::tree_bound(steps, 2);
        MethodError::Unsupported {
            method: "magic".into(),
            reason: format!(
                "memory_budget = {} holds no replay of this {steps}-step run: the smallest checkpoint \
                 tree (arity 2) keeps {least} states of {state} bytes ({} bytes); raise memory_budget \
                 or set arity explicitly",
                self.memory_budget,
                least as u64 * state
            ),
        }
    }
}

/// What a MAGIC computation did, for benchmarks and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct MagicReport {
    /// `"f32"` or `"f64"`: the run's precision, in which everything was computed.
    pub precision: &'static str,
    /// Training steps `T`.
    pub steps: usize,
    /// Number of parameters.
    pub params: usize,
    /// The replay strategy used.
    pub replay: Replay,
    /// Bytes of one held training state (store-all may hold them without optimizer buffers).
    pub state_bytes: u64,
    /// The most states held at once (measured).
    pub peak_states: usize,
    /// The strategy's bound on held states.
    pub resident_bound: usize,
    /// Training steps run by the replay (the first forward pass included).
    pub steps_run: usize,
    /// Reverse sweeps run (blocks of targets).
    pub sweeps: usize,
    /// Blocks of targets loaded from an earlier, interrupted computation instead of swept
    /// ([`resume`]).
    pub resumed: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Seconds the scores took to compute, summed over their blocks, including blocks that
    /// earlier or sharded runs finished (`None` when a block's time was not recorded).
    pub compute_seconds: Option<f64>,
    /// Of which the first forward run (store-all: training while storing every state; a tree
    /// runs nothing up front) and the check of its final parameters.
    pub forward_seconds: f64,
}

/// Scores `tau[target][i]` and how they were computed.
#[derive(Debug, Clone, PartialEq)]
pub struct MagicOutput {
    /// `tau[target][i] = d f_target / d w_i`.
    pub scores: Vec<Vec<f64>>,
    /// What was done.
    pub report: MagicReport,
}

/// MAGIC over a run (module docs).
#[derive(Debug, Clone)]
pub struct Magic {
    /// Settings.
    pub config: MagicConfig,
    /// What the scores differentiate (option `wrt`).
    pub wrt: Wrt,
    /// With [`Wrt::Inputs`]: write `||d f / d x_i||` per example instead of every feature
    /// (option `norm`).
    pub norm: bool,
}

/// The `wrt` option: what MAGIC's scores are the derivatives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrt {
    /// The data weights, `tau_i = d f / d w_i` (MATH.md E2; the default).
    Weights,
    /// The training inputs, `d f / d x_i` for every feature of every example (MATH.md E7 (b)).
    Inputs,
}

impl FromStr for Wrt {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "weights" => Ok(Wrt::Weights),
            "inputs" => Ok(Wrt::Inputs),
            _ => Err(format!("\"{s}\": use weights or inputs")),
        }
    }
}

impl fmt::Display for Wrt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wrt::Weights => "weights",
            Wrt::Inputs => "inputs",
        })
    }
}

/// Reads the options `block` (64), `replay` (auto), `memory_budget` (1G), `arity` (auto), `wrt`
/// (weights) and `norm` (false).
///
/// # Errors
/// A bad option value.
pub fn build(opts: &mut Options) -> Result<Box<dyn Method>> {
    let block = opts.get("block", DEFAULT_BLOCK, at_least_one)?;
    let replay = opts.get("replay", ReplayChoice::Auto, |_| Ok(()))?;
    let memory_budget = opts.get("memory_budget", DEFAULT_MEMORY_BUDGET, |_| Ok(()))?;
    let arity = opts.get("arity", Auto::Auto, |a: &Auto<usize>| match a {
        Auto::Value(k) if *k < 2 => Err("must be `auto` or an integer >= 2".into()),
        _ => Ok(()),
    })?;
    let wrt = opts.get("wrt", Wrt::Weights, |_| Ok(()))?;
    let norm = opts.get("norm", false, |_| Ok(()))?;
    if norm && wrt == Wrt::Weights {
        return Err(MethodError::BadOption {
            method: "magic".into(),
            key: "norm".into(),
            value: "true".into(),
            reason: "norm applies to input derivatives only; add wrt=inputs".into(),
        });
    }
    Ok(Box::new(Magic {
        config: MagicConfig {
            block,
            replay,
            memory_budget,
            arity,
        },
        wrt,
        norm,
    }))
}

impl Method for Magic {
    fn name(&self) -> &'static str {
        "magic"
    }

    /// # Errors
    /// As [`magic_scores`]; with `wrt = inputs`, as [`objective_metagradients`].
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        Ok(self.attribute_timed(run, targets)?.0)
    }

    fn attribute_timed(
        &self,
        run: &Run,
        targets: &Targets,
    ) -> Result<(Vec<Vec<f64>>, Option<f64>)> {
        if self.wrt == Wrt::Weights {
            let out = magic_scores(run, targets, &self.config)?;
            return Ok((out.scores, out.report.compute_seconds));
        }
        let want = Want {
            inputs: true,
            relabels: false,
        };
        let (grads, _) =
            objective_metagradients(run, Objective::EachTarget(targets), &self.config, want)?;
        let d: usize = run.model.example_shape().iter().product();
        let rows = grads
            .into_iter()
            .map(|g| match self.norm {
                false => g.inputs,
                true => g
                    .inputs
                    .chunks(d.max(1))
                    .map(|x| x.iter().map(|v| v * v).sum::<f64>().sqrt())
                    .collect(),
            })
            .collect();
        Ok((rows, None))
    }

    fn attribute_streamed(
        &self,
        run: &Run,
        targets: &Targets,
        sink: &mut RowSink<'_>,
    ) -> Result<Option<f64>> {
        if self.wrt == Wrt::Weights {
            let report = magic_scores_into(run, targets, &self.config, sink)?;
            return Ok(report.compute_seconds);
        }
        let (rows, seconds) = self.attribute_timed(run, targets)?;
        sink(&rows)?;
        Ok(seconds)
    }

    fn values_per_example(&self, run: &Run) -> usize {
        match (self.wrt, self.norm) {
            (Wrt::Inputs, false) => run.model.example_shape().iter().product(),
            _ => 1,
        }
    }
}

/// MAGIC scores of `targets` for `run` (module docs), in the run's precision.
///
/// Guarantees: rows follow `targets.indices`, columns the training set; the bits do not depend
/// on the replay strategy or the number of threads, and on `block` only through rounding.
///
/// # Errors
/// See the module docs, "Errors".
pub fn magic_scores(run: &Run, targets: &Targets, config: &MagicConfig) -> Result<MagicOutput> {
    let mut scores = Vec::with_capacity(targets.indices.len());
    let report = magic_scores_into(run, targets, config, &mut |rows| {
        scores.extend_from_slice(rows);
        Ok(())
    })?;
    Ok(MagicOutput { scores, report })
}

/// [`magic_scores`] handing each block's rows to `sink` in target order as soon as the block is
/// swept (or loaded from the store), holding no other block's rows; returns the report.
///
/// # Errors
/// As [`magic_scores`]; the sink's errors.
pub fn magic_scores_into(
    run: &Run,
    targets: &Targets,
    config: &MagicConfig,
    sink: &mut RowSink<'_>,
) -> Result<MagicReport> {
    run.check_targets(targets)?;
    match run.config.train.precision {
        Precision::F32 => sweep::<f32>(run, targets, config, sink),
        Precision::F64 => sweep::<f64>(run, targets, config, sink),
    }
}

// Over 100 lines because it is the reverse sweep of the module doc, steps 1-3, written in the
// order the doc gives them, around one loop over blocks and one over steps: the replay plan and
// the dual passes are already functions of their own.
fn sweep<F: Float>(
    run: &Run,
    targets: &Targets,
    config: &MagicConfig,
    sink: &mut RowSink<'_>,
) -> Result<MagicReport> {
    let start = Instant::now();
    let setup = Setup::<F>::new(run, config)?;
    // Blocks that an earlier computation finished are loaded, not swept; when all are, the
    // trajectory is not even replayed. Finding them reads no rows: each is read once, when it is
    // handed over, so that no two blocks' rows are held at once.
    let store = BlockStore::new(run, targets, &setup.strategy);
    let blocks: Vec<&[usize]> = targets.indices.chunks(config.block.max(1)).collect();
    let finished: Vec<bool> = blocks.iter().map(|b| store.is_finished(b)).collect();
    let resumed = finished.iter().filter(|&&f| f).count();
    // A shard sweeps only its blocks (block b belongs to shard b mod N).
    let mine = |b: usize| run.shard.is_none_or(|s| s.owns(b));
    let to_sweep = (0..blocks.len())
        .filter(|&b| !finished[b] && mine(b))
        .count();
    // A shard never assembles: only the unsharded command writes the score file, so no file is
    // written twice (by the shard that happens to finish last and by the assemble step).
    if to_sweep == 0 && (resumed < blocks.len() || run.shard.is_some()) {
        return Err(incomplete(run, resumed, blocks.len()));
    }
    // Each block's compute time: recorded with it, or measured below when swept now.
    let mut block_seconds: Vec<Option<f64>> = blocks
        .iter()
        .zip(&finished)
        .map(|(b, &f)| if f { store.seconds(b) } else { None })
        .collect();
    if resumed == blocks.len() {
        for &b in &blocks {
            sink(&stored_block(&store, b)?)?;
        }
        let mut report = setup.report(None, 0, resumed, start, 0.0);
        report.compute_seconds = block_seconds.iter().copied().sum();
        return Ok(report);
    }
    let mut traj = setup.trajectory()?;
    let theta_end = traj.state(setup.steps)?.params.clone();
    check_replay(run, &theta_end)?;
    let forward_seconds = start.elapsed().as_secs_f64();
    let mut sweeps = 0;
    let progress = Progress::new(setup.steps * to_sweep);
    let assemble = run.shard.is_none();
    for (b, &chunk) in blocks.iter().enumerate() {
        if finished[b] {
            if assemble {
                sink(&stored_block(&store, chunk)?)?;
            }
            continue;
        }
        if !mine(b) {
            continue;
        }
        sweeps += 1;
        let swept = Instant::now();
        let block = Targets {
            indices: chunk.to_vec(),
            ..targets.clone()
        };
        let grads_f = nn::per_example::output_grads(
            &run.model,
            &theta_end,
            &run.target_batch::<F>(&block),
            targets.output,
        );
        let out = setup.sweep_block(run, &mut traj, grads_f, Want::WEIGHTS, &progress)?;
        // The block's sweep and its share of this run's forward replay.
        let seconds = forward_seconds / to_sweep as f64 + swept.elapsed().as_secs_f64();
        store.save(chunk, &out.weights, seconds)?;
        block_seconds[b] = Some(seconds);
        if assemble {
            sink(&out.weights)?;
        }
    }
    if !assemble {
        return Err(incomplete(run, resumed + sweeps, blocks.len()));
    }
    let mut report = setup.report(Some(&traj), sweeps, resumed, start, forward_seconds);
    report.compute_seconds = block_seconds.iter().copied().sum();
    Ok(report)
}

/// The rows of a block found finished in `store` a moment ago.
///
/// # Errors
/// The block's file was removed or damaged since (another process cleaning the store).
fn stored_block(store: &BlockStore, block: &[usize]) -> Result<Vec<Vec<f64>>> {
    store.load(block).ok_or_else(|| MethodError::Unsupported {
        method: "magic".into(),
        reason: "a finished block of targets disappeared from the run's store while the scores \
                 were assembled (was RUN/store/ cleaned meanwhile?); run the command again"
            .into(),
    })
}

/// The error of a shard that stored its blocks while others are missing.
fn incomplete(run: &Run, done: usize, total: usize) -> MethodError {
    MethodError::Incomplete {
        method: "magic".into(),
        shard: run.shard.map(|s| s.to_string()).unwrap_or_default(),
        done,
        total,
        unit: "blocks of targets".into(),
    }
}

/// Which derivatives a reverse sweep accumulates besides `tau = d f / d w` (always computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// `d f / d x_i` for every training example's features (MATH.md E7 (b)).
    pub inputs: bool,
    /// `d f / d u_{i,y}` for a copy of every training example relabelled `y`, at weight 0 in the
    /// example's own batch slot (MATH.md E7 (a)); classification only.
    pub relabels: bool,
}

impl Want {
    /// Only the data-weight metagradient.
    pub const WEIGHTS: Want = Want {
        inputs: false,
        relabels: false,
    };
}

/// The derivatives of one output (or objective) from one reverse sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Metagradient {
    /// `weights[i] = d f / d w_i` (MATH.md E2).
    pub weights: Vec<f64>,
    /// With [`Want::inputs`]: `inputs[i * d + k] = d f / d x_{i,k}`, `d` features per example
    /// (row-major `[n, ...example_shape]`), MATH.md E7 (b); else empty.
    pub inputs: Vec<f64>,
    /// With [`Want::relabels`]: `relabels[i * c + y] = d f / d u_{i,y}`, the effect of adding a
    /// copy of example `i` with label `y` at weight `u` in the example's own batch slots (for
    /// `y = y_i` this is `weights[i]`), MATH.md E7 (a); else empty. `c` labels (2 for binary).
    pub relabels: Vec<f64>,
}

/// The derivatives of several objectives from one block sweep, one entry per objective.
struct BlockOut {
    weights: Vec<Vec<f64>>,
    inputs: Vec<Vec<f64>>,
    relabels: Vec<Vec<f64>>,
}

/// Reverse steps done and to do over all sweeps of a computation, for progress reports.
struct Progress {
    total: usize,
    done: std::cell::Cell<usize>,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress {
            total,
            done: std::cell::Cell::new(0),
        }
    }
}

/// What every sweep of one computation shares: the trainer, the replay plan and the step rules.
struct Setup<'a, F: Float> {
    trainer: Trainer<'a, F>,
    initial: nn::TrainState<F>,
    strategy: Replay,
    kept: Buffers,
    state_bytes: u64,
    steps: usize,
    params: usize,
    buffers: usize,
}

impl<'a, F: Float> Setup<'a, F> {
    fn new(run: &'a Run, config: &MagicConfig) -> Result<Self> {
        let trainer = run.trainer::<F>()?;
        let initial = trainer.init_state(
            run.init
                .as_ref()
                .map(|p| p.iter().map(|&x| F::from_f64(x)).collect()),
        )?;
        let (steps, params, buffers) = (
            trainer.steps(),
            initial.params.len(),
            initial.opt.bufs.len(),
        );
        let (strategy, kept, state_bytes) =
            replay_plan::<F>(config, &run.config.optim, steps, params)?;
        Ok(Setup {
            trainer,
            initial,
            strategy,
            kept,
            state_bytes,
            steps,
            params,
            buffers,
        })
    }

    fn trajectory(&self) -> Result<Trajectory<'_, '_, F>> {
        Trajectory::new(
            &self.trainer,
            self.initial.clone(),
            self.strategy,
            self.kept,
        )
    }

    fn report(
        &self,
        traj: Option<&Trajectory<'_, '_, F>>,
        sweeps: usize,
        resumed: usize,
        start: Instant,
        forward_seconds: f64,
    ) -> MagicReport {
        MagicReport {
            precision: F::NAME,
            steps: self.steps,
            params: self.params,
            replay: self.strategy,
            state_bytes: self.state_bytes,
            peak_states: traj.map_or(0, Trajectory::peak_states),
            resident_bound: replay::resident_bound(self.strategy, self.steps),
            steps_run: traj.map_or(0, Trajectory::steps_run),
            sweeps,
            resumed,
            seconds: start.elapsed().as_secs_f64(),
            forward_seconds,
            compute_seconds: None,
        }
    }

    /// One reverse sweep (module docs, "The reverse sweep") from the final-parameter gradients
    /// `grads_f` of a block of outputs, accumulating what `want` asks for.
    fn sweep_block(
        &self,
        run: &Run,
        traj: &mut Trajectory<'_, '_, F>,
        grads_f: Vec<Vec<F>>,
        want: Want,
        progress: &Progress,
    ) -> Result<BlockOut> {
        let (model, opt, trainer) = (&run.model, &run.config.optim, &self.trainer);
        let lambda = F::from_f64(opt.gradient_l2());
        let clip = run.config.train.clip;
        let n = run.n_train();
        let m = grads_f.len();
        let d: usize = model.example_shape().iter().product();
        let c = label_count(model.task());
        let mut adj: Vec<Adjoint<F>> = grads_f
            .into_iter()
            .map(|g| Adjoint::at_end(g, self.buffers))
            .collect();
        let mut out = BlockOut {
            weights: vec![vec![0.0f64; n]; m],
            inputs: vec![Vec::new(); m],
            relabels: vec![Vec::new(); m],
        };
        if want.inputs {
            out.inputs = vec![vec![0.0f64; n * d]; m];
        }
        if want.relabels {
            out.relabels = vec![vec![0.0f64; n * c]; m];
        }
        for t in (0..self.steps).rev() {
            run.progress
                .report("magic reverse steps", progress.done.get(), progress.total);
            progress.done.set(progress.done.get() + 1);
            let lr = trainer.lr_at(t);
            let state = traj.state(t)?;
            // The step's loss gradient, when Adam's rule or clipping's reads it.
            let raw = (opt.reads_gradient() || clip.is_some())
                .then(|| trainer.loss_gradient(&state.params, t).1);
            let grad = raw
                .as_ref()
                .filter(|_| opt.reads_gradient())
                .map(|r| trainer.clip_and_decay(&state.params, r.clone()));
            let bs: Vec<Vec<F>> = adj
                .par_iter_mut()
                .map(|a| opt.step_vjp(&state.opt, grad.as_deref(), lr, a))
                .collect();
            // `bs` are the adjoints of g_t = s(||g||) g + lambda theta; the loss gradient `g`
            // receives `clip_vjp` of them, the weight decay term `lambda bs` (below).
            let dirs: Vec<Vec<F>> = match (clip, &raw) {
                (Some(c), Some(g)) => {
                    // The scale and its derivative depend on g alone: once per step.
                    let scale = c.scale(nn::trainer::l2_norm(g));
                    bs.par_iter().map(|b| clip_vjp(scale, g, b)).collect()
                }
                _ => Vec::new(),
            };
            let dirs = if dirs.is_empty() { &bs } else { &dirs };
            let (batch, w) = trainer.batch(t);
            // A_theta_t = direct + H_t dirs + lambda b_t, folded into `adj` by the passes.
            let step = StepUpdate {
                dirs,
                decay: (lambda, &bs),
            };
            let passes = dual_passes(model, &state.params, &batch, &w, step, &mut adj, want);
            let inv_b = 1.0 / batch.len() as f64;
            let slots = &trainer.plan()[t];
            for (row, jv) in out.weights.iter_mut().zip(&passes.jvps) {
                for (&i, d) in slots.iter().zip(jv) {
                    row[i] += inv_b * d.to_f64();
                }
            }
            // The input tangents already carry w_i / |B| (MATH.md E7 (b)); the relabelled loss
            // tangents, like the weights' `jvps`, take 1 / |B|.
            for (row, tx) in out.inputs.iter_mut().zip(&passes.inputs) {
                for (&i, x) in slots.iter().zip(tx.chunks(d.max(1))) {
                    for (acc, &v) in row[i * d..(i + 1) * d].iter_mut().zip(x) {
                        *acc += v.to_f64();
                    }
                }
            }
            for (row, jl) in out.relabels.iter_mut().zip(&passes.relabels) {
                for (&i, l) in slots.iter().zip(jl.chunks(c.max(1))) {
                    for (acc, &v) in row[i * c..(i + 1) * c].iter_mut().zip(l) {
                        *acc += inv_b * v.to_f64();
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Labels per example for relabelled copies: the classes, 2 for a binary model, else 0.
fn label_count(task: nn::Task) -> usize {
    match task {
        nn::Task::Classes(c) => c,
        nn::Task::Binary => 2,
        nn::Task::Regression | nn::Task::NextToken(_) => 0,
    }
}

/// The outputs a sweep of [`objective_metagradients`] differentiates.
#[derive(Debug, Clone, Copy)]
pub enum Objective<'a> {
    /// One objective per target: `f_target(theta_T)`.
    EachTarget(&'a Targets),
    /// One objective: the mean of the targets' outputs, e.g. the mean validation loss
    /// `L_val = mean_{z in V} l(z; theta_T)` (MATH.md E7), so that one sweep of one adjoint gives
    /// `d L_val / d w` and `d L_val / d x` (by linearity, the means of the targets' derivatives).
    MeanOf(&'a Targets),
}

impl Objective<'_> {
    fn targets(&self) -> &Targets {
        match self {
            Objective::EachTarget(t) | Objective::MeanOf(t) => t,
        }
    }

    /// `grad F_j(theta)` for every objective, in the run's precision (the gradients of
    /// [`magic_scores`] for [`Objective::EachTarget`]).
    fn grads<F: Float>(&self, run: &Run, theta: &[F]) -> Vec<Vec<F>> {
        let t = self.targets();
        let per_target =
            nn::per_example::output_grads(&run.model, theta, &run.target_batch::<F>(t), t.output);
        match self {
            Objective::EachTarget(_) => per_target,
            Objective::MeanOf(_) => {
                // Summed in f64 in target order, then divided: a fixed order.
                let mut mean = vec![0.0f64; theta.len()];
                for g in &per_target {
                    for (m, x) in mean.iter_mut().zip(g) {
                        *m += x.to_f64();
                    }
                }
                let k = per_target.len().max(1) as f64;
                vec![mean.into_iter().map(|m| F::from_f64(m / k)).collect()]
            }
        }
    }
}

/// Metagradients of the objectives of `objective` (MATH.md E2, E7): one reverse sweep per
/// `config.block` objectives, accumulating `d F / d w` and what `want` asks for besides. For
/// [`Objective::EachTarget`] with nothing else wanted, the weights are [`magic_scores`]'s,
/// bit for bit; asking for inputs or relabels leaves them unchanged (the same passes with more
/// read off them). Nothing is kept in the run directory for resuming.
///
/// # Errors
/// As [`magic_scores`], and [`MethodError::Unsupported`] when `want` asks for input
/// derivatives of a model that reads token ids, or for relabelled copies without labels.
pub fn objective_metagradients(
    run: &Run,
    objective: Objective<'_>,
    config: &MagicConfig,
    want: Want,
) -> Result<(Vec<Metagradient>, MagicReport)> {
    run.check_targets(objective.targets())?;
    check_want(run, want)?;
    match run.config.train.precision {
        Precision::F32 => objectives_sweep::<f32>(run, objective, config, want),
        Precision::F64 => objectives_sweep::<f64>(run, objective, config, want),
    }
}

fn check_want(run: &Run, want: Want) -> Result<()> {
    let refuse = |reason: &str| {
        Err(MethodError::Unsupported {
            method: "magic".into(),
            reason: reason.into(),
        })
    };
    if want.inputs && !run.model.has_dense_input() {
        return refuse(
            "input metagradients (wrt = inputs) need real-valued features; this model reads token ids",
        );
    }
    if want.relabels && label_count(run.model.task()) == 0 {
        return refuse("relabelled copies need a classification task");
    }
    Ok(())
}

fn objectives_sweep<F: Float>(
    run: &Run,
    objective: Objective<'_>,
    config: &MagicConfig,
    want: Want,
) -> Result<(Vec<Metagradient>, MagicReport)> {
    let start = Instant::now();
    let setup = Setup::<F>::new(run, config)?;
    let mut traj = setup.trajectory()?;
    let theta_end = traj.state(setup.steps)?.params.clone();
    check_replay(run, &theta_end)?;
    let forward_seconds = start.elapsed().as_secs_f64();
    let grads = objective.grads(run, &theta_end);
    let blocks: Vec<&[Vec<F>]> = grads.chunks(config.block.max(1)).collect();
    let progress = Progress::new(setup.steps * blocks.len());
    let mut all = Vec::with_capacity(grads.len());
    for block in &blocks {
        let out = setup.sweep_block(run, &mut traj, block.to_vec(), want, &progress)?;
        let rows = out.weights.into_iter().zip(out.inputs).zip(out.relabels);
        for ((weights, inputs), relabels) in rows {
            all.push(Metagradient {
                weights,
                inputs,
                relabels,
            });
        }
    }
    let report = setup.report(Some(&traj), blocks.len(), 0, start, forward_seconds);
    Ok((all, report))
}

/// The replay strategy for a run of `steps` steps of `opt` over `params` parameters, what
/// store-all keeps of each state (the buffers only when the reverse rule reads them), and the
/// bytes of one held state.
fn replay_plan<F: Float>(
    config: &MagicConfig,
    opt: &nn::OptimConfig,
    steps: usize,
    params: usize,
) -> Result<(Replay, Buffers, u64)> {
    let kept = if opt.reads_buffers() {
        Buffers::Keep
    } else {
        Buffers::Drop
    };
    let checkpoint_bytes = replay::state_bytes::<F>(params, opt.buffers());
    let stored_bytes = match kept {
        Buffers::Keep => checkpoint_bytes,
        Buffers::Drop => replay::state_bytes::<F>(params, 0),
    };
    let strategy = config.plan(steps, stored_bytes, checkpoint_bytes)?;
    let held = match strategy {
        Replay::Store => stored_bytes,
        Replay::Tree { .. } => checkpoint_bytes,
    };
    Ok((strategy, kept, held))
}

/// Batch shards per dual pass for a block of `targets` directions: 2 when the block fits in one
/// pass, so that a small block still keeps two cores busy, else 1. A function of the block alone,
/// never of the thread count, so the bits are the same on any machine.
pub fn batch_shards(targets: usize) -> usize {
    if targets <= TANGENTS_PER_PASS {
        2
    } else {
        1
    }
}

/// A step's directions and what the update adds besides their HVPs: `A_theta += H v_j +
/// lambda b_j` for direction `v_j` of `dirs` and `b_j` of `decay.1` (`v_j = b_j` without clipping).
struct StepUpdate<'a, F> {
    dirs: &'a [Vec<F>],
    decay: (F, &'a [Vec<F>]),
}

/// What the dual passes of one step give per direction `j` besides the HVPs: the per-example
/// loss tangents `jvps[j][i] = <grad l_i, v_j>`, and with [`Want`] the input tangents
/// `inputs[j]` (`[b, d]` flat, already weighted by `w_i / |B|`) and the relabelled loss tangents
/// `relabels[j]` (`[b, c]` flat, unweighted); empty when not wanted.
struct PassOut<F> {
    jvps: Vec<Vec<F>>,
    inputs: Vec<Vec<F>>,
    relabels: Vec<Vec<F>>,
}

impl<F> PassOut<F> {
    fn new() -> Self {
        PassOut {
            jvps: Vec::new(),
            inputs: Vec::new(),
            relabels: Vec::new(),
        }
    }

    fn extend(&mut self, other: PassOut<F>) {
        self.jvps.extend(other.jvps);
        self.inputs.extend(other.inputs);
        self.relabels.extend(other.relabels);
    }
}

/// One dual reverse pass over `batch` along `dirs`: [`nn::per_example::objective_hvp_pass`],
/// or, when `want` asks for more, [`nn::per_example::objective_hvp_input_pass`] (whose HVPs and
/// loss tangents have the same bits) with the extras read off it.
fn one_pass<F: Float>(
    model: &nn::Model,
    params: &[F],
    batch: &nn::Batch<F>,
    w: &[F],
    dirs: &[&[F]],
    want: Want,
) -> (nn::per_example::HvpPass<F>, PassOut<F>) {
    if want == Want::WEIGHTS {
        let mut pass = nn::per_example::objective_hvp_pass(model, params, batch, w, dirs);
        let mut out = PassOut::new();
        out.jvps = std::mem::take(&mut pass.loss_jvps);
        return (pass, out);
    }
    let full = nn::per_example::objective_hvp_input_pass(model, params, batch, w, dirs);
    let mut pass = full.pass;
    let mut out = PassOut::new();
    out.jvps = std::mem::take(&mut pass.loss_jvps);
    if want.inputs {
        out.inputs = full.input_tangents;
    }
    if want.relabels {
        out.relabels =
            nn::per_example::relabelled_loss_jvps(model.task(), &full.logits, &full.logit_jvps)
                .expect("relabels are asked for classification tasks only (check_want)");
    }
    (pass, out)
}

/// Adds `H v_j + lambda b_j` to `adj[j].theta` for every direction of `step`, and returns the
/// per-example loss tangents `[<grad l_i, v_j>]_i` (and the extras of `want`, [`PassOut`]):
/// dual passes of [`TANGENTS_PER_PASS`] directions over [`batch_shards`] contiguous shards of the
/// batch, run in parallel.
///
/// One shard: each pass adds its HVPs leaf by leaf straight into its own targets' adjoints
/// (`x += h + lambda b`, the same arithmetic as adding a flat HVP, so the same bits). Two shards:
/// each shard's pass differentiates its own weighted mean, so its HVP (and input tangents) are
/// rescaled by `|shard| / |B|`, the shards are summed in order, and then added; per-example
/// tangents are concatenated.
fn dual_passes<F: Float>(
    model: &nn::Model,
    params: &[F],
    batch: &nn::Batch<F>,
    w: &[F],
    step: StepUpdate<'_, F>,
    adj: &mut [Adjoint<F>],
    want: Want,
) -> PassOut<F> {
    let shards = batch_shards(step.dirs.len()).min(batch.len().max(1));
    if shards > 1 {
        return sharded_passes(model, params, batch, w, shards, step, adj, want);
    }
    let StepUpdate {
        dirs,
        decay: (lambda, bs),
    } = step;
    // Passes compute the same values: they run in contiguous streams, one after another under a
    // shared `ValueMemo`, so only each stream's first pass computes them. The values are
    // bitwise the same either way, so the number of streams (one per thread) never shows in the
    // results.
    let mut work: Vec<PassWork<'_, F>> = dirs
        .chunks(TANGENTS_PER_PASS)
        .zip(bs.chunks(TANGENTS_PER_PASS))
        .zip(adj.chunks_mut(TANGENTS_PER_PASS))
        .map(|((dirs, bs), adj)| PassWork { dirs, bs, adj })
        .collect();
    let streams = rayon::current_num_threads().clamp(1, work.len().max(1));
    let per_stream = work.len().div_ceil(streams).max(1);
    work.par_chunks_mut(per_stream)
        .map(|stream| {
            let memo = engine::ValueMemo::<F>::new();
            let mut outs = PassOut::new();
            for PassWork { dirs, bs, adj } in stream.iter_mut() {
                let views: Vec<&[F]> = dirs.iter().map(Vec::as_slice).collect();
                let (pass, out) = memo.run(|| one_pass(model, params, batch, w, &views, want));
                for (j, (a, bj)) in adj.iter_mut().zip(bs.iter()).enumerate() {
                    for leaf in &pass.leaves {
                        let r = leaf.range.clone();
                        add_step(&mut a.theta[r.clone()], leaf.hvps(j), &bj[r], lambda);
                    }
                }
                outs.extend(out);
            }
            outs
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(PassOut::new(), |mut acc, o| {
            acc.extend(o);
            acc
        })
}

/// `x += h + lambda b` elementwise, `h = 0` when `None`: the one place where a step's HVP and
/// weight-decay term enter an adjoint, so that every path adds them with the same arithmetic
/// (and the same bits).
fn add_step<F: Float>(x: &mut [F], h: Option<&[F]>, b: &[F], lambda: F) {
    match h {
        Some(h) => {
            for ((x, &h), &bi) in x.iter_mut().zip(h).zip(b) {
                *x += h + lambda * bi;
            }
        }
        None => {
            for (x, &bi) in x.iter_mut().zip(b) {
                *x += F::ZERO + lambda * bi;
            }
        }
    }
}

/// One dual pass's directions, with their weight-decay terms and the adjoints they update.
struct PassWork<'a, F> {
    dirs: &'a [Vec<F>],
    bs: &'a [Vec<F>],
    adj: &'a mut [Adjoint<F>],
}

/// [`dual_passes`] for a block that fits in one pass, its batch split over `shards` shards.
#[allow(clippy::too_many_arguments)]
fn sharded_passes<F: Float>(
    model: &nn::Model,
    params: &[F],
    batch: &nn::Batch<F>,
    w: &[F],
    shards: usize,
    step: StepUpdate<'_, F>,
    adj: &mut [Adjoint<F>],
    want: Want,
) -> PassOut<F> {
    let StepUpdate {
        dirs,
        decay: (lambda, bs),
    } = step;
    let b = batch.len();
    let bounds: Vec<(usize, usize)> = (0..shards)
        .map(|s| (s * b / shards, (s + 1) * b / shards))
        .collect();
    let views: Vec<&[F]> = dirs.iter().map(Vec::as_slice).collect();
    let passes: Vec<(Vec<Vec<F>>, PassOut<F>)> = bounds
        .par_iter()
        .map(|&(lo, hi)| {
            let rows = batch.rows(lo, hi - lo);
            let (pass, out) = one_pass(model, params, &rows, &w[lo..hi], &views, want);
            (flat_hvps(&pass, views.len(), params.len()), out)
        })
        .collect();
    let mut outs = PassOut::new();
    for (k, (a, bk)) in adj.iter_mut().zip(bs).enumerate() {
        let mut hv = vec![F::ZERO; params.len()];
        let mut jv = Vec::with_capacity(b);
        let mut xs = Vec::new();
        let mut ls = Vec::new();
        for ((h, out), &(lo, hi)) in passes.iter().zip(&bounds) {
            let share = F::from_f64((hi - lo) as f64 / b as f64);
            for (acc, &x) in hv.iter_mut().zip(&h[k]) {
                *acc += share * x;
            }
            jv.extend_from_slice(&out.jvps[k]);
            if let Some(x) = out.inputs.get(k) {
                xs.extend(x.iter().map(|&v| share * v));
            }
            if let Some(l) = out.relabels.get(k) {
                ls.extend_from_slice(l);
            }
        }
        add_step(&mut a.theta, Some(&hv), bk, lambda);
        outs.jvps.push(jv);
        if want.inputs {
            outs.inputs.push(xs);
        }
        if want.relabels {
            outs.relabels.push(ls);
        }
    }
    outs
}

/// The HVPs of a pass as `k` flat vectors of `p` numbers (zeros where a leaf has none), as
/// [`nn::per_example::objective_hvps_with_jvps`] builds them.
fn flat_hvps<F: Float>(pass: &nn::per_example::HvpPass<F>, k: usize, p: usize) -> Vec<Vec<F>> {
    (0..k)
        .map(|j| {
            let mut h = Vec::with_capacity(p);
            for leaf in &pass.leaves {
                match leaf.hvps(j) {
                    Some(t) => h.extend_from_slice(t),
                    None => h.extend(std::iter::repeat_n(F::ZERO, leaf.range.len())),
                }
            }
            h
        })
        .collect()
}

/// The reverse rule of gradient clipping `out = s(||g||) g` (`train.clip`):
/// `A_g = s A_out + (s'(r) / r) <g, A_out> g` with `r = ||g||` and `(s, k) = (s(r), s'(r) / r)` from
/// [`nn::Clip::scale`]; the dot product is accumulated in f64 in index order.
fn clip_vjp<F: Float>((s, k): (f64, f64), g: &[F], a_out: &[F]) -> Vec<F> {
    let dot: f64 = g
        .iter()
        .zip(a_out)
        .map(|(x, y)| x.to_f64() * y.to_f64())
        .sum();
    let (s, kd) = (F::from_f64(s), F::from_f64(k * dot));
    a_out.iter().zip(g).map(|(&a, &x)| s * a + kd * x).collect()
}

/// Errors unless the replayed final parameters are the run's (within [`REPLAY_TOLERANCE`]).
fn check_replay<F: Float>(run: &Run, theta: &[F]) -> Result<()> {
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&a, &b) in theta.iter().zip(&run.params) {
        let a = a.to_f64();
        diff += (a - b) * (a - b);
        norm += b * b;
    }
    let rel = (diff / norm.max(f64::MIN_POSITIVE)).sqrt();
    if rel.is_finite() && rel <= REPLAY_TOLERANCE {
        return Ok(());
    }
    Err(MethodError::Run {
        path: run.dir.clone().unwrap_or_else(|| "<memory>".into()),
        reason: format!(
            "magic differentiates the training run by replaying it, but replaying this run's config gives \
             final parameters that differ from its params.safetensors (relative difference {rel:.2e} > {REPLAY_TOLERANCE:e}); \
             the run was trained elsewhere or its config, data or parameters changed. Retrain it here \
             (`attrib train`) before attributing with magic"
        ),
    })
}
