//! The standard normal CDF `Phi` and density `phi` in `f32`, without branches or calls, so that
//! the elementwise loops of the exact GELU (`x Phi(x)`, its slope `Phi + x phi` and curvature
//! `phi (2 - x^2)`) vectorise. `libm::erff` is a scalar call with branches: on a 512-wide MLP it
//! took longer than the layer's matrix products.
//!
//! Both share one exponential: with `a = x^2 / 2`,
//! - `phi(x) = e^-a / sqrt(2 pi)`;
//! - `Phi(-|x|) = erfc(z) / 2` with `z = |x| / sqrt 2`, written `erfc(z) = t P(t) e^-a` with
//!   `t = 1 / (1 + z / 2)`: `P(t) = erfcx(z) / t` is smooth on `t in [2/23, 1]` and fitted there by
//!   a degree-10 polynomial (Chebyshev interpolation of `erfcx` in double precision, relative
//!   error 4.7e-9; about 1.5e-7 evaluated in `f32`);
//! - `Phi(x) = 1 - Phi(-x)` for `x > 0`.
//!
//! `x^2` is split exactly into its rounded value and the rounding error (one fused multiply-add),
//! and `e^-a` takes both halves into one reduction, so that the rounding of `x^2` (an absolute
//! error of `2^-24 a`, i.e. a relative error of `e^-a` growing with `a`) never enters. The
//! polynomials run in fused multiply-adds (`f32::mul_add`: one instruction in the AVX-512 and
//! AVX2 builds of [`simd_fn`], which require FMA; a correctly rounded `fmaf` call elsewhere, so
//! the bits are the same on every path). Relative error, over `f32`s with `|x| <= 13`
//! (`crate::kernels::normal` tests): `phi` and `Phi` within 5e-7 (about 8 units in the last
//! place; `libm::erff` is within 1), for values down to `f32`'s smallest normal number;
//! `phi(x)` and `Phi(-|x|)` are 0 past `|x| ~ 13.2`, where they fall below it. `f64` keeps
//! `libm`'s `erf` and `exp` (`Float::normal_cdf_pdf`).

use std::mem::MaybeUninit;

use crate::kernels::{simd_fn, Order, Pair};

/// `log2 e`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `k * LN2_HI` is exact for every `|k| < 2^15` (Cody and Waite).
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 - LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 * 2^23`: adding it to an `f32` below `2^22` in magnitude rounds to an integer (to even)
/// held in the low bits of the sum.
const ROUND: f32 = 12_582_912.0;
/// Largest `a` with `e^-a` a normal `f32` (`2^-126 = e^-87.34`); beyond it `e^-a` is 0.
const EXP_NEG_MAX: f32 = 87.33;

/// `e^-(h + l)` for `h >= 0` and `|l|` at most half a unit in the last place of `h` (`h + l`
/// being `x^2 / 2` split exactly by [`normal_cdf_pdf`]); 0 for `h >= 87.33`. One reduction, as
/// [`exp_f32`]'s but with `l` subtracted from the reduced argument (`|r| <= ln 2 / 2 + 2^-18`,
/// where the degree-7 polynomial's truncation is 5e-9), and the polynomial and reduction in fused
/// multiply-adds. `2^-k` is one normal factor, `k` being at most 126.
#[inline(always)]
fn exp_neg_split(h: f32, l: f32) -> f32 {
    let c = if h < EXP_NEG_MAX { h } else { EXP_NEG_MAX };
    let shifted = c.mul_add(LOG2E, ROUND);
    let k = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let kf = shifted - ROUND;
    // r = k ln 2 - (h + l): `kf * LN2_HI - c` is exact, as in `exp_f32`.
    let r = kf.mul_add(LN2_HI, -c);
    let r = kf.mul_add(LN2_LO, r) - l;
    let mut p: f32 = 1.0 / 5040.0;
    for coefficient in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p.mul_add(r, coefficient);
    }
    let y = p * f32::from_bits(((127 - k) as u32) << 23);
    if h < EXP_NEG_MAX {
        y
    } else {
        0.0
    }
}

/// `ln(f32::MAX)` rounded down: from here on `e^x` is infinite.
const EXP_MAX: f32 = 88.722_83;

/// `e^x` for every `f32` (the engine's `exp` op in `f32`): `2^k e^r` with `k = round(x / ln 2)`,
/// `|r| <= ln 2 / 2` and a degree-7 Taylor polynomial (truncation 5e-9), without branches or
/// calls so that the softmax's loops vectorise (`libm`'s `expf` was a quarter of a GPT's step).
/// Within 2 units in the last place; 0 below `-87.33` (where `libm` still gives subnormal numbers
/// under `2^-126`), infinite from [`EXP_MAX`] on, NaN for NaN. `2^k` is applied as two factors
/// `2^(k/2)`, each a normal number for every `k` in `-126..=128`.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let c = if x > -EXP_NEG_MAX { x } else { -EXP_NEG_MAX };
    let c = if c < EXP_MAX { c } else { EXP_MAX };
    let shifted = c * LOG2E + ROUND;
    let k = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let kf = shifted - ROUND;
    let r = (c - kf * LN2_HI) - kf * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let (k1, k2) = (k >> 1, k - (k >> 1));
    let s1 = f32::from_bits(((127 + k1) as u32) << 23);
    let s2 = f32::from_bits(((127 + k2) as u32) << 23);
    let y = (p * s1) * s2;
    if x.is_nan() {
        x
    } else if x <= -EXP_NEG_MAX {
        0.0
    } else if x < EXP_MAX {
        y
    } else {
        f32::INFINITY
    }
}

/// `P(t) = erfcx(2 (1 - t) / t) / t` on `[2/23, 1]`, monomial coefficients from the constant up.
const P: [f32; 11] = [
    0.282_083_93,
    0.282_361_7,
    0.244_057_8,
    0.192_127_05,
    0.030_921_44,
    0.093_320_46,
    -0.115_637_56,
    -0.189_239_95,
    0.313_114_2,
    -0.164_294_26,
    0.031_185_225,
];

/// Smallest `t` the fit covers (`z = 9.5`, `|x| = 13.4`, where `e^-a` is already 0).
const T_MIN: f32 = 2.0 / 23.0;

/// `(Phi(x), phi(x))` of the standard normal distribution (module docs).
#[inline(always)]
pub fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    // Past 20 both tails are 0; the bound also keeps infinities out of `x^2` (NaN is restored below).
    let ax = if x.abs() < 20.0 { x.abs() } else { 20.0 };
    // x^2 = sq + sq_lo exactly (the rounding error of a product is a fused multiply-add away), so
    // the rounding of `x^2`, an absolute error that grows with `x^2 / 2`, never enters `e^-a`.
    let sq = ax * ax;
    let sq_lo = ax.mul_add(ax, -sq);
    let e = exp_neg_split(0.5 * sq, 0.5 * sq_lo);
    let pdf = std::f32::consts::FRAC_1_SQRT_2 * 0.5 * std::f32::consts::FRAC_2_SQRT_PI * e;
    let z = ax * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / z.mul_add(0.5, 1.0);
    let t = if t > T_MIN { t } else { T_MIN };
    let mut poly = P[10];
    for &c in P[..10].iter().rev() {
        poly = poly.mul_add(t, c);
    }
    // Phi(-|x|) = erfc(z) / 2.
    let tail = 0.5 * (t * poly * e);
    let cdf = if x < 0.0 { tail } else { 1.0 - tail };
    if x.is_nan() {
        (x, x)
    } else {
        (cdf, pdf)
    }
}

simd_fn! {
    /// The exact GELU `x Phi(x)` (`order` Value), its slope `Phi + x phi` (First) or curvature
    /// `phi (2 - x^2)` (Second) of every element of `xs`, into `out`. Not generic, so that it is
    /// compiled (and vectorised, [`simd_fn`]) once, here, whatever crate instantiates the
    /// generic code calling it.
    pub fn gelu_f32(order: Order, xs: &[f32], out: &mut [MaybeUninit<f32>]) {
        gelu_loop(order, xs, out)
    }
}

#[inline(always)]
fn gelu_loop(order: Order, xs: &[f32], out: &mut [MaybeUninit<f32>]) {
    match order {
        Order::Value => {
            for (o, &x) in out.iter_mut().zip(xs) {
                o.write(x * normal_cdf_pdf(x).0);
            }
        }
        Order::First => {
            for (o, &x) in out.iter_mut().zip(xs) {
                let (c, p) = normal_cdf_pdf(x);
                o.write(c + x * p);
            }
        }
        Order::Second => {
            for (o, &x) in out.iter_mut().zip(xs) {
                let p = normal_cdf_pdf(x).1;
                o.write(p * (2.0 - x * x));
            }
        }
    }
}

simd_fn! {
    /// Two consecutive derivatives of the GELU at once ([`Pair`]), as [`gelu_f32`] computes them.
    pub fn gelu_pair_f32(
        pair: Pair,
        xs: &[f32],
        a: &mut [MaybeUninit<f32>],
        b: &mut [MaybeUninit<f32>],
    ) {
        gelu_pair_loop(pair, xs, a, b)
    }
}

#[inline(always)]
fn gelu_pair_loop(pair: Pair, xs: &[f32], a: &mut [MaybeUninit<f32>], b: &mut [MaybeUninit<f32>]) {
    match pair {
        Pair::ValueSlope => {
            for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(xs) {
                let (c, p) = normal_cdf_pdf(x);
                a.write(x * c);
                b.write(c + x * p);
            }
        }
        Pair::SlopeCurvature => {
            for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(xs) {
                let (c, p) = normal_cdf_pdf(x);
                a.write(c + x * p);
                b.write(p * (2.0 - x * x));
            }
        }
    }
}

simd_fn! {
    /// [`exp_f32`] of every element of `xs` into `out`, vectorised ([`simd_fn`]).
    pub fn exp_f32_slice(xs: &[f32], out: &mut [MaybeUninit<f32>]) {
        for (o, &x) in out.iter_mut().zip(xs) {
            o.write(exp_f32(x));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::as_slots;

    #[test]
    fn the_gelu_loops_give_the_bits_of_the_elementwise_rule() {
        use crate::kernels::Unary;
        let xs: Vec<f32> = (0..5000).map(|i| (i as f32 - 2500.0) * 0.0061).collect();
        let mut out = vec![0.0; xs.len()];
        for order in [Order::Value, Order::First, Order::Second] {
            // SAFETY: the kernel writes values only.
            gelu_f32(order, &xs, unsafe { as_slots(&mut out) });
            for (&o, &x) in out.iter().zip(&xs) {
                assert_eq!(
                    o.to_bits(),
                    Unary::Gelu.eval(order, x).to_bits(),
                    "{order:?} {x}"
                );
            }
        }
        let (mut a, mut b) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        for pair in [Pair::ValueSlope, Pair::SlopeCurvature] {
            // SAFETY: the kernel writes values only.
            gelu_pair_f32(pair, &xs, unsafe { as_slots(&mut a) }, unsafe {
                as_slots(&mut b)
            });
            for ((&a, &b), &x) in a.iter().zip(&b).zip(&xs) {
                let (ea, eb) = Unary::Gelu.eval_pair(pair, x);
                assert_eq!(
                    (a.to_bits(), b.to_bits()),
                    (ea.to_bits(), eb.to_bits()),
                    "{x}"
                );
            }
        }
    }

    fn exact(x: f64) -> (f64, f64) {
        let cdf = if x < 0.0 {
            0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
        } else {
            1.0 - 0.5 * libm::erfc(x / std::f64::consts::SQRT_2)
        };
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (cdf, pdf)
    }

    /// Relative error of `got` against `want`, for values `f32` holds as normal numbers.
    fn rel(got: f32, want: f64) -> f64 {
        if want.abs() < f32::MIN_POSITIVE as f64 {
            return 0.0;
        }
        (got as f64 - want).abs() / want.abs()
    }

    #[test]
    fn cdf_and_pdf_match_double_precision_on_every_f32_up_to_13() {
        // Every 13th f32 in [2^-20, 13] (of about 11 million) and its negative, and small ones.
        let (mut worst_cdf, mut worst_pdf) = (0.0f64, 0.0f64);
        let mut bits = (2.0f32.powi(-20)).to_bits();
        while f32::from_bits(bits) <= 13.0 {
            let x = f32::from_bits(bits);
            for x in [x, -x] {
                let (c, p) = normal_cdf_pdf(x);
                let (ce, pe) = exact(x as f64);
                worst_cdf = worst_cdf.max(rel(c, ce));
                worst_pdf = worst_pdf.max(rel(p, pe));
            }
            bits += 13;
        }
        assert!(worst_cdf < 5e-7, "Phi: relative error {worst_cdf:e}");
        assert!(worst_pdf < 5e-7, "phi: relative error {worst_pdf:e}");
        for x in [0.0f32, -0.0, 1e-30, -1e-30] {
            let (c, p) = normal_cdf_pdf(x);
            assert!(
                (c - 0.5).abs() < 1e-7 && rel(p, exact(0.0).1) < 1e-7,
                "{x}: {c} {p}"
            );
        }
    }

    #[test]
    fn tails_underflow_to_zero_and_nan_propagates() {
        for x in [13.5f32, 20.0, 1e10, f32::INFINITY] {
            assert_eq!(normal_cdf_pdf(x), (1.0, 0.0), "{x}");
            assert_eq!(normal_cdf_pdf(-x), (0.0, 0.0), "-{x}");
        }
        let (c, p) = normal_cdf_pdf(f32::NAN);
        assert!(c.is_nan() && p.is_nan());
        assert_eq!(exp_neg_split(0.0, 0.0), 1.0);
        assert_eq!(exp_neg_split(87.33, 0.0), 0.0);
        assert_eq!(exp_neg_split(200.0, 0.0), 0.0);
    }

    #[test]
    fn exp_is_within_two_units_in_the_last_place_and_its_loop_has_the_bits_of_the_rule() {
        let (mut worst, mut x) = (0.0f64, -87.3f32);
        let mut xs = Vec::new();
        while x < 88.7 {
            worst = worst.max(rel(exp_f32(x), (x as f64).exp()));
            xs.push(x);
            x += 7.3e-4;
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        // Around 0, where r is tiny and k = 0, and exactly at the integers of k's rounding.
        for x in [
            0.0f32,
            -0.0,
            1e-30,
            -1e-30,
            1e-8,
            0.5 * std::f32::consts::LN_2,
        ] {
            assert!(rel(exp_f32(x), (x as f64).exp()) < 2.5e-7, "{x}");
        }
        let mut out = vec![0.0; xs.len()];
        // SAFETY: the kernel writes values only.
        exp_f32_slice(&xs, unsafe { as_slots(&mut out) });
        for (&o, &x) in out.iter().zip(&xs) {
            assert_eq!(o.to_bits(), exp_f32(x).to_bits(), "{x}");
        }
    }

    #[test]
    fn exp_saturates_to_zero_and_infinity_and_nan_propagates() {
        for x in [-87.34f32, -100.0, -1e30, f32::NEG_INFINITY] {
            assert_eq!(exp_f32(x), 0.0, "{x}");
        }
        for x in [88.73f32, 89.0, 1e30, f32::INFINITY] {
            assert_eq!(exp_f32(x), f32::INFINITY, "{x}");
        }
        assert!(exp_f32(f32::NAN).is_nan());
        let near_max = exp_f32(88.72);
        assert!(near_max.is_finite() && rel(near_max, (88.72f32 as f64).exp()) < 2.5e-7);
        let near_min = exp_f32(-87.3);
        assert!(near_min > 0.0 && rel(near_min, (-87.3f32 as f64).exp()) < 2.5e-7);
    }

    #[test]
    fn the_split_exponential_is_within_two_units_in_the_last_place_of_its_exact_sum() {
        // `h` on a grid up to where `e^-h` leaves the normal numbers, `l` at its extremes (half a
        // unit in the last place of `h`, either sign) and 0; the reference is `e^-(h + l)` in `f64`.
        let (mut worst, mut h) = (0.0f64, 0.0f32);
        while h < 87.0 {
            let half_ulp = 0.5 * (f32::from_bits(h.to_bits() + 1) - h);
            for l in [0.0, half_ulp, -half_ulp, 0.3 * half_ulp] {
                let want = (-(h as f64 + l as f64)).exp();
                worst = worst.max(rel(exp_neg_split(h, l), want));
            }
            h += 1.0e-4;
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
    }
}
