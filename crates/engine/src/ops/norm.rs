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
    /// The rows' `1 / sqrt(var + eps)`, when the forward pass kept them.
    scales: Option<Vec<F>>,
}

impl<F: Float, C: Carrier<F>> Rule<F, C> for StandardizeRule<F> {
    fn name(&self) -> &'static str {
        "standardize_last"
    }
    fn vjp(&self, x: &[&C], y: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(x[0].standardize_last_vjp(
            y,
            g,
            self.eps,
            self.scales.as_deref(),
        ))]
    }
}

/// The reverse rule of [`Graph::channel_affine`] ([`Carrier::channel_affine_vjp`]).
struct ChannelAffineRule;

impl<F: Float, C: Carrier<F>> Rule<F, C> for ChannelAffineRule {
    fn name(&self) -> &'static str {
        "channel_affine"
    }
    fn vjp(&self, x: &[&C], _: &C, g: &C, needs: &[bool]) -> Vec<Option<C>> {
        x[0].channel_affine_vjp(x[1], g, [needs[0], needs[1], needs[2]])
            .into()
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// `x * gamma + beta` per channel, `x` `[b, c, ...]`, `gamma` and `beta` `[c]`: one primitive
    /// with the values and derivatives of the broadcast product and sum it replaces.
    ///
    /// # Panics
    /// If `x` has fewer than 2 dimensions or `gamma`, `beta` are not of shape `[c]`.
    pub fn channel_affine(&self, x: Var, gamma: Var, beta: Var) -> Var {
        let (s, sg, sb) = (self.shape(x), self.shape(gamma), self.shape(beta));
        assert!(
            s.len() >= 2 && sg == [s[1]] && sb == [s[1]],
            "channel_affine: {s:?} with gamma {sg:?} and beta {sb:?}"
        );
        let value = self.with_values(&[x, gamma, beta], |v| v[0].channel_affine(v[1], v[2]));
        self.push(value, &[x, gamma, beta], ChannelAffineRule)
    }

    /// Normalises over the last axis without affine parameters: one fused primitive (its forward,
    /// reverse and tangent rules each a few passes over a row, [`crate::kernels::norm`]).
    pub fn standardize_last(&self, x: Var, eps: F) -> Var {
        let (value, scales) = self.with_values(&[x], |v| v[0].standardize_last_keeping_scales(eps));
        self.push(value, &[x], StandardizeRule { eps, scales })
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
        self.channel_affine(z, gamma, beta)
    }
}
