//! The x86-64 vector primitives the x86 ISA files share: unaligned loads from fixed-size
//! arrays, the F16C half, horizontal sums, prefetch. Owns no kernel and no table; it must not
//! know block formats or dispatch (the ISA files `avx2.rs` and `avx512.rs` do).
//!
//! Every function carries `#[target_feature(enable = "avx2,fma,f16c")]`, so it is reached only
//! from kernels of a table whose contract includes those features. The only `unsafe`
//! operations are the unaligned loads in `load_*`, each from a reference to a fixed-size array
//! of exactly the loaded size.

use core::arch::x86_64::*;

pub(crate) mod avx2;
pub(crate) mod avx2_q8;
pub(crate) mod avx512;
pub(crate) mod avx512_mat;
pub(crate) mod avx512_mat_k;
pub(crate) mod avx512_rows;

// Unaligned loads from fixed-size arrays: the array type guarantees the bytes exist.

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn load_ps(x: &[f32; 8]) -> __m256 {
    // SAFETY: `x` is 8 readable f32; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn load_f32_bytes(b: &[u8; 32]) -> __m256 {
    // SAFETY: `b` is 32 readable bytes, 8 little-endian f32 (x86 is little-endian); `loadu`
    // has no alignment requirement.
    unsafe { _mm256_loadu_ps(b.as_ptr().cast::<f32>()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn load128(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast::<__m128i>()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn load256(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast::<__m256i>()) }
}

/// A fixed-size sub-array at `at` (the bounds are checked; they are constant after inlining).
#[inline(always)]
pub(crate) fn arr<const N: usize, T>(s: &[T], at: usize) -> &[T; N] {
    s[at..at + N].try_into().unwrap_or_else(|_| unreachable!())
}

/// IEEE half to f32 with the F16C instruction (exact, like [`crate::quant::f16_to_f32`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn half(lo: u8, hi: u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(u16::from_le_bytes([lo, hi]) as i32)))
}

/// The IEEE half at byte `at` of a block, with the F16C instruction.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn half_of(b: &[u8], at: usize) -> f32 {
    half(b[at], b[at + 1])
}

/// The sum of the eight lanes, in a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The sum of eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b0100_1110>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b1011_0001>(s));
    _mm_cvtsi128_si32(s)
}

#[inline(always)]
pub(crate) fn f32_le(b: &[u8; 4]) -> f32 {
    f32::from_le_bytes(*b)
}

/// A hint to bring the cache line at `p` into the cache. Never faults, whatever `p` is.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
// `_mm_prefetch` became a safe intrinsic after the MSRV (1.89), where it is still `unsafe`.
#[allow(unused_unsafe)]
pub(crate) fn prefetch(p: *const u8) {
    // SAFETY: a prefetch is a hint; it never dereferences `p` and never faults, whatever `p` is.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
}

/// How far ahead of the block being read a single-row kernel prefetches the weights (rows are
/// contiguous in the slot, so this runs into the next rows). Main memory streams at a fraction
/// of these kernels' speed without it.
pub(crate) const PREFETCH_AHEAD: usize = 4096;

/// Prefetches every cache line of the block [`PREFETCH_AHEAD`] bytes after `b`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn prefetch_block<const B: usize>(b: &[u8; B]) {
    for at in (0..B).step_by(64) {
        prefetch(b.as_ptr().wrapping_add(PREFETCH_AHEAD + at));
    }
}

/// 8 bytes into the low half of a vector (the rest zero).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn load64(b: &[u8; 8]) -> __m128i {
    _mm_cvtsi64_si128(i64::from_le_bytes(*b))
}
