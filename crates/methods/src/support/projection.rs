//! Random projections of gradients (TRAK's features, MATH.md E4): a seeded Gaussian or
//! Rademacher matrix `P` (`p x k`) generated block by block, never stored whole.

use std::fmt;
use std::str::FromStr;

use engine::{Rng, Tensor};
use rayon::prelude::*;

/// Parameter rows of the projection generated at once (a constant, so results do not depend on
/// it through the options).
pub const PROJECTION_ROWS: usize = 2048;

/// Distribution of the projection's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionKind {
    /// `N(0, 1/k)` (Box-Muller, two entries per pair of uniforms).
    Gaussian,
    /// `+-1/sqrt(k)` with equal probability (one random bit each).
    Rademacher,
}

impl FromStr for ProjectionKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "gaussian" => Ok(ProjectionKind::Gaussian),
            "rademacher" => Ok(ProjectionKind::Rademacher),
            _ => Err(format!(
                "unknown projection \"{s}\"; use rademacher or gaussian"
            )),
        }
    }
}

impl fmt::Display for ProjectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProjectionKind::Gaussian => "gaussian",
            ProjectionKind::Rademacher => "rademacher",
        })
    }
}

/// A seeded random projection `P` (`p x k`) that is never stored: row `r` (parameter `r`) is the
/// stream `Rng::derive(seed, "trak-projection", r)`, so any block of rows can be generated alone
/// and the matrix is a function of `(kind, seed, p, k)` only. Entries have variance `1/k`, so
/// `E[P P^T] = I` and projected inner products estimate the gradients' inner products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    /// Entry distribution.
    pub kind: ProjectionKind,
    /// Output dimension `k`.
    pub k: usize,
    /// Input dimension `p` (parameters).
    pub p: usize,
    /// Seed of the row streams.
    pub seed: u64,
}

impl Projection {
    /// Rows `start..end` of `P`, row-major `(end - start) x k`.
    ///
    /// # Panics
    /// If `start > end` or `end > p` (internal invariant).
    pub fn rows(&self, start: usize, end: usize) -> Vec<f64> {
        assert!(
            start <= end && end <= self.p,
            "projection rows out of range"
        );
        let k = self.k;
        let scale = 1.0 / (k as f64).sqrt();
        let mut out = vec![0.0; (end - start) * k];
        out.par_chunks_mut(k.max(1))
            .enumerate()
            .for_each(|(r, row)| {
                let mut rng = Rng::derive(self.seed, "trak-projection", (start + r) as u64);
                match self.kind {
                    ProjectionKind::Gaussian => {
                        // Box-Muller, both outputs of each pair of uniforms.
                        for pair in row.chunks_mut(2) {
                            let r = scale * (-2.0 * (1.0 - rng.uniform()).ln()).sqrt();
                            let (s, c) = (2.0 * std::f64::consts::PI * rng.uniform()).sin_cos();
                            pair[0] = r * c;
                            if let Some(x) = pair.get_mut(1) {
                                *x = r * s;
                            }
                        }
                    }
                    ProjectionKind::Rademacher => {
                        for block in row.chunks_mut(64) {
                            let bits = rng.next_u64();
                            for (j, x) in block.iter_mut().enumerate() {
                                *x = if (bits >> j) & 1 == 1 { scale } else { -scale };
                            }
                        }
                    }
                }
            });
        out
    }

    /// `vs P` for the rows `vs` (each of length `p`): row-major `vs.len() x k`. The projection is
    /// generated in blocks of [`PROJECTION_ROWS`] rows whose products are added in block order.
    pub fn project(&self, vs: &[Vec<f64>]) -> Vec<f64> {
        let (b, k) = (vs.len(), self.k);
        let mut out = vec![0.0; b * k];
        if b == 0 {
            return out;
        }
        for start in (0..self.p).step_by(PROJECTION_ROWS) {
            let end = (start + PROJECTION_ROWS).min(self.p);
            let w = end - start;
            let mut g = Vec::with_capacity(b * w);
            for v in vs {
                g.extend_from_slice(&v[start..end]);
            }
            let prod = engine::kernels::matmul(
                &Tensor::from_vec(g, &[b, w]),
                &Tensor::from_vec(self.rows(start, end), &[w, k]),
                false,
                false,
            );
            for (o, x) in out.iter_mut().zip(prod.data()) {
                *o += x;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_is_reproducible_from_the_seed() {
        for kind in [ProjectionKind::Gaussian, ProjectionKind::Rademacher] {
            let proj = Projection {
                kind,
                k: 100,
                p: 300,
                seed: 7,
            };
            let full = proj.rows(0, 300);
            assert_eq!(full, proj.rows(0, 300), "{kind}: same seed, same bits");
            // Any block of rows is the same slice of the matrix.
            let mut blocks = proj.rows(0, 123);
            blocks.extend(proj.rows(123, 300));
            assert_eq!(full, blocks, "{kind}");
            let other = Projection { seed: 8, ..proj }.rows(0, 300);
            let same = full.iter().zip(&other).filter(|(a, b)| a == b).count();
            assert!(
                same < full.len() / 2 + 1000,
                "{kind}: seed 8 repeats seed 7"
            );
            // Entries have mean 0 and variance 1/k.
            let n = full.len() as f64;
            let mean = full.iter().sum::<f64>() / n;
            let var = full.iter().map(|x| x * x).sum::<f64>() / n;
            assert!(
                mean.abs() < 0.02 / 10.0 && (var * 100.0 - 1.0).abs() < 0.03,
                "{kind}"
            );
            // `project` equals the product with the whole matrix, across projection blocks.
            let big = Projection {
                kind,
                k: 5,
                p: PROJECTION_ROWS + 300,
                seed: 1,
            };
            let mut rng = Rng::new(3);
            let vs: Vec<Vec<f64>> = (0..3)
                .map(|_| (0..big.p).map(|_| rng.normal()).collect())
                .collect();
            let pm = big.rows(0, big.p);
            let got = big.project(&vs);
            for (r, v) in vs.iter().enumerate() {
                for c in 0..5 {
                    let want: f64 = (0..big.p).map(|i| v[i] * pm[i * 5 + c]).sum();
                    assert!((got[r * 5 + c] - want).abs() <= 1e-12 * want.abs().max(1.0));
                }
            }
        }
    }
}
