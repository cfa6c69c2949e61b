//! Elementwise functions with their first and second derivatives.
//!
//! A unary primitive needs `f` (forward), `f'` (its reverse rule `dx = dy * f'(x)`), and `f''` (the
//! tangent of `f'` when the reverse pass runs over dual numbers, which is what makes Hessian-vector
//! products exact). Keeping all three in one table means no rule can drift from its function.

use crate::Float;

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

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Unary; 11] = [
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

    #[test]
    fn derivatives_match_central_differences() {
        // f' and f'' checked against central differences of f and f' in f64 at points away from kinks.
        let h = 1e-6;
        for u in ALL {
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
