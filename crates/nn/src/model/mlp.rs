//! Multi-layer perceptron: linear layers with an activation between them.

use engine::{Carrier, Float, Graph, Var};

use super::{activate, push_linear};
use crate::config::Activation;
use crate::params::Layout;

/// An MLP `in -> hidden.. -> out` with parameters `layers.{i}.weight` `[out, in]` and `layers.{i}.bias`.
#[derive(Debug, Clone)]
pub struct Mlp {
    depth: usize,
    activation: Activation,
    output_scale: f64,
}

impl Mlp {
    pub(crate) fn new(
        layout: &mut Layout,
        inp: usize,
        hidden: &[usize],
        out: usize,
        activation: Activation,
        output_scale: f64,
    ) -> Self {
        let widths: Vec<usize> = std::iter::once(inp)
            .chain(hidden.iter().copied())
            .chain([out])
            .collect();
        for (i, w) in widths.windows(2).enumerate() {
            push_linear(layout, &format!("layers.{i}"), w[0], w[1]);
        }
        Mlp {
            depth: widths.len() - 1,
            activation,
            output_scale,
        }
    }

    /// Activations entering the last layer.
    pub(crate) fn features<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        x: Var,
        b: usize,
    ) -> Var {
        let d: usize = g.shape(x).iter().product::<usize>() / b.max(1);
        let mut h = g.reshape(x, &[b, d]);
        for i in 0..self.depth - 1 {
            h = g.linear(h, p[2 * i], Some(p[2 * i + 1]));
            h = activate(g, self.activation, h);
        }
        h
    }

    /// The last layer on the features, times the output scale.
    pub(crate) fn head<F: Float, C: Carrier<F>>(&self, g: &Graph<F, C>, p: &[Var], h: Var) -> Var {
        let last = self.depth - 1;
        let mut h = g.linear(h, p[2 * last], Some(p[2 * last + 1]));
        if self.output_scale != 1.0 {
            h = g.scale(h, F::from_f64(self.output_scale));
        }
        h
    }
}
