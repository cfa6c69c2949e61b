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
}

/// Compares predicted margins and classes with the retrained ones.
pub fn compare(
    pred: &[f64],
    pred_classes: &[usize],
    actual: &[f64],
    actual_classes: &[usize],
) -> Agreement {
    let n = pred.len().max(1) as f64;
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
    }
}
