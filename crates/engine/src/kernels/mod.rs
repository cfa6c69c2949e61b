//! Plain-tensor kernels. Every kernel is deterministic: each output element is produced by one
//! sequence of floating-point operations in a fixed order, whatever the number of threads.

pub mod broadcast;
pub mod conv;
pub mod layout;
pub mod matmul;
pub mod unary;

pub use broadcast::{binary, broadcast_shape, broadcast_to, sum_axes, sum_to};
pub use conv::{fold2d, unfold2d, Conv2dGeometry};
pub use layout::{concat, index_add, index_select, narrow, pad_narrow, permute};
pub use matmul::{matmul, matmul_add, matmul_shape};
pub use unary::{Order, Pair, Unary};

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

/// Calls `f(out_index, offset_a)` for every element of `out_shape` in row-major order, where
/// `offset_a` follows `strides_a` (a stride of 0 repeats an element: broadcasting).
#[inline]
pub(crate) fn walk1(out_shape: &[usize], sa: &[usize], mut f: impl FnMut(usize, usize)) {
    if out_shape.contains(&0) {
        return;
    }
    let (out_shape, [sa]) = collapse(out_shape, [sa]);
    let (out_shape, sa) = (&out_shape[..], &sa[..]);
    let nd = out_shape.len();
    if nd == 0 {
        f(0, 0);
        return;
    }
    let inner = out_shape[nd - 1];
    let ia = sa[nd - 1];
    let mut idx = vec![0usize; nd];
    let mut base_a = 0usize;
    let mut o = 0usize;
    loop {
        let mut a = base_a;
        for _ in 0..inner {
            f(o, a);
            o += 1;
            a += ia;
        }
        // advance the odometer over the outer dimensions
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            base_a += sa[d];
            if idx[d] < out_shape[d] {
                break;
            }
            base_a -= sa[d] * out_shape[d];
            idx[d] = 0;
        }
    }
}

/// Like [`walk1`] with two inputs.
#[inline]
pub(crate) fn walk2(
    out_shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    if out_shape.contains(&0) {
        return;
    }
    let (out_shape, [sa, sb]) = collapse(out_shape, [sa, sb]);
    let (out_shape, sa, sb) = (&out_shape[..], &sa[..], &sb[..]);
    let nd = out_shape.len();
    if nd == 0 {
        f(0, 0, 0);
        return;
    }
    let inner = out_shape[nd - 1];
    let (ia, ib) = (sa[nd - 1], sb[nd - 1]);
    let mut idx = vec![0usize; nd];
    let (mut base_a, mut base_b) = (0usize, 0usize);
    let mut o = 0usize;
    loop {
        let (mut a, mut b) = (base_a, base_b);
        for _ in 0..inner {
            f(o, a, b);
            o += 1;
            a += ia;
            b += ib;
        }
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            base_a += sa[d];
            base_b += sb[d];
            if idx[d] < out_shape[d] {
                break;
            }
            base_a -= sa[d] * out_shape[d];
            base_b -= sb[d] * out_shape[d];
            idx[d] = 0;
        }
    }
}
