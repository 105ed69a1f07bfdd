//! The forward pass: the order of calls that turns tokens into logits (embed, each block, the
//! final norm and the classifier). The arithmetic is in `ops`, the weights come from
//! `weights`; this file holds no math of its own.

use crate::cache::Loader;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{LayerTensor, TensorName};
use crate::ops::{add, attention, rmsnorm, rope, swiglu, Heads};
use crate::storage::Storage;

impl<'a, S: Storage, L: Loader<'a>> Engine<'a, S, L> {
    /// Runs the model on `token` at position `pos` and returns the logits, `[vocab]`.
    pub fn forward(&mut self, token: u32, pos: u32) -> Result<&[f32]> {
        self.forward_batch(&[token], pos)
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()` layer by layer, each weight unit
    /// applied to every position before the next is fetched, and returns the logits of the
    /// last position. At most [`Plan::prefill_chunk`] tokens at a time. The numbers equal those
    /// of feeding the tokens one by one: each position's arithmetic is unchanged.
    pub fn forward_batch(&mut self, tokens: &[u32], pos: u32) -> Result<&[f32]> {
        let c = self.weights.model.config;
        let n = tokens.len();
        if n == 0 || n > self.work.positions {
            return Err(Error::BufferTooSmall { what: "prefill chunk", needed: n.max(1), got: self.work.positions });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t >= c.vocab) {
            return Err(Error::TokenOutOfRange { token, vocab: c.vocab });
        }
        let last_pos = pos as u64 + n as u64 - 1;
        if last_pos >= self.weights.plan.context as u64 {
            return Err(Error::ContextFull {
                pos: last_pos.min(u32::MAX as u64) as u32,
                context: self.weights.plan.context,
            });
        }
        for (p, &token) in tokens.iter().enumerate() {
            self.weights.embed(token, p, self.work.x)?;
        }
        let (pos, dim, hidden, kv_dim, ctx) = (
            pos as usize,
            c.dim as usize,
            c.hidden_dim as usize,
            c.kv_dim as usize,
            self.weights.plan.context as usize,
        );
        let dim_bytes = dim * 4;
        let heads =
            Heads { n_heads: c.n_heads as usize, n_kv_heads: c.n_kv_heads as usize, head_size: c.head_size as usize };
        for l in 0..c.n_layers as usize {
            let (w, work) = (&mut self.weights, &mut self.work);
            let attn_norm = &self.norms[2 * l * dim_bytes..][..dim_bytes];
            let ffn_norm = &self.norms[(2 * l + 1) * dim_bytes..][..dim_bytes];
            let layer_kv = l * ctx * kv_dim;
            let name = |t| TensorName::Layer(l as u16, t);

            // Attention: x -> rmsnorm -> q, k, v -> RoPE -> scores over the cache -> wo -> +x.
            for p in 0..n {
                rmsnorm(&mut work.xb[p * dim..][..dim], &work.x[p * dim..][..dim], attn_norm, c.rms_eps);
            }
            let new_rows = layer_kv + pos * kv_dim..layer_kv + (pos + n) * kv_dim;
            w.matvec(name(LayerTensor::Q), n, &work.xb[..n * dim], &mut work.q[..n * dim])?;
            w.matvec_same_input(name(LayerTensor::K), n, &work.xb[..n * dim], &mut self.key_cache[new_rows.clone()])?;
            w.matvec_same_input(name(LayerTensor::V), n, &work.xb[..n * dim], &mut self.value_cache[new_rows])?;
            for p in 0..n {
                let k = &mut self.key_cache[layer_kv + (pos + p) * kv_dim..][..kv_dim];
                rope(&mut work.q[p * dim..][..dim], k, pos + p, c.head_size as usize, c.rope_theta);
            }
            for p in 0..n {
                let seen = (pos + p + 1) * kv_dim;
                let keys = &self.key_cache[layer_kv..layer_kv + seen];
                let values = &self.value_cache[layer_kv..layer_kv + seen];
                let (q, out) = (&work.q[p * dim..][..dim], &mut work.xb[p * dim..][..dim]);
                attention(q, out, work.att, keys, values, heads, ctx, pos + p, w.exec);
            }
            w.matvec(name(LayerTensor::AttnOut), n, &work.xb[..n * dim], &mut work.xb2[..n * dim])?;
            add(&mut work.x[..n * dim], &work.xb2[..n * dim]);

            // FFN: x -> rmsnorm -> w2(silu(w1 x) * w3 x) -> +x.
            for p in 0..n {
                rmsnorm(&mut work.xb[p * dim..][..dim], &work.x[p * dim..][..dim], ffn_norm, c.rms_eps);
            }
            w.matvec(name(LayerTensor::Gate), n, &work.xb[..n * dim], &mut work.hb[..n * hidden])?;
            w.matvec_same_input(name(LayerTensor::Up), n, &work.xb[..n * dim], &mut work.hb2[..n * hidden])?;
            swiglu(&mut work.hb[..n * hidden], &work.hb2[..n * hidden], w.exec);
            w.matvec(name(LayerTensor::Down), n, &work.hb[..n * hidden], &mut work.xb[..n * dim])?;
            add(&mut work.x[..n * dim], &work.xb[..n * dim]);
        }
        // Only the last position's logits are used; the classifier still runs once per chunk,
        // which keeps the unit schedule cyclic.
        let (w, work) = (&mut self.weights, &mut self.work);
        let last = &work.x[(n - 1) * dim..n * dim];
        let final_norm = &self.norms[2 * c.n_layers as usize * dim_bytes..][..dim_bytes];
        rmsnorm(&mut work.xb[..dim], last, final_norm, c.rms_eps);
        w.matvec(TensorName::Output, 1, &work.xb[..dim], work.logits)?;
        Ok(self.work.logits)
    }
}
