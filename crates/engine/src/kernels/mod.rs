//! Plain-tensor kernels. Every kernel is deterministic: each output element is produced by one
//! sequence of floating-point operations in a fixed order, whatever the number of threads.

pub mod broadcast;
pub mod conv;
mod dot_sum;
pub mod layout;
pub mod matmul;
pub mod norm;
pub mod normal;
pub mod softmax;
pub mod unary;

pub use broadcast::{binary, broadcast_shape, broadcast_to, sum_axes, sum_to};
pub use conv::{fold2d, fold2d_t, unfold2d, unfold2d_t, Conv2dGeometry};
pub use layout::{concat, index_add, index_select, narrow, pad_narrow, permute};
pub use matmul::{matmul, matmul_add, matmul_batch_sum, matmul_shape, matmul_sum_to};
pub use unary::{Order, Pair, Unary};

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buffer::filled;
use crate::Float;

/// Outputs (or, for reductions, inputs) below this many elements are computed on the calling
/// thread: below it a parallel split costs more than it saves.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// About this many elements make one parallel task.
const TASK_ELEMENTS: usize = 1 << 13;

/// Rows of `n` elements per parallel task: about [`TASK_ELEMENTS`] elements, at least one row.
fn rows_per_task(n: usize) -> usize {
    (TASK_ELEMENTS / n.max(1)).max(1)
}

/// An output of `len` elements made of rows of `n`, filled by `f(first_row, slots)`: `slots` holds
/// whole rows, from row `first_row` on, uninitialised (`crate::buffer`). Outputs of
/// `parallel_min` elements or more (callers pass [`PARALLEL_MIN_ELEMENTS`]; tests, other splits)
/// are filled by parallel tasks of about [`TASK_ELEMENTS`] elements. `f` must compute each
/// element alone, so that the split, and with it the thread count, changes no bit.
///
/// # Safety
/// `f` must write every element of the slots it is given.
pub(crate) unsafe fn fill_rows<F: Send>(
    len: usize,
    n: usize,
    parallel_min: usize,
    f: impl Fn(usize, &mut [MaybeUninit<F>]) + Sync,
) -> Vec<F> {
    if len == 0 || n == 0 {
        return Vec::new();
    }
    let per = rows_per_task(n);
    let fill = |out: &mut [MaybeUninit<F>]| {
        if len < parallel_min {
            f(0, out);
        } else {
            out.par_chunks_mut(per * n)
                .enumerate()
                .for_each(|(t, chunk)| f(t * per, chunk));
        }
    };
    // SAFETY: the chunks cover the output and `f` writes each (the caller's contract).
    unsafe { filled(len, fill) }
}

/// Defines a function whose body is compiled three times, for AVX-512, AVX2 (both with FMA) and
/// the baseline SSE2, and run in the widest this CPU has (checked at run time, an atomic load:
/// call it per task or per row, not per element). Generic loops over `f32` then run 16 lanes wide
/// rather than 4. The bits are the same on all three: Rust never reassociates floating-point
/// additions nor fuses a multiply and an add on its own, so a wider vector only does more of the
/// same exactly rounded lane operations at once (the loops use only additions, multiplications,
/// divisions, comparisons, bit operations and explicit `mul_add`s, each exactly rounded per lane;
/// a `mul_add` is one instruction where FMA is enabled and a correctly rounded `fma` call in the
/// SSE2 build, slow but with the same bits). Generic parameters, if any, are written
/// `<F: Float>`; closure arguments as `impl Fn(..)` types.
macro_rules! simd_fn {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $crate::kernels::simd_fn! {
            $(#[$meta])*
            $vis fn $name<>($($arg: $ty),*) $(-> $ret)? $body
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<$($g:ident: $bound:path),*>($($arg:ident: $ty:ty),* $(,)?)
            $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                fn avx512<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
                    portable($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
                    portable($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features the function was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// The sum of `f(a[i], b[i])` over the whole groups of `L` elements of two rows of one length, in
/// `L` interleaved partial sums (lane `j` adds terms `j`, `j + L`, ...) combined pairwise (lane `j`
/// with `j + L / 2`, then `j + L / 4`, ...), and the two rows' elements past the last group: the
/// core of the row sums ([`norm::lane_sum_zip`], `broadcast::row_sum`), an order fixed by the row
/// length alone that the compiler can keep in vector registers.
#[inline(always)]
fn lane_groups<'r, const L: usize, F: Float>(
    a: &'r [F],
    b: &'r [F],
    f: &impl Fn(F, F) -> F,
) -> (F, &'r [F], &'r [F]) {
    assert_eq!(a.len(), b.len(), "lane sums of rows of two lengths");
    let mut lanes = [F::ZERO; L];
    let (ga, gb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ta, tb) = (ga.remainder(), gb.remainder());
    for (xa, xb) in ga.zip(gb) {
        for j in 0..L {
            lanes[j] += f(xa[j], xb[j]);
        }
    }
    (pairwise_sum(lanes), ta, tb)
}

/// The `L` lanes of interleaved partial sums added pairwise: lane `j` with `j + L / 2`, then
/// `j + L / 4`, ... (`L` a power of two): the combination step of [`lane_groups`] and of
/// `dot_sum`'s dot products.
#[inline(always)]
fn pairwise_sum<const L: usize, F: Float>(mut lanes: [F; L]) -> F {
    let mut width = L;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            lanes[j] += lanes[j + width];
        }
    }
    lanes[0]
}

/// A deterministic test signal: `sin(0.37 ((7 i + 13 seed) mod 101))` for `i < len`.
#[cfg(test)]
fn test_wave(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7 + seed * 13) % 101) as f32 * 0.37).sin())
        .collect()
}

/// Drops the size-1 dimensions of `shape` and merges each pair of adjacent dimensions that every
/// stride list steps through as one (`s[d] == s[d + 1] * shape[d + 1]`): the walks below then visit
/// the same offsets in the same order, with longer inner runs and fewer odometer steps.
fn collapse<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
) -> (Vec<usize>, [Vec<usize>; N]) {
    let mut dims: Vec<usize> = Vec::with_capacity(shape.len());
    let mut st: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(shape.len()));
    for (d, &n) in shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let merge = !dims.is_empty() && (0..N).all(|k| st[k][st[k].len() - 1] == strides[k][d] * n);
        if merge {
            *dims.last_mut().expect("not empty") *= n;
            for k in 0..N {
                *st[k].last_mut().expect("not empty") = strides[k][d];
            }
        } else {
            dims.push(n);
            for k in 0..N {
                st[k].push(strides[k][d]);
            }
        }
    }
    (dims, st)
}

/// Calls `f(offsets, steps, len)` for every innermost row of `out_shape` in row-major order (after
/// [`collapse`]): the row's elements are `offsets[k] + t * steps[k]` for `t` in `0..len` in each of
/// the `N` strided operands (a stride of 0 repeats an element: broadcasting). The rows tile the
/// output in order, so the output index of a row's first element is the sum of the earlier `len`s.
#[inline]
pub(crate) fn walk_rows<const N: usize>(
    out_shape: &[usize],
    strides: [&[usize]; N],
    mut f: impl FnMut([usize; N], [usize; N], usize),
) {
    if out_shape.contains(&0) {
        return;
    }
    let (out_shape, st) = collapse(out_shape, strides);
    let nd = out_shape.len();
    if nd == 0 {
        f([0; N], [0; N], 1);
        return;
    }
    let inner = out_shape[nd - 1];
    let steps: [usize; N] = std::array::from_fn(|k| st[k][nd - 1]);
    let mut idx = vec![0usize; nd];
    let mut base = [0usize; N];
    loop {
        f(base, steps, inner);
        // advance the odometer over the outer dimensions
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            for k in 0..N {
                base[k] += st[k][d];
            }
            if idx[d] < out_shape[d] {
                break;
            }
            for k in 0..N {
                base[k] -= st[k][d] * out_shape[d];
            }
            idx[d] = 0;
        }
    }
}
