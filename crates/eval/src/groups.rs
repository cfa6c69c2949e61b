//! Group evaluations (MATH.md E5, E6): the retraining score and noisy-label detection, and the
//! mask source of group ground truth ([`group_subsets`]).
//!
//! Both rank columns (training examples, or groups) and inspect whole groups in rank order until
//! at least `ceil(x n)` training examples are covered ([`top_examples`]), so individual and group
//! attributions are compared at the same fraction `x` of the data.
//!
//! - **Retraining score**: rank by helpfulness to the targets ([`helpfulness`]: `sum_t tau[t][G]`,
//!   negated for a loss), drop the top `x` of the data, retrain with the run's recipe (same seed
//!   and order, MATH.md E1) and measure test accuracy. Lower is better: a good attribution finds
//!   the data the test predictions rely on.
//! - **Noisy labels**: flip a seeded fraction of training labels to another class
//!   ([`with_flipped_labels`]), train, rank columns by the self-influence of their mean example
//!   ([`self_influence`]), report the fraction of flipped labels among the top `x` of the data
//!   ([`detected_fraction`]; a random ranking finds `x` in expectation).

use data::Labels;
use methods::linalg::dot;
use methods::support::chunks::group_loss_grads;
use methods::Grouping;
use nn::{Model, Output};
use run::retrain::MaskSource;
use run::{Key, Run, Store, SubsetSpec};

use crate::error::{EvalError, Result};

/// The mask source of subsets that drop whole groups of `groups` (MATH.md E5), for
/// [`run::retrain()`] and [`run::ground_truth`]: `spec` counts groups, members of a dropped group
/// get data weight 0, and the cache manifest records the grouping's hash.
///
/// # Errors
/// A grouping of another training-set size than `run`'s.
pub fn group_subsets<'a>(
    run: &Run,
    groups: &'a Grouping,
    spec: SubsetSpec,
) -> Result<MaskSource<'a>> {
    groups.check_n(run.n_train())?;
    Ok(MaskSource::Groups {
        spec,
        assignment: &groups.assignment,
        k: groups.k,
        hash: groups.hash(),
    })
}

/// The training examples of the columns ranked first by `priority` (descending, ties to the lower
/// column), whole columns at a time until at least `ceil(fraction n)` examples are taken.
pub fn top_examples(groups: &Grouping, priority: &[f64], fraction: f64) -> Vec<usize> {
    let want = (fraction * groups.n() as f64).ceil() as usize;
    let mut order: Vec<usize> = (0..groups.k).collect();
    order.sort_by(|&a, &b| priority[b].total_cmp(&priority[a]).then(a.cmp(&b)));
    let members = groups.members();
    let mut out = Vec::new();
    for g in order {
        if out.len() >= want {
            break;
        }
        out.extend_from_slice(&members[g]);
    }
    out.sort_unstable();
    out
}

/// Helpfulness of each column to the targets: `sum_t tau[t][c]`, negated when the output is the
/// loss (a helpful example lowers the loss, so its `tau = d loss / d w` is negative).
pub fn helpfulness(rows: &[Vec<f64>], output: Output) -> Vec<f64> {
    let sign = if output == Output::Loss { -1.0 } else { 1.0 };
    let cols = rows.first().map_or(0, Vec::len);
    (0..cols)
        .map(|c| sign * rows.iter().map(|r| r[c]).sum::<f64>())
        .collect()
}

/// One point of the retraining score.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrainingScore {
    /// Fraction of the data asked to be removed.
    pub fraction: f64,
    /// Examples actually removed (whole groups).
    pub removed: usize,
    /// Test accuracy after retraining without them.
    pub accuracy: f64,
}

/// Test accuracy of `run`'s recipe retrained on data weights `w`. The retrained model comes from
/// the run's store when an earlier call (or a shard of `attrib retrain-score`) left it there
/// ([`run::retrain::retrain_cached`]), and is stored otherwise.
///
/// # Errors
/// Training errors, or a task without classes.
pub fn test_accuracy(run: &Run, w: &[f64]) -> Result<f64> {
    let params = run::retrain::retrain_cached(run, w)?;
    nn::eval::evaluate(&run.model, &params, &run.splits.test, 512)
        .accuracy
        .ok_or_else(|| EvalError::Unsupported {
            what: "retraining score".into(),
            reason: "test accuracy needs a classification task".into(),
        })
}

/// The data weights of the retraining score at `fraction`: 0 for the [`top_examples`] by
/// `helpful`, 1 elsewhere; and how many examples that removes.
///
/// # Errors
/// A grouping of another training set, a fraction outside `(0, 1)`.
pub fn removal_weights(
    run: &Run,
    groups: &Grouping,
    helpful: &[f64],
    fraction: f64,
) -> Result<(usize, Vec<f64>)> {
    groups.check_n(run.n_train())?;
    check_fraction("retraining score", fraction)?;
    let drop = top_examples(groups, helpful, fraction);
    let mut w = vec![1.0; run.n_train()];
    for &i in &drop {
        w[i] = 0.0;
    }
    Ok((drop.len(), w))
}

/// The retraining score at `fraction`: drop [`top_examples`] by `helpful`, retrain, measure test
/// accuracy (module docs).
///
/// # Errors
/// A grouping of another training set, a fraction outside `(0, 1)`, training errors.
pub fn retraining_score(
    run: &Run,
    groups: &Grouping,
    helpful: &[f64],
    fraction: f64,
) -> Result<RetrainingScore> {
    let (removed, w) = removal_weights(run, groups, helpful, fraction)?;
    Ok(RetrainingScore {
        fraction,
        removed,
        accuracy: test_accuracy(run, &w)?,
    })
}

fn check_fraction(what: &str, fraction: f64) -> Result<()> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(EvalError::Unsupported {
            what: what.into(),
            reason: format!("fraction {fraction} must be in (0, 1), e.g. 0.1 for 10%"),
        });
    }
    Ok(())
}

/// The store kind of the retraining with flipped labels ([`with_flipped_labels`]).
pub const FLIPPED_KIND: &str = "noisy-labels-retrain";

/// A copy of `run` whose training labels are flipped for `round(fraction n)` examples drawn by
/// `seed` (each to a uniformly drawn *other* class), retrained from scratch with the run's
/// recipe; returns it and the flipped examples in index order. The retrained parameters are kept
/// in `run`'s store (`RUN/store/noisy-labels-retrain/`, keyed by the run, `fraction` and `seed`),
/// so a second call (a shard of `attrib noisy-labels`, a rerun) reads them instead of training.
///
/// # Errors
/// A task without class labels or with one class, a fraction outside `(0, 1)`, training errors,
/// a store that cannot be written.
pub fn with_flipped_labels(run: &Run, fraction: f64, seed: u64) -> Result<(Run, Vec<usize>)> {
    check_fraction("noisy labels", fraction)?;
    let mut splits = run.splits.clone();
    let n = splits.train.len();
    let Labels::Classes { y, num_classes, .. } = &mut splits.train.labels else {
        return Err(EvalError::Unsupported {
            what: "noisy labels".into(),
            reason: "flipping labels needs class labels".into(),
        });
    };
    let classes = *num_classes as u64;
    if classes < 2 {
        return Err(EvalError::Unsupported {
            what: "noisy labels".into(),
            reason: "flipping labels needs at least 2 classes".into(),
        });
    }
    let mut rng = engine::Rng::derive(seed, "flip-labels", 0);
    let mut flipped = rng.permutation(n);
    flipped.truncate((fraction * n as f64).round() as usize);
    flipped.sort_unstable();
    for &i in &flipped {
        // A draw among the other classes: skip over the true one.
        let c = rng.below(classes - 1) as u32;
        y[i] = if c >= y[i] { c + 1 } else { c };
    }
    let model = Model::new(&run.config.model, &splits.train)?;
    let mut noisy = Run::from_parts(run.config.clone(), splits, model, run.params.clone())?;
    noisy.init = run.init.clone();
    noisy.weights = run.weights.clone();
    let key = Key::for_run(FLIPPED_KIND, run)
        .with("fraction", fraction.to_bits().to_le_bytes())
        .with("seed", seed.to_le_bytes());
    let store = Store::of(run);
    let stored = store
        .get(&key, "f64")
        .filter(|b| b.len() == 8 * noisy.model.layout().total())
        .map(|b| {
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect::<Vec<f64>>()
        });
    let params = match stored {
        Some(p) => p,
        None => {
            let p = noisy.retrain(&noisy.base_weights())?;
            let bytes: Vec<u8> = p.iter().flat_map(|x| x.to_le_bytes()).collect();
            store.put(&key, "f64", &bytes)?;
            p
        }
    };
    let mut trained = Run::from_parts(noisy.config, noisy.splits, noisy.model, params)?;
    trained.init = noisy.init;
    trained.weights = noisy.weights;
    Ok((trained, flipped))
}

/// Self-influence of every column's mean example at the final parameters:
/// `s_G = ||(1/|G|) sum_{i in G} grad l_i(theta_T)||^2`. This is TracIn's self-influence
/// `-tau_GG / |G|^2` of the group on its own summed loss with the last checkpoint only, up to the
/// positive factor `eta / n` (which does not change the ranking); for single examples it is the
/// usual gradient-norm self-influence. Large values mark examples the trained model still cannot
/// fit: mislabelled ones. Earlier checkpoints are left out on purpose: at the start of training
/// every gradient is large and its norm follows the input norm, not the label noise (on digits
/// with 10% flipped labels, 5 evenly spaced checkpoints find 54% of them in the top 20%, the
/// final parameters 88%). The mean (not the sum) keeps a large group of well-fit examples, whose
/// small gradients add up (at an L2-regularised optimum `sum_i grad l_i = -n lambda theta`), from
/// outranking a small group of mislabelled ones; a group that mixes both scores low because its
/// members' gradients cancel.
///
/// # Errors
/// A grouping of another training set.
pub fn self_influence(run: &Run, groups: &Grouping, chunk: usize) -> Result<Vec<f64>> {
    groups.check_n(run.n_train())?;
    let grads = group_loss_grads(&run.model, &run.params, &run.splits.train, groups, chunk);
    Ok(grads
        .iter()
        .zip(groups.members())
        .map(|(g, m)| dot(g, g) / (m.len() * m.len()) as f64)
        .collect())
}

/// Fraction of the `flipped` examples among the [`top_examples`] by `priority` at `fraction`.
pub fn detected_fraction(
    groups: &Grouping,
    priority: &[f64],
    flipped: &[usize],
    fraction: f64,
) -> f64 {
    let top = top_examples(groups, priority, fraction);
    let found = flipped
        .iter()
        .filter(|i| top.binary_search(i).is_ok())
        .count();
    found as f64 / flipped.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use methods::groups::make::{make, GroupingKind, GroupingSpec};

    #[test]
    fn top_examples_takes_whole_groups_in_rank_order() {
        let g = Grouping::new(vec![0, 1, 1, 2, 2, 2, 0, 1], 3, "t").unwrap();
        // Group 2 first (3 of 8 examples >= ceil(0.25 * 8) = 2).
        assert_eq!(top_examples(&g, &[0.0, 1.0, 2.0], 0.25), vec![3, 4, 5]);
        // Then group 1 to reach ceil(0.5 * 8) = 4.
        assert_eq!(
            top_examples(&g, &[0.0, 1.0, 2.0], 0.5),
            vec![1, 2, 3, 4, 5, 7]
        );
        assert_eq!(
            detected_fraction(&g, &[0.0, 1.0, 2.0], &[0, 3, 7, 6], 0.25),
            0.25
        );
        assert_eq!(
            helpfulness(&[vec![1.0, -2.0], vec![1.0, 0.0]], Output::Loss),
            vec![-2.0, 2.0]
        );
    }

    /// Digits softmax regression, as in the noisy-label test but with clean labels.
    fn digits_run() -> Run {
        let cfg = nn::RunConfig::from_toml_str(
            r#"
data = { source = "digits", scale = 0.0625 }
model = { kind = "logistic" }
optim = { kind = "sgd", lr = 0.1, momentum = 0.9, weight_decay = 1e-3 }
train = { epochs = 5, batch_size = 64, precision = "f64" }
"#,
            "t.toml".as_ref(),
        )
        .unwrap();
        Run::train(cfg, ".".as_ref()).unwrap()
    }

    /// Removing the 10% of the data TracIn ranks most helpful to the test loss, then retraining,
    /// costs more test accuracy than removing a random 10% or the 10% ranked least helpful, per
    /// example and with Grad-K-Means groups (retraining is the ground truth).
    #[test]
    fn removing_the_most_helpful_data_hurts_most() {
        let run = digits_run();
        let n = run.n_train();
        let targets = run::Targets::test((0..run.splits.test.len()).collect(), Output::Loss);
        let (m, _) = methods::build(
            "tracin",
            methods::Options::empty("tracin").set("checkpoints", 5),
        )
        .unwrap();
        let single = Grouping::new((0..n).collect(), n, "individual").unwrap();
        let grad = make(
            &run,
            &GroupingSpec::new(GroupingKind::GradKmeans, n / 10, 0),
        )
        .unwrap();
        let mut rng = engine::Rng::new(1);
        let random: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
        let base = retraining_score(&run, &single, &random, 0.1)
            .unwrap()
            .accuracy;
        for g in [&single, &grad] {
            let help = helpfulness(
                &m.attribute_groups(&run, &targets, g).unwrap(),
                Output::Loss,
            );
            let top = retraining_score(&run, g, &help, 0.1).unwrap();
            let neg: Vec<f64> = help.iter().map(|h| -h).collect();
            let bottom = retraining_score(&run, g, &neg, 0.1).unwrap();
            eprintln!(
                "retraining score at 10%, {}: most helpful removed {:.4}, random {base:.4}, least helpful {:.4}",
                g.how, top.accuracy, bottom.accuracy
            );
            assert!(top.removed >= n / 10);
            assert!(
                top.accuracy < base - 0.02,
                "{}: {} vs {base}",
                g.how,
                top.accuracy
            );
            assert!(top.accuracy < bottom.accuracy - 0.02, "{}", g.how);
        }
    }

    /// Digits with 10% flipped labels, softmax regression: ranking by self-influence finds
    /// far more flipped labels in the top 20% of the data than a random ranking (20%), both per
    /// example and with Grad-K-Means groups of about 10 examples.
    #[test]
    fn self_influence_finds_flipped_labels_on_digits() {
        let clean = digits_run();
        let (run, flipped) = with_flipped_labels(&clean, 0.1, 0).unwrap();
        let n = run.n_train();
        assert_eq!(flipped.len(), (0.1 * n as f64).round() as usize);
        // Flipped labels really changed.
        let (Labels::Classes { y: a, .. }, Labels::Classes { y: b, .. }) =
            (&clean.splits.train.labels, &run.splits.train.labels)
        else {
            unreachable!()
        };
        for i in 0..n {
            assert_eq!(
                a[i] != b[i],
                flipped.binary_search(&i).is_ok(),
                "example {i}"
            );
        }
        let single = Grouping::new((0..n).collect(), n, "individual").unwrap();
        let grad = make(
            &run,
            &GroupingSpec::new(GroupingKind::GradKmeans, n / 10, 0),
        )
        .unwrap();
        let random = make(&run, &GroupingSpec::new(GroupingKind::Random, n / 10, 0)).unwrap();
        let mut found = Vec::new();
        for g in [&single, &grad, &random] {
            let s = self_influence(&run, g, 512).unwrap();
            let f = detected_fraction(g, &s, &flipped, 0.2);
            eprintln!(
                "noisy labels, {}: {:.3} of flipped labels in the top 20%",
                g.how, f
            );
            found.push(f);
        }
        assert!(found[0] >= 0.6, "individual: {}", found[0]);
        assert!(found[1] >= 0.45, "grad-kmeans: {}", found[1]);
        // Random groups mix flipped and clean examples: little better than chance.
        assert!(found[2] < found[1] - 0.2, "random groups: {}", found[2]);
    }
}
