//! Each task's loss Hessian in the logits, `D`, and a square root of it: the middle factor of the
//! Gauss-Newton matrix `J^T D J` (MATH.md E3, `if-gn`) and the seeds of EK-FAC's output-gradient
//! covariance `G = E[J^T S S^T J]` with `S S^T = D` (E4).
//!
//! Per row of logits `z` (one example, or one position of a sequence):
//! - [`Task::Binary`], logistic loss: `D = sigma(z) (1 - sigma(z))`;
//! - [`Task::Classes`], softmax cross-entropy: `D = diag(p) - p p^T`, `p = softmax(z)`;
//! - [`Task::Regression`], squared error averaged over `d` outputs: `D = (2/d) I`;
//! - [`Task::NextToken`], cross-entropy averaged over `t` positions: `(diag(p) - p p^T) / t` per
//!   position.
//!
//! `D` depends on the logits only, never on the labels. For GLMs with canonical links (linear and
//! logistic regression) `J^T D J` is the exact Hessian. Softmax is computed once here, stably
//! (shifted by the row maximum), for every caller.

use crate::model::Task;

/// `D` at a batch of logits, row by row (see the module doc).
#[derive(Debug, Clone)]
pub struct LogitHessian {
    /// Logits per row (`d` outputs, classes or vocabulary).
    width: usize,
    /// Number of rows.
    rows: usize,
    /// The per-row factor.
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `sigma(z) (1 - sigma(z))` per row.
    Logistic(Vec<f64>),
    /// `(2/d) I`.
    Squared,
    /// `p = softmax(z)` per row (`rows * width`), and the number of positions averaged over.
    Softmax { p: Vec<f64>, positions: f64 },
}

impl Task {
    /// `D` at `logits`, a tensor of shape `shape` whose last dimension holds one row's logits (for
    /// next-token models `[b, t, vocab]`).
    pub fn logit_hessian(&self, logits: &[f64], shape: &[usize]) -> LogitHessian {
        let width = shape.last().copied().unwrap_or(1);
        let rows = logits.len() / width.max(1);
        let kind = match self {
            Task::Binary => Kind::Logistic(
                logits
                    .iter()
                    .map(|&z| {
                        let s = 1.0 / (1.0 + (-z).exp());
                        s * (1.0 - s)
                    })
                    .collect(),
            ),
            Task::Regression => Kind::Squared,
            Task::Classes(_) | Task::NextToken(_) => Kind::Softmax {
                p: logits.chunks(width.max(1)).flat_map(softmax).collect(),
                positions: match self {
                    Task::NextToken(_) => shape[1] as f64,
                    _ => 1.0,
                },
            },
        };
        LogitHessian { width, rows, kind }
    }
}

/// `softmax(z)`, shifted by the maximum.
fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&x| (x - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

impl LogitHessian {
    /// Logits per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `out = D a` for one direction `a` over all rows (`rows * width` numbers, row-major).
    ///
    /// # Panics
    /// If `a` or `out` is not `rows * width` long.
    pub fn apply_into(&self, a: &[f64], out: &mut [f64]) {
        let c = self.width;
        assert!(
            a.len() == self.rows * c && out.len() == a.len(),
            "D is applied to rows * width = {} numbers, got {} into {}",
            self.rows * c,
            a.len(),
            out.len()
        );
        match &self.kind {
            Kind::Logistic(d) => {
                for ((o, &x), &d) in out.iter_mut().zip(a).zip(d) {
                    *o = d * x;
                }
            }
            Kind::Squared => {
                for (o, &x) in out.iter_mut().zip(a) {
                    *o = 2.0 / c as f64 * x;
                }
            }
            Kind::Softmax { p, positions } => {
                for ((o, a), p) in out.chunks_mut(c).zip(a.chunks(c)).zip(p.chunks(c)) {
                    let pa: f64 = p.iter().zip(a).map(|(p, a)| p * a).sum();
                    for j in 0..c {
                        o[j] = p[j] * (a[j] - pa) / positions;
                    }
                }
            }
        }
    }

    /// Columns `s_1..s_m` (each `rows * width` numbers) of a square root `S` of `D`, row by row:
    /// `sum_c s_c s_c^T = D`. Logistic: `m = 1`, `sqrt(sigma (1 - sigma))`; squared error:
    /// `sqrt(2/d) e_c`; softmax: `sqrt(p_c) (e_c - p) / sqrt(t)` (since `sum_c p_c = 1`).
    pub fn sqrt_columns(&self) -> Vec<Vec<f64>> {
        let (c, rows) = (self.width, self.rows);
        match &self.kind {
            Kind::Logistic(d) => vec![d.iter().map(|d| d.sqrt()).collect()],
            Kind::Squared => (0..c)
                .map(|col| {
                    let mut s = vec![0.0; rows * c];
                    for i in 0..rows {
                        s[i * c + col] = (2.0 / c as f64).sqrt();
                    }
                    s
                })
                .collect(),
            Kind::Softmax { p, positions } => (0..c)
                .map(|col| {
                    let mut s = vec![0.0; rows * c];
                    for (i, p) in p.chunks(c).enumerate() {
                        let w = p[col].sqrt() / positions.sqrt();
                        for j in 0..c {
                            let e = if j == col { 1.0 } else { 0.0 };
                            s[i * c + j] = w * (e - p[j]);
                        }
                    }
                    s
                })
                .collect(),
        }
    }
}

impl LogitHessian {
    /// `samples` columns of a *sampled* square root of `D` for softmax rows (the sampled-label
    /// Fisher, as kronfluence fits next-token models): column `k` is, row by row,
    /// `(e_y - p) / sqrt(K t)` with the label `y ~ p` drawn by inverse CDF from the uniform
    /// `uniforms[k][row]` in `[0, 1)`, `K = samples`, `t` the positions averaged over.
    ///
    /// `E[(e_y - p)(e_y - p)^T] = diag(p) - p p^T`, so `E[sum_k s_k s_k^T] = D` on every row,
    /// and with independent draws the expected products of different rows vanish: where the exact
    /// [`LogitHessian::sqrt_columns`] put one class at every position of a window at once (whose
    /// cross-position products are not zero), this is unbiased for the block-diagonal `D` of a
    /// sequence with one reverse pass per sample instead of one per position and class.
    /// `None` for the other losses (whose exact columns have no such cross terms).
    ///
    /// # Panics
    /// If `uniforms` does not hold `samples` rows of [`LogitHessian::rows`] numbers.
    pub fn sampled_columns(&self, uniforms: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
        let Kind::Softmax { p, positions } = &self.kind else {
            return None;
        };
        let (c, k) = (self.width, uniforms.len());
        let w = 1.0 / (k as f64 * positions).sqrt();
        Some(
            uniforms
                .iter()
                .map(|u| {
                    assert_eq!(u.len(), self.rows, "one uniform per row of logits");
                    let mut s = vec![0.0; self.rows * c];
                    for (i, (p, &u)) in p.chunks(c).zip(u).enumerate() {
                        let y = draw(p, u);
                        for j in 0..c {
                            let e = if j == y { 1.0 } else { 0.0 };
                            s[i * c + j] = w * (e - p[j]);
                        }
                    }
                    s
                })
                .collect(),
        )
    }
}

/// The class `y` with `P(y <= j) > u` first, by inverse CDF: `y ~ p` for `u` uniform in `[0, 1)`
/// (the last class when rounding leaves the cumulative sum below `u`).
fn draw(p: &[f64], u: f64) -> usize {
    let mut cum = 0.0;
    for (j, &pj) in p.iter().enumerate() {
        cum += pj;
        if u < cum {
            return j;
        }
    }
    p.len() - 1
}

#[cfg(test)]
mod tests {
    use engine::{Graph, Rng, Tensor};

    use super::*;

    /// The gradient of the summed loss of `task` in its logits `z` (shape `shape`), by reverse
    /// mode through the engine's loss of that task.
    fn loss_gradient(task: Task, z: &[f64], shape: &[usize]) -> Vec<f64> {
        let g = Graph::<f64>::new();
        let zv = g.param(Tensor::from_vec(z.to_vec(), shape));
        let c = *shape.last().unwrap();
        let rows = z.len() / c;
        // Labels do not enter D; any valid ones will do.
        let labels: Vec<usize> = (0..rows).map(|i| i % c.max(2)).collect();
        let losses = match task {
            Task::Classes(_) => g.cross_entropy(zv, &labels),
            Task::Binary => {
                g.binary_logistic(zv, &labels.iter().map(|l| l % 2).collect::<Vec<_>>())
            }
            Task::Regression => g.mse(zv, Tensor::from_vec(vec![0.3; z.len()], shape)),
            Task::NextToken(v) => {
                let (b, t) = (shape[0], shape[1]);
                let flat = g.reshape(zv, &[b * t, v]);
                let per_pos = g.cross_entropy(flat, &labels);
                let per_pos = g.reshape(per_pos, &[b, t]);
                g.mean(per_pos, &[1], false)
            }
        };
        let total = g.sum_all(losses);
        let grads = g.backward(total, None);
        grads.get(zv).unwrap().data().to_vec()
    }

    /// The `n` columns `f(e_k)`.
    fn dense(n: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<Vec<f64>> {
        (0..n)
            .map(|k| {
                let mut e = vec![0.0; n];
                e[k] = 1.0;
                f(&e)
            })
            .collect()
    }

    #[test]
    fn d_and_its_square_root_match_central_differences_of_the_loss_gradient() {
        let cases = [
            (Task::Classes(4), vec![3, 4]),
            (Task::Binary, vec![5, 1]),
            (Task::Regression, vec![2, 3]),
            (Task::NextToken(3), vec![2, 4, 3]),
        ];
        let mut rng = Rng::new(11);
        for (task, shape) in cases {
            let n: usize = shape.iter().product();
            let z: Vec<f64> = (0..n).map(|_| 1.5 * rng.normal()).collect();
            let d = task.logit_hessian(&z, &shape);
            let h = 1e-5;
            // Column k of the Hessian: (grad(z + h e_k) - grad(z - h e_k)) / 2h.
            let fd = dense(n, |e| {
                let at = |s: f64| -> Vec<f64> {
                    let zs: Vec<f64> = z.iter().zip(e).map(|(z, e)| z + s * e).collect();
                    loss_gradient(task, &zs, &shape)
                };
                let (up, down) = (at(h), at(-h));
                up.iter()
                    .zip(&down)
                    .map(|(u, d)| (u - d) / (2.0 * h))
                    .collect()
            });
            let exact = dense(n, |e| {
                let mut out = vec![0.0; n];
                d.apply_into(e, &mut out);
                out
            });
            // The square root is per row: each row's seeds s_c restricted to that row.
            let roots = d.sqrt_columns();
            let width = d.width();
            for k in 0..n {
                for j in 0..n {
                    assert!(
                        (exact[k][j] - fd[k][j]).abs() < 1e-8,
                        "{task:?} D[{j}][{k}]: {} vs central difference {}",
                        exact[k][j],
                        fd[k][j]
                    );
                    if j / width != k / width {
                        continue;
                    }
                    let ss: f64 = roots.iter().map(|s| s[j] * s[k]).sum();
                    assert!(
                        (ss - exact[k][j]).abs() < 1e-14,
                        "{task:?} (S S^T)[{j}][{k}] = {ss} vs D = {}",
                        exact[k][j]
                    );
                }
            }
        }
    }
    /// The sampled columns average to `D` over many draws, cross-row blocks included (which are
    /// zero in `D`), within 5 standard errors; one draw alone has nonzero cross-row products.
    #[test]
    fn sampled_columns_are_unbiased_for_d_and_its_zero_cross_row_blocks() {
        let (task, shape) = (Task::NextToken(3), [2, 4, 3]);
        let n: usize = shape.iter().product();
        let mut rng = Rng::new(5);
        let z: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let d = task.logit_hessian(&z, &shape);
        let exact = dense(n, |e| {
            let mut out = vec![0.0; n];
            d.apply_into(e, &mut out);
            out
        });
        let k = 40_000;
        let uniforms: Vec<Vec<f64>> = (0..k)
            .map(|_| (0..d.rows()).map(|_| rng.uniform()).collect())
            .collect();
        let cols = d.sampled_columns(&uniforms).unwrap();
        // Standard error of one entry: at most 1/t per draw over sqrt(K) draws.
        let tol = 5.0 / (4.0 * (k as f64).sqrt());
        let mut worst: f64 = 0.0;
        for a in 0..n {
            for b in 0..n {
                let ss: f64 = cols.iter().map(|s| s[a] * s[b]).sum();
                worst = worst.max((ss - exact[a][b]).abs());
                assert!(
                    (ss - exact[a][b]).abs() < tol,
                    "(S S^T)[{a}][{b}] = {ss} vs D = {} (tolerance {tol})",
                    exact[a][b]
                );
            }
        }
        eprintln!("sampled Fisher: worst |S S^T - D| {worst:.1e} over {k} draws");
        let one = &cols[0];
        assert!((0..n).any(|a| (0..n).any(|b| a / 3 != b / 3 && one[a] * one[b] != 0.0)));
        assert!(Task::Binary
            .logit_hessian(&[0.3], &[1, 1])
            .sampled_columns(&[vec![0.5]])
            .is_none());
    }
}
