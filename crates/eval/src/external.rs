//! The LDS of any library's scores against subsets retrained anywhere (MATH.md E6), from plain
//! arrays: the referee behind `attrib lds --masks FILE --outputs FILE --scores FILE` and the Python
//! package's `attrib.lds`. The arrays become a [`GroundTruth`] and a [`Scores`] and go through
//! [`crate::lds`], the code of every other LDS in attrib, so the numbers are the same.

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

/// The values of an [`Array2`], borrowed in the caller's element type (so that a NumPy array is
/// read in place, without a copy).
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    /// 64-bit floats.
    F64(&'a [f64]),
    /// 32-bit floats (widened exactly when read).
    F32(&'a [f32]),
    /// Booleans (1 and 0).
    Bool(&'a [bool]),
}

impl Values<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `k` as f64.
    pub fn get(&self, k: usize) -> f64 {
        match self {
            Values::F64(v) => v[k],
            Values::F32(v) => f64::from(v[k]),
            Values::Bool(v) => f64::from(u8::from(v[k])),
        }
    }

    /// The position of the first value that is not finite.
    pub fn first_non_finite(&self) -> Option<usize> {
        match self {
            Values::F64(v) => v.iter().position(|x| !x.is_finite()),
            Values::F32(v) => v.iter().position(|x| !x.is_finite()),
            Values::Bool(_) => None,
        }
    }
}

/// A 2-D array, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Array2<'a> {
    /// The values, `rows * cols` of them.
    pub values: Values<'a>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl<'a> Array2<'a> {
    /// `values`, row-major, as a `rows x cols` array (checked where it is used).
    pub fn new(values: &'a [f64], rows: usize, cols: usize) -> Self {
        Array2::of(Values::F64(values), rows, cols)
    }

    /// Borrowed values of any [`Values`] type as a `rows x cols` array.
    pub fn of(values: Values<'a>, rows: usize, cols: usize) -> Self {
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
    match a.values.first_non_finite() {
        Some(k) => Err(invalid(
            field,
            format!(
                "entry [{}, {}] is {}; every value must be finite",
                k / a.cols.max(1),
                k % a.cols.max(1),
                a.values.get(k)
            ),
        )),
        None => Ok(()),
    }
}

/// The training examples each subset drops (mask value 0), checking that every value is 0 or 1.
fn dropped_per_subset(masks: &Array2) -> Result<Vec<Vec<usize>>> {
    let bad = |x: f64| {
        invalid(
            "masks",
            format!("holds {x}; use 1 (or True) for kept and 0 (or False) for dropped"),
        )
    };
    let n = masks.cols;
    let mut dropped = vec![Vec::new(); masks.rows];
    for (j, d) in dropped.iter_mut().enumerate() {
        let row = j * n..(j + 1) * n;
        match masks.values {
            Values::Bool(v) => d.extend(v[row].iter().enumerate().filter(|x| !*x.1).map(|x| x.0)),
            Values::F64(v) => {
                for (i, &x) in v[row].iter().enumerate() {
                    if x == 0.0 {
                        d.push(i);
                    } else if x != 1.0 {
                        return Err(bad(x));
                    }
                }
            }
            Values::F32(v) => {
                for (i, &x) in v[row].iter().enumerate() {
                    if x == 0.0 {
                        d.push(i);
                    } else if x != 1.0 {
                        return Err(bad(f64::from(x)));
                    }
                }
            }
        }
    }
    Ok(dropped)
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
    if masks.cols != n {
        return Err(invalid(
            "masks",
            format!(
                "{} columns, but the scores have {n} training examples",
                masks.cols
            ),
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
    let dropped = dropped_per_subset(&masks)?;
    // Score of target `t` for training example `i`, read in place in either layout.
    let tau = |t: usize, i: usize| match layout {
        Layout::TargetsTrain => scores.values.get(t * n + i),
        Layout::TrainTargets => scores.values.get(i * targets + t),
    };
    Ok(crate::lds::lds_report(
        "scores",
        m,
        targets,
        |t, truth, sums| {
            for (j, d) in dropped.iter().enumerate() {
                sums.push(d.iter().map(|&i| tau(t, i)).sum());
                truth.push(outputs.values.get(j * targets + t));
            }
            full[t]
        },
    ))
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
