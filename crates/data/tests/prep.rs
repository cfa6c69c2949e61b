//! Splits, standardisation and the `Dataset` methods.

use attrib_data::{
    scale, seeded_permutation, split_indices, stratified_split_indices, Dataset, Features, Labels,
    Standardizer,
};

fn toy(values: Vec<f32>, d: usize, y: Vec<u32>, k: usize) -> Dataset {
    Dataset {
        name: "toy".to_string(),
        features: Features::Dense {
            values,
            shape: vec![d],
        },
        labels: Labels::Classes {
            y,
            num_classes: k,
            class_names: None,
        },
        feature_names: Some((0..d).map(|j| format!("f{j}")).collect()),
    }
}

#[test]
fn split_is_deterministic_partition() {
    let (train, test) = split_indices(100, 0.25, 7).unwrap();
    assert_eq!((train.len(), test.len()), (75, 25));
    assert!(train.windows(2).all(|w| w[0] < w[1]));
    assert!(test.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(
        split_indices(100, 0.25, 7).unwrap(),
        (train.clone(), test.clone())
    );
    assert_ne!(split_indices(100, 0.25, 8).unwrap().1, test);
    // round(n * f): 10 * 0.25 = 2.5 rounds to 3.
    assert_eq!(split_indices(10, 0.25, 0).unwrap().1.len(), 3);
    assert_eq!(split_indices(0, 0.5, 0).unwrap(), (vec![], vec![]));
}

#[test]
fn split_rejects_bad_fraction() {
    for f in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
        let msg = split_indices(10, f, 0).unwrap_err().to_string();
        assert!(msg.contains("strictly between 0 and 1"), "{msg}");
        assert!(stratified_split_indices(&[0, 1], 2, f, 0).is_err());
    }
}

#[test]
fn permutation_is_pinned() {
    // The split bits must be portable: pin a small permutation.
    let p = seeded_permutation(8, 2024);
    let mut s = p.clone();
    s.sort_unstable();
    assert_eq!(s, (0..8).collect::<Vec<_>>());
    assert_eq!(p, PINNED);
}

const PINNED: [usize; 8] = [3, 6, 1, 5, 4, 0, 2, 7];

#[test]
fn stratified_keeps_class_proportions() {
    // 60 of class 0, 30 of class 1, 10 of class 2, interleaved.
    let labels: Vec<u32> = (0..100)
        .map(|i| match i % 10 {
            0..=5 => 0,
            6..=8 => 1,
            _ => 2,
        })
        .collect();
    let (train, test) = stratified_split_indices(&labels, 3, 0.2, 3).unwrap();
    let count = |idx: &[usize], c: u32| idx.iter().filter(|&&i| labels[i] == c).count();
    assert_eq!(
        [count(&test, 0), count(&test, 1), count(&test, 2)],
        [12, 6, 2]
    );
    assert_eq!(
        [count(&train, 0), count(&train, 1), count(&train, 2)],
        [48, 24, 8]
    );
    assert!(test.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        stratified_split_indices(&labels, 3, 0.2, 3).unwrap(),
        (train, test.clone())
    );
    assert_ne!(
        stratified_split_indices(&labels, 3, 0.2, 4).unwrap().1,
        test
    );
    let msg = stratified_split_indices(&labels, 2, 0.2, 3)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("class 2, outside 0..2"), "{msg}");
}

#[test]
fn standardizer_centres_and_keeps_constants_at_zero() {
    // Feature 0 varies, feature 1 is constant.
    let values: Vec<f32> = (0..50).flat_map(|i| [i as f32 * 3.0 + 1.0, 7.5]).collect();
    let mut ds = toy(values, 2, vec![0; 50], 1);
    let st = Standardizer::fit(&ds);
    assert_eq!(st.std[1], 1.0);
    assert!((st.mean[1] - 7.5).abs() < 1e-6);
    st.apply(&mut ds);
    let Features::Dense { values, .. } = &ds.features else {
        unreachable!()
    };
    let col = |j: usize| values.iter().skip(j).step_by(2).map(|&v| f64::from(v));
    let n = 50.0;
    let mean0 = col(0).sum::<f64>() / n;
    let var0 = col(0).map(|v| (v - mean0).powi(2)).sum::<f64>() / n;
    assert!(mean0.abs() < 1e-5, "{mean0}");
    assert!((var0.sqrt() - 1.0).abs() < 1e-5, "{var0}");
    assert!(col(1).all(|v| v == 0.0));

    let mut other = toy(vec![1.0; 3], 3, vec![0], 1);
    let msg = st.try_apply(&mut other).unwrap_err().to_string();
    assert!(msg.contains("fitted on 2 features"), "{msg}");
}

#[test]
fn scale_multiplies_values() {
    let mut ds = toy(vec![0.0, 16.0, 8.0, 4.0], 2, vec![0, 1], 2);
    scale(&mut ds, 1.0 / 16.0);
    assert_eq!(
        ds.features,
        Features::Dense {
            values: vec![0.0, 1.0, 0.5, 0.25],
            shape: vec![2]
        }
    );
}

#[test]
fn subset_and_reshape() {
    let ds = toy((0..8).map(|v| v as f32).collect(), 4, vec![0, 1], 2);
    let s = ds.subset(&[1, 0, 1]);
    assert_eq!(s.len(), 3);
    assert_eq!(
        s.features,
        Features::Dense {
            values: vec![4., 5., 6., 7., 0., 1., 2., 3., 4., 5., 6., 7.],
            shape: vec![4]
        }
    );
    assert_eq!(s.num_classes(), Some(2));
    let r = ds.clone().with_example_shape(vec![1, 2, 2]).unwrap();
    assert_eq!(r.example_shape(), vec![1, 2, 2]);
    assert_eq!(r.example_len(), 4);
    assert_eq!(r.len(), 2);
    let msg = ds.with_example_shape(vec![3, 3]).unwrap_err().to_string();
    assert!(msg.contains("[3, 3] (9 values)"), "{msg}");
}

#[test]
fn validate_names_the_problem() {
    let ds = toy(vec![0.0, 1.0, 2.0, f32::NAN], 2, vec![0, 1], 2);
    let msg = ds.validate().unwrap_err().to_string();
    assert!(msg.contains("example 1, feature 1 (\"f1\")"), "{msg}");
    assert!(msg.contains("clean or impute"), "{msg}");

    let ds = toy(vec![0.0; 4], 2, vec![0, 5], 2);
    let msg = ds.validate().unwrap_err().to_string();
    assert!(msg.contains("example 1: class 5 is outside 0..2"), "{msg}");

    let ds = toy(vec![0.0; 4], 2, vec![0], 2);
    assert!(ds
        .validate()
        .unwrap_err()
        .to_string()
        .contains("1 labels for 2 examples"));

    let ds = Dataset {
        name: "lm".to_string(),
        features: Features::Tokens {
            ids: vec![0, 1, 2, 9],
            seq_len: 2,
            vocab: 3,
        },
        labels: Labels::None,
        feature_names: None,
    };
    let msg = ds.validate().unwrap_err().to_string();
    assert!(
        msg.contains("sequence 1, position 1: token id 9 is outside 0..3"),
        "{msg}"
    );
}
