//! Matrix products `C = op(A) op(B)`, batched with broadcasting.
//!
//! Reverse rules (for `C = A B`: `dA = g B^T`, `dB = A^T g`), written for every transpose flag so
//! that no transposed copy is ever materialised, then summed over broadcast batch dimensions.

use crate::carrier::Carrier;
use crate::error::Result;
use crate::graph::{Graph, Rule, Var};
use crate::kernels;
use crate::Float;

struct MatMulRule {
    ta: bool,
    tb: bool,
}

impl<F: Float, C: Carrier<F>> Rule<F, C> for MatMulRule {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn vjp(&self, x: &[&C], _: &C, g: &C, needs: &[bool]) -> Vec<Option<C>> {
        let (a, b) = (x[0], x[1]);
        let ga = needs[0].then(|| match (self.ta, self.tb) {
            (false, false) => g.matmul_sum_to(b, false, true, a.shape()),
            (true, false) => b.matmul_sum_to(g, false, true, a.shape()),
            (false, true) => g.matmul_sum_to(b, false, false, a.shape()),
            (true, true) => b.matmul_sum_to(g, true, true, a.shape()),
        });
        let gb = needs[1].then(|| match (self.ta, self.tb) {
            (false, false) => a.matmul_sum_to(g, true, false, b.shape()),
            (true, false) => a.matmul_sum_to(g, false, false, b.shape()),
            (false, true) => g.matmul_sum_to(a, true, false, b.shape()),
            (true, true) => g.matmul_sum_to(a, true, true, b.shape()),
        });
        vec![ga, gb]
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// `a @ b` (batched over leading dimensions with broadcasting).
    pub fn matmul(&self, a: Var, b: Var) -> Var {
        self.matmul_t(a, b, false, false)
    }

    /// `op(a) @ op(b)` where `op` transposes the last two dimensions when its flag is set.
    ///
    /// # Panics
    /// If the inner dimensions differ or the batch dimensions do not broadcast
    /// ([`Graph::try_matmul_t`] returns the error instead).
    pub fn matmul_t(&self, a: Var, b: Var, ta: bool, tb: bool) -> Var {
        self.try_matmul_t(a, b, ta, tb)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `op(a) @ op(b)`, checking the shapes first.
    ///
    /// # Errors
    /// [`crate::EngineError::ShapeMismatch`] as [`kernels::matmul_shape`] describes.
    pub fn try_matmul_t(&self, a: Var, b: Var, ta: bool, tb: bool) -> Result<Var> {
        kernels::matmul_shape(&self.shape(a), &self.shape(b), ta, tb)?;
        let value = self.with_values(&[a, b], |v| v[0].matmul(v[1], ta, tb));
        Ok(self.push(value, &[a, b], MatMulRule { ta, tb }))
    }
}
