//! The opt-in integer products of the AVX2 path (x86-64): Q4_0/Q8_0 × Q8_0 and Q4_K/Q6_K ×
//! Q8_K with exact integer block sums, the vector Q8_0 activation rounding, and their table
//! [`TABLE_Q8`] (`KernelPath::Avx2Q8`). Owns this arithmetic only: it imports the shared
//! `pub(crate)` surface (layouts, `act.rs`, the table types, the x86 primitives, the f32
//! kernels of `avx2.rs`) and must not know how a path is chosen.
//!
//! Every function carries `#[target_feature(enable = "avx2,fma,f16c")]` and is reached only
//! through [`TABLE_Q8`] (or `avx512.rs`'s table, which needs more), by a `Kernels` made by
//! the `unsafe` `Kernels::avx2_q8`, whose contract is that the CPU has these features.

use core::arch::x86_64::*;

use super::avx2::{q5_quants, q5k_pair, q6k_quarters, ROWS};
use super::{arr, f32_le, half_of, hsum, hsum_i32, load128, load256, load64, prefetch, prefetch_block};
use crate::quant::act;
use crate::quant::blocks::{blocks, k4_header, q4_0, q4_k, q5_0, q5_k, q6_k, q8_0, q8_0_x, q8_k_x, scale_min_k4, QK};
use crate::quant::half::{f16_to_f32, f32_to_f16};
use crate::quant::table::{by_type, IntRows, KernelPath, RowsQ, Table};
use crate::quant::GgmlType;

// Integer kernels of the `Avx2Q8` path: the input was rounded to Q8_0 or Q8_K blocks (layout
// in `blocks.rs`), and each block's products are exact integer sums (`maddubs` of unsigned by
// signed bytes into i16 pairs, `madd` into i32), scaled once in f32. Q4_0/Q8_0 keep eight f32
// lanes per row; the K-quants add one exact integer per super-block to one f32 running sum.
// Either way the order depends only on the row.

/// `Σ a·b` over 32 byte pairs as eight i32 lanes: `a` unsigned, `b` signed, with every pair
/// sum `a[2k]b[2k] + a[2k+1]b[2k+1]` inside i16 (true for the quants here).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(a: __m256i, b: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
}

/// `Σ a·b` over 32 signed byte pairs (`b` never -128): `|a|` times `b` with `a`'s sign.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_i8_i8(a: __m256i, b: __m256i) -> __m256i {
    dot_u8_i8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
}

/// `R` rows of `B`-byte blocks against Q8_0 activation blocks, one pass over the input: each
/// activation block is loaded once for all `R` rows, and so is `shared(y)`, a per-block value
/// that does not depend on the row (`Σ y` terms). Per row and block `dot(block, y, shared)` is
/// the exact integer `Σ qx qy` as eight i32 lanes, and the row keeps one accumulator of eight
/// f32 lanes: `acc = fma(dx * dy, Σ qx qy, acc)` block after block, summed as `hsum(acc)` at
/// the end, which is ggml's x86 `ggml_vec_dot_q{4,5,8}_0_q8_0` and llamafile's `tinyBLAS_Q0_AVX`
/// (llama.cpp's generation and prompt products) bit for bit. A row's operations are the same whatever `R` is and
/// whichever rows run beside it, so its result depends only on the row. (The AVX-512 Q4_0
/// kernel, two blocks per 512-bit vector, does the same arithmetic lane for lane.)
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0_rows<const B: usize, const R: usize>(
    rows: [&[[u8; B]]; R],
    ys: &[q8_0_x::Block],
    ahead: usize,
    shared: impl Fn(__m256i) -> __m256i,
    dot: impl Fn(&[u8; B], __m256i, __m256i) -> __m256i,
) -> [f32; R] {
    let n = rows.iter().fold(ys.len(), |n, r| n.min(r.len()));
    // A plain loop, not `array::map`: the map and its closure stay out of line here.
    let mut rows = rows;
    for r in &mut rows {
        *r = &r[..n];
    }
    let mut acc = [_mm256_setzero_ps(); R];
    for (j, y) in ys[..n].iter().enumerate() {
        let (yv, dy) = (load256(arr(y, q8_0_x::QS)), f32_le(arr(y, q8_0_x::D)));
        let s = shared(yv);
        for r in 0..R {
            let b = &rows[r][j];
            prefetch(b.as_ptr().wrapping_add(ahead));
            let p = dot(b, yv, s);
            let d = _mm256_set1_ps(half_of(b, WEIGHT_D) * dy);
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[r]);
        }
    }
    acc.map(|a| hsum(a))
}

/// Every row of `w` (blocks of `B` bytes, `row_bytes` per row) against the Q8_0 blocks `xq`:
/// four rows per pass with `rows4`, then the rest one at a time with `rows1` (the same
/// arithmetic per row).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q8_0_matvec<const B: usize>(
    w: &[u8],
    xq: &[u8],
    out: &mut [f32],
    rows4: impl Fn([&[[u8; B]]; 4], &[q8_0_x::Block]) -> [f32; 4],
    rows1: impl Fn([&[[u8; B]]; 1], &[q8_0_x::Block]) -> [f32; 1],
) {
    let row_bytes = (w.len() / out.len().max(1)).max(1);
    let ys = blocks::<{ q8_0_x::BYTES }>(xq);
    let mut rows = w.chunks_exact(row_bytes);
    let mut outs = out.chunks_exact_mut(4);
    for o in &mut outs {
        let (Some(a), Some(b), Some(c), Some(d)) = (rows.next(), rows.next(), rows.next(), rows.next()) else {
            return;
        };
        o.copy_from_slice(&rows4([blocks(a), blocks(b), blocks(c), blocks(d)], ys));
    }
    for (o, row) in outs.into_remainder().iter_mut().zip(rows) {
        [*o] = rows1([blocks(row)], ys);
    }
}

/// Q4_0 × Q8_0: `Σ (q - 8) y = Σ q y - 8 Σ y` with the unsigned nibbles `q` (low nibbles are
/// elements 0..16), `8 Σ y` shared by the rows. In i16 pairs: `|q y| + |q' y'| ≤ 3810` and
/// `8 (y + y') ≤ 2032`, so neither `maddubs` nor the difference saturates.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_q4_0_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let m4 = _mm_set1_epi8(0x0f);
    let shared = |y| _mm256_maddubs_epi16(_mm256_set1_epi8(8), y);
    let dot = |b: &q4_0::Block, y, s8| {
        let v = load128(arr(b, q4_0::QS));
        let q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(v), m4), _mm_and_si128(v, m4));
        _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q, y), s8), _mm256_set1_epi16(1))
    };
    let ahead = 4 * (w.len() / out.len().max(1));
    q8_0_matvec::<{ q4_0::BYTES }>(
        w,
        xq,
        out,
        |r, ys| q8_0_rows(r, ys, ahead, shared, dot),
        |r, ys| q8_0_rows(r, ys, ahead, shared, dot),
    )
}

/// Q5_0 × Q8_0: `Σ (q - 16) y = Σ q y - 16 Σ y` with the unsigned 5-bit quants `q`, `16 Σ y`
/// shared by the rows. In i16 pairs: `|q y| + |q' y'| ≤ 7874` and `16 (y + y') ≤ 4064`, so
/// neither `maddubs` nor the difference saturates.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_q5_0_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let shared = |y| _mm256_maddubs_epi16(_mm256_set1_epi8(16), y);
    let dot = |b: &q5_0::Block, y, s16| {
        let q = q5_quants(arr(b, q5_0::QS), arr(b, q5_0::QH));
        _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q, y), s16), _mm256_set1_epi16(1))
    };
    let ahead = 4 * (w.len() / out.len().max(1));
    q8_0_matvec::<{ q5_0::BYTES }>(
        w,
        xq,
        out,
        |r, ys| q8_0_rows(r, ys, ahead, shared, dot),
        |r, ys| q8_0_rows(r, ys, ahead, shared, dot),
    )
}

/// Q8_0 × Q8_0.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_q8_0_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let dot = |b: &q8_0::Block, y, _| dot_i8_i8(load256(arr(b, q8_0::QS)), y);
    let ahead = 4 * (w.len() / out.len().max(1));
    q8_0_matvec::<{ q8_0::BYTES }>(
        w,
        xq,
        out,
        |r, ys| q8_0_rows(r, ys, ahead, |y| y, dot),
        |r, ys| q8_0_rows(r, ys, ahead, |y| y, dot),
    )
}

/// The 16 `bsums` of a Q8_K activation block as i16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bsums(y: &q8_k_x::Block) -> __m256i {
    load256(arr(y, q8_k_x::BSUMS))
}

/// The eight 6-bit scales and mins of a Q4_K/Q5_K super-block, unpacked.
#[inline]
pub(crate) fn scales_mins_k4(scales: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        (sc[j], mn[j]) = scale_min_k4(j, scales);
    }
    (sc, mn)
}

/// Σ_j m_j (bsums[2j] + bsums[2j + 1]): the activation's pair sums as i32, times the mins (an
/// exact integer).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mins_dot_bsums(y: &q8_k_x::Block, mn: &[u8; 8]) -> i32 {
    let pairs = _mm256_madd_epi16(bsums(y), _mm256_set1_epi16(1));
    let mins = _mm256_cvtepu8_epi32(load64(mn));
    hsum_i32(_mm256_mullo_epi32(pairs, mins))
}

/// Σ_j m_j (bsums[2j] + bsums[2j + 1]) as four i32 lanes, lane `k` the terms `j = 2k, 2k + 1`
/// (ggml's `_mm_madd_epi16` of the mins by the `_mm_hadd_epi16` pair sums).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mins_dot_bsums_x4(y: &q8_k_x::Block, mn: &[u8; 8]) -> __m128i {
    let b = bsums(y);
    let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
    _mm_madd_epi16(_mm_cvtepu8_epi16(load64(mn)), pairs)
}

/// Q4_K × Q8_K as ggml's x86 `ggml_vec_dot_q4_K_q8_K` (AVX2) sums it: per super-block the
/// exact integers `Σ_j sc_j Σ q x` as eight i32 lanes go into eight f32 lanes by one FMA with
/// `d = dy * dx`, and `Σ_j m_j bsum_j` as four lanes into four more with `-dy * dmin`; at the
/// end `hsum(acc) + ((m0 + m2) + (m1 + m3))`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_k_q8(row: &[u8], xq: &[u8]) -> f32 {
    let bs = blocks::<{ q4_k::BYTES }>(row);
    let ys = blocks::<{ q8_k_x::BYTES }>(xq);
    let m4 = _mm256_set1_epi8(0x0f);
    let (mut acc, mut acc_m) = (_mm256_setzero_ps(), _mm_setzero_ps());
    for (b, y) in bs.iter().zip(ys) {
        prefetch_block(b);
        let (d, dmin, scales) = k4_header(b);
        let (sc, mn) = scales_mins_k4(&scales);
        let mut sumi = _mm256_setzero_si256();
        for g in 0..4 {
            let v = load256(arr(b, q4_k::QS + 32 * g));
            let (ylo, yhi) = (arr(y, q8_k_x::QS + 64 * g), arr(y, q8_k_x::QS + 64 * g + 32));
            let lo = _mm256_maddubs_epi16(_mm256_and_si256(v, m4), load256(ylo));
            let hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16::<4>(v), m4), load256(yhi));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(lo, _mm256_set1_epi16(sc[2 * g] as i16)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(hi, _mm256_set1_epi16(sc[2 * g + 1] as i16)));
        }
        let dy = f32_le(arr(y, q8_k_x::D));
        let m = _mm_cvtepi32_ps(mins_dot_bsums_x4(y, &mn));
        acc_m = _mm_fmadd_ps(_mm_set1_ps(-dy * dmin), m, acc_m);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * d), _mm256_cvtepi32_ps(sumi), acc);
    }
    let acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    let acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    hsum(acc) + _mm_cvtss_f32(acc_m)
}

/// Q5_K × Q8_K: as Q4_K with the 5-bit quants (`|q y| + |q' y'| ≤ 7874` inside i16).
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_k_q8(row: &[u8], xq: &[u8]) -> f32 {
    let bs = blocks::<{ q5_k::BYTES }>(row);
    let ys = blocks::<{ q8_k_x::BYTES }>(xq);
    let mut sum = 0.0f32;
    for (b, y) in bs.iter().zip(ys) {
        prefetch_block(b);
        let (d, dmin, scales) = k4_header(b);
        let (sc, mn) = scales_mins_k4(&scales);
        let mut sumi = _mm256_setzero_si256();
        for g in 0..4 {
            let (qlo, qhi) = q5k_pair(b, g);
            let (ylo, yhi) = (arr(y, q8_k_x::QS + 64 * g), arr(y, q8_k_x::QS + 64 * g + 32));
            let lo = _mm256_maddubs_epi16(qlo, load256(ylo));
            let hi = _mm256_maddubs_epi16(qhi, load256(yhi));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(lo, _mm256_set1_epi16(sc[2 * g] as i16)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(hi, _mm256_set1_epi16(sc[2 * g + 1] as i16)));
        }
        let m = mins_dot_bsums(y, &mn);
        sum += f32_le(arr(y, q8_k_x::D)) * (d * hsum_i32(sumi) as f32 - dmin * m as f32);
    }
    sum
}

/// Q6_K × Q8_K: per super-block `Σ_g sc_g Σ q x - 32 Σ_g sc_g bsum_g` with the unsigned 6-bit
/// quants `q`, exact integers in eight i32 lanes, go into eight f32 lanes by one FMA with
/// `dy * dx`, summed by `hsum` at the end: ggml's x86 `ggml_vec_dot_q6_K_q8_K` (AVX2) bit for
/// bit.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q6_k_q8(row: &[u8], xq: &[u8]) -> f32 {
    let bs = blocks::<{ q6_k::BYTES }>(row);
    let ys = blocks::<{ q8_k_x::BYTES }>(xq);
    let mut acc = _mm256_setzero_ps();
    for (b, y) in bs.iter().zip(ys) {
        prefetch_block(b);
        let sc: &[u8; 16] = arr(b, q6_k::SCALES);
        // -32 Σ_g sc_g bsum_g, as eight i32 lanes to start the sum from.
        let sc16 = _mm256_cvtepi8_epi16(load128(sc));
        let mut sumi =
            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bsums(y))));
        for n in 0..2 {
            let quarters = q6k_quarters(b, n);
            for (i, q) in quarters.into_iter().enumerate() {
                let (at, s) = (128 * n + 32 * i, 8 * n + 2 * i);
                let p = _mm256_maddubs_epi16(q, load256(arr(y, q8_k_x::QS + at)));
                let (s0, s1) = (sc[s] as i8 as i16, sc[s + 1] as i8 as i16);
                let scales = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scales));
            }
        }
        let d = f32_le(arr(y, q8_k_x::D)) * half_of(b, q6_k::D);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum(acc)
}

/// Each row of `w` against `xq` with `dot`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q8(w: &[u8], xq: &[u8], out: &mut [f32], dot: impl Fn(&[u8], &[u8]) -> f32) {
    let row_bytes = w.len() / out.len().max(1);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes.max(1))) {
        *o = dot(row, xq);
    }
}

/// Rounds `x` to Q8_0 activation blocks as [`act::quantize_activations_q8_0`] does, bit for
/// bit: the same `amax` (a max is exact in any order; NaN is skipped as `f32::max` does), the
/// same scalar `d` and `127 / amax`, the same product `v * id` per element, then `rintf` (half
/// to even) as `_mm256_round_ps` to nearest, and `as i8` as a clamp to `[-128, 127]` with NaN
/// to 0. Whole blocks only.
#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    let (xs, _) = x.as_chunks::<QK>();
    let (outs, _) = out.as_chunks_mut::<{ q8_0_x::BYTES }>();
    let sign = _mm256_set1_ps(-0.0);
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    for (xs, b) in xs.iter().zip(outs) {
        let mut v = [_mm256_setzero_ps(); 4];
        let mut m = _mm256_setzero_ps();
        for (k, v) in v.iter_mut().enumerate() {
            // SAFETY: `xs[8k..8k + 8]` are 8 readable f32; `loadu` has no alignment requirement.
            *v = unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * k)) };
            // `max(a, m)` returns `m` when `a` is NaN, as `m.max(NaN)` does.
            m = _mm256_max_ps(_mm256_andnot_ps(sign, *v), m);
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps::<0b01>(m, m));
        let amax = _mm_cvtss_f32(m);
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b[q8_0_x::D..q8_0_x::QS].copy_from_slice(&f16_to_f32(f32_to_f16(d)).to_le_bytes());
        let idv = _mm256_set1_ps(id);
        let mut q = [_mm256_setzero_si256(); 4];
        for k in 0..4 {
            let p = _mm256_mul_ps(v[k], idv);
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(p);
            let r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(p, p));
            q[k] = _mm256_cvtps_epi32(r);
        }
        let a = _mm256_packs_epi32(q[0], q[1]);
        let c = _mm256_packs_epi32(q[2], q[3]);
        let bytes = _mm256_packs_epi16(a, c);
        let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: `b[QS..QS + 32]` are the block's last 32 writable bytes; `storeu` has no
        // alignment requirement.
        unsafe { _mm256_storeu_si256(b[q8_0_x::QS..].as_mut_ptr().cast::<__m256i>(), bytes) };
    }
}

/// The Q4_0 and Q8_0 weight blocks both start with their scale `d: f16`; the Q8_0-activation
/// kernels read it at this offset for either.
pub(crate) const WEIGHT_D: usize = q8_0::D;
const _: () = assert!(q4_0::D == WEIGHT_D && q5_0::D == WEIGHT_D);

/// Q4_K × Q8_K, row by row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_q4_k_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    rows_q8(w, xq, out, |r, x| dot_q4_k_q8(r, x))
}

/// Q5_K × Q8_K, row by row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_q5_k_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    rows_q8(w, xq, out, |r, x| dot_q5_k_q8(r, x))
}

/// Q6_K × Q8_K, row by row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn matvec_q6_k_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    rows_q8(w, xq, out, |r, x| dot_q6_k_q8(r, x))
}

/// This ISA's activation rounding: Q8_0 with vectors, Q8_K with the portable code (the same
/// bytes either way).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_act(vt: GgmlType, x: &[f32], out: &mut [u8]) {
    match vt {
        GgmlType::Q8_0 => quantize_q8_0(x, out),
        _ => act::quantize_activations(vt, x, out),
    }
}

/// The integer products of the opt-in path: weight type, activation type, kernel.
const fn int(ty: GgmlType, vec_dot_type: GgmlType, rows: RowsQ) -> (GgmlType, IntRows) {
    (ty, IntRows { vec_dot_type, rows, mat: None })
}

/// `KernelPath::Avx2Q8`: [`TABLE`], plus Q4_0/Q8_0 × Q8_0 and Q4_K/Q6_K × Q8_K integer
/// products. Needs avx2, fma and f16c.
pub(crate) static TABLE_Q8: Table = Table {
    path: KernelPath::Avx2Q8,
    rows: ROWS,
    int_rows: by_type([
        int(GgmlType::Q4_0, GgmlType::Q8_0, matvec_q4_0_q8),
        int(GgmlType::Q8_0, GgmlType::Q8_0, matvec_q8_0_q8),
        int(GgmlType::Q5_0, GgmlType::Q8_0, matvec_q5_0_q8),
        int(GgmlType::Q4_K, GgmlType::Q8_K, matvec_q4_k_q8),
        int(GgmlType::Q5_K, GgmlType::Q8_K, matvec_q5_k_q8),
        int(GgmlType::Q6_K, GgmlType::Q8_K, matvec_q6_k_q8),
    ]),
    quantize_act: Some(quantize_act),
};
