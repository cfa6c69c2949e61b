//! The crate's error type: each message names the method, option, file or shape, and the fix.

use std::path::PathBuf;

/// What can go wrong while attributing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MethodError {
    /// No method of that name is registered.
    #[error("unknown method \"{name}\"; known methods: {known}")]
    UnknownMethod {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// An option the method does not take.
    #[error("method {method} has no option \"{key}\"; its options are: {known}")]
    UnknownOption {
        /// The method.
        method: String,
        /// The unknown key.
        key: String,
        /// Valid keys with defaults.
        known: String,
    },
    /// An option with an invalid value.
    #[error("method {method}, option {key} = \"{value}\": {reason}")]
    BadOption {
        /// The method.
        method: String,
        /// The option.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// The run or the targets do not suit the method (e.g. a closed form for another model kind).
    #[error("{method}: {reason}")]
    Unsupported {
        /// The method.
        method: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// An iterative solver stopped before reaching its tolerance.
    #[error("{method}: {solver} did not converge in {iterations} iterations (relative residual {residual:e}); raise the iteration budget or the damping")]
    NoConvergence {
        /// The method.
        method: String,
        /// The solver.
        solver: String,
        /// Iterations run.
        iterations: usize,
        /// Final relative residual.
        residual: f64,
    },
    /// A folder is not a run directory, or files in it are inconsistent.
    #[error("{}: {reason}", .path.display())]
    Run {
        /// The run directory or file.
        path: PathBuf,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// A score file is malformed or does not match the run.
    #[error("{}: {reason}", .path.display())]
    Scores {
        /// The score file.
        path: PathBuf,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// Training or model errors.
    #[error(transparent)]
    Nn(#[from] nn::NnError),
    /// Data errors.
    #[error(transparent)]
    Data(#[from] data::DataError),
}

/// Shorthand for `Result<T, MethodError>`.
pub type Result<T> = std::result::Result<T, MethodError>;
