//! The engine's error type: what a caller of the public graph operations can get wrong.
//!
//! The fallible operations ([`crate::Graph::try_add`], [`crate::Graph::try_matmul_t`],
//! [`crate::Graph::try_reshape`], ...) check their operands' shapes before computing and return
//! an [`EngineError`]; the plain ones (`add`, `matmul`, ...) call them and panic with the same
//! message, for code whose shapes are fixed by construction (a model's forward pass). Kernels below
//! this boundary assume checked shapes.

/// A shape error at a public operation, naming the operation, the shapes and what would fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Two operands whose shapes the operation cannot combine.
    #[error("{op}: shapes {lhs:?} and {rhs:?} do not fit: {reason}")]
    ShapeMismatch {
        /// The operation (`"add"`, `"matmul"`, ...).
        op: &'static str,
        /// Shape of the first operand.
        lhs: Vec<usize>,
        /// Shape of the second operand (or the requested shape).
        rhs: Vec<usize>,
        /// What is wrong and what would fit.
        reason: String,
    },
}

/// Shorthand for `Result<T, EngineError>`.
pub type Result<T> = std::result::Result<T, EngineError>;

/// The broadcast shape of `a` and `b` for the elementwise operation `op` (NumPy rules).
///
/// # Errors
/// [`EngineError::ShapeMismatch`] when a dimension differs and neither side is 1.
pub fn broadcast_result(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    crate::kernels::broadcast_shape(a, b).ok_or_else(|| EngineError::ShapeMismatch {
        op,
        lhs: a.to_vec(),
        rhs: b.to_vec(),
        reason: "aligned on the right, each pair of dimensions must be equal or contain a 1 \
                 (insert a reshape to add the missing size-1 dimensions)"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Graph, Tensor};

    fn graph_with(a: &[usize], b: &[usize]) -> (Graph<f64>, crate::Var, crate::Var) {
        let g = Graph::<f64>::new();
        let x = g.param(Tensor::zeros(a));
        let y = g.param(Tensor::zeros(b));
        (g, x, y)
    }

    #[test]
    fn elementwise_ops_report_shapes_that_do_not_broadcast() {
        let (g, x, y) = graph_with(&[2, 3], &[4]);
        for (op, got) in [
            ("add", g.try_add(x, y)),
            ("sub", g.try_sub(x, y)),
            ("mul", g.try_mul(x, y)),
            ("div", g.try_div(x, y)),
        ] {
            let Err(EngineError::ShapeMismatch {
                op: o, lhs, rhs, ..
            }) = got
            else {
                panic!("{op}: expected a shape error, got {got:?}");
            };
            assert_eq!((o, lhs, rhs), (op, vec![2, 3], vec![4]));
        }
        let before = g.len();
        assert!(g.try_add(x, y).is_err());
        assert_eq!(g.len(), before, "a failed op records nothing");
        // Broadcasting shapes still work and give the plain op's value.
        let (g, x, y) = graph_with(&[2, 3], &[3]);
        let z = g.try_add(x, y).unwrap();
        assert_eq!(g.shape(z), vec![2, 3]);
    }

    #[test]
    fn matmul_reports_the_inner_dimensions() {
        let (g, x, y) = graph_with(&[2, 3], &[4, 5]);
        let e = g.try_matmul_t(x, y, false, false).unwrap_err();
        assert!(
            e.to_string().contains("matmul") && e.to_string().contains("3 vs 4"),
            "{e}"
        );
        // [2, 3] @ [5, 3]^T fits.
        let (g, x, y) = graph_with(&[2, 3], &[5, 3]);
        let z = g.try_matmul_t(x, y, false, true).unwrap();
        assert_eq!(g.shape(z), vec![2, 5]);
        let (g, x, y) = graph_with(&[3], &[3, 2]);
        assert!(g.try_matmul_t(x, y, false, false).is_err(), "1-d operand");
    }

    #[test]
    fn reshape_reports_the_element_counts() {
        let g = Graph::<f64>::new();
        let x = g.param(Tensor::zeros(&[2, 3]));
        let e = g.try_reshape(x, &[4]).unwrap_err();
        assert!(e.to_string().contains("6 elements"), "{e}");
        assert_eq!(g.shape(g.try_reshape(x, &[3, 2]).unwrap()), vec![3, 2]);
    }
}
