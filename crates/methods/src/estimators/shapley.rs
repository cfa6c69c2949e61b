//! Data Shapley (MATH.md E4): `knn-shapley` (Jia et al. 2019, closed form) and `tmc-shapley`
//! (Ghorbani & Zou 2019, truncated Monte Carlo over permutations with retraining).
//!
//! The Shapley value of training example `i` for a utility `v` of training subsets is
//! `phi_i = sum_{S subset of N \ {i}} |S|! (n - |S| - 1)! / n! (v(S + i) - v(S))`, the mean of
//! `i`'s marginal contribution over uniformly random orderings of the training set. Scores are
//! `tau_i = phi_i` (positive: `i` raises the utility). Shapley values are not derivatives: they
//! satisfy `sum_i phi_i = v(N) - v(empty)` (efficiency) instead of the local
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`, so as attribution scores they rank examples and their
//! scale differs from `d f / d w_i`.
//!
//! ## `knn-shapley`
//! Utility: the likelihood that a `k`-nearest-neighbour classifier on the training subset gives
//! the target its label, `v(S) = (1/k) sum_{j=1}^{min(k, |S|)} 1[y_{alpha_j(S)} = y_target]`, with
//! `alpha_j(S)` the `j`-th nearest member of `S` in Euclidean distance of the features
//! (`features=penultimate`: the input of the last linear layer at the final parameters, as
//! `similarity`; `features=input`: the raw inputs), ties broken by training index. Theorem 1 of
//! Jia et al. gives the values exactly in `O(n log n)` per target: with `alpha_1..alpha_n` all
//! training examples by increasing distance and `m_j = 1[y_{alpha_j} = y_target]`,
//! `phi_{alpha_n} = m_n / n`,
//! `phi_{alpha_j} = phi_{alpha_{j+1}} + (m_j - m_{j+1}) / k * min(k, j) / j`.
//! Sign: `tau = phi` for the margin and the log-likelihood, `tau = -phi` for the loss (a
//! neighbour of the right label helps, which lowers a loss), as `similarity`. Classification runs
//! only (class labels). Options: `k` (5), `features` (penultimate), `chunk` (512).
//!
//! ## `tmc-shapley`
//! Utility: the target output itself, `v(S) = f(A(1_S))`, the run retrained (MATH.md E1) with
//! weight 1 on `S` and 0 elsewhere, so `phi_i` has the sign of `tau` (positive: adding `i` raises
//! `f`) and `sum_i phi_i = f(S) - f(empty)`. Permutation `p` is `Rng::derive(seed, "tmc", p)`; its
//! prefixes are retrained in order and each example gets the change of `f` when it joins. A target
//! is truncated in a permutation once its prefix output is within `truncation * |f(N) - f(empty)|`
//! of the full output: the remaining examples get marginal 0 (Ghorbani & Zou's truncation; `0`
//! disables it). A target converges after `c >= window` permutations when
//! `sum_i |phi^(c)_i - phi^(c - window)_i| <= tol * sum_i |phi^(c)_i|` (running means `phi^(c)`);
//! its values are then frozen. Retraining stops when every target has converged, after
//! `permutations` permutations, or before the budget of `budget` retrainings would be exceeded.
//! Permutations run [`PERMUTATION_BATCH`] at a time in parallel; a target's values depend only on
//! the permutations (never on the other targets or the thread count).
//!
//! Options: `permutations` (200), `tol` (0.05; `0`: run exactly `permutations` permutations),
//! `window` (20), `truncation` (0.01), `budget` (20000 retrainings), `seed` (0). It needs at least
//! `window * (n - 1)` retrainings and refuses larger training sets up front: it is for small sets
//! (tens of examples); use `knn-shapley`, `datamodels` or `magic` beyond.

use std::fmt;
use std::str::FromStr;

use data::{Features, Labels};
use engine::Rng;
use nn::Output;
use rayon::prelude::*;

use crate::error::{MethodError, Result};
use crate::method::{Method, Registration};
use crate::options::{any, at_least_one, non_negative, Options};
use crate::support::chunks::chunk_option;
use crate::support::features;
use run::{Run, Targets};

/// The `knn-shapley` registry entry.
pub const KNN: Registration = Registration {
    name: "knn-shapley",
    summary: "exact Shapley values of a k-NN classifier's likelihood of the label (E4)",
    build: build_knn,
};

/// The `tmc-shapley` registry entry.
pub const TMC: Registration = Registration {
    name: "tmc-shapley",
    summary: "truncated Monte Carlo Shapley values by retraining on prefixes (small sets; E4)",
    build: build_tmc,
};

/// Permutations retrained in parallel per round of `tmc-shapley`.
pub const PERMUTATION_BATCH: usize = 8;

/// Which representation `knn-shapley` measures distances in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// The input of the model's last linear layer ([`nn::Model::features`]).
    Penultimate,
    /// The raw input features.
    Input,
}

impl FromStr for FeatureKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "penultimate" => Ok(FeatureKind::Penultimate),
            "input" => Ok(FeatureKind::Input),
            _ => Err(format!(
                "unknown features \"{s}\"; use penultimate or input"
            )),
        }
    }
}

impl fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FeatureKind::Penultimate => "penultimate",
            FeatureKind::Input => "input",
        })
    }
}

/// KNN-Shapley (module docs).
#[derive(Debug, Clone)]
pub struct KnnShapley {
    k: usize,
    features: FeatureKind,
    chunk: usize,
}

/// Reads the options: `k` (5), `features` (penultimate), `chunk` (512).
///
/// # Errors
/// A bad option value.
pub fn build_knn(opts: &mut Options) -> Result<Box<dyn Method>> {
    Ok(Box::new(KnnShapley {
        k: opts.get("k", 5usize, at_least_one)?,
        features: opts.get("features", FeatureKind::Penultimate, any)?,
        chunk: chunk_option(opts)?,
    }))
}

/// Exact Shapley values of the k-NN likelihood utility (module docs) for one target:
/// `order` lists the training examples by increasing distance, `matches[i]` says whether example
/// `i` has the target's label. Returns one value per training example (indexed like `matches`).
pub fn knn_shapley(order: &[usize], matches: &[bool], k: usize) -> Vec<f64> {
    let n = order.len();
    let mut phi = vec![0.0; matches.len()];
    if n == 0 {
        return phi;
    }
    let m = |j: usize| if matches[order[j]] { 1.0 } else { 0.0 };
    let mut cur = m(n - 1) / n as f64;
    phi[order[n - 1]] = cur;
    for j in (0..n - 1).rev() {
        // 1-based rank j + 1.
        let rank = (j + 1) as f64;
        cur += (m(j) - m(j + 1)) / k as f64 * (k as f64).min(rank) / rank;
        phi[order[j]] = cur;
    }
    phi
}

/// The training examples by increasing squared Euclidean distance to `target`, ties by index.
pub fn by_distance(target: &[f64], train: &[Vec<f64>]) -> Vec<usize> {
    let d: Vec<f64> = train
        .iter()
        .map(|x| x.iter().zip(target).map(|(a, b)| (a - b) * (a - b)).sum())
        .collect();
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
    order
}

/// Raw input rows of `indices` of a dense dataset.
fn input_rows(ds: &data::Dataset, indices: &[usize]) -> Option<Vec<Vec<f64>>> {
    let Features::Dense { values, .. } = &ds.features else {
        return None;
    };
    let d = ds.example_len();
    Some(
        indices
            .iter()
            .map(|&i| {
                values[i * d..(i + 1) * d]
                    .iter()
                    .map(|&x| x as f64)
                    .collect()
            })
            .collect(),
    )
}

fn class_labels(ds: &data::Dataset) -> Option<&[u32]> {
    match &ds.labels {
        Labels::Classes { y, .. } => Some(y),
        _ => None,
    }
}

impl Method for KnnShapley {
    fn name(&self) -> &'static str {
        "knn-shapley"
    }

    /// # Errors
    /// [`MethodError::Unsupported`] for a run without class labels, or `features=input` on tokens.
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        let unsupported = |reason: &str| MethodError::Unsupported {
            method: self.name().into(),
            reason: reason.into(),
        };
        let target_ds = run.dataset(targets.split);
        let (Some(train_y), Some(target_y)) =
            (class_labels(&run.splits.train), class_labels(target_ds))
        else {
            return Err(unsupported(
                "needs class labels (a classification run); use similarity or datamodels",
            ));
        };
        let (train, tf) = match self.features {
            FeatureKind::Penultimate => (
                features::train_features(run, self.chunk),
                features::features(&run.model, &run.params, &run.target_batch(targets)),
            ),
            FeatureKind::Input => {
                let all: Vec<usize> = (0..run.n_train()).collect();
                match (
                    input_rows(&run.splits.train, &all),
                    input_rows(target_ds, &targets.indices),
                ) {
                    (Some(a), Some(b)) => (a, b),
                    _ => {
                        return Err(unsupported(
                            "features=input needs dense inputs; use features=penultimate",
                        ))
                    }
                }
            }
        };
        let sign = match targets.output {
            Output::Loss | Output::Token => -1.0,
            Output::Margin | Output::LogLikelihood => 1.0,
        };
        Ok(targets
            .indices
            .par_iter()
            .zip(&tf)
            .map(|(&t, x)| {
                let matches: Vec<bool> = train_y.iter().map(|&y| y == target_y[t]).collect();
                knn_shapley(&by_distance(x, &train), &matches, self.k)
                    .into_iter()
                    .map(|v| sign * v)
                    .collect()
            })
            .collect())
    }
}

/// TMC-Shapley (module docs).
#[derive(Debug, Clone)]
pub struct TmcShapley {
    permutations: usize,
    tol: f64,
    window: usize,
    truncation: f64,
    budget: usize,
    seed: u64,
}

/// Reads the options: `permutations` (200), `tol` (0.05), `window` (20), `truncation` (0.01),
/// `budget` (20000), `seed` (0).
///
/// # Errors
/// A bad option value, or `window > permutations`.
pub fn build_tmc(opts: &mut Options) -> Result<Box<dyn Method>> {
    let permutations = opts.get("permutations", 200usize, at_least_one)?;
    let tol = opts.get("tol", 0.05, non_negative)?;
    let window = opts.get("window", 20usize, at_least_one)?;
    let truncation = opts.get("truncation", 0.01, non_negative)?;
    let budget = opts.get("budget", 20_000usize, at_least_one)?;
    let seed = opts.get("seed", 0u64, any)?;
    if window > permutations {
        return Err(MethodError::BadOption {
            method: "tmc-shapley".into(),
            key: "window".into(),
            value: window.to_string(),
            reason: format!("must not exceed permutations ({permutations})"),
        });
    }
    Ok(Box::new(TmcShapley {
        permutations,
        tol,
        window,
        truncation,
        budget,
        seed,
    }))
}

/// A target's running estimate.
struct Estimate {
    sum: Vec<f64>,
    count: usize,
    /// Running means after each of the last `window` permutations (oldest first).
    history: std::collections::VecDeque<Vec<f64>>,
    converged: bool,
    /// Relative change over the last window (for the error message).
    change: f64,
}

impl TmcShapley {
    /// Marginal contributions of permutation `p` for the `active` targets: `[active][n]`, and the
    /// number of retrainings it took.
    fn permutation(
        &self,
        run: &Run,
        targets: &Targets,
        active: &[usize],
        p: usize,
        ends: (&[f64], &[f64]),
    ) -> Result<(Vec<Vec<f64>>, usize)> {
        let (empty, full) = ends;
        let n = run.n_train();
        let perm = Rng::derive(self.seed, "tmc", p as u64).permutation(n);
        let mut w = vec![0.0; n];
        let mut prev: Vec<f64> = active.iter().map(|&t| empty[t]).collect();
        let mut live: Vec<bool> = vec![true; active.len()];
        let mut marg = vec![vec![0.0; n]; active.len()];
        let mut retrained = 0;
        for (pos, &i) in perm.iter().enumerate() {
            if !live.iter().any(|&l| l) {
                break;
            }
            w[i] = 1.0;
            let cur: Vec<f64> = if pos + 1 == n {
                active.iter().map(|&t| full[t]).collect()
            } else {
                retrained += 1;
                let out = run.target_outputs(&run.retrain(&w)?, targets);
                active.iter().map(|&t| out[t]).collect()
            };
            for (a, &t) in active.iter().enumerate() {
                if live[a] {
                    marg[a][i] = cur[a] - prev[a];
                    let scale = (full[t] - empty[t]).abs();
                    if (cur[a] - full[t]).abs() < self.truncation * scale {
                        live[a] = false;
                    }
                }
            }
            prev = cur;
        }
        Ok((marg, retrained))
    }
}

impl Method for TmcShapley {
    fn name(&self) -> &'static str {
        "tmc-shapley"
    }

    /// # Errors
    /// [`MethodError::Unsupported`] when `window * (n - 1)` retrainings exceed `budget`;
    /// [`MethodError::NoConvergence`] when a target has not converged (or, with `tol=0`, fewer than
    /// `permutations` permutations fit the budget); training errors.
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        let n = run.n_train();
        let per_perm = n.saturating_sub(1).max(1);
        if self.window.saturating_mul(per_perm) > self.budget {
            return Err(MethodError::Unsupported {
                method: self.name().into(),
                reason: format!(
                    "{n} training examples need at least window ({}) x {per_perm} = {} \
                     retrainings, over the budget of {}; raise `budget`, lower `window`, or use \
                     knn-shapley or datamodels for sets this large",
                    self.window,
                    self.window * per_perm,
                    self.budget
                ),
            });
        }
        let full = run.target_outputs(&run.params, targets);
        let empty = run.target_outputs(&run.retrain(&vec![0.0; n])?, targets);
        let nt = targets.indices.len();
        let mut est: Vec<Estimate> = (0..nt)
            .map(|_| Estimate {
                sum: vec![0.0; n],
                count: 0,
                history: Default::default(),
                converged: false,
                change: f64::INFINITY,
            })
            .collect();
        let (mut used, mut next) = (1usize, 0usize);
        loop {
            let active: Vec<usize> = (0..nt).filter(|&t| !est[t].converged).collect();
            let room = self.budget.saturating_sub(used) / per_perm;
            let batch = PERMUTATION_BATCH.min(self.permutations - next).min(room);
            if active.is_empty() || batch == 0 {
                break;
            }
            let results: Vec<(Vec<Vec<f64>>, usize)> = (next..next + batch)
                .into_par_iter()
                .map(|p| self.permutation(run, targets, &active, p, (&empty, &full)))
                .collect::<Result<_>>()?;
            next += batch;
            run.progress
                .report("tmc-shapley permutations", next, self.permutations);
            for (marg, retrained) in results {
                used += retrained;
                for (a, &t) in active.iter().enumerate() {
                    let e = &mut est[t];
                    if e.converged {
                        continue;
                    }
                    crate::linalg::axpy(1.0, &marg[a], &mut e.sum);
                    e.count += 1;
                    let mean: Vec<f64> = e.sum.iter().map(|s| s / e.count as f64).collect();
                    if e.history.len() == self.window {
                        let old = e.history.pop_front().unwrap();
                        let diff: f64 = mean.iter().zip(&old).map(|(a, b)| (a - b).abs()).sum();
                        let size: f64 = mean.iter().map(|a| a.abs()).sum();
                        e.change = if size > 0.0 { diff / size } else { 0.0 };
                        if self.tol > 0.0 && e.change <= self.tol {
                            e.converged = true;
                        }
                    }
                    e.history.push_back(mean);
                }
            }
        }
        let missing = if self.tol > 0.0 {
            est.iter().any(|e| !e.converged)
        } else {
            next < self.permutations
        };
        if missing {
            let worst = est
                .iter()
                .filter(|e| !e.converged)
                .map(|e| e.change)
                .fold(0.0, f64::max);
            return Err(MethodError::NoConvergence {
                method: self.name().into(),
                solver: format!(
                    "Monte Carlo over permutations ({used} retrainings of a budget of {}; \
                     raise `permutations`, `budget` or `tol`)",
                    self.budget
                ),
                iterations: next,
                residual: worst,
            });
        }
        Ok(est
            .into_iter()
            .map(|e| e.sum.iter().map(|s| s / e.count as f64).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact Shapley values from the utility of every subset (`values[mask]`, bit `i` = example
    /// `i`), by the defining sum over coalitions, and the exact variance of each marginal
    /// contribution over uniformly random permutations.
    fn exact_shapley(n: usize, values: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let fact = |k: usize| (1..=k).map(|x| x as f64).product::<f64>();
        let mut phi = vec![0.0; n];
        let mut second = vec![0.0; n];
        for i in 0..n {
            for s in 0..(1usize << n) {
                if s & (1 << i) != 0 {
                    continue;
                }
                let size = s.count_ones() as usize;
                let w = fact(size) * fact(n - size - 1) / fact(n);
                let d = values[s | (1 << i)] - values[s];
                phi[i] += w * d;
                second[i] += w * d * d;
            }
        }
        let var = (0..n).map(|i| second[i] - phi[i] * phi[i]).collect();
        (phi, var)
    }

    /// The k-NN likelihood utility of a subset, straight from its definition.
    fn knn_utility(order: &[usize], matches: &[bool], k: usize, mask: usize) -> f64 {
        order
            .iter()
            .filter(|&&i| mask & (1 << i) != 0)
            .take(k)
            .filter(|&&i| matches[i])
            .count() as f64
            / k as f64
    }

    #[test]
    fn knn_shapley_matches_brute_force_exact_shapley() {
        let mut rng = Rng::new(3);
        for (n, k) in [(1, 1), (6, 1), (8, 3), (10, 5), (10, 12), (9, 2)] {
            let train: Vec<Vec<f64>> = (0..n).map(|_| vec![rng.normal(), rng.normal()]).collect();
            let labels: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
            let target = [rng.normal(), rng.normal()];
            let order = by_distance(&target, &train);
            let matches: Vec<bool> = labels.iter().map(|&y| y == 1).collect();
            let values: Vec<f64> = (0..1usize << n)
                .map(|s| knn_utility(&order, &matches, k, s))
                .collect();
            let (want, _) = exact_shapley(n, &values);
            let got = knn_shapley(&order, &matches, k);
            for i in 0..n {
                assert!(
                    (got[i] - want[i]).abs() < 1e-12,
                    "n {n} k {k} i {i}: {} vs {}",
                    got[i],
                    want[i]
                );
            }
        }
    }

    #[test]
    fn knn_shapley_on_a_run_is_efficient_and_signed() {
        // Efficiency: sum_i phi_i = v(N) - v(empty) = the fraction of the k nearest with the label.
        let run = crate::testutil::tiny_mlp(0.0);
        let targets = Targets::test(vec![0, 5, 9], Output::Margin);
        let (m, _) =
            crate::registry::build("knn-shapley", Options::empty("knn-shapley").set("k", 7))
                .unwrap();
        let tau = m.attribute(&run, &targets).unwrap();
        let train = features::train_features(&run, 512);
        let tf = features::features(&run.model, &run.params, &run.target_batch(&targets));
        let Labels::Classes { y: ty, .. } = &run.splits.train.labels else {
            unreachable!()
        };
        let Labels::Classes { y: sy, .. } = &run.splits.test.labels else {
            unreachable!()
        };
        for (r, &t) in targets.indices.iter().enumerate() {
            let order = by_distance(&tf[r], &train);
            let hits = order[..7].iter().filter(|&&i| ty[i] == sy[t]).count() as f64;
            let total: f64 = tau[r].iter().sum();
            assert!((total - hits / 7.0).abs() < 1e-12, "{total} vs {hits}/7");
        }
        let loss = m
            .attribute(&run, &Targets::test(vec![0, 5, 9], Output::Loss))
            .unwrap();
        assert_eq!(loss[1][3], -tau[1][3]);
    }

    #[test]
    fn tmc_shapley_converges_to_brute_force_exact_shapley() {
        let run = crate::testutil::tiny_logistic(7);
        let n = run.n_train();
        assert_eq!(n, 7);
        let targets = Targets::test(vec![0, 1, 2], Output::Margin);
        // Utility of all 2^7 subsets by retraining.
        let values: Vec<Vec<f64>> = (0..1usize << n)
            .map(|s| {
                let w: Vec<f64> = (0..n).map(|i| ((s >> i) & 1) as f64).collect();
                run.target_outputs(&run.retrain(&w).unwrap(), &targets)
            })
            .collect();
        let perms = 600;
        let (m, _) = crate::registry::build(
            "tmc-shapley",
            Options::empty("tmc-shapley")
                .set("permutations", perms)
                .set("tol", 0)
                .set("truncation", 0)
                .set("budget", perms * n),
        )
        .unwrap();
        let tau = m.attribute(&run, &targets).unwrap();
        for t in 0..3 {
            let v: Vec<f64> = values.iter().map(|o| o[t]).collect();
            let (phi, var) = exact_shapley(n, &v);
            // Efficiency holds exactly for every permutation, so also for the estimate.
            let total: f64 = tau[t].iter().sum();
            assert!((total - (v[(1 << n) - 1] - v[0])).abs() < 1e-9);
            for i in 0..n {
                // The estimate is a mean of `perms` i.i.d. marginals of exact variance var[i]:
                // 5 standard errors bound all 21 comparisons with probability > 1 - 1e-5.
                let se = (var[i].max(0.0) / perms as f64).sqrt();
                let err = (tau[t][i] - phi[i]).abs();
                eprintln!(
                    "target {t} example {i}: tmc {:.5} exact {:.5} se {se:.1e}",
                    tau[t][i], phi[i]
                );
                assert!(
                    err <= 5.0 * se + 1e-12,
                    "target {t} example {i}: {err} > 5 x {se}"
                );
            }
        }
    }

    #[test]
    fn tmc_shapley_refuses_large_sets_and_reports_no_convergence() {
        let run = crate::testutil::tiny_mlp(0.0);
        let targets = Targets::test(vec![0], Output::Margin);
        let (m, _) = crate::registry::build(
            "tmc-shapley",
            Options::empty("tmc-shapley").set("budget", 5000),
        )
        .unwrap();
        let e = m.attribute(&run, &targets).unwrap_err().to_string();
        assert!(e.contains("budget") && e.contains("knn-shapley"), "{e}");
        let small = crate::testutil::tiny_logistic(7);
        let (m, _) = crate::registry::build(
            "tmc-shapley",
            Options::empty("tmc-shapley")
                .set("permutations", 4)
                .set("window", 2)
                .set("tol", 1e-12)
                .set("truncation", 0),
        )
        .unwrap();
        let e = m.attribute(&small, &targets).unwrap_err();
        assert!(matches!(e, MethodError::NoConvergence { .. }), "{e}");
    }
}
