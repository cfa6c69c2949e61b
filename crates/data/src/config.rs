//! The `[data]` table of a run configuration, and loading it into train/test splits.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cifar::read_cifar10_counted;
use crate::csv::read_csv_with_lines;
use crate::idx::find_file;
use crate::provenance::{Origins, Provenance};
use crate::text::read_text_bom;
use crate::{
    embedded, flip_labels, read_mnist, read_npy_dataset, split_indices, stratified_split_indices,
    CsvOptions, DataError, Dataset, LabelNoise, Labels, Standardizer, Task,
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
    /// A UTF-8 text file at `path`, as windows of `seq_len` tokens: characters, or byte-level BPE
    /// tokens with `tokenizer = "bpe"`.
    Text,
}

impl Source {
    /// The name written in `data.source`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Digits => "digits",
            Source::BreastCancer => "breast_cancer",
            Source::Csv => "csv",
            Source::Npy => "npy",
            Source::Mnist => "mnist",
            Source::Cifar10 => "cifar10",
            Source::Text => "text",
        }
    }
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
// A zero `val_fraction` is left out of the resolved config, so runs made before the field existed
// keep their config text and fingerprint.
fn is_zero(x: &f64) -> bool {
    *x == 0.0
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
    /// Fraction of the non-test examples held out as a validation split (default 0: none). Drawn
    /// after the test split (which it never changes) with its own stream of `split_seed`, stratified
    /// like the test split; independent of `train.seed`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub val_fraction: f64,
    /// Flip this fraction of the training labels, seeded (`{ fraction = 0.2, seed = 0 }`; default
    /// none): the noisy-label benchmark of data selection. Validation and test labels stay clean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_noise: Option<LabelNoise>,
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
    /// Then subtract a fixed mean and divide by a fixed standard deviation, the same for every
    /// feature (`{ mean = 0.1307, std = 0.3081 }` after `scale = 1/255` is torchvision's MNIST
    /// `Normalize`, which dattri's benchmark uses); unlike `standardize`, not fitted to the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
    /// Reshape each example (e.g. `[1, 8, 8]` to feed digits to a CNN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_shape: Option<Vec<usize>>,
    /// Leave out the first `skip_train` training examples (after the test and validation
    /// splits, before `max_train`): a pretraining recipe with `skip_train = N` and the split
    /// fields of a fine-tuning recipe with `max_train = N` trains on windows the fine-tuning run
    /// never sees (`examples/moby_gpt_pretrain.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_train: Option<usize>,
    /// Keep only the first `max_train` training examples (after the split and `skip_train`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train: Option<usize>,
    /// Keep only the first `max_test` test examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_test: Option<usize>,
    /// Tokens per window for `text`.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// How `text` becomes tokens: one per character, or byte-level BPE ([`crate::bpe`]).
    #[serde(default, skip_serializing_if = "TextTokenizer::is_char")]
    pub tokenizer: TextTokenizer,
    /// Vocabulary size of `tokenizer = "bpe"` ([`crate::bpe::DEFAULT_VOCAB`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
}

/// [`DataConfig::tokenizer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextTokenizer {
    /// One token per character; the vocabulary is the text's characters, windows split at random.
    #[default]
    Char,
    /// Byte-level BPE trained on the training text; the test split is the text's tail.
    Bpe,
}

impl TextTokenizer {
    /// `true` for the default, which the resolved config leaves out.
    pub fn is_char(&self) -> bool {
        *self == TextTokenizer::Char
    }
}

/// A fixed affine map of every feature, `x -> (x - mean) / std` ([`DataConfig::normalize`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// Subtracted from every feature.
    pub mean: f64,
    /// Divides every feature after the mean is subtracted.
    pub std: f64,
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
            val_fraction: 0.0,
            label_noise: None,
            split_seed: 0,
            stratify: true,
            standardize: true,
            scale: None,
            normalize: None,
            example_shape: None,
            skip_train: None,
            max_train: None,
            max_test: None,
            seq_len: default_seq_len(),
            tokenizer: TextTokenizer::Char,
            vocab_size: None,
        }
    }
}

/// A training, a validation and a test set, ready to use.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training examples (the set that attribution scores index).
    pub train: Dataset,
    /// Held-out examples.
    pub test: Dataset,
    /// Validation examples, held out from both (`data.val_fraction`; empty when it is 0).
    pub val: Dataset,
    /// Training examples whose label `data.label_noise` flipped, ascending (empty without it).
    pub flipped: Vec<usize>,
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
    if cfg.vocab_size.is_some() && cfg.tokenizer != TextTokenizer::Bpe {
        return Err(DataError::InvalidArgument {
            reason:
                "data.vocab_size is the size of a BPE vocabulary: set data.tokenizer = \"bpe\" \
                     with it, or remove it"
                    .into(),
        });
    }
    if cfg.tokenizer == TextTokenizer::Bpe && cfg.source != Source::Text {
        return Err(DataError::InvalidArgument {
            reason: format!(
                "data.tokenizer = \"bpe\" tokenizes text; data.source is \"{}\": set data.source = \"text\" or remove data.tokenizer",
                format!("{:?}", cfg.source).to_lowercase()
            ),
        });
    }
    let mut tokenizer = None;
    let (train, test, train_rows, test_rows) = match cfg.source {
        Source::Text if cfg.tokenizer == TextTokenizer::Bpe => {
            let path = need_path(cfg, base)?;
            let (text, bom) = read_text_bom(&path)?;
            let vocab = cfg.vocab_size.unwrap_or(crate::bpe::DEFAULT_VOCAB);
            let (train, test, tr, te, json) = crate::bpe::bpe_splits(
                &text,
                cfg.test_fraction,
                cfg.seq_len,
                vocab,
                &file_name(&path),
                bom,
                &path,
            )?;
            tokenizer = Some(json);
            (train, test, tr, te)
        }
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
                    let chars = text.chars().count();
                    // Fewer than two windows leave a split empty, and the trainer could only
                    // blame the batch size.
                    if cfg.seq_len == 0 || chars / cfg.seq_len.max(1) < 2 {
                        return Err(DataError::format(
                            &path,
                            format!(
                                "the text has {chars} characters: too few for two windows of \
                                 data.seq_len = {} (one to train on, one to test on); use a \
                                 longer text or a data.seq_len between 1 and {}",
                                cfg.seq_len,
                                (chars / 2).max(1)
                            ),
                        ));
                    }
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
    let (train, mut val, kept, held) = split_validation(train, cfg)?;
    let val_rows = Origins::from_rows(train_rows.rows_at(&held));
    let train_rows = Origins::from_rows(train_rows.rows_at(&kept));
    let truncate = |ds: Dataset, max: Option<usize>| match max {
        Some(m) if m < ds.len() => ds.subset(&(0..m).collect::<Vec<_>>()),
        _ => ds,
    };
    if cfg.max_train == Some(0) {
        return Err(DataError::InvalidArgument {
            reason: "data.max_train = 0 keeps no training examples; remove the field to keep \
                     them all, or set it to at least train.batch_size"
                .into(),
        });
    }
    if train.is_empty() {
        return Err(DataError::InvalidArgument {
            reason: format!(
                "the training split is empty ({} examples in the test split); lower \
                 data.test_fraction = {} or use more data",
                test.len(),
                cfg.test_fraction
            ),
        });
    }
    let (train, train_rows) = match cfg.skip_train {
        Some(skip) if skip >= train.len() => {
            return Err(DataError::InvalidArgument {
                reason: format!(
                    "data.skip_train = {skip} leaves none of the {} training examples; lower it \
                     below {}",
                    train.len(),
                    train.len()
                ),
            })
        }
        Some(skip) if skip > 0 => {
            let kept: Vec<usize> = (skip..train.len()).collect();
            (
                train.subset(&kept),
                Origins::from_rows(train_rows.rows_at(&kept)),
            )
        }
        _ => (train, train_rows),
    };
    let mut train = truncate(train, cfg.max_train);
    let mut test = truncate(test, cfg.max_test);
    let flipped = match &cfg.label_noise {
        Some(noise) => flip_labels(&mut train, noise)?,
        None => Vec::new(),
    };
    // After the flips: a split's recorded label is the one the model is trained or scored on.
    let all_of = |ds: &Dataset| (0..ds.len()).collect::<Vec<_>>();
    let mut provenance = Provenance {
        tokenizer,
        splits: vec![
            train_rows.select(&all_of(&train), "train", &train),
            test_rows.select(&all_of(&test), "test", &test),
        ],
    };
    if !val.is_empty() {
        provenance
            .splits
            .push(val_rows.select(&all_of(&val), "val", &val));
    }
    if cfg.standardize && matches!(train.features, crate::Features::Dense { .. }) {
        let st = Standardizer::fit(&train);
        st.try_apply(&mut train)?;
        st.try_apply(&mut test)?;
        st.try_apply(&mut val)?;
    }
    if let Some(factor) = cfg.scale {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(DataError::InvalidArgument {
                reason: format!("data.scale = {factor} must be a positive finite number"),
            });
        }
        crate::scale(&mut train, factor as f32);
        crate::scale(&mut test, factor as f32);
        crate::scale(&mut val, factor as f32);
    }
    if let Some(n) = &cfg.normalize {
        if !(n.mean.is_finite() && n.std.is_finite() && n.std > 0.0) {
            return Err(DataError::InvalidArgument {
                reason: format!(
                    "data.normalize = {{ mean = {}, std = {} }} needs a finite mean and a \
                     positive finite std",
                    n.mean, n.std
                ),
            });
        }
        for ds in [&mut train, &mut test, &mut val] {
            crate::normalize(ds, n.mean, n.std);
        }
    }
    if let Some(shape) = &cfg.example_shape {
        train = train.with_example_shape(shape.clone())?;
        test = test.with_example_shape(shape.clone())?;
        val = val.with_example_shape(shape.clone())?;
    }
    apply_num_classes(cfg, &mut train, &mut test)?;
    train.validate()?;
    test.validate()?;
    val.validate()?;
    Ok((
        Splits {
            train,
            test,
            val,
            flipped,
        },
        provenance,
    ))
}

/// Stream of the validation draw: `split_seed` mixed with this constant ("val"), so the draw is
/// independent of the test split's permutation and of `train.seed`.
const VAL_STREAM: u64 = 0x0076_616c;

/// Moves `data.val_fraction` of the training examples into a validation set, stratified when the
/// test split is ([`validation_indices`]); both keep ascending source order. With a zero fraction
/// the training set is returned untouched and the validation set is empty. The last two values
/// are the positions (in `train`) that each kept, for the provenance rows.
fn split_validation(
    train: Dataset,
    cfg: &DataConfig,
) -> Result<(Dataset, Dataset, Vec<usize>, Vec<usize>), DataError> {
    let f = cfg.val_fraction;
    if f == 0.0 {
        let empty = train.subset(&[]);
        let all = (0..train.len()).collect();
        return Ok((train, empty, all, Vec::new()));
    }
    let (tr, va) = validation_indices(&train, f, cfg.stratify, cfg.split_seed)?;
    if va.is_empty() || tr.is_empty() {
        return Err(DataError::InvalidArgument {
            reason: format!(
                "data.val_fraction = {f} leaves {} validation and {} training examples out of {}; \
                 both must be non-empty, choose a fraction between {:.4} and {:.4}",
                va.len(),
                tr.len(),
                train.len(),
                1.0 / train.len().max(1) as f64,
                1.0 - 1.0 / train.len().max(1) as f64
            ),
        });
    }
    Ok((train.subset(&tr), train.subset(&va), tr, va))
}

/// `(train, val)` indices into the non-test examples, both ascending: the validation set is the
/// first `round(n * f)` of a permutation seeded from `split_seed ^ VAL_STREAM` (per class when
/// stratified, as [`stratified_split_indices`]).
fn validation_indices(
    train: &Dataset,
    f: f64,
    stratify: bool,
    split_seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if !(f > 0.0 && f < 1.0) {
        return Err(DataError::InvalidArgument {
            reason: format!(
                "data.val_fraction = {f} is out of range; use 0 (no validation split) or a \
                 fraction strictly between 0 and 1, e.g. 0.1"
            ),
        });
    }
    let seed = split_seed ^ VAL_STREAM;
    match (&train.labels, stratify) {
        (Labels::Classes { y, num_classes, .. }, true) => {
            let (tr, va) = stratified_split_indices(y, *num_classes, f, seed)?;
            Ok((tr, va))
        }
        _ => split_indices(train.len(), f, seed),
    }
}

/// Honours `data.num_classes` where it can mean something, and refuses it where it cannot: a
/// `csv` or `npy` file may lack some classes, so a count at least the labels' is the model's
/// number of outputs; the embedded sets, MNIST and CIFAR-10 have a fixed class count; regression
/// and text have no classes.
///
/// # Errors
/// A count below the labels present, a count that differs from a fixed-class source's, or any
/// count for unlabelled or real-valued data, each naming `data.num_classes` and the fix.
fn apply_num_classes(
    cfg: &DataConfig,
    train: &mut Dataset,
    test: &mut Dataset,
) -> Result<(), DataError> {
    let Some(want) = cfg.num_classes else {
        return Ok(());
    };
    let source = cfg.source.name();
    let refuse = |reason: String| Err(DataError::InvalidArgument { reason });
    let have = match &train.labels {
        Labels::Classes { num_classes, .. } => *num_classes,
        Labels::Real(_) => {
            return refuse(format!(
                "data.num_classes = {want} is for classification, but the {source} data has \
                 real-valued (regression) targets; remove data.num_classes"
            ))
        }
        Labels::None => {
            return refuse(format!(
                "data.num_classes = {want} is for classification, but the {source} data has no \
                 labels; remove data.num_classes"
            ))
        }
    };
    match cfg.source {
        Source::Csv | Source::Npy if want >= have => {
            for ds in [train, test] {
                if let Labels::Classes { num_classes, .. } = &mut ds.labels {
                    *num_classes = want;
                }
            }
            Ok(())
        }
        Source::Csv | Source::Npy => refuse(format!(
            "data.num_classes = {want} but the labels of {source} file go up to {} ({have} \
             classes); set data.num_classes to at least {have}, or remove it",
            have - 1
        )),
        _ if want == have => Ok(()),
        _ => refuse(format!(
            "data.num_classes = {want} but the {source} data has exactly {have} classes, which the \
             field cannot change; remove data.num_classes (it is for csv and npy files that may \
             lack some classes)"
        )),
    }
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
    fn source_names_are_the_config_spelling() {
        for s in [
            Source::Digits,
            Source::BreastCancer,
            Source::Csv,
            Source::Npy,
            Source::Mnist,
            Source::Cifar10,
            Source::Text,
        ] {
            let cfg: DataConfig = toml::from_str(&format!("source = \"{}\"", s.name())).unwrap();
            assert_eq!(cfg.source, s);
        }
    }

    // See: issue 13, item 6.
    #[test]
    fn num_classes_is_honoured_or_refused() {
        let mut cfg = DataConfig::new(Source::Digits);
        cfg.num_classes = Some(10);
        load_splits(&cfg, Path::new(".")).unwrap();
        for k in [3, 12] {
            cfg.num_classes = Some(k);
            let e = load_splits(&cfg, Path::new(".")).unwrap_err().to_string();
            assert!(
                e.contains(&format!("data.num_classes = {k}")) && e.contains("exactly 10 classes"),
                "{e}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.csv"),
            "x,label\n0.5,0\n1.5,1\n2.5,0\n3.5,1\n4.5,1\n",
        )
        .unwrap();
        let mut cfg = DataConfig::new(Source::Csv);
        cfg.path = Some("t.csv".into());
        cfg.label_column = Some("label".into());
        cfg.num_classes = Some(4);
        let s = load_splits(&cfg, dir.path()).unwrap();
        for ds in [&s.train, &s.test] {
            assert!(
                matches!(ds.labels, Labels::Classes { num_classes: 4, .. }),
                "{:?}",
                ds.labels
            );
        }
        cfg.num_classes = Some(1);
        let e = load_splits(&cfg, dir.path()).unwrap_err().to_string();
        assert!(e.contains("num_classes"), "{e}");
        cfg.task = Task::Regression;
        cfg.num_classes = Some(2);
        let e = load_splits(&cfg, dir.path()).unwrap_err().to_string();
        assert!(e.contains("regression"), "{e}");
    }

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
    fn normalize_applies_a_fixed_mean_and_std_after_scale() {
        let mut cfg = DataConfig::new(Source::Digits);
        cfg.standardize = false;
        cfg.scale = Some(1.0 / 16.0);
        let unit = load_splits(&cfg, Path::new(".")).unwrap();
        cfg.normalize = Some(Normalize {
            mean: 0.25,
            std: 0.5,
        });
        let normed = load_splits(&cfg, Path::new(".")).unwrap();
        let dense = |ds: &crate::Dataset| match &ds.features {
            crate::Features::Dense { values, .. } => values.clone(),
            crate::Features::Tokens { .. } => panic!("dense"),
        };
        for (split_unit, split_normed) in [(&unit.train, &normed.train), (&unit.test, &normed.test)]
        {
            for (u, n) in dense(split_unit).iter().zip(&dense(split_normed)) {
                let expected = ((f64::from(*u) - 0.25) / 0.5) as f32;
                assert_eq!(*n, expected);
            }
        }
        cfg.normalize = Some(Normalize {
            mean: 0.0,
            std: 0.0,
        });
        let e = load_splits(&cfg, Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("data.normalize") && e.contains("std"), "{e}");
    }

    #[test]
    fn label_noise_flips_training_labels_only() {
        let mut cfg = DataConfig::new(Source::Digits);
        cfg.val_fraction = 0.2;
        let clean = load_splits(&cfg, Path::new(".")).unwrap();
        assert!(clean.flipped.is_empty());
        cfg.label_noise = Some(LabelNoise {
            fraction: 0.2,
            seed: 0,
        });
        let noisy = load_splits(&cfg, Path::new(".")).unwrap();
        assert_eq!((&noisy.val, &noisy.test), (&clean.val, &clean.test));
        assert_eq!(noisy.train.features, clean.train.features);
        let y = |d: &Dataset| match &d.labels {
            Labels::Classes { y, .. } => y.clone(),
            _ => unreachable!(),
        };
        let (a, b) = (y(&clean.train), y(&noisy.train));
        let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        assert_eq!(differ, noisy.flipped);
        assert_eq!(differ.len(), (0.2 * a.len() as f64).round() as usize);
    }

    #[test]
    fn validation_split_is_disjoint_stratified_and_leaves_test_alone() {
        let base = load_splits(&DataConfig::new(Source::Digits), Path::new(".")).unwrap();
        assert!(base.val.is_empty());
        let mut cfg = DataConfig::new(Source::Digits);
        cfg.standardize = false;
        cfg.val_fraction = 0.1;
        let s = load_splits(&cfg, Path::new(".")).unwrap();
        let mut raw = DataConfig::new(Source::Digits);
        raw.standardize = false;
        let r = load_splits(&raw, Path::new(".")).unwrap();
        // The test split is unchanged; validation and training partition the old training set.
        assert_eq!(s.test, r.test);
        assert_eq!(s.train.len() + s.val.len(), r.train.len());
        assert!((s.val.len() as f64 - 0.1 * r.train.len() as f64).abs() <= 10.0);
        let rows = |d: &Dataset| match &d.features {
            crate::Features::Dense { values, .. } => {
                values.chunks(64).map(|c| c.to_vec()).collect::<Vec<_>>()
            }
            _ => unreachable!(),
        };
        let (tr, va, all) = (rows(&s.train), rows(&s.val), rows(&r.train));
        let (mut i, mut j) = (0, 0);
        for row in &all {
            // Both keep source order, so a merge walk must consume every old row exactly once.
            if i < tr.len() && &tr[i] == row {
                i += 1;
            } else {
                assert_eq!(&va[j], row);
                j += 1;
            }
        }
        assert_eq!((i, j), (tr.len(), va.len()));
        // Stratified: every class has about 10% of its training examples in validation.
        let (Labels::Classes { y: yv, .. }, Labels::Classes { y: ya, .. }) =
            (&s.val.labels, &r.train.labels)
        else {
            panic!("classes")
        };
        for c in 0..10u32 {
            let nv = yv.iter().filter(|&&v| v == c).count() as f64;
            let na = ya.iter().filter(|&&v| v == c).count() as f64;
            assert!(
                (nv - 0.1 * na).abs() <= 0.5 + 1e-9,
                "class {c}: {nv} of {na}"
            );
        }
        // Deterministic; the training seed is not an input.
        let again = load_splits(&cfg, Path::new(".")).unwrap();
        assert_eq!(again.val, s.val);
    }

    #[test]
    fn skip_train_leaves_out_exactly_the_windows_max_train_keeps() {
        let cfg = |skip: Option<usize>, max: Option<usize>| {
            let mut c = DataConfig::new(Source::Digits);
            c.standardize = false;
            c.val_fraction = 0.1;
            c.skip_train = skip;
            c.max_train = max;
            load_splits_with_provenance(&c, Path::new(".")).unwrap()
        };
        let (all, all_rows) = cfg(None, None);
        let (head, head_rows) = cfg(None, Some(100));
        let (rest, rest_rows) = cfg(Some(100), None);
        let (mid, mid_rows) = cfg(Some(100), Some(50));
        let n = all.train.len();
        let range = |a: usize, b: usize| (a..b).collect::<Vec<_>>();
        assert_eq!(head.train, all.train.subset(&range(0, 100)));
        assert_eq!(rest.train, all.train.subset(&range(100, n)));
        assert_eq!(mid.train, all.train.subset(&range(100, 150)));
        // The held-out splits do not move, and provenance follows the kept examples.
        assert_eq!((&rest.test, &rest.val), (&all.test, &all.val));
        let rows = |p: &Provenance| p.split("train").unwrap().rows.clone();
        assert_eq!(rows(&head_rows), rows(&all_rows)[..100]);
        assert_eq!(rows(&rest_rows), rows(&all_rows)[100..]);
        assert_eq!(rows(&mid_rows), rows(&all_rows)[100..150]);
        assert_eq!(rest_rows.split("val"), all_rows.split("val"));
        let mut c = DataConfig::new(Source::Digits);
        c.skip_train = Some(10_000);
        let e = load_splits(&c, Path::new(".")).unwrap_err().to_string();
        assert!(
            e.contains("data.skip_train") && e.contains("lower it"),
            "{e}"
        );
    }

    #[test]
    fn bad_validation_fraction_names_the_field() {
        for f in [1.0, -0.1, 1.5] {
            let mut cfg = DataConfig::new(Source::Digits);
            cfg.val_fraction = f;
            let e = load_splits(&cfg, Path::new(".")).unwrap_err().to_string();
            assert!(e.contains("data.val_fraction"), "{f}: {e}");
        }
        let mut cfg = DataConfig::new(Source::Digits);
        cfg.val_fraction = 1e-5;
        let e = load_splits(&cfg, Path::new(".")).unwrap_err().to_string();
        assert!(
            e.contains("data.val_fraction") && e.contains("non-empty"),
            "{e}"
        );
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
