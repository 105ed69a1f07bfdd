//! The AVX-512 VNNI matrix-vector kernels of the decode step (one position): Q4_0 and Q8_0
//! weights × Q8_0 activations, four rows per 512-bit vector. Bit-identical with `avx2_q8.rs`'s
//! one-row kernels (ggml's order). Owns this arithmetic only: `avx512.rs`'s table calls it (and
//! runs the rows it leaves), and the several-position tiles there do not use it.
//!
//! A row's one accumulator of eight f32 lanes (lane `l` the products of elements `4l..4l + 4`
//! of each block) is split over two vectors: `lo` holds lanes 0..4 (elements 0..16) and `hi`
//! lanes 4..8, each with the four rows of a group in its four 128-bit lanes. A block step is
//! then, per row, exactly the one-row kernel's: the exact integer lanes `Σ qx qy` (`vpdpbusd`
//! of the unsigned quants from the shared lanes `-bias Σ y`), times the block's `f32(dx) * dy`
//! by one FMA per lane, block after block; and the end is the one-row `hsum` (the lane sums
//! `lo + hi`, then the pairs, then the two halves). The scale products of four rows × four
//! blocks come from one gather.
//!
//! Every function carries `#[target_feature(enable =
//! "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]` and is reached only through
//! `avx512::TABLE_Q8`, by a `Kernels` made by the `unsafe` `Kernels::avx512_q8`, whose contract
//! is that the CPU has all of these.

use core::arch::x86_64::*;

use super::avx2_q8::WEIGHT_D;
use super::{arr, f32_le, load128, prefetch};
use crate::quant::blocks::{blocks, q4_0, q8_0, q8_0_x};

/// Blocks of one row these kernels take (16384 columns); longer rows run the caller's kernel.
pub(crate) const MAX_BLOCKS: usize = 512;

/// Rows per group (one per 128-bit lane).
const GROUP: usize = 4;

/// Blocks per scale gather (with the [`GROUP`] rows, 16 lanes).
const BLK: usize = 4;

/// The per-call activation operands, shared by every row: per block the shared lanes
/// `-bias Σ y` (eight i32, the one-row kernel's), and the activation scales `dy`, padded with
/// zeros to whole gathers.
struct Act {
    s: [[u8; 32]; MAX_BLOCKS],
    dy: [f32; MAX_BLOCKS + BLK],
}

/// The activation operands of `ys` (at most [`MAX_BLOCKS`] blocks) for weights offset by `bias`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn act(ys: &[q8_0_x::Block], bias: i8, a: &mut Act) {
    let b = _mm256_set1_epi8(bias);
    for (j, y) in ys.iter().enumerate().take(MAX_BLOCKS) {
        let yv = super::load256(arr(y, q8_0_x::QS));
        let s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), b, yv));
        // SAFETY: `a.s[j]` is 32 writable bytes; `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_si256(a.s[j].as_mut_ptr().cast::<__m256i>(), s) };
        a.dy[j] = f32_le(arr(y, q8_0_x::D));
    }
}

/// 16 bytes at `at` of `b`, the same in each 128-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn bcast128<const N: usize>(b: &[u8; N], at: usize) -> __m512i {
    _mm512_broadcast_i32x4(load128(arr(b, at)))
}

/// The 16 bytes at `at` of four blocks, one per 128-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn four<const B: usize>(b: [&[u8; B]; GROUP], at: usize) -> __m512i {
    let lo = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(load128(arr(b[0], at))), load128(arr(b[1], at)));
    let v = _mm512_inserti32x4::<2>(_mm512_castsi256_si512(lo), load128(arr(b[2], at)));
    _mm512_inserti32x4::<3>(v, load128(arr(b[3], at)))
}

/// `f32(dx) * dy` of rows `0..4` × blocks `b0..b0 + count` of `group` (four rows of
/// `row_bytes`, `B`-byte blocks whose f16 scale is their first two bytes), lane `4r + j` for
/// row `r`, block `b0 + j`: one gather of the blocks' first four bytes, the low halves
/// converted as F16C does, times `dy[b0 + j]`. Lanes with `j >= count` are 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn scales<const B: usize>(
    group: &[u8],
    row_bytes: usize,
    b0: usize,
    count: usize,
    dy: &[f32; MAX_BLOCKS + BLK],
) -> __m512 {
    const { assert!(B >= 4 && WEIGHT_D == 0) };
    // Every lane reads inside `group` only if the blocks exist in all four rows.
    let count = if (b0 + count) * B <= row_bytes && GROUP * row_bytes <= group.len() { count.min(BLK) } else { 0 };
    let lanes = (1u32 << count) - 1;
    let k = (lanes | lanes << 4 | lanes << 8 | lanes << 12) as __mmask16;
    let (rb, b) = (row_bytes as i32, B as i32);
    let idx = _mm512_set_epi32(
        3 * rb + 3 * b,
        3 * rb + 2 * b,
        3 * rb + b,
        3 * rb,
        2 * rb + 3 * b,
        2 * rb + 2 * b,
        2 * rb + b,
        2 * rb,
        rb + 3 * b,
        rb + 2 * b,
        rb + b,
        rb,
        3 * b,
        2 * b,
        b,
        0,
    );
    let base = group.get(b0 * B..).map_or(group.as_ptr(), |g| g.as_ptr());
    // SAFETY: lane `4r + j` (`j < count`) reads the four bytes at row `r`, block `b0 + j` of
    // `group`, inside it (`(b0 + count) * B <= row_bytes`, `B >= 4`, four rows in `group`, and
    // the offsets fit an i32: the caller checked `GROUP * row_bytes < 2^31`); the other lanes
    // are masked off and read nothing.
    let g = unsafe { _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), k, idx, base.cast::<i32>()) };
    let dx = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
    let dy: &[f32; BLK] = arr(dy, b0.min(MAX_BLOCKS));
    // SAFETY: `dy` is 4 readable f32; `loadu` has no alignment requirement.
    let dy = _mm512_broadcast_f32x4(unsafe { _mm_loadu_ps(dy.as_ptr()) });
    _mm512_mul_ps(dx, dy)
}

/// The one-row `hsum` of each of the four rows of a group: lane `4r` of the result is row
/// `r`'s `((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))` from its `lo` (`v0..v4`) and `hi`
/// (`v4..v8`) lanes, the same operations as `hsum`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn hsum4(lo: __m512, hi: __m512) -> [f32; GROUP] {
    let s = _mm512_add_ps(lo, hi);
    let t = _mm512_add_ps(s, _mm512_shuffle_ps::<0b11_10_11_10>(s, s));
    let u = _mm512_add_ps(t, _mm512_movehdup_ps(t));
    let mut v = [0.0f32; 16];
    // SAFETY: `v` is 16 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_ps(v.as_mut_ptr(), u) };
    [v[0], v[4], v[8], v[12]]
}

/// `G` groups of four rows (`groups[g]`: the group's bytes, four rows of `row_bytes`) against
/// `ys`: per [`BLK`] blocks the groups' scale products, then per block the activation operands
/// loaded once for every group, and per group `quants(rows, hi)` (the unsigned quants of
/// elements 0..16, or 16..32 with `hi`, of the four rows' blocks, offset by the bias whose
/// lanes are in `a.s`) into `vpdpbusd`, one FMA into `lo` or `hi`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn groups_vnni<const B: usize, const G: usize>(
    groups: [&[u8]; G],
    row_bytes: usize,
    ys: &[q8_0_x::Block],
    a: &Act,
    ahead: usize,
    quants: &impl Fn([&[u8; B]; GROUP]) -> (__m512i, __m512i),
) -> [[f32; GROUP]; G] {
    let n = ys.len().min(MAX_BLOCKS).min(row_bytes / B);
    let mut lo = [_mm512_setzero_ps(); G];
    let mut hi = [_mm512_setzero_ps(); G];
    // Lane `4r + j` of the scale products to every lane of row `r`'s 128-bit lane.
    let first = _mm512_set_epi32(12, 12, 12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0);
    let pick = [
        first,
        _mm512_add_epi32(first, _mm512_set1_epi32(1)),
        _mm512_add_epi32(first, _mm512_set1_epi32(2)),
        _mm512_add_epi32(first, _mm512_set1_epi32(3)),
    ];
    let mut b0 = 0;
    while b0 < n {
        let count = BLK.min(n - b0);
        let mut sc = [_mm512_setzero_ps(); G];
        for g in 0..G {
            sc[g] = scales::<B>(groups[g], row_bytes, b0, count, &a.dy);
        }
        for (j, pick) in pick.iter().enumerate().take(count) {
            let b = b0 + j;
            let y = &ys[b];
            let (ylo, yhi) = (bcast128(y, q8_0_x::QS), bcast128(y, q8_0_x::QS + 16));
            let (slo, shi) = (bcast128(&a.s[b], 0), bcast128(&a.s[b], 16));
            for g in 0..G {
                let at = b * B;
                let rows: [&[u8; B]; GROUP] = [
                    arr(groups[g], at),
                    arr(groups[g], row_bytes + at),
                    arr(groups[g], 2 * row_bytes + at),
                    arr(groups[g], 3 * row_bytes + at),
                ];
                // One prefetch per row every 64 bytes or less: every other block of 32 bytes
                // or less (Q4_0), every block otherwise.
                if 2 * B > 64 || j % 2 == 0 {
                    for r in rows {
                        prefetch(r.as_ptr().wrapping_add(ahead));
                    }
                }
                let (qlo, qhi) = quants(rows);
                let d = _mm512_permutexvar_ps(*pick, sc[g]);
                lo[g] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(slo, qlo, ylo)), lo[g]);
                hi[g] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(shi, qhi, yhi)), hi[g]);
            }
        }
        b0 += count;
    }
    let mut out = [[0.0f32; GROUP]; G];
    for g in 0..G {
        out[g] = hsum4(lo[g], hi[g]);
    }
    out
}

/// The first rows of `w` against `xq`, in groups of four (two groups per pass): returns how
/// many rows it wrote, a multiple of four (0 when a row has more than [`MAX_BLOCKS`] blocks);
/// the caller runs the rest with the one-row kernel, whose bits these are.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn matvec_vnni<const B: usize>(
    w: &[u8],
    xq: &[u8],
    out: &mut [f32],
    bias: i8,
    quants: &impl Fn([&[u8; B]; GROUP]) -> (__m512i, __m512i),
) -> usize {
    let row_bytes = w.len() / out.len().max(1);
    let ys = blocks::<{ q8_0_x::BYTES }>(xq);
    if row_bytes < B || row_bytes / B > MAX_BLOCKS || ys.len() > MAX_BLOCKS || GROUP * row_bytes >= 1 << 31 {
        return 0;
    }
    let mut a = Act { s: [[0; 32]; MAX_BLOCKS], dy: [0.0; MAX_BLOCKS + BLK] };
    act(ys, bias, &mut a);
    // The same blocks of the next pass's rows (contiguous after this pass's).
    let ahead = 2 * GROUP * row_bytes;
    let group_bytes = GROUP * row_bytes;
    let mut done = 0;
    let mut gs = w.chunks_exact(2 * group_bytes);
    let mut outs = out.chunks_exact_mut(2 * GROUP);
    for (o, g) in (&mut outs).zip(&mut gs) {
        let (g0, g1) = g.split_at(group_bytes);
        let [r0, r1] = groups_vnni::<B, 2>([g0, g1], row_bytes, ys, &a, ahead, quants);
        o[..GROUP].copy_from_slice(&r0);
        o[GROUP..].copy_from_slice(&r1);
        done += 2 * GROUP;
    }
    let rest = outs.into_remainder();
    if rest.len() >= GROUP {
        if let Some(g) = w.get(done * row_bytes..(done + GROUP) * row_bytes) {
            let [r0] = groups_vnni::<B, 1>([g], row_bytes, ys, &a, ahead, quants);
            rest[..GROUP].copy_from_slice(&r0);
            done += GROUP;
        }
    }
    done
}

/// Q4_0 × Q8_0 ([`groups_vnni`]): the low nibbles (elements 0..16) and the high ones as
/// unsigned bytes, offset 8. Returns the rows written (see [`matvec_vnni`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn matvec_q4_0(w: &[u8], xq: &[u8], out: &mut [f32]) -> usize {
    let m4 = _mm512_set1_epi8(0x0f);
    let quants = |b: [&q4_0::Block; GROUP]| {
        let v = four(b, q4_0::QS);
        (_mm512_and_si512(v, m4), _mm512_and_si512(_mm512_srli_epi16::<4>(v), m4))
    };
    matvec_vnni::<{ q4_0::BYTES }>(w, xq, out, 8, &quants)
}

/// Q8_0 × Q8_0 ([`groups_vnni`]): `w + 128` as unsigned bytes, offset 128. Returns the rows
/// written (see [`matvec_vnni`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn matvec_q8_0(w: &[u8], xq: &[u8], out: &mut [f32]) -> usize {
    let bias = _mm512_set1_epi8(-128);
    let quants = |b: [&q8_0::Block; GROUP]| {
        (_mm512_xor_si512(four(b, q8_0::QS), bias), _mm512_xor_si512(four(b, q8_0::QS + 16), bias))
    };
    matvec_vnni::<{ q8_0::BYTES }>(w, xq, out, -128, &quants)
}
