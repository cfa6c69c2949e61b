//! Dual numbers carrying a block of `k` tangent directions.

use crate::carrier::Carrier;
use crate::kernels::softmax::Softmax;
use crate::kernels::{self, norm, Conv2dGeometry, Order, Pair, Unary};
use crate::value_memo::{key, memo_value, MemoTag, UnaryPart};
use crate::{Float, Tensor};

/// A value with `k` tangents: `value + sum_j eps_j * tangent[j]`, first-order in every `eps_j`.
///
/// `tangent` has shape `[k, ...value.shape]`; `None` means all tangents are zero (constants, data),
/// which every operation exploits to skip work. Arithmetic propagates tangents by the product and
/// chain rules, so evaluating a function on duals gives its value and `k` Jacobian-vector products at
/// once; running the reverse pass on duals gives the gradient and `k` Hessian-vector products.
#[derive(Clone, Debug)]
pub struct Dual<F: Float> {
    /// The primal value.
    pub value: Tensor<F>,
    /// The tangents, `[k, ...value.shape]`, or `None` for zero.
    pub tangent: Option<Tensor<F>>,
}

impl<F: Float> Dual<F> {
    /// `(u^(order)(x), u^(order + 1)(x))` with the dual's tangent `t u^(order + 1)(x)`: the
    /// dual number of `u^(order)`, and the slope it used when there is a tangent (the reverse rule
    /// of `u` reuses it, [`Carrier::unary_derivative`]).
    ///
    /// # Panics
    /// With a tangent at [`Order::Second`]: its tangent needs the third derivative, which no rule
    /// of the engine asks for.
    fn unary_with_slope(&self, u: Unary, order: Order) -> (Self, Option<Tensor<F>>) {
        let tag = |part| MemoTag::Unary { u, order, part };
        match &self.tangent {
            None => (
                Dual::constant(memo_value(
                    key(tag(UnaryPart::Value), &[self.shape()]),
                    || self.value.unary(u, order),
                )),
                None,
            ),
            Some(t) => {
                let Some(pair) = Pair::starting_at(order) else {
                    panic!(
                        "{}: the tangent of the second derivative needs the third, which the \
                         engine does not define",
                        u.name()
                    );
                };
                // f and f' in one pass over the value (GELU shares its CDF and density); the
                // memo holds them as two entries.
                let slope = std::cell::Cell::new(None);
                let value = memo_value(key(tag(UnaryPart::PairValue), &[self.shape()]), || {
                    let (v, s) = kernels::unary::apply_pair(&self.value, u, pair);
                    slope.set(Some(s));
                    v
                });
                let slope = memo_value(key(tag(UnaryPart::PairSlope), &[self.shape()]), || {
                    slope
                        .take()
                        .unwrap_or_else(|| self.value.unary(u, pair.orders().1))
                });
                let tangent = Some(t.mul(&slope));
                (Dual { value, tangent }, Some(slope))
            }
        }
    }

    /// A dual with the given value and tangents.
    ///
    /// # Panics
    /// If the tangent's shape is not `[k, ...value.shape]`.
    pub fn new(value: Tensor<F>, tangent: Tensor<F>) -> Self {
        assert!(
            tangent.ndim() == value.ndim() + 1 && &tangent.shape()[1..] == value.shape(),
            "tangent shape {:?} must be [k, {:?}]",
            tangent.shape(),
            value.shape()
        );
        Dual {
            value,
            tangent: Some(tangent),
        }
    }

    /// A dual with one tangent direction of the value's shape.
    pub fn with_tangent(value: Tensor<F>, direction: &Tensor<F>) -> Self {
        let mut s = vec![1];
        s.extend_from_slice(value.shape());
        Self::new(value, direction.reshape(&s))
    }

    /// Number of tangent directions (`None` when all are zero).
    pub fn k(&self) -> Option<usize> {
        self.tangent.as_ref().map(|t| t.shape()[0])
    }

    /// The tangents, materialising zeros as `[k, ...shape]` if absent.
    pub fn tangent_or_zeros(&self, k: usize) -> Tensor<F> {
        self.tangent
            .clone()
            .unwrap_or_else(|| Tensor::zeros(&lift_shape(k, self.value.shape(), self.value.ndim())))
    }
}

/// `[k, 1, .., 1, shape]` with `ndim` dimensions after `k`.
fn lift_shape(k: usize, shape: &[usize], ndim: usize) -> Vec<usize> {
    let mut s = vec![k];
    s.extend(std::iter::repeat_n(1, ndim - shape.len()));
    s.extend_from_slice(shape);
    s
}

/// Reshapes tangents `[k, shape]` to `[k, 1.., shape]` so they broadcast against `ndim`-d values.
fn lift_to<F: Float>(t: &Tensor<F>, ndim: usize) -> Tensor<F> {
    let k = t.shape()[0];
    let inner = &t.shape()[1..];
    if inner.len() == ndim {
        return t.clone();
    }
    t.reshape(&lift_shape(k, inner, ndim))
}

/// Prepends `k` to a shape.
fn with_k(k: usize, shape: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(shape.len() + 1);
    s.push(k);
    s.extend_from_slice(shape);
    s
}

/// Adds optional tangents.
fn add_opt<F: Float>(a: Option<Tensor<F>>, b: Option<Tensor<F>>) -> Option<Tensor<F>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.add(&b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `a + broadcast(b)` for tangents `a: [k, ...out]` and `b: [k, ...suffix]`, where `suffix` ends
/// `out`: block `j` of `b` is added to every repetition inside block `j` of `a` (bitwise the
/// broadcast-then-add result).
fn add_repeated_blocks<F: Float>(a: &Tensor<F>, b: &Tensor<F>) -> Tensor<F> {
    let k = a.shape()[0];
    assert_eq!(k, b.shape()[0], "tangents of one graph carry the same k");
    let (na, nb) = (a.len() / k.max(1), b.len() / k.max(1));
    let mut out = Vec::with_capacity(a.len());
    for (ablock, bblock) in a.data().chunks(na.max(1)).zip(b.data().chunks(nb.max(1))) {
        for row in ablock.chunks(nb.max(1)) {
            out.extend(row.iter().zip(bblock).map(|(&x, &y)| x + y));
        }
    }
    Tensor::from_vec(out, a.shape())
}

/// Tangents of a product of two same-shape duals, `a' b + b' a`, in one pass over the `k` blocks
/// (bitwise what the two products and their sum give separately).
fn product_rule<F: Float>(
    ta: &Tensor<F>,
    b: &Tensor<F>,
    tb: &Tensor<F>,
    a: &Tensor<F>,
) -> Tensor<F> {
    let n = a.len();
    let (ad, bd) = (a.data(), b.data());
    let mut out = Vec::with_capacity(ta.len());
    for (xa, xb) in ta.data().chunks(n.max(1)).zip(tb.data().chunks(n.max(1))) {
        out.extend(
            xa.iter()
                .zip(bd)
                .zip(xb.iter().zip(ad))
                .map(|((&da, &vb), (&db, &va))| da * vb + db * va),
        );
    }
    Tensor::from_vec(out, ta.shape())
}

impl<F: Float> Dual<F> {
    /// Tangent of a linear map `L` applied to the tangents: `L` acts on each of the k blocks.
    fn linear(&self, value: Tensor<F>, f: impl FnOnce(&Tensor<F>) -> Tensor<F>) -> Self {
        Dual {
            value,
            tangent: self.tangent.as_ref().map(f),
        }
    }

    /// Tangent broadcast to `[k, out]`.
    fn tangent_to(&self, out: &[usize]) -> Option<Tensor<F>> {
        self.tangent.as_ref().map(|t| {
            let l = lift_to(t, out.len());
            kernels::broadcast_to(&l, &with_k(t.shape()[0], out))
        })
    }

    /// Tangent times a value broadcast to `[k, out]`.
    fn tangent_times(&self, factor: &Tensor<F>, out_ndim: usize) -> Option<Tensor<F>> {
        self.tangent
            .as_ref()
            .map(|t| lift_to(t, out_ndim).mul(factor))
    }
}

impl<F: Float> Carrier<F> for Dual<F> {
    fn constant(t: Tensor<F>) -> Self {
        Dual {
            value: t,
            tangent: None,
        }
    }
    fn primal(&self) -> &Tensor<F> {
        &self.value
    }
    fn held_elements(&self) -> usize {
        self.value.len() + self.tangent.as_ref().map_or(0, Tensor::len)
    }
    fn add(&self, o: &Self) -> Self {
        let value = memo_value(key(MemoTag::Add, &[self.shape(), o.shape()]), || {
            self.value.add(&o.value)
        });
        let out = value.shape().to_vec();
        let tangent = if self.shape() == &out[..] && o.shape() == &out[..] {
            add_opt(self.tangent.clone(), o.tangent.clone())
        } else if let (Some(ta), Some(tb), true) = (
            &self.tangent,
            &o.tangent,
            self.shape() == &out[..] && out.ends_with(o.shape()),
        ) {
            // A bias-like operand repeated along leading dimensions: add its tangent block by
            // block instead of materialising its broadcast.
            Some(add_repeated_blocks(ta, tb))
        } else {
            add_opt(self.tangent_to(&out), o.tangent_to(&out))
        };
        Dual { value, tangent }
    }
    fn sub(&self, o: &Self) -> Self {
        self.add(&o.scale(-F::ONE))
    }
    fn mul(&self, o: &Self) -> Self {
        let value = memo_value(key(MemoTag::Mul, &[self.shape(), o.shape()]), || {
            self.value.mul(&o.value)
        });
        let nd = value.ndim();
        let tangent = match (&self.tangent, &o.tangent) {
            (Some(ta), Some(tb)) if self.shape() == o.shape() && ta.shape() == tb.shape() => {
                Some(product_rule(ta, &o.value, tb, &self.value))
            }
            _ => add_opt(
                self.tangent_times(&o.value, nd),
                o.tangent_times(&self.value, nd),
            ),
        };
        Dual { value, tangent }
    }
    fn div(&self, o: &Self) -> Self {
        // (a/b)' = (a' - (a/b) b') / b
        let value = memo_value(key(MemoTag::Div, &[self.shape(), o.shape()]), || {
            self.value.div(&o.value)
        });
        let nd = value.ndim();
        let num = add_opt(
            self.tangent_to(value.shape()),
            o.tangent_times(&value, nd).map(|t| t.scale(-F::ONE)),
        );
        let tangent = num.map(|t| t.div(&o.value));
        Dual { value, tangent }
    }
    fn scale(&self, c: F) -> Self {
        let value = memo_value(key(MemoTag::Scale, &[self.shape()]), || self.value.scale(c));
        self.linear(value, |t| t.scale(c))
    }
    fn unary(&self, u: Unary, order: Order) -> Self {
        self.unary_with_slope(u, order).0
    }
    fn unary_forward(&self, u: Unary) -> (Self, Option<Tensor<F>>) {
        self.unary_with_slope(u, Order::Value)
    }
    fn unary_derivative(&self, u: Unary, slope: Option<&Tensor<F>>) -> Self {
        match (&self.tangent, slope) {
            (Some(t), Some(slope)) => {
                // u'(x) is the forward pass's slope; only u''(x) is new (for GELU, the density
                // alone, without the CDF's erf).
                let tag = MemoTag::Unary {
                    u,
                    order: Order::Second,
                    part: UnaryPart::Curvature,
                };
                let curvature = memo_value(key(tag, &[self.shape()]), || {
                    kernels::unary::apply(&self.value, u, Order::Second)
                });
                Dual {
                    value: slope.clone(),
                    tangent: Some(t.mul(&curvature)),
                }
            }
            _ => self.unary(u, Order::First),
        }
    }
    fn matmul(&self, o: &Self, ta: bool, tb: bool) -> Self {
        let tag = MemoTag::Matmul { ta, tb };
        let value = memo_value(key(tag, &[self.shape(), o.shape()]), || {
            self.value.matmul(&o.value, ta, tb)
        });
        let nd = value.ndim();
        // (AB)' = A'B + AB'; tangents are lifted so that k is an outer batch dimension.
        let left = self
            .tangent
            .as_ref()
            .map(|t| lift_to(t, nd.max(self.value.ndim())));
        let right = o.tangent.as_ref().map(|t| {
            self.value
                .matmul(&lift_to(t, nd.max(o.value.ndim())), ta, tb)
        });
        let tangent = match (left, right) {
            (Some(l), Some(r))
                if kernels::matmul_shape(l.shape(), o.value.shape(), ta, tb).as_deref()
                    == Ok(r.shape()) =>
            {
                // A'B accumulated onto AB' by the product kernel: no separate sum pass.
                Some(kernels::matmul_add(r, &l, &o.value, ta, tb))
            }
            (l, r) => add_opt(l.map(|l| l.matmul(&o.value, ta, tb)), r),
        };
        Dual { value, tangent }
    }
    fn sum_to(&self, shape: &[usize]) -> Self {
        let value = memo_value(key(MemoTag::SumTo, &[self.shape(), shape]), || {
            self.value.sum_to(shape)
        });
        self.linear(value, |t| {
            let k = t.shape()[0];
            t.sum_to(&lift_shape(k, shape, self.value.ndim()))
                .reshape(&with_k(k, shape))
        })
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        Dual {
            value: memo_value(key(MemoTag::BroadcastTo, &[self.shape(), shape]), || {
                self.value.broadcast_to(shape)
            }),
            tangent: self.tangent_to(shape),
        }
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        self.linear(self.value.reshape(shape), |t| {
            t.reshape(&with_k(t.shape()[0], shape))
        })
    }
    fn permute(&self, perm: &[usize]) -> Self {
        let p: Vec<usize> = std::iter::once(0)
            .chain(perm.iter().map(|&d| d + 1))
            .collect();
        self.linear(self.value.permute(perm), |t| t.permute(&p))
    }
    fn concat(parts: &[&Self], axis: usize) -> Self {
        let values: Vec<&Tensor<F>> = parts.iter().map(|p| &p.value).collect();
        let value = Tensor::concat(&values, axis);
        let tangent = parts.iter().find_map(|p| p.k()).map(|k| {
            let ts: Vec<Tensor<F>> = parts.iter().map(|p| p.tangent_or_zeros(k)).collect();
            let refs: Vec<&Tensor<F>> = ts.iter().collect();
            Tensor::concat(&refs, axis + 1)
        });
        Dual { value, tangent }
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        self.linear(self.value.narrow(axis, start, len), |t| {
            t.narrow(axis + 1, start, len)
        })
    }
    fn pad_narrow(&self, axis: usize, start: usize, dim: usize) -> Self {
        self.linear(self.value.pad_narrow(axis, start, dim), |t| {
            t.pad_narrow(axis + 1, start, dim)
        })
    }
    fn index_select(&self, axis: usize, idx: &[usize]) -> Self {
        self.linear(self.value.index_select(axis, idx), |t| {
            t.index_select(axis + 1, idx)
        })
    }
    fn index_add(&self, axis: usize, idx: &[usize], dim: usize) -> Self {
        self.linear(self.value.index_add(axis, idx, dim), |t| {
            t.index_add(axis + 1, idx, dim)
        })
    }
    fn unfold2d(&self, g: &Conv2dGeometry) -> Self {
        self.linear(self.value.unfold2d(g), |t| {
            let s = t.shape();
            let folded = t.reshape(&[s[0] * s[1], s[2], s[3], s[4]]).unfold2d(g);
            let fs = folded.shape();
            folded.reshape(&[s[0], s[1], fs[1], fs[2]])
        })
    }
    fn fold2d(&self, g: &Conv2dGeometry) -> Self {
        self.linear(self.value.fold2d(g), |t| {
            let s = t.shape();
            let img = t.reshape(&[s[0] * s[1], s[2], s[3]]).fold2d(g);
            let is = img.shape();
            img.reshape(&[s[0], s[1], is[1], is[2], is[3]])
        })
    }
    fn unfold2d_t(&self, g: &Conv2dGeometry) -> Self {
        self.linear(self.value.unfold2d_t(g), |t| {
            let s = t.shape();
            let cols = t.reshape(&[s[0] * s[1], s[2], s[3], s[4]]).unfold2d_t(g);
            let cs = cols.shape();
            cols.reshape(&[s[0], s[1], cs[1], cs[2]])
        })
    }
    fn fold2d_t(&self, g: &Conv2dGeometry) -> Self {
        self.linear(self.value.fold2d_t(g), |t| {
            let s = t.shape();
            let img = t.reshape(&[s[0] * s[1], s[2], s[3]]).fold2d_t(g);
            let is = img.shape();
            img.reshape(&[s[0], s[1], is[1], is[2], is[3]])
        })
    }
    fn standardize_last(&self, eps: F) -> Self {
        self.standardize_last_keeping_scales(eps).0
    }
    /// The primal's scales when this call computed them (for the value or for the tangent);
    /// none when the value came from the memo and there is no tangent.
    fn standardize_last_keeping_scales(&self, eps: F) -> (Self, Option<Vec<F>>) {
        let mut kept = None;
        let value = memo_value(key(MemoTag::Standardize, &[self.shape()]), || {
            let (y, scales) = norm::standardize_keeping_scales(&self.value, eps);
            kept = Some(scales);
            y
        });
        // The tangent is the Jacobian applied to the input's (kernels::norm).
        let tangent = self.tangent.as_ref().map(|t| {
            let inv = kept.get_or_insert_with(|| norm::inverse_stds(&self.value, eps));
            norm::standardize_jacobian_scaled(inv, &value, t)
        });
        (Dual { value, tangent }, kept)
    }
    fn standardize_last_vjp(&self, y: &Self, g: &Self, eps: F, scales: Option<&[F]>) -> Self {
        let (x, yv) = (&self.value, &y.value);
        // The rows' scales: the forward pass's, or computed once for the three kernels below
        // that may need them.
        let recomputed_scales = std::cell::OnceCell::new();
        let inv = || {
            scales.unwrap_or_else(|| recomputed_scales.get_or_init(|| norm::inverse_stds(x, eps)))
        };
        let value = memo_value(
            key(MemoTag::StandardizeVjp, &[self.shape(), g.shape()]),
            || norm::standardize_jacobian_scaled(inv(), yv, &g.value),
        );
        // `dx = J(x) g` is linear in `g` (J applied to g's tangent) and moves with `x` through
        // `J` (the curvature term, which needs `y`'s tangent `J t`).
        let along_x = self.tangent.as_ref().map(|t| {
            let computed;
            let dy = match &y.tangent {
                Some(dy) => dy,
                None => {
                    computed = norm::standardize_jacobian_scaled(inv(), yv, t);
                    &computed
                }
            };
            norm::standardize_curvature_scaled(inv(), yv, &g.value, t, dy)
        });
        let along_g = g
            .tangent
            .as_ref()
            .map(|gt| norm::standardize_jacobian_scaled(inv(), yv, gt));
        Dual {
            value,
            tangent: add_opt(along_x, along_g),
        }
    }
    fn softmax_last(&self, s: Softmax<F>) -> Self {
        let value = memo_value(key(MemoTag::Softmax, &[self.shape()]), || {
            s.apply(&self.value)
        });
        // The tangent is the Jacobian applied to the input's (kernels::softmax).
        let tangent = self.tangent.as_ref().map(|t| s.apply_jacobian(&value, t));
        Dual { value, tangent }
    }
    fn softmax_last_vjp(&self, y: &Self, g: &Self, s: Softmax<F>) -> Self {
        let yv = &y.value;
        let value = memo_value(key(MemoTag::SoftmaxVjp, &[self.shape(), g.shape()]), || {
            s.apply_jacobian(yv, &g.value)
        });
        // As for the standardisation: linear in `g`, and moving with `x` through `y`.
        let along_x = self.tangent.as_ref().map(|t| {
            let computed;
            let dy = match &y.tangent {
                Some(dy) => dy,
                None => {
                    computed = s.apply_jacobian(yv, t);
                    &computed
                }
            };
            s.reverse_curvature(yv, &g.value, dy)
        });
        let along_g = g.tangent.as_ref().map(|gt| s.apply_jacobian(yv, gt));
        Dual {
            value,
            tangent: add_opt(along_x, along_g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bias_add_gives_the_bits_of_broadcast_then_add() {
        let vals =
            |n: usize, s: f64| -> Vec<f64> { (0..n).map(|i| (i as f64 * 0.3 + s).sin()).collect() };
        let x = Dual::new(
            Tensor::from_vec(vals(6, 0.1), &[2, 3]),
            Tensor::from_vec(vals(12, 0.2), &[2, 2, 3]),
        );
        let b = Dual::new(
            Tensor::from_vec(vals(3, 0.3), &[3]),
            Tensor::from_vec(vals(6, 0.4), &[2, 3]),
        );
        let fused = x.add(&b);
        let want = x
            .tangent
            .as_ref()
            .unwrap()
            .add(&b.tangent_to(&[2, 3]).unwrap());
        assert_eq!(fused.tangent.unwrap().data(), want.data());
        assert_eq!(fused.value.data(), x.value.add(&b.value).data());
    }

    /// `unary_forward` and `unary_derivative` (the reverse rule reusing the forward slope) give
    /// the bits of `unary(u, Order::Value)` and `unary(u, Order::First)`, values and tangents, for every function.
    fn slope_reuse_keeps_the_bits<F: Float>() {
        let vals = |n: usize, s: f64, positive: bool| -> Vec<F> {
            (0..n)
                .map(|i| {
                    let v = 2.5 * (i as f64 * 0.7 + s).sin();
                    F::from_f64(if positive { v.abs() + 0.1 } else { v })
                })
                .collect()
        };
        let bits = |t: &Tensor<F>| t.data().iter().map(|v| v.to_bits_u64()).collect::<Vec<_>>();
        for u in Unary::ALL {
            let positive = matches!(u, Unary::Log | Unary::Sqrt | Unary::Rsqrt);
            let x = Dual::new(
                Tensor::from_vec(vals(40, 0.1, positive), &[5, 8]),
                Tensor::from_vec(vals(120, 0.2, false), &[3, 5, 8]),
            );
            let (y, slope) = x.unary_forward(u);
            let (y0, d0) = (x.unary(u, Order::Value), x.unary(u, Order::First));
            assert_eq!(bits(&y.value), bits(&y0.value), "{}", u.name());
            assert_eq!(
                bits(y.tangent.as_ref().unwrap()),
                bits(y0.tangent.as_ref().unwrap()),
                "{}",
                u.name()
            );
            let d = x.unary_derivative(u, slope.as_ref());
            assert_eq!(bits(&d.value), bits(&d0.value), "{}'", u.name());
            assert_eq!(
                bits(d.tangent.as_ref().unwrap()),
                bits(d0.tangent.as_ref().unwrap()),
                "{}'",
                u.name()
            );
        }
    }

    #[test]
    fn the_reverse_rule_of_a_unary_reuses_the_forward_slope_bitwise() {
        slope_reuse_keeps_the_bits::<f32>();
        slope_reuse_keeps_the_bits::<f64>();
    }
}
