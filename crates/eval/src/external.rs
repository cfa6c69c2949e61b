//! The LDS of any library's scores against subsets retrained anywhere (MATH.md E6), from plain
//! arrays: the referee behind `attrib lds --masks FILE --outputs FILE --scores FILE` and the Python
//! package's `attrib.lds`. The arrays become a [`GroundTruth`] and a [`Scores`] and go through
//! [`crate::lds`], the code of every other LDS in attrib, so the numbers are the same.

use std::collections::BTreeMap;

use methods::{ScoreMeta, Scores};
use run::{GroundTruth, SubsetSpec};

use crate::error::{EvalError, Result};
use crate::lds::LdsReport;

/// Which axis of a score matrix is the training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[targets, train]`: attrib's.
    TargetsTrain,
    /// `[train, targets]`: TRAK's and dattri's.
    TrainTargets,
}

impl Layout {
    /// `targets_train` or `train_targets`.
    ///
    /// # Errors
    /// Another name, naming `layout` and both choices.
    pub fn parse(name: &str) -> Result<Layout> {
        match name {
            "targets_train" => Ok(Layout::TargetsTrain),
            "train_targets" => Ok(Layout::TrainTargets),
            other => Err(invalid(
                "layout",
                format!("\"{other}\" is not a layout; use targets_train ([targets, train], attrib's) or train_targets ([train, targets], TRAK's and dattri's)"),
            )),
        }
    }
}

fn invalid(field: &str, reason: String) -> EvalError {
    EvalError::Invalid {
        field: field.into(),
        reason,
    }
}

/// A 2-D array, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Array2<'a> {
    /// The values, `rows * cols` of them.
    pub values: &'a [f64],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl<'a> Array2<'a> {
    /// `values`, row-major, as a `rows x cols` array (checked where it is used).
    pub fn new(values: &'a [f64], rows: usize, cols: usize) -> Self {
        Array2 { values, rows, cols }
    }
}

fn check_finite(field: &str, a: &Array2) -> Result<()> {
    if a.values.len() != a.rows * a.cols {
        return Err(invalid(
            field,
            format!(
                "{} values for a {} x {} array",
                a.values.len(),
                a.rows,
                a.cols
            ),
        ));
    }
    match a.values.iter().position(|x| !x.is_finite()) {
        Some(k) => Err(invalid(
            field,
            format!(
                "entry [{}, {}] is {}; every value must be finite",
                k / a.cols.max(1),
                k % a.cols.max(1),
                a.values[k]
            ),
        )),
        None => Ok(()),
    }
}

/// The LDS of `scores` (in `layout`) against `masks` (`[subsets, train]`, 1 = the example was
/// kept in that subset's training set, 0 = dropped) and the retrained `outputs`
/// (`[subsets, targets]`), with the full-data model's outputs `base` (`[targets]`; zeros when
/// absent, which changes the result only by rounding: every statistic is invariant to a constant
/// shift of a target's predictions).
///
/// # Errors
/// A shape that does not fit the others, a value that is not finite, a mask entry other than 0
/// or 1, fewer than 2 subsets; each names the argument (`scores`, `masks`, `outputs`, `base`).
pub fn lds_external(
    scores: Array2,
    layout: Layout,
    masks: Array2,
    outputs: Array2,
    base: Option<&[f64]>,
) -> Result<LdsReport> {
    check_finite("scores", &scores)?;
    check_finite("masks", &masks)?;
    check_finite("outputs", &outputs)?;
    let (targets, n) = match layout {
        Layout::TargetsTrain => (scores.rows, scores.cols),
        Layout::TrainTargets => (scores.cols, scores.rows),
    };
    let values: Vec<f64> = match layout {
        Layout::TargetsTrain => scores.values.to_vec(),
        Layout::TrainTargets => (0..targets)
            .flat_map(|t| (0..n).map(move |i| scores.values[i * targets + t]))
            .collect(),
    };
    if masks.cols != n {
        return Err(invalid(
            "masks",
            format!(
                "{} columns, but the scores have {n} training examples",
                masks.cols
            ),
        ));
    }
    if let Some(x) = masks.values.iter().find(|&&x| x != 0.0 && x != 1.0) {
        return Err(invalid(
            "masks",
            format!("holds {x}; use 1 (or True) for kept and 0 (or False) for dropped"),
        ));
    }
    let m = masks.rows;
    if m < 2 {
        return Err(invalid(
            "masks",
            format!("{m} subsets; the LDS needs at least 2"),
        ));
    }
    if outputs.rows != m {
        return Err(invalid(
            "outputs",
            format!(
                "{} rows, but masks has {m} subsets; give one row per subset",
                outputs.rows
            ),
        ));
    }
    if outputs.cols != targets {
        return Err(invalid(
            "outputs",
            format!(
                "{} columns, but the scores have {targets} targets",
                outputs.cols
            ),
        ));
    }
    let full = match base {
        None => vec![0.0; targets],
        Some(b) if b.len() != targets => {
            return Err(invalid(
                "base",
                format!("{} values, but the scores have {targets} targets", b.len()),
            ))
        }
        Some(b) if b.iter().any(|x| !x.is_finite()) => {
            return Err(invalid("base", "every value must be finite".into()))
        }
        Some(b) => b.to_vec(),
    };
    let gt = GroundTruth {
        spec: SubsetSpec::drop(0.5, m, 0),
        output: "external".into(),
        split: "external".into(),
        run_hash: "external".into(),
        full,
        masks: masks
            .values
            .chunks(n.max(1))
            .map(|row| row.iter().map(|&x| x == 1.0).collect())
            .collect(),
        outputs: outputs
            .values
            .chunks(targets.max(1))
            .map(<[f64]>::to_vec)
            .collect(),
    };
    let scores = Scores {
        values,
        meta: ScoreMeta {
            method: "scores".into(),
            options: BTreeMap::new(),
            run_hash: "external".into(),
            output: "external".into(),
            split: "external".into(),
            targets: (0..targets).collect(),
            n_train: n,
            groups: None,
            seconds: 0.0,
            attrib_version: env!("CARGO_PKG_VERSION").into(),
            sign: methods::scores::SIGN.into(),
            rows: None,
        },
    };
    crate::lds(&gt, &scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores that predict the retrained outputs exactly (`out = -sum over dropped of tau`) have
    /// LDS 1 in either layout; shuffled ones do not.
    #[test]
    fn exact_predictions_score_one_in_both_layouts() {
        let (t, n, m) = (3, 8, 6);
        let tau: Vec<f64> = (0..t * n).map(|k| ((k * 7919) % 13) as f64 - 6.0).collect();
        let masks: Vec<f64> = (0..m * n).map(|k| f64::from(((k * 31) % 5) != 0)).collect();
        let outputs: Vec<f64> = (0..m)
            .flat_map(|j| {
                let (tau, masks) = (&tau, &masks);
                (0..t).map(move |r| {
                    -(0..n)
                        .filter(|&i| masks[j * n + i] == 0.0)
                        .map(|i| tau[r * n + i])
                        .sum::<f64>()
                })
            })
            .collect();
        let a = Array2::new;
        let r = lds_external(
            a(&tau, t, n),
            Layout::TargetsTrain,
            a(&masks, m, n),
            a(&outputs, m, t),
            None,
        )
        .unwrap();
        assert!((r.lds - 1.0).abs() < 1e-12, "{}", r.lds);
        let transposed: Vec<f64> = (0..n)
            .flat_map(|i| (0..t).map(move |r| (r, i)))
            .map(|(r, i)| tau[r * n + i])
            .collect();
        let b = lds_external(
            a(&transposed, n, t),
            Layout::TrainTargets,
            a(&masks, m, n),
            a(&outputs, m, t),
            None,
        )
        .unwrap();
        assert_eq!(r.per_target, b.per_target);
        let e = lds_external(
            a(&tau, t, n),
            Layout::TargetsTrain,
            a(&masks, m, n),
            a(&outputs[..(m - 1) * t], m - 1, t),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("outputs:"), "{e}");
    }
}
