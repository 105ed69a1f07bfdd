//! The AVX-512 VNNI several-position (prefill) products of Q4_0, Q5_0 and Q8_0 rows against Q8_0
//! activations: register tiles of rows × position pairs, each value bit-identical with the
//! single-position kernels of `avx512.rs` / `avx2_q8.rs`. Owns the tile arithmetic and its
//! loop over a unit's rows and a chunk's positions only; the per-type unpacking and the
//! single-position fallback come from the caller, and it must not know how a path is chosen.
//!
//! The single-position kernels keep, per row, one accumulator of eight f32 lanes; block after
//! block, lane `l` takes `fma(f32(dx) * dy, f32(Σ_{4 bytes of lane l} w·y), acc)` (the integer
//! sum exact). Lanes never mix before the final `hsum`, so any layout that gives every
//! (row, position, lane) the same chain of operations gives the same bits. Here a 512-bit
//! vector holds the eight lanes of two positions for one row: one `vpdpbusd`, one conversion,
//! one scale product and one FMA per block cover both, with no lane shuffles, and a weight
//! block is unpacked once for all the tile's positions.
//!
//! Every function carries `#[target_feature(enable =
//! "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]` and is reached only through
//! `avx512::TABLE_Q8`, whose `Kernels` constructor's contract is that the CPU has all of these.

use core::arch::x86_64::*;

use super::avx2_q8::WEIGHT_D;
use super::{arr, f32_le, half_of, hsum, load256};
use crate::quant::blocks::{blocks, q8_0_x};
use crate::quant::table::MatShape;

/// Most blocks in a row the tiles take (8192 columns); longer rows run the fallback.
const MAX_BLOCKS: usize = 256;
/// Rows per tile.
const TILE_R: usize = 4;
/// Position pairs per tile (eight positions).
const TILE_PP: usize = 4;
/// Bytes of weight rows run against every position before the next rows (a share of a
/// second-level cache).
pub(super) const ROW_BLOCK_BYTES: usize = 256 * 1024;

/// One block of a position pair's activation operands: the two positions' quants (lanes 0..8
/// the first), the shared lanes `-Σ bias·y` that `vpdpbusd` starts from, and the scales
/// broadcast over the matching halves.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct PairBlock {
    y: __m512i,
    s: __m512i,
    dy: __m512,
}

/// A position pair's operands for every block of a row.
type Pair = [PairBlock; MAX_BLOCKS];

/// Fills `pair` with the first `n` blocks of positions `y0` and `y1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn fill_pair(pair: &mut Pair, y0: &[q8_0_x::Block], y1: &[q8_0_x::Block], n: usize, bias: i8) {
    let b512 = _mm512_set1_epi8(bias);
    for ((pb, a), b) in pair.iter_mut().zip(y0).zip(y1).take(n) {
        let (qa, qb) = (load256(arr(a, q8_0_x::QS)), load256(arr(b, q8_0_x::QS)));
        let y = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qa), qb);
        let (da, db) = (_mm512_set1_ps(f32_le(arr(a, q8_0_x::D))), _mm256_set1_ps(f32_le(arr(b, q8_0_x::D))));
        pb.y = y;
        pb.s = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), b512, y));
        pb.dy = _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castps_pd(da), _mm256_castps_pd(db)));
    }
}

/// `R` rows against the `PP` position pairs of `pre`, over the first `n` blocks: each value
/// `(first position, second position)` of a row and pair.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile<const B: usize, const R: usize, const PP: usize>(
    rows: [&[[u8; B]]; R],
    pre: &[Pair],
    n: usize,
    unpack: &impl Fn(&[u8; B]) -> __m512i,
) -> [[(f32, f32); PP]; R] {
    let pre: &[Pair; PP] = arr(pre, 0);
    let n = rows.iter().fold(n.min(MAX_BLOCKS), |n, r| n.min(r.len()));
    let mut acc = [[_mm512_setzero_ps(); PP]; R];
    for j in 0..n {
        for r in 0..R {
            let b = &rows[r][j];
            let q = unpack(b);
            let dx = _mm512_set1_ps(half_of(b, WEIGHT_D));
            for p in 0..PP {
                let pb = &pre[p][j];
                let sums = _mm512_dpbusd_epi32(pb.s, q, pb.y);
                let d = _mm512_mul_ps(dx, pb.dy);
                acc[r][p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sums), acc[r][p]);
            }
        }
    }
    let mut out = [[(0.0, 0.0); PP]; R];
    for r in 0..R {
        for p in 0..PP {
            let a = acc[r][p];
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)));
            out[r][p] = (hsum(_mm512_castps512_ps256(a)), hsum(hi));
        }
    }
    out
}

/// Every row of `w` against the `PP` pairs of `pre` (positions `pos[..]`, each pair's second
/// one written only when `Some`), in tiles of [`TILE_R`] rows and then of one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn rows_against<const B: usize, const PP: usize>(
    w: &[u8],
    out: &mut [f32],
    shape: MatShape,
    pre: &[Pair],
    pos: [(usize, Option<usize>); PP],
    n: usize,
    unpack: &impl Fn(&[u8; B]) -> __m512i,
) {
    let rows = shape.rows;
    let row_bytes = w.len() / rows.max(1);
    let row = |r: usize| blocks::<B>(&w[r * row_bytes..(r + 1) * row_bytes]);
    let mut put = |r: usize, v: &[(f32, f32); PP]| {
        for (&(a, b), &(pa, pb)) in v.iter().zip(&pos) {
            if let Some(o) = out.get_mut(pa * shape.stride + r) {
                *o = a;
            }
            if let Some(o) = pb.and_then(|pb| out.get_mut(pb * shape.stride + r)) {
                *o = b;
            }
        }
    };
    let mut r0 = 0;
    while r0 + TILE_R <= rows {
        let t = tile::<B, TILE_R, PP>(core::array::from_fn(|i| row(r0 + i)), pre, n, unpack);
        for (i, v) in t.iter().enumerate() {
            put(r0 + i, v);
        }
        r0 += TILE_R;
    }
    for r in r0..rows {
        let [v] = tile::<B, 1, PP>([row(r)], pre, n, unpack);
        put(r, &v);
    }
}

/// Every row of `w` against every position of `xq` ([`MatShape`]): positions in pairs, eight
/// at a time (an odd last one paired with itself, its copy dropped), rows four at a time.
/// `bias` is the unsigned offset of the unpacked weight quants (8 for Q4_0, 16 for Q5_0, 128 for Q8_0),
/// `unpack` gives one weight block's quants as `vpdpbusd`'s unsigned operand in both 256-bit
/// halves, and `one` is the single-position kernel, which runs rows longer than
/// [`MAX_BLOCKS`] blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn mat_pairs<const B: usize>(
    w: &[u8],
    xq: &[u8],
    out: &mut [f32],
    shape: MatShape,
    bias: i8,
    unpack: &impl Fn(&[u8; B]) -> __m512i,
    one: &impl Fn(&[u8], &[u8], &mut [f32]),
) {
    let (rows, q_row) = (shape.rows, shape.q_row.max(1));
    let positions = xq.len() / q_row;
    let row_bytes = w.len() / rows.max(1);
    let n = row_bytes / B;
    let y = |p: usize| blocks::<{ q8_0_x::BYTES }>(&xq[p * q_row..(p + 1) * q_row]);
    if n > MAX_BLOCKS || (0..positions).any(|p| y(p).len() < n) {
        for p in 0..positions {
            if let Some(o) = out.get_mut(p * shape.stride..p * shape.stride + rows) {
                one(w, &xq[p * q_row..(p + 1) * q_row], o);
            }
        }
        return;
    }
    let zero = PairBlock { y: _mm512_setzero_si512(), s: _mm512_setzero_si512(), dy: _mm512_setzero_ps() };
    let mut pre = [[zero; MAX_BLOCKS]; TILE_PP];
    // Rows in blocks of about ROW_BLOCK_BYTES, each block against every position before the
    // next: a block's bytes come from main memory once and stay in the second-level cache for
    // the other position groups (refilling a group's operands costs less than a row pass).
    let rb = (ROW_BLOCK_BYTES / row_bytes.max(1)).max(TILE_R) / TILE_R * TILE_R;
    let mut r0 = 0;
    while r0 < rows {
        let r1 = rows.min(r0 + rb);
        let (wb, ob) = (&w[r0 * row_bytes..r1 * row_bytes], &mut out[r0..]);
        let shape = MatShape { rows: r1 - r0, ..shape };
        let mut p0 = 0;
        while p0 < positions {
            let left = positions - p0;
            let pp = (left / 2).clamp(1, TILE_PP);
            let mut pos = [(0, None); TILE_PP];
            for (i, (pair, at)) in pre.iter_mut().zip(&mut pos).take(pp).enumerate() {
                let (a, b) = (p0 + 2 * i, p0 + 2 * i + 1);
                // An odd last position pairs with itself.
                let (b, keep) = if b < positions { (b, Some(b)) } else { (a, None) };
                fill_pair(pair, y(a), y(b), n, bias);
                *at = (a, keep);
            }
            match pp {
                4 => rows_against::<B, 4>(wb, ob, shape, &pre, pos, n, unpack),
                3 => rows_against::<B, 3>(wb, ob, shape, &pre, *arr(&pos, 0), n, unpack),
                2 => rows_against::<B, 2>(wb, ob, shape, &pre, *arr(&pos, 0), n, unpack),
                _ => rows_against::<B, 1>(wb, ob, shape, &pre, *arr(&pos, 0), n, unpack),
            }
            p0 += if left == 1 { 1 } else { 2 * pp };
        }
        r0 = r1;
    }
}

/// Q5_0 × Q8_0 for several positions ([`mat_pairs`]): one block's 5-bit quants as
/// `avx2_q8::matvec_q5_0_q8` unpacks them (`q5_quants`, elements in order), in both halves,
/// with the offset 16 taken off through the shared `-16 Σ y` lanes, so each lane is that
/// kernel's exact `Σ (q - 16) y` over its four elements.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn mat_q5_0_q8(w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape) {
    use crate::quant::blocks::q5_0;
    const _: () = assert!(q5_0::D == WEIGHT_D);
    let unpack = |b: &q5_0::Block| _mm512_broadcast_i64x4(super::avx2::q5_quants(arr(b, q5_0::QS), arr(b, q5_0::QH)));
    let one = |w: &[u8], xq: &[u8], out: &mut [f32]| super::avx2_q8::matvec_q5_0_q8(w, xq, out);
    mat_pairs::<{ q5_0::BYTES }>(w, xq, out, shape, 16, &unpack, &one)
}
