//! Seeded label noise on the training split (`data.label_noise`), the benchmark setting of data
//! selection (MATH.md E7, "Selection"): a known set of mislabelled examples that a good selection
//! should drop.
//!
//! The flipped examples are the first `round(fraction * n)` entries of a permutation of the
//! training indices seeded by `seed` (portable, [`crate::seeded_permutation`]'s shuffle), and each
//! gets a uniformly drawn *other* class from the same stream. Validation and test labels are never
//! touched, so what judges a selection stays clean.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::split::uniform_below;
use crate::{DataError, Dataset, Labels};

/// `data.label_noise = { fraction = 0.2, seed = 0 }`: flip this fraction of the training labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelNoise {
    /// Fraction of training examples whose label is replaced by another class, in `(0, 1)`.
    pub fraction: f64,
    /// Seed of which examples flip and to what (independent of `split_seed` and `train.seed`).
    #[serde(default)]
    pub seed: u64,
}

/// Stream of the flips: `seed` mixed with this constant ("flip"), so that equal seeds of the split
/// and of the noise do not draw related permutations.
const FLIP_STREAM: u64 = 0x666c_6970;

/// Flips the labels of `round(noise.fraction * n)` examples of `train`, each to a uniformly drawn
/// other class, and returns the flipped indices in ascending order.
///
/// # Errors
/// A fraction outside `(0, 1)`, a dataset without class labels or with fewer than two classes.
pub fn flip_labels(train: &mut Dataset, noise: &LabelNoise) -> Result<Vec<usize>, DataError> {
    let f = noise.fraction;
    if !(f > 0.0 && f < 1.0) {
        return Err(DataError::InvalidArgument {
            reason: format!(
                "data.label_noise.fraction = {f} is out of range; use a fraction strictly \
                 between 0 and 1, e.g. 0.2 to flip 20% of the training labels"
            ),
        });
    }
    let n = train.len();
    let Labels::Classes { y, num_classes, .. } = &mut train.labels else {
        return Err(DataError::InvalidArgument {
            reason: "data.label_noise needs class labels (task = \"classification\"); remove it \
                     for regression or token data"
                .into(),
        });
    };
    let classes = *num_classes as u64;
    if classes < 2 {
        return Err(DataError::InvalidArgument {
            reason: "data.label_noise needs at least 2 classes".into(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(noise.seed ^ FLIP_STREAM);
    let mut order: Vec<usize> = (0..n).collect();
    crate::split::shuffle(&mut order, &mut rng);
    order.truncate(((f * n as f64).round() as usize).min(n));
    order.sort_unstable();
    for &i in &order {
        // A draw among the other classes: skip over the true one.
        let c = uniform_below(&mut rng, classes - 1) as u32;
        y[i] = if c >= y[i] { c + 1 } else { c };
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(d: &Dataset) -> Vec<u32> {
        match &d.labels {
            Labels::Classes { y, .. } => y.clone(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flips_exactly_the_listed_examples_to_other_classes_deterministically() {
        let clean = crate::embedded::digits();
        let noise = LabelNoise {
            fraction: 0.2,
            seed: 3,
        };
        let mut a = clean.clone();
        let flipped = flip_labels(&mut a, &noise).unwrap();
        assert_eq!(flipped.len(), (0.2 * clean.len() as f64).round() as usize);
        assert!(flipped.windows(2).all(|p| p[0] < p[1]));
        let (y0, y1) = (labels(&clean), labels(&a));
        for i in 0..clean.len() {
            assert_eq!(y0[i] != y1[i], flipped.binary_search(&i).is_ok(), "{i}");
        }
        assert!(y1.iter().all(|&c| c < 10));
        let mut b = clean.clone();
        assert_eq!(flip_labels(&mut b, &noise).unwrap(), flipped);
        assert_eq!(a, b);
        let mut c = clean.clone();
        let other = flip_labels(&mut c, &LabelNoise { seed: 4, ..noise }).unwrap();
        assert_ne!(other, flipped);
    }

    #[test]
    fn bad_fraction_and_regression_labels_are_named() {
        let mut d = crate::embedded::digits();
        let e = flip_labels(
            &mut d,
            &LabelNoise {
                fraction: 1.0,
                seed: 0,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("data.label_noise.fraction"), "{e}");
        d.labels = Labels::Real(vec![0.0; d.len()]);
        let e = flip_labels(
            &mut d,
            &LabelNoise {
                fraction: 0.1,
                seed: 0,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("class labels"), "{e}");
    }
}
