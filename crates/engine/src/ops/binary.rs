//! Broadcasting `+ - * /`.
//!
//! Reverse rules, with `sum_to` undoing the broadcast:
//! `d(a+b) = (g, g)`, `d(a-b) = (g, -g)`, `d(a*b) = (g b, g a)`, `d(a/b) = (g / b, -g (a/b) / b)`.

use crate::carrier::Carrier;
use crate::error::{broadcast_result, Result};
use crate::graph::{Graph, Rule, Var};
use crate::Float;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Add,
    Sub,
    Mul,
    Div,
}

struct BinaryRule(Kind);

impl<F: Float, C: Carrier<F>> Rule<F, C> for BinaryRule {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Add => "add",
            Kind::Sub => "sub",
            Kind::Mul => "mul",
            Kind::Div => "div",
        }
    }
    fn vjp(&self, x: &[&C], out: &C, g: &C, needs: &[bool]) -> Vec<Option<C>> {
        let (a, b) = (x[0], x[1]);
        let ga = needs[0].then(|| {
            match self.0 {
                Kind::Add | Kind::Sub => g.clone(),
                Kind::Mul => g.mul(b),
                Kind::Div => g.div(b),
            }
            .sum_to(a.shape())
        });
        let gb = needs[1].then(|| {
            match self.0 {
                Kind::Add => g.clone(),
                Kind::Sub => g.scale(-F::ONE),
                Kind::Mul => g.mul(a),
                Kind::Div => g.mul(out).div(b).scale(-F::ONE),
            }
            .sum_to(b.shape())
        });
        vec![ga, gb]
    }
}

/// `c * x` for a constant `c`; reverse rule `c g`.
struct ScaleRule<F>(F);

impl<F: Float, C: Carrier<F>> Rule<F, C> for ScaleRule<F> {
    fn name(&self) -> &'static str {
        "scale"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(g.scale(self.0))]
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    fn binary(&self, kind: Kind, a: Var, b: Var) -> Var {
        self.try_binary(kind, a, b)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_binary(&self, kind: Kind, a: Var, b: Var) -> Result<Var> {
        let name = <BinaryRule as Rule<F, C>>::name(&BinaryRule(kind));
        broadcast_result(name, &self.shape(a), &self.shape(b))?;
        let value = self.with_values(&[a, b], |v| match kind {
            Kind::Add => v[0].add(v[1]),
            Kind::Sub => v[0].sub(v[1]),
            Kind::Mul => v[0].mul(v[1]),
            Kind::Div => v[0].div(v[1]),
        });
        Ok(self.push(value, &[a, b], BinaryRule(kind)))
    }

    /// `a + b` with broadcasting.
    ///
    /// # Panics
    /// If the shapes do not broadcast ([`Graph::try_add`] returns the error instead).
    pub fn add(&self, a: Var, b: Var) -> Var {
        self.binary(Kind::Add, a, b)
    }

    /// `a - b` with broadcasting.
    ///
    /// # Panics
    /// If the shapes do not broadcast ([`Graph::try_sub`] returns the error instead).
    pub fn sub(&self, a: Var, b: Var) -> Var {
        self.binary(Kind::Sub, a, b)
    }

    /// `a * b` elementwise with broadcasting.
    ///
    /// # Panics
    /// If the shapes do not broadcast ([`Graph::try_mul`] returns the error instead).
    pub fn mul(&self, a: Var, b: Var) -> Var {
        self.binary(Kind::Mul, a, b)
    }

    /// `a / b` elementwise with broadcasting.
    ///
    /// # Panics
    /// If the shapes do not broadcast ([`Graph::try_div`] returns the error instead).
    pub fn div(&self, a: Var, b: Var) -> Var {
        self.binary(Kind::Div, a, b)
    }

    /// `a + b` with broadcasting.
    ///
    /// # Errors
    /// [`crate::EngineError::ShapeMismatch`] when the shapes do not broadcast.
    pub fn try_add(&self, a: Var, b: Var) -> Result<Var> {
        self.try_binary(Kind::Add, a, b)
    }

    /// `a - b` with broadcasting.
    ///
    /// # Errors
    /// [`crate::EngineError::ShapeMismatch`] when the shapes do not broadcast.
    pub fn try_sub(&self, a: Var, b: Var) -> Result<Var> {
        self.try_binary(Kind::Sub, a, b)
    }

    /// `a * b` elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::EngineError::ShapeMismatch`] when the shapes do not broadcast.
    pub fn try_mul(&self, a: Var, b: Var) -> Result<Var> {
        self.try_binary(Kind::Mul, a, b)
    }

    /// `a / b` elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::EngineError::ShapeMismatch`] when the shapes do not broadcast.
    pub fn try_div(&self, a: Var, b: Var) -> Result<Var> {
        self.try_binary(Kind::Div, a, b)
    }

    /// `c * x`.
    pub fn scale(&self, x: Var, c: F) -> Var {
        let value = self.with_values(&[x], |v| v[0].scale(c));
        self.push(value, &[x], ScaleRule(c))
    }

    /// `-x`.
    pub fn neg(&self, x: Var) -> Var {
        self.scale(x, -F::ONE)
    }

    /// `x + c` for a constant scalar `c`.
    pub fn add_scalar(&self, x: Var, c: F) -> Var {
        let c = self.constant(crate::Tensor::scalar(c));
        self.add(x, c)
    }
}
