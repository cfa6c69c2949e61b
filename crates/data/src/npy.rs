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

/// Writes a `<f4` `.npy` matrix of a known final shape row block by row block, so the whole
/// matrix is never held in memory. The header for `shape` is written first, rows are appended in
/// C order, and [`NpyRowWriter::finish`] renames the temporary file (`.NAME.stream.PID.SEQ.tmp`,
/// same folder) onto `path`. The bytes are identical to [`write_npy_f32`] for the same matrix.
/// Dropping the writer without `finish` removes the temporary and leaves `path` untouched.
pub struct NpyRowWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    writer: Option<npyz::NpyWriter<f32, std::io::BufWriter<std::fs::File>>>,
    row_len: usize,
    rows: usize,
    written: usize,
}

impl NpyRowWriter {
    /// Starts `path` with final shape `shape` (`shape[0]` rows of `shape[1..].product()` values).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an empty shape; [`DataError::Io`] naming `path`.
    pub fn create(path: &Path, shape: &[usize]) -> Result<Self, DataError> {
        if shape.is_empty() {
            return Err(DataError::InvalidArgument {
                reason: format!(
                    "cannot write {} row by row: the shape has no rows; pass at least one dimension",
                    path.display()
                ),
            });
        }
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.stream.{}.{seq}.tmp", std::process::id()));
        let io = |e: std::io::Error| DataError::io(path, e);
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let shape64: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
        let writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape64)
            .writer(std::io::BufWriter::new(file))
            .begin_nd();
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            writer: Some(writer),
            row_len: shape[1..].iter().product(),
            rows: shape[0],
            written: 0,
        })
    }

    /// Appends whole rows (`values.len()` a multiple of the row length, in C order).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when `values` is not whole rows or goes past the final row
    /// count; [`DataError::Io`] naming the file.
    pub fn write_rows(&mut self, values: &[f32]) -> Result<(), DataError> {
        // Rows of no values: only an empty slice is whole, and it adds no row.
        let whole = values
            .len()
            .checked_rem(self.row_len)
            .map_or(values.is_empty(), |r| r == 0);
        let n = values.len().checked_div(self.row_len).unwrap_or(0);
        if !whole || self.written + n > self.rows {
            return Err(DataError::InvalidArgument {
                reason: format!(
                    "cannot write {}: {} values after {} of {} rows of {} do not fit; pass whole \
                     rows and no more than the shape holds",
                    self.path.display(),
                    values.len(),
                    self.written,
                    self.rows,
                    self.row_len
                ),
            });
        }
        let path = self.path.clone();
        let w = self
            .writer
            .as_mut()
            .expect("writer is present until finish");
        w.extend(values.iter().copied())
            .map_err(|e| DataError::io(&path, e))?;
        self.written += n;
        Ok(())
    }

    /// Checks every row was written, syncs the file and renames it onto `path`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when fewer rows than the shape's were written (the temporary
    /// is removed); [`DataError::Io`] naming the file.
    pub fn finish(mut self) -> Result<(), DataError> {
        if self.written != self.rows {
            return Err(DataError::InvalidArgument {
                reason: format!(
                    "cannot finish {}: {} of {} rows were written; write every row before finish",
                    self.path.display(),
                    self.written,
                    self.rows
                ),
            });
        }
        let path = self.path.clone();
        let io = |e: std::io::Error| DataError::io(&path, e);
        let w = self.writer.take().expect("writer is present until finish");
        let done = (|| {
            // `finish` flushes and closes the file; reopen it to put it on disk before the
            // rename, as `write_atomic` does.
            w.finish()?;
            std::fs::File::open(&self.tmp)?.sync_all()?;
            std::fs::rename(&self.tmp, &self.path)
        })();
        done.map_err(io)
    }
}

impl Drop for NpyRowWriter {
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads a `.npy` matrix row block by row block, so the whole matrix need not be in memory.
///
/// A little-endian `<f4` file in C order (what [`write_npy_f32`] and [`NpyRowWriter`] write) is
/// read where its rows lie: only the rows asked for are read. Any other array that
/// [`read_npy_f32`] accepts (another dtype, big-endian, Fortran order) is read whole once, converted
/// as [`read_npy_f32`] does, and served from memory, so every file reads the same values either
/// way.
pub struct NpyRowReader {
    path: std::path::PathBuf,
    shape: Vec<usize>,
    row_len: usize,
    source: RowSource,
}

/// Where [`NpyRowReader`] finds its rows.
enum RowSource {
    /// A `<f4` C-order file, its data starting at byte `data_start`.
    File {
        file: std::io::BufReader<std::fs::File>,
        data_start: u64,
    },
    /// Any other array, converted to `f32` in C order.
    Memory(Vec<f32>),
}

impl NpyRowReader {
    /// Opens `path` and reads its header (the whole array for the formats read into memory).
    ///
    /// # Errors
    /// [`DataError::Io`] naming `path`; [`DataError::Format`] for a file that is not a `.npy`
    /// array of a supported dtype, a 0-dimensional array, or a `<f4` file whose length differs
    /// from its header's shape (truncated or with trailing bytes).
    pub fn open(path: &Path) -> Result<Self, DataError> {
        use std::io::{Seek, SeekFrom};
        let io = |e: std::io::Error| DataError::io(path, e);
        let file = std::fs::File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut file = std::io::BufReader::new(file);
        // A header npyz cannot read goes to `read_npy_f32`, whose errors say what is wrong.
        let header = NpyHeader::from_reader(&mut file).ok();
        let streamable = header.as_ref().and_then(|h| {
            let npyz::DType::Plain(ts) = h.dtype() else {
                return None;
            };
            let f4 = ts.type_char() == TypeChar::Float
                && ts.size_field() == 4
                && ts.endianness() == npyz::Endianness::Little;
            let c_order = h.order() == Order::C || h.shape().len() < 2;
            let shape: Option<Vec<usize>> =
                h.shape().iter().map(|&d| usize::try_from(d).ok()).collect();
            (f4 && c_order).then_some(shape).flatten()
        });
        let (shape, source) = match streamable {
            Some(shape) => {
                let data_start = file.stream_position().map_err(io)?;
                let values: Option<u64> = shape
                    .iter()
                    .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
                    .and_then(|v| v.checked_mul(4));
                if values.and_then(|v| v.checked_add(data_start)) != Some(file_len) {
                    return Err(DataError::format(
                        path,
                        format!(
                            "the file has {file_len} bytes but its header describes shape                              {shape:?} of 4-byte floats after {data_start} header bytes; the file                              is truncated or damaged, write it again"
                        ),
                    ));
                }
                file.seek(SeekFrom::Start(data_start)).map_err(io)?;
                (shape, RowSource::File { file, data_start })
            }
            None => {
                let (values, shape) = read_npy_f32(path)?;
                (shape, RowSource::Memory(values))
            }
        };
        if shape.is_empty() {
            return Err(DataError::format(
                path,
                "the array has no dimensions (a scalar); save a matrix with one row per entry",
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            row_len: shape[1..].iter().product(),
            shape,
            source,
        })
    }

    /// The array's shape (`shape[0]` rows).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Rows `rows` (within `0..shape[0]`), concatenated in C order.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for rows past the end; [`DataError::Io`] naming the file.
    pub fn read_rows(&mut self, rows: std::ops::Range<usize>) -> Result<Vec<f32>, DataError> {
        use std::io::{Read, Seek, SeekFrom};
        if rows.start > rows.end || rows.end > self.shape[0] {
            return Err(DataError::InvalidArgument {
                reason: format!(
                    "cannot read rows {}..{} of {}: it has {} rows; ask for rows within 0..{}",
                    rows.start,
                    rows.end,
                    self.path.display(),
                    self.shape[0],
                    self.shape[0]
                ),
            });
        }
        let (first, last) = (rows.start * self.row_len, rows.end * self.row_len);
        match &mut self.source {
            RowSource::Memory(values) => Ok(values[first..last].to_vec()),
            RowSource::File { file, data_start } => {
                let io = |e: std::io::Error| DataError::io(&self.path, e);
                file.seek(SeekFrom::Start(*data_start + 4 * first as u64))
                    .map_err(io)?;
                let mut bytes = vec![0u8; 4 * (last - first)];
                file.read_exact(&mut bytes).map_err(io)?;
                Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_reader_reads_any_rows_and_other_layouts_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<f32> = (0..6 * 4).map(|i| i as f32 - 7.5).collect();
        let c = tmp.path().join("c.npy");
        write_npy_f32(&c, &data, &[6, 4]).unwrap();
        let mut r = NpyRowReader::open(&c).unwrap();
        assert!(matches!(r.source, RowSource::File { .. }));
        assert_eq!(r.shape(), &[6, 4]);
        assert_eq!(r.read_rows(2..5).unwrap(), data[8..20]);
        assert_eq!(r.read_rows(0..1).unwrap(), data[..4]);
        assert_eq!(r.read_rows(6..6).unwrap(), Vec::<f32>::new());
        let e = r.read_rows(5..7).unwrap_err().to_string();
        assert!(e.contains("c.npy") && e.contains("6 rows"), "{e}");
        // The same matrix stored as f64 is served from memory with the same values.
        let f = tmp.path().join("f.npy");
        let mut bytes = Vec::new();
        let mut w = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&[6, 4])
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().map(|&v| f64::from(v))).unwrap();
        w.finish().unwrap();
        std::fs::write(&f, &bytes).unwrap();
        let mut r = NpyRowReader::open(&f).unwrap();
        assert!(matches!(r.source, RowSource::Memory(_)));
        assert_eq!(r.read_rows(2..5).unwrap(), data[8..20]);
    }

    #[test]
    fn row_reader_refuses_a_truncated_file_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t.npy");
        write_npy_f32(&p, &[1.0; 12], &[3, 4]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
        let e = NpyRowReader::open(&p).err().unwrap().to_string();
        assert!(e.contains("t.npy") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn row_writer_bytes_equal_write_npy_f32() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<f32> = (0..7 * 5).map(|i| i as f32 * 0.25 - 3.0).collect();
        let a = tmp.path().join("a.npy");
        let b = tmp.path().join("b.npy");
        write_npy_f32(&a, &data, &[7, 5]).unwrap();
        let mut w = NpyRowWriter::create(&b, &[7, 5]).unwrap();
        w.write_rows(&data[..10]).unwrap();
        w.write_rows(&data[10..]).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(read_npy_f32(&b).unwrap(), (data, vec![7, 5]));
    }

    #[test]
    fn row_writer_refuses_a_short_or_ragged_file_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("s.npy");
        let mut w = NpyRowWriter::create(&p, &[3, 2]).unwrap();
        assert!(w.write_rows(&[1.0, 2.0, 3.0]).is_err());
        w.write_rows(&[1.0, 2.0]).unwrap();
        let e = w.finish().unwrap_err().to_string();
        assert!(e.contains("s.npy") && e.contains("1 of 3 rows"), "{e}");
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn fortran_reorder() {
        // 2x3 matrix [[1,2,3],[4,5,6]] stored column-major.
        let f = [1, 4, 2, 5, 3, 6];
        assert_eq!(fortran_to_c(&f, &[2, 3]), vec![1, 2, 3, 4, 5, 6]);
    }
}
