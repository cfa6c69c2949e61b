//! Curvature operators over the training set (Hessian, Gauss-Newton) and the `auto` damping rule,
//! shared by the influence functions (MATH.md E3) and EK-FAC (E4).

use engine::{Dual, Graph, Rng, Tensor};
use nn::{Batch, Model};

use super::chunks::TrainChunks;
use crate::solvers::{LanczosParams, LinOp};
use run::Run;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

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
}
