//! `sinf`, `cosf` and `expf` with the results of glibc's x86-64 libm (its FMA variants, which
//! llama.cpp's CPU backend calls on this kind of machine), bit for bit: the algorithms of Arm's
//! optimized-routines (polynomials in f64 after a reduction by pi/2, or by a table of 2^(i/32)),
//! with their published coefficients. Owns these three functions only; the `libm` crate's
//! versions differ from glibc's in the last bit for about 2% of inputs, which is enough to move
//! a rounded activation. Used where Spool follows llama.cpp's numerics (Gemma's RoPE angles,
//! the flash-attention softmax); everything else keeps `libm`.
//!
//! Provenance: the reductions, polynomials and coefficients are those of Arm Optimized Routines
//! (`math/sinf.c`, `math/cosf.c`, `math/expf.c`; Copyright (c) Arm Limited; licensed MIT OR
//! Apache-2.0 WITH LLVM-exception, the code glibc ships), rewritten in Rust; see
//! docs/dependencies.md.

/// An f64 from its bits (the coefficients below are exact binary values).
const fn f(bits: u64) -> f64 {
    f64::from_bits(bits)
}

/// `a * b + c` rounded once.
#[inline]
fn fma(a: f64, b: f64, c: f64) -> f64 {
    libm::fma(a, b, c)
}

/// The polynomials of sin and cos on [-pi/4, pi/4]; the second set computes -cos.
struct SinCos {
    c: [f64; 5],
    s: [f64; 3],
}

const SINCOS: [SinCos; 2] = [
    SinCos {
        c: [
            1.0,
            f(0xbfdf_ffff_fd0c_621c),
            f(0x3fa5_5553_e106_8f19),
            f(0xbf56_c087_e89a_359d),
            f(0x3ef9_9343_027b_f8c3),
        ],
        s: [f(0xbfc5_5554_5995_a603), f(0x3f81_1076_0523_0bc4), f(0xbf29_94eb_3774_cf24)],
    },
    SinCos {
        c: [
            -1.0,
            f(0x3fdf_ffff_fd0c_621c),
            f(0xbfa5_5553_e106_8f19),
            f(0x3f56_c087_e89a_359d),
            f(0xbef9_9343_027b_f8c3),
        ],
        s: [f(0xbfc5_5554_5995_a603), f(0x3f81_1076_0523_0bc4), f(0xbf29_94eb_3774_cf24)],
    },
];
/// 2/pi scaled by 2^24, and pi/2.
const HPI_INV: f64 = f(0x4164_5f30_6dc9_c883);
const HPI: f64 = f(0x3ff9_21fb_5444_2d18);
/// pi/2 scaled by 2^-62 (the large-argument reduction's fixed point).
const PI63: f64 = f(0x3c19_21fb_5444_2d18);
const SIGN: [f64; 4] = [1.0, -1.0, -1.0, 1.0];
/// The bits of 4/pi, eight new bits per entry.
const INV_PIO4: [u32; 24] = [
    0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529, 0x441529fc, 0x1529fc27,
    0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0, 0x34ddc0db, 0xddc0db62, 0xc0db6295,
    0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041,
];

/// The exponent and top mantissa bits of `x`, without the sign.
fn abstop12(x: f32) -> u32 {
    (x.to_bits() >> 20) & 0x7ff
}

/// sin (`n` even) or cos (`n` odd) of the reduced `x`, `x2 = x * x`.
fn poly(x: f64, x2: f64, p: &SinCos, n: i32) -> f32 {
    if n & 1 == 0 {
        let x3 = x * x2;
        let s1 = fma(x2, p.s[2], p.s[1]);
        let x5 = x3 * x2;
        let s = fma(x3, p.s[0], x);
        fma(x5, s1, s) as f32
    } else {
        let x4 = x2 * x2;
        let c2 = fma(x2, p.c[4], p.c[3]);
        let c1 = fma(x2, p.c[1], p.c[0]);
        let x6 = x4 * x2;
        let c = fma(x4, p.c[2], c1);
        fma(x6, c2, c) as f32
    }
}

/// `x` minus the nearest multiple `n` of pi/2, and `n`, for |x| < 120.
fn reduce_fast(x: f64) -> (f64, i32) {
    let r = x * HPI_INV;
    let n = (r as i32).wrapping_add(0x80_0000) >> 24;
    (fma(-(n as f64), HPI, x), n)
}

/// As [`reduce_fast`] for any finite |x| ≥ 120 (bits `xi`), in fixed point with 4/pi's bits;
/// the sign of `x` is left out of `n`.
fn reduce_large(xi: u32) -> (f64, i32) {
    let arr = &INV_PIO4[((xi >> 26) & 15) as usize..];
    let shift = (xi >> 23) & 7;
    let xi = ((xi & 0xff_ffff) | 0x80_0000) << shift;
    let res0 = xi.wrapping_mul(arr[0]) as u64;
    let res1 = xi as u64 * arr[4] as u64;
    let res2 = xi as u64 * arr[8] as u64;
    let res0 = ((res2 >> 32) | (res0 << 32)).wrapping_add(res1);
    let n = res0.wrapping_add(1 << 61) >> 62;
    let res0 = res0.wrapping_sub(n << 62);
    (res0 as i64 as f64 * PI63, n as i32)
}

/// sin (`cos` false) or cos of `y`.
fn sin_or_cos(y: f32, cos: bool) -> f32 {
    let x = y as f64;
    if abstop12(y) < abstop12(core::f32::consts::FRAC_PI_4) {
        if abstop12(y) < abstop12(f32::from_bits(0x3980_0000)) {
            // |y| < 2^-12: sin y = y and cos y = 1 in f32.
            return if cos { 1.0 } else { y };
        }
        return poly(x, x * x, &SINCOS[0], cos as i32);
    }
    if !y.is_finite() {
        return f32::NAN;
    }
    let (x, n, q) = if abstop12(y) < abstop12(120.0) {
        let (x, n) = reduce_fast(x);
        (x, n, n)
    } else {
        let xi = y.to_bits();
        let (x, n) = reduce_large(xi);
        (x, n, n.wrapping_add((xi >> 31) as i32))
    };
    let p = &SINCOS[((q & 2) != 0) as usize];
    poly(x * SIGN[(q & 3) as usize], x * x, p, if cos { n ^ 1 } else { n })
}

/// sin `x`, as glibc computes it.
pub fn sinf(x: f32) -> f32 {
    sin_or_cos(x, false)
}

/// cos `x`, as glibc computes it.
pub fn cosf(x: f32) -> f32 {
    sin_or_cos(x, true)
}

/// 2^(i/32) for i in 0..32, minus `i << 47` (the exponent is added back from `k`).
const EXP2_TAB: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];
/// The cubic of 2^(r/32) - 1 (scaled by 32^-3, 32^-2, 32^-1), 32/ln 2, and 1.5 * 2^52.
const EXP_POLY: [f64; 3] = [f(0x3ebc_6af8_4b91_2394), f(0x3f2e_bfce_50fa_c4f3), f(0x3f96_2e42_ff0c_52d6)];
const INV_LN2_32: f64 = f(0x4047_1547_652b_82fe);
const SHIFT: f64 = f(0x4338_0000_0000_0000);

/// e^x, as glibc computes it.
pub fn expf(x: f32) -> f32 {
    let abstop = abstop12(x);
    if abstop >= abstop12(88.0) {
        if x == f32::NEG_INFINITY {
            return 0.0;
        }
        if abstop >= 0x7f8 {
            return x + x;
        }
        if x > f32::from_bits(0x42b1_7217) {
            return f32::INFINITY;
        }
        if x < f32::from_bits(0xc2cf_f1b4) {
            return 0.0;
        }
    }
    // x * 32 / ln 2 = k + r with r in [-1/2, 1/2]; e^x = 2^(k/32) 2^(r/32).
    let z = INV_LN2_32 * x as f64;
    let kd = z + SHIFT;
    let ki = kd.to_bits();
    let r = z - (kd - SHIFT);
    let s = f64::from_bits(EXP2_TAB[(ki % 32) as usize].wrapping_add(ki << 47));
    let p = fma(EXP_POLY[0], r, EXP_POLY[1]);
    let y = fma(EXP_POLY[2], r, 1.0);
    let y = fma(p, r * r, y);
    (y * s) as f32
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn they_agree_with_libm_to_an_ulp_and_match_known_values() {
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        // Coarser under Miri, which runs each call a thousand times slower.
        let step = if cfg!(miri) { 3.7 } else { 0.013 };
        let mut x = -200.0f32;
        while x < 200.0 {
            assert!(ulps(sinf(x), libm::sinf(x)) <= 1, "sin {x}");
            assert!(ulps(cosf(x), libm::cosf(x)) <= 1, "cos {x}");
            x += step;
        }
        let mut x = -100.0f32;
        while x < 80.0 {
            assert!(ulps(expf(x), libm::expf(x)) <= 1, "exp {x}");
            x += step / 2.0;
        }
        // Large arguments (the fixed-point reduction) and the special cases.
        for x in [1.0e4f32, 32767.0, -5.0e5, 1.0e30] {
            assert!(ulps(sinf(x), libm::sinf(x)) <= 1 && ulps(cosf(x), libm::cosf(x)) <= 1, "{x}");
        }
        assert_eq!((expf(f32::NEG_INFINITY), expf(0.0), cosf(0.0), sinf(0.0)), (0.0, 1.0, 1.0, 0.0));
        assert!(sinf(f32::INFINITY).is_nan() && expf(f32::NAN).is_nan());
        // Inputs where libm and glibc differ (glibc's value, read from an x86-64 machine).
        assert_eq!(sinf(1.0), 0.841_470_96);
    }
}
