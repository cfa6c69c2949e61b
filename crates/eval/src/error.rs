//! The crate's error type: each message names the file, folder or field, and the fix.

use std::path::PathBuf;

/// What can go wrong while computing ground truth or scoring attributions (MATH.md E6).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// An argument out of range (a subset fraction, a training index), named as a field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field or argument, e.g. `spec.fraction`.
        field: String,
        /// What is wrong, and the allowed values.
        reason: String,
    },
    /// A cache folder or one of its files does not belong to this computation, or is malformed.
    #[error("{}: {reason}", .path.display())]
    Cache {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong, and the fix (usually: delete it or pick another folder).
        reason: String,
    },
    /// Reading or creating a file or folder failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// Scores and ground truth describe different runs, outputs, splits or shapes.
    #[error("{0}")]
    Mismatch(String),
    /// The ground truth lacks some subsets (an interrupted computation).
    #[error("the ground truth has {done} of {total} subsets; run the ground-truth computation again to finish it (it resumes from its cache)")]
    Incomplete {
        /// Subsets present.
        done: usize,
        /// Subsets asked for.
        total: usize,
    },
    /// Errors of the run (loading, retraining).
    #[error(transparent)]
    Method(#[from] methods::MethodError),
    /// Errors writing files through `attrib-nn`.
    #[error(transparent)]
    Nn(#[from] nn::NnError),
}

/// Shorthand for `Result<T, EvalError>`.
pub type Result<T> = std::result::Result<T, EvalError>;

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> EvalError {
    EvalError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}
