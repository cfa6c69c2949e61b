//! Random training subsets for the linear datamodeling score (MATH.md E6): drop a fraction `p` of
//! the training set (1%, 5%, 10%, 20%) or keep a fraction (50% as in TRAK), `m` times, seeded.

use engine::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// How each subset is drawn (MATH.md E6).
///
/// In JSON `{"drop": {"fraction": 0.01}}` or `{"keep": {"fraction": 0.5}}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SubsetKind {
    /// Drop exactly `round(fraction * n)` examples (at least 1), keep the rest.
    Drop {
        /// Fraction dropped, in `(0, 1)`.
        fraction: f64,
    },
    /// Keep exactly `round(fraction * n)` examples (at least 1), drop the rest.
    Keep {
        /// Fraction kept, in `(0, 1]`.
        fraction: f64,
    },
}

/// `m` random subsets of the training set for the LDS (MATH.md E6).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsetSpec {
    /// Drop or keep, and the fraction.
    pub kind: SubsetKind,
    /// Number of subsets `m`.
    pub subsets: usize,
    /// Seed of the subsets (independent of the training seed).
    pub seed: u64,
}

impl SubsetSpec {
    /// `m` subsets each dropping `fraction` of the training set.
    pub fn drop(fraction: f64, subsets: usize, seed: u64) -> Self {
        SubsetSpec {
            kind: SubsetKind::Drop { fraction },
            subsets,
            seed,
        }
    }

    /// `m` subsets each keeping `fraction` of the training set.
    pub fn keep(fraction: f64, subsets: usize, seed: u64) -> Self {
        SubsetSpec {
            kind: SubsetKind::Keep { fraction },
            subsets,
            seed,
        }
    }

    /// Number of examples each subset drops from a training set of `n` (MATH.md E6):
    /// `max(1, round(p n))` for [`SubsetKind::Drop`], `n - round(p n)` for [`SubsetKind::Keep`],
    /// clamped to `0..=n`.
    pub fn dropped_count(&self, n: usize) -> usize {
        let count = |f: f64| {
            // `as` saturates (NaN becomes 0), so no input panics here; `validate` rejects them.
            let c = (f * n as f64).round();
            if c.is_finite() && c > 0.0 {
                (c as usize).min(n)
            } else {
                0
            }
        };
        match self.kind {
            SubsetKind::Drop { fraction } => count(fraction).max(1).min(n),
            SubsetKind::Keep { fraction } => n - count(fraction),
        }
    }

    /// Checks the spec for a training set of `n` examples.
    ///
    /// # Errors
    /// A fraction outside its range, no subsets, or a subset that would be empty or the full set.
    pub fn validate(&self, n: usize) -> Result<()> {
        if self.subsets == 0 {
            return Err(invalid(
                "spec.subsets",
                "0 subsets; ask for at least 2 (100 or more for a stable LDS)",
            ));
        }
        if n == 0 {
            return Err(invalid(
                "training set",
                "no training examples to draw subsets from",
            ));
        }
        // One mask byte per subset and example, held at once: refused before allocating.
        nn::memory::check(
            "spec.subsets",
            &format!("the masks of {} subsets of {n} examples", self.subsets),
            self.subsets as f64 * n as f64,
            "ask for fewer subsets (--subsets)",
        )?;
        match self.kind {
            SubsetKind::Drop { fraction } => {
                if !(fraction > 0.0 && fraction < 1.0) {
                    return Err(invalid(
                        "spec.kind.drop.fraction",
                        format!("{fraction} must be strictly between 0 and 1 (e.g. 0.01, 0.05, 0.1, 0.2)"),
                    ));
                }
                if self.dropped_count(n) >= n {
                    return Err(invalid(
                        "spec.kind.drop.fraction",
                        format!("dropping {fraction} of {n} examples leaves none; use a smaller fraction"),
                    ));
                }
            }
            SubsetKind::Keep { fraction } => {
                if !(fraction > 0.0 && fraction <= 1.0) {
                    return Err(invalid(
                        "spec.kind.keep.fraction",
                        format!("{fraction} must be in (0, 1] (e.g. 0.5)"),
                    ));
                }
                if self.dropped_count(n) >= n {
                    return Err(invalid(
                        "spec.kind.keep.fraction",
                        format!(
                            "keeping {fraction} of {n} examples keeps none; use a larger fraction"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Short name for folders: `drop-0.0100-m100-s0` or `keep-0.5000-m100-s0`.
    pub fn slug(&self) -> String {
        let (kind, f) = match self.kind {
            SubsetKind::Drop { fraction } => ("drop", fraction),
            SubsetKind::Keep { fraction } => ("keep", fraction),
        };
        format!("{kind}-{f:.4}-m{}-s{}", self.subsets, self.seed)
    }
}

/// The training examples subset `j` drops, ascending (MATH.md E6): the first
/// [`SubsetSpec::dropped_count`] entries of the permutation `Rng::derive(seed, "subsets", j)`.
pub fn dropped(n: usize, spec: &SubsetSpec, j: usize) -> Vec<usize> {
    let perm = Rng::derive(spec.seed, "subsets", j as u64).permutation(n);
    let mut d = perm[..spec.dropped_count(n)].to_vec();
    d.sort_unstable();
    d
}

/// Masks of the `m` subsets (MATH.md E6), `true` = kept: subset `j` drops exactly
/// [`SubsetSpec::dropped_count`] examples chosen by the seeded permutation
/// `Rng::derive(seed, "subsets", j)`. Deterministic in `(n, spec)`.
pub fn subset_masks(n: usize, spec: &SubsetSpec) -> Vec<Vec<bool>> {
    (0..spec.subsets)
        .map(|j| {
            let mut mask = vec![true; n];
            for i in dropped(n, spec, j) {
                mask[i] = false;
            }
            mask
        })
        .collect()
}

/// The indices a mask drops (`false` entries), ascending.
pub fn dropped_of(mask: &[bool]) -> Vec<usize> {
    mask.iter()
        .enumerate()
        .filter(|(_, &k)| !k)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counts_and_determinism() {
        let spec = SubsetSpec::drop(0.05, 20, 3);
        let a = subset_masks(455, &spec);
        let b = subset_masks(455, &spec);
        assert_eq!(a, b);
        assert_eq!(a.len(), 20);
        for m in &a {
            assert_eq!(m.iter().filter(|k| !**k).count(), 23); // round(22.75)
        }
        assert_ne!(a[0], a[1]);
        // At least one example even for a tiny fraction.
        let tiny = SubsetSpec::drop(0.0001, 3, 0);
        assert!(subset_masks(50, &tiny)
            .iter()
            .all(|m| m.iter().filter(|k| !**k).count() == 1));
        // Another seed, other subsets.
        assert_ne!(subset_masks(455, &SubsetSpec::drop(0.05, 20, 4))[0], a[0]);
    }

    #[test]
    fn keep_counts() {
        let spec = SubsetSpec::keep(0.5, 5, 0);
        for m in subset_masks(101, &spec) {
            assert_eq!(m.iter().filter(|k| **k).count(), 51); // round(50.5) = 51
        }
    }

    #[test]
    fn validation_and_serde() {
        assert!(SubsetSpec::drop(0.0, 5, 0).validate(10).is_err());
        assert!(SubsetSpec::drop(1.0, 5, 0).validate(10).is_err());
        assert!(SubsetSpec::drop(f64::NAN, 5, 0).validate(10).is_err());
        assert!(SubsetSpec::drop(0.5, 0, 0).validate(10).is_err());
        assert!(SubsetSpec::drop(0.99, 5, 0).validate(10).is_err());
        assert!(SubsetSpec::keep(0.01, 5, 0).validate(10).is_err());
        assert!(SubsetSpec::keep(0.5, 5, 0).validate(10).is_ok());
        // Bad specs never panic.
        assert_eq!(SubsetSpec::drop(f64::NAN, 1, 0).dropped_count(10), 1);
        assert_eq!(SubsetSpec::keep(-3.0, 1, 0).dropped_count(10), 10);
        let spec = SubsetSpec::drop(0.01, 100, 7);
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            text,
            r#"{"kind":{"drop":{"fraction":0.01}},"subsets":100,"seed":7}"#
        );
        assert_eq!(serde_json::from_str::<SubsetSpec>(&text).unwrap(), spec);
        assert_eq!(spec.slug(), "drop-0.0100-m100-s7");
    }
}
