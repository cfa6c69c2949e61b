//! The two floating-point types the engine computes in.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::mem::MaybeUninit;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real scalar the engine can compute in: `f32` or `f64`.
///
/// Everything in attrib is generic over this trait so that the same code trains in `f32` and checks
/// derivatives in `f64`. The matrix product is a method here so that generic code can call the
/// `gemm` kernel of the concrete type without carrying its trait bounds everywhere.
pub trait Float:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + Display
    + PartialOrd
    + PartialEq
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
    + 'static
{
    /// `"f32"` or `"f64"`, as written in configs and file metadata.
    const NAME: &'static str;
    /// Machine epsilon of the type.
    const EPSILON: Self;
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Converts from `f64` (rounding to nearest for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts from `f32` exactly.
    fn from_f32(x: f32) -> Self;
    /// Converts to `f32` (rounding to nearest for `f64`).
    fn to_f32(self) -> f32;
    /// `e^x`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + x)`, accurate near zero.
    fn ln_1p(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Error function.
    fn erf(self) -> Self;
    /// The standard normal CDF `Phi(x)` (the exact GELU is `x Phi(x)`): `f64` from `libm`'s
    /// `erf`, `f32` from the vectorisable approximation of [`crate::kernels::normal`] (relative
    /// error below 5e-7).
    fn normal_cdf(self) -> Self;
    /// The standard normal density `phi(x)`: `f64` from `exp`, `f32` as [`Float::normal_cdf`].
    fn normal_pdf(self) -> Self;
    /// The GELU's derivative `order` of every element of `xs` into `out`, bitwise as
    /// [`crate::kernels::Unary::eval`] gives it: `f32` in the vectorised loop of
    /// [`crate::kernels::normal::gelu_f32`], `f64` element by element.
    fn gelu_slice(order: crate::kernels::Order, xs: &[Self], out: &mut [MaybeUninit<Self>]);
    /// `e^x` as the engine's `exp` op computes it ([`crate::kernels::Unary::Exp`]): `f32` by the
    /// branch-free [`crate::kernels::normal::exp_f32`], `f64` by `libm`'s `exp` ([`Float::exp`]).
    fn exp_op(self) -> Self;
    /// [`Float::exp_op`] of every element of `xs` into `out` (`f32` vectorised,
    /// [`crate::kernels::normal::exp_f32_slice`]).
    fn exp_slice(xs: &[Self], out: &mut [MaybeUninit<Self>]);
    /// Two consecutive derivatives of the GELU at once, bitwise as
    /// [`crate::kernels::Unary::eval_pair`] (`f32`: [`crate::kernels::normal::gelu_pair_f32`]).
    fn gelu_pair_slice(
        pair: crate::kernels::Pair,
        xs: &[Self],
        a: &mut [MaybeUninit<Self>],
        b: &mut [MaybeUninit<Self>],
    );
    /// The larger of two values (NaN-propagating is not guaranteed).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values.
    fn min(self, other: Self) -> Self;
    /// `true` unless NaN or infinite.
    fn is_finite(self) -> bool;
    /// Raw bits widened to `u64`, for bitwise comparisons and hashing.
    fn to_bits_u64(self) -> u64;
    /// `dst = beta * dst + op(lhs) * op(rhs)` on one thread, with the `gemm` crate's kernel.
    ///
    /// `op(lhs)` is `m x k`: stored row-major as `m x k` with row stride `lrs`, or as `k x m` when `ta`.
    /// `op(rhs)` is `k x n`: stored as `k x n` with row stride `rrs`, or as `n x k` when `tb`.
    /// `dst` is `m x n` row-major with row stride `ldd`. `accumulate` selects `beta = 1` (else 0);
    /// without it the `m x n` block of `dst` is only written, never read, so it may start
    /// uninitialised (see `crate::buffer`).
    ///
    /// # Safety
    /// With `accumulate`, every element of the `m x n` block of `dst` must be initialised.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_seq(
        dst: &mut [MaybeUninit<Self>],
        ldd: usize,
        accumulate: bool,
        lhs: &[Self],
        lrs: usize,
        ta: bool,
        rhs: &[Self],
        rrs: usize,
        tb: bool,
        m: usize,
        k: usize,
        n: usize,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        assert!(
            ldd >= n && dst.len() >= span(m, n, ldd),
            "gemm: destination too small"
        );
        // SAFETY: the assert above keeps every element of the block inside `dst`, a unique borrow
        // (so it overlaps neither operand); the caller's contract covers `accumulate`.
        unsafe {
            Self::gemm_block(
                dst.as_mut_ptr(),
                ldd,
                accumulate,
                lhs,
                lrs,
                ta,
                rhs,
                rrs,
                tb,
                m,
                k,
                n,
            )
        }
    }
    /// [`Float::gemm_seq`] into the `m x n` block at `dst` (row stride `ldd`), for callers that
    /// write disjoint blocks of one matrix from several threads (column blocks of a row-major
    /// matrix interleave in memory, so they cannot be handed out as separate slices).
    ///
    /// # Safety
    /// Every element `dst + i * ldd + j` (`i < m`, `j < n`) must be valid for writes, and for
    /// reads with `accumulate`, in which case it must be initialised; no other thread may touch
    /// those elements during the call. The operands must hold `op(lhs)` and `op(rhs)` as
    /// [`Float::gemm_seq`] describes, and the block may overlap neither.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_block(
        dst: *mut MaybeUninit<Self>,
        ldd: usize,
        accumulate: bool,
        lhs: &[Self],
        lrs: usize,
        ta: bool,
        rhs: &[Self],
        rrs: usize,
        tb: bool,
        m: usize,
        k: usize,
        n: usize,
    );
}

/// Elements spanned by an `r x c` row-major block with row stride `rs` (the bound the `gemm`
/// wrappers check their slices against).
fn span(r: usize, c: usize, rs: usize) -> usize {
    if r == 0 || c == 0 {
        0
    } else {
        (r - 1) * rs + c
    }
}

macro_rules! impl_float {
    (
        $t:ty,
        $name:literal,
        $erf:path,
        $cdf:path,
        $pdf:path,
        $gelu:path,
        $gelu_pair:path,
        $exp:path,
        $exp_slice:path
    ) => {
        impl Float for $t {
            const NAME: &'static str = $name;
            const EPSILON: Self = <$t>::EPSILON;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f32(x: f32) -> Self {
                x as $t
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn normal_cdf(self) -> Self {
                $cdf(self)
            }
            #[inline(always)]
            fn normal_pdf(self) -> Self {
                $pdf(self)
            }
            fn gelu_slice(
                order: crate::kernels::Order,
                xs: &[Self],
                out: &mut [MaybeUninit<Self>],
            ) {
                $gelu(order, xs, out)
            }
            #[inline(always)]
            fn exp_op(self) -> Self {
                $exp(self)
            }
            fn exp_slice(xs: &[Self], out: &mut [MaybeUninit<Self>]) {
                $exp_slice(xs, out)
            }
            fn gelu_pair_slice(
                pair: crate::kernels::Pair,
                xs: &[Self],
                a: &mut [MaybeUninit<Self>],
                b: &mut [MaybeUninit<Self>],
            ) {
                $gelu_pair(pair, xs, a, b)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn to_bits_u64(self) -> u64 {
                self.to_bits() as u64
            }
            unsafe fn gemm_block(
                dst: *mut MaybeUninit<Self>,
                ldd: usize,
                accumulate: bool,
                lhs: &[Self],
                lrs: usize,
                ta: bool,
                rhs: &[Self],
                rrs: usize,
                tb: bool,
                m: usize,
                k: usize,
                n: usize,
            ) {
                if m == 0 || n == 0 {
                    return;
                }
                if k == 0 {
                    if !accumulate {
                        for i in 0..m {
                            for j in 0..n {
                                // SAFETY: inside the block, under the caller's contract.
                                unsafe { (*dst.add(i * ldd + j)).write(0.0) };
                            }
                        }
                    }
                    return;
                }
                let (a_rows, a_cols) = if ta { (k, m) } else { (m, k) };
                let (b_rows, b_cols) = if tb { (n, k) } else { (k, n) };
                assert!(
                    lrs >= a_cols && lhs.len() >= span(a_rows, a_cols, lrs),
                    "gemm: left operand too small"
                );
                assert!(
                    rrs >= b_cols && rhs.len() >= span(b_rows, b_cols, rrs),
                    "gemm: right operand too small"
                );
                // (column stride, row stride) of op(A) and op(B) in the stored buffers.
                let (a_cs, a_rs) = if ta {
                    (lrs as isize, 1)
                } else {
                    (1, lrs as isize)
                };
                let (b_cs, b_rs) = if tb {
                    (rrs as isize, 1)
                } else {
                    (1, rrs as isize)
                };
                // SAFETY: the asserts above guarantee every operand index the kernel touches,
                // `i * rs + j * cs` for i < rows and j < cols, lies inside its slice; the caller
                // guarantees the block at `dst` is ours alone and overlaps neither operand. `gemm`
                // reads `dst` only when `accumulate` (`read_dst`), and then the caller guarantees it
                // is initialised; otherwise it writes every element of the block.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        dst.cast::<$t>(),
                        1,
                        ldd as isize,
                        accumulate,
                        lhs.as_ptr(),
                        a_cs,
                        a_rs,
                        rhs.as_ptr(),
                        b_cs,
                        b_rs,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        }
    };
}

impl_float!(
    f32,
    "f32",
    libm::erff,
    cdf_f32,
    pdf_f32,
    crate::kernels::normal::gelu_f32,
    crate::kernels::normal::gelu_pair_f32,
    crate::kernels::normal::exp_f32,
    crate::kernels::normal::exp_f32_slice
);
impl_float!(
    f64,
    "f64",
    libm::erf,
    cdf_f64,
    pdf_f64,
    gelu_elementwise,
    gelu_pair_elementwise,
    f64::exp,
    exp_f64_slice
);

/// [`Float::exp_slice`] for `f64`: `libm`'s `exp` element by element.
fn exp_f64_slice(xs: &[f64], out: &mut [MaybeUninit<f64>]) {
    for (o, &x) in out.iter_mut().zip(xs) {
        o.write(x.exp());
    }
}

/// [`Float::gelu_slice`] element by element.
fn gelu_elementwise<F: Float>(order: crate::kernels::Order, xs: &[F], out: &mut [MaybeUninit<F>]) {
    for (o, &x) in out.iter_mut().zip(xs) {
        o.write(crate::kernels::Unary::Gelu.eval(order, x));
    }
}

/// [`Float::gelu_pair_slice`] element by element.
fn gelu_pair_elementwise<F: Float>(
    pair: crate::kernels::Pair,
    xs: &[F],
    a: &mut [MaybeUninit<F>],
    b: &mut [MaybeUninit<F>],
) {
    for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(xs) {
        let (va, vb) = crate::kernels::Unary::Gelu.eval_pair(pair, x);
        a.write(va);
        b.write(vb);
    }
}

#[inline(always)]
fn cdf_f32(x: f32) -> f32 {
    crate::kernels::normal::normal_cdf_pdf(x).0
}

#[inline(always)]
fn pdf_f32(x: f32) -> f32 {
    crate::kernels::normal::normal_cdf_pdf(x).1
}

/// `Phi(x) = (1 + erf(x / sqrt 2)) / 2`.
#[inline]
fn cdf_f64(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// `phi(x) = e^(-x^2 / 2) / sqrt(2 pi)`.
#[inline]
fn pdf_f64(x: f64) -> f64 {
    0.398_942_280_401_432_7 * (-0.5 * x * x).exp()
}

/// Whether every element of `v` is finite. Blocks are checked whole (no exit inside one), so
/// that the check vectorises (an exit per element did not, issue 19); the first block holding a
/// non-finite element ends it.
pub fn all_finite<F: Float>(v: &[F]) -> bool {
    v.chunks(1024)
        .all(|block| block.iter().fold(true, |ok, x| ok & x.is_finite()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_non_finite_element_is_found() {
        let v = vec![1.0f32; 3000];
        assert!(all_finite(&v));
        assert!(all_finite::<f32>(&[]));
        for at in [0, 1023, 1024, 2047, 2999] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut w = v.clone();
                w[at] = bad;
                assert!(!all_finite(&w), "{bad} at {at}");
            }
        }
    }
}
