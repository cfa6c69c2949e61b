//! Provenance: for every position of every split, the row of the user's file it came from.
//!
//! Splits are shuffled (stratified by default) and truncated, so position `k` of the training set
//! is rarely row `k` of the file. [`crate::load_splits_with_provenance`] records, next to each
//! split, one [`SourceRow`] per position; `attrib train` writes them into the run directory as
//! `provenance/{split}.csv` (one file per split: `train.csv`, `test.csv`, and any split added
//! later), so that a score column `i` (training position `i`) or a target row can be traced back:
//!
//! ```text
//! position,file,index,line,byte_offset,byte_len,label
//! 0,iris.csv,0,2,,,0
//! 1,iris.csv,3,5,,,2
//! ```
//!
//! - `position`: index in the split (the score matrix column for `train`, the target index for
//!   `test`);
//! - `file`: the file name the example was read from (`train-images-idx3-ubyte.gz`,
//!   `data_batch_3.bin`, ...), or `embedded:digits` / `embedded:breast_cancer`;
//! - `index`: the example's 0-based index within that file: the CSV data row (header excluded),
//!   the `.npy` row, the IDX image, the CIFAR-10 record of that batch file, the text window, the
//!   embedded set's example;
//! - `line`: CSV only, the 1-based line of the row as an editor shows it;
//! - `byte_offset`, `byte_len`: text only, the window's bytes in the (decompressed) file, byte-order
//!   mark included in the offset;
//! - `label`: the example's label as the model sees it (class index or real target; empty for
//!   text).
//!
//! Read it with `numpy.genfromtxt(path, delimiter=",", names=True, dtype=None)` or
//! `pandas.read_csv(path)`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{DataError, Dataset, Labels};

/// Folder of a run directory holding the provenance files.
pub const PROVENANCE_DIR: &str = "provenance";

/// Where one example of a split came from (one row of `provenance/{split}.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRow {
    /// File name the example was read from, or `embedded:NAME`.
    pub file: String,
    /// 0-based index of the example within `file` (see the [module docs](self)).
    pub index: usize,
    /// CSV: 1-based line of the row.
    pub line: Option<u64>,
    /// Text: offset of the window's first byte in the (decompressed) file.
    pub byte_offset: Option<u64>,
    /// Text: length of the window in bytes.
    pub byte_len: Option<u64>,
    /// The label the model sees (class index, real target, or empty).
    pub label: String,
}

/// The source rows of one split, one per position.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitRows {
    /// Split name (`train`, `test`, ...): the file is `provenance/{split}.csv`.
    pub split: String,
    /// One row per position of the split.
    pub rows: Vec<SourceRow>,
}

/// The source rows of every split of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// One entry per split, in the order train, test (then any further split).
    pub splits: Vec<SplitRows>,
    /// The trained tokenizer of a `data.tokenizer = "bpe"` text, as Hugging Face's
    /// `tokenizer.json` ([`TOKENIZER_FILE`]); `None` for every other source.
    pub tokenizer: Option<String>,
}

/// The file in `provenance/` that holds a BPE run's tokenizer ([`Provenance::tokenizer`]).
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// One line of the CSV file (a [`SourceRow`] with its position).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    position: usize,
    file: String,
    index: usize,
    line: Option<u64>,
    byte_offset: Option<u64>,
    byte_len: Option<u64>,
    label: String,
}

/// Where each example of a freshly read source came from, before splitting (position = the
/// example's index in the source dataset).
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    rows: Vec<SourceRow>,
}

impl Origins {
    /// Examples `0..n` of one file, `index` = position (npy, IDX, embedded sets).
    pub(crate) fn sequential(file: &str, n: usize) -> Origins {
        Origins {
            rows: (0..n).map(|i| bare(file, i)).collect(),
        }
    }

    /// CSV rows with their 1-based lines.
    pub(crate) fn csv(file: &str, lines: &[u64]) -> Origins {
        Origins {
            rows: lines
                .iter()
                .enumerate()
                .map(|(i, &l)| SourceRow {
                    line: Some(l),
                    ..bare(file, i)
                })
                .collect(),
        }
    }

    /// Records concatenated from several files, `counts[f]` of them from `files[f]`.
    pub(crate) fn concatenated(files: &[String], counts: &[usize]) -> Origins {
        let mut rows = Vec::new();
        for (f, &c) in files.iter().zip(counts) {
            rows.extend((0..c).map(|i| bare(f, i)));
        }
        Origins { rows }
    }

    /// Text windows of `seq_len` characters every `stride` characters (as
    /// [`crate::char_corpus`] cuts them), located in bytes; `bom` bytes precede the text in the
    /// file.
    pub(crate) fn text(file: &str, text: &str, seq_len: usize, stride: usize, bom: usize) -> Self {
        let stride = stride.max(1);
        // Byte offset of every character, plus the end of the text.
        let mut at: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        at.push(text.len());
        let chars = at.len() - 1;
        let mut rows = Vec::new();
        if seq_len > 0 {
            let mut start = 0usize;
            while start + seq_len <= chars {
                let (a, b) = (at[start], at[start + seq_len]);
                rows.push(SourceRow {
                    byte_offset: Some((bom + a) as u64),
                    byte_len: Some((b - a) as u64),
                    ..bare(file, rows.len())
                });
                start += stride;
            }
        }
        Origins { rows }
    }

    /// Windows of one file given by their byte ranges `[start, end)` (BPE windows,
    /// [`crate::bpe`]).
    pub(crate) fn byte_ranges(file: &str, ranges: &[(usize, usize)]) -> Origins {
        let rows = ranges
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| SourceRow {
                byte_offset: Some(a as u64),
                byte_len: Some((b - a) as u64),
                ..bare(file, i)
            })
            .collect();
        Origins { rows }
    }

    /// Origins of the given rows, in order.
    pub(crate) fn from_rows(rows: Vec<SourceRow>) -> Origins {
        Origins { rows }
    }

    /// The rows at `idx`, in that order.
    pub(crate) fn rows_at(&self, idx: &[usize]) -> Vec<SourceRow> {
        idx.iter().map(|&i| self.rows[i].clone()).collect()
    }

    /// Number of examples described.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The rows of the examples at `idx` (in that order), labelled from `split` (the dataset
    /// made of exactly those examples).
    pub(crate) fn select(&self, idx: &[usize], name: &str, split: &Dataset) -> SplitRows {
        let rows = idx
            .iter()
            .enumerate()
            .map(|(k, &i)| SourceRow {
                label: label_text(&split.labels, k),
                ..self.rows[i].clone()
            })
            .collect();
        SplitRows {
            split: name.to_string(),
            rows,
        }
    }
}

fn bare(file: &str, index: usize) -> SourceRow {
    SourceRow {
        file: file.to_string(),
        index,
        line: None,
        byte_offset: None,
        byte_len: None,
        label: String::new(),
    }
}

fn label_text(labels: &Labels, k: usize) -> String {
    match labels {
        Labels::Classes { y, .. } => y[k].to_string(),
        Labels::Real(y) => y[k].to_string(),
        Labels::None => String::new(),
    }
}

/// `dir/provenance/{split}.csv`.
pub fn provenance_path(run_dir: &Path, split: &str) -> PathBuf {
    run_dir.join(PROVENANCE_DIR).join(format!("{split}.csv"))
}

impl Provenance {
    /// The rows of split `name`, if recorded.
    pub fn split(&self, name: &str) -> Option<&SplitRows> {
        self.splits.iter().find(|s| s.split == name)
    }

    /// Writes `run_dir/provenance/{split}.csv` for every split, each atomically (temp file +
    /// rename); returns the paths written.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, run_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        let dir = run_dir.join(PROVENANCE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let mut written = Vec::new();
        for s in &self.splits {
            let path = provenance_path(run_dir, &s.split);
            let mut w = ::csv::Writer::from_writer(Vec::new());
            for (position, r) in s.rows.iter().enumerate() {
                let rec = Record {
                    position,
                    file: r.file.clone(),
                    index: r.index,
                    line: r.line,
                    byte_offset: r.byte_offset,
                    byte_len: r.byte_len,
                    label: r.label.clone(),
                };
                w.serialize(rec)
                    .map_err(|e| DataError::format(&path, e.to_string()))?;
            }
            let bytes = w
                .into_inner()
                .map_err(|e| DataError::format(&path, e.to_string()))?;
            crate::io_util::write_atomic(&path, &bytes)?;
            written.push(path);
        }
        if let Some(json) = &self.tokenizer {
            let path = dir.join(TOKENIZER_FILE);
            crate::io_util::write_atomic(&path, json.as_bytes())?;
            written.push(path);
        }
        Ok(written)
    }
}

impl SplitRows {
    /// Reads `run_dir/provenance/{split}.csv`.
    ///
    /// # Errors
    /// A missing file (retrain the run with this version of attrib to record it), or a malformed
    /// one, naming the line.
    pub fn read(run_dir: &Path, split: &str) -> Result<SplitRows, DataError> {
        let path = provenance_path(run_dir, split);
        if !path.is_file() {
            return Err(DataError::NotFound {
                path,
                reason: format!(
                    "no provenance of the {split} split; runs trained by attrib 0.1 before \
                     provenance was recorded lack it: train the run again (`attrib train`)"
                ),
            });
        }
        let mut rdr =
            ::csv::Reader::from_path(&path).map_err(|e| DataError::format(&path, e.to_string()))?;
        let mut rows = Vec::new();
        for (k, rec) in rdr.deserialize::<Record>().enumerate() {
            let rec = rec.map_err(|e| DataError::Format {
                path: path.clone(),
                line: Some(k as u64 + 2),
                column: None,
                reason: format!("{e}; the file is written by `attrib train`, train again"),
            })?;
            if rec.position != k {
                return Err(DataError::Format {
                    path: path.clone(),
                    line: Some(k as u64 + 2),
                    column: Some("position".into()),
                    reason: format!(
                        "position {} where {k} belongs; the file is written by `attrib train`, \
                         train again",
                        rec.position
                    ),
                });
            }
            rows.push(SourceRow {
                file: rec.file,
                index: rec.index,
                line: rec.line,
                byte_offset: rec.byte_offset,
                byte_len: rec.byte_len,
                label: rec.label,
            });
        }
        Ok(SplitRows {
            split: split.to_string(),
            rows,
        })
    }
}
