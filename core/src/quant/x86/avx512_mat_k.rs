//! The several-position (prefill) products of Q4_K and Q6_K rows against Q8_K activations on
//! the AVX-512 path: tiles of one row × up to four positions, each value bit-identical with
//! the path's single-position kernels (`avx2_q8::matvec_q4_k_q8` / `matvec_q6_k_q8`). Owns the
//! tile arithmetic and its loop over rows and positions only; it must not know how a path is
//! chosen.
//!
//! Per super-block the single-position kernels form exact i32 lanes (any way of computing
//! them gives the same integers) and then take f32 operations in a fixed order (ggml's: one
//! FMA of eight lanes with `dy * d`, for Q4_K also one of four lanes with `-dy * dmin`). A tile
//! decodes a row's super-block once (scales, mins, unpacked quants) and runs those same
//! operations for each of its positions, in each position's own accumulators. The scaled sums
//! `sumi + madd(p, sc)` are one `vpdpwssd` (the same i32 pair sums, added without saturation).
//!
//! Every function carries `#[target_feature(enable =
//! "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]` (the 32 vector registers hold a
//! decoded super-block and four positions' accumulators) and is reached only through
//! `avx512::TABLE_Q8`, whose `Kernels` constructor's contract is that the CPU has all of these.

use core::arch::x86_64::*;

use super::avx2::q6k_quarters;
use super::avx2_q8::scales_mins_k4;
use super::{arr, f32_le, half_of, hsum, load128, load256, load64};
use crate::quant::blocks::{blocks, k4_header, q4_k, q6_k, q8_k_x};
use crate::quant::table::MatShape;

/// Positions per tile.
const TILE_P: usize = 4;

/// One Q4_K row against `P` positions, as `avx2_q8::dot_q4_k_q8` for each.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile_q4_k<const P: usize>(row: &[q4_k::Block], ys: [&[q8_k_x::Block]; P]) -> [f32; P] {
    let n = ys.iter().fold(row.len(), |n, y| n.min(y.len()));
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); P];
    let mut acc_m = [_mm_setzero_ps(); P];
    for (i, b) in row[..n].iter().enumerate() {
        let (d, dmin, scales) = k4_header(b);
        let (sc, mn) = scales_mins_k4(&scales);
        let mut q = [_mm256_setzero_si256(); 8];
        let mut s = [_mm256_setzero_si256(); 8];
        for g in 0..4 {
            let v = load256(arr(b, q4_k::QS + 32 * g));
            q[2 * g] = _mm256_and_si256(v, m4);
            q[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4);
            s[2 * g] = _mm256_set1_epi16(sc[2 * g] as i16);
            s[2 * g + 1] = _mm256_set1_epi16(sc[2 * g + 1] as i16);
        }
        let mins = _mm_cvtepu8_epi16(load64(&mn));
        for p in 0..P {
            let y = &ys[p][i];
            let mut sumi = _mm256_setzero_si256();
            for c in 0..8 {
                let prod = _mm256_maddubs_epi16(q[c], load256(arr(y, q8_k_x::QS + 32 * c)));
                sumi = _mm256_dpwssd_epi32(sumi, prod, s[c]);
            }
            let dy = f32_le(arr(y, q8_k_x::D));
            let bs = load256(arr(y, q8_k_x::BSUMS));
            let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256::<1>(bs));
            let m = _mm_cvtepi32_ps(_mm_madd_epi16(mins, pairs));
            acc_m[p] = _mm_fmadd_ps(_mm_set1_ps(-dy * dmin), m, acc_m[p]);
            acc[p] = _mm256_fmadd_ps(_mm256_set1_ps(dy * d), _mm256_cvtepi32_ps(sumi), acc[p]);
        }
    }
    let mut out = [0.0; P];
    for p in 0..P {
        let m = _mm_add_ps(acc_m[p], _mm_movehl_ps(acc_m[p], acc_m[p]));
        let m = _mm_add_ss(m, _mm_movehdup_ps(m));
        out[p] = hsum(acc[p]) + _mm_cvtss_f32(m);
    }
    out
}

/// One Q6_K row against `P` positions, as `avx2_q8::dot_q6_k_q8` for each.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile_q6_k<const P: usize>(row: &[q6_k::Block], ys: [&[q8_k_x::Block]; P]) -> [f32; P] {
    let n = ys.iter().fold(row.len(), |n, y| n.min(y.len()));
    let mut acc = [_mm256_setzero_ps(); P];
    for (i, b) in row[..n].iter().enumerate() {
        let sc: &[u8; 16] = arr(b, q6_k::SCALES);
        let sc16 = _mm256_cvtepi8_epi16(load128(sc));
        let mut q = [_mm256_setzero_si256(); 8];
        let mut s = [_mm256_setzero_si256(); 8];
        for h in 0..2 {
            for (k, v) in q6k_quarters(b, h).into_iter().enumerate() {
                let at = 8 * h + 2 * k;
                q[4 * h + k] = v;
                let (s0, s1) = (sc[at] as i8 as i16, sc[at + 1] as i8 as i16);
                s[4 * h + k] = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
            }
        }
        let dx = half_of(b, q6_k::D);
        for p in 0..P {
            let y = &ys[p][i];
            let bs = load256(arr(y, q8_k_x::BSUMS));
            let mut sumi =
                _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bs)));
            for c in 0..8 {
                let prod = _mm256_maddubs_epi16(q[c], load256(arr(y, q8_k_x::QS + 32 * c)));
                sumi = _mm256_dpwssd_epi32(sumi, prod, s[c]);
            }
            let d = f32_le(arr(y, q8_k_x::D)) * dx;
            acc[p] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[p]);
        }
    }
    let mut out = [0.0; P];
    for p in 0..P {
        out[p] = hsum(acc[p]);
    }
    out
}

/// Every row of `w` against every position of `xq` ([`MatShape`]) with `tile4` (four
/// positions) and `tile1` (the leftover positions).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn mat_rows<const B: usize>(
    w: &[u8],
    xq: &[u8],
    out: &mut [f32],
    shape: MatShape,
    tile4: impl Fn(&[[u8; B]], [&[q8_k_x::Block]; TILE_P]) -> [f32; TILE_P],
    tile1: impl Fn(&[[u8; B]], [&[q8_k_x::Block]; 1]) -> [f32; 1],
) {
    let (rows, q_row) = (shape.rows, shape.q_row.max(1));
    let positions = xq.len() / q_row;
    let row_bytes = w.len() / rows.max(1);
    let y = |p: usize| blocks::<{ q8_k_x::BYTES }>(&xq[p * q_row..(p + 1) * q_row]);
    let mut p0 = 0;
    while p0 < positions {
        let np = if positions - p0 >= TILE_P { TILE_P } else { 1 };
        for r in 0..rows {
            let row = blocks::<B>(&w[r * row_bytes..(r + 1) * row_bytes]);
            let v = if np == TILE_P {
                tile4(row, core::array::from_fn(|i| y(p0 + i)))
            } else {
                let [v] = tile1(row, [y(p0)]);
                [v, 0.0, 0.0, 0.0]
            };
            for (p, v) in v.into_iter().take(np).enumerate() {
                if let Some(o) = out.get_mut((p0 + p) * shape.stride + r) {
                    *o = v;
                }
            }
        }
        p0 += np;
    }
}

/// Q4_K × Q8_K for several positions.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn mat_q4_k_q8(w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape) {
    mat_rows::<{ q4_k::BYTES }>(w, xq, out, shape, |r, ys| tile_q4_k(r, ys), |r, ys| tile_q4_k(r, ys))
}

/// Q6_K × Q8_K for several positions.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn mat_q6_k_q8(w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape) {
    mat_rows::<{ q6_k::BYTES }>(w, xq, out, shape, |r, ys| tile_q6_k(r, ys), |r, ys| tile_q6_k(r, ys))
}
