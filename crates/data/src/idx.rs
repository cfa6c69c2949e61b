//! MNIST-style IDX files (unsigned-byte images and labels), plain or gzipped.

use std::path::{Path, PathBuf};

use crate::io_util::read_all;
use crate::{DataError, Dataset, Features, Labels};

/// Class names of Fashion-MNIST, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads an IDX3 unsigned-byte image file (magic `0x00000803`, gzip transparent) into pixel
/// values `0..=255` as `f32` and the shape `[n, rows, cols]`.
pub fn read_idx_images(path: &Path) -> Result<(Vec<f32>, Vec<usize>), DataError> {
    let bytes = read_all(path)?;
    let (dims, data) = parse_idx(&bytes, path, IMAGES_MAGIC, "pixels")?;
    Ok((data.iter().map(|&b| f32::from(b)).collect(), dims))
}

/// Reads an IDX1 unsigned-byte label file (magic `0x00000801`, gzip transparent).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u32>, DataError> {
    let bytes = read_all(path)?;
    let (_, data) = parse_idx(&bytes, path, LABELS_MAGIC, "labels")?;
    Ok(data.iter().map(|&b| u32::from(b)).collect())
}

/// Checks the big-endian IDX header against `magic` and returns the dimensions and the data.
fn parse_idx<'a>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let ndim = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndim;
    let kind = if magic == IMAGES_MAGIC {
        "an IDX image file such as train-images-idx3-ubyte"
    } else {
        "an IDX label file such as train-labels-idx1-ubyte"
    };
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            format!(
                "file is {} bytes, too short for an IDX header; the file is truncated, download \
                 it again",
                bytes.len()
            ),
        ));
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        let swapped = if found == IMAGES_MAGIC {
            " (this is an image file: pass it as the images)"
        } else if found == LABELS_MAGIC {
            " (this is a label file: pass it as the labels)"
        } else {
            ""
        };
        return Err(DataError::format(
            path,
            format!(
                "bad magic number 0x{found:08x}, expected 0x{magic:08x}{swapped}; the file must \
                 be {kind} (plain or gzipped)"
            ),
        ));
    }
    if bytes.len() < header_len {
        return Err(DataError::format(
            path,
            format!(
                "file is {} bytes, shorter than the {header_len}-byte IDX header; the file is \
                 truncated, download it again",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|k| {
            let o = 4 + 4 * k;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            DataError::format(
                path,
                format!("dimensions {dims:?} are too large; the header is corrupt, download the file again"),
            )
        })?;
    let data = &bytes[header_len..];
    if data.len() < expected {
        return Err(DataError::format(
            path,
            format!(
                "expected {expected} bytes of {what}, found {}; the file is truncated, download \
                 it again",
                data.len()
            ),
        ));
    }
    if data.len() > expected {
        return Err(DataError::format(
            path,
            format!(
                "expected {expected} bytes of {what} for dimensions {dims:?}, found {} (extra \
                 bytes); the file is corrupt, download it again",
                data.len()
            ),
        ));
    }
    Ok((dims, data))
}

/// Finds `<base>` or `<base>.gz` (also the `train-images.idx3-ubyte` spelling) in `dir`.
pub(crate) fn find_file(dir: &Path, base: &str) -> Result<PathBuf, DataError> {
    let dotted = base.replacen("-idx", ".idx", 1);
    for name in [
        base,
        &format!("{base}.gz"),
        &dotted,
        &format!("{dotted}.gz"),
    ] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::NotFound {
        path: dir.to_path_buf(),
        reason: format!(
            "neither {base} nor {base}.gz found{}; put the four MNIST/Fashion-MNIST IDX files \
             (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, \
             t10k-labels-idx1-ubyte.gz) in this folder",
            if dir.is_dir() {
                ""
            } else {
                " (the folder does not exist)"
            }
        ),
    })
}

/// Reads MNIST (or Fashion-MNIST, same file names) from `dir`: the training set (`train-*`) or
/// the test set (`t10k-*`), each file plain or gzipped.
///
/// Examples have shape `[1, rows, cols]` (`[1, 28, 28]`), pixel values `0..=255`, 10 classes;
/// the dataset is named after the folder, and a folder whose name contains "fashion" gets the
/// Fashion-MNIST class names (else "0".."9").
pub fn read_mnist(dir: &Path, train: bool) -> Result<Dataset, DataError> {
    let prefix = if train { "train" } else { "t10k" };
    let img_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lab_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (pixels, dims) = read_idx_images(&img_path)?;
    let labels = read_idx_labels(&lab_path)?;
    if dims[0] != labels.len() {
        return Err(DataError::Mismatch {
            reason: format!(
                "{} has {} images but {} has {} labels; they must come from the same release, \
                 download both again",
                img_path.display(),
                dims[0],
                lab_path.display(),
                labels.len()
            ),
        });
    }
    if let Some(i) = labels.iter().position(|&c| c >= 10) {
        return Err(DataError::format(
            &lab_path,
            format!(
                "label {} at index {i} is outside 0..10; MNIST labels are 0..9, the file is \
                 corrupt, download it again",
                labels[i]
            ),
        ));
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "mnist".to_string());
    let class_names: Vec<String> = if name.to_ascii_lowercase().contains("fashion") {
        FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        (0..10).map(|c| c.to_string()).collect()
    };
    Ok(Dataset {
        name,
        features: Features::Dense {
            values: pixels,
            shape: vec![1, dims[1], dims[2]],
        },
        labels: Labels::Classes {
            y: labels,
            num_classes: 10,
            class_names: Some(class_names),
        },
        feature_names: None,
    })
}
