//! Data-movement kernels: permutation, concatenation, slicing and row gathers, each with its adjoint.

use crate::tensor::{numel, strides};
use crate::{Float, Tensor};

use super::walk_rows;

/// Reorders dimensions: output dimension `i` is input dimension `perm[i]`.
///
/// # Panics
/// If `perm` is not a permutation of `0..ndim`.
pub fn permute<F: Float>(x: &Tensor<F>, perm: &[usize]) -> Tensor<F> {
    let nd = x.ndim();
    let mut seen = vec![false; nd];
    assert!(
        perm.len() == nd
            && perm
                .iter()
                .all(|&p| p < nd && !std::mem::replace(&mut seen[p], true)),
        "{perm:?} is not a permutation of the {nd} dimensions of {:?}",
        x.shape()
    );
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return x.clone();
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let st = strides(x.shape());
    let src_strides: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let xd = x.data();
    let mut data = Vec::with_capacity(x.len());
    walk_rows(&out_shape, [&src_strides], |[i], [step], len| match step {
        1 => data.extend_from_slice(&xd[i..i + len]),
        _ => data.extend((0..len).map(|t| xd[i + t * step])),
    });
    Tensor::from_vec(data, &out_shape)
}

/// Splits a shape around `axis` into (outer count, axis length, inner count).
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

/// Joins tensors along `axis`; all other dimensions must agree.
///
/// # Panics
/// If `parts` is empty or the shapes disagree off `axis`.
pub fn concat<F: Float>(parts: &[&Tensor<F>], axis: usize) -> Tensor<F> {
    assert!(!parts.is_empty(), "concat of nothing");
    let first = parts[0].shape();
    assert!(
        axis < first.len(),
        "concat along axis {axis} of a {}-d tensor",
        first.len()
    );
    let mut out_shape = first.to_vec();
    out_shape[axis] = 0;
    for p in parts {
        let s = p.shape();
        assert!(
            s.len() == first.len() && (0..s.len()).all(|d| d == axis || s[d] == first[d]),
            "concat along axis {axis}: shape {s:?} does not match {first:?}"
        );
        out_shape[axis] += s[axis];
    }
    let (outer, _, inner) = split_at_axis(&out_shape, axis);
    let mut data = Vec::with_capacity(numel(&out_shape));
    for o in 0..outer {
        for p in parts {
            let block = p.shape()[axis] * inner;
            data.extend_from_slice(&p.data()[o * block..(o + 1) * block]);
        }
    }
    Tensor::from_vec(data, &out_shape)
}

/// Elements `start..start + len` along `axis`.
///
/// # Panics
/// If the range leaves the dimension.
pub fn narrow<F: Float>(x: &Tensor<F>, axis: usize, start: usize, len: usize) -> Tensor<F> {
    let (outer, dim, inner) = split_at_axis(x.shape(), axis);
    assert!(
        start + len <= dim,
        "narrow {start}..{} of axis {axis} with length {dim}",
        start + len
    );
    let mut out_shape = x.shape().to_vec();
    out_shape[axis] = len;
    let mut data = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let base = (o * dim + start) * inner;
        data.extend_from_slice(&x.data()[base..base + len * inner]);
    }
    Tensor::from_vec(data, &out_shape)
}

/// The adjoint of [`narrow`]: places `g` at `start` along `axis` in zeros of length `dim`.
///
/// # Panics
/// If `g` does not fit.
pub fn pad_narrow<F: Float>(g: &Tensor<F>, axis: usize, start: usize, dim: usize) -> Tensor<F> {
    let (outer, len, inner) = split_at_axis(g.shape(), axis);
    assert!(
        start + len <= dim,
        "pad {len} elements at {start} into {dim}"
    );
    let mut out_shape = g.shape().to_vec();
    out_shape[axis] = dim;
    let mut data = vec![F::ZERO; outer * dim * inner];
    for o in 0..outer {
        let dst = (o * dim + start) * inner;
        data[dst..dst + len * inner]
            .copy_from_slice(&g.data()[o * len * inner..(o + 1) * len * inner]);
    }
    Tensor::from_vec(data, &out_shape)
}

/// Picks entries `idx` along `axis` (an embedding lookup when `axis == 0`).
///
/// # Panics
/// If an index is out of range.
pub fn index_select<F: Float>(x: &Tensor<F>, axis: usize, idx: &[usize]) -> Tensor<F> {
    let (outer, dim, inner) = split_at_axis(x.shape(), axis);
    let mut out_shape = x.shape().to_vec();
    out_shape[axis] = idx.len();
    let mut data = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            assert!(
                i < dim,
                "index {i} out of range for axis {axis} of length {dim}"
            );
            let base = (o * dim + i) * inner;
            data.extend_from_slice(&x.data()[base..base + inner]);
        }
    }
    Tensor::from_vec(data, &out_shape)
}

/// The adjoint of [`index_select`]: adds the slices of `g` into zeros of length `dim` at `idx`,
/// in the order of `idx` (repeated indices accumulate).
///
/// # Panics
/// If an index is out of range or `g` has the wrong length along `axis`.
pub fn index_add<F: Float>(g: &Tensor<F>, axis: usize, idx: &[usize], dim: usize) -> Tensor<F> {
    let (outer, n, inner) = split_at_axis(g.shape(), axis);
    assert_eq!(
        n,
        idx.len(),
        "index_add: {n} slices for {} indices",
        idx.len()
    );
    let mut out_shape = g.shape().to_vec();
    out_shape[axis] = dim;
    let mut data = vec![F::ZERO; outer * dim * inner];
    for o in 0..outer {
        for (k, &i) in idx.iter().enumerate() {
            assert!(
                i < dim,
                "index {i} out of range for axis {axis} of length {dim}"
            );
            let src = &g.data()[(o * n + k) * inner..(o * n + k + 1) * inner];
            let dst = &mut data[(o * dim + i) * inner..(o * dim + i + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    }
    Tensor::from_vec(data, &out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: &[usize]) -> Tensor<f64> {
        Tensor::from_vec((0..numel(shape)).map(|i| i as f64).collect(), shape)
    }

    #[test]
    fn permute_matches_index_arithmetic() {
        let x = ramp(&[2, 3, 4]);
        let y = permute(&x, &[2, 0, 1]);
        assert_eq!(y.shape(), &[4, 2, 3]);
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..4 {
                    assert_eq!(y.data()[c * 6 + a * 3 + b], x.data()[a * 12 + b * 4 + c]);
                }
            }
        }
    }

    #[test]
    fn narrow_pad_and_select_add_are_adjoint() {
        let x = ramp(&[3, 5, 2]);
        let g = Tensor::<f64>::from_vec((0..12).map(|i| (i as f64).cos()).collect(), &[3, 2, 2]);
        let lhs = narrow(&x, 1, 2, 2).dot_f64(&g);
        assert!((lhs - x.dot_f64(&pad_narrow(&g, 1, 2, 5))).abs() < 1e-12);
        let idx = [4, 0, 4];
        let g = Tensor::<f64>::from_vec((0..18).map(|i| (i as f64).sin()).collect(), &[3, 3, 2]);
        let lhs = index_select(&x, 1, &idx).dot_f64(&g);
        assert!((lhs - x.dot_f64(&index_add(&g, 1, &idx, 5))).abs() < 1e-12);
    }

    #[test]
    fn concat_then_narrow_round_trips() {
        let a = ramp(&[2, 3]);
        let b = ramp(&[2, 1]);
        let c = concat(&[&a, &b], 1);
        assert_eq!(c.shape(), &[2, 4]);
        assert!(narrow(&c, 1, 0, 3).bitwise_eq(&a));
        assert!(narrow(&c, 1, 3, 1).bitwise_eq(&b));
    }
}
