//! `trak`: TRAK, kernel regression on randomly projected output gradients, averaged over an
//! ensemble of models (MATH.md E4; Park et al. 2023).
//!
//! ## Formula
//! For each model `m` of the ensemble (independently trained runs and, optionally, checkpoints of
//! each), with a random projection `P_m` (`p x k`, see [`Projection`]):
//! - training features `phi_i = P_m^T grad g_i(theta_m)`, stacked as the rows of `Phi_m` (`n x k`),
//!   where `g` is TRAK's training-side output: the margin `log(p_i / (1 - p_i))` of the true class
//!   for classification (exactly [`Output::Margin`]: `z_y - logsumexp_{c != y} z_c`, or the signed
//!   logit of a binary model), and the log-likelihood `-l_i` for other tasks;
//! - `Q_i = -dl_i/dg_i`: `1 - p_i = sigmoid(-g_i)` for classification, `1` otherwise, so that
//!   `Q_i phi_i = -P_m^T grad l_i` exactly (the training loss is `l = softplus(-g)` in the margin);
//! - target features `phi_t = P_m^T grad f_t(theta_m)` with `f` the targets' chosen output;
//! - the kernel `K_m = rbar_m Phi_m^T Phi_m + d_m I`, `rbar_m = mean_i Q_i (1 - Q_i)` (the mean
//!   second derivative `d^2 l / d g^2 = p (1 - p)`; `1` for tasks with `Q = 1`), `d_m` the damping;
//! - `A_m[t][i] = phi_t^T K_m^{-1} phi_i`.
//!
//! The scores are TRAK's ensemble average, the kernel part and `Q` averaged separately as in the
//! paper's estimator and the reference implementation:
//!
//! `tau[t][i] = (1/M sum_m A_m[t][i]) * (1/M sum_m Q_i(theta_m))`.
//!
//! ## Sign and scale
//! `tau_i` estimates `d f_t / d w_i` (the crate's sign convention: dropping `D` predicts
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`). For one model, with `P` of full row rank (`k >= p`)
//! and no damping, `P (P^T M P)^{-1} P^T = M^{-1}` for any positive definite `M`, so the projection
//! drops out and, using `Q_i phi_i = -P^T grad l_i`,
//!
//! `tau[t][i] = -grad f_t^T (rbar G^T G)^{-1} grad l_i`, with `G` the `n x p` matrix of the
//! `grad g_i`.
//!
//! The influence function of the mean training loss (module [`super::influence`], MATH.md E3) is
//! `tau_IF[t][i] = -(1/n) grad f_t^T H^{-1} grad l_i`. For a GLM whose loss is `l(g)` in the
//! output (binary logistic regression: `l = softplus(-g)`), `n H = G^T R G + n lambda I` with
//! `R = diag(l''(g_i)) = diag(Q_i (1 - Q_i))`. So, at `k >= p`, **TRAK is the influence function
//! with each example's curvature weight `R_ii` replaced by their mean `rbar`** (and without weight
//! decay); the two agree exactly when the weights are equal. The factor `rbar` is what makes the
//! scores comparable to `d f / d w` rather than off by the mean curvature (TRAK's published
//! estimator omits it, which changes each model's scores by a positive factor only). Both
//! identities are tested below.
//!
//! ## Computation
//! Per model, the training set is processed in chunks of `chunk` examples: per-example gradients
//! of the chunk (`chunk x p`, one reverse pass per example), times the projection generated on the
//! fly in blocks of [`crate::support::projection::PROJECTION_ROWS`] parameter rows, summed block by block in a fixed order, so
//! neither the `n x p` gradients nor the `p x k` projection is stored. The kernel is one `k x k`
//! product, factored by Cholesky. Every row of the projection is its own random stream, so the
//! features depend on neither the chunk size (beyond rounding) nor the thread count.
//!
//! ## Options
//! - `k` (512): projection dimension;
//! - `projection` (`rademacher`): `rademacher` (entries `+-1/sqrt(k)`) or `gaussian`
//!   (`N(0, 1/k)`);
//! - `seed` (0): seed of the projections; model `e` of the flattened ensemble uses its own
//!   projection derived from `(seed, e)`;
//! - `models` (1): independently trained models; model 0 is the run itself, model `m > 0` retrains
//!   the run's configuration with trainer seed [`member_seed`]`(run seed, m)`; for a run
//!   loaded from a directory, members are cached in the run's store
//!   (`RUN/store/trak-member/KEY.safetensors`, [`MEMBER_KIND`]);
//! - `checkpoints` (0): besides each model's final parameters, also use `c` evenly spaced states of
//!   its training (steps `e, 2e, ..` below `T`, `e = ceil(T / (c + 1))`), replayed bitwise;
//! - `damping` (`auto`): `d_m` added to the kernel's diagonal; `auto` is
//!   [`AUTO_DAMPING`]` * tr(rbar Phi^T Phi) / k`, a millionth of the kernel's mean eigenvalue, only
//!   there to keep the Cholesky factorisation stable (it is never tuned on ground truth). A kernel
//!   of rank below `k` (`k > n`, or `k > p`) relies on it;
//! - `chunk` (512): training examples per chunk.

use engine::{Rng, Tensor};
use nn::{Batch, Model, Output, Task, Trainer};

use crate::error::{MethodError, Result};
use crate::linalg::{cholesky, cholesky_solve, symmetrize};
use crate::method::{Method, Registration};
use crate::options::{any, at_least_one, auto_non_negative, Auto, Options};
use crate::support::chunks::{chunk_option, TrainChunks};
use crate::support::projection::{Projection, ProjectionKind};
use run::{Run, Targets};

/// The registry entry.
pub const REGISTRATION: Registration = Registration {
    name: "trak",
    summary: "TRAK: kernel regression on randomly projected gradients over a model ensemble (E4)",
    build,
};

/// Default projection dimension.
pub const DEFAULT_K: usize = 512;

/// The `auto` damping: this fraction of the kernel's mean eigenvalue `tr(K) / k`.
pub const AUTO_DAMPING: f64 = 1e-6;

pub use run::members::{member_seed, MEMBER_KIND};

/// TRAK (module docs).
#[derive(Debug, Clone)]
pub struct Trak {
    k: usize,
    projection: ProjectionKind,
    seed: u64,
    models: usize,
    checkpoints: usize,
    damping: Auto<f64>,
    chunk: usize,
}

/// Reads the options: `k` (512), `projection` (rademacher), `seed` (0), `models` (1),
/// `checkpoints` (0), `damping` (auto), `chunk` (512).
///
/// # Errors
/// A bad option value.
pub fn build(opts: &mut Options) -> Result<Box<dyn Method>> {
    let projection = opts.get("projection", "rademacher".to_string(), |s| {
        s.parse::<ProjectionKind>().map(|_| ())
    })?;
    Ok(Box::new(Trak {
        k: opts.get("k", DEFAULT_K, at_least_one)?,
        projection: projection.parse().expect("checked by the getter"),
        seed: opts.get("seed", 0u64, any)?,
        models: opts.get("models", 1usize, at_least_one)?,
        checkpoints: opts.get("checkpoints", 0usize, any)?,
        damping: opts.get("damping", Auto::Auto, auto_non_negative)?,
        chunk: chunk_option(opts)?,
    }))
}

/// TRAK's training-side output for a task: the margin for classification, else the
/// log-likelihood (module docs).
pub fn training_output(task: Task) -> Output {
    match task {
        Task::Classes(_) | Task::Binary => Output::Margin,
        Task::Regression | Task::NextToken(_) => Output::LogLikelihood,
    }
}

/// `Q = -dl/dg` at training-side output `g`: `sigmoid(-g)` for the margin, `1` otherwise.
fn q_weight(out: Output, g: f64) -> f64 {
    match out {
        Output::Margin => 1.0 / (1.0 + g.exp()),
        _ => 1.0,
    }
}

/// One model's training features: `Phi` (`n x k`, row-major) and `Q`.
pub(crate) struct TrainFeatures {
    /// `Phi`, row-major `n x k`.
    pub phi: Vec<f64>,
    /// `Q_i`.
    pub q: Vec<f64>,
}

/// `Phi` and `Q` at `params`, chunk by chunk (module docs, "Computation").
pub(crate) fn train_features(
    model: &Model,
    params: &[f64],
    data: &TrainChunks,
    proj: &Projection,
) -> TrainFeatures {
    let out = training_output(model.task());
    let mut phi = Vec::with_capacity(data.n * proj.k);
    let mut q = Vec::with_capacity(data.n);
    for batch in &data.batches {
        let grads = nn::per_example::output_grads(model, params, batch, out);
        phi.extend(proj.project(&grads));
        let g = nn::per_example::outputs(model, params, batch, out);
        q.extend(g.iter().map(|&g| q_weight(out, g)));
    }
    TrainFeatures { phi, q }
}

/// `phi_t` of the targets, row-major `targets x k`.
pub(crate) fn target_features(
    model: &Model,
    params: &[f64],
    batch: &Batch<f64>,
    out: Output,
    proj: &Projection,
) -> Vec<f64> {
    proj.project(&nn::per_example::output_grads(model, params, batch, out))
}

/// `A[t][i] = phi_t^T K^{-1} phi_i` (row-major `targets x n`) with
/// `K = rbar Phi^T Phi + d I`, `rbar = mean_i Q_i (1 - Q_i)` for classification and 1 otherwise.
///
/// # Errors
/// A kernel that is not positive definite after damping, or vanishing `Q` weights.
pub(crate) fn kernel_scores(
    feats: &TrainFeatures,
    phi_t: &[f64],
    k: usize,
    classification: bool,
    damping: Auto<f64>,
) -> Result<Vec<f64>> {
    let n = feats.q.len();
    let nt = phi_t.len() / k;
    let rbar = if classification {
        feats.q.iter().map(|q| q * (1.0 - q)).sum::<f64>() / n as f64
    } else {
        1.0
    };
    if !(rbar.is_finite() && rbar > 0.0) {
        return Err(MethodError::Unsupported {
            method: "trak".into(),
            reason: format!(
                "the mean curvature weight p (1 - p) over the training set is {rbar:e}: every training example is fitted with probability 1, so TRAK's Q weights vanish; use a model checkpoint from earlier in training (checkpoints=c) or another method"
            ),
        });
    }
    let phi = Tensor::from_vec(feats.phi.clone(), &[n, k]);
    let mut kern = engine::kernels::matmul(&phi, &phi, true, false).into_vec();
    symmetrize(&mut kern, k);
    kern.iter_mut().for_each(|x| *x *= rbar);
    let trace: f64 = (0..k).map(|i| kern[i * k + i]).sum();
    let d = match damping {
        Auto::Auto => AUTO_DAMPING * trace / k as f64,
        Auto::Value(d) => d,
    };
    for i in 0..k {
        kern[i * k + i] += d;
    }
    let l = cholesky(&kern, k).map_err(|e| MethodError::Unsupported {
        method: "trak".into(),
        reason: format!(
            "the kernel rbar Phi^T Phi + {d:e} I (k = {k}, trace {trace:e}) is not positive definite ({e}); raise damping (e.g. damping={:e}) or lower k below the number of training examples",
            (AUTO_DAMPING * trace / k as f64).max(f64::MIN_POSITIVE)
        ),
    })?;
    let mut xs = phi_t.to_vec();
    for row in xs.chunks_mut(k) {
        cholesky_solve(&l, k, row);
    }
    Ok(engine::kernels::matmul(&Tensor::from_vec(xs, &[nt, k]), &phi, false, true).into_vec())
}

impl Trak {
    /// Ensemble member `m > 0` ([`run::members::member`]: stored, shared with seed-averaged
    /// ground truth).
    fn member(&self, run: &Run, m: usize) -> Result<Run> {
        Ok(run::members::member(run, m)?)
    }

    /// A shard's part of the ensemble (`run::Shard`): trains and stores members `m >= 1` with
    /// `(m - 1) mod N = I` (member 0 is the run itself) and returns the error that reports how
    /// many of the `models - 1` trained members the store now holds; the unsharded computation
    /// then loads them all.
    fn train_shard(&self, run: &Run, shard: run::Shard) -> Result<MethodError> {
        for m in (1..self.models).filter(|m| shard.owns(m - 1)) {
            run.progress.report("trak ensemble members", m, self.models);
            self.member(run, m)?;
        }
        let done = (1..self.models)
            .filter(|&m| run::members::is_stored(run, m))
            .count();
        Ok(MethodError::Incomplete {
            method: "trak".into(),
            shard: shard.to_string(),
            done,
            total: self.models - 1,
            unit: "trained ensemble members".into(),
        })
    }

    /// The parameter vectors a member contributes: `checkpoints` replayed states, then the final
    /// parameters.
    fn states(&self, member: &Run) -> Result<Vec<Vec<f64>>> {
        let mut out = Vec::new();
        if self.checkpoints > 0 {
            let steps =
                Trainer::<f64>::new(&member.model, &member.config, &member.splits.train)?.steps();
            let every = steps.div_ceil(self.checkpoints + 1).max(1);
            out.extend(
                member
                    .checkpoints(every)?
                    .into_iter()
                    .filter(|c| c.step > 0)
                    .map(|c| c.params),
            );
        }
        out.push(member.params.clone());
        Ok(out)
    }

    /// The projection of model `e` of the flattened ensemble.
    fn projection(&self, p: usize, e: usize) -> Projection {
        member_projection(self.projection, self.k, p, self.seed, e)
    }
}

impl Method for Trak {
    fn name(&self) -> &'static str {
        "trak"
    }

    /// # Errors
    /// Training errors while making ensemble members or replaying checkpoints, a cache that
    /// cannot be written, or a kernel that is not positive definite (raise `damping`).
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        let n = run.n_train();
        let nt = targets.indices.len();
        if nt == 0 {
            return Ok(Vec::new());
        }
        // Features of the training set and the targets (f64, k each) and the score matrix, held
        // at once: refused before allocating.
        nn::memory::check(
            "k",
            &format!(
                "TRAK with k = {} projections for {n} training examples and {nt} targets",
                self.k
            ),
            8.0 * ((n + nt) as f64 * self.k as f64 + (nt * n) as f64),
            "lower the option k (e.g. --option k=2048)",
        )?;
        if let Some(shard) = run.shard {
            return Err(self.train_shard(run, shard)?);
        }
        let classification = training_output(run.model.task()) == Output::Margin;
        let data = TrainChunks::new(&run.splits.train, self.chunk);
        let batch = run.target_batch::<f64>(targets);
        let p = run.params.len();
        let mut ensemble = Ensemble::new(nt, n);
        for m in 0..self.models {
            run.progress.report("trak ensemble members", m, self.models);
            let owned;
            let member = if m == 0 {
                run
            } else {
                owned = self.member(run, m)?;
                &owned
            };
            for params in self.states(member)? {
                let proj = self.projection(p, ensemble.count);
                let feats = train_features(&run.model, &params, &data, &proj);
                let phi_t = target_features(&run.model, &params, &batch, targets.output, &proj);
                ensemble.add(&feats, &phi_t, self.k, classification, self.damping)?;
            }
        }
        Ok(ensemble.scores())
    }
}

/// The projection of model `e` of the flattened ensemble under the option `seed`: what
/// `--option seed=SEED` gives that model (for features projected outside attrib, the same bits).
pub fn member_projection(
    kind: ProjectionKind,
    k: usize,
    p: usize,
    seed: u64,
    e: usize,
) -> Projection {
    Projection {
        kind,
        k,
        p,
        seed: Rng::derive(seed, "trak-model", e as u64).next_u64(),
    }
}

/// TRAK's ensemble average over models (module docs): the kernel parts `A_m` and the weights
/// `Q(theta_m)` are summed separately, `tau = (1/M sum A_m) * (1/M sum Q_m)`.
pub struct Ensemble {
    a: Vec<f64>,
    q: Vec<f64>,
    n: usize,
    count: usize,
}

impl Ensemble {
    /// An empty ensemble for `targets` targets and `n` training examples.
    pub fn new(targets: usize, n: usize) -> Self {
        Ensemble {
            a: vec![0.0; targets * n],
            q: vec![0.0; n],
            n,
            count: 0,
        }
    }

    /// Adds model `m = count`: training features `phi` (`n x k`, row-major), `q` (`Q_i`, ones
    /// for tasks whose training output is the log-likelihood) and target features `phi_t`
    /// (`targets x k`); `classification` uses `rbar = mean Q (1 - Q)`, else `rbar = 1`.
    ///
    /// # Errors
    /// A kernel that is not positive definite after damping, or vanishing `Q` weights.
    pub fn add_features(
        &mut self,
        phi: Vec<f64>,
        q: Vec<f64>,
        phi_t: &[f64],
        k: usize,
        classification: bool,
        damping: Auto<f64>,
    ) -> Result<()> {
        self.add(&TrainFeatures { phi, q }, phi_t, k, classification, damping)
    }

    fn add(
        &mut self,
        feats: &TrainFeatures,
        phi_t: &[f64],
        k: usize,
        classification: bool,
        damping: Auto<f64>,
    ) -> Result<()> {
        let am = kernel_scores(feats, phi_t, k, classification, damping)?;
        self.a.iter_mut().zip(&am).for_each(|(x, y)| *x += y);
        self.q.iter_mut().zip(&feats.q).for_each(|(x, y)| *x += y);
        self.count += 1;
        Ok(())
    }

    /// The scores `tau[t][i]` of the models added so far.
    pub fn scores(&self) -> Vec<Vec<f64>> {
        let c2 = (self.count * self.count) as f64;
        self.a
            .chunks(self.n.max(1))
            .map(|row| row.iter().zip(&self.q).map(|(x, qi)| x * qi / c2).collect())
            .collect()
    }
}

/// `Q_i = -dl_i/dg_i` of TRAK's training-side output `g`: `sigmoid(-g)` of the margin (module
/// docs), computed as [`Trak`] computes it, for features made outside attrib.
pub fn margin_q(g: f64) -> f64 {
    q_weight(Output::Margin, g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::dot;
    use crate::testutil::*;
    use eval::stats::pearson;

    fn trak(run: &Run, targets: &Targets, opts: &[(&str, String)]) -> Vec<Vec<f64>> {
        let mut o = Options::empty("trak");
        for (k, v) in opts {
            o = o.set(k, v);
        }
        let (m, _) = crate::registry::build("trak", o).unwrap();
        m.attribute(run, targets).unwrap()
    }

    /// Materialised per-example gradients of a run: `grad g_i` (TRAK's training output),
    /// `grad l_i`, `grad f_t`, and `Q_i`.
    struct Dense {
        g: Vec<Vec<f64>>,
        gl: Vec<Vec<f64>>,
        gt: Vec<Vec<f64>>,
        q: Vec<f64>,
    }

    fn dense(run: &Run, targets: &Targets) -> Dense {
        let all =
            Batch::<f64>::from_dataset(&run.splits.train, &(0..run.n_train()).collect::<Vec<_>>());
        let out = training_output(run.model.task());
        let grads =
            |b: &Batch<f64>, o| nn::per_example::output_grads(&run.model, &run.params, b, o);
        Dense {
            g: grads(&all, out),
            gl: grads(&all, Output::Loss),
            gt: grads(&run.target_batch::<f64>(targets), targets.output),
            q: nn::per_example::outputs(&run.model, &run.params, &all, out)
                .into_iter()
                .map(|g| q_weight(out, g))
                .collect(),
        }
    }

    /// `tau[t][i] = -grad f_t^T (sum_j w_j grad g_j grad g_j^T)^{-1} grad l_i`, by Cholesky in
    /// parameter space (no projection).
    fn weighted_gram_scores(d: &Dense, w: &[f64]) -> Vec<Vec<f64>> {
        let p = d.g[0].len();
        let mut m = vec![0.0; p * p];
        for (gi, wi) in d.g.iter().zip(w) {
            for r in 0..p {
                for c in 0..p {
                    m[r * p + c] += wi * gi[r] * gi[c];
                }
            }
        }
        let l = cholesky(&m, p).unwrap();
        d.gt.iter()
            .map(|gt| {
                let mut x = gt.clone();
                cholesky_solve(&l, p, &mut x);
                d.gl.iter().map(|gl| -dot(&x, gl)).collect()
            })
            .collect()
    }

    /// Acceptance test (module docs, "Sign and scale"): on logistic regression with `k >= p` and
    /// no projection error, TRAK is `-grad f^T (rbar G^T G)^{-1} grad l_i`, and the influence
    /// function is the same formula with the per-example curvature weights `R_ii = Q_i (1 - Q_i)`
    /// in place of their mean `rbar`; both checked against materialised gradients.
    #[test]
    fn trak_at_full_rank_is_the_influence_function_with_mean_curvature_weights() {
        let base = logistic_at_optimum(1e-2);
        // Without weight decay, so that the influence function's Hessian is exactly G^T R G / n.
        let cfg = config(r#"{ kind = "logistic" }"#, 0.0, 1, 64, 0.1);
        let run = Run::from_parts(cfg, base.splits, base.model, base.params).unwrap();
        let p = run.params.len();
        let targets = Targets::test(vec![0, 5, 17, 40], Output::Margin);
        let d = dense(&run, &targets);
        // Q_i grad g_i = -grad l_i, exactly.
        for ((g, gl), q) in d.g.iter().zip(&d.gl).zip(&d.q) {
            for (a, b) in g.iter().zip(gl) {
                assert!((q * a + b).abs() <= 1e-12 * b.abs().max(1.0));
            }
        }
        let r: Vec<f64> = d.q.iter().map(|q| q * (1.0 - q)).collect();
        let rbar = r.iter().sum::<f64>() / r.len() as f64;
        let uniform = weighted_gram_scores(&d, &vec![rbar; r.len()]);
        let curvature = weighted_gram_scores(&d, &r);
        // TRAK with a square (invertible) projection and no damping.
        let exact = [("damping", "0".to_string()), ("k", p.to_string())];
        for kind in ["gaussian", "rademacher"] {
            let mut opts = exact.to_vec();
            opts.push(("projection", kind.to_string()));
            let tau = trak(&run, &targets, &opts);
            let e = rel_diff(&tau, &uniform);
            eprintln!("trak k = p = {p}, {kind}: relative difference to the dense formula {e:e}");
            assert!(e < 1e-8, "{kind}: {e}");
        }
        // k = 3p: the kernel has rank p and needs damping; a small one (1e-9) moves the result
        // by about damping / (smallest nonzero eigenvalue).
        let tau = trak(
            &run,
            &targets,
            &[("k", (3 * p).to_string()), ("damping", "1e-9".into())],
        );
        let e = rel_diff(&tau, &uniform);
        eprintln!("trak k = 3p: relative difference to the dense formula {e:e}");
        assert!(e < 1e-4, "{e}");
        // The influence function (if-exact, no damping) is the curvature-weighted formula.
        let (m, _) =
            crate::registry::build("if-exact", Options::empty("if-exact").set("damping", 0))
                .unwrap();
        let inf = m.attribute(&run, &targets).unwrap();
        let e = rel_diff(&inf, &curvature);
        assert!(e < 1e-8, "{e}");
        // The two differ only by the weighting: correlated, not equal.
        let gap = rel_diff(&uniform, &curvature);
        let r0 = pearson(&uniform[0], &curvature[0]);
        eprintln!(
            "trak vs influence function (k = p): relative difference {gap:.3}, Pearson {r0:.3}"
        );
        assert!(gap > 1e-3);
    }

    #[test]
    fn same_seed_same_bits_other_seed_other_scores() {
        let run = tiny_mlp(1e-2);
        let targets = Targets::test(vec![0, 1, 2], Output::Loss);
        let opts = |seed: u64, kind: &str| {
            vec![
                ("k", "48".to_string()),
                ("seed", seed.to_string()),
                ("projection", kind.to_string()),
            ]
        };
        let a = trak(&run, &targets, &opts(0, "rademacher"));
        assert_eq!(a, trak(&run, &targets, &opts(0, "rademacher")));
        let b = trak(&run, &targets, &opts(1, "rademacher"));
        let c = trak(&run, &targets, &opts(0, "gaussian"));
        for other in [&b, &c] {
            let (d, r) = (rel_diff(other, &a), pearson(&other[0], &a[0]));
            eprintln!("another projection: relative difference {d:.3}, Pearson {r:.3}");
            assert!(d > 1e-3 && r > 0.3, "{d} {r}");
        }
    }

    /// TRAK's ensemble formula (module docs) rebuilt by hand from the flattened ensemble's parameter
    /// vectors `states`, state `e` with projection `e`: `(1/M sum_e A_e) * (1/M sum_e Q_e)`, k = 24.
    fn ensemble_formula(run: &Run, targets: &Targets, states: &[&Vec<f64>]) -> Vec<Vec<f64>> {
        let method = Trak {
            k: 24,
            projection: ProjectionKind::Rademacher,
            seed: 0,
            models: 1,
            checkpoints: 0,
            damping: Auto::Auto,
            chunk: 512,
        };
        let data = TrainChunks::new(&run.splits.train, 100);
        let batch = run.target_batch::<f64>(targets);
        let parts: Vec<(Vec<f64>, Vec<f64>)> = states
            .iter()
            .enumerate()
            .map(|(e, params)| {
                let proj = method.projection(params.len(), e);
                let f = train_features(&run.model, params, &data, &proj);
                let t = target_features(&run.model, params, &batch, targets.output, &proj);
                (kernel_scores(&f, &t, 24, true, Auto::Auto).unwrap(), f.q)
            })
            .collect();
        let (n, m) = (run.n_train(), states.len() as f64);
        (0..targets.indices.len())
            .map(|t| {
                (0..n)
                    .map(|i| {
                        let a = parts.iter().map(|p| p.0[t * n + i]).sum::<f64>() / m;
                        a * parts.iter().map(|p| p.1[i]).sum::<f64>() / m
                    })
                    .collect()
            })
            .collect()
    }

    /// Members are the run's recipe with derived trainer seeds, cached in the run directory, and
    /// the ensemble averages kernel scores and `Q` separately.
    #[test]
    fn ensembles_train_cache_and_average_members() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = tiny_mlp(1e-2);
        run.dir = Some(dir.path().to_path_buf());
        let targets = Targets::test(vec![3, 4], Output::Margin);
        let opts = [("k", "24".to_string()), ("models", "2".to_string())];
        let two = trak(&run, &targets, &opts);
        let seed = member_seed(run.config.train.seed, 1);
        let path = run::Store::of(&run)
            .path(&run::members::member_key(&run, 1, seed), "safetensors")
            .unwrap();
        assert!(path.starts_with(dir.path().join("store/trak-member")));
        let cached = nn::io::load_params::<f64>(&path, run.model.layout()).unwrap();
        let fresh = run.reseeded(seed, None).unwrap();
        assert_eq!(
            cached, fresh.params,
            "the cache holds the member's exact parameters"
        );
        assert_ne!(fresh.params, run.params);
        assert_eq!(
            two,
            trak(&run, &targets, &opts),
            "a cached member gives the same bits"
        );
        // The ensemble formula from the two members' parts.
        let want = ensemble_formula(&run, &targets, &[&run.params, &fresh.params]);
        assert!(rel_diff(&two, &want) < 1e-10);
        let one = trak(&run, &targets, &opts[..1]);
        assert!(rel_diff(&two, &one) > 1e-3);
    }

    /// With `checkpoints = 2` the ensemble is the states at steps `e` and `2e` (`e = ceil(T / 3)`)
    /// and the final parameters, each with its own projection, averaged as the formula says: the
    /// scores are rebuilt here from the trajectory taken at every step (so a wrong spacing, a
    /// missing state, a shared projection or another average breaks the equality).
    #[test]
    fn checkpoints_join_the_ensemble() {
        let run = tiny_mlp(1e-2);
        let targets = Targets::test(vec![0, 1], Output::Margin);
        let opts = [("k", "24".to_string()), ("checkpoints", "2".to_string())];
        let with = trak(&run, &targets, &opts);
        let every_step = run.checkpoints(1).unwrap();
        let steps = Trainer::<f64>::new(&run.model, &run.config, &run.splits.train)
            .unwrap()
            .steps();
        assert_eq!(every_step.last().unwrap().step, steps - 1, "states below T");
        let e = steps.div_ceil(3);
        let state_at = |s: usize| {
            every_step
                .iter()
                .find(|c| c.step == s)
                .unwrap_or_else(|| panic!("no state at step {s}"))
                .params
                .clone()
        };
        let states = [state_at(e), state_at(2 * e), run.params.clone()];
        let want = ensemble_formula(&run, &targets, &[&states[0], &states[1], &states[2]]);
        let d = rel_diff(&with, &want);
        eprintln!("trak with 2 checkpoints vs the three states' formula: {d:e}");
        assert!(d < 1e-10, "{d:e}");
        let last = trak(&run, &targets, &opts[..1]);
        assert!(
            rel_diff(&with, &last) > 1e-3,
            "the checkpoints change the scores"
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        for (key, value) in [("projection", "sparse"), ("k", "0"), ("damping", "-1")] {
            let e = crate::registry::build("trak", Options::empty("trak").set(key, value))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(key) && e.contains(value), "{e}");
        }
    }
}
