//! NumPy `.npy` reading (any numeric dtype, C or Fortran order) and atomic `f32` writing.

use std::path::Path;

use npyz::{NpyFile, NpyHeader, Order, TypeChar, WriterBuilder};

use crate::csv::Task;
use crate::io_util::{read_all, stem_name};
use crate::{DataError, Dataset, Features, Labels};

/// The values of an array, widened to one of four element types.
enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U64(Vec<u64>),
}

impl Values {
    fn into_f64(self) -> Vec<f64> {
        match self {
            Values::F32(v) => v.into_iter().map(f64::from).collect(),
            Values::F64(v) => v,
            Values::I64(v) => v.into_iter().map(|x| x as f64).collect(),
            Values::U64(v) => v.into_iter().map(|x| x as f64).collect(),
        }
    }

    fn into_f32(self) -> Vec<f32> {
        match self {
            Values::F32(v) => v,
            Values::F64(v) => v.into_iter().map(|x| x as f32).collect(),
            Values::I64(v) => v.into_iter().map(|x| x as f32).collect(),
            Values::U64(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }
}

/// Reads an `.npy` file (optionally gzipped) into a C-order array of `f32` and its shape.
///
/// Accepts float (f32/f64), integer, unsigned and bool dtypes, little or big endian, C or
/// Fortran order; values are converted to `f32`.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<f32>, Vec<usize>), DataError> {
    let (values, shape) = read_values(path)?;
    Ok((values.into_f32(), shape))
}

/// Reads an `.npy` file as [`read_npy_f32`] does, but keeps (or widens to) `f64` values.
pub fn read_npy_f64(path: &Path) -> Result<(Vec<f64>, Vec<usize>), DataError> {
    let (values, shape) = read_values(path)?;
    Ok((values.into_f64(), shape))
}

/// Reads features `x` (shape `(n, d...)`, example axis first) and optional labels `y` (shape
/// `(n,)` or `(n, 1)`) from `.npy` files into a dense dataset named after `x`'s file stem.
///
/// Classification labels must be non-negative integers (integer dtype, or floats holding whole
/// numbers); `num_classes` is the largest label + 1. Features must be finite.
pub fn read_npy_dataset(
    x_path: &Path,
    y_path: Option<&Path>,
    task: Task,
) -> Result<Dataset, DataError> {
    let (x, x_shape) = read_npy_f32(x_path)?;
    if x_shape.len() < 2 {
        return Err(DataError::format(
            x_path,
            format!(
                "expected a 2-D float array (n, d) (or (n, ...) with the example axis first), \
                 found shape {x_shape:?}; for one feature per example save x.reshape(-1, 1)"
            ),
        ));
    }
    let n = x_shape[0];
    let example_shape = x_shape[1..].to_vec();
    let d: usize = example_shape.iter().product();
    if d == 0 {
        return Err(DataError::format(
            x_path,
            format!("shape {x_shape:?} has no features per example; each example needs >= 1 value"),
        ));
    }
    if let Some(k) = x.iter().position(|v| !v.is_finite()) {
        return Err(DataError::format(
            x_path,
            format!(
                "example {}, feature {}: NaN/inf is not allowed in features; clean or impute the \
                 value",
                k / d,
                k % d
            ),
        ));
    }
    let labels = match y_path {
        None => Labels::None,
        Some(y_path) => read_labels(y_path, x_path, n, task)?,
    };
    Ok(Dataset {
        name: stem_name(x_path),
        features: Features::Dense {
            values: x,
            shape: example_shape,
        },
        labels,
        feature_names: None,
    })
}

fn read_labels(y_path: &Path, x_path: &Path, n: usize, task: Task) -> Result<Labels, DataError> {
    let (y, shape) = read_values(y_path)?;
    let rows = match shape.as_slice() {
        [m] | [m, 1] => *m,
        _ => {
            return Err(DataError::format(
                y_path,
                format!(
                    "expected a 1-D array of labels (n,), found shape {shape:?}; save one label \
                     per example, e.g. y.reshape(-1)"
                ),
            ))
        }
    };
    if rows != n {
        return Err(DataError::Mismatch {
            reason: format!(
                "{} has {rows} rows but {} has {n}; they must describe the same examples",
                y_path.display(),
                x_path.display()
            ),
        });
    }
    match task {
        Task::Regression => {
            let y = y.into_f32();
            if let Some(i) = y.iter().position(|v| !v.is_finite()) {
                return Err(DataError::format(
                    y_path,
                    format!(
                        "row {i}: NaN/inf is not allowed in regression targets; drop or fix the \
                         example"
                    ),
                ));
            }
            Ok(Labels::Real(y))
        }
        Task::Classification => {
            let bad = |i: usize, v: String| {
                DataError::format(
                    y_path,
                    format!(
                        "row {i}: {v} is not a valid class; class labels must be integers in \
                         0..num_classes (for real-valued targets use the regression task)"
                    ),
                )
            };
            let classes: Vec<u32> = match y {
                Values::I64(v) => v
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| u32::try_from(c).map_err(|_| bad(i, c.to_string())))
                    .collect::<Result<_, _>>()?,
                Values::U64(v) => v
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| u32::try_from(c).map_err(|_| bad(i, c.to_string())))
                    .collect::<Result<_, _>>()?,
                Values::F32(v) => float_classes(v.iter().map(|&x| f64::from(x)), &bad)?,
                Values::F64(v) => float_classes(v.iter().copied(), &bad)?,
            };
            let num_classes = classes.iter().max().map_or(0, |&m| m as usize + 1);
            Ok(Labels::Classes {
                y: classes,
                num_classes,
                class_names: None,
            })
        }
    }
}

fn float_classes(
    v: impl Iterator<Item = f64>,
    bad: &dyn Fn(usize, String) -> DataError,
) -> Result<Vec<u32>, DataError> {
    v.enumerate()
        .map(|(i, x)| {
            if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) {
                Ok(x as u32)
            } else {
                Err(bad(i, x.to_string()))
            }
        })
        .collect()
}

/// Reads any supported `.npy` into widened values in C order, with the shape.
fn read_values(path: &Path) -> Result<(Values, Vec<usize>), DataError> {
    let bytes = read_all(path)?;
    let mut rest: &[u8] = &bytes;
    let header = NpyHeader::from_reader(&mut rest).map_err(|e| {
        DataError::format(
            path,
            format!("not a valid .npy file ({e}); save the array with numpy.save"),
        )
    })?;
    let shape: Vec<usize> = header
        .shape()
        .iter()
        .map(|&s| usize::try_from(s))
        .collect::<Result<_, _>>()
        .map_err(|_| DataError::format(path, "array dimensions are too large for this machine"))?;
    let npyz::DType::Plain(ts) = header.dtype() else {
        return Err(DataError::format(
            path,
            format!(
                "structured dtype {} is not supported; save a plain numeric array",
                header.dtype().descr()
            ),
        ));
    };
    let (tc, size) = (ts.type_char(), ts.size_field());
    let supported = matches!(
        (tc, size),
        (TypeChar::Float, 4 | 8)
            | (TypeChar::Int | TypeChar::Uint, 1 | 2 | 4 | 8)
            | (TypeChar::Bool, 1)
    );
    if !supported {
        return Err(DataError::format(
            path,
            format!(
                "dtype {ts} is not supported; save the array as float32, float64 or an integer \
                 type (e.g. x.astype(numpy.float32))"
            ),
        ));
    }
    let needed = header.len().checked_mul(size);
    if !matches!(needed, Some(b) if b <= rest.len() as u64) {
        return Err(DataError::format(
            path,
            format!(
                "expected {} bytes of data for shape {shape:?} of {ts}, found {}; the file is \
                 truncated, save it again",
                needed.map_or_else(|| "more than 2^64".to_string(), |b| b.to_string()),
                rest.len()
            ),
        ));
    }
    let fortran = header.order() == Order::Fortran;
    let npy = NpyFile::with_header(header, rest);
    let io = |e: std::io::Error| DataError::io(path, e);
    let values = match (tc, size) {
        (TypeChar::Float, 4) => Values::F32(npy.into_vec::<f32>().map_err(io)?),
        (TypeChar::Float, _) => Values::F64(npy.into_vec::<f64>().map_err(io)?),
        (TypeChar::Int, 1) => Values::I64(widen(npy.into_vec::<i8>().map_err(io)?)),
        (TypeChar::Int, 2) => Values::I64(widen(npy.into_vec::<i16>().map_err(io)?)),
        (TypeChar::Int, 4) => Values::I64(widen(npy.into_vec::<i32>().map_err(io)?)),
        (TypeChar::Int, _) => Values::I64(npy.into_vec::<i64>().map_err(io)?),
        (TypeChar::Uint, 1) => Values::U64(widen(npy.into_vec::<u8>().map_err(io)?)),
        (TypeChar::Uint, 2) => Values::U64(widen(npy.into_vec::<u16>().map_err(io)?)),
        (TypeChar::Uint, 4) => Values::U64(widen(npy.into_vec::<u32>().map_err(io)?)),
        (TypeChar::Uint, _) => Values::U64(npy.into_vec::<u64>().map_err(io)?),
        _ => Values::U64(widen(npy.into_vec::<bool>().map_err(io)?)),
    };
    let values = if fortran && shape.len() > 1 {
        match values {
            Values::F32(v) => Values::F32(fortran_to_c(&v, &shape)),
            Values::F64(v) => Values::F64(fortran_to_c(&v, &shape)),
            Values::I64(v) => Values::I64(fortran_to_c(&v, &shape)),
            Values::U64(v) => Values::U64(fortran_to_c(&v, &shape)),
        }
    } else {
        values
    };
    Ok((values, shape))
}

fn widen<S, T: From<S>>(v: Vec<S>) -> Vec<T> {
    v.into_iter().map(T::from).collect()
}

/// Reorders a column-major (Fortran) array into row-major (C) order.
fn fortran_to_c<T: Copy>(v: &[T], shape: &[usize]) -> Vec<T> {
    let nd = shape.len();
    let mut stride = vec![1usize; nd];
    for j in 1..nd {
        stride[j] = stride[j - 1] * shape[j - 1];
    }
    let mut idx = vec![0usize; nd];
    let mut off = 0usize;
    let mut out = Vec::with_capacity(v.len());
    for _ in 0..v.len() {
        out.push(v[off]);
        let mut j = nd;
        while j > 0 {
            j -= 1;
            idx[j] += 1;
            off += stride[j];
            if idx[j] < shape[j] {
                break;
            }
            off -= stride[j] * shape[j];
            idx[j] = 0;
        }
    }
    out
}

/// Writes `data` (C order, `shape.iter().product() == data.len()`) as a little-endian `<f4`
/// `.npy` file, atomically ([`crate::write_atomic`]).
pub fn write_npy_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<(), DataError> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(DataError::InvalidArgument {
            reason: format!(
                "cannot write {}: {} values do not fill shape {shape:?} ({expected} values); pass \
                 a shape whose product is the number of values",
                path.display(),
                data.len()
            ),
        });
    }
    let mut bytes = Vec::with_capacity(128 + 4 * data.len());
    let io = |e: std::io::Error| DataError::io(path, e);
    let shape64: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&shape64)
        .writer(&mut bytes)
        .begin_nd()
        .map_err(io)?;
    writer.extend(data.iter().copied()).map_err(io)?;
    writer.finish().map_err(io)?;
    crate::io_util::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_reorder() {
        // 2x3 matrix [[1,2,3],[4,5,6]] stored column-major.
        let f = [1, 4, 2, 5, 3, 6];
        assert_eq!(fortran_to_c(&f, &[2, 3]), vec![1, 2, 3, 4, 5, 6]);
    }
}
