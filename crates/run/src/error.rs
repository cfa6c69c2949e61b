//! The crate's error type: each message names the run directory, file or field, and the fix.

use std::path::PathBuf;

/// What can go wrong with a run directory, its retrainings or its stored artefacts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A run directory or in-memory run that cannot be used (missing files, wrong sizes, a target
    /// outside its split).
    #[error("{}: {reason}", .path.display())]
    Run {
        /// The run directory (empty for a run built in memory).
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// Creating a run directory was refused (another run's folder, a foreign folder); the message
    /// names the folder and the fix.
    #[error("{0}")]
    Refused(String),
    /// An argument out of range (a subset fraction, a training index), named as a field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field or argument, e.g. `spec.subsets`.
        field: String,
        /// What is wrong, and the allowed values.
        reason: String,
    },
    /// A store entry or folder that cannot be used (another computation's folder, a corrupt file).
    #[error("{}: {reason}", .path.display())]
    Cache {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// An I/O error on a file or folder.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Errors of the models and the trainer (divergence, bad weights, parameter files).
    #[error(transparent)]
    Nn(#[from] nn::NnError),
    /// Errors reading the run's data.
    #[error(transparent)]
    Data(#[from] data::DataError),
}

/// Shorthand for `Result<T, RunError>`.
pub type Result<T> = std::result::Result<T, RunError>;

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> RunError {
    RunError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// An I/O error naming `path`, for `map_err`.
pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}
