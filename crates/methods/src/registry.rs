//! The registry: every method attrib knows, by name, and [`build`], which looks one up.
//!
//! A new method is one file under [`crate::estimators`] exporting a [`Registration`], plus its
//! `mod` line, its [`REGISTRY`] line and its row of the summary table, all three in
//! `estimators/mod.rs`.

use std::collections::BTreeMap;

use crate::error::{MethodError, Result};
pub use crate::estimators::REGISTRY;
use crate::method::Method;
use crate::options::Options;

/// Methods that split their own work into shards (`Run::shard`): MAGIC's blocks of targets (block `b`
/// belongs to shard `b mod N`) and TRAK's trained ensemble members (member `m >= 1` to shard
/// `(m - 1) mod N`) and datamodels' subset retrainings (subset `j` to shard `j mod N`, the
/// entries `attrib groundtruth` writes) and TMC-Shapley's permutations (permutation `p` to shard
/// `p mod N`). Every other method is sharded by fixed blocks of
/// targets ([`crate::target_blocks`]).
pub const SHARDABLE: &[&str] = &["magic", "trak", "datamodels", "tmc-shapley"];

/// Looks up and builds a method, rejecting options it does not take.
///
/// # Errors
/// An unknown method name (listing the known ones) or a bad option.
pub fn build(
    name: &str,
    mut options: Options,
) -> Result<(Box<dyn Method>, BTreeMap<String, String>)> {
    let reg =
        REGISTRY
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| MethodError::UnknownMethod {
                name: name.into(),
                known: REGISTRY
                    .iter()
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    let method = (reg.build)(&mut options)?;
    options.finish()?;
    Ok((method, options.used().clone()))
}
