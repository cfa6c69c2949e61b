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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{MethodError, Result};
use crate::run::Run;

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
    /// Wall time of the computation.
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
    /// Row of target `r`.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.values[r * self.meta.n_train..(r + 1) * self.meta.n_train]
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
        std::fs::create_dir_all(dir).map_err(|e| MethodError::Scores {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let npy = dir.join(format!("{stem}.npy"));
        let json = dir.join(format!("{stem}.json"));
        let f32s: Vec<f32> = self.values.iter().map(|&v| v as f32).collect();
        data::write_npy_f32(&npy, &f32s, &[self.rows(), self.meta.n_train])?;
        let text = serde_json::to_string_pretty(&self.meta).expect("metadata serialises");
        nn::io::write_atomic(&json, text.as_bytes())?;
        Ok(npy)
    }

    /// Reads `X.npy` and its sidecar `X.json`, checking that they agree.
    ///
    /// # Errors
    /// A missing or malformed file, or a matrix whose shape differs from the sidecar's.
    pub fn load(npy: &Path) -> Result<Scores> {
        let json = npy.with_extension("json");
        let bad = |path: &Path, reason: String| MethodError::Scores {
            path: path.to_path_buf(),
            reason,
        };
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
        let (values, shape) = data::read_npy_f32(npy)?;
        if shape != [meta.targets.len(), meta.n_train] {
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
        Ok(Scores {
            values: values.into_iter().map(f64::from).collect(),
            meta,
        })
    }

    /// Checks that the scores explain `run`.
    ///
    /// # Errors
    /// Another run's scores (hash or training-set size differs).
    pub fn check_run(&self, run: &Run, path: &Path) -> Result<()> {
        if self.meta.groups.is_some() {
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
        match &self.meta.groups {
            Some(h) if *h == want && self.meta.n_train == groups.k => self.check_hash(run, path),
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
        if self.meta.groups.is_none() && self.meta.n_train != run.n_train() {
            return Err(MethodError::Scores {
                path: path.to_path_buf(),
                reason: format!(
                    "scores have {} columns but the run has {} training examples; they belong to another dataset",
                    self.meta.n_train,
                    run.n_train()
                ),
            });
        }
        if self.meta.run_hash != run.hash {
            return Err(MethodError::Scores {
                path: path.to_path_buf(),
                reason: format!(
                    "scores were computed for run {} but this run is {}; recompute them with `attrib attribute`",
                    self.meta.run_hash, run.hash
                ),
            });
        }
        Ok(())
    }

    /// Joins score files of one method computed for disjoint target ranges, rows in target order.
    ///
    /// # Errors
    /// Parts from different methods, options, runs or outputs, or overlapping targets.
    pub fn merge(mut parts: Vec<Scores>) -> Result<Scores> {
        let Some(first) = parts.first().cloned() else {
            return Err(MethodError::Scores {
                path: PathBuf::new(),
                reason: "nothing to merge".into(),
            });
        };
        for p in &parts {
            let m = &p.meta;
            let f = &first.meta;
            if (
                &m.method,
                &m.options,
                &m.run_hash,
                &m.output,
                &m.split,
                m.n_train,
                &m.groups,
            ) != (
                &f.method,
                &f.options,
                &f.run_hash,
                &f.output,
                &f.split,
                f.n_train,
                &f.groups,
            ) {
                return Err(MethodError::Scores {
                    path: PathBuf::new(),
                    reason: format!(
                        "cannot merge {} ({:?}) with {} ({:?}): method, options, run, output, split and grouping must agree",
                        f.method, f.options, m.method, m.options
                    ),
                });
            }
        }
        parts.sort_by_key(|p| p.meta.targets.first().copied());
        let mut out = first;
        out.values.clear();
        out.meta.targets.clear();
        out.meta.seconds = 0.0;
        for p in parts {
            if let Some(t) = p.meta.targets.iter().find(|t| out.meta.targets.contains(t)) {
                return Err(MethodError::Scores {
                    path: PathBuf::new(),
                    reason: format!("target {t} appears in two parts"),
                });
            }
            out.values.extend_from_slice(&p.values);
            out.meta.targets.extend_from_slice(&p.meta.targets);
            out.meta.seconds += p.meta.seconds;
        }
        Ok(out)
    }
}
