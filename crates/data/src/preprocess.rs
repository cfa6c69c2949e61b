//! Feature standardisation and scaling.

use serde::{Deserialize, Serialize};

use crate::{DataError, Dataset, Features};

/// Per-feature standardisation `x' = (x - mean) / std`, fitted on a training set.
///
/// Invariants: `mean.len() == std.len()` (the example length) and every `std > 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Per-feature mean.
    pub mean: Vec<f32>,
    /// Per-feature standard deviation (population), 1 for constant features.
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Fits mean and population standard deviation per feature over all examples of a dense
    /// dataset, accumulating in `f64` in example order (deterministic). A zero-variance feature
    /// gets std 1 so it maps to 0. Token datasets give an empty standardizer.
    pub fn fit(ds: &Dataset) -> Standardizer {
        let Features::Dense { values, .. } = &ds.features else {
            return Standardizer {
                mean: Vec::new(),
                std: Vec::new(),
            };
        };
        let d = ds.example_len();
        let n = ds.len();
        if d == 0 || n == 0 {
            return Standardizer {
                mean: vec![0.0; d],
                std: vec![1.0; d],
            };
        }
        let mut sum = vec![0.0f64; d];
        for row in values.chunks_exact(d) {
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += f64::from(x);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
        let mut ss = vec![0.0f64; d];
        for row in values.chunks_exact(d) {
            for ((s, &x), m) in ss.iter_mut().zip(row).zip(&mean) {
                let dx = f64::from(x) - m;
                *s += dx * dx;
            }
        }
        let std = ss
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let sd = (s / n as f64).sqrt();
                // Treat round-off-level spread as constant.
                if sd.is_finite() && sd > 1e-12 * m.abs().max(1.0) {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Standardises the dataset's features in place (token datasets are left unchanged).
    ///
    /// # Panics
    /// Panics if the dataset's example length differs from the fitted one; use
    /// [`Standardizer::try_apply`] to get an error instead.
    pub fn apply(&self, ds: &mut Dataset) {
        if let Err(e) = self.try_apply(ds) {
            panic!("{e}");
        }
    }

    /// Like [`Standardizer::apply`] but returns an error when the feature counts differ.
    pub fn try_apply(&self, ds: &mut Dataset) -> Result<(), DataError> {
        let d = ds.example_len();
        let name = ds.name.clone();
        if let Features::Dense { values, .. } = &mut ds.features {
            if d != self.mean.len() || d != self.std.len() {
                return Err(DataError::InvalidArgument {
                    reason: format!(
                        "the standardizer was fitted on {} features but dataset \"{name}\" has \
                         {d}; fit it on data with the same columns",
                        self.mean.len()
                    ),
                });
            }
            self.apply_values(values);
        }
        Ok(())
    }

    /// Standardises row-major examples in place (`values.len()` a multiple of the feature
    /// count; a trailing partial example is left unchanged).
    pub fn apply_values(&self, values: &mut [f32]) {
        let d = self.mean.len();
        if d == 0 {
            return;
        }
        for row in values.chunks_exact_mut(d) {
            for ((x, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = ((f64::from(*x) - f64::from(m)) / f64::from(s)) as f32;
            }
        }
    }
}

/// Maps every dense feature value `x` to `(x - mean) / std` in f64, rounded once to f32
/// ([`crate::DataConfig::normalize`]); token datasets are left unchanged.
pub fn normalize(ds: &mut Dataset, mean: f64, std: f64) {
    if let Features::Dense { values, .. } = &mut ds.features {
        for v in values.iter_mut() {
            *v = ((f64::from(*v) - mean) / std) as f32;
        }
    }
}

/// Multiplies every dense feature value by `factor` (e.g. `1.0 / 255.0` for pixels); token
/// datasets are left unchanged.
pub fn scale(ds: &mut Dataset, factor: f32) {
    if let Features::Dense { values, .. } = &mut ds.features {
        for v in values.iter_mut() {
            *v *= factor;
        }
    }
}
