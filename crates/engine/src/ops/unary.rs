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

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// Applies an elementwise function.
    pub fn unary(&self, u: Unary, x: Var) -> Var {
        let (value, slope) = self.with_values(&[x], |v| v[0].unary_forward(u));
        self.push(value, &[x], UnaryRule { u, slope })
    }
}

/// One method per function of [`crate::kernels::unary`]'s list, documented as there.
macro_rules! unary_methods {
    ($($(#[$doc:meta])* $variant:ident => $method:ident,)*) => {
        impl<F: Float, C: Carrier<F>> Graph<F, C> {
            $($(#[$doc])* pub fn $method(&self, x: Var) -> Var { self.unary(Unary::$variant, x) })*
        }
    };
}

crate::kernels::unary::unary_list!(unary_methods);
