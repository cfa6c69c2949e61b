//! The dense, immutable, row-major tensor every carrier is built from.

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use rayon::prelude::*;

use crate::buffer::filled;
use crate::Float;

/// Elementwise maps over at least this many elements run in parallel chunks.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;
/// Elements per parallel chunk.
const ELEMENT_CHUNK: usize = 1 << 13;

/// A dense row-major tensor of `F` with shared, copy-on-write storage.
///
/// Cloning is cheap (the buffer is reference counted); every operation returns a new tensor. A tensor
/// of shape `[]` is a scalar holding one element.
#[derive(Clone)]
pub struct Tensor<F> {
    shape: Vec<usize>,
    data: Arc<Vec<F>>,
}

/// Number of elements of a shape (1 for the scalar shape `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a shape, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

impl<F: Float> Tensor<F> {
    /// Wraps a buffer.
    ///
    /// # Panics
    /// If `data.len()` differs from the product of `shape` (an internal invariant: user data is
    /// validated before it becomes a tensor).
    pub fn from_vec(data: Vec<F>, shape: &[usize]) -> Self {
        assert_eq!(
            data.len(),
            numel(shape),
            "tensor of shape {shape:?} needs {} elements, got {}",
            numel(shape),
            data.len()
        );
        Tensor {
            shape: shape.to_vec(),
            data: Arc::new(data),
        }
    }

    /// A tensor of `value` everywhere.
    pub fn full(shape: &[usize], value: F) -> Self {
        Self::from_vec(vec![value; numel(shape)], shape)
    }

    /// Zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, F::ZERO)
    }

    /// Ones.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, F::ONE)
    }

    /// A scalar (shape `[]`).
    pub fn scalar(value: F) -> Self {
        Self::from_vec(vec![value], &[])
    }

    /// Converts from `f64` values.
    pub fn from_f64s(values: &[f64], shape: &[usize]) -> Self {
        Self::from_vec(values.iter().map(|&v| F::from_f64(v)).collect(), shape)
    }

    /// Converts from `f32` values.
    pub fn from_f32s(values: &[f32], shape: &[usize]) -> Self {
        Self::from_vec(values.iter().map(|&v| F::from_f32(v)).collect(), shape)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// `true` when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[F] {
        &self.data
    }

    /// Mutable access to the elements (copies the buffer first if it is shared).
    pub fn data_mut(&mut self) -> &mut [F] {
        Arc::<Vec<F>>::make_mut(&mut self.data).as_mut_slice()
    }

    /// Takes the buffer out (copying only if it is shared).
    pub fn into_vec(self) -> Vec<F> {
        Arc::try_unwrap(self.data).unwrap_or_else(|a| (*a).clone())
    }

    /// The single element of a one-element tensor.
    ///
    /// # Panics
    /// If the tensor does not hold exactly one element.
    pub fn item(&self) -> F {
        assert_eq!(
            self.len(),
            1,
            "item() needs a one-element tensor, shape is {:?}",
            self.shape
        );
        self.data[0]
    }

    /// The same elements under another shape with the same number of elements.
    ///
    /// # Panics
    /// If the element counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Self {
        assert_eq!(
            numel(shape),
            self.len(),
            "cannot reshape {:?} ({} elements) to {shape:?}",
            self.shape,
            self.len()
        );
        Tensor {
            shape: shape.to_vec(),
            data: self.data.clone(),
        }
    }

    /// Elementwise map into a new tensor. Large tensors are mapped in parallel chunks; each
    /// element is computed by the same function whatever the thread, so the bits do not change.
    pub fn map(&self, f: impl Fn(F) -> F + Sync) -> Self {
        // SAFETY: the loop writes every element of `out`, which is as long as `xs`.
        unsafe {
            self.map_slices(|xs, out| {
                for (o, &x) in out.iter_mut().zip(xs) {
                    o.write(f(x));
                }
            })
        }
    }

    /// [`Tensor::map`] given a loop instead of a function: `f(xs, out)` writes `out[i]` from
    /// `xs[i]` for a whole run of elements, so that the loop, with the function inlined into it,
    /// can vectorise (a function called per element through a closure often is not inlined).
    /// `out` starts uninitialised (`crate::buffer`).
    ///
    /// # Safety
    /// `f` must write every element of `out` (as long as `xs`).
    pub(crate) unsafe fn map_slices(&self, f: impl Fn(&[F], &mut [MaybeUninit<F>]) + Sync) -> Self {
        let map_all = |out: &mut [MaybeUninit<F>]| {
            if self.len() < PARALLEL_MIN_ELEMENTS {
                f(&self.data, out);
            } else {
                out.par_chunks_mut(ELEMENT_CHUNK)
                    .zip(self.data.par_chunks(ELEMENT_CHUNK))
                    .for_each(|(o, x)| f(x, o));
            }
        };
        Tensor {
            shape: self.shape.clone(),
            // SAFETY: `f` writes every element of each chunk (the caller's contract), and the
            // chunks cover `out`.
            data: Arc::new(unsafe { filled(self.len(), map_all) }),
        }
    }

    /// [`Tensor::map2`] given a loop, as [`Tensor::map_slices`]: `f(xs, a, b)`.
    ///
    /// # Safety
    /// `f` must write every element of `a` and of `b` (each as long as `xs`).
    pub(crate) unsafe fn map2_slices(
        &self,
        f: impl Fn(&[F], &mut [MaybeUninit<F>], &mut [MaybeUninit<F>]) + Sync,
    ) -> (Self, Self) {
        let n = self.len();
        let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (sa, sb) = (
            &mut a.spare_capacity_mut()[..n],
            &mut b.spare_capacity_mut()[..n],
        );
        if n < PARALLEL_MIN_ELEMENTS {
            f(&self.data, sa, sb);
        } else {
            sa.par_chunks_mut(ELEMENT_CHUNK)
                .zip(sb.par_chunks_mut(ELEMENT_CHUNK))
                .zip(self.data.par_chunks(ELEMENT_CHUNK))
                .for_each(|((a, b), x)| f(x, a, b));
        }
        // SAFETY: `f` wrote every element of both (the caller's contract); the capacity is `n`.
        unsafe {
            a.set_len(n);
            b.set_len(n);
        }
        let wrap = |d| Tensor {
            shape: self.shape.clone(),
            data: Arc::new(d),
        };
        (wrap(a), wrap(b))
    }

    /// Elementwise map to two tensors of this shape at once (in parallel chunks when large, as
    /// [`Tensor::map`]).
    pub fn map2(&self, f: impl Fn(F) -> (F, F) + Sync) -> (Self, Self) {
        // SAFETY: the loop writes every element of `a` and `b`, each as long as `xs`.
        unsafe {
            self.map2_slices(|xs, a, b| {
                for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(xs) {
                    let (va, vb) = f(x);
                    a.write(va);
                    b.write(vb);
                }
            })
        }
    }

    /// Elementwise map of two same-shape tensors (in parallel chunks when large, as [`Tensor::map`]).
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn zip_map(&self, other: &Self, f: impl Fn(F, F) -> F + Sync) -> Self {
        assert_eq!(self.shape, other.shape, "zip_map needs equal shapes");
        let zip = |out: &mut [MaybeUninit<F>], a: &[F], b: &[F]| {
            for (o, (&a, &b)) in out.iter_mut().zip(a.iter().zip(b)) {
                o.write(f(a, b));
            }
        };
        let zip_all = |out: &mut [MaybeUninit<F>]| {
            if self.len() < PARALLEL_MIN_ELEMENTS {
                zip(out, &self.data, &other.data);
            } else {
                out.par_chunks_mut(ELEMENT_CHUNK)
                    .zip(
                        self.data
                            .par_chunks(ELEMENT_CHUNK)
                            .zip(other.data.par_chunks(ELEMENT_CHUNK)),
                    )
                    .for_each(|(o, (a, b))| zip(o, a, b));
            }
        };
        Tensor {
            shape: self.shape.clone(),
            // SAFETY: both operands have `self.len()` elements, so each chunk's loop writes the
            // whole chunk, and the chunks cover the output.
            data: Arc::new(unsafe { filled(self.len(), zip_all) }),
        }
    }

    /// Converts to another float type.
    pub fn cast<G: Float>(&self) -> Tensor<G> {
        Tensor::from_vec(
            self.data.iter().map(|&x| G::from_f64(x.to_f64())).collect(),
            &self.shape,
        )
    }

    /// Values as `f64`.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.data.iter().map(|x| x.to_f64()).collect()
    }

    /// Sum of all elements, accumulated in `f64` in index order.
    pub fn sum_all_f64(&self) -> f64 {
        self.data.iter().map(|x| x.to_f64()).sum()
    }

    /// `<self, other>` over all elements, accumulated in `f64` in index order.
    ///
    /// # Panics
    /// If the element counts differ.
    pub fn dot_f64(&self, other: &Self) -> f64 {
        assert_eq!(self.len(), other.len(), "dot needs equal sizes");
        self.data
            .iter()
            .zip(other.data.iter())
            .map(|(a, b)| a.to_f64() * b.to_f64())
            .sum()
    }

    /// `true` when every element is finite.
    pub fn all_finite(&self) -> bool {
        crate::float::all_finite(&self.data)
    }

    /// `true` when shapes and all element bits are equal.
    pub fn bitwise_eq(&self, other: &Self) -> bool {
        self.shape == other.shape
            && self
                .data
                .iter()
                .zip(other.data.iter())
                .all(|(a, b)| a.to_bits_u64() == b.to_bits_u64())
    }

    /// Largest absolute difference to another tensor of the same shape.
    pub fn max_abs_diff(&self, other: &Self) -> f64 {
        assert_eq!(self.shape, other.shape, "max_abs_diff needs equal shapes");
        self.data
            .iter()
            .zip(other.data.iter())
            .map(|(a, b)| (a.to_f64() - b.to_f64()).abs())
            .fold(0.0, f64::max)
    }
}

impl<F: Float> fmt::Debug for Tensor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOW: usize = 8;
        write!(f, "Tensor<{}>{:?} [", F::NAME, self.shape)?;
        for (i, x) in self.data.iter().take(SHOW).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{x}")?;
        }
        if self.len() > SHOW {
            write!(f, ", ... ({} more)", self.len() - SHOW)?;
        }
        write!(f, "]")
    }
}
