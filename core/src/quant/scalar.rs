//! The portable reference kernels: the block decoders (the arithmetic of ggml's
//! `dequantize_row_*`), the row dot product summed left to right in f32, [`matvec`] and
//! [`dequantize_row`]. Every target has them, and every vector path is tested against them.
//! Owns the arithmetic only: layouts come from `blocks.rs`, and it must not know the vector
//! paths or the kernel tables.

use super::blocks::{
    blocks, half_field, k4_header, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0, scale_min_k4, QK, QK_K,
};
use super::half::{bf16_to_f32, f16_to_f32};
use super::GgmlType;

#[inline]
fn f32_at(c: &[u8]) -> f32 {
    f32::from_le_bytes([c[0], c[1], c[2], c[3]])
}

/// A fixed-size field of a block at byte `at` (the bounds are constant after inlining).
#[inline(always)]
fn field<const N: usize>(b: &[u8], at: usize) -> &[u8; N] {
    b[at..at + N].try_into().unwrap_or_else(|_| unreachable!())
}

// Block decoders. Each turns one block, as it sits in the slot, into its f32 values with the
// arithmetic of ggml's `dequantize_row_*` (f32, scale first, then offset), so the values are
// exactly the ones llama.cpp and gguf-py produce.

/// Q8_0: `d: f16, qs: [i8; 32]`; `y = d * q`.
fn decode_q8_0(b: &q8_0::Block, y: &mut [f32; QK]) {
    let d = half_field(b, q8_0::D);
    for (y, &q) in y.iter_mut().zip(&b[q8_0::QS..]) {
        *y = (q as i8) as f32 * d;
    }
}

/// Q4_0: `d: f16, qs: [u8; 16]`; element `j` is the low nibble of `qs[j]`, element `j + 16` the
/// high nibble; `y = (q - 8) * d`.
fn decode_q4_0(b: &q4_0::Block, y: &mut [f32; QK]) {
    let d = half_field(b, q4_0::D);
    let (lo, hi) = y.split_at_mut(QK / 2);
    for ((&q, a), c) in b[q4_0::QS..].iter().zip(lo).zip(hi) {
        *a = ((q & 0x0f) as i32 - 8) as f32 * d;
        *c = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: `d: f16, m: f16, qs: [u8; 16]` (nibbles as Q4_0); `y = q * d + m`.
fn decode_q4_1(b: &q4_1::Block, y: &mut [f32; QK]) {
    let d = half_field(b, q4_1::D);
    let m = half_field(b, q4_1::M);
    let (lo, hi) = y.split_at_mut(QK / 2);
    for ((&q, a), c) in b[q4_1::QS..].iter().zip(lo).zip(hi) {
        *a = (q & 0x0f) as f32 * d + m;
        *c = (q >> 4) as f32 * d + m;
    }
}

/// The 5-bit quants of Q5_0/Q5_1: nibbles as Q4_0, and bit `j` of the little-endian `qh` is
/// bit 4 of element `j`.
#[inline]
fn q5_pair(qs: u8, qh: u32, j: usize) -> (u8, u8) {
    let h0 = (((qh >> j) << 4) & 0x10) as u8;
    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
    ((qs & 0x0f) | h0, (qs >> 4) | h1)
}

/// Q5_0: `d: f16, qh: [u8; 4], qs: [u8; 16]`; `y = (q - 16) * d`.
fn decode_q5_0(b: &q5_0::Block, y: &mut [f32; QK]) {
    let d = half_field(b, q5_0::D);
    let qh = u32::from_le_bytes(*field(b, q5_0::QH));
    let (lo, hi) = y.split_at_mut(QK / 2);
    for (j, ((&q, a), c)) in b[q5_0::QS..].iter().zip(lo).zip(hi).enumerate() {
        let (x0, x1) = q5_pair(q, qh, j);
        *a = (x0 as i32 - 16) as f32 * d;
        *c = (x1 as i32 - 16) as f32 * d;
    }
}

/// Q5_1: `d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]`; `y = q * d + m`.
fn decode_q5_1(b: &q5_1::Block, y: &mut [f32; QK]) {
    let d = half_field(b, q5_1::D);
    let m = half_field(b, q5_1::M);
    let qh = u32::from_le_bytes(*field(b, q5_1::QH));
    let (lo, hi) = y.split_at_mut(QK / 2);
    for (j, ((&q, a), c)) in b[q5_1::QS..].iter().zip(lo).zip(hi).enumerate() {
        let (x0, x1) = q5_pair(q, qh, j);
        *a = x0 as f32 * d + m;
        *c = x1 as f32 * d + m;
    }
}

/// Q4_K: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`. Four groups of 64 elements; group
/// `g` reads `qs[32g..32g + 32]`, low nibbles for sub-block `2g`, high nibbles for `2g + 1`;
/// `y = (d * sc) * q - dmin * m`.
fn decode_q4_k(b: &q4_k::Block, y: &mut [f32; QK_K]) {
    let (d, dmin, scales) = k4_header(b);
    for (g, (y, qs)) in y.chunks_exact_mut(64).zip(b[q4_k::QS..].chunks_exact(32)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * g, &scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, &scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let (lo, hi) = y.split_at_mut(32);
        for ((&q, a), c) in qs.iter().zip(lo).zip(hi) {
            *a = d1 * (q & 0x0f) as f32 - min1;
            *c = d2 * (q >> 4) as f32 - min2;
        }
    }
}

/// Q5_K: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`. As Q4_K, plus a
/// fifth bit: bit `2g` of `qh[l]` for element `l` of sub-block `2g`, bit `2g + 1` for `2g + 1`.
fn decode_q5_k(b: &q5_k::Block, y: &mut [f32; QK_K]) {
    let (d, dmin, scales) = k4_header(b);
    let qh = &b[q5_k::QH..q5_k::QS];
    for (g, (y, qs)) in y.chunks_exact_mut(64).zip(b[q5_k::QS..].chunks_exact(32)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * g, &scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, &scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
        let (lo, hi) = y.split_at_mut(32);
        for (((&q, &h), a), c) in qs.iter().zip(qh).zip(lo).zip(hi) {
            let x0 = (q & 0x0f) + if h & u1 != 0 { 16 } else { 0 };
            let x1 = (q >> 4) + if h & u2 != 0 { 16 } else { 0 };
            *a = d1 * x0 as f32 - min1;
            *c = d2 * x1 as f32 - min2;
        }
    }
}

/// Q6_K: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`. Two halves of 128 elements;
/// half `n` reads `ql[64n..]`, `qh[32n..]`, `scales[8n..]`. For `l` in 0..32, the four
/// elements `l`, `l + 32`, `l + 64`, `l + 96` take the low nibble of `ql[l]`, the low nibble of
/// `ql[l + 32]`, the high nibble of `ql[l]`, the high nibble of `ql[l + 32]`, with bits
/// (0,1), (2,3), (4,5), (6,7) of `qh[l]` on top; scale `l / 16 + 2i` for the `i`-th of the four;
/// `y = (d * scale) * (q - 32)`.
fn decode_q6_k(b: &q6_k::Block, y: &mut [f32; QK_K]) {
    let d = half_field(b, q6_k::D);
    let halves = y
        .chunks_exact_mut(128)
        .zip(b[q6_k::QL..q6_k::QH].chunks_exact(64))
        .zip(b[q6_k::QH..q6_k::SCALES].chunks_exact(32))
        .zip(b[q6_k::SCALES..q6_k::D].chunks_exact(8));
    for (((y, ql), qh), sc) in halves {
        let (y01, y23) = y.split_at_mut(64);
        let (y0, y1) = y01.split_at_mut(32);
        let (y2, y3) = y23.split_at_mut(32);
        let (ql0, ql1) = ql.split_at(32);
        let quads = y0.iter_mut().zip(y1).zip(y2.iter_mut().zip(y3.iter_mut()));
        for (l, (((a, b), (c, e)), ((&q0, &q1), &h))) in quads.zip(ql0.iter().zip(ql1).zip(qh)).enumerate() {
            let s = |i: usize| sc.get(l / 16 + 2 * i).map_or(0.0, |&s| s as i8 as f32);
            let x0 = ((q0 & 0x0f) | ((h & 3) << 4)) as i32 - 32;
            let x1 = ((q1 & 0x0f) | (((h >> 2) & 3) << 4)) as i32 - 32;
            let x2 = ((q0 >> 4) | (((h >> 4) & 3) << 4)) as i32 - 32;
            let x3 = ((q1 >> 4) | (((h >> 6) & 3) << 4)) as i32 - 32;
            *a = d * s(0) * x0 as f32;
            *b = d * s(1) * x1 as f32;
            *c = d * s(2) * x2 as f32;
            *e = d * s(3) * x3 as f32;
        }
    }
}

/// Dot product of a row of `B`-byte blocks of `E` elements with `x`: each block is decoded
/// into a stack buffer, then summed left to right in f32 into one running sum.
#[inline]
fn dot_blocks<const B: usize, const E: usize>(row: &[u8], x: &[f32], decode: impl Fn(&[u8; B], &mut [f32; E])) -> f32 {
    let mut buf = [0.0f32; E];
    let mut sum = 0.0f32;
    for (b, xs) in blocks::<B>(row).iter().zip(x.chunks(E)) {
        decode(b, &mut buf);
        for (&w, &xi) in buf.iter().zip(xs) {
            sum += w * xi;
        }
    }
    sum
}

/// Decodes a row of `B`-byte blocks of `E` elements into `out`, one block at a time.
#[inline]
fn dequantize_blocks<const B: usize, const E: usize>(
    row: &[u8],
    out: &mut [f32],
    decode: impl Fn(&[u8; B], &mut [f32; E]),
) {
    let mut buf = [0.0f32; E];
    for (b, o) in blocks::<B>(row).iter().zip(out.chunks_mut(E)) {
        decode(b, &mut buf);
        for (o, &v) in o.iter_mut().zip(&buf) {
            *o = v;
        }
    }
}

/// One row's dot product on the reference path (the vector paths run it for the elements
/// that do not fill a vector).
pub(crate) fn dot_row(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    match ty {
        GgmlType::F32 => {
            let mut sum = 0.0f32;
            for (c, &xi) in row.chunks_exact(4).zip(x) {
                sum += f32_at(c) * xi;
            }
            sum
        }
        GgmlType::F16 => {
            let mut sum = 0.0f32;
            for (c, &xi) in row.chunks_exact(2).zip(x) {
                sum += f16_to_f32(u16::from_le_bytes([c[0], c[1]])) * xi;
            }
            sum
        }
        GgmlType::BF16 => {
            let mut sum = 0.0f32;
            for (c, &xi) in row.chunks_exact(2).zip(x) {
                sum += bf16_to_f32(c[0], c[1]) * xi;
            }
            sum
        }
        GgmlType::Q8_0 => dot_blocks(row, x, decode_q8_0),
        GgmlType::Q4_0 => dot_blocks(row, x, decode_q4_0),
        GgmlType::Q4_1 => dot_blocks(row, x, decode_q4_1),
        GgmlType::Q5_0 => dot_blocks(row, x, decode_q5_0),
        GgmlType::Q5_1 => dot_blocks(row, x, decode_q5_1),
        GgmlType::Q4_K => dot_blocks(row, x, decode_q4_k),
        GgmlType::Q5_K => dot_blocks(row, x, decode_q5_k),
        GgmlType::Q6_K => dot_blocks(row, x, decode_q6_k),
        // The loader refuses other types before any compute (see `is_supported`).
        GgmlType::Q8_1 | GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q8_K => 0.0,
    }
}

/// `out[r] = W[r] · x` for each row of `w` (row-major, `out.len()` rows of `x.len()` columns).
///
/// Quantized rows are read block by block where they sit; only one decoded block exists at a
/// time, in a stack buffer. Each row is one f32 sum taken left to right over its elements.
pub fn matvec(ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = w.len() / out.len().max(1);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes.max(1))) {
        *o = dot_row(ty, row, x);
    }
}

/// Decodes one row into f32 (the embedding lookup).
pub fn dequantize_row(ty: GgmlType, row: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32_at(c);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = bf16_to_f32(c[0], c[1]);
            }
        }
        GgmlType::Q8_0 => dequantize_blocks(row, out, decode_q8_0),
        GgmlType::Q4_0 => dequantize_blocks(row, out, decode_q4_0),
        GgmlType::Q4_1 => dequantize_blocks(row, out, decode_q4_1),
        GgmlType::Q5_0 => dequantize_blocks(row, out, decode_q5_0),
        GgmlType::Q5_1 => dequantize_blocks(row, out, decode_q5_1),
        GgmlType::Q4_K => dequantize_blocks(row, out, decode_q4_k),
        GgmlType::Q5_K => dequantize_blocks(row, out, decode_q5_k),
        GgmlType::Q6_K => dequantize_blocks(row, out, decode_q6_k),
        GgmlType::Q8_1 | GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q8_K => {}
    }
}
