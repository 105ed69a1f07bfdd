//! The element-wise and row operations of a transformer block: RMSNorm (whole rows and per
//! head), RoPE, attention (causal, optionally over a sliding window), softmax, SwiGLU, GeGLU,
//! the residual add and the logit softcap. Each follows llama2.c's arithmetic operation for
//! operation (f32, left-to-right sums, no fused multiply-add); GeGLU follows llama.cpp's CPU
//! GELU table. They see only slices of f32 and
//! an [`Executor`]; they know nothing of weights, the cache or the arena.

use crate::exec::Executor;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Avx2;

/// Proof that the CPU has AVX2: never made on this target.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Avx2 {}

#[cfg(not(target_arch = "x86_64"))]
impl Avx2 {
    /// None: no vector code here.
    pub(crate) fn of(_: crate::quant::Kernels) -> Option<Avx2> {
        None
    }
}

/// The head shape of an attention layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Elements per head.
    pub head_size: usize,
}

impl Heads {
    /// Width of one position's keys (or values).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_size
    }
}

/// llama2.c's softmax, in place.
pub fn softmax(x: &mut [f32]) {
    let Some(&first) = x.first() else { return };
    let max = x[1..].iter().fold(first, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// The mean square of `x`: summed in f32 left to right (llama2.c), or with `wide` as ggml's
/// CPU `rms_norm` sums it (each square in f32, the sum in f64, the mean rounded to f32).
fn mean_square(x: &[f32], wide: bool) -> f32 {
    if wide {
        let mut sum = 0.0f64;
        for &v in x {
            sum += (v * v) as f64;
        }
        (sum / x.len() as f64) as f32
    } else {
        let mut ss = 0.0f32;
        for &v in x {
            ss += v * v;
        }
        ss / x.len() as f32
    }
}

/// o = weight * x / rms(x). `weight` is the raw F32 norm tensor; `wide` sums as ggml does
/// ([`mean_square`]).
pub fn rmsnorm(o: &mut [f32], x: &[f32], weight: &[u8], eps: f32, wide: bool) {
    let ss = 1.0 / libm::sqrtf(mean_square(x, wide) + eps);
    for ((o, &v), w) in o.iter_mut().zip(x).zip(weight.chunks_exact(4)) {
        *o = f32::from_le_bytes([w[0], w[1], w[2], w[3]]) * (ss * v);
    }
}

/// x = weight * x / rms(x), in place (the arithmetic of [`rmsnorm`]).
pub fn rmsnorm_in_place(x: &mut [f32], weight: &[u8], eps: f32, wide: bool) {
    let ss = 1.0 / libm::sqrtf(mean_square(x, wide) + eps);
    for (v, w) in x.iter_mut().zip(weight.chunks_exact(4)) {
        *v = f32::from_le_bytes([w[0], w[1], w[2], w[3]]) * (ss * *v);
    }
}

/// [`rmsnorm_in_place`] of each `head_size`-wide head of `x` by the same weight.
pub fn head_rmsnorm(x: &mut [f32], head_size: usize, weight: &[u8], eps: f32, wide: bool) {
    for head in x.chunks_exact_mut(head_size.max(1)) {
        rmsnorm_in_place(head, weight, eps, wide);
    }
}

/// The angle pair `pair` of a head turns by at `pos`: `pos * theta^(-2 pair / head_size)`,
/// divided by the pair's frequency factor when there are factors (`factors`: the raw
/// little-endian f32 bytes of `rope_freqs.weight`, one per pair; empty for none), as
/// llama.cpp's `ggml_rope_ext` divides each pair's angle by `freq_factors[pair]`. Without
/// factors the angle is the product alone, bit for bit as before.
#[inline]
pub fn rope_angle(pos: usize, freq: f32, factors: &[u8], pair: usize) -> f32 {
    let val = pos as f32 * freq;
    match factors.get(4 * pair..4 * pair + 4) {
        Some(f) => val / f32::from_le_bytes([f[0], f[1], f[2], f[3]]),
        None => val,
    }
}

/// Rotates adjacent pairs of q (all heads) and k (kv heads) by the position's angles
/// (divided by `factors`, see [`rope_angle`]).
pub fn rope(q: &mut [f32], k: &mut [f32], pos: usize, head_size: usize, theta: f32, factors: &[u8]) {
    // Every even `i` is rotated once by the angle of `i % head_size`, as llama2.c does; the
    // angle (a `powf`, a `cosf` and a `sinf`) is computed once per head dimension instead of
    // once per head. Each element's arithmetic is unchanged.
    for head_dim in 0..head_size.max(1) {
        let mut pairs = (head_dim..q.len()).step_by(head_size.max(1)).filter(|i| i % 2 == 0).peekable();
        if pairs.peek().is_none() {
            continue;
        }
        let freq = 1.0 / libm::powf(theta, head_dim as f32 / head_size as f32);
        let val = rope_angle(pos, freq, factors, head_dim / 2);
        let (fcr, fci) = (libm::cosf(val), libm::sinf(val));
        for i in pairs {
            let rotate = |v: &mut [f32]| {
                let (v0, v1) = (v[i], v[i + 1]);
                v[i] = v0 * fcr - v1 * fci;
                v[i + 1] = v0 * fci + v1 * fcr;
            };
            rotate(q);
            if i < k.len() {
                rotate(k);
            }
        }
    }
}

/// RoPE in the GPT-NeoX layout: element `i` of a head turns with element `i + head_size / 2`
/// by the angle of `2 * i`, for q (all heads) and k (kv heads). As ggml's CPU `rope` computes
/// it: the angle of pair `i` is `pos` times `theta_scale` `i` times over (`theta_scale =
/// theta^(-2 / head_size)`, one rounding per step), divided by the pair's frequency factor when
/// there are factors (as `ggml_rope_ext`'s `freq_factors`, see [`rope_angle`]), and the rotation
/// as GCC compiles ggml's `x0*cos - x1*sin`, `x0*sin + x1*cos` for x86: `fma(x0, cos,
/// -(x1*sin))`, `fma(x0, sin, x1*cos)`, with glibc's `cosf` and `sinf` ([`crate::mathf`]).
pub fn rope_neox(q: &mut [f32], k: &mut [f32], pos: usize, head_size: usize, theta: f32, factors: &[u8]) {
    let half = head_size / 2;
    let theta_scale = libm::powf(theta, -2.0 / head_size as f32);
    let mut angle = pos as f32;
    for i in 0..half {
        let val = match factors.get(4 * i..4 * i + 4) {
            Some(f) => angle / f32::from_le_bytes([f[0], f[1], f[2], f[3]]),
            None => angle,
        };
        let (fcr, fci) = (crate::mathf::cosf(val), crate::mathf::sinf(val));
        for v in [&mut *q, &mut *k] {
            for head in v.chunks_exact_mut(head_size.max(1)) {
                let (v0, v1) = (head[i], head[i + half]);
                head[i] = libm::fmaf(v0, fcr, -(v1 * fci));
                head[i + half] = libm::fmaf(v0, fci, v1 * fcr);
            }
        }
        angle *= theta_scale;
    }
}

/// The cache row of position `t` in a cache of `ring` rows: `t % ring`, without the division
/// while `t` is below `ring` (always, for a cache as long as the context).
#[inline(always)]
fn ring_row(t: usize, ring: usize) -> usize {
    if t < ring {
        t
    } else {
        t % ring
    }
}

/// An element of the KV cache as attention reads it: f32, or f16 bits (`u16`, the optional f16
/// cache) widened exactly to f32.
pub(crate) trait KvElem: Copy + Sync {
    /// The value as f32.
    fn to_f32(self) -> f32;
    /// The slice, if its elements are f32 (the vector code reads those).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
}

impl KvElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    fn as_f32(s: &[f32]) -> Option<&[f32]> {
        Some(s)
    }
}

impl KvElem for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        crate::quant::f16_to_f32(self)
    }
    fn as_f32(_: &[u16]) -> Option<&[f32]> {
        None
    }
}

/// The shape of one attention call: the layer's cache rows and the attended positions.
#[derive(Clone, Copy)]
struct Span {
    heads: Heads,
    context: usize,
    ring: usize,
    first: usize,
    seen: usize,
}

/// Scores of head `h` at positions `t0..t0 + out.len()` (each in `first..seen`): `q_h . k_t /
/// scale`, the dot summed left to right from 0.
fn scores_portable<E: KvElem>(q: &[f32], keys: &[E], s: Span, h: usize, t0: usize, scale: f32, out: &mut [f32]) {
    let hs = s.heads.head_size;
    let qh = &q[h * hs..(h + 1) * hs];
    let kv_off = (h / (s.heads.n_heads / s.heads.n_kv_heads)) * hs;
    for (t, a) in (t0..).zip(out.iter_mut()) {
        let row = ring_row(t, s.ring) * s.heads.kv_dim() + kv_off;
        let k = &keys[row..row + hs];
        let mut score = 0.0f32;
        for (&qi, &ki) in qh.iter().zip(k) {
            score += qi * ki.to_f32();
        }
        *a = score / scale;
    }
}

/// Outputs `d0..d0 + xb.len()` of head `h`: the sum over `first..seen` in order of `att[h][t] *
/// v_t[d]`, from 0.
fn weighted_portable<E: KvElem>(values: &[E], att: &[f32], s: Span, h: usize, d0: usize, xb: &mut [f32]) {
    let hs = s.heads.head_size;
    let kv_off = (h / (s.heads.n_heads / s.heads.n_kv_heads)) * hs + d0;
    xb.fill(0.0);
    for (t, &a) in (s.first..).zip(&att[h * s.context + s.first..h * s.context + s.seen]) {
        let row = ring_row(t, s.ring) * s.heads.kv_dim() + kv_off;
        let v = &values[row..row + xb.len()];
        for (o, &vi) in xb.iter_mut().zip(v) {
            *o += a * vi.to_f32();
        }
    }
}

/// Multi-head attention of one position's query `q` over positions `first..=pos`, into `out`
/// (`first` is 0 for causal attention over everything before, `pos + 1 - window` for a sliding
/// window). `keys`/`values` are this layer's cache, `ring` rows of `kv_dim`, position `t` in
/// row `t % ring` (a ring when `ring` is shorter than the context; it must hold `first..=pos`);
/// `att` is `[n_heads][context]`.
///
/// The scores and the weighted sums run on `exec` element by element (a score is one
/// `(head, position)` pair, an output one `(head, dimension)` pair), the softmax of each head
/// on the caller. Every element's arithmetic and summation order is that of a head-by-head
/// loop whatever the split, so the results are bit-identical for any number of threads; with
/// `simd` (an f32 cache), vector code computes the same bits (`ops/avx2.rs`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention<E: KvElem>(
    q: &[f32],
    out: &mut [f32],
    att: &mut [f32],
    keys: &[E],
    values: &[E],
    heads: Heads,
    context: usize,
    ring: usize,
    first: usize,
    pos: usize,
    exec: &dyn Executor,
    simd: Option<Avx2>,
) {
    let first = first.min(pos);
    let ring = ring.max(1);
    let hs = heads.head_size;
    let n_heads = heads.n_heads;
    let scale = libm::sqrtf(hs as f32);
    let seen = pos + 1;
    let s = Span { heads, context, ring, first, seen };
    #[cfg(target_arch = "x86_64")]
    let vector = simd.and_then(|v| {
        let cache = avx2::Cache { keys: E::as_f32(keys)?, values: E::as_f32(values)?, heads, ring };
        Some((v, cache))
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    // Bytes of the cache each pass reads: every head reads `seen` rows of `hs` values.
    let work = n_heads * seen * hs * 4;
    let att = &mut att[..n_heads * context];
    // Scores: att[h][t] = q_h . k_t / scale for t <= pos (the rest of a head's row is unused).
    exec.run_rows(att, work, &|row0: usize, chunk: &mut [f32]| {
        let mut i = row0;
        let mut rest = chunk;
        while !rest.is_empty() {
            let (h, t0) = (i / context, i % context);
            let len = (context - t0).min(rest.len());
            let (head, tail) = core::mem::take(&mut rest).split_at_mut(len);
            let (lo, hi) = (t0.max(first), (t0 + len).min(seen));
            if lo < hi {
                let dst = &mut head[lo - t0..hi - t0];
                #[allow(unused_mut)]
                let mut done = 0;
                #[cfg(target_arch = "x86_64")]
                if let Some((v, cache)) = &vector {
                    done = avx2::scores(*v, cache, q, h, lo, scale, dst);
                }
                scores_portable(q, keys, s, h, lo + done, scale, &mut dst[done..]);
            }
            i += len;
            rest = tail;
        }
    });
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = simd {
        avx2::softmax_heads(v, att, n_heads, context, first..seen);
    }
    if simd.is_none() {
        for h in 0..n_heads {
            softmax(&mut att[h * context + first..h * context + seen]);
        }
    }
    let att: &[f32] = att;
    // Weighted sums: out[h][d] = sum over t of att[h][t] * v_t[d], t in order from `first`.
    exec.run_rows(&mut out[..n_heads * hs], work, &|row0: usize, chunk: &mut [f32]| {
        #[cfg(target_arch = "x86_64")]
        if let Some((v, cache)) = &vector {
            let rest = |h: usize, d0: usize, xb: &mut [f32]| weighted_portable(values, att, s, h, d0, xb);
            return avx2::weighted(*v, cache, att, context, first..seen, row0, chunk, &rest);
        }
        let mut i = row0;
        let mut rest = chunk;
        while !rest.is_empty() {
            let (h, d0) = (i / hs, i % hs);
            let len = (hs - d0).min(rest.len());
            let (xb, tail) = core::mem::take(&mut rest).split_at_mut(len);
            weighted_portable(values, att, s, h, d0, xb);
            i += len;
            rest = tail;
        }
    });
}

/// `x` rounded to the nearest IEEE half (ties to even), as f32.
#[inline]
pub fn round_f16(x: f32) -> f32 {
    crate::quant::f16_to_f32(crate::quant::f32_to_f16(x))
}

/// `x` rounded once to the nearest IEEE half (ties to even), as f32: the sum of a half and a
/// product of two halves, exact in f64, rounds here as a half-precision fused multiply-add
/// would (rounding through f32 first could land on a tie and round twice).
#[inline]
pub fn round_f16_f64(x: f64) -> f32 {
    // Adding then subtracting 1.5 * 2^(e + 42) rounds to a multiple of 2^(e - 10), the half's
    // spacing at exponent `e` (2^-24 below the normal range), half to even.
    let e = (((x.to_bits() >> 52) & 0x7ff) as i32 - 1023).clamp(-14, 15);
    let c = 1.5 * f64::from_bits(((e + 42 + 1023) as u64) << 52);
    let r = ((x + c) - c) as f32;
    if r.abs() > 65504.0 {
        f32::INFINITY.copysign(r)
    } else {
        r
    }
}

/// Rounds each element of `x` to the nearest IEEE half.
pub fn round_f16_slice(x: &mut [f32]) {
    for v in x {
        *v = round_f16(*v);
    }
}

/// The dot product of two vectors of halves (held as f32) in the order of ggml's x86 AVX-512
/// `ggml_vec_dot_f16`: 64 lane sums (4 registers of 16 lanes, element `i` of each 64 into
/// lane `i % 64`; a product of two halves is exact in f32, so each fused multiply-add is one
/// rounded add), the registers added 0+2, 1+3, then 0+1, then the 16 lanes as a tree (8 + 8,
/// 4 + 4, 2 + 2, 1 + 1); a tail shorter than 64 is added in f32 after, element by element.
pub fn dot_f16(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 64];
    let (ca, ta) = a.as_chunks::<64>();
    let (cb, tb) = b.as_chunks::<64>();
    for (xa, xb) in ca.iter().zip(cb) {
        for ((l, &x), &y) in lanes.iter_mut().zip(xa).zip(xb) {
            *l += x * y;
        }
    }
    let mut r = [0.0f32; 16];
    for (i, v) in r.iter_mut().enumerate() {
        *v = (lanes[i] + lanes[32 + i]) + (lanes[16 + i] + lanes[48 + i]);
    }
    let mut width = 8;
    while width > 0 {
        for i in 0..width {
            r[i] += r[i + width];
        }
        width /= 2;
    }
    let mut sum = r[0];
    for (&x, &y) in ta.iter().zip(tb) {
        sum += x * y;
    }
    sum
}

/// [`attention`] as llama.cpp's CPU flash attention computes it for one query row (its
/// `flash_attn_ext_f16_one_chunk`, which llama.cpp runs for prompt batches under 64 tokens
/// and for a generated token over fewer than 512 cached positions). Keys and values are
/// halves there (llama.cpp casts an f32 cache to f16 for flash attention): the caller rounds
/// the cached keys and values with [`round_f16_slice`]. Here `q` is scaled by
/// `1 / sqrt(head_size)` and rounded to halves (in place: it is consumed), a score is
/// [`dot_f16`], and the softmax is online in position order: at a new maximum the half
/// accumulator is scaled by `exp(old - new)` (rounded to a half), each value row is added
/// times `exp(score - max)` (rounded to a half), and the sum of weights is kept in f32; the
/// output is the accumulator times `1 / sum`.
///
/// `exp` is glibc's ([`crate::mathf::expf`]). `att[h][t]` keeps, per position, the step's
/// weight `exp(score - max)`, or at a new maximum
/// the accumulator's scale negated (its sign bit says which). Threads as [`attention`]: the
/// same bits for any split.
#[allow(clippy::too_many_arguments)]
pub fn attention_f16(
    q: &mut [f32],
    out: &mut [f32],
    att: &mut [f32],
    keys: &[f32],
    values: &[f32],
    heads: Heads,
    context: usize,
    ring: usize,
    first: usize,
    pos: usize,
    exec: &dyn Executor,
) {
    let first = first.min(pos);
    let ring = ring.max(1);
    let hs = heads.head_size;
    let kv_dim = heads.kv_dim();
    let kv_mul = heads.n_heads / heads.n_kv_heads;
    let n_heads = heads.n_heads;
    let scale = 1.0 / libm::sqrtf(hs as f32);
    for v in q.iter_mut() {
        *v = round_f16(*v * scale);
    }
    let q: &[f32] = q;
    let seen = pos + 1;
    let work = n_heads * seen * hs * 4;
    let att = &mut att[..n_heads * context];
    exec.run_rows(att, work, &|row0: usize, chunk: &mut [f32]| {
        let mut i = row0;
        let mut rest = chunk;
        while !rest.is_empty() {
            let (h, t0) = (i / context, i % context);
            let len = (context - t0).min(rest.len());
            let (head, tail) = core::mem::take(&mut rest).split_at_mut(len);
            let qh = &q[h * hs..(h + 1) * hs];
            let kv_off = (h / kv_mul) * hs;
            for (t, a) in (t0..).zip(head.iter_mut()).take_while(|&(t, _)| t < seen).skip_while(|&(t, _)| t < first) {
                let row = ring_row(t, ring) * kv_dim + kv_off;
                *a = dot_f16(qh, &keys[row..row + hs]);
            }
            i += len;
            rest = tail;
        }
    });
    // The online softmax's steps, head by head in position order.
    for h in 0..n_heads {
        let mut max = f32::NEG_INFINITY;
        for a in &mut att[h * context + first..h * context + seen] {
            let s = *a;
            *a = if s > max {
                let ms = crate::mathf::expf(max - s);
                max = s;
                -ms
            } else {
                crate::mathf::expf(s - max)
            };
        }
    }
    let att: &[f32] = att;
    exec.run_rows(&mut out[..n_heads * hs], work, &|row0: usize, chunk: &mut [f32]| {
        let mut i = row0;
        let mut rest = chunk;
        while !rest.is_empty() {
            let (h, d0) = (i / hs, i % hs);
            let len = (hs - d0).min(rest.len());
            let (xb, tail) = core::mem::take(&mut rest).split_at_mut(len);
            let kv_off = (h / kv_mul) * hs + d0;
            let steps = &att[h * context + first..h * context + seen];
            let mut sum = 0.0f32;
            for &a in steps {
                // llama.cpp's `S = S*ms + vs`, contracted to a fused multiply-add.
                sum = if a.is_sign_negative() { libm::fmaf(sum, -a, 1.0) } else { sum + a };
            }
            xb.fill(0.0);
            for (t, &a) in (first..).zip(steps) {
                let row = ring_row(t, ring) * kv_dim + kv_off;
                let v = &values[row..row + len];
                // Half arithmetic (ggml's AVX512-FP16 `vec_scale_f16`, `vec_mad_f16`): the
                // factor is rounded to a half, a product of halves is exact in f32, and the
                // multiply-add rounds once.
                if a.is_sign_negative() {
                    let ms = round_f16(-a);
                    for (o, &vi) in xb.iter_mut().zip(v) {
                        *o = round_f16_f64(vi as f64 + round_f16(*o * ms) as f64);
                    }
                } else {
                    let vs = round_f16(a);
                    for (o, &vi) in xb.iter_mut().zip(v) {
                        *o = round_f16_f64((vi * vs) as f64 + *o as f64);
                    }
                }
            }
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            for o in xb.iter_mut() {
                *o *= inv;
            }
            i += len;
            rest = tail;
        }
    });
}

/// hb = silu(hb) * hb2, element by element on `exec` (each element's arithmetic is the same
/// whatever the split; `simd` runs vector code with the same bits).
pub(crate) fn swiglu(hb: &mut [f32], hb2: &[f32], exec: &dyn Executor, simd: Option<Avx2>) {
    // An `expf` costs about as much time as streaming this many weight bytes (the hint that
    // decides whether the pool splits the job).
    const EXPF_WORK: usize = 64;
    exec.run_rows(hb, hb.len() * EXPF_WORK, &|row0: usize, chunk: &mut [f32]| {
        #[cfg(target_arch = "x86_64")]
        if let Some(v) = simd {
            return avx2::swiglu(v, chunk, &hb2[row0..]);
        }
        let _ = simd;
        for (g, &u) in chunk.iter_mut().zip(&hb2[row0..]) {
            let mut val = *g;
            val *= 1.0 / (1.0 + libm::expf(-val));
            *g = val * u;
        }
    });
}

/// hb = gelu(hb) * hb2 with llama.cpp's CPU GELU: 0 at or below -10, the identity at or above
/// 10, between them the tanh-form GELU of the input rounded to f16, itself rounded to f16 (its
/// 64 Ki-entry table, computed here per element: the same values).
pub fn geglu(hb: &mut [f32], hb2: &[f32], exec: &dyn Executor) {
    // A `tanhf` costs about as much as streaming this many weight bytes (the split hint).
    const TANHF_WORK: usize = 64;
    exec.run_rows(hb, hb.len() * TANHF_WORK, &|row0: usize, chunk: &mut [f32]| {
        for (g, &u) in chunk.iter_mut().zip(&hb2[row0..]) {
            let x = *g;
            *g = if x <= -10.0 {
                0.0
            } else if x >= 10.0 {
                x * u
            } else {
                let x = crate::quant::f16_to_f32(crate::quant::f32_to_f16(x));
                crate::quant::f16_to_f32(crate::quant::f32_to_f16(gelu(x))) * u
            };
        }
    });
}

/// GELU in its tanh form, as llama.cpp writes it in f32 and GCC compiles it for x86 (the
/// `1 + a·x·x` term contracted to a fused multiply-add; with it every entry of the f16 table
/// equals ggml's).
pub fn gelu(x: f32) -> f32 {
    const GELU_COEF_A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + libm::tanhf(SQRT_2_OVER_PI * x * libm::fmaf(GELU_COEF_A * x, x, 1.0)))
}

/// x = cap * tanh(x / cap), element by element (as llama.cpp: a scale by 1/cap, tanh, a scale
/// by cap).
pub fn softcap(x: &mut [f32], cap: f32) {
    let inv = 1.0 / cap;
    for v in x {
        *v = libm::tanhf(*v * inv) * cap;
    }
}

/// x += y, element by element.
pub fn add(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neox_rope_is_interleaved_rope_on_the_split_halves() {
        // NeoX pairs (i, i + hs/2) as interleaved pairs (2i, 2i + 1): permuting each head's
        // elements so that the halves interleave gives the same results, to rounding (the NeoX
        // form computes its angles and products as ggml does).
        let (hs, heads) = (8, 2);
        let q: [f32; 16] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        let k: [f32; 8] = core::array::from_fn(|i| (i as f32 * 0.91).cos());
        let interleave = |v: &[f32]| -> [f32; 16] {
            let mut out = [0.0; 16];
            for (h, head) in v.chunks(hs).enumerate() {
                for i in 0..hs / 2 {
                    out[h * hs + 2 * i] = head[i];
                    out[h * hs + 2 * i + 1] = head[i + hs / 2];
                }
            }
            out
        };
        let (mut qn, mut kn) = (q, k);
        rope_neox(&mut qn, &mut kn, 5, hs, 10000.0, &[]);
        let (mut qi, mut ki) = (interleave(&q), interleave(&k));
        rope(&mut qi, &mut ki[..8], 5, hs, 10000.0, &[]);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + y.abs()));
        assert!(close(&interleave(&qn), &qi), "{qn:?} vs {qi:?}");
        assert!(close(&interleave(&kn)[..8], &ki[..8]));
        assert_eq!(heads * hs, q.len());
    }

    #[test]
    fn rope_factors_divide_each_pair_s_angle_and_factors_of_one_change_no_bit() {
        let (hs, pos, theta) = (8, 7, 500000.0f32);
        let factors: [f32; 4] = [1.0, 1.5, 8.0, 32.0];
        let bytes: [u8; 16] = core::array::from_fn(|i| factors[i / 4].to_le_bytes()[i % 4]);
        let ones: [u8; 16] = core::array::from_fn(|i| 1.0f32.to_le_bytes()[i % 4]);
        // A head of unit vectors (1, 0) in each pair turns to (cos, sin) of the pair's angle.
        let unit: [f32; 8] = core::array::from_fn(|i| if i % 2 == 0 { 1.0 } else { 0.0 });
        let (mut q, mut k) = (unit, unit);
        rope(&mut q, &mut k, pos, hs, theta, &bytes);
        for (j, &f) in factors.iter().enumerate() {
            let angle = pos as f32 * (1.0 / libm::powf(theta, (2 * j) as f32 / hs as f32)) / f;
            assert_eq!((q[2 * j], q[2 * j + 1]), (libm::cosf(angle), libm::sinf(angle)), "pair {j}");
            assert_eq!(k[2 * j..2 * j + 2], q[2 * j..2 * j + 2]);
        }
        // NeoX pairs (i, i + hs/2) take factor i. The NeoX angle is ggml's iterated product with
        // glibc's cosf/sinf, so it agrees with the interleaved form to rounding, not bit for bit.
        let neox_unit: [f32; 8] = core::array::from_fn(|i| if i < hs / 2 { 1.0 } else { 0.0 });
        let (mut qn, mut kn) = (neox_unit, neox_unit);
        rope_neox(&mut qn, &mut kn, pos, hs, theta, &bytes);
        for j in 0..hs / 2 {
            let (dc, ds) = ((qn[j] - q[2 * j]).abs(), (qn[j + hs / 2] - q[2 * j + 1]).abs());
            assert!(dc <= 1e-6 && ds <= 1e-6, "neox pair {j}: {dc} {ds}");
        }
        // Factors of 1 and no factors: the same bits.
        let x: [f32; 16] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        for layout in 0..2 {
            let (mut a, mut ka, mut b, mut kb) = (x, x, x, x);
            let turn = if layout == 0 { rope } else { rope_neox };
            turn(&mut a, &mut ka, 123, hs, theta, &[]);
            turn(&mut b, &mut kb, 123, hs, theta, &ones);
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
            assert_eq!(ka.map(f32::to_bits), kb.map(f32::to_bits));
        }
    }

    #[test]
    fn a_window_attends_as_a_cache_holding_only_the_window() {
        // Attention over positions first..=pos equals attention at position pos - first over
        // a cache that starts at `first`: the masked keys take no part.
        let heads = Heads { n_heads: 2, n_kv_heads: 1, head_size: 4 };
        let (context, pos, first) = (8, 6, 3);
        let q: [f32; 8] = core::array::from_fn(|i| (i as f32 * 0.3).sin());
        let keys: [f32; 28] = core::array::from_fn(|i| (i as f32 * 0.7).cos());
        let values: [f32; 28] = core::array::from_fn(|i| (i as f32 * 0.2).sin());
        let (mut att, mut out) = ([0.0f32; 16], [0.0f32; 8]);
        attention(
            &q,
            &mut out,
            &mut att,
            &keys,
            &values,
            heads,
            context,
            context,
            first,
            pos,
            &crate::exec::Inline,
            None,
        );
        let (mut att2, mut out2) = ([0.0f32; 16], [0.0f32; 8]);
        let (k, v) = (&keys[first * 4..], &values[first * 4..]);
        attention(&q, &mut out2, &mut att2, k, v, heads, context, context, 0, pos - first, &crate::exec::Inline, None);
        assert_eq!(out, out2);
        // And it differs from attending over everything.
        attention(
            &q,
            &mut out2,
            &mut att2,
            &keys,
            &values,
            heads,
            context,
            context,
            0,
            pos,
            &crate::exec::Inline,
            None,
        );
        assert_ne!(out, out2);
    }

    #[test]
    fn a_ring_holding_the_window_attends_as_the_full_cache() {
        // Positions 0..=6 of a cache, and a ring of 5 rows holding 2..=6 (position t in row
        // t % 5): the same output for a window starting at 3 (and at 2, the ring's oldest).
        let heads = Heads { n_heads: 2, n_kv_heads: 1, head_size: 4 };
        let (context, pos, ring) = (8, 6, 5);
        let q: [f32; 8] = core::array::from_fn(|i| (i as f32 * 0.3).sin());
        let keys: [f32; 28] = core::array::from_fn(|i| (i as f32 * 0.7).cos());
        let values: [f32; 28] = core::array::from_fn(|i| (i as f32 * 0.2).sin());
        let (mut rk, mut rv) = ([f32::NAN; 20], [f32::NAN; 20]);
        for t in pos + 1 - ring..=pos {
            rk[(t % ring) * 4..][..4].copy_from_slice(&keys[t * 4..][..4]);
            rv[(t % ring) * 4..][..4].copy_from_slice(&values[t * 4..][..4]);
        }
        for first in [2, 3] {
            let (mut att, mut out) = ([0.0f32; 16], [0.0f32; 8]);
            attention(
                &q,
                &mut out,
                &mut att,
                &keys,
                &values,
                heads,
                context,
                context,
                first,
                pos,
                &crate::exec::Inline,
                None,
            );
            let (mut att2, mut out2) = ([0.0f32; 16], [0.0f32; 8]);
            attention(&q, &mut out2, &mut att2, &rk, &rv, heads, context, ring, first, pos, &crate::exec::Inline, None);
            assert_eq!(out, out2, "window from {first}");
        }
    }

    #[test]
    fn round_f16_f64_rounds_once_to_the_nearest_half() {
        for x in
            [0.0f64, 1.0, -1.0, 1.0 + 1.0 / 2048.0, 1.0 + 3.0 / 2048.0, 3.0e-6, -7.5e-8, 65504.0, 1.0e5, 0.1, -2.5e-3]
        {
            let want = round_f16(x as f32);
            // Exact f32 inputs round as the f32 path does.
            assert_eq!(round_f16_f64(x as f32 as f64), want, "{x}");
        }
        // A tie in f32 that is not a tie in f64: 1 + 2^-11 + 2^-40 rounds up, not to even.
        let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        assert_eq!(round_f16(x as f32), 1.0);
        assert_eq!(round_f16_f64(x), 1.0 + 2f32.powi(-10));
    }

    #[test]
    fn geglu_is_the_f16_gelu_table_times_the_up_projection() {
        let x = [-12.0f32, -1.5, -0.25, 0.0, 0.1, 0.7, 3.0, 11.0];
        let up = [2.0f32; 8];
        let mut g = x;
        geglu(&mut g, &up, &crate::exec::Inline);
        assert_eq!(g[0], 0.0);
        assert_eq!(g[3], 0.0);
        assert_eq!(g[7], 22.0);
        for (&gi, &xi) in g.iter().zip(&x).skip(1).take(6) {
            // Two f16 roundings: within 2^-10 relative (plus a little near zero).
            let exact = 2.0 * gelu(xi);
            assert!((gi - exact).abs() <= exact.abs() / 512.0 + 1e-4, "{xi}: {gi} vs {exact}");
        }
        // gelu(0.7) by the tanh formula, to 6 digits.
        assert!((gelu(0.7) - 0.530_570_1).abs() < 1e-6, "{}", gelu(0.7));
    }
}
