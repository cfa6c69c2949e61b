//! One cached retraining per (run, data weights): `RUN/retrain/KEY.f64`, `KEY` a fingerprint of
//! the run's fingerprint and the weights' bits, the file the final parameters as little-endian
//! f64, written atomically. Every "actual" figure of `attrib unlearn` and `attrib select` comes
//! from here. (A content-addressed store can later take this function's place.)

use std::path::PathBuf;

use crate::error::{MethodError, Result};
use crate::run::{fingerprint, Run};

/// Folder of the cache inside a run directory.
pub const RETRAIN_DIR: &str = "retrain";

/// The final parameters of `run`'s recipe retrained at data weights `w` (absolute), from the
/// cache when present, else retrained and cached (runs without a directory are not cached).
///
/// # Errors
/// Training errors, or I/O errors naming the cache file.
pub fn retrain_cached(run: &Run, w: &[f64]) -> Result<Vec<f64>> {
    let Some(path) = cache_path(run, w) else {
        return run.retrain(w);
    };
    let n = run.model.layout().total();
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() == 8 * n {
            return Ok(bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect());
        }
    }
    let params = run.retrain(w)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| MethodError::Run {
            path: dir.to_path_buf(),
            reason: format!("cannot create the retraining cache ({e}); check the permissions"),
        })?;
    }
    let bytes: Vec<u8> = params.iter().flat_map(|p| p.to_le_bytes()).collect();
    nn::io::write_atomic(&path, &bytes)?;
    Ok(params)
}

/// `RUN/retrain/KEY.f64` for weights `w`, or `None` for a run without a directory.
pub fn cache_path(run: &Run, w: &[f64]) -> Option<PathBuf> {
    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
    let key = fingerprint(&[run.hash.as_bytes(), &bytes]);
    run.dir
        .as_ref()
        .map(|d| d.join(RETRAIN_DIR).join(format!("{key}.f64")))
}
