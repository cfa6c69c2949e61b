//! Seeded, deterministic k-means (Lloyd's algorithm with k-means++ initialisation).
//!
//! - Init (k-means++): the first centre is a uniformly drawn point; each next one is drawn with
//!   probability proportional to the squared distance to the nearest centre so far. Draws come from
//!   `Rng::derive(seed, "kmeans", 0)`.
//! - Lloyd steps until no assignment changes or [`MAX_ITERS`]: the nearest centre of every point
//!   (lowest index on ties) is found in parallel per point; centres are the means of their points,
//!   summed in index order. An empty cluster takes the point farthest from its centre (lowest
//!   index on ties), so the result always has `k` non-empty clusters.
//!
//! Same points and seed give the same bits for any thread count.

use engine::Rng;
use rayon::prelude::*;

/// Most Lloyd iterations.
pub const MAX_ITERS: usize = 100;

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Nearest centre and its squared distance, lowest index on ties.
fn nearest(x: &[f64], centres: &[Vec<f64>]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, m) in centres.iter().enumerate() {
        let d = dist2(x, m);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

/// Clusters the rows of `points` (all of one length) into `k <= points.len()` non-empty clusters;
/// returns the cluster of each row.
///
/// # Panics
/// If `k` is 0 or exceeds the number of points (callers check and report).
pub fn kmeans(points: &[Vec<f64>], k: usize, seed: u64) -> Vec<usize> {
    let n = points.len();
    assert!(k >= 1 && k <= n, "k-means with k = {k} on {n} points");
    let mut rng = Rng::derive(seed, "kmeans", 0);
    let mut centres = vec![points[rng.below(n as u64) as usize].clone()];
    let mut d2: Vec<f64> = points.par_iter().map(|x| dist2(x, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = d2.iter().sum();
        let next = if total > 0.0 {
            let mut r = rng.uniform() * total;
            let mut pick = n - 1;
            for (i, &d) in d2.iter().enumerate() {
                if r < d {
                    pick = i;
                    break;
                }
                r -= d;
            }
            pick
        } else {
            // All points coincide with centres: take the first not yet chosen index.
            centres.len()
        };
        centres.push(points[next].clone());
        let c = centres.last().unwrap();
        let nd: Vec<f64> = points.par_iter().map(|x| dist2(x, c)).collect();
        for (a, b) in d2.iter_mut().zip(nd) {
            *a = a.min(b);
        }
    }
    let dim = points[0].len();
    let mut assign = vec![usize::MAX; n];
    for _ in 0..MAX_ITERS {
        let near: Vec<(usize, f64)> = points.par_iter().map(|x| nearest(x, &centres)).collect();
        let new: Vec<usize> = near.iter().map(|x| x.0).collect();
        let changed = new != assign;
        assign = new;
        let mut sums = vec![vec![0.0; dim]; k];
        let mut counts = vec![0usize; k];
        for (x, &c) in points.iter().zip(&assign) {
            crate::linalg::axpy(1.0, x, &mut sums[c]);
            counts[c] += 1;
        }
        // Refill empty clusters with the farthest points, one each.
        let mut far: Vec<usize> = (0..n).collect();
        far.sort_by(|&a, &b| near[b].1.total_cmp(&near[a].1).then(a.cmp(&b)));
        let mut far = far.into_iter();
        let mut refilled = false;
        for c in 0..k {
            if counts[c] == 0 {
                // Take a point from a cluster that keeps at least one member.
                let i = far
                    .by_ref()
                    .find(|&i| counts[assign[i]] > 1)
                    .expect("k <= n");
                let old = assign[i];
                crate::linalg::axpy(-1.0, &points[i], &mut sums[old]);
                counts[old] -= 1;
                sums[c] = points[i].clone();
                counts[c] = 1;
                assign[i] = c;
                refilled = true;
            }
        }
        for (m, (s, &cnt)) in centres.iter_mut().zip(sums.iter().zip(&counts)) {
            *m = s.iter().map(|v| v / cnt as f64).collect();
        }
        if !changed && !refilled {
            break;
        }
    }
    assign
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_well_separated_blobs_and_is_deterministic() {
        let mut rng = Rng::new(3);
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let points: Vec<Vec<f64>> = (0..90)
            .map(|i| {
                let c = centres[i % 3];
                vec![c[0] + 0.5 * rng.normal(), c[1] + 0.5 * rng.normal()]
            })
            .collect();
        let a = kmeans(&points, 3, 7);
        // Same blob <=> same cluster.
        for i in 0..90 {
            for j in 0..90 {
                assert_eq!(i % 3 == j % 3, a[i] == a[j], "{i} {j}");
            }
        }
        assert_eq!(a, kmeans(&points, 3, 7));
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(a, one.install(|| kmeans(&points, 3, 7)));
    }

    #[test]
    fn every_cluster_is_non_empty_even_with_duplicates() {
        // 20 copies of two points, k = 5: k-means++ runs out of distinct points.
        let points: Vec<Vec<f64>> = (0..20).map(|i| vec![(i % 2) as f64]).collect();
        let a = kmeans(&points, 5, 0);
        for c in 0..5 {
            assert!(a.contains(&c), "cluster {c} empty: {a:?}");
        }
    }
}
