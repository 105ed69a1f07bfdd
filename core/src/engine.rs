//! The Llama forward pass and the generation loop.
//!
//! Owns the working buffers and the KV cache (arena regions) and asks the cache for weight
//! units in schedule order; it never learns where their bytes came from. One function per
//! step, as in llama2.c, whose arithmetic it follows operation for operation (f32, left-to-
//! right sums, no fused multiply-add) so that its tokens match the reference.

use crate::arena::{self, as_f32_mut, as_u32_mut, Plan, Unit};
use crate::cache::{Cache, CacheStats};
use crate::error::{Error, Result};
use crate::model::{LayerTensor, ModelInfo, TensorName, MAX_LAYERS};
use crate::quant;
use crate::sampler::Sampler;
use crate::storage::Storage;
use crate::tokenizer::{printable, Tokenizer};

/// The activation buffers of one position.
struct Work<'a> {
    /// Residual stream, `[dim]`.
    x: &'a mut [f32],
    /// Normed input of a block, then the attention output, `[dim]`.
    xb: &'a mut [f32],
    /// Output of a projection before the residual add, `[dim]`.
    xb2: &'a mut [f32],
    /// Query, `[dim]`.
    q: &'a mut [f32],
    /// FFN gate, `[hidden]`.
    hb: &'a mut [f32],
    /// FFN up, `[hidden]`.
    hb2: &'a mut [f32],
    /// Attention scores, `[n_heads][context]`.
    att: &'a mut [f32],
    /// Classifier output, `[vocab]`.
    logits: &'a mut [f32],
    /// Sampler candidates, `[vocab]`.
    candidates: &'a mut [u32],
}

fn split<'a, T>(buf: &mut &'a mut [T], n: usize) -> &'a mut [T] {
    let (head, tail) = core::mem::take(buf).split_at_mut(n);
    *buf = tail;
    head
}

impl<'a> Work<'a> {
    fn new(plan: &Plan, bytes: &'a mut [u8]) -> Self {
        let l = plan.working_layout;
        let (floats, ints) = bytes.split_at_mut(4 * (4 * l.dim + 2 * l.hidden + l.att + l.logits));
        let mut f = as_f32_mut(floats);
        Work {
            x: split(&mut f, l.dim),
            xb: split(&mut f, l.dim),
            xb2: split(&mut f, l.dim),
            q: split(&mut f, l.dim),
            hb: split(&mut f, l.hidden),
            hb2: split(&mut f, l.hidden),
            att: split(&mut f, l.att),
            logits: split(&mut f, l.logits),
            candidates: &mut as_u32_mut(ints)[..l.candidates],
        }
    }
}

/// An inference session: a model in storage, planned into a caller's arena.
pub struct Engine<'a, S: Storage> {
    storage: S,
    model: ModelInfo,
    plan: Plan,
    cache: Cache<'a>,
    tokenizer: Tokenizer<'a>,
    work: Work<'a>,
    key_cache: &'a mut [f32],
    value_cache: &'a mut [f32],
    scratch: &'a mut [u8],
    /// Index of the first unit of each tensor: layer tensors, then output norm, classifier.
    first_unit: heapless::Vec<u16, { MAX_LAYERS * 9 + 2 }>,
    load_bytes: u64,
}

impl<'a, S: Storage> Engine<'a, S> {
    /// Parses the model, plans `arena` for `context` positions, loads the tokenizer and the
    /// pinned weights.
    pub fn new(storage: S, arena: &'a mut [u8], context: u32) -> Result<Self> {
        Self::with_options(storage, arena, context, arena::PlanOptions::default())
    }

    /// As [`Engine::new`], with planner options.
    pub fn with_options(
        mut storage: S,
        arena: &'a mut [u8],
        context: u32,
        opts: arena::PlanOptions,
    ) -> Result<Self> {
        let model = ModelInfo::load(&mut storage)?;
        let plan = arena::plan_with(&model, context, arena.len(), opts)?;
        let regions = arena::carve(&plan, arena)?;
        let (tokenizer, tok_bytes) =
            Tokenizer::load(&mut storage, &model.header, regions.tokenizer)?;
        let mut cache = Cache::new(&plan, regions.resident, regions.slots);
        let embd = (model.token_embd.offset, model.token_embd.bytes());
        let pinned_bytes = cache.load_pinned(&plan, embd, &mut storage)?;
        let kv = as_f32_mut(regions.kv);
        let (key_cache, value_cache) = kv.split_at_mut(kv.len() / 2);
        let mut first_unit = heapless::Vec::new();
        let mut last = None;
        for (i, u) in plan.units.iter().enumerate() {
            if last != Some(u.tensor) {
                // Capacity: at most MAX_LAYERS * 9 + 2 tensors, checked by the model.
                let _ = first_unit.push(i as u16);
                last = Some(u.tensor);
            }
        }
        Ok(Engine {
            load_bytes: model.parse_bytes + tok_bytes + pinned_bytes,
            work: Work::new(&plan, regions.working),
            scratch: regions.scratch,
            storage,
            model,
            plan,
            cache,
            tokenizer,
            key_cache,
            value_cache,
            first_unit,
        })
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

    /// Bytes read while loading: header, tensor table, tokenizer and pinned weights.
    pub fn load_bytes(&self) -> u64 {
        self.load_bytes
    }

    /// The logits of the last [`Engine::forward`].
    pub fn logits(&self) -> &[f32] {
        self.work.logits
    }

    /// Samples the next token from the last logits (which it overwrites).
    pub fn sample(&mut self, sampler: &mut Sampler) -> u32 {
        sampler.sample(self.work.logits, self.work.candidates)
    }

    /// Runs the model on `token` at position `pos` and returns the logits, `[vocab]`.
    pub fn forward(&mut self, token: u32, pos: u32) -> Result<&[f32]> {
        let c = self.model.config;
        if token >= c.vocab {
            return Err(Error::TokenOutOfRange {
                token,
                vocab: c.vocab,
            });
        }
        if pos >= self.plan.context {
            return Err(Error::ContextFull {
                pos,
                context: self.plan.context,
            });
        }
        self.embed(token)?;
        let (pos, dim, kv_dim) = (pos as usize, c.dim as usize, c.kv_dim as usize);
        for l in 0..c.n_layers as usize {
            let mut w = Weights {
                engine_units: &self.plan.units,
                first_unit: &self.first_unit,
                model: &self.model,
                cache: &mut self.cache,
                storage: &mut self.storage,
            };
            let work = &mut self.work;
            let kv_at = (l * self.plan.context as usize + pos) * kv_dim;

            // Attention: x -> rmsnorm -> q, k, v -> RoPE -> scores over the cache -> wo -> +x.
            rmsnorm(
                work.xb,
                work.x,
                w.get(TensorName::Layer(l as u16, LayerTensor::AttnNorm))?,
                c.rms_eps,
            );
            w.matvec(TensorName::Layer(l as u16, LayerTensor::Q), work.xb, work.q)?;
            let k = &mut self.key_cache[kv_at..kv_at + kv_dim];
            let v = &mut self.value_cache[kv_at..kv_at + kv_dim];
            w.matvec(TensorName::Layer(l as u16, LayerTensor::K), work.xb, k)?;
            w.matvec(TensorName::Layer(l as u16, LayerTensor::V), work.xb, v)?;
            rope(work.q, k, pos, c.head_size as usize, c.rope_theta);
            let layer_keys =
                &self.key_cache[l * self.plan.context as usize * kv_dim..][..(pos + 1) * kv_dim];
            let layer_values =
                &self.value_cache[l * self.plan.context as usize * kv_dim..][..(pos + 1) * kv_dim];
            attention(
                work,
                layer_keys,
                layer_values,
                &c,
                self.plan.context as usize,
                pos,
            );
            w.matvec(
                TensorName::Layer(l as u16, LayerTensor::AttnOut),
                work.xb,
                work.xb2,
            )?;
            add(work.x, work.xb2);

            // FFN: x -> rmsnorm -> w2(silu(w1 x) * w3 x) -> +x.
            rmsnorm(
                work.xb,
                work.x,
                w.get(TensorName::Layer(l as u16, LayerTensor::FfnNorm))?,
                c.rms_eps,
            );
            w.matvec(
                TensorName::Layer(l as u16, LayerTensor::Gate),
                work.xb,
                work.hb,
            )?;
            w.matvec(
                TensorName::Layer(l as u16, LayerTensor::Up),
                work.xb,
                work.hb2,
            )?;
            swiglu(work.hb, work.hb2);
            w.matvec(
                TensorName::Layer(l as u16, LayerTensor::Down),
                work.hb,
                &mut work.xb[..dim],
            )?;
            add(work.x, work.xb);
        }
        let mut w = Weights {
            engine_units: &self.plan.units,
            first_unit: &self.first_unit,
            model: &self.model,
            cache: &mut self.cache,
            storage: &mut self.storage,
        };
        let work = &mut self.work;
        work.xb.copy_from_slice(work.x);
        rmsnorm(work.x, work.xb, w.get(TensorName::OutputNorm)?, c.rms_eps);
        w.matvec(TensorName::Output, work.x, work.logits)?;
        Ok(self.work.logits)
    }

    /// x = the embedding row of `token`, from the resident region or read into the scratch.
    fn embed(&mut self, token: u32) -> Result<()> {
        let m = &self.model;
        let t = if m.tied_output {
            m.output
        } else {
            m.token_embd
        };
        let row_bytes = t.row_bytes() as usize;
        let row_offset = token as usize * row_bytes;
        let pinned = if m.tied_output {
            // The classifier's units hold the embedding rows.
            let first = self.first_unit[self.first_unit.len() - 1] as usize;
            self.plan.units[first..]
                .iter()
                .find(|u| (u.row0..u.row0 + u.rows).contains(&token))
                .and_then(|u| {
                    u.pinned_at
                        .map(|at| at as usize + (token - u.row0) as usize * row_bytes)
                })
        } else {
            self.plan.embd_pinned_at.map(|at| at as usize + row_offset)
        };
        let row = match pinned {
            Some(at) => self.cache.resident(at, row_bytes),
            None => {
                let buf = &mut self.scratch[..row_bytes];
                self.cache
                    .read_row(t.offset + row_offset as u64, buf, &mut self.storage)?;
                buf
            }
        };
        quant::dequantize_row(t.ty, row, self.work.x);
        Ok(())
    }
}

/// Access to weights by tensor, unit by unit, for one step of the forward pass.
struct Weights<'e, 'a, S: Storage> {
    engine_units: &'e [Unit],
    first_unit: &'e [u16],
    model: &'e ModelInfo,
    cache: &'e mut Cache<'a>,
    storage: &'e mut S,
}

impl<S: Storage> Weights<'_, '_, S> {
    fn first(&self, name: TensorName) -> usize {
        let i = match name {
            TensorName::Layer(l, t) => l as usize * 9 + t as usize,
            TensorName::OutputNorm => self.first_unit.len() - 2,
            TensorName::Output | TensorName::TokenEmbd => self.first_unit.len() - 1,
        };
        self.first_unit[i] as usize
    }

    /// The bytes of a tensor that is a single unit (a norm weight).
    fn get(&mut self, name: TensorName) -> Result<&[u8]> {
        let i = self.first(name);
        self.cache.fetch(self.engine_units, i, self.storage)
    }

    /// out = W x, over the tensor's units in order.
    fn matvec(&mut self, name: TensorName, x: &[f32], out: &mut [f32]) -> Result<()> {
        let ty = self.model.tensor(name).ty;
        let mut i = self.first(name);
        while let Some(u) = self.engine_units.get(i).filter(|u| u.tensor == name) {
            let rows = u.row0 as usize..(u.row0 + u.rows) as usize;
            let w = self.cache.fetch(self.engine_units, i, self.storage)?;
            quant::matvec(ty, w, x, &mut out[rows]);
            i += 1;
        }
        Ok(())
    }
}

/// o = weight * x / rms(x). `weight` is the raw F32 norm tensor.
fn rmsnorm(o: &mut [f32], x: &[f32], weight: &[u8], eps: f32) {
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

/// Rotates adjacent pairs of q (all heads) and k (kv heads) by the position's angles.
fn rope(q: &mut [f32], k: &mut [f32], pos: usize, head_size: usize, theta: f32) {
    for i in (0..q.len()).step_by(2) {
        let head_dim = i % head_size;
        let freq = 1.0 / libm::powf(theta, head_dim as f32 / head_size as f32);
        let val = pos as f32 * freq;
        let (fcr, fci) = (libm::cosf(val), libm::sinf(val));
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

/// Multi-head attention of `work.q` over positions `0..=pos`; the result goes to `work.xb`.
/// `keys`/`values` are this layer's cache rows, `[pos + 1][kv_dim]`.
fn attention(
    work: &mut Work<'_>,
    keys: &[f32],
    values: &[f32],
    c: &crate::model::Config,
    context: usize,
    pos: usize,
) {
    let hs = c.head_size as usize;
    let kv_dim = c.kv_dim as usize;
    let kv_mul = (c.n_heads / c.n_kv_heads) as usize;
    let scale = libm::sqrtf(hs as f32);
    for h in 0..c.n_heads as usize {
        let q = &work.q[h * hs..(h + 1) * hs];
        let att = &mut work.att[h * context..h * context + pos + 1];
        let kv_off = (h / kv_mul) * hs;
        for (t, a) in att.iter_mut().enumerate() {
            let k = &keys[t * kv_dim + kv_off..t * kv_dim + kv_off + hs];
            let mut score = 0.0f32;
            for (&qi, &ki) in q.iter().zip(k) {
                score += qi * ki;
            }
            *a = score / scale;
        }
        crate::sampler::softmax(att);
        let xb = &mut work.xb[h * hs..(h + 1) * hs];
        xb.fill(0.0);
        for (t, &a) in att.iter().enumerate() {
            let v = &values[t * kv_dim + kv_off..t * kv_dim + kv_off + hs];
            for (o, &vi) in xb.iter_mut().zip(v) {
                *o += a * vi;
            }
        }
    }
}

/// hb = silu(hb) * hb2.
fn swiglu(hb: &mut [f32], hb2: &[f32]) {
    for (g, &u) in hb.iter_mut().zip(hb2) {
        let mut val = *g;
        val *= 1.0 / (1.0 + libm::expf(-val));
        *g = val * u;
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
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
/// planned context) or until the model chooses BOS. `on_token` sees every position.
pub fn generate<S: Storage>(
    engine: &mut Engine<'_, S>,
    sampler: &mut Sampler,
    prompt: &[u32],
    steps: u32,
    mut on_token: impl FnMut(&TokenEvent<'_>),
) -> Result<Outcome> {
    let &first = prompt.first().ok_or(Error::BufferTooSmall {
        what: "prompt",
        needed: 1,
        got: 0,
    })?;
    let steps = steps.min(engine.plan.context);
    let start = engine.stats();
    let mut decode_start = None;
    let mut token = first;
    let mut pos = 0u32;
    let mut stop = StopReason::Steps;
    while pos < steps {
        let phase = if (pos as usize) < prompt.len() {
            Phase::Prefill
        } else {
            Phase::Decode
        };
        if phase == Phase::Decode && decode_start.is_none() {
            decode_start = Some(engine.stats());
        }
        engine.forward(token, pos)?;
        let next = match prompt.get(pos as usize + 1) {
            Some(&t) => t,
            None => engine.sample(sampler),
        };
        pos += 1;
        if next == engine.tokenizer.bos() {
            stop = StopReason::Bos;
            on_token(&TokenEvent {
                pos: pos - 1,
                token,
                next,
                text: &[],
                phase,
            });
            break;
        }
        let text = printable(engine.tokenizer.decode(token, next));
        on_token(&TokenEvent {
            pos: pos - 1,
            token,
            next,
            text,
            phase,
        });
        token = next;
    }
    let end = engine.stats();
    let mid = decode_start.unwrap_or(end);
    Ok(Outcome {
        positions: pos,
        prefill_positions: pos.min(prompt.len() as u32),
        stop,
        prefill: mid.since(&start),
        decode: end.since(&mid),
    })
}
