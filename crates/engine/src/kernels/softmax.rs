//! Softmax of the rows of the last axis, `y = softmax(c x)`, optionally causal, fused.
//!
//! As a composite the softmax was six primitives forward (row maximum, shift, exponential, row
//! sum, reciprocal, product) and about as many again in the reverse sweep, and attention added a
//! scaling and a mask on top: passes over the largest tensor of a GPT, its `[b, h, t, t]` scores.
//! Here each rule reads a row once or twice. With `c` the scale:
//!
//! - forward: `y_j = e^(c x_j - m) / sum_k e^(c x_k - m)`, `m = max_k c x_k` (the shift changes
//!   nothing mathematically and keeps every exponential in range);
//! - causal: the rows are those of `[.., t, n]` matrices, and row `i` of each sees only its first
//!   `i + 1` entries; the rest have `y_j = 0`, as if `-inf` had been added to them, without
//!   computing their exponentials;
//! - the Jacobian is symmetric, `J v = c y (v - <v, y>)`, so one kernel, [`Softmax::apply_jacobian`],
//!   is both the reverse rule (`v` the output's cotangent) and the tangent rule (`v` an input
//!   tangent);
//! - the tangent of the reverse rule in the direction `t` of `x`, for Hessian-vector products
//!   ([`Softmax::reverse_curvature`]): with `dx = J g` and `dy = J t`,
//!   `d(dx) = c (dy (g - <g, y>) - y <g, dy>)`.
//!
//! Every row sum adds its terms in an order fixed by the row length alone, and rows are
//! independent, so the bits do not depend on the thread count.

use std::mem::MaybeUninit;

use super::norm::lane_sum;
use super::{fill_rows, PARALLEL_MIN_ELEMENTS};
use crate::{Float, Tensor};

/// Which softmax: the scale `c` of `softmax(c x)` and whether it is causal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax<F> {
    /// Multiplies the input before the softmax (attention's `1 / sqrt(d_head)`).
    pub scale: F,
    /// Row `i` of each trailing `[t, n]` matrix sees only its entries `0..=i`.
    pub causal: bool,
}

impl<F: Float> Softmax<F> {
    /// The plain softmax: scale 1, every entry seen.
    pub fn plain() -> Self {
        Softmax {
            scale: F::ONE,
            causal: false,
        }
    }

    /// Entries of row `r` of a tensor of shape `shape` that the softmax sees (a prefix).
    fn seen(&self, shape: &[usize], r: usize) -> usize {
        let n = shape[shape.len() - 1];
        if !self.causal {
            return n;
        }
        let t = shape[shape.len() - 2];
        (r % t + 1).min(n)
    }

    /// Rows of `out_len` elements (`v`'s, which may be `k` blocks of `y`'s shape `shape`), each
    /// filled by `f(r, base, seen, out)`: `base` the row of `y` it belongs to, `seen` its prefix
    /// length; `f` writes `out[..seen]`, and the rest is zeroed here.
    fn rows(
        &self,
        shape: &[usize],
        out_len: usize,
        f: impl Fn(usize, usize, usize, &mut [MaybeUninit<F>]) + Sync,
    ) -> Vec<F> {
        let n = *shape.last().expect("softmax of a scalar");
        let rows = crate::tensor::numel(shape).checked_div(n).unwrap_or(0);
        // SAFETY: each row's prefix is written by `f` (the callers below) and the rest here.
        unsafe {
            fill_rows(out_len, n, PARALLEL_MIN_ELEMENTS, |first, chunk| {
                for (i, out) in chunk.chunks_mut(n).enumerate() {
                    let r = first + i;
                    let base = r % rows;
                    let seen = self.seen(shape, base);
                    f(r, base, seen, out);
                    for o in &mut out[seen..] {
                        o.write(F::ZERO);
                    }
                }
            })
        }
    }

    /// `softmax(c x)` along the last axis.
    ///
    /// # Panics
    /// If `x` has fewer dimensions than the softmax needs (one; two when causal).
    pub fn apply(&self, x: &Tensor<F>) -> Tensor<F> {
        let shape = x.shape();
        assert!(
            shape.len() > usize::from(self.causal),
            "softmax of shape {shape:?}"
        );
        let n = shape[shape.len() - 1];
        let xd = x.data();
        let c = self.scale;
        let out = self.rows(shape, xd.len(), |r, _, seen, out| {
            let row = &xd[r * n..r * n + seen];
            let m = row
                .iter()
                .fold(F::from_f64(f64::NEG_INFINITY), |a, &v| a.max(c * v));
            let shifted: Vec<F> = row.iter().map(|&v| c * v - m).collect();
            F::exp_slice(&shifted, &mut out[..seen]);
            // SAFETY: `exp_slice` wrote `out[..seen]`.
            let e: &mut [F] =
                unsafe { &mut *(&mut out[..seen] as *mut [MaybeUninit<F>] as *mut [F]) };
            let inv = F::ONE / lane_sum(seen, |j| e[j]);
            for v in e {
                *v *= inv;
            }
        });
        Tensor::from_vec(out, shape)
    }

    /// `J v = c y (v - <v, y>)` row by row, with `y` the softmax's output: the reverse rule for a
    /// cotangent, the tangent rule for an input tangent. `v` is `y`'s shape or `k` blocks of it
    /// (`[k, ..y.shape]`), each block a direction.
    pub fn apply_jacobian(&self, y: &Tensor<F>, v: &Tensor<F>) -> Tensor<F> {
        let shape = y.shape();
        let n = shape[shape.len() - 1];
        let (yd, vd) = (y.data(), v.data());
        let c = self.scale;
        let out = self.rows(shape, vd.len(), |r, base, seen, out| {
            let yr = &yd[base * n..base * n + seen];
            let vr = &vd[r * n..r * n + seen];
            let dot = lane_sum(seen, |j| vr[j] * yr[j]);
            for ((o, &vj), &yj) in out.iter_mut().zip(vr).zip(yr) {
                o.write(c * (yj * (vj - dot)));
            }
        });
        Tensor::from_vec(out, v.shape())
    }

    /// The tangent of the reverse rule `dx = J g` when the input moves along `t`, given
    /// `dy = J t` (`t`, `dy` of `y`'s shape or `k` blocks of it; `g` of `y`'s shape):
    /// `c (dy (g - <g, y>) - y <g, dy>)`.
    pub fn reverse_curvature(&self, y: &Tensor<F>, g: &Tensor<F>, dy: &Tensor<F>) -> Tensor<F> {
        let shape = y.shape();
        let n = shape[shape.len() - 1];
        let (yd, gd, dyd) = (y.data(), g.data(), dy.data());
        let c = self.scale;
        let out = self.rows(shape, dyd.len(), |r, base, seen, out| {
            let span = base * n..base * n + seen;
            let (yr, gr) = (&yd[span.clone()], &gd[span]);
            let dyr = &dyd[r * n..r * n + seen];
            let gy = lane_sum(seen, |j| gr[j] * yr[j]);
            let gdy = lane_sum(seen, |j| gr[j] * dyr[j]);
            for (((o, &gj), &yj), &dyj) in out.iter_mut().zip(gr).zip(yr).zip(dyr) {
                o.write(c * (dyj * (gj - gy) - yj * gdy));
            }
        });
        Tensor::from_vec(out, dy.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor<f64> {
        let mut rng = crate::Rng::new(seed);
        let n = crate::tensor::numel(shape);
        Tensor::from_vec((0..n).map(|_| 3.0 * rng.normal()).collect(), shape)
    }

    #[test]
    fn causal_rows_are_the_softmax_of_their_prefix() {
        let x = random(&[2, 5, 5], 1);
        let s = Softmax {
            scale: 0.7,
            causal: true,
        };
        let y = s.apply(&x);
        for r in 0..10 {
            let i = r % 5;
            let row = &x.data()[r * 5..r * 5 + i + 1];
            let z: f64 = row.iter().map(|&v| (0.7 * v).exp()).sum();
            for (j, &got) in y.data()[r * 5..r * 5 + 5].iter().enumerate() {
                let want = match row.get(j) {
                    Some(&v) => (0.7 * v).exp() / z,
                    None => 0.0,
                };
                assert!(
                    (got - want).abs() < 1e-14,
                    "row {r} entry {j}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn parallel_rows_change_no_bit() {
        // 64 x 64 rows of 64 (above the parallel threshold) against the same rows one at a time.
        let x = random(&[16, 4, 64, 64], 2).cast::<f32>();
        let s = Softmax {
            scale: 0.25f32,
            causal: true,
        };
        let whole = s.apply(&x);
        let n = 64 * 64;
        for m in 0..64 {
            let part = Tensor::from_vec(x.data()[m * n..(m + 1) * n].to_vec(), &[64, 64]);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(s.apply(&part).data()),
                bits(&whole.data()[m * n..(m + 1) * n])
            );
        }
    }
}
