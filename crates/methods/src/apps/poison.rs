//! Crafting the worst training data (MATH.md E7, "Poisoning"), verified by retraining.
//!
//! The attacker changes a budget of `k` training examples to raise the mean validation loss
//! `L_val(theta_T) = mean_{z in V} l(z; theta_T)` of the retrained model; the damage is then
//! measured on the test split, which no attack reads. Both attacks differentiate `L_val`
//! through the whole training run with MAGIC, as ONE objective ([`Objective::MeanOf`]), so
//! one reverse sweep of one adjoint gives every example's derivatives:
//! - **label flips** ([`attributed_flips`], E7 (a)): flipping example `i` to label `y` is, to
//!   first order, dropping it (`w_i: 1 -> 0`) and adding a copy labelled `y` in its batch slots
//!   (`u_{i,y}: 0 -> 1`), so it changes `L_val` by `delta_{i,y} ~ d L / d u_{i,y} - d L / d w_i`
//!   ([`crate::estimators::magic::Metagradient::relabels`]). Each example takes its best other
//!   label; the `k` examples of largest predicted increase are flipped;
//! - **feature poisoning** ([`feature_attack`], E7 (b)): projected gradient ascent on the inputs
//!   of `k` examples (those whose `||d L_val / d x_i||` is largest at the clean run), signed
//!   steps `x_i <- proj(x_i + alpha sign(d L_val / d x_i))` inside the box of valid inputs
//!   intersected with the L-infinity ball of radius `eps` around the clean `x_i`, re-training and
//!   re-differentiating after each step (`steps` outer steps, `alpha = 2.5 eps / steps`, the
//!   usual PGD rule), keeping the iterate of highest validation loss.
//!
//! Baselines of the same budget: random label flips ([`random_flips`]) and random input noise
//! ([`random_noise`]: `k` random examples, each feature moved by `+-eps` at random, clipped to
//! the box). Every outcome ([`retrained`]) comes from a fresh training on the poisoned set with
//! the run's recipe (same seed, batch order and precision, MATH.md E1).
//!
//! The valid box is `[lo, hi]`, the smallest and largest feature value of the clean training
//! set ([`input_box`]): for pixels scaled to `[0, 1]` that is the image range.

use data::{Dataset, Features, Labels};
use engine::Rng;
use nn::{Evaluation, Output};

use crate::error::{MethodError, Result};
use crate::estimators::magic::{
    objective_metagradients, MagicConfig, Metagradient, Objective, Want,
};
use run::{Run, Split, Targets};

/// A label flip: training example `index` gets label `to` (it had `from`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flip {
    /// Training example.
    pub index: usize,
    /// Its clean label.
    pub from: u32,
    /// Its poisoned label.
    pub to: u32,
    /// First-order predicted change of the mean validation loss (`NaN` for random flips).
    pub predicted: f64,
}

/// The model retrained on a (poisoned) training set: validation and test figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Mean validation loss (the attacker's objective).
    pub val_loss: f64,
    /// Loss and accuracy on the test split (the damage; never read by the attacks).
    pub test: Evaluation,
    /// The retrained run (its final parameters explain the poisoned set).
    pub params: Vec<f64>,
}

/// The validation targets: every validation example's loss.
///
/// # Errors
/// A run without a validation split, with the fix.
pub fn validation_targets(run: &Run) -> Result<Targets> {
    let n = run.splits.val.len();
    if n == 0 {
        return Err(MethodError::Run {
            path: run.dir.clone().unwrap_or_default(),
            reason: "poisoning optimises the validation loss and reports the test split, but the \
                     run has no validation split; set data.val_fraction (e.g. 0.1) in its config \
                     and train it again"
                .into(),
        });
    }
    Ok(Targets {
        split: Split::Val,
        indices: (0..n).collect(),
        output: Output::Loss,
    })
}

/// `run` with its training set replaced by `train` (same recipe, no run directory); its
/// parameters are retrained when `params` is `None`.
///
/// # Errors
/// Training errors (divergence), or a training set the model does not fit.
pub fn with_train_set(run: &Run, train: Dataset, params: Option<Vec<f64>>) -> Result<Run> {
    run.model.check_data(&train, "the poisoned training set")?;
    let mut splits = run.splits.clone();
    splits.train = train;
    let mut out = Run::from_parts(
        run.config.clone(),
        splits,
        run.model.clone(),
        run.params.clone(),
    )?;
    out.init = run.init.clone();
    out.params = match params {
        Some(p) => p,
        None => out.retrain(&vec![1.0; out.n_train()])?,
    };
    Ok(out)
}

/// Retrains `run`'s recipe on `train` and measures the validation loss and the test split.
///
/// # Errors
/// As [`with_train_set`].
pub fn retrained(run: &Run, train: &Dataset) -> Result<Outcome> {
    let r = with_train_set(run, train.clone(), None)?;
    Ok(outcome_of(&r))
}

/// The validation loss and test figures of `run`'s own parameters, evaluated in the run's
/// precision (as `attrib evaluate` does).
pub fn outcome_of(run: &Run) -> Outcome {
    fn eval<F: engine::Float>(run: &Run, ds: &Dataset) -> Evaluation {
        let p: Vec<F> = run.params.iter().map(|&x| F::from_f64(x)).collect();
        nn::evaluate::<F>(
            &run.model,
            &p,
            ds,
            nn::eval_batch_size(run.config.train.batch_size),
        )
    }
    let at = |ds: &Dataset| match run.config.train.precision {
        nn::Precision::F32 => eval::<f32>(run, ds),
        nn::Precision::F64 => eval::<f64>(run, ds),
    };
    let val_loss = if run.splits.val.is_empty() {
        f64::NAN
    } else {
        at(&run.splits.val).loss
    };
    Outcome {
        val_loss,
        test: at(&run.splits.test),
        params: run.params.clone(),
    }
}

/// One MAGIC sweep of the mean validation loss of `run`.
fn validation_metagradient(run: &Run, want: Want) -> Result<Metagradient> {
    let targets = validation_targets(run)?;
    let (mut g, _) = objective_metagradients(
        run,
        Objective::MeanOf(&targets),
        &MagicConfig::default(),
        want,
    )?;
    Ok(g.remove(0))
}

fn class_labels(ds: &Dataset) -> Result<(&[u32], usize)> {
    match &ds.labels {
        Labels::Classes { y, num_classes, .. } => Ok((y, *num_classes)),
        _ => Err(MethodError::Unsupported {
            method: "poison".into(),
            reason: "label flips need a classification task".into(),
        }),
    }
}

/// The `k` label flips predicted to raise `run`'s mean validation loss most (module docs), in
/// decreasing order of predicted increase (ties by index); each example's best other label.
///
/// # Errors
/// A run without a validation split or without class labels; MAGIC's errors.
pub fn attributed_flips(run: &Run, k: usize) -> Result<Vec<Flip>> {
    let (y, c) = class_labels(&run.splits.train)?;
    let g = validation_metagradient(
        run,
        Want {
            inputs: false,
            relabels: true,
        },
    )?;
    let cw = g.relabels.len() / run.n_train().max(1);
    let mut best: Vec<Flip> = (0..run.n_train())
        .map(|i| {
            let from = y[i];
            let (to, gain) = (0..c.min(cw))
                .filter(|&l| l as u32 != from)
                .map(|l| (l as u32, g.relabels[i * cw + l] - g.weights[i]))
                .fold((from, f64::NEG_INFINITY), |acc, (l, d)| {
                    if d > acc.1 {
                        (l, d)
                    } else {
                        acc
                    }
                });
            Flip {
                index: i,
                from,
                to,
                predicted: gain,
            }
        })
        .collect();
    best.sort_by(|a, b| {
        b.predicted
            .total_cmp(&a.predicted)
            .then(a.index.cmp(&b.index))
    });
    best.truncate(k);
    Ok(best)
}

/// `k` distinct random training examples, each relabelled to a random other label (seeded).
///
/// # Errors
/// A training set without class labels.
pub fn random_flips(run: &Run, k: usize, seed: u64) -> Result<Vec<Flip>> {
    let (y, c) = class_labels(&run.splits.train)?;
    let mut rng = Rng::derive(seed, "poison-random-flips", 0);
    let order = rng.permutation(run.n_train());
    Ok(order[..k.min(order.len())]
        .iter()
        .map(|&i| {
            let shift = 1 + rng.below((c - 1).max(1) as u64) as u32;
            Flip {
                index: i,
                from: y[i],
                to: (y[i] + shift) % c as u32,
                predicted: f64::NAN,
            }
        })
        .collect())
}

/// `ds` with `flips` applied.
///
/// # Panics
/// If `ds` has no class labels or a flip is out of range (flips come from this module).
pub fn apply_flips(ds: &Dataset, flips: &[Flip]) -> Dataset {
    let mut out = ds.clone();
    let Labels::Classes { y, .. } = &mut out.labels else {
        panic!("flips need class labels");
    };
    for f in flips {
        y[f.index] = f.to;
    }
    out
}

/// `[lo, hi]`: the smallest and largest feature value of `ds` (the valid input box).
///
/// # Errors
/// Token inputs (nothing to perturb).
pub fn input_box(ds: &Dataset) -> Result<(f32, f32)> {
    let Features::Dense { values, .. } = &ds.features else {
        return Err(MethodError::Unsupported {
            method: "poison".into(),
            reason: "feature poisoning needs real-valued inputs; this dataset holds token ids"
                .into(),
        });
    };
    Ok(values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        }))
}

fn dense_mut(ds: &mut Dataset) -> (&mut Vec<f32>, usize) {
    match &mut ds.features {
        Features::Dense { values, shape } => {
            let d = shape.iter().product();
            (values, d)
        }
        Features::Tokens { .. } => panic!("dense features checked by input_box"),
    }
}

/// Settings of [`feature_attack`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgdParams {
    /// Outer steps (each: retrain, one MAGIC sweep, one projected step).
    pub steps: usize,
    /// Radius of the L-infinity ball around each clean input, as a fraction of the box width
    /// `hi - lo` (1: the whole box).
    pub eps: f64,
}

/// What [`feature_attack`] produced.
#[derive(Debug, Clone)]
pub struct FeatureAttack {
    /// The poisoned training set.
    pub train: Dataset,
    /// The perturbed examples, in decreasing order of the clean `||d L_val / d x_i||`.
    pub indices: Vec<usize>,
    /// The retrained validation loss before each outer step (the first is the clean run's)
    /// and after the last one: `steps + 1` values.
    pub val_losses: Vec<f64>,
    /// Which iterate `train` is: the poisoned set after step `best` (`1..=steps`), the one of
    /// highest validation loss (the attacker's objective; signed steps can overshoot).
    pub best: usize,
}

/// Projected gradient ascent on the inputs of `k` training examples (module docs), returning the
/// iterate of highest validation loss; `report` is called before each outer step with
/// `(step, validation loss of the current iterate)`.
///
/// # Errors
/// A run without a validation split or with token inputs; MAGIC's and training errors.
pub fn feature_attack(
    run: &Run,
    k: usize,
    params: PgdParams,
    mut report: impl FnMut(usize, f64),
) -> Result<FeatureAttack> {
    let (lo, hi) = input_box(&run.splits.train)?;
    let radius = params.eps * f64::from(hi - lo);
    let alpha = 2.5 * radius / params.steps.max(1) as f64;
    let inputs = Want {
        inputs: true,
        relabels: false,
    };
    let g = validation_metagradient(run, inputs)?;
    let d: usize = run.model.example_shape().iter().product();
    let norms: Vec<f64> = g
        .inputs
        .chunks(d.max(1))
        .map(|x| x.iter().map(|v| v * v).sum::<f64>())
        .collect();
    let mut indices: Vec<usize> = (0..run.n_train()).collect();
    indices.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    indices.truncate(k);
    let clean = run.splits.train.clone();
    let mut current = with_train_set(run, clean.clone(), Some(run.params.clone()))?;
    let mut grad = g;
    let mut val_losses = Vec::with_capacity(params.steps + 1);
    let mut iterates: Vec<Dataset> = Vec::with_capacity(params.steps);
    for step in 0..params.steps {
        if step > 0 {
            grad = validation_metagradient(&current, inputs)?;
        }
        let val = outcome_of(&current).val_loss;
        val_losses.push(val);
        report(step, val);
        let mut train = current.splits.train.clone();
        let (x, _) = dense_mut(&mut train);
        let Features::Dense { values: x0, .. } = &clean.features else {
            unreachable!("dense features checked by input_box")
        };
        for &i in &indices {
            for j in i * d..(i + 1) * d {
                let s = grad.inputs[j];
                let sign = if s > 0.0 {
                    1.0
                } else if s < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                let base = f64::from(x0[j]);
                let moved = f64::from(x[j]) + alpha * sign;
                let ball = moved.clamp(base - radius, base + radius);
                x[j] = (ball as f32).clamp(lo, hi);
            }
        }
        iterates.push(train.clone());
        current = with_train_set(run, train, None)?;
    }
    // The last iterate is `current`'s; only the earlier ones need keeping.
    iterates.pop();
    let last = outcome_of(&current).val_loss;
    val_losses.push(last);
    // The iterate with the highest validation loss (the attacker's own objective; signed steps
    // can overshoot). `best` indexes the poisoned sets after steps 1..=steps.
    let best = (1..val_losses.len()).fold(val_losses.len() - 1, |b, i| {
        if val_losses[i] > val_losses[b] {
            i
        } else {
            b
        }
    });
    let train = if best == val_losses.len() - 1 {
        current.splits.train.clone()
    } else {
        iterates.swap_remove(best - 1)
    };
    Ok(FeatureAttack {
        train,
        indices,
        val_losses,
        best,
    })
}

/// `k` distinct random training examples, each feature moved by `+-eps (hi - lo)` with a random
/// sign and clipped to the box (seeded): the same budget as [`feature_attack`], no gradients.
/// Returns the noisy set and the examples changed.
///
/// # Errors
/// Token inputs.
pub fn random_noise(run: &Run, k: usize, eps: f64, seed: u64) -> Result<(Dataset, Vec<usize>)> {
    let (lo, hi) = input_box(&run.splits.train)?;
    let radius = eps * f64::from(hi - lo);
    let mut rng = Rng::derive(seed, "poison-random-noise", 0);
    let mut order = rng.permutation(run.n_train());
    order.truncate(k);
    let mut train = run.splits.train.clone();
    let (x, d) = dense_mut(&mut train);
    for &i in &order {
        for v in &mut x[i * d..(i + 1) * d] {
            let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
            *v = ((f64::from(*v) + sign * radius) as f32).clamp(lo, hi);
        }
    }
    Ok((train, order))
}

/// Examples in a budget: `round(fraction n)`, at least 1.
pub fn budget(fraction: f64, n: usize) -> usize {
    ((fraction * n as f64).round() as usize).clamp(1, n.max(1))
}
