//! The Llama forward pass and the generation loop.
//!
//! Owns the working buffers and the KV cache (arena regions) and asks the cache for weight
//! units in schedule order; it never learns where their bytes came from. One function per
//! step, as in llama2.c, whose arithmetic it follows operation for operation (f32, left-to-
//! right sums, no fused multiply-add) so that its tokens match the reference.

pub(crate) mod work;

use crate::bytes::as_f32_mut;
use crate::cache::{Cache, CacheStats, Loader, SyncLoader};
use crate::error::{Error, Result};
use crate::exec::{Executor, Inline};
use crate::model::{LayerTensor, ModelInfo, TensorName, MAX_LAYERS};
use crate::ops::{add, attention, rmsnorm, rope, swiglu, Heads};
use crate::plan::{self, Plan, PlanOptions, Unit};
use crate::quant::{self, GgmlType, Kernels};
use crate::sampler::Sampler;
use crate::storage::{read_exact_at, Storage};
use crate::tokenizer::{printable, Tokenizer};
use work::Work;
pub use work::WorkingLayout;

/// The weight access of `$engine`, borrowing only the fields it needs so that the working
/// buffers stay free for the step.
macro_rules! weights {
    ($engine:expr) => {
        Weights {
            units: &$engine.plan.units,
            first_unit: &$engine.first_unit,
            model: &$engine.model,
            cache: &mut $engine.cache,
            storage: &mut $engine.storage,
            loader: &mut $engine.loader,
            kernels: $engine.kernels,
            exec: $engine.exec,
            q8: $engine.q8,
            q8_holds: None,
        }
    };
}

/// An inference session: a model in storage, planned into a caller's arena.
pub struct Engine<'a, S: Storage, L: Loader<'a> = SyncLoader<'a>> {
    storage: S,
    loader: L,
    model: ModelInfo,
    plan: Plan,
    cache: Cache<'a>,
    tokenizer: Tokenizer<'a>,
    work: Work<'a>,
    key_cache: &'a mut [f32],
    value_cache: &'a mut [f32],
    scratch: &'a mut [u8],
    /// The input of a product rounded to Q8_0/Q8_K blocks, `[positions][layout.q8]` bytes
    /// (empty unless planned with `PlanOptions::quantized_activations`).
    q8: &'a mut [u8],
    /// Norm weights: per layer attention then FFN, then the final norm; `dim` f32 each.
    norms: &'a [u8],
    /// Index of the first unit of each matrix: per layer the 7 matrices, then the classifier.
    first_unit: heapless::Vec<u16, { MAX_LAYERS * 7 + 1 }>,
    load_bytes: u64,
    /// Which code computes the matrix-vector products.
    kernels: Kernels,
    /// Who runs their rows.
    exec: &'a (dyn Executor + Sync),
}

impl<'a, S: Storage> Engine<'a, S> {
    /// Parses the model, plans `arena` for `context` positions with the default options,
    /// loads the tokenizer and the pinned weights.
    pub fn new(storage: S, arena: &'a mut [u8], context: u32) -> Result<Self> {
        Self::with_loader(storage, SyncLoader::new(), arena, context, PlanOptions::default())
    }
}

impl<'a, S: Storage, L: Loader<'a>> Engine<'a, S, L> {
    /// As [`Engine::new`], with a loader and planner options.
    pub fn with_loader(
        mut storage: S,
        loader: L,
        arena: &'a mut [u8],
        context: u32,
        opts: PlanOptions,
    ) -> Result<Self> {
        let model = ModelInfo::load(&mut storage)?;
        let plan = plan::plan_with(&model, context, arena.len(), opts)?;
        let regions = plan::carve(&plan, arena)?;
        crate::fmt::debug!(
            "plan: budget {} B, {} of {} units pinned, {} slot(s) of {} B, {} B streamed per token",
            plan.budget,
            plan.units.iter().filter(|u| u.pinned_at.is_some()).count(),
            plan.units.len(),
            plan.slot_count,
            plan.slot_bytes,
            plan.streamed_bytes_per_token()
        );
        let (tokenizer, tok_bytes) = Tokenizer::load(&mut storage, &model.header, regions.tokenizer)?;
        let mut norm_read = 0u64;
        let dim_bytes = model.config.dim as usize * 4;
        for (t, dst) in model.norms().zip(regions.norms.chunks_exact_mut(dim_bytes)) {
            read_exact_at(&mut storage, t.offset, dst)?;
            norm_read += dim_bytes as u64;
        }
        let mut cache = Cache::new(&plan, regions.resident, regions.slots);
        let embd = (model.token_embd.offset, model.token_embd.bytes());
        let pinned_bytes = cache.load_pinned(&plan, embd, &mut storage)?;
        let kv = as_f32_mut(regions.kv);
        let (key_cache, value_cache) = kv.split_at_mut(kv.len() / 2);
        let mut first_unit = heapless::Vec::new();
        let mut last = None;
        for (i, u) in plan.units.iter().enumerate() {
            if last != Some(u.tensor) {
                // Capacity: at most MAX_LAYERS * 7 + 1 matrices, checked by the model.
                let _ = first_unit.push(i as u16);
                last = Some(u.tensor);
            }
        }
        let (working, q8) = regions.working.split_at_mut(plan.working_layout.q8_offset());
        Ok(Engine {
            load_bytes: model.parse_bytes + tok_bytes + norm_read + pinned_bytes,
            work: Work::new(plan.working_layout, working),
            q8,
            scratch: regions.scratch,
            norms: regions.norms,
            storage,
            loader,
            model,
            plan,
            cache,
            tokenizer,
            key_cache,
            value_cache,
            first_unit,
            kernels: Kernels::SCALAR,
            exec: &Inline,
        })
    }

    /// Selects the kernels of the matrix-vector products (default: [`Kernels::SCALAR`]).
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// The kernels in use.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Runs the rows of each matrix-vector product on `exec` (default: [`Inline`], the
    /// caller's thread). Results are bit-identical for any executor.
    pub fn set_executor(&mut self, exec: &'a (dyn Executor + Sync)) {
        self.exec = exec;
    }

    /// The model description.
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// The arena plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer<'a> {
        &self.tokenizer
    }

    /// Cache counters since the engine was made.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Bytes read while loading: header, tensor table, tokenizer, norms and pinned weights.
    pub fn load_bytes(&self) -> u64 {
        self.load_bytes
    }

    /// The loader.
    pub fn loader(&self) -> &L {
        &self.loader
    }

    /// The logits of the last forward pass.
    pub fn logits(&self) -> &[f32] {
        self.work.logits
    }

    /// Samples the next token from the last logits (which it overwrites).
    pub fn sample(&mut self, sampler: &mut Sampler) -> u32 {
        sampler.sample(self.work.logits, self.work.candidates)
    }

    /// Runs the model on `token` at position `pos` and returns the logits, `[vocab]`.
    pub fn forward(&mut self, token: u32, pos: u32) -> Result<&[f32]> {
        self.forward_batch(&[token], pos)
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()` layer by layer, each weight unit
    /// applied to every position before the next is fetched, and returns the logits of the
    /// last position. At most [`Plan::prefill_chunk`] tokens at a time. The numbers equal those
    /// of feeding the tokens one by one: each position's arithmetic is unchanged.
    pub fn forward_batch(&mut self, tokens: &[u32], pos: u32) -> Result<&[f32]> {
        let c = self.model.config;
        let n = tokens.len();
        if n == 0 || n > self.work.positions {
            return Err(Error::BufferTooSmall { what: "prefill chunk", needed: n.max(1), got: self.work.positions });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t >= c.vocab) {
            return Err(Error::TokenOutOfRange { token, vocab: c.vocab });
        }
        let last_pos = pos as u64 + n as u64 - 1;
        if last_pos >= self.plan.context as u64 {
            return Err(Error::ContextFull { pos: last_pos.min(u32::MAX as u64) as u32, context: self.plan.context });
        }
        for (p, &token) in tokens.iter().enumerate() {
            self.embed(token, p)?;
        }
        let (pos, dim, hidden, kv_dim, ctx) =
            (pos as usize, c.dim as usize, c.hidden_dim as usize, c.kv_dim as usize, self.plan.context as usize);
        let dim_bytes = dim * 4;
        let heads =
            Heads { n_heads: c.n_heads as usize, n_kv_heads: c.n_kv_heads as usize, head_size: c.head_size as usize };
        for l in 0..c.n_layers as usize {
            let mut w = weights!(self);
            let work = &mut self.work;
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
                attention(q, out, work.att, keys, values, heads, ctx, pos + p, self.exec);
            }
            w.matvec(name(LayerTensor::AttnOut), n, &work.xb[..n * dim], &mut work.xb2[..n * dim])?;
            add(&mut work.x[..n * dim], &work.xb2[..n * dim]);

            // FFN: x -> rmsnorm -> w2(silu(w1 x) * w3 x) -> +x.
            for p in 0..n {
                rmsnorm(&mut work.xb[p * dim..][..dim], &work.x[p * dim..][..dim], ffn_norm, c.rms_eps);
            }
            w.matvec(name(LayerTensor::Gate), n, &work.xb[..n * dim], &mut work.hb[..n * hidden])?;
            w.matvec_same_input(name(LayerTensor::Up), n, &work.xb[..n * dim], &mut work.hb2[..n * hidden])?;
            swiglu(&mut work.hb[..n * hidden], &work.hb2[..n * hidden], self.exec);
            w.matvec(name(LayerTensor::Down), n, &work.hb[..n * hidden], &mut work.xb[..n * dim])?;
            add(&mut work.x[..n * dim], &work.xb[..n * dim]);
        }
        // Only the last position's logits are used; the classifier still runs once per chunk,
        // which keeps the unit schedule cyclic.
        let mut w = weights!(self);
        let work = &mut self.work;
        let last = &work.x[(n - 1) * dim..n * dim];
        let final_norm = &self.norms[2 * c.n_layers as usize * dim_bytes..][..dim_bytes];
        rmsnorm(&mut work.xb[..dim], last, final_norm, c.rms_eps);
        w.matvec(TensorName::Output, 1, &work.xb[..dim], work.logits)?;
        Ok(self.work.logits)
    }

    /// x[p] = the embedding row of `token`, from the resident region or read into the scratch.
    fn embed(&mut self, token: u32, p: usize) -> Result<()> {
        let m = &self.model;
        let t = if m.tied_output { m.output } else { m.token_embd };
        let row_bytes = t.row_bytes() as usize;
        let row_offset = token as usize * row_bytes;
        let pinned = if m.tied_output {
            // The classifier's units hold the embedding rows.
            let first = self.first_unit[self.first_unit.len() - 1] as usize;
            self.plan.units[first..]
                .iter()
                .find(|u| (u.row0..u.row0 + u.rows).contains(&token))
                .and_then(|u| u.pinned_at.map(|at| at + (token - u.row0) as usize * row_bytes))
        } else {
            self.plan.embd_pinned_at.map(|at| at + row_offset)
        };
        let row = match pinned {
            Some(at) => self.cache.resident(at, row_bytes),
            None => {
                let buf = &mut self.scratch[p * row_bytes..(p + 1) * row_bytes];
                self.cache.read_row(t.offset + row_offset as u64, buf, &mut self.storage, &mut self.loader)?;
                buf
            }
        };
        let dim = self.model.config.dim as usize;
        quant::dequantize_row(t.ty, row, &mut self.work.x[p * dim..(p + 1) * dim]);
        Ok(())
    }
}

/// Access to weights by tensor, unit by unit, for one step of the forward pass.
struct Weights<'e, 'a, S: Storage, L: Loader<'a>> {
    units: &'e [Unit],
    first_unit: &'e [u16],
    model: &'e ModelInfo,
    cache: &'e mut Cache<'a>,
    storage: &'e mut S,
    loader: &'e mut L,
    kernels: Kernels,
    exec: &'e dyn Executor,
    /// Room for the quantized input of every position (see [`Kernels::activation_type`]).
    q8: &'e mut [u8],
    /// What `q8` holds when the caller says the input is unchanged: the activation type, the
    /// columns and the positions of the last rounded input.
    q8_holds: Option<(GgmlType, usize, usize)>,
}

impl<'a, S: Storage, L: Loader<'a>> Weights<'_, 'a, S, L> {
    fn first(&self, name: TensorName) -> usize {
        let i = match name {
            TensorName::Layer(l, t) => {
                l as usize * 7 + (t as usize - 1 - usize::from(t as usize > LayerTensor::FfnNorm as usize))
            }
            _ => self.first_unit.len() - 1,
        };
        self.first_unit[i] as usize
    }

    /// out[p] = W x[p] for `n` positions (`x`: `[n][cols]`, `out`: `[n][rows]`), over the
    /// tensor's units in order, each unit fetched once for all positions. On a path that rounds
    /// the input ([`Kernels::activation_type`]), each position is rounded once, before the
    /// first unit.
    fn matvec(&mut self, name: TensorName, n: usize, x: &[f32], out: &mut [f32]) -> Result<()> {
        self.q8_holds = None;
        self.matvec_same_input(name, n, x, out)
    }

    /// As [`Weights::matvec`] when `x` is the input of the previous call, unchanged: the
    /// rounded input is reused if it has the same type and shape (the same bytes either way).
    fn matvec_same_input(&mut self, name: TensorName, n: usize, x: &[f32], out: &mut [f32]) -> Result<()> {
        let t = self.model.tensor(name);
        let (rows, cols) = (t.rows as usize, t.cols as usize);
        let rounded = self.kernels.activation_type(t.ty).and_then(|vt| Some((vt, quant::activation_bytes(vt, cols)?)));
        let q_row = rounded.map_or(0, |(_, b)| b);
        if let Some((vt, q_row)) = rounded.filter(|&(vt, _)| self.q8_holds != Some((vt, cols, n))) {
            let got = self.q8.len();
            let q8 = self.q8.get_mut(..n * q_row).ok_or(Error::BufferTooSmall {
                what: "quantized activations (plan with PlanOptions::quantized_activations)",
                needed: n * q_row,
                got,
            })?;
            for (xp, qp) in x.chunks_exact(cols).zip(q8.chunks_exact_mut(q_row)) {
                self.kernels.quantize_activations(vt, xp, qp);
            }
            self.q8_holds = Some((vt, cols, n));
        }
        let q8: &[u8] = self.q8;
        let mut i = self.first(name);
        while let Some(u) = self.units.get(i).filter(|u| u.tensor == name) {
            let w = self.cache.fetch(self.units, i, self.storage, self.loader)?;
            let row_bytes = w.len() / (u.rows as usize).max(1);
            let (kernels, ty) = (self.kernels, t.ty);
            for p in 0..n {
                let out_rows = p * rows + u.row0 as usize..p * rows + (u.row0 + u.rows) as usize;
                let xp = &x[p * cols..(p + 1) * cols];
                let xq = q8.get(p * q_row..(p + 1) * q_row).unwrap_or(&[]);
                let job = |row0: usize, chunk: &mut [f32]| {
                    let rows = w.get(row0 * row_bytes..(row0 + chunk.len()) * row_bytes).unwrap_or(&[]);
                    if q_row > 0 {
                        kernels.matvec_quantized(ty, rows, xq, chunk);
                    } else {
                        kernels.matvec(ty, rows, xp, chunk);
                    }
                };
                self.exec.run_rows(&mut out[out_rows], w.len(), &job);
            }
            i += 1;
        }
        Ok(())
    }
}

/// Whether a position consumes the prompt or generated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// The token fed at this position comes from the prompt.
    Prefill,
    /// The token fed at this position was generated.
    Decode,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StopReason {
    /// All steps ran.
    Steps,
    /// The model chose BOS.
    Bos,
}

/// One position of [`generate`].
#[derive(Debug)]
pub struct TokenEvent<'t> {
    /// The position just run.
    pub pos: u32,
    /// The token fed at it.
    pub token: u32,
    /// The next token (from the prompt or sampled).
    pub next: u32,
    /// What the next token prints (empty for unprintable lone bytes).
    pub text: &'t [u8],
    /// Whether `token` came from the prompt.
    pub phase: Phase,
}

/// What [`generate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Outcome {
    /// Positions run.
    pub positions: u32,
    /// Positions whose fed token came from the prompt.
    pub prefill_positions: u32,
    /// Why it stopped.
    pub stop: StopReason,
    /// Cache counters while the prompt was fed.
    pub prefill: CacheStats,
    /// Cache counters after the prompt.
    pub decode: CacheStats,
}

/// llama2.c's `generate`: feeds the prompt, then samples, for `steps` positions (clamped to the
/// planned context) or until the model chooses BOS. The prompt runs layer-major in chunks of
/// [`Plan::prefill_chunk`] positions. `on_token` sees every position.
pub fn generate<'a, S: Storage, L: Loader<'a>>(
    engine: &mut Engine<'a, S, L>,
    sampler: &mut Sampler,
    prompt: &[u32],
    steps: u32,
    on_token: impl FnMut(&TokenEvent<'_>),
) -> Result<Outcome> {
    generate_with_logits(engine, sampler, prompt, steps, |_, _| {}, on_token)
}

/// As [`generate`], and `on_logits(pos, logits)` sees the logits of every forward pass before
/// they are sampled: those of position `pos`, the last of its prefill chunk (every position
/// when the plan's prefill chunk is 1).
pub fn generate_with_logits<'a, S: Storage, L: Loader<'a>>(
    engine: &mut Engine<'a, S, L>,
    sampler: &mut Sampler,
    prompt: &[u32],
    steps: u32,
    mut on_logits: impl FnMut(u32, &[f32]),
    mut on_token: impl FnMut(&TokenEvent<'_>),
) -> Result<Outcome> {
    if prompt.is_empty() {
        return Err(Error::BufferTooSmall { what: "prompt", needed: 1, got: 0 });
    }
    let steps = steps.min(engine.plan.context) as usize;
    let bos = engine.tokenizer.bos();
    let start = engine.stats();
    let prefilled = prompt.len().min(steps);
    let mut pos = 0usize;
    let mut token = prompt[0];
    // Prefill: positions whose fed token comes from the prompt.
    for chunk in prompt[..prefilled].chunks(engine.work.positions) {
        let logits = engine.forward_batch(chunk, pos as u32)?;
        on_logits((pos + chunk.len() - 1) as u32, logits);
        for _ in chunk {
            let next = match prompt.get(pos + 1) {
                Some(&t) => t,
                None => engine.sample(sampler),
            };
            pos += 1;
            if next == bos {
                on_token(&TokenEvent { pos: pos as u32 - 1, token, next, text: &[], phase: Phase::Prefill });
                let end = engine.stats();
                return Ok(Outcome {
                    positions: pos as u32,
                    prefill_positions: pos as u32,
                    stop: StopReason::Bos,
                    prefill: end.since(&start),
                    decode: CacheStats::default(),
                });
            }
            let text = printable(engine.tokenizer.decode(token, next));
            on_token(&TokenEvent { pos: pos as u32 - 1, token, next, text, phase: Phase::Prefill });
            token = next;
        }
    }
    let mid = engine.stats();
    let mut stop = StopReason::Steps;
    while pos < steps {
        let logits = engine.forward(token, pos as u32)?;
        on_logits(pos as u32, logits);
        let next = engine.sample(sampler);
        pos += 1;
        if next == bos {
            stop = StopReason::Bos;
            on_token(&TokenEvent { pos: pos as u32 - 1, token, next, text: &[], phase: Phase::Decode });
            break;
        }
        let text = printable(engine.tokenizer.decode(token, next));
        on_token(&TokenEvent { pos: pos as u32 - 1, token, next, text, phase: Phase::Decode });
        token = next;
    }
    let end = engine.stats();
    Ok(Outcome {
        positions: pos as u32,
        prefill_positions: prefilled as u32,
        stop,
        prefill: mid.since(&start),
        decode: end.since(&mid),
    })
}
