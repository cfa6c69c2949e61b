//! # attrib-eval
//!
//! Every way of measuring attributions against retraining: the linear datamodeling score and the
//! LOO comparison ([`lds`]), brute-force leave-one-out ([`loo`]), the retraining score and
//! noisy-label detection ([`groups`], MATH.md E5), and the statistics they need ([`stats`]). The
//! retrainings themselves (subsets, groups, leave-one-out; cached, resumable) are `attrib-run`'s
//! one retraining loop ([`run::retrain()`]).
//!
//! ```no_run
//! use run::retrain::{cache_dir, ground_truth, MaskSource, Retraining};
//! use run::{Run, Split, SubsetSpec};
//! let run = Run::load("runs/digits".as_ref())?;
//! let spec = SubsetSpec::drop(0.05, 40, 0);
//! let dir = cache_dir("runs/digits".as_ref(), &spec, nn::Output::Margin, Split::Test);
//! let r = Retraining::new(MaskSource::Subsets(spec), nn::Output::Margin, Split::Test)
//!     .cache(Some(&dir));
//! let gt = ground_truth(&run, &r)?;
//! let scores = methods::Scores::load("runs/digits/scores/magic.npy".as_ref())?;
//! println!("LDS {:.3}", attrib_eval::lds(&gt, &scores)?.lds);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sign convention (MATH.md): scores are `tau_i = d f / d w_i`, so dropping a set `D` predicts
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`. Every retraining is the run's own deterministic weighted
//! training (MATH.md E1) with a dropped example's weight set to 0, so results are bitwise
//! reproducible and independent of the thread count.
//!
//! Sibling crates, in the order data flows: `attrib-data` (readers, splits, the atomic write), `attrib-engine` (tensors,
//! differentiation, randomness, the hash), `attrib-nn` (models, optimizers, trainer), `attrib-run`
//! (the run directory, retraining, the artefact store), `attrib-methods` (attribution methods),
//! `attrib-eval` (measurements against retraining), `attrib-cli` (the binary).

pub mod agreement;
pub mod error;
pub mod external;
pub mod groups;
pub mod lds;
pub mod loo;
pub mod stats;

pub use error::{EvalError, Result};
pub use groups::group_subsets;
pub use lds::{lds, lds_groups, loo_correlation, LdsReport, LdsStream};
pub use loo::{loo, Loo};
