//! CSV reader: one example per row, numeric features, an optional label column.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::io_util::{open_read, stem_name};
use crate::{DataError, Dataset, Features, Labels};

/// What the label column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Integer class indices in `0..num_classes`.
    #[default]
    Classification,
    /// Real-valued targets.
    Regression,
}

/// How to read a CSV file.
///
/// `label_column` is a header name, `"last"`, or `"#N"` (zero-based column index); `None` means
/// the file has no labels and every column is a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvOptions {
    /// Column holding the label: a header name, `"last"` or `"#N"`; `None` = no labels.
    pub label_column: Option<String>,
    /// Classification (integer labels) or regression (real targets).
    pub task: Task,
    /// Whether the first row holds column names.
    pub has_header: bool,
    /// Number of classes; `None` = largest label + 1.
    pub num_classes: Option<usize>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label_column: None,
            task: Task::Classification,
            has_header: true,
            num_classes: None,
        }
    }
}

/// Reads a CSV file (gzip-compressed when the name ends in `.gz`) into a dense dataset of shape
/// `[d]`, named after the file stem.
///
/// Every row must have as many fields as the first row; features must be finite numbers;
/// classification labels must be integers in `0..num_classes`. Lines in errors are 1-based file
/// lines.
pub fn read_csv(path: &Path, opts: &CsvOptions) -> Result<Dataset, DataError> {
    let reader = open_read(path)?;
    read_csv_reader(reader, path, opts)
}

/// Like [`read_csv`] but from any reader (uncompressed); `source` names the data in error
/// messages and gives the dataset its name.
pub fn read_csv_reader<R: Read>(
    reader: R,
    source: &Path,
    opts: &CsvOptions,
) -> Result<Dataset, DataError> {
    let mut ds = parse_csv(reader, source, opts, 0)?;
    ds.name = stem_name(source);
    Ok(ds)
}

/// [`read_csv`], also returning the 1-based file line of every data row (for provenance).
pub(crate) fn read_csv_with_lines(
    path: &Path,
    opts: &CsvOptions,
) -> Result<(Dataset, Vec<u64>), DataError> {
    let mut lines = Vec::new();
    let mut ds = parse_csv_lines(open_read(path)?, path, opts, 0, &mut lines)?;
    ds.name = stem_name(path);
    Ok((ds, lines))
}

/// The parser; `line_offset` is added to every reported line (for data after a skipped preamble).
pub(crate) fn parse_csv<R: Read>(
    reader: R,
    path: &Path,
    opts: &CsvOptions,
    line_offset: u64,
) -> Result<Dataset, DataError> {
    parse_csv_lines(reader, path, opts, line_offset, &mut Vec::new())
}

/// [`parse_csv`], pushing the 1-based line of every data row onto `lines`.
fn parse_csv_lines<R: Read>(
    reader: R,
    path: &Path,
    opts: &CsvOptions,
    line_offset: u64,
    lines: &mut Vec<u64>,
) -> Result<Dataset, DataError> {
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(LineTracker::new(reader));
    let mut rec = ::csv::ByteRecord::new();

    let err_at = |line: u64, column: Option<String>, reason: String| DataError::Format {
        path: path.to_path_buf(),
        line: Some(line),
        column,
        reason,
    };

    let mut header: Option<Vec<String>> = None;
    let mut ncols: Option<usize> = None;
    let mut label_idx: Option<usize> = None;
    let mut values: Vec<f32> = Vec::new();
    let mut classes: Vec<u32> = Vec::new();
    let mut reals: Vec<f32> = Vec::new();
    let mut max_class: Option<u32> = None;
    let mut rows = 0usize;

    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map(|p| rdr.get_ref().line_at(p.byte()));
                return Err(csv_error(path, e, line.map(|l| l + line_offset)));
            }
        }
        // The csv crate's own line count skips blank lines, and its record start includes
        // blank lines before the record; so find the line of the record's last byte (its own
        // terminator) and step back over newlines inside quoted fields.
        let end = rdr.position().byte().saturating_sub(1);
        let inner_newlines = rec.iter().flatten().filter(|&&b| b == b'\n').count() as u64;
        let line = rdr
            .get_ref()
            .line_at(end)
            .saturating_sub(inner_newlines)
            .max(1)
            + line_offset;
        let expected = match ncols {
            Some(n) => n,
            None => {
                let n = rec.len();
                ncols = Some(n);
                if opts.has_header {
                    let names: Vec<String> = rec
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).trim().to_string())
                        .collect();
                    label_idx = resolve_label(opts, Some(&names), n, path)?;
                    header = Some(names);
                    continue;
                }
                label_idx = resolve_label(opts, None, n, path)?;
                n
            }
        };
        if rec.len() != expected {
            let like = if header.is_some() {
                "the header"
            } else {
                "the first row"
            };
            return Err(err_at(
                line,
                None,
                format!(
                    "expected {expected} fields like {like}, found {} (ragged row); every row \
                     needs one value per column",
                    rec.len()
                ),
            ));
        }
        let col_name = |j: usize| match &header {
            Some(h) => h[j].clone(),
            None => format!("#{j}"),
        };
        for (j, raw) in rec.iter().enumerate() {
            let text = std::str::from_utf8(raw).map(str::trim).map_err(|_| {
                err_at(
                    line,
                    Some(col_name(j)),
                    "the value is not valid UTF-8; save the file as UTF-8".to_string(),
                )
            })?;
            if Some(j) == label_idx {
                match opts.task {
                    Task::Classification => {
                        let c =
                            parse_class(text).map_err(|r| err_at(line, Some(col_name(j)), r))?;
                        if let Some(k) = opts.num_classes {
                            if c as usize >= k {
                                return Err(err_at(
                                    line,
                                    Some(col_name(j)),
                                    format!(
                                        "class {c} is outside 0..{k}; labels must be integers \
                                         in 0..num_classes (set num_classes in the config if \
                                         the file lacks some classes)"
                                    ),
                                ));
                            }
                        }
                        max_class = Some(max_class.map_or(c, |m| m.max(c)));
                        classes.push(c);
                    }
                    Task::Regression => {
                        let v = parse_real(text, "regression targets", "drop or fix the row")
                            .map_err(|r| err_at(line, Some(col_name(j)), r))?;
                        reals.push(v);
                    }
                }
            } else {
                let v = parse_real(text, "features", "clean or impute the value")
                    .map_err(|r| err_at(line, Some(col_name(j)), r))?;
                values.push(v);
            }
        }
        rows += 1;
        lines.push(line);
    }

    let Some(ncols) = ncols else {
        return Err(DataError::format(
            path,
            "the file is empty; it needs a header row naming the columns, then one row per \
             example",
        ));
    };
    if rows == 0 {
        return Err(DataError::format(
            path,
            "no data rows (only a header); add at least one example below the header row (the \
             first row is always read as the column names, so a file without one needs a header \
             row added)",
        ));
    }
    let d = ncols - usize::from(label_idx.is_some());
    if d == 0 {
        return Err(DataError::format(
            path,
            "no feature columns: the only column is the label; the file needs at least one \
             feature column",
        ));
    }
    let labels = match (label_idx, opts.task) {
        (None, _) => Labels::None,
        (Some(_), Task::Classification) => Labels::Classes {
            y: classes,
            num_classes: opts
                .num_classes
                .unwrap_or_else(|| max_class.map_or(0, |m| m as usize + 1)),
            class_names: None,
        },
        (Some(_), Task::Regression) => Labels::Real(reals),
    };
    let feature_names = header.map(|h| {
        h.into_iter()
            .enumerate()
            .filter(|(j, _)| Some(*j) != label_idx)
            .map(|(_, n)| n)
            .collect()
    });
    Ok(Dataset {
        name: stem_name(path),
        features: Features::Dense {
            values,
            shape: vec![d],
        },
        labels,
        feature_names,
    })
}

/// A reader that remembers where its newlines are, so a record's byte offset can be turned
/// into the 1-based line an editor shows (blank lines included).
///
/// Offsets are queried in increasing order, so only newlines not yet passed are kept (about
/// one read buffer's worth).
struct LineTracker<R> {
    inner: R,
    consumed: u64,
    pending: RefCell<VecDeque<u64>>,
    passed: Cell<u64>,
}

impl<R: Read> LineTracker<R> {
    fn new(inner: R) -> Self {
        LineTracker {
            inner,
            consumed: 0,
            pending: RefCell::new(VecDeque::new()),
            passed: Cell::new(0),
        }
    }

    /// The 1-based line holding byte `offset`; `offset` must not decrease between calls.
    fn line_at(&self, offset: u64) -> u64 {
        let mut pending = self.pending.borrow_mut();
        while pending.front().is_some_and(|&nl| nl < offset) {
            pending.pop_front();
            self.passed.set(self.passed.get() + 1);
        }
        self.passed.get() + 1
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let pending = self.pending.get_mut();
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' {
                pending.push_back(self.consumed + i as u64);
            }
        }
        self.consumed += n as u64;
        Ok(n)
    }
}

/// Finds the label column: a header name, `"last"` or `"#N"`.
fn resolve_label(
    opts: &CsvOptions,
    header: Option<&[String]>,
    ncols: usize,
    path: &Path,
) -> Result<Option<usize>, DataError> {
    let Some(spec) = opts.label_column.as_deref() else {
        return Ok(None);
    };
    let spec = spec.trim();
    if let Some(j) = header.and_then(|h| h.iter().position(|n| n == spec)) {
        return Ok(Some(j));
    }
    if spec.eq_ignore_ascii_case("last") {
        return Ok(Some(ncols.saturating_sub(1)));
    }
    if let Some(j) = spec.strip_prefix('#').and_then(|r| r.parse::<usize>().ok()) {
        if j < ncols {
            return Ok(Some(j));
        }
        return Err(DataError::format(
            path,
            format!(
                "label_column \"{spec}\" is out of range: the file has {ncols} columns; use \
                 \"#0\"..\"#{}\" or \"last\"",
                ncols.saturating_sub(1)
            ),
        ));
    }
    Err(DataError::format(
        path,
        match header {
            Some(h) => {
                const SHOWN: usize = 40;
                let mut list = h
                    .iter()
                    .take(SHOWN)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if h.len() > SHOWN {
                    list.push_str(&format!(", ... ({} more)", h.len() - SHOWN));
                }
                format!(
                    "no column named \"{spec}\"; columns are: {list}. Set label_column to one \
                     of them (or \"last\", or \"#N\" for the zero-based column N)"
                )
            }
            None => format!(
                "label_column \"{spec}\" is a column name but the file has no header \
                 (has_header = false); use \"last\" or \"#N\" with a zero-based column index \
                 in 0..{ncols}"
            ),
        },
    ))
}

/// Common spellings of a missing value.
fn is_missing_marker(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "na" | "n/a" | "null" | "none" | "?" | "-" | "missing"
    )
}

/// Parses a finite `f32`; the error names the value kind (`what`) and the fix.
pub(crate) fn parse_real(s: &str, what: &str, fix: &str) -> Result<f32, String> {
    if s.is_empty() {
        return Err(format!(
            "empty value (missing data) is not allowed in {what}; {fix}"
        ));
    }
    if is_missing_marker(s) {
        return Err(format!(
            "\"{s}\" marks a missing value, which is not allowed in {what}; {fix}"
        ));
    }
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => {
            let lower = s.to_ascii_lowercase();
            if lower.contains("nan") || lower.contains("inf") {
                Err(format!("NaN/inf is not allowed in {what}; {fix}"))
            } else {
                Err(format!(
                    "{s} is too large for a 32-bit float (|x| <= 3.4e38); rescale the column"
                ))
            }
        }
        Err(_) => Err(format!(
            "\"{s}\" is not a number; use a plain decimal such as 0.25"
        )),
    }
}

/// Parses a class label: a non-negative integer (written as `3` or `3.0`).
fn parse_class(s: &str) -> Result<u32, String> {
    let not_label = || {
        format!(
            "\"{s}\" is not a class label; labels must be integers in 0..num_classes (map class \
             names to 0, 1, 2, ... first)"
        )
    };
    let v: f64 = s.parse().map_err(|_| not_label())?;
    if !v.is_finite() {
        return Err(not_label());
    }
    if v < 0.0 {
        return Err(format!(
            "class {s} is negative; labels must be integers in 0..num_classes"
        ));
    }
    if v.fract() != 0.0 {
        return Err(format!(
            "{s} is not a whole number; class labels must be integers in 0..num_classes (for \
             real-valued targets set task = regression)"
        ));
    }
    if v > f64::from(u32::MAX) {
        return Err(format!(
            "class {s} is too large; labels must be integers in 0..num_classes"
        ));
    }
    Ok(v as u32)
}

fn csv_error(path: &Path, e: ::csv::Error, line: Option<u64>) -> DataError {
    let reason = format!("{e}; check the CSV syntax (quotes must be balanced)");
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => DataError::io(path, io),
        _ => DataError::Format {
            path: path.to_path_buf(),
            line,
            column: None,
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_parsing() {
        assert_eq!(parse_class("3"), Ok(3));
        assert_eq!(parse_class("3.0"), Ok(3));
        assert!(parse_class("-1").unwrap_err().contains("negative"));
        assert!(parse_class("1.5").unwrap_err().contains("whole number"));
        assert!(parse_class("cat")
            .unwrap_err()
            .contains("not a class label"));
    }

    #[test]
    fn real_parsing() {
        assert_eq!(parse_real("0.25", "features", "fix"), Ok(0.25));
        assert!(parse_real("nan", "features", "fix")
            .unwrap_err()
            .contains("NaN/inf"));
        assert!(parse_real("1e39", "features", "fix")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_real("NA", "features", "fix")
            .unwrap_err()
            .contains("missing"));
    }
}
