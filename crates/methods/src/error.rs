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
    /// One shard ([`run::Shard`], set as `Run::shard`) finished its part (`done` may equal
    /// `total`: a shard never assembles); the same computation without a shard assembles the
    /// scores from the stored parts.
    #[error("{method} shard {shard}: {done} of {total} {unit} are stored; run the same command without a shard to assemble the scores (it computes only what is missing)")]
    Incomplete {
        /// The method.
        method: String,
        /// The shard, `I/N`.
        shard: String,
        /// Parts stored after this shard.
        done: usize,
        /// Parts in all.
        total: usize,
        /// What a part is (`blocks of targets`).
        unit: String,
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
    /// An argument out of range (a subset fraction, a training index), named as a field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field or argument, e.g. `spec.fraction`.
        field: String,
        /// What is wrong, and the allowed values.
        reason: String,
    },
    /// A ground-truth cache folder or one of its files does not belong to this computation, or is
    /// malformed ([`crate::groundtruth`]).
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
    /// A grouping file or grouping request is malformed or does not fit the run.
    #[error("{}: {reason}", .path.display())]
    Groups {
        /// The grouping file (or a description of the grouping).
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
    /// Errors of the run directory, its retrainings and its store (`attrib-run`).
    #[error(transparent)]
    RunDir(#[from] run::RunError),
}

/// Shorthand for `Result<T, MethodError>`.
pub type Result<T> = std::result::Result<T, MethodError>;
