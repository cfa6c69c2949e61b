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
