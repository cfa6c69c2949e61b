//! Per-example losses and model outputs. Every function returns one value per example (shape `[b]`)
//! so callers can weight examples (MATH.md E1) and read per-example quantities from one pass.

use crate::carrier::Carrier;
use crate::graph::{Graph, Var};
use crate::{Float, Tensor};

/// Effectively `-inf` for masking logits, finite so that `0 * mask` stays `0`.
const MASKED: f64 = -1e30;

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// One-hot rows `[b, k]` as a constant.
    pub fn one_hot(&self, labels: &[usize], k: usize) -> Var {
        let mut t = vec![F::ZERO; labels.len() * k];
        for (i, &y) in labels.iter().enumerate() {
            assert!(y < k, "label {y} outside 0..{k}");
            t[i * k + y] = F::ONE;
        }
        self.constant(Tensor::from_vec(t, &[labels.len(), k]))
    }

    /// `sum_k x[.., k] * onehot[.., k]`: the logit of each example's label, shape `[b]`.
    fn pick(&self, logits: Var, labels: &[usize]) -> Var {
        let k = *self.shape(logits).last().unwrap();
        let oh = self.one_hot(labels, k);
        let p = self.mul(logits, oh);
        self.sum(p, &[1], false)
    }

    /// Softmax cross-entropy per example: `logsumexp(z) - z_y`, for logits `[b, k]`.
    pub fn cross_entropy(&self, logits: Var, labels: &[usize]) -> Var {
        let s = self.shape(logits);
        assert!(
            s.len() == 2 && s[0] == labels.len(),
            "cross_entropy: logits {s:?} for {} labels",
            labels.len()
        );
        let lse = self.logsumexp(logits);
        let lse = self.reshape(lse, &[s[0]]);
        let zy = self.pick(logits, labels);
        self.sub(lse, zy)
    }

    /// Classification margin per example: `z_y - logsumexp_{k != y} z_k`, for logits `[b, k]`.
    pub fn margin(&self, logits: Var, labels: &[usize]) -> Var {
        let s = self.shape(logits);
        let k = s[1];
        let mut mask = vec![F::ZERO; labels.len() * k];
        for (i, &y) in labels.iter().enumerate() {
            mask[i * k + y] = F::from_f64(MASKED);
        }
        let mask = self.constant(Tensor::from_vec(mask, &s));
        let others = self.add(logits, mask);
        let lse = self.logsumexp(others);
        let lse = self.reshape(lse, &[s[0]]);
        let zy = self.pick(logits, labels);
        self.sub(zy, lse)
    }

    /// Binary logistic loss per example for a single logit `s` (`[b]` or `[b, 1]`) and labels in
    /// {0, 1}: `softplus(-s)` for 1, `softplus(s)` for 0, i.e. `softplus((1 - 2y) s)`.
    pub fn binary_logistic(&self, logit: Var, labels: &[usize]) -> Var {
        let s = self.reshape(logit, &[labels.len()]);
        let sign = self.signs(labels, true);
        let z = self.mul(s, sign);
        self.softplus(z)
    }

    /// Binary margin `(2y - 1) s` for a single logit.
    pub fn binary_margin(&self, logit: Var, labels: &[usize]) -> Var {
        let s = self.reshape(logit, &[labels.len()]);
        let sign = self.signs(labels, false);
        self.mul(s, sign)
    }

    /// `+-1` per label: `1 - 2y` when `flip`, else `2y - 1`.
    fn signs(&self, labels: &[usize], flip: bool) -> Var {
        let v: Vec<F> = labels
            .iter()
            .map(|&y| {
                assert!(y < 2, "binary label {y} is not 0 or 1");
                if (y == 1) != flip {
                    F::ONE
                } else {
                    -F::ONE
                }
            })
            .collect();
        self.constant(Tensor::from_vec(v, &[labels.len()]))
    }

    /// Squared error per example, averaged over output dimensions: `mean_j (p_j - t_j)^2`
    /// (PyTorch's `MSELoss` convention), for predictions `[b, d]` and targets `[b, d]`.
    pub fn mse(&self, pred: Var, target: Tensor<F>) -> Var {
        let s = self.shape(pred);
        assert_eq!(
            s,
            target.shape(),
            "mse: prediction and target shapes differ"
        );
        let t = self.constant(target);
        let d = self.sub(pred, t);
        let sq = self.square(d);
        let axes: Vec<usize> = (1..s.len()).collect();
        if axes.is_empty() {
            sq
        } else {
            self.mean(sq, &axes, false)
        }
    }

    /// `sum_i w_i l_i / n` for per-example losses `l` `[n]` and constant weights `w` (MATH.md E1).
    pub fn weighted_mean(&self, losses: Var, weights: &[F]) -> Var {
        let n = weights.len();
        assert_eq!(
            self.shape(losses),
            vec![n],
            "weighted_mean: {n} weights for losses {:?}",
            self.shape(losses)
        );
        let w = self.constant(Tensor::from_vec(weights.to_vec(), &[n]));
        let wl = self.mul(losses, w);
        let s = self.sum_all(wl);
        self.scale(s, F::ONE / F::from_f64(n as f64))
    }
}
