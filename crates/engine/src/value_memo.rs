//! Sharing the value half of dual passes that differ only in their tangents.
//!
//! A dual pass computes every primal value alongside the tangents. Passes over the same parameters
//! and data with different tangent blocks (MAGIC's passes of one step) compute the same values
//! again and again. A [`ValueMemo`] records the values of the first pass run under it and hands
//! them out, in order, to the later ones, so that only the tangents are recomputed. A handed-out
//! value is bitwise the one recomputation would give, so no result changes.
//!
//! Each recorded value carries a key, a `MemoKey`: the operation as a `MemoTag` (compared as
//! an enum, so two operations can never share a tag) and a hash of its input shapes. A pass whose
//! sequence of operations departs from the recorded one gets a mismatching key, and from there on
//! the memo computes everything itself (correct, just not faster).
//!
//! The memo is installed for the current thread by [`ValueMemo::run`], which saves and restores
//! the previous one: a pass that rayon runs on this thread while another one waits (work
//! stealing inside a kernel) installs its own memo and puts ours back before returning.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::kernels::{Order, Unary};
use crate::{Float, Tensor};

thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Any>>> = const { RefCell::new(None) };
}

/// Values recorded by the first dual pass run under the memo, replayed to the later ones.
///
/// Contract: every pass run under one memo evaluates the same function (same model, parameters
/// and data, so the same values); only the tangent directions may differ.
pub struct ValueMemo<F: Float> {
    values: RefCell<Vec<(MemoKey, Tensor<F>)>>,
    cursor: Cell<usize>,
    recording: Cell<bool>,
    broken: Cell<bool>,
}

/// Restores the previously installed memo when a pass ends, also on unwinding.
struct Restore(Option<Rc<dyn Any>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

impl<F: Float> ValueMemo<F> {
    /// An empty memo: the first pass run under it records.
    pub fn new() -> Rc<Self> {
        Rc::new(ValueMemo {
            values: RefCell::new(Vec::new()),
            cursor: Cell::new(0),
            recording: Cell::new(true),
            broken: Cell::new(false),
        })
    }

    /// Runs `pass` with this memo installed on the current thread: the first run records the
    /// values of its dual operations, later runs receive them instead of recomputing.
    pub fn run<R>(self: &Rc<Self>, pass: impl FnOnce() -> R) -> R {
        let me: Rc<dyn Any> = self.clone();
        let _restore = Restore(CURRENT.with(|c| c.replace(Some(me))));
        self.cursor.set(0);
        let out = pass();
        self.recording.set(false);
        out
    }

    /// Whether a pass departed from the recorded sequence (later passes then recompute).
    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    fn value(&self, key: MemoKey, compute: impl FnOnce() -> Tensor<F>) -> Tensor<F> {
        let i = self.cursor.get();
        self.cursor.set(i + 1);
        if self.broken.get() {
            return compute();
        }
        if self.recording.get() {
            let v = compute();
            self.values.borrow_mut().push((key, v.clone()));
            return v;
        }
        let hit = self
            .values
            .borrow()
            .get(i)
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.clone());
        hit.unwrap_or_else(|| {
            self.broken.set(true);
            compute()
        })
    }
}

/// The operation whose value a dual pass records: one variant per memoised operation of
/// [`crate::Dual`], carrying what tells two uses of it apart (transpose flags; the function,
/// derivative and role of a unary map). A new operation is a new variant, so it cannot collide
/// with another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemoTag {
    /// `a + b`.
    Add,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `c * a`.
    Scale,
    /// `op(a) @ op(b)` with these transpose flags.
    Matmul { ta: bool, tb: bool },
    /// `sum_to(a, shape)`.
    SumTo,
    /// `broadcast_to(a, shape)`.
    BroadcastTo,
    /// Row standardisation of `a` ([`crate::kernels::norm::standardize`]).
    Standardize,
    /// Its reverse rule at `a` for a cotangent.
    StandardizeVjp,
    /// Row softmax of `a` ([`crate::kernels::softmax`]).
    Softmax,
    /// Its reverse rule at `a` for a cotangent.
    SoftmaxVjp,
    /// `u^(order)(a)`, a value of a unary map in the role `part`.
    Unary {
        u: Unary,
        order: Order,
        part: UnaryPart,
    },
}

/// The roles a unary map's values play in a dual pass (the memo keeps each as its own entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryPart {
    /// The value of a dual without tangent.
    Value,
    /// The value of a dual with a tangent, computed together with its slope.
    PairValue,
    /// The slope `u^(order + 1)` that the tangent of a [`UnaryPart::PairValue`] used.
    PairSlope,
    /// `u''` for the tangent of a reverse rule that reuses the forward slope.
    Curvature,
}

/// A recorded value's key: the operation and a hash of its inputs' shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemoKey {
    tag: MemoTag,
    shapes: u64,
}

/// The key of operation `tag` on inputs of `shapes` (the shapes hashed by FNV-1a).
pub(crate) fn key(tag: MemoTag, shapes: &[&[usize]]) -> MemoKey {
    let h = shapes
        .iter()
        .flat_map(|s| s.iter().chain(std::iter::once(&usize::MAX)))
        .fold(crate::hash::Fnv1a::new(), |h, &d| h.word(d as u64))
        .finish();
    MemoKey { tag, shapes: h }
}

/// The value `compute` gives, or the one recorded at this point by an earlier pass under the
/// installed memo (none installed: `compute()`).
pub(crate) fn memo_value<F: Float>(key: MemoKey, compute: impl FnOnce() -> Tensor<F>) -> Tensor<F> {
    let memo = CURRENT.with(|c| c.borrow().clone());
    match memo
        .as_deref()
        .and_then(|m| m.downcast_ref::<ValueMemo<F>>())
    {
        Some(m) => m.value(key, compute),
        None => compute(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Carrier, Dual, Graph};

    /// `(grad, HVPs)` of `sum(gelu(x W) * (x W))` in `W` along the tangents `dirs`, by one dual
    /// reverse pass.
    fn hvp_pass(x: &Tensor<f64>, w: &Tensor<f64>, dirs: &Tensor<f64>) -> (Vec<f64>, Vec<f64>) {
        let g = Graph::<f64, Dual<f64>>::new();
        let xv = g.input(Dual::constant(x.clone()));
        let wv = g.param(Dual::new(w.clone(), dirs.clone()));
        let h = g.matmul(xv, wv);
        let a = g.gelu(h);
        let y = g.mul(a, h);
        let out = g.sum_all(y);
        let grads = g.backward(out, None);
        let d = grads.get(wv).unwrap();
        (
            d.value.data().to_vec(),
            d.tangent.as_ref().unwrap().data().to_vec(),
        )
    }

    fn data(n: usize, seed: f64) -> Vec<f64> {
        (0..n).map(|i| (i as f64 * 0.37 + seed).sin()).collect()
    }

    #[test]
    fn replayed_values_give_the_same_bits_as_recomputed_ones() {
        let x = Tensor::from_vec(data(12, 0.1), &[4, 3]);
        let w = Tensor::from_vec(data(6, 0.7), &[3, 2]);
        let tangents = |seed| Tensor::from_vec(data(12, seed), &[2, 3, 2]);
        let memo = ValueMemo::<f64>::new();
        for seed in [1.0, 2.0, 3.0] {
            let plain = hvp_pass(&x, &w, &tangents(seed));
            let memoised = memo.run(|| hvp_pass(&x, &w, &tangents(seed)));
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&plain.0), bits(&memoised.0));
            assert_eq!(bits(&plain.1), bits(&memoised.1));
        }
        assert!(
            !memo.is_broken(),
            "the same computation replays the recording"
        );
        assert!(
            !memo.values.borrow().is_empty(),
            "the dual operations recorded their values"
        );
        assert_eq!(memo.cursor.get(), memo.values.borrow().len());
    }

    #[test]
    fn another_computation_breaks_the_memo_and_is_still_computed_exactly() {
        let x = Tensor::from_vec(data(12, 0.1), &[4, 3]);
        let w = Tensor::from_vec(data(6, 0.7), &[3, 2]);
        let dirs = Tensor::from_vec(data(12, 1.0), &[2, 3, 2]);
        let memo = ValueMemo::<f64>::new();
        memo.run(|| hvp_pass(&x, &w, &dirs));
        // Other shapes: keys mismatch, and the values are computed, not replayed.
        let x2 = Tensor::from_vec(data(15, 0.2), &[5, 3]);
        let got = memo.run(|| hvp_pass(&x2, &w, &dirs));
        assert!(memo.is_broken());
        assert_eq!(got, hvp_pass(&x2, &w, &dirs));
        // Outside `run`, nothing is memoised.
        assert_eq!(hvp_pass(&x, &w, &dirs), hvp_pass(&x, &w, &dirs));
    }
}
