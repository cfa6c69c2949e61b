//! Finished target blocks, kept in the run directory so that an interrupted MAGIC computation
//! resumes where it stopped ("long runs can be resumed").
//!
//! Each sweep over a block of targets ends by writing the block's rows to
//! `RUN/magic/blocks/KEY.f64` (atomically: temporary file and rename), `targets x n` little-endian
//! f64 in row order. `KEY` fingerprints everything the rows depend on: the run's configuration,
//! initial and final parameters, the split, the output, the block's target indices (a block's
//! composition can change its rounding), and this format's version. A later computation loads a
//! block whose file is there with the right size instead of sweeping it again, so the scores
//! have the same bits either way. A run without a directory (built in memory) keeps nothing.

use std::path::PathBuf;

use crate::error::{MethodError, Result};
use engine::hash::fingerprint;
use run::{Run, Targets};

/// The cache folder inside a run directory.
pub const BLOCKS_DIR: &str = "magic/blocks";

/// Bumped when the scores a block holds would change for the same inputs.
const FORMAT: &str = "magic-blocks-1";

/// The finished blocks of one computation (module docs).
pub struct BlockStore {
    dir: Option<PathBuf>,
    /// Fingerprint of everything but the block's indices.
    base: String,
    n: usize,
}

impl BlockStore {
    /// The store for `targets` of `run` (nothing is read or written yet).
    pub fn new(run: &Run, targets: &Targets) -> Self {
        let le = |xs: &[f64]| -> Vec<u8> { xs.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let base = fingerprint(&[
            FORMAT.as_bytes(),
            env!("CARGO_PKG_VERSION").as_bytes(),
            run.config.to_toml().as_bytes(),
            &le(run.init.as_deref().unwrap_or(&[])),
            &le(&run.params),
            targets.split.name().as_bytes(),
            format!("{:?}", targets.output).as_bytes(),
        ]);
        BlockStore {
            dir: run.dir.as_ref().map(|d| d.join(BLOCKS_DIR)),
            base,
            n: run.n_train(),
        }
    }

    fn path(&self, block: &[usize]) -> Option<PathBuf> {
        let indices: Vec<u8> = block
            .iter()
            .flat_map(|&i| (i as u64).to_le_bytes())
            .collect();
        let key = fingerprint(&[self.base.as_bytes(), &indices]);
        self.dir.as_ref().map(|d| d.join(format!("{key}.f64")))
    }

    /// The rows of `block` when a finished sweep left them; `None` when absent, unreadable or of
    /// another size (the block is then swept again and the file replaced).
    pub fn load(&self, block: &[usize]) -> Option<Vec<Vec<f64>>> {
        let bytes = std::fs::read(self.path(block)?).ok()?;
        if bytes.len() != block.len() * self.n * 8 {
            return None;
        }
        let values: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        Some(values.chunks(self.n.max(1)).map(<[f64]>::to_vec).collect())
    }

    /// Keeps the rows of a finished `block` (nothing for a run without a directory).
    ///
    /// # Errors
    /// The folder cannot be created or the file written.
    pub fn save(&self, block: &[usize], rows: &[Vec<f64>]) -> Result<()> {
        let (Some(dir), Some(path)) = (&self.dir, self.path(block)) else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).map_err(|e| MethodError::Cache {
            path: dir.clone(),
            reason: format!(
                "cannot create MAGIC's folder of finished blocks ({e}); check the run directory's permissions"
            ),
        })?;
        let bytes: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        data::write_atomic(&path, &bytes)?;
        Ok(())
    }
}
