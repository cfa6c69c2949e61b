//! The crate's error type: each message names the file, folder or field, and the fix.

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
    /// A measurement that does not apply to this run (a task without classes, a fraction outside
    /// its range).
    #[error("{what}: {reason}")]
    Unsupported {
        /// The measurement, e.g. `retraining score`.
        what: String,
        /// Why, and what to do.
        reason: String,
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
    /// Errors of the methods (scores that do not load, groupings of another run).
    #[error(transparent)]
    Method(#[from] methods::MethodError),
    /// Errors of the run directory, its retrainings and its store (`attrib-run`).
    #[error(transparent)]
    Run(#[from] run::RunError),
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
