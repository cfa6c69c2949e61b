//! Dataset readers (CSV, `.npy`, MNIST IDX, CIFAR-10 binary, text), splits, standardisation and
//! the embedded demo sets of the attrib project.
//!
//! Everything is pure Rust. Features are held in memory as `f32`, row-major, example after
//! example. Every reader returns `Result<_, DataError>`; the error's message names the file, the
//! line and/or column where that makes sense, what is wrong and how to fix it. [`write_atomic`]
//! is the workspace's one atomic file write.
//!
//! Sibling crates, in the order data flows: `attrib-data` (readers, splits, the atomic write), `attrib-engine` (tensors,
//! differentiation, randomness, the hash), `attrib-nn` (models, optimizers, trainer), `attrib-run`
//! (the run directory, retraining, the artefact store), `attrib-methods` (attribution methods),
//! `attrib-eval` (measurements against retraining), `attrib-cli` (the binary).

#![warn(missing_docs)]

pub mod bpe;
mod cifar;
pub mod config;
mod csv;
mod embedded;
mod error;
mod idx;
mod io_util;
mod label_noise;
mod npy;
mod preprocess;
pub mod provenance;
mod split;
mod text;
mod weights;

pub use crate::bpe::BpeTokenizer;
pub use crate::cifar::{read_cifar10_bin, CIFAR10_CLASSES, CIFAR10_RECORD_BYTES};
pub use crate::config::{
    load_splits, load_splits_with_provenance, DataConfig, Normalize, Source, Splits, TextTokenizer,
};
pub use crate::csv::{read_csv, read_csv_reader, CsvOptions, Task};
pub use crate::embedded::{
    breast_cancer, digits, embedded, shared_data_dir, BREAST_CANCER_FEATURES, EMBEDDED_NAMES,
};
pub use crate::error::DataError;
pub use crate::idx::{read_idx_images, read_idx_labels, read_mnist, FASHION_MNIST_CLASSES};
pub use crate::io_util::write_atomic;
pub use crate::label_noise::{flip_labels, LabelNoise};
pub use crate::npy::{
    read_npy_dataset, read_npy_f32, read_npy_f64, write_npy_f32, NpyRowReader, NpyRowWriter,
};
pub use crate::preprocess::{normalize, scale, Standardizer};
pub use crate::provenance::{
    provenance_path, Provenance, SourceRow, SplitRows, PROVENANCE_DIR, TOKENIZER_FILE,
};
pub use crate::split::{
    seeded_permutation, split_indices, stratified_split_indices, uniform_below,
};
pub use crate::text::{char_corpus, decode_chars, encode_chars, read_text};
pub use crate::weights::read_weights;

/// Features of every example, row-major, example after example.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// Real-valued features; `shape` is the shape of ONE example, e.g. `[64]`, `[1, 8, 8]`,
    /// `[3, 32, 32]`. Invariant: `values.len() == n * shape.iter().product()`.
    Dense {
        /// All feature values, example after example (row-major within an example).
        values: Vec<f32>,
        /// Shape of one example.
        shape: Vec<usize>,
    },
    /// Token sequences for language modelling: `ids.len() == n * seq_len`, every id < vocab.
    Tokens {
        /// Token ids, sequence after sequence.
        ids: Vec<u32>,
        /// Tokens per sequence (example).
        seq_len: usize,
        /// Vocabulary size: every id is `< vocab`.
        vocab: usize,
    },
}

/// Targets of every example.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// Class indices in `0..num_classes`; `class_names`, when present, has `num_classes` entries.
    Classes {
        /// One class index per example.
        y: Vec<u32>,
        /// Number of classes (may exceed the largest label present).
        num_classes: usize,
        /// Optional human-readable class names, indexed by class.
        class_names: Option<Vec<String>>,
    },
    /// Real-valued regression targets, one per example.
    Real(Vec<f32>),
    /// No labels (language modelling: the targets are the next tokens).
    None,
}

/// A named set of examples: features, labels and optional per-feature names.
///
/// Invariants (checked by [`Dataset::validate`]): the label count equals [`Dataset::len`],
/// features are finite, class labels are `< num_classes` and token ids are `< vocab`.
/// For [`Features::Tokens`] datasets `feature_names`, when present, holds the vocabulary
/// (one entry per token id) so that ids can be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Short name (file stem, folder name or demo-set name), used in messages and reports.
    pub name: String,
    /// Features of every example.
    pub features: Features,
    /// Labels of every example (or none).
    pub labels: Labels,
    /// Dense: one name per feature (example_len entries); Tokens: the vocabulary.
    pub feature_names: Option<Vec<String>>,
}

impl Dataset {
    /// Number of examples (derived from the features).
    pub fn len(&self) -> usize {
        match &self.features {
            Features::Dense { values, .. } => {
                values.len().checked_div(self.example_len()).unwrap_or(0)
            }
            Features::Tokens { ids, seq_len, .. } => ids.len().checked_div(*seq_len).unwrap_or(0),
        }
    }

    /// True when the dataset has no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of one example: the dense shape, or `[seq_len]` for token sequences.
    pub fn example_shape(&self) -> Vec<usize> {
        match &self.features {
            Features::Dense { shape, .. } => shape.clone(),
            Features::Tokens { seq_len, .. } => vec![*seq_len],
        }
    }

    /// Number of scalar values in one example (the product of [`Dataset::example_shape`]).
    pub fn example_len(&self) -> usize {
        match &self.features {
            Features::Dense { shape, .. } => shape.iter().product(),
            Features::Tokens { seq_len, .. } => *seq_len,
        }
    }

    /// Number of classes for classification datasets, `None` otherwise.
    pub fn num_classes(&self) -> Option<usize> {
        match &self.labels {
            Labels::Classes { num_classes, .. } => Some(*num_classes),
            _ => None,
        }
    }

    /// The examples at `idx`, in the given order (repeats allowed); name, shape, class names and
    /// feature names are kept.
    ///
    /// # Panics
    /// Panics if an index is `>= self.len()` (indices are assumed valid).
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let n = self.len();
        for &i in idx {
            assert!(i < n, "subset index {i} out of range for {n} examples");
        }
        let d = self.example_len();
        let features = match &self.features {
            Features::Dense { values, shape } => {
                let mut out = Vec::with_capacity(idx.len() * d);
                for &i in idx {
                    out.extend_from_slice(&values[i * d..(i + 1) * d]);
                }
                Features::Dense {
                    values: out,
                    shape: shape.clone(),
                }
            }
            Features::Tokens {
                ids,
                seq_len,
                vocab,
            } => {
                let mut out = Vec::with_capacity(idx.len() * seq_len);
                for &i in idx {
                    out.extend_from_slice(&ids[i * seq_len..(i + 1) * seq_len]);
                }
                Features::Tokens {
                    ids: out,
                    seq_len: *seq_len,
                    vocab: *vocab,
                }
            }
        };
        let labels = match &self.labels {
            Labels::Classes {
                y,
                num_classes,
                class_names,
            } => Labels::Classes {
                y: idx.iter().map(|&i| y[i]).collect(),
                num_classes: *num_classes,
                class_names: class_names.clone(),
            },
            Labels::Real(y) => Labels::Real(idx.iter().map(|&i| y[i]).collect()),
            Labels::None => Labels::None,
        };
        Dataset {
            name: self.name.clone(),
            features,
            labels,
            feature_names: self.feature_names.clone(),
        }
    }

    /// Reshapes dense examples, e.g. `[64]` -> `[1, 8, 8]`; the data is unchanged.
    ///
    /// Errors if the product of `shape` differs from [`Dataset::example_len`] or the features
    /// are token sequences.
    pub fn with_example_shape(mut self, shape: Vec<usize>) -> Result<Dataset, DataError> {
        let old_len = self.example_len();
        match &mut self.features {
            Features::Dense { shape: old, .. } => {
                let new_len: usize = shape.iter().product();
                if new_len != old_len {
                    return Err(DataError::InvalidArgument {
                        reason: format!(
                            "cannot reshape examples of dataset \"{}\" from {:?} ({} values) to \
                             {:?} ({} values); the product of the new shape must equal {}",
                            self.name, old, old_len, shape, new_len, old_len
                        ),
                    });
                }
                *old = shape;
                Ok(self)
            }
            Features::Tokens { .. } => Err(DataError::InvalidArgument {
                reason: format!(
                    "cannot reshape dataset \"{}\": it holds token sequences, not dense \
                     features; only dense examples can be reshaped",
                    self.name
                ),
            }),
        }
    }

    /// Checks the invariants: lengths consistent, features finite (naming the example index and
    /// feature), labels `< num_classes`, token ids `< vocab`.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |reason: String| DataError::InvalidDataset {
            name: self.name.clone(),
            reason,
        };
        let d = self.example_len();
        match &self.features {
            Features::Dense { values, shape } => {
                if d == 0 {
                    if !values.is_empty() {
                        return Err(bad(format!(
                            "example shape {shape:?} has no values but {} feature values are \
                             stored; give each example a non-empty shape",
                            values.len()
                        )));
                    }
                } else if values.len() % d != 0 {
                    return Err(bad(format!(
                        "{} feature values is not a multiple of the example length {d} (shape \
                         {shape:?}); the values must hold whole examples",
                        values.len()
                    )));
                }
                if let Some(names) = &self.feature_names {
                    if names.len() != d {
                        return Err(bad(format!(
                            "{} feature names for {d} features per example; give one name per \
                             feature or none",
                            names.len()
                        )));
                    }
                }
                // d == 0 implies no values (checked above), so `max(1)` only avoids a 0 divisor.
                if let Some(k) = values.iter().position(|v| !v.is_finite()) {
                    let d = d.max(1);
                    let (i, j) = (k / d, k % d);
                    let fname = match &self.feature_names {
                        Some(names) => format!(" (\"{}\")", names[j]),
                        None => String::new(),
                    };
                    return Err(bad(format!(
                        "example {i}, feature {j}{fname}: value {} is not finite; NaN/inf is not \
                         allowed in features, clean or impute the value",
                        values[k]
                    )));
                }
            }
            Features::Tokens {
                ids,
                seq_len,
                vocab,
            } => {
                if *seq_len == 0 {
                    if !ids.is_empty() {
                        return Err(bad(
                            "seq_len is 0 but token ids are stored; use seq_len >= 1".to_string(),
                        ));
                    }
                } else if ids.len() % seq_len != 0 {
                    return Err(bad(format!(
                        "{} token ids is not a multiple of seq_len {seq_len}; the ids must hold \
                         whole sequences",
                        ids.len()
                    )));
                }
                if let Some(k) = ids.iter().position(|&t| t as usize >= *vocab) {
                    return Err(bad(format!(
                        "sequence {}, position {}: token id {} is outside 0..{vocab}; every id \
                         must be below the vocabulary size",
                        k / (*seq_len).max(1),
                        k % (*seq_len).max(1),
                        ids[k]
                    )));
                }
                if let Some(names) = &self.feature_names {
                    if names.len() != *vocab {
                        return Err(bad(format!(
                            "the vocabulary (feature_names) has {} entries but vocab is {vocab}; \
                             they must agree",
                            names.len()
                        )));
                    }
                }
            }
        }
        let n = self.len();
        match &self.labels {
            Labels::Classes {
                y,
                num_classes,
                class_names,
            } => {
                if y.len() != n {
                    return Err(bad(format!(
                        "{} labels for {n} examples; there must be one label per example",
                        y.len()
                    )));
                }
                if let Some(i) = y.iter().position(|&c| c as usize >= *num_classes) {
                    return Err(bad(format!(
                        "example {i}: class {} is outside 0..{num_classes}; labels must be \
                         integers in 0..num_classes",
                        y[i]
                    )));
                }
                if let Some(names) = class_names {
                    if names.len() != *num_classes {
                        return Err(bad(format!(
                            "{} class names for {num_classes} classes; give one name per class \
                             or none",
                            names.len()
                        )));
                    }
                }
            }
            Labels::Real(y) => {
                if y.len() != n {
                    return Err(bad(format!(
                        "{} targets for {n} examples; there must be one target per example",
                        y.len()
                    )));
                }
                if let Some(i) = y.iter().position(|v| !v.is_finite()) {
                    return Err(bad(format!(
                        "example {i}: target {} is not finite; NaN/inf is not allowed in \
                         regression targets, drop or fix the example",
                        y[i]
                    )));
                }
            }
            Labels::None => {}
        }
        Ok(())
    }
}
