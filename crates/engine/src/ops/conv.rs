//! 2-d convolution as im2col + matrix product. `unfold2d` and `unfold2d_t` are the primitives
//! (their adjoints `fold2d`, `fold2d_t` the reverse rules); `conv2d` is a composite, so its
//! derivatives come from them and `matmul`.
//!
//! `conv2d` computes `W [o, c kh kw] @ unfold2d_t(x)`, which comes out `[b, o, oh ow]`, the
//! layout of the result. A graph that taps its linear maps ([`Graph::with_linear_taps`]) computes
//! `unfold2d(x) @ W^T` instead, `[b, oh ow, o]` then permuted, because a [`crate::LinearTap`]
//! records positions by output channels (as for a linear layer).

use crate::carrier::Carrier;
use crate::graph::{Graph, Rule, Var};
use crate::kernels::Conv2dGeometry;
use crate::Float;

struct UnfoldRule(Conv2dGeometry);

impl<F: Float, C: Carrier<F>> Rule<F, C> for UnfoldRule {
    fn name(&self) -> &'static str {
        "unfold2d"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(g.fold2d(&self.0))]
    }
}

struct UnfoldTRule(Conv2dGeometry);

impl<F: Float, C: Carrier<F>> Rule<F, C> for UnfoldTRule {
    fn name(&self) -> &'static str {
        "unfold2d_t"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(g.fold2d_t(&self.0))]
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// im2col with one row per tap: `[b, c, h, w]` -> `[b, c * kh * kw, oh * ow]`.
    pub fn unfold2d_t(&self, x: Var, geom: Conv2dGeometry) -> Var {
        let value = self.with_values(&[x], |v| v[0].unfold2d_t(&geom));
        self.push(value, &[x], UnfoldTRule(geom))
    }

    /// im2col: `[b, c, h, w]` -> `[b, oh * ow, c * kh * kw]`.
    pub fn unfold2d(&self, x: Var, geom: Conv2dGeometry) -> Var {
        let value = self.with_values(&[x], |v| v[0].unfold2d(&geom));
        self.push(value, &[x], UnfoldRule(geom))
    }

    /// 2-d convolution (cross-correlation, as PyTorch): `x` `[b, c, h, w]`, `weight` `[o, c, kh, kw]`,
    /// optional `bias` `[o]`; returns `[b, o, oh, ow]`.
    ///
    /// # Panics
    /// If `x` is not 4-d or the weight's channel count differs from the input's.
    pub fn conv2d(
        &self,
        x: Var,
        weight: Var,
        bias: Option<Var>,
        stride: usize,
        padding: usize,
    ) -> Var {
        let (xs, ws) = (self.shape(x), self.shape(weight));
        assert!(
            xs.len() == 4 && ws.len() == 4 && xs[1] == ws[1],
            "conv2d: input {xs:?} vs weight {ws:?}"
        );
        let geom = Conv2dGeometry {
            channels: xs[1],
            height: xs[2],
            width: xs[3],
            kernel: (ws[2], ws[3]),
            stride,
            padding,
        };
        let (oh, ow) = geom.out_hw();
        if !self.taps_linear() {
            let cols = self.unfold2d_t(x, geom);
            let w2 = self.reshape(weight, &[ws[0], geom.patch_len()]);
            let mut y = self.matmul(w2, cols); // [b, o, oh*ow]
            if let Some(b) = bias {
                y = self.add(y, self.reshape(b, &[ws[0], 1]));
            }
            return self.reshape(y, &[xs[0], ws[0], oh, ow]);
        }
        let cols = self.unfold2d(x, geom);
        let w2 = self.reshape(weight, &[ws[0], geom.patch_len()]);
        let y = self.matmul_t(cols, w2, false, true); // [b, oh*ow, o]
        let mut y = self.tap_linear(cols, y, weight, bias);
        if let Some(b) = bias {
            y = self.add(y, b);
        }
        let y = self.permute(y, &[0, 2, 1]);
        self.reshape(y, &[xs[0], ws[0], oh, ow])
    }
}
