//! Elementwise functions with their first and second derivatives.
//!
//! A unary primitive needs `f` (forward), `f'` (its reverse rule `dx = dy * f'(x)`), and `f''` (the
//! tangent of `f'` when the reverse pass runs over dual numbers, which is what makes Hessian-vector
//! products exact). Keeping all three in one table means no rule can drift from its function.

use crate::{Float, Tensor};

/// An elementwise function the engine can differentiate twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unary {
    /// `e^x`.
    Exp,
    /// `ln x` (for `x > 0`).
    Log,
    /// `tanh x`.
    Tanh,
    /// `max(x, 0)`; derivative 1 for `x > 0`, else 0 (the PyTorch convention at 0).
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `ln(1 + e^x)`, evaluated stably.
    Softplus,
    /// Exact GELU `x * Phi(x)` with the normal CDF `Phi` (PyTorch's default `approximate='none'`).
    Gelu,
    /// `sqrt x` (for `x > 0`).
    Sqrt,
    /// `1 / sqrt x` (for `x > 0`).
    Rsqrt,
    /// `x^2`.
    Square,
    /// `1 / x`.
    Recip,
}

const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

#[inline]
fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::ONE + e)
    }
}

#[inline]
fn normal_cdf<F: Float>(x: F) -> F {
    F::from_f64(0.5) * (F::ONE + (x * F::from_f64(INV_SQRT_2)).erf())
}

#[inline]
fn normal_pdf<F: Float>(x: F) -> F {
    F::from_f64(INV_SQRT_2PI) * (F::from_f64(-0.5) * x * x).exp()
}

impl Unary {
    /// Every function, for code (and tests) that must cover them all.
    pub const ALL: [Unary; 11] = [
        Unary::Exp,
        Unary::Log,
        Unary::Tanh,
        Unary::Relu,
        Unary::Sigmoid,
        Unary::Softplus,
        Unary::Gelu,
        Unary::Sqrt,
        Unary::Rsqrt,
        Unary::Square,
        Unary::Recip,
    ];

    /// The name used in error messages and graph dumps.
    pub fn name(self) -> &'static str {
        match self {
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Tanh => "tanh",
            Unary::Relu => "relu",
            Unary::Sigmoid => "sigmoid",
            Unary::Softplus => "softplus",
            Unary::Gelu => "gelu",
            Unary::Sqrt => "sqrt",
            Unary::Rsqrt => "rsqrt",
            Unary::Square => "square",
            Unary::Recip => "recip",
        }
    }

    /// Derivative of order `order` (0 = the function itself) at `x`; `order <= 2`.
    ///
    /// # Panics
    /// If `order > 2` (no rule in the engine differentiates three times).
    #[inline]
    pub fn eval<F: Float>(self, order: u8, x: F) -> F {
        let (one, two) = (F::ONE, F::from_f64(2.0));
        match (self, order) {
            (Unary::Exp, _) => x.exp(),
            (Unary::Log, 0) => x.ln(),
            (Unary::Log, 1) => one / x,
            (Unary::Log, 2) => -one / (x * x),
            (Unary::Tanh, 0) => x.tanh(),
            (Unary::Tanh, 1) => {
                let t = x.tanh();
                one - t * t
            }
            (Unary::Tanh, 2) => {
                let t = x.tanh();
                -two * t * (one - t * t)
            }
            (Unary::Relu, 0) => x.max(F::ZERO),
            (Unary::Relu, 1) => {
                if x > F::ZERO {
                    one
                } else {
                    F::ZERO
                }
            }
            (Unary::Relu, 2) => F::ZERO,
            (Unary::Sigmoid, 0) => sigmoid(x),
            (Unary::Sigmoid, 1) => {
                let s = sigmoid(x);
                s * (one - s)
            }
            (Unary::Sigmoid, 2) => {
                let s = sigmoid(x);
                s * (one - s) * (one - two * s)
            }
            (Unary::Softplus, 0) => x.max(F::ZERO) + (-x.abs()).exp().ln_1p(),
            (Unary::Softplus, 1) => sigmoid(x),
            (Unary::Softplus, 2) => {
                let s = sigmoid(x);
                s * (one - s)
            }
            (Unary::Gelu, 0) => x * normal_cdf(x),
            (Unary::Gelu, 1) => normal_cdf(x) + x * normal_pdf(x),
            (Unary::Gelu, 2) => normal_pdf(x) * (two - x * x),
            (Unary::Sqrt, 0) => x.sqrt(),
            (Unary::Sqrt, 1) => F::from_f64(0.5) / x.sqrt(),
            (Unary::Sqrt, 2) => F::from_f64(-0.25) / (x * x.sqrt()),
            (Unary::Rsqrt, 0) => one / x.sqrt(),
            (Unary::Rsqrt, 1) => F::from_f64(-0.5) / (x * x.sqrt()),
            (Unary::Rsqrt, 2) => F::from_f64(0.75) / (x * x * x.sqrt()),
            (Unary::Square, 0) => x * x,
            (Unary::Square, 1) => two * x,
            (Unary::Square, 2) => two,
            (Unary::Recip, 0) => one / x,
            (Unary::Recip, 1) => -one / (x * x),
            (Unary::Recip, 2) => two / (x * x * x),
            (_, o) => panic!(
                "{}: derivative of order {o} is not defined in the engine",
                self.name()
            ),
        }
    }
}

impl Unary {
    /// `(u^(order)(x), u^(order + 1)(x))`, sharing the work the two have in common (GELU's normal
    /// CDF and density). Bitwise equal to two calls of [`Unary::eval`].
    ///
    /// # Panics
    /// If `order > 1`.
    #[inline]
    pub fn eval_pair<F: Float>(self, order: u8, x: F) -> (F, F) {
        match (self, order) {
            (Unary::Gelu, 0) => {
                let c = normal_cdf(x);
                (x * c, c + x * normal_pdf(x))
            }
            (Unary::Gelu, 1) => {
                let p = normal_pdf(x);
                (normal_cdf(x) + x * p, p * (F::from_f64(2.0) - x * x))
            }
            _ => (self.eval(order, x), self.eval(order + 1, x)),
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
    with_const_unary!(u, |U| t.map(|x| U.eval(O, x)))
}

fn apply_pair_order<F: Float, const O: u8>(t: &Tensor<F>, u: Unary) -> (Tensor<F>, Tensor<F>) {
    with_const_unary!(u, |U| t.map2(|x| U.eval_pair(O, x)))
}

/// `u^(order)` of every element, in a loop specialised to `(u, order)`.
///
/// # Panics
/// If `order > 2`.
pub fn apply<F: Float>(t: &Tensor<F>, u: Unary, order: u8) -> Tensor<F> {
    match order {
        0 => apply_order::<F, 0>(t, u),
        1 => apply_order::<F, 1>(t, u),
        2 => apply_order::<F, 2>(t, u),
        o => panic!(
            "{}: derivative of order {o} is not defined in the engine",
            u.name()
        ),
    }
}

/// `(u^(order), u^(order + 1))` of every element in one specialised loop ([`Unary::eval_pair`]).
///
/// # Panics
/// If `order > 1`.
pub fn apply_pair<F: Float>(t: &Tensor<F>, u: Unary, order: u8) -> (Tensor<F>, Tensor<F>) {
    match order {
        0 => apply_pair_order::<F, 0>(t, u),
        1 => apply_pair_order::<F, 1>(t, u),
        o => panic!(
            "{}: derivative of order {} is not defined in the engine",
            u.name(),
            o + 1
        ),
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
                for order in 0..2u8 {
                    let fd = (u.eval(order, x + h) - u.eval(order, x - h)) / (2.0 * h);
                    let exact = u.eval(order + 1, x);
                    let err = (fd - exact).abs() / exact.abs().max(1.0);
                    assert!(
                        err < 1e-7,
                        "{} order {} at {x}: fd {fd} vs {exact}",
                        u.name(),
                        order + 1
                    );
                }
            }
        }
    }

    #[test]
    fn softplus_and_sigmoid_are_stable_in_the_tails() {
        assert_eq!(Unary::Softplus.eval(0, 1000.0f64), 1000.0);
        assert!(Unary::Softplus.eval(0, -1000.0f64) >= 0.0);
        assert_eq!(Unary::Sigmoid.eval(0, -1000.0f64), 0.0);
        assert_eq!(Unary::Sigmoid.eval(0, 1000.0f32), 1.0);
    }
}
