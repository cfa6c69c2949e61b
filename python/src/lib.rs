//! `attrib._attrib`: the Python face of attrib (issue 18).
//!
//! - [`lds`] referees any library's scores against retrainings done anywhere (MATH.md E6), by the
//!   same code as `attrib lds --masks --outputs --scores` (`eval::external`), reading the arrays
//!   in place (zero-copy for C-contiguous float64, float32 and bool arrays);
//! - [`runs`]: attrib's own runs (train, load, attribute, ground truth, any CLI command), on the
//!   same run directory and store as the `attrib` binary, by its code;
//! - [`features`]: bring your own gradients (projections, TRAK and TracIn from features).
//!
//! Every argument is checked before any work, and a bad one is a `ValueError` that names it; the
//! GIL is released while attrib computes.

mod arrays;
mod features;
mod runs;

use numpy::PyArray1;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use eval::external::{lds_external, Layout};

use crate::arrays::Held;

/// A `ValueError` naming the argument.
fn bad(arg: &str, why: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{arg}: {why}"))
}

/// An attrib error as a `RuntimeError` carrying attrib's own message.
fn runtime(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// The stack of the workers that run a call: Linux's main-thread size (8 MiB), which the call had
/// when it ran on Python's own thread, and what the CLI gives its workers (`MAIN_STACK_BYTES`).
const WORKER_STACK_BYTES: usize = 8 << 20;

/// Runs `f` on a pool of `threads` workers (`None`: the global pool, one per core). Results do
/// not depend on the count (attrib's kernels are deterministic across thread counts).
///
/// Either way `f` runs on one of the pool's workers (`rayon::scope` from outside a pool runs its
/// body there), as the CLI's commands do: called from Python's thread, every parallel kernel
/// would be sent to the pool and waited for, at up to twice the time of a training step.
///
/// # Errors
/// The pool cannot be started.
fn with_threads<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> T + Send,
) -> Result<T, String> {
    match threads {
        None => {
            // The first call sizes the global pool's stacks; a later one finds it built, and
            // that error says nothing new.
            let _ = rayon::ThreadPoolBuilder::new()
                .stack_size(WORKER_STACK_BYTES)
                .build_global();
            Ok(rayon::scope(|_| f()))
        }
        Some(0) => Err("threads: give at least 1".into()),
        Some(t) => rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .stack_size(WORKER_STACK_BYTES)
            .build()
            .map(|pool| pool.install(f))
            .map_err(|e| format!("cannot start {t} threads: {e}")),
    }
}

/// The LDS of `scores` against subsets retrained outside or inside attrib (MATH.md E6), by
/// `eval::external`, the code of `attrib lds --masks --outputs --scores`.
///
/// `scores`: `[targets, train]` (`layout="targets_train"`, attrib's) or `[train, targets]`
/// (`layout="train_targets"`, as TRAK and dattri write them; never guessed). `masks`:
/// `[subsets, train]`, 1 or True = the example was KEPT in that subset's training set, 0 or False
/// = dropped. `outputs`: `[subsets, targets]`, the retrained model's output on each target.
/// `base`: `[targets]`, the output of the model trained on everything (optional; with it the
/// numbers equal `attrib lds` to the bit, without it they agree to rounding).
#[pyfunction]
#[pyo3(signature = (scores, masks, outputs, *, base=None, layout="targets_train"))]
fn lds<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    masks: &Bound<'py, PyAny>,
    outputs: &Bound<'py, PyAny>,
    base: Option<&Bound<'py, PyAny>>,
    layout: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let layout = Layout::parse(layout).map_err(invalid_or_runtime)?;
    let (s, m, o) = (
        Held::of("scores", scores, 2)?,
        Held::of("masks", masks, 2)?,
        Held::of("outputs", outputs, 2)?,
    );
    let base: Option<Vec<f64>> = base
        .map(|b| Held::of("base", b, 1).map(|h| h.to_f64()))
        .transpose()?;
    let (s, m, o) = (s.array2(), m.array2(), o.array2());
    let report = py
        .allow_threads(|| lds_external(s, layout, m, o, base.as_deref()))
        .map_err(invalid_or_runtime)?;
    let out = PyDict::new(py);
    out.set_item("lds", report.lds)?;
    out.set_item("ci", (report.ci.0, report.ci.1))?;
    out.set_item("pearson", report.pearson)?;
    out.set_item("slope", report.slope)?;
    out.set_item("subsets", report.subsets)?;
    out.set_item("targets", report.targets)?;
    out.set_item("per_target", PyArray1::from_vec(py, report.per_target))?;
    Ok(out)
}

/// attrib's argument errors (`field: reason`) as `ValueError`, the rest as `RuntimeError`.
fn invalid_or_runtime(e: eval::EvalError) -> PyErr {
    match e {
        eval::EvalError::Invalid { .. } => PyValueError::new_err(e.to_string()),
        other => runtime(other),
    }
}

#[pymodule]
fn _attrib(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lds, m)?)?;
    m.add_function(wrap_pyfunction!(runs::run_command, m)?)?;
    m.add_function(wrap_pyfunction!(runs::train, m)?)?;
    m.add_function(wrap_pyfunction!(features::project, m)?)?;
    m.add_function(wrap_pyfunction!(features::trak_scores, m)?)?;
    m.add_function(wrap_pyfunction!(features::tracin_scores, m)?)?;
    m.add_class::<runs::PyRun>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
