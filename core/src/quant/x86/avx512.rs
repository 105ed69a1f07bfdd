//! The AVX-512 VNNI integer products (x86-64): Q4_0 and Q8_0 × Q8_0 with `vpdpbusd`, two
//! blocks per 512-bit vector, bit-identical with `avx2_q8.rs`'s, their several-position
//! (prefill) tiles, bit-identical with the single-position kernels, and their table [`TABLE_Q8`]
//! (`KernelPath::Avx512Q8`), which takes every other entry from the AVX2 files. Owns this
//! arithmetic only: it imports the shared `pub(crate)` surface and must not know how a path is
//! chosen.
//!
//! Every function carries `#[target_feature(enable =
//! "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]` and is reached only through
//! [`TABLE_Q8`], by a `Kernels` made by the `unsafe` `Kernels::avx512_q8`, whose contract is
//! that the CPU has all of these.

use core::arch::x86_64::*;

use super::avx2::ROWS;
use super::avx2_q8::{
    matvec_q4_k_q8, matvec_q5_0_q8, matvec_q5_k_q8, matvec_q6_k_q8, q8_0_matvec, quantize_act, WEIGHT_D,
};
use super::{arr, avx512_mat, avx512_mat_k, f32_le, half_of, hsum, load128, load256, prefetch};
use crate::quant::blocks::{q4_0, q8_0, q8_0_x};
use crate::quant::table::{by_type, IntRows, KernelPath, MatQ, MatShape, RowsQ, Table};
use crate::quant::GgmlType;

// The same products with AVX-512 VNNI's `vpdpbusd` (256-bit, AVX-512VL encoding): `Σ u·i`
// over each four consecutive byte pairs added to an i32 lane, without saturation, as one
// instruction. The lanes hold the same exact integers as the AVX2 code's `maddubs`/`madd`
// (each lane sums the same four products), so the results are bit-identical with it.

/// Two consecutive Q8_0 activation blocks as one 512-bit vector of quants, with their scales
/// broadcast over the matching halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn y_pair(yp: &[q8_0_x::Block]) -> (__m512i, __m512) {
    let (y0, y1) = (load256(arr(&yp[0], q8_0_x::QS)), load256(arr(&yp[1], q8_0_x::QS)));
    let y = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(y0), y1);
    let (d0, d1) = (f32_le(arr(&yp[0], q8_0_x::D)), f32_le(arr(&yp[1], q8_0_x::D)));
    let (dy0, dy1) = (_mm512_set1_ps(d0), _mm256_set1_ps(d1));
    (y, _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castps_pd(dy0), _mm256_castps_pd(dy1))))
}

/// The f16 scales of two Q4_0 or Q8_0 weight blocks (both at offset [`WEIGHT_D`]), as f32
/// over the matching halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dx_pair(b0: &[u8], b1: &[u8]) -> __m512 {
    // Lanes 0..8 take scale 0, lanes 8..16 scale 1.
    let pick = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    let h = _mm_insert_epi16::<1>(
        _mm_cvtsi32_si128(u16::from_le_bytes([b0[WEIGHT_D], b0[WEIGHT_D + 1]]) as i32),
        u16::from_le_bytes([b1[WEIGHT_D], b1[WEIGHT_D + 1]]) as i32,
    );
    _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(_mm_cvtph_ps(h)))
}

/// The even-block and odd-block halves of a pair vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn halves(acc: __m512) -> (__m256, __m256) {
    (_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc))))
}

/// `R` rows of Q4_0 × Q8_0 with AVX-512: two blocks per 512-bit vector (lanes 0..8 the even
/// block, 8..16 the odd one), `Σ (q - 8) y` as `vpdpbusd` from the shared lanes `-8 Σ y`. The
/// pair's scales and sums go into the row's one accumulator of eight f32 lanes as the AVX2
/// kernel's (`d = f32(dx) * dy`, one FMA per block, the even block first), so the results are
/// bit-identical with `avx2_q8::matvec_q4_0_q8`. An odd last block runs alone.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q4_0_rows_512<const R: usize>(rows: [&[q4_0::Block]; R], ys: &[q8_0_x::Block], ahead: usize) -> [f32; R] {
    let n = rows.iter().fold(ys.len(), |n, r| n.min(r.len()));
    // A plain loop, not `array::map`: the map and its closure stay out of line here.
    let mut rows = rows;
    for r in &mut rows {
        *r = &r[..n];
    }
    let m4 = _mm512_set1_epi8(0x0f);
    // Per 16-bit word, by 128-bit lane: low nibbles of block 2p, high nibbles, the same for 2p + 1.
    let shifts = _mm512_set_epi64(F4, F4, 0, 0, F4, F4, 0, 0);
    const F4: i64 = 0x0004_0004_0004_0004;
    let eight = _mm512_set1_epi8(8);
    let mut acc = [_mm256_setzero_ps(); R];
    for (p, yp) in ys[..n].chunks_exact(2).enumerate() {
        let (y, dy) = y_pair(yp);
        let s = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, y));
        for r in 0..R {
            let (b0, b1) = (&rows[r][2 * p], &rows[r][2 * p + 1]);
            prefetch(b0.as_ptr().wrapping_add(ahead));
            let lo = _mm256_broadcastsi128_si256(load128(arr(b0, q4_0::QS)));
            let hi = _mm256_broadcastsi128_si256(load128(arr(b1, q4_0::QS)));
            let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
            let q = _mm512_and_si512(_mm512_srlv_epi16(q, shifts), m4);
            let sums = _mm512_dpbusd_epi32(s, q, y);
            let (d0, d1) = halves(_mm512_mul_ps(dx_pair(b0, b1), dy));
            let (p0, p1) = halves(_mm512_cvtepi32_ps(sums));
            acc[r] = _mm256_fmadd_ps(d1, p1, _mm256_fmadd_ps(d0, p0, acc[r]));
        }
    }
    let mut out = [0.0f32; R];
    for r in 0..R {
        let mut acc = acc[r];
        if n % 2 == 1 {
            let (b, yb) = (&rows[r][n - 1], &ys[n - 1]);
            let y = load256(arr(yb, q8_0_x::QS));
            let s = _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), y),
            );
            let v = load128(arr(b, q4_0::QS));
            let m4 = _mm_set1_epi8(0x0f);
            let q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(v), m4), _mm_and_si128(v, m4));
            let d = _mm256_set1_ps(half_of(b, q4_0::D) * f32_le(arr(yb, q8_0_x::D)));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(s, q, y)), acc);
        }
        out[r] = hsum(acc);
    }
    out
}

/// Q4_0 × Q8_0 with AVX-512 VNNI: the rows in whole groups of four through `avx512_rows.rs`
/// (decode's kernel), the rest (and rows longer than its limit) with [`q4_0_rows_512`], each
/// group of four rows read while the next group is prefetched: the same bits either way.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn matvec_q4_0_q8_vnni(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let row_bytes = w.len() / out.len().max(1);
    let w = &w[..(out.len() * row_bytes).min(w.len())];
    let done = super::avx512_rows::matvec_q4_0(w, xq, out);
    let done = done.min(out.len());
    let (w, out) = (&w[(done * row_bytes).min(w.len())..], &mut out[done..]);
    let ahead = 4 * row_bytes;
    q8_0_matvec::<{ q4_0::BYTES }>(w, xq, out, |r, ys| q4_0_rows_512(r, ys, ahead), |r, ys| q4_0_rows_512(r, ys, ahead))
}

/// `R` rows of Q8_0 × Q8_0 with AVX-512 VNNI, two blocks per 512-bit vector as in
/// [`q4_0_rows_512`]: `Σ w y = Σ (w + 128) y - 128 Σ y` (`w + 128` as unsigned bytes) with
/// `vpdpbusd` from the shared lanes `-128 Σ y`. The lanes hold the AVX2 kernel's exact
/// integers and the same `d = f32(dx) * dy` and FMA per block, block after block, in the same
/// accumulator lanes, so the results are bit-identical with `avx2_q8::matvec_q8_0_q8`. An odd
/// last block runs alone.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q8_0_rows_512<const R: usize>(rows: [&[q8_0::Block]; R], ys: &[q8_0_x::Block], ahead: usize) -> [f32; R] {
    let n = rows.iter().fold(ys.len(), |n, r| n.min(r.len()));
    // A plain loop, not `array::map`: the map and its closure stay out of line here.
    let mut rows = rows;
    for r in &mut rows {
        *r = &r[..n];
    }
    let bias = _mm512_set1_epi8(-128);
    let mut acc = [_mm256_setzero_ps(); R];
    for (p, yp) in ys[..n].chunks_exact(2).enumerate() {
        let (y, dy) = y_pair(yp);
        let s = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, y));
        for r in 0..R {
            let (b0, b1) = (&rows[r][2 * p], &rows[r][2 * p + 1]);
            prefetch(b0.as_ptr().wrapping_add(ahead));
            prefetch(b1.as_ptr().wrapping_add(ahead));
            let (w0, w1) = (load256(arr(b0, q8_0::QS)), load256(arr(b1, q8_0::QS)));
            let w = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(w0), w1);
            let sums = _mm512_dpbusd_epi32(s, _mm512_xor_si512(w, bias), y);
            let (d0, d1) = halves(_mm512_mul_ps(dx_pair(b0, b1), dy));
            let (p0, p1) = halves(_mm512_cvtepi32_ps(sums));
            acc[r] = _mm256_fmadd_ps(d1, p1, _mm256_fmadd_ps(d0, p0, acc[r]));
        }
    }
    let mut out = [0.0f32; R];
    for r in 0..R {
        let mut acc = acc[r];
        if n % 2 == 1 {
            let (b, yb) = (&rows[r][n - 1], &ys[n - 1]);
            let y = load256(arr(yb, q8_0_x::QS));
            let bias = _mm256_set1_epi8(-128);
            let s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, y));
            let sums = _mm256_dpbusd_epi32(s, _mm256_xor_si256(load256(arr(b, q8_0::QS)), bias), y);
            let d = _mm256_set1_ps(half_of(b, q8_0::D) * f32_le(arr(yb, q8_0_x::D)));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc);
        }
        out[r] = hsum(acc);
    }
    out
}

/// Q8_0 × Q8_0 with AVX-512 VNNI: the rows in whole groups of four through `avx512_rows.rs`
/// (decode's kernel), the rest (and rows longer than its limit) with [`q8_0_rows_512`], four
/// rows per pass: the same bits either way.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn matvec_q8_0_q8_vnni(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let row_bytes = w.len() / out.len().max(1);
    let w = &w[..(out.len() * row_bytes).min(w.len())];
    let done = super::avx512_rows::matvec_q8_0(w, xq, out);
    let done = done.min(out.len());
    let (w, out) = (&w[(done * row_bytes).min(w.len())..], &mut out[done..]);
    let ahead = 4 * row_bytes;
    q8_0_matvec::<{ q8_0::BYTES }>(w, xq, out, |r, ys| q8_0_rows_512(r, ys, ahead), |r, ys| q8_0_rows_512(r, ys, ahead))
}

/// Q4_0 × Q8_0 for several positions ([`avx512_mat::mat_pairs`]): one block's nibbles
/// unpacked as in [`q4_0_rows_512`]'s odd last block, in both halves.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn mat_q4_0_vnni(w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape) {
    const F4: i64 = 0x0004_0004_0004_0004;
    // Per 128-bit lane: low nibbles, high nibbles, low, high.
    let shifts = _mm512_set_epi64(F4, F4, 0, 0, F4, F4, 0, 0);
    let m4 = _mm512_set1_epi8(0x0f);
    let unpack = |b: &q4_0::Block| {
        let q = _mm512_broadcast_i32x4(load128(arr(b, q4_0::QS)));
        _mm512_and_si512(_mm512_srlv_epi16(q, shifts), m4)
    };
    let one = |w: &[u8], xq: &[u8], out: &mut [f32]| matvec_q4_0_q8_vnni(w, xq, out);
    avx512_mat::mat_pairs::<{ q4_0::BYTES }>(w, xq, out, shape, 8, &unpack, &one)
}

/// Q8_0 × Q8_0 for several positions ([`avx512_mat::mat_pairs`]): `w + 128` as unsigned
/// bytes, as in [`q8_0_rows_512`], in both halves.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn mat_q8_0_vnni(w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape) {
    let bias = _mm512_set1_epi8(-128);
    let unpack = |b: &q8_0::Block| _mm512_xor_si512(_mm512_broadcast_i64x4(load256(arr(b, q8_0::QS))), bias);
    let one = |w: &[u8], xq: &[u8], out: &mut [f32]| matvec_q8_0_q8_vnni(w, xq, out);
    avx512_mat::mat_pairs::<{ q8_0::BYTES }>(w, xq, out, shape, -128, &unpack, &one)
}

/// The integer products of this path: weight type, activation type, kernel.
const fn int(ty: GgmlType, vec_dot_type: GgmlType, rows: RowsQ) -> (GgmlType, IntRows) {
    (ty, IntRows { vec_dot_type, rows, mat: None })
}

/// [`int`] with a several-position kernel.
const fn int_mat(ty: GgmlType, vec_dot_type: GgmlType, rows: RowsQ, mat: MatQ) -> (GgmlType, IntRows) {
    (ty, IntRows { vec_dot_type, rows, mat: Some(mat) })
}

/// `KernelPath::Avx512Q8`: `avx2_q8.rs`'s table with the Q4_0 and Q8_0 integer products on
/// VNNI, and several-position kernels for Q4_0, Q5_0, Q8_0, Q4_K and Q6_K. Needs avx2, fma, f16c, avx512f, avx512bw, avx512vl and avx512vnni.
pub(crate) static TABLE_Q8: Table = Table {
    path: KernelPath::Avx512Q8,
    rows: ROWS,
    int_rows: by_type([
        int_mat(GgmlType::Q4_0, GgmlType::Q8_0, matvec_q4_0_q8_vnni, mat_q4_0_vnni),
        int_mat(GgmlType::Q8_0, GgmlType::Q8_0, matvec_q8_0_q8_vnni, mat_q8_0_vnni),
        int_mat(GgmlType::Q5_0, GgmlType::Q8_0, matvec_q5_0_q8, avx512_mat::mat_q5_0_q8),
        int_mat(GgmlType::Q4_K, GgmlType::Q8_K, matvec_q4_k_q8, avx512_mat_k::mat_q4_k_q8),
        int(GgmlType::Q5_K, GgmlType::Q8_K, matvec_q5_k_q8),
        int_mat(GgmlType::Q6_K, GgmlType::Q8_K, matvec_q6_k_q8, avx512_mat_k::mat_q6_k_q8),
    ]),
    quantize_act: Some(quantize_act),
};
