//! Sums and broadcasts, each the other's adjoint.

use crate::carrier::Carrier;
use crate::graph::{Graph, Rule, Var};
use crate::Float;

struct SumToRule(Vec<usize>);

impl<F: Float, C: Carrier<F>> Rule<F, C> for SumToRule {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(g.broadcast_to(&self.0))]
    }
}

struct BroadcastRule(Vec<usize>);

impl<F: Float, C: Carrier<F>> Rule<F, C> for BroadcastRule {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(g.sum_to(&self.0))]
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// Sums down to `shape` (a shape that broadcasts to `x`'s); the reverse rule broadcasts back.
    pub fn sum_to(&self, x: Var, shape: &[usize]) -> Var {
        let in_shape = self.shape(x);
        let value = self.with_values(&[x], |v| v[0].sum_to(shape));
        self.push(value, &[x], SumToRule(in_shape))
    }

    /// Repeats `x` up to `shape`; the reverse rule sums back.
    pub fn broadcast_to(&self, x: Var, shape: &[usize]) -> Var {
        let in_shape = self.shape(x);
        let value = self.with_values(&[x], |v| v[0].broadcast_to(shape));
        self.push(value, &[x], BroadcastRule(in_shape))
    }

    /// Sum over `axes`, dropping them unless `keepdim`.
    pub fn sum(&self, x: Var, axes: &[usize], keepdim: bool) -> Var {
        let shape = self.shape(x);
        let mut kept = shape.clone();
        for &a in axes {
            kept[a] = 1;
        }
        let s = self.sum_to(x, &kept);
        if keepdim {
            s
        } else {
            let out: Vec<usize> = shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect();
            self.reshape(s, &out)
        }
    }

    /// Mean over `axes`.
    pub fn mean(&self, x: Var, axes: &[usize], keepdim: bool) -> Var {
        let shape = self.shape(x);
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let s = self.sum(x, axes, keepdim);
        self.scale(s, F::ONE / F::from_f64(count as f64))
    }

    /// Sum of every element, as a scalar.
    pub fn sum_all(&self, x: Var) -> Var {
        self.sum_to(x, &[])
    }
}
