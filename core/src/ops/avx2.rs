//! AVX2 forms of the hot loops of `ops`: the `libm` crate's `expf` (the softmax's and SiLU's),
//! the softmax, attention's scores and its weighted sums. Each is bit-identical with the
//! portable loop it stands in for: every element gets the same IEEE operations in the same
//! order, the vector lanes only run independent elements side by side (eight positions of one
//! score, eight dimensions of one weighted sum), and no multiply-add is fused. Owns these loops
//! only; the portable code in `ops.rs` stays the definition, and this file must not hold
//! arithmetic that the portable code lacks.
//!
//! Reached only through an [`Avx2`] token, which exists only on a CPU with AVX2, FMA and F16C.

use core::arch::x86_64::*;

use super::{ring_row, Heads};
use crate::quant::{KernelPath, Kernels};

/// Proof that this CPU has AVX2, FMA and F16C: made only from [`Kernels`] on an x86 vector
/// path, whose `unsafe` constructors carry that promise.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token, if `k` runs on an x86 vector path.
    pub(crate) fn of(k: Kernels) -> Option<Avx2> {
        // A `Kernels` on these paths is made only by `Kernels::avx2`, `avx2_q8` or `avx512_q8`
        // (through `from_table`), whose callers promised avx2, fma and f16c.
        matches!(k.path(), KernelPath::Avx2 | KernelPath::Avx2Q8 | KernelPath::Avx512Q8).then_some(Avx2(()))
    }
}

/// Eight f32 at `at` of `s` as a fixed-size array (bounds checked).
#[inline(always)]
fn arr(s: &[f32], at: usize) -> &[f32; 8] {
    s[at..at + 8].try_into().unwrap_or_else(|_| unreachable!())
}

#[inline(always)]
fn arr_mut(s: &mut [f32], at: usize) -> &mut [f32; 8] {
    (&mut s[at..at + 8]).try_into().unwrap_or_else(|_| unreachable!())
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load(x: &[f32; 8]) -> __m256 {
    // SAFETY: `x` is 8 readable f32; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store(x: &mut [f32; 8], v: __m256) {
    // SAFETY: `x` is 8 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(x.as_mut_ptr(), v) }
}

// The constants of the `libm` crate's `expf` (FreeBSD's `e_expf.c`), bit for bit.
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
const P1: f32 = f32::from_bits(0x3e2a_aa8f);
const P2: f32 = f32::from_bits(0xbb35_5215);
/// x at or above this (80), or NaN: the lane is left to the scalar `libm::expf` (its overflow
/// cases).
const FAR: i32 = 0x42a0_0000;
/// -x at or above this (103.972084, and -inf): `libm::expf` is 0.
const ZERO: i32 = 0x42cf_f1b5;

/// `libm::expf` of eight lanes, and a mask of the lanes (x ≥ 80, NaN) whose value here is not
/// that (the caller computes them with `libm::expf`).
///
/// The scalar code's branches become per-lane selections: |x| ≤ 2^-14 gives `1 + x`; below
/// 0.5 ln 2 the reduction is by k = 0 (then `x - 0 * LN2_HI` is `x` and `0 * LN2_LO` is 0, the
/// scalar's `hi = x, lo = 0`); below 1.5 ln 2 by k = ±1; beyond by `(x / ln 2 ± 1/2)`
/// truncated; at or below -103.972084, 0. `scalbnf(y, k)` is as `libm`'s: for k ≥ -126 one
/// product by 2^k (the scalar's `k == 0` case multiplies by 1), below that a product by
/// 2^-102 (exact: y is near 1) and then by 2^(k + 102), so the one rounding is the last.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn expf8_near(x: __m256) -> (__m256, i32) {
    let bits = _mm256_castps_si256(x);
    let hx = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fff_ffff));
    let above_half = _mm256_cmpgt_epi32(hx, _mm256_set1_epi32(0x3eb1_7218));
    let above_1_5 = _mm256_cmpgt_epi32(hx, _mm256_set1_epi32(0x3f85_1592));
    let not_tiny = _mm256_cmpgt_epi32(hx, _mm256_set1_epi32(0x3900_0000));
    // x ≥ 80 (the sign bit clear, so `bits` itself compares) or NaN.
    let far = _mm256_or_si256(
        _mm256_cmpgt_epi32(bits, _mm256_set1_epi32(FAR - 1)),
        _mm256_cmpgt_epi32(hx, _mm256_set1_epi32(0x7f80_0000)),
    );
    // x ≤ -103.972084: negative (the sign bit as all ones) and, as a signed integer, at or above
    // the bits of -103.972084.
    let zero = _mm256_and_si256(
        _mm256_srai_epi32::<31>(bits),
        _mm256_cmpgt_epi32(bits, _mm256_set1_epi32(i32::MIN + ZERO - 1)),
    );
    // HALF[sign]: blendv takes -0.5 where the sign bit is set.
    let half = _mm256_blendv_ps(_mm256_set1_ps(0.5), _mm256_set1_ps(-0.5), x);
    let k_far = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(INV_LN2), x), half));
    // 1 - 2 * sign: -1 or 1.
    let k_one = _mm256_or_si256(_mm256_srai_epi32::<31>(bits), _mm256_set1_epi32(1));
    let k = _mm256_blendv_epi8(_mm256_and_si256(k_one, above_half), k_far, above_1_5);
    let kf = _mm256_cvtepi32_ps(k);
    let hi = _mm256_sub_ps(x, _mm256_mul_ps(kf, _mm256_set1_ps(LN2_HI)));
    let lo = _mm256_mul_ps(kf, _mm256_set1_ps(LN2_LO));
    let r = _mm256_sub_ps(hi, lo);
    let xx = _mm256_mul_ps(r, r);
    let p = _mm256_add_ps(_mm256_set1_ps(P1), _mm256_mul_ps(xx, _mm256_set1_ps(P2)));
    let c = _mm256_sub_ps(r, _mm256_mul_ps(xx, p));
    let q = _mm256_div_ps(_mm256_mul_ps(r, c), _mm256_sub_ps(_mm256_set1_ps(2.0), c));
    let y = _mm256_add_ps(_mm256_set1_ps(1.0), _mm256_add_ps(_mm256_sub_ps(q, lo), hi));
    // scalbnf: below 2^-126, first 2^-102, then 2^(k + 102).
    let sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(-126), k);
    let k = _mm256_add_epi32(k, _mm256_and_si256(sub, _mm256_set1_epi32(102)));
    let pre =
        _mm256_blendv_ps(_mm256_set1_ps(1.0), _mm256_set1_ps(f32::from_bits(0x0c80_0000)), _mm256_castsi256_ps(sub));
    let two_k = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k, _mm256_set1_epi32(127))));
    let y = _mm256_mul_ps(_mm256_mul_ps(y, pre), two_k);
    let y = _mm256_blendv_ps(_mm256_add_ps(_mm256_set1_ps(1.0), x), y, _mm256_castsi256_ps(not_tiny));
    let y = _mm256_andnot_ps(_mm256_castsi256_ps(zero), y);
    (y, _mm256_movemask_ps(_mm256_castsi256_ps(far)))
}

/// `libm::expf` of eight lanes, bit for bit.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn expf8(x: __m256) -> __m256 {
    let (y, far) = expf8_near(x);
    if far == 0 {
        return y;
    }
    let (mut xs, mut ys) = ([0.0f32; 8], [0.0f32; 8]);
    store(&mut xs, x);
    store(&mut ys, y);
    for (i, (y, &x)) in ys.iter_mut().zip(&xs).enumerate() {
        if far & (1 << i) != 0 {
            *y = libm::expf(x);
        }
    }
    load(&ys)
}

/// `libm::expf` of each element of `x`, in place.
#[cfg(test)]
fn expf_slice(_: Avx2, x: &mut [f32]) {
    #[target_feature(enable = "avx2,fma,f16c")]
    fn run(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            let c: &mut [f32; 8] = c.try_into().unwrap_or_else(|_| unreachable!());
            store(c, expf8(load(c)));
        }
        for v in chunks.into_remainder() {
            *v = libm::expf(*v);
        }
    }
    // SAFETY: the `Avx2` token exists only on a CPU with avx2, fma and f16c.
    unsafe { run(x) }
}

/// Heads whose softmax rows are computed side by side (the sums' independent chains).
const HEADS: usize = 8;

/// `f(lanes)` over `x` eight elements at a time; a tail of fewer than eight goes through a
/// buffer filled with `pad` (its extra lanes are dropped).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn map8(x: &mut [f32], pad: f32, f: impl Fn(__m256) -> __m256) {
    let n8 = x.len() / 8 * 8;
    for at in (0..n8).step_by(8) {
        let c = arr_mut(x, at);
        store(c, f(load(c)));
    }
    let tail = &mut x[n8..];
    if !tail.is_empty() {
        let mut buf = [pad; 8];
        buf[..tail.len()].copy_from_slice(tail);
        let v = f(load(&buf));
        store(&mut buf, v);
        let n = tail.len();
        tail.copy_from_slice(&buf[..n]);
    }
}

/// The largest element of `x` (not empty), or `None` if it holds a NaN. The same value as the
/// portable fold: the sign of a zero maximum may differ, which changes no `x - max`'s
/// exponential (`e^±0` is 1 either way).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn max_of(x: &[f32]) -> Option<f32> {
    let n8 = x.len() / 8 * 8;
    let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut nan = _mm256_setzero_ps();
    for at in (0..n8).step_by(8) {
        let v = load(arr(x, at));
        m = _mm256_max_ps(m, v);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
    }
    if _mm256_movemask_ps(nan) != 0 {
        return None;
    }
    let mut lanes = [0.0f32; 8];
    store(&mut lanes, m);
    let mut max = f32::NEG_INFINITY;
    for &v in lanes.iter().chain(&x[n8..]) {
        if v.is_nan() {
            return None;
        }
        max = if v > max { v } else { max };
    }
    Some(max)
}

/// The sums of the rows `att[(h0 + j) * context + range]`, `j < g ≤ 8`, each left to right
/// from 0: eight positions of the eight rows are transposed so that lane `j` adds row `j`'s
/// elements in order (the rows' chains side by side); the last positions one by one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn row_sums(att: &[f32], h0: usize, g: usize, context: usize, range: core::ops::Range<usize>) -> [f32; HEADS] {
    let mut acc = _mm256_setzero_ps();
    let mut t = range.start;
    while t + 8 <= range.end {
        let row = |j: usize| if j < g { load(arr(att, (h0 + j) * context + t)) } else { _mm256_setzero_ps() };
        for v in transpose([row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7)]) {
            acc = _mm256_add_ps(acc, v);
        }
        t += 8;
    }
    let mut sum = [0.0f32; HEADS];
    store(&mut sum, acc);
    for (j, s) in sum[..g].iter_mut().enumerate() {
        for &v in &att[(h0 + j) * context..][t..range.end] {
            *s += v;
        }
    }
    sum
}

/// [`super::softmax`] of each head's row `att[h * context + range]`, bit for bit: the maximum
/// as a vector maximum ([`max_of`]; a row holding a NaN goes to the portable code), the
/// exponentials eight at a time, each row's sum left to right as there (the rows of
/// [`HEADS`] heads side by side, independent chains), and each element divided by it.
pub(crate) fn softmax_heads(_: Avx2, att: &mut [f32], n_heads: usize, context: usize, range: core::ops::Range<usize>) {
    #[target_feature(enable = "avx2,fma,f16c")]
    fn run(att: &mut [f32], n_heads: usize, context: usize, range: core::ops::Range<usize>) {
        for h0 in (0..n_heads).step_by(HEADS) {
            let g = HEADS.min(n_heads - h0);
            let mut max = [None; HEADS];
            for (j, m) in max[..g].iter_mut().enumerate() {
                let row = &mut att[(h0 + j) * context..][range.clone()];
                *m = max_of(row);
                match *m {
                    None => super::softmax(row),
                    Some(m) => {
                        let vm = _mm256_set1_ps(m);
                        map8(row, m, |v| expf8(_mm256_sub_ps(v, vm)));
                    }
                }
            }
            let sum = row_sums(att, h0, g, context, range.clone());
            for j in (0..g).filter(|&j| max[j].is_some()) {
                let vs = _mm256_set1_ps(sum[j]);
                map8(&mut att[(h0 + j) * context..][range.clone()], 1.0, |v| _mm256_div_ps(v, vs));
            }
        }
    }
    if range.is_empty() {
        return;
    }
    // SAFETY: the `Avx2` token exists only on a CPU with avx2, fma and f16c.
    unsafe { run(att, n_heads, context, range) }
}

/// [`super::swiglu`]'s element arithmetic over `hb` and `hb2`: `g * (1 / (1 + e^-g)) * u`.
pub(crate) fn swiglu(_: Avx2, hb: &mut [f32], hb2: &[f32]) {
    #[target_feature(enable = "avx2,fma,f16c")]
    fn silu(g: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let e = expf8(_mm256_xor_ps(g, _mm256_set1_ps(-0.0)));
        _mm256_mul_ps(g, _mm256_div_ps(one, _mm256_add_ps(one, e)))
    }
    #[target_feature(enable = "avx2,fma,f16c")]
    fn run(hb: &mut [f32], hb2: &[f32]) {
        let n = hb.len().min(hb2.len());
        let n8 = n / 8 * 8;
        for at in (0..n8).step_by(8) {
            let s = silu(load(arr(hb, at)));
            store(arr_mut(hb, at), _mm256_mul_ps(s, load(arr(hb2, at))));
        }
        if n8 < n {
            let (mut g, mut u) = ([0.0f32; 8], [0.0f32; 8]);
            g[..n - n8].copy_from_slice(&hb[n8..n]);
            u[..n - n8].copy_from_slice(&hb2[n8..n]);
            let v = _mm256_mul_ps(silu(load(&g)), load(&u));
            store(&mut g, v);
            hb[n8..n].copy_from_slice(&g[..n - n8]);
        }
    }
    // SAFETY: the `Avx2` token exists only on a CPU with avx2, fma and f16c.
    unsafe { run(hb, hb2) }
}

/// The 8×8 transpose: lane `j` of output `d` is lane `d` of input `j`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xee>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xee>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xee>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xee>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// What attention's two passes read: the layer's cache and its shape.
pub(crate) struct Cache<'c> {
    pub(crate) keys: &'c [f32],
    pub(crate) values: &'c [f32],
    pub(crate) heads: Heads,
    pub(crate) ring: usize,
}

/// Scores of head `h` at positions `t0..t0 + out.len()` (all in the attended range):
/// `out[i] = (q_h . k_t) / scale`, the dot summed left to right from 0 as the portable loop
/// does. Eight positions at a time: their products (exact, elementwise) are transposed so that
/// each lane adds its own position's products in order. `head_size` must be a multiple of 8;
/// a tail of fewer than eight positions is left to the caller (the count done is returned).
pub(crate) fn scores(_: Avx2, c: &Cache<'_>, q: &[f32], h: usize, t0: usize, scale: f32, out: &mut [f32]) -> usize {
    #[target_feature(enable = "avx2,fma,f16c")]
    fn run(c: &Cache<'_>, q: &[f32], h: usize, t0: usize, scale: f32, out: &mut [f32]) -> usize {
        let hs = c.heads.head_size;
        let kv_dim = c.heads.kv_dim();
        let kv_off = (h / (c.heads.n_heads / c.heads.n_kv_heads)) * hs;
        let qh = &q[h * hs..(h + 1) * hs];
        let vscale = _mm256_set1_ps(scale);
        let n8 = out.len() / 8 * 8;
        for at in (0..n8).step_by(8) {
            let rows: [usize; 8] = core::array::from_fn(|j| ring_row(t0 + at + j, c.ring) * kv_dim + kv_off);
            let mut acc = _mm256_setzero_ps();
            for b in (0..hs).step_by(8) {
                let qb = load(arr(qh, b));
                let p = [
                    _mm256_mul_ps(qb, load(arr(c.keys, rows[0] + b))),
                    _mm256_mul_ps(qb, load(arr(c.keys, rows[1] + b))),
                    _mm256_mul_ps(qb, load(arr(c.keys, rows[2] + b))),
                    _mm256_mul_ps(qb, load(arr(c.keys, rows[3] + b))),
                    _mm256_mul_ps(qb, load(arr(c.keys, rows[4] + b))),
                    _mm256_mul_ps(qb, load(arr(c.keys, rows[5] + b))),
                    _mm256_mul_ps(qb, load(arr(c.keys, rows[6] + b))),
                    _mm256_mul_ps(qb, load(arr(c.keys, rows[7] + b))),
                ];
                for d in transpose(p) {
                    acc = _mm256_add_ps(acc, d);
                }
            }
            store(arr_mut(out, at), _mm256_div_ps(acc, vscale));
        }
        n8
    }
    if !c.heads.head_size.is_multiple_of(8) {
        return 0;
    }
    // SAFETY: the `Avx2` token exists only on a CPU with avx2, fma and f16c.
    unsafe { run(c, q, h, t0, scale, out) }
}

/// Most weighted sums of eight dimensions run side by side (independent chains of adds).
const GROUP: usize = 8;

/// The weighted sums of `chunk`, the outputs `row0..row0 + chunk.len()` (output `i` is head
/// `i / head_size`, dimension `i % head_size`): `sum over t in positions of att[h][t] *
/// v_t[d]`, from 0 and in position order as the portable loop adds (a product, then a sum,
/// never fused). Runs of eight dimensions of one head are computed here, up to [`GROUP`] runs
/// side by side; what is left (fewer than eight dimensions of a head in the chunk) goes to
/// `rest(h, d0, out)`, the portable loop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weighted(
    _: Avx2,
    c: &Cache<'_>,
    att: &[f32],
    context: usize,
    positions: core::ops::Range<usize>,
    row0: usize,
    chunk: &mut [f32],
    rest: &dyn Fn(usize, usize, &mut [f32]),
) {
    #[target_feature(enable = "avx2,fma,f16c")]
    fn group(
        c: &Cache<'_>,
        att: &[f32],
        context: usize,
        positions: core::ops::Range<usize>,
        jobs: &[(usize, usize)],
    ) -> [__m256; GROUP] {
        let hs = c.heads.head_size;
        let kv_dim = c.heads.kv_dim();
        let kv_mul = c.heads.n_heads / c.heads.n_kv_heads;
        let n = jobs.len().min(GROUP);
        let mut acc = [_mm256_setzero_ps(); GROUP];
        let mut off = [0usize; GROUP];
        let mut a_row = [0usize; GROUP];
        for j in 0..n {
            let (h, d) = jobs[j];
            off[j] = (h / kv_mul) * hs + d;
            a_row[j] = h * context;
        }
        for t in positions {
            let row = ring_row(t, c.ring) * kv_dim;
            for j in 0..n {
                let a = _mm256_set1_ps(att[a_row[j] + t]);
                acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(a, load(arr(c.values, row + off[j]))));
            }
        }
        acc
    }
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    fn run(
        c: &Cache<'_>,
        att: &[f32],
        context: usize,
        positions: core::ops::Range<usize>,
        row0: usize,
        chunk: &mut [f32],
        rest: &dyn Fn(usize, usize, &mut [f32]),
    ) {
        let hs = c.heads.head_size.max(1);
        // Pending runs: (head, dimension) and where in `chunk` they go.
        let mut jobs = [(0usize, 0usize); GROUP];
        let mut at = [0usize; GROUP];
        let mut n = 0;
        let mut i = 0;
        while i < chunk.len() {
            let (h, d0) = ((row0 + i) / hs, (row0 + i) % hs);
            let len = (hs - d0).min(chunk.len() - i);
            let runs = len / 8;
            for r in 0..runs {
                jobs[n] = (h, d0 + 8 * r);
                at[n] = i + 8 * r;
                n += 1;
                if n == GROUP {
                    let acc = group(c, att, context, positions.clone(), &jobs);
                    for (&a, v) in at.iter().zip(acc) {
                        store(arr_mut(chunk, a), v);
                    }
                    n = 0;
                }
            }
            if runs * 8 < len {
                rest(h, d0 + runs * 8, &mut chunk[i + runs * 8..i + len]);
            }
            i += len;
        }
        if n > 0 {
            let acc = group(c, att, context, positions, &jobs[..n]);
            for (&a, v) in at[..n].iter().zip(acc) {
                store(arr_mut(chunk, a), v);
            }
        }
    }
    // SAFETY: the `Avx2` token exists only on a CPU with avx2, fma and f16c.
    unsafe { run(c, att, context, positions, row0, chunk, rest) }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn token() -> Option<Avx2> {
        let ok = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        // SAFETY: the CPU was just checked for avx2, fma and f16c.
        ok.then(|| Avx2::of(unsafe { Kernels::avx2() })).flatten()
    }

    /// Every `step`-th f32 bit pattern (and the special values) through the vector `expf`
    /// against `libm::expf`, bit for bit.
    fn expf_matches(v: Avx2, step: u32) {
        let mut buf = [0.0f32; 64];
        let mut bits = 0u32;
        loop {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = f32::from_bits(bits.wrapping_add(i as u32 * step));
            }
            let want = buf.map(libm::expf);
            let mut got = buf;
            expf_slice(v, &mut got);
            for ((&x, w), g) in buf.iter().zip(want).zip(got) {
                assert_eq!(w.to_bits(), g.to_bits(), "expf({x:e}) = {w:e}, vector {g:e}");
            }
            match bits.checked_add(64 * step) {
                Some(b) => bits = b,
                None => break,
            }
        }
    }

    #[test]
    fn vector_expf_is_libm_expf() {
        let Some(v) = token() else { return };
        let step = if cfg!(miri) { 0x0100_0001 } else { 4099 };
        expf_matches(v, step);
        // Denser over what a softmax or SiLU sees: every 61st input of either sign with
        // 2^-15 <= |x| <= 110 (the cases 1 + x, k = 0, k = ±1, k from the product, subnormal
        // results, 0, the hand-over to the scalar code at 80).
        let (lo, hi) = (0x3800_0000u32, 0x42dc_0000u32);
        let stride = if cfg!(miri) { 0x0010_0001 } else { 61 };
        let mut buf = [0.0f32; 64];
        let mut b = lo;
        while b < hi {
            for (i, x) in buf.iter_mut().enumerate() {
                let bits = b + (i as u32 / 2) * stride;
                *x = if i % 2 == 0 { f32::from_bits(bits) } else { -f32::from_bits(bits) };
            }
            let mut got = buf;
            expf_slice(v, &mut got);
            for (&x, g) in buf.iter().zip(got) {
                assert_eq!(libm::expf(x).to_bits(), g.to_bits(), "expf({x:e})");
            }
            b += 32 * stride;
        }
    }

    /// All 2^32 inputs (about a minute; `cargo test --release -p spool-core -- --ignored`).
    #[test]
    #[ignore]
    fn vector_expf_is_libm_expf_everywhere() {
        if let Some(v) = token() {
            expf_matches(v, 1);
        }
    }

    #[test]
    fn vector_softmax_and_swiglu_are_the_portable_ones() {
        let Some(v) = token() else { return };
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 40.0 - 20.0
        };
        for n in [1usize, 7, 8, 9, 31, 64, 100, 513] {
            let x: std::vec::Vec<f32> = (0..n).map(|_| next()).collect();
            let (mut a, mut b) = (x.clone(), x.clone());
            super::super::softmax(&mut a);
            softmax_heads(v, &mut b, 1, n, 0..n);
            assert_eq!(
                a.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>(),
                b.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>(),
                "softmax of {n}"
            );
            let u: std::vec::Vec<f32> = (0..n).map(|_| next()).collect();
            let (mut a, mut b) = (x.clone(), x.clone());
            super::super::swiglu(&mut a, &u, &crate::exec::Inline, None);
            swiglu(v, &mut b, &u);
            assert_eq!(
                a.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>(),
                b.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>(),
                "swiglu of {n}"
            );
        }
        // Zeros of both signs, infinities and a NaN.
        for special in [
            [0.0f32, -0.0, 1.0, -0.0, 0.0, 0.0, 0.0, 0.0, 3.0],
            [f32::INFINITY, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            [1.0, f32::NEG_INFINITY, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            [1.0, 2.0, f32::NAN, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        ] {
            let (mut a, mut b) = (special, special);
            super::super::softmax(&mut a);
            softmax_heads(v, &mut b, 1, 9, 0..9);
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "{special:?}");
        }
        // Eleven heads (a group of eight and one of three), one row with a NaN, positions
        // 5..37 of a context of 40: each row as the portable softmax, the rest untouched.
        let (heads, context, range) = (11, 40, 5..37);
        let mut att: std::vec::Vec<f32> = (0..heads * context).map(|_| next()).collect();
        att[4 * context + 20] = f32::NAN;
        let mut want = att.clone();
        for h in 0..heads {
            super::super::softmax(&mut want[h * context..][range.clone()]);
        }
        softmax_heads(v, &mut att, heads, context, range);
        assert_eq!(
            att.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>(),
            want.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>()
        );
    }

    /// Runs a job in three uneven chunks, as a pool of three would.
    struct Thirds;

    impl crate::exec::Executor for Thirds {
        fn run_rows(&self, out: &mut [f32], _: usize, job: &crate::exec::RowJob<'_>) {
            let n = out.len();
            let (a, b) = (n / 3 + 1, 2 * n / 3 + 2);
            let (a, b) = (a.min(n), b.min(n));
            let (x, rest) = out.split_at_mut(a);
            let (y, z) = rest.split_at_mut(b - a);
            job(0, x);
            job(a, y);
            job(b, z);
        }
    }

    #[test]
    fn vector_attention_is_the_portable_one() {
        let Some(v) = token() else { return };
        let mut seed = 99u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        };
        // (heads, kv heads, head size, context, ring, first, pos)
        let cases = [
            (8, 4, 8, 64, 64, 0, 40),
            (8, 4, 8, 64, 64, 0, 0),
            (8, 4, 8, 64, 64, 0, 7),
            (4, 4, 16, 32, 32, 3, 30),
            (6, 2, 12, 40, 40, 0, 33),
            (4, 1, 64, 48, 20, 28, 45),
            (2, 2, 20, 16, 16, 0, 15),
        ];
        for (nh, nkv, hs, context, ring, first, pos) in cases {
            let heads = Heads { n_heads: nh, n_kv_heads: nkv, head_size: hs };
            let q: std::vec::Vec<f32> = (0..nh * hs).map(|_| next()).collect();
            let keys: std::vec::Vec<f32> = (0..ring * nkv * hs).map(|_| next() * 3.0).collect();
            let values: std::vec::Vec<f32> = (0..ring * nkv * hs).map(|_| next()).collect();
            let run = |simd: Option<Avx2>, exec: &dyn crate::exec::Executor| {
                let mut att = std::vec![0.0f32; nh * context];
                let mut out = std::vec![0.0f32; nh * hs];
                super::super::attention(
                    &q, &mut out, &mut att, &keys, &values, heads, context, ring, first, pos, exec, simd,
                );
                out.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>()
            };
            let want = run(None, &crate::exec::Inline);
            assert_eq!(run(Some(v), &crate::exec::Inline), want, "{nh} {nkv} {hs} {context} {ring} {first} {pos}");
            assert_eq!(run(Some(v), &Thirds), want, "split: {nh} {nkv} {hs} {context} {ring} {first} {pos}");
            assert_eq!(run(None, &Thirds), want);
        }
    }
}
