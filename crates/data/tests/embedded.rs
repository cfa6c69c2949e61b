//! The embedded demo sets, and the real data in ../shared/data (skipped when absent).

use attrib_data::{
    breast_cancer, digits, embedded, read_csv, read_mnist, read_text, shared_data_dir, CsvOptions,
    Dataset, Features, Labels,
};

fn classes(ds: &Dataset) -> (&[u32], usize, Option<&Vec<String>>) {
    match &ds.labels {
        Labels::Classes {
            y,
            num_classes,
            class_names,
        } => (y, *num_classes, class_names.as_ref()),
        other => panic!("expected classes, got {other:?}"),
    }
}

fn values(ds: &Dataset) -> &[f32] {
    match &ds.features {
        Features::Dense { values, .. } => values,
        other => panic!("expected dense features, got {other:?}"),
    }
}

#[test]
fn embedded_digits() {
    let ds = digits();
    assert_eq!(ds.name, "digits");
    assert_eq!(ds.len(), 1797);
    assert_eq!(ds.example_shape(), vec![64]);
    let (y, k, names) = classes(&ds);
    assert_eq!(k, 10);
    assert_eq!(names.unwrap()[3], "3");
    let mut counts = [0usize; 10];
    for &c in y {
        counts[c as usize] += 1;
    }
    assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
    assert!(values(&ds)
        .iter()
        .all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
    assert_eq!(values(&ds).iter().cloned().fold(0.0, f32::max), 16.0);
    assert_eq!(ds.feature_names.as_ref().unwrap()[9], "pixel_1_1");
    ds.validate().unwrap();
    let img = ds.with_example_shape(vec![1, 8, 8]).unwrap();
    assert_eq!(img.example_shape(), vec![1, 8, 8]);
}

#[test]
fn embedded_breast_cancer() {
    let ds = breast_cancer();
    assert_eq!(ds.name, "breast_cancer");
    assert_eq!(ds.len(), 569);
    assert_eq!(ds.example_shape(), vec![30]);
    let (y, k, names) = classes(&ds);
    assert_eq!(k, 2);
    assert_eq!(
        names.unwrap(),
        &vec!["malignant".to_string(), "benign".to_string()]
    );
    assert_eq!(y.iter().filter(|&&c| c == 0).count(), 212);
    assert_eq!(y.iter().filter(|&&c| c == 1).count(), 357);
    let f = ds.feature_names.as_ref().unwrap();
    assert_eq!(
        (f[0].as_str(), f[29].as_str()),
        ("mean radius", "worst fractal dimension")
    );
    // First example, first feature: mean radius 17.99.
    assert!((values(&ds)[0] - 17.99).abs() < 1e-5);
    ds.validate().unwrap();
}

#[test]
fn embedded_lookup() {
    assert_eq!(embedded("digits").unwrap().len(), 1797);
    assert_eq!(embedded("breast_cancer").unwrap().len(), 569);
    let msg = embedded("iris").unwrap_err().to_string();
    assert!(msg.contains("\"iris\""), "{msg}");
    assert!(msg.contains("digits, breast_cancer"), "{msg}");
}

/// The real-data folder. The tests that call this are `#[ignore]`d with the reason when the
/// build found no such folder (`build.rs`), so a skip is visible in the test output.
fn shared() -> Option<std::path::PathBuf> {
    let dir = shared_data_dir();
    if dir.is_none() {
        println!("skipping: ../shared/data not found (set ATTRIB_SHARED_DATA)");
    }
    dir
}

#[test]
#[cfg_attr(
    not(attrib_shared_data),
    ignore = "needs ../shared/data or ATTRIB_SHARED_DATA (README, Reliability)"
)]
fn shared_digits_csv_matches_embedded() {
    let Some(dir) = shared() else { return };
    let opts = CsvOptions {
        label_column: Some("last".to_string()),
        has_header: false,
        ..CsvOptions::default()
    };
    let ds = read_csv(&dir.join("uci/digits.csv.gz"), &opts).unwrap();
    let emb = digits();
    assert_eq!(values(&ds), values(&emb));
    assert_eq!(classes(&ds).0, classes(&emb).0);
}

#[test]
#[cfg_attr(
    not(attrib_shared_data),
    ignore = "needs ../shared/data or ATTRIB_SHARED_DATA (README, Reliability)"
)]
fn shared_mnist() {
    let Some(dir) = shared() else { return };
    let train = read_mnist(&dir.join("mnist"), true).unwrap();
    assert_eq!(train.name, "mnist");
    assert_eq!(train.len(), 60000);
    assert_eq!(train.example_shape(), vec![1, 28, 28]);
    assert_eq!(classes(&train).1, 10);
    // The first MNIST training digit is a 5.
    assert_eq!(classes(&train).0[0], 5);
    assert!(values(&train).iter().all(|&v| (0.0..=255.0).contains(&v)));
    let test = read_mnist(&dir.join("mnist"), false).unwrap();
    assert_eq!(test.len(), 10000);
    assert_eq!(test.example_shape(), vec![1, 28, 28]);
    test.validate().unwrap();
}

#[test]
#[cfg_attr(
    not(attrib_shared_data),
    ignore = "needs ../shared/data or ATTRIB_SHARED_DATA (README, Reliability)"
)]
fn shared_fashion_mnist() {
    let Some(dir) = shared() else { return };
    let test = read_mnist(&dir.join("fashion-mnist"), false).unwrap();
    assert_eq!(test.name, "fashion-mnist");
    assert_eq!(test.len(), 10000);
    assert_eq!(classes(&test).2.unwrap()[0], "T-shirt/top");
}

#[test]
#[cfg_attr(
    not(attrib_shared_data),
    ignore = "needs ../shared/data or ATTRIB_SHARED_DATA (README, Reliability)"
)]
fn shared_moby_dick() {
    let Some(dir) = shared() else { return };
    let text = read_text(&dir.join("text/moby-dick.txt.gz")).unwrap();
    assert!(text.chars().count() > 1_000_000);
    assert!(text.contains("Call me Ishmael"));
}
