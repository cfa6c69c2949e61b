//! The `[data]` table of a run configuration, and loading it into train/test splits.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cifar::read_cifar10_counted;
use crate::csv::read_csv_with_lines;
use crate::idx::find_file;
use crate::provenance::{Origins, Provenance};
use crate::text::read_text_bom;
use crate::{
    embedded, read_mnist, read_npy_dataset, split_indices, stratified_split_indices, CsvOptions,
    DataError, Dataset, Labels, Standardizer, Task,
};

/// Where the examples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The embedded UCI digits (1,797 x 64, 10 classes).
    Digits,
    /// The embedded UCI breast cancer set (569 x 30, 2 classes).
    BreastCancer,
    /// A CSV file at `path` (label in `label_column`).
    Csv,
    /// `.npy` features at `path`, labels at `labels_path`.
    Npy,
    /// MNIST IDX files in the folder `path` (official train/test split).
    Mnist,
    /// CIFAR-10 binary batches in the folder `path` (`data_batch_*.bin` / `test_batch.bin`).
    Cifar10,
    /// A UTF-8 text file at `path`, as character windows of `seq_len` tokens.
    Text,
}

fn default_test_fraction() -> f64 {
    0.2
}
fn yes() -> bool {
    true
}
fn default_seq_len() -> usize {
    64
}

/// How to load and split a dataset. Every field has a default except `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Where the examples come from.
    pub source: Source,
    /// File or folder for `csv`, `npy`, `mnist`, `cifar10`, `text` (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Labels file for `npy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_path: Option<PathBuf>,
    /// Label column for `csv` (a name, `#N` or `last`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// Classification or regression (for `csv` and `npy`).
    #[serde(default)]
    pub task: Task,
    /// Number of classes, when the file may lack some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    /// Fraction of examples held out for testing (ignored where the source has an official split).
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the train/test split (independent of the training seed).
    #[serde(default)]
    pub split_seed: u64,
    /// Keep class proportions equal in both splits.
    #[serde(default = "yes")]
    pub stratify: bool,
    /// Standardise features with the training split's mean and standard deviation.
    #[serde(default = "yes")]
    pub standardize: bool,
    /// Multiply every feature by this factor, after standardisation if any (e.g. `0.0625` with
    /// `standardize = false` maps the digits' 0..16 pixels to [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Reshape each example (e.g. `[1, 8, 8]` to feed digits to a CNN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_shape: Option<Vec<usize>>,
    /// Keep only the first `max_train` training examples (after the split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train: Option<usize>,
    /// Keep only the first `max_test` test examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_test: Option<usize>,
    /// Tokens per window for `text`.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
}

impl DataConfig {
    /// A config for an embedded or file source with every other field at its default.
    pub fn new(source: Source) -> Self {
        DataConfig {
            source,
            path: None,
            labels_path: None,
            label_column: None,
            task: Task::Classification,
            num_classes: None,
            test_fraction: default_test_fraction(),
            split_seed: 0,
            stratify: true,
            standardize: true,
            scale: None,
            example_shape: None,
            max_train: None,
            max_test: None,
            seq_len: default_seq_len(),
        }
    }
}

/// A training and a test set, ready to use.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training examples (the set that attribution scores index).
    pub train: Dataset,
    /// Held-out examples.
    pub test: Dataset,
}

fn need_path(cfg: &DataConfig, base: &Path) -> Result<PathBuf, DataError> {
    let p = cfg
        .path
        .as_ref()
        .ok_or_else(|| DataError::InvalidArgument {
            reason: format!(
                "data.source = \"{:?}\" needs data.path (a file or folder)",
                cfg.source
            )
            .to_lowercase(),
        })?;
    Ok(if p.is_absolute() {
        p.clone()
    } else {
        base.join(p)
    })
}

/// Loads the configured data, splits it, and standardises both splits with training statistics.
///
/// Relative paths are resolved against `base` (the folder of the config file).
///
/// # Errors
/// Any reader error, a missing `path`, an invalid `test_fraction`, or an `example_shape` whose size
/// differs from the examples'.
pub fn load_splits(cfg: &DataConfig, base: &Path) -> Result<Splits, DataError> {
    load_splits_with_provenance(cfg, base).map(|(s, _)| s)
}

/// [`load_splits`], also returning where every position of every split came from in the user's
/// files (see [`crate::provenance`]); the splits are exactly those of [`load_splits`].
///
/// # Errors
/// As [`load_splits`].
pub fn load_splits_with_provenance(
    cfg: &DataConfig,
    base: &Path,
) -> Result<(Splits, Provenance), DataError> {
    let (train, test, train_rows, test_rows) = match cfg.source {
        Source::Mnist => {
            let dir = need_path(cfg, base)?;
            let (train, test) = (read_mnist(&dir, true)?, read_mnist(&dir, false)?);
            let file = |prefix: &str| -> Result<String, DataError> {
                Ok(file_name(&find_file(
                    &dir,
                    &format!("{prefix}-images-idx3-ubyte"),
                )?))
            };
            let tr = Origins::sequential(&file("train")?, train.len());
            let te = Origins::sequential(&file("t10k")?, test.len());
            (train, test, tr, te)
        }
        Source::Cifar10 => {
            let dir = need_path(cfg, base)?;
            let train: Vec<PathBuf> = (1..=5)
                .map(|i| dir.join(format!("data_batch_{i}.bin")))
                .collect();
            let test = [dir.join("test_batch.bin")];
            let names = |ps: &[PathBuf]| ps.iter().map(|p| file_name(p)).collect::<Vec<_>>();
            let (tr, tr_counts) = read_cifar10_counted(&train)?;
            let (te, te_counts) = read_cifar10_counted(&test)?;
            let tr_rows = Origins::concatenated(&names(&train), &tr_counts);
            let te_rows = Origins::concatenated(&names(&test), &te_counts);
            (tr, te, tr_rows, te_rows)
        }
        _ => {
            let (all, origins) = match cfg.source {
                Source::Digits => {
                    let ds = embedded::digits();
                    let o = Origins::sequential("embedded:digits", ds.len());
                    (ds, o)
                }
                Source::BreastCancer => {
                    let ds = embedded::breast_cancer();
                    let o = Origins::sequential("embedded:breast_cancer", ds.len());
                    (ds, o)
                }
                Source::Csv => {
                    let opts = CsvOptions {
                        label_column: cfg.label_column.clone(),
                        task: cfg.task,
                        has_header: true,
                        num_classes: cfg.num_classes,
                    };
                    let path = need_path(cfg, base)?;
                    let (ds, lines) = read_csv_with_lines(&path, &opts)?;
                    (ds, Origins::csv(&file_name(&path), &lines))
                }
                Source::Npy => {
                    let y = cfg.labels_path.as_ref().map(|p| {
                        if p.is_absolute() {
                            p.clone()
                        } else {
                            base.join(p)
                        }
                    });
                    let path = need_path(cfg, base)?;
                    let ds = read_npy_dataset(&path, y.as_deref(), cfg.task)?;
                    let o = Origins::sequential(&file_name(&path), ds.len());
                    (ds, o)
                }
                Source::Text => {
                    let path = need_path(cfg, base)?;
                    let (text, bom) = read_text_bom(&path)?;
                    let ds = crate::char_corpus(&text, cfg.seq_len, cfg.seq_len);
                    let o = Origins::text(&file_name(&path), &text, cfg.seq_len, cfg.seq_len, bom);
                    (ds, o)
                }
                Source::Mnist | Source::Cifar10 => unreachable!("handled above"),
            };
            debug_assert_eq!(origins.len(), all.len());
            let (tr, te) = match (&all.labels, cfg.stratify) {
                (Labels::Classes { y, num_classes, .. }, true) => {
                    stratified_split_indices(y, *num_classes, cfg.test_fraction, cfg.split_seed)?
                }
                _ => split_indices(all.len(), cfg.test_fraction, cfg.split_seed)?,
            };
            // Re-index the origins by split position: position k of a split is example tr[k].
            let pick = |idx: &[usize]| Origins::from_rows(origins.rows_at(idx));
            (all.subset(&tr), all.subset(&te), pick(&tr), pick(&te))
        }
    };
    let truncate = |ds: Dataset, max: Option<usize>| match max {
        Some(m) if m < ds.len() => ds.subset(&(0..m).collect::<Vec<_>>()),
        _ => ds,
    };
    let mut train = truncate(train, cfg.max_train);
    let mut test = truncate(test, cfg.max_test);
    let provenance = Provenance {
        splits: vec![
            train_rows.select(&(0..train.len()).collect::<Vec<_>>(), "train", &train),
            test_rows.select(&(0..test.len()).collect::<Vec<_>>(), "test", &test),
        ],
    };
    if cfg.standardize && matches!(train.features, crate::Features::Dense { .. }) {
        let st = Standardizer::fit(&train);
        st.try_apply(&mut train)?;
        st.try_apply(&mut test)?;
    }
    if let Some(factor) = cfg.scale {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(DataError::InvalidArgument {
                reason: format!("data.scale = {factor} must be a positive finite number"),
            });
        }
        crate::scale(&mut train, factor as f32);
        crate::scale(&mut test, factor as f32);
    }
    if let Some(shape) = &cfg.example_shape {
        train = train.with_example_shape(shape.clone())?;
        test = test.with_example_shape(shape.clone())?;
    }
    train.validate()?;
    test.validate()?;
    Ok((Splits { train, test }, provenance))
}

/// The file name of `path`, for provenance rows.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_split_is_stratified_and_standardised() {
        let s = load_splits(&DataConfig::new(Source::Digits), Path::new(".")).unwrap();
        assert_eq!(s.train.len() + s.test.len(), 1797);
        assert!((s.test.len() as f64 - 0.2 * 1797.0).abs() <= 10.0);
        let again = load_splits(&DataConfig::new(Source::Digits), Path::new(".")).unwrap();
        assert_eq!(s.train.len(), again.train.len());
    }

    #[test]
    fn scale_maps_raw_pixels_to_the_unit_interval() {
        let mut cfg = DataConfig::new(Source::Digits);
        cfg.standardize = false;
        cfg.scale = Some(1.0 / 16.0);
        let s = load_splits(&cfg, Path::new(".")).unwrap();
        let crate::Features::Dense { values, .. } = &s.train.features else {
            panic!("dense")
        };
        let max = values.iter().copied().fold(0.0f32, f32::max);
        assert_eq!(max, 1.0);
        assert!(values.iter().all(|&v| (0.0..=1.0).contains(&v)));
        cfg.scale = Some(-1.0);
        let e = load_splits(&cfg, Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("data.scale"), "{e}");
    }

    #[test]
    fn missing_path_is_a_clear_error() {
        let e = load_splits(&DataConfig::new(Source::Csv), Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.path"), "{e}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let e = toml::from_str::<DataConfig>("source = \"digits\"\ntest_fracton = 0.1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("test_fracton"), "{e}");
    }
}
