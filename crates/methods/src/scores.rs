//! Score matrices `tau[target, train]` and their files: `NAME.npy` (f32, shape `[targets, n_train]`)
//! plus `NAME.json`, the sidecar below. Sign convention (MATH.md): `tau_i = d f / d w_i`, so dropping a
//! set `D` predicts `f(S \ D) ~ f(S) - sum_{i in D} tau_i`.
//!
//! ## Sidecar (`NAME.json`)
//! ```json
//! {"method": "if-cg", "options": {"damping": "0.01"}, "run_hash": "9f0c...", "output": "margin",
//!  "split": "test", "targets": [0, 1, 2], "n_train": 1437, "seconds": 3.2,
//!  "attrib_version": "0.1.0", "sign": "tau_i = d f / d w_i",
//!  "rows": {"targets": "provenance/test.csv", "columns": "provenance/train.csv"}}
//! ```
//!
//! `rows` (absent for group scores and for runs without recorded provenance) names the files,
//! relative to the run directory, that map each target and each column back to a row of the
//! user's data file (`attrib-data`'s `provenance` module describes them): target `targets[r]` is
//! line `targets[r] + 2` of the `targets` file (after its header), column `i` line `i + 2` of the
//! `columns` file.
//!
//! ## Input derivatives
//! MAGIC with the option `wrt = inputs` writes `d f / d x_i` instead (MATH.md E7 (b)): the
//! sidecar's `options` say `"wrt": "inputs"`, and the array is `[targets, n_train, d]` (`d`
//! features per example, row-major `example_shape`), or `[targets, n_train]` of their L2 norms
//! `||d f / d x_i||` with `"norm": "true"`. Tools that predict retraining from data-weight
//! scores (`lds`, `retrain-score`) refuse such files ([`Scores::check_run`]).
//!
//! ## Bounded memory
//! A score matrix can be larger than memory (targets x training examples). [`ScoreWriter`] writes
//! a file block of rows by block of rows (`attrib attribute` hands it each block of targets as it
//! is scored), and [`ScoreFile`] reads one back block by block ([`ScoreFile::blocks`], at most
//! [`READ_BLOCK_BYTES`] of rows at a time) or row by row, so `lds`, `merge`, `explain` and
//! `report` hold only the rows they are working on. The bytes are those of [`Scores::save`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{MethodError, Result};
use run::Run;

/// What a score matrix is and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreMeta {
    /// Method name.
    pub method: String,
    /// Options the method used, defaults included.
    pub options: BTreeMap<String, String>,
    /// Fingerprint of the run the scores explain.
    pub run_hash: String,
    /// The attributed output.
    pub output: String,
    /// Split of the targets.
    pub split: String,
    /// Target indices, one per row.
    pub targets: Vec<usize>,
    /// Columns: training examples, or groups when `groups` is set.
    pub n_train: usize,
    /// For group scores (MATH.md E5): the hash of the grouping whose groups are the columns
    /// ([`crate::Grouping::hash`]); absent for per-example scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
    /// Seconds the scores took to compute: the call's wall time, or, for scores assembled from
    /// parts kept in the run's store (MAGIC's finished blocks, from earlier or sharded runs), the
    /// parts' own times ([`crate::Method::attribute_timed`]), so a cached rerun does not report 0.
    pub seconds: f64,
    /// Version of attrib that wrote the file.
    pub attrib_version: String,
    /// The sign convention, spelt out.
    pub sign: String,
    /// The provenance files of the targets and the columns (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<ScoreRows>,
}

/// Provenance files (relative to the run directory) of a score matrix's targets and columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRows {
    /// Source rows of the targets' split, e.g. `provenance/test.csv`.
    pub targets: String,
    /// Source rows of the training set (the columns), `provenance/train.csv`.
    pub columns: String,
}

impl ScoreRows {
    /// The provenance files of `run` for targets of `split`, when the run directory holds them
    /// (runs trained before provenance was recorded, and in-memory runs, have none).
    pub fn of_run(run: &Run, split: &str) -> Option<ScoreRows> {
        let dir = run.dir.as_ref()?;
        let rel = |s: &str| format!("{}/{s}.csv", data::PROVENANCE_DIR);
        let exists = |s: &str| data::provenance_path(dir, s).is_file();
        (exists(split) && exists("train")).then(|| ScoreRows {
            targets: rel(split),
            columns: rel("train"),
        })
    }
}

/// A score matrix with its description.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Row-major `[targets, n_train]`.
    pub values: Vec<f64>,
    /// Description.
    pub meta: ScoreMeta,
}

/// The sign convention text written to every sidecar.
pub const SIGN: &str = "tau_i = d f / d w_i";

impl Scores {
    /// Row of target `r` (`n_train` numbers, or `n_train * d` for input derivatives).
    pub fn row(&self, r: usize) -> &[f64] {
        let len = self.row_len();
        &self.values[r * len..(r + 1) * len]
    }

    /// Numbers per row: `n_train`, times the features per example for input derivatives.
    fn row_len(&self) -> usize {
        self.values.len() / self.rows().max(1)
    }

    /// Whether these are input derivatives (`wrt = inputs`, module docs), not data-weight
    /// scores.
    pub fn is_input_derivative(&self) -> bool {
        self.meta.is_input_derivative()
    }

    /// The array's shape: `[targets, n_train]`, or `[targets, n_train, d]` for full input
    /// derivatives.
    fn shape(&self) -> Vec<usize> {
        self.meta.shape(self.row_len() / self.meta.n_train.max(1))
    }

    /// Number of targets.
    pub fn rows(&self) -> usize {
        self.meta.targets.len()
    }

    /// Writes `dir/stem.npy` and `dir/stem.json` atomically; returns the npy path.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<PathBuf> {
        let mut writer = ScoreWriter::create(dir, stem, &self.shape())?;
        writer.write_values(&self.values)?;
        writer.finish(&self.meta)
    }

    /// Reads `X.npy` and its sidecar `X.json`, checking that they agree ([`ScoreFile::open`]),
    /// and the whole matrix into memory.
    ///
    /// # Errors
    /// A missing or malformed file, or a matrix whose shape differs from the sidecar's.
    pub fn load(npy: &Path) -> Result<Scores> {
        ScoreFile::open(npy)?.all()
    }

    /// Checks that the scores explain `run` ([`ScoreMeta::check_run`]).
    ///
    /// # Errors
    /// Another run's scores (hash or training-set size differs).
    pub fn check_run(&self, run: &Run, path: &Path) -> Result<()> {
        self.meta.check_run(run, path)
    }

    /// Checks that group scores explain `run` with the columns of `groups`
    /// ([`ScoreMeta::check_groups`]).
    ///
    /// # Errors
    /// Per-example scores, scores of another grouping (hash or size differs) or of another run.
    pub fn check_groups(&self, run: &Run, groups: &crate::Grouping, path: &Path) -> Result<()> {
        self.meta.check_groups(run, groups, path)
    }
    /// Joins score files of one method computed for disjoint target ranges, rows in target order.
    /// Each part comes with the file it was read from, which the errors name.
    ///
    /// # Errors
    /// Parts from different methods, options, runs, outputs, splits or groupings (the error names
    /// both files and the field that differs, with both values), or overlapping targets (the error
    /// names the target and both files).
    pub fn merge(parts: Vec<(PathBuf, Scores)>) -> Result<Scores> {
        let metas: Vec<(PathBuf, ScoreMeta)> = parts
            .iter()
            .map(|(p, s)| (p.clone(), s.meta.clone()))
            .collect();
        let (meta, order) = merged_meta(&metas)?;
        let mut values = Vec::with_capacity(parts.iter().map(|(_, s)| s.values.len()).sum());
        for k in order {
            values.extend_from_slice(&parts[k].1.values);
        }
        Ok(Scores { values, meta })
    }
}

/// The sidecar of parts joined by [`Scores::merge`] (their rows in the returned order of parts:
/// by first target), after checking that they belong together.
///
/// # Errors
/// As [`Scores::merge`].
fn merged_meta(parts: &[(PathBuf, ScoreMeta)]) -> Result<(ScoreMeta, Vec<usize>)> {
    let Some((first_path, first)) = parts.first() else {
        return Err(MethodError::Scores {
            path: PathBuf::new(),
            reason: "nothing to merge".into(),
        });
    };
    for (path, p) in parts {
        if let Some((field, want, got)) = first.first_difference(p) {
            return Err(MethodError::Scores {
                path: path.clone(),
                reason: format!(
                    "cannot merge it with {}: its {field} is {got} but there it is {want}; \
                     merge only parts of one `attrib attribute` computation (same method, \
                     options, run, output, split and grouping)",
                    first_path.display()
                ),
            });
        }
    }
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&k| parts[k].1.targets.first().copied());
    let mut out = first.clone();
    out.targets.clear();
    out.seconds = 0.0;
    // Which file each target came from, to name both files of an overlap.
    let mut owner: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    for &k in &order {
        let (path, p) = &parts[k];
        for &t in &p.targets {
            if let Some(other) = owner.insert(t, path) {
                return Err(MethodError::Scores {
                    path: path.clone(),
                    reason: format!(
                        "target {t} is also in {}; merge parts of disjoint target ranges",
                        other.display()
                    ),
                });
            }
        }
        out.targets.extend_from_slice(&p.targets);
        out.seconds += p.seconds;
    }
    Ok((out, order))
}

/// Most bytes of rows (as f64) that [`ScoreFile::blocks`] reads at a time.
pub const READ_BLOCK_BYTES: usize = 64 << 20;

/// A score file written block of rows by block of rows (module docs, "Bounded memory"): the
/// matrix goes to a temporary file renamed onto `NAME.npy` by [`ScoreWriter::finish`], which then
/// writes the sidecar. Dropped unfinished, it leaves no file behind.
pub struct ScoreWriter {
    npy_path: PathBuf,
    npy: data::NpyRowWriter,
}

impl ScoreWriter {
    /// Starts `dir/stem.npy` for an array of `shape` (`[targets, n_train]` or `[targets,
    /// n_train, d]`, [`ScoreMeta::shape`]).
    ///
    /// # Errors
    /// I/O errors naming the folder or file.
    pub fn create(dir: &Path, stem: &str, shape: &[usize]) -> Result<ScoreWriter> {
        std::fs::create_dir_all(dir).map_err(|e| MethodError::Scores {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let npy_path = dir.join(format!("{stem}.npy"));
        let npy = data::NpyRowWriter::create(&npy_path, shape)?;
        Ok(ScoreWriter { npy_path, npy })
    }

    /// Appends whole rows, row-major, rounded to f32 as the file stores them.
    ///
    /// # Errors
    /// Values that are not whole rows or go past the shape's rows; I/O errors.
    pub fn write_values(&mut self, values: &[f64]) -> Result<()> {
        let f32s: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        Ok(self.npy.write_rows(&f32s)?)
    }

    /// Appends the rows of a block of targets.
    ///
    /// # Errors
    /// As [`ScoreWriter::write_values`].
    pub fn write_rows(&mut self, rows: &[Vec<f64>]) -> Result<()> {
        for row in rows {
            self.write_values(row)?;
        }
        Ok(())
    }

    /// Puts the matrix in place (every row must have been written) and writes its sidecar
    /// `meta` next to it; returns the npy path.
    ///
    /// # Errors
    /// Missing rows; I/O errors naming the file.
    pub fn finish(self, meta: &ScoreMeta) -> Result<PathBuf> {
        self.npy.finish()?;
        let json = self.npy_path.with_extension("json");
        let text = serde_json::to_string_pretty(meta).expect("metadata serialises");
        data::write_atomic(&json, text.as_bytes())?;
        Ok(self.npy_path)
    }
}

/// A score file opened for reading (module docs, "Bounded memory"): the sidecar is read and
/// checked against the matrix's shape at once, the rows when asked for.
pub struct ScoreFile {
    /// The `.npy` file.
    pub path: PathBuf,
    /// Its sidecar.
    pub meta: ScoreMeta,
    /// Numbers per row.
    row_len: usize,
    reader: std::sync::Mutex<data::NpyRowReader>,
}

impl ScoreFile {
    /// Opens `X.npy` and its sidecar `X.json`, checking that they agree.
    ///
    /// # Errors
    /// A missing or malformed file, or a matrix whose shape differs from the sidecar's.
    pub fn open(npy: &Path) -> Result<ScoreFile> {
        let json = npy.with_extension("json");
        let bad = |path: &Path, reason: String| MethodError::Scores {
            path: path.to_path_buf(),
            reason,
        };
        // The matrix first: when it is missing, the sidecar is not the one to blame.
        let reader = data::NpyRowReader::open(npy)?;
        let text = std::fs::read_to_string(&json).map_err(|e| {
            bad(
                &json,
                format!(
                    "cannot read the sidecar ({e}); score files come in pairs NAME.npy + NAME.json"
                ),
            )
        })?;
        let meta: ScoreMeta = serde_json::from_str(&text)
            .map_err(|e| bad(&json, format!("malformed sidecar: {e}")))?;
        let shape = reader.shape();
        let three_d = meta.is_input_derivative()
            && shape.len() == 3
            && shape[..2] == [meta.targets.len(), meta.n_train];
        if shape != [meta.targets.len(), meta.n_train] && !three_d {
            return Err(bad(
                npy,
                format!(
                    "matrix has shape {shape:?} but {} describes [{}, {}] (targets x training examples)",
                    json.display(),
                    meta.targets.len(),
                    meta.n_train
                ),
            ));
        }
        Ok(ScoreFile {
            path: npy.to_path_buf(),
            row_len: shape[1..].iter().product(),
            meta,
            reader: std::sync::Mutex::new(reader),
        })
    }

    /// Number of targets (rows).
    pub fn rows(&self) -> usize {
        self.meta.targets.len()
    }

    /// Rows `rows` as scores of their targets alone (the sidecar with `targets` cut to them).
    ///
    /// # Errors
    /// Rows past the end; I/O errors naming the file.
    pub fn read(&self, rows: std::ops::Range<usize>) -> Result<Scores> {
        let values = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .read_rows(rows.clone())?;
        let mut meta = self.meta.clone();
        meta.targets = meta.targets[rows].to_vec();
        Ok(Scores {
            values: values.into_iter().map(f64::from).collect(),
            meta,
        })
    }

    /// Row `r`: the scores of target `meta.targets[r]`.
    ///
    /// # Errors
    /// As [`ScoreFile::read`].
    pub fn row(&self, r: usize) -> Result<Vec<f64>> {
        Ok(self.read(r..r + 1)?.values)
    }

    /// The whole matrix in memory.
    ///
    /// # Errors
    /// As [`ScoreFile::read`].
    pub fn all(self) -> Result<Scores> {
        let mut s = self.read(0..self.rows())?;
        s.meta = self.meta;
        Ok(s)
    }

    /// Rows per block of [`ScoreFile::blocks`]: as many as fit in [`READ_BLOCK_BYTES`], at least 1.
    pub fn block_rows(&self) -> usize {
        (READ_BLOCK_BYTES / (8 * self.row_len.max(1))).max(1)
    }

    /// The rows in consecutive blocks of [`ScoreFile::block_rows`], in order.
    pub fn blocks(&self) -> impl Iterator<Item = Result<Scores>> + '_ {
        self.blocks_of(self.block_rows())
    }

    /// The rows in consecutive blocks of `rows` rows (the last one shorter), in order.
    ///
    /// # Panics
    /// `rows` is 0.
    pub fn blocks_of(&self, rows: usize) -> impl Iterator<Item = Result<Scores>> + '_ {
        assert!(rows > 0, "a block holds at least one row");
        (0..self.rows())
            .step_by(rows)
            .map(move |r| self.read(r..(r + rows).min(self.rows())))
    }

    /// Joins score files of one method computed for disjoint target ranges into `dir/stem.npy`
    /// block by block, as [`Scores::merge`] then [`Scores::save`] would (same bytes); returns the
    /// path and the merged sidecar.
    ///
    /// # Errors
    /// As [`Scores::merge`]; I/O errors.
    pub fn merge_into(parts: &[ScoreFile], dir: &Path, stem: &str) -> Result<(PathBuf, ScoreMeta)> {
        let metas: Vec<(PathBuf, ScoreMeta)> = parts
            .iter()
            .map(|p| (p.path.clone(), p.meta.clone()))
            .collect();
        let (meta, order) = merged_meta(&metas)?;
        let per_example = parts[0].row_len / meta.n_train.max(1);
        let mut writer = ScoreWriter::create(dir, stem, &meta.shape(per_example))?;
        for k in order {
            for block in parts[k].blocks() {
                writer.write_values(&block?.values)?;
            }
        }
        let path = writer.finish(&meta)?;
        Ok((path, meta))
    }
}

impl ScoreMeta {
    /// Whether these are input derivatives (`wrt = inputs`, module docs), not data-weight
    /// scores.
    pub fn is_input_derivative(&self) -> bool {
        self.options.get("wrt").map(String::as_str) == Some("inputs")
    }

    fn is_norm(&self) -> bool {
        self.options.get("norm").map(String::as_str) == Some("true")
    }

    /// The score array's shape for `per_example` numbers per training example in each row:
    /// `[targets, n_train]`, or `[targets, n_train, d]` for full input derivatives.
    pub fn shape(&self, per_example: usize) -> Vec<usize> {
        if per_example > 1 || (self.is_input_derivative() && !self.is_norm()) {
            vec![self.targets.len(), self.n_train, per_example]
        } else {
            vec![self.targets.len(), self.n_train]
        }
    }

    /// Checks that the scores explain `run`.
    ///
    /// # Errors
    /// Another run's scores (hash or training-set size differs).
    pub fn check_run(&self, run: &Run, path: &Path) -> Result<()> {
        if self.is_input_derivative() {
            return Err(MethodError::Scores {
                path: path.to_path_buf(),
                reason: "these are input derivatives d f / d x_i (magic with wrt = inputs), not data-weight scores; compute scores without the wrt option for this".into(),
            });
        }
        if self.groups.is_some() {
            return Err(MethodError::Scores {
                path: path.to_path_buf(),
                reason: "these are group scores (one column per group); pass their grouping with --groups, or compute per-example scores with `attrib attribute` without --groups".into(),
            });
        }
        self.check_hash(run, path)
    }

    /// Checks that group scores explain `run` with the columns of `groups`.
    ///
    /// # Errors
    /// Per-example scores, scores of another grouping (hash or size differs) or of another run.
    pub fn check_groups(&self, run: &Run, groups: &crate::Grouping, path: &Path) -> Result<()> {
        let want = groups.hash();
        match &self.groups {
            Some(h) if *h == want && self.n_train == groups.k => self.check_hash(run, path),
            Some(h) => Err(MethodError::Scores {
                path: path.to_path_buf(),
                reason: format!(
                    "the scores were computed for grouping {h} but --groups is {want} ({}); recompute them with `attrib attribute --groups`",
                    groups.how
                ),
            }),
            None => Err(MethodError::Scores {
                path: path.to_path_buf(),
                reason: "these are per-example scores; drop --groups, or compute group scores with `attrib attribute --groups`".into(),
            }),
        }
    }

    /// Checks the run hash and (for per-example scores) the training-set size.
    fn check_hash(&self, run: &Run, path: &Path) -> Result<()> {
        if self.groups.is_none() && self.n_train != run.n_train() {
            return Err(MethodError::Scores {
                path: path.to_path_buf(),
                reason: format!(
                    "scores have {} columns but the run has {} training examples; they belong to another dataset",
                    self.n_train,
                    run.n_train()
                ),
            });
        }
        if self.run_hash != run.hash {
            return Err(MethodError::Scores {
                path: path.to_path_buf(),
                reason: format!(
                    "scores were computed for run {} but this run is {}; recompute them with `attrib attribute`",
                    self.run_hash, run.hash
                ),
            });
        }
        Ok(())
    }

    /// The first field (other than targets and timing) in which `other` differs from `self`:
    /// `(name, self's value, other's value)`.
    fn first_difference(&self, other: &ScoreMeta) -> Option<(&'static str, String, String)> {
        let fields = |m: &ScoreMeta| {
            [
                ("method", m.method.clone()),
                ("options", format!("{:?}", m.options)),
                ("run", m.run_hash.clone()),
                ("output", m.output.clone()),
                ("split", m.split.clone()),
                ("column count", m.n_train.to_string()),
                (
                    "grouping",
                    m.groups.clone().unwrap_or_else(|| "none".to_string()),
                ),
            ]
        };
        fields(self)
            .into_iter()
            .zip(fields(other))
            .find(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| (name, a, b))
    }
}
