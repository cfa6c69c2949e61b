//! # attrib-eval
//!
//! Ground truth for attribution (MATH.md E6): subset retraining cached on disk
//! ([`groundtruth::compute`], owned by `attrib-methods` and re-exported here), brute-force leave-one-out ([`loo::loo`]), and the linear datamodeling
//! score ([`lds::lds`]), with the statistics they need ([`stats`]).
//!
//! Sign convention (MATH.md): scores are `tau_i = d f / d w_i`, so dropping a set `D` predicts
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`. Every retraining is the run's own deterministic weighted
//! training (MATH.md E1) with a dropped example's weight set to 0, so results are bitwise
//! reproducible and independent of the thread count.
//!
//! Sibling crates: `attrib-engine`, `attrib-nn`, `attrib-data`, `attrib-methods` (the [`methods::Run`]
//! retrained here and the [`methods::Scores`] evaluated), `attrib-cli`.

pub mod error;
pub mod lds;
pub mod loo;
pub mod stats;

pub use methods::groundtruth;
pub use methods::groundtruth::subsets;

pub use error::{EvalError, Result};
pub use groundtruth::{
    cache_dir, compute, compute_groups, group_cache_dir, split_outputs, GroundTruth,
};
pub use lds::{lds, lds_groups, loo_correlation, LdsReport};
pub use loo::{loo, loo_cache_dir, Loo};
pub use subsets::{subset_masks, SubsetKind, SubsetSpec};

pub use methods::groundtruth::MANIFEST;
