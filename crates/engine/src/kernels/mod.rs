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

/// Calls `f(out_index, offset_a)` for every element of `out_shape` in row-major order, where
/// `offset_a` follows `strides_a` (a stride of 0 repeats an element: broadcasting).
#[inline]
pub(crate) fn walk1(out_shape: &[usize], sa: &[usize], mut f: impl FnMut(usize, usize)) {
    let nd = out_shape.len();
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return;
    }
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
    let nd = out_shape.len();
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return;
    }
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
