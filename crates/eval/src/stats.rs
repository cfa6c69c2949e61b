//! Correlations, regression slope and a bootstrap interval for the evaluation of MATH.md E6.
//!
//! All functions are NaN-free on degenerate input: a constant side (or fewer than 2 pairs) gives a
//! correlation and slope of 0. Pairs are taken up to the shorter of the two slices.

use engine::Rng;

/// Ranks `1..=n` of `xs`, ties sharing the average of their ranks (NaN sorts after everything).
pub fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]).then(a.cmp(&b)));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) share the rank (i + j) / 2 + 1.
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Centered sums `(sxx, syy, sxy)` over the common prefix.
fn moments(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let n = x.len().min(y.len());
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let (x, y) = (&x[..n], &y[..n]);
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    (sxx, syy, sxy)
}

/// Pearson correlation of `a` and `b` (MATH.md E6, LOO comparison), in `[-1, 1]`; 0 when a side is
/// constant or not finite.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (sxx, syy, sxy) = moments(a, b);
    // sqrt of the product: exactly +-1 when one side is an exact affine image of the other's ranks.
    let prod = sxx * syy;
    let denom = if prod.is_finite() && prod > 0.0 {
        prod.sqrt()
    } else {
        sxx.sqrt() * syy.sqrt()
    };
    let r = sxy / denom;
    if r.is_finite() && sxx > 0.0 && syy > 0.0 {
        r.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// Spearman rank correlation (MATH.md E6, the per-target LDS): Pearson correlation of the ranks,
/// ties given average ranks; 0 when a side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    pearson(&ranks(&a[..n]), &ranks(&b[..n]))
}

/// Least-squares slope of `y` on `x` (with intercept); 0 when `x` is constant. With `x` the
/// predicted and `y` the true change, 1 means well calibrated (MATH.md E6).
pub fn slope(x: &[f64], y: &[f64]) -> f64 {
    let (sxx, _, sxy) = moments(x, y);
    let s = sxy / sxx;
    if s.is_finite() && sxx > 0.0 {
        s
    } else {
        0.0
    }
}

/// Arithmetic mean; 0 for an empty slice.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Median (the mean of the two middle values of an even count); 0 for an empty slice.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        0.5 * (sorted[m - 1] + sorted[m])
    } else {
        sorted[m]
    }
}

/// 95% percentile bootstrap interval of the mean (MATH.md E6: the LDS is reported with one):
/// `resamples` resamples with replacement, resample `r` drawn from `Rng::derive(seed, "bootstrap", r)`,
/// the 2.5% and 97.5% quantiles of their means (linear interpolation between order statistics).
/// An empty input gives `(0, 0)`; no resamples gives the mean twice.
pub fn bootstrap_mean_ci(values: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    if resamples == 0 {
        let m = mean(values);
        return (m, m);
    }
    let mut means: Vec<f64> = (0..resamples)
        .map(|r| {
            let mut rng = Rng::derive(seed, "bootstrap", r as u64);
            let s: f64 = (0..n).map(|_| values[rng.below(n as u64) as usize]).sum();
            s / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (resamples - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(resamples - 1);
        means[lo] + (pos - lo as f64) * (means[hi] - means[lo])
    };
    (q(0.025), q(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
        assert_eq!(ranks(&[5.0, 5.0, 5.0]), vec![2.0, 2.0, 2.0]);
        assert!(ranks(&[]).is_empty());
    }

    #[test]
    fn bootstrap_brackets_the_mean() {
        let xs: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
        let (lo, hi) = bootstrap_mean_ci(&xs, 1000, 0);
        let m = mean(&xs);
        assert!(lo < m && m < hi && hi - lo < 0.6, "{lo} {m} {hi}");
        assert_eq!(bootstrap_mean_ci(&xs, 1000, 0), (lo, hi));
        assert_eq!(bootstrap_mean_ci(&[], 10, 0), (0.0, 0.0));
        assert_eq!(bootstrap_mean_ci(&[2.0], 10, 0), (2.0, 2.0));
    }
}
