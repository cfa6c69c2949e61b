//! Bring your own gradients (issue 18, item 4): random projections, TRAK and TracIn scores from
//! features computed anywhere (PyTorch's `torch.func`, JAX), by attrib's own code (MATH.md E4).
//!
//! Every input is read in place, block by block of [`BLOCK`] rows, so a `np.memmap` of `[n, p]`
//! gradients larger than memory is streamed; results are a function of the inputs only (fixed
//! blocks, deterministic kernels), whatever the thread count.

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyList;

use engine::Tensor;
use eval::external::Array2;
use methods::estimators::trak::{margin_q, member_projection, Ensemble};
use methods::options::Auto;
use methods::support::projection::ProjectionKind;

use crate::arrays::{check_finite, Held};
use crate::{bad, runtime, with_threads};

/// Rows per block: TRAK's default chunk of training examples, so that projecting attrib's own
/// gradients gives the features `attrib attribute --method trak` computes, bit for bit.
pub const BLOCK: usize = 512;

/// Rows `start..end` of `a` widened to f64, or the position of the first non-finite value.
fn rows_f64(a: &Array2<'_>, start: usize, end: usize) -> Result<Vec<Vec<f64>>, (usize, usize)> {
    let cols = a.cols;
    (start..end)
        .map(|r| {
            (0..cols)
                .map(|c| {
                    let x = a.values.get(r * cols + c);
                    if x.is_finite() {
                        Ok(x)
                    } else {
                        Err((r, c))
                    }
                })
                .collect()
        })
        .collect()
}

/// `grads P`: the rows of `grads` (`[n, p]`) times the seeded random projection `P` (`[p, k]`,
/// entries `+-1/sqrt(k)` for `rademacher`, `N(0, 1/k)` for `gaussian`), never stored whole; float64
/// `[n, k]`. `P` is the projection TRAK's ensemble model `member` uses under `--option
/// seed=SEED` (MATH.md E4).
///
/// Deterministic: the same inputs give the same bits for any thread count.
#[pyfunction]
#[pyo3(signature = (grads, k, *, seed=0, kind="rademacher", member=0, threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn project<'py>(
    py: Python<'py>,
    grads: &Bound<'py, PyAny>,
    k: usize,
    seed: u64,
    kind: &str,
    member: usize,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    if k == 0 {
        return Err(bad("k", "the projection dimension must be at least 1"));
    }
    let kind: ProjectionKind = kind.parse().map_err(|e| bad("kind", e))?;
    let held = Held::of("grads", grads, 2)?;
    let a = held.array2();
    let (n, p) = (a.rows, a.cols);
    let proj = member_projection(kind, k, p, seed, member);
    let out = py.allow_threads(|| {
        with_threads(threads, || {
            let mut out = Vec::with_capacity(n * k);
            for start in (0..n).step_by(BLOCK) {
                let rows = rows_f64(&a, start, (start + BLOCK).min(n))?;
                out.extend(proj.project(&rows));
            }
            Ok::<_, (usize, usize)>(out)
        })
    });
    let out = out
        .map_err(runtime)?
        .map_err(|(r, c)| bad("grads", format!("entry [{r}, {c}] is not finite")))?;
    PyArray1::from_vec(py, out).reshape([n, k])
}

/// One array or a list of arrays (one per model or checkpoint).
fn per_model<'py>(arg: &str, x: &Bound<'py, PyAny>, ndim: usize) -> PyResult<Vec<Held<'py>>> {
    if let Ok(list) = x.downcast::<PyList>() {
        list.iter()
            .enumerate()
            .map(|(m, a)| Held::of(&format!("{arg}[{m}]"), &a, ndim))
            .collect()
    } else {
        Ok(vec![Held::of(arg, x, ndim)?])
    }
}

/// Checks that the per-model lists have one entry each and the shapes agree: returns `(n, t, k)`.
fn check_pairs(
    train: &[Held<'_>],
    target: &[Held<'_>],
    what: &str,
) -> PyResult<(usize, usize, usize)> {
    if train.is_empty() {
        return Err(bad("train_features", format!("give at least one {what}")));
    }
    if train.len() != target.len() {
        return Err(bad(
            "target_features",
            format!(
                "{} arrays, but train_features has {}; give one per {what}",
                target.len(),
                train.len()
            ),
        ));
    }
    let (n, k) = (train[0].shape()[0], train[0].shape()[1]);
    let t = target[0].shape()[0];
    for (m, (a, b)) in train.iter().zip(target).enumerate() {
        if a.shape() != [n, k] {
            return Err(bad(
                "train_features",
                format!("{what} {m} has shape {:?}, model 0 {:?}", a.shape(), [n, k]),
            ));
        }
        if b.shape() != [t, k] {
            return Err(bad(
                "target_features",
                format!(
                    "{what} {m} has shape {:?}; expected [{t}, {k}] (k = the train features' columns)",
                    b.shape()
                ),
            ));
        }
        check_finite(&format!("train_features[{m}]"), a)?;
        check_finite(&format!("target_features[{m}]"), b)?;
    }
    Ok((n, t, k))
}

/// TRAK scores `tau[target, train]` from features (MATH.md E4, `attrib`'s `trak` formula):
/// per model `m`, `A_m = phi_t^T (rbar Phi^T Phi + d I)^{-1} Phi^T`, averaged with the `Q` weights
/// as `tau = (1/M sum A_m) * (1/M sum Q_m)`.
///
/// `train_features`: `[n, k]` projected gradients of the training-side output (one array, or a
/// list with one per model); `target_features`: `[targets, k]` (same count). `margins`: the
/// training examples' margins `g_i` per model (classification: `Q_i = sigmoid(-g_i)`, `rbar = mean
/// Q (1 - Q)`); without them `Q = 1`, `rbar = 1` (regression, language models). `damping`:
/// `"auto"` (a millionth of the kernel's mean eigenvalue) or a number. float64 `[targets, n]`.
#[pyfunction]
#[pyo3(signature = (train_features, target_features, *, margins=None, damping=None, threads=None))]
pub fn trak_scores<'py>(
    py: Python<'py>,
    train_features: &Bound<'py, PyAny>,
    target_features: &Bound<'py, PyAny>,
    margins: Option<&Bound<'py, PyAny>>,
    damping: Option<&Bound<'py, PyAny>>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let train = per_model("train_features", train_features, 2)?;
    let target = per_model("target_features", target_features, 2)?;
    let (n, t, k) = check_pairs(&train, &target, "model")?;
    let damping = match damping {
        None => Auto::Auto,
        Some(d) if d.extract::<String>().is_ok_and(|s| s == "auto") => Auto::Auto,
        Some(d) => {
            let v: f64 = d
                .extract()
                .map_err(|_| bad("damping", "use \"auto\" or a number >= 0"))?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad("damping", format!("{v} is not a number >= 0")));
            }
            Auto::Value(v)
        }
    };
    let qs: Option<Vec<Vec<f64>>> = match margins {
        None => None,
        Some(g) => {
            let list = per_model("margins", g, 1)?;
            if list.len() != train.len() {
                return Err(bad(
                    "margins",
                    format!(
                        "{} arrays, but there are {} models",
                        list.len(),
                        train.len()
                    ),
                ));
            }
            let mut qs = Vec::new();
            for (m, h) in list.iter().enumerate() {
                check_finite(&format!("margins[{m}]"), h)?;
                if h.shape()[0] != n {
                    return Err(bad(
                        "margins",
                        format!(
                            "model {m}: {} values for {n} training examples",
                            h.shape()[0]
                        ),
                    ));
                }
                qs.push(h.to_f64().into_iter().map(margin_q).collect());
            }
            Some(qs)
        }
    };
    let train_arrays: Vec<Array2<'_>> = train.iter().map(Held::array2).collect();
    let target_arrays: Vec<Array2<'_>> = target.iter().map(Held::array2).collect();
    let scores = py.allow_threads(|| {
        with_threads(threads, || {
            let mut ensemble = Ensemble::new(t, n);
            for (m, (a, b)) in train_arrays.iter().zip(&target_arrays).enumerate() {
                let phi: Vec<f64> = (0..n * k).map(|j| a.values.get(j)).collect();
                let phi_t: Vec<f64> = (0..t * k).map(|j| b.values.get(j)).collect();
                let (q, classification) = match &qs {
                    Some(qs) => (qs[m].clone(), true),
                    None => (vec![1.0; n], false),
                };
                ensemble.add_features(phi, q, &phi_t, k, classification, damping)?;
            }
            Ok::<_, methods::MethodError>(ensemble.scores())
        })
    });
    let rows = scores.map_err(runtime)?.map_err(runtime)?;
    PyArray2::from_vec2(py, &rows).map_err(runtime)
}

/// TracIn scores `tau[target, train] = -sum_c w_c <target_c[t], train_c[i]>` (MATH.md E4, the
/// sign and scale of `attrib`'s `tracin`: `w_c = eta_c m_c / n` makes `tau` estimate
/// `d f / d w_i`). `train_features`: gradients (or projections) of the training LOSS `l_i` at
/// each checkpoint, `[n, k]` each (one array or a list); `target_features`: gradients of the
/// target output `f_t`, `[targets, k]` per checkpoint; `weights`: one number per checkpoint
/// (default 1 each). float64 `[targets, n]`.
#[pyfunction]
#[pyo3(signature = (train_features, target_features, *, weights=None, threads=None))]
pub fn tracin_scores<'py>(
    py: Python<'py>,
    train_features: &Bound<'py, PyAny>,
    target_features: &Bound<'py, PyAny>,
    weights: Option<Vec<f64>>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let train = per_model("train_features", train_features, 2)?;
    let target = per_model("target_features", target_features, 2)?;
    let (n, t, k) = check_pairs(&train, &target, "checkpoint")?;
    let weights = weights.unwrap_or_else(|| vec![1.0; train.len()]);
    if weights.len() != train.len() {
        return Err(bad(
            "weights",
            format!("{} values for {} checkpoints", weights.len(), train.len()),
        ));
    }
    if let Some(w) = weights.iter().find(|w| !w.is_finite()) {
        return Err(bad("weights", format!("{w} is not finite")));
    }
    let train_arrays: Vec<Array2<'_>> = train.iter().map(Held::array2).collect();
    let target_arrays: Vec<Array2<'_>> = target.iter().map(Held::array2).collect();
    let tau = py.allow_threads(|| {
        with_threads(threads, || {
            let mut tau = vec![0.0; t * n];
            for ((a, b), w) in train_arrays.iter().zip(&target_arrays).zip(&weights) {
                let phi_t =
                    Tensor::from_vec((0..t * k).map(|j| b.values.get(j)).collect(), &[t, k]);
                for start in (0..n).step_by(BLOCK) {
                    let end = (start + BLOCK).min(n);
                    let block: Vec<f64> = (start * k..end * k).map(|j| a.values.get(j)).collect();
                    let block = Tensor::from_vec(block, &[end - start, k]);
                    let dots = engine::kernels::matmul(&phi_t, &block, false, true);
                    for (r, row) in dots.data().chunks(end - start).enumerate() {
                        for (i, d) in row.iter().enumerate() {
                            tau[r * n + start + i] -= w * d;
                        }
                    }
                }
            }
            tau
        })
    });
    PyArray1::from_vec(py, tau.map_err(runtime)?).reshape([t, n])
}
