//! AVX2 + FMA + F16C dot products (x86-64), reached only through [`super::Kernels`].
//!
//! Every function here carries `#[target_feature(enable = "avx2,fma,f16c")]`; the only way in
//! from code without those features is `Kernels::matvec` on a `Kernels` made by the `unsafe`
//! [`super::Kernels::avx2`], whose contract is that the CPU has them.
//!
//! Each row keeps eight f32 lanes of partial sums (quantized blocks: one partial sum per block
//! or sub-block, scaled once), reduced in a fixed order at the end of the row. The order
//! depends only on the row's length, never on which rows run together. Elements that do not
//! fill a vector (or a block whose input is cut short) go through the scalar code and are
//! added last.
//!
//! The only `unsafe` operations are the unaligned vector loads in `load_*`, each from a
//! reference to a fixed-size array of exactly the loaded size.

use core::arch::x86_64::*;

use super::{k4_header, scale_min_k4, GgmlType};

// Unaligned loads from fixed-size arrays: the array type guarantees the bytes exist.

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_ps(x: &[f32; 8]) -> __m256 {
    // SAFETY: `x` is 8 readable f32; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_f32_bytes(b: &[u8; 32]) -> __m256 {
    // SAFETY: `b` is 32 readable bytes, 8 little-endian f32 (x86 is little-endian); `loadu`
    // has no alignment requirement.
    unsafe { _mm256_loadu_ps(b.as_ptr().cast::<f32>()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load128(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast::<__m128i>()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load256(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast::<__m256i>()) }
}

/// A fixed-size sub-array at `at` (the bounds are checked; they are constant after inlining).
#[inline(always)]
fn arr<const N: usize, T>(s: &[T], at: usize) -> &[T; N] {
    s[at..at + N].try_into().unwrap_or_else(|_| unreachable!())
}

/// IEEE half to f32 with the F16C instruction (exact, like [`super::f16_to_f32`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn half(lo: u8, hi: u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(u16::from_le_bytes([lo, hi]) as i32)))
}

/// The sum of the eight lanes, in a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
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
    hsum(v) + super::dot_row_scalar(ty, &row[vec_n * B8 / 8..], &x[vec_n..n])
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
    let (blocks, _) = row.as_chunks::<B>();
    let (xs, _) = x.as_chunks::<E>();
    let n = blocks.len().min(xs.len());
    let mut acc = _mm256_setzero_ps();
    for (b, xe) in blocks[..n].iter().zip(&xs[..n]) {
        prefetch_block(b);
        acc = block(b, xe, acc);
    }
    hsum(acc) + super::dot_row_scalar(ty, &row[n * B..], &x[n * E..])
}

/// Q8_0: `acc += d * Σ q x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks::<34, 32>(GgmlType::Q8_0, row, x, |b, x, acc| {
        let d = _mm256_set1_ps(half(b[0], b[1]));
        let [q0, q1] = i8x16_to_ps(load128(arr(b, 2)));
        let [q2, q3] = i8x16_to_ps(load128(arr(b, 18)));
        _mm256_fmadd_ps(d, dot32([q0, q1, q2, q3], x), acc)
    })
}

/// Q4_0: `acc += d * Σ (q - 8) x`; low nibbles are elements 0..16, high nibbles 16..32.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks::<18, 32>(GgmlType::Q4_0, row, x, |b, x, acc| {
        let d = _mm256_set1_ps(half(b[0], b[1]));
        let v = load128(arr(b, 2));
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
    dot_blocks::<20, 32>(GgmlType::Q4_1, row, x, |b, x, acc| {
        let d = _mm256_set1_ps(half(b[0], b[1]));
        let m = _mm256_set1_ps(half(b[2], b[3]));
        let v = load128(arr(b, 4));
        let m4 = _mm_set1_epi8(0x0f);
        let [q0, q1] = i8x16_to_ps(_mm_and_si128(v, m4));
        let [q2, q3] = i8x16_to_ps(_mm_and_si128(_mm_srli_epi16::<4>(v), m4));
        let acc = _mm256_fmadd_ps(d, dot32([q0, q1, q2, q3], x), acc);
        _mm256_fmadd_ps(m, sum32(x), acc)
    })
}

/// Q4_K: per sub-block of 32, `acc += (d * sc) * Σ q x - (dmin * m) * Σ x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_k(row: &[u8], x: &[f32]) -> f32 {
    dot_blocks::<144, 256>(GgmlType::Q4_K, row, x, |b, x, mut acc| {
        let (d, dmin, scales) = k4_header(b);
        let m4 = _mm256_set1_epi8(0x0f);
        for g in 0..4 {
            let v = load256(arr(b, 16 + 32 * g));
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
fn q6k_quarters(b: &[u8; 210], n: usize) -> [__m256i; 4] {
    let (m4, m3) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(3));
    let ql0 = load256(arr(b, 64 * n));
    let ql1 = load256(arr(b, 64 * n + 32));
    let qh = load256(arr(b, 128 + 32 * n));
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
    dot_blocks::<210, 256>(GgmlType::Q6_K, row, x, |b, x, mut acc| {
        let d = half(b[208], b[209]);
        let m32 = _mm256_set1_epi8(32);
        for n in 0..2 {
            let quarters = q6k_quarters(b, n);
            for (i, q) in quarters.into_iter().enumerate() {
                let [a, b2, c, e] = i8x32_to_ps(_mm256_sub_epi8(q, m32));
                let at = 128 * n + 32 * i;
                let s = 8 * n + 2 * i;
                let (sa, sb) = (b[192 + s] as i8 as f32, b[192 + s + 1] as i8 as f32);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sa), dot16([a, b2], arr(x, at)), acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sb), dot16([c, e], arr(x, at + 16)), acc);
            }
        }
        acc
    })
}

/// Whether this path has a vector kernel for `ty` (the others run the scalar code).
pub(super) fn has_kernel(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q4_K | Q6_K)
}

/// One row's dot product on this path.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_row(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    match ty {
        GgmlType::F32 => dot_f32(row, x),
        GgmlType::F16 => dot_f16(row, x),
        GgmlType::BF16 => dot_bf16(row, x),
        GgmlType::Q8_0 => dot_q8_0(row, x),
        GgmlType::Q4_0 => dot_q4_0(row, x),
        GgmlType::Q4_1 => dot_q4_1(row, x),
        GgmlType::Q4_K => dot_q4_k(row, x),
        GgmlType::Q6_K => dot_q6_k(row, x),
        _ => super::dot_row_scalar(ty, row, x),
    }
}

/// [`super::matvec`] on this path.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn matvec(ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = w.len() / out.len().max(1);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes.max(1))) {
        *o = dot_row(ty, row, x);
    }
}

// Integer kernels of the `Avx2Q8` path: the input was rounded to Q8_0 or Q8_K blocks (layout
// in `super`), and each block's products are exact integer sums (`maddubs` of unsigned by
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

/// The sum of eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b0100_1110>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b1011_0001>(s));
    _mm_cvtsi128_si32(s)
}

#[inline(always)]
fn f32_le(b: &[u8; 4]) -> f32 {
    f32::from_le_bytes(*b)
}

/// `R` rows of `B`-byte blocks against Q8_0 activation blocks, one pass over the input: each
/// activation block is loaded once for all `R` rows, and so is `shared(y)`, a per-block value
/// that does not depend on the row (`Σ y` terms). Per row and block `dot(block, y, shared)` is
/// the exact integer `Σ qx qy` as eight i32 lanes, and the row keeps two accumulators of eight
/// f32 lanes, one for even and one for odd blocks: `acc[j % 2] += (dx * dy) * Σ qx qy`, summed
/// as `hsum(acc[0] + acc[1])` at the end. A row's operations are the same whatever `R` is and
/// whichever rows run beside it, so its result depends only on the row. (The AVX-512 Q4_0
/// kernel, two blocks per 512-bit vector, does the same arithmetic lane for lane.)
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0_rows<const B: usize, const R: usize>(
    rows: [&[[u8; B]]; R],
    ys: &[[u8; super::Q8_0_X_BYTES]],
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
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for (j, y) in ys[..n].iter().enumerate() {
        let (yv, dy) = (load256(arr(y, 4)), f32_le(arr(y, 0)));
        let s = shared(yv);
        for r in 0..R {
            let b = &rows[r][j];
            prefetch(b.as_ptr().wrapping_add(ahead));
            let p = dot(b, yv, s);
            let d = _mm256_set1_ps(half(b[0], b[1]) * dy);
            acc[r][j & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[r][j & 1]);
        }
    }
    acc.map(|[a, b]| hsum(_mm256_add_ps(a, b)))
}

/// Every row of `w` (blocks of `B` bytes, `row_bytes` per row) against the Q8_0 blocks `xq`:
/// four rows per pass with `rows4`, then the rest one at a time with `rows1` (the same
/// arithmetic per row).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0_matvec<const B: usize>(
    w: &[u8],
    xq: &[u8],
    out: &mut [f32],
    rows4: impl Fn([&[[u8; B]]; 4], &[[u8; super::Q8_0_X_BYTES]]) -> [f32; 4],
    rows1: impl Fn([&[[u8; B]]; 1], &[[u8; super::Q8_0_X_BYTES]]) -> [f32; 1],
) {
    let row_bytes = (w.len() / out.len().max(1)).max(1);
    let (ys, _) = xq.as_chunks::<{ super::Q8_0_X_BYTES }>();
    fn blocks<const B: usize>(row: &[u8]) -> &[[u8; B]] {
        row.as_chunks::<B>().0
    }
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
fn matvec_q4_0_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let m4 = _mm_set1_epi8(0x0f);
    let shared = |y| _mm256_maddubs_epi16(_mm256_set1_epi8(8), y);
    let dot = |b: &[u8; 18], y, s8| {
        let v = load128(arr(b, 2));
        let q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(v), m4), _mm_and_si128(v, m4));
        _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q, y), s8), _mm256_set1_epi16(1))
    };
    let ahead = 4 * (w.len() / out.len().max(1));
    q8_0_matvec::<18>(
        w,
        xq,
        out,
        |r, ys| q8_0_rows(r, ys, ahead, shared, dot),
        |r, ys| q8_0_rows(r, ys, ahead, shared, dot),
    )
}

/// Q8_0 × Q8_0.
#[target_feature(enable = "avx2,fma,f16c")]
fn matvec_q8_0_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let dot = |b: &[u8; 34], y, _| dot_i8_i8(load256(arr(b, 2)), y);
    let ahead = 4 * (w.len() / out.len().max(1));
    q8_0_matvec::<34>(
        w,
        xq,
        out,
        |r, ys| q8_0_rows(r, ys, ahead, |y| y, dot),
        |r, ys| q8_0_rows(r, ys, ahead, |y| y, dot),
    )
}

// The same products with AVX-512 VNNI's `vpdpbusd` (256-bit, AVX-512VL encoding): `Σ u·i`
// over each four consecutive byte pairs added to an i32 lane, without saturation, as one
// instruction. The lanes hold the same exact integers as the AVX2 code's `maddubs`/`madd`
// (each lane sums the same four products), so the results are bit-identical with it.

/// Two consecutive Q8_0 activation blocks as one 512-bit vector of quants, with their scales
/// broadcast over the matching halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn y_pair(yp: &[[u8; super::Q8_0_X_BYTES]]) -> (__m512i, __m512) {
    let y = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load256(arr(&yp[0], 4))), load256(arr(&yp[1], 4)));
    let (dy0, dy1) = (_mm512_set1_ps(f32_le(arr(&yp[0], 0))), _mm256_set1_ps(f32_le(arr(&yp[1], 0))));
    (y, _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castps_pd(dy0), _mm256_castps_pd(dy1))))
}

/// The f16 scales at the start of two weight blocks, as f32 over the matching halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dx_pair(b0: &[u8], b1: &[u8]) -> __m512 {
    // Lanes 0..8 take scale 0, lanes 8..16 scale 1.
    let pick = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    let h = _mm_insert_epi16::<1>(
        _mm_cvtsi32_si128(u16::from_le_bytes([b0[0], b0[1]]) as i32),
        u16::from_le_bytes([b1[0], b1[1]]) as i32,
    );
    _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(_mm_cvtph_ps(h)))
}

/// The even-block and odd-block halves of a pair accumulator.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn halves(acc: __m512) -> (__m256, __m256) {
    (_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc))))
}

/// `R` rows of Q4_0 × Q8_0 with AVX-512: two blocks per 512-bit vector (lanes 0..8 the even
/// block, 8..16 the odd one), `Σ (q - 8) y` as `vpdpbusd` from the shared lanes `-8 Σ y`. Each
/// row's zmm accumulator is the AVX2 kernel's two accumulators side by side, with the same
/// product in every lane (`d = f32(dx) * dy` then one FMA per block), so the results are
/// bit-identical with [`matvec_q4_0_q8`]. An odd last block runs on the low half alone.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q4_0_rows_512<const R: usize>(rows: [&[[u8; 18]]; R], ys: &[[u8; super::Q8_0_X_BYTES]], ahead: usize) -> [f32; R] {
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
    let mut acc = [_mm512_setzero_ps(); R];
    for (p, yp) in ys[..n].chunks_exact(2).enumerate() {
        let (y, dy) = y_pair(yp);
        let s = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, y));
        for r in 0..R {
            let (b0, b1) = (&rows[r][2 * p], &rows[r][2 * p + 1]);
            prefetch(b0.as_ptr().wrapping_add(ahead));
            let lo = _mm256_broadcastsi128_si256(load128(arr(b0, 2)));
            let hi = _mm256_broadcastsi128_si256(load128(arr(b1, 2)));
            let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
            let q = _mm512_and_si512(_mm512_srlv_epi16(q, shifts), m4);
            let sums = _mm512_dpbusd_epi32(s, q, y);
            acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dx_pair(b0, b1), dy), _mm512_cvtepi32_ps(sums), acc[r]);
        }
    }
    let mut out = [0.0f32; R];
    for r in 0..R {
        let (mut even, odd) = halves(acc[r]);
        if n % 2 == 1 {
            let (b, yb) = (&rows[r][n - 1], &ys[n - 1]);
            let y = load256(arr(yb, 4));
            let s = _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), y),
            );
            let v = load128(arr(b, 2));
            let m4 = _mm_set1_epi8(0x0f);
            let q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(v), m4), _mm_and_si128(v, m4));
            let d = _mm256_set1_ps(half(b[0], b[1]) * f32_le(arr(yb, 0)));
            even = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(s, q, y)), even);
        }
        out[r] = hsum(_mm256_add_ps(even, odd));
    }
    out
}

/// Q4_0 × Q8_0 with AVX-512 VNNI ([`q4_0_rows_512`]), reading each group of four rows while
/// the next group is prefetched.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn matvec_q4_0_q8_vnni(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let ahead = 4 * (w.len() / out.len().max(1));
    q8_0_matvec::<18>(w, xq, out, |r, ys| q4_0_rows_512(r, ys, ahead), |r, ys| q4_0_rows_512(r, ys, ahead))
}

/// `R` rows of Q8_0 × Q8_0 with AVX-512 VNNI, two blocks per 512-bit vector as in
/// [`q4_0_rows_512`]: `Σ w y = Σ (w + 128) y - 128 Σ y` (`w + 128` as unsigned bytes) with
/// `vpdpbusd` from the shared lanes `-128 Σ y`. The lanes hold the AVX2 kernel's exact
/// integers and the same `d = f32(dx) * dy` and FMA per block in the same accumulator lanes, so
/// the results are bit-identical with [`matvec_q8_0_q8`]. An odd last block runs on the low
/// half alone.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q8_0_rows_512<const R: usize>(rows: [&[[u8; 34]]; R], ys: &[[u8; super::Q8_0_X_BYTES]], ahead: usize) -> [f32; R] {
    let n = rows.iter().fold(ys.len(), |n, r| n.min(r.len()));
    // A plain loop, not `array::map`: the map and its closure stay out of line here.
    let mut rows = rows;
    for r in &mut rows {
        *r = &r[..n];
    }
    let bias = _mm512_set1_epi8(-128);
    let mut acc = [_mm512_setzero_ps(); R];
    for (p, yp) in ys[..n].chunks_exact(2).enumerate() {
        let (y, dy) = y_pair(yp);
        let s = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, y));
        for r in 0..R {
            let (b0, b1) = (&rows[r][2 * p], &rows[r][2 * p + 1]);
            prefetch(b0.as_ptr().wrapping_add(ahead));
            prefetch(b1.as_ptr().wrapping_add(ahead));
            let w = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load256(arr(b0, 2))), load256(arr(b1, 2)));
            let sums = _mm512_dpbusd_epi32(s, _mm512_xor_si512(w, bias), y);
            acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dx_pair(b0, b1), dy), _mm512_cvtepi32_ps(sums), acc[r]);
        }
    }
    let mut out = [0.0f32; R];
    for r in 0..R {
        let (mut even, odd) = halves(acc[r]);
        if n % 2 == 1 {
            let (b, yb) = (&rows[r][n - 1], &ys[n - 1]);
            let y = load256(arr(yb, 4));
            let bias = _mm256_set1_epi8(-128);
            let s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, y));
            let sums = _mm256_dpbusd_epi32(s, _mm256_xor_si256(load256(arr(b, 2)), bias), y);
            let d = _mm256_set1_ps(half(b[0], b[1]) * f32_le(arr(yb, 0)));
            even = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), even);
        }
        out[r] = hsum(_mm256_add_ps(even, odd));
    }
    out
}

/// Q8_0 × Q8_0 with AVX-512 VNNI ([`q8_0_rows_512`]), four rows per pass.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn matvec_q8_0_q8_vnni(w: &[u8], xq: &[u8], out: &mut [f32]) {
    let ahead = 4 * (w.len() / out.len().max(1));
    q8_0_matvec::<34>(w, xq, out, |r, ys| q8_0_rows_512(r, ys, ahead), |r, ys| q8_0_rows_512(r, ys, ahead))
}

/// The 16 `bsums` of a Q8_K activation block as i16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bsums(y: &[u8; super::Q8_K_X_BYTES]) -> __m256i {
    load256(arr(y, 4 + super::QK_K))
}

/// Q4_K × Q8_K: per super-block `dy * (d * Σ_j sc_j Σ q x - dmin * Σ_j m_j bsum_j)`, both sums
/// exact integers.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_k_q8(row: &[u8], xq: &[u8]) -> f32 {
    let (blocks, _) = row.as_chunks::<144>();
    let (ys, _) = xq.as_chunks::<{ super::Q8_K_X_BYTES }>();
    let m4 = _mm256_set1_epi8(0x0f);
    let mut sum = 0.0f32;
    for (b, y) in blocks.iter().zip(ys) {
        prefetch_block(b);
        let (d, dmin, scales) = k4_header(b);
        let mut sc = [0u8; 8];
        let mut mn = [0u8; 8];
        for j in 0..8 {
            (sc[j], mn[j]) = scale_min_k4(j, &scales);
        }
        let mut sumi = _mm256_setzero_si256();
        for g in 0..4 {
            let v = load256(arr(b, 16 + 32 * g));
            let lo = _mm256_maddubs_epi16(_mm256_and_si256(v, m4), load256(arr(y, 4 + 64 * g)));
            let hi =
                _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16::<4>(v), m4), load256(arr(y, 36 + 64 * g)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(lo, _mm256_set1_epi16(sc[2 * g] as i16)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(hi, _mm256_set1_epi16(sc[2 * g + 1] as i16)));
        }
        // Σ_j m_j (bsums[2j] + bsums[2j + 1]): pair sums as i32, times the mins.
        let pairs = _mm256_madd_epi16(bsums(y), _mm256_set1_epi16(1));
        let mins = _mm256_cvtepu8_epi32(load64(&mn));
        let m = hsum_i32(_mm256_mullo_epi32(pairs, mins));
        sum += f32_le(arr(y, 0)) * (d * hsum_i32(sumi) as f32 - dmin * m as f32);
    }
    sum
}

/// A hint to bring the cache line at `p` into the cache. Never faults, whatever `p` is.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
// `_mm_prefetch` became a safe intrinsic after the MSRV (1.89), where it is still `unsafe`.
#[allow(unused_unsafe)]
fn prefetch(p: *const u8) {
    // SAFETY: a prefetch is a hint; it never dereferences `p` and never faults, whatever `p` is.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
}

/// How far ahead of the block being read a single-row kernel prefetches the weights (rows are
/// contiguous in the slot, so this runs into the next rows). Main memory streams at a fraction
/// of these kernels' speed without it.
const PREFETCH_AHEAD: usize = 4096;

/// Prefetches every cache line of the block [`PREFETCH_AHEAD`] bytes after `b`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn prefetch_block<const B: usize>(b: &[u8; B]) {
    for at in (0..B).step_by(64) {
        prefetch(b.as_ptr().wrapping_add(PREFETCH_AHEAD + at));
    }
}

/// 8 bytes into the low half of a vector (the rest zero).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load64(b: &[u8; 8]) -> __m128i {
    _mm_cvtsi64_si128(i64::from_le_bytes(*b))
}

/// Q6_K × Q8_K: per super-block `(d * dy) * (Σ_g sc_g Σ q x - 32 Σ_g sc_g bsum_g)` with the
/// unsigned 6-bit quants `q`, an exact integer.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q6_k_q8(row: &[u8], xq: &[u8]) -> f32 {
    let (blocks, _) = row.as_chunks::<210>();
    let (ys, _) = xq.as_chunks::<{ super::Q8_K_X_BYTES }>();
    let mut sum = 0.0f32;
    for (b, y) in blocks.iter().zip(ys) {
        prefetch_block(b);
        let sc: &[u8; 16] = arr(b, 192);
        // -32 Σ_g sc_g bsum_g, as eight i32 lanes to start the sum from.
        let sc16 = _mm256_cvtepi8_epi16(load128(sc));
        let mut sumi =
            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bsums(y))));
        for n in 0..2 {
            let quarters = q6k_quarters(b, n);
            for (i, q) in quarters.into_iter().enumerate() {
                let (at, s) = (128 * n + 32 * i, 8 * n + 2 * i);
                let p = _mm256_maddubs_epi16(q, load256(arr(y, 4 + at)));
                let (s0, s1) = (sc[s] as i8 as i16, sc[s + 1] as i8 as i16);
                let scales = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scales));
            }
        }
        sum += half(b[208], b[209]) * f32_le(arr(y, 0)) * hsum_i32(sumi) as f32;
    }
    sum
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

/// Rounds `x` to Q8_0 activation blocks as [`super::quantize_activations_q8_0`] does, bit for
/// bit: the same `amax` (a max is exact in any order; NaN is skipped as `f32::max` does), the
/// same scalar `d` and `1 / d`, the same product `v * id` per element, then `roundf` (half away
/// from zero) as `t = trunc(p)` plus one away from zero where `|p - t| >= 0.5` (`p - t` is
/// exact), and `as i8` as a clamp to `[-128, 127]` with NaN to 0. Whole blocks only.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    let (blocks, _) = x.as_chunks::<{ super::QK }>();
    let (outs, _) = out.as_chunks_mut::<{ super::Q8_0_X_BYTES }>();
    let sign = _mm256_set1_ps(-0.0);
    let (half_, one) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0));
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    for (xs, b) in blocks.iter().zip(outs) {
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
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[..4].copy_from_slice(&super::f16_to_f32(super::f32_to_f16(d)).to_le_bytes());
        let idv = _mm256_set1_ps(id);
        let mut q = [_mm256_setzero_si256(); 4];
        for k in 0..4 {
            let p = _mm256_mul_ps(v[k], idv);
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(p);
            let up = _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_andnot_ps(sign, _mm256_sub_ps(p, t)), half_);
            let r = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_and_ps(p, sign), one)));
            let r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(p, p));
            q[k] = _mm256_cvtps_epi32(r);
        }
        let a = _mm256_packs_epi32(q[0], q[1]);
        let c = _mm256_packs_epi32(q[2], q[3]);
        let bytes = _mm256_packs_epi16(a, c);
        let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: `b[4..36]` are 32 writable bytes; `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_si256(b[4..].as_mut_ptr().cast::<__m256i>(), bytes) };
    }
}

/// [`super::Kernels::matvec_quantized`] on this path; types without an integer kernel leave
/// `out` unchanged.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn matvec_q8(ty: GgmlType, w: &[u8], xq: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::Q4_0 => matvec_q4_0_q8(w, xq, out),
        GgmlType::Q8_0 => matvec_q8_0_q8(w, xq, out),
        GgmlType::Q4_K => rows_q8(w, xq, out, |r, x| dot_q4_k_q8(r, x)),
        GgmlType::Q6_K => rows_q8(w, xq, out, |r, x| dot_q6_k_q8(r, x)),
        _ => {}
    }
}

/// [`super::Kernels::matvec_quantized`] on the AVX-512 VNNI path: Q4_0 and Q8_0 with `vpdpbusd`,
/// the other types as [`matvec_q8`] (bit-identical with it either way).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn matvec_q8_vnni(ty: GgmlType, w: &[u8], xq: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::Q4_0 => matvec_q4_0_q8_vnni(w, xq, out),
        GgmlType::Q8_0 => matvec_q8_0_q8_vnni(w, xq, out),
        _ => matvec_q8(ty, w, xq, out),
    }
}
