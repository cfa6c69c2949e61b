//! Parameters in and out as safetensors (written atomically by [`data::write_atomic`]).
//!
//! Tensor names and layouts are the model's [`crate::Layout`]: e.g. an MLP has `layers.{i}.weight`
//! `[out, in]` and `layers.{i}.bias` `[out]` (PyTorch's `nn.Linear` layout), so a `state_dict` saved
//! from PyTorch with the same names loads as initial parameters. `F32` and `F64` files are accepted
//! and converted to the training precision. Training-state checkpoints add the optimizer buffers as
//! `opt.{i}` (flat); [`load_params`] ignores them, so a checkpoint can also start a run.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use engine::Float;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{NnError, Result};
use crate::optim::OptState;
use crate::params::Layout;
use crate::trainer::TrainState;

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

/// Key under which attrib stores its metadata, as one JSON object with sorted keys.
///
/// `safetensors::serialize` writes `__metadata__` from a `HashMap`, whose order changes between
/// processes; one key keeps the file bytes a function of its content alone.
pub const METADATA_KEY: &str = "attrib";

/// Metadata key of the CRC-32 of the tensors (see [`tensors_crc32`]), written into every file and
/// verified by every loader, so that flipped bytes in the tensor data are an error instead of a
/// silently different model. Files without the key (older attrib, other tools) load unchecked.
pub const CHECKSUM_KEY: &str = "tensors_crc32";

/// CRC-32 (IEEE) of a file's tensors in name order: each tensor's name, dtype, shape and data.
fn tensors_crc32<'a>(
    tensors: impl IntoIterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
) -> String {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = crc32fast::Hasher::new();
    for (name, dtype, shape, data) in sorted {
        h.update(name.as_bytes());
        h.update(format!("{dtype:?}{shape:?}").as_bytes());
        h.update(data);
    }
    format!("{:08x}", h.finalize())
}

/// Checks the [`CHECKSUM_KEY`] of a deserialised file, when it has one.
fn verify_checksum(path: &Path, bytes: &[u8], st: &SafeTensors<'_>) -> Result<()> {
    let meta = metadata_of(path, bytes)?;
    let Some(want) = meta.get(CHECKSUM_KEY) else {
        return Ok(());
    };
    let tensors = st.tensors();
    let got = tensors_crc32(
        tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.dtype(), t.shape(), t.data())),
    );
    if &got != want {
        return Err(NnError::Params {
            path: path.to_path_buf(),
            reason: format!(
                "the tensor data is corrupt: its CRC-32 is {got} but the file was written with \
                 {want}; the file was damaged after it was written (disk, copy or edit): \
                 retrain (attrib train --force) or restore it from a copy"
            ),
        });
    }
    Ok(())
}

/// The bytes of a safetensors file holding `tensors` (name, shape, values) and `metadata`, plus
/// the tensors' checksum under [`CHECKSUM_KEY`]. Identical inputs give identical bytes in every
/// process.
///
/// # Panics
/// If a shape does not match its number of values (an internal invariant).
pub fn serialize_tensors<F: Float>(
    tensors: &[(String, Vec<usize>, &[F])],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let parts: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            assert_eq!(
                shape.iter().product::<usize>(),
                values.len(),
                "shape of {name} does not match its values"
            );
            let (dtype, bytes) = to_bytes(values);
            (name.clone(), shape.clone(), dtype, bytes)
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
    let mut metadata = metadata.clone();
    metadata.insert(
        CHECKSUM_KEY.to_string(),
        tensors_crc32(parts.iter().map(|(n, shape, dtype, bytes)| {
            (n.as_str(), *dtype, shape.as_slice(), bytes.as_slice())
        })),
    );
    let meta = HashMap::from([(
        METADATA_KEY.to_string(),
        serde_json::to_string(&metadata).expect("strings serialise"),
    )]);
    safetensors::serialize(views, Some(meta)).expect("valid tensor views always serialise")
}

/// Saves the flat parameters under the layout's names, with string metadata.
///
/// # Errors
/// I/O errors naming the file.
pub fn save_params<F: Float>(
    path: &Path,
    layout: &Layout,
    flat: &[F],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    Ok(data::write_atomic(
        path,
        &serialize_tensors(&named(layout, flat), metadata),
    )?)
}

/// The layout's tensors as (name, shape, values).
fn named<'a, F: Float>(layout: &Layout, flat: &'a [F]) -> Vec<(String, Vec<usize>, &'a [F])> {
    layout
        .specs()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), s.shape.clone(), &flat[layout.range(i)]))
        .collect()
}

/// Saves a training state: the parameters under the layout's names and each optimizer buffer as
/// `opt.{i}` (flat), with the step count in the metadata (`step`).
///
/// # Errors
/// I/O errors naming the file.
pub fn save_state<F: Float>(
    path: &Path,
    layout: &Layout,
    state: &TrainState<F>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut tensors = named(layout, &state.params);
    for (i, b) in state.opt.bufs.iter().enumerate() {
        tensors.push((format!("opt.{i}"), vec![b.len()], b));
    }
    let mut meta = metadata.clone();
    meta.insert("step".into(), state.opt.step.to_string());
    meta.insert("optimizer_buffers".into(), state.opt.bufs.len().to_string());
    Ok(data::write_atomic(
        path,
        &serialize_tensors(&tensors, &meta),
    )?)
}

/// Loads a training state written by [`save_state`].
///
/// # Errors
/// As [`load_params`], plus missing or misshapen optimizer buffers.
pub fn load_state<F: Float>(path: &Path, layout: &Layout) -> Result<TrainState<F>> {
    let bad = |reason: String| NnError::Params {
        path: path.to_path_buf(),
        reason,
    };
    let params = load_params(path, layout)?;
    let meta = read_metadata(path)?;
    let field = |k: &str| {
        meta.get(k)
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| {
                bad(format!(
                    "metadata lacks \"{k}\"; not a training-state checkpoint"
                ))
            })
    };
    let (step, count) = (field("step")?, field("optimizer_buffers")?);
    let bytes = read_bytes(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let mut bufs = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("opt.{i}");
        let t = st
            .tensor(&name)
            .map_err(|_| bad(format!("no optimizer buffer \"{name}\"")))?;
        if t.shape() != [layout.total()] {
            return Err(bad(format!(
                "\"{name}\" has shape {:?}, expected [{}]",
                t.shape(),
                layout.total()
            )));
        }
        bufs.push(decode(&t, &name).map_err(bad)?);
    }
    Ok(TrainState {
        params,
        opt: OptState { step, bufs },
    })
}

/// Values of a tensor view converted to `F`.
fn decode<F: Float>(t: &TensorView<'_>, name: &str) -> std::result::Result<Vec<F>, String> {
    let values: Vec<F> = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| F::from_f32(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|c| F::from_f64(f64::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        other => {
            return Err(format!(
                "tensor \"{name}\" has dtype {other:?}; convert it to F32 or F64"
            ))
        }
    };
    match values.iter().position(|v| !v.is_finite()) {
        Some(j) => Err(format!(
            "tensor \"{name}\" holds a non-finite value at flat index {j}"
        )),
        None => Ok(values),
    }
}

/// The bytes of the file at `path`, an I/O error naming it.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| NnError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Tensors by name, each as (shape, row-major values).
pub type NamedTensors<F> = BTreeMap<String, (Vec<usize>, Vec<F>)>;

/// Every tensor of a safetensors file by name, as (shape, values converted to `F`): the reader for
/// files written by [`serialize_tensors`] that are not parameters (e.g. fitted curvature factors).
///
/// # Errors
/// I/O errors, a file that is not safetensors, an unsupported dtype or a non-finite value, naming
/// the file and the tensor.
pub fn load_tensors<F: Float>(path: &Path) -> Result<NamedTensors<F>> {
    let bad = |reason: String| NnError::Params {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_bytes(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    verify_checksum(path, &bytes, &st)?;
    let mut out = BTreeMap::new();
    for (name, t) in st.tensors() {
        let values = decode::<F>(&t, &name).map_err(bad)?;
        out.insert(name, (t.shape().to_vec(), values));
    }
    Ok(out)
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
    let bytes = read_bytes(path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        bad(format!(
            "not a safetensors file ({e}); save parameters with safetensors"
        ))
    })?;
    verify_checksum(path, &bytes, &st)?;
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
        flat.extend(decode::<F>(&t, &spec.name).map_err(bad)?);
    }
    // Optimizer buffers of a training-state checkpoint are not parameters; anything else is a mismatch.
    let names: Vec<&str> = st.names();
    if let Some(extra) = names
        .iter()
        .find(|n| !n.starts_with("opt.") && !layout.specs().iter().any(|s| &s.name == *n))
    {
        return Err(bad(format!(
            "unexpected tensor \"{extra}\"; the model expects: {}",
            expected()
        )));
    }
    Ok(flat)
}

/// Reads the metadata of a safetensors file: attrib's own keys (see [`METADATA_KEY`]) and any
/// plain keys written by other tools.
///
/// # Errors
/// I/O or format errors naming the file.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    metadata_of(path, &read_bytes(path)?)
}

/// [`read_metadata`] of a file's bytes.
fn metadata_of(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    let bad = |reason: String| NnError::Params {
        path: path.to_path_buf(),
        reason,
    };
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let mut out = BTreeMap::new();
    for (k, v) in meta.metadata().clone().unwrap_or_default() {
        if k == METADATA_KEY {
            let inner: BTreeMap<String, String> = serde_json::from_str(&v)
                .map_err(|e| bad(format!("malformed \"{METADATA_KEY}\" metadata ({e})")))?;
            out.extend(inner);
        } else {
            out.insert(k, v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_tensors_reads_back_what_serialize_tensors_wrote() {
        let dir = std::env::temp_dir().join(format!("attrib-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.safetensors");
        let (a, b) = (vec![1.5f64, -2.0, 3.25, 0.0, 1e-300, 7.0], vec![4.0f64]);
        let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let tensors = vec![
            ("x.a".to_string(), vec![2, 3], a.as_slice()),
            ("b".to_string(), vec![1], b.as_slice()),
        ];
        data::write_atomic(&path, &serialize_tensors(&tensors, &meta)).unwrap();
        let back = load_tensors::<f64>(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back["x.a"], (vec![2, 3], a));
        assert_eq!(back["b"], (vec![1], b));
        assert_eq!(read_metadata(&path).unwrap()["k"], "v");
        std::fs::write(&path, b"junk").unwrap();
        let e = load_tensors::<f64>(&path).unwrap_err().to_string();
        assert!(
            e.contains("t.safetensors") && e.contains("not a safetensors"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // See: issue 13, item 5.
    #[test]
    fn every_flipped_data_byte_is_caught_and_files_without_a_checksum_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.safetensors");
        let (a, b) = (vec![0.5f32, -1.25, 3.0, 2.0], vec![7.0f32, 8.0]);
        let tensors = vec![
            ("w".to_string(), vec![2, 2], a.as_slice()),
            ("b".to_string(), vec![2], b.as_slice()),
        ];
        let bytes = serialize_tensors(&tensors, &BTreeMap::new());
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        // Flip one bit of each data byte in turn: the values stay finite floats (a bit of a
        // mantissa or sign), so only the checksum can tell.
        for i in header..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let e = load_tensors::<f32>(&path);
            let e = e.map(|_| ()).unwrap_err().to_string();
            assert!(
                e.contains("corrupt") && e.contains("p.safetensors"),
                "byte {i}: {e}"
            );
        }
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load_tensors::<f32>(&path).unwrap()["w"].1, a);
        // A file written by another tool (no checksum key) loads unchecked.
        let views = vec![(
            "w".to_string(),
            TensorView::new(Dtype::F32, vec![2, 2], &bytes[header + 8..header + 24]).unwrap(),
        )];
        let foreign = safetensors::serialize(views, None).unwrap();
        std::fs::write(&path, &foreign).unwrap();
        assert_eq!(load_tensors::<f32>(&path).unwrap()["w"].0, vec![2, 2]);
    }
}
