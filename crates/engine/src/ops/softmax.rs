//! Softmax family along the last axis, in the max-shifted stable form.
//!
//! `logsumexp(x) = m + ln sum_j exp(x_j - m)` with `m = max_j x_j` taken from the value as a
//! constant: the result does not depend on `m` mathematically, so treating it as constant keeps every
//! derivative exact while no exponential overflows.

use crate::carrier::Carrier;
use crate::graph::{Graph, Rule, Var};
use crate::kernels::softmax::Softmax;
use crate::{Float, Tensor};

/// The reverse rule of [`Graph::scaled_softmax`]: the fused kernel's Jacobian applied to the
/// cotangent ([`crate::kernels::softmax`]).
struct SoftmaxRule<F> {
    spec: Softmax<F>,
}

impl<F: Float, C: Carrier<F>> Rule<F, C> for SoftmaxRule<F> {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn vjp(&self, x: &[&C], y: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(x[0].softmax_last_vjp(y, g, self.spec))]
    }
}

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

    /// `e^(x - m) / sum_j e^(x_j - m)` along the last axis (`m` the row maximum): one fused
    /// primitive ([`crate::kernels::softmax`]).
    pub fn softmax(&self, x: Var) -> Var {
        self.scaled_softmax(x, Softmax::plain())
    }

    /// `softmax(c x)` along the last axis, causal when `spec.causal` (row `i` of each trailing
    /// `[t, n]` matrix sees its entries `0..=i`; the others come out 0): attention's scaling, mask
    /// and softmax as one primitive, its forward and reverse rules one pass or two over a row.
    ///
    /// # Panics
    /// If `x` has fewer than two dimensions for a causal softmax, or none.
    pub fn scaled_softmax(&self, x: Var, spec: Softmax<F>) -> Var {
        let value = self.with_values(&[x], |v| v[0].softmax_last(spec));
        self.push(value, &[x], SoftmaxRule { spec })
    }
}
