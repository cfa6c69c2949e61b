//! Every name in a run directory, defined once (ARCHITECTURE.md "Files on disk"):
//!
//! ```text
//! DIR/
//!   config.toml            resolved config: every default written out, paths absolute
//!   metrics.jsonl          one `step` object per step, one `epoch` object per epoch
//!   metrics.partial.jsonl  the metrics of a training in progress, renamed to metrics.jsonl at
//!                          its end (a killed retraining leaves the finished run's metrics intact)
//!   fingerprint.json       what the run was trained from: resolved config, data and params
//!                          hashes, checked by every command that reads the run (crate::fingerprint)
//!   params.safetensors     final parameters (layout names, e.g. layers.0.weight [out, in]);
//!                          metadata: attrib_version, precision, seed, steps
//!   trajectory/            only with train.checkpoint_every = k
//!     step_00000000.safetensors   state after 0, k, 2k, ... steps and after the last step:
//!     ...                         parameters plus optimizer buffers opt.0, opt.1, ...
//!   scores/                METHOD.npy + METHOD.json (attrib-methods' score format)
//!   groups/                groupings of the training set (`attrib group`)
//!   groundtruth/           retrainings: one folder per computation (crate::retrain)
//!   store/                 other artefacts, content-addressed (crate::store)
//! ```

/// The resolved configuration.
pub const CONFIG: &str = "config.toml";
/// Final parameters.
pub const PARAMS: &str = "params.safetensors";
/// Per-step metrics, JSON lines.
pub const METRICS: &str = "metrics.jsonl";
/// Metrics of a training in progress, swapped in as [`METRICS`] when it finishes.
pub const METRICS_PARTIAL: &str = "metrics.partial.jsonl";
/// What the run was trained from ([`crate::fingerprint::Fingerprint`]).
pub const FINGERPRINT: &str = "fingerprint.json";
/// Trajectory checkpoints.
pub const TRAJECTORY: &str = "trajectory";
/// Score files (`METHOD.npy` + `METHOD.json`).
pub const SCORES: &str = "scores";
/// Groupings of the training set (`attrib group`).
pub const GROUPS: &str = "groups";
/// Retrainings (subset ground truth, leave-one-out), one folder per computation.
pub const GROUNDTRUTH: &str = "groundtruth";
/// Content-addressed artefacts (fitted factors, ensemble members, finished blocks).
pub const STORE: &str = "store";
/// Arrays a run was trained on when they were given in memory (`attrib.train(..., X=, y=)` from
/// Python), saved as content-addressed `.npy` files before the run directory is created.
pub const INPUTS: &str = "inputs";

/// The name of the trajectory checkpoint holding the state after `step` steps.
pub fn checkpoint_name(step: usize) -> String {
    format!("step_{step:08}.safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_sort_by_step() {
        assert_eq!(checkpoint_name(12), "step_00000012.safetensors");
        assert!(checkpoint_name(9) < checkpoint_name(10));
    }
}
