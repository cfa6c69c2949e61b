//! Provenance round trips: for CSV, `.npy`, IDX and text sources, the source row recorded for every
//! position of both splits, read back from the user's file by hand, gives that position's features
//! (the splits are shuffled and stratified, so position k is rarely row k), and the recorded label
//! is the split's label. The files also survive writing and reading `provenance/{split}.csv`.

use std::fs;
use std::path::Path;

use attrib_data::{
    decode_chars, load_splits_with_provenance, write_npy_f32, DataConfig, Dataset, Features,
    Labels, Provenance, Source, SplitRows,
};

fn raw(source: Source, path: &Path) -> DataConfig {
    let mut cfg = DataConfig::new(source);
    cfg.path = Some(path.to_path_buf());
    cfg.standardize = false;
    cfg
}

fn dense_row(ds: &Dataset, k: usize) -> Vec<f32> {
    let Features::Dense { values, .. } = &ds.features else {
        panic!("dense features expected")
    };
    let d = ds.example_len();
    values[k * d..(k + 1) * d].to_vec()
}

fn label(ds: &Dataset, k: usize) -> String {
    match &ds.labels {
        Labels::Classes { y, .. } => y[k].to_string(),
        Labels::Real(y) => y[k].to_string(),
        Labels::None => String::new(),
    }
}

/// Checks every position of both splits with `from_file(row) -> features`, and the CSV files'
/// round trip through a run directory.
fn check_all(
    splits: &attrib_data::Splits,
    prov: &Provenance,
    from_file: &dyn Fn(&attrib_data::SourceRow) -> Vec<f32>,
) {
    let tmp = tempfile::tempdir().unwrap();
    prov.write(tmp.path()).unwrap();
    for (name, ds) in [("train", &splits.train), ("test", &splits.test)] {
        let rows = prov.split(name).expect("split recorded");
        assert_eq!(rows.rows.len(), ds.len(), "{name}: one row per position");
        assert_eq!(&SplitRows::read(tmp.path(), name).unwrap(), rows);
        let mut moved = 0;
        for (k, r) in rows.rows.iter().enumerate() {
            assert_eq!(
                from_file(r),
                dense_row(ds, k),
                "{name} position {k} from {r:?}"
            );
            assert_eq!(r.label, label(ds, k), "{name} position {k}");
            moved += usize::from(r.index != k);
        }
        assert!(moved > 0, "{name}: the split should be shuffled");
    }
}

#[test]
fn csv_rows_return_their_features() {
    let dir = tempfile::tempdir().unwrap();
    // A blank line and a quoted field shift the lines: the recorded line is the editor's line.
    let mut text = String::from("a,b,label\n");
    for i in 0..40 {
        if i == 7 {
            text.push('\n');
        }
        if i == 11 {
            text.push_str(&format!("\"{i}.5\",{},{}\n", -(i as f32), i % 3));
        } else {
            text.push_str(&format!("{i}.5,{},{}\n", -(i as f32), i % 3));
        }
    }
    let path = dir.path().join("points.csv");
    fs::write(&path, &text).unwrap();
    let mut cfg = raw(Source::Csv, &path);
    cfg.label_column = Some("label".into());
    let (splits, prov) = load_splits_with_provenance(&cfg, dir.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    check_all(&splits, &prov, &|r| {
        assert_eq!(r.file, "points.csv");
        let line = lines[r.line.expect("CSV rows have lines") as usize - 1];
        let fields: Vec<f32> = line
            .split(',')
            .map(|f| f.trim_matches('"').parse().unwrap())
            .collect();
        fields[..2].to_vec()
    });
}

#[test]
fn npy_rows_return_their_features() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (30, 3);
    let x: Vec<f32> = (0..n * d).map(|v| v as f32 * 0.5).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
    let xp = dir.path().join("x.npy");
    write_npy_f32(&xp, &x, &[n, d]).unwrap();
    write_npy_f32(&dir.path().join("y.npy"), &y, &[n]).unwrap();
    let mut cfg = raw(Source::Npy, &xp);
    cfg.labels_path = Some(dir.path().join("y.npy"));
    let (splits, prov) = load_splits_with_provenance(&cfg, dir.path()).unwrap();
    let (file, _) = attrib_data::read_npy_f32(&xp).unwrap();
    check_all(&splits, &prov, &|r| {
        assert_eq!(r.file, "x.npy");
        file[r.index * d..(r.index + 1) * d].to_vec()
    });
}

fn idx_images(n: usize, side: usize, pixels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for v in [n, side, side] {
        b.extend_from_slice(&(v as u32).to_be_bytes());
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
fn idx_rows_return_their_images() {
    let dir = tempfile::tempdir().unwrap();
    let side = 4;
    for (prefix, n) in [("train", 12usize), ("t10k", 5)] {
        let pixels: Vec<u8> = (0..n * side * side).map(|v| (v * 7 + n) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        fs::write(
            dir.path().join(format!("{prefix}-images-idx3-ubyte")),
            idx_images(n, side, &pixels),
        )
        .unwrap();
        fs::write(
            dir.path().join(format!("{prefix}-labels-idx1-ubyte")),
            idx_labels(&labels),
        )
        .unwrap();
    }
    let mut cfg = raw(Source::Mnist, dir.path());
    cfg.max_train = Some(10);
    let (splits, prov) = load_splits_with_provenance(&cfg, dir.path()).unwrap();
    assert_eq!(splits.train.len(), 10);
    let read = |r: &attrib_data::SourceRow| {
        let bytes = fs::read(dir.path().join(&r.file)).unwrap();
        let at = 16 + r.index * side * side;
        bytes[at..at + side * side]
            .iter()
            .map(|&b| f32::from(b))
            .collect::<Vec<f32>>()
    };
    // MNIST keeps the official order, so check the rows directly (no shuffle to detect).
    for (name, ds, file) in [
        ("train", &splits.train, "train-images-idx3-ubyte"),
        ("test", &splits.test, "t10k-images-idx3-ubyte"),
    ] {
        let rows = prov.split(name).unwrap();
        assert_eq!(rows.rows.len(), ds.len());
        for (k, r) in rows.rows.iter().enumerate() {
            assert_eq!(r.file, file);
            assert_eq!(read(r), dense_row(ds, k), "{name} position {k}");
            assert_eq!(r.label, label(ds, k));
        }
    }
}

#[test]
fn text_windows_return_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // A byte-order mark and multi-byte characters make byte offsets differ from char offsets.
    let body: String = (0..400)
        .map(|i| ['a', 'é', ' ', 'ß', 'x', '€'][i * 7 % 6])
        .collect();
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend_from_slice(body.as_bytes());
    let path = dir.path().join("book.txt");
    fs::write(&path, &bytes).unwrap();
    let mut cfg = raw(Source::Text, &path);
    cfg.seq_len = 16;
    let (splits, prov) = load_splits_with_provenance(&cfg, dir.path()).unwrap();
    for (name, ds) in [("train", &splits.train), ("test", &splits.test)] {
        let Features::Tokens { ids, seq_len, .. } = &ds.features else {
            panic!("tokens")
        };
        let vocab = ds.feature_names.as_ref().unwrap();
        let rows = prov.split(name).unwrap();
        assert_eq!(rows.rows.len(), ds.len());
        let mut moved = 0;
        for (k, r) in rows.rows.iter().enumerate() {
            let (a, n) = (
                r.byte_offset.unwrap() as usize,
                r.byte_len.unwrap() as usize,
            );
            let window = std::str::from_utf8(&bytes[a..a + n]).expect("window on char bounds");
            let want = decode_chars(vocab, &ids[k * seq_len..(k + 1) * seq_len]);
            assert_eq!(window, want, "{name} position {k}");
            moved += usize::from(r.index != k);
        }
        assert!(moved > 0);
    }
}

#[test]
fn embedded_digits_rows_are_indices_into_the_set() {
    let cfg = DataConfig::new(Source::Digits);
    let mut cfg_raw = cfg.clone();
    cfg_raw.standardize = false;
    let (splits, prov) = load_splits_with_provenance(&cfg_raw, Path::new(".")).unwrap();
    let all = attrib_data::digits();
    check_all(&splits, &prov, &|r| {
        assert_eq!(r.file, "embedded:digits");
        dense_row(&all, r.index)
    });
}

#[test]
fn a_missing_provenance_file_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let e = SplitRows::read(dir.path(), "train")
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.csv") && e.contains("attrib train"), "{e}");
}
