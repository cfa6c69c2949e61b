//! Hand-made cases for the statistics of MATH.md E6.

use attrib_eval::stats::{bootstrap_mean_ci, pearson, ranks, slope, spearman};

#[test]
fn spearman_known_values() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    // Perfect monotone (nonlinear) relation: 1; reversed: -1.
    let b: Vec<f64> = a.iter().map(|x: &f64| x.powi(3) + 7.0).collect();
    assert_eq!(spearman(&a, &b), 1.0);
    let c: Vec<f64> = a.iter().map(|x| (-x).exp()).collect();
    assert_eq!(spearman(&a, &c), -1.0);
    // Ties get average ranks: ranks of y are [1.5, 1.5, 3, 4], of x [1, 2, 3, 4].
    let x = [1.0, 2.0, 3.0, 4.0];
    let y = [5.0, 5.0, 6.0, 7.0];
    assert_eq!(ranks(&y), vec![1.5, 1.5, 3.0, 4.0]);
    // Pearson of [1,2,3,4] and [1.5,1.5,3,4]: sxy = 4.5, sxx = 5, syy = 4.5.
    let expected = 4.5 / (5.0f64 * 4.5).sqrt();
    assert!((spearman(&x, &y) - expected).abs() < 1e-15);
    // Known textbook value: d = [0, -1, 1, 0, 0] -> 1 - 6*2/(5*24) = 0.9.
    let p = [1.0, 2.0, 3.0, 4.0, 5.0];
    let q = [1.0, 3.0, 2.0, 4.0, 5.0];
    assert!((spearman(&p, &q) - 0.9).abs() < 1e-15);
    // Constant side: 0, never NaN.
    assert_eq!(spearman(&a, &[2.0; 5]), 0.0);
    assert_eq!(spearman(&[], &[]), 0.0);
    assert_eq!(spearman(&[1.0], &[2.0]), 0.0);
}

#[test]
fn pearson_and_slope_known_values() {
    let x = [1.0, 2.0, 3.0, 4.0];
    let y: Vec<f64> = x.iter().map(|v| 3.0 * v - 1.0).collect();
    assert!((pearson(&x, &y) - 1.0).abs() < 1e-15);
    assert!((slope(&x, &y) - 3.0).abs() < 1e-14);
    let z: Vec<f64> = x.iter().map(|v| -0.5 * v + 2.0).collect();
    assert!((pearson(&x, &z) + 1.0).abs() < 1e-15);
    assert!((slope(&x, &z) + 0.5).abs() < 1e-15);
    // x = [1,2,3,4], y = [2,1,4,3]: sxy = 3, sxx = syy = 5 -> r = 0.6, slope 0.6.
    let w = [2.0, 1.0, 4.0, 3.0];
    assert!((pearson(&x, &w) - 0.6).abs() < 1e-15);
    assert!((slope(&x, &w) - 0.6).abs() < 1e-15);
    // Degenerate input: 0, never NaN.
    assert_eq!(pearson(&x, &[1.0; 4]), 0.0);
    assert_eq!(slope(&[2.0; 4], &x), 0.0);
    assert_eq!(pearson(&[f64::NAN, 1.0], &[1.0, 2.0]), 0.0);
}

#[test]
fn bootstrap_interval() {
    // Constant values: a zero-width interval at the value.
    let (lo, hi) = bootstrap_mean_ci(&[0.3; 20], 200, 1);
    assert!(
        (lo - 0.3).abs() < 1e-15 && (hi - 0.3).abs() < 1e-15,
        "{lo} {hi}"
    );
    let xs: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
    let (lo, hi) = bootstrap_mean_ci(&xs, 1000, 0);
    // Mean 0.495, standard error ~0.029: the interval is about +-0.057.
    assert!(lo < 0.495 && hi > 0.495, "{lo} {hi}");
    assert!((hi - lo - 0.113).abs() < 0.03, "{lo} {hi}");
    assert_ne!(bootstrap_mean_ci(&xs, 1000, 1), (lo, hi));
}
