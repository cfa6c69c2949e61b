//! Per-example quantities for a batch without one pass per example where the algebra allows it.
//!
//! - outputs `f_i` for every example: one forward pass;
//! - `<grad f_i, v_j>` for every example and `k` directions: one dual forward pass (the tangents of
//!   the per-example outputs are exactly these dot products, MATH.md E2);
//! - `H v` of the weighted batch objective: one dual reverse pass (forward-over-reverse);
//! - materialised per-example gradients: one reverse pass per example, run in parallel (each result
//!   is written to its own row, so the output does not depend on threads).

use engine::{Dual, Float, Gradients, Graph, Tensor, Var};
use rayon::prelude::*;

use crate::batch::{Batch, Input};
use crate::model::{Model, Output, Task};

/// Per-example outputs `f_i` for a batch.
pub fn outputs<F: Float>(model: &Model, params: &[F], batch: &Batch<F>, out: Output) -> Vec<F> {
    let g = Graph::<F, Tensor<F>>::new();
    let p = model.layout().leaves(&g, params, false);
    let y = model.output(&g, &p, batch, out);
    g.tensor(y).into_vec()
}

/// Every next-token loss of every window of `batch`, `[b * (len - 1)]` window by window: all the
/// [`Output::Token`] targets of those windows from one forward pass each (a token batch repeats
/// its window once per target).
///
/// # Panics
/// If the model is not a next-token model or the batch holds no tokens.
pub fn token_losses<F: Float>(model: &Model, params: &[F], batch: &Batch<F>) -> Vec<F> {
    let Task::NextToken(vocab) = model.task() else {
        panic!("token_losses of a model without tokens")
    };
    let g = Graph::<F, Tensor<F>>::new();
    let p = model.layout().leaves(&g, params, false);
    let z = model.forward(&g, &p, &batch.input);
    g.tensor(model.per_position(&g, z, batch, vocab, false))
        .into_vec()
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
    let obj = g.weighted_mean(losses, weights);
    let grads = g.backward(obj, None);
    hvp_pass_of(model, &g, &p, losses, &grads, dirs.len())
}

/// Reads an [`HvpPass`] off a dual graph whose reverse pass from the weighted objective of the
/// per-example `losses` gave `grads`.
fn hvp_pass_of<F: Float>(
    model: &Model,
    g: &Graph<F, Dual<F>>,
    p: &[Var],
    losses: Var,
    grads: &Gradients<Dual<F>>,
    k: usize,
) -> HvpPass<F> {
    let loss_jvps = tangent_rows(&g.value(losses), k);
    let layout = model.layout();
    let grad = layout.flat_grad(grads, p);
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

/// The `k` tangents of a dual as flat rows (zeros when it has none).
fn tangent_rows<F: Float>(d: &Dual<F>, k: usize) -> Vec<Vec<F>> {
    let n = d.value.len();
    match &d.tangent {
        Some(t) => t.data().chunks(n.max(1)).map(<[F]>::to_vec).collect(),
        None => vec![vec![F::ZERO; n]; k],
    }
}

/// What one dual reverse pass with the inputs on the tape gives (see
/// [`objective_hvp_input_pass`]).
pub struct InputHvpPass<F: Float> {
    /// Exactly what [`objective_hvp_pass`] gives for the same arguments (the same bits).
    pub pass: HvpPass<F>,
    /// `input_tangents[j]`, `[b, ...example_shape]` flat: the block of example `i` is
    /// `(w_i / |B|) grad_{x_i} <grad_theta l_i, v_j>`, the mixed second derivative of the weighted
    /// objective (MATH.md E7 (b)).
    pub input_tangents: Vec<Vec<F>>,
    /// The logits `[b, c]` (flat) of the batch.
    pub logits: Vec<F>,
    /// `logit_jvps[j]`, `[b, c]` flat: `J_i v_j`, the logits' derivatives along `v_j`
    /// (what [`relabelled_loss_jvps`] turns into the loss tangents of every other label).
    pub logit_jvps: Vec<Vec<F>>,
}

/// [`objective_hvp_pass`] with the batch's real features as a tracked leaf of the dual graph, so
/// that the same reverse pass also gives the tangents of the input cotangents: for the weighted
/// objective `L = sum_i w_i l_i(theta; x_i) / |B|` and tangent `v_j` of `theta`, the tangent of
/// `grad_{x_i} L` is `d/de grad_{x_i} L(theta + e v_j) = (w_i / |B|) grad_{x_i} <grad_theta l_i, v_j>`
/// (the mixed partials commute): the per-step term of the input metagradient, MATH.md E7 (b).
/// Forward-over-reverse again, so no new rule is needed: the input leaf's cotangent costs one
/// more product per first layer. The parameter results are those of [`objective_hvp_pass`], bit
/// for bit (the parameter cotangents do not read the input's).
///
/// # Panics
/// For a language model ([`Model::has_dense_input`]; callers check it).
pub fn objective_hvp_input_pass<F: Float>(
    model: &Model,
    params: &[F],
    batch: &Batch<F>,
    weights: &[F],
    dirs: &[&[F]],
) -> InputHvpPass<F> {
    let Input::Dense(x) = &batch.input else {
        panic!("input metagradients need real features (checked by the caller)");
    };
    let g = Graph::<F, Dual<F>>::new();
    let p = model.layout().dual_leaves(&g, params, dirs, true);
    let xv = g.param(<Dual<F> as engine::Carrier<F>>::constant(x.clone()));
    let (z, losses) = model.output_at_input(&g, &p, xv, batch, Output::Loss);
    let obj = g.weighted_mean(losses, weights);
    let grads = g.backward(obj, None);
    let k = dirs.len();
    let pass = hvp_pass_of(model, &g, &p, losses, &grads, k);
    let input_tangents = match grads.get(xv) {
        Some(d) => tangent_rows(d, k),
        None => vec![vec![F::ZERO; x.len()]; k],
    };
    let zv = g.value(z);
    InputHvpPass {
        pass,
        input_tangents,
        logits: zv.value.data().to_vec(),
        logit_jvps: tangent_rows(&zv, k),
    }
}

/// `out[j][i * c + y] = <grad_theta l(z_i, y), v_j>`: the loss tangent of example `i` relabelled
/// `y`, for every label `y` of a classification task, from its logits `z_i` and their tangents
/// `J_i v_j` ([`InputHvpPass`]). By the chain rule through the logits:
/// - softmax cross-entropy (`c >= 2` logits): `dl/dz = softmax(z) - e_y`, so the tangent is
///   `sum_k p_k (J v)_k - (J v)_y`;
/// - binary logistic (one logit `s`, label `y in {0, 1}`, `l = softplus(u s)` with `u = 1 - 2y`):
///   `dl/ds = u sigmoid(u s)`.
///
/// `c` is the number of labels (2 for a binary model). These are the derivatives MATH.md E7 (a)
/// needs to score a relabelled copy of an example at weight 0 in the example's own batch slot.
/// Returns `None` for tasks without labels (regression, language models).
pub fn relabelled_loss_jvps<F: Float>(
    task: Task,
    logits: &[F],
    logit_jvps: &[Vec<F>],
) -> Option<Vec<Vec<F>>> {
    match task {
        Task::Classes(c) => {
            let b = logits.len() / c.max(1);
            // Softmax of each row, max-shifted for stability, in f64.
            let probs: Vec<f64> = logits
                .chunks(c)
                .flat_map(|z| {
                    let m = z.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64()));
                    let e: Vec<f64> = z.iter().map(|v| (v.to_f64() - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.into_iter().map(move |x| x / s)
                })
                .collect();
            Some(
                logit_jvps
                    .iter()
                    .map(|dz| {
                        let mut out = Vec::with_capacity(b * c);
                        for (p, d) in probs.chunks(c).zip(dz.chunks(c)) {
                            let mean: f64 = p.iter().zip(d).map(|(p, d)| p * d.to_f64()).sum();
                            out.extend(d.iter().map(|d| F::from_f64(mean - d.to_f64())));
                        }
                        out
                    })
                    .collect(),
            )
        }
        Task::Binary => Some(
            logit_jvps
                .iter()
                .map(|ds| {
                    let mut out = Vec::with_capacity(2 * ds.len());
                    for (s, d) in logits.iter().zip(ds) {
                        let (s, d) = (s.to_f64(), d.to_f64());
                        for u in [1.0, -1.0] {
                            // Label 0, then label 1: u = 1 - 2y, dl/ds = u sigmoid(u s).
                            let sig = 1.0 / (1.0 + (-u * s).exp());
                            out.push(F::from_f64(u * sig * d));
                        }
                    }
                    out
                })
                .collect(),
        ),
        Task::Regression | Task::NextToken(_) => None,
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
