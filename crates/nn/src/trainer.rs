//! The deterministic weighted trainer (MATH.md E1).
//!
//! `theta_0 = init(seed)`; the batch order is a function of the seed only; step `t` uses
//! `g_t = (1/|B_t|) sum_{i in B_t} w_i grad l_i(theta_t) + lambda theta_t` and the optimizer update.
//! A dropped example keeps its slot with weight 0, so `|B_t|` and the order never depend on `w`.
//! Every reduction has a fixed order, so the final parameters are bitwise identical across reruns
//! and thread counts.

use data::Dataset;
use engine::{Float, Graph, Rng, Tensor};

use crate::batch::Batch;
use crate::config::RunConfig;
use crate::error::{NnError, Result};
use crate::model::{Model, Output};
use crate::optim::{OptState, Optimizer};

/// The batches of a whole run: `epochs` seeded permutations of `0..n`, cut into batches.
///
/// Depends on `(n, batch_size, epochs, seed, drop_last)` only, never on data weights.
pub fn batch_plan(
    n: usize,
    batch_size: usize,
    epochs: usize,
    seed: u64,
    drop_last: bool,
) -> Vec<Vec<usize>> {
    (0..epochs)
        .flat_map(|e| batch_plan_epoch(n, batch_size, e, seed, drop_last))
        .collect()
}

/// The batches of epoch `epoch`: a permutation from the stream `(seed, "order", epoch)`, cut in order.
fn batch_plan_epoch(
    n: usize,
    batch_size: usize,
    epoch: usize,
    seed: u64,
    drop_last: bool,
) -> Vec<Vec<usize>> {
    let perm = Rng::derive(seed, "order", epoch as u64).permutation(n);
    perm.chunks(batch_size)
        .filter(|c| !drop_last || c.len() == batch_size)
        .map(|c| c.to_vec())
        .collect()
}

/// Parameters, optimizer buffers and the step counter: everything a run carries between steps.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState<F> {
    /// The flat parameter vector.
    pub params: Vec<F>,
    /// Optimizer buffers and step count.
    pub opt: OptState<F>,
}

impl<F: Float> TrainState<F> {
    /// `true` when both states hold the same bits.
    pub fn bitwise_eq(&self, other: &Self) -> bool {
        let eq = |a: &[F], b: &[F]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x.to_bits_u64() == y.to_bits_u64())
        };
        self.opt.step == other.opt.step
            && eq(&self.params, &other.params)
            && self.opt.bufs.len() == other.opt.bufs.len()
            && self
                .opt
                .bufs
                .iter()
                .zip(&other.opt.bufs)
                .all(|(a, b)| eq(a, b))
    }
}

/// What a step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Step index (0-based).
    pub step: usize,
    /// Epoch index (0-based).
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Weighted batch loss `sum_i w_i l_i / |B|` before the update (without weight decay).
    pub loss: f64,
    /// How many of the batch's examples the parameters before the update classify correctly
    /// (from the same logits as `loss`); `None` for models without classes.
    pub correct: Option<usize>,
    /// `||g||_2` of the weighted batch gradient of `loss`, before clipping and weight decay:
    /// the norm `train.clip` acts on, logged so that its `max_norm` can be chosen from an
    /// unclipped run (e.g. the median over the steps).
    pub grad_norm: f64,
}

/// A training run over one dataset with per-example weights.
pub struct Trainer<'a, F: Float> {
    model: &'a Model,
    cfg: &'a RunConfig,
    data: &'a Dataset,
    plan: Vec<Vec<usize>>,
    epoch_of_step: Vec<usize>,
    weights: Vec<F>,
}

impl<'a, F: Float> Trainer<'a, F> {
    /// A trainer with all weights 1.
    ///
    /// # Errors
    /// If the data does not fit the model.
    pub fn new(model: &'a Model, cfg: &'a RunConfig, data: &'a Dataset) -> Result<Self> {
        model.check_data(data, "the training set")?;
        let t = &cfg.train;
        check_memory::<F>(model, cfg, data.len())?;
        let mut plan = Vec::new();
        let mut epoch_of_step = Vec::new();
        for e in 0..t.epochs {
            // One epoch of the plan at a time, to remember each step's epoch.
            let epoch = batch_plan_epoch(data.len(), t.batch_size, e, t.seed, t.drop_last);
            epoch_of_step.extend(std::iter::repeat_n(e, epoch.len()));
            plan.extend(epoch);
        }
        if plan.is_empty() {
            return Err(NnError::Mismatch(format!(
                "no training step: {} examples with train.batch_size = {} and drop_last leaves no batch; lower the batch size",
                data.len(),
                t.batch_size
            )));
        }
        Ok(Trainer {
            model,
            cfg,
            data,
            plan,
            epoch_of_step,
            weights: vec![F::ONE; data.len()],
        })
    }

    /// Uses these data weights (`w_i = 0` drops example `i`, MATH.md E1).
    ///
    /// # Errors
    /// If the length differs from the training set or a weight is not finite.
    pub fn with_weights(mut self, w: Vec<F>) -> Result<Self> {
        if w.len() != self.data.len() {
            return Err(NnError::Mismatch(format!(
                "{} data weights for {} training examples; give one weight per example",
                w.len(),
                self.data.len()
            )));
        }
        if let Some(i) = w.iter().position(|x| !x.is_finite()) {
            return Err(NnError::Mismatch(format!(
                "data weight {i} is {}; weights must be finite",
                w[i]
            )));
        }
        self.weights = w;
        Ok(self)
    }

    /// The model.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// The data weights.
    pub fn weights(&self) -> &[F] {
        &self.weights
    }

    /// The batches, one per step.
    pub fn plan(&self) -> &[Vec<usize>] {
        &self.plan
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        self.plan.len()
    }

    /// Learning rate at step `t`.
    pub fn lr_at(&self, t: usize) -> F {
        F::from_f64(self.cfg.optim.lr() * self.cfg.schedule.factor(t, self.steps()))
    }

    /// The initial state: seeded initialisation, or the given parameters.
    ///
    /// # Errors
    /// If given parameters have the wrong length.
    pub fn init_state(&self, params: Option<Vec<F>>) -> Result<TrainState<F>> {
        let n = self.model.layout().total();
        let params = match params {
            Some(p) if p.len() != n => {
                return Err(NnError::Mismatch(format!(
                    "{} initial parameters for a model with {n}",
                    p.len()
                )))
            }
            Some(p) => p,
            None => self.model.layout().init(self.cfg.train.seed),
        };
        Ok(TrainState {
            params,
            opt: self.cfg.optim.new_state(n),
        })
    }

    /// The batch of step `t`.
    pub fn batch(&self, t: usize) -> (Batch<F>, Vec<F>) {
        let idx = &self.plan[t];
        (
            Batch::from_dataset(self.data, idx),
            idx.iter().map(|&i| self.weights[i]).collect(),
        )
    }

    /// `(loss, g_t)` at `params` for step `t`: the weighted batch gradient, clipped if
    /// `train.clip` says so, plus coupled weight decay (what the optimizer consumes).
    pub fn gradient(&self, params: &[F], t: usize) -> (F, Vec<F>) {
        let (loss, raw) = self.loss_gradient(params, t);
        (loss, self.clip_and_decay(params, raw))
    }

    /// `(loss, grad)` of the weighted batch objective `sum_i w_i l_i / |B|` of step `t` alone:
    /// no clipping, no weight decay.
    pub fn loss_gradient(&self, params: &[F], t: usize) -> (F, Vec<F>) {
        let (loss, grad, _) = self.batch_gradient(params, t, false);
        (loss, grad)
    }

    /// [`Trainer::loss_gradient`], and with `count` the number of the batch's examples that
    /// `params` classify correctly, read off the same logits (the running accuracy of `train`;
    /// the loss and gradient have the same bits either way).
    fn batch_gradient(&self, params: &[F], t: usize, count: bool) -> (F, Vec<F>, Option<usize>) {
        let (batch, w) = self.batch(t);
        let g = Graph::<F, Tensor<F>>::new();
        let leaves = self.model.layout().leaves(&g, params, true);
        // `Model::losses` is this forward and `output_of_logits`; the logits are kept to count.
        let z = self.model.forward(&g, &leaves, &batch.input);
        let losses = self.model.output_of_logits(&g, z, &batch, Output::Loss);
        let correct = if count {
            self.model.correct_predictions(&g.tensor(z), &batch)
        } else {
            None
        };
        let obj = g.weighted_mean(losses, &w);
        let loss = g.tensor(obj).item();
        let grads = g.backward(obj, None);
        (
            loss,
            self.model.layout().flat_grad(&grads, &leaves),
            correct,
        )
    }

    /// `s(||grad||) grad + lambda params`: `train.clip`'s scale (1 without clipping) and the
    /// optimizer's gradient L2 `lambda` ([`Optimizer::gradient_l2`], MATH.md E1).
    pub fn clip_and_decay(&self, params: &[F], grad: Vec<F>) -> Vec<F> {
        self.clip_and_decay_with_norm(params, grad, None)
    }

    /// [`Trainer::clip_and_decay`], reusing `norm = ||grad||_2` when the caller has it (clipping
    /// computes it otherwise).
    fn clip_and_decay_with_norm(
        &self,
        params: &[F],
        mut grad: Vec<F>,
        norm: Option<f64>,
    ) -> Vec<F> {
        if let Some(clip) = self.cfg.train.clip {
            let norm = norm.unwrap_or_else(|| l2_norm(&grad));
            let s = F::from_f64(clip.scale(norm).0);
            grad.iter_mut().for_each(|g| *g *= s);
        }
        let wd = self.cfg.optim.gradient_l2();
        if wd != 0.0 {
            let wd = F::from_f64(wd);
            for (gi, &p) in grad.iter_mut().zip(params) {
                *gi += wd * p;
            }
        }
        grad
    }

    /// Takes step `state.opt.step`.
    ///
    /// # Errors
    /// [`NnError::Diverged`] when the loss or the new parameters are not finite.
    pub fn step(&self, state: &mut TrainState<F>) -> Result<StepInfo> {
        let t = state.opt.step;
        let (loss, raw, correct) = self.batch_gradient(&state.params, t, true);
        let grad_norm = l2_norm(&raw);
        let grad = self.clip_and_decay_with_norm(&state.params, raw, Some(grad_norm));
        let info = StepInfo {
            step: t,
            epoch: self.epoch_of_step[t],
            lr: self.lr_at(t).to_f64(),
            loss: loss.to_f64(),
            correct,
            grad_norm,
        };
        let diverged = || NnError::Diverged {
            step: t,
            epoch: info.epoch,
            loss: loss.to_f64(),
        };
        if !loss.is_finite() {
            return Err(diverged());
        }
        self.cfg
            .optim
            .apply(&mut state.params, &grad, &mut state.opt, self.lr_at(t));
        if !engine::float::all_finite(&state.params) {
            return Err(diverged());
        }
        Ok(info)
    }

    /// Runs the remaining steps from `state`, calling `on_step` after each.
    ///
    /// # Errors
    /// As [`Trainer::step`].
    pub fn run(
        &self,
        mut state: TrainState<F>,
        on_step: &mut dyn FnMut(&StepInfo, &TrainState<F>),
    ) -> Result<TrainState<F>> {
        while state.opt.step < self.steps() {
            let info = self.step(&mut state)?;
            on_step(&info, &state);
        }
        Ok(state)
    }
}

/// Independent partial sums of [`l2_norm`].
const NORM_LANES: usize = 8;

/// `||v||_2`, accumulated in f64: the square of element `i` is added to partial sum
/// `i % NORM_LANES` in index order, and the partial sums are added in a fixed tree, so the bits
/// depend on `v` alone (not on the thread count or the machine). One running sum made each
/// addition wait on the previous one's latency: on the digits MLP (26,122 parameters) that was
/// about a tenth of the step (issue 19); eight chains keep the adders busy.
pub fn l2_norm<F: Float>(v: &[F]) -> f64 {
    let mut partial = [0.0f64; NORM_LANES];
    let blocks = v.chunks_exact(NORM_LANES);
    let rest = blocks.remainder();
    for block in blocks {
        for (s, x) in partial.iter_mut().zip(block) {
            let x = x.to_f64();
            *s += x * x;
        }
    }
    for (s, x) in partial.iter_mut().zip(rest) {
        let x = x.to_f64();
        *s += x * x;
    }
    let [a, b, c, d, e, f, g, h] = partial;
    (((a + e) + (c + g)) + ((b + f) + (d + h))).sqrt()
}

/// Refuses a training whose state cannot fit in memory ([`crate::memory`]): the parameters, their
/// gradient and the optimizer buffers in `F`, and the batch plan (one index per example and
/// epoch), estimated from the config before anything is allocated.
fn check_memory<F: Float>(model: &Model, cfg: &RunConfig, n: usize) -> Result<()> {
    use crate::memory;
    let params = model.layout().total() as f64;
    let vectors = 2.0 + cfg.optim.buffers() as f64;
    let state = params * vectors * std::mem::size_of::<F>() as f64;
    memory::check(
        "model",
        &format!(
            "training this model ({params:.3e} parameters x {vectors} vectors: parameters, gradient \
             and {} optimizer buffers)",
            cfg.optim.buffers()
        ),
        state,
        "make the model smaller (model.hidden, model.channels or model.d_model)",
    )?;
    let plan = cfg.train.epochs as f64 * n as f64 * 16.0;
    memory::check(
        "train.epochs",
        &format!(
            "the batch plan of {} epochs over {n} examples",
            cfg.train.epochs
        ),
        plan,
        "lower train.epochs",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_norm_is_the_rounded_exact_norm_and_ignores_nothing() {
        // Elements k 2^-16 with integers |k| < 2^23 (exact in f32): the sum of their squares is
        // (sum k^2) 2^-32, exact in integers and rounded once to f64.
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as i64 - (1 << 23)
        };
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 1000, 26122] {
            let ks: Vec<i64> = (0..len).map(|_| next()).collect();
            let v: Vec<f32> = ks.iter().map(|&k| k as f32 * 2f32.powi(-16)).collect();
            let exact_sum: i128 = ks.iter().map(|&k| i128::from(k * k)).sum();
            let exact = (exact_sum as f64 * 2f64.powi(-32)).sqrt();
            let norm = l2_norm(&v);
            // Each partial sum adds len / 8 positive terms, the tree three more: a relative
            // error of at most (len / 8 + 4) epsilon in the sum, half that in its root.
            let bound = (len / NORM_LANES + 4) as f64 * f64::EPSILON * exact;
            assert!(
                (norm - exact).abs() <= bound,
                "length {len}: {norm} vs {exact}"
            );
            // Every element counts, the last ones (outside whole blocks) included.
            if len > 0 {
                let mut w = v.clone();
                *w.last_mut().unwrap() += 1.0;
                assert_ne!(l2_norm(&w), norm, "length {len}");
            }
        }
    }
}
