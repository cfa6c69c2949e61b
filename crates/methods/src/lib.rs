//! # attrib-methods
//!
//! Attribution methods behind one trait ([`Method`]): each file of [`estimators`] is one method, and
//! [`method::REGISTRY`] names them. Methods read a trained [`Run`] and produce a score matrix
//! `tau[target, train]` with `tau_i = d f / d w_i` (MATH.md), saved as `.npy` + a JSON sidecar
//! ([`Scores`]). The subset-retraining store ([`groundtruth`], MATH.md E6) lives here too, so that
//! methods can learn from retrainings; `attrib-eval` re-exports it. [`groups`] partitions the
//! training set for group attribution (MATH.md E5) and evaluates group rankings.
//!
//! Sibling crates: `attrib-engine`, `attrib-nn`, `attrib-data`, `attrib-eval` (ground truth, LDS),
//! `attrib-cli`.

pub mod apps;
pub mod error;
pub mod estimators;
pub mod groundtruth;
pub mod groups;
pub mod linalg;
pub mod method;
pub mod options;
pub mod progress;
pub mod run;
pub mod scores;
pub mod solvers;

pub use error::{MethodError, Result};
pub use groups::Grouping;
pub use method::{attribute, attribute_groups, build, Method, Registration, REGISTRY};
pub use options::Options;
pub use progress::Progress;
pub use run::{Checkpoint, Run, Split, Targets};
pub use scores::{ScoreMeta, Scores};
