//! Elementwise functions; the reverse rule of `y = f(x)` is `dx = g f'(x)`, with `f'` from the same
//! table as `f` ([`crate::kernels::Unary`]) and itself differentiable (its tangent uses `f''`).

use crate::carrier::Carrier;
use crate::graph::{Graph, Rule, Var};
use crate::kernels::Unary;
use crate::{Float, Tensor};

/// `u` and, when the carrier kept it, the forward pass's slope `u'(x)` (reused by the reverse rule).
struct UnaryRule<F> {
    u: Unary,
    slope: Option<Tensor<F>>,
}

impl<F: Float, C: Carrier<F>> Rule<F, C> for UnaryRule<F> {
    fn name(&self) -> &'static str {
        self.u.name()
    }
    fn vjp(&self, x: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(
            g.mul(&x[0].unary_derivative(self.u, self.slope.as_ref())),
        )]
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $kind:ident;)*) => {
        impl<F: Float, C: Carrier<F>> Graph<F, C> {
            $($(#[$doc])* pub fn $name(&self, x: Var) -> Var { self.unary(Unary::$kind, x) })*
        }
    };
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// Applies an elementwise function.
    pub fn unary(&self, u: Unary, x: Var) -> Var {
        let (value, slope) = self.with_values(&[x], |v| v[0].unary_forward(u));
        self.push(value, &[x], UnaryRule { u, slope })
    }
}

unary_methods! {
    /// `e^x`.
    exp => Exp;
    /// `ln x`.
    log => Log;
    /// `tanh x`.
    tanh => Tanh;
    /// `max(x, 0)`.
    relu => Relu;
    /// Logistic sigmoid.
    sigmoid => Sigmoid;
    /// `ln(1 + e^x)`.
    softplus => Softplus;
    /// Exact GELU `x Phi(x)`.
    gelu => Gelu;
    /// `sqrt x`.
    sqrt => Sqrt;
    /// `1 / sqrt x`.
    rsqrt => Rsqrt;
    /// `x^2`.
    square => Square;
    /// `1 / x`.
    recip => Recip;
}
