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
//! Each permutation is walked once for every target of the list and kept in the run's store
//! (`RUN/store/tmc-permutation/KEY.f64`, [`PERMUTATION_KIND`]; the key holds the run, `seed`,
//! `truncation`, the split, output and targets, and `p`): every target's marginals and the
//! position after which it is no longer live, `s_t`. The loop reads the still active (not
//! converged) targets' marginals from it and counts `min(max_{t active} s_t + 1, n - 1)`
//! retrainings against the budget, exactly what a walk for the active targets alone takes, so the
//! scores, the budget and the convergence are those of walking only the active targets. Under
//! `--shard I/N` a process walks and stores the permutations `p < permutations` with
//! `p mod N = I` and writes no score file; the command without a shard then reads them and walks
//! only the missing ones, and its scores are the single process's bit for bit. Shards walk all
//! `permutations`, also those that the loop, converging earlier, never reads.
//!
//! Options: `permutations` (200), `tol` (0.05; `0`: run exactly `permutations` permutations),
//! `window` (20), `truncation` (0.01), `budget` (20000 retrainings), `seed` (0). It needs at least
//! `window * (n - 1)` retrainings and refuses larger training sets up front: it is for small sets
//! (tens of examples); use `knn-shapley`, `datamodels` or `magic` beyond.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use data::{Features, Labels};
use engine::Rng;
use nn::Output;
use rayon::prelude::*;

use crate::error::{MethodError, Result};
use crate::method::{Method, Registration};
use crate::options::{any, at_least_one, non_negative, Options};
use crate::support::chunks::chunk_option;
use crate::support::features;
use run::{Key, Run, Store, Targets};

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

/// The store kind of one permutation's marginals ([`TmcShapley`]'s shards).
pub const PERMUTATION_KIND: &str = "tmc-permutation";

/// Bumped when what a stored permutation holds would change for the same key.
const PERMUTATION_FORMAT: &str = "tmc-permutation-1";

/// One permutation walked for every target: what the loop of [`TmcShapley::attribute`] needs of
/// it for any set of active targets.
#[derive(Debug, Clone, PartialEq)]
struct Walk {
    /// `marg[t][i]`: target `t`'s marginal of training example `i` (0 after its truncation).
    marg: Vec<Vec<f64>>,
    /// `stop[t]`: the position after which target `t` is no longer live (truncated there, or
    /// `n - 1` when it stays live to the end).
    stop: Vec<usize>,
    /// Seconds the walk took.
    seconds: f64,
}

impl Walk {
    /// The retrainings a walk for the `active` targets alone takes: it visits positions up to
    /// the last active target's stop, and the last position is the full run (no retraining), so
    /// `min(max_{t in active} stop[t] + 1, n - 1)`.
    fn retrained(&self, active: &[usize], n: usize) -> usize {
        active
            .iter()
            .map(|&t| self.stop[t] + 1)
            .max()
            .unwrap_or(0)
            .min(n.saturating_sub(1))
    }

    /// Little-endian f64s: the seconds, `stop` (one per target), then `marg` row after row.
    fn to_bytes(&self) -> Vec<u8> {
        std::iter::once(self.seconds)
            .chain(self.stop.iter().map(|&s| s as f64))
            .chain(self.marg.iter().flatten().copied())
            .flat_map(f64::to_le_bytes)
            .collect()
    }

    /// Inverse of [`Walk::to_bytes`] for `nt` targets and `n` training examples; `None` for bytes
    /// of another shape (the caller recomputes).
    fn from_bytes(bytes: &[u8], nt: usize, n: usize) -> Option<Walk> {
        if bytes.len() != 8 * (1 + nt + nt * n) {
            return None;
        }
        let v: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let stop: Vec<usize> = v[1..1 + nt].iter().map(|&s| s as usize).collect();
        if stop
            .iter()
            .zip(&v[1..1 + nt])
            .any(|(&s, &x)| s as f64 != x || s >= n.max(1))
        {
            return None;
        }
        Some(Walk {
            seconds: v[0],
            stop,
            marg: (0..nt)
                .map(|t| v[1 + nt + t * n..1 + nt + (t + 1) * n].to_vec())
                .collect(),
        })
    }
}

/// What the estimation loop gets of permutation `p` for its active targets: their marginals
/// (`[active][n]`), the retrainings it counts against the budget, and its seconds.
type Part = (Vec<Vec<f64>>, usize, f64);

impl TmcShapley {
    /// Walks permutation `p` for the `active` targets: their marginals `[active][n]`, their stops
    /// (as [`Walk::stop`]) and the number of retrainings it took.
    fn permutation(
        &self,
        run: &Run,
        targets: &Targets,
        active: &[usize],
        p: usize,
        ends: (&[f64], &[f64]),
    ) -> Result<(Vec<Vec<f64>>, Vec<usize>, usize)> {
        let (empty, full) = ends;
        let n = run.n_train();
        let perm = Rng::derive(self.seed, "tmc", p as u64).permutation(n);
        let mut w = vec![0.0; n];
        let mut prev: Vec<f64> = active.iter().map(|&t| empty[t]).collect();
        let mut live: Vec<bool> = vec![true; active.len()];
        let mut stop = vec![n.saturating_sub(1); active.len()];
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
                        stop[a] = pos;
                    }
                }
            }
            prev = cur;
        }
        Ok((marg, stop, retrained))
    }

    /// The store key of permutation `p` for `targets`: the run, the options a walk depends on
    /// (`seed`, `truncation`), the targets and `p`.
    fn permutation_key(&self, run: &Run, targets: &Targets, p: usize) -> Key {
        let indices: Vec<u8> = targets
            .indices
            .iter()
            .flat_map(|&t| (t as u64).to_le_bytes())
            .collect();
        Key::for_run(PERMUTATION_KIND, run)
            .with("tmc_format", PERMUTATION_FORMAT)
            .with("seed", self.seed.to_le_bytes())
            .with("truncation", self.truncation.to_bits().to_le_bytes())
            .with("split", targets.split.name())
            .with("output", run::output_name(targets.output))
            .with("targets", indices)
            .with("permutation", (p as u64).to_le_bytes())
    }

    /// Permutation `p` walked for every target, from the run's store when a shard or an earlier
    /// run stored it.
    fn stored_walk(&self, run: &Run, targets: &Targets, p: usize) -> Option<Walk> {
        let bytes = Store::of(run).get(&self.permutation_key(run, targets, p), "f64")?;
        Walk::from_bytes(&bytes, targets.indices.len(), run.n_train())
    }

    /// Permutation `p` walked for every target: stored, or walked now and stored.
    fn walk(&self, run: &Run, targets: &Targets, p: usize, ends: (&[f64], &[f64])) -> Result<Walk> {
        if let Some(w) = self.stored_walk(run, targets, p) {
            return Ok(w);
        }
        let start = Instant::now();
        let all: Vec<usize> = (0..targets.indices.len()).collect();
        let (marg, stop, _) = self.permutation(run, targets, &all, p, ends)?;
        let walk = Walk {
            marg,
            stop,
            seconds: start.elapsed().as_secs_f64(),
        };
        Store::of(run).put(
            &self.permutation_key(run, targets, p),
            "f64",
            &walk.to_bytes(),
        )?;
        Ok(walk)
    }

    /// The budget check done before any retraining.
    fn check_budget(&self, n: usize) -> Result<()> {
        let per_perm = n.saturating_sub(1).max(1);
        if self.window.saturating_mul(per_perm) > self.budget {
            return Err(MethodError::Unsupported {
                method: "tmc-shapley".into(),
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
        Ok(())
    }

    /// A shard's part: walks and stores permutations `p < permutations` with `p mod N = I` for
    /// every target, and returns the error that reports how many permutations the store holds.
    fn shard(
        &self,
        run: &Run,
        targets: &Targets,
        shard: run::Shard,
        ends: (&[f64], &[f64]),
    ) -> Result<MethodError> {
        let mine: Vec<usize> = (0..self.permutations)
            .filter(|&p| shard.owns(p) && self.stored_walk(run, targets, p).is_none())
            .collect();
        let mut done = 0;
        for batch in mine.chunks(PERMUTATION_BATCH) {
            batch
                .par_iter()
                .map(|&p| self.walk(run, targets, p, ends).map(|_| ()))
                .collect::<Result<Vec<()>>>()?;
            done += batch.len();
            run.progress
                .report("tmc-shapley permutations", done, mine.len());
        }
        let stored = (0..self.permutations)
            .filter(|&p| self.stored_walk(run, targets, p).is_some())
            .count();
        Ok(MethodError::Incomplete {
            method: "tmc-shapley".into(),
            shard: shard.to_string(),
            done: stored,
            total: self.permutations,
            unit: "permutations".into(),
        })
    }

    /// The Monte Carlo loop over permutations (module docs) for `nt` targets and `n` training
    /// examples, each permutation's part for the active targets from `part`: the scores and the
    /// sum of the parts' seconds.
    fn estimate(
        &self,
        run: &Run,
        nt: usize,
        part: impl Fn(usize, &[usize]) -> Result<Part> + Sync,
    ) -> Result<(Vec<Vec<f64>>, f64)> {
        let n = run.n_train();
        let per_perm = n.saturating_sub(1).max(1);
        let mut est: Vec<Estimate> = (0..nt)
            .map(|_| Estimate {
                sum: vec![0.0; n],
                count: 0,
                history: Default::default(),
                converged: false,
                change: f64::INFINITY,
            })
            .collect();
        let (mut used, mut next, mut seconds) = (1usize, 0usize, 0.0);
        loop {
            let active: Vec<usize> = (0..nt).filter(|&t| !est[t].converged).collect();
            let room = self.budget.saturating_sub(used) / per_perm;
            let batch = PERMUTATION_BATCH.min(self.permutations - next).min(room);
            if active.is_empty() || batch == 0 {
                break;
            }
            let results: Vec<Part> = (next..next + batch)
                .into_par_iter()
                .map(|p| part(p, &active))
                .collect::<Result<_>>()?;
            next += batch;
            run.progress
                .report("tmc-shapley permutations", next, self.permutations);
            for (marg, retrained, took) in results {
                used += retrained;
                seconds += took;
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
                method: "tmc-shapley".into(),
                solver: format!(
                    "Monte Carlo over permutations ({used} retrainings of a budget of {}; \
                     raise `permutations`, `budget` or `tol`)",
                    self.budget
                ),
                iterations: next,
                residual: worst,
            });
        }
        let scores = est
            .into_iter()
            .map(|e| e.sum.iter().map(|s| s / e.count as f64).collect())
            .collect();
        Ok((scores, seconds))
    }

    /// The outputs of the targets on the empty training set and on the full one, and the seconds
    /// they took.
    fn ends(&self, run: &Run, targets: &Targets) -> Result<(Vec<f64>, Vec<f64>, f64)> {
        let start = Instant::now();
        let full = run.target_outputs(&run.params, targets);
        let none = run::retrain::retrain_cached(run, &vec![0.0; run.n_train()])?;
        let empty = run.target_outputs(&none, targets);
        Ok((empty, full, start.elapsed().as_secs_f64()))
    }
}

impl Method for TmcShapley {
    fn name(&self) -> &'static str {
        "tmc-shapley"
    }

    /// # Errors
    /// As [`Method::attribute_timed`].
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        Ok(self.attribute_timed(run, targets)?.0)
    }

    /// Each permutation is walked for every target and kept in the run's store (kind
    /// [`PERMUTATION_KIND`]); the loop then reads the active targets' marginals from it, so a run
    /// that assembles shards' permutations gives the single process's scores bit for bit. Under a
    /// shard `I/N`: walks and stores permutations `p mod N = I` and returns
    /// [`MethodError::Incomplete`]. The seconds are the ends' and the used permutations' own.
    ///
    /// # Errors
    /// [`MethodError::Unsupported`] when `window * (n - 1)` retrainings exceed `budget`;
    /// [`MethodError::NoConvergence`] when a target has not converged (or, with `tol=0`, fewer than
    /// `permutations` permutations fit the budget); [`MethodError::Incomplete`] for a shard;
    /// training errors; a store that cannot be written.
    fn attribute_timed(
        &self,
        run: &Run,
        targets: &Targets,
    ) -> Result<(Vec<Vec<f64>>, Option<f64>)> {
        let n = run.n_train();
        self.check_budget(n)?;
        let (empty, full, ends_seconds) = self.ends(run, targets)?;
        let ends = (empty.as_slice(), full.as_slice());
        if let Some(shard) = run.shard {
            return Err(self.shard(run, targets, shard, ends)?);
        }
        let (scores, seconds) = self.estimate(run, targets.indices.len(), |p, active| {
            let walk = self.walk(run, targets, p, ends)?;
            let rows = active.iter().map(|&t| walk.marg[t].clone()).collect();
            Ok((rows, walk.retrained(active, n), walk.seconds))
        })?;
        Ok((scores, Some(ends_seconds + seconds)))
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

    /// A `TmcShapley` with the options `set` (key, value) over the defaults.
    fn tmc(set: &[(&str, &str)]) -> TmcShapley {
        let get = |k: &str, d: &str| {
            set.iter()
                .find(|(n, _)| *n == k)
                .map_or(d, |(_, v)| v)
                .to_string()
        };
        TmcShapley {
            permutations: get("permutations", "200").parse().unwrap(),
            tol: get("tol", "0.05").parse().unwrap(),
            window: get("window", "20").parse().unwrap(),
            truncation: get("truncation", "0.01").parse().unwrap(),
            budget: get("budget", "20000").parse().unwrap(),
            seed: get("seed", "0").parse().unwrap(),
        }
    }

    /// The loop as it ran before permutations were stored: each permutation walked for the
    /// active targets alone, its own count of retrainings against the budget.
    fn in_memory(m: &TmcShapley, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        let (empty, full, _) = m.ends(run, targets)?;
        let ends = (empty.as_slice(), full.as_slice());
        m.estimate(run, targets.indices.len(), |p, active| {
            let (marg, _, retrained) = m.permutation(run, targets, active, p, ends)?;
            Ok((marg, retrained, 0.0))
        })
        .map(|(s, _)| s)
    }

    fn bits(rows: &[Vec<f64>]) -> Vec<u64> {
        rows.iter().flatten().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn a_walk_for_every_target_gives_each_active_set_its_marginals_and_retrainings() {
        let run = crate::testutil::tiny_logistic(7);
        let n = run.n_train();
        let targets = Targets::test(vec![0, 1, 2, 3, 4], Output::Margin);
        let m = tmc(&[("truncation", "0.2")]);
        let (empty, full, _) = m.ends(&run, &targets).unwrap();
        let ends = (empty.as_slice(), full.as_slice());
        let sets: [&[usize]; 5] = [&[0], &[1, 3], &[4], &[0, 2, 4], &[0, 1, 2, 3, 4]];
        let mut truncated = 0;
        for p in 0..12 {
            let walk = m.walk(&run, &targets, p, ends).unwrap();
            assert_eq!(Walk::from_bytes(&walk.to_bytes(), 5, n), Some(walk.clone()));
            truncated += walk.stop.iter().filter(|&&s| s + 1 < n).count();
            for active in sets {
                let (marg, stop, retrained) =
                    m.permutation(&run, &targets, active, p, ends).unwrap();
                assert_eq!(
                    retrained,
                    walk.retrained(active, n),
                    "p {p} active {active:?}"
                );
                for (a, &t) in active.iter().enumerate() {
                    assert_eq!(stop[a], walk.stop[t]);
                    assert_eq!(bits(&marg[a..a + 1]), bits(&walk.marg[t..t + 1]));
                }
            }
        }
        assert!(truncated > 0, "the test needs truncated walks");
    }

    #[test]
    fn stored_permutations_give_the_in_memory_scores_whatever_the_shards() {
        let mut run = crate::testutil::tiny_logistic(7);
        let targets = Targets::test(vec![0, 1, 2, 3], Output::Margin);
        // Targets converge at different permutations, so the active set shrinks on the way.
        let m = tmc(&[
            ("permutations", "40"),
            ("window", "3"),
            ("tol", "0.15"),
            ("truncation", "0.1"),
        ]);
        let want = in_memory(&m, &run, &targets).unwrap();
        assert!(bits(&m.attribute(&run, &targets).unwrap()) == bits(&want));
        // A budget that runs out: the same error, retrainings counted alike.
        let short = tmc(&[
            ("permutations", "40"),
            ("window", "3"),
            ("tol", "1e-9"),
            ("truncation", "0.1"),
            ("budget", "60"),
        ]);
        let e = short.attribute(&run, &targets).unwrap_err().to_string();
        assert_eq!(
            e,
            in_memory(&short, &run, &targets).unwrap_err().to_string()
        );
        assert!(e.contains("retrainings of a budget of 60"), "{e}");

        // Shards 1/3 and 2/3 store their permutations; the assembly walks only shard 0's.
        let tmp = tempfile::tempdir().unwrap();
        run.dir = Some(tmp.path().to_path_buf());
        for (i, done) in [(2, 13), (1, 26)] {
            run.shard = Some(run::Shard::new(i, 3).unwrap());
            match m.attribute(&run, &targets) {
                Err(MethodError::Incomplete { done: d, total, .. }) => {
                    assert_eq!((d, total), (done, 40))
                }
                other => panic!("a shard returned {:?}", other.map(|_| ())),
            }
        }
        run.shard = None;
        let got = m.attribute(&run, &targets).unwrap();
        assert!(bits(&got) == bits(&want), "assembled scores differ");
        // The assembly stored the permutations it walked (shard 0's that the loop reached).
        let stored = std::fs::read_dir(tmp.path().join("store").join(PERMUTATION_KIND))
            .unwrap()
            .count();
        assert!(stored > 26 && stored <= 40, "{stored}");
        assert!(bits(&m.attribute(&run, &targets).unwrap()) == bits(&want));
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
