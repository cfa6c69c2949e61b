//! Data movement: reshape, permute, concat, narrow, index_select. All are linear; each reverse rule
//! is the adjoint movement (reshape back, inverse permutation, slices, zero padding, scatter-add).

use crate::carrier::Carrier;
use crate::error::{EngineError, Result};
use crate::graph::{Graph, Rule, Var};
use crate::tensor::numel;
use crate::Float;

struct ReshapeRule(Vec<usize>);

impl<F: Float, C: Carrier<F>> Rule<F, C> for ReshapeRule {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(g.reshape(&self.0))]
    }
}

struct PermuteRule(Vec<usize>);

impl<F: Float, C: Carrier<F>> Rule<F, C> for PermuteRule {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        let mut inverse = vec![0; self.0.len()];
        for (i, &p) in self.0.iter().enumerate() {
            inverse[p] = i;
        }
        vec![Some(g.permute(&inverse))]
    }
}

struct ConcatRule {
    axis: usize,
    lens: Vec<usize>,
}

impl<F: Float, C: Carrier<F>> Rule<F, C> for ConcatRule {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, needs: &[bool]) -> Vec<Option<C>> {
        let mut start = 0;
        self.lens
            .iter()
            .zip(needs)
            .map(|(&len, &need)| {
                let part = need.then(|| g.narrow(self.axis, start, len));
                start += len;
                part
            })
            .collect()
    }
}

struct NarrowRule {
    axis: usize,
    start: usize,
    dim: usize,
}

impl<F: Float, C: Carrier<F>> Rule<F, C> for NarrowRule {
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(g.pad_narrow(self.axis, self.start, self.dim))]
    }
}

struct IndexSelectRule {
    axis: usize,
    idx: Vec<usize>,
    dim: usize,
}

impl<F: Float, C: Carrier<F>> Rule<F, C> for IndexSelectRule {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn vjp(&self, _: &[&C], _: &C, g: &C, _: &[bool]) -> Vec<Option<C>> {
        vec![Some(g.index_add(self.axis, &self.idx, self.dim))]
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// Same elements under a new shape.
    ///
    /// # Panics
    /// If the element counts differ ([`Graph::try_reshape`] returns the error instead).
    pub fn reshape(&self, x: Var, shape: &[usize]) -> Var {
        self.try_reshape(x, shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Same elements under a new shape, checking the element count first.
    ///
    /// # Errors
    /// [`EngineError::ShapeMismatch`] when `shape` holds another number of elements.
    pub fn try_reshape(&self, x: Var, shape: &[usize]) -> Result<Var> {
        let in_shape = self.shape(x);
        if in_shape == shape {
            return Ok(x);
        }
        let (have, want) = (numel(&in_shape), numel(shape));
        if have != want {
            return Err(EngineError::ShapeMismatch {
                op: "reshape",
                lhs: in_shape,
                rhs: shape.to_vec(),
                reason: format!("{have} elements cannot take a shape of {want}"),
            });
        }
        let value = self.with_values(&[x], |v| v[0].reshape(shape));
        Ok(self.push(value, &[x], ReshapeRule(in_shape)))
    }

    /// Reorders dimensions: output dimension `i` is input dimension `perm[i]`.
    pub fn permute(&self, x: Var, perm: &[usize]) -> Var {
        let value = self.with_values(&[x], |v| v[0].permute(perm));
        self.push(value, &[x], PermuteRule(perm.to_vec()))
    }

    /// Swaps the last two dimensions.
    pub fn transpose(&self, x: Var) -> Var {
        let nd = self.shape(x).len();
        let mut perm: Vec<usize> = (0..nd).collect();
        perm.swap(nd - 2, nd - 1);
        self.permute(x, &perm)
    }

    /// Joins along `axis`.
    pub fn concat(&self, parts: &[Var], axis: usize) -> Var {
        let lens = parts.iter().map(|&p| self.shape(p)[axis]).collect();
        let value = self.with_values(parts, |v| C::concat(v, axis));
        self.push(value, parts, ConcatRule { axis, lens })
    }

    /// Elements `start..start + len` along `axis`.
    pub fn narrow(&self, x: Var, axis: usize, start: usize, len: usize) -> Var {
        let dim = self.shape(x)[axis];
        let value = self.with_values(&[x], |v| v[0].narrow(axis, start, len));
        self.push(value, &[x], NarrowRule { axis, start, dim })
    }

    /// Gathers entries `idx` along `axis` (an embedding lookup for `axis = 0`).
    pub fn index_select(&self, x: Var, axis: usize, idx: &[usize]) -> Var {
        let dim = self.shape(x)[axis];
        let value = self.with_values(&[x], |v| v[0].index_select(axis, idx));
        self.push(
            value,
            &[x],
            IndexSelectRule {
                axis,
                idx: idx.to_vec(),
                dim,
            },
        )
    }
}
