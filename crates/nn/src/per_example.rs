//! Per-example quantities for a batch without one pass per example where the algebra allows it.
//!
//! - outputs `f_i` for every example: one forward pass;
//! - `<grad f_i, v_j>` for every example and `k` directions: one dual forward pass (the tangents of
//!   the per-example outputs are exactly these dot products, MATH.md E2);
//! - `H v` of the weighted batch objective: one dual reverse pass (forward-over-reverse);
//! - materialised per-example gradients: one reverse pass per example, run in parallel (each result
//!   is written to its own row, so the output does not depend on threads).

use engine::{Dual, Float, Graph, Tensor};
use rayon::prelude::*;

use crate::batch::Batch;
use crate::model::{Model, Output};

/// Per-example outputs `f_i` for a batch.
pub fn outputs<F: Float>(model: &Model, params: &[F], batch: &Batch<F>, out: Output) -> Vec<F> {
    let g = Graph::<F, Tensor<F>>::new();
    let p = model.layout().leaves(&g, params, false);
    let y = model.output(&g, &p, batch, out);
    g.tensor(y).into_vec()
}

/// `(f_i, [<grad f_i, v_j>]_j)`: per-example outputs and their directional derivatives along each
/// of the flat directions `dirs`, from one forward pass. The result is `[k][b]`.
pub fn output_jvps<F: Float>(
    model: &Model,
    params: &[F],
    batch: &Batch<F>,
    out: Output,
    dirs: &[&[F]],
) -> (Vec<F>, Vec<Vec<F>>) {
    let g = Graph::<F, Dual<F>>::new();
    let p = model.layout().dual_leaves(&g, params, dirs, false);
    let y = g.value(model.output(&g, &p, batch, out));
    let b = y.value.len();
    let jvps = match &y.tangent {
        Some(t) => t.data().chunks(b).map(|c| c.to_vec()).collect(),
        None => vec![vec![F::ZERO; b]; dirs.len()],
    };
    (y.value.into_vec(), jvps)
}

/// Gradient and Hessian-vector products of the weighted objective `sum_i w_i l_i / |B|` along each
/// of `dirs`, from one dual reverse pass. Returns `(grad, [H v_j]_j)`.
pub fn objective_hvps<F: Float>(
    model: &Model,
    params: &[F],
    batch: &Batch<F>,
    weights: &[F],
    dirs: &[&[F]],
) -> (Vec<F>, Vec<Vec<F>>) {
    let (grad, hvps, _) = objective_hvps_with_jvps(model, params, batch, weights, dirs);
    (grad, hvps)
}

/// Gradient, Hessian-vector products and per-example loss tangents of the weighted objective
/// `sum_i w_i l_i / |B|` along each of `dirs`, all from one dual reverse pass (MATH.md E2).
///
/// Returns `(grad, hvps, loss_jvps)`: `hvps[j] = H v_j` (flat, as [`objective_hvps`]) and
/// `loss_jvps[j][i] = <grad l_i, v_j>` for every example `i` of the batch (unweighted), read from the
/// tangents of the per-example losses that the dual forward pass computes before the reverse sweep.
pub fn objective_hvps_with_jvps<F: Float>(
    model: &Model,
    params: &[F],
    batch: &Batch<F>,
    weights: &[F],
    dirs: &[&[F]],
) -> (Vec<F>, Vec<Vec<F>>, Vec<Vec<F>>) {
    let pass = objective_hvp_pass(model, params, batch, weights, dirs);
    let k = dirs.len();
    let mut hvps = vec![Vec::with_capacity(model.layout().total()); k];
    for (j, h) in hvps.iter_mut().enumerate() {
        for leaf in &pass.leaves {
            match leaf.hvps(j) {
                Some(t) => h.extend_from_slice(t),
                None => h.extend(std::iter::repeat_n(F::ZERO, leaf.range.len())),
            }
        }
    }
    (pass.grad, hvps, pass.loss_jvps)
}

/// The Hessian-vector products of one parameter tensor (a leaf of the model's layout) from
/// [`objective_hvp_pass`].
pub struct LeafHvps<F: Float> {
    /// The leaf's range in the flat parameter vector.
    pub range: std::ops::Range<usize>,
    /// `[k, leaf]`: row `j` is `(H v_j)` restricted to the leaf; `None` when zero.
    tangent: Option<Tensor<F>>,
}

impl<F: Float> LeafHvps<F> {
    /// `(H v_j)` on this leaf, or `None` when it is zero.
    pub fn hvps(&self, j: usize) -> Option<&[F]> {
        let n = self.range.len();
        self.tangent.as_ref().map(|t| &t.data()[j * n..(j + 1) * n])
    }
}

/// What one dual reverse pass over a batch gives (see [`objective_hvp_pass`]).
pub struct HvpPass<F: Float> {
    /// The gradient of the weighted objective (flat).
    pub grad: Vec<F>,
    /// The Hessian-vector products, leaf by leaf in layout order.
    pub leaves: Vec<LeafHvps<F>>,
    /// `loss_jvps[j][i] = <grad l_i, v_j>` for every example `i` of the batch.
    pub loss_jvps: Vec<Vec<F>>,
}

/// [`objective_hvps_with_jvps`] with the Hessian-vector products left leaf by leaf, as the pass
/// computes them: a caller that adds them into its own vectors (MAGIC's adjoints) saves building
/// `k` flat copies.
pub fn objective_hvp_pass<F: Float>(
    model: &Model,
    params: &[F],
    batch: &Batch<F>,
    weights: &[F],
    dirs: &[&[F]],
) -> HvpPass<F> {
    let g = Graph::<F, Dual<F>>::new();
    let p = model.layout().dual_leaves(&g, params, dirs, true);
    let losses = model.losses(&g, &p, batch);
    let k = dirs.len();
    let lv = g.value(losses);
    let b = lv.value.len();
    let loss_jvps = match &lv.tangent {
        Some(t) => t.data().chunks(b.max(1)).map(|c| c.to_vec()).collect(),
        None => vec![vec![F::ZERO; b]; k],
    };
    drop(lv);
    let obj = g.weighted_mean(losses, weights);
    let grads = g.backward(obj, None);
    let layout = model.layout();
    let grad = layout.flat_grad(&grads, &p);
    let leaves = p
        .iter()
        .enumerate()
        .map(|(i, &leaf)| LeafHvps {
            range: layout.range(i),
            tangent: grads.get(leaf).and_then(|d| d.tangent.clone()),
        })
        .collect();
    HvpPass {
        grad,
        leaves,
        loss_jvps,
    }
}

/// Example `i` of a batch as a batch of one.
pub fn single<F: Float>(batch: &Batch<F>, i: usize) -> Batch<F> {
    batch.rows(i, 1)
}

/// Materialised per-example gradients `grad f_i` (flat), one reverse pass per example in parallel.
pub fn output_grads<F: Float>(
    model: &Model,
    params: &[F],
    batch: &Batch<F>,
    out: Output,
) -> Vec<Vec<F>> {
    (0..batch.len())
        .into_par_iter()
        .map(|i| {
            let one = single(batch, i);
            let g = Graph::<F, Tensor<F>>::new();
            let p = model.layout().leaves(&g, params, true);
            let y = model.output(&g, &p, &one, out);
            let s = g.sum_all(y);
            let grads = g.backward(s, None);
            model.layout().flat_grad(&grads, &p)
        })
        .collect()
}
