//! Readers on small files written into a temporary folder: happy paths and one test per
//! malformed case, checking that messages name the file, the place and the fix.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use attrib_data::{
    char_corpus, decode_chars, encode_chars, read_cifar10_bin, read_csv, read_idx_images,
    read_idx_labels, read_mnist, read_npy_dataset, read_npy_f32, read_text, write_npy_f32,
    CsvOptions, DataError, Features, Labels, Task,
};
use flate2::write::GzEncoder;
use flate2::Compression;
use npyz::WriterBuilder;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).expect("write test file");
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn labelled(label: &str) -> CsvOptions {
    CsvOptions {
        label_column: Some(label.to_string()),
        ..CsvOptions::default()
    }
}

/// Asserts the error message contains every fragment.
fn assert_msg(err: DataError, fragments: &[&str]) {
    let msg = err.to_string();
    for f in fragments {
        assert!(msg.contains(f), "message {msg:?} lacks {f:?}");
    }
}

fn dense(ds: &attrib_data::Dataset) -> (&[f32], &[usize]) {
    match &ds.features {
        Features::Dense { values, shape } => (values, shape),
        other => panic!("expected dense features, got {other:?}"),
    }
}

fn classes(ds: &attrib_data::Dataset) -> (&[u32], usize) {
    match &ds.labels {
        Labels::Classes { y, num_classes, .. } => (y, *num_classes),
        other => panic!("expected classes, got {other:?}"),
    }
}

// ---------------------------------------------------------------- CSV

const IRIS_LIKE: &str = "sepal,petal_width,label\n1.0,0.25,0\n2,-3.5e-1,2\n 4 , 5 ,1\n";

#[test]
fn csv_header_named_label() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "iris.csv", IRIS_LIKE.as_bytes());
    let ds = read_csv(&p, &labelled("label")).unwrap();
    assert_eq!(ds.name, "iris");
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.example_shape(), vec![2]);
    let (x, _) = dense(&ds);
    assert_eq!(x, &[1.0, 0.25, 2.0, -0.35, 4.0, 5.0]);
    assert_eq!(classes(&ds), (&[0u32, 2, 1][..], 3));
    assert_eq!(
        ds.feature_names,
        Some(vec!["sepal".to_string(), "petal_width".to_string()])
    );
    ds.validate().unwrap();
}

#[test]
fn csv_gzip_and_num_classes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "iris.csv.gz", &gzip(IRIS_LIKE.as_bytes()));
    let opts = CsvOptions {
        num_classes: Some(5),
        ..labelled("label")
    };
    let ds = read_csv(&p, &opts).unwrap();
    assert_eq!(ds.name, "iris");
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.num_classes(), Some(5));
}

#[test]
fn csv_headerless_last_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "h.csv", b"1,2,3\n4,5,6\n");
    let opts = CsvOptions {
        has_header: false,
        ..labelled("last")
    };
    let ds = read_csv(&p, &opts).unwrap();
    assert_eq!(dense(&ds).0, &[1.0, 2.0, 4.0, 5.0]);
    assert_eq!(classes(&ds), (&[3u32, 6][..], 7));
    assert_eq!(ds.feature_names, None);

    let opts = CsvOptions {
        has_header: false,
        ..labelled("#0")
    };
    let ds = read_csv(&p, &opts).unwrap();
    assert_eq!(dense(&ds).0, &[2.0, 3.0, 5.0, 6.0]);
    assert_eq!(classes(&ds).0, &[1, 4]);

    let opts = CsvOptions {
        has_header: false,
        ..labelled("#3")
    };
    assert_msg(
        read_csv(&p, &opts).unwrap_err(),
        &["h.csv", "#3", "out of range", "\"last\""],
    );
    let opts = CsvOptions {
        has_header: false,
        ..labelled("target")
    };
    assert_msg(
        read_csv(&p, &opts).unwrap_err(),
        &["h.csv", "no header", "#N"],
    );
}

#[test]
fn csv_regression_and_unlabelled() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "r.csv", b"x,y\n1,0.5\n2,-1.5\n");
    let opts = CsvOptions {
        task: Task::Regression,
        ..labelled("y")
    };
    let ds = read_csv(&p, &opts).unwrap();
    assert_eq!(ds.labels, Labels::Real(vec![0.5, -1.5]));
    let ds = read_csv(&p, &CsvOptions::default()).unwrap();
    assert_eq!(ds.labels, Labels::None);
    assert_eq!(ds.example_len(), 2);
}

#[test]
fn csv_ragged_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.csv", b"a,b,label\n1,2,0\n3,4,1\n5,6\n");
    assert_msg(
        read_csv(&p, &labelled("label")).unwrap_err(),
        &[
            "x.csv line 4: expected 3 fields like the header, found 2 (ragged row)",
            "every row needs one value per column",
        ],
    );
}

#[test]
fn csv_lines_count_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.csv", b"a,b\n1,2\n\n3,abc\n");
    assert_msg(
        read_csv(&p, &CsvOptions::default()).unwrap_err(),
        &["x.csv line 4, column \"b\""],
    );
    // Windows line endings, leading blank lines, a quoted field spanning two lines.
    let p = write(
        dir.path(),
        "w.csv",
        b"\r\n\r\nname,b\r\n\"two\r\nlines\",2\r\n\r\n3,4\r\n5,x\r\n",
    );
    assert_msg(
        read_csv(&p, &CsvOptions::default()).unwrap_err(),
        &["w.csv line 4, column \"name\": \"two"],
    );
    let p = write(dir.path(), "v.csv", b"\n\nname,b\n7,2\n\n\n3,4\n5,x");
    assert_msg(
        read_csv(&p, &CsvOptions::default()).unwrap_err(),
        &["v.csv line 8, column \"b\": \"x\""],
    );
}

#[test]
fn csv_not_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "x.csv",
        b"sepal,petal_width,label\n1,2,0\n3,abc,1\n",
    );
    assert_msg(
        read_csv(&p, &labelled("label")).unwrap_err(),
        &[
            "x.csv line 3, column \"petal_width\": \"abc\" is not a number",
            "use a plain decimal such as 0.25",
        ],
    );
}

#[test]
fn csv_label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.csv", b"a,label\n1,0\n2,12\n");
    let opts = CsvOptions {
        num_classes: Some(10),
        ..labelled("label")
    };
    assert_msg(
        read_csv(&p, &opts).unwrap_err(),
        &[
            "x.csv line 3, column \"label\": class 12 is outside 0..10",
            "labels must be integers in 0..num_classes",
            "set num_classes",
        ],
    );
}

#[test]
fn csv_negative_label() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.csv", b"a,label\n1,0\n2,-1\n");
    assert_msg(
        read_csv(&p, &labelled("label")).unwrap_err(),
        &[
            "x.csv line 3, column \"label\"",
            "negative",
            "labels must be integers in 0..num_classes",
        ],
    );
}

#[test]
fn csv_fractional_label() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.csv", b"a,label\n1,1.5\n");
    assert_msg(
        read_csv(&p, &labelled("label")).unwrap_err(),
        &[
            "x.csv line 2, column \"label\"",
            "1.5 is not a whole number",
            "task = regression",
        ],
    );
}

#[test]
fn csv_missing_label_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.csv", b"a,b,c\n1,2,3\n");
    assert_msg(
        read_csv(&p, &labelled("target")).unwrap_err(),
        &[
            "x.csv: no column named \"target\"; columns are: a, b, c. Set label_column to one of \
             them",
        ],
    );
}

#[test]
fn csv_nan_feature() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.csv", b"f1,f2\n1,2\n3,4\n5,NaN\n");
    assert_msg(
        read_csv(&p, &CsvOptions::default()).unwrap_err(),
        &[
            "x.csv line 4, column \"f2\": NaN/inf is not allowed in features; clean or impute \
             the value",
        ],
    );
    let p = write(dir.path(), "y.csv", b"f1,f2\n1,inf\n");
    assert_msg(
        read_csv(&p, &CsvOptions::default()).unwrap_err(),
        &["y.csv line 2, column \"f2\": NaN/inf"],
    );
}

#[test]
fn csv_empty_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.csv", b"");
    assert_msg(
        read_csv(&p, &CsvOptions::default()).unwrap_err(),
        &["empty.csv", "empty"],
    );
    let p = write(dir.path(), "head.csv", b"a,b\n");
    assert_msg(
        read_csv(&p, &CsvOptions::default()).unwrap_err(),
        &["head.csv", "no data rows"],
    );
    let missing = dir.path().join("missing.csv");
    let err = read_csv(&missing, &CsvOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert_msg(err, &["missing.csv", "check the path"]);
}

// ---------------------------------------------------------------- .npy

fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    data: &[T],
    shape: &[u64],
    order: npyz::Order,
) {
    let mut out = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .order(order)
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    fs::write(path, out).unwrap();
}

#[test]
fn npy_round_trip_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scores.npy");
    let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
    write_npy_f32(&p, &data, &[3, 2, 2]).unwrap();
    assert!(!dir.path().join("scores.npy.tmp").exists());
    let (back, shape) = read_npy_f32(&p).unwrap();
    assert_eq!(back, data);
    assert_eq!(shape, vec![3, 2, 2]);
    // Overwrite in place.
    write_npy_f32(&p, &data[..6], &[6]).unwrap();
    assert_eq!(read_npy_f32(&p).unwrap(), (data[..6].to_vec(), vec![6]));
    // Shape that does not match the data.
    assert_msg(
        write_npy_f32(&p, &data, &[5, 2]).unwrap_err(),
        &["scores.npy", "12 values", "[5, 2]"],
    );
}

#[test]
fn npy_dataset_with_labels_and_conversions() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let y = dir.path().join("y.npy");
    // f64, Fortran order: the 3x2 matrix [[1,2],[3,4],[5,6]].
    write_npy::<f64>(&x, &[1., 3., 5., 2., 4., 6.], &[3, 2], npyz::Order::Fortran);
    write_npy::<i64>(&y, &[2, 0, 1], &[3], npyz::Order::C);
    let ds = read_npy_dataset(&x, Some(&y), Task::Classification).unwrap();
    assert_eq!(ds.name, "x");
    assert_eq!(dense(&ds), (&[1f32, 2., 3., 4., 5., 6.][..], &[2usize][..]));
    assert_eq!(classes(&ds), (&[2u32, 0, 1][..], 3));
    let ds = read_npy_dataset(&x, Some(&y), Task::Regression).unwrap();
    assert_eq!(ds.labels, Labels::Real(vec![2.0, 0.0, 1.0]));
    let ds = read_npy_dataset(&x, None, Task::Classification).unwrap();
    assert_eq!(ds.labels, Labels::None);

    // Integer images (n, 1, 2, 2) keep the example shape.
    let img = dir.path().join("img.npy");
    write_npy::<u8>(
        &img,
        &[0, 1, 2, 3, 255, 254, 253, 252],
        &[2, 1, 2, 2],
        npyz::Order::C,
    );
    let ds = read_npy_dataset(&img, None, Task::Classification).unwrap();
    assert_eq!(ds.example_shape(), vec![1, 2, 2]);
    assert_eq!(dense(&ds).0[4], 255.0);

    // Negative class label.
    write_npy::<i32>(&y, &[0, -1, 1], &[3], npyz::Order::C);
    assert_msg(
        read_npy_dataset(&x, Some(&y), Task::Classification).unwrap_err(),
        &["y.npy", "row 1", "-1", "integers in 0..num_classes"],
    );
}

#[test]
fn npy_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    write_npy_f32(&x, &[1.0, 2.0, 3.0], &[3]).unwrap();
    assert_msg(
        read_npy_dataset(&x, None, Task::Classification).unwrap_err(),
        &[
            "x.npy: expected a 2-D float array (n, d)",
            "found shape [3]",
        ],
    );
    let x2 = dir.path().join("x2.npy");
    write_npy_f32(&x2, &[1.0; 6], &[3, 2]).unwrap();
    let y = dir.path().join("labels.npy");
    write_npy_f32(&y, &[0.0; 6], &[3, 2]).unwrap();
    assert_msg(
        read_npy_dataset(&x2, Some(&y), Task::Classification).unwrap_err(),
        &["labels.npy", "expected a 1-D array", "[3, 2]"],
    );
}

#[test]
fn npy_row_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let y = dir.path().join("labels.npy");
    write_npy_f32(&x, &[0.5; 24], &[12, 2]).unwrap();
    write_npy::<i64>(&y, &[1; 10], &[10], npyz::Order::C);
    let err = read_npy_dataset(&x, Some(&y), Task::Classification).unwrap_err();
    assert!(matches!(err, DataError::Mismatch { .. }));
    assert_msg(
        err,
        &[
            "labels.npy has 10 rows but ",
            "x.npy has 12; they must describe the same examples",
        ],
    );
}

#[test]
fn npy_nan_truncated_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    write_npy_f32(&x, &[0.0, 1.0, 2.0, f32::NAN], &[2, 2]).unwrap();
    assert_msg(
        read_npy_dataset(&x, None, Task::Classification).unwrap_err(),
        &["x.npy", "example 1, feature 1", "NaN/inf is not allowed"],
    );
    let bytes = fs::read(&x).unwrap();
    let t = write(dir.path(), "t.npy", &bytes[..bytes.len() - 3]);
    assert_msg(read_npy_f32(&t).unwrap_err(), &["t.npy", "truncated"]);
    let g = write(dir.path(), "g.npy", b"this is not numpy");
    assert_msg(
        read_npy_f32(&g).unwrap_err(),
        &["g.npy", "not a valid .npy file", "numpy.save"],
    );
}

// ---------------------------------------------------------------- IDX

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for v in [n, rows, cols] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

#[test]
fn idx_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| (i * 10) as u8).collect();
    let raw = idx_images(2, 3, 4, &pixels);
    for (name, bytes) in [("img", raw.clone()), ("img.gz", gzip(&raw))] {
        let p = write(dir.path(), name, &bytes);
        let (x, shape) = read_idx_images(&p).unwrap();
        assert_eq!(shape, vec![2, 3, 4]);
        assert_eq!(x.len(), 24);
        assert_eq!(x[23], 230.0);
    }
    let raw = idx_labels(&[3, 1, 4]);
    for (name, bytes) in [("lab", raw.clone()), ("lab.gz", gzip(&raw))] {
        let p = write(dir.path(), name, &bytes);
        assert_eq!(read_idx_labels(&p).unwrap(), vec![3, 1, 4]);
    }
}

#[test]
fn idx_bad_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "train-images-idx3-ubyte", &idx_labels(&[1, 2]));
    assert_msg(
        read_idx_images(&p).unwrap_err(),
        &[
            "train-images-idx3-ubyte: bad magic number 0x00000801, expected 0x00000803",
            "label file",
        ],
    );
    let p = write(dir.path(), "junk", b"hello world, not idx");
    assert_msg(
        read_idx_labels(&p).unwrap_err(),
        &["junk", "bad magic number"],
    );
}

#[test]
fn idx_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "img", &idx_images(10, 28, 28, &[0u8; 1000]));
    assert_msg(
        read_idx_images(&p).unwrap_err(),
        &[
            "img: expected 7840 bytes of pixels, found 1000",
            "truncated",
            "download it again",
        ],
    );
    let p = write(dir.path(), "short", &[0, 0, 8, 3, 0, 0]);
    assert_msg(
        read_idx_images(&p).unwrap_err(),
        &["short", "16-byte IDX header"],
    );
}

#[test]
fn mnist_folder_counts_and_names() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fashion-mnist");
    fs::create_dir(&dir).unwrap();
    let px = |n: usize| -> Vec<u8> { (0..n * 28 * 28).map(|i| (i % 256) as u8).collect() };
    // Training files gzipped, test files plain.
    write(
        &dir,
        "train-images-idx3-ubyte.gz",
        &gzip(&idx_images(3, 28, 28, &px(3))),
    );
    write(
        &dir,
        "train-labels-idx1-ubyte.gz",
        &gzip(&idx_labels(&[9, 0, 5])),
    );
    write(
        &dir,
        "t10k-images-idx3-ubyte",
        &idx_images(2, 28, 28, &px(2)),
    );
    write(&dir, "t10k-labels-idx1-ubyte", &idx_labels(&[1, 2, 3]));

    let train = read_mnist(&dir, true).unwrap();
    assert_eq!(train.name, "fashion-mnist");
    assert_eq!(train.len(), 3);
    assert_eq!(train.example_shape(), vec![1, 28, 28]);
    assert_eq!(classes(&train), (&[9u32, 0, 5][..], 10));
    match &train.labels {
        Labels::Classes { class_names, .. } => {
            assert_eq!(class_names.as_ref().unwrap()[9], "Ankle boot")
        }
        _ => unreachable!(),
    }
    train.validate().unwrap();

    let err = read_mnist(&dir, false).unwrap_err();
    assert!(matches!(err, DataError::Mismatch { .. }));
    assert_msg(
        err,
        &[
            "t10k-images-idx3-ubyte has 2 images",
            "t10k-labels-idx1-ubyte has 3 labels",
        ],
    );

    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert_msg(
        read_mnist(&empty, true).unwrap_err(),
        &["empty", "train-images-idx3-ubyte.gz", "put the four"],
    );
}

// ---------------------------------------------------------------- CIFAR-10

#[test]
fn cifar_two_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for (label, base) in [(3u8, 0u8), (9, 100)] {
        bytes.push(label);
        bytes.extend((0..3072).map(|i| base.wrapping_add((i / 1024) as u8)));
    }
    let p = write(dir.path(), "data_batch_1.bin", &bytes);
    let ds = read_cifar10_bin(&[p.clone(), p]).unwrap();
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.example_shape(), vec![3, 32, 32]);
    assert_eq!(classes(&ds), (&[3u32, 9, 3, 9][..], 10));
    let (x, _) = dense(&ds);
    // Channel-major: red plane first, then green (base + 1), then blue (base + 2).
    assert_eq!((x[0], x[1024], x[2048]), (0.0, 1.0, 2.0));
    assert_eq!((x[3072], x[3072 + 2048]), (100.0, 102.0));
    ds.validate().unwrap();
}

#[test]
fn cifar_wrong_size() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "batch.bin", &[0u8; 3000]);
    assert_msg(
        read_cifar10_bin(&[p]).unwrap_err(),
        &[
            "batch.bin",
            "3000 bytes",
            "multiple of 3073",
            "binary version",
        ],
    );
    assert_msg(read_cifar10_bin(&[]).unwrap_err(), &["no CIFAR-10 files"]);
}

// ---------------------------------------------------------------- text

#[test]
fn char_corpus_windows_and_decoding() {
    let ds = char_corpus("hello world", 4, 2);
    let vocab = ds.feature_names.clone().unwrap();
    assert_eq!(vocab.concat(), " dehlorw");
    let Features::Tokens {
        ids,
        seq_len,
        vocab: v,
    } = &ds.features
    else {
        panic!("expected tokens")
    };
    assert_eq!((*seq_len, *v), (4, 8));
    assert_eq!(ds.len(), 4); // windows at 0, 2, 4, 6
    assert_eq!(ds.example_shape(), vec![4]);
    assert_eq!(ds.labels, Labels::None);
    let windows: Vec<String> = ids.chunks(4).map(|w| decode_chars(&vocab, w)).collect();
    assert_eq!(windows, ["hell", "llo ", "o wo", "worl"]);
    assert_eq!(encode_chars(&vocab, "hold").unwrap(), vec![3, 5, 4, 1]);
    assert_msg(
        encode_chars(&vocab, "hz").unwrap_err(),
        &["'z'", "not in the vocabulary"],
    );
    ds.validate().unwrap();

    // Unicode characters are single tokens; too-long windows give no examples.
    let ds = char_corpus("añb", 3, 1);
    assert_eq!(ds.len(), 1);
    assert_eq!(char_corpus("abc", 4, 1).len(), 0);
}

#[test]
fn text_plain_gzip_and_bad_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Call me Ishmael.\nSome years ago\n";
    let p = write(dir.path(), "t.txt.gz", &gzip(text.as_bytes()));
    assert_eq!(read_text(&p).unwrap(), text);
    let p = write(dir.path(), "bom.txt", "\u{feff}hi".as_bytes());
    assert_eq!(read_text(&p).unwrap(), "hi");
    let p = write(dir.path(), "bad.txt", b"ok\nfine\nbad \xff here\n");
    assert_msg(
        read_text(&p).unwrap_err(),
        &["bad.txt line 3", "invalid UTF-8", "UTF-8"],
    );
}
