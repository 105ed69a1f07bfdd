//! The several-position (prefill) products of Q4_K and Q6_K rows against Q8_K activations on
//! the AVX-512 path: tiles of one row × up to eight position pairs, each value bit-identical
//! with the path's single-position kernels (`avx2_q8::matvec_q4_k_q8` / `matvec_q6_k_q8`).
//! Owns the tile arithmetic and its loop over rows and positions only; it must not know how a
//! path is chosen.
//!
//! Per super-block the single-position kernels form exact i32 lanes (any way of computing
//! them gives the same integers) and then take f32 operations in a fixed order (ggml's: one
//! FMA of eight lanes with `dy * d`, for Q4_K also one of four lanes with `-dy * dmin`). A tile
//! decodes a row's super-block once (scales, mins, unpacked quants, in both 256-bit halves of
//! a 512-bit vector) and runs those same operations for two positions per vector: the low
//! half holds one position's eight lanes, the high half the other's, and no operation mixes
//! the halves before each half is summed as the single-position kernel sums it. The scaled
//! sums `sumi + madd(p, sc)` are one `vpdpwssd` (the same i32 pair sums, added without
//! saturation).
//!
//! Every function carries `#[target_feature(enable =
//! "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]` and is reached only through
//! `avx512::TABLE_Q8`, whose `Kernels` constructor's contract is that the CPU has all of these.

use core::arch::x86_64::*;

use super::avx2::q6k_quarters;
use super::avx2_q8::{matvec_q4_k_q8, matvec_q6_k_q8, scales_mins_k4};
use super::avx512_mat::ROW_BLOCK_BYTES;
use super::{arr, f32_le, half_of, hsum, load128, load256, load64};
use crate::quant::blocks::{blocks, k4_header, q4_k, q6_k, q8_k_x};
use crate::quant::table::MatShape;

/// Most super-blocks in a row the tiles take (8192 columns); longer rows run the fallback.
const MAX_SB: usize = 32;
/// Most position pairs per tile (sixteen positions): a decoded super-block serves them all.
const TILE_PP: usize = 8;

/// One super-block of a position pair's activation operands, each 512-bit vector the first
/// position's value in its low half and the second's in its high half.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct KPair {
    /// The quants, 32 per half: elements `32 c .. 32 c + 32`.
    y: [__m512i; 8],
    /// `dy` over each half.
    dy: __m512,
    /// The 16 `bsums` (i16) of each position.
    bs: __m512i,
    /// Q4_K: the eight pair sums `bsums[2k] + bsums[2k + 1]` (i16) of each position, one per
    /// 128-bit half.
    pairs: __m256i,
    /// `-dy` over each 128-bit half.
    ndy: __m256,
}

/// A position pair's operands for every super-block of a row.
type Pair = [KPair; MAX_SB];

/// Fills `pair` with the first `n` super-blocks of positions `y0` and `y1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn fill_pair(pair: &mut Pair, y0: &[q8_k_x::Block], y1: &[q8_k_x::Block], n: usize) {
    let both = |a: __m256i, b: __m256i| _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b);
    for ((kp, a), b) in pair.iter_mut().zip(y0).zip(y1).take(n) {
        for c in 0..8 {
            kp.y[c] = both(load256(arr(a, q8_k_x::QS + 32 * c)), load256(arr(b, q8_k_x::QS + 32 * c)));
        }
        let (da, db) = (f32_le(arr(a, q8_k_x::D)), f32_le(arr(b, q8_k_x::D)));
        kp.dy = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            _mm512_castps_pd(_mm512_set1_ps(da)),
            _mm256_castps_pd(_mm256_set1_ps(db)),
        ));
        let (ba, bb) = (load256(arr(a, q8_k_x::BSUMS)), load256(arr(b, q8_k_x::BSUMS)));
        kp.bs = both(ba, bb);
        let pairs = |v: __m256i| _mm_hadd_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        kp.pairs = _mm256_set_m128i(pairs(bb), pairs(ba));
        kp.ndy = _mm256_set_m128(_mm_set1_ps(-db), _mm_set1_ps(-da));
    }
}

/// The two halves of `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn halves(v: __m512) -> (__m256, __m256) {
    (_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))))
}

/// `v` in both 256-bit halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn twice(v: __m256i) -> __m512i {
    _mm512_broadcast_i64x4(v)
}

/// The fold `(m0 + m2) + (m1 + m3)` of four lanes, as `avx2_q8::dot_q4_k_q8` ends.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn fold4(m: __m128) -> f32 {
    let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)))
}

/// One Q4_K row against the `PP` pairs of `pre` over `n` super-blocks, as
/// `avx2_q8::dot_q4_k_q8` for each position.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile_q4_k<const PP: usize>(row: &[q4_k::Block], pre: &[Pair], n: usize) -> [(f32, f32); PP] {
    let pre: &[Pair; PP] = arr(pre, 0);
    let n = n.min(row.len()).min(MAX_SB);
    let m4 = _mm512_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); PP];
    let mut acc_m = [_mm256_setzero_ps(); PP];
    for (i, b) in row[..n].iter().enumerate() {
        let (d, dmin, scales) = k4_header(b);
        let (sc, mn) = scales_mins_k4(&scales);
        let mut q = [_mm512_setzero_si512(); 8];
        let mut s = [_mm512_setzero_si512(); 8];
        for g in 0..4 {
            let v = twice(load256(arr(b, q4_k::QS + 32 * g)));
            q[2 * g] = _mm512_and_si512(v, m4);
            q[2 * g + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), m4);
            s[2 * g] = _mm512_set1_epi16(sc[2 * g] as i16);
            s[2 * g + 1] = _mm512_set1_epi16(sc[2 * g + 1] as i16);
        }
        let mins = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(load64(&mn)));
        let (dv, dminv) = (_mm512_set1_ps(d), _mm256_set1_ps(dmin));
        for p in 0..PP {
            let y = &pre[p][i];
            let mut sumi = _mm512_setzero_si512();
            for c in 0..8 {
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q[c], y.y[c]), s[c]);
            }
            let m = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, y.pairs));
            acc_m[p] = _mm256_fmadd_ps(_mm256_mul_ps(y.ndy, dminv), m, acc_m[p]);
            acc[p] = _mm512_fmadd_ps(_mm512_mul_ps(y.dy, dv), _mm512_cvtepi32_ps(sumi), acc[p]);
        }
    }
    let mut out = [(0.0, 0.0); PP];
    for p in 0..PP {
        let (a, b) = halves(acc[p]);
        let (ma, mb) = (_mm256_castps256_ps128(acc_m[p]), _mm256_extractf128_ps::<1>(acc_m[p]));
        out[p] = (hsum(a) + fold4(ma), hsum(b) + fold4(mb));
    }
    out
}

/// One Q6_K row against the `PP` pairs of `pre` over `n` super-blocks, as
/// `avx2_q8::dot_q6_k_q8` for each position.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile_q6_k<const PP: usize>(row: &[q6_k::Block], pre: &[Pair], n: usize) -> [(f32, f32); PP] {
    let pre: &[Pair; PP] = arr(pre, 0);
    let n = n.min(row.len()).min(MAX_SB);
    let mut acc = [_mm512_setzero_ps(); PP];
    for (i, b) in row[..n].iter().enumerate() {
        let sc: &[u8; 16] = arr(b, q6_k::SCALES);
        let sc16 = twice(_mm256_cvtepi8_epi16(load128(sc)));
        let mut q = [_mm512_setzero_si512(); 8];
        let mut s = [_mm512_setzero_si512(); 8];
        for h in 0..2 {
            for (k, v) in q6k_quarters(b, h).into_iter().enumerate() {
                let at = 8 * h + 2 * k;
                q[4 * h + k] = twice(v);
                let (s0, s1) = (sc[at] as i8 as i16, sc[at + 1] as i8 as i16);
                s[4 * h + k] = twice(_mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0)));
            }
        }
        let dx = _mm512_set1_ps(half_of(b, q6_k::D));
        for p in 0..PP {
            let y = &pre[p][i];
            let mut sumi =
                _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<5>(_mm512_madd_epi16(sc16, y.bs)));
            for c in 0..8 {
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q[c], y.y[c]), s[c]);
            }
            acc[p] = _mm512_fmadd_ps(_mm512_mul_ps(y.dy, dx), _mm512_cvtepi32_ps(sumi), acc[p]);
        }
    }
    let mut out = [(0.0, 0.0); PP];
    for p in 0..PP {
        let (a, b) = halves(acc[p]);
        out[p] = (hsum(a), hsum(b));
    }
    out
}

/// Every row of `w` against the `PP` pairs of `pre` (positions `pos[..]`, each pair's second
/// one written only when `Some`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn rows_against<const B: usize, const PP: usize>(
    w: &[u8],
    out: &mut [f32],
    shape: MatShape,
    pre: &[Pair],
    pos: [(usize, Option<usize>); PP],
    n: usize,
    tile: &impl Fn(&[[u8; B]], &[Pair], usize) -> [(f32, f32); PP],
) {
    let rows = shape.rows;
    let row_bytes = w.len() / rows.max(1);
    for r in 0..rows {
        let v = tile(blocks::<B>(&w[r * row_bytes..(r + 1) * row_bytes]), pre, n);
        for (&(a, b), &(pa, pb)) in v.iter().zip(&pos) {
            if let Some(o) = out.get_mut(pa * shape.stride + r) {
                *o = a;
            }
            if let Some(o) = pb.and_then(|pb| out.get_mut(pb * shape.stride + r)) {
                *o = b;
            }
        }
    }
}

/// The row tiles for every supported pair count.
struct Tiles<T8, T4, T2, T1> {
    t8: T8,
    t4: T4,
    t2: T2,
    t1: T1,
}

/// Every row of `w` against every position of `xq` ([`MatShape`]): positions in pairs, up to
/// sixteen at a time (an odd last one paired with itself, its copy dropped). `one` is the
/// single-position kernel, which runs rows longer than [`MAX_SB`] super-blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn mat_pairs_k<const B: usize, T8, T4, T2, T1>(
    w: &[u8],
    xq: &[u8],
    out: &mut [f32],
    shape: MatShape,
    tiles: Tiles<T8, T4, T2, T1>,
    one: &impl Fn(&[u8], &[u8], &mut [f32]),
) where
    T8: Fn(&[[u8; B]], &[Pair], usize) -> [(f32, f32); 8],
    T4: Fn(&[[u8; B]], &[Pair], usize) -> [(f32, f32); 4],
    T2: Fn(&[[u8; B]], &[Pair], usize) -> [(f32, f32); 2],
    T1: Fn(&[[u8; B]], &[Pair], usize) -> [(f32, f32); 1],
{
    let (rows, q_row) = (shape.rows, shape.q_row.max(1));
    let positions = xq.len() / q_row;
    let row_bytes = w.len() / rows.max(1);
    let n = row_bytes / B;
    let y = |p: usize| blocks::<{ q8_k_x::BYTES }>(&xq[p * q_row..(p + 1) * q_row]);
    if n > MAX_SB || (0..positions).any(|p| y(p).len() < n) {
        for p in 0..positions {
            if let Some(o) = out.get_mut(p * shape.stride..p * shape.stride + rows) {
                one(w, &xq[p * q_row..(p + 1) * q_row], o);
            }
        }
        return;
    }
    let zero = KPair {
        y: [_mm512_setzero_si512(); 8],
        dy: _mm512_setzero_ps(),
        bs: _mm512_setzero_si512(),
        pairs: _mm256_setzero_si256(),
        ndy: _mm256_setzero_ps(),
    };
    let mut pre = [[zero; MAX_SB]; TILE_PP];
    // Rows in blocks, each against every position before the next (as `avx512_mat.rs`).
    let rb = (ROW_BLOCK_BYTES / row_bytes.max(1)).max(1);
    let mut r0 = 0;
    while r0 < rows {
        let r1 = rows.min(r0 + rb);
        let (wb, ob) = (&w[r0 * row_bytes..r1 * row_bytes], &mut out[r0..]);
        let shape = MatShape { rows: r1 - r0, ..shape };
        let mut p0 = 0;
        while p0 < positions {
            let left = positions - p0;
            // 8, 4, 2 or 1 pairs: the most that the positions left fill.
            let pp = match left / 2 {
                8.. => 8,
                4..=7 => 4,
                2..=3 => 2,
                _ => 1,
            };
            let mut pos = [(0, None); TILE_PP];
            for (i, (pair, at)) in pre.iter_mut().zip(&mut pos).take(pp).enumerate() {
                let (a, b) = (p0 + 2 * i, p0 + 2 * i + 1);
                // An odd last position pairs with itself.
                let (b, keep) = if b < positions { (b, Some(b)) } else { (a, None) };
                fill_pair(pair, y(a), y(b), n);
                *at = (a, keep);
            }
            match pp {
                8 => rows_against::<B, 8>(wb, ob, shape, &pre, pos, n, &tiles.t8),
                4 => rows_against::<B, 4>(wb, ob, shape, &pre, *arr(&pos, 0), n, &tiles.t4),
                2 => rows_against::<B, 2>(wb, ob, shape, &pre, *arr(&pos, 0), n, &tiles.t2),
                _ => rows_against::<B, 1>(wb, ob, shape, &pre, *arr(&pos, 0), n, &tiles.t1),
            }
            p0 += if left == 1 { 1 } else { 2 * pp };
        }
        r0 = r1;
    }
}

/// Q4_K × Q8_K for several positions.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn mat_q4_k_q8(w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape) {
    let tiles = Tiles {
        t8: |r: &[q4_k::Block], pre: &[Pair], n| tile_q4_k::<8>(r, pre, n),
        t4: |r: &[q4_k::Block], pre: &[Pair], n| tile_q4_k::<4>(r, pre, n),
        t2: |r: &[q4_k::Block], pre: &[Pair], n| tile_q4_k::<2>(r, pre, n),
        t1: |r: &[q4_k::Block], pre: &[Pair], n| tile_q4_k::<1>(r, pre, n),
    };
    let one = |w: &[u8], xq: &[u8], out: &mut [f32]| matvec_q4_k_q8(w, xq, out);
    mat_pairs_k::<{ q4_k::BYTES }, _, _, _, _>(w, xq, out, shape, tiles, &one)
}

/// Q6_K × Q8_K for several positions.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn mat_q6_k_q8(w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape) {
    let tiles = Tiles {
        t8: |r: &[q6_k::Block], pre: &[Pair], n| tile_q6_k::<8>(r, pre, n),
        t4: |r: &[q6_k::Block], pre: &[Pair], n| tile_q6_k::<4>(r, pre, n),
        t2: |r: &[q6_k::Block], pre: &[Pair], n| tile_q6_k::<2>(r, pre, n),
        t1: |r: &[q6_k::Block], pre: &[Pair], n| tile_q6_k::<1>(r, pre, n),
    };
    let one = |w: &[u8], xq: &[u8], out: &mut [f32]| matvec_q6_k_q8(w, xq, out);
    mat_pairs_k::<{ q6_k::BYTES }, _, _, _, _>(w, xq, out, shape, tiles, &one)
}
