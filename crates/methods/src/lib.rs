//! # attrib-methods
//!
//! Attribution methods behind one trait ([`Method`]): each file (or folder) of [`estimators`] is one
//! method, and [`registry::REGISTRY`] names them. Methods read a trained [`Run`] and produce a score
//! matrix `tau[target, train]` with `tau_i = d f / d w_i` (MATH.md), saved as `.npy` + a JSON
//! sidecar ([`Scores`]).
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
//! | [`groundtruth`] | the subset-retraining store (MATH.md E6), which `datamodels` learns from |
//!
//! Sibling crates: `attrib-engine`, `attrib-nn`, `attrib-data` below; `attrib-eval` (ground truth,
//! LDS) and `attrib-cli` above.

pub mod error;
pub mod estimators;
pub mod groundtruth;
pub mod groups;
pub mod linalg;
pub mod method;
pub mod options;
pub mod progress;
pub mod registry;
pub mod run;
pub mod scores;
pub mod solvers;
pub mod support;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{MethodError, Result};
pub use groups::Grouping;
pub use method::{attribute, attribute_groups, Method, Registration};
pub use options::Options;
pub use progress::Progress;
pub use registry::{build, REGISTRY};
pub use run::{Checkpoint, Run, Split, Targets};
pub use scores::{ScoreMeta, Scores};
