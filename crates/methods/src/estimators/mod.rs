//! The attribution estimators, one file per method, plus the passes over the training set they
//! share (this module) and the GLM algebra of the closed forms ([`glm`]).
//!
//! | name | file | MATH.md | what |
//! |---|---|---|---|
//! | `loo-ridge` | [`loo_ridge`] | E3 | exact leave-one-out of ridge least squares (Sherman-Morrison) |
//! | `loo-newton` | [`loo_newton`] | E3 | one-Newton-step leave-one-out of L2 logistic regression |
//! | `if-exact`, `if-cg`, `if-lissa`, `if-gn`, `if-arnoldi` | [`influence`] | E3 | influence functions |
//! | `ekfac`, `kfac`, `if-diag` | [`ekfac`] | E4 | influence with a layer-wise (E)K-FAC or diagonal Gauss-Newton |
//! | `tracin` | [`tracin`] | E4 | gradient dot products along the trajectory |
//! | `trak` | [`trak`] | E4 | kernel regression on random projections of gradients, model ensembles |
//! | `similarity` | [`similarity`] | E4 | cosine of penultimate features (weak baseline) |
//! | `magic` | [`magic`] | E2 | exact metagradients through the whole training run (REPLAY) |
//! | `datamodels` | [`datamodels`] | E4, E6 | lasso/ridge fit to cached subset retrainings |
//! | `knn-shapley`, `tmc-shapley` | [`shapley`] | E4 | Data Shapley: k-NN closed form, truncated Monte Carlo |
//!
//! Every method also scores groups of a [`crate::groups::Grouping`] (MATH.md E5,
//! [`crate::Method::attribute_groups`]): influence functions and TracIn from group gradients
//! ([`TrainChunks::loss_dots`] with [`Columns::Groups`]), the others by summing their per-example
//! scores, which is exact for them and costs no more (MAGIC's reverse sweep yields every example's
//! derivative at once; TRAK's kernel needs every example's projected gradient anyway).
//!
//! ## The objective the classical estimators differentiate
//! A run minimises (MATH.md E1, in expectation over batches)
//! `L(theta, w) = (1/n) sum_i w_i l_i(theta) + (lambda/2) ||theta||^2`, with `lambda` the optimizer's
//! weight decay ([`nn::Optimizer::objective_l2`]; every parameter, biases included, is decayed;
//! for AdamW, whose decay is decoupled, its fixed point is only approximately that optimum). At an optimum,
//! `d theta / d w_j = -H^{-1} (1/n) grad l_j` with `H = (1/n) sum_i hess l_i + lambda I`, so the
//! influence-function score is
//! `tau_j = d f / d w_j = -(1/n) grad f^T (H + damping I)^{-1} grad l_j`.
//! Scores follow the crate's sign convention `tau_i = d f / d w_i`: dropping `D` predicts
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`.
//!
//! ## Passes over the training set
//! The training set is cut into chunks of `chunk` examples (option, default 512) in index order.
//! Hessian-vector products sum the chunks' products weighted by chunk size in chunk order, so the
//! result does not depend on the number of threads (and on the chunk size only through rounding).
//! `<grad l_j, v_t>` for all `j` and `k` directions comes from one dual forward pass per chunk.

pub mod datamodels;
pub mod ekfac;
pub mod glm;
pub mod influence;
pub mod loo_newton;
pub mod loo_ridge;
pub mod magic;
pub mod shapley;
pub mod similarity;
pub mod tracin;
pub mod trak;

use std::fmt;
use std::str::FromStr;

use data::Dataset;
use engine::{Dual, Graph, Rng, Tensor};
use nn::{Batch, Model, Output};
use rayon::prelude::*;

use crate::error::{MethodError, Result};
use crate::groups::{group_loss_grads, Grouping};
use crate::options::{at_least_one, Options};
use crate::run::Run;
use crate::solvers::{LanczosParams, LinOp, SolveError};

/// Default examples per chunk of a pass over the training set.
pub const DEFAULT_CHUNK: usize = 512;

/// An option that is either `auto` (a documented rule computes it) or a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Auto<T> {
    /// Let the method choose by its documented rule.
    Auto,
    /// This value.
    Value(T),
}

impl<T: FromStr> FromStr for Auto<T> {
    type Err = T::Err;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if s.trim() == "auto" {
            Ok(Auto::Auto)
        } else {
            s.parse().map(Auto::Value)
        }
    }
}

impl<T: fmt::Display> fmt::Display for Auto<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auto::Auto => f.write_str("auto"),
            Auto::Value(v) => v.fmt(f),
        }
    }
}

/// `Ok` for `auto` or a finite number `>= 0`.
pub fn auto_non_negative(v: &Auto<f64>) -> std::result::Result<(), String> {
    match v {
        Auto::Value(x) if !(x.is_finite() && *x >= 0.0) => {
            Err("must be `auto` or a finite number >= 0".into())
        }
        _ => Ok(()),
    }
}

/// `Ok` for `auto` or a positive finite number.
pub fn auto_positive(v: &Auto<f64>) -> std::result::Result<(), String> {
    match v {
        Auto::Value(x) if !(x.is_finite() && *x > 0.0) => {
            Err("must be `auto` or a positive finite number".into())
        }
        _ => Ok(()),
    }
}

/// Reads the `chunk` option: examples per chunk of a training-set pass (default 512). Results
/// depend on it only through rounding.
///
/// # Errors
/// A value below 1.
pub fn chunk_option(opts: &mut Options) -> Result<usize> {
    opts.get("chunk", DEFAULT_CHUNK, at_least_one)
}

/// The training set cut into chunks of consecutive examples, built once per attribution.
pub struct TrainChunks {
    /// The chunks' batches, in index order.
    pub batches: Vec<Batch<f64>>,
    /// Index of each chunk's first example.
    pub starts: Vec<usize>,
    /// Number of training examples.
    pub n: usize,
    /// Examples per chunk (also the largest batch of a group-gradient pass).
    pub chunk: usize,
}

/// The columns of a score matrix: every training example, or the groups of a grouping (MATH.md
/// E5: a group's column is `d f / d w_G`, the sum of its members' columns for linear methods).
#[derive(Debug, Clone, Copy)]
pub enum Columns<'a> {
    /// One column per training example.
    Examples,
    /// One column per group.
    Groups(&'a Grouping),
}

impl TrainChunks {
    /// Chunks of `chunk` examples of `ds` (the last may be shorter).
    pub fn new(ds: &Dataset, chunk: usize) -> TrainChunks {
        let n = ds.len();
        let chunk = chunk.max(1);
        let starts: Vec<usize> = (0..n).step_by(chunk).collect();
        let batches = starts
            .iter()
            .map(|&s| {
                let idx: Vec<usize> = (s..(s + chunk).min(n)).collect();
                Batch::from_dataset(ds, &idx)
            })
            .collect();
        TrainChunks {
            batches,
            starts,
            n,
            chunk,
        }
    }

    /// `sum_c |c| * f(chunk c)` elementwise, chunks added in index order (deterministic for any
    /// thread count); `f` returns `k` vectors of length `dim`, each the mean over its chunk.
    fn weighted_sum(
        &self,
        k: usize,
        dim: usize,
        f: impl Fn(&Batch<f64>) -> Vec<Vec<f64>> + Sync,
    ) -> Vec<Vec<f64>> {
        let mut acc = vec![vec![0.0; dim]; k];
        let window = rayon::current_num_threads().max(1);
        for group in self.batches.chunks(window) {
            let parts: Vec<(usize, Vec<Vec<f64>>)> =
                group.par_iter().map(|b| (b.len(), f(b))).collect();
            for (len, part) in parts {
                let w = len as f64;
                for (a, p) in acc.iter_mut().zip(part) {
                    for (x, y) in a.iter_mut().zip(p) {
                        *x += w * y;
                    }
                }
            }
        }
        acc
    }

    /// `[k][n]`: `<grad o_j(params), v_t>` for every training example `j` and direction `v_t`,
    /// where `o` is the per-example output `out` (the loss for influence scores): one dual forward
    /// pass per chunk.
    pub fn output_jvps(
        &self,
        model: &Model,
        params: &[f64],
        out: Output,
        dirs: &[&[f64]],
    ) -> Vec<Vec<f64>> {
        let k = dirs.len();
        let mut res = vec![vec![0.0; self.n]; k];
        if k == 0 {
            return res;
        }
        let parts: Vec<Vec<Vec<f64>>> = self
            .batches
            .par_iter()
            .map(|b| nn::per_example::output_jvps(model, params, b, out, dirs).1)
            .collect();
        for (&s, part) in self.starts.iter().zip(parts) {
            for (row, p) in res.iter_mut().zip(part) {
                row[s..s + p.len()].copy_from_slice(&p);
            }
        }
        res
    }
}

impl Columns<'_> {
    /// Number of columns for a training set of `n` examples.
    pub fn count(&self, n: usize) -> usize {
        match self {
            Columns::Examples => n,
            Columns::Groups(g) => g.k,
        }
    }
}

impl TrainChunks {
    /// `[k][columns]`: `<grad L_c(params), v_t>` for every column `c` and direction `v_t`, where
    /// `L_c` is example `c`'s loss ([`TrainChunks::output_jvps`]: one dual forward pass per chunk)
    /// or group `c`'s summed loss (its group gradient from [`group_loss_grads`], one reverse pass
    /// per batch of members, dotted with each direction). `ds` is the training set the chunks
    /// were cut from.
    pub fn loss_dots(
        &self,
        ds: &Dataset,
        model: &Model,
        params: &[f64],
        columns: Columns<'_>,
        dirs: &[&[f64]],
    ) -> Vec<Vec<f64>> {
        match columns {
            Columns::Examples => self.output_jvps(model, params, Output::Loss, dirs),
            Columns::Groups(g) => {
                let grads = group_loss_grads(model, params, ds, g, self.chunk);
                dirs.iter()
                    .map(|v| grads.iter().map(|gg| crate::linalg::dot(gg, v)).collect())
                    .collect()
            }
        }
    }
}

/// Which curvature matrix an operator multiplies by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurvatureKind {
    /// The Hessian of the mean training loss, `(1/n) sum_i hess l_i` (forward-over-reverse).
    Hessian,
    /// The Gauss-Newton matrix `(1/n) sum_i J_i^T D_i J_i`, `J_i` the Jacobian of example `i`'s
    /// logits and `D_i` the Hessian of the loss in the logits (see [`gauss_newton_products`]).
    GaussNewton,
}

/// The damped curvature operator `A v = C v + shift v` over the whole training set, with `C` the
/// Hessian or Gauss-Newton matrix of the mean training loss and `shift = lambda + damping`.
pub struct Curvature<'a> {
    /// The model.
    pub model: &'a Model,
    /// Where the curvature is taken.
    pub params: &'a [f64],
    /// The training set.
    pub data: &'a TrainChunks,
    /// Hessian or Gauss-Newton.
    pub kind: CurvatureKind,
    /// Added multiple of the identity (`lambda + damping`).
    pub shift: f64,
}

impl Curvature<'_> {
    /// The curvature of the examples of one batch applied to `dirs`, averaged over the batch
    /// (without the shift).
    pub fn batch_products(&self, batch: &Batch<f64>, dirs: &[&[f64]]) -> Vec<Vec<f64>> {
        match self.kind {
            CurvatureKind::Hessian => {
                let ones = vec![1.0; batch.len()];
                nn::per_example::objective_hvps(self.model, self.params, batch, &ones, dirs).1
            }
            CurvatureKind::GaussNewton => {
                gauss_newton_products(self.model, self.params, batch, dirs)
            }
        }
    }
}

impl LinOp for Curvature<'_> {
    fn dim(&self) -> usize {
        self.params.len()
    }

    fn apply(&self, vs: &[&[f64]]) -> Vec<Vec<f64>> {
        let mut out = self
            .data
            .weighted_sum(vs.len(), self.params.len(), |b| self.batch_products(b, vs));
        let inv_n = 1.0 / self.data.n as f64;
        for (o, v) in out.iter_mut().zip(vs) {
            for (x, &vi) in o.iter_mut().zip(v.iter()) {
                *x = *x * inv_n + self.shift * vi;
            }
        }
        out
    }
}

/// Gauss-Newton products `(1/|B|) sum_{i in B} J_i^T D_i J_i v` for each direction `v`, from one
/// dual forward pass to the logits (tangents `J v`) and one reverse pass seeded with the dual
/// cotangent `(0, D J v)`: the tangent of the parameters' cotangent is then `J^T D J v` exactly
/// (the second-order term multiplies the zero primal seed).
///
/// `D` is the Hessian of the loss in the logits, [`nn::LogitHessian`] (for GLMs with canonical
/// links, linear and logistic regression, `J^T D J` is the exact Hessian).
pub fn gauss_newton_products(
    model: &Model,
    params: &[f64],
    batch: &Batch<f64>,
    dirs: &[&[f64]],
) -> Vec<Vec<f64>> {
    let k = dirs.len();
    let layout = model.layout();
    let g = Graph::<f64, Dual<f64>>::new();
    let p = layout.dual_leaves(&g, params, dirs, true);
    let z = model.forward(&g, &p, &batch.input);
    let zv = g.value(z);
    let shape = zv.value.shape().to_vec();
    let c = *shape.last().unwrap();
    let rows = zv.value.len() / c.max(1);
    let logits = zv.value.data();
    let jv = zv.tangent_or_zeros(k);
    let jv = jv.data();
    let per = rows * c;
    let d = model.task().logit_hessian(logits, &shape);
    let mut u = vec![0.0; k * per];
    if per > 0 {
        for (ut, jt) in u.chunks_mut(per).zip(jv.chunks(per)) {
            d.apply_into(jt, ut);
        }
    }
    let mut tshape = vec![k];
    tshape.extend_from_slice(&shape);
    let seed = Dual::new(Tensor::zeros(&shape), Tensor::from_vec(u, &tshape));
    let grads = g.backward(z, Some(seed));
    let inv_b = 1.0 / batch.len() as f64;
    let mut out = vec![Vec::with_capacity(layout.total()); k];
    for (i, &leaf) in p.iter().enumerate() {
        let len = layout.range(i).len();
        match grads.get(leaf).and_then(|d| d.tangent.as_ref()) {
            Some(t) => {
                for (j, o) in out.iter_mut().enumerate() {
                    o.extend(t.data()[j * len..(j + 1) * len].iter().map(|x| x * inv_b));
                }
            }
            None => out
                .iter_mut()
                .for_each(|o| o.extend(std::iter::repeat_n(0.0, len))),
        }
    }
    out
}

/// Rademacher probes for the trace estimate of [`auto_damping`].
pub const TRACE_PROBES: usize = 10;

/// Relative size of the automatic damping.
pub const AUTO_DAMPING: f64 = 1e-2;

/// Lanczos steps of the top-eigenvalue estimate in [`auto_damping`].
pub const TOP_EIGEN_ITERS: usize = 20;

/// `-A` for an operator `A` (its top eigenvalue is `-lambda_min(A)`).
struct Negated<'a>(&'a dyn LinOp);

impl LinOp for Negated<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn apply(&self, vs: &[&[f64]]) -> Vec<Vec<f64>> {
        let mut out = self.0.apply(vs);
        out.iter_mut().flatten().for_each(|x| *x = -*x);
        out
    }
}

/// Largest eigenvalue estimate of `op` from [`TOP_EIGEN_ITERS`] Lanczos steps (`None` when the
/// Krylov space is exhausted first, which only happens for tiny problems).
fn top_eigenvalue(op: &dyn LinOp) -> Option<f64> {
    let params = LanczosParams {
        rank: 1,
        iters: TOP_EIGEN_ITERS,
        tol: f64::INFINITY,
        seed: 0,
    };
    crate::solvers::lanczos(op, params)
        .ok()
        .map(|e| e.values[0])
}

/// The `auto` damping rule. It looks at the training data only, never at ground truth.
///
/// - Convex models (linear and logistic regression): `0.01 * tr(C) / p`, a hundredth of the mean
///   eigenvalue of the undamped curvature `C` (weight decay included), with the trace estimated by
///   Hutchinson's estimator `mean_s z_s^T C z_s` over [`TRACE_PROBES`] Rademacher vectors from a
///   fixed seed. `C` is positive definite already; this only regularises ill conditioning.
/// - Networks: `max(0.01 * lambda_max(C), 2 * |lambda_min(C)|)`, both estimated by
///   [`TOP_EIGEN_ITERS`] Lanczos steps (on `C` and on `-C`). A network's Hessian is indefinite with
///   most eigenvalues near 0, so a trace-relative damping would be vanishingly small; this one
///   bounds the condition number of the damped matrix by ~100 and outweighs its most negative
///   curvature twice over, so CG and Cholesky see a positive definite matrix.
pub fn auto_damping(op: &Curvature<'_>, convex: bool) -> f64 {
    if !convex {
        if let (Some(top), Some(neg)) = (top_eigenvalue(op), top_eigenvalue(&Negated(op))) {
            return (AUTO_DAMPING * top).max(2.0 * neg).max(0.0);
        }
    }
    let p = op.dim();
    let mut rng = Rng::derive(0, "damping", 0);
    let probes: Vec<Vec<f64>> = (0..TRACE_PROBES)
        .map(|_| {
            (0..p)
                .map(|_| if rng.below(2) == 0 { -1.0 } else { 1.0 })
                .collect()
        })
        .collect();
    let dirs: Vec<&[f64]> = probes.iter().map(|v| v.as_slice()).collect();
    let cz = op.apply(&dirs);
    let trace: f64 = probes
        .iter()
        .zip(&cz)
        .map(|(z, c)| crate::linalg::dot(z, c))
        .sum::<f64>()
        / TRACE_PROBES as f64;
    (AUTO_DAMPING * trace / p as f64).max(0.0)
}

/// `true` for models whose training loss is convex in the parameters (linear and logistic
/// regression), where no damping beyond weight decay is needed.
pub fn is_convex(run: &Run) -> bool {
    matches!(
        run.config.model,
        nn::ModelConfig::Linear {} | nn::ModelConfig::Logistic {}
    )
}

/// Converts a solver failure into the method's error.
pub fn solve_error(method: &str, solver: &str, e: SolveError) -> MethodError {
    match e {
        SolveError::NoConvergence {
            iterations,
            residual,
        } => MethodError::NoConvergence {
            method: method.into(),
            solver: solver.into(),
            iterations,
            residual,
        },
        other => MethodError::Unsupported {
            method: method.into(),
            reason: format!("{solver}: {other}"),
        },
    }
}

/// Pearson correlation (for tests and reports).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Small runs for the estimators' tests (embedded data, f64, seconds to build).

    use data::{DataConfig, Labels, Source};
    use nn::{Model, ModelConfig, RunConfig};

    use super::glm::Glm;
    use crate::run::Run;

    /// A run config on breast cancer with `model` and SGD weight decay `wd`.
    pub fn config(model: &str, wd: f64, epochs: usize, batch: usize, lr: f64) -> RunConfig {
        let text = format!(
            r#"
data = {{ source = "breast_cancer" }}
model = {model}
optim = {{ kind = "sgd", lr = {lr}, weight_decay = {wd} }}
train = {{ epochs = {epochs}, batch_size = {batch}, precision = "f64" }}
"#
        );
        RunConfig::from_toml_str(&text, "t.toml".as_ref()).unwrap()
    }

    /// L2 logistic regression on breast cancer at the exact optimum of its objective (Newton).
    pub fn logistic_at_optimum(wd: f64) -> Run {
        let cfg = config(r#"{ kind = "logistic" }"#, wd, 1, 64, 0.1);
        let splits = data::load_splits(&cfg.data, ".".as_ref()).unwrap();
        let model = Model::new(&cfg.model, &splits.train).unwrap();
        let glm = Glm::binary_logistic(&splits.train, wd);
        let theta = glm
            .solve(&vec![0.0; glm.q], &vec![1.0; glm.n], 1e-12, 100)
            .unwrap()
            .0;
        Run::from_parts(cfg, splits, model, theta).unwrap()
    }

    /// Breast cancer features with the class label as a real target, and a linear model (params
    /// at their seeded initialisation: the closed forms do not read them).
    pub fn ridge_run(wd: f64) -> Run {
        let cfg = config(r#"{ kind = "linear" }"#, wd, 1, 64, 0.01);
        let mut splits =
            data::load_splits(&DataConfig::new(Source::BreastCancer), ".".as_ref()).unwrap();
        for ds in [&mut splits.train, &mut splits.test] {
            let Labels::Classes { y, .. } = &ds.labels else {
                unreachable!()
            };
            ds.labels = Labels::Real(y.iter().map(|&c| c as f32).collect());
        }
        let model = Model::new(&ModelConfig::Linear {}, &splits.train).unwrap();
        let params = model.layout().init(0);
        Run::from_parts(cfg, splits, model, params).unwrap()
    }

    /// A tiny f64 MLP (one hidden layer of 6 tanh units) trained for a few epochs.
    pub fn tiny_mlp(wd: f64) -> Run {
        let cfg = config(
            r#"{ kind = "mlp", hidden = [6], activation = "tanh" }"#,
            wd,
            5,
            32,
            0.1,
        );
        Run::train(cfg, ".".as_ref()).unwrap()
    }

    /// An f64 logistic regression on the first `n` breast-cancer training examples, trained by 20
    /// full-batch SGD steps (lr 0.5): small enough to retrain every subset.
    pub fn tiny_logistic(n: usize) -> Run {
        let text = format!(
            r#"
data = {{ source = "breast_cancer", max_train = {n} }}
model = {{ kind = "logistic" }}
optim = {{ kind = "sgd", lr = 0.5 }}
train = {{ epochs = 20, batch_size = {n}, precision = "f64" }}
"#
        );
        Run::train(
            RunConfig::from_toml_str(&text, "t.toml".as_ref()).unwrap(),
            ".".as_ref(),
        )
        .unwrap()
    }

    /// Brute-force leave-one-out ground truth on a GLM run: `truth[t][j] = f_t(theta) -
    /// f_t(theta_{-j})`, with `theta_{-j}` re-solved to 1e-12 by Newton's method without example
    /// `j`. Signed like `tau` (minus the change), so a perfect method has Pearson 1 with it.
    pub fn brute_force_loo(
        run: &Run,
        method: &str,
        targets: &crate::run::Targets,
    ) -> Vec<Vec<f64>> {
        let glm = Glm::of_run(run, method, "").unwrap();
        let base = run.target_outputs(&run.params, targets);
        let mut truth = vec![vec![0.0; glm.n]; targets.indices.len()];
        for j in 0..glm.n {
            let mut w = vec![1.0; glm.n];
            w[j] = 0.0;
            let (tj, _) = glm.solve(&run.params, &w, 1e-12, 100).unwrap();
            let out = run.target_outputs(&tj, targets);
            for t in 0..targets.indices.len() {
                truth[t][j] = base[t] - out[t];
            }
        }
        truth
    }

    /// Asserts that every target's scores correlate with the ground truth at Pearson >= `min`,
    /// and prints the worst and mean correlation under `name`.
    pub fn assert_pearson_at_least(name: &str, tau: &[Vec<f64>], truth: &[Vec<f64>], min: f64) {
        let mut worst = 1.0f64;
        let mut mean = 0.0;
        for (t, (a, b)) in tau.iter().zip(truth).enumerate() {
            let r = super::pearson(a, b);
            worst = worst.min(r);
            mean += r / tau.len() as f64;
            assert!(r >= min, "{name}, target {t}: Pearson {r} < {min}");
        }
        eprintln!(
            "{name}: Pearson over {} targets: min {worst:.4}, mean {mean:.4}",
            tau.len()
        );
    }

    /// `||a - b|| / ||b||` over whole score matrices.
    pub fn rel_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
        let (mut d, mut s) = (0.0, 0.0);
        for (ra, rb) in a.iter().zip(b) {
            for (x, y) in ra.iter().zip(rb) {
                d += (x - y) * (x - y);
                s += y * y;
            }
        }
        (d / s).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn auto_parses_and_prints() {
        assert_eq!("auto".parse::<Auto<f64>>().unwrap(), Auto::Auto);
        assert_eq!("0.5".parse::<Auto<f64>>().unwrap(), Auto::Value(0.5));
        assert!("x".parse::<Auto<f64>>().is_err());
        assert_eq!(Auto::<usize>::Auto.to_string(), "auto");
        assert_eq!(Auto::Value(3usize).to_string(), "3");
        assert!(auto_non_negative(&Auto::Value(-1.0)).is_err());
        assert!(auto_positive(&Auto::Value(0.0)).is_err());
    }

    #[test]
    fn curvature_is_symmetric_and_chunking_only_rounds() {
        let run = tiny_mlp(1e-3);
        let p = run.params.len();
        let mut rng = Rng::new(5);
        let u: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
        let v: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
        for kind in [CurvatureKind::Hessian, CurvatureKind::GaussNewton] {
            let mut results = Vec::new();
            for chunk in [512, 37] {
                let data = TrainChunks::new(&run.splits.train, chunk);
                let op = Curvature {
                    model: &run.model,
                    params: &run.params,
                    data: &data,
                    kind,
                    shift: 0.01,
                };
                let out = op.apply(&[&u, &v]);
                // <u, A v> == <A u, v>
                let (a, b) = (
                    crate::linalg::dot(&u, &out[1]),
                    crate::linalg::dot(&out[0], &v),
                );
                assert!(
                    (a - b).abs() <= 1e-10 * a.abs().max(1.0),
                    "{kind:?}: {a} vs {b}"
                );
                // A block of two equals one at a time.
                let single = op.apply(&[&v]);
                assert!(rel_diff(&single, &out[1..]) < 1e-13, "{kind:?}");
                results.push(out);
            }
            assert!(rel_diff(&results[1], &results[0]) < 1e-12, "{kind:?}");
        }
    }

    #[test]
    fn gauss_newton_is_the_hessian_for_logistic_regression() {
        let run = logistic_at_optimum(1e-2);
        let data = TrainChunks::new(&run.splits.train, 100);
        let mut rng = Rng::new(6);
        let v: Vec<f64> = (0..run.params.len()).map(|_| rng.normal()).collect();
        let op = |kind| Curvature {
            model: &run.model,
            params: &run.params,
            data: &data,
            kind,
            shift: 0.0,
        };
        let h = op(CurvatureKind::Hessian).apply(&[&v]);
        let gn = op(CurvatureKind::GaussNewton).apply(&[&v]);
        assert!(rel_diff(&gn, &h) < 1e-12, "{}", rel_diff(&gn, &h));
    }

    #[test]
    fn gauss_newton_matches_a_finite_difference_of_the_linearised_loss() {
        // For softmax cross-entropy, J^T D J v = d/de grad_theta l(z(theta) + e J v) at e = 0
        // with z linearised; check v^T G v = || D^{1/2} J v ||^2 >= 0 and G v vs a dense build of
        // J^T D J from per-logit gradients on a single example.
        let run = tiny_mlp(0.0);
        let one = nn::per_example::single(&Batch::from_dataset(&run.splits.train, &[3]), 0);
        let p = run.params.len();
        let mut rng = Rng::new(7);
        let v: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
        let gv = gauss_newton_products(&run.model, &run.params, &one, &[&v]).remove(0);
        // Jacobian rows of the 2 logits by reverse mode.
        let jac: Vec<Vec<f64>> = (0..2)
            .map(|c| {
                let g = Graph::<f64>::new();
                let leaves = run.model.layout().leaves(&g, &run.params, true);
                let z = run.model.forward(&g, &leaves, &one.input);
                let mut seed = vec![0.0; 2];
                seed[c] = 1.0;
                let grads = g.backward(z, Some(Tensor::from_vec(seed, &[1, 2])));
                run.model.layout().flat_grad(&grads, &leaves)
            })
            .collect();
        let g = Graph::<f64>::new();
        let leaves = run.model.layout().leaves(&g, &run.params, false);
        let z = g
            .tensor(run.model.forward(&g, &leaves, &one.input))
            .into_vec();
        let m = z[0].max(z[1]);
        let e: Vec<f64> = z.iter().map(|x| (x - m).exp()).collect();
        let pr: Vec<f64> = e.iter().map(|x| x / (e[0] + e[1])).collect();
        let jv: Vec<f64> = jac.iter().map(|r| crate::linalg::dot(r, &v)).collect();
        let pjv = pr[0] * jv[0] + pr[1] * jv[1];
        let u: Vec<f64> = (0..2).map(|c| pr[c] * (jv[c] - pjv)).collect();
        let want: Vec<f64> = (0..p)
            .map(|i| u[0] * jac[0][i] + u[1] * jac[1][i])
            .collect();
        assert!(rel_diff(&[gv], &[want]) < 1e-12);
    }

    #[test]
    fn output_jvps_cover_every_example_once() {
        let run = tiny_mlp(0.0);
        let p = run.params.len();
        let mut rng = Rng::new(8);
        let v: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
        let a = TrainChunks::new(&run.splits.train, 512).output_jvps(
            &run.model,
            &run.params,
            Output::Loss,
            &[&v],
        );
        let b = TrainChunks::new(&run.splits.train, 33).output_jvps(
            &run.model,
            &run.params,
            Output::Loss,
            &[&v],
        );
        assert_eq!(a[0].len(), run.n_train());
        assert!(rel_diff(&a, &b) < 1e-13);
        // One example against its materialised gradient.
        let batch = Batch::from_dataset(&run.splits.train, &[100]);
        let g = nn::per_example::output_grads(&run.model, &run.params, &batch, Output::Loss);
        let d = crate::linalg::dot(&g[0], &v);
        assert!((a[0][100] - d).abs() <= 1e-12 * d.abs().max(1.0));
    }
}

#[cfg(test)]
pub(crate) mod invariance_tests;
