//! 2-d convolution as im2col + matrix product. `unfold2d` is the primitive (its adjoint `fold2d` is
//! the reverse rule); `conv2d` is a composite, so its derivatives come from `unfold2d` and `matmul`.

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

impl<F: Float, C: Carrier<F>> Graph<F, C> {
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
