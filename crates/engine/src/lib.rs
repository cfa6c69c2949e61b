//! # attrib-engine
//!
//! Dense tensors and a small deterministic differentiation engine with three exact modes:
//! reverse mode (gradients), forward mode (Jacobian-vector products along a block of tangents), and
//! Hessian-vector products by forward-over-reverse. Each primitive is written once against the
//! [`Carrier`] trait; running the same tape over [`Tensor`] or [`Dual`] selects the mode.
//!
//! ```
//! use attrib_engine::{Dual, Graph, Tensor};
//! // f(x) = sum(tanh(x)^2): gradient and a Hessian-vector product from one dual reverse pass.
//! let x = Tensor::<f64>::from_vec(vec![0.5, -1.0], &[2]);
//! let v = Tensor::<f64>::from_vec(vec![1.0, 0.0], &[2]);
//! let g = Graph::<f64, Dual<f64>>::new();
//! let xv = g.param(Dual::with_tangent(x, &v));
//! let t = g.tanh(xv);
//! let s = g.square(t);
//! let y = g.sum_all(s);
//! let grads = g.backward(y, None);
//! let d = grads.get(xv).unwrap();
//! let (t0, t1) = (0.5f64.tanh(), (-1.0f64).tanh());
//! assert!((d.value.data()[0] - 2.0 * t0 * (1.0 - t0 * t0)).abs() < 1e-12);
//! assert!((d.value.data()[1] - 2.0 * t1 * (1.0 - t1 * t1)).abs() < 1e-12);
//! // d2/dx0^2 = 2 (1 - t^2)(1 - 3 t^2)
//! let hv0 = d.tangent.as_ref().unwrap().data()[0];
//! assert!((hv0 - 2.0 * (1.0 - t0 * t0) * (1.0 - 3.0 * t0 * t0)).abs() < 1e-12);
//! ```
//!
//! Determinism: every kernel produces each output element by a fixed sequence of operations, and
//! large matrix products are split into panels chosen from the shape alone, so results are bitwise
//! identical for any number of threads.
//!
//! Shape errors at the public operations are typed ([`EngineError`], from the `try_` ops of
//! [`Graph`]); each unary function's three derivatives live in one table ([`Unary`]).
//!
//! Sibling crates, in the order data flows: `attrib-data` (readers, splits, the atomic write),
//! `attrib-engine` (tensors, differentiation, randomness, the hash), `attrib-nn` (models,
//! optimizers, trainer), `attrib-run` (the run directory, retraining, the artefact store),
//! `attrib-methods` (attribution methods), `attrib-eval` (measurements against retraining),
//! `attrib-cli` (the binary).

mod buffer;
pub mod carrier;
pub mod check;
pub mod dual;
pub mod error;
pub mod float;
pub mod graph;
pub mod hash;
pub mod kernels;
pub mod ops;
pub mod rng;
pub mod tensor;
pub mod value_memo;

pub use carrier::Carrier;
pub use dual::Dual;
pub use error::EngineError;
pub use float::Float;
pub use graph::{Gradients, Graph, Rule, Var};
pub use kernels::{Conv2dGeometry, Order, Unary};
pub use ops::attention::AttentionParams;
pub use ops::layers::LinearTap;
pub use rng::Rng;
pub use tensor::Tensor;
pub use value_memo::ValueMemo;

#[cfg(test)]
mod derivative_tests;
