//! The forward pass: the order of calls that turns tokens into logits (embed, the
//! architecture's block for each layer, the final norm and the classifier), and [`Step`], which
//! carries out a block recipe's steps over the positions of a chunk with the shared ops. The
//! arithmetic is in `ops`, the weights come from `weights`; this file holds no math of its own.

use crate::cache::Loader;
use crate::engine::kv::{store_f16, KvLayer};
use crate::engine::weights::Weights;
use crate::engine::work::Work;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::arch::{Block, Buf, RopeLayout};
use crate::model::{LayerKind, LayerTensor, TensorName};
use crate::ops::{
    add, attention, attention_f16, geglu, head_rmsnorm, rmsnorm, rmsnorm_in_place, rope, rope_neox, round_f16_slice,
    softcap, swiglu, Avx2, Heads, KvElem,
};
use crate::plan::kv_rows;
use crate::quant::GgmlType;
use crate::storage::Storage;

impl<'a, S: Storage, L: Loader<'a>> Engine<'a, S, L> {
    /// Runs the model on `token` at position `pos` and returns the logits, `[vocab]`.
    pub fn forward(&mut self, token: u32, pos: u32) -> Result<&[f32]> {
        self.forward_batch(&[token], pos)
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()` layer by layer, each weight unit
    /// applied to every position before the next is fetched, and returns the logits of the
    /// last position. At most [`crate::Plan::prefill_chunk`] tokens at a time. The numbers
    /// equal those of feeding the tokens one by one: each position's arithmetic is unchanged.
    pub fn forward_batch(&mut self, tokens: &[u32], pos: u32) -> Result<&[f32]> {
        let c = self.weights.model.config;
        let n = tokens.len();
        if n == 0 || n > self.work.positions {
            return Err(Error::BufferTooSmall { what: "prefill chunk", needed: n.max(1), got: self.work.positions });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t >= c.vocab) {
            return Err(Error::TokenOutOfRange { token, vocab: c.vocab });
        }
        let context = self.weights.plan.context;
        let last_pos = pos as u64 + n as u64 - 1;
        if last_pos >= context as u64 {
            return Err(Error::ContextFull { pos: last_pos.min(u32::MAX as u64) as u32, context });
        }
        for (p, &token) in tokens.iter().enumerate() {
            self.weights.embed(token, p, self.work.x)?;
        }
        if let Some(scale) = c.embedding_scale {
            for v in &mut self.work.x[..n * c.dim as usize] {
                *v *= scale;
            }
        }
        #[cfg(feature = "trace")]
        if let Some(t) = self.trace {
            t.tensor("inp_scaled", None, &self.work.x[..n * c.dim as usize]);
        }
        let block = self.weights.model.arch.block;
        let (kv_dim, chunk) = (c.kv_dim as usize, self.weights.plan.prefill_chunk() as usize);
        // Each layer's rows follow the previous layer's (a ring on sliding-window layers).
        let mut row0 = 0usize;
        for l in 0..c.n_layers as usize {
            let ring = kv_rows(&self.weights.model, context, chunk, l as u32) as usize;
            let kv_rows = row0 * kv_dim..(row0 + ring) * kv_dim;
            row0 += ring;
            let (keys, values, f16) = match self.kv.layer(kv_rows) {
                KvLayer::F32 { keys, values } => (keys, values, None),
                KvLayer::F16 { keys, values } => (Default::default(), Default::default(), Some((keys, values))),
            };
            let mut step = Step {
                ring,
                kind: self.weights.model.layer_kind(l as u32),
                w: &mut self.weights,
                work: &mut self.work,
                keys,
                values,
                f16,
                norms: self.norms,
                layer: l,
                n,
                pos: pos as usize,
                rounded: None,
                #[cfg(feature = "trace")]
                trace: self.trace,
            };
            block(&mut step)?;
        }
        // Only the last position's logits are used; the classifier still runs once per chunk,
        // which keeps the unit schedule cyclic.
        let (w, work) = (&mut self.weights, &mut self.work);
        let dim = c.dim as usize;
        let (at, len) = w.model.output_norm_span();
        let wide = w.kernels.activation_type(GgmlType::Q8_0).is_some();
        rmsnorm(&mut work.xb[..dim], &work.x[(n - 1) * dim..n * dim], &self.norms[at..at + len], c.rms_eps, wide);
        w.matvec(TensorName::Output, 1, &work.xb[..dim], work.logits)?;
        if let Some(cap) = c.logit_softcap {
            softcap(work.logits, cap);
        }
        #[cfg(feature = "trace")]
        if let Some(t) = self.trace {
            t.tensor("result_norm", None, &work.xb[..dim]);
            t.tensor("result_output", None, work.logits);
        }
        Ok(self.work.logits)
    }
}

/// One layer of one chunk: what a block recipe's steps act on.
pub(crate) struct Step<'s, 'a, S: Storage, L: Loader<'a>> {
    w: &'s mut Weights<'a, S, L>,
    work: &'s mut Work<'a>,
    /// This layer's key cache, `[ring][kv_dim]`: position `p` in row `p % ring`.
    keys: &'s mut [f32],
    /// This layer's value cache, as `keys`.
    values: &'s mut [f32],
    /// With an f16 cache (`keys`/`values` are then empty): this layer's f16 keys and values, as
    /// `keys`. The chunk's new rows stay f32 in `work.kv_stage` (RoPE and head norms act on
    /// them there) until `attention` rounds them in.
    f16: Option<(&'s mut [u16], &'s mut [u16])>,
    /// Rows of this layer's cache: the context, or a ring of the window plus a chunk.
    ring: usize,
    norms: &'s [u8],
    kind: LayerKind,
    layer: usize,
    /// Positions in the chunk.
    n: usize,
    /// Position of the chunk's first token.
    pos: usize,
    /// The buffer whose rounded copy the quantized-input buffer holds, while it is unchanged.
    rounded: Option<Buf>,
    /// The observer of the steps (the `trace` feature).
    #[cfg(feature = "trace")]
    trace: Option<&'a dyn crate::trace::Trace>,
}

/// What a trace point shows: `width` values of a buffer per position, or the chunk's new keys
/// or values in the cache.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "trace"), allow(dead_code))]
enum Shown {
    Buf(Buf, usize),
    Keys,
    Values,
}

/// llama.cpp's name for the output of a product or a norm by `role` (its eval callback's).
#[cfg_attr(not(feature = "trace"), allow(dead_code))]
fn traced_name(role: LayerTensor) -> &'static str {
    match role {
        LayerTensor::Q => "Qcur",
        LayerTensor::AttnOut => "attn_out",
        LayerTensor::Gate => "ffn_gate",
        LayerTensor::Up => "ffn_up",
        LayerTensor::Down => "ffn_out",
        LayerTensor::AttnNorm => "attn_norm",
        LayerTensor::PostAttnNorm => "attn_post_norm",
        LayerTensor::FfnNorm => "ffn_norm",
        LayerTensor::PostFfnNorm => "ffn_post_norm",
        _ => "other",
    }
}

impl<'a, S: Storage, L: Loader<'a>> Step<'_, 'a, S, L> {
    fn name(&self, role: LayerTensor) -> TensorName {
        TensorName::Layer(self.layer as u16, role)
    }

    /// Shows `what` to the trace under `name` (nothing without the `trace` feature).
    #[cfg(feature = "trace")]
    fn show(&mut self, name: &str, what: Shown) {
        let Some(t) = self.trace else { return };
        let (n, kv_dim, first) = (self.n, self.w.model.config.kv_dim as usize, self.pos % self.ring);
        let rows = first * kv_dim..(first + n) * kv_dim;
        let values: &[f32] = match what {
            Shown::Buf(b, width) => &self.work.buf(b)[..n * width],
            Shown::Keys => self.keys.get(rows).unwrap_or(&[]),
            Shown::Values => self.values.get(rows).unwrap_or(&[]),
        };
        t.tensor(name, Some(self.layer), values);
    }

    #[cfg(not(feature = "trace"))]
    #[inline(always)]
    fn show(&mut self, _: &str, _: Shown) {}

    /// Whether the kernels round activations as llama.cpp's CPU backend does: then the norms
    /// sum as ggml does and [`Block::attention_f16`] rounds as llama.cpp's flash attention.
    fn ggml(&self) -> bool {
        self.w.kernels.activation_type(GgmlType::Q8_0).is_some()
    }

    /// `b` is about to change: a rounded copy of it is stale.
    fn writes(&mut self, b: Buf) {
        if self.rounded == Some(b) {
            self.rounded = None;
        }
    }

    fn heads(&self) -> Heads {
        let c = &self.w.model.config;
        Heads { n_heads: c.n_heads as usize, n_kv_heads: c.n_kv_heads as usize, head_size: c.head_size as usize }
    }

    /// `to = W(name) from`, reusing the rounded input when `from` is unchanged since the last
    /// product (the same bytes either way).
    fn product(&mut self, name: TensorName, from: Buf, to: &mut [f32]) -> Result<()> {
        let t = self.w.model.tensor(name);
        let x: &[f32] = self.work.buf(from);
        let x = x.get(..self.n * t.cols as usize).ok_or(Error::Malformed("a block reads past its buffer"))?;
        let out = to.get_mut(..self.n * t.rows as usize).ok_or(Error::Malformed("a block writes past its buffer"))?;
        if self.rounded == Some(from) {
            self.w.matvec_same_input(name, self.n, x, out)?;
        } else {
            self.w.matvec(name, self.n, x, out)?;
        }
        self.rounded = Some(from);
        Ok(())
    }
}

impl<'a, S: Storage, L: Loader<'a>> Block for Step<'_, 'a, S, L> {
    fn norm(&mut self, role: LayerTensor, from: Buf, to: Buf) -> Result<()> {
        self.writes(to);
        let (at, len) = self.w.model.norm_span(self.layer, role).ok_or(Error::MissingTensor(self.name(role)))?;
        let weight = &self.norms[at..at + len];
        let (width, eps, wide) = (len / 4, self.w.model.config.rms_eps, self.ggml());
        if from == to {
            let x = core::mem::take(self.work.buf(to));
            for p in 0..self.n {
                rmsnorm_in_place(&mut x[p * width..][..width], weight, eps, wide);
            }
            *self.work.buf(to) = x;
            self.show(traced_name(role), Shown::Buf(to, width));
            return Ok(());
        }
        let out = core::mem::take(self.work.buf(to));
        let x: &[f32] = self.work.buf(from);
        for p in 0..self.n {
            rmsnorm(&mut out[p * width..][..width], &x[p * width..][..width], weight, eps, wide);
        }
        *self.work.buf(to) = out;
        self.show(traced_name(role), Shown::Buf(to, width));
        Ok(())
    }

    fn matvec(&mut self, role: LayerTensor, from: Buf, to: Buf) -> Result<()> {
        self.writes(to);
        let out = core::mem::take(self.work.buf(to));
        let r = self.product(self.name(role), from, out);
        *self.work.buf(to) = out;
        r?;
        let rows = self.w.model.tensor(self.name(role)).rows as usize;
        self.show(traced_name(role), Shown::Buf(to, rows));
        Ok(())
    }

    fn keys_values(&mut self, from: Buf) -> Result<()> {
        let kv_dim = self.w.model.config.kv_dim as usize;
        if self.f16.is_some() {
            // The new rows go to the f32 staging buffer (`[2][positions][kv_dim]`).
            let stage = core::mem::take(&mut self.work.kv_stage);
            let (ks, vs) = stage.split_at_mut(stage.len() / 2);
            let rows = self.n * kv_dim;
            let r = match (ks.get_mut(..rows), vs.get_mut(..rows)) {
                (Some(k), Some(v)) => self
                    .product(self.name(LayerTensor::K), from, k)
                    .and_then(|_| self.product(self.name(LayerTensor::V), from, v)),
                _ => Err(Error::Malformed("the f16 KV staging buffer is shorter than the chunk")),
            };
            self.work.kv_stage = stage;
            return r;
        }
        let first = self.pos % self.ring;
        if first + self.n <= self.ring {
            // The chunk's rows are contiguous in the cache: the products write them in place.
            let new_rows = first * kv_dim..(first + self.n) * kv_dim;
            let keys = core::mem::take(&mut self.keys);
            let r = self.product(self.name(LayerTensor::K), from, &mut keys[new_rows.clone()]);
            self.keys = keys;
            r?;
            let values = core::mem::take(&mut self.values);
            let r = self.product(self.name(LayerTensor::V), from, &mut values[new_rows]);
            self.values = values;
            r?;
            self.show("Kcur", Shown::Keys);
            self.show("Vcur", Shown::Values);
            return Ok(());
        }
        // The chunk wraps around the ring: each product goes through `hb` (free until the
        // feed-forward), then its rows are copied to theirs. The same values either way.
        self.writes(Buf::Hb);
        let (n, ring) = (self.n, self.ring);
        for (role, cache) in [(LayerTensor::K, true), (LayerTensor::V, false)] {
            let tmp = core::mem::take(&mut self.work.hb);
            let out = tmp.get_mut(..n * kv_dim).ok_or(Error::Malformed("a ring chunk exceeds the hidden buffer"));
            let r = match out {
                Ok(out) => self.product(self.name(role), from, out),
                Err(e) => Err(e),
            };
            if r.is_ok() {
                let dst = if cache { &mut *self.keys } else { &mut *self.values };
                for (p, row) in tmp[..n * kv_dim].chunks_exact(kv_dim).enumerate() {
                    let at = (self.pos + p) % ring * kv_dim;
                    dst[at..at + kv_dim].copy_from_slice(row);
                }
            }
            self.work.hb = tmp;
            r?;
        }
        Ok(())
    }

    fn rope(&mut self, layout: RopeLayout) {
        self.writes(Buf::Q);
        let c = &self.w.model.config;
        let (q_dim, kv_dim, hs) = (c.q_dim as usize, c.kv_dim as usize, c.head_size as usize);
        // The RoPE factors, resident after the final norm (none: every factor 1).
        let factors = self.w.model.rope_freqs_span().and_then(|(at, len)| self.norms.get(at..at + len)).unwrap_or(&[]);
        for p in 0..self.n {
            let q = &mut self.work.q[p * q_dim..][..q_dim];
            let k = if self.f16.is_some() {
                &mut self.work.kv_stage[p * kv_dim..][..kv_dim]
            } else {
                &mut self.keys[(self.pos + p) % self.ring * kv_dim..][..kv_dim]
            };
            match layout {
                RopeLayout::Interleaved => rope(q, k, self.pos + p, hs, self.kind.rope_base, factors),
                RopeLayout::Neox => rope_neox(q, k, self.pos + p, hs, self.kind.rope_base, factors),
            }
        }
        self.show("Qcur_roped", Shown::Buf(Buf::Q, q_dim));
        self.show("Kcur_roped", Shown::Keys);
    }

    fn attention(&mut self, to: Buf) {
        self.writes(to);
        let (heads, context) = (self.heads(), self.w.plan.context as usize);
        let (q_dim, kv_dim) = (self.w.model.config.q_dim as usize, self.w.model.config.kv_dim as usize);
        if let Some((k16, v16)) = &mut self.f16 {
            // The chunk's new rows, rounded once into the f16 cache before any position attends.
            let stage = &self.work.kv_stage;
            let (ks, vs) = stage.split_at(stage.len() / 2);
            let rows = self.n * kv_dim;
            store_f16(k16, &ks[..rows], kv_dim, self.pos, self.ring);
            store_f16(v16, &vs[..rows], kv_dim, self.pos, self.ring);
        }
        let chunk = ChunkAttention {
            n: self.n,
            pos: self.pos,
            q_dim,
            window: self.kind.window,
            ring: self.ring,
            heads,
            context,
            exec: self.w.exec,
            simd: Avx2::of(self.w.kernels),
        };
        let out = core::mem::take(self.work.buf(to));
        match &self.f16 {
            Some((keys, values)) => chunk.attend(keys, values, self.work.q, out, self.work.att),
            None => chunk.attend(self.keys, self.values, self.work.q, out, self.work.att),
        }
        *self.work.buf(to) = out;
        self.show("kqv_out", Shown::Buf(to, q_dim));
    }

    fn attention_f16(&mut self, to: Buf) {
        // Off the llama.cpp-rounding path, or with an f16 cache (whose rows are already halves
        // and whose f32 `keys`/`values` are empty), the plain attention runs.
        if !self.ggml() || self.f16.is_some() {
            return self.attention(to);
        }
        self.writes(to);
        self.writes(Buf::Q);
        let (heads, context) = (self.heads(), self.w.plan.context as usize);
        let (q_dim, kv_dim) = (self.w.model.config.q_dim as usize, self.w.model.config.kv_dim as usize);
        // The chunk's keys and values as llama.cpp's flash attention reads them: halves.
        for p in 0..self.n {
            let row = (self.pos + p) % self.ring * kv_dim..((self.pos + p) % self.ring + 1) * kv_dim;
            round_f16_slice(&mut self.keys[row.clone()]);
            round_f16_slice(&mut self.values[row]);
        }
        let out = core::mem::take(self.work.buf(to));
        let q = core::mem::take(&mut self.work.q);
        for p in 0..self.n {
            let at = self.pos + p;
            let first = self.kind.window.map_or(0, |w| (at + 1).saturating_sub(w as usize));
            let first = first.max((at + 1).saturating_sub(self.ring));
            let (keys, values) = (&*self.keys, &*self.values);
            let (qp, o) = (&mut q[p * q_dim..][..q_dim], &mut out[p * q_dim..][..q_dim]);
            attention_f16(qp, o, self.work.att, keys, values, heads, context, self.ring, first, at, self.w.exec);
        }
        self.work.q = q;
        *self.work.buf(to) = out;
        self.show("kqv_out", Shown::Buf(to, q_dim));
    }

    fn head_norms(&mut self, q: LayerTensor, k: LayerTensor) -> Result<()> {
        self.writes(Buf::Q);
        let c = &self.w.model.config;
        let (q_dim, kv_dim, hs, eps) = (c.q_dim as usize, c.kv_dim as usize, c.head_size as usize, c.rms_eps);
        let span = |role| self.w.model.norm_span(self.layer, role).ok_or(Error::MissingTensor(self.name(role)));
        let ((qa, ql), (ka, kl)) = (span(q)?, span(k)?);
        let (qw, kw) = (&self.norms[qa..qa + ql], &self.norms[ka..ka + kl]);
        let wide = self.ggml();
        for p in 0..self.n {
            head_rmsnorm(&mut self.work.q[p * q_dim..][..q_dim], hs, qw, eps, wide);
            let k = if self.f16.is_some() {
                &mut self.work.kv_stage[p * kv_dim..][..kv_dim]
            } else {
                &mut self.keys[(self.pos + p) % self.ring * kv_dim..][..kv_dim]
            };
            head_rmsnorm(k, hs, kw, eps, wide);
        }
        self.show("Qcur_normed", Shown::Buf(Buf::Q, q_dim));
        self.show("Kcur_normed", Shown::Keys);
        Ok(())
    }

    fn geglu(&mut self) {
        self.writes(Buf::Hb);
        let hidden = self.n * self.w.model.config.hidden_dim as usize;
        geglu(&mut self.work.hb[..hidden], &self.work.hb2[..hidden], self.w.exec);
        self.show("ffn_geglu", Shown::Buf(Buf::Hb, hidden / self.n));
    }

    fn swiglu(&mut self) {
        self.writes(Buf::Hb);
        let hidden = self.n * self.w.model.config.hidden_dim as usize;
        let simd = Avx2::of(self.w.kernels);
        swiglu(&mut self.work.hb[..hidden], &self.work.hb2[..hidden], self.w.exec, simd);
    }

    fn add(&mut self, from: Buf) {
        self.writes(Buf::X);
        let dim = self.n * self.w.model.config.dim as usize;
        let x = core::mem::take(self.work.buf(Buf::X));
        add(&mut x[..dim], &self.work.buf(from)[..dim]);
        *self.work.buf(Buf::X) = x;
        let name = if from == Buf::Xb2 { "sa_out" } else { "l_out" };
        self.show(name, Shown::Buf(Buf::X, dim / self.n));
    }
}

/// What every position of a chunk needs to attend over one layer's cache, whichever element
/// type (f32, or f16 halves) the cache holds.
struct ChunkAttention<'e> {
    n: usize,
    pos: usize,
    q_dim: usize,
    window: Option<u32>,
    ring: usize,
    heads: Heads,
    context: usize,
    exec: &'e dyn crate::exec::Executor,
    simd: Option<Avx2>,
}

impl ChunkAttention<'_> {
    /// `out[p] = attention(q[p])` for each position `p` of the chunk, over the cache rows it may
    /// see.
    fn attend<E: KvElem>(&self, keys: &[E], values: &[E], q: &[f32], out: &mut [f32], att: &mut [f32]) {
        let q_dim = self.q_dim;
        for p in 0..self.n {
            let at = self.pos + p;
            // A key is masked when `at - p_key >= window` (llama.cpp's sliding window); a ring
            // holds at least the window plus the chunk (`kv_rows`).
            let first = self.window.map_or(0, |w| (at + 1).saturating_sub(w as usize));
            let first = first.max((at + 1).saturating_sub(self.ring));
            let (q, o) = (&q[p * q_dim..][..q_dim], &mut out[p * q_dim..][..q_dim]);
            attention(q, o, att, keys, values, self.heads, self.context, self.ring, first, at, self.exec, self.simd);
        }
    }
}
