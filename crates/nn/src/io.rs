//! Parameters in and out as safetensors, and atomic file writes.
//!
//! Tensor names and layouts are the model's [`crate::Layout`]: e.g. an MLP has `layers.{i}.weight`
//! `[out, in]` and `layers.{i}.bias` `[out]` (PyTorch's `nn.Linear` layout), so a `state_dict` saved
//! from PyTorch with the same names loads as initial parameters. `F32` and `F64` files are accepted
//! and converted to the training precision.

use std::collections::HashMap;
use std::path::Path;

use engine::Float;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{NnError, Result};
use crate::params::Layout;

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that a
/// reader never sees a half-written file.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| NnError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Little-endian bytes of `values` in the safetensors dtype of `F`.
fn to_bytes<F: Float>(values: &[F]) -> (Dtype, Vec<u8>) {
    if F::NAME == "f32" {
        (
            Dtype::F32,
            values
                .iter()
                .flat_map(|v| v.to_f32().to_le_bytes())
                .collect(),
        )
    } else {
        (
            Dtype::F64,
            values
                .iter()
                .flat_map(|v| v.to_f64().to_le_bytes())
                .collect(),
        )
    }
}

/// Saves the flat parameters under the layout's names, with string metadata.
///
/// # Errors
/// I/O errors naming the file.
pub fn save_params<F: Float>(
    path: &Path,
    layout: &Layout,
    flat: &[F],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let parts: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = layout
        .specs()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (dtype, bytes) = to_bytes(&flat[layout.range(i)]);
            (s.name.clone(), s.shape.clone(), dtype, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = parts
        .iter()
        .map(|(n, shape, dtype, bytes)| {
            (
                n.clone(),
                TensorView::new(*dtype, shape.clone(), bytes).expect("sizes match"),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| NnError::Params {
        path: path.to_path_buf(),
        reason: format!("cannot serialise: {e}"),
    })?;
    write_atomic(path, &bytes)
}

/// Loads parameters for `layout` from a safetensors file.
///
/// # Errors
/// A missing or misshapen tensor, an unsupported dtype or a non-finite value, naming the tensor and
/// listing what the model expects.
pub fn load_params<F: Float>(path: &Path, layout: &Layout) -> Result<Vec<F>> {
    let bad = |reason: String| NnError::Params {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| NnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        bad(format!(
            "not a safetensors file ({e}); save parameters with safetensors"
        ))
    })?;
    let expected = || {
        layout
            .specs()
            .iter()
            .map(|s| format!("{} {:?}", s.name, s.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut flat = Vec::with_capacity(layout.total());
    for spec in layout.specs() {
        let t = st.tensor(&spec.name).map_err(|_| {
            bad(format!(
                "no tensor named \"{}\"; the model expects: {}",
                spec.name,
                expected()
            ))
        })?;
        if t.shape() != spec.shape.as_slice() {
            return Err(bad(format!(
                "tensor \"{}\" has shape {:?} but the model expects {:?} (weights are [out, in])",
                spec.name,
                t.shape(),
                spec.shape
            )));
        }
        let start = flat.len();
        match t.dtype() {
            Dtype::F32 => flat.extend(
                t.data()
                    .chunks_exact(4)
                    .map(|c| F::from_f32(f32::from_le_bytes(c.try_into().unwrap()))),
            ),
            Dtype::F64 => flat.extend(
                t.data()
                    .chunks_exact(8)
                    .map(|c| F::from_f64(f64::from_le_bytes(c.try_into().unwrap()))),
            ),
            other => {
                return Err(bad(format!(
                    "tensor \"{}\" has dtype {other:?}; convert it to F32 or F64",
                    spec.name
                )))
            }
        }
        if let Some(j) = flat[start..].iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "tensor \"{}\" holds a non-finite value at flat index {j}",
                spec.name
            )));
        }
    }
    let names: Vec<&str> = st.names();
    if let Some(extra) = names
        .iter()
        .find(|n| !layout.specs().iter().any(|s| &s.name == *n))
    {
        return Err(bad(format!(
            "unexpected tensor \"{extra}\"; the model expects: {}",
            expected()
        )));
    }
    Ok(flat)
}

/// Reads the metadata of a safetensors file.
///
/// # Errors
/// I/O or format errors naming the file.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|source| NnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| NnError::Params {
        path: path.to_path_buf(),
        reason: format!("not a safetensors file ({e})"),
    })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}
