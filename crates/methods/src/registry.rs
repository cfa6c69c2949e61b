//! The registry: every method attrib knows, by name, and [`build`], which looks one up.
//!
//! A new method is one file under [`crate::estimators`] exporting a [`Registration`], plus one
//! line in [`REGISTRY`].

use std::collections::BTreeMap;

use crate::error::{MethodError, Result};
use crate::estimators;
use crate::method::{Method, Registration};
use crate::options::Options;

/// Every method attrib knows, one line each (MATH.md section in the summary).
pub static REGISTRY: &[Registration] = &[
    estimators::loo_ridge::REGISTRATION,
    estimators::loo_newton::REGISTRATION,
    estimators::influence::EXACT,
    estimators::influence::CG,
    estimators::influence::LISSA,
    estimators::influence::GN,
    estimators::influence::ARNOLDI,
    estimators::ekfac::EKFAC,
    estimators::ekfac::KFAC,
    estimators::ekfac::DIAGONAL,
    estimators::tracin::REGISTRATION,
    estimators::trak::REGISTRATION,
    estimators::similarity::REGISTRATION,
    estimators::magic::REGISTRATION,
    estimators::datamodels::REGISTRATION,
    estimators::shapley::KNN,
    estimators::shapley::TMC,
];

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
