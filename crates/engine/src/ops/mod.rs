//! Operations on a [`crate::Graph`].
//!
//! Primitives (each file: forward via the carrier, reverse rule beside it, derivative in the doc):
//! [`binary`], [`unary`], [`matmul`], [`reduce`], [`shape`], [`conv`] (im2col).
//! Composites get no rule of their own; their files explain the numerically stable form:
//! [`softmax`], [`loss`], [`norm`], [`pool`], [`attention`], [`layers`].

pub mod attention;
pub mod binary;
pub mod conv;
pub mod layers;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod unary;
