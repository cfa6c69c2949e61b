//! NumPy arrays read in place: a C-contiguous float64, float32 or bool array (a `np.memmap`
//! included) is borrowed without a copy; anything else is converted once to float64.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use eval::external::{Array2, Values};

use crate::bad;

/// A borrowed (or once-converted) array and its shape.
pub enum Held<'py> {
    /// float64.
    F64(PyReadonlyArrayDyn<'py, f64>),
    /// float32.
    F32(PyReadonlyArrayDyn<'py, f32>),
    /// bool.
    Bool(PyReadonlyArrayDyn<'py, bool>),
}

impl<'py> Held<'py> {
    /// `a` with `ndim` dimensions: borrowed when it is C-contiguous float64/float32/bool,
    /// otherwise converted to a C-contiguous float64 array.
    ///
    /// # Errors
    /// `ValueError` naming `arg` when `a` is not an array of numbers of `ndim` dimensions.
    pub fn of(arg: &str, a: &Bound<'py, PyAny>, ndim: usize) -> PyResult<Held<'py>> {
        let held = if let Some(x) = contiguous::<f64>(a) {
            Held::F64(x)
        } else if let Some(x) = contiguous::<f32>(a) {
            Held::F32(x)
        } else if let Some(x) = contiguous::<bool>(a) {
            Held::Bool(x)
        } else {
            let np = a.py().import("numpy")?;
            let converted = np
                .call_method1("ascontiguousarray", (a, "float64"))
                .map_err(|_| bad(arg, "expected an array of numbers"))?;
            Held::F64(
                converted
                    .downcast::<PyArrayDyn<f64>>()
                    .map_err(|_| bad(arg, "expected an array of numbers"))?
                    .readonly(),
            )
        };
        let got = held.shape().len();
        if got != ndim {
            return Err(bad(
                arg,
                format!(
                    "expected a {ndim}-D array, got {got}-D of shape {:?}",
                    held.shape()
                ),
            ));
        }
        Ok(held)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Held::F64(x) => x.shape(),
            Held::F32(x) => x.shape(),
            Held::Bool(x) => x.shape(),
        }
    }

    /// The values, row-major, in place.
    pub fn values(&self) -> Values<'_> {
        // `contiguous` and `ascontiguousarray` guarantee C order, so `as_slice` cannot fail.
        match self {
            Held::F64(x) => Values::F64(x.as_slice().expect("C-contiguous")),
            Held::F32(x) => Values::F32(x.as_slice().expect("C-contiguous")),
            Held::Bool(x) => Values::Bool(x.as_slice().expect("C-contiguous")),
        }
    }

    /// A 2-D array as an [`Array2`] (rows, columns).
    pub fn array2(&self) -> Array2<'_> {
        let s = self.shape();
        Array2::of(self.values(), s[0], s.get(1).copied().unwrap_or(1))
    }

    /// Every value as f64 (a copy), row-major.
    pub fn to_f64(&self) -> Vec<f64> {
        let v = self.values();
        (0..v.len()).map(|k| v.get(k)).collect()
    }
}

/// `a` borrowed as a C-contiguous array of `T`, if it is one.
fn contiguous<'py, T: numpy::Element>(a: &Bound<'py, PyAny>) -> Option<PyReadonlyArrayDyn<'py, T>> {
    let x = a.downcast::<PyArrayDyn<T>>().ok()?;
    if !x.is_c_contiguous() {
        return None;
    }
    x.try_readonly().ok()
}

/// Checks that every value of `held` is finite.
///
/// # Errors
/// `ValueError` naming `arg` and the first non-finite entry.
pub fn check_finite(arg: &str, held: &Held<'_>) -> PyResult<()> {
    let v = held.values();
    let bad_at = v.first_non_finite();
    match bad_at {
        Some(k) => Err(bad(
            arg,
            format!(
                "entry {k} (row-major) is {}; every value must be finite",
                v.get(k)
            ),
        )),
        None => Ok(()),
    }
}
