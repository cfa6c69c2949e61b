//! im2col ("unfold") and its adjoint ("fold"): a 2-d convolution is `unfold(x) @ W^T`.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::{Float, Tensor};

/// Calls `f::<W>()` with `W` the output width `ow` when it is one of the widths the kernels are
/// compiled for, or `W = 0` (the width read at run time) otherwise.
///
/// Why: a tap row's runs are `ow` elements long (8 on the digits CNN's 8x8 images, 28 or 14 on
/// MNIST's), and a loop whose trip count is only known at run time handles a run that short in
/// its scalar remainder, one element at a time, after a vector loop that never runs. With the
/// width a constant each run is a few vector moves: the same values, copied or added in the same
/// order, so the bits do not change.
macro_rules! with_known_width {
    ($ow:expr, $f:ident $(:: <$($t:ty),*>)? ($($arg:expr),*)) => {
        match $ow {
            4 => $f::<$($($t,)*)? 4>($($arg),*),
            7 => $f::<$($($t,)*)? 7>($($arg),*),
            8 => $f::<$($($t,)*)? 8>($($arg),*),
            14 => $f::<$($($t,)*)? 14>($($arg),*),
            16 => $f::<$($($t,)*)? 16>($($arg),*),
            28 => $f::<$($($t,)*)? 28>($($arg),*),
            32 => $f::<$($($t,)*)? 32>($($arg),*),
            _ => $f::<$($($t,)*)? 0>($($arg),*),
        }
    };
}

/// Geometry of a 2-d convolution or pooling window over `[batch, channels, height, width]` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv2dGeometry {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        let oh = (self.height + 2 * self.padding - self.kernel.0) / self.stride + 1;
        let ow = (self.width + 2 * self.padding - self.kernel.1) / self.stride + 1;
        (oh, ow)
    }

    /// Length of one unfolded patch: `channels * kh * kw`.
    pub fn patch_len(&self) -> usize {
        self.channels * self.kernel.0 * self.kernel.1
    }

    /// Calls `f(patch_index, column, input_offset, len)` for every run of `len` patch entries that
    /// read `len` consecutive input elements (one kernel row of one channel, clipped to the image;
    /// entries in the zero padding are skipped). Patches come in increasing order, so a sum over the
    /// runs adds each input element's taps in patch order.
    fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (oh, ow) = self.out_hw();
        let (kh, kw) = self.kernel;
        let (h, w, pad) = (
            self.height as isize,
            self.width as isize,
            self.padding as isize,
        );
        for oy in 0..oh {
            for ox in 0..ow {
                let patch = oy * ow + ox;
                // Input column of kernel column 0; kernel columns j0..j1 land inside the image.
                let x0 = (ox * self.stride) as isize - pad;
                let j0 = (-x0).max(0);
                let j1 = (w - x0).min(kw as isize);
                if j0 >= j1 {
                    continue;
                }
                let (j0, len) = (j0 as usize, (j1 - j0) as usize);
                let x = (x0 + j0 as isize) as usize;
                for c in 0..self.channels {
                    for i in 0..kh {
                        let y = (oy * self.stride + i) as isize - pad;
                        if y < 0 || y >= h {
                            continue;
                        }
                        let col = (c * kh + i) * kw + j0;
                        f(
                            patch,
                            col,
                            (c * self.height + y as usize) * self.width + x,
                            len,
                        );
                    }
                }
            }
        }
    }
}

/// `[b, c, h, w]` -> `[b, oh * ow, c * kh * kw]`: every output position's receptive field as a row,
/// columns ordered `(channel, ky, kx)` to match a `[out, c, kh, kw]` weight.
///
/// # Panics
/// If `x` is not `[b, c, h, w]` with the geometry's `c, h, w`.
pub fn unfold2d<F: Float>(x: &Tensor<F>, g: &Conv2dGeometry) -> Tensor<F> {
    let s = x.shape();
    assert!(
        s.len() == 4 && s[1] == g.channels && s[2] == g.height && s[3] == g.width,
        "unfold2d: input {s:?} does not match [batch, {}, {}, {}]",
        g.channels,
        g.height,
        g.width
    );
    let (oh, ow) = g.out_hw();
    let (img, rows, cols) = (g.channels * g.height * g.width, oh * ow, g.patch_len());
    let mut out = vec![F::ZERO; s[0] * rows * cols];
    if !out.is_empty() {
        out.par_chunks_mut(rows * cols)
            .zip(x.data().par_chunks(img))
            .for_each(|(dst, src)| {
                g.for_each_run(|p, c, i, len| {
                    dst[p * cols + c..][..len].copy_from_slice(&src[i..i + len]);
                });
            });
    }
    Tensor::from_vec(out, &[s[0], rows, cols])
}

/// The adjoint of [`unfold2d`]: `[b, oh * ow, c * kh * kw]` -> `[b, c, h, w]`, summing overlapping
/// taps in a fixed order.
///
/// # Panics
/// If `cols` does not have the unfolded shape of the geometry.
pub fn fold2d<F: Float>(cols: &Tensor<F>, g: &Conv2dGeometry) -> Tensor<F> {
    let s = cols.shape();
    let (oh, ow) = g.out_hw();
    assert!(
        s.len() == 3 && s[1] == oh * ow && s[2] == g.patch_len(),
        "fold2d: input {s:?} does not match [batch, {}, {}]",
        oh * ow,
        g.patch_len()
    );
    let (img, rows, pl) = (g.channels * g.height * g.width, oh * ow, g.patch_len());
    let mut out = vec![F::ZERO; s[0] * img];
    if !out.is_empty() {
        out.par_chunks_mut(img)
            .zip(cols.data().par_chunks(rows * pl))
            .for_each(|(dst, src)| {
                g.for_each_run(|p, c, i, len| {
                    for (d, &v) in dst[i..i + len].iter_mut().zip(&src[p * pl + c..][..len]) {
                        *d += v;
                    }
                });
            });
    }
    Tensor::from_vec(out, &[s[0], g.channels, g.height, g.width])
}

impl Conv2dGeometry {
    /// Height and width of the image with its zero padding on every side.
    fn padded_hw(&self) -> (usize, usize) {
        (
            self.height + 2 * self.padding,
            self.width + 2 * self.padding,
        )
    }

    /// For every tap row `(channel, ky, kx)` of [`unfold2d_t`]'s layout, in increasing order:
    /// `f(tap_row, offset)`, where the row's output position `(oy, ox)` reads the zero-padded
    /// image ([`Conv2dGeometry::padded_hw`]) at `offset + oy * stride * wp + ox * stride`.
    #[inline(always)]
    fn for_each_tap_row(&self, mut f: impl FnMut(usize, usize)) {
        let (kh, kw) = self.kernel;
        let (hp, wp) = self.padded_hw();
        for c in 0..self.channels {
            for i in 0..kh {
                for j in 0..kw {
                    f((c * kh + i) * kw + j, (c * hp + i) * wp + j);
                }
            }
        }
    }
}

/// One image zero-padded on every side: `channels` planes of [`Conv2dGeometry::padded_hw`]. With
/// the padding in place every output row of a tap reads `ow` elements of one padded row, with no
/// clipping to the image and no gaps to fill.
fn padded_image<F: Float>(g: &Conv2dGeometry, src: &[F]) -> Vec<F> {
    let (hp, wp) = g.padded_hw();
    let mut padded = vec![F::ZERO; g.channels * hp * wp];
    for (c, plane) in src.chunks_exact(g.height * g.width).enumerate() {
        for (y, row) in plane.chunks_exact(g.width).enumerate() {
            let at = (c * hp + y + g.padding) * wp + g.padding;
            padded[at..at + g.width].copy_from_slice(row);
        }
    }
    padded
}

/// `[b, c, h, w]` -> `[b, c * kh * kw, oh * ow]`: [`unfold2d`] with the two last axes swapped, one
/// row per tap, the output positions along it. A convolution is then `W [o, c kh kw] @` this, the
/// output comes out `[b, o, oh ow]` without a permutation, and the copies are image-row long.
///
/// # Panics
/// If `x` is not `[b, c, h, w]` with the geometry's `c, h, w`.
pub fn unfold2d_t<F: Float>(x: &Tensor<F>, g: &Conv2dGeometry) -> Tensor<F> {
    let s = x.shape();
    assert!(
        s.len() == 4 && s[1] == g.channels && s[2] == g.height && s[3] == g.width,
        "unfold2d_t: input {s:?} does not match [batch, {}, {}, {}]",
        g.channels,
        g.height,
        g.width
    );
    let (oh, ow) = g.out_hw();
    let (img, positions, taps) = (g.channels * g.height * g.width, oh * ow, g.patch_len());
    // SAFETY: `unfold_image_t` writes every slot of the image's chunk it is given.
    let out = unsafe {
        per_image(x.data(), img, s[0], taps * positions, |dst, src| {
            with_known_width!(ow, unfold_image_t::<F>(g, dst, src))
        })
    };
    Tensor::from_vec(out, &[s[0], taps, positions])
}

/// A new buffer of `images` chunks of `out_len` elements, chunk `i` written by `image(chunk,
/// src chunk i)` with `src` cut in chunks of `src_len`, the images in parallel: the loop of
/// [`unfold2d_t`] and [`fold2d_t`].
///
/// # Safety
/// `image` must write every slot of the chunk it is given.
unsafe fn per_image<F: Float>(
    src: &[F],
    src_len: usize,
    images: usize,
    out_len: usize,
    image: impl Fn(&mut [MaybeUninit<F>], &[F]) + Sync + Send,
) -> Vec<F> {
    assert_eq!(
        src.len(),
        images * src_len,
        "per_image: not {images} source images"
    );
    // SAFETY: the chunks cover the buffer (none when it is empty) and `image` writes every slot
    // of each (the caller's contract).
    unsafe {
        crate::buffer::filled(images * out_len, |slots: &mut [MaybeUninit<F>]| {
            if out_len > 0 {
                slots
                    .par_chunks_mut(out_len)
                    .enumerate()
                    .for_each(|(i, dst)| image(dst, &src[i * src_len..(i + 1) * src_len]));
            }
        })
    }
}

/// One image of [`unfold2d_t`]: writes every slot of `dst` (`c kh kw` rows of `oh ow` positions)
/// from the image `src`, each output row of each tap one run of the zero-padded image. (Copying
/// runs clipped to the image and zero-filling the gaps between them cost a call per run, a third
/// of the digits CNN's training step on its 8x8 images.) `W` is the output width if known at
/// compile time, else 0 (see `with_known_width`).
fn unfold_image_t<F: Float, const W: usize>(
    g: &Conv2dGeometry,
    dst: &mut [MaybeUninit<F>],
    src: &[F],
) {
    let (oh, ow) = g.out_hw();
    let ow = if W > 0 { W } else { ow };
    if oh * ow == 0 {
        return;
    }
    let padded = padded_image(g, src);
    let (stride, (_, wp)) = (g.stride, g.padded_hw());
    g.for_each_tap_row(|row, at| {
        let out = &mut dst[row * oh * ow..][..oh * ow];
        if stride == 1 {
            copy_runs::<F, W>(out, &padded[at..], ow, wp);
        } else {
            for (oy, out) in out.chunks_exact_mut(ow).enumerate() {
                for (ox, d) in out.iter_mut().enumerate() {
                    d.write(padded[at + oy * stride * wp + ox * stride]);
                }
            }
        }
    });
}

/// One tap row of a stride-1 unfold: `dst[r * ow + x] = src[r * src_step + x]` for its output
/// rows `r < dst.len() / ow`, `ow` being `W` if known at compile time (else `W` is 0).
///
/// Written so that a tap row of a known width is a vector move or two per output row, behind one
/// bounds check per tap row. A loop over each run's elements was not: the two slices come from a
/// closure's captures, which the compiler cannot tell apart, so each store might change the next
/// load and it moved one element at a time (and rustc inlines a helper before LLVM could learn
/// from its arguments that they do not overlap). A call per output row, slicing both operands,
/// cost about as much as the copies on the digits CNN's rows of 8 and 4.
#[inline(always)]
fn copy_runs<F: Float, const W: usize>(
    dst: &mut [MaybeUninit<F>],
    src: &[F],
    ow: usize,
    src_step: usize,
) {
    let rows = check_runs(dst.len(), src.len(), ow, src_step);
    if W > 0 {
        assert_eq!(ow, W, "copy_runs: not rows of the known width");
        for r in 0..rows {
            // SAFETY: both runs lie inside their slices (`check_runs`), `MaybeUninit<F>` has
            // `F`'s layout, and a `&mut` slice overlaps no other.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.as_ptr().add(r * src_step),
                    dst.as_mut_ptr().add(r * W).cast::<F>(),
                    W,
                )
            };
        }
    } else {
        for r in 0..rows {
            for (d, &v) in dst[r * ow..][..ow]
                .iter_mut()
                .zip(&src[r * src_step..][..ow])
            {
                d.write(v);
            }
        }
    }
}

/// One tap row of a stride-1 fold: `dst[r * dst_step + x] += src[r * ow + x]` for its output
/// rows `r < src.len() / ow`, `W` as in [`copy_runs`]. Each element's additions stay in tap
/// order (a tap row's runs never overlap: `ow <= dst_step`); only a run's elements are added
/// side by side. The run is read into a local array first, which the stores cannot change, so
/// that the additions vectorise (see [`copy_runs`] on why a loop over the two slices did not).
#[inline(always)]
fn add_runs<F: Float, const W: usize>(dst: &mut [F], src: &[F], ow: usize, dst_step: usize) {
    let rows = check_runs(src.len(), dst.len(), ow, dst_step);
    if W > 0 {
        assert_eq!(ow, W, "add_runs: not rows of the known width");
        for r in 0..rows {
            // SAFETY: both runs lie inside their slices (`check_runs`); the run of `src` is
            // copied out before `dst`, which overlaps no other slice, is written.
            unsafe {
                let run = src.as_ptr().add(r * W).cast::<[F; W]>().read_unaligned();
                let out = dst.as_mut_ptr().add(r * dst_step);
                for (x, v) in run.into_iter().enumerate() {
                    *out.add(x) += v;
                }
            }
        }
    } else {
        for r in 0..rows {
            for (d, &v) in dst[r * dst_step..][..ow]
                .iter_mut()
                .zip(&src[r * ow..][..ow])
            {
                *d += v;
            }
        }
    }
}

/// The number of runs of a tap row, `rows = packed_len / ow`, after checking that the packed
/// side holds exactly `rows` runs of `ow` and the strided side every run `r` at `r * step`.
///
/// Inlined, so that a known width makes its division a shift: called once per tap row (some
/// 20,000 times a step on the digits CNN), a division each cost 3-4% of the step.
///
/// # Panics
/// If either side is short, or runs would overlap (`ow > step`).
#[inline(always)]
fn check_runs(packed_len: usize, strided_len: usize, ow: usize, step: usize) -> usize {
    let rows = packed_len.checked_div(ow).unwrap_or(0);
    assert!(
        ow <= step
            && rows * ow == packed_len
            && (rows == 0 || strided_len >= (rows - 1) * step + ow),
        "tap row: runs outside the operands"
    );
    rows
}

/// One image of [`fold2d_t`]: `dst` (`c h w`) from its `c kh kw` rows of `oh ow` taps in `src`.
/// `W` as in [`unfold_image_t`].
fn fold_image_t<F: Float, const W: usize>(
    g: &Conv2dGeometry,
    dst: &mut [MaybeUninit<F>],
    src: &[F],
) {
    let (oh, ow) = g.out_hw();
    let ow = if W > 0 { W } else { ow };
    let stride = g.stride;
    let (hp, wp) = g.padded_hw();
    // Into the zero-padded image, whose border then takes the taps that fell in the padding
    // and is dropped: each image element adds its taps in increasing row order from zero.
    let mut padded = vec![F::ZERO; g.channels * hp * wp];
    g.for_each_tap_row(|row, at| {
        let taps = &src[row * oh * ow..][..oh * ow];
        if stride == 1 {
            add_runs::<F, W>(&mut padded[at..], taps, ow, wp);
        } else {
            for (oy, taps) in taps.chunks_exact(ow).enumerate() {
                for (ox, &v) in taps.iter().enumerate() {
                    padded[at + oy * stride * wp + ox * stride] += v;
                }
            }
        }
    });
    for (c, plane) in dst.chunks_exact_mut(g.height * g.width).enumerate() {
        for (y, row) in plane.chunks_exact_mut(g.width).enumerate() {
            let at = (c * hp + y + g.padding) * wp + g.padding;
            for (d, &v) in row.iter_mut().zip(&padded[at..at + g.width]) {
                d.write(v);
            }
        }
    }
}

/// The adjoint of [`unfold2d_t`]: `[b, c * kh * kw, oh * ow]` -> `[b, c, h, w]`, each input
/// element adding its taps in increasing row, then position, order.
///
/// # Panics
/// If `cols` does not have the shape [`unfold2d_t`] gives for the geometry.
pub fn fold2d_t<F: Float>(cols: &Tensor<F>, g: &Conv2dGeometry) -> Tensor<F> {
    let s = cols.shape();
    let (oh, ow) = g.out_hw();
    assert!(
        s.len() == 3 && s[1] == g.patch_len() && s[2] == oh * ow,
        "fold2d_t: input {s:?} does not match [batch, {}, {}]",
        g.patch_len(),
        oh * ow
    );
    let (img, positions, taps) = (g.channels * g.height * g.width, oh * ow, g.patch_len());
    // SAFETY: `fold_image_t` writes every slot of the image's chunk it is given.
    let out = unsafe {
        per_image(cols.data(), taps * positions, s[0], img, |dst, src| {
            with_known_width!(ow, fold_image_t::<F>(g, dst, src))
        })
    };
    Tensor::from_vec(out, &[s[0], g.channels, g.height, g.width])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfold_and_fold_are_adjoint() {
        let g = Conv2dGeometry {
            channels: 2,
            height: 5,
            width: 4,
            kernel: (3, 2),
            stride: 2,
            padding: 1,
        };
        let x = Tensor::<f64>::from_vec(
            (0..3 * 40).map(|i| (i as f64 * 0.37).sin()).collect(),
            &[3, 2, 5, 4],
        );
        let u = unfold2d(&x, &g);
        let (oh, ow) = g.out_hw();
        assert_eq!(u.shape(), &[3, oh * ow, 12]);
        let y = Tensor::<f64>::from_vec(
            (0..u.len()).map(|i| (i as f64 * 0.11).cos()).collect(),
            u.shape(),
        );
        assert!((u.dot_f64(&y) - x.dot_f64(&fold2d(&y, &g))).abs() < 1e-12);
    }

    /// Geometries for the layout tests: square and not, strides 1-3, paddings 0-3, kernels that
    /// clip, one channel and many.
    fn geometries() -> Vec<Conv2dGeometry> {
        [
            (3, 8, 8, (3, 3), 1, 1),
            (16, 4, 4, (3, 3), 1, 1),
            (2, 5, 7, (3, 2), 2, 1),
            (1, 4, 4, (1, 1), 1, 0),
            (2, 3, 3, (2, 2), 1, 3),
            (1, 6, 5, (5, 5), 3, 2),
            (2, 9, 7, (3, 3), 2, 0),
            // Output widths the kernels are compiled for (28, and 7 at stride 2).
            (1, 28, 28, (3, 3), 1, 1),
            (2, 14, 14, (3, 3), 2, 1),
        ]
        .into_iter()
        .map(
            |(channels, height, width, kernel, stride, padding)| Conv2dGeometry {
                channels,
                height,
                width,
                kernel,
                stride,
                padding,
            },
        )
        .collect()
    }

    /// The per-tap loops that `for_each_run` replaced, as the reference for bit-identical results.
    fn taps(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = g.out_hw();
        let (kh, kw) = g.kernel;
        for p in 0..oh * ow {
            let (oy, ox) = (p / ow, p % ow);
            for c in 0..g.channels {
                for i in 0..kh {
                    for j in 0..kw {
                        let y = (oy * g.stride + i) as isize - g.padding as isize;
                        let x = (ox * g.stride + j) as isize - g.padding as isize;
                        if y >= 0 && x >= 0 && y < g.height as isize && x < g.width as isize {
                            let at = (c * g.height + y as usize) * g.width + x as usize;
                            f(p, (c * kh + i) * kw + j, at);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn runs_match_the_per_tap_loops_bitwise() {
        for g in geometries() {
            let Conv2dGeometry {
                channels,
                height,
                width,
                ..
            } = g;
            let (oh, ow) = g.out_hw();
            let (img, rows, pl) = (channels * height * width, oh * ow, g.patch_len());
            let x = Tensor::<f32>::from_vec(
                (0..2 * img).map(|i| (i as f32 * 0.37).sin()).collect(),
                &[2, channels, height, width],
            );
            let u = Tensor::<f32>::from_vec(
                (0..2 * rows * pl)
                    .map(|i| (i as f32 * 0.11).cos())
                    .collect(),
                &[2, rows, pl],
            );
            let (mut unfolded, mut folded) = (vec![0.0f32; 2 * rows * pl], vec![0.0f32; 2 * img]);
            for b in 0..2 {
                taps(&g, |p, c, i| {
                    unfolded[b * rows * pl + p * pl + c] = x.data()[b * img + i];
                    folded[b * img + i] += u.data()[b * rows * pl + p * pl + c];
                });
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(unfold2d(&x, &g).data()), bits(&unfolded), "{g:?}");
            assert_eq!(bits(fold2d(&u, &g).data()), bits(&folded), "{g:?}");
        }
    }

    impl Conv2dGeometry {
        /// Calls `f(row, position, input_offset, len)` for every run of `len` output positions of one
        /// tap (row `(channel, ky, kx)` of [`unfold2d_t`]'s layout) in one output row whose input
        /// elements are `input_offset + t * stride` for `t < len` (taps landing in the zero padding are
        /// skipped). With stride 1 a run reads consecutive input elements (up to a whole image row), so
        /// copying it is one `memcpy` where [`unfold2d`]'s runs are a kernel row long. Rows come in
        /// increasing order, and the positions of a row too.
        fn for_each_tap_run(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
            let (oh, ow) = self.out_hw();
            let (kh, kw) = self.kernel;
            let (s, pad) = (self.stride, self.padding);
            for c in 0..self.channels {
                for i in 0..kh {
                    for j in 0..kw {
                        let row = (c * kh + i) * kw + j;
                        // Output columns whose input column ox * s + j - pad lies in [0, width).
                        let ox0 = pad.saturating_sub(j).div_ceil(s);
                        let ox1 = match (self.width + pad).checked_sub(j + 1) {
                            Some(last) => (last / s + 1).min(ow),
                            None => 0,
                        };
                        if ox0 >= ox1 {
                            continue;
                        }
                        for oy in 0..oh {
                            let Some(y) =
                                (oy * s + i).checked_sub(pad).filter(|&y| y < self.height)
                            else {
                                continue;
                            };
                            let x = ox0 * s + j - pad;
                            f(
                                row,
                                oy * ow + ox0,
                                (c * self.height + y) * self.width + x,
                                ox1 - ox0,
                            );
                        }
                    }
                }
            }
        }
    }

    /// The fold that the padded-image kernel replaced (runs clipped to the image, added in tap
    /// row order into a zeroed image): the reference for `fold2d_t`'s bits.
    fn fold_by_runs(g: &Conv2dGeometry, cols: &[f32]) -> Vec<f32> {
        let (oh, ow) = g.out_hw();
        let mut dst = vec![0.0f32; g.channels * g.height * g.width];
        g.for_each_tap_run(|r, p, i, len| {
            for t in 0..len {
                dst[i + t * g.stride] += cols[r * oh * ow + p + t];
            }
        });
        dst
    }

    #[test]
    fn the_padded_fold_adds_as_the_clipped_runs_did() {
        for g in geometries() {
            let Conv2dGeometry {
                channels,
                height,
                width,
                ..
            } = g;
            let (oh, ow) = g.out_hw();
            let n = g.patch_len() * oh * ow;
            let mut rng = crate::Rng::new(15);
            let cols: Vec<f32> = (0..2 * n).map(|_| rng.normal() as f32).collect();
            let folded = fold2d_t(
                &Tensor::from_vec(cols.clone(), &[2, g.patch_len(), oh * ow]),
                &g,
            );
            let img = channels * height * width;
            for (b, chunk) in cols.chunks(n).enumerate() {
                let want: Vec<u32> = fold_by_runs(&g, chunk)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let got: Vec<u32> = folded.data()[b * img..][..img]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                assert_eq!(got, want, "{g:?}");
            }
        }
    }

    /// The transposed layout holds the same entries as `unfold2d`'s, and `fold2d_t` is its adjoint
    /// (against `fold2d` of the transposed cotangent) for strides, paddings and kernels that clip.
    #[test]
    fn the_transposed_unfold_is_the_unfold_transposed() {
        for g in geometries() {
            let Conv2dGeometry {
                channels,
                height,
                width,
                ..
            } = g;
            let (oh, ow) = g.out_hw();
            let (img, rows, pl) = (channels * height * width, oh * ow, g.patch_len());
            let x = Tensor::<f64>::from_vec(
                (0..2 * img).map(|i| (i as f64 * 0.37).sin()).collect(),
                &[2, channels, height, width],
            );
            let swap = |t: &Tensor<f64>| crate::kernels::permute(t, &[0, 2, 1]);
            let u = unfold2d_t(&x, &g);
            assert_eq!(u.shape(), &[2, pl, rows]);
            assert_eq!(u.data(), swap(&unfold2d(&x, &g)).data(), "{g:?}");
            // Over a reused buffer the slots hold old values: every one must be written (a slot
            // left out would keep its NaN here, where a fresh zeroed page would hide it).
            // Both with the width known at compile time (where it is one of those) and not.
            let image = &x.data()[..img];
            let mut known = vec![MaybeUninit::new(f64::NAN); pl * rows];
            with_known_width!(ow, unfold_image_t::<f64>(&g, &mut known, image));
            let mut any = vec![MaybeUninit::new(f64::NAN); pl * rows];
            unfold_image_t::<f64, 0>(&g, &mut any, image);
            for slots in [known, any] {
                // SAFETY: every slot was initialised with NaN before the call.
                let first: Vec<f64> = slots.iter().map(|v| unsafe { v.assume_init() }).collect();
                assert_eq!(first, u.data()[..pl * rows], "{g:?}");
            }
            let y = Tensor::<f64>::from_vec(
                (0..u.len()).map(|i| (i as f64 * 0.11).cos()).collect(),
                u.shape(),
            );
            let (a, b) = (fold2d_t(&y, &g), fold2d(&swap(&y), &g));
            for (a, b) in a.data().iter().zip(b.data()) {
                assert!((a - b).abs() < 1e-12, "{g:?}: {a} vs {b}");
            }
            assert!((u.dot_f64(&y) - x.dot_f64(&a)).abs() < 1e-12);
        }
    }

    #[test]
    fn unfold_reads_the_right_pixels() {
        // 1 channel 3x3 image, 2x2 kernel, stride 1, no padding: first patch is x[0,0],x[0,1],x[1,0],x[1,1].
        let g = Conv2dGeometry {
            channels: 1,
            height: 3,
            width: 3,
            kernel: (2, 2),
            stride: 1,
            padding: 0,
        };
        let x = Tensor::<f64>::from_vec((0..9).map(|i| i as f64).collect(), &[1, 1, 3, 3]);
        let u = unfold2d(&x, &g);
        assert_eq!(&u.data()[..4], &[0.0, 1.0, 3.0, 4.0]);
        assert_eq!(&u.data()[12..], &[4.0, 5.0, 7.0, 8.0]);
    }
}
