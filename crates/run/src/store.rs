//! The run's artefact store: everything expensive that a later command can reuse, under one key
//! scheme and one hash function ([`engine::hash::fingerprint`]).
//!
//! A [`Key`] is a kind (`"ekfac-factors"`, `"trak-member"`, `"magic-block"`, ...) and the named
//! inputs the artefact depends on, always including the run's hash and initial parameters
//! ([`Key::for_run`]). Two shapes of entry use it:
//!
//! - **Blobs** ([`Store`]): one file per key, content-addressed,
//!   `RUN/store/{kind}/{fingerprint of the key}.{ext}`, written atomically. Reading returns the
//!   bytes or nothing; the caller checks the size or metadata and recomputes when they do not fit,
//!   so a stale or foreign file can cost time but never change a result. EK-FAC factors, TRAK
//!   ensemble members and MAGIC's finished target blocks are blobs.
//! - **Retraining folders** ([`prepare`], [`read_entry`], [`write_entry`]): retrainings are
//!   resumed one by one, so each computation gets a folder `RUN/groundtruth/{slug}/` whose
//!   `manifest.json` ([`Manifest`]) spells the key out field by field (readable, and compared in
//!   full before any entry is reused), plus one JSON file per finished retraining. The layout is
//!   documented in [`crate::retrain`].
//!
//! A new kind of artefact (explanations' verification retrainings, selections, unlearning,
//! shards) adds a kind name and its key fields; nothing else changes.

use std::path::{Path, PathBuf};

use engine::hash::fingerprint;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{io, Result, RunError};
use crate::files;
use crate::subsets::SubsetSpec;
use crate::Run;

/// Bumped when an artefact's content would change for the same key fields (a format change).
const FORMAT: &str = "store-1";

/// What an artefact depends on: its kind and named inputs (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    kind: &'static str,
    fields: Vec<(&'static str, Vec<u8>)>,
}

impl Key {
    /// A key of `kind` for an artefact of `run`: includes the run's hash (configuration and final
    /// parameters), its initial parameters when a file sets them, the attrib version and the
    /// store's format version.
    pub fn for_run(kind: &'static str, run: &Run) -> Key {
        let init: Vec<u8> = run
            .init
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        Key {
            kind,
            fields: Vec::new(),
        }
        .with("format", FORMAT)
        .with("attrib_version", env!("CARGO_PKG_VERSION"))
        .with("run", &run.hash)
        .with("init", init)
    }

    /// Adds an input the artefact depends on.
    pub fn with(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Key {
        self.fields.push((name, value.as_ref().to_vec()));
        self
    }

    /// The kind, which names the store folder.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Fingerprint of the kind and every field (names and values), 16 hex digits.
    pub fn hash(&self) -> String {
        let mut parts: Vec<&[u8]> = vec![self.kind.as_bytes()];
        for (name, value) in &self.fields {
            parts.push(name.as_bytes());
            parts.push(value);
        }
        fingerprint(&parts)
    }
}

/// The blob store of one run directory (module docs); a run built in memory has none, and then
/// nothing is read or written.
#[derive(Debug, Clone)]
pub struct Store {
    root: Option<PathBuf>,
}

impl Store {
    /// The store of `run` (`RUN/store/`), or none for a run without a directory.
    pub fn of(run: &Run) -> Store {
        Store {
            root: run.dir.as_ref().map(|d| d.join(files::STORE)),
        }
    }

    /// `RUN/store/{kind}/{hash}.{ext}`, or `None` without a run directory.
    pub fn path(&self, key: &Key, ext: &str) -> Option<PathBuf> {
        self.root
            .as_ref()
            .map(|r| r.join(key.kind()).join(format!("{}.{ext}", key.hash())))
    }

    /// The blob's bytes, or `None` when there is no store or no such (readable) file.
    pub fn get(&self, key: &Key, ext: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key, ext)?).ok()
    }

    /// Stores a blob atomically (nothing without a run directory).
    ///
    /// # Errors
    /// The folder cannot be created or the file written.
    pub fn put(&self, key: &Key, ext: &str, bytes: &[u8]) -> Result<()> {
        if let Some(path) = self.writable_path(key, ext)? {
            data::write_atomic(&path, bytes)?;
        }
        Ok(())
    }

    /// [`Store::path`] with its folder created, for writers with their own (atomic) file writer,
    /// such as `nn::io::save_params`; `None` without a run directory.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub fn writable_path(&self, key: &Key, ext: &str) -> Result<Option<PathBuf>> {
        let Some(path) = self.path(key, ext) else {
            return Ok(None);
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RunError::Cache {
                path: dir.to_path_buf(),
                reason: format!(
                    "cannot create the store folder ({e}); check the run directory's permissions"
                ),
            })?;
        }
        Ok(Some(path))
    }
}

/// File name of the manifest in a cache folder.
pub const MANIFEST: &str = "manifest.json";

/// What a cache folder holds; two computations may share a folder only if these agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `"subsets"`, `"loo"` or `"masks"` (a user's list).
    pub kind: String,
    /// The subsets (`"subsets"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SubsetSpec>,
    /// Hash of the grouping whose whole groups the subsets drop (group ground truth only; absent
    /// for subsets of single examples, so older folders read back unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
    /// Fingerprint of a user's list of masks (`"masks"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masks: Option<String>,
    /// Output name (`margin`, `loss`, `log_likelihood`).
    pub output: String,
    /// Split name (`train`, `test`).
    pub split: String,
    /// Fingerprint of the run.
    pub run_hash: String,
    /// Training examples.
    pub n_train: usize,
    /// Examples in the measured split.
    pub n_split: usize,
    /// Trainer seeds averaged per mask, when more than the run's own (absent: 1, so folders of
    /// the single-model protocol read back unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<usize>,
    /// Version of attrib that created the folder (not compared).
    pub attrib_version: String,
}

impl Manifest {
    fn same_as(&self, other: &Manifest) -> bool {
        (
            &self.kind,
            &self.spec,
            &self.groups,
            &self.masks,
            &self.output,
            &self.split,
            &self.run_hash,
            self.n_train,
            self.n_split,
            self.seeds,
        ) == (
            &other.kind,
            &other.spec,
            &other.groups,
            &other.masks,
            &other.output,
            &other.split,
            &other.run_hash,
            other.n_train,
            other.n_split,
            other.seeds,
        )
    }

    fn describe(&self) -> String {
        let spec = self
            .spec
            .map(|s| format!("subsets {}, ", s.slug()))
            .unwrap_or_default();
        let groups = self
            .groups
            .as_ref()
            .map(|h| format!("whole groups of grouping {h}, "))
            .unwrap_or_default();
        let masks = self
            .masks
            .as_ref()
            .map(|h| format!("masks {h}, "))
            .unwrap_or_default();
        format!(
            "{} ({spec}{groups}{masks}output {}, split {}, run {}, {} training / {} split examples)",
            self.kind, self.output, self.split, self.run_hash, self.n_train, self.n_split
        )
    }
}

/// Creates `dir` and its manifest, or checks that an existing manifest describes the same
/// computation.
pub fn prepare(dir: &Path, manifest: &Manifest, entry_prefix: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(MANIFEST);
    let fix = "delete the folder or pick another cache folder";
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let found: Manifest = serde_json::from_str(&text).map_err(|e| RunError::Cache {
            path: path.clone(),
            reason: format!("not a ground-truth manifest ({e}); {fix}"),
        })?;
        if !found.same_as(manifest) {
            return Err(RunError::Cache {
                path: dir.to_path_buf(),
                reason: format!(
                    "this cache folder holds {} but this computation is {}; {fix}",
                    found.describe(),
                    manifest.describe()
                ),
            });
        }
        return Ok(());
    }
    // No manifest: entries of unknown origin must not be mixed in.
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    for e in entries {
        let e = e.map_err(io(dir))?;
        if e.file_name().to_string_lossy().starts_with(entry_prefix) {
            return Err(RunError::Cache {
                path: dir.to_path_buf(),
                reason: format!(
                    "holds {} but no {MANIFEST}, so its origin is unknown; {fix}",
                    e.file_name().to_string_lossy()
                ),
            });
        }
    }
    let text = serde_json::to_string_pretty(manifest).map_err(|e| RunError::Cache {
        path: path.clone(),
        reason: format!("cannot serialise the manifest: {e}"),
    })?;
    data::write_atomic(&path, text.as_bytes())?;
    Ok(())
}

/// Writes one entry atomically.
pub fn write_entry<T: Serialize>(path: &Path, entry: &T) -> Result<()> {
    let text = serde_json::to_string(entry).map_err(|e| RunError::Cache {
        path: path.to_path_buf(),
        reason: format!("cannot serialise: {e}"),
    })?;
    data::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Reads one entry if the file exists.
pub fn read_entry<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let entry = serde_json::from_str(&text).map_err(|e| corrupt(path, &e.to_string()))?;
    Ok(Some(entry))
}

/// An error for a cached entry that cannot be used.
pub fn corrupt(path: &Path, why: &str) -> RunError {
    RunError::Cache {
        path: path.to_path_buf(),
        reason: format!(
            "unusable cached result ({why}); delete this file and it will be recomputed"
        ),
    }
}

/// Floats as JSON: finite values as numbers (shortest form that reads back to the same bits),
/// others as the strings `"NaN"`, `"inf"`, `"-inf"`.
pub fn encode(values: &[f64]) -> Vec<Value> {
    values
        .iter()
        .map(|&v| match serde_json::Number::from_f64(v) {
            Some(n) => Value::Number(n),
            None if v.is_nan() => Value::String("NaN".into()),
            None if v > 0.0 => Value::String("inf".into()),
            None => Value::String("-inf".into()),
        })
        .collect()
}

/// Inverse of [`encode`]; `None` on anything else.
pub fn decode(values: &[Value]) -> Option<Vec<f64>> {
    values
        .iter()
        .map(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.as_str() {
                "NaN" => Some(f64::NAN),
                "inf" => Some(f64::INFINITY),
                "-inf" => Some(f64::NEG_INFINITY),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The outputs of a cache entry at `path`: decoded, and exactly one per example of the split.
///
/// # Errors
/// [`corrupt`] for values that are not numbers or a wrong count.
pub fn decode_outputs(path: &Path, values: &[Value], n_split: usize) -> Result<Vec<f64>> {
    let v = decode(values).ok_or_else(|| corrupt(path, "outputs that are not numbers"))?;
    if v.len() != n_split {
        return Err(corrupt(
            path,
            &format!("{} outputs for a split of {n_split}", v.len()),
        ));
    }
    Ok(v)
}

/// `dir/{prefix}_{index:05}.json`.
pub fn entry_path(dir: &Path, prefix: &str, index: usize) -> PathBuf {
    dir.join(format!("{prefix}_{index:05}.json"))
}

/// Runs `work` on every item of `todo` in parallel (rayon), results in the order of `todo`. After a
/// failure no new item starts; the error of the first failed item (in `todo` order) is returned, and
/// items that finished have already cached their results.
pub fn parallel<T: Send>(
    todo: Vec<usize>,
    work: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<(usize, T)>> {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    let failed = AtomicBool::new(false);
    let results: Vec<Option<Result<T>>> = todo
        .par_iter()
        .map(|&j| {
            if failed.load(Ordering::Relaxed) {
                return None;
            }
            let r = work(j);
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            Some(r)
        })
        .collect();
    let mut out = Vec::with_capacity(todo.len());
    let mut skipped = false;
    for (&j, r) in todo.iter().zip(results) {
        match r {
            Some(Ok(v)) => out.push((j, v)),
            Some(Err(e)) => return Err(e),
            None => skipped = true,
        }
    }
    debug_assert!(!skipped, "items are only skipped after a failure");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_back_bitwise() {
        let mut r = engine::Rng::new(5);
        let mut xs: Vec<f64> = (0..20_000)
            .map(|i| match i % 3 {
                0 => r.normal() * 10f64.powi((r.below(40) as i32) - 20),
                1 => f64::from_bits(r.next_u64()),
                _ => r.uniform(),
            })
            .collect();
        xs.extend([
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN_POSITIVE,
            5e-324,
        ]);
        let text = serde_json::to_string(&encode(&xs)).unwrap();
        let back: Vec<Value> = serde_json::from_str(&text).unwrap();
        let ys = decode(&back).unwrap();
        assert_eq!(xs.len(), ys.len());
        for (x, y) in xs.iter().zip(&ys) {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{x:e} read back as {y:e}"
            );
        }
        assert!(decode(&[Value::Bool(true)]).is_none());
    }
}
