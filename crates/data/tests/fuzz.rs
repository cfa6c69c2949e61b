//! Fuzzing as property tests (issue 13): every reader of `attrib-data`, given random bytes or a
//! valid file with random mutations (bit flips, byte overwrites, truncation, insertion of
//! interesting values, duplicated spans), returns `Ok` or a typed error, and never panics. A panic
//! is caught and reported with the input's seed and bytes so that it can be replayed. The inputs
//! come from a seeded ChaCha stream, so every run tries the same cases; a few thousand executions
//! take about a second.

use attrib_data as data;

#[path = "support/mutate.rs"]
mod mutate;
use mutate::{fuzz, CASES};

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

#[test]
fn readers_return_ok_or_a_typed_error_on_any_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut total = 0;
    let csv = b"a,b,label\n0.5,1,0\n1.5,-2e3,1\n2.5,3,0\n".to_vec();
    let opts = data::CsvOptions {
        label_column: Some("label".into()),
        ..Default::default()
    };
    let (ok, err) = fuzz(dir, "x.csv", &csv, |p| data::read_csv(p, &opts));
    total += ok + err;

    let npy = dir.join("seed.npy");
    data::write_npy_f32(&npy, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let npy = std::fs::read(&npy).unwrap();
    let (ok, err) = fuzz(dir, "x.npy", &npy, data::read_npy_f32);
    total += ok + err;
    let (ok, err) = fuzz(dir, "y.npy", &npy, data::read_npy_f64);
    total += ok + err;

    let images = idx(0x0803, &[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    let (ok, err) = fuzz(dir, "images-idx3-ubyte", &images, data::read_idx_images);
    total += ok + err;
    let labels = idx(0x0801, &[3], &[0, 7, 9]);
    let (ok, err) = fuzz(dir, "labels-idx1-ubyte", &labels, data::read_idx_labels);
    total += ok + err;

    let mut cifar = vec![3u8];
    cifar.extend((0..3072).map(|i| (i % 251) as u8));
    let (ok, err) = fuzz(dir, "data_batch_1.bin", &cifar, |p| {
        data::read_cifar10_bin(&[p.to_path_buf()])
    });
    total += ok + err;

    let text = "To be, or not to be: that is the question.\n".as_bytes();
    let (ok, err) = fuzz(dir, "t.txt", text, data::read_text);
    total += ok + err;
    let (ok, err) = fuzz(dir, "w.csv", b"weight\n1\n0.5\n0\n", |p| {
        data::read_weights(p, 3)
    });
    total += ok + err;
    assert_eq!(total, 8 * CASES as usize);
}
