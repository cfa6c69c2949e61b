//! Elementwise functions; the reverse rule of `y = f(x)` is `dx = g f'(x)`, with `f'` from the same
//! table as `f` ([`crate::kernels::Unary`]) and itself differentiable (its tangent uses `f''`).

use crate::carrier::Carrier;
use crate::graph::{Graph, Rule, Var};
use crate::kernels::{Order, Unary};
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
    fn vjp(&self, x: &[&C], y: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        let slope = match self.u {
            // exp' = exp: the output is bitwise the slope (and, on duals, its tangent is the
            // slope's), so the reverse rule skips a pass of exponentials (softmax, attention).
            Unary::Exp => y.clone(),
            u => x[0].unary_derivative(u, self.slope.as_ref()),
        };
        vec![Some(g.mul(&slope))]
    }
    fn held_elements(&self) -> usize {
        self.slope.as_ref().map_or(0, Tensor::len)
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// Applies an elementwise function. When `x` is differentiated, the carrier may keep the slope
    /// it computed alongside the value for the reverse rule ([`Carrier::unary_forward`]).
    pub fn unary(&self, u: Unary, x: Var) -> Var {
        let tracked = self.is_tracked(x);
        let (value, slope) = self.with_values(&[x], |v| match tracked {
            true => v[0].unary_forward(u),
            false => (v[0].unary(u, Order::Value), None),
        });
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
