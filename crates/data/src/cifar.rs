//! CIFAR-10 binary batches (`data_batch_*.bin`, `test_batch.bin`).

use std::path::{Path, PathBuf};

use crate::io_util::read_all;
use crate::{DataError, Dataset, Features, Labels};

/// Bytes per CIFAR-10 record: 1 label byte + 3 x 32 x 32 pixel bytes (channel-major).
pub const CIFAR10_RECORD_BYTES: usize = 1 + 3 * 32 * 32;

/// Class names of CIFAR-10, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Reads CIFAR-10 binary batch files (gzip transparent), concatenated in the given order, into a
/// dataset named "cifar10" with example shape `[3, 32, 32]`, pixel values `0..=255` as `f32` and
/// 10 named classes.
pub fn read_cifar10_bin(paths: &[PathBuf]) -> Result<Dataset, DataError> {
    read_cifar10_counted(paths).map(|(ds, _)| ds)
}

/// [`read_cifar10_bin`], also returning the number of records read from each file (provenance).
pub(crate) fn read_cifar10_counted(paths: &[PathBuf]) -> Result<(Dataset, Vec<usize>), DataError> {
    if paths.is_empty() {
        return Err(DataError::InvalidArgument {
            reason: "no CIFAR-10 files given; pass data_batch_1.bin ... data_batch_5.bin or \
                     test_batch.bin"
                .to_string(),
        });
    }
    let mut values = Vec::new();
    let mut y = Vec::new();
    let mut counts = Vec::with_capacity(paths.len());
    for path in paths {
        let before = y.len();
        read_one(path, &mut values, &mut y)?;
        counts.push(y.len() - before);
    }
    let ds = Dataset {
        name: "cifar10".to_string(),
        features: Features::Dense {
            values,
            shape: vec![3, 32, 32],
        },
        labels: Labels::Classes {
            y,
            num_classes: 10,
            class_names: Some(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()),
        },
        feature_names: None,
    };
    Ok((ds, counts))
}

fn read_one(path: &Path, values: &mut Vec<f32>, y: &mut Vec<u32>) -> Result<(), DataError> {
    let bytes = read_all(path)?;
    if bytes.is_empty() || bytes.len() % CIFAR10_RECORD_BYTES != 0 {
        return Err(DataError::format(
            path,
            format!(
                "size {} bytes is not a positive multiple of {CIFAR10_RECORD_BYTES} (1 label byte \
                 + 3072 pixel bytes per record); use the CIFAR-10 binary version \
                 (cifar-10-binary.tar.gz: data_batch_1.bin ... test_batch.bin), not the Python \
                 pickles, and re-download if the file is truncated",
                bytes.len()
            ),
        ));
    }
    values.reserve(bytes.len() / CIFAR10_RECORD_BYTES * (CIFAR10_RECORD_BYTES - 1));
    for (r, record) in bytes.chunks_exact(CIFAR10_RECORD_BYTES).enumerate() {
        let label = record[0];
        if label >= 10 {
            return Err(DataError::format(
                path,
                format!(
                    "record {r} has label {label}, outside 0..10; this is not a CIFAR-10 binary \
                     batch (CIFAR-100 binaries have 2 label bytes), use the CIFAR-10 files"
                ),
            ));
        }
        y.push(u32::from(label));
        values.extend(record[1..].iter().map(|&b| f32::from(b)));
    }
    Ok(())
}
