//! The tape: a graph of values built by running a model, and the reverse sweep over it.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::carrier::Carrier;
use crate::ops::layers::LinearTap;
use crate::{Float, Tensor};

/// A handle to a value recorded in a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub(crate) usize);

impl Var {
    /// Position of the node on the tape.
    pub fn index(self) -> usize {
        self.0
    }
}

/// The reverse rule (vector-Jacobian product) of one primitive, written against [`Carrier`] so the
/// same rule differentiates plain values and dual numbers.
pub trait Rule<F: Float, C: Carrier<F>> {
    /// Name of the primitive, for error messages.
    fn name(&self) -> &'static str;
    /// Cotangents of the inputs given the cotangent `grad` of the output. `needs[i]` is false when
    /// input `i` does not lead to a tracked leaf; its entry may then be `None`.
    fn vjp(&self, inputs: &[&C], output: &C, grad: &C, needs: &[bool]) -> Vec<Option<C>>;
    /// Elements the rule holds for its reverse sweep besides the tape's values (a unary map's
    /// saved slope), for [`Graph::stored_elements`].
    fn held_elements(&self) -> usize {
        0
    }
}

struct Node<F: Float, C: Carrier<F>> {
    value: C,
    parents: Vec<Var>,
    rule: Option<Box<dyn Rule<F, C>>>,
    tracked: bool,
}

/// A tape of operations on carriers `C` (plain [`Tensor`]s by default, or [`crate::Dual`]s).
///
/// Operations are methods (`g.matmul(a, b)`, `g.gelu(x)`, ...) that compute the value at once and
/// record the reverse rule when an input is tracked. [`Graph::backward`] then sweeps the tape in
/// reverse order, accumulating cotangents in a fixed order, so gradients are bitwise reproducible.
pub struct Graph<F: Float, C: Carrier<F> = Tensor<F>> {
    nodes: RefCell<Vec<Node<F, C>>>,
    /// `Some` when linear layers are tapped ([`Graph::with_linear_taps`]).
    taps: RefCell<Option<Vec<LinearTap>>>,
    _f: PhantomData<F>,
}

impl<F: Float, C: Carrier<F>> Default for Graph<F, C> {
    fn default() -> Self {
        Self::new()
    }
}

/// Cotangents of the tracked leaves after a reverse sweep.
pub struct Gradients<C> {
    grads: Vec<Option<C>>,
}

impl<C> Gradients<C> {
    /// The cotangent of `v`, or `None` when `v` was not tracked or does not reach the output.
    pub fn get(&self, v: Var) -> Option<&C> {
        self.grads.get(v.0).and_then(|g| g.as_ref())
    }

    /// Moves the cotangent of `v` out.
    pub fn take(&mut self, v: Var) -> Option<C> {
        self.grads.get_mut(v.0).and_then(|g| g.take())
    }
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// An empty tape.
    pub fn new() -> Self {
        Graph {
            nodes: RefCell::new(Vec::new()),
            taps: RefCell::new(None),
            _f: PhantomData,
        }
    }

    /// An empty tape that records every linear map ([`Graph::linear`], and the patch product of
    /// [`Graph::conv2d`]) as a [`LinearTap`]: its input, and a zero parameter added to its output
    /// whose cotangent is the cotangent of the layer's output (K-FAC's factors need both). Values
    /// and gradients are those of an untapped graph.
    pub fn with_linear_taps() -> Self {
        let g = Self::new();
        *g.taps.borrow_mut() = Some(Vec::new());
        g
    }

    /// The linear maps recorded so far, in forward order (empty unless built by
    /// [`Graph::with_linear_taps`]).
    pub fn linear_taps(&self) -> Vec<LinearTap> {
        self.taps.borrow().clone().unwrap_or_default()
    }

    /// Records a tap when taps are on; returns `y + probe` (or `y` when they are off).
    pub(crate) fn tap_linear(&self, input: Var, y: Var, weight: Var, bias: Option<Var>) -> Var {
        if self.taps.borrow().is_none() {
            return y;
        }
        let probe = self.param(C::constant(Tensor::zeros(&self.shape(y))));
        let out = self.add(y, probe);
        if let Some(t) = self.taps.borrow_mut().as_mut() {
            t.push(LinearTap {
                input,
                probe,
                weight,
                bias,
            });
        }
        out
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// `true` when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements held by the tape's values (with a dual tape's tangents,
    /// [`Carrier::held_elements`]), each shared value buffer counted once (a reshape shares its
    /// input's buffer), and by its reverse rules ([`Rule::held_elements`]). Memory estimates read it off a plain pass over a batch of one or two
    /// examples to size passes over large batches (`nn::memory::tape_floats`).
    pub fn stored_elements(&self) -> usize {
        let nodes = self.nodes.borrow();
        let mut seen = std::collections::HashSet::new();
        nodes
            .iter()
            .map(|n| {
                let rule = n.rule.as_ref().map_or(0, |r| r.held_elements());
                match seen.insert(n.value.primal().data().as_ptr() as usize) {
                    true => n.value.held_elements() + rule,
                    false => rule,
                }
            })
            .sum()
    }

    /// Whether the graph records its linear maps ([`Graph::with_linear_taps`]).
    pub(crate) fn taps_linear(&self) -> bool {
        self.taps.borrow().is_some()
    }

    /// Whether `v` leads to a differentiated leaf (its reverse rule will run).
    pub fn is_tracked(&self, v: Var) -> bool {
        self.nodes.borrow()[v.0].tracked
    }

    /// A leaf whose cotangent [`Graph::backward`] computes (a parameter).
    pub fn param(&self, value: C) -> Var {
        self.push_node(value, Vec::new(), None, true)
    }

    /// A leaf that is not differentiated (data). Dual tangents still propagate forward.
    pub fn input(&self, value: C) -> Var {
        self.push_node(value, Vec::new(), None, false)
    }

    /// A constant tensor (zero tangent, not differentiated).
    pub fn constant(&self, t: Tensor<F>) -> Var {
        self.input(C::constant(t))
    }

    /// The value of a node (a cheap clone).
    pub fn value(&self, v: Var) -> C {
        self.nodes.borrow()[v.0].value.clone()
    }

    /// The primal tensor of a node.
    pub fn tensor(&self, v: Var) -> Tensor<F> {
        self.nodes.borrow()[v.0].value.primal().clone()
    }

    /// Shape of a node's value.
    pub fn shape(&self, v: Var) -> Vec<usize> {
        self.nodes.borrow()[v.0].value.shape().to_vec()
    }

    /// Records the result of a primitive: `value` computed from `parents`, differentiated by `rule`.
    pub fn push(&self, value: C, parents: &[Var], rule: impl Rule<F, C> + 'static) -> Var {
        let tracked = {
            let nodes = self.nodes.borrow();
            parents.iter().any(|p| nodes[p.0].tracked)
        };
        if tracked {
            self.push_node(value, parents.to_vec(), Some(Box::new(rule)), true)
        } else {
            self.push_node(value, Vec::new(), None, false)
        }
    }

    fn push_node(
        &self,
        value: C,
        parents: Vec<Var>,
        rule: Option<Box<dyn Rule<F, C>>>,
        tracked: bool,
    ) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            value,
            parents,
            rule,
            tracked,
        });
        Var(nodes.len() - 1)
    }

    /// Applies `f` to the values of `vars`.
    pub fn with_values<R>(&self, vars: &[Var], f: impl FnOnce(&[&C]) -> R) -> R {
        let nodes = self.nodes.borrow();
        let vals: Vec<&C> = vars.iter().map(|v| &nodes[v.0].value).collect();
        f(&vals)
    }

    /// Reverse sweep from `output` with cotangent `seed` (ones of the output's shape when `None`).
    ///
    /// Cotangents reaching a node from several consumers are summed in decreasing consumer order, a
    /// fixed order, so the result does not depend on threads.
    pub fn backward(&self, output: Var, seed: Option<C>) -> Gradients<C> {
        let nodes = self.nodes.borrow();
        let mut grads: Vec<Option<C>> = (0..nodes.len()).map(|_| None).collect();
        let seed = seed.unwrap_or_else(|| C::constant(Tensor::ones(nodes[output.0].value.shape())));
        assert_eq!(
            seed.shape(),
            nodes[output.0].value.shape(),
            "backward seed shape must match the output"
        );
        grads[output.0] = Some(seed);
        for i in (0..=output.0).rev() {
            let node = &nodes[i];
            let Some(rule) = node.rule.as_ref() else {
                continue;
            };
            let Some(g) = grads[i].take() else { continue };
            let inputs: Vec<&C> = node.parents.iter().map(|p| &nodes[p.0].value).collect();
            let needs: Vec<bool> = node.parents.iter().map(|p| nodes[p.0].tracked).collect();
            let input_grads = rule.vjp(&inputs, &node.value, &g, &needs);
            for ((p, ig), need) in node.parents.iter().zip(input_grads).zip(needs) {
                let (Some(ig), true) = (ig, need) else {
                    continue;
                };
                debug_assert_eq!(
                    ig.shape(),
                    nodes[p.0].value.shape(),
                    "{}: cotangent shape",
                    rule.name()
                );
                grads[p.0] = Some(match grads[p.0].take() {
                    Some(acc) => acc.add(&ig),
                    None => ig,
                });
            }
        }
        Gradients { grads }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_elements_count_shared_buffers_once() {
        let g = Graph::<f64>::new();
        let x = g.param(Tensor::from_vec(vec![1.0; 6], &[2, 3]));
        let r = g.reshape(x, &[3, 2]); // shares x's buffer
        let _y = g.add(r, r); // a new buffer of 6
        assert_eq!(g.stored_elements(), 12);
    }
}
