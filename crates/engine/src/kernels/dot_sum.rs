//! `sum over t of a_t @ b_t^T` with few outputs, as dot products: the weight gradient of a
//! convolution with few taps (`g [o, positions] @ cols^T`, `cols` stored `[taps, positions]`).
//!
//! Why not `gemm`: with `9` taps (one input channel, a 3x3 kernel) the `16 x 9` output is too
//! small for `gemm`'s blocks to keep the bits of the whole product (`tiles_keep_bits`), so every
//! image's product was formed on its own (after copying its `cols` to row-major) and the batch of
//! products summed afterwards: on a CNN over 28x28 images that one gradient, 7 million
//! multiply-adds, was a fifth of the training step. Both operands' rows are contiguous along the
//! depth, so each output is a dot product of two rows concatenated over the batch, and four rows
//! of `b` share each pass over a row of `a`.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buffer::filled;
use crate::Float;

use super::{pairwise_sum, simd_fn};

/// Interleaved partial sums per dot product (one AVX-512 register of `f32`).
const LANES: usize = 16;

/// Rows of `b` one pass over a row of `a` serves (four accumulators of [`LANES`]).
const ROWS_PER_PASS: usize = 4;

/// The most outputs (`m n`) summed here: each row of `a` is read `n / 4` times and every `b_t`
/// once per row of `a`, which larger outputs would pay for in memory traffic that `gemm`'s
/// packing avoids.
pub(crate) const MAX_OUTPUTS: usize = 1024;

/// Products below this many multiply-adds run on one thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// `sum over t of a_t @ b_t^T` (`m x n`, row-major) for `batch` row-major `a_t` `[m, k]` and `b_t`
/// `[n, k]`, each operand's matrices stored one after another.
///
/// Output `(i, j)` is the dot product of row `i` of the `a_t` with row `j` of the `b_t`, taken
/// over `t` in order and, within each `t`, over the whole groups of [`LANES`] depths into
/// [`LANES`] interleaved partial sums (lane `l` adds depths `l`, `l + LANES`, ... of every `t`),
/// the depths past the last whole group added into one sum of their own (in `t`, then depth
/// order); the lanes are combined pairwise (lane `l` with `l + LANES / 2`, then `l + LANES / 4`,
/// ...) and the remainder's sum added last. That order is fixed by the shapes alone, so the bits
/// do not depend on the thread count or on the vector width the loop runs at (each output is
/// one task's).
///
/// # Panics
/// If the operands' lengths are not `batch m k` and `batch n k`.
pub(crate) fn batch_dot_sum<F: Float>(
    a: &[F],
    b: &[F],
    (batch, m, k, n): (usize, usize, usize, usize),
) -> Vec<F> {
    assert!(
        a.len() == batch * m * k && b.len() == batch * n * k,
        "batch_dot_sum: operands of {} and {} elements for {batch} x ({m} x {k}) and ({n} x {k})",
        a.len(),
        b.len()
    );
    if m == 0 || n == 0 {
        return Vec::new();
    }
    let tasks = if batch * m * n * k < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads().min(m)
    };
    let rows = m.div_ceil(tasks);
    let fill = |out: &mut [MaybeUninit<F>]| {
        out.par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(c, chunk)| dot_rows(a, b, batch, m, k, n, c * rows, chunk));
    };
    // SAFETY: the chunks cover the output and `dot_rows` writes every element of its chunk.
    unsafe { filled(m * n, fill) }
}

simd_fn! {
    /// Output rows `i0..` of [`batch_dot_sum`], as many as `out` holds (whole rows of `n`).
    ///
    /// The batch is the outer loop: each `(a_t, b_t)` pair is read once, while it is in cache,
    /// into partial sums kept for all of the task's outputs (`LANES + 1` values each), so the
    /// order of every output's sums is the documented one.
    #[allow(clippy::too_many_arguments)]
    fn dot_rows<F: Float>(
        a: &[F],
        b: &[F],
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        i0: usize,
        out: &mut [MaybeUninit<F>],
    ) {
        let outputs = out.len();
        let mut lanes = vec![[F::ZERO; LANES]; outputs];
        let mut rest = vec![F::ZERO; outputs];
        for t in 0..batch {
            for r in 0..outputs / n {
                let x = &a[(t * m + i0 + r) * k..][..k];
                let b_t = &b[t * n * k..(t + 1) * n * k];
                let (lanes, rest) = (&mut lanes[r * n..(r + 1) * n], &mut rest[r * n..(r + 1) * n]);
                if n < ROWS_PER_PASS {
                    for j in 0..n {
                        accumulate::<1, F>(x, b_t, j, 0, lanes, rest);
                    }
                    continue;
                }
                // Passes of four rows of `b_t`; the last one ends at row `n` and may overlap the
                // one before, whose rows it adds up again but does not keep. (A pass of one row
                // vectorises poorly: the compiler splits its sixteen lanes into pairs.)
                let mut j = 0;
                while j < n {
                    let j0 = j.min(n - ROWS_PER_PASS);
                    accumulate::<ROWS_PER_PASS, F>(x, b_t, j0, j - j0, lanes, rest);
                    j = j0 + ROWS_PER_PASS;
                }
            }
        }
        for ((o, l), s) in out.iter_mut().zip(lanes).zip(rest) {
            o.write(pairwise_sum(l) + s);
        }
    }
}

/// Adds `x`'s products with rows `j0..j0 + J` of `b_t` (`[n, k]`) to those rows' partial sums in
/// `lanes` and `rest`, keeping only rows `j0 + skip..`.
#[inline(always)]
fn accumulate<const J: usize, F: Float>(
    x: &[F],
    b_t: &[F],
    j0: usize,
    skip: usize,
    lanes: &mut [[F; LANES]],
    rest: &mut [F],
) {
    let k = x.len();
    let whole = k - k % LANES;
    let ys: [&[F]; J] = std::array::from_fn(|r| &b_t[(j0 + r) * k..][..k]);
    let mut acc: [[F; LANES]; J] = std::array::from_fn(|r| lanes[j0 + r]);
    let mut tail: [F; J] = std::array::from_fn(|r| rest[j0 + r]);
    for g in (0..whole).step_by(LANES) {
        let xg: &[F; LANES] = x[g..g + LANES].try_into().expect("a whole group");
        for (lane, y) in acc.iter_mut().zip(&ys) {
            let yg: &[F; LANES] = y[g..g + LANES].try_into().expect("a whole group");
            for l in 0..LANES {
                lane[l] += xg[l] * yg[l];
            }
        }
    }
    for d in whole..k {
        for (s, y) in tail.iter_mut().zip(&ys) {
            *s += x[d] * y[d];
        }
    }
    lanes[j0 + skip..j0 + J].copy_from_slice(&acc[skip..]);
    rest[j0 + skip..j0 + J].copy_from_slice(&tail[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_wave as data;

    /// [`batch_dot_sum`]'s documented order, one output at a time, with scalars only.
    fn reference(a: &[f32], b: &[f32], (batch, m, k, n): (usize, usize, usize, usize)) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        let whole = k - k % LANES;
        for i in 0..m {
            for j in 0..n {
                let (mut lanes, mut rest) = ([0.0f32; LANES], 0.0f32);
                for t in 0..batch {
                    for d in 0..k {
                        let p = a[(t * m + i) * k + d] * b[(t * n + j) * k + d];
                        if d < whole {
                            lanes[d % LANES] += p;
                        } else {
                            rest += p;
                        }
                    }
                }
                out[i * n + j] = pairwise_sum(lanes) + rest;
            }
        }
        out
    }

    #[test]
    fn the_sums_follow_the_documented_order_on_any_thread_count() {
        let shapes = [
            (64, 16, 784, 9),
            (64, 16, 64, 9),
            (3, 5, 37, 7),
            (2, 3, 40, 4),
            (2, 3, 40, 3),
            (2, 1, 15, 1),
            (1, 33, 16, 30),
            (4, 8, 0, 3),
            (0, 4, 16, 4),
        ];
        for dims in shapes {
            let (batch, m, k, n) = dims;
            let (a, b) = (data(batch * m * k, 1), data(batch * n * k, 2));
            let want = reference(&a, &b, dims);
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool.install(|| batch_dot_sum(&a, &b, dims));
                let same = got.len() == want.len()
                    && got
                        .iter()
                        .zip(&want)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{dims:?} on {threads} threads");
            }
        }
    }

    #[test]
    fn the_sums_are_the_products_summed_over_the_batch() {
        let dims = (5, 6, 50, 7);
        let (batch, m, k, n) = dims;
        let a: Vec<f64> = data(batch * m * k, 3).into_iter().map(f64::from).collect();
        let b: Vec<f64> = data(batch * n * k, 4).into_iter().map(f64::from).collect();
        let got = batch_dot_sum(&a, &b, dims);
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..batch)
                    .flat_map(|t| (0..k).map(move |d| (t, d)))
                    .map(|(t, d)| a[(t * m + i) * k + d] * b[(t * n + j) * k + d])
                    .sum();
                let err = (got[i * n + j] - exact).abs();
                assert!(err < 1e-12, "({i}, {j}): {} vs {exact}", got[i * n + j]);
            }
        }
    }
}
