//! Every per-target method in shards: the targets are cut into fixed blocks of consecutive
//! targets, each block is scored by one call of [`Method::attribute_timed`], and its rows are kept
//! in the run's store, so that shards (`Run::shard`) may each score their own blocks and the
//! command without a shard assembles them.
//!
//! - **The blocks.** Block `b` holds targets `b * B .. (b + 1) * B` of the target list (`B`, the
//!   block size, is the caller's: `attrib attribute --target-block`, default [`TARGET_BLOCK`]);
//!   the last block may be shorter. The rule depends on `B` alone, never on the number of shards,
//!   so any sharding computes the same blocks; block `b` belongs to shard `b mod N`.
//! - **The bits.** A process without a shard scores block by block as well, so the assembled
//!   matrix is the single process's bit for bit (methods are deterministic; a block's rows may
//!   depend on the block's composition through rounding, which is why the composition is fixed).
//!   With at most `B` targets there is one block, one call on the whole list, as without blocks.
//! - **The store.** A finished block is a blob of kind [`BLOCK_KIND`],
//!   `RUN/store/target-block/KEY.f64` (`targets x n` little-endian f64, row order) plus
//!   `KEY.seconds`, each written by atomic rename. The key holds the method's name, its resolved
//!   options, the run ([`run::Key::for_run`]: configuration, initial and final parameters), the
//!   output, the split, the block's target indices and this format's version. A lone block of a
//!   process without a shard is not stored: there is nothing to resume or assemble.
//! - **Shards never assemble.** A shard scores its missing blocks and returns
//!   [`MethodError::Incomplete`]; only the command without a shard writes a score file, so no file
//!   is written twice.
//!
//! Methods that split their own work ([`crate::registry::SHARDABLE`]: MAGIC's reverse sweeps,
//! TRAK's members, datamodels' retrainings, TMC-Shapley's permutations) do not come here; nor do group scores and input
//! derivatives, which refuse a shard.

use std::collections::BTreeMap;
use std::time::Instant;

use run::{Key, Run, Targets};

use crate::estimators::magic::resume::BlockStore;

use crate::error::{MethodError, Result};
use crate::method::{Method, RowSink};

/// The store kind of a finished block of targets.
pub const BLOCK_KIND: &str = "target-block";

/// Targets per block when the caller does not choose (`attrib attribute --target-block`): the
/// default 50 targets of `attrib attribute` are one block.
pub const TARGET_BLOCK: usize = 64;

/// Bumped when the rows a block holds would change for the same inputs.
const FORMAT: &str = "target-blocks-1";

/// The store of this computation's finished blocks (module docs): MAGIC's block store
/// ([`BlockStore`]) under this module's key.
fn block_store(
    run: &Run,
    method: &dyn Method,
    options: &BTreeMap<String, String>,
    targets: &Targets,
) -> BlockStore {
    let options: String = options.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let base = Key::for_run(BLOCK_KIND, run)
        .with("blocks_format", FORMAT)
        .with("method", method.name())
        .with("options", options)
        .with("split", targets.split.name())
        .with("output", run::output_name(targets.output));
    BlockStore::with_base(run, base)
}

/// Scores `targets` block by block (module docs): rows in the order of `targets.indices`, and the
/// seconds the blocks took (their recorded times for stored blocks).
///
/// # Errors
/// As [`scores_in_blocks_into`].
///
/// # Panics
/// As [`scores_in_blocks_into`].
pub fn scores_in_blocks(
    run: &Run,
    method: &dyn Method,
    options: &BTreeMap<String, String>,
    targets: &Targets,
    block: usize,
) -> Result<(Vec<Vec<f64>>, f64)> {
    let mut rows = Vec::with_capacity(targets.indices.len());
    let seconds = scores_in_blocks_into(run, method, options, targets, block, &mut |b| {
        rows.extend_from_slice(b);
        Ok(())
    })?;
    Ok((rows, seconds))
}

/// [`scores_in_blocks`] handing each block's rows to `sink` in target order as soon as the block
/// is scored or loaded, holding no other block: returns the seconds the blocks took.
///
/// # Errors
/// [`MethodError::Incomplete`] for a shard, always (after scoring its missing blocks; the sink is
/// never called); the method's own errors; a store that cannot be written; the sink's errors.
///
/// # Panics
/// `block` is 0 (the caller validates it), or the method returns rows of the wrong shape.
pub fn scores_in_blocks_into(
    run: &Run,
    method: &dyn Method,
    options: &BTreeMap<String, String>,
    targets: &Targets,
    block: usize,
    sink: &mut RowSink<'_>,
) -> Result<f64> {
    assert!(block > 0, "a block of targets holds at least one target");
    let blocks: Vec<&[usize]> = targets.indices.chunks(block).collect();
    // A lone block of a whole computation has nothing to resume or assemble: not stored.
    let keep = blocks.len() > 1 || run.shard.is_some();
    let store = block_store(run, method, options, targets);
    let mine = |b: usize| run.shard.is_none_or(|s| s.owns(b));
    // Which blocks are finished, found without reading their rows (each is read once, when it
    // is handed over, so that no two are held at once).
    let mut stored: Vec<bool> = blocks
        .iter()
        .map(|b| keep && store.is_finished(b))
        .collect();
    let score = |chunk: &[usize]| -> Result<(Vec<Vec<f64>>, f64)> {
        let start = Instant::now();
        let part = Targets {
            indices: chunk.to_vec(),
            ..targets.clone()
        };
        let (scored, own) = method.attribute_timed(run, &part)?;
        let took = own.unwrap_or_else(|| start.elapsed().as_secs_f64());
        assert!(
            scored.len() == chunk.len() && scored.iter().all(|r| r.len() == run.n_train()),
            "{} returned a score matrix of the wrong shape",
            method.name()
        );
        if keep {
            store.save(chunk, &scored, took)?;
        }
        Ok((scored, took))
    };
    let incomplete = |done: usize| MethodError::Incomplete {
        method: method.name().into(),
        shard: run.shard.map(|s| s.to_string()).unwrap_or_default(),
        done,
        total: blocks.len(),
        unit: format!("blocks of {block} targets"),
    };
    if run.shard.is_some() {
        // A shard scores its missing blocks and never assembles.
        for (b, &chunk) in blocks.iter().enumerate() {
            if !stored[b] && mine(b) {
                score(chunk)?;
                stored[b] = true;
            }
        }
        return Err(incomplete(stored.iter().filter(|&&s| s).count()));
    }
    let mut seconds = 0.0;
    for (b, &chunk) in blocks.iter().enumerate() {
        let loaded = if stored[b] { store.load(chunk) } else { None };
        let (rows, took) = match loaded {
            Some(rows) => (rows, store.seconds(chunk).unwrap_or(0.0)),
            // Not finished, or removed since it was found: scored now.
            None => score(chunk)?,
        };
        seconds += took;
        sink(&rows)?;
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::testutil::tiny_logistic;
    use nn::Output;

    /// Scores target `t`'s row as `t` everywhere and records the blocks it was called with.
    struct Recorder(Mutex<Vec<Vec<usize>>>);

    impl Method for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
            self.0.lock().unwrap().push(targets.indices.clone());
            Ok(targets
                .indices
                .iter()
                .map(|&t| vec![t as f64; run.n_train()])
                .collect())
        }
    }

    /// The rows (or error) of scoring targets 0..5 in blocks of `block`, and the calls made.
    type Calls = (Result<(Vec<Vec<f64>>, f64)>, Vec<Vec<usize>>);

    fn calls(run: &Run, block: usize) -> Calls {
        let m = Recorder(Mutex::new(Vec::new()));
        let targets = Targets::test((0..5).collect(), Output::Margin);
        let out = scores_in_blocks(run, &m, &BTreeMap::new(), &targets, block);
        (out, m.0.into_inner().unwrap())
    }

    #[test]
    fn blocks_are_fixed_and_a_shard_scores_only_its_own() {
        let mut run = tiny_logistic(6);
        let (out, blocks) = calls(&run, 2);
        assert_eq!(blocks, [vec![0, 1], vec![2, 3], vec![4]]);
        let rows = out.unwrap().0;
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().enumerate().all(|(t, r)| r[0] == t as f64));
        // One block is one call on the whole list.
        assert_eq!(calls(&run, 64).1, [vec![0, 1, 2, 3, 4]]);
        // Shard 1 of 2 owns block 1 alone and never assembles.
        run.shard = Some(run::Shard::new(1, 2).unwrap());
        let (out, blocks) = calls(&run, 2);
        assert_eq!(blocks, [vec![2, 3]]);
        match out {
            Err(MethodError::Incomplete { done, total, .. }) => assert_eq!((done, total), (1, 3)),
            other => panic!("a shard returned {:?}", other.map(|_| ())),
        }
    }
}
