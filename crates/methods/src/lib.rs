//! # attrib-methods
//!
//! Attribution methods behind one trait ([`Method`]): each file (or folder) of [`estimators`] is one
//! method, and [`registry::REGISTRY`] names them. Methods read a trained [`run::Run`] and produce a
//! score matrix `tau[target, train]` with `tau_i = d f / d w_i` (MATH.md), saved as `.npy` + a JSON
//! sidecar ([`Scores`]). Methods that learn from retrainings (datamodels, TMC-Shapley) use
//! `attrib-run`'s one retraining loop. Measuring attributions (LDS, retraining score, noisy labels)
//! is `attrib-eval`'s.
//!
//! | module | holds |
//! |---|---|
//! | [`method`] | the [`Method`] trait, [`Registration`], the runners that time and describe scores |
//! | [`registry`] | every method by name, [`build`] |
//! | [`options`] | `key=value` options, [`options::Auto`] |
//! | [`estimators`] | one file or folder per method |
//! | [`support`] | what estimators share: training-set chunks, curvature and damping, features |
//! | [`linalg`], [`solvers`] | dense linear algebra; CG, LiSSA, Lanczos over matrix-free operators |
//! | [`groups`] | groupings of the training set (MATH.md E5) |
//! | [`target_blocks`] | every per-target method in shards: fixed blocks of targets kept in the run's store |
//!
//! Sibling crates, in the order data flows: `attrib-data` (readers, splits, the atomic write),
//! `attrib-engine` (tensors, differentiation, randomness, the hash), `attrib-nn` (models, optimizers,
//! trainer), `attrib-run` (the run directory, retraining, the artefact store), `attrib-methods`
//! (attribution methods), `attrib-eval` (measurements against retraining), `attrib-cli` (the binary).

pub mod apps;
pub mod error;
pub mod estimators;
pub mod groups;
pub mod linalg;
pub mod method;
pub mod options;
pub mod registry;
pub mod scores;
pub mod solvers;
pub mod support;
pub mod target_blocks;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{MethodError, Result};
pub use groups::Grouping;
pub use method::{
    attribute, attribute_groups, attribute_in_blocks, attribute_to_file, Method, Registration,
    RowSink,
};
pub use options::Options;
pub use registry::{build, REGISTRY};
pub use scores::{ScoreFile, ScoreMeta, ScoreWriter, Scores};
