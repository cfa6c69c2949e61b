//! Parameterised layers as compositions.

use crate::carrier::Carrier;
use crate::graph::{Graph, Var};
use crate::Float;

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// `x W^T + b` with `W` stored `[out, in]` (PyTorch's `nn.Linear` layout); `x` is `[.., in]`.
    pub fn linear(&self, x: Var, weight: Var, bias: Option<Var>) -> Var {
        let y = self.matmul_t(x, weight, false, true);
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
