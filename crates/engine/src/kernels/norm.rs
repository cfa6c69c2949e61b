//! Standardisation of the rows of the last axis, `y = (x - mean) / sqrt(var + eps)` with the biased
//! variance (layer and group norm's core, MATH.md E2), fused.
//!
//! As a composite of broadcast primitives the forward pass was eight passes over the tensor and its
//! reverse rule about twenty (issue "Engine speed": a third of a group-norm CNN's step). Here each
//! rule reads a row a fixed, small number of times. With `s = 1 / sqrt(var + eps)`:
//!
//! - forward: `y = (x - mean x) s`;
//! - the Jacobian is symmetric, `J v = s (v - mean v - y mean(v y))`, so one kernel,
//!   [`standardize_apply_jacobian`], is both the reverse rule (`v` the output's cotangent) and the
//!   tangent rule (`v` an input tangent);
//! - the tangent of the reverse rule in the direction `t` of `x`, for Hessian-vector products
//!   ([`standardize_reverse_curvature`]): with `dx = J g`, `dy = J t`, `b = mean(g y)`,
//!   `d(dx) = -s (mean(y t) dx + b dy + mean(g dy) y)`, from `ds = -s^2 mean(y t)` and
//!   `db = mean(g dy)`.
//!
//! Every row sum adds its terms in an order fixed by the row length alone, and rows are
//! independent, so the bits do not depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{fill_rows, lane_groups, simd_fn, PARALLEL_MIN_ELEMENTS};
use crate::{Float, Tensor};

/// Lanes of [`lane_sum`].
const LANES: usize = 8;

/// `sum_i term(i)` for `i < n`, in `LANES` interleaved partial sums (lane `j` adds terms `j`,
/// `j + 8`, ...) combined pairwise, then the terms past the last whole group: an order fixed by `n`,
/// that vectorises.
#[inline(always)]
pub(super) fn lane_sum<F: Float>(n: usize, term: impl Fn(usize) -> F) -> F {
    let mut lanes = [F::ZERO; LANES];
    let whole = n / LANES * LANES;
    for base in (0..whole).step_by(LANES) {
        for (j, l) in lanes.iter_mut().enumerate() {
            *l += term(base + j);
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            lanes[j] += lanes[j + width];
        }
    }
    (whole..n).fold(lanes[0], |acc, i| acc + term(i))
}

/// [`lane_sum`] of `f(a[i], b[i])` over two rows of one length: the same additions in the same
/// order, so the same bits, but over whole groups of `LANES` elements, which the compiler can
/// keep in one vector register without a bounds check per term.
#[inline(always)]
pub(super) fn lane_sum_zip<F: Float>(a: &[F], b: &[F], f: impl Fn(F, F) -> F) -> F {
    let (sum, ta, tb) = lane_groups::<LANES, F>(a, b, &f);
    ta.iter().zip(tb).fold(sum, |acc, (&x, &y)| acc + f(x, y))
}

/// `(mean, 1 / sqrt(var + eps))` of one row.
#[inline(always)]
fn row_stats<F: Float>(x: &[F], eps: F) -> (F, F) {
    let inv_n = F::ONE / F::from_f64(x.len() as f64);
    let mean = lane_sum_zip(x, x, |v, _| v) * inv_n;
    let var = lane_sum_zip(x, x, |v, _| {
        let d = v - mean;
        d * d
    }) * inv_n;
    (mean, F::ONE / (var + eps).sqrt())
}

/// The row length of `x` (its last axis).
fn row_len<F: Float>(x: &Tensor<F>) -> usize {
    *x.shape().last().expect("standardize of a scalar")
}

/// Runs `f(row index, output row)` over every row of an output of `len` elements in rows of `n`,
/// in parallel tasks of whole rows when large ([`fill_rows`]). The rows start uninitialised.
///
/// # Safety
/// `f` must write every element of the row it is given.
unsafe fn for_each_row<F: Float>(
    len: usize,
    n: usize,
    f: impl Fn(usize, &mut [MaybeUninit<F>]) + Sync,
) -> Vec<F> {
    // SAFETY: each chunk holds whole rows, and `f` writes every one (the caller's contract).
    unsafe {
        fill_rows(len, n, PARALLEL_MIN_ELEMENTS, |first, chunk| {
            for (r, row) in chunk.chunks_mut(n).enumerate() {
                f(first + r, row);
            }
        })
    }
}

/// `x * gamma[c] + beta[c]` for `x` `[b, c, ...]` and `gamma`, `beta` `[c]`: group norm's
/// per-channel affine map in one pass, with the bits of the broadcast product and sum it fuses
/// ([`crate::Carrier::channel_affine`]).
pub fn channel_affine<F: Float>(x: &Tensor<F>, gamma: &Tensor<F>, beta: &Tensor<F>) -> Tensor<F> {
    let s = x.shape();
    assert!(
        s.len() >= 2 && gamma.shape() == [s[1]] && beta.shape() == [s[1]],
        "channel_affine of {s:?} with gamma {:?} and beta {:?}",
        gamma.shape(),
        beta.shape()
    );
    let inner: usize = s[2..].iter().product();
    let xd = x.data();
    // SAFETY: `affine_rows` writes every element of the rows it is given.
    let out = unsafe {
        fill_rows(xd.len(), inner, PARALLEL_MIN_ELEMENTS, |first, slots| {
            affine_rows(xd, gamma.data(), beta.data(), first, inner, slots)
        })
    };
    Tensor::from_vec(out, s)
}

simd_fn! {
    /// Rows `first..` of [`channel_affine`] (rows of `inner` elements, row `r` of channel
    /// `r mod c`) into `slots`.
    fn affine_rows<F: Float>(
        x: &[F],
        gamma: &[F],
        beta: &[F],
        first: usize,
        inner: usize,
        slots: &mut [MaybeUninit<F>],
    ) {
        for (r, row) in (first..).zip(slots.chunks_mut(inner)) {
            let (g, b) = (gamma[r % gamma.len()], beta[r % gamma.len()]);
            for (o, &v) in row.iter_mut().zip(&x[r * inner..(r + 1) * inner]) {
                o.write(v * g + b);
            }
        }
    }
}

// The row kernels, each compiled for the widest vector unit (`simd_fn!`, same bits).
simd_fn! {
    /// `(mean, 1 / sqrt(var + eps))` of one row.
    fn mean_and_inverse_std<F: Float>(row: &[F], eps: F) -> (F, F) {
        row_stats(row, eps)
    }
}

simd_fn! {
    /// One row of [`standardize`], from its [`row_stats`].
    fn standardize_row<F: Float>(row: &[F], stats: (F, F), out: &mut [MaybeUninit<F>]) {
        let (mean, s) = stats;
        for (o, &v) in out.iter_mut().zip(row) {
            o.write((v - mean) * s);
        }
    }
}

simd_fn! {
    /// One row of [`standardize_apply_jacobian`]: `s (v - mean v - y mean(v y))`.
    fn jacobian_row<F: Float>(s: F, yr: &[F], vr: &[F], inv_n: F, out: &mut [MaybeUninit<F>]) {
        let a = lane_sum_zip(vr, vr, |v, _| v) * inv_n;
        let b = lane_sum_zip(vr, yr, |v, y| v * y) * inv_n;
        for ((o, &vi), &yi) in out.iter_mut().zip(vr).zip(yr) {
            o.write(s * (vi - a - yi * b));
        }
    }
}

simd_fn! {
    /// One row of [`standardize_reverse_curvature`], from the rows of `y`, `g`, `t` and `dy`.
    fn curvature_row<F: Float>(s: F, rows: [&[F]; 4], inv_n: F, out: &mut [MaybeUninit<F>]) {
        let [yr, gr, tr, dyr] = rows;
        let a = lane_sum_zip(gr, gr, |g, _| g) * inv_n;
        let b = lane_sum_zip(gr, yr, |g, y| g * y) * inv_n;
        let c = lane_sum_zip(yr, tr, |y, t| y * t) * inv_n;
        let e = lane_sum_zip(gr, dyr, |g, dy| g * dy) * inv_n;
        for (((o, &gi), &yi), &dyi) in out.iter_mut().zip(gr).zip(yr).zip(dyr) {
            let dx = s * (gi - a - yi * b);
            o.write(-s * (c * dx + b * dyi + e * yi));
        }
    }
}

/// `(mean, 1 / sqrt(var + eps))` of every row of `x`.
fn row_stats_of<F: Float>(x: &Tensor<F>, eps: F) -> Vec<(F, F)> {
    let n = row_len(x);
    let xd = x.data();
    let rows = xd.len().checked_div(n).unwrap_or(0);
    let stat = |r: usize| mean_and_inverse_std(&xd[r * n..(r + 1) * n], eps);
    if xd.len() < PARALLEL_MIN_ELEMENTS {
        (0..rows).map(stat).collect()
    } else {
        (0..rows).into_par_iter().map(stat).collect()
    }
}

/// `1 / sqrt(var + eps)` of every row of `x`: the scales [`standardize`] multiplies by, which
/// its Jacobian kernels take.
pub fn inverse_stds<F: Float>(x: &Tensor<F>, eps: F) -> Vec<F> {
    row_stats_of(x, eps).into_iter().map(|(_, s)| s).collect()
}

/// `y = (x - mean) / sqrt(var + eps)` over each row of the last axis.
pub fn standardize<F: Float>(x: &Tensor<F>, eps: F) -> Tensor<F> {
    standardize_keeping_scales(x, eps).0
}

/// [`standardize`], and the [`inverse_stds`] it used, so that a reverse rule need not compute
/// them again (two passes over every row; with the Jacobian's three, they were two fifths of
/// a group norm's reverse rule).
pub fn standardize_keeping_scales<F: Float>(x: &Tensor<F>, eps: F) -> (Tensor<F>, Vec<F>) {
    let n = row_len(x);
    let xd = x.data();
    let stats = row_stats_of(x, eps);
    // SAFETY: the row loop below writes every element of `out` (rows of `n`).
    let out = unsafe {
        for_each_row(xd.len(), n, |r, out| {
            standardize_row(&xd[r * n..(r + 1) * n], stats[r], out)
        })
    };
    let scales = stats.into_iter().map(|(_, s)| s).collect();
    (Tensor::from_vec(out, x.shape()), scales)
}

/// `J v = s (v - mean v - y mean(v y))` row by row, the Jacobian of [`standardize`] at `x` (with
/// `y = standardize(x)`) applied to `v`: the reverse rule for a cotangent, the tangent rule for an
/// input tangent. `v` is `x`'s shape or `k` blocks of it (`[k, ...x.shape]`), each block a
/// direction.
pub fn standardize_apply_jacobian<F: Float>(
    x: &Tensor<F>,
    y: &Tensor<F>,
    v: &Tensor<F>,
    eps: F,
) -> Tensor<F> {
    standardize_jacobian_scaled(&inverse_stds(x, eps), y, v)
}

/// [`standardize_apply_jacobian`] given the [`inverse_stds`] of `x`'s rows.
///
/// # Panics
/// If `inv` does not hold one scale per row of `y`.
pub fn standardize_jacobian_scaled<F: Float>(inv: &[F], y: &Tensor<F>, v: &Tensor<F>) -> Tensor<F> {
    let n = row_len(y);
    let rows = y.len().checked_div(n).unwrap_or(0);
    assert_eq!(inv.len(), rows, "standardize: one scale per row");
    let (yd, vd) = (y.data(), v.data());
    let inv_n = F::ONE / F::from_f64(n as f64);
    // SAFETY: the row loop below writes every element of `out` (rows of `n`).
    let out = unsafe {
        for_each_row(vd.len(), n, |r, out| {
            let s = inv[r % rows];
            let yr = &yd[(r % rows) * n..(r % rows + 1) * n];
            let vr = &vd[r * n..(r + 1) * n];
            jacobian_row(s, yr, vr, inv_n, out)
        })
    };
    Tensor::from_vec(out, v.shape())
}

/// The tangent of the reverse rule `dx = J(x) g` in the directions `t` of `x` (`[k, ...x.shape]`),
/// `g` held fixed: `-s (mean(y t) dx + b dy + mean(g dy) y)` with `dy = J t` (`dy` the forward
/// tangent of `y`, `[k, ...x.shape]`), `b = mean(g y)` (see the module doc).
pub fn standardize_reverse_curvature<F: Float>(
    x: &Tensor<F>,
    y: &Tensor<F>,
    g: &Tensor<F>,
    t: &Tensor<F>,
    dy: &Tensor<F>,
    eps: F,
) -> Tensor<F> {
    standardize_curvature_scaled(&inverse_stds(x, eps), y, g, t, dy)
}

/// [`standardize_reverse_curvature`] given the [`inverse_stds`] of `x`'s rows.
///
/// # Panics
/// If `inv` does not hold one scale per row of `y`.
pub fn standardize_curvature_scaled<F: Float>(
    inv: &[F],
    y: &Tensor<F>,
    g: &Tensor<F>,
    t: &Tensor<F>,
    dy: &Tensor<F>,
) -> Tensor<F> {
    let n = row_len(y);
    let rows = y.len().checked_div(n).unwrap_or(0);
    assert_eq!(inv.len(), rows, "standardize: one scale per row");
    let (yd, gd, td, dyd) = (y.data(), g.data(), t.data(), dy.data());
    let inv_n = F::ONE / F::from_f64(n as f64);
    // SAFETY: the row loop below writes every element of `out` (rows of `n`).
    let out = unsafe {
        for_each_row(td.len(), n, |r, out| {
            let base = r % rows;
            let s = inv[base];
            let span = base * n..(base + 1) * n;
            let (yr, gr) = (&yd[span.clone()], &gd[span]);
            let (tr, dyr) = (&td[r * n..(r + 1) * n], &dyd[r * n..(r + 1) * n]);
            curvature_row(s, [yr, gr, tr, dyr], inv_n, out)
        })
    };
    Tensor::from_vec(out, t.shape())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::random_tensor;

    /// The composite the fused kernel replaced, in f64.
    fn composite(x: &Tensor<f64>, eps: f64) -> Vec<f64> {
        let n = row_len(x);
        x.data()
            .chunks(n)
            .flat_map(|row| {
                let mean = row.iter().sum::<f64>() / n as f64;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
                row.iter()
                    .map(move |v| (v - mean) / (var + eps).sqrt())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_kept_scales_are_those_the_jacobian_recomputes() {
        for (seed, shape) in [[3, 5, 16], [2, 4, 7], [64, 4, 256]]
            .into_iter()
            .enumerate()
        {
            let x = random_tensor(&shape, 2 * seed as u64);
            let (y, kept) = standardize_keeping_scales(&x, 1e-5);
            assert!(y.bitwise_eq(&standardize(&x, 1e-5)));
            let recomputed = inverse_stds(&x, 1e-5);
            assert!(kept
                .iter()
                .zip(&recomputed)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            let v = random_tensor(&shape, 2 * seed as u64 + 1);
            let scaled = standardize_jacobian_scaled(&kept, &y, &v);
            assert!(scaled.bitwise_eq(&standardize_apply_jacobian(&x, &y, &v, 1e-5)));
        }
    }

    #[test]
    fn lane_sums_of_two_rows_add_in_the_order_of_lane_sum() {
        let mut rng = crate::Rng::new(5);
        for n in [0, 1, 7, 8, 9, 16, 17, 100, 3136] {
            let a: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let zipped = lane_sum_zip(&a, &b, |x, y| x * y - y);
            let indexed = lane_sum(n, |i| a[i] * b[i] - b[i]);
            assert_eq!(zipped.to_bits(), indexed.to_bits(), "n = {n}");
        }
    }

    #[test]
    fn the_fused_channel_affine_gives_the_bits_of_its_composite() {
        // A parallel CNN activation, one example, one channel, no spatial axes, 1x1 images:
        // the forward map and every cotangent against the broadcast operations they replace.
        use crate::Carrier;
        let bits = |t: &Tensor<f32>| t.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let shapes: [&[usize]; 5] = [
            &[64, 16, 28, 28],
            &[1, 16, 5, 5],
            &[3, 1, 4, 4],
            &[5, 6],
            &[2, 3, 1, 1],
        ];
        for (i, shape) in shapes.into_iter().enumerate() {
            let f32s = |t: Tensor<f64>| {
                Tensor::from_vec(t.data().iter().map(|&v| v as f32).collect(), t.shape())
            };
            let x = f32s(random_tensor(shape, 20 + i as u64));
            let g = f32s(random_tensor(shape, 40 + i as u64));
            let gamma = f32s(random_tensor(&[shape[1]], 60 + i as u64));
            let beta = f32s(random_tensor(&[shape[1]], 80 + i as u64));
            let mut s = vec![1; shape.len() - 1];
            s[0] = shape[1];
            let composite = x.mul(&gamma.reshape(&s)).add(&beta.reshape(&s));
            assert_eq!(
                bits(&x.channel_affine(&gamma, &beta)),
                bits(&composite),
                "{shape:?}"
            );
            let [dx, dgamma, dbeta] = x.channel_affine_vjp(&gamma, &g, [true; 3]);
            let want = [
                g.mul(&gamma.reshape(&s)),
                g.mul(&x).sum_to(&s).reshape(&[shape[1]]),
                g.sum_to(&s).reshape(&[shape[1]]),
            ];
            for (got, want) in [dx, dgamma, dbeta].into_iter().zip(&want) {
                assert_eq!(bits(&got.expect("asked for")), bits(want), "{shape:?}");
            }
            let [none, ..] = x.channel_affine_vjp(&gamma, &g, [false, true, true]);
            assert!(none.is_none());
        }
    }

    #[test]
    fn standardize_matches_the_textbook_formula() {
        // Rows shorter than, equal to and longer than a lane group, and a large parallel tensor.
        for shape in [[3usize, 5], [2, 8], [4, 37], [300, 129]] {
            let x = random_tensor(&shape, 7);
            let y = standardize(&x, 1e-5);
            for (a, b) in y.data().iter().zip(composite(&x, 1e-5)) {
                assert!((a - b).abs() < 1e-12, "{shape:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn blocks_of_directions_use_the_rows_of_their_block() {
        let x = random_tensor(&[3, 6], 1);
        let y = standardize(&x, 1e-5);
        let v = random_tensor(&[2, 3, 6], 2);
        let both = standardize_apply_jacobian(&x, &y, &v, 1e-5);
        for k in 0..2 {
            let vk = Tensor::from_vec(v.data()[k * 18..(k + 1) * 18].to_vec(), &[3, 6]);
            let one = standardize_apply_jacobian(&x, &y, &vk, 1e-5);
            assert_eq!(one.data(), &both.data()[k * 18..(k + 1) * 18]);
        }
    }

    #[test]
    fn the_bits_do_not_depend_on_the_thread_count() {
        let x = Tensor::from_vec(
            random_tensor(&[64, 1024], 3)
                .data()
                .iter()
                .map(|&v| v as f32)
                .collect(),
            &[64, 1024],
        );
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let y = standardize(&x, 1e-5);
                    let j = standardize_apply_jacobian(&x, &y, &x, 1e-5);
                    (y, j)
                })
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(a.0.data(), b.0.data());
        assert_eq!(a.1.data(), b.1.data());
    }
}
