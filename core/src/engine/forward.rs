//! The forward pass: the order of calls that turns tokens into logits (embed, the
//! architecture's block for each layer, the final norm and the classifier), and [`Step`], which
//! carries out a block recipe's steps over the positions of a chunk with the shared ops. The
//! arithmetic is in `ops`, the weights come from `weights`; this file holds no math of its own.

use crate::cache::Loader;
use crate::engine::weights::Weights;
use crate::engine::work::Work;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::arch::{Block, Buf, RopeLayout};
use crate::model::{LayerKind, LayerTensor, TensorName};
use crate::ops::{
    add, attention, geglu, head_rmsnorm, rmsnorm, rmsnorm_in_place, rope, rope_neox, softcap, swiglu, Heads,
};
use crate::plan::kv_rows;
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
        let block = self.weights.model.arch.block;
        let (kv_dim, chunk) = (c.kv_dim as usize, self.weights.plan.prefill_chunk() as usize);
        // Each layer's rows follow the previous layer's (a ring on sliding-window layers).
        let mut row0 = 0usize;
        for l in 0..c.n_layers as usize {
            let ring = kv_rows(&self.weights.model, context, chunk, l as u32) as usize;
            let kv_rows = row0 * kv_dim..(row0 + ring) * kv_dim;
            row0 += ring;
            let mut step = Step {
                ring,
                kind: self.weights.model.layer_kind(l as u32),
                w: &mut self.weights,
                work: &mut self.work,
                keys: &mut self.key_cache[kv_rows.clone()],
                values: &mut self.value_cache[kv_rows],
                norms: self.norms,
                layer: l,
                n,
                pos: pos as usize,
                rounded: None,
            };
            block(&mut step)?;
        }
        // Only the last position's logits are used; the classifier still runs once per chunk,
        // which keeps the unit schedule cyclic.
        let (w, work) = (&mut self.weights, &mut self.work);
        let dim = c.dim as usize;
        let (at, len) = w.model.output_norm_span();
        rmsnorm(&mut work.xb[..dim], &work.x[(n - 1) * dim..n * dim], &self.norms[at..at + len], c.rms_eps);
        w.matvec(TensorName::Output, 1, &work.xb[..dim], work.logits)?;
        if let Some(cap) = c.logit_softcap {
            softcap(work.logits, cap);
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
}

impl<'a, S: Storage, L: Loader<'a>> Step<'_, 'a, S, L> {
    fn name(&self, role: LayerTensor) -> TensorName {
        TensorName::Layer(self.layer as u16, role)
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
        let (width, eps) = (len / 4, self.w.model.config.rms_eps);
        if from == to {
            let x = core::mem::take(self.work.buf(to));
            for p in 0..self.n {
                rmsnorm_in_place(&mut x[p * width..][..width], weight, eps);
            }
            *self.work.buf(to) = x;
            return Ok(());
        }
        let out = core::mem::take(self.work.buf(to));
        let x: &[f32] = self.work.buf(from);
        for p in 0..self.n {
            rmsnorm(&mut out[p * width..][..width], &x[p * width..][..width], weight, eps);
        }
        *self.work.buf(to) = out;
        Ok(())
    }

    fn matvec(&mut self, role: LayerTensor, from: Buf, to: Buf) -> Result<()> {
        self.writes(to);
        let out = core::mem::take(self.work.buf(to));
        let r = self.product(self.name(role), from, out);
        *self.work.buf(to) = out;
        r
    }

    fn keys_values(&mut self, from: Buf) -> Result<()> {
        let kv_dim = self.w.model.config.kv_dim as usize;
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
            return r;
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
        for p in 0..self.n {
            let q = &mut self.work.q[p * q_dim..][..q_dim];
            let k = &mut self.keys[(self.pos + p) % self.ring * kv_dim..][..kv_dim];
            match layout {
                RopeLayout::Interleaved => rope(q, k, self.pos + p, hs, self.kind.rope_base),
                RopeLayout::Neox => rope_neox(q, k, self.pos + p, hs, self.kind.rope_base),
            }
        }
    }

    fn attention(&mut self, to: Buf) {
        self.writes(to);
        let (heads, context) = (self.heads(), self.w.plan.context as usize);
        let q_dim = self.w.model.config.q_dim as usize;
        let out = core::mem::take(self.work.buf(to));
        for p in 0..self.n {
            let at = self.pos + p;
            // A key is masked when `at - p_key >= window` (llama.cpp's sliding window); a ring
            // holds at least the window plus the chunk (`kv_rows`).
            let first = self.kind.window.map_or(0, |w| (at + 1).saturating_sub(w as usize));
            let first = first.max((at + 1).saturating_sub(self.ring));
            let (keys, values) = (&*self.keys, &*self.values);
            let (q, o) = (&self.work.q[p * q_dim..][..q_dim], &mut out[p * q_dim..][..q_dim]);
            attention(q, o, self.work.att, keys, values, heads, context, self.ring, first, at, self.w.exec);
        }
        *self.work.buf(to) = out;
    }

    fn head_norms(&mut self, q: LayerTensor, k: LayerTensor) -> Result<()> {
        self.writes(Buf::Q);
        let c = &self.w.model.config;
        let (q_dim, kv_dim, hs, eps) = (c.q_dim as usize, c.kv_dim as usize, c.head_size as usize, c.rms_eps);
        let span = |role| self.w.model.norm_span(self.layer, role).ok_or(Error::MissingTensor(self.name(role)));
        let ((qa, ql), (ka, kl)) = (span(q)?, span(k)?);
        let (qw, kw) = (&self.norms[qa..qa + ql], &self.norms[ka..ka + kl]);
        for p in 0..self.n {
            head_rmsnorm(&mut self.work.q[p * q_dim..][..q_dim], hs, qw, eps);
            head_rmsnorm(&mut self.keys[(self.pos + p) % self.ring * kv_dim..][..kv_dim], hs, kw, eps);
        }
        Ok(())
    }

    fn geglu(&mut self) {
        self.writes(Buf::Hb);
        let hidden = self.n * self.w.model.config.hidden_dim as usize;
        geglu(&mut self.work.hb[..hidden], &self.work.hb2[..hidden], self.w.exec);
    }

    fn swiglu(&mut self) {
        self.writes(Buf::Hb);
        let hidden = self.n * self.w.model.config.hidden_dim as usize;
        swiglu(&mut self.work.hb[..hidden], &self.work.hb2[..hidden], self.w.exec);
    }

    fn add(&mut self, from: Buf) {
        self.writes(Buf::X);
        let dim = self.n * self.w.model.config.dim as usize;
        let x = core::mem::take(self.work.buf(Buf::X));
        add(&mut x[..dim], &self.work.buf(from)[..dim]);
        *self.work.buf(Buf::X) = x;
    }
}
