//! The AVX2 + FMA + F16C kernels with f32 activations (x86-64) and their table, [`TABLE`]
//! (`KernelPath::Avx2`); the opt-in integer products are `avx2_q8.rs`'s.
//! Owns this ISA's arithmetic only: it imports the shared `pub(crate)` surface (layouts,
//! the scalar reference for tails, the table types, the x86 primitives) and must not know the
//! other ISAs or how a path is chosen.
//!
//! Every function here carries `#[target_feature(enable = "avx2,fma,f16c")]`; the only way in
//! from code without those features is through a table entry, called by `Kernels` made by the
//! `unsafe` `Kernels::avx2` (or a constructor promising more), whose contract is that the CPU has them.
//!
//! Each row keeps eight f32 lanes of partial sums (quantized blocks: one partial sum per block
//! or sub-block, scaled once), reduced in a fixed order at the end of the row. The order
//! depends only on the row's length, never on which rows run together. Elements that do not
//! fill a vector (or a block whose input is cut short) go through the scalar code and are
//! added last.

use core::arch::x86_64::*;

use super::{arr, half_of, hsum, load128, load256, load_f32_bytes, load_ps, prefetch_block};
use crate::quant::blocks::{blocks, k4_header, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0, scale_min_k4, QK, QK_K};
use crate::quant::scalar;
use crate::quant::table::{by_type, KernelPath, RowsF32, Table};
use crate::quant::GgmlType;

/// Each row of `w` against `x` with `dot`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn rows(w: &[u8], x: &[f32], out: &mut [f32], dot: impl Fn(&[u8], &[f32]) -> f32) {
    let row_bytes = w.len() / out.len().max(1);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes.max(1))) {
        *o = dot(row, x);
    }
}

/// 16 signed bytes to two vectors of 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn i8x16_to_ps(v: __m128i) -> [__m256; 2] {
    [_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(v)))]
}

/// 32 signed bytes to four vectors of 8 f32, in element order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn i8x32_to_ps(v: __m256i) -> [__m256; 4] {
    let [a, b] = i8x16_to_ps(_mm256_castsi256_si128(v));
    let [c, d] = i8x16_to_ps(_mm256_extracti128_si256::<1>(v));
    [a, b, c, d]
}

/// `Σ q[k] * x[k]` over 16 elements: two vectors of quants against `x[0..16]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot16(q: [__m256; 2], x: &[f32; 16]) -> __m256 {
    _mm256_fmadd_ps(q[1], load_ps(arr(x, 8)), _mm256_mul_ps(q[0], load_ps(arr(x, 0))))
}

/// `Σ q[k] * x[k]` over 32 elements.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot32(q: [__m256; 4], x: &[f32; 32]) -> __m256 {
    let a = dot16([q[0], q[1]], arr(x, 0));
    let b = dot16([q[2], q[3]], arr(x, 16));
    _mm256_add_ps(a, b)
}

/// The sum of `x[0..32]`, as eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sum32(x: &[f32; 32]) -> __m256 {
    let a = _mm256_add_ps(load_ps(arr(x, 0)), load_ps(arr(x, 8)));
    let b = _mm256_add_ps(load_ps(arr(x, 16)), load_ps(arr(x, 24)));
    _mm256_add_ps(a, b)
}

/// A row of elements `E` bytes wide each: vector steps of 8 elements with four accumulators,
/// then the tail in scalar code.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_elems<const B8: usize>(ty: GgmlType, row: &[u8], x: &[f32], load8: impl Fn(&[u8; B8]) -> __m256) -> f32 {
    let n = (row.len() / (B8 / 8)).min(x.len());
    let vec_n = n / 32 * 32;
    let mut acc = [_mm256_setzero_ps(); 4];
    let (wq, _) = row[..vec_n * B8 / 8].as_chunks::<B8>();
    let (xq, _) = x[..vec_n].as_chunks::<8>();
    for (w4, x4) in wq.chunks_exact(4).zip(xq.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] = _mm256_fmadd_ps(load8(&w4[k]), load_ps(&x4[k]), acc[k]);
        }
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(v) + scalar::dot_row(ty, &row[vec_n * B8 / 8..], &x[vec_n..n])
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f32(row: &[u8], x: &[f32]) -> f32 {
    dot_elems::<32>(GgmlType::F32, row, x, |b| load_f32_bytes(b))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16(row: &[u8], x: &[f32]) -> f32 {
    dot_elems::<16>(GgmlType::F16, row, x, |b| _mm256_cvtph_ps(load128(b)))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_bf16(row: &[u8], x: &[f32]) -> f32 {
    dot_elems::<16>(GgmlType::BF16, row, x, |b| {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(load128(b))))
    })
}

/// A row of `B`-byte blocks of `E` elements: `block` adds one block's products to the
/// accumulator; blocks whose input is cut short go through the scalar code.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_blocks<const B: usize, const E: usize>(
    ty: GgmlType,
    row: &[u8],
    x: &[f32],
    block: impl Fn(&[u8; B], &[f32; E], __m256) -> __m256,
) -> f32 {
    let bs = blocks::<B>(row);
    let (xs, _) = x.as_chunks::<E>();
    let n = bs.len().min(xs.len());
    let mut acc = _mm256_setzero_ps();
    for (b, xe) in bs[..n].iter().zip(&xs[..n]) {
        prefetch_block(b);
        acc = block(b, xe, acc);
    }
    hsum(acc) + scalar::dot_row(ty, &row[n * B..], &x[n * E..])
}

/// Q8_0: `acc += d * Σ q x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks(GgmlType::Q8_0, row, x, |b: &q8_0::Block, x: &[f32; QK], acc| {
        let d = _mm256_set1_ps(half_of(b, q8_0::D));
        let [q0, q1] = i8x16_to_ps(load128(arr(b, q8_0::QS)));
        let [q2, q3] = i8x16_to_ps(load128(arr(b, q8_0::QS + 16)));
        _mm256_fmadd_ps(d, dot32([q0, q1, q2, q3], x), acc)
    })
}

/// Q4_0: `acc += d * Σ (q - 8) x`; low nibbles are elements 0..16, high nibbles 16..32.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks(GgmlType::Q4_0, row, x, |b: &q4_0::Block, x: &[f32; QK], acc| {
        let d = _mm256_set1_ps(half_of(b, q4_0::D));
        let v = load128(arr(b, q4_0::QS));
        let (m4, eight) = (_mm_set1_epi8(0x0f), _mm_set1_epi8(8));
        let lo = _mm_sub_epi8(_mm_and_si128(v, m4), eight);
        let hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16::<4>(v), m4), eight);
        let [q0, q1] = i8x16_to_ps(lo);
        let [q2, q3] = i8x16_to_ps(hi);
        _mm256_fmadd_ps(d, dot32([q0, q1, q2, q3], x), acc)
    })
}

/// Q4_1: `acc += d * Σ q x + m * Σ x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_1(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks(GgmlType::Q4_1, row, x, |b: &q4_1::Block, x: &[f32; QK], acc| {
        let d = _mm256_set1_ps(half_of(b, q4_1::D));
        let m = _mm256_set1_ps(half_of(b, q4_1::M));
        let v = load128(arr(b, q4_1::QS));
        let m4 = _mm_set1_epi8(0x0f);
        let [q0, q1] = i8x16_to_ps(_mm_and_si128(v, m4));
        let [q2, q3] = i8x16_to_ps(_mm_and_si128(_mm_srli_epi16::<4>(v), m4));
        let acc = _mm256_fmadd_ps(d, dot32([q0, q1, q2, q3], x), acc);
        _mm256_fmadd_ps(m, sum32(x), acc)
    })
}

/// The unsigned 5-bit quants (0..31) of a Q5_0 or Q5_1 block, in element order: the nibbles of
/// `qs` (low nibbles are elements 0..16, high nibbles 16..32) with bit `j` of the little-endian
/// `qh` as bit 4 of element `j`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_quants(qs: &[u8; 16], qh: &[u8; 4]) -> __m256i {
    let v = load128(qs);
    let m4 = _mm_set1_epi8(0x0f);
    let nibbles = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(v), m4), _mm_and_si128(v, m4));
    // Byte `i` of `spread` is byte `i / 8` of `qh` (the shuffle indexes within each 128-bit lane,
    // and every lane holds all four bytes); `bit` picks bit `i % 8` of it.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(u32::from_le_bytes(*qh) as i32),
        _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    _mm256_or_si256(nibbles, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
}

/// Q5_0: `acc += d * Σ (q - 16) x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_0(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks(GgmlType::Q5_0, row, x, |b: &q5_0::Block, x: &[f32; QK], acc| {
        let d = _mm256_set1_ps(half_of(b, q5_0::D));
        let q = _mm256_sub_epi8(q5_quants(arr(b, q5_0::QS), arr(b, q5_0::QH)), _mm256_set1_epi8(16));
        _mm256_fmadd_ps(d, dot32(i8x32_to_ps(q), x), acc)
    })
}

/// Q5_1: `acc += d * Σ q x + m * Σ x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_1(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks(GgmlType::Q5_1, row, x, |b: &q5_1::Block, x: &[f32; QK], acc| {
        let d = _mm256_set1_ps(half_of(b, q5_1::D));
        let m = _mm256_set1_ps(half_of(b, q5_1::M));
        let q = q5_quants(arr(b, q5_1::QS), arr(b, q5_1::QH));
        let acc = _mm256_fmadd_ps(d, dot32(i8x32_to_ps(q), x), acc);
        _mm256_fmadd_ps(m, sum32(x), acc)
    })
}

/// The unsigned 5-bit quants (0..31) of group `g` of a Q5_K block: sub-blocks `2g` (low
/// nibbles, bit `2g` of `qh`) and `2g + 1` (high nibbles, bit `2g + 1`), 32 elements each.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5k_pair(b: &q5_k::Block, g: usize) -> (__m256i, __m256i) {
    let m4 = _mm256_set1_epi8(0x0f);
    let v = load256(arr(b, q5_k::QS + 32 * g));
    let qh = load256(arr(b, q5_k::QH));
    let high = |bit: u8| {
        let bit = _mm256_set1_epi8(bit as i8);
        _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit), _mm256_set1_epi8(0x10))
    };
    let lo = _mm256_or_si256(_mm256_and_si256(v, m4), high(1 << (2 * g)));
    let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(v), m4), high(2 << (2 * g)));
    (lo, hi)
}

/// Q5_K: per sub-block of 32, `acc += (d * sc) * Σ q x - (dmin * m) * Σ x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_k(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks(GgmlType::Q5_K, row, x, |b: &q5_k::Block, x: &[f32; QK_K], mut acc| {
        let (d, dmin, scales) = k4_header(b);
        for g in 0..4 {
            let (lo, hi) = q5k_pair(b, g);
            for (j, q) in [(2 * g, i8x32_to_ps(lo)), (2 * g + 1, i8x32_to_ps(hi))] {
                let (sc, m) = scale_min_k4(j, &scales);
                let xs = arr(x, 32 * j);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc as f32), dot32(q, xs), acc);
                acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * m as f32), sum32(xs), acc);
            }
        }
        acc
    })
}

/// Q4_K: per sub-block of 32, `acc += (d * sc) * Σ q x - (dmin * m) * Σ x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_k(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks(GgmlType::Q4_K, row, x, |b: &q4_k::Block, x: &[f32; QK_K], mut acc| {
        let (d, dmin, scales) = k4_header(b);
        let m4 = _mm256_set1_epi8(0x0f);
        for g in 0..4 {
            let v = load256(arr(b, q4_k::QS + 32 * g));
            let lo = i8x32_to_ps(_mm256_and_si256(v, m4));
            let hi = i8x32_to_ps(_mm256_and_si256(_mm256_srli_epi16::<4>(v), m4));
            for (j, q) in [(2 * g, lo), (2 * g + 1, hi)] {
                let (sc, m) = scale_min_k4(j, &scales);
                let xs = arr(x, 32 * j);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc as f32), dot32(q, xs), acc);
                acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * m as f32), sum32(xs), acc);
            }
        }
        acc
    })
}

/// The 6-bit quants (0..63, before the -32 offset) of half `n` of a Q6_K block: four groups of
/// 32, in element order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6k_quarters(b: &q6_k::Block, n: usize) -> [__m256i; 4] {
    let (m4, m3) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(3));
    let ql0 = load256(arr(b, q6_k::QL + 64 * n));
    let ql1 = load256(arr(b, q6_k::QL + 64 * n + 32));
    let qh = load256(arr(b, q6_k::QH + 32 * n));
    let high = |h: __m256i| _mm256_slli_epi16::<4>(_mm256_and_si256(h, m3));
    [
        _mm256_or_si256(_mm256_and_si256(ql0, m4), high(qh)),
        _mm256_or_si256(_mm256_and_si256(ql1, m4), high(_mm256_srli_epi16::<2>(qh))),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4), high(_mm256_srli_epi16::<4>(qh))),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4), high(_mm256_srli_epi16::<6>(qh))),
    ]
}

/// Q6_K: per group of 16 elements, `acc += (d * scale) * Σ (q - 32) x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q6_k(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks(GgmlType::Q6_K, row, x, |b: &q6_k::Block, x: &[f32; QK_K], mut acc| {
        let d = half_of(b, q6_k::D);
        let m32 = _mm256_set1_epi8(32);
        for n in 0..2 {
            let quarters = q6k_quarters(b, n);
            for (i, q) in quarters.into_iter().enumerate() {
                let [a, b2, c, e] = i8x32_to_ps(_mm256_sub_epi8(q, m32));
                let at = 128 * n + 32 * i;
                let s = 8 * n + 2 * i;
                let (sa, sb) = (b[q6_k::SCALES + s] as i8 as f32, b[q6_k::SCALES + s + 1] as i8 as f32);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sa), dot16([a, b2], arr(x, at)), acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sb), dot16([c, e], arr(x, at + 16)), acc);
            }
        }
        acc
    })
}

// One entry point per type: the row loop around that type's dot product.

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_f32(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_f32(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_f16(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_f16(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_bf16(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_bf16(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q8_0(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_q8_0(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q4_0(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_q4_0(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q4_1(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_q4_1(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q5_0(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_q5_0(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q5_1(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_q5_1(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q5_k(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_q5_k(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q4_k(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_q4_k(r, x))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q6_k(w: &[u8], x: &[f32], out: &mut [f32]) {
    rows(w, x, out, |r, x| dot_q6_k(r, x))
}

/// The f32-activation kernels of this ISA, by type (the other types run the scalar code).
pub(crate) const ROWS: [Option<RowsF32>; GgmlType::COUNT] = by_type([
    (GgmlType::F32, rows_f32 as RowsF32),
    (GgmlType::F16, rows_f16),
    (GgmlType::BF16, rows_bf16),
    (GgmlType::Q8_0, rows_q8_0),
    (GgmlType::Q4_0, rows_q4_0),
    (GgmlType::Q4_1, rows_q4_1),
    (GgmlType::Q5_0, rows_q5_0),
    (GgmlType::Q5_1, rows_q5_1),
    (GgmlType::Q4_K, rows_q4_k),
    (GgmlType::Q5_K, rows_q5_k),
    (GgmlType::Q6_K, rows_q6_k),
]);

/// `KernelPath::Avx2`: f32 activations. Needs avx2, fma and f16c.
pub(crate) static TABLE: Table =
    Table { path: KernelPath::Avx2, rows: ROWS, int_rows: [None; GgmlType::COUNT], quantize_act: None };
