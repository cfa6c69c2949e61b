//! The one trait every attribution method implements, and the registry that names them.
//!
//! A new method is one file with a struct implementing [`Method`] and a `build` function reading its
//! options, plus one line in [`REGISTRY`].

use std::collections::BTreeMap;
use std::time::Instant;

use crate::error::{MethodError, Result};
use crate::estimators;
use crate::groups::Grouping;
use crate::options::Options;
use crate::run::{output_name, Run, Targets};
use crate::scores::{ScoreMeta, Scores, SIGN};

/// An attribution method.
pub trait Method: Send + Sync {
    /// The registered name.
    fn name(&self) -> &'static str;

    /// Scores `tau[target][i] = d f_target / d w_i` for every target and training example
    /// (MATH.md sign convention; ranking-only methods may differ by a positive scale).
    ///
    /// # Errors
    /// When the run does not suit the method, or a solver fails.
    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>>;

    /// Group scores `tau[target][G] = d f_target / d w_G` for every group of `groups` (MATH.md
    /// E5: `w_G` scales all of `G`'s members). The default sums the per-example scores, which is
    /// exact for every method linear in the data weights; methods that can work with group
    /// gradients directly (cost in `K`, not `n`) override it.
    ///
    /// # Errors
    /// As [`Method::attribute`].
    fn attribute_groups(
        &self,
        run: &Run,
        targets: &Targets,
        groups: &Grouping,
    ) -> Result<Vec<Vec<f64>>> {
        groups.check_n(run.n_train())?;
        Ok(groups.sum_columns(&self.attribute(run, targets)?))
    }
}

/// A registered method: its name, a one-line summary, and how to build it from options.
pub struct Registration {
    /// Name used on the command line.
    pub name: &'static str,
    /// One line for `--help` and error messages.
    pub summary: &'static str,
    /// Reads the options (each getter documents its default) and builds the method.
    pub build: fn(&mut Options) -> Result<Box<dyn Method>>,
}

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

/// Runs a built method on a run and targets, timing it and describing the result.
///
/// # Errors
/// Invalid targets or the method's own errors.
pub fn attribute(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
) -> Result<Scores> {
    scored(run, method, options, targets, None)
}

/// [`attribute`] for the groups of a grouping ([`Method::attribute_groups`]): one column per
/// group, the grouping's hash in the sidecar.
///
/// # Errors
/// Invalid targets, a grouping of another training set, or the method's own errors.
pub fn attribute_groups(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
    groups: &Grouping,
) -> Result<Scores> {
    groups.check_n(run.n_train())?;
    scored(run, method, options, targets, Some(groups))
}

fn scored(
    run: &Run,
    method: &dyn Method,
    options: BTreeMap<String, String>,
    targets: &Targets,
    groups: Option<&Grouping>,
) -> Result<Scores> {
    run.check_targets(targets)?;
    let start = Instant::now();
    let rows = match groups {
        None => method.attribute(run, targets)?,
        Some(g) => method.attribute_groups(run, targets, g)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    let n = groups.map_or(run.n_train(), |g| g.k);
    assert!(
        rows.len() == targets.indices.len() && rows.iter().all(|r| r.len() == n),
        "{} returned a score matrix of the wrong shape",
        method.name()
    );
    Ok(Scores {
        values: rows.into_iter().flatten().collect(),
        meta: ScoreMeta {
            method: method.name().into(),
            options,
            run_hash: run.hash.clone(),
            output: output_name(targets.output).into(),
            split: targets.split.name().into(),
            targets: targets.indices.clone(),
            n_train: n,
            groups: groups.map(Grouping::hash),
            seconds,
            attrib_version: env!("CARGO_PKG_VERSION").into(),
            sign: SIGN.into(),
            rows: match groups {
                None => crate::scores::ScoreRows::of_run(run, targets.split.name()),
                Some(_) => None,
            },
        },
    })
}
