//! Elementwise functions with their first and second derivatives.
//!
//! A unary primitive needs `f` (forward), `f'` (its reverse rule `dx = dy * f'(x)`), and `f''` (the
//! tangent of `f'` when the reverse pass runs over dual numbers, which is what makes Hessian-vector
//! products exact). Keeping all three in one table means no rule can drift from its function.

use crate::buffer::written;
use crate::{Float, Tensor};

/// Declares [`Unary`] from one list, so that [`Unary::ALL`], [`Unary::name`] and the enum itself
/// cannot disagree: a variant added here is in `ALL` and has a name, and every `match` on `Unary`
/// (the derivative table [`Unary::eval`], the specialised loops) fails to compile until it is handled.
macro_rules! unary_functions {
    ($($(#[$doc:meta])* $variant:ident => $method:ident,)*) => {
        /// An elementwise function the engine can differentiate twice.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Unary {
            $($(#[$doc])* $variant,)*
        }

        impl Unary {
            /// Every function, in declaration order, for code (and tests) that must cover them all.
            pub const ALL: [Unary; [$(stringify!($method)),*].len()] = [$(Unary::$variant),*];

            /// The name used in error messages and graph dumps.
            pub fn name(self) -> &'static str {
                match self {
                    $(Unary::$variant => stringify!($method),)*
                }
            }
        }
    };
}

/// The one list of unary functions: each variant and the [`crate::Graph`] method that applies it
/// (whose name is also the function's name in messages). It feeds [`Unary`] itself (below) and the graph methods (`ops/unary.rs`), so a new
/// function is one line here plus its arms in [`Unary::eval`] and the specialised loops, all in
/// this file.
macro_rules! unary_list {
    ($callback:ident) => {
        $callback! {
            /// `e^x`.
            Exp => exp,
            /// `ln x` (for `x > 0`).
            Log => log,
            /// `tanh x`.
            Tanh => tanh,
            /// `max(x, 0)`; derivative 1 for `x > 0`, else 0 (the PyTorch convention at 0).
            Relu => relu,
            /// `1 / (1 + e^-x)`.
            Sigmoid => sigmoid,
            /// `ln(1 + e^x)`, evaluated stably.
            Softplus => softplus,
            /// Exact GELU `x * Phi(x)` with the normal CDF `Phi` (PyTorch's default `approximate='none'`).
            Gelu => gelu,
            /// `sqrt x` (for `x > 0`).
            Sqrt => sqrt,
            /// `1 / sqrt x` (for `x > 0`).
            Rsqrt => rsqrt,
            /// `x^2`.
            Square => square,
            /// `1 / x`.
            Recip => recip,
        }
    };
}
pub(crate) use unary_list;

unary_list!(unary_functions);

/// Which derivative of a [`Unary`] function to evaluate: the engine needs `f` (forward), `f'` (the
/// reverse rule) and `f''` (the tangent of the reverse rule in a Hessian-vector product), no more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// `f` itself.
    Value,
    /// `f'`.
    First,
    /// `f''`.
    Second,
}

impl Order {
    /// The next derivative (`None` after `f''`: no rule of the engine differentiates three times).
    pub fn next(self) -> Option<Order> {
        match self {
            Order::Value => Some(Order::First),
            Order::First => Some(Order::Second),
            Order::Second => None,
        }
    }

    /// The order with index `i` (0, 1, 2), for loops specialised by a const parameter; any other
    /// index fails to compile when used in a `const` block.
    const fn of_index(i: u8) -> Order {
        match i {
            0 => Order::Value,
            1 => Order::First,
            2 => Order::Second,
            _ => panic!("the engine defines derivatives of order 0, 1 and 2"),
        }
    }
}

#[inline]
fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::ONE + e)
    }
}

#[inline(always)]
fn normal_cdf<F: Float>(x: F) -> F {
    x.normal_cdf()
}

#[inline(always)]
fn normal_pdf<F: Float>(x: F) -> F {
    x.normal_pdf()
}

impl Unary {
    /// The derivative `order` of the function at `x`. The `match` covers every pair of function and
    /// order, so a new function does not compile until its three formulas are written here.
    // Always inlined: the loops call it with a constant function and order (`with_const_unary!`),
    // so that the `match` folds to one arm and the loop can vectorise.
    #[inline(always)]
    pub fn eval<F: Float>(self, order: Order, x: F) -> F {
        use Order::{First, Second, Value};
        let (one, two) = (F::ONE, F::from_f64(2.0));
        match (self, order) {
            (Unary::Exp, Value | First | Second) => x.exp_op(),
            (Unary::Log, Value) => x.ln(),
            (Unary::Log, First) => one / x,
            (Unary::Log, Second) => -one / (x * x),
            (Unary::Tanh, Value) => x.tanh(),
            (Unary::Tanh, First) => {
                let t = x.tanh();
                one - t * t
            }
            (Unary::Tanh, Second) => {
                let t = x.tanh();
                -two * t * (one - t * t)
            }
            (Unary::Relu, Value) => x.max(F::ZERO),
            (Unary::Relu, First) => {
                if x > F::ZERO {
                    one
                } else {
                    F::ZERO
                }
            }
            (Unary::Relu, Second) => F::ZERO,
            (Unary::Sigmoid, Value) => sigmoid(x),
            (Unary::Sigmoid, First) => {
                let s = sigmoid(x);
                s * (one - s)
            }
            (Unary::Sigmoid, Second) => {
                let s = sigmoid(x);
                s * (one - s) * (one - two * s)
            }
            (Unary::Softplus, Value) => x.max(F::ZERO) + (-x.abs()).exp().ln_1p(),
            (Unary::Softplus, First) => sigmoid(x),
            (Unary::Softplus, Second) => {
                let s = sigmoid(x);
                s * (one - s)
            }
            (Unary::Gelu, Value) => x * normal_cdf(x),
            (Unary::Gelu, First) => normal_cdf(x) + x * normal_pdf(x),
            (Unary::Gelu, Second) => normal_pdf(x) * (two - x * x),
            (Unary::Sqrt, Value) => x.sqrt(),
            (Unary::Sqrt, First) => F::from_f64(0.5) / x.sqrt(),
            (Unary::Sqrt, Second) => F::from_f64(-0.25) / (x * x.sqrt()),
            (Unary::Rsqrt, Value) => one / x.sqrt(),
            (Unary::Rsqrt, First) => F::from_f64(-0.5) / (x * x.sqrt()),
            (Unary::Rsqrt, Second) => F::from_f64(0.75) / (x * x * x.sqrt()),
            (Unary::Square, Value) => x * x,
            (Unary::Square, First) => two * x,
            (Unary::Square, Second) => two,
            (Unary::Recip, Value) => one / x,
            (Unary::Recip, First) => -one / (x * x),
            (Unary::Recip, Second) => two / (x * x * x),
        }
    }

    /// Both derivatives of `pair` at `x`, sharing the work the two have in common (GELU's normal
    /// CDF and density). Bitwise equal to two calls of [`Unary::eval`].
    #[inline(always)]
    pub fn eval_pair<F: Float>(self, pair: Pair, x: F) -> (F, F) {
        match (self, pair) {
            (Unary::Gelu, Pair::ValueSlope) => {
                let c = normal_cdf(x);
                (x * c, c + x * normal_pdf(x))
            }
            (Unary::Gelu, Pair::SlopeCurvature) => {
                let p = normal_pdf(x);
                (normal_cdf(x) + x * p, p * (F::from_f64(2.0) - x * x))
            }
            (_, pair) => {
                let (lo, hi) = pair.orders();
                (self.eval(lo, x), self.eval(hi, x))
            }
        }
    }
}

/// Two consecutive derivatives computed together ([`Unary::eval_pair`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pair {
    /// `(f, f')`: a dual's value and the slope its tangent needs.
    ValueSlope,
    /// `(f', f'')`: the reverse rule's factor and the slope of its tangent.
    SlopeCurvature,
}

impl Pair {
    /// The pair starting at `order` (`None` for `f''`, whose derivative the engine does not define).
    pub fn starting_at(order: Order) -> Option<Pair> {
        match order {
            Order::Value => Some(Pair::ValueSlope),
            Order::First => Some(Pair::SlopeCurvature),
            Order::Second => None,
        }
    }

    /// The two orders of the pair.
    pub fn orders(self) -> (Order, Order) {
        match self {
            Pair::ValueSlope => (Order::Value, Order::First),
            Pair::SlopeCurvature => (Order::First, Order::Second),
        }
    }
}

/// Runs `$body` with `$c` bound to the constant `Unary` variant equal to `$u`, so that a closure
/// built from `$c` is specialised per function (the `match` inside [`Unary::eval`] folds away).
macro_rules! with_const_unary {
    ($u:expr, |$c:ident| $body:expr) => {
        match $u {
            Unary::Exp => {
                const $c: Unary = Unary::Exp;
                $body
            }
            Unary::Log => {
                const $c: Unary = Unary::Log;
                $body
            }
            Unary::Tanh => {
                const $c: Unary = Unary::Tanh;
                $body
            }
            Unary::Relu => {
                const $c: Unary = Unary::Relu;
                $body
            }
            Unary::Sigmoid => {
                const $c: Unary = Unary::Sigmoid;
                $body
            }
            Unary::Softplus => {
                const $c: Unary = Unary::Softplus;
                $body
            }
            Unary::Gelu => {
                const $c: Unary = Unary::Gelu;
                $body
            }
            Unary::Sqrt => {
                const $c: Unary = Unary::Sqrt;
                $body
            }
            Unary::Rsqrt => {
                const $c: Unary = Unary::Rsqrt;
                $body
            }
            Unary::Square => {
                const $c: Unary = Unary::Square;
                $body
            }
            Unary::Recip => {
                const $c: Unary = Unary::Recip;
                $body
            }
        }
    };
}

fn apply_order<F: Float, const O: u8>(t: &Tensor<F>, u: Unary) -> Tensor<F> {
    let order = const { Order::of_index(O) };
    // SAFETY (all three): each loop writes every element of `out`, which is as long as `xs`.
    if u == Unary::Gelu {
        return unsafe { t.map_slices(|xs, out| F::gelu_slice(order, xs, out)) };
    }
    if u == Unary::Exp {
        // Every derivative of `e^x` is `e^x`.
        return unsafe { t.map_slices(|xs, out| F::exp_slice(xs, out)) };
    }
    with_const_unary!(u, |U| unsafe {
        t.map_slices(|xs, out| {
            for (o, &x) in out.iter_mut().zip(xs) {
                o.write(U.eval(order, x));
            }
        })
    })
}

fn apply_pair_of<F: Float, const SECOND: bool>(t: &Tensor<F>, u: Unary) -> (Tensor<F>, Tensor<F>) {
    let pair = if SECOND {
        Pair::SlopeCurvature
    } else {
        Pair::ValueSlope
    };
    // SAFETY (all three): each loop writes every element of `a` and `b`, each as long as `xs`.
    if u == Unary::Gelu {
        return unsafe { t.map2_slices(|xs, a, b| F::gelu_pair_slice(pair, xs, a, b)) };
    }
    if u == Unary::Exp {
        return unsafe {
            t.map2_slices(|xs, a, b| {
                F::exp_slice(xs, a);
                for (b, a) in b.iter_mut().zip(a.iter()) {
                    // SAFETY: `exp_slice` has just written every element of `a`.
                    b.write(written(a));
                }
            })
        };
    }
    with_const_unary!(u, |U| unsafe {
        t.map2_slices(|xs, a, b| {
            for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(xs) {
                let (va, vb) = U.eval_pair(pair, x);
                a.write(va);
                b.write(vb);
            }
        })
    })
}

/// `u^(order)` of every element, in a loop specialised to `(u, order)`.
pub fn apply<F: Float>(t: &Tensor<F>, u: Unary, order: Order) -> Tensor<F> {
    match order {
        Order::Value => apply_order::<F, 0>(t, u),
        Order::First => apply_order::<F, 1>(t, u),
        Order::Second => apply_order::<F, 2>(t, u),
    }
}

/// Both derivatives of `pair` of every element in one specialised loop ([`Unary::eval_pair`]).
pub fn apply_pair<F: Float>(t: &Tensor<F>, u: Unary, pair: Pair) -> (Tensor<F>, Tensor<F>) {
    match pair {
        Pair::ValueSlope => apply_pair_of::<F, false>(t, u),
        Pair::SlopeCurvature => apply_pair_of::<F, true>(t, u),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_central_differences() {
        // f' and f'' checked against central differences of f and f' in f64 at points away from kinks.
        let h = 1e-6;
        for u in Unary::ALL {
            for &x in &[0.3f64, 1.7, 2.5, -0.8, -2.2] {
                if matches!(u, Unary::Log | Unary::Sqrt | Unary::Rsqrt) && x <= 0.0 {
                    continue;
                }
                for pair in [Pair::ValueSlope, Pair::SlopeCurvature] {
                    let (lo, hi) = pair.orders();
                    let fd = (u.eval(lo, x + h) - u.eval(lo, x - h)) / (2.0 * h);
                    let exact = u.eval(hi, x);
                    let err = (fd - exact).abs() / exact.abs().max(1.0);
                    assert!(err < 1e-7, "{} {hi:?} at {x}: fd {fd} vs {exact}", u.name());
                    let (a, b) = u.eval_pair(pair, x);
                    assert_eq!(
                        (a.to_bits(), b.to_bits()),
                        (u.eval(lo, x).to_bits(), exact.to_bits()),
                        "{} {pair:?}: the shared pass keeps the bits",
                        u.name()
                    );
                }
            }
        }
    }

    #[test]
    fn every_function_is_listed_once_with_its_own_name() {
        // `ALL` and `name` come from the one list in `unary_functions!`; this guards the list.
        let names: std::collections::BTreeSet<&str> = Unary::ALL.iter().map(|u| u.name()).collect();
        assert_eq!(names.len(), Unary::ALL.len());
        for (i, u) in Unary::ALL.iter().enumerate() {
            assert_eq!(*u as usize, i, "ALL is in declaration order");
        }
    }

    #[test]
    fn softplus_and_sigmoid_are_stable_in_the_tails() {
        assert_eq!(Unary::Softplus.eval(Order::Value, 1000.0f64), 1000.0);
        assert!(Unary::Softplus.eval(Order::Value, -1000.0f64) >= 0.0);
        assert_eq!(Unary::Sigmoid.eval(Order::Value, -1000.0f64), 0.0);
        assert_eq!(Unary::Sigmoid.eval(Order::Value, 1000.0f32), 1.0);
    }
}
