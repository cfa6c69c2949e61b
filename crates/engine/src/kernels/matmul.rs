//! Matrix products on the `gemm` crate's kernel, batched with NumPy broadcasting, split deterministically.
//!
//! Thread-count independence: a large product is cut into row panels whose size depends only on the
//! shape, and each panel is one sequential `gemm` call. Panels run in parallel, but every output
//! element is computed by the same sequence of operations on 1 or 64 threads. Most products are
//! cut into a grid of blocks that follows the thread count instead, for the shapes on which no
//! grid changes a bit (`tiles_keep_bits`); the panels remain for the others.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buffer::{as_slots, filled};
use crate::error::{EngineError, Result};
use crate::tensor::numel;
use crate::{Float, Tensor};

use super::broadcast::{broadcast_shape, broadcast_strides};
use super::dot_sum;

/// Products below this many multiply-adds run as one sequential call.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// Rows per panel for an `m x n` product (a function of the shape only).
///
/// Wide products (`n > 64`) get panels of up to 256 rows: `gemm` reuses each packed block of the
/// right operand over the panel's rows, so a 1024^3 product runs about 1.5x faster in 256-row panels
/// than in 64-row ones. Their bits do not depend on the panel height, because `gemm` picks its depth
/// blocking (`kc`, the order of the sums) from `k` and the cache sizes alone once `n > 64`
/// (`panel_height_keeps_the_bits` checks it). Narrow ones keep 32 or 64 rows: below 65 rows and 65
/// columns `gemm` blocks the depth by 512 instead, so a taller panel would change their sums when
/// `k > 512`.
fn panel_rows(m: usize, n: usize) -> usize {
    match (m, n > 64) {
        (1024.., true) => 256,
        (512.., true) => 128,
        (512.., false) => 64,
        _ => 32,
    }
}

/// Products from this many multiply-adds that [`tiles_keep_bits`] rules out copy a transposed
/// right operand to row-major first (smaller ones always ran in place).
const TRANSPOSE_MIN_MACS: usize = 1 << 16;

/// Whether `op(a) @ op(b)` may run as one `gemm` call per block of any [`tile_grid`], with the
/// right operand in whichever layout it is stored, and keep the bits of the row panels (of a
/// row-major copy of a transposed `b`) that the kernel ran before.
///
/// Why tiles: `gemm` packs the whole right operand in every call, so the row panels packed it
/// once per panel, where column blocks pack each part of it once. And `gemm` packs a transposed
/// right operand slowly, but once per call: in column blocks it needs no row-major copy, which
/// cost a read and write of `b` and evicted the operands from cache (a linear layer's forward
/// pass, 256x512 by (512x512)^T, took 1.1 ms with the copy and 0.78 ms in place on one thread).
///
/// Why the bits do not change: every `gemm` call sums each output over `k` in the depth blocks
/// its cache model picks from `k` alone (one block when `k <= 512`), so a call's bits do not
/// depend on how many rows and columns it covers, nor on how the operands are stored, except in
/// the shapes `gemm` treats specially, which this rules out: a row or column vector (`m < 2`,
/// `n < 8`: gemv kernels, which differ by layout), `k <= 2` (outer-product kernels), at most 256
/// outputs (dot-product kernels, taken for the transposed layout; every tile keeps more, see
/// [`tile_grid`]), a narrow product over a deep sum (`n <= 64`, `k > 512`: the panels of at most
/// 64 rows had `gemm` block the depth by 512 instead of by its cache model), and panels whose
/// last one was a single row (a gemv kernel again). `tiles_keep_the_bits_of_the_row_panels`
/// checks all of them against the panels.
fn tiles_keep_bits(m: usize, k: usize, n: usize) -> bool {
    let p = panel_rows(m, n);
    let panelled = m * n * k >= PARALLEL_MIN_MACS && m >= 2 * p;
    let one_row_tail = panelled && m % p == 1;
    m >= 2 && n >= 8 && k > 2 && m * n > 256 && (n > 64 || k <= 512) && !one_row_tail
}

/// The workers a product of `macs` multiply-adds is split over: one below
/// [`PARALLEL_MIN_MACS`], else the pool's threads.
fn workers_for(macs: usize) -> usize {
    if macs < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// (row blocks, column blocks) for a tiled product on `threads` workers.
///
/// Column blocks first: each packs only its part of `b`, so splitting columns costs no extra
/// packing, while every row block packs its part of `b` again. Blocks are at least 128 wide
/// and 128 tall when split (so above `gemm`'s 64 and 256-output special cases), and none is
/// split on one thread. The grid follows the thread count because no grid changes the bits
/// (see [`tiles_keep_bits`]).
fn tile_grid(m: usize, n: usize, threads: usize) -> (usize, usize) {
    if threads <= 1 {
        return (1, 1);
    }
    let cols = if m >= 8 {
        (n / 128).clamp(1, threads)
    } else {
        1
    };
    let rows = threads.div_ceil(cols).min(m / 128).max(1);
    (rows, cols)
}

/// A pointer to an output that parallel tasks write in disjoint blocks.
#[derive(Clone, Copy)]
struct Out<F>(*mut MaybeUninit<F>);
// SAFETY: tasks write only their own blocks of the output (see `gemm_tiles`).
unsafe impl<F: Send> Send for Out<F> {}
// SAFETY: as above; the pointer itself is only read.
unsafe impl<F: Send> Sync for Out<F> {}

impl<F> Out<F> {
    /// The element `offset` places in. A method, so that closures capture the whole `Out` (which
    /// is `Sync`) rather than its raw pointer field.
    ///
    /// # Safety
    /// `offset` must lie inside the output.
    unsafe fn at(self, offset: usize) -> *mut MaybeUninit<F> {
        // SAFETY: the caller's contract.
        unsafe { self.0.add(offset) }
    }
}

/// `op(a) @ op(b)` (`b` with row stride `rrs`, stored `n x k` when `tb`) into `dst`, one
/// sequential `gemm` call per block of a `rows x cols` grid, the blocks in parallel.
///
/// # Safety
/// `dst` holds the `m x n` output with row stride `n`; with `accumulate` it must be initialised.
unsafe fn gemm_tiles<F: Float>(
    dst: &mut [MaybeUninit<F>],
    accumulate: bool,
    a: (&[F], usize, bool),
    b: (&[F], usize, bool),
    (m, k, n): (usize, usize, usize),
    grid: (usize, usize),
) {
    assert!(dst.len() >= m * n, "gemm: destination too small");
    let out = Out(dst.as_mut_ptr());
    // SAFETY: every block lies inside `dst` (asserted above) and no other task writes it; `dst`
    // is a unique borrow, so it overlaps neither operand; the caller's contract covers
    // `accumulate`.
    for_each_block(grid, |t| unsafe {
        gemm_block_of_grid(out, accumulate, a, b, (m, k, n), grid, t)
    });
}

/// Calls `block(t)` for every block `t` of a `rows x cols` grid: in parallel, unless there is
/// only one.
fn for_each_block((rows, cols): (usize, usize), block: impl Fn(usize) + Sync + Send) {
    if rows * cols == 1 {
        block(0);
    } else {
        (0..rows * cols).into_par_iter().for_each(block);
    }
}

/// Block `t` (row-major) of a `rows x cols` grid of the `m x n` product `op(a) @ op(b)` into
/// `out`, as one sequential `gemm` call; with `accumulate`, added to what the block holds.
///
/// # Safety
/// `out` points to the `m x n` output with row stride `n`, which overlaps neither operand, and
/// no other task writes the block; with `accumulate` the block must be initialised.
unsafe fn gemm_block_of_grid<F: Float>(
    out: Out<F>,
    accumulate: bool,
    (a, lrs, ta): (&[F], usize, bool),
    (b, rrs, tb): (&[F], usize, bool),
    (m, k, n): (usize, usize, usize),
    (rows, cols): (usize, usize),
    t: usize,
) {
    let (r, c) = (t / cols, t % cols);
    let (i0, i1) = (r * m / rows, (r + 1) * m / rows);
    let (j0, j1) = (c * n / cols, (c + 1) * n / cols);
    // SAFETY: the block (i0..i1, j0..j1) lies inside the output; the rest is the caller's
    // contract.
    unsafe {
        F::gemm_block(
            out.at(i0 * n + j0),
            n,
            accumulate,
            &a[if ta { i0 } else { i0 * lrs }..],
            lrs,
            ta,
            &b[if tb { j0 * rrs } else { j0 }..],
            rrs,
            tb,
            i1 - i0,
            k,
            j1 - j0,
        )
    }
}

/// The `k x n` row-major transpose of `b`, an `n x k` matrix with row stride `rrs`, in square tiles
/// so that both sides are read and written a cache line at a time.
fn transposed<F: Float>(b: &[F], rrs: usize, n: usize, k: usize) -> Vec<F> {
    const TILE: usize = 32;
    assert!(
        n == 0 || b.len() > (n - 1) * rrs + k.saturating_sub(1),
        "transpose: short operand"
    );
    let tiles = |out: &mut [MaybeUninit<F>]| {
        for i0 in (0..k).step_by(TILE) {
            for j0 in (0..n).step_by(TILE) {
                let j1 = (j0 + TILE).min(n);
                for (i, out_row) in out.chunks_exact_mut(n).enumerate().skip(i0).take(TILE) {
                    for (o, src) in out_row[j0..j1]
                        .iter_mut()
                        .zip(b[j0 * rrs + i..].iter().step_by(rrs))
                    {
                        o.write(*src);
                    }
                }
            }
        }
    };
    // SAFETY: the tiles cover every (i, j) of the k x n output, and each tile row takes all of
    // its j1 - j0 elements (the operand is long enough, asserted above).
    unsafe { filled(k * n, tiles) }
}

/// Output shape of `op(a) @ op(b)` where `op` transposes the last two dimensions when asked.
///
/// # Errors
/// [`EngineError::ShapeMismatch`] for operands below 2-d, inner dimensions that differ, or batch
/// dimensions that do not broadcast.
pub fn matmul_shape(a: &[usize], b: &[usize], ta: bool, tb: bool) -> Result<Vec<usize>> {
    let mismatch = |reason: String| EngineError::ShapeMismatch {
        op: "matmul",
        lhs: a.to_vec(),
        rhs: b.to_vec(),
        reason,
    };
    if a.len() < 2 || b.len() < 2 {
        return Err(mismatch(
            "both operands need at least 2 dimensions (reshape a vector to [1, n] or [n, 1])"
                .into(),
        ));
    }
    let (ar, ac) = (a[a.len() - 2], a[a.len() - 1]);
    let (br, bc) = (b[b.len() - 2], b[b.len() - 1]);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if tb { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(mismatch(format!(
            "inner dimensions differ{}{}: {k} vs {k2}",
            if ta { " (left transposed)" } else { "" },
            if tb { " (right transposed)" } else { "" }
        )));
    }
    let batch = broadcast_shape(&a[..a.len() - 2], &b[..b.len() - 2]).ok_or_else(|| {
        mismatch("the batch dimensions (all but the last two) do not broadcast".into())
    })?;
    let mut out = batch;
    out.push(m);
    out.push(n);
    Ok(out)
}

/// One `m x k` by `k x n` product into `dst` (row stride `n`), split into panels when large.
/// Without `accumulate`, every element of `dst`'s `m x n` block is written and none is read.
///
/// # Safety
/// With `accumulate`, the `m x n` block of `dst` must be initialised ([`Float::gemm_seq`]).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_det<F: Float>(
    dst: &mut [MaybeUninit<F>],
    accumulate: bool,
    a: &[F],
    lrs: usize,
    ta: bool,
    b: &[F],
    rrs: usize,
    tb: bool,
    m: usize,
    k: usize,
    n: usize,
) {
    let macs = m * n * k;
    if (tb && macs < TRANSPOSE_MIN_MACS) || tiles_keep_bits(m, k, n) {
        let threads = workers_for(macs);
        // SAFETY: the caller's contract, passed on.
        return unsafe {
            gemm_tiles(
                dst,
                accumulate,
                (a, lrs, ta),
                (b, rrs, tb),
                (m, k, n),
                tile_grid(m, n, threads),
            )
        };
    }
    if tb {
        // `gemm` would take another path for this shape with the operand stored transposed
        // (see `tiles_keep_bits`): copied to row-major first, once for all the panels.
        let bt = transposed(b, rrs, n, k);
        // SAFETY: the caller's contract, passed on.
        return unsafe { gemm_det(dst, accumulate, a, lrs, ta, &bt, n, false, m, k, n) };
    }
    let p = panel_rows(m, n);
    if m * n * k < PARALLEL_MIN_MACS || m < 2 * p {
        // SAFETY: the caller's contract, passed on.
        unsafe { F::gemm_seq(dst, n, accumulate, a, lrs, ta, b, rrs, tb, m, k, n) };
        return;
    }
    dst[..m * n]
        .par_chunks_mut(p * n)
        .enumerate()
        .for_each(|(c, panel)| {
            let i0 = c * p;
            let rows = panel.len() / n;
            let a_off = if ta { i0 } else { i0 * lrs };
            // SAFETY: the panel is part of `dst`, under the caller's contract.
            unsafe {
                F::gemm_seq(
                    panel,
                    n,
                    accumulate,
                    &a[a_off..],
                    lrs,
                    ta,
                    b,
                    rrs,
                    tb,
                    rows,
                    k,
                    n,
                );
            }
        });
}

/// `op(a) @ op(b)`, batched over leading dimensions with broadcasting.
///
/// # Panics
/// If the shapes do not fit (see [`matmul_shape`]).
pub fn matmul<F: Float>(a: &Tensor<F>, b: &Tensor<F>, ta: bool, tb: bool) -> Tensor<F> {
    product(a, b, ta, tb, None)
}

/// `acc + op(a) @ op(b)`, accumulated by the product kernel itself (no separate sum pass); `acc`
/// must have the product's shape. Its buffer is reused when `acc` is its only owner.
///
/// # Panics
/// If the shapes do not fit (see [`matmul_shape`]) or `acc` has another shape.
pub fn matmul_add<F: Float>(
    acc: Tensor<F>,
    a: &Tensor<F>,
    b: &Tensor<F>,
    ta: bool,
    tb: bool,
) -> Tensor<F> {
    product(a, b, ta, tb, Some(acc))
}

/// [`matmul`] into a new buffer, or accumulated onto `acc`.
fn product<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    ta: bool,
    tb: bool,
    acc: Option<Tensor<F>>,
) -> Tensor<F> {
    let out_shape = matmul_shape(a.shape(), b.shape(), ta, tb).unwrap_or_else(|e| panic!("{e}"));
    let sa = a.shape();
    let k = if ta {
        sa[sa.len() - 2]
    } else {
        sa[sa.len() - 1]
    };
    if let Some(t) = &acc {
        assert_eq!(t.shape(), &out_shape[..], "matmul_add: accumulator shape");
    }
    let len = numel(&out_shape);
    if len == 0 || k == 0 {
        // No output, or sums over an empty inner dimension: the accumulator, or zeros.
        return acc.unwrap_or_else(|| Tensor::zeros(&out_shape));
    }
    let data = match acc {
        Some(t) => {
            let mut data = t.into_vec();
            // SAFETY: `data` is initialised, which accumulating needs, and is only written with
            // values.
            unsafe { write_product(as_slots(&mut data), true, a, b, ta, tb, &out_shape, k) };
            data
        }
        // SAFETY: without accumulating, `write_product` writes every element of the output and
        // reads none.
        None => unsafe {
            filled(len, |out| {
                write_product(out, false, a, b, ta, tb, &out_shape, k)
            })
        },
    };
    Tensor::from_vec(data, &out_shape)
}

/// Writes (or, with `accumulate`, adds) `op(a) @ op(b)` into `out`, every element of an output of
/// `out_shape` (non-empty, inner dimension `k > 0`).
///
/// Batched products run whole matrices per task, in groups of at least [`PARALLEL_MIN_MACS`]
/// multiply-adds, so that small ones (a GPT's per-head attention products) do not cost a task
/// each. Each matrix is one [`gemm_det`] call whatever the grouping, so the bits do not change.
///
/// # Safety
/// With `accumulate`, `out` must be initialised.
#[allow(clippy::too_many_arguments)]
unsafe fn write_product<F: Float>(
    out: &mut [MaybeUninit<F>],
    accumulate: bool,
    a: &Tensor<F>,
    b: &Tensor<F>,
    ta: bool,
    tb: bool,
    out_shape: &[usize],
    k: usize,
) {
    let nd = out_shape.len();
    let (m, n) = (out_shape[nd - 2], out_shape[nd - 1]);
    let (sa, sb) = (a.shape(), b.shape());
    let (lrs, rrs) = (sa[sa.len() - 1], sb[sb.len() - 1]);
    if sb.len() == 2 && !ta {
        // A shared right operand: fold all of a's batch dimensions into rows.
        let rows = a.len() / k;
        // SAFETY: the caller's contract, passed on.
        unsafe {
            gemm_det(
                out,
                accumulate,
                a.data(),
                lrs,
                false,
                b.data(),
                rrs,
                tb,
                rows,
                k,
                n,
            )
        };
        return;
    }
    let batch = &out_shape[..nd - 2];
    let a_mat = sa[sa.len() - 2] * sa[sa.len() - 1];
    let b_mat = sb[sb.len() - 2] * sb[sb.len() - 1];
    let a_bs: Vec<usize> = broadcast_strides(&sa[..sa.len() - 2], batch);
    let b_bs: Vec<usize> = broadcast_strides(&sb[..sb.len() - 2], batch);
    let batch_strides = crate::tensor::strides(batch);
    let (ad, bd) = (a.data(), b.data());
    let one = |(bi, dst): (usize, &mut [MaybeUninit<F>])| {
        let (mut ao, mut bo, mut rem) = (0, 0, bi);
        for d in 0..batch.len() {
            let i = rem / batch_strides[d];
            rem %= batch_strides[d];
            ao += i * a_bs[d];
            bo += i * b_bs[d];
        }
        // SAFETY: `dst` is one matrix of `out`, under the caller's contract.
        unsafe {
            gemm_det(
                dst,
                accumulate,
                &ad[ao * a_mat..],
                lrs,
                ta,
                &bd[bo * b_mat..],
                rrs,
                tb,
                m,
                k,
                n,
            )
        };
    };
    let macs = m * n * k;
    let matrices = out.len() / (m * n);
    if matrices * macs < PARALLEL_MIN_MACS {
        out.chunks_mut(m * n).enumerate().for_each(one);
    } else {
        out.par_chunks_mut(m * n)
            .with_min_len((PARALLEL_MIN_MACS / macs).max(1))
            .enumerate()
            .for_each(one);
    }
}

/// Depths that `gemm` sums in one block, whatever the other dimensions: its cache model never
/// cuts a depth this short (see [`tiles_keep_bits`]).
const ONE_DEPTH_BLOCK: usize = 512;

/// (row blocks, column blocks) for [`matmul_batch_sum`] on `threads` workers: one block per
/// worker, the longer side cut first (columns when square), if every block is a shape whose bits
/// are the whole product's ([`tiles_keep_bits`]), else one block. Finer than [`tile_grid`], whose
/// blocks of at least 128 would leave a weight gradient of `16 x 144` on one thread: each block
/// here sums a whole batch of products. The longer side, because `gemm` runs its kernel over a
/// block's columns 16 at a time: cutting the 16 columns of a transposed `144 x 16` sum in two
/// would leave every call half a kernel wide.
fn batch_sum_grid(m: usize, k: usize, n: usize, threads: usize) -> (usize, usize) {
    if threads <= 1 {
        return (1, 1);
    }
    let smallest_block_keeps_bits =
        |rows: usize, cols: usize| rows <= m && cols <= n && tiles_keep_bits(m / rows, k, n / cols);
    let (by_columns, by_rows) = ((1, threads), (threads, 1));
    let order = if m > n {
        [by_rows, by_columns]
    } else {
        [by_columns, by_rows]
    };
    order
        .into_iter()
        .find(|&(rows, cols)| smallest_block_keeps_bits(rows, cols))
        .unwrap_or((1, 1))
}

/// `sum over i of op(a[i]) @ op(b[i])` for `a`, `b` of one batch dimension each (`[B, ., .]`),
/// bitwise `sum_to(matmul(a, b), [m, n])`, or `None` for shapes on which it might not be.
///
/// Why: a convolution's weight gradient sums one product per image. Formed apart, the products
/// wrote `B` matrices and [`sum_to`](super::sum_to) read them back; here every block of the output
/// adds each image's product as `gemm` forms it.
///
/// Why the bits are those of the sum: `sum_to` adds the products in batch order onto zeros,
/// `((0 + p0) + p1) + ...`, and `gemm` accumulating onto `dst` writes `fma(1, acc, dst)`, that
/// is `dst + acc` rounded once, with `acc` the product's sums; those are the sums of `p_i` when the
/// depth is one block (`k <= ONE_DEPTH_BLOCK`; deeper, `gemm` would add each block onto `dst` in
/// turn) and the blocks of any grid give the bits of the whole product (`tiles_keep_bits`, which
/// also rules out the shapes `gemm` handles with other kernels). `batch_sums_are_the_summed_products`
/// checks it.
///
/// A right operand stored transposed is summed the other way round (see [`sums_transposed`]).
pub fn matmul_batch_sum<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    ta: bool,
    tb: bool,
) -> Option<Tensor<F>> {
    let out_shape = matmul_shape(a.shape(), b.shape(), ta, tb).ok()?;
    batch_sum_of_shape(a, b, ta, tb, &out_shape)
}

/// `sum_to(op(a) @ op(b), shape)`: by [`matmul_batch_sum`] when `shape` is the product's without
/// its batch dimension and the sum keeps the bits, by dot products when it does not but the
/// output is small and both operands run along the depth (`dot_sum_of_shape`), else by forming
/// the product.
///
/// # Panics
/// If the shapes do not fit (see [`matmul_shape`]) or `shape` does not broadcast to the
/// product's.
pub fn matmul_sum_to<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    ta: bool,
    tb: bool,
    shape: &[usize],
) -> Tensor<F> {
    if let Ok(out_shape) = matmul_shape(a.shape(), b.shape(), ta, tb) {
        if out_shape.len() == 3 && shape == &out_shape[1..] {
            if let Some(sum) = batch_sum_of_shape(a, b, ta, tb, &out_shape) {
                return sum;
            }
            if let Some(sum) = dot_sum_of_shape(a, b, ta, tb, &out_shape) {
                return sum;
            }
        }
    }
    super::sum_to(&matmul(a, b, ta, tb), shape)
}

/// The batch sum of the products as dot products ([`dot_sum::batch_dot_sum`]), for the shapes
/// that [`batch_sum_of_shape`] leaves to the composite: both operands 3-d with one batch, the
/// right one stored transposed (both rows run along the depth), few outputs
/// ([`dot_sum::MAX_OUTPUTS`]). Its own order of sums, not the composite's.
fn dot_sum_of_shape<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    ta: bool,
    tb: bool,
    out_shape: &[usize],
) -> Option<Tensor<F>> {
    let batch = one_batch(a.shape(), b.shape())?;
    let (m, n) = (out_shape[1], out_shape[2]);
    if ta || !tb || m * n > dot_sum::MAX_OUTPUTS {
        return None;
    }
    let dims = (batch, m, a.shape()[2], n);
    let data = dot_sum::batch_dot_sum(a.data(), b.data(), dims);
    Some(Tensor::from_vec(data, &[m, n]))
}

/// The batch of two 3-d operands with one batch dimension between them (no broadcasting), the
/// form both batch sums take.
fn one_batch(sa: &[usize], sb: &[usize]) -> Option<usize> {
    (sa.len() == 3 && sb.len() == 3 && sa[0] == sb[0]).then_some(sa[0])
}

/// [`matmul_batch_sum`] given the product's shape `out_shape` (`matmul_shape`'s).
fn batch_sum_of_shape<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    ta: bool,
    tb: bool,
    out_shape: &[usize],
) -> Option<Tensor<F>> {
    let (sa, sb) = (a.shape(), b.shape());
    let batch = one_batch(sa, sb).filter(|&batch| batch > 0)?;
    let (m, n) = (out_shape[1], out_shape[2]);
    let k = if ta { sa[1] } else { sa[2] };
    if !(tiles_keep_bits(m, k, n) && k <= ONE_DEPTH_BLOCK) {
        return None;
    }
    let a = (a.data(), sa[2], ta);
    let b = (b.data(), sb[2], tb);
    let data = if sums_transposed(m, k, n, ta, tb) {
        // (sum op(a_i) @ op(b_i))^T = sum op(b_i)^T @ op(a_i)^T, each operand's transpose being
        // the other flag on the same storage.
        let sum_t = batch_sum((b.0, b.1, !tb), (a.0, a.1, !ta), (batch, n, k, m));
        transposed(&sum_t, m, n, m)
    } else {
        batch_sum(a, b, (batch, m, k, n))
    };
    Some(Tensor::from_vec(data, &[m, n]))
}

/// Whether [`matmul_batch_sum`] forms the `n x m` transpose of its sum, then transposes it.
///
/// Why: `gemm` forms a row-major `op(a) @ op(b)` as `op(b)^T @ op(a)^T` and copies the left
/// operand there, `op(b)^T`, into panels one element at a time unless each of its columns lies
/// contiguous in memory, as they do not when `b` is stored transposed (gemm-common 0.19,
/// `pack_operands.rs`, the `src_rs != 1` loops). A convolution's weight gradient, `g [o, positions]
/// @ cols^T` with `cols` stored `[taps, positions]`, gathered all `taps x positions` elements of
/// every image that way (a tenth of the digits CNN's training step under `perf`); summed the other
/// way round it gathers the `o x positions` of `g` instead, or nothing when `a` is stored
/// transposed. The transposed sums hold the same products added in the same order (a product of
/// two numbers does not depend on their order), so the bits are the same when that shape is one
/// whose blocks keep them too.
fn sums_transposed(m: usize, k: usize, n: usize, ta: bool, tb: bool) -> bool {
    tb && (ta || m < n) && tiles_keep_bits(n, k, m)
}

/// `sum over i of op(a_i) @ op(b_i)`, the `m x n` row-major result of [`matmul_batch_sum`]
/// for operands `(data, row stride, transposed)` of `batch` matrices each, stored one after
/// another.
fn batch_sum<F: Float>(
    (ad, lrs, ta): (&[F], usize, bool),
    (bd, rrs, tb): (&[F], usize, bool),
    (batch, m, k, n): (usize, usize, usize, usize),
) -> Vec<F> {
    let (a_mat, b_mat) = (ad.len() / batch, bd.len() / batch);
    let (rows, cols) = batch_sum_grid(m, k, n, workers_for(batch * m * n * k));
    let mut data = vec![F::ZERO; m * n];
    // SAFETY: `gemm` only writes values into the slots (sums of initialised elements).
    let out = Out(unsafe { as_slots(&mut data) }.as_mut_ptr());
    for_each_block((rows, cols), |t| {
        for i in 0..batch {
            let a_i = &ad[i * a_mat..(i + 1) * a_mat];
            let b_i = &bd[i * b_mat..(i + 1) * b_mat];
            // SAFETY: `out` is the `m x n` output, a buffer of its own, initialised (zeros, then
            // sums); block `t` is this task's alone.
            unsafe {
                gemm_block_of_grid(
                    out,
                    true,
                    (a_i, lrs, ta),
                    (b_i, rrs, tb),
                    (m, k, n),
                    (rows, cols),
                    t,
                )
            }
        }
    });
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_wave as data;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    fn transpose<F: Float>(x: &[F], r: usize, c: usize) -> Vec<F> {
        let mut t = vec![F::ZERO; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = x[i * c + j];
            }
        }
        t
    }

    #[test]
    fn matches_naive_product_with_transposes_and_panels() {
        for &(m, k, n) in &[(3, 4, 5), (1, 7, 1), (200, 96, 130), (70, 0, 3)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 % 13) as f64) - 6.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 5 % 11) as f64) * 0.5).collect();
            let want = naive(&a, &b, m, k, n);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let at = if ta {
                    Tensor::from_vec(transpose(&a, m, k), &[k, m])
                } else {
                    Tensor::from_vec(a.clone(), &[m, k])
                };
                let bt = if tb {
                    Tensor::from_vec(transpose(&b, k, n), &[n, k])
                } else {
                    Tensor::from_vec(b.clone(), &[k, n])
                };
                let c = matmul(&at, &bt, ta, tb);
                assert_eq!(c.shape(), &[m, n]);
                let err = c
                    .data()
                    .iter()
                    .zip(&want)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-9, "({m},{k},{n}) ta={ta} tb={tb}: error {err}");
            }
        }
    }

    #[test]
    fn batched_with_broadcast() {
        let a = Tensor::<f64>::from_vec((0..2 * 3 * 4).map(|i| i as f64).collect(), &[2, 1, 3, 4]);
        let b = Tensor::<f64>::from_vec(
            (0..5 * 4 * 2).map(|i| (i as f64) * 0.1).collect(),
            &[5, 4, 2],
        );
        let c = matmul(&a, &b, false, false);
        assert_eq!(c.shape(), &[2, 5, 3, 2]);
        for i in 0..2 {
            for j in 0..5 {
                let want = naive(
                    &a.data()[i * 12..(i + 1) * 12],
                    &b.data()[j * 8..(j + 1) * 8],
                    3,
                    4,
                    2,
                );
                let got = &c.data()[(i * 5 + j) * 6..(i * 5 + j + 1) * 6];
                assert!(
                    got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12),
                    "{got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn panel_height_keeps_the_bits() {
        // What `panel_rows` relies on: for n > 64 a product's bits do not depend on how many rows
        // each sequential `gemm` call takes, with k below and above gemm's 512 depth block.
        for (m, k, n) in [(1024, 1024, 96), (600, 1500, 65), (300, 200, 130)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 97) as f32).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 17 % 89) as f32).cos()).collect();
            let run = |p: usize| {
                let mut d = vec![0f32; m * n];
                // SAFETY: `d` is initialised and only written with values.
                let slots = unsafe { as_slots(&mut d) };
                for (c, panel) in slots.chunks_mut(p * n).enumerate() {
                    let rows = panel.len() / n;
                    // SAFETY: no accumulation, so nothing is read from `panel`.
                    unsafe {
                        f32::gemm_seq(
                            panel,
                            n,
                            false,
                            &a[c * p * k..],
                            k,
                            false,
                            &b,
                            n,
                            false,
                            rows,
                            k,
                            n,
                        )
                    };
                }
                d.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            let whole = run(m);
            for p in [32, 64, 128, 256] {
                assert_eq!(run(p), whole, "{m}x{k}x{n} in panels of {p} rows");
            }
        }
    }

    #[test]
    fn batched_small_products_keep_their_bits_in_any_grouping() {
        // Below and above the size from which batches run in parallel groups of matrices: every
        // matrix has the bits of the same product taken alone, on 1 thread or 3.
        for (batch, m, k, n) in [(48, 24, 8, 24), (160, 40, 16, 40)] {
            let a = Tensor::<f32>::from_vec(
                (0..batch * m * k)
                    .map(|i| ((i * 31 % 97) as f32).sin())
                    .collect(),
                &[batch, m, k],
            );
            let b = Tensor::<f32>::from_vec(
                (0..batch * k * n)
                    .map(|i| ((i * 17 % 89) as f32).cos())
                    .collect(),
                &[batch, n, k],
            );
            let alone: Vec<u32> = (0..batch)
                .flat_map(|i| {
                    let ai =
                        Tensor::from_vec(a.data()[i * m * k..(i + 1) * m * k].to_vec(), &[m, k]);
                    let bi =
                        Tensor::from_vec(b.data()[i * k * n..(i + 1) * k * n].to_vec(), &[n, k]);
                    matmul(&ai, &bi, false, true)
                        .data()
                        .iter()
                        .map(|x| x.to_bits())
                        .collect::<Vec<_>>()
                })
                .collect();
            for t in [1, 3] {
                let c = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
                    .install(|| matmul(&a, &b, false, true));
                let bits: Vec<u32> = c.data().iter().map(|x| x.to_bits()).collect();
                assert!(bits == alone, "{batch}x{m}x{k}x{n} on {t} threads");
            }
        }
    }

    #[test]
    fn accumulating_and_empty_inner_products() {
        let a =
            Tensor::<f64>::from_vec((0..2 * 3 * 4).map(|i| i as f64 * 0.5).collect(), &[2, 3, 4]);
        let b = Tensor::<f64>::from_vec(
            (0..2 * 4 * 5).map(|i| (i as f64).cos()).collect(),
            &[2, 4, 5],
        );
        let acc =
            Tensor::<f64>::from_vec((0..2 * 3 * 5).map(|i| i as f64 - 7.0).collect(), &[2, 3, 5]);
        let sum = matmul_add(acc.clone(), &a, &b, false, false);
        let product = matmul(&a, &b, false, false);
        for ((s, p), c) in sum.data().iter().zip(product.data()).zip(acc.data()) {
            assert!((s - (p + c)).abs() < 1e-12, "{s} vs {p} + {c}");
        }
        // An empty inner dimension: zeros, or the accumulator unchanged.
        let (a0, b0) = (
            Tensor::<f64>::zeros(&[2, 3, 0]),
            Tensor::<f64>::zeros(&[2, 0, 5]),
        );
        let zeros = matmul(&a0, &b0, false, false);
        assert_eq!(zeros.shape(), &[2, 3, 5]);
        assert!(zeros.data().iter().all(|&x| x == 0.0));
        assert!(matmul_add(acc.clone(), &a0, &b0, false, false).bitwise_eq(&acc));
    }

    /// `matmul_batch_sum` against `sum_to(matmul(..))` bit for bit, on 1 to 3 threads, on the
    /// digits CNN's weight gradients (`g [B, o, oh ow] @ cols^T`), the other layouts, a batch of
    /// one and shapes just inside the rules; and `None` just outside them.
    #[test]
    fn small_weight_gradients_are_dot_products_close_to_the_summed_products() {
        // A convolution's weight gradient with 9 taps on 28x28 and 8x8 images, and two shapes
        // that stay with the composite (a left operand stored transposed; too many outputs).
        for (batch, m, k, n) in [(64, 16, 784, 9), (64, 16, 64, 9), (4, 40, 30, 40)] {
            let a = Tensor::from_vec(data(batch * m * k, 1), &[batch, m, k]);
            let b = Tensor::from_vec(data(batch * n * k, 2), &[batch, n, k]);
            let got = matmul_sum_to(&a, &b, false, true, &[m, n]);
            let composite = super::super::sum_to(&matmul(&a, &b, false, true), &[m, n]);
            let dots = dot_sum::batch_dot_sum(a.data(), b.data(), (batch, m, k, n));
            if m * n <= dot_sum::MAX_OUTPUTS {
                assert_eq!(got.data(), &dots[..], "{m} x {n}: not the dot products");
            } else {
                assert!(got.bitwise_eq(&composite), "{m} x {n}: not the composite");
            }
            let scale = (batch * k) as f32;
            for (x, y) in got.data().iter().zip(composite.data()) {
                assert!((x - y).abs() <= 1e-6 * scale, "{x} vs {y}");
            }
        }
        let (a, b) = (
            Tensor::from_vec(data(4 * 16 * 16, 3), &[4, 16, 16]),
            Tensor::from_vec(data(4 * 9 * 16, 4), &[4, 9, 16]),
        );
        let composite = super::super::sum_to(&matmul(&a, &b, true, true), &[16, 9]);
        assert!(matmul_sum_to(&a, &b, true, true, &[16, 9]).bitwise_eq(&composite));
    }

    #[test]
    fn batch_sums_are_the_summed_products() {
        let operands = |(batch, m, k, n): (usize, usize, usize, usize), ta: bool, tb: bool| {
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            (
                Tensor::from_vec(data(batch * ar * ac, 1), &[batch, ar, ac]),
                Tensor::from_vec(data(batch * br * bc, 2), &[batch, br, bc]),
            )
        };
        let pool = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        let summed = [
            (64, 16, 64, 9),
            (64, 16, 64, 144),
            (64, 32, 64, 288),
            (64, 32, 16, 288),
            (64, 16, 16, 144),
            (64, 300, 16, 20),
            (3, 40, 512, 300),
            (1, 20, 30, 40),
            (5, 300, 100, 200),
        ];
        for shape in summed {
            for (ta, tb) in [(false, true), (false, false), (true, false), (true, true)] {
                let (a, b) = operands(shape, ta, tb);
                let (_, m, _, n) = shape;
                let expected =
                    pool(1).install(|| super::super::sum_to(&matmul(&a, &b, ta, tb), &[m, n]));
                for t in [1, 2, 3] {
                    let got = pool(t).install(|| matmul_batch_sum(&a, &b, ta, tb));
                    let want_some = {
                        let k = shape.2;
                        tiles_keep_bits(m, k, n) && k <= ONE_DEPTH_BLOCK
                    };
                    match got {
                        Some(got) => assert!(
                            got.bitwise_eq(&expected),
                            "{shape:?} ta {ta} tb {tb} on {t} threads"
                        ),
                        None => assert!(!want_some, "{shape:?}: refused a shape it may sum"),
                    }
                }
            }
        }
        // A depth of two blocks, too few outputs, and a row vector: not summed here.
        for shape in [(4, 32, 513, 288), (4, 8, 16, 16), (4, 1, 64, 288)] {
            let (a, b) = operands(shape, false, true);
            assert!(matmul_batch_sum(&a, &b, false, true).is_none(), "{shape:?}");
        }
    }

    #[test]
    fn bitwise_identical_across_thread_counts() {
        let (m, k, n) = (300, 257, 190);
        let a = Tensor::<f32>::from_vec(
            (0..m * k).map(|i| ((i * 31 % 97) as f32).sin()).collect(),
            &[m, k],
        );
        let b = Tensor::<f32>::from_vec(
            (0..k * n).map(|i| ((i * 17 % 89) as f32).cos()).collect(),
            &[k, n],
        );
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| matmul(&a, &b, false, false))
        };
        let one = run(1);
        for t in [2, 3, 4] {
            assert!(one.bitwise_eq(&run(t)), "{t} threads differ from 1");
        }
    }

    /// Bits of `op(a) @ op(b)` on `threads` workers, accumulated onto `acc` when given.
    fn product_bits<F: Float>(
        (a, ta): (&Tensor<F>, bool),
        (b, tb): (&Tensor<F>, bool),
        acc: Option<&Tensor<F>>,
        threads: usize,
    ) -> Vec<u64> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| match acc {
                Some(c) => matmul_add(c.clone(), a, b, ta, tb),
                None => matmul(a, b, ta, tb),
            })
            .data()
            .iter()
            .map(|x| x.to_bits_u64())
            .collect()
    }

    /// Bits of the kernel before tiles: row panels of `panel_rows` rows (one call when small)
    /// on the row-major `b` (`k x n`), accumulated onto `acc` when given.
    fn row_panel_bits<F: Float>(
        (a, ta): (&Tensor<F>, bool),
        b: &Tensor<F>,
        acc: Option<&Tensor<F>>,
    ) -> Vec<u64> {
        let (k, n) = (b.shape()[0], b.shape()[1]);
        let (lrs, m) = (a.shape()[1], if ta { a.shape()[1] } else { a.shape()[0] });
        let p = panel_rows(m, n);
        let rows = if m * n * k < PARALLEL_MIN_MACS || m < 2 * p {
            m
        } else {
            p
        };
        let mut d = acc.map_or_else(|| vec![F::ZERO; m * n], |c| c.data().to_vec());
        // SAFETY: `d` is initialised and only written with values.
        for (c, panel) in unsafe { as_slots(&mut d) }.chunks_mut(rows * n).enumerate() {
            let a_off = if ta { c * rows } else { c * rows * lrs };
            // SAFETY: `panel` is initialised, which accumulating needs.
            unsafe {
                F::gemm_seq(
                    panel,
                    n,
                    acc.is_some(),
                    &a.data()[a_off..],
                    lrs,
                    ta,
                    b.data(),
                    n,
                    false,
                    panel.len() / n,
                    k,
                    n,
                )
            };
        }
        d.iter().map(|x| x.to_bits_u64()).collect()
    }

    fn tiles_keep_the_bits_of_the_row_panels_in<F: Float>() {
        // Every product, tiled or not, whatever the thread count or explicit grid, has the bits
        // of the row panels the kernel ran before (on a row-major copy of a transposed right
        // operand): both layouts of each operand, accumulating or not. Shapes: wide, narrow,
        // deep (k > 512, `gemm`'s depth block), few rows (column blocks only), last panels of
        // one row (129 = 4 x 32 + 1, 97 = 3 x 32 + 1) and of two, and the special shapes.
        // (m, k, n, whether tiles keep the bits there).
        let shapes = [
            (256, 512, 512, true),
            (300, 600, 130, true),
            (200, 100, 64, true),
            (64, 64, 64, true),
            (64, 16, 64, true),
            (8, 700, 256, true),
            (2, 50, 200, true),
            (130, 33, 257, true),
            (129, 33, 257, false),
            (97, 700, 300, false),
            (1, 300, 300, false),
            (300, 1000, 40, false),
            (40, 2, 900, false),
            (600, 80, 7, false),
            (16, 300, 16, false),
        ];
        for (m, k, n, expected) in shapes {
            assert_eq!(tiles_keep_bits(m, k, n), expected, "{m}x{k}x{n}");
            let val = |i: usize, p: usize, q: usize| F::from_f64(((i * p % q) as f64).sin());
            let a = Tensor::<F>::from_vec((0..m * k).map(|i| val(i, 31, 97)).collect(), &[m, k]);
            let at = Tensor::from_vec(transpose(a.data(), m, k), &[k, m]);
            let b = Tensor::<F>::from_vec((0..k * n).map(|i| val(i, 17, 89)).collect(), &[k, n]);
            let bt = Tensor::from_vec(transpose(b.data(), k, n), &[n, k]);
            let c = Tensor::<F>::from_vec((0..m * n).map(|i| val(i, 7, 83)).collect(), &[m, n]);
            for (lhs, ta) in [(&a, false), (&at, true)] {
                for acc in [None, Some(&c)] {
                    let want = row_panel_bits((lhs, ta), &b, acc);
                    for (rhs, tb) in [(&b, false), (&bt, true)] {
                        for threads in [1, 2, 3, 5] {
                            assert!(
                                product_bits((lhs, ta), (rhs, tb), acc, threads) == want,
                                "{} {m}x{k}x{n} ta={ta} tb={tb} accumulating={} on {threads} threads",
                                F::NAME,
                                acc.is_some()
                            );
                        }
                    }
                }
            }
            if expected {
                // Grids that no thread count above produces.
                let want = row_panel_bits((&a, false), &b, None);
                for (rows, cols) in [(1, 1), (1, 2), (2, 1), (2, 3), (4, 4)] {
                    if (rows > 1 && m / rows < 128) || (cols > 1 && (n / cols < 128 || m < 8)) {
                        continue;
                    }
                    for (rhs, tb) in [(&b, false), (&bt, true)] {
                        let mut d = vec![F::ZERO; m * n];
                        // SAFETY: `d` is initialised and only written with values.
                        unsafe {
                            gemm_tiles(
                                as_slots(&mut d),
                                false,
                                (a.data(), k, false),
                                (rhs.data(), if tb { k } else { n }, tb),
                                (m, k, n),
                                (rows, cols),
                            )
                        };
                        let got: Vec<u64> = d.iter().map(|x| x.to_bits_u64()).collect();
                        assert!(
                            got == want,
                            "{} {m}x{k}x{n} tb={tb} in a {rows}x{cols} grid",
                            F::NAME
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tiles_keep_the_bits_of_the_row_panels() {
        tiles_keep_the_bits_of_the_row_panels_in::<f32>();
        tiles_keep_the_bits_of_the_row_panels_in::<f64>();
    }

    #[test]
    fn tile_grids_split_columns_first_and_stay_above_gemms_special_sizes() {
        assert_eq!(tile_grid(256, 512, 1), (1, 1));
        assert_eq!(tile_grid(256, 512, 2), (1, 2));
        assert_eq!(tile_grid(256, 512, 16), (2, 4));
        assert_eq!(tile_grid(2048, 64, 2), (2, 1));
        assert_eq!(tile_grid(4, 4096, 8), (1, 1));
        for (m, n, t) in [(129, 257, 7), (300, 130, 3), (1000, 1000, 64), (8, 700, 4)] {
            let (rows, cols) = tile_grid(m, n, t);
            assert!(rows * cols <= t.max(1) * 2);
            assert!(
                rows == 1 || m / rows >= 128,
                "{m}x{n} on {t}: {rows} row blocks"
            );
            assert!(
                cols == 1 || (n / cols >= 128 && m >= 8),
                "{m}x{n} on {t}: {cols} column blocks"
            );
        }
    }
}
