//! Parameterised layers as compositions.

use crate::carrier::Carrier;
use crate::graph::{Graph, Var};
use crate::Float;

/// One affine map `y = x W^T (+ b)` recorded by a graph built with [`Graph::with_linear_taps`].
///
/// Example `i`'s gradient with respect to `W` is `sum_t g_{i,t} a_{i,t}^T` (and with respect to
/// `b` is `sum_t g_{i,t}`), over the positions `t` that share the weight, where `a` is the value of
/// [`LinearTap::input`] and `g` the cotangent of [`LinearTap::probe`] after a reverse sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearTap {
    /// The layer input `[b, .., in]` (for a convolution: its im2col patches
    /// `[b, positions, c kh kw]`).
    pub input: Var,
    /// A zero parameter of the output's shape `[b, .., out]` added to `x W^T`: its cotangent is the
    /// cotangent of the layer's (pre-activation) output.
    pub probe: Var,
    /// The weight as the model passed it: `[out, in]`, or `[o, c, kh, kw]` for a convolution.
    pub weight: Var,
    /// The bias `[out]`, if any.
    pub bias: Option<Var>,
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// `x W^T + b` with `W` stored `[out, in]` (PyTorch's `nn.Linear` layout); `x` is `[.., in]`.
    ///
    /// On a graph built by [`Graph::with_linear_taps`] the map is recorded as a [`LinearTap`].
    pub fn linear(&self, x: Var, weight: Var, bias: Option<Var>) -> Var {
        let y = self.matmul_t(x, weight, false, true);
        let y = self.tap_linear(x, y, weight, bias);
        match bias {
            Some(b) => self.add(y, b),
            None => y,
        }
    }

    /// Rows of `table` `[vocab, d]` for `ids`, shaped `[.., d]` after `batch_shape`.
    pub fn embedding(&self, table: Var, ids: &[usize], batch_shape: &[usize]) -> Var {
        let d = self.shape(table)[1];
        let rows = self.index_select(table, 0, ids);
        let mut s = batch_shape.to_vec();
        s.push(d);
        self.reshape(rows, &s)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Carrier, Graph, Rng, Tensor};

    fn random(shape: &[usize], rng: &mut Rng) -> Tensor<f64> {
        let n = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.normal()).collect(), shape)
    }

    /// `sum_t g_t a_t^T` from the taps equals the weight gradient of a tapped graph, the bias
    /// gradient is `sum g`, and tapping changes neither values nor gradients.
    #[test]
    fn taps_give_the_factors_of_the_weight_gradient() {
        let mut rng = Rng::new(1);
        let (x, w, b) = (
            random(&[2, 3, 4], &mut rng),
            random(&[5, 4], &mut rng),
            random(&[5], &mut rng),
        );
        let (img, k) = (
            random(&[2, 2, 4, 4], &mut rng),
            random(&[3, 2, 3, 3], &mut rng),
        );
        let run = |tapped: bool| {
            let g = if tapped {
                Graph::<f64>::with_linear_taps()
            } else {
                Graph::<f64>::new()
            };
            let (xv, wv, bv) = (g.input(x.clone()), g.param(w.clone()), g.param(b.clone()));
            let (iv, kv) = (g.input(img.clone()), g.param(k.clone()));
            let y = g.linear(xv, wv, Some(bv));
            let y = g.tanh(y);
            let c = g.conv2d(iv, kv, None, 1, 1);
            let c = g.square(c);
            let s = g.add(g.sum_all(y), g.sum_all(c));
            let grads = g.backward(s, None);
            let get = |v| grads.get(v).unwrap().clone();
            let taps = g.linear_taps();
            let from_taps: Vec<Tensor<f64>> = taps
                .iter()
                .map(|t| {
                    let (a, gr) = (g.tensor(t.input), get(t.probe));
                    let (ins, outs) = (*a.shape().last().unwrap(), *gr.shape().last().unwrap());
                    let a2 = a.reshape(&[a.len() / ins, ins]);
                    let g2 = gr.reshape(&[gr.len() / outs, outs]);
                    crate::kernels::matmul(&g2, &a2, true, false)
                })
                .collect();
            (
                g.tensor(s),
                [get(wv), get(bv), get(kv)],
                taps.len(),
                from_taps,
                taps.first().map(|t| (t.weight == wv, t.bias == Some(bv))),
                taps.get(1).map(|t| (t.weight == kv, t.bias.is_none())),
                taps.first().map(|t| get(t.probe).sum_to(&[5])),
            )
        };
        let (s0, g0, n0, ..) = run(false);
        let (s1, g1, n1, ft, first, second, bias_sum) = run(true);
        assert_eq!(n0, 0);
        assert_eq!(n1, 2);
        assert!(s0.bitwise_eq(&s1));
        for (a, b) in g0.iter().zip(&g1) {
            assert!(a.max_abs_diff(b) < 1e-12);
        }
        assert_eq!(first, Some((true, true)));
        assert_eq!(second, Some((true, true)));
        assert!(ft[0].max_abs_diff(&g1[0]) < 1e-12);
        assert!(ft[1].max_abs_diff(&g1[2].reshape(&[3, 18])) < 1e-12);
        assert!(bias_sum.unwrap().max_abs_diff(&g1[1]) < 1e-12);
    }
}
