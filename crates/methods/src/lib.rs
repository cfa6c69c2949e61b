//! # attrib-methods
//!
//! Attribution methods behind one trait ([`Method`]): each file of [`estimators`] is one method, and
//! [`method::REGISTRY`] names them. Methods read a trained [`run::Run`] and produce a score matrix
//! `tau[target, train]` with `tau_i = d f / d w_i` (MATH.md), saved as `.npy` + a JSON sidecar
//! ([`Scores`]). Methods that learn from retrainings (datamodels, TMC-Shapley) use `attrib-run`'s
//! one retraining loop; [`groups`] partitions the training set for group attribution (MATH.md
//! E5). Measuring attributions (LDS, retraining score, noisy labels) is `attrib-eval`'s.
//!
//! Sibling crates, in the order data flows: `attrib-data` (readers, splits, the atomic write), `attrib-engine` (tensors,
//! differentiation, randomness, the hash), `attrib-nn` (models, optimizers, trainer), `attrib-run`
//! (the run directory, retraining, the artefact store), `attrib-methods` (attribution methods),
//! `attrib-eval` (measurements against retraining), `attrib-cli` (the binary).

pub mod error;
pub mod estimators;
pub mod groups;
pub mod linalg;
pub mod method;
pub mod options;
pub mod scores;
pub mod solvers;

pub use error::{MethodError, Result};
pub use groups::Grouping;
pub use method::{attribute, attribute_groups, build, Method, Registration, REGISTRY};
pub use options::Options;
pub use scores::{ScoreMeta, Scores};
