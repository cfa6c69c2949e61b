//! How well predicted outputs of a changed training set match retraining on it (the "actual"
//! column of `attrib unlearn` and `attrib select`, MATH.md E7).

/// How well a prediction matches retraining.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Pearson correlation of predicted and retrained margins.
    pub pearson: f64,
    /// Mean absolute difference of predicted and retrained margins.
    pub mae: f64,
    /// Fraction of examples whose predicted class equals the retrained model's.
    pub class_agreement: f64,
    /// Pearson correlation of the predicted and the retrained *changes* from the original
    /// margins, `pred - base` against `actual - base`: the figure that tells a good prediction
    /// from "no change" when forgetting moves the margins little (0 for a constant change, so
    /// "no change" itself scores 0).
    pub change_pearson: f64,
}

/// Compares predicted margins and classes with the retrained ones; `base` holds the original
/// model's margins (the changes are measured from them).
pub fn compare(
    base: &[f64],
    pred: &[f64],
    pred_classes: &[usize],
    actual: &[f64],
    actual_classes: &[usize],
) -> Agreement {
    let n = pred.len().max(1) as f64;
    let change = |x: &[f64]| x.iter().zip(base).map(|(a, b)| a - b).collect::<Vec<_>>();
    Agreement {
        pearson: crate::stats::pearson(pred, actual),
        mae: pred
            .iter()
            .zip(actual)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / n,
        class_agreement: pred_classes
            .iter()
            .zip(actual_classes)
            .filter(|(a, b)| a == b)
            .count() as f64
            / n,
        change_pearson: crate::stats::pearson(&change(pred), &change(actual)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_match_their_definitions() {
        let base = [1.0, 2.0, 3.0, 4.0];
        let actual = [1.5, 1.0, 3.5, 3.0];
        // A perfect prediction.
        let a = compare(&base, &actual, &[0, 1, 0, 1], &actual, &[0, 1, 0, 1]);
        assert_eq!((a.pearson, a.mae, a.class_agreement), (1.0, 0.0, 1.0));
        assert!((a.change_pearson - 1.0).abs() < 1e-15);
        // "No change": the margins still correlate, the changes do not.
        let b = compare(&base, &base, &[0, 1, 1, 1], &actual, &[0, 1, 0, 1]);
        assert_eq!(b.change_pearson, 0.0);
        assert_eq!(b.class_agreement, 0.75);
        // mean |base - actual| = (0.5 + 1 + 0.5 + 1) / 4
        assert!((b.mae - 0.75).abs() < 1e-15);
        // The changes (+0.5, -1, +0.5, -1) predicted with the opposite sign: r = -1.
        let flipped = [0.5, 3.0, 2.5, 5.0];
        let c = compare(&base, &flipped, &[0; 4], &actual, &[0; 4]);
        assert!((c.change_pearson + 1.0).abs() < 1e-15);
    }
}
