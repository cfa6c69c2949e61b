//! Broadcasting elementwise binary kernels and their adjoint, the sum back to a shape.
//!
//! Broadcasting follows NumPy: shapes are aligned on the right, and a dimension of 1 (or a missing
//! leading dimension) repeats.

use crate::tensor::{numel, strides};
use crate::{Float, Tensor};

use super::walk_rows;

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
    let mut data = Vec::with_capacity(numel(&out));
    // Fast path: one operand repeats along leading dimensions only (bias add, row scaling).
    if b.shape() == &out[..] && out.ends_with(a.shape()) && !a.is_empty() {
        for row in bd.chunks(a.len()) {
            data.extend(row.iter().zip(ad).map(|(&y, &x)| f(x, y)));
        }
    } else if a.shape() == &out[..] && out.ends_with(b.shape()) && !b.is_empty() {
        for row in ad.chunks(b.len()) {
            data.extend(row.iter().zip(bd).map(|(&x, &y)| f(x, y)));
        }
    } else {
        let (sa, sb) = (
            broadcast_strides(a.shape(), &out),
            broadcast_strides(b.shape(), &out),
        );
        walk_rows(&out, [&sa, &sb], |[i, j], steps, len| match steps {
            [1, 0] => data.extend(ad[i..i + len].iter().map(|&x| f(x, bd[j]))),
            [0, 1] => data.extend(bd[j..j + len].iter().map(|&y| f(ad[i], y))),
            [1, 1] => data.extend(
                ad[i..i + len]
                    .iter()
                    .zip(&bd[j..j + len])
                    .map(|(&x, &y)| f(x, y)),
            ),
            [si, sj] => data.extend((0..len).map(|t| f(ad[i + t * si], bd[j + t * sj]))),
        });
    }
    Tensor::from_vec(data, &out)
}

/// Repeats `x` to `shape` (NumPy broadcasting).
///
/// # Panics
/// If `x` cannot be broadcast to `shape`.
pub fn broadcast_to<F: Float>(x: &Tensor<F>, shape: &[usize]) -> Tensor<F> {
    if x.shape() == shape {
        return x.clone();
    }
    assert!(
        broadcast_shape(x.shape(), shape).as_deref() == Some(shape),
        "cannot broadcast {:?} to {shape:?}",
        x.shape()
    );
    let xd = x.data();
    let mut data = Vec::with_capacity(numel(shape));
    let sx = broadcast_strides(x.shape(), shape);
    walk_rows(shape, [&sx], |[i], [step], len| match step {
        0 => data.extend(std::iter::repeat_n(xd[i], len)),
        1 => data.extend_from_slice(&xd[i..i + len]),
        _ => data.extend((0..len).map(|t| xd[i + t * step])),
    });
    Tensor::from_vec(data, shape)
}

/// Sums `x` down to `shape`, the adjoint of [`broadcast_to`]: every dimension that `shape` lacks or
/// holds as 1 is summed. Each output element adds its inputs in increasing index order.
///
/// # Panics
/// If `shape` does not broadcast to `x`'s shape.
pub fn sum_to<F: Float>(x: &Tensor<F>, shape: &[usize]) -> Tensor<F> {
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
    if let Some((pre, mid, post)) = reduced_block(x.shape(), shape).filter(|_| !out.is_empty()) {
        // One contiguous block of dimensions reduced (leading ones: a bias gradient; middle ones:
        // the same for each of k tangents): add whole rows in order, as the walk below would.
        if post == 1 {
            // Reduced innermost dimensions (a mean over the last axis): one sum per output, in
            // the order of `row_sum`, as the walk below would add the row.
            for (o, xs) in out.iter_mut().zip(xd.chunks(mid)) {
                *o = row_sum(*o, xs);
            }
            return Tensor::from_vec(out, shape);
        }
        for (o, xs) in out.chunks_mut(post).zip(xd.chunks(mid * post)) {
            for row in xs.chunks(post) {
                for (o, &v) in o.iter_mut().zip(row) {
                    *o += v;
                }
            }
        }
        debug_assert_eq!(out.len(), pre * post);
    } else {
        let so = broadcast_strides(shape, x.shape());
        // Rows of x in increasing index order: each output still adds its inputs in that order.
        let mut i = 0;
        walk_rows(x.shape(), [&so], |[o], [step], len| {
            let row = &xd[i..i + len];
            match step {
                0 => out[o] = row_sum(out[o], row),
                _ => {
                    for (t, &v) in row.iter().enumerate() {
                        out[o + t * step] += v;
                    }
                }
            }
            i += len;
        });
    }
    Tensor::from_vec(out, shape)
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
    if xs.len() < 2 * SUM_LANES {
        return xs.iter().fold(init, |acc, &v| acc + v);
    }
    let mut lanes = [F::ZERO; SUM_LANES];
    let groups = xs.chunks_exact(SUM_LANES);
    let tail = groups.remainder();
    for g in groups {
        for (l, &v) in lanes.iter_mut().zip(g) {
            *l += v;
        }
    }
    let mut width = SUM_LANES;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            lanes[j] += lanes[j + width];
        }
    }
    tail.iter().fold(init + lanes[0], |acc, &v| acc + v)
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
        let cases: [(&[usize], &[usize]); 6] = [
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
}
