//! What a run directory holds of each long computation: for `attrib status`, and for a person
//! deciding which shards of an array job still have to run.
//!
//! - **Ground truth** (`RUN/groundtruth/*/`): per folder its manifest, the entries present and,
//!   for random subsets (whose count the manifest states), the missing subset indices.
//! - **The store** (`RUN/store/{kind}/`): entries and bytes per kind (MAGIC blocks, EK-FAC
//!   factors, TRAK members, retrainings at given weights, TMC-Shapley permutations, poison and
//!   noisy-labels rows).
//!
//! Only file names and manifests are read; nothing is checked against the run (the commands that
//! use an entry do that).

use std::path::{Path, PathBuf};

use crate::error::{io, Result};
use crate::files;
use crate::store::{Manifest, MANIFEST};

/// One ground-truth folder.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruthStatus {
    /// The folder.
    pub path: PathBuf,
    /// Its manifest (`None`: missing or unreadable).
    pub manifest: Option<Manifest>,
    /// Entry files present.
    pub present: usize,
    /// Entries the manifest asks for (random subsets only).
    pub expected: Option<usize>,
    /// Subset indices without an entry (random subsets only), ascending.
    pub missing: Vec<usize>,
}

/// One kind of the artefact store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStatus {
    /// The kind (the folder's name).
    pub kind: String,
    /// Entries.
    pub entries: usize,
    /// Their total size.
    pub bytes: u64,
}

/// Everything [`status`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Ground-truth folders, by name.
    pub ground_truth: Vec<GroundTruthStatus>,
    /// Store kinds, by name.
    pub store: Vec<StoreStatus>,
}

/// The sorted entries of `dir` (none when it does not exist).
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            // Temporaries of writers still running (or killed) are not entries.
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// What `run_dir` holds (module docs).
///
/// # Errors
/// A folder that exists but cannot be listed.
pub fn status(run_dir: &Path) -> Result<Status> {
    let mut st = Status::default();
    for folder in entries(&run_dir.join(files::GROUNDTRUTH))? {
        if !folder.is_dir() {
            continue;
        }
        let manifest: Option<Manifest> = std::fs::read_to_string(folder.join(MANIFEST))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let names: Vec<String> = entries(&folder)?
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .filter(|n| n != MANIFEST && n.ends_with(".json"))
            .collect();
        let expected = manifest
            .as_ref()
            .filter(|m| m.kind == "subsets")
            .and_then(|m| m.spec)
            .map(|s| s.subsets);
        let missing = match expected {
            None => Vec::new(),
            Some(m) => (0..m)
                .filter(|j| !names.contains(&format!("subset_{j:05}.json")))
                .collect(),
        };
        st.ground_truth.push(GroundTruthStatus {
            path: folder,
            manifest,
            present: names.len(),
            expected,
            missing,
        });
    }
    for kind in entries(&run_dir.join(files::STORE))? {
        if !kind.is_dir() {
            continue;
        }
        let files = entries(&kind)?;
        st.store.push(StoreStatus {
            kind: kind
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            // An entry is a key: its files (`KEY.f64` and `KEY.seconds` of a MAGIC block) count
            // once.
            entries: files
                .iter()
                .filter_map(|f| f.file_stem())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            bytes: files
                .iter()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum(),
        });
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_entries_and_names_missing_subsets() {
        let tmp = tempfile::tempdir().unwrap();
        let gt = tmp.path().join("groundtruth/drop-x");
        std::fs::create_dir_all(&gt).unwrap();
        std::fs::write(
            gt.join(MANIFEST),
            r#"{"kind":"subsets","spec":{"kind":{"drop":{"fraction":0.1}},"subsets":4,"seed":0},
                "output":"margin","split":"test","run_hash":"h","n_train":10,"n_split":3,
                "attrib_version":"0"}"#,
        )
        .unwrap();
        for j in [0, 2] {
            std::fs::write(gt.join(format!("subset_{j:05}.json")), "{}").unwrap();
        }
        std::fs::write(gt.join(".subset_00003.json.123.tmp"), "").unwrap();
        let blocks = tmp.path().join("store/magic-block");
        std::fs::create_dir_all(&blocks).unwrap();
        std::fs::write(blocks.join("a.f64"), [0u8; 16]).unwrap();
        std::fs::write(blocks.join("a.seconds"), [0u8; 8]).unwrap();
        let st = status(tmp.path()).unwrap();
        assert_eq!(st.ground_truth.len(), 1);
        let g = &st.ground_truth[0];
        assert_eq!((g.present, g.expected), (2, Some(4)));
        assert_eq!(g.missing, [1, 3]);
        assert_eq!(
            st.store,
            [StoreStatus {
                kind: "magic-block".into(),
                entries: 1,
                bytes: 24
            }]
        );
    }
}
