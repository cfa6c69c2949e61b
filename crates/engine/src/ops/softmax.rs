//! Softmax family along the last axis, in the max-shifted stable form.
//!
//! `logsumexp(x) = m + ln sum_j exp(x_j - m)` with `m = max_j x_j` taken from the value as a
//! constant: the result does not depend on `m` mathematically, so treating it as constant keeps every
//! derivative exact while no exponential overflows.

use crate::carrier::Carrier;
use crate::graph::{Graph, Var};
use crate::{Float, Tensor};

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// Row maxima of the value along the last axis, kept as a size-1 axis (a constant).
    fn last_axis_max(&self, x: Var) -> Tensor<F> {
        let t = self.tensor(x);
        let shape = t.shape().to_vec();
        let n = *shape.last().expect("last_axis_max of a scalar");
        let maxes: Vec<F> = t
            .data()
            .chunks(n)
            .map(|row| {
                row.iter()
                    .copied()
                    .fold(F::from_f64(f64::NEG_INFINITY), F::max)
            })
            .collect();
        let mut kept = shape;
        *kept.last_mut().unwrap() = 1;
        Tensor::from_vec(maxes, &kept)
    }

    /// `ln sum_j exp(x_j)` along the last axis, keeping it as size 1.
    pub fn logsumexp(&self, x: Var) -> Var {
        let nd = self.shape(x).len();
        let m = self.constant(self.last_axis_max(x));
        let shifted = self.sub(x, m);
        let e = self.exp(shifted);
        let s = self.sum(e, &[nd - 1], true);
        let l = self.log(s);
        self.add(l, m)
    }

    /// `x - logsumexp(x)` along the last axis.
    pub fn log_softmax(&self, x: Var) -> Var {
        let lse = self.logsumexp(x);
        self.sub(x, lse)
    }

    /// `e^(x - m) / sum_j e^(x_j - m)` along the last axis (`m` the row maximum, a constant as in
    /// [`Graph::logsumexp`]): one exponential per element, where `exp(log_softmax(x))` took two
    /// and a logarithm, in passes over attention's `[b, h, t, t]` scores.
    pub fn softmax(&self, x: Var) -> Var {
        let nd = self.shape(x).len();
        let m = self.constant(self.last_axis_max(x));
        let e = self.exp(self.sub(x, m));
        let s = self.sum(e, &[nd - 1], true);
        self.mul(e, self.recip(s))
    }
}
