//! `datamodels`: a linear model of the target output fitted to subset retrainings (MATH.md E4,
//! Ilyas et al. 2022), with the retrainings of the ground-truth store (MATH.md E6,
//! [`run::retrain`]).
//!
//! ## Formula, sign and scale
//! Retrain the run (MATH.md E1) on `m` random subsets `S_j = S \ D_j`, each dropping a fraction
//! `drop` of the training set, and measure every target's output `f(S_j)`. The datamodel
//! `f(S_j) ~ b + beta^T 1_{S_j}` is fitted, equivalently, on the dropped indicators:
//!
//! `y_j = f(S_j) - f(S) ~ c - sum_{i in D_j} beta_i`   (`c` a free intercept, not penalised),
//!
//! since `1_{S_j} = 1 - 1_{D_j}` only moves the intercept. So `tau_i = beta_i` directly has the
//! crate's sign and scale: dropping `D` predicts `f(S \ D) ~ f(S) - sum_{i in D} tau_i` (plus the
//! intercept `c`, a constant shift that rank-based scores such as the LDS ignore). An example no
//! subset drops gets `tau_i = 0` (the data say nothing about it).
//!
//! Identifiability: every subset drops the same number `d` of examples, so adding a constant `k` to
//! every `beta_i` and `d k` to `c` fits the data equally well. The fitted `tau` is therefore defined
//! up to a common constant, chosen by the penalty (the lasso keeps many coefficients at 0, ridge
//! centres them); it shifts the prediction of every subset of size `d` by the same amount, so rank
//! correlations over such subsets (the LDS) do not see it.
//!
//! With `z_j = 1_{D_j}`, `gamma = -beta`, centred design `Z~ = Z - 1 mu^T` (`mu_i` the fraction of
//! subsets dropping `i`) and centred response `y~`:
//! - `fit=lasso`: `min (1/2m) ||y~ - Z~ gamma||^2 + lambda ||gamma||_1`, by cyclic coordinate
//!   descent in index order on the sparse `Z` (each subset drops few examples; the centring is kept
//!   implicit), with warm starts down the path and an active-set inner loop. Stops when no
//!   coordinate moves the fitted values by more than [`CD_TOL`] times the RMS of `y~`.
//! - `fit=ridge`: `min (1/2m) ||y~ - Z~ gamma||^2 + (lambda/2) ||gamma||^2`, in closed form through
//!   the `m x m` dual `gamma = Z~^T (Z~ Z~^T + m lambda I)^{-1} y~` (Cholesky).
//!
//! `lambda=auto` chooses `lambda` per target by `folds`-fold cross-validation (subset `j` is in fold
//! `j mod folds`; mean squared error on the held-out fold, ties to the larger `lambda`) over a path
//! of [`PATH_LEN`] values spaced geometrically: for the lasso from `lambda_max = max_i |Z~_i^T y~| / m`
//! (all-zero solution) down to `lambda_max * 1e-4` (`* 1e-2` when `m < n`, as glmnet); for ridge
//! `s tr(Z~ Z~^T) / m^2` with `s` from `1e2` down to `1e-4`. The model is then refitted on all `m`
//! subsets. Only the training subsets are used: the evaluation's subsets are never seen.
//!
//! ## Subsets and held-out evaluation
//! The retrainings are the store's ([`run::ground_truth`]) with spec
//! `drop(drop, subsets, seed)`, cached in the run directory
//! (`RUN/groundtruth/drop-{drop}-m{subsets}-s{seed}-{output}-{split}`), so they are resumable and
//! shared with `attrib groundtruth`. The LDS ground truth uses seed 0 by default; `seed` defaults to
//! 1 and `seed=0` is refused, so that a datamodel is never evaluated on the subsets it was fitted to.
//!
//! Options: `drop` (0.05): fraction each training subset drops, between the LDS's usual 1% and 10%
//! so that the fitted model sees perturbations like the evaluated ones; `subsets` (200): `m`;
//! `seed` (1); `fit` (lasso): `lasso` or `ridge`; `lambda` (auto): `auto` or a value `>= 0` (ridge:
//! `> 0`); `folds` (5): cross-validation folds for `lambda=auto`.
//!
//! Cost: `m` retrainings (in parallel, cached), then per target a path of coordinate-descent fits,
//! each sweep touching the `m * drop * n` non-zeros of the design once.

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use crate::error::{MethodError, Result};
use crate::linalg::{cholesky, cholesky_solve};
use crate::method::{Method, Registration};
use crate::options::{at_least_one, Auto, Options};
use run::retrain::{cache_dir, ground_truth, MaskSource, Retraining};
use run::SubsetSpec;
use run::{Run, Targets};

/// The registry entry.
pub const REGISTRATION: Registration = Registration {
    name: "datamodels",
    summary: "linear (lasso/ridge) model of the output fitted to cached subset retrainings (E4)",
    build,
};

/// Values on the regularisation path of `lambda=auto`.
pub const PATH_LEN: usize = 20;

/// Relative stopping tolerance of the lasso's coordinate descent (module docs).
pub const CD_TOL: f64 = 1e-4;

/// Coordinate-descent sweeps allowed per `lambda` before [`MethodError::NoConvergence`].
pub const MAX_SWEEPS: usize = 10_000;

/// The seed of the LDS ground truth's subsets by default (`attrib groundtruth --seed`), refused here.
pub const EVALUATION_SEED: u64 = 0;

/// The regression fitted (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// L1 penalty, coordinate descent.
    Lasso,
    /// L2 penalty, closed form.
    Ridge,
}

impl FromStr for Fit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "lasso" => Ok(Fit::Lasso),
            "ridge" => Ok(Fit::Ridge),
            _ => Err(format!("unknown fit \"{s}\"; use lasso or ridge")),
        }
    }
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fit::Lasso => "lasso",
            Fit::Ridge => "ridge",
        })
    }
}

/// How the linear model is fitted: penalty, `lambda` and cross-validation folds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitParams {
    /// Lasso or ridge.
    pub fit: Fit,
    /// The penalty, or `auto` for cross-validation over the path.
    pub lambda: Auto<f64>,
    /// Folds of the cross-validation.
    pub folds: usize,
}

/// Datamodels (module docs).
#[derive(Debug, Clone)]
pub struct Datamodels {
    drop: f64,
    subsets: usize,
    seed: u64,
    params: FitParams,
}

fn fraction(v: &f64) -> std::result::Result<(), String> {
    if *v > 0.0 && *v < 1.0 {
        Ok(())
    } else {
        Err("must be strictly between 0 and 1 (e.g. 0.05)".into())
    }
}

/// Reads the options: `drop` (0.05), `subsets` (200), `seed` (1), `fit` (lasso), `lambda` (auto),
/// `folds` (5).
///
/// # Errors
/// A bad option value; `seed=0` (the LDS ground truth's default seed); `subsets` below 2; `folds`
/// below 2 or above `subsets`; `fit=ridge` with `lambda=0`.
pub fn build(opts: &mut Options) -> Result<Box<dyn Method>> {
    let drop = opts.get("drop", 0.05, fraction)?;
    let subsets = opts.get("subsets", 200usize, |&m| {
        if m >= 2 {
            Ok(())
        } else {
            Err("must be at least 2 (200 or more for a useful fit)".into())
        }
    })?;
    let seed = opts.get("seed", 1u64, |&s| {
        if s == EVALUATION_SEED {
            Err(format!(
                "seed {EVALUATION_SEED} draws the subsets the LDS evaluates on by default, so the \
                 datamodel would be scored on its own training data; use another seed (default 1)"
            ))
        } else {
            Ok(())
        }
    })?;
    let fit: Fit = opts.get("fit", Fit::Lasso, |_| Ok(()))?;
    let lambda = opts.get("lambda", Auto::Auto, crate::options::auto_non_negative)?;
    let folds = opts.get("folds", 5usize, at_least_one)?;
    let bad = |key: &str, value: String, reason: &str| MethodError::BadOption {
        method: "datamodels".into(),
        key: key.into(),
        value,
        reason: reason.into(),
    };
    if lambda == Auto::Auto && !(2..=subsets).contains(&folds) {
        return Err(bad(
            "folds",
            folds.to_string(),
            "cross-validation needs between 2 and `subsets` folds (e.g. 5)",
        ));
    }
    if fit == Fit::Ridge && lambda == Auto::Value(0.0) {
        return Err(bad(
            "lambda",
            "0".into(),
            "ridge needs lambda > 0 (the design has fewer subsets than examples); use auto",
        ));
    }
    Ok(Box::new(Datamodels {
        drop,
        subsets,
        seed,
        params: FitParams { fit, lambda, folds },
    }))
}

impl Method for Datamodels {
    fn name(&self) -> &'static str {
        "datamodels"
    }

    /// # Errors
    /// Errors of the subset retrainings (a cache folder of another computation, training errors), or
    /// a lasso that does not converge.
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        let spec = SubsetSpec::drop(self.drop, self.subsets, self.seed);
        let cache = run
            .dir
            .as_deref()
            .map(|d| cache_dir(d, &spec, targets.output, targets.split));
        let progress = |done, total| {
            run.progress
                .report("datamodels retrained subsets", done, total)
        };
        let retraining = Retraining::new(MaskSource::Subsets(spec), targets.output, targets.split)
            .cache(cache.as_deref())
            .progress(&progress)
            .shard(run.shard);
        let gt = ground_truth(run, &retraining)?;
        // A shard retrains its subsets (the same entries `attrib groundtruth` writes) and leaves
        // the fit to the unsharded computation.
        if let Some(shard) = run.shard {
            return Err(MethodError::Incomplete {
                method: "datamodels".into(),
                shard: shard.to_string(),
                done: gt.done(),
                total: self.subsets,
                unit: "retrained subsets".into(),
            });
        }
        let design = Design {
            n: gt.n_train(),
            dropped: (0..self.subsets).map(|j| gt.dropped(j)).collect(),
        };
        let ys: Vec<Vec<f64>> = targets
            .indices
            .iter()
            .map(|&t| gt.outputs.iter().map(|o| o[t] - gt.full[t]).collect())
            .collect();
        fit(&design, &ys, self.params)
    }
}

/// The regression design: the training examples each subset drops.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    /// Training examples (columns).
    pub n: usize,
    /// Per subset (row), the dropped examples, ascending and `< n`.
    pub dropped: Vec<Vec<usize>>,
}

/// A fitted model on some rows: `y ~ intercept + sum_{i in D} gamma_i`.
#[derive(Debug, Clone)]
struct Fitted {
    gamma: Vec<f64>,
    intercept: f64,
}

impl Fitted {
    fn predict(&self, dropped: &[usize]) -> f64 {
        self.intercept + dropped.iter().map(|&i| self.gamma[i]).sum::<f64>()
    }
}

/// The design restricted to some rows, by column, with the centring of those rows.
struct Columns {
    /// Per example, the positions (into the restricted rows) of the rows that drop it.
    rows_of: Vec<Vec<usize>>,
    /// `mu_i`: fraction of the rows dropping `i`.
    mean: Vec<f64>,
    /// `||Z~_i||^2 = count_i (1 - mu_i)`.
    sq_norm: Vec<f64>,
    m: usize,
}

impl Columns {
    fn new(design: &Design, rows: &[usize]) -> Columns {
        let mut rows_of = vec![Vec::new(); design.n];
        for (r, &j) in rows.iter().enumerate() {
            for &i in &design.dropped[j] {
                rows_of[i].push(r);
            }
        }
        let m = rows.len();
        let mean: Vec<f64> = rows_of.iter().map(|c| c.len() as f64 / m as f64).collect();
        let sq_norm = rows_of
            .iter()
            .zip(&mean)
            .map(|(c, mu)| c.len() as f64 * (1.0 - mu))
            .collect();
        Columns {
            rows_of,
            mean,
            sq_norm,
            m,
        }
    }

    /// The intercept that goes with `gamma` for responses of mean `ybar`.
    fn fitted(&self, gamma: Vec<f64>, ybar: f64) -> Fitted {
        let shift: f64 = gamma.iter().zip(&self.mean).map(|(g, mu)| g * mu).sum();
        Fitted {
            intercept: ybar - shift,
            gamma,
        }
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// `lambda_max = max_i |Z~_i^T y~| / m`: the smallest lasso penalty with an all-zero solution.
fn lasso_lambda_max(cols: &Columns, y: &[f64]) -> f64 {
    let ybar = mean(y);
    cols.rows_of
        .iter()
        .map(|c| c.iter().map(|&r| y[r] - ybar).sum::<f64>().abs() / cols.m as f64)
        .fold(0.0, f64::max)
}

/// Lasso fits of `y` (one value per row of `cols`) for each `lambda` in `lambdas` (decreasing), by
/// coordinate descent with warm starts (module docs).
fn lasso_path(cols: &Columns, y: &[f64], lambdas: &[f64]) -> Result<Vec<Fitted>> {
    let m = cols.m;
    let n = cols.rows_of.len();
    let ybar = mean(y);
    // Residual r = y~ - Z~ gamma kept as r_j = s_j + offset, with sum_r = sum_j r_j.
    let mut s: Vec<f64> = y.iter().map(|v| v - ybar).collect();
    let mut offset = 0.0;
    let mut sum_r: f64 = s.iter().sum();
    let scale = (s.iter().map(|v| v * v).sum::<f64>() / m as f64).sqrt();
    let tol = CD_TOL * scale.max(f64::MIN_POSITIVE);
    let mut gamma = vec![0.0; n];
    let mut out = Vec::with_capacity(lambdas.len());
    // One coordinate update; returns the RMS change of the fitted values.
    let mut update =
        |i: usize, lambda: f64, gamma: &mut [f64], s: &mut [f64], offset: &mut f64| -> f64 {
            let c = cols.sq_norm[i];
            if c <= 0.0 {
                return 0.0;
            }
            let col = &cols.rows_of[i];
            let mu = cols.mean[i];
            let zr = col.iter().map(|&r| s[r] + *offset).sum::<f64>() - mu * sum_r;
            let rho = zr + c * gamma[i];
            let t = m as f64 * lambda;
            let new = if rho > t {
                (rho - t) / c
            } else if rho < -t {
                (rho + t) / c
            } else {
                0.0
            };
            let delta = new - gamma[i];
            if delta == 0.0 {
                return 0.0;
            }
            gamma[i] = new;
            for &r in col {
                s[r] -= delta;
            }
            *offset += delta * mu;
            sum_r += -delta * col.len() as f64 + delta * mu * m as f64;
            delta.abs() * (c / m as f64).sqrt()
        };
    for &lambda in lambdas {
        let mut sweeps = 0;
        loop {
            // Full sweep; then iterate on the active set until it settles.
            let mut change = 0.0f64;
            for i in 0..n {
                change = change.max(update(i, lambda, &mut gamma, &mut s, &mut offset));
            }
            sweeps += 1;
            if change <= tol {
                break;
            }
            let active: Vec<usize> = (0..n).filter(|&i| gamma[i] != 0.0).collect();
            loop {
                let mut change = 0.0f64;
                for &i in &active {
                    change = change.max(update(i, lambda, &mut gamma, &mut s, &mut offset));
                }
                sweeps += 1;
                if change <= tol {
                    break;
                }
                if sweeps >= MAX_SWEEPS {
                    return Err(MethodError::NoConvergence {
                        method: "datamodels".into(),
                        solver: format!("lasso coordinate descent (lambda {lambda:e})"),
                        iterations: sweeps,
                        residual: change / scale,
                    });
                }
            }
        }
        out.push(cols.fitted(gamma.clone(), ybar));
    }
    Ok(out)
}

/// `|D_j cap D_k|` for all rows (symmetric, row-major `m x m`).
fn overlaps(design: &Design) -> Vec<f64> {
    let m = design.dropped.len();
    let mut mask = vec![false; design.n];
    let mut out = vec![0.0; m * m];
    for j in 0..m {
        design.dropped[j].iter().for_each(|&i| mask[i] = true);
        for k in 0..=j {
            let c = design.dropped[k].iter().filter(|&&i| mask[i]).count() as f64;
            out[j * m + k] = c;
            out[k * m + j] = c;
        }
        design.dropped[j].iter().for_each(|&i| mask[i] = false);
    }
    out
}

/// The centred Gram matrix `Z~ Z~^T` of `rows`: `|D_j cap D_k| - u_j - u_k + sum_i mu_i^2` with
/// `u_j = sum_{i in D_j} mu_i`.
fn centred_gram(design: &Design, overlap: &[f64], cols: &Columns, rows: &[usize]) -> Vec<f64> {
    let m_all = design.dropped.len();
    let u: Vec<f64> = rows
        .iter()
        .map(|&j| design.dropped[j].iter().map(|&i| cols.mean[i]).sum())
        .collect();
    let mu2: f64 = cols.mean.iter().map(|x| x * x).sum();
    let m = rows.len();
    let mut g = vec![0.0; m * m];
    for (a, &j) in rows.iter().enumerate() {
        for (b, &k) in rows.iter().enumerate() {
            g[a * m + b] = overlap[j * m_all + k] - u[a] - u[b] + mu2;
        }
    }
    g
}

/// Ridge fits for every response in `ys` (each one value per row of `rows`) and every `lambda`:
/// `[target][lambda]`, through the dual `gamma = Z~^T (Z~ Z~^T + m lambda I)^{-1} y~`.
fn ridge_path(
    design: &Design,
    overlap: &[f64],
    rows: &[usize],
    ys: &[Vec<f64>],
    lambdas: &[f64],
) -> Result<Vec<Vec<Fitted>>> {
    let cols = Columns::new(design, rows);
    let m = rows.len();
    let gram = centred_gram(design, overlap, &cols, rows);
    let mut out: Vec<Vec<Fitted>> = vec![Vec::with_capacity(lambdas.len()); ys.len()];
    for &lambda in lambdas {
        let mut a = gram.clone();
        for d in 0..m {
            a[d * m + d] += m as f64 * lambda;
        }
        let l = cholesky(&a, m).map_err(|e| MethodError::Unsupported {
            method: "datamodels".into(),
            reason: format!("ridge with lambda {lambda:e}: {e}; raise lambda or use auto"),
        })?;
        for (y, fits) in ys.iter().zip(out.iter_mut()) {
            let ybar = mean(y);
            let mut alpha: Vec<f64> = y.iter().map(|v| v - ybar).collect();
            cholesky_solve(&l, m, &mut alpha);
            let total: f64 = alpha.iter().sum();
            let gamma: Vec<f64> = cols
                .rows_of
                .iter()
                .zip(&cols.mean)
                .map(|(c, mu)| c.iter().map(|&r| alpha[r]).sum::<f64>() - mu * total)
                .collect();
            fits.push(cols.fitted(gamma, ybar));
        }
    }
    Ok(out)
}

/// `n_values` geometrically spaced values from `hi` down to `hi * ratio`.
fn geometric(hi: f64, ratio: f64, n_values: usize) -> Vec<f64> {
    (0..n_values)
        .map(|k| hi * ratio.powf(k as f64 / (n_values - 1).max(1) as f64))
        .collect()
}

/// Fits the datamodel of every response in `ys` (one value `f(S_j) - f(S)` per row of `design`)
/// and returns the scores `tau = beta = -gamma`, one row per response (module docs). Responses
/// are fitted independently (in parallel for the lasso); results do not depend on the thread count.
///
/// # Errors
/// A lasso that does not converge in [`MAX_SWEEPS`] sweeps, or a ridge system that is not positive
/// definite (`lambda` too small).
///
/// # Panics
/// If a response's length differs from the number of rows, or a dropped index is `>= n`.
pub fn fit(design: &Design, ys: &[Vec<f64>], p: FitParams) -> Result<Vec<Vec<f64>>> {
    let m = design.dropped.len();
    assert!(ys.iter().all(|y| y.len() == m), "one response per subset");
    let all: Vec<usize> = (0..m).collect();
    let folds: Vec<(Vec<usize>, Vec<usize>)> = match p.lambda {
        Auto::Value(_) => Vec::new(),
        Auto::Auto => (0..p.folds)
            .map(|f| all.iter().copied().partition(|&j| j % p.folds != f))
            .collect(),
    };
    let pick = |sse: &[f64]| {
        // First (largest) lambda with the least error.
        let mut best = 0;
        for (k, &e) in sse.iter().enumerate() {
            if e < sse[best] {
                best = k;
            }
        }
        best
    };
    let gammas: Vec<Vec<f64>> = match p.fit {
        Fit::Lasso => {
            let full = Columns::new(design, &all);
            let fold_cols: Vec<Columns> = folds
                .iter()
                .map(|(train, _)| Columns::new(design, train))
                .collect();
            ys.par_iter()
                .map(|y| {
                    let lambdas = match p.lambda {
                        Auto::Value(v) => vec![v],
                        Auto::Auto => {
                            let ratio = if m < design.n { 1e-2 } else { 1e-4 };
                            geometric(lasso_lambda_max(&full, y), ratio, PATH_LEN)
                        }
                    };
                    let mut sse = vec![0.0; lambdas.len()];
                    for ((train, val), cols) in folds.iter().zip(&fold_cols) {
                        let yt: Vec<f64> = train.iter().map(|&j| y[j]).collect();
                        for (k, f) in lasso_path(cols, &yt, &lambdas)?.iter().enumerate() {
                            sse[k] += val
                                .iter()
                                .map(|&j| (y[j] - f.predict(&design.dropped[j])).powi(2))
                                .sum::<f64>();
                        }
                    }
                    let best = pick(&sse);
                    let path = lasso_path(&full, y, &lambdas[..=best])?;
                    Ok(path[best].gamma.clone())
                })
                .collect::<Result<_>>()?
        }
        Fit::Ridge => {
            let overlap = overlaps(design);
            let lambdas = match p.lambda {
                Auto::Value(v) => vec![v],
                Auto::Auto => {
                    let cols = Columns::new(design, &all);
                    let trace: f64 = cols.sq_norm.iter().sum();
                    geometric(1e2 * trace / (m * m) as f64, 1e-6, PATH_LEN)
                }
            };
            let mut sse = vec![vec![0.0; lambdas.len()]; ys.len()];
            for (train, val) in &folds {
                let yt: Vec<Vec<f64>> = ys
                    .iter()
                    .map(|y| train.iter().map(|&j| y[j]).collect())
                    .collect();
                let fits = ridge_path(design, &overlap, train, &yt, &lambdas)?;
                for ((y, fs), e) in ys.iter().zip(&fits).zip(sse.iter_mut()) {
                    for (k, f) in fs.iter().enumerate() {
                        e[k] += val
                            .iter()
                            .map(|&j| (y[j] - f.predict(&design.dropped[j])).powi(2))
                            .sum::<f64>();
                    }
                }
            }
            let fits = ridge_path(design, &overlap, &all, ys, &lambdas)?;
            fits.into_iter()
                .zip(&sse)
                .map(|(mut fs, e)| fs.swap_remove(pick(e)).gamma)
                .collect()
        }
    };
    Ok(gammas
        .into_iter()
        .map(|g| g.into_iter().map(|x| -x).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Rng;
    use run::subsets::{dropped_of, subset_masks};

    /// Subsets of `n` examples dropping `fraction`, as a design.
    fn design(n: usize, fraction: f64, m: usize, seed: u64) -> Design {
        let spec = SubsetSpec::drop(fraction, m, seed);
        Design {
            n,
            dropped: subset_masks(n, &spec)
                .iter()
                .map(|mask| dropped_of(mask))
                .collect(),
        }
    }

    /// An exactly linear "retraining": `f(S_j) - f(S) = -sum_{i in D_j} beta_i`.
    fn linear_response(d: &Design, beta: &[f64]) -> Vec<f64> {
        d.dropped
            .iter()
            .map(|dj| -dj.iter().map(|&i| beta[i]).sum::<f64>())
            .collect()
    }

    fn max_abs_err(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// `max_i |a_i - b_i - k|` with `k` the mean of `a - b`: the error up to the common constant
    /// that fixed-size subsets cannot identify (module docs).
    fn max_err_up_to_constant(a: &[f64], b: &[f64]) -> f64 {
        let k = a.iter().zip(b).map(|(x, y)| x - y).sum::<f64>() / a.len() as f64;
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y - k).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn an_exactly_linear_target_is_recovered() {
        // More subsets than examples: the least-squares problem is determined up to the common
        // constant (module docs), so the only error is the shrinkage of the smallest lambda on the
        // path (1e-4 lambda_max for the lasso, ~3e-5 here, i.e. a bias ~ lambda / (mu (1 - mu)) =
        // 2e-4; 1e-4 tr/m^2 for ridge), far below the unit scale of the coefficients.
        let n = 40;
        let d = design(n, 0.2, 300, 3);
        let mut rng = Rng::new(11);
        let beta: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mut y = linear_response(&d, &beta);
        // A constant intercept is absorbed, not attributed.
        y.iter_mut().for_each(|v| *v += 2.5);
        for fit_kind in [Fit::Lasso, Fit::Ridge] {
            let p = FitParams {
                fit: fit_kind,
                lambda: Auto::Auto,
                folds: 5,
            };
            let tau = fit(&d, std::slice::from_ref(&y), p).unwrap().remove(0);
            let err = max_err_up_to_constant(&tau, &beta);
            eprintln!("{fit_kind}: max |tau - beta - const| = {err:e}");
            assert!(err < 2e-3, "{fit_kind}: {err}");
        }
        // lambda = 0 is least squares, exact up to the CD stopping rule: a last step moves the
        // fitted values by at most CD_TOL * RMS(y) ~ 3e-4, a coefficient by ~ that / sqrt(mu (1 - mu)).
        let p = FitParams {
            fit: Fit::Lasso,
            lambda: Auto::Value(0.0),
            folds: 5,
        };
        let tau = fit(&d, std::slice::from_ref(&y), p).unwrap().remove(0);
        let err = max_err_up_to_constant(&tau, &beta);
        eprintln!("lasso, lambda 0: max |tau - beta - const| = {err:e}");
        assert!(err < 2e-3, "{err}");
    }

    #[test]
    fn the_lasso_finds_a_sparse_truth_from_few_subsets() {
        // 120 examples, 5 of which matter, 80 subsets (fewer than examples): ridge cannot resolve
        // the coefficients, the cross-validated lasso can.
        let n = 120;
        let d = design(n, 0.1, 80, 5);
        let mut beta = vec![0.0; n];
        for (k, i) in [3usize, 17, 40, 77, 101].into_iter().enumerate() {
            beta[i] = if k % 2 == 0 { 1.0 } else { -0.7 };
        }
        let y = linear_response(&d, &beta);
        let p = FitParams {
            fit: Fit::Lasso,
            lambda: Auto::Auto,
            folds: 5,
        };
        let tau = fit(&d, std::slice::from_ref(&y), p).unwrap().remove(0);
        let err = max_abs_err(&tau, &beta);
        eprintln!("sparse lasso: max |tau - beta| = {err:e}");
        assert!(err < 0.05, "{err}");
    }

    #[test]
    fn targets_are_fitted_independently() {
        let n = 30;
        let d = design(n, 0.1, 60, 2);
        let mut rng = Rng::new(1);
        let ys: Vec<Vec<f64>> = (0..3)
            .map(|_| (0..60).map(|_| rng.normal()).collect())
            .collect();
        for fit_kind in [Fit::Lasso, Fit::Ridge] {
            let p = FitParams {
                fit: fit_kind,
                lambda: Auto::Auto,
                folds: 4,
            };
            let all = fit(&d, &ys, p).unwrap();
            for (t, y) in ys.iter().enumerate() {
                let one = fit(&d, std::slice::from_ref(y), p).unwrap();
                assert_eq!(one[0], all[t], "{fit_kind}");
            }
        }
    }

    /// End to end on a small logistic regression: the subsets are retrained once into the run's
    /// cache and reused, and the datamodel predicts held-out retrainings (the LDS's seed-0 subsets,
    /// never seen by the fit) better than chance by a wide margin.
    #[test]
    fn end_to_end_predicts_held_out_retrainings() {
        use crate::testutil::config;
        use eval::stats::pearson;
        use nn::Output;
        use run::store::MANIFEST;
        let tmp = tempfile::tempdir().unwrap();
        let mut run = Run::train(
            config(r#"{ kind = "logistic" }"#, 1e-3, 3, 32, 0.1),
            ".".as_ref(),
        )
        .unwrap();
        run.dir = Some(tmp.path().to_path_buf());
        let targets = Targets::test(vec![0, 1, 2, 3], Output::Margin);
        let (m, _) = crate::registry::build(
            "datamodels",
            Options::empty("datamodels").set("subsets", 150),
        )
        .unwrap();
        let tau = m.attribute(&run, &targets).unwrap();
        let spec = SubsetSpec::drop(0.05, 150, 1);
        let dir = cache_dir(tmp.path(), &spec, Output::Margin, run::Split::Test);
        assert!(dir.join(MANIFEST).exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 151);
        // The second call reads the cache and gives the same bits.
        assert_eq!(m.attribute(&run, &targets).unwrap(), tau);
        // Held out: 40 subsets of the evaluation's seed.
        let held = SubsetSpec::drop(0.05, 40, EVALUATION_SEED);
        let retraining =
            Retraining::new(MaskSource::Subsets(held), Output::Margin, run::Split::Test);
        let gt = ground_truth(&run, &retraining).unwrap();
        for (t, &target) in targets.indices.iter().enumerate() {
            let truth: Vec<f64> = gt
                .outputs
                .iter()
                .map(|o| o[target] - gt.full[target])
                .collect();
            let pred: Vec<f64> = (0..40)
                .map(|j| -gt.dropped(j).iter().map(|&i| tau[t][i]).sum::<f64>())
                .collect();
            let r = pearson(&pred, &truth);
            eprintln!("datamodels, target {target}: held-out Pearson {r:.3}");
            assert!(r > 0.5, "target {target}: {r}");
        }
    }

    #[test]
    fn seed_zero_and_bad_options_are_refused() {
        for (k, v) in [
            ("seed", "0"),
            ("drop", "1.5"),
            ("subsets", "1"),
            ("folds", "1"),
            ("fit", "elastic"),
        ] {
            let e = build(&mut Options::empty("datamodels").set(k, v))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(k), "{e}");
        }
        let mut o = Options::empty("datamodels")
            .set("fit", "ridge")
            .set("lambda", "0");
        assert!(build(&mut o).is_err());
    }
}
