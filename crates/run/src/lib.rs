//! # attrib-run
//!
//! The run directory and everything that retrains: [`files`] names every file of a run directory
//! once, [`RunDir`] creates and reuses one (`attrib train`), [`Run`] loads a trained run and
//! retrains it deterministically with data weights or masks (MATH.md E1), replays its trajectory
//! and reads its checkpoints. [`retrain()`] is the one retraining loop (random subsets, group
//! subsets, leave-one-out, a user's masks; cached, resumable, and split into [`Shard`]s for
//! array jobs), and [`store`] the one artefact store with one key scheme.
//!
//! ```no_run
//! use attrib_run::{Run, Targets};
//! let run = Run::load("runs/digits".as_ref())?;
//! let mut w = vec![1.0; run.n_train()];
//! w[3] = 0.0; // leave training example 3 out
//! let params = run.retrain(&w)?;
//! let f = run.target_outputs(&params, &Targets::test(vec![0, 1], nn::Output::Margin));
//! # Ok::<(), attrib_run::RunError>(())
//! ```
//!
//! Sibling crates, in the order data flows: `attrib-data` (readers, splits, the atomic write), `attrib-engine` (tensors,
//! differentiation, randomness, the hash), `attrib-nn` (models, optimizers, trainer), `attrib-run`
//! (the run directory, retraining, the artefact store), `attrib-methods` (attribution methods),
//! `attrib-eval` (measurements against retraining), `attrib-cli` (the binary).

pub mod dir;
pub mod error;
pub mod files;
pub mod fingerprint;
pub mod members;
pub mod progress;
pub mod retrain;
pub mod run;
pub mod shard;
pub mod status;
pub mod store;
pub mod subsets;

pub use dir::RunDir;
pub use error::{Result, RunError};
pub use fingerprint::Fingerprint;
pub use progress::Progress;
pub use retrain::{ground_truth, retrain, GroundTruth, MaskSource, Retrained, Retraining};
pub use run::{data_weights, output_name, parse_output, Checkpoint, Run, Split, Targets};
pub use shard::Shard;
pub use store::{Key, Store};
pub use subsets::{SubsetKind, SubsetSpec};
