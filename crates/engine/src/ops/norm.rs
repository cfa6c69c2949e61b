//! Layer and group normalisation (never batch statistics: examples must not interact, MATH.md E2).
//!
//! `y = (x - mean) / sqrt(var + eps) * gamma + beta`, with the biased variance over the normalised
//! axes, as PyTorch.

use crate::carrier::Carrier;
use crate::graph::{Graph, Rule, Var};
use crate::Float;

/// The reverse rule of [`Graph::standardize_last`]: the fused kernel's Jacobian applied to the
/// cotangent ([`crate::kernels::norm`]).
struct StandardizeRule<F> {
    eps: F,
}

impl<F: Float, C: Carrier<F>> Rule<F, C> for StandardizeRule<F> {
    fn name(&self) -> &'static str {
        "standardize_last"
    }
    fn vjp(&self, x: &[&C], y: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(x[0].standardize_last_vjp(y, g, self.eps))]
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// Normalises over the last axis without affine parameters: one fused primitive (its forward,
    /// reverse and tangent rules each a few passes over a row, [`crate::kernels::norm`]).
    pub fn standardize_last(&self, x: Var, eps: F) -> Var {
        let value = self.with_values(&[x], |v| v[0].standardize_last(eps));
        self.push(value, &[x], StandardizeRule { eps })
    }

    /// Layer norm over the last axis with `gamma`, `beta` of that axis's length.
    pub fn layer_norm(&self, x: Var, gamma: Var, beta: Var, eps: F) -> Var {
        let z = self.standardize_last(x, eps);
        let z = self.mul(z, gamma);
        self.add(z, beta)
    }

    /// Group norm of `[b, c, h, w]` over `groups` groups of channels, with per-channel `gamma`, `beta`
    /// of shape `[c]`.
    ///
    /// # Panics
    /// If `c` is not a multiple of `groups`.
    pub fn group_norm(&self, x: Var, groups: usize, gamma: Var, beta: Var, eps: F) -> Var {
        let s = self.shape(x);
        assert!(
            s.len() == 4 && s[1].is_multiple_of(groups),
            "group_norm: {s:?} with {groups} groups"
        );
        let per = s[1] / groups * s[2] * s[3];
        let xg = self.reshape(x, &[s[0], groups, per]);
        let z = self.standardize_last(xg, eps);
        let z = self.reshape(z, &s);
        let g = self.reshape(gamma, &[s[1], 1, 1]);
        let b = self.reshape(beta, &[s[1], 1, 1]);
        let z = self.mul(z, g);
        self.add(z, b)
    }
}
