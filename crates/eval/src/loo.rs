//! Brute-force leave-one-out (MATH.md E6): retrain without each chosen training example (weight 0,
//! MATH.md E1) and measure the output on every example of a split. The retrainings are
//! `attrib-run`'s one retraining loop over a [`MaskSource::LeaveOneOut`] source, cached and
//! resumable like the subset ground truth (layout in [`run::retrain`]).

use run::retrain::{retrain, MaskSource, Retraining};
use run::Run;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// Outputs of the full run and of each leave-one-out retraining (MATH.md E6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loo {
    /// Training indices left out, one per retraining.
    pub examples: Vec<usize>,
    /// Name of the measured output.
    pub output: String,
    /// Name of the measured split.
    pub split: String,
    /// Fingerprint of the run.
    pub run_hash: String,
    /// `f(S)` for every example of the split.
    pub full: Vec<f64>,
    /// `f(S \ {examples[k]})` for every example of the split, one vector per `k`.
    pub outputs: Vec<Vec<f64>>,
}

impl Loo {
    /// True LOO change of split example `target` when `examples[k]` is left out (MATH.md E6):
    /// `f(S \ {z_k}) - f(S)`; attribution predicts `-tau_k`.
    ///
    /// # Panics
    /// If `target` or `k` is out of range.
    pub fn change(&self, target: usize, k: usize) -> f64 {
        self.outputs[k][target] - self.full[target]
    }
}

/// Brute-force LOO (MATH.md E6): [`retrain`] over `r`, whose source must be
/// [`MaskSource::LeaveOneOut`]: for each listed training index, retrains with `w_i = 0` (MATH.md
/// E1) and measures the output on every example of the split, in parallel, cached in `r.cache`.
///
/// # Errors
/// Another mask source, an index outside the training set or listed twice, an empty split, a
/// cache folder of another computation or a corrupt cache file, I/O errors, or training errors.
pub fn loo(run: &Run, r: &Retraining) -> Result<Loo> {
    let MaskSource::LeaveOneOut(examples) = r.masks else {
        return Err(invalid(
            "masks",
            "leave-one-out needs a MaskSource::LeaveOneOut list of training examples",
        ));
    };
    let done = retrain(run, r)?;
    Ok(Loo {
        examples: examples.to_vec(),
        output: run::output_name(r.output).into(),
        split: r.split.name().into(),
        run_hash: run.hash.clone(),
        full: done.full,
        outputs: done.outputs,
    })
}
