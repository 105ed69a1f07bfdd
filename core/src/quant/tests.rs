//! Tests of the quant module: the type table, f16, the block decoders, the scalar and vector
//! kernels, activation rounding. Tests only; no kernel code lives here.

use super::blocks::{QK, QK_K};
use super::*;

#[test]
fn f16_conversion_matches_known_values() {
    assert_eq!(f16_to_f32(0x3c00), 1.0);
    assert_eq!(f16_to_f32(0xc000), -2.0);
    assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
    assert_eq!(f16_to_f32(0x7bff), 65504.0);
    assert!(f16_to_f32(0x7e00).is_nan());
}

const ONE_HALF: u16 = 0x3800; // 0.5
const QUARTER: u16 = 0x3400; // 0.25
const MINUS_ONE: u16 = 0xbc00; // -1.0
const TWO: u16 = 0x4000; // 2.0

/// Bytes of the largest block (Q6_K), written out: the tests build blocks by hand, independently
/// of `blocks.rs`.
const MAX_BLOCK: usize = 210;

/// Packs a block of `ty` from its fields and quants, independently of the decoders; returns
/// the bytes and the values ggml's dequantization gives. Quants are `q[i]` for element `i`.
#[allow(clippy::needless_range_loop)] // indices mirror the layout descriptions
fn pack(ty: GgmlType, seed: u32) -> ([u8; MAX_BLOCK], [f32; 256]) {
    let mut b = [0u8; MAX_BLOCK];
    let mut y = [0.0f32; 256];
    let bits = |i: usize, n: u32| ((i as u32 * 7 + seed * 13 + (i as u32 >> 3)) % (1 << n)) as u8;
    let put16 = |b: &mut [u8], at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    match ty {
        GgmlType::Q8_0 => {
            put16(&mut b, 0, ONE_HALF);
            for i in 0..32 {
                let q = bits(i, 8) as i8;
                b[2 + i] = q as u8;
                y[i] = q as f32 * 0.5;
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let q1 = ty == GgmlType::Q4_1;
            put16(&mut b, 0, QUARTER);
            if q1 {
                put16(&mut b, 2, MINUS_ONE);
            }
            let at = if q1 { 4 } else { 2 };
            for i in 0..32 {
                let q = bits(i, 4);
                b[at + i % 16] |= q << (4 * (i / 16));
                y[i] = if q1 { q as f32 * 0.25 - 1.0 } else { (q as f32 - 8.0) * 0.25 };
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let q1 = ty == GgmlType::Q5_1;
            put16(&mut b, 0, ONE_HALF);
            if q1 {
                put16(&mut b, 2, MINUS_ONE);
            }
            let (hat, at) = if q1 { (4, 8) } else { (2, 6) };
            for i in 0..32 {
                let q = bits(i, 5);
                b[at + i % 16] |= (q & 15) << (4 * (i / 16));
                b[hat + i / 8] |= (q >> 4) << (i % 8);
                y[i] = if q1 { q as f32 * 0.5 - 1.0 } else { (q as f32 - 16.0) * 0.5 };
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let five = ty == GgmlType::Q5_K;
            put16(&mut b, 0, QUARTER);
            put16(&mut b, 2, ONE_HALF);
            let sc: [u8; 8] = core::array::from_fn(|j| bits(j + 40, 6));
            let mn: [u8; 8] = core::array::from_fn(|j| bits(j + 90, 6));
            for j in 0..4 {
                b[4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
                b[8 + j] = mn[j] | ((mn[j + 4] >> 4) << 6);
                b[12 + j] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
            }
            let at = if five { 48 } else { 16 };
            for i in 0..256 {
                let q = bits(i, if five { 5 } else { 4 });
                let (g, half, l) = (i / 64, (i / 32) % 2, i % 32);
                b[at + 32 * g + l] |= (q & 15) << (4 * half);
                if five {
                    b[16 + l] |= (q >> 4) << (i / 32);
                }
                let s = i / 32;
                y[i] = 0.25 * sc[s] as f32 * q as f32 - 0.5 * mn[s] as f32;
            }
        }
        GgmlType::Q6_K => {
            put16(&mut b, 208, TWO);
            let sc: [i8; 16] = core::array::from_fn(|j| bits(j + 7, 8) as i8);
            for (j, &s) in sc.iter().enumerate() {
                b[192 + j] = s as u8;
            }
            for i in 0..256 {
                let q = bits(i, 6);
                let (n, quad, l) = (i / 128, (i % 128) / 32, i % 32);
                b[64 * n + 32 * (quad % 2) + l] |= (q & 15) << (4 * (quad / 2));
                b[128 + 32 * n + l] |= (q >> 4) << (2 * quad);
                y[i] = 2.0 * sc[i / 16] as f32 * (q as f32 - 32.0);
            }
        }
        GgmlType::BF16 => {
            for i in 0..105 {
                let v = (bits(i, 8) as f32 - 100.0) * 0.125;
                put16(&mut b, 2 * i, (v.to_bits() >> 16) as u16);
                y[i] = v;
            }
        }
        _ => unreachable!(),
    }
    (b, y)
}

/// The supported types without F32 and F16.
const QUANTS: &[GgmlType] = SUPPORTED.split_at(2).1;

/// (elements, bytes) of one test row: one block, or 105 elements of BF16.
fn row_shape(ty: GgmlType) -> (usize, usize) {
    match ty {
        GgmlType::BF16 => (105, 210),
        _ => {
            let (e, b) = ty.block();
            (e as usize, b as usize)
        }
    }
}

#[test]
fn hand_built_blocks_decode_to_their_values() {
    for &ty in QUANTS {
        assert!(ty.is_supported());
        let (elems, bytes) = row_shape(ty);
        for seed in 0..3 {
            let (b, want) = pack(ty, seed);
            let mut out = [f32::NAN; 256];
            dequantize_row(ty, &b[..bytes], &mut out[..elems]);
            assert_eq!(out[..elems], want[..elems], "{ty:?} seed {seed}");
        }
    }
}

#[test]
fn known_values_of_each_layout() {
    // Q4_0: d = 0.5, nibbles 0x0 and 0xf: -8 * 0.5 and 7 * 0.5.
    let mut b = [0u8; 18];
    b[..2].copy_from_slice(&ONE_HALF.to_le_bytes());
    b[2] = 0xf0;
    let mut y = [0.0; 32];
    dequantize_row(GgmlType::Q4_0, &b, &mut y);
    assert_eq!((y[0], y[16], y[1]), (-4.0, 3.5, -4.0));
    // Q5_0: the high bit of element 16 is bit 16 of qh.
    let mut b = [0u8; 22];
    b[..2].copy_from_slice(&ONE_HALF.to_le_bytes());
    b[2 + 2] = 0x01;
    dequantize_row(GgmlType::Q5_0, &b, &mut y);
    assert_eq!((y[0], y[16]), (-8.0, 0.0));
    // BF16 is the top half of an f32.
    dequantize_row(GgmlType::BF16, &[0x80, 0x3f, 0x40, 0xc0], &mut y[..2]);
    assert_eq!(&y[..2], &[1.0, -3.0]);
    // Q6_K: every quant 32 (zero), and quant 0 of element 0 with scale 1 and d 2: -64.
    let mut b = [0u8; 210];
    for v in &mut b[128..192] {
        *v = 0xaa; // high bits 2 for all four
    }
    b[128] = 0xa8; // element 0's high bits 0
    b[192] = 1;
    b[208..].copy_from_slice(&TWO.to_le_bytes());
    let mut y = [1.0; 256];
    dequantize_row(GgmlType::Q6_K, &b, &mut y);
    assert_eq!(y[0], -64.0);
    assert!(y[1..].iter().all(|&v| v == 0.0));
}

#[test]
fn matvec_on_unaligned_blocks_sums_the_decoded_row_in_order() {
    for &ty in QUANTS {
        let (elems, bytes) = row_shape(ty);
        // Three rows, starting at an odd address: no alignment is assumed.
        let mut buf = [0u8; 3 * MAX_BLOCK + 1];
        let mut rows = [[0.0f32; 256]; 3];
        for (r, dec) in rows.iter_mut().enumerate() {
            let (b, y) = pack(ty, r as u32 + 5);
            buf[1 + r * bytes..1 + (r + 1) * bytes].copy_from_slice(&b[..bytes]);
            *dec = y;
        }
        let x: [f32; 256] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        let mut out = [0.0; 3];
        matvec(ty, &buf[1..1 + 3 * bytes], &x[..elems], &mut out);
        for (r, dec) in rows.iter().enumerate() {
            let mut want = 0.0f32;
            for (w, xi) in dec[..elems].iter().zip(&x) {
                want += w * xi;
            }
            assert_eq!(out[r], want, "{ty:?} row {r}");
        }
    }
}

#[test]
fn short_or_ragged_input_does_not_panic() {
    let bytes = [0xffu8; 700];
    let x = [1.0f32; 300];
    let mut out = [0.0f32; 300];
    for &ty in QUANTS {
        for n in [0, 1, 17, 33, 211, 699] {
            matvec(ty, &bytes[..n], &x[..n.min(300)], &mut out[..3]);
            matvec(ty, &bytes[..n], &x[..5], &mut out[..1]);
            dequantize_row(ty, &bytes[..n], &mut out[..n.min(300)]);
            dequantize_row(ty, &bytes[..n], &mut out[..7]);
        }
    }
}

/// The AVX2 Q8 activation rounding writes the same bytes as the portable one, ties
/// (exact halves), zeros, denormals, NaN and infinities included.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_q8_0_activation_rounding_is_bit_identical() {
    extern crate std;
    let ok = std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c");
    if !ok {
        return;
    }
    // SAFETY: the CPU was just checked for avx2, fma and f16c.
    let k = unsafe { Kernels::avx2_q8() };
    let mut x = [0.0f32; 32 * 64];
    let mut seed = 12345u32;
    for (i, v) in x.iter_mut().enumerate() {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let u = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
        *v = match (i / 32) % 8 {
            // 127 at the max: every k + 0.5 up to 126.5 is an exact tie.
            0 => (i % 32) as f32 * 4.0 - 62.0 + if i % 32 == 0 { 127.0 + 62.0 } else { 0.5 },
            1 => 0.0,
            2 => u * 1e-40,
            3 => {
                if i % 7 == 0 {
                    f32::NAN
                } else {
                    u
                }
            }
            4 => {
                if i % 11 == 0 {
                    f32::INFINITY
                } else {
                    -u
                }
            }
            5 => -((i % 32) as f32 + 0.5),
            6 => u * 1e30,
            _ => u * 3.0,
        };
    }
    let (mut a, mut b) = ([0u8; 36 * 64], [1u8; 36 * 64]);
    quantize_activations(GgmlType::Q8_0, &x, &mut a);
    k.quantize_activations(GgmlType::Q8_0, &x, &mut b);
    assert_eq!(a, b);
}

/// The AVX2 kernels, if this CPU has them.
#[cfg(target_arch = "x86_64")]
fn avx2() -> Option<Kernels> {
    extern crate std;
    let ok = std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c");
    // SAFETY: the CPU was just checked for avx2, fma and f16c.
    ok.then(|| unsafe { Kernels::avx2() })
}

/// Rows of `blocks` packed blocks each (or 77 elements of F32/F16/BF16), their decoded
/// values, and an input (for the x86 kernel tests).
#[cfg(target_arch = "x86_64")]
fn multi_block_rows(ty: GgmlType, rows: usize) -> (([u8; 4096], usize), [[f32; 512]; 3], usize) {
    let mut bytes = [0u8; 4096];
    let mut values = [[0.0f32; 512]; 3];
    let (elems, bpb) = ty.block();
    let (elems, bpb) = (elems as usize, bpb as usize);
    let cols = if elems == 1 {
        77
    } else if elems == 32 {
        9 * 32
    } else {
        2 * 256
    };
    let row_bytes = cols / elems * bpb;
    for (r, vals) in values.iter_mut().enumerate().take(rows) {
        if elems == 1 {
            for (i, v) in vals[..cols].iter_mut().enumerate() {
                let f = ((i * 37 + r * 11) % 101) as f32 * 0.03125 - 1.5;
                *v = f;
                let at = r * row_bytes + i * bpb;
                match ty {
                    GgmlType::F32 => bytes[at..at + 4].copy_from_slice(&f.to_le_bytes()),
                    GgmlType::BF16 => bytes[at..at + 2].copy_from_slice(&((f.to_bits() >> 16) as u16).to_le_bytes()),
                    // Multiples of 1/32 below 4 are exact halves: sign, exponent, 10 bits.
                    _ => {
                        let h = half_from_exact(f);
                        bytes[at..at + 2].copy_from_slice(&h.to_le_bytes());
                    }
                }
            }
        } else {
            for blk in 0..cols / elems {
                let (b, y) = pack(ty, (r * 7 + blk) as u32);
                let at = r * row_bytes + blk * bpb;
                bytes[at..at + bpb].copy_from_slice(&b[..bpb]);
                vals[blk * elems..(blk + 1) * elems].copy_from_slice(&y[..elems]);
            }
        }
    }
    ((bytes, row_bytes), values, cols)
}

/// An f32 that is exactly a half (normal range) to its bits.
#[cfg(target_arch = "x86_64")]
fn half_from_exact(f: f32) -> u16 {
    if f == 0.0 {
        return 0;
    }
    let b = f.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_kernels_agree_with_the_scalar_path() {
    let Some(k) = avx2() else { return };
    assert_eq!(k.path(), KernelPath::Avx2);
    for ty in [GgmlType::F32, GgmlType::F16].into_iter().chain(QUANTS.iter().copied()) {
        let ((bytes, row_bytes), values, cols) = multi_block_rows(ty, 3);
        use GgmlType::*;
        assert_eq!(
            k.vectorized(ty),
            matches!(ty, F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q4_K | Q5_K | Q6_K)
        );
        let x: [f32; 512] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        // The full input, and one cut short (a partial last block runs the scalar code).
        for n in [cols, cols - 5] {
            let mut buf = [0u8; 4097];
            buf[1..1 + 3 * row_bytes].copy_from_slice(&bytes[..3 * row_bytes]);
            let w_unaligned = &buf[1..1 + 3 * row_bytes];
            let (mut simd, mut scalar) = ([0.0f32; 3], [0.0f32; 3]);
            k.matvec(ty, w_unaligned, &x[..n], &mut simd);
            Kernels::SCALAR.matvec(ty, w_unaligned, &x[..n], &mut scalar);
            for r in 0..3 {
                let mag: f32 = values[r][..n].iter().zip(&x).map(|(w, x)| (w * x).abs()).sum();
                let d = (simd[r] - scalar[r]).abs();
                assert!(d <= 1e-5 * mag + 1e-6, "{ty:?} n {n} row {r}: {} vs {}", simd[r], scalar[r]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_kernels_do_not_panic_on_short_or_ragged_input() {
    let Some(k) = avx2() else { return };
    let bytes = [0x3cu8; 700];
    let x = [1.0f32; 300];
    let mut out = [0.0f32; 300];
    for ty in [GgmlType::F32, GgmlType::F16].into_iter().chain(QUANTS.iter().copied()) {
        for n in [0, 1, 17, 33, 211, 699] {
            k.matvec(ty, &bytes[..n], &x[..n.min(300)], &mut out[..3]);
            k.matvec(ty, &bytes[..n], &x[..5], &mut out[..1]);
        }
    }
}

#[test]
fn f32_to_f16_rounds_to_nearest_even() {
    for h in 0..=u16::MAX {
        let f = f16_to_f32(h);
        if !f.is_nan() {
            assert_eq!(f32_to_f16(f), h, "{h:#06x}");
        }
    }
    assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00); // halfway: down to even
    assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), 0x3c02); // halfway: up to even
    assert_eq!(f32_to_f16(1.0 + 1.1 / 2048.0), 0x3c01);
    assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds up to infinity
    assert_eq!(f32_to_f16(-1e-9), 0x8000);
    assert_eq!(f32_to_f16(3.0e-8), 0x0001); // above half the smallest subnormal
    assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000); // half the smallest subnormal: to even
    assert_eq!(f32_to_f16(3.0 * 2f32.powi(-26)), 0x0001);
    assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
    assert_eq!(f32_to_f16(1e-9), 0);
    assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
    // Every midpoint between neighbouring finite halves rounds to the even one, and the
    // f32 values just around it to the nearer one (sampled under Miri, which is slow).
    for h in (0..0x7bffu16).step_by(if cfg!(miri) { 97 } else { 1 }) {
        let (v, next) = (f16_to_f32(h), f16_to_f32(h + 1));
        assert_eq!(f32_to_f16(-v), h | 0x8000);
        let mid = ((v as f64 + next as f64) / 2.0) as f32;
        let even = if h & 1 == 0 { h } else { h + 1 };
        assert_eq!(f32_to_f16(mid), even, "midpoint after {h:#x}");
        assert_eq!(f32_to_f16(f32::from_bits(mid.to_bits() + 1)), h + 1);
        assert_eq!(f32_to_f16(f32::from_bits(mid.to_bits() - 1)), h);
    }
}

/// The decoded f32 value of quantized activation `i` and the block scale.
fn q8_value(vt: GgmlType, xq: &[u8], i: usize) -> f32 {
    let (e, b) = if vt == GgmlType::Q8_0 { (QK, Q8_0_X_BYTES) } else { (QK_K, Q8_K_X_BYTES) };
    let blk = &xq[i / e * b..];
    f32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]) * (blk[4 + i % e] as i8) as f32
}

#[test]
fn activations_round_like_ggml_reference() {
    // Q8_0 (ggml's x86 quantize_row_q8_0): d = max|x| / 127, q = round half to even of
    // x * (127 / max|x|), d kept as f16.
    let mut x = [0.0f32; 64];
    x[..5].copy_from_slice(&[127.0, -63.5, 0.5, -0.5, 1.49]);
    for (i, v) in x[32..].iter_mut().enumerate() {
        *v = (i as f32 - 10.0) * 0.001; // max |x| 0.021: d = 0.021 / 127, not a half
    }
    let mut q = [0u8; 2 * Q8_0_X_BYTES];
    quantize_activations(GgmlType::Q8_0, &x, &mut q);
    assert_eq!(f32::from_le_bytes(q[..4].try_into().unwrap()), 1.0);
    assert_eq!(core::array::from_fn::<i8, 5, _>(|i| q[4 + i] as i8), [127, -64, 0, 0, 1]);
    assert!(q[9..36].iter().all(|&v| v == 0));
    let d = 0.021f32 / 127.0;
    let stored = f32::from_le_bytes(q[36..40].try_into().unwrap());
    assert_eq!(stored, f16_to_f32(f32_to_f16(d)));
    assert_ne!(stored, d, "the scale is rounded to f16");
    for (i, &v) in x[32..].iter().enumerate() {
        let amax = x[32..].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(q[40 + i] as i8 as f32, libm::rintf(v * (127.0 / amax)), "element {i}");
    }
    assert_eq!(q[40] as i8, -60); // -0.010 / (0.021 / 127) = -60.47...
    assert_eq!(q[40 + 31] as i8, 127);

    // Q8_K: iscale = -127 / (the element of largest magnitude, signed), q = min(127,
    // nearest(iscale * x)) with ties to even, d = 1 / iscale, bsums of 16.
    let mut x = [0.0f32; 512];
    x[..4].copy_from_slice(&[-2.0, 1.0, -1.0, 0.25]);
    for (i, v) in x[256..].iter_mut().enumerate() {
        *v = ((i * 37 % 101) as f32 - 50.0) * 0.01; // ±0.5; the first of largest magnitude is -0.5
    }
    let mut q = [0u8; 2 * Q8_K_X_BYTES];
    quantize_activations(GgmlType::Q8_K, &x, &mut q);
    assert_eq!(f32::from_le_bytes(q[..4].try_into().unwrap()), 1.0 / 63.5);
    // 63.5 ties to 64 (even), -63.5 to -64, 15.875 to 16.
    assert_eq!(core::array::from_fn::<i8, 4, _>(|i| q[4 + i] as i8), [-127, 64, -64, 16]);
    assert_eq!(i16::from_le_bytes([q[260], q[261]]), -127 + 64 - 64 + 16);
    assert!((1..16).all(|g| q[260 + 2 * g] == 0 && q[261 + 2 * g] == 0));
    let b = &q[Q8_K_X_BYTES..];
    assert_eq!(f32::from_le_bytes(b[..4].try_into().unwrap()), 1.0 / (-127.0 / -0.5));
    for g in 0..16 {
        let sum: i32 = b[4 + 16 * g..4 + 16 * g + 16].iter().map(|&v| v as i8 as i32).sum();
        assert_eq!(i16::from_le_bytes([b[260 + 2 * g], b[261 + 2 * g]]) as i32, sum);
    }
    for (i, &v) in x[256..].iter().enumerate() {
        let want = libm::rintf(254.0 * v) as i32; // iscale = -127 / -0.5, rint ties to even
        assert_eq!(b[4 + i] as i8 as i32, want.min(127), "element {i}");
        assert!((q8_value(GgmlType::Q8_K, &q, 256 + i) - v).abs() <= 0.5 / 254.0 + 1e-7);
    }
    // All zero: zero scale, quants and sums.
    let mut q = [0xffu8; Q8_K_X_BYTES];
    quantize_activations(GgmlType::Q8_K, &[0.0; 256], &mut q);
    assert!(q.iter().all(|&v| v == 0));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn integer_kernels_equal_the_dot_of_the_rounded_values() {
    let Some(k) = avx2() else { return };
    // SAFETY: `avx2` just checked the CPU.
    let k8 = unsafe { Kernels::avx2_q8() };
    assert_eq!(k8.path(), KernelPath::Avx2Q8);
    assert_eq!(k.activation_type(GgmlType::Q4_0), None);
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        let vt = k8.activation_type(ty).unwrap();
        let ((bytes, row_bytes), values, cols) = multi_block_rows(ty, 3);
        let x: [f32; 512] = core::array::from_fn(|i| (i as f32 * 0.37).sin() * (1.0 + (i % 7) as f32));
        let mut xq = [0u8; 2 * Q8_K_X_BYTES];
        let xq = &mut xq[..activation_bytes(vt, cols).unwrap()];
        quantize_activations(vt, &x[..cols], xq);
        let mut buf = [0u8; 4097];
        buf[1..1 + 3 * row_bytes].copy_from_slice(&bytes[..3 * row_bytes]);
        let mut out = [f32::NAN; 3];
        k8.matvec_quantized(ty, &buf[1..1 + 3 * row_bytes], xq, &mut out);
        for r in 0..3 {
            let (mut want, mut mag) = (0.0f64, 0.0f64);
            for (i, &w) in values[r][..cols].iter().enumerate() {
                let p = w as f64 * q8_value(vt, xq, i) as f64;
                want += p;
                mag += p.abs();
            }
            let d = (out[r] as f64 - want).abs();
            assert!(d <= 1e-6 * mag + 1e-6, "{ty:?} row {r}: {} vs {want}", out[r]);
        }
        // The f32 entry point of the same path is the f32 SIMD path.
        let (mut a, mut b) = ([0.0f32; 3], [0.0f32; 3]);
        k8.matvec(ty, &buf[1..1 + 3 * row_bytes], &x[..cols], &mut a);
        k.matvec(ty, &buf[1..1 + 3 * row_bytes], &x[..cols], &mut b);
        assert_eq!(a, b);
        // Short or mismatched input does not panic.
        k8.matvec_quantized(ty, &buf[1..40], &xq[..7], &mut out[..1]);
        k8.matvec_quantized(ty, &[], &[], &mut out);
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn integer_kernels_give_each_row_the_same_bits_in_any_group() {
    extern crate std;
    fn bits(v: &[f32]) -> [u32; 11] {
        core::array::from_fn(|i| v.get(i).map_or(0, |f| f.to_bits()))
    }
    let Some(_) = avx2() else { return };
    // SAFETY: `avx2` just checked the CPU for avx2, fma and f16c.
    let mut paths = [Some(unsafe { Kernels::avx2_q8() }), None];
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512vnni")
    {
        // SAFETY: the CPU was just checked for every feature of the contract.
        paths[1] = Some(unsafe { Kernels::avx512_q8() });
    }
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        let (elems, bpb) = ty.block();
        let (elems, bpb) = (elems as usize, bpb as usize);
        let cols = if elems == 32 { 9 * 32 } else { 2 * 256 };
        let row_bytes = cols / elems * bpb;
        let n = (4096 / row_bytes).min(11);
        let mut bytes = [0u8; 4097];
        for r in 0..n {
            for blk in 0..cols / elems {
                let (b, _) = pack(ty, (r * 5 + blk * 3) as u32);
                let at = 1 + r * row_bytes + blk * bpb;
                bytes[at..at + bpb].copy_from_slice(&b[..bpb]);
            }
        }
        let w = &bytes[1..1 + n * row_bytes];
        let x: [f32; 512] = core::array::from_fn(|i| (i as f32 * 0.61).cos() * (1.0 + (i % 5) as f32));
        let vt = paths[0].unwrap().activation_type(ty).unwrap();
        let mut xq = [0u8; 2 * Q8_K_X_BYTES];
        let xq = &mut xq[..activation_bytes(vt, cols).unwrap()];
        quantize_activations(vt, &x[..cols], xq);
        let mut all = [0.0f32; 11];
        paths[0].unwrap().matvec_quantized(ty, w, xq, &mut all[..n]);
        for k in paths.iter().flatten() {
            // Every split of the rows into two groups, and every row alone.
            for cut in 0..=n {
                let mut got = [f32::NAN; 11];
                let (a, b) = got[..n].split_at_mut(cut);
                k.matvec_quantized(ty, &w[..cut * row_bytes], xq, a);
                k.matvec_quantized(ty, &w[cut * row_bytes..], xq, b);
                assert_eq!(bits(&got[..n]), bits(&all[..n]), "{ty:?} {:?} cut {cut}", k.path());
            }
            for r in 0..n {
                let mut one = [f32::NAN];
                k.matvec_quantized(ty, &w[r * row_bytes..(r + 1) * row_bytes], xq, &mut one);
                assert_eq!(one[0].to_bits(), all[r].to_bits(), "{ty:?} {:?} row {r}", k.path());
            }
        }
    }
}

/// The AVX-512 Q4_0/Q8_0 kernels (four rows per vector, the rest and rows over their block
/// limit one at a time) give every row the AVX2 kernel's bits: row counts around the group
/// sizes, block counts around the gather width, and rows longer than the limit.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_rows_give_the_avx2_bits_for_any_row_and_block_count() {
    extern crate std;
    use std::vec;
    let Some(_) = avx2() else { return };
    if !(std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512vnni"))
    {
        return;
    }
    // SAFETY: `avx2` and the checks above cover every feature of both contracts.
    let (k2, k5) = unsafe { (Kernels::avx2_q8(), Kernels::avx512_q8()) };
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
        let bpb = ty.block().1 as usize;
        for blocks in [1, 3, 4, 5, 8, 13, 64, 512, 513, 530] {
            let (cols, row_bytes) = (blocks * 32, blocks * bpb);
            let rows = if blocks > 64 { 9 } else { 21 };
            let mut w = vec![0u8; rows * row_bytes];
            for r in 0..rows {
                for blk in 0..blocks {
                    let (b, _) = pack(ty, (r * 7 + blk * 3) as u32);
                    w[r * row_bytes + blk * bpb..][..bpb].copy_from_slice(&b[..bpb]);
                }
            }
            let x: std::vec::Vec<f32> = (0..cols).map(|i| (i as f32 * 0.29).sin() * (1.0 + (i % 3) as f32)).collect();
            let mut xq = vec![0u8; activation_bytes(GgmlType::Q8_0, cols).unwrap()];
            quantize_activations(GgmlType::Q8_0, &x, &mut xq);
            for n in [1, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 21].into_iter().filter(|&n| n <= rows) {
                let (mut want, mut got) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                k2.matvec_quantized(ty, &w[..n * row_bytes], &xq, &mut want);
                k5.matvec_quantized(ty, &w[..n * row_bytes], &xq, &mut got);
                let (want, got): (std::vec::Vec<u32>, std::vec::Vec<u32>) =
                    (want.iter().map(|v| v.to_bits()).collect(), got.iter().map(|v| v.to_bits()).collect());
                assert_eq!(got, want, "{ty:?} blocks {blocks} rows {n}");
            }
        }
    }
}

/// The several-position product gives every (row, position) the bits of the matrix-vector
/// kernel on that row and position alone, on every integer path, for tiled and untiled types,
/// with whole tiles, leftover rows and positions, odd block counts, and a wider output stride.
#[cfg(target_arch = "x86_64")]
#[test]
fn matmul_gives_each_row_and_position_the_matvec_bits() {
    extern crate std;
    let Some(_) = avx2() else { return };
    // SAFETY: `avx2` just checked the CPU for avx2, fma and f16c.
    let mut paths = [Some(unsafe { Kernels::avx2_q8() }), None];
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512vnni")
    {
        // SAFETY: the CPU was just checked for every feature of the contract.
        paths[1] = Some(unsafe { Kernels::avx512_q8() });
    }
    const P: usize = 7;
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        let (elems, bpb) = ty.block();
        let (elems, bpb) = (elems as usize, bpb as usize);
        for cols in if elems == 32 { [9 * 32, 8 * 32] } else { [2 * 256, 256] } {
            let row_bytes = cols / elems * bpb;
            let n = (4096 / row_bytes).min(9);
            let mut bytes = [0u8; 4097];
            for r in 0..n {
                for blk in 0..cols / elems {
                    let (b, _) = pack(ty, (r * 3 + blk * 5) as u32);
                    let at = 1 + r * row_bytes + blk * bpb;
                    bytes[at..at + bpb].copy_from_slice(&b[..bpb]);
                }
            }
            let w = &bytes[1..1 + n * row_bytes];
            let vt = paths[0].unwrap().activation_type(ty).unwrap();
            let q_row = activation_bytes(vt, cols).unwrap();
            let mut xq = [0u8; P * 2 * Q8_K_X_BYTES];
            for p in 0..P {
                let x: [f32; 512] =
                    core::array::from_fn(|i| ((i * (p + 2)) as f32 * 0.37).sin() * (1.0 + (i % 7) as f32));
                quantize_activations(vt, &x[..cols], &mut xq[p * q_row..(p + 1) * q_row]);
            }
            for k in paths.iter().flatten() {
                for positions in [1, 2, 4, 5, P] {
                    let stride = n + 3;
                    let mut got = [f32::NAN; P * 12];
                    let shape = MatShape { rows: n, q_row, stride };
                    k.matmul_quantized(ty, w, &xq[..positions * q_row], &mut got, shape);
                    for p in 0..positions {
                        let mut want = [f32::NAN; 12];
                        k.matvec_quantized(ty, w, &xq[p * q_row..(p + 1) * q_row], &mut want[..n]);
                        for r in 0..n {
                            let g = got[p * stride + r];
                            assert_eq!(
                                g.to_bits(),
                                want[r].to_bits(),
                                "{ty:?} {:?} cols {cols} row {r} pos {p}/{positions}",
                                k.path()
                            );
                        }
                        // The gap between two positions' rows is not written.
                        assert!(got[p * stride + n..(p + 1) * stride].iter().all(|v| v.is_nan()));
                    }
                }
            }
        }
    }
}

#[test]
fn f32_matvec_sums_each_row() {
    let w: [f32; 6] = [1.0, 2.0, 3.0, -1.0, 0.5, 0.25];
    let mut bytes = [0u8; 24];
    for (c, v) in bytes.chunks_exact_mut(4).zip(w) {
        c.copy_from_slice(&v.to_le_bytes());
    }
    let mut out = [0.0; 2];
    matvec(GgmlType::F32, &bytes, &[1.0, 1.0, 2.0], &mut out);
    assert_eq!(out, [9.0, 0.0]);
}

/// A kernel table whose entries are plain functions that need no CPU feature, so that the one
/// `unsafe` call site of [`Kernels`] runs everywhere, Miri included (the x86 tables need
/// features Miri's CPU does not report).
mod table_dispatch {
    use super::super::table::{by_type, IntRows, QuantizeAct, RowsF32, RowsQ, Table};
    use super::*;

    fn rows_f32(w: &[u8], x: &[f32], out: &mut [f32]) {
        matvec(GgmlType::F32, w, x, out);
        out.iter_mut().for_each(|o| *o += 0.5); // marks that this entry ran
    }

    fn int_rows_q8_0(_: &[u8], xq: &[u8], out: &mut [f32]) {
        out.fill(xq.len() as f32);
    }

    fn quantize(_: GgmlType, _: &[f32], out: &mut [u8]) {
        out.fill(0xa5);
    }

    static MARKED: Table = Table {
        path: KernelPath::Scalar,
        rows: by_type([(GgmlType::F32, rows_f32 as RowsF32)]),
        int_rows: by_type([(
            GgmlType::Q8_0,
            IntRows { vec_dot_type: GgmlType::Q8_0, rows: int_rows_q8_0 as RowsQ, mat: None },
        )]),
        quantize_act: Some(quantize as QuantizeAct),
    };

    #[test]
    fn kernels_call_the_entries_of_their_table_and_the_reference_for_the_rest() {
        // SAFETY: `MARKED`'s entries are ordinary functions that need no CPU feature.
        let k = unsafe { Kernels::from_table(&MARKED) };
        let mut w = [0u8; 24];
        for (c, v) in w.chunks_exact_mut(4).zip([1.0f32, 2.0, 3.0, -1.0, 0.5, 0.25]) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        let mut out = [0.0; 2];
        k.matvec(GgmlType::F32, &w, &[1.0, 1.0, 2.0], &mut out);
        assert_eq!(out, [9.5, 0.5]);
        assert!(k.vectorized(GgmlType::F32) && !k.vectorized(GgmlType::F16));
        // F16 has no entry: the reference runs (three halves of 1.0 against 1, 2, 3).
        let h = f32_to_f16(1.0).to_le_bytes();
        let mut one = [0.0];
        k.matvec(GgmlType::F16, &[h[0], h[1], h[0], h[1], h[0], h[1]], &[1.0, 2.0, 3.0], &mut one);
        assert_eq!(one, [6.0]);
        assert_eq!(k.activation_type(GgmlType::Q8_0), Some(GgmlType::Q8_0));
        assert_eq!(k.activation_type(GgmlType::Q4_0), None);
        let mut out = [0.0; 3];
        k.matvec_quantized(GgmlType::Q8_0, &[0; 34], &[0; 36], &mut out);
        assert_eq!(out, [36.0; 3]);
        k.matvec_quantized(GgmlType::Q4_0, &[0; 18], &[0; 36], &mut out[..1]);
        assert_eq!(out, [36.0; 3], "no integer kernel: `out` is left unchanged");
        let mut q = [0u8; 36];
        k.quantize_activations(GgmlType::Q8_0, &[1.0; 32], &mut q);
        assert!(q.iter().all(|&b| b == 0xa5));
        // The scalar path has no entries at all.
        let mut p = [0u8; 36];
        Kernels::SCALAR.quantize_activations(GgmlType::Q8_0, &[1.0; 32], &mut p);
        assert_eq!(f32::from_le_bytes([p[0], p[1], p[2], p[3]]), f16_to_f32(f32_to_f16(1.0 / 127.0)));
        assert!(all_types().all(|t| !Kernels::SCALAR.vectorized(t)));
    }
}

/// Every type, by id.
fn all_types() -> impl Iterator<Item = GgmlType> {
    (0..=u8::MAX as u32).filter_map(GgmlType::from_id)
}

#[test]
fn the_type_table_is_consistent() {
    assert_eq!(all_types().count(), GgmlType::COUNT);
    for ty in all_types() {
        assert_eq!(GgmlType::from_id(ty.id()), Some(ty), "{ty:?}");
        assert_eq!(GgmlType::name_of(ty.id()), ty.name());
    }
    assert_eq!(GgmlType::from_id(4), None);
    assert_eq!(GgmlType::name_of(31), "unknown");
    assert_eq!(SUPPORTED_TYPES, "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K");
    let supported: usize = all_types().filter(|t| t.is_supported()).count();
    assert_eq!(supported, SUPPORTED.len());
    assert_eq!(GgmlType::Q6_K.block(), (256, 210));
    assert_eq!(GgmlType::BF16.id(), 30);
}
