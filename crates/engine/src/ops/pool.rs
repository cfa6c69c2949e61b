//! Pooling as compositions: average pooling is a reshape and a mean; max pooling multiplies by a
//! constant one-hot mask of each window's maximum (first on ties) and sums, so its derivative routes
//! the cotangent to the maximum, as PyTorch does.

use crate::carrier::Carrier;
use crate::graph::{Graph, Var};
use crate::{Float, Tensor};

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// `[b, c, h, w]` -> `[b, c, h/k, k, w/k, k]`.
    fn windows(&self, x: Var, k: usize) -> (Var, Vec<usize>) {
        let s = self.shape(x);
        assert!(
            s.len() == 4 && s[2].is_multiple_of(k) && s[3].is_multiple_of(k),
            "pooling {k}x{k} needs height and width divisible by {k}, input is {s:?}"
        );
        (self.reshape(x, &[s[0], s[1], s[2] / k, k, s[3] / k, k]), s)
    }

    /// Non-overlapping `k x k` average pooling.
    pub fn avg_pool2d(&self, x: Var, k: usize) -> Var {
        let (w, _) = self.windows(x, k);
        self.mean(w, &[3, 5], false)
    }

    /// Non-overlapping `k x k` max pooling.
    pub fn max_pool2d(&self, x: Var, k: usize) -> Var {
        let (w, s) = self.windows(x, k);
        let t = self.tensor(x);
        let (oh, ow) = (s[2] / k, s[3] / k);
        let mut mask = vec![F::ZERO; t.len()];
        for bc in 0..s[0] * s[1] {
            for i in 0..oh {
                for j in 0..ow {
                    let mut best = (F::from_f64(f64::NEG_INFINITY), 0);
                    for a in 0..k {
                        for b in 0..k {
                            let at = (bc * s[2] + i * k + a) * s[3] + j * k + b;
                            if t.data()[at] > best.0 {
                                best = (t.data()[at], at);
                            }
                        }
                    }
                    mask[best.1] = F::ONE;
                }
            }
        }
        let mask = self.constant(Tensor::from_vec(mask, &[s[0], s[1], oh, k, ow, k]));
        let masked = self.mul(w, mask);
        self.sum(masked, &[3, 5], false)
    }

    /// Mean over height and width: `[b, c, h, w]` -> `[b, c]`.
    pub fn global_avg_pool(&self, x: Var) -> Var {
        self.mean(x, &[2, 3], false)
    }
}
