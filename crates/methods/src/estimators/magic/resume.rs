//! Finished target blocks, kept in the run's artefact store so that an interrupted MAGIC
//! computation resumes where it stopped ("long runs can be resumed").
//!
//! Each sweep over a block of targets ends by storing the block's rows as a blob of kind
//! [`BLOCK_KIND`] (`RUN/store/magic-block/KEY.f64`, written atomically), `targets x n`
//! little-endian f64 in row order. The key ([`run::Key::for_run`]) holds everything the rows
//! depend on: the run (configuration, initial and final parameters), the split, the output, the
//! block's target indices (a block's composition can change its rounding), the replay strategy
//! that computed it (so that the `replay` a score sidecar records is the one actually used, issue
//! 13; the bits agree across strategies, which the tests check), and this format's version. A later computation loads a block whose blob is there with the right size instead of
//! sweeping it again, so the scores have the same bits either way. A run without a directory
//! (built in memory) keeps nothing.

use run::{Key, Run, Store, Targets};

use super::replay::Replay;
use crate::error::Result;

/// The store kind of a finished block.
pub const BLOCK_KIND: &str = "magic-block";

/// Bumped when the scores a block holds would change for the same inputs.
const FORMAT: &str = "magic-blocks-1";

/// The finished blocks of one computation (module docs).
pub struct BlockStore {
    store: Store,
    /// Key of everything but the block's indices.
    base: Key,
    n: usize,
}

impl BlockStore {
    /// The store for `targets` of `run` swept with the resolved `replay` strategy (nothing is
    /// read or written yet).
    pub fn new(run: &Run, targets: &Targets, replay: &Replay) -> Self {
        let base = Key::for_run(BLOCK_KIND, run)
            .with("magic_format", FORMAT)
            .with("replay", replay.to_string())
            .with("split", targets.split.name())
            .with("output", run::output_name(targets.output));
        BlockStore::with_base(run, base)
    }

    /// The store of blocks keyed by `base` plus each block's target indices: how other
    /// computations that keep finished blocks of targets (`crate::target_blocks`) use the same
    /// files and format under their own key.
    pub fn with_base(run: &Run, base: Key) -> Self {
        BlockStore {
            store: Store::of(run),
            base,
            n: run.n_train(),
        }
    }

    fn key(&self, block: &[usize]) -> Key {
        let indices: Vec<u8> = block
            .iter()
            .flat_map(|&i| (i as u64).to_le_bytes())
            .collect();
        self.base.clone().with("targets", indices)
    }

    /// The rows of `block` when a finished sweep left them; `None` when absent, unreadable or of
    /// another size (the block is then swept again and the file replaced).
    pub fn load(&self, block: &[usize]) -> Option<Vec<Vec<f64>>> {
        let bytes = self.store.get(&self.key(block), "f64")?;
        if bytes.len() as u64 != self.block_bytes(block) {
            return None;
        }
        let values: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        Some(values.chunks(self.n.max(1)).map(<[f64]>::to_vec).collect())
    }

    /// Whether a finished sweep left `block`'s rows: a file of the right size, as [`BlockStore::load`]
    /// accepts, found without reading it (the assembly reads each block once, when it hands it
    /// over).
    pub fn is_finished(&self, block: &[usize]) -> bool {
        self.store
            .path(&self.key(block), "f64")
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == self.block_bytes(block))
    }

    /// Bytes of `block`'s rows: `n` f64 per target.
    fn block_bytes(&self, block: &[usize]) -> u64 {
        (block.len() * self.n * 8) as u64
    }

    /// Keeps the rows of a finished `block` and the seconds it took (its sweep and its share of
    /// the forward replay), `KEY.seconds` next to `KEY.f64`; nothing for a run without a
    /// directory.
    ///
    /// # Errors
    /// The folder cannot be created or the file written.
    pub fn save(&self, block: &[usize], rows: &[Vec<f64>], seconds: f64) -> Result<()> {
        let bytes: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        self.store.put(&self.key(block), "f64", &bytes)?;
        self.store
            .put(&self.key(block), "seconds", &seconds.to_le_bytes())?;
        Ok(())
    }

    /// The seconds a finished `block` took, when its computation recorded them.
    pub fn seconds(&self, block: &[usize]) -> Option<f64> {
        let bytes = self.store.get(&self.key(block), "seconds")?;
        Some(f64::from_le_bytes(bytes.try_into().ok()?))
    }
}
