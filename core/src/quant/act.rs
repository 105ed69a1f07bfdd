//! Rounding f32 activations to Q8_0 or Q8_K blocks for the integer kernels: the portable
//! reference (an ISA may write the same bytes faster through its kernel table). Owns the
//! rounding arithmetic and the buffer sizes; the block layouts are `blocks.rs`'s, and it must
//! not know the kernels that read the blocks.
//!
//! The input vector of a product is rounded once per position, as llama.cpp's CPU backend
//! rounds it to the weight type's `vec_dot_type`, into blocks laid out for this core (byte
//! arrays, little-endian, no alignment needed):
//! - Q8_0 (for Q4_0, Q5_0 and Q8_0 weights): 36 bytes per 32 elements, `d: f32` then
//!   `qs: [i8; 32]`. As ggml's x86 `quantize_row_q8_0` (what llama.cpp's CPU backend runs on
//!   the AVX2 and AVX-512 machines it is compared with; its portable `_ref` rounds ties away
//!   from zero and scales by `1 / d`, which differs in a few quants per block): `d = max|x| /
//!   127`, `q = round_half_even(x * (127 / max|x|))`, and `d` is stored rounded to f16 (ggml's
//!   `block_q8_0` keeps an f16), here widened back to f32.
//! - Q8_K (for Q4_K and Q6_K weights): 292 bytes per 256 elements, `d: f32`, `qs: [i8; 256]`,
//!   `bsums: [i16; 16]` (ggml's `block_q8_K`). As `quantize_row_q8_K_ref`: `max` is the element
//!   of largest magnitude (with its sign), `iscale = -127 / max`, `q = min(127,
//!   nearest(iscale * x))` (half to even), `d = 1 / iscale`, and `bsums[g]` is the sum of the
//!   quants `16g..16g + 16` (the K kernels take their minimum/offset terms from it).

use super::blocks::{q8_0_x, q8_k_x, QK, QK_K};
use super::half::{f16_to_f32, f32_to_f16};
use super::GgmlType;

/// Bytes of one Q8_0 block of quantized activations.
pub const Q8_0_X_BYTES: usize = q8_0_x::BYTES;
/// Bytes of one Q8_K block of quantized activations.
pub const Q8_K_X_BYTES: usize = q8_k_x::BYTES;

/// Bytes of `cols` activations quantized to `vt` (Q8_0 or Q8_K), or `None` if `cols` is not a
/// whole number of its blocks (or `vt` is neither).
pub fn activation_bytes(vt: GgmlType, cols: usize) -> Option<usize> {
    match vt {
        GgmlType::Q8_0 => cols.is_multiple_of(QK).then_some(cols / QK * Q8_0_X_BYTES),
        GgmlType::Q8_K => cols.is_multiple_of(QK_K).then_some(cols / QK_K * Q8_K_X_BYTES),
        _ => None,
    }
}

/// Bytes that hold one input row of `cols` quantized to either activation type (0 if
/// neither fits).
pub fn activation_buffer_bytes(cols: usize) -> usize {
    let q0 = activation_bytes(GgmlType::Q8_0, cols).unwrap_or(0);
    let qk = activation_bytes(GgmlType::Q8_K, cols).unwrap_or(0);
    q0.max(qk)
}

/// ggml's `nearest_int`: round to nearest, ties to even (valid for |v| < 2^22), by adding
/// 1.5 * 2^23 so that the integer lands in the low mantissa bits (no libm call). The Q8_K
/// rounding here and the synth quantizer's K-quant scales use it.
#[inline]
pub fn nearest_int(v: f32) -> i32 {
    ((v + 12_582_912.0).to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Rounds `x` to Q8_0 activation blocks in `out` (see the layout above). Whole blocks only:
/// a tail shorter than a block is ignored.
pub fn quantize_activations_q8_0(x: &[f32], out: &mut [u8]) {
    let (outs, _): (&mut [q8_0_x::Block], _) = out.as_chunks_mut();
    for (xs, b) in x.chunks_exact(QK).zip(outs) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b[q8_0_x::D..q8_0_x::QS].copy_from_slice(&f16_to_f32(f32_to_f16(d)).to_le_bytes());
        for (q, &v) in b[q8_0_x::QS..].iter_mut().zip(xs) {
            *q = libm::rintf(v * id) as i8 as u8;
        }
    }
}

/// Rounds `x` to Q8_K activation blocks in `out` (see the layout above). Whole blocks only.
pub fn quantize_activations_q8_k(x: &[f32], out: &mut [u8]) {
    let (outs, _): (&mut [q8_k_x::Block], _) = out.as_chunks_mut();
    for (xs, b) in x.chunks_exact(QK_K).zip(outs) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        let (head, sums) = b.split_at_mut(q8_k_x::BSUMS);
        for (q, &v) in head[q8_k_x::QS..].iter_mut().zip(xs) {
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        for (s, qs) in sums.chunks_exact_mut(2).zip(head[q8_k_x::QS..].chunks_exact(16)) {
            let sum: i32 = qs.iter().map(|&q| q as i8 as i32).sum();
            s.copy_from_slice(&(sum as i16).to_le_bytes());
        }
        head[q8_k_x::D..q8_k_x::QS].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// Rounds `x` to `vt` (Q8_0 or Q8_K) activation blocks in `out`.
pub fn quantize_activations(vt: GgmlType, x: &[f32], out: &mut [u8]) {
    match vt {
        GgmlType::Q8_0 => quantize_activations_q8_0(x, out),
        GgmlType::Q8_K => quantize_activations_q8_k(x, out),
        _ => {}
    }
}
