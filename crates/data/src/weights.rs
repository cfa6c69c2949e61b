//! Per-example data weights from a file (`train.weights`, MATH.md E1 and E7 "Data weights as
//! input").
//!
//! One non-negative finite weight per training example, in source-row order. Until examples carry
//! a provenance (their row in the user's file), source-row order means: the rows of the user's
//! file restricted to the training split, in file order. That is exactly training order, because
//! every split keeps its examples in ascending source order.

use std::path::Path;

use crate::io_util::read_all;
use crate::{read_npy_f64, DataError};

/// Reads `n` data weights from `path`: a `.npy` array of shape `(n,)` or `(n, 1)` (any numeric
/// dtype), or a text/CSV file with one number per line (an optional header line that is not a
/// number, e.g. `weight`, is skipped; blank lines are ignored).
///
/// # Errors
/// An unreadable file, a malformed number (naming the line), a count other than `n`, or a weight
/// that is negative, NaN or infinite (naming its row); each message says how to fix the file.
pub fn read_weights(path: &Path, n: usize) -> Result<Vec<f64>, DataError> {
    let is_npy = path
        .file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|f| f.ends_with(".npy") || f.ends_with(".npy.gz"));
    let w = if is_npy {
        let (w, shape) = read_npy_f64(path)?;
        if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) {
            return Err(DataError::format(
                path,
                format!(
                    "train.weights must be a 1-D array of one weight per training example, found \
                     shape {shape:?}; save it with numpy.save(path, w.reshape(-1))"
                ),
            ));
        }
        w
    } else {
        read_text_weights(path)?
    };
    if w.len() != n {
        return Err(DataError::format(
            path,
            format!(
                "train.weights has {} weights for {n} training examples; give one weight per \
                 training example, in source-row order (the rows of the data file that fall in \
                 the training split, in file order)",
                w.len()
            ),
        ));
    }
    if let Some(i) = w.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
        return Err(DataError::format(
            path,
            format!(
                "training example {i} has weight {}; every weight must be a finite number >= 0 \
                 (0 drops the example)",
                w[i]
            ),
        ));
    }
    Ok(w)
}

fn read_text_weights(path: &Path) -> Result<Vec<f64>, DataError> {
    let bytes = read_all(path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        DataError::format(
            path,
            "not UTF-8 text; write one weight per line (or save a .npy array)",
        )
    })?;
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let field = line.trim().trim_end_matches(',').trim();
        if field.is_empty() {
            continue;
        }
        match field.parse::<f64>() {
            Ok(v) => out.push(v),
            // A non-numeric first line is a header.
            Err(_) if out.is_empty() && k == 0 => {}
            Err(_) => {
                return Err(DataError::Format {
                    path: path.to_path_buf(),
                    line: Some(k as u64 + 1),
                    column: None,
                    reason: format!(
                        "\"{field}\" is not a number; write one weight per line, e.g. 1 or 0.5"
                    ),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_csv_with_or_without_header_and_npy() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "w.csv", "weight\n1\n0.5\n\n0\n");
        assert_eq!(read_weights(&a, 3).unwrap(), vec![1.0, 0.5, 0.0]);
        let b = write(d.path(), "w.txt", "2\n3\n");
        assert_eq!(read_weights(&b, 2).unwrap(), vec![2.0, 3.0]);
        let c = d.path().join("w.npy");
        crate::write_npy_f32(&c, &[1.0, 0.25], &[2]).unwrap();
        assert_eq!(read_weights(&c, 2).unwrap(), vec![1.0, 0.25]);
    }

    #[test]
    fn bad_files_name_the_file_the_row_and_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            ("len.csv", "1\n1\n", "2 weights for 3 training examples"),
            ("neg.csv", "1\n-1\n1\n", "example 1 has weight -1"),
            ("nan.csv", "1\nNaN\n1\n", "example 1 has weight NaN"),
            ("inf.csv", "inf\n1\n1\n", "example 0 has weight inf"),
            ("word.csv", "1\nabc\n1\n", "line 2"),
        ];
        for (name, text, want) in cases {
            let p = write(d.path(), name, text);
            let e = read_weights(&p, 3).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(want), "{name}: {e}");
        }
        let p = d.path().join("m.npy");
        crate::write_npy_f32(&p, &[1.0; 6], &[3, 2]).unwrap();
        let e = read_weights(&p, 3).unwrap_err().to_string();
        assert!(e.contains("1-D array"), "{e}");
    }
}
