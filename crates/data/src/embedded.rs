//! Demo sets compiled into the crate (see `assets/PROVENANCE.md`) and the `../shared/data` finder.

use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::csv::{parse_csv, CsvOptions, Task};
use crate::{DataError, Dataset, Labels};

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../assets/digits.csv.gz");
const BREAST_CANCER_CSV: &[u8] = include_bytes!("../assets/breast_cancer.csv");

/// Names accepted by [`embedded`].
pub const EMBEDDED_NAMES: [&str; 2] = ["digits", "breast_cancer"];

/// The 30 standard feature names of UCI Breast Cancer Wisconsin (Diagnostic), in column order.
pub const BREAST_CANCER_FEATURES: [&str; 30] = [
    "mean radius",
    "mean texture",
    "mean perimeter",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
    "mean concave points",
    "mean symmetry",
    "mean fractal dimension",
    "radius error",
    "texture error",
    "perimeter error",
    "area error",
    "smoothness error",
    "compactness error",
    "concavity error",
    "concave points error",
    "symmetry error",
    "fractal dimension error",
    "worst radius",
    "worst texture",
    "worst perimeter",
    "worst area",
    "worst smoothness",
    "worst compactness",
    "worst concavity",
    "worst concave points",
    "worst symmetry",
    "worst fractal dimension",
];

/// UCI handwritten digits (scikit-learn's copy): 1,797 examples, dense shape `[64]` (an 8x8
/// image, row-major, values 0..16), 10 classes named "0".."9", features `pixel_<r>_<c>`.
///
/// # Panics
/// Only if the compiled-in asset were corrupt (it is checked by the crate's tests).
pub fn digits() -> Dataset {
    try_digits().unwrap_or_else(|e| panic!("embedded digits asset is corrupt: {e}"))
}

/// UCI Breast Cancer Wisconsin (Diagnostic) (scikit-learn's copy): 569 examples, dense shape
/// `[30]`, 2 classes (0 = "malignant", 1 = "benign"), the 30 standard feature names.
///
/// # Panics
/// Only if the compiled-in asset were corrupt (it is checked by the crate's tests).
pub fn breast_cancer() -> Dataset {
    try_breast_cancer().unwrap_or_else(|e| panic!("embedded breast_cancer asset is corrupt: {e}"))
}

/// Looks up an embedded demo set by name: `"digits"` or `"breast_cancer"`.
pub fn embedded(name: &str) -> Result<Dataset, DataError> {
    match name {
        "digits" => try_digits(),
        "breast_cancer" => try_breast_cancer(),
        _ => Err(DataError::InvalidArgument {
            reason: format!(
                "no embedded dataset named \"{name}\"; the embedded datasets are: {}",
                EMBEDDED_NAMES.join(", ")
            ),
        }),
    }
}

fn try_digits() -> Result<Dataset, DataError> {
    let opts = CsvOptions {
        label_column: Some("last".to_string()),
        task: Task::Classification,
        has_header: false,
        num_classes: Some(10),
    };
    let reader = MultiGzDecoder::new(DIGITS_CSV_GZ);
    let mut ds = parse_csv(reader, Path::new("embedded:digits.csv.gz"), &opts, 0)?;
    ds.name = "digits".to_string();
    if let Labels::Classes { class_names, .. } = &mut ds.labels {
        *class_names = Some((0..10).map(|c| c.to_string()).collect());
    }
    ds.feature_names = Some(
        (0..64)
            .map(|k| format!("pixel_{}_{}", k / 8, k % 8))
            .collect(),
    );
    ds.validate()?;
    Ok(ds)
}

fn try_breast_cancer() -> Result<Dataset, DataError> {
    let path = Path::new("embedded:breast_cancer.csv");
    let bad = |reason: &str| DataError::Format {
        path: path.to_path_buf(),
        line: Some(1),
        column: None,
        reason: reason.to_string(),
    };
    let split = BREAST_CANCER_CSV
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("missing the count/class-name row"))?;
    let first = std::str::from_utf8(&BREAST_CANCER_CSV[..split])
        .map_err(|_| bad("first row is not UTF-8"))?;
    let fields: Vec<&str> = first.trim().split(',').map(str::trim).collect();
    let [n, d, c0, c1] = fields.as_slice() else {
        return Err(bad(
            "first row must be `n_samples,n_features,class0,class1`",
        ));
    };
    let opts = CsvOptions {
        label_column: Some("last".to_string()),
        task: Task::Classification,
        has_header: false,
        num_classes: Some(2),
    };
    let mut ds = parse_csv(&BREAST_CANCER_CSV[split + 1..], path, &opts, 1)?;
    if n.parse::<usize>().ok() != Some(ds.len()) || d.parse::<usize>().ok() != Some(30) {
        return Err(bad("the counts in the first row do not match the data"));
    }
    ds.name = "breast_cancer".to_string();
    if let Labels::Classes { class_names, .. } = &mut ds.labels {
        *class_names = Some(vec![c0.to_string(), c1.to_string()]);
    }
    ds.feature_names = Some(
        BREAST_CANCER_FEATURES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    ds.validate()?;
    Ok(ds)
}

/// The shared real-data folder: `$ATTRIB_SHARED_DATA` if set (non-empty), else the first
/// existing of `<crate>/../../../shared/data` and `./../shared/data`; `None` if neither exists.
pub fn shared_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ATTRIB_SHARED_DATA") {
        if !dir.is_empty() {
            return Some(PathBuf::from(dir));
        }
    }
    let from_crate = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let from_cwd = PathBuf::from("./../shared/data");
    [from_crate, from_cwd].into_iter().find(|p| p.is_dir())
}
