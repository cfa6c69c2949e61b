//! The crate's error type: every message says what is wrong and how to fix it.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or transforming data.
///
/// Display messages name the file (and line/column where that makes sense), say what is wrong
/// and end with the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened, read, decompressed or written.
    #[error("{}: {source}; {}", .path.display(), io_hint(.source))]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The file's content is malformed; `line` (1-based, as an editor shows it) and `column`
    /// locate the problem when known, `reason` says what is wrong and the fix.
    #[error("{}{}: {}", .path.display(), location(.line, .column), .reason)]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line, for text formats.
        line: Option<u64>,
        /// Column name (or `#N` for a header-less file).
        column: Option<String>,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// A required file is absent (e.g. one of the four MNIST files).
    #[error("{}: {}", .path.display(), .reason)]
    NotFound {
        /// The missing file, or the folder searched.
        path: PathBuf,
        /// What was looked for, and the fix.
        reason: String,
    },
    /// Two files (or two parts of one dataset) disagree, e.g. row counts of features and labels.
    #[error("{reason}")]
    Mismatch {
        /// Both sides named, and the fix.
        reason: String,
    },
    /// An in-memory dataset breaks an invariant (see `Dataset::validate`).
    #[error("dataset \"{name}\": {reason}")]
    InvalidDataset {
        /// The dataset's name.
        name: String,
        /// The broken invariant (with example index / feature), and the fix.
        reason: String,
    },
    /// A caller-supplied parameter is out of range (test fraction, shape, dataset name...).
    #[error("{reason}")]
    InvalidArgument {
        /// What is wrong with the parameter, and the allowed values.
        reason: String,
    },
}

impl DataError {
    /// Builds an [`DataError::Io`] naming `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> DataError {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a [`DataError::Format`] without line or column.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> DataError {
        DataError::Format {
            path: path.into(),
            line: None,
            column: None,
            reason: reason.into(),
        }
    }

    /// The file this error is about, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            DataError::Io { path, .. }
            | DataError::Format { path, .. }
            | DataError::NotFound { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn location(line: &Option<u64>, column: &Option<String>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" line {l}, column \"{c}\""),
        (Some(l), None) => format!(" line {l}"),
        (None, Some(c)) => format!(" column \"{c}\""),
        (None, None) => String::new(),
    }
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => {
            "check the path (paths in a run config are relative to the config file; others to the current directory)"
        }
        io::ErrorKind::PermissionDenied => "check the file's permissions",
        io::ErrorKind::UnexpectedEof => {
            "the file ends early (truncated download or incomplete gzip stream); fetch it again"
        }
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            "the file is corrupt or not in the expected format (a .gz file must be gzip); \
             fetch or re-export it"
        }
        _ => "check that the file exists, is readable and the disk is not full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_renders_location() {
        let e = DataError::Format {
            path: "data/x.csv".into(),
            line: Some(3),
            column: Some("petal_width".into()),
            reason: "\"abc\" is not a number; use a plain decimal such as 0.25".into(),
        };
        assert_eq!(
            e.to_string(),
            "data/x.csv line 3, column \"petal_width\": \"abc\" is not a number; use a plain \
             decimal such as 0.25"
        );
        let e = DataError::format("x.npy", "bad");
        assert_eq!(e.to_string(), "x.npy: bad");
    }

    #[test]
    fn io_names_path_and_hint() {
        let e = DataError::io("nope.csv", io::Error::from(io::ErrorKind::NotFound));
        let s = e.to_string();
        assert!(s.starts_with("nope.csv: "), "{s}");
        assert!(s.contains("check the path"), "{s}");
    }
}
