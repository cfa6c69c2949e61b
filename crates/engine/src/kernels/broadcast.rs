//! Broadcasting elementwise binary kernels and their adjoint, the sum back to a shape.
//!
//! Broadcasting follows NumPy: shapes are aligned on the right, and a dimension of 1 (or a missing
//! leading dimension) repeats.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::tensor::{numel, strides};
use crate::{Float, Tensor};

use super::{fill_rows, lane_groups, rows_per_task, simd_fn, walk_rows, PARALLEL_MIN_ELEMENTS};

/// The broadcast shape of two shapes, or `None` when they are incompatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let nd = a.len().max(b.len());
    let mut out = vec![0; nd];
    for i in 0..nd {
        let da = if i + a.len() >= nd {
            a[i + a.len() - nd]
        } else {
            1
        };
        let db = if i + b.len() >= nd {
            b[i + b.len() - nd]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides of `shape` read inside `out` (right-aligned, 0 on broadcast dimensions).
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                st[i - off]
            }
        })
        .collect()
}

/// `f(a, b)` elementwise with broadcasting.
///
/// # Panics
/// If the shapes cannot be broadcast together.
pub fn binary<F: Float>(a: &Tensor<F>, b: &Tensor<F>, f: impl Fn(F, F) -> F + Sync) -> Tensor<F> {
    binary_split(a, b, f, PARALLEL_MIN_ELEMENTS)
}

/// [`binary`], in parallel tasks from `parallel_min` output elements on (a parameter so that the
/// tests can compare every split with none).
fn binary_split<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    f: impl Fn(F, F) -> F + Sync,
    parallel_min: usize,
) -> Tensor<F> {
    if a.shape() == b.shape() {
        return a.zip_map(b, f);
    }
    let out = broadcast_shape(a.shape(), b.shape()).unwrap_or_else(|| {
        panic!(
            "cannot broadcast shapes {:?} and {:?}",
            a.shape(),
            b.shape()
        )
    });
    let (ad, bd) = (a.data(), b.data());
    // Fast path: one operand repeats along leading dimensions only (bias add, row scaling).
    let data = if b.shape() == &out[..] && out.ends_with(a.shape()) && !a.is_empty() {
        repeated_rows(bd, ad, parallel_min, |y, x| f(x, y))
    } else if a.shape() == &out[..] && out.ends_with(b.shape()) && !b.is_empty() {
        repeated_rows(ad, bd, parallel_min, &f)
    } else {
        let (sa, sb) = (
            broadcast_strides(a.shape(), &out),
            broadcast_strides(b.shape(), &out),
        );
        // SAFETY: the walk's rows tile the task's slots in order (`walk_rows`).
        unsafe {
            fill_slabs(&out, parallel_min, |first, sub, slots| {
                let (ad, bd) = (&ad[first * sa[0]..], &bd[first * sb[0]..]);
                let mut pos = 0;
                walk_rows(sub, [&sa, &sb], |[i, j], steps, len| {
                    let o = &mut slots[pos..pos + len];
                    pos += len;
                    match steps {
                        [1, 0] => {
                            for (o, &x) in o.iter_mut().zip(&ad[i..i + len]) {
                                o.write(f(x, bd[j]));
                            }
                        }
                        [0, 1] => {
                            for (o, &y) in o.iter_mut().zip(&bd[j..j + len]) {
                                o.write(f(ad[i], y));
                            }
                        }
                        [1, 1] => {
                            for (o, (&x, &y)) in
                                o.iter_mut().zip(ad[i..i + len].iter().zip(&bd[j..j + len]))
                            {
                                o.write(f(x, y));
                            }
                        }
                        [si, sj] => {
                            for (t, o) in o.iter_mut().enumerate() {
                                o.write(f(ad[i + t * si], bd[j + t * sj]));
                            }
                        }
                    }
                });
            })
        }
    };
    Tensor::from_vec(data, &out)
}

/// `f(full[r * n + j], row[j])` for every row `r` of `full`, where `n = row.len() > 0`: the fast
/// path of [`binary`] when one operand repeats along leading dimensions only.
fn repeated_rows<F: Float>(
    full: &[F],
    row: &[F],
    parallel_min: usize,
    f: impl Fn(F, F) -> F + Sync,
) -> Vec<F> {
    let n = row.len();
    // SAFETY: every row of the slots is written, from the matching row of `full`.
    unsafe {
        fill_rows(full.len(), n, parallel_min, |first, slots| {
            for (o, xs) in slots.chunks_mut(n).zip(full[first * n..].chunks(n)) {
                for ((o, &x), &y) in o.iter_mut().zip(xs).zip(row) {
                    o.write(f(x, y));
                }
            }
        })
    }
}

/// An output of shape `out` (at least one dimension) filled in slabs along its leading
/// dimension: `f(first, sub, slots)` writes the slabs `first..first + sub[0]`, whose shape is
/// `sub` (`out` with its leading dimension cut to the task's), into `slots`, row-major.
///
/// # Safety
/// `f` must write every element of `slots`.
unsafe fn fill_slabs<F: Float>(
    out: &[usize],
    parallel_min: usize,
    f: impl Fn(usize, &[usize], &mut [MaybeUninit<F>]) + Sync,
) -> Vec<F> {
    let slab = numel(&out[1..]);
    // SAFETY: `sub` covers exactly the slabs of `slots`, and `f` writes them all.
    unsafe {
        fill_rows(numel(out), slab, parallel_min, |first, slots| {
            let mut sub = out.to_vec();
            sub[0] = slots.len() / slab;
            f(first, &sub, slots);
        })
    }
}

/// Repeats `x` to `shape` (NumPy broadcasting).
///
/// # Panics
/// If `x` cannot be broadcast to `shape`.
pub fn broadcast_to<F: Float>(x: &Tensor<F>, shape: &[usize]) -> Tensor<F> {
    broadcast_to_split(x, shape, PARALLEL_MIN_ELEMENTS)
}

/// [`broadcast_to`] in parallel tasks from `parallel_min` output elements on.
fn broadcast_to_split<F: Float>(x: &Tensor<F>, shape: &[usize], parallel_min: usize) -> Tensor<F> {
    if x.shape() == shape {
        return x.clone();
    }
    assert!(
        broadcast_shape(x.shape(), shape).as_deref() == Some(shape),
        "cannot broadcast {:?} to {shape:?}",
        x.shape()
    );
    if let Some([_, an, bn, cn]) = interleaved_blocks(shape, x.shape()) {
        // Output row `r = p * A + a` of `B * C` elements repeats each `x[p * B + b]` `C` times.
        // SAFETY: every row of the slots is written, `C` elements per element of `x`'s row.
        let data = unsafe {
            fill_rows(numel(shape), bn * cn, parallel_min, |first, slots| {
                for (r, row) in (first..).zip(slots.chunks_mut(bn * cn)) {
                    let src = &x.data()[r / an * bn..][..bn];
                    if cn == 2 {
                        for (o, &v) in row.chunks_exact_mut(2).zip(src) {
                            o[0].write(v);
                            o[1].write(v);
                        }
                    } else {
                        for (o, &v) in row.chunks_exact_mut(cn).zip(src) {
                            o.iter_mut().for_each(|o| {
                                o.write(v);
                            });
                        }
                    }
                }
            })
        };
        return Tensor::from_vec(data, shape);
    }
    let sx = broadcast_strides(x.shape(), shape);
    // SAFETY: the walk's rows tile the task's slots in order (`walk_rows`).
    let data = unsafe {
        fill_slabs(shape, parallel_min, |first, sub, slots| {
            let xd = &x.data()[first * sx[0]..];
            let mut pos = 0;
            walk_rows(sub, [&sx], |[i], [step], len| {
                let o = &mut slots[pos..pos + len];
                pos += len;
                match step {
                    0 => o.iter_mut().for_each(|o| {
                        o.write(xd[i]);
                    }),
                    1 => {
                        for (o, &v) in o.iter_mut().zip(&xd[i..i + len]) {
                            o.write(v);
                        }
                    }
                    _ => {
                        for (t, o) in o.iter_mut().enumerate() {
                            o.write(xd[i + t * step]);
                        }
                    }
                }
            });
        })
    };
    Tensor::from_vec(data, shape)
}

/// Sums `x` down to `shape`, the adjoint of [`broadcast_to`]: every dimension that `shape` lacks or
/// holds as 1 is summed. Each output element adds its inputs in increasing index order, except
/// that an innermost run of 32 or more contiguous inputs to one output is added by [`row_sum`].
///
/// # Panics
/// If `shape` does not broadcast to `x`'s shape.
pub fn sum_to<F: Float>(x: &Tensor<F>, shape: &[usize]) -> Tensor<F> {
    sum_to_split(x, shape, PARALLEL_MIN_ELEMENTS)
}

/// [`sum_to`], split over output elements into parallel tasks from `parallel_min` input elements
/// on. Every output element is still computed by one task, in the same order, so the split
/// changes no bit.
fn sum_to_split<F: Float>(x: &Tensor<F>, shape: &[usize], parallel_min: usize) -> Tensor<F> {
    if x.shape() == shape {
        return x.clone();
    }
    assert!(
        broadcast_shape(shape, x.shape()).as_deref() == Some(x.shape()),
        "cannot sum {:?} down to {shape:?}",
        x.shape()
    );
    let mut out = vec![F::ZERO; numel(shape)];
    let xd = x.data();
    let parallel = xd.len() >= parallel_min;
    // Outputs per task: about `TASK_ELEMENTS` inputs.
    let per_task = |outputs: usize| rows_per_task(xd.len() / outputs.max(1));
    if let Some((pre, mid, post)) = reduced_block(x.shape(), shape).filter(|_| !out.is_empty()) {
        // One contiguous block of dimensions reduced (leading ones: a bias gradient; middle ones:
        // the same for each of k tangents): add whole rows in order, as the walk below would.
        debug_assert_eq!(out.len(), pre * post);
        if post == 1 {
            // Reduced innermost dimensions (a mean over the last axis): one sum per output, in
            // the order of `row_sum`, as the walk below would add the row.
            let sums = |first: usize, o: &mut [F]| {
                for (r, o) in (first..).zip(o) {
                    *o = row_sum(*o, &xd[r * mid..(r + 1) * mid]);
                }
            };
            if parallel {
                let per = per_task(out.len());
                out.par_chunks_mut(per)
                    .enumerate()
                    .for_each(|(t, o)| sums(t * per, o));
            } else {
                sums(0, &mut out);
            }
            return Tensor::from_vec(out, shape);
        }
        // Output `p * post + q` adds `x[(p * mid + r) * post + q]` for `r = 0, 1, ...`; a task takes
        // a run of columns `q` of one block `p`.
        let columns = |p: usize, q0: usize, o: &mut [F]| {
            column_sums(&xd[p * mid * post..(p + 1) * mid * post], post, q0, o);
        };
        column_runs(
            &mut out,
            post,
            parallel.then_some(per_task),
            COLUMN_BLOCK,
            columns,
        );
        return Tensor::from_vec(out, shape);
    }
    if let Some([_, an, bn, cn]) = interleaved_blocks(x.shape(), shape) {
        // Output `p * B + b` adds the rows `x[((p * A + a) * B + b) * C..][..C]` for `a = 0, 1, ...`,
        // each by `row_sum`, as the walk below would; without the walk's step per row of `C`,
        // which for a 2x2 average pool (`C = 2`) costs more than the additions.
        let sums = |p: usize, b0: usize, o: &mut [F]| {
            let first = (p * an * bn + b0) * cn;
            interleaved_sums(&xd[first..], [an, bn, cn], o);
        };
        column_runs(&mut out, bn, parallel.then_some(per_task), 1, sums);
        return Tensor::from_vec(out, shape);
    }
    walk_sum(x, shape, parallel, out)
}

/// Computes `out`, blocks of `cols` outputs, by `f(block, first_column, outputs)`: on this thread
/// when `per_task` is `None`; otherwise in parallel tasks of `per_task(blocks)` whole blocks, or,
/// when there is one block, of runs of `per_task(cols)` columns (at least `min_width`).
/// `per_task(outputs)` is the number of outputs that make one task's worth of inputs. Each output
/// is computed by one call, so the split changes no bit.
fn column_runs<F: Float>(
    out: &mut [F],
    cols: usize,
    per_task: Option<impl Fn(usize) -> usize>,
    min_width: usize,
    f: impl Fn(usize, usize, &mut [F]) + Sync,
) {
    let blocks = out.len() / cols;
    match per_task {
        None => {
            for (p, o) in out.chunks_mut(cols).enumerate() {
                f(p, 0, o);
            }
        }
        Some(per_task) if blocks > 1 => {
            out.par_chunks_mut(cols)
                .with_min_len(per_task(blocks))
                .enumerate()
                .for_each(|(p, o)| f(p, 0, o));
        }
        Some(per_task) => {
            let width = per_task(cols).max(min_width);
            out.par_chunks_mut(width)
                .enumerate()
                .for_each(|(t, o)| f(0, t * width, o));
        }
    }
}

/// The general path of [`sum_to`]: adds every input into `out` (zeros of `shape`'s size) along
/// a walk of `x` in increasing index order, in parallel tasks over the first kept dimension when
/// `parallel`.
fn walk_sum<F: Float>(
    x: &Tensor<F>,
    shape: &[usize],
    parallel: bool,
    mut out: Vec<F>,
) -> Tensor<F> {
    let (full, xd) = (x.shape(), x.data());
    let per_task = |outputs: usize| rows_per_task(xd.len() / outputs.max(1));
    let so = broadcast_strides(shape, full);
    let sx = strides(full);
    // The first dimension of `x` that `shape` keeps (size above 1): the outputs with index `c`
    // there are one contiguous block of `so[k]`, since every dimension of `shape` before it is 1.
    let kept = (0..full.len()).find(|&d| so[d] != 0);
    let add_rows = |sub: &[usize], xd: &[F], out: &mut [F]| {
        // Rows of the walk in increasing index order of x: each output adds its inputs in that
        // order. An innermost contiguous run into one output is one `row_sum`, as in a walk of
        // the whole of x; a strided run into one output (a task that holds one index of an
        // innermost kept dimension) was, in that walk, single additions in this order.
        walk_rows(sub, [&sx, &so], |[i, o], [step_x, step_o], len| {
            match (step_x, step_o) {
                (1, 0) => out[o] = row_sum(out[o], &xd[i..i + len]),
                (_, 0) => out[o] = (0..len).fold(out[o], |acc, t| acc + xd[i + t * step_x]),
                _ => {
                    for t in 0..len {
                        out[o + t * step_o] += xd[i + t * step_x];
                    }
                }
            }
        });
    };
    match kept {
        Some(k) if parallel => {
            let per = per_task(full[k]);
            out.par_chunks_mut(per * so[k])
                .enumerate()
                .for_each(|(t, o)| {
                    let mut sub = full.to_vec();
                    sub[k] = o.len() / so[k];
                    add_rows(&sub, &xd[t * per * sx[k]..], o);
                });
        }
        _ => add_rows(full, xd, &mut out),
    }
    Tensor::from_vec(out, shape)
}

/// `sum_to(x * y, shape)` for `x`, `y` of one shape, with the bits of that composite: when
/// [`sum_to`] would take its `[P,] A, B, C` path with `P = 1` (a group norm's `gamma` gradient,
/// `[b, c, h, w]` down to `[c, 1, 1]`), the products are added as they are formed, in the same
/// order, instead of being stored first; otherwise the composite itself.
pub fn sum_products_to<F: Float>(x: &Tensor<F>, y: &Tensor<F>, shape: &[usize]) -> Tensor<F> {
    sum_products_to_split(x, y, shape, PARALLEL_MIN_ELEMENTS)
}

/// [`sum_products_to`] in parallel tasks from `parallel_min` input elements on.
fn sum_products_to_split<F: Float>(
    x: &Tensor<F>,
    y: &Tensor<F>,
    shape: &[usize],
    parallel_min: usize,
) -> Tensor<F> {
    assert_eq!(x.shape(), y.shape(), "sum_products_to of two shapes");
    let Some([1, an, bn, cn]) = interleaved_blocks(x.shape(), shape) else {
        return sum_to_split(&x.zip_map(y, |a, b| a * b), shape, parallel_min);
    };
    let (xd, yd) = (x.data(), y.data());
    let mut out = vec![F::ZERO; bn];
    let per_task = |outputs: usize| rows_per_task(xd.len() / outputs.max(1));
    column_runs(
        &mut out,
        bn,
        (xd.len() >= parallel_min).then_some(per_task),
        1,
        |_, b0, o| interleaved_product_sums(xd, yd, [an, bn, cn], b0, o),
    );
    Tensor::from_vec(out, shape)
}

/// Columns summed side by side by [`column_sums`]: four AVX-512 registers of `f32`, so that four
/// sums are in flight while each addition waits on the last one of its column (4 cycles).
const COLUMN_BLOCK: usize = 4 * SUM_LANES;

simd_fn! {
    /// Adds to each `o[j]` the column `q0 + j` of the rows of `post` elements that make up
    /// `block`, row after row: the order of the walk in [`sum_to`].
    ///
    /// Why blocks of columns kept in a local array across all the rows: adding each row into `o`
    /// in memory stored and reloaded every partial sum once per row, and tasks of 16 columns had
    /// each row's addition wait on the previous one's, so a GPT's bias and layer-norm gradients
    /// (`[2016, 64] -> [64]`) took about 100 us instead of 10.
    fn column_sums<F: Float>(block: &[F], post: usize, q0: usize, o: &mut [F]) {
        let done = sum_column_blocks::<F, COLUMN_BLOCK>(block, post, q0, o);
        let done = done + sum_column_blocks::<F, SUM_LANES>(block, post, q0 + done, &mut o[done..]);
        let (j0, rest) = (q0 + done, &mut o[done..]);
        for row in block.chunks_exact(post) {
            for (o, &v) in rest.iter_mut().zip(&row[j0..]) {
                *o += v;
            }
        }
    }
}

/// [`column_sums`] of the whole blocks of `B` columns at the start of `o`; returns how many
/// columns that was.
#[inline(always)]
fn sum_column_blocks<F: Float, const B: usize>(
    block: &[F],
    post: usize,
    q0: usize,
    o: &mut [F],
) -> usize {
    let mut j0 = q0;
    for out in o.chunks_exact_mut(B) {
        let mut sums = [F::ZERO; B];
        sums.copy_from_slice(out);
        for row in block.chunks_exact(post) {
            for (s, &v) in sums.iter_mut().zip(&row[j0..j0 + B]) {
                *s += v;
            }
        }
        out.copy_from_slice(&sums);
        j0 += B;
    }
    j0 - q0
}

simd_fn! {
    /// [`interleaved_sums`] of the products `x[i] * y[i]`, for outputs `b0..` of a `P = 1` sum.
    fn interleaved_product_sums<F: Float>(
        x: &[F],
        y: &[F],
        dims: [usize; 3],
        b0: usize,
        o: &mut [F],
    ) {
        let [an, bn, cn] = dims;
        for a in 0..an {
            for (j, o) in o.iter_mut().enumerate() {
                let first = (a * bn + b0 + j) * cn;
                let (xr, yr) = (&x[first..first + cn], &y[first..first + cn]);
                *o = row_sum_zip(*o, xr, yr, |a, b| a * b);
            }
        }
    }
}

simd_fn! {
    /// Adds to each `o[b]` the rows `x[(a * B + b) * C..][..C]` for `a = 0, 1, ...` (`dims` is
    /// `[A, B, C]`), each by [`row_sum`]: outputs `b0..` of one `p` of the fast path in
    /// [`sum_to`], `x` starting at that `(p, b0)`.
    fn interleaved_sums<F: Float>(x: &[F], dims: [usize; 3], o: &mut [F]) {
        let [an, bn, cn] = dims;
        for a in 0..an {
            let rows = &x[a * bn * cn..][..o.len() * cn];
            if cn == 2 {
                // The 2x2 pool's rows, unrolled: the same two additions as `row_sum`.
                for (o, pair) in o.iter_mut().zip(rows.chunks_exact(2)) {
                    *o = *o + pair[0] + pair[1];
                }
            } else {
                for (o, row) in o.iter_mut().zip(rows.chunks_exact(cn)) {
                    *o = row_sum(*o, row);
                }
            }
        }
    }
}

/// Lanes of [`row_sum`].
const SUM_LANES: usize = 16;

/// `init` plus the sum of `xs`, in an order fixed by `xs.len()` alone: rows shorter than
/// `2 * SUM_LANES` one element after another; longer ones in `SUM_LANES` interleaved partial sums
/// (lane `j` adds `xs[j]`, `xs[j + 16]`, ...) combined pairwise (lane `j` with `j + 8`, then `j + 4`,
/// ...), then the elements past the last whole group. One running sum is one dependent addition
/// per element; sixteen independent ones vectorise, and give the same bits on every machine and
/// thread count.
#[inline]
fn row_sum<F: Float>(init: F, xs: &[F]) -> F {
    row_sum_zip(init, xs, xs, |x, _| x)
}

/// [`row_sum`] of the terms `f(a[i], b[i])` of two rows of one length, computed as they are
/// added (a product of two rows without storing it): the same additions in the same order, so
/// the same bits.
#[inline(always)]
fn row_sum_zip<F: Float>(init: F, a: &[F], b: &[F], f: impl Fn(F, F) -> F) -> F {
    assert_eq!(a.len(), b.len(), "row_sum_zip of rows of two lengths");
    if a.len() < 2 * SUM_LANES {
        return a.iter().zip(b).fold(init, |acc, (&x, &y)| acc + f(x, y));
    }
    let (sum, ta, tb) = lane_groups::<SUM_LANES, F>(a, b, &f);
    ta.iter()
        .zip(tb)
        .fold(init + sum, |acc, (&x, &y)| acc + f(x, y))
}

/// For a sum of `x` (shape `full`) down to `shape` that reduces one contiguous block of dimensions,
/// `(pre, mid, post)`: the element counts before, inside and after the block.
fn reduced_block(full: &[usize], shape: &[usize]) -> Option<(usize, usize, usize)> {
    let pad = full.len().checked_sub(shape.len())?;
    let dim = |i: usize| if i < pad { 1 } else { shape[i - pad] };
    let differs: Vec<usize> = (0..full.len()).filter(|&i| dim(i) != full[i]).collect();
    let (&first, &last) = (differs.first()?, differs.last()?);
    if (first..=last).any(|i| dim(i) != 1) {
        return None;
    }
    let prod = |r: std::ops::Range<usize>| full[r].iter().product::<usize>();
    Some((
        prod(0..first),
        prod(first..last + 1),
        prod(last + 1..full.len()),
    ))
}

/// For `small` broadcast to `full`, whose dimensions, once those of size 1 are dropped and
/// neighbours of the same kind merged, are `[kept P,] repeated A, kept B, repeated C` (kept: of the
/// same size in `small`; repeated: of size 1 there or missing): `[P, A, B, C]`, `P = 1` when
/// absent. A 2x2 average pool's windows (`[.., oh, 2, ow, 2]` against `[.., oh, 1, ow, 1]`) and a
/// convolution's bias (`[b, o, h * w]` against `[o, 1]`) have this form.
fn interleaved_blocks(full: &[usize], small: &[usize]) -> Option<[usize; 4]> {
    let pad = full.len().checked_sub(small.len())?;
    let mut runs: Vec<(bool, usize)> = Vec::with_capacity(full.len());
    for (i, &n) in full.iter().enumerate() {
        match n {
            0 => return None,
            1 => continue,
            _ => {}
        }
        let kept = i >= pad && small[i - pad] == n;
        match runs.last_mut() {
            Some((k, m)) if *k == kept => *m *= n,
            _ => runs.push((kept, n)),
        }
    }
    match runs[..] {
        [(false, a), (true, b), (false, c)] => Some([1, a, b, c]),
        [(true, p), (false, a), (true, b), (false, c)] => Some([p, a, b, c]),
        _ => None,
    }
}

/// Sums over `axes`, keeping them as size-1 dimensions when `keepdim`.
///
/// # Panics
/// If an axis is out of range.
pub fn sum_axes<F: Float>(x: &Tensor<F>, axes: &[usize], keepdim: bool) -> Tensor<F> {
    let mut kept = x.shape().to_vec();
    for &a in axes {
        assert!(
            a < kept.len(),
            "sum over axis {a} of a {}-d tensor",
            kept.len()
        );
        kept[a] = 1;
    }
    let summed = sum_to(x, &kept);
    if keepdim {
        summed
    } else {
        let shape: Vec<usize> = x
            .shape()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        summed.reshape(&shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented order of `row_sum`, written out plainly.
    fn lanes_then_tail(init: f64, xs: &[f64]) -> f64 {
        if xs.len() < 32 {
            return xs.iter().fold(init, |a, &v| a + v);
        }
        let whole = xs.len() / 16 * 16;
        let mut l = [0.0f64; 16];
        for (i, &v) in xs[..whole].iter().enumerate() {
            l[i % 16] += v;
        }
        for w in [8, 4, 2, 1] {
            for j in 0..w {
                l[j] += l[j + w];
            }
        }
        xs[whole..].iter().fold(init + l[0], |a, &v| a + v)
    }

    #[test]
    fn row_sums_follow_their_documented_order() {
        let mut rng = crate::Rng::new(4);
        for len in [0, 1, 17, 31, 32, 33, 47, 48, 100, 1000] {
            let xs: Vec<f64> = (0..len).map(|_| rng.normal() * 1e3).collect();
            let got = row_sum(0.25, &xs);
            assert_eq!(
                got.to_bits(),
                lanes_then_tail(0.25, &xs).to_bits(),
                "len {len}"
            );
            let exact: f64 = 0.25 + xs.iter().sum::<f64>();
            assert!(
                (got - exact).abs() <= 1e-9 * (1.0 + exact.abs()),
                "len {len}"
            );
        }
    }

    #[test]
    fn broadcast_and_sum_to_are_adjoint() {
        // <broadcast_to(x), y> == <x, sum_to(y)> for every pair of shapes tried.
        let cases: &[(&[usize], &[usize])] = &[
            (&[3], &[2, 3]),
            (&[2, 1], &[2, 3]),
            (&[1, 3, 1], &[2, 3, 4]),
            (&[], &[2, 2]),
            (&[4, 1, 2], &[4, 3, 2]),
        ];
        for &(small, big) in cases {
            let x =
                Tensor::<f64>::from_vec((0..numel(small)).map(|i| 0.5 + i as f64).collect(), small);
            let y =
                Tensor::<f64>::from_vec((0..numel(big)).map(|i| (i as f64).sin()).collect(), big);
            let lhs = broadcast_to(&x, big).dot_f64(&y);
            let rhs = x.dot_f64(&sum_to(&y, small));
            assert!(
                (lhs - rhs).abs() < 1e-12,
                "{small:?} -> {big:?}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn broadcast_to_and_binary_read_the_elements_numpy_reads() {
        // Every output element against its operands' elements found from its multi-index.
        let cases: [(&[usize], &[usize]); 8] = [
            (&[2, 3, 1, 4, 1], &[1, 1, 2, 1, 3]),
            (&[3, 1, 5, 1], &[1, 4, 1, 1]),
            (&[2, 4, 3, 3], &[4, 1, 1]),
            (&[2, 4, 6], &[2, 4, 1]),
            (&[2, 1, 3], &[4, 1]),
            (&[1, 5], &[3, 1]),
            (&[3, 1, 2, 1], &[1, 4, 1, 5]),
            (&[2, 3], &[]),
        ];
        let at = |shape: &[usize], out: &[usize], flat: usize| {
            let (pad, mut rem, mut o, mut stride) = (out.len() - shape.len(), flat, 0, 1);
            for i in (0..out.len()).rev() {
                let idx = rem % out[i];
                rem /= out[i];
                if i >= pad {
                    let d = shape[i - pad];
                    o += if d == 1 { 0 } else { idx } * stride;
                    stride *= d;
                }
            }
            o
        };
        for (sa, sb) in cases {
            let a = Tensor::<f64>::from_vec((0..numel(sa)).map(|i| 1.5 + i as f64).collect(), sa);
            let b = Tensor::<f64>::from_vec((0..numel(sb)).map(|i| (i as f64).cos()).collect(), sb);
            let out = broadcast_shape(sa, sb).unwrap();
            let c = binary(&a, &b, |x, y| x * 3.0 - y);
            let c2 = binary(&b, &a, |y, x| x * 3.0 - y);
            let ba = broadcast_to(&a, &out);
            for flat in 0..numel(&out) {
                let (x, y) = (a.data()[at(sa, &out, flat)], b.data()[at(sb, &out, flat)]);
                assert_eq!(
                    c.data()[flat].to_bits(),
                    (x * 3.0 - y).to_bits(),
                    "{sa:?} {sb:?}"
                );
                assert_eq!(
                    c2.data()[flat].to_bits(),
                    (x * 3.0 - y).to_bits(),
                    "{sa:?} {sb:?}"
                );
                assert_eq!(ba.data()[flat], x, "{sa:?} -> {out:?}");
            }
        }
    }

    #[test]
    fn parallel_tasks_change_no_bit_of_binary_or_broadcast_to() {
        // Shapes large enough to split into many tasks, in every path: bias rows either way
        // round, a group-norm affine, leading and middle repeats, a scalar, a 1-d output.
        let cases: [(&[usize], &[usize]); 8] = [
            (&[512], &[256, 512]),
            (&[256, 512], &[512]),
            (&[64, 16, 28, 28], &[16, 1, 1]),
            (&[64, 1, 600], &[3, 1]),
            (&[1, 100, 200], &[20, 1, 200]),
            (&[300, 200], &[]),
            (&[50_000], &[1]),
            (&[64, 16, 14, 1, 14, 1], &[1, 1, 1, 2, 1, 2]),
        ];
        let mut rng = crate::Rng::new(11);
        let mut random = |shape: &[usize]| {
            let data = (0..numel(shape)).map(|_| rng.normal() as f32).collect();
            Tensor::<f32>::from_vec(data, shape)
        };
        let bits = |t: &Tensor<f32>| t.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (sa, sb) in cases {
            let (a, b) = (random(sa), random(sb));
            let f = |x: f32, y: f32| x * 1.25 - y;
            let one = binary_split(&a, &b, f, usize::MAX);
            assert_eq!(
                bits(&one),
                bits(&binary_split(&a, &b, f, 0)),
                "{sa:?} {sb:?}"
            );
            let out = one.shape().to_vec();
            for x in [&a, &b] {
                let whole = broadcast_to_split(x, &out, usize::MAX);
                let split = broadcast_to_split(x, &out, 0);
                assert_eq!(bits(&whole), bits(&split), "{:?} -> {out:?}", x.shape());
            }
        }
    }

    #[test]
    fn binary_broadcasts_like_numpy() {
        let a = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2, 1]);
        let b = Tensor::<f64>::from_vec(vec![10.0, 20.0, 30.0], &[3]);
        let c = binary(&a, &b, |x, y| x + y);
        assert_eq!(c.shape(), &[2, 3]);
        assert_eq!(c.data(), &[11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
        assert_eq!(sum_axes(&c, &[0], false).data(), &[23.0, 43.0, 63.0]);
        assert_eq!(sum_axes(&c, &[1], true).shape(), &[2, 1]);
    }
}

#[cfg(test)]
mod sum_to_tests {
    use super::*;

    /// `sum_to` by definition: every input element added to the output element it broadcasts
    /// from, in increasing input index order.
    fn naive(x: &Tensor<f64>, shape: &[usize]) -> Vec<f64> {
        let full = x.shape();
        let pad = full.len() - shape.len();
        let mut out = vec![0.0; numel(shape)];
        for (flat, &v) in x.data().iter().enumerate() {
            let (mut rem, mut o, mut stride) = (flat, 0, 1);
            for i in (0..full.len()).rev() {
                let idx = rem % full[i];
                rem /= full[i];
                if i >= pad {
                    let d = shape[i - pad];
                    o += if d == 1 { 0 } else { idx } * stride;
                    stride *= d;
                }
            }
            out[o] += v;
        }
        out
    }

    #[test]
    fn every_reduction_pattern_gives_the_bits_of_the_definition() {
        let cases: [(&[usize], &[usize]); 9] = [
            (&[2, 3, 4], &[2, 3, 1]),
            (&[2, 4, 3, 3], &[4, 1, 1]),
            (&[2, 4, 3, 3], &[2, 4, 1, 1]),
            (&[2, 3, 4], &[2, 1, 4]),
            (&[2, 3, 4], &[4]),
            (&[2, 3, 4], &[3, 1]),
            (&[2, 3, 4, 5], &[2, 1, 1, 5]),
            (&[2, 3, 4, 5], &[2, 1, 4, 1]),
            (&[3, 4], &[1, 1]),
        ];
        for (full, shape) in cases {
            let n = numel(full);
            let x = Tensor::from_vec((0..n).map(|i| (i as f64 * 0.77).sin()).collect(), full);
            let got = sum_to(&x, shape);
            let want = naive(&x, shape);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got.data()), bits(&want), "{full:?} -> {shape:?}");
        }
    }

    #[test]
    fn the_interleaved_fast_path_adds_as_the_general_walk_does() {
        // `[P,] A, B, C` sums, with `C` short (a sequential fold) and long (`row_sum`'s lanes),
        // against the general walk they bypass; and shapes of other forms, which take the walk.
        let cases: [(&[usize], &[usize], bool); 7] = [
            (&[2, 3, 2, 4, 2], &[2, 3, 1, 4, 1], true),
            (&[3, 2, 5, 2], &[3, 1, 5, 1], true),
            (&[4, 7, 40], &[7, 1], true),
            (&[2, 1, 3, 5, 1, 70], &[2, 1, 1, 5, 1, 1], true),
            (&[2, 3, 4], &[2, 1, 4], false),
            (&[2, 3, 4, 5], &[3, 1, 5], false),
            (&[2, 0, 3], &[0, 1], false),
        ];
        let mut rng = crate::Rng::new(13);
        for (full, shape, fast) in cases {
            assert_eq!(
                interleaved_blocks(full, shape).is_some(),
                fast,
                "{full:?} -> {shape:?}"
            );
            let x = Tensor::<f32>::from_vec(
                (0..numel(full)).map(|_| rng.normal() as f32).collect(),
                full,
            );
            let got = sum_to_split(&x, shape, usize::MAX);
            let walked = walk_sum(&x, shape, false, vec![0.0; numel(shape)]);
            let bits = |t: &Tensor<f32>| t.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&walked), "{full:?} -> {shape:?}");
        }
    }

    #[test]
    fn summed_products_give_the_bits_of_the_stored_products_summed() {
        // The `P = 1` form with short and long rows, split into tasks and not, and shapes of
        // other forms (which store the products): against `sum_to(x * y)`.
        let cases: [(&[usize], &[usize]); 6] = [
            (&[64, 16, 28, 28], &[16, 1, 1]),
            (&[3, 5, 2, 2], &[5, 1, 1]),
            (&[7, 4, 40], &[4, 1]),
            (&[1, 16, 5, 5], &[16, 1, 1]),
            (&[3, 1, 4, 4], &[1, 1, 1]),
            (&[2, 3, 4], &[2, 1, 4]),
        ];
        let mut rng = crate::Rng::new(14);
        let mut random = |shape: &[usize]| {
            let data = (0..numel(shape)).map(|_| rng.normal() as f32).collect();
            Tensor::<f32>::from_vec(data, shape)
        };
        let bits = |t: &Tensor<f32>| t.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (full, shape) in cases {
            let (x, y) = (random(full), random(full));
            let want = bits(&sum_to(&x.zip_map(&y, |a, b| a * b), shape));
            for parallel_min in [0, usize::MAX] {
                let got = sum_products_to_split(&x, &y, shape, parallel_min);
                assert_eq!(bits(&got), want, "{full:?} -> {shape:?}");
            }
        }
    }

    #[test]
    fn parallel_tasks_change_no_bit_of_sum_to() {
        // Inputs large enough to split, in every path: innermost rows (post == 1), a bias
        // gradient (pre == 1, split by columns), middle blocks (pre > 1), and the general walk
        // with its first kept dimension split one index or several per task, its innermost
        // dimension kept or reduced.
        let cases: [(&[usize], &[usize]); 10] = [
            (&[40, 1024], &[40, 1]),
            (&[1024, 40], &[40]),
            (&[256, 512], &[512]),
            (&[300, 50, 7], &[300, 1, 7]),
            (&[64, 16, 28, 28], &[16, 1, 1]),
            (&[3, 40, 70, 33], &[40, 1, 1]),
            (&[50, 300, 7], &[1, 300, 1]),
            (&[5, 64, 3, 200], &[1, 64, 1, 200]),
            (&[64, 16, 14, 2, 14, 2], &[64, 16, 14, 1, 14, 1]),
            (&[64, 16, 784], &[16, 1]),
        ];
        let mut rng = crate::Rng::new(12);
        for (full, shape) in cases {
            let data = (0..numel(full)).map(|_| rng.normal()).collect();
            let x = Tensor::<f64>::from_vec(data, full);
            let one = sum_to_split(&x, shape, usize::MAX);
            let split = sum_to_split(&x, shape, 0);
            let bits = |t: &Tensor<f64>| t.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one), bits(&split), "{full:?} -> {shape:?}");
            // And the sums are the sums (row_sum reorders runs of 32 or more).
            for (&got, want) in one.data().iter().zip(naive(&x, shape)) {
                assert!(
                    (got - want).abs() <= 1e-10 * (1.0 + want.abs()),
                    "{full:?} -> {shape:?}"
                );
            }
        }
    }

    #[test]
    fn column_sums_add_the_rows_in_order() {
        // Widths with whole blocks of 64 and of 16 columns and leftovers, sequential and split
        // into tasks; f32, so that any other order of the additions would show in the bits. (One
        // column is a contiguous run, which `row_sum` adds in its own order, as documented.)
        let mut rng = crate::Rng::new(13);
        for cols in [2, 15, 16, 17, 63, 64, 65, 80, 97, 150, 256, 300] {
            let rows = 700;
            let data: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
            let x = Tensor::from_vec(data.clone(), &[rows, cols]);
            let want: Vec<u32> = (0..cols)
                .map(|j| {
                    (0..rows)
                        .fold(0.0f32, |acc, r| acc + data[r * cols + j])
                        .to_bits()
                })
                .collect();
            for parallel_min in [0, usize::MAX] {
                let got = sum_to_split(&x, &[cols], parallel_min);
                let got: Vec<u32> = got.data().iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "{rows} x {cols}, parallel_min {parallel_min}");
            }
        }
    }
}
