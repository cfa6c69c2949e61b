//! `attrib._attrib`: the Python face of attrib (issue 18). Two entry points:
//!
//! - [`lds`] referees any library's scores against retrainings done anywhere (MATH.md E6), by the
//!   same code as `attrib lds` (`eval::lds`), so that the two agree to the bit;
//! - [`load`] opens a run directory written by the CLI; [`PyRun::attribute`] computes scores by
//!   the CLI's own path (`methods::attribute`), returning what `attrib attribute` writes to its
//!   `.npy` (float32), and [`PyRun::outputs`] the run's outputs `f(S)`.
//!
//! Every argument is checked before any work, and a bad one is a `ValueError` that names it; the
//! GIL is released while attrib computes.

use std::path::PathBuf;

use numpy::{PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use eval::external::{lds_external, Array2, Layout};
use run::{Run, Split, Targets};

/// A `ValueError` naming the argument.
fn bad(arg: &str, why: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{arg}: {why}"))
}

/// An attrib error as a Python exception: bad inputs are `ValueError`, the rest `RuntimeError`;
/// the message is attrib's own.
fn attrib_err(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// A 2-D array of numbers (or bools) as f64, row-major, with its shape.
fn matrix(arg: &str, a: &Bound<'_, PyAny>) -> PyResult<(Vec<f64>, usize, usize)> {
    let a: PyReadonlyArray2<f64> = a
        .call_method1("astype", ("float64",))
        .and_then(|x| x.extract())
        .map_err(|_| bad(arg, "expected a 2-D array of numbers"))?;
    let (r, c) = (a.shape()[0], a.shape()[1]);
    Ok((a.as_array().iter().copied().collect(), r, c))
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
    let (s, sr, sc) = matrix("scores", scores)?;
    let (m, mr, mc) = matrix("masks", masks)?;
    let (o, or, oc) = matrix("outputs", outputs)?;
    let base: Option<Vec<f64>> = match base {
        None => None,
        Some(b) => {
            let b: PyReadonlyArray1<f64> = b
                .call_method1("astype", ("float64",))
                .and_then(|x| x.extract())
                .map_err(|_| bad("base", "expected a 1-D array of numbers"))?;
            Some(b.as_array().to_vec())
        }
    };
    let report = py
        .allow_threads(|| {
            lds_external(
                Array2::new(&s, sr, sc),
                layout,
                Array2::new(&m, mr, mc),
                Array2::new(&o, or, oc),
                base.as_deref(),
            )
        })
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
        other => attrib_err(other),
    }
}

/// A run directory written by `attrib train` (the same files the CLI reads and writes).
#[pyclass(name = "Run", module = "attrib", unsendable)]
struct PyRun {
    run: Run,
    dir: PathBuf,
}

fn split_of(name: &str) -> PyResult<Split> {
    Split::from_name(name).ok_or_else(|| {
        bad(
            "split",
            format!("\"{name}\" is not a split; use train, test or val"),
        )
    })
}

#[pymethods]
impl PyRun {
    /// Training examples (score columns).
    #[getter]
    fn n_train(&self) -> usize {
        self.run.n_train()
    }

    /// The run directory.
    #[getter]
    fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// `f(S)`: the trained model's `output` on every example of `split`, as the ground truth's
    /// `full` (float64).
    #[pyo3(signature = (output="margin", split="test"))]
    fn outputs<'py>(
        &self,
        py: Python<'py>,
        output: &str,
        split: &str,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let out = run::parse_output(output).map_err(|e| bad("output", e))?;
        let split = split_of(split)?;
        let run = &self.run;
        let v = py.allow_threads(|| run::retrain::split_outputs(run, &run.params, out, split));
        Ok(PyArray1::from_vec(py, v))
    }

    /// Scores `tau[target, train]` of `method` (MATH.md's sign: `tau_i = d f / d w_i`), computed
    /// as `attrib attribute` computes them and rounded to float32 as its `.npy` file stores them.
    /// `options` are the method's `--option key=value` pairs, e.g. `damping="auto"`.
    #[pyo3(signature = (method, targets=None, output="margin", split="test", **options))]
    fn attribute<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        targets: Option<Vec<usize>>,
        output: &str,
        split: &str,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let out = run::parse_output(output).map_err(|e| bad("output", e))?;
        let split = split_of(split)?;
        let len = self.run.dataset(split).len();
        let indices = targets.unwrap_or_else(|| (0..len.min(50)).collect());
        if let Some(&t) = indices.iter().find(|&&t| t >= len) {
            return Err(bad(
                "targets",
                format!(
                    "{t} is outside the {} split of {len} examples",
                    split.name()
                ),
            ));
        }
        let mut pairs = Vec::new();
        if let Some(o) = options {
            for (k, v) in o.iter() {
                pairs.push(format!("{}={}", k.str()?, v.str()?));
            }
        }
        let opts = methods::Options::parse(method, &pairs).map_err(|e| bad("options", e))?;
        let (m, used) = methods::build(method, opts).map_err(|e| bad("method", e))?;
        let targets = Targets {
            split,
            indices,
            output: out,
        };
        let run = &self.run;
        let scores = py
            .allow_threads(|| methods::attribute(run, m.as_ref(), used, &targets))
            .map_err(attrib_err)?;
        let cols = scores.meta.n_train;
        let rows: Vec<Vec<f32>> = scores
            .values
            .chunks(cols.max(1))
            .map(|r| r.iter().map(|&v| v as f32).collect())
            .collect();
        PyArray2::from_vec2(py, &rows).map_err(attrib_err)
    }
}

/// Opens the run directory `dir` (as `attrib evaluate --run DIR` does, fingerprint checked).
#[pyfunction]
fn load(py: Python<'_>, dir: PathBuf) -> PyResult<PyRun> {
    let run = py
        .allow_threads(|| Run::load(&dir))
        .map_err(|e| bad("dir", e))?;
    Ok(PyRun { run, dir })
}

#[pymodule]
fn _attrib(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lds, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_class::<PyRun>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
