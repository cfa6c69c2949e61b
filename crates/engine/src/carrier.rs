//! The number carriers the graph computes with: plain tensors, or dual numbers (value + tangents).
//!
//! Every primitive's forward computation and reverse rule are written once against [`Carrier`]. Run
//! over [`Tensor`] the graph gives values and gradients; run over [`crate::Dual`] the same code also
//! propagates tangents, so the forward pass yields Jacobian-vector products and the reverse pass yields
//! Hessian-vector products (forward-over-reverse, ARCHITECTURE.md "The engine").

use crate::kernels::softmax::Softmax;
use crate::kernels::{self, Conv2dGeometry, Order, Pair, Unary};
use crate::{Float, Tensor};

/// The primitive operations a number carrier supports. Shapes follow the value (primal) tensor;
/// binary operations broadcast like NumPy.
pub trait Carrier<F: Float>: Clone + Send + Sync + 'static {
    /// A carrier holding `t` with zero tangent.
    fn constant(t: Tensor<F>) -> Self;
    /// The value (primal) part.
    fn primal(&self) -> &Tensor<F>;
    /// Elements the carrier holds: the value's, plus its tangents' for a dual number (memory
    /// estimates, [`crate::Graph::stored_elements`]).
    fn held_elements(&self) -> usize {
        self.primal().len()
    }
    /// Shape of the value.
    fn shape(&self) -> &[usize] {
        self.primal().shape()
    }
    /// `self + o`.
    fn add(&self, o: &Self) -> Self;
    /// `self - o`.
    fn sub(&self, o: &Self) -> Self;
    /// `self * o` elementwise.
    fn mul(&self, o: &Self) -> Self;
    /// `self / o` elementwise.
    fn div(&self, o: &Self) -> Self;
    /// `c * self` for a constant `c`.
    fn scale(&self, c: F) -> Self;
    /// `u^(order)(self)`: the function or one of its first two derivatives.
    ///
    /// # Panics
    /// A dual number with a tangent at [`Order::Second`] (its tangent would need `u'''`, which no
    /// rule of the engine asks for).
    fn unary(&self, u: Unary, order: Order) -> Self;
    /// `u(self)` for a graph's forward pass, with the slope `u'(self)` when the carrier computes
    /// it anyway (a dual number's tangent needs it), so that the reverse rule can reuse it through
    /// [`Carrier::unary_derivative`]. By default, `(self.unary(u, Order::Value), None)`.
    fn unary_forward(&self, u: Unary) -> (Self, Option<Tensor<F>>) {
        (self.unary(u, Order::Value), None)
    }
    /// `u'(self)` for the reverse rule of `u`, given the `slope` that [`Carrier::unary_forward`]
    /// returned for the same `self`: bitwise `self.unary(u, Order::First)`, minus the work of recomputing
    /// the slope (GELU's normal CDF). By default, `self.unary(u, Order::First)`.
    fn unary_derivative(&self, u: Unary, slope: Option<&Tensor<F>>) -> Self {
        let _ = slope;
        self.unary(u, Order::First)
    }
    /// `op(self) @ op(o)`, batched (see [`kernels::matmul`]).
    fn matmul(&self, o: &Self, ta: bool, tb: bool) -> Self;
    /// `op(self) @ op(o)` summed down to `shape`, the gradient of a matrix that a batched product
    /// broadcast (a convolution's weight): bitwise `self.matmul(o, ta, tb).sum_to(shape)`, which
    /// is the default; plain tensors skip the batch of products where they can
    /// ([`kernels::matmul_batch_sum`]).
    fn matmul_sum_to(&self, o: &Self, ta: bool, tb: bool, shape: &[usize]) -> Self {
        self.matmul(o, ta, tb).sum_to(shape)
    }
    /// Sum down to a broadcast-compatible shape (adjoint of [`Carrier::broadcast_to`]).
    fn sum_to(&self, shape: &[usize]) -> Self;
    /// Repeat up to a broadcast shape.
    fn broadcast_to(&self, shape: &[usize]) -> Self;
    /// Same elements, other shape.
    fn reshape(&self, shape: &[usize]) -> Self;
    /// Reorder dimensions.
    fn permute(&self, perm: &[usize]) -> Self;
    /// Join along an axis.
    fn concat(parts: &[&Self], axis: usize) -> Self;
    /// Slice `start..start+len` along an axis.
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self;
    /// Adjoint of `narrow`: embed into zeros of length `dim`.
    fn pad_narrow(&self, axis: usize, start: usize, dim: usize) -> Self;
    /// Gather entries along an axis.
    fn index_select(&self, axis: usize, idx: &[usize]) -> Self;
    /// Adjoint of `index_select`: scatter-add into zeros of length `dim`.
    fn index_add(&self, axis: usize, idx: &[usize], dim: usize) -> Self;
    /// im2col of a `[b, c, h, w]` input.
    fn unfold2d(&self, g: &Conv2dGeometry) -> Self;
    /// Adjoint of `unfold2d`.
    fn fold2d(&self, g: &Conv2dGeometry) -> Self;
    /// im2col with one row per tap, `[b, c kh kw, oh ow]` ([`kernels::unfold2d_t`]).
    fn unfold2d_t(&self, g: &Conv2dGeometry) -> Self;
    /// Adjoint of `unfold2d_t`.
    fn fold2d_t(&self, g: &Conv2dGeometry) -> Self;
    /// `(x - mean) / sqrt(var + eps)` over each row of the last axis ([`kernels::norm`]).
    fn standardize_last(&self, eps: F) -> Self;
    /// [`Carrier::standardize_last`], and the rows' `1 / sqrt(var + eps)` (of the primal, for
    /// dual numbers) if the carrier can hand them to [`Carrier::standardize_last_vjp`] (by
    /// default it does not).
    fn standardize_last_keeping_scales(&self, eps: F) -> (Self, Option<Vec<F>>) {
        (self.standardize_last(eps), None)
    }
    /// The reverse rule of [`Carrier::standardize_last`] at `self`, given its output `y`, the
    /// output's cotangent `g` and, if the forward pass kept them, its rows' scales
    /// ([`Carrier::standardize_last_keeping_scales`]): the input's cotangent.
    fn standardize_last_vjp(&self, y: &Self, g: &Self, eps: F, scales: Option<&[F]>) -> Self;
    /// `softmax(c x)` over each row of the last axis, optionally causal ([`kernels::softmax`]).
    fn softmax_last(&self, s: Softmax<F>) -> Self;
    /// The reverse rule of [`Carrier::softmax_last`] at `self`, given its output `y` and the
    /// output's cotangent `g`: the input's cotangent.
    fn softmax_last_vjp(&self, y: &Self, g: &Self, s: Softmax<F>) -> Self;
    /// `self * gamma + beta` per channel: `self` `[b, c, ...]`, `gamma` and `beta` `[c]` (group
    /// norm's affine map). The default is the composite of broadcast operations that defines it;
    /// [`Tensor`] fuses it, with the same bits.
    fn channel_affine(&self, gamma: &Self, beta: &Self) -> Self {
        let s = channel_shape(self.shape());
        self.mul(&gamma.reshape(&s)).add(&beta.reshape(&s))
    }
    /// The reverse rule of [`Carrier::channel_affine`] at `self` for the output's cotangent `g`:
    /// the cotangents of `self`, `gamma` and `beta`, each where `needs` asks for it: the
    /// composite's reverse rules, in their order, the `gamma` gradient's products summed by
    /// [`Carrier::sum_products_to`].
    fn channel_affine_vjp(&self, gamma: &Self, g: &Self, needs: [bool; 3]) -> [Option<Self>; 3] {
        let s = channel_shape(self.shape());
        let c = [s[0]];
        [
            needs[0].then(|| g.mul(&gamma.reshape(&s))),
            needs[1].then(|| g.sum_products_to(self, &s).reshape(&c)),
            needs[2].then(|| g.sum_to(&s).reshape(&c)),
        ]
    }
    /// `(self * o).sum_to(shape)` for `o` of `self`'s shape. The default is that composite;
    /// [`Tensor`] adds the products as they are formed, with the same bits
    /// ([`kernels::broadcast::sum_products_to`]).
    fn sum_products_to(&self, o: &Self, shape: &[usize]) -> Self {
        self.mul(o).sum_to(shape)
    }
}

/// The shape `[c, 1, ...]` that a per-channel vector takes to broadcast over `[b, c, ...]`.
fn channel_shape(x: &[usize]) -> Vec<usize> {
    assert!(x.len() >= 2, "a per-channel map of a {}-d tensor", x.len());
    let mut s = vec![1; x.len() - 1];
    s[0] = x[1];
    s
}

impl<F: Float> Carrier<F> for Tensor<F> {
    fn constant(t: Tensor<F>) -> Self {
        t
    }
    fn channel_affine(&self, gamma: &Self, beta: &Self) -> Self {
        kernels::norm::channel_affine(self, gamma, beta)
    }
    fn sum_products_to(&self, o: &Self, shape: &[usize]) -> Self {
        kernels::broadcast::sum_products_to(self, o, shape)
    }
    fn primal(&self) -> &Tensor<F> {
        self
    }
    fn add(&self, o: &Self) -> Self {
        kernels::binary(self, o, |a, b| a + b)
    }
    fn sub(&self, o: &Self) -> Self {
        kernels::binary(self, o, |a, b| a - b)
    }
    fn mul(&self, o: &Self) -> Self {
        kernels::binary(self, o, |a, b| a * b)
    }
    fn div(&self, o: &Self) -> Self {
        kernels::binary(self, o, |a, b| a / b)
    }
    fn scale(&self, c: F) -> Self {
        self.map(|x| c * x)
    }
    fn unary(&self, u: Unary, order: Order) -> Self {
        kernels::unary::apply(self, u, order)
    }
    fn unary_forward(&self, u: Unary) -> (Self, Option<Tensor<F>>) {
        match u {
            // The GELU's slope shares the normal CDF and density with its value: computed
            // together, the reverse rule needs no second pass of them.
            Unary::Gelu => {
                let (value, slope) = kernels::unary::apply_pair(self, u, Pair::ValueSlope);
                (value, Some(slope))
            }
            _ => (self.unary(u, Order::Value), None),
        }
    }
    fn unary_derivative(&self, u: Unary, slope: Option<&Tensor<F>>) -> Self {
        match slope {
            Some(slope) => slope.clone(),
            None => self.unary(u, Order::First),
        }
    }
    fn matmul(&self, o: &Self, ta: bool, tb: bool) -> Self {
        kernels::matmul(self, o, ta, tb)
    }
    fn matmul_sum_to(&self, o: &Self, ta: bool, tb: bool, shape: &[usize]) -> Self {
        kernels::matmul_sum_to(self, o, ta, tb, shape)
    }
    fn sum_to(&self, shape: &[usize]) -> Self {
        kernels::sum_to(self, shape)
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        kernels::broadcast_to(self, shape)
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        Tensor::reshape(self, shape)
    }
    fn permute(&self, perm: &[usize]) -> Self {
        kernels::permute(self, perm)
    }
    fn concat(parts: &[&Self], axis: usize) -> Self {
        kernels::concat(parts, axis)
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        kernels::narrow(self, axis, start, len)
    }
    fn pad_narrow(&self, axis: usize, start: usize, dim: usize) -> Self {
        kernels::pad_narrow(self, axis, start, dim)
    }
    fn index_select(&self, axis: usize, idx: &[usize]) -> Self {
        kernels::index_select(self, axis, idx)
    }
    fn index_add(&self, axis: usize, idx: &[usize], dim: usize) -> Self {
        kernels::index_add(self, axis, idx, dim)
    }
    fn unfold2d(&self, g: &Conv2dGeometry) -> Self {
        kernels::unfold2d(self, g)
    }
    fn fold2d(&self, g: &Conv2dGeometry) -> Self {
        kernels::fold2d(self, g)
    }
    fn unfold2d_t(&self, g: &Conv2dGeometry) -> Self {
        kernels::unfold2d_t(self, g)
    }
    fn fold2d_t(&self, g: &Conv2dGeometry) -> Self {
        kernels::fold2d_t(self, g)
    }
    fn standardize_last(&self, eps: F) -> Self {
        kernels::norm::standardize(self, eps)
    }
    fn standardize_last_keeping_scales(&self, eps: F) -> (Self, Option<Vec<F>>) {
        let (y, scales) = kernels::norm::standardize_keeping_scales(self, eps);
        (y, Some(scales))
    }
    fn standardize_last_vjp(&self, y: &Self, g: &Self, eps: F, scales: Option<&[F]>) -> Self {
        match scales {
            Some(inv) => kernels::norm::standardize_jacobian_scaled(inv, y, g),
            None => kernels::norm::standardize_apply_jacobian(self, y, g, eps),
        }
    }
    fn softmax_last(&self, s: Softmax<F>) -> Self {
        s.apply(self)
    }
    fn softmax_last_vjp(&self, y: &Self, g: &Self, s: Softmax<F>) -> Self {
        s.apply_jacobian(y, g)
    }
}
