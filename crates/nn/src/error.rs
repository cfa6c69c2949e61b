//! The crate's error type. Every message names the file, field or step and says how to fix it.

use std::path::PathBuf;

/// What can go wrong while configuring, training or saving a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NnError {
    /// A configuration file could not be parsed or holds an invalid value.
    #[error("{}: {reason}", .path.display())]
    Config {
        /// The configuration file (or `<config>` when built in code).
        path: PathBuf,
        /// The field, what is wrong, and the fix.
        reason: String,
    },
    /// A configuration value is invalid (field named as `table.field`).
    #[error("config field {field}: {reason}")]
    Invalid {
        /// `table.field`, e.g. `optim.lr`.
        field: String,
        /// What is wrong and the allowed values.
        reason: String,
    },
    /// The data does not fit the model (shapes, label kinds).
    #[error("{0}")]
    Mismatch(String),
    /// Training produced a non-finite loss.
    #[error(
        "training diverged at step {step} (epoch {epoch}): the batch loss is {loss}. Lower the learning \
         rate (optim.lr), add a decaying schedule, or check the data for extreme values"
    )]
    Diverged {
        /// The optimizer step (0-based).
        step: usize,
        /// The epoch (0-based).
        epoch: usize,
        /// The non-finite loss.
        loss: f64,
    },
    /// A parameter file is unreadable or does not match the model.
    #[error("{}: {reason}", .path.display())]
    Params {
        /// The safetensors file.
        path: PathBuf,
        /// What does not match, and the fix.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A data error.
    #[error(transparent)]
    Data(#[from] data::DataError),
}

/// Shorthand for `Result<T, NnError>`.
pub type Result<T> = std::result::Result<T, NnError>;

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> NnError {
    NnError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}
