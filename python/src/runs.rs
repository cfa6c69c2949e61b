//! attrib's own runs from Python (issue 18, item 3): train, load, attribute, ground truth, LDS and
//! every CLI command, on the same run directory and store as the `attrib` binary, by its code.

use std::path::{Path, PathBuf};

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use run::{Run, Split, SubsetSpec, Targets};

use crate::{bad, runtime, with_threads};

/// A run directory written by `attrib train` (the same files the CLI reads and writes).
#[pyclass(name = "_Run", module = "attrib", subclass, unsendable)]
pub struct PyRun {
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

/// `targets` of `output` checked against the split (as `attrib attribute` checks them), or its
/// first 50.
fn target_indices(
    run: &Run,
    targets: Option<Vec<usize>>,
    split: Split,
    output: nn::Output,
) -> PyResult<Vec<usize>> {
    let len = run.target_count(split, output);
    let t = Targets {
        split,
        indices: targets.unwrap_or_else(|| (0..len.min(50)).collect()),
        output,
    };
    run.check_targets(&t).map_err(|e| bad("targets", e))?;
    Ok(t.indices)
}

#[pymethods]
impl PyRun {
    /// Opens the run directory `dir` (as `attrib evaluate --run DIR` does, fingerprint checked).
    #[new]
    fn new(py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        let run = py
            .allow_threads(|| Run::load(&dir))
            .map_err(|e| bad("dir", e))?;
        Ok(PyRun { run, dir })
    }

    /// Training examples (score columns).
    #[getter]
    fn n_train(&self) -> usize {
        self.run.n_train()
    }

    /// Parameters of the model.
    #[getter]
    fn n_params(&self) -> usize {
        self.run.params.len()
    }

    /// The run directory.
    #[getter]
    fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// The training-set indices of every step's batch, in step order, as the trainer draws them
    /// (`nn::batch_plan`: seeded permutations per epoch, never dependent on data weights; a
    /// dropped example keeps its slot with weight 0). With `learning_rates`, `dataset("train")`
    /// and the initial parameters (`train.init_from`, or step 0 of `trajectory/`) this is all an
    /// outside implementation needs to replay the run (MATH.md E1).
    fn batch_plan(&self) -> Vec<Vec<usize>> {
        let t = &self.run.config.train;
        nn::batch_plan(
            self.run.n_train(),
            t.batch_size,
            t.epochs,
            t.seed,
            t.drop_last,
        )
    }

    /// The learning rate of every step: `optim.lr` times the schedule's factor at that step.
    fn learning_rates(&self) -> PyResult<Vec<f64>> {
        let trainer =
            nn::Trainer::<f64>::new(&self.run.model, &self.run.config, &self.run.splits.train)
                .map_err(runtime)?;
        Ok((0..trainer.steps()).map(|t| trainer.lr_at(t)).collect())
    }

    /// `f(S)`: the trained model's `output` on every example of `split` (float64).
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

    /// The examples of `split` as the model sees them (after standardisation and reshaping):
    /// `(X, y)` with `X` float32 `[n, *example_shape]` (token ids as int64 `[n, seq_len]` for
    /// text) and `y` the labels (int64 classes, float32 targets, or None).
    #[pyo3(signature = (split="train"))]
    fn dataset<'py>(&self, py: Python<'py>, split: &str) -> PyResult<(PyObject, PyObject)> {
        let ds = self.run.dataset(split_of(split)?);
        let n = ds.len();
        let x: PyObject = match &ds.features {
            data::Features::Dense { values, shape } => {
                let mut dims = vec![n];
                dims.extend(shape);
                PyArray1::from_slice(py, values)
                    .reshape(dims)?
                    .into_any()
                    .unbind()
            }
            data::Features::Tokens { ids, seq_len, .. } => {
                let ids: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
                PyArray1::from_vec(py, ids)
                    .reshape([n, *seq_len])?
                    .into_any()
                    .unbind()
            }
        };
        let y: PyObject = match &ds.labels {
            data::Labels::Classes { y, .. } => {
                let y: Vec<i64> = y.iter().map(|&c| i64::from(c)).collect();
                PyArray1::from_vec(py, y).into_any().unbind()
            }
            data::Labels::Real(y) => PyArray1::from_slice(py, y).into_any().unbind(),
            data::Labels::None => py.None(),
        };
        Ok((x, y))
    }

    /// Per-example gradients `grad_theta f(z)` of `output` at the trained parameters, float64
    /// `[examples, parameters]`, for `indices` of `split` (default: all). `output` defaults to
    /// TRAK's training-side output (the margin for classification, the log-likelihood otherwise)
    /// on the train split and to the margin elsewhere: what `attrib.project` then turns into the
    /// features of `attrib attribute --method trak`.
    #[pyo3(signature = (split="train", indices=None, output=None))]
    fn gradients<'py>(
        &self,
        py: Python<'py>,
        split: &str,
        indices: Option<Vec<usize>>,
        output: Option<&str>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let split = split_of(split)?;
        let out = match output {
            Some(o) => run::parse_output(o).map_err(|e| bad("output", e))?,
            None if split == Split::Train => {
                methods::estimators::trak::training_output(self.run.model.task())
            }
            None => nn::Output::Margin,
        };
        let len = self.run.target_count(split, out);
        let indices = indices.unwrap_or_else(|| (0..len).collect());
        let indices = target_indices(&self.run, Some(indices), split, out)?;
        let p = self.run.params.len();
        let rows = indices.len();
        let run = &self.run;
        let flat: Vec<f64> = py.allow_threads(|| {
            indices
                .chunks(crate::features::BLOCK)
                .flat_map(|chunk| {
                    let t = Targets {
                        split,
                        indices: chunk.to_vec(),
                        output: out,
                    };
                    let batch = run.target_batch::<f64>(&t);
                    nn::per_example::output_grads(&run.model, &run.params, &batch, out)
                })
                .flatten()
                .collect()
        });
        PyArray1::from_vec(py, flat).reshape([rows, p])
    }

    /// Scores `tau[target, train]` of `method` (MATH.md's sign: `tau_i = d f / d w_i`), computed
    /// as `attrib attribute` computes them and rounded to float32 as its `.npy` file stores them.
    /// `options` are the method's `--option key=value` pairs, e.g. `damping="auto"`.
    #[pyo3(signature = (method, targets=None, output="margin", split="test", threads=None, **options))]
    #[allow(clippy::too_many_arguments)]
    fn attribute<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        targets: Option<Vec<usize>>,
        output: &str,
        split: &str,
        threads: Option<usize>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let out = run::parse_output(output).map_err(|e| bad("output", e))?;
        let split = split_of(split)?;
        let indices = target_indices(&self.run, targets, split, out)?;
        let mut pairs = Vec::new();
        if let Some(o) = options {
            for (k, v) in o.iter() {
                pairs.push(format!("{}={}", k.str()?, v.str()?));
            }
        }
        let opts = methods::Options::parse(method, &pairs).map_err(|e| bad("options", e))?;
        let (m, used) = methods::build(method, opts).map_err(|e| bad("method", e))?;
        let rows = indices.len();
        let targets = Targets {
            split,
            indices,
            output: out,
        };
        let run = &self.run;
        let scores = py
            .allow_threads(|| {
                with_threads(threads, || {
                    methods::attribute(run, m.as_ref(), used, &targets)
                })
            })
            .map_err(runtime)?
            .map_err(runtime)?;
        let cols = scores.meta.n_train;
        let values: Vec<f32> = scores.values.iter().map(|&v| v as f32).collect();
        PyArray1::from_vec(py, values).reshape([rows, cols])
    }

    /// The ground truth of MATH.md E6, computed (or loaded) in the run's folder exactly as
    /// `attrib groundtruth --drop DROP --subsets SUBSETS` does: a dict with `masks` (bool
    /// `[subsets, train]`, True = kept), `outputs` (`[subsets, split examples]`: each retrained
    /// model's `output` on every example of `split`) and `base` (`[split examples]`: `f(S)`).
    #[pyo3(signature = (drop=0.01, subsets=100, *, output="margin", split="test", seed=0, seeds=1, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn groundtruth<'py>(
        &self,
        py: Python<'py>,
        drop: f64,
        subsets: usize,
        output: &str,
        split: &str,
        seed: u64,
        seeds: usize,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        run::parse_output(output).map_err(|e| bad("output", e))?;
        let split = split_of(split)?;
        if seeds == 0 {
            return Err(bad("seeds", "give at least 1 trainer seed per subset"));
        }
        let spec = SubsetSpec::drop(drop, subsets, seed);
        spec.validate(self.run.n_train())
            .map_err(|e| bad("drop", e))?;
        let (run, dir) = (&self.run, self.dir.as_path());
        let gt = py
            .allow_threads(|| {
                with_threads(threads, || {
                    attrib_cli::ground_truth(run, dir, &spec, output, split, seeds)
                })
            })
            .map_err(runtime)?
            .map_err(|e| runtime(attrib_cli::render(&e)))?;
        let n = self.run.n_train();
        let m = gt.masks.len();
        let masks: Vec<bool> = gt.masks.iter().flatten().copied().collect();
        let cols = gt.full.len();
        let outputs: Vec<f64> = gt.outputs.iter().flatten().copied().collect();
        let d = PyDict::new(py);
        d.set_item("masks", PyArray1::from_vec(py, masks).reshape([m, n])?)?;
        d.set_item(
            "outputs",
            PyArray1::from_vec(py, outputs).reshape([m, cols])?,
        )?;
        d.set_item("base", PyArray1::from_vec(py, gt.full))?;
        Ok(d)
    }
}

/// Runs `attrib ARGS...` in this process and returns its events (JSON lines, the `--json` wire
/// format); the GIL is released meanwhile.
#[pyfunction]
#[pyo3(signature = (args, threads=None))]
pub fn run_command(
    py: Python<'_>,
    args: Vec<String>,
    threads: Option<usize>,
) -> PyResult<Vec<String>> {
    py.allow_threads(|| with_threads(threads, || attrib_cli::run_captured(&args)))
        .map_err(runtime)?
        .map_err(|e| runtime(attrib_cli::render(&e)))
}

/// Trains a run configuration into `out`, as `attrib train` does. The config is the TOML file
/// `config_path` or the JSON text `config_json` (relative paths against `base`); `x_path` and
/// `y_path` replace its data with `.npy` files (source `npy`, the other `[data]` fields kept).
#[pyfunction]
#[pyo3(signature = (out, *, config_path=None, config_json=None, base=None, x_path=None, y_path=None, force=false, threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    out: PathBuf,
    config_path: Option<PathBuf>,
    config_json: Option<String>,
    base: Option<PathBuf>,
    x_path: Option<PathBuf>,
    y_path: Option<PathBuf>,
    force: bool,
    threads: Option<usize>,
) -> PyResult<Vec<String>> {
    let (mut value, origin, base): (toml::Value, String, PathBuf) = match (config_path, config_json)
    {
        (Some(p), None) => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| bad("config", format!("cannot read {}: {e}", p.display())))?;
            let v = toml::from_str(&text)
                .map_err(|e| bad("config", format!("{}: {e}", p.display())))?;
            (v, p.display().to_string(), run::dir::config_base(&p))
        }
        (None, Some(j)) => {
            let json: serde_json::Value = serde_json::from_str(&j).map_err(|e| bad("config", e))?;
            let v = toml::Value::try_from(json).map_err(|e| {
                bad("config", format!("{e} (a config dict holds tables, strings, numbers, booleans and lists; no None)"))
            })?;
            (
                v,
                "<dict>".into(),
                base.unwrap_or_else(|| PathBuf::from(".")),
            )
        }
        _ => return Err(bad("config", "give a TOML file path or a dict")),
    };
    if let Some(x) = &x_path {
        let table = value.as_table_mut().ok_or_else(|| {
            bad(
                "config",
                "the config must be a table of tables ([data], [model], ...)",
            )
        })?;
        let data = table
            .entry("data")
            .or_insert_with(|| toml::Value::Table(Default::default()));
        let data = data
            .as_table_mut()
            .ok_or_else(|| bad("config", "data must be a table"))?;
        data.insert("source".into(), "npy".into());
        data.insert("path".into(), x.display().to_string().into());
        data.remove("labels_path");
        if let Some(y) = &y_path {
            data.insert("labels_path".into(), y.display().to_string().into());
        }
    }
    let text = toml::to_string(&value).map_err(|e| bad("config", e))?;
    let cfg =
        nn::RunConfig::from_toml_str(&text, Path::new(&origin)).map_err(|e| bad("config", e))?;
    let cfg = run::dir::absolute_paths(cfg, &base);
    py.allow_threads(|| {
        with_threads(threads, || {
            attrib_cli::train_config(cfg, &origin, &out, force)
        })
    })
    .map_err(runtime)?
    .map_err(|e| runtime(attrib_cli::render(&e)))
}
