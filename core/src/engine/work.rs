//! The working buffers of the forward pass (activations, attention scores, logits, sampler
//! candidates, quantized inputs): their layout, their one size formula ([`WorkingLayout::bytes`],
//! which the planner adds up) and the cut of their arena region. Knows nothing of weights.

use crate::bytes::{as_f32_mut, as_u32_mut};
use crate::error::PlanError;
use crate::model::arch::Buf;
use crate::model::Config;
use crate::quant;

/// The working buffers, in f32 elements, in arena order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WorkingLayout {
    /// Positions processed together in prefill (1 = token by token).
    pub positions: usize,
    /// Residual stream `x` and `xb2`: `positions * dim` each.
    pub dim: usize,
    /// `xb` and `q`: `positions * max(dim, q_dim)` each.
    pub wide: usize,
    /// `hb`, `hb2`: `positions * hidden_dim` each.
    pub hidden: usize,
    /// Attention scores of one position: `n_heads * context`.
    pub att: usize,
    /// Logits: `vocab`.
    pub logits: usize,
    /// Sampler candidate indices: `vocab` u32.
    pub candidates: usize,
    /// Bytes per position of the quantized activations (Q8_0/Q8_K blocks of the largest input
    /// row) used by the integer kernels, at the end of the region; 0 unless the plan was made
    /// with `PlanOptions::quantized_activations`.
    pub q8: usize,
    /// f32 elements per position of the f16 KV cache's staging buffer (the new keys and
    /// values, `2 * kv_dim`, rounded into the cache once, before attention); 0 with an f32 cache.
    pub kv_stage: usize,
}

impl WorkingLayout {
    /// The one size formula, in checked `u64`: the offset of the quantized activations (the
    /// bytes of the f32 and u32 buffers) and the bytes of the whole region.
    fn sizes(&self) -> Option<(u64, u64)> {
        let [p, dim, hidden, att, logits, candidates, q8] =
            [self.positions, self.dim, self.hidden, self.att, self.logits, self.candidates, self.q8].map(|n| n as u64);
        let (wide, kv_stage) = (self.wide as u64, self.kv_stage as u64);
        let per_position = dim
            .checked_mul(2)?
            .checked_add(wide.checked_mul(2)?)?
            .checked_add(hidden.checked_mul(2)?)?
            .checked_add(kv_stage)?;
        let elems = p.checked_mul(per_position)?.checked_add(att)?.checked_add(logits)?.checked_add(candidates)?;
        let q8_offset = elems.checked_mul(4)?;
        Some((q8_offset, q8_offset.checked_add(p.checked_mul(q8)?)?))
    }

    /// Bytes of the f32 and u32 buffers; the quantized activations follow at this offset.
    pub fn q8_offset(&self) -> usize {
        // A layout comes from `Work::layout`, which checked that both sizes fit a usize.
        self.sizes().map_or(usize::MAX, |(o, _)| o as usize)
    }

    /// Bytes of the whole working region: the one size formula of these buffers.
    pub fn bytes(&self) -> usize {
        self.sizes().map_or(usize::MAX, |(_, b)| b as usize)
    }
}

/// The activation buffers of up to `positions` prompt positions, row-major `[position][...]`.
pub(crate) struct Work<'a> {
    /// Positions the buffers hold.
    pub(crate) positions: usize,
    /// Residual stream, `[positions][dim]`.
    pub(crate) x: &'a mut [f32],
    /// Normed input of a block, then the attention output, `[positions][max(dim, q_dim)]`.
    pub(crate) xb: &'a mut [f32],
    /// Output of a projection before the residual add, `[positions][dim]`.
    pub(crate) xb2: &'a mut [f32],
    /// Queries, `[positions][max(dim, q_dim)]`.
    pub(crate) q: &'a mut [f32],
    /// FFN gate, `[positions][hidden]`.
    pub(crate) hb: &'a mut [f32],
    /// FFN up, `[positions][hidden]`.
    pub(crate) hb2: &'a mut [f32],
    /// Attention scores of one position, `[n_heads][context]`.
    pub(crate) att: &'a mut [f32],
    /// Classifier output of the last position, `[vocab]`.
    pub(crate) logits: &'a mut [f32],
    /// Sampler candidates, `[vocab]`.
    pub(crate) candidates: &'a mut [u32],
    /// With an f16 KV cache: the chunk's new keys, then its new values, `[2][positions][kv_dim]`
    /// (empty otherwise).
    pub(crate) kv_stage: &'a mut [f32],
}

impl<'a> Work<'a> {
    /// The buffer a block step names.
    pub(crate) fn buf(&mut self, b: Buf) -> &mut &'a mut [f32] {
        match b {
            Buf::X => &mut self.x,
            Buf::Xb => &mut self.xb,
            Buf::Xb2 => &mut self.xb2,
            Buf::Q => &mut self.q,
            Buf::Hb => &mut self.hb,
            Buf::Hb2 => &mut self.hb2,
        }
    }
}

fn split<'a, T>(buf: &mut &'a mut [T], n: usize) -> &'a mut [T] {
    let (head, tail) = core::mem::take(buf).split_at_mut(n);
    *buf = tail;
    head
}

impl<'a> Work<'a> {
    /// The layout of the working buffers for a model of this shape: `positions` prefill
    /// positions, a `context`-long attention row per head, and room for the quantized input of
    /// the integer kernels when `q8` is set, and the staging rows of an f16 KV cache when
    /// `kv_f16` is. Errors when the region would end above `limit` (the address space; checked in
    /// `u64`, so a 32-bit target cannot wrap).
    pub(crate) fn layout(
        c: &Config,
        context: u32,
        positions: usize,
        q8: bool,
        kv_f16: bool,
        limit: u64,
    ) -> Result<WorkingLayout, PlanError> {
        let too_large = PlanError::TooLarge { what: "working buffers" };
        let size = |n: u64| usize::try_from(n).ok().filter(|_| n <= limit).ok_or(too_large);
        let q8_bytes = |cols: u32| quant::activation_buffer_bytes(cols as usize);
        let l = WorkingLayout {
            positions,
            dim: c.dim as usize,
            wide: c.dim.max(c.q_dim) as usize,
            hidden: c.hidden_dim as usize,
            att: size(c.n_heads as u64 * context as u64)?,
            logits: c.vocab as usize,
            candidates: c.vocab as usize,
            q8: if q8 { q8_bytes(c.dim).max(q8_bytes(c.q_dim)).max(q8_bytes(c.hidden_dim)) } else { 0 },
            kv_stage: if kv_f16 { 2 * c.kv_dim as usize } else { 0 },
        };
        size(l.sizes().ok_or(too_large)?.1)?;
        Ok(l)
    }

    /// Cuts the working region (without its quantized tail) into the buffers of `l`.
    pub(crate) fn new(l: WorkingLayout, bytes: &'a mut [u8]) -> Self {
        let p = l.positions;
        let (floats, ints) = bytes.split_at_mut(l.q8_offset() - 4 * l.candidates);
        let mut f = as_f32_mut(floats);
        Work {
            positions: p,
            x: split(&mut f, p * l.dim),
            xb: split(&mut f, p * l.wide),
            xb2: split(&mut f, p * l.dim),
            q: split(&mut f, p * l.wide),
            hb: split(&mut f, p * l.hidden),
            hb2: split(&mut f, p * l.hidden),
            att: split(&mut f, l.att),
            logits: split(&mut f, l.logits),
            kv_stage: split(&mut f, p * l.kv_stage),
            candidates: &mut as_u32_mut(ints)[..l.candidates],
        }
    }
}
