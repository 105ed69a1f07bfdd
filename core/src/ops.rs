//! The element-wise and row operations of a transformer block: RMSNorm (whole rows and per
//! head), RoPE, attention (causal, optionally over a sliding window), softmax, SwiGLU, GeGLU,
//! the residual add and the logit softcap. Each follows llama2.c's arithmetic operation for
//! operation (f32, left-to-right sums, no fused multiply-add); GeGLU follows llama.cpp's CPU
//! GELU table. They see only slices of f32 and
//! an [`Executor`]; they know nothing of weights, the cache or the arena.

use crate::exec::Executor;

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

/// o = weight * x / rms(x). `weight` is the raw F32 norm tensor.
pub fn rmsnorm(o: &mut [f32], x: &[f32], weight: &[u8], eps: f32) {
    let mut ss = 0.0f32;
    for &v in x {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += eps;
    ss = 1.0 / libm::sqrtf(ss);
    for ((o, &v), w) in o.iter_mut().zip(x).zip(weight.chunks_exact(4)) {
        *o = f32::from_le_bytes([w[0], w[1], w[2], w[3]]) * (ss * v);
    }
}

/// x = weight * x / rms(x), in place (the arithmetic of [`rmsnorm`]).
pub fn rmsnorm_in_place(x: &mut [f32], weight: &[u8], eps: f32) {
    let mut ss = 0.0f32;
    for &v in x.iter() {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += eps;
    ss = 1.0 / libm::sqrtf(ss);
    for (v, w) in x.iter_mut().zip(weight.chunks_exact(4)) {
        *v = f32::from_le_bytes([w[0], w[1], w[2], w[3]]) * (ss * *v);
    }
}

/// [`rmsnorm_in_place`] of each `head_size`-wide head of `x` by the same weight.
pub fn head_rmsnorm(x: &mut [f32], head_size: usize, weight: &[u8], eps: f32) {
    for head in x.chunks_exact_mut(head_size.max(1)) {
        rmsnorm_in_place(head, weight, eps);
    }
}

/// Rotates adjacent pairs of q (all heads) and k (kv heads) by the position's angles.
pub fn rope(q: &mut [f32], k: &mut [f32], pos: usize, head_size: usize, theta: f32) {
    // Every even `i` is rotated once by the angle of `i % head_size`, as llama2.c does; the
    // angle (a `powf`, a `cosf` and a `sinf`) is computed once per head dimension instead of
    // once per head. Each element's arithmetic is unchanged.
    for head_dim in 0..head_size.max(1) {
        let mut pairs = (head_dim..q.len()).step_by(head_size.max(1)).filter(|i| i % 2 == 0).peekable();
        if pairs.peek().is_none() {
            continue;
        }
        let freq = 1.0 / libm::powf(theta, head_dim as f32 / head_size as f32);
        let val = pos as f32 * freq;
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
/// by the angle of `2 * i`, for q (all heads) and k (kv heads).
pub fn rope_neox(q: &mut [f32], k: &mut [f32], pos: usize, head_size: usize, theta: f32) {
    let half = head_size / 2;
    for i in 0..half {
        let freq = 1.0 / libm::powf(theta, (2 * i) as f32 / head_size as f32);
        let val = pos as f32 * freq;
        let (fcr, fci) = (libm::cosf(val), libm::sinf(val));
        for v in [&mut *q, &mut *k] {
            for head in v.chunks_exact_mut(head_size.max(1)) {
                let (v0, v1) = (head[i], head[i + half]);
                head[i] = v0 * fcr - v1 * fci;
                head[i + half] = v0 * fci + v1 * fcr;
            }
        }
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
}

impl KvElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl KvElem for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        crate::quant::f16_to_f32(self)
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
/// loop whatever the split, so the results are bit-identical for any number of threads.
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
) {
    let first = first.min(pos);
    let ring = ring.max(1);
    let hs = heads.head_size;
    let kv_dim = heads.kv_dim();
    let kv_mul = heads.n_heads / heads.n_kv_heads;
    let n_heads = heads.n_heads;
    let scale = libm::sqrtf(hs as f32);
    let seen = pos + 1;
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
            let qh = &q[h * hs..(h + 1) * hs];
            let kv_off = (h / kv_mul) * hs;
            for (t, a) in (t0..).zip(head.iter_mut()).take_while(|&(t, _)| t < seen).skip_while(|&(t, _)| t < first) {
                let row = ring_row(t, ring) * kv_dim + kv_off;
                let k = &keys[row..row + hs];
                let mut score = 0.0f32;
                for (&qi, &ki) in qh.iter().zip(k) {
                    score += qi * ki.to_f32();
                }
                *a = score / scale;
            }
            i += len;
            rest = tail;
        }
    });
    for h in 0..n_heads {
        softmax(&mut att[h * context + first..h * context + seen]);
    }
    let att: &[f32] = att;
    // Weighted sums: out[h][d] = sum over t of att[h][t] * v_t[d], t in order from 0.
    exec.run_rows(&mut out[..n_heads * hs], work, &|row0: usize, chunk: &mut [f32]| {
        let mut i = row0;
        let mut rest = chunk;
        while !rest.is_empty() {
            let (h, d0) = (i / hs, i % hs);
            let len = (hs - d0).min(rest.len());
            let (xb, tail) = core::mem::take(&mut rest).split_at_mut(len);
            let kv_off = (h / kv_mul) * hs + d0;
            xb.fill(0.0);
            for (t, &a) in (first..).zip(&att[h * context + first..h * context + seen]) {
                let row = ring_row(t, ring) * kv_dim + kv_off;
                let v = &values[row..row + len];
                for (o, &vi) in xb.iter_mut().zip(v) {
                    *o += a * vi.to_f32();
                }
            }
            i += len;
            rest = tail;
        }
    });
}

/// hb = silu(hb) * hb2, element by element on `exec` (each element's arithmetic is the same
/// whatever the split).
pub fn swiglu(hb: &mut [f32], hb2: &[f32], exec: &dyn Executor) {
    // An `expf` costs about as much time as streaming this many weight bytes (the hint that
    // decides whether the pool splits the job).
    const EXPF_WORK: usize = 64;
    exec.run_rows(hb, hb.len() * EXPF_WORK, &|row0: usize, chunk: &mut [f32]| {
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

/// GELU in its tanh form, as llama.cpp writes it in f32.
pub fn gelu(x: f32) -> f32 {
    const GELU_COEF_A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + libm::tanhf(SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)))
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
        // elements so that the halves interleave gives identical results.
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
        rope_neox(&mut qn, &mut kn, 5, hs, 10000.0);
        let (mut qi, mut ki) = (interleave(&q), interleave(&k));
        rope(&mut qi, &mut ki[..8], 5, hs, 10000.0);
        assert_eq!(interleave(&qn), qi);
        assert_eq!(interleave(&kn)[..8], ki[..8]);
        assert_eq!(heads * hs, q.len());
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
        attention(&q, &mut out, &mut att, &keys, &values, heads, context, context, first, pos, &crate::exec::Inline);
        let (mut att2, mut out2) = ([0.0f32; 16], [0.0f32; 8]);
        let (k, v) = (&keys[first * 4..], &values[first * 4..]);
        attention(&q, &mut out2, &mut att2, k, v, heads, context, context, 0, pos - first, &crate::exec::Inline);
        assert_eq!(out, out2);
        // And it differs from attending over everything.
        attention(&q, &mut out2, &mut att2, &keys, &values, heads, context, context, 0, pos, &crate::exec::Inline);
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
            );
            let (mut att2, mut out2) = ([0.0f32; 16], [0.0f32; 8]);
            attention(&q, &mut out2, &mut att2, &rk, &rv, heads, context, ring, first, pos, &crate::exec::Inline);
            assert_eq!(out, out2, "window from {first}");
        }
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
