//! An inference session: the model parsed, the arena planned and carved, the tokenizer, the
//! norms and the pinned weights loaded. Owns the session's state and its accessors; the forward
//! pass is in `forward`, weight access in `weights`, the working buffers in `work`, and the
//! generation loop in `generate`.

mod forward;
mod generate;
mod weights;
pub(crate) mod work;

use crate::bytes::as_f32_mut;
use crate::cache::{Cache, CacheStats, Loader, SyncLoader};
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::model::{Layer, ModelInfo, TensorRef};
use crate::plan::{self, Plan, PlanOptions, Unit, ALIGN};
use crate::quant::Kernels;
use crate::sampler::Sampler;
use crate::storage::{read_exact_at, Storage};
use crate::tokenizer::Tokenizer;
pub use generate::{generate, generate_with_logits, Outcome, Phase, StopReason, TokenEvent};
use weights::Weights;
use work::Work;
pub use work::WorkingLayout;

/// The model and the plan over their tables in the arena, and the arena after the tables.
type Tables<'a> = (ModelInfo<&'a [Layer]>, Plan<&'a [Unit]>, &'a mut [u8]);

/// The engine's tables laid into the head of `arena`, in the plan's order: the per-layer tensor
/// table (filled while the file's tensor table is parsed), then the unit table (filled by the
/// planner). Returns the model, the plan and the arena after the tables. Not inlined, so that
/// the parser's frames are gone before the engine is assembled.
#[inline(never)]
fn tables<'a, S: Storage>(storage: &mut S, arena: &'a mut [u8], context: u32, opts: PlanOptions) -> Result<Tables<'a>> {
    let budget = arena.len();
    let pad = arena.as_ptr().align_offset(ALIGN).min(budget);
    let (_, mut rest) = arena.split_at_mut(pad);
    let no_room = |what, needed: usize, got| Error::BufferTooSmall { what, needed, got };
    let model = ModelInfo::load_with(storage, |n| {
        let got = rest.len();
        let empty: Layer = [TensorRef::EMPTY; crate::model::ROLES];
        let (table, tail) = plan::table(core::mem::take(&mut rest), n, |_| empty).ok_or(no_room(
            "layer table (the arena)",
            n * core::mem::size_of::<Layer>(),
            got,
        ))?;
        rest = tail;
        Ok(table)
    })?
    .into_shared();
    let count = plan::unit_count(&model)?;
    let got = rest.len();
    let (units, rest) = plan::unit_table(count, rest).ok_or(no_room(
        "unit table (the arena)",
        count * core::mem::size_of::<Unit>(),
        got,
    ))?;
    let plan = plan::plan_into(&model, context, budget, opts, usize::MAX as u64, units)?;
    let (plan, units) = plan.with_units(());
    Ok((model, plan.with_units(&*units).0, rest))
}

/// [`Tokenizer::load`], not inlined (its frame is gone before the engine is assembled).
#[inline(never)]
fn load_tokenizer<'a, S: Storage>(
    storage: &mut S,
    header: &crate::gguf::Header,
    region: &'a mut [u8],
) -> Result<(Tokenizer<'a>, u64)> {
    Tokenizer::load(storage, header, region)
}

/// An inference session: a model in storage, planned into a caller's arena.
pub struct Engine<'a, S: Storage, L: Loader<'a> = SyncLoader<'a>> {
    /// The model, its plan, the cache and the kernels.
    weights: Weights<'a, S, L>,
    tokenizer: Tokenizer<'a>,
    work: Work<'a>,
    key_cache: &'a mut [f32],
    value_cache: &'a mut [f32],
    /// Norm weights, in [`ModelInfo::norms`] order.
    norms: &'a [u8],
    load_bytes: u64,
    /// The observer of the forward pass (the `trace` feature).
    #[cfg(feature = "trace")]
    trace: Option<&'a dyn crate::trace::Trace>,
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
        // Built in place: every table goes into the arena as soon as its size is known, so no
        // large value is made on the stack or moved (the engine itself is small).
        let budget = arena.len();
        // Slots get room for the storage's aligned reads (direct I/O), so they need no buffer
        // outside the arena.
        let io_align = u32::try_from(storage.io_align()).unwrap_or(u32::MAX);
        let opts = PlanOptions { io_align: opts.io_align.max(io_align), ..opts };
        let (model, plan, rest) = tables(&mut storage, arena, context, opts)?;
        // 3. The regions after the tables (the slot metadata is laid by the cache).
        let regions = plan::carve(&plan, rest, plan.working.offset)?;
        debug_assert_eq!(plan.budget, budget);
        crate::fmt::debug!(
            "plan: budget {} B, {} of {} units pinned, {} slot(s) of {} B, {} B streamed per token",
            plan.budget,
            plan.units.iter().filter(|u| u.pinned_at.is_some()).count(),
            plan.units.len(),
            plan.slot_count,
            plan.slot_bytes,
            plan.streamed_bytes_per_token()
        );
        let (tokenizer, tok_bytes) = load_tokenizer(&mut storage, &model.header, regions.tokenizer)?;
        let mut norm_read = 0u64;
        for t in model.norms() {
            let (at, len) = (norm_read as usize, t.bytes() as usize);
            let dst =
                regions.norms.get_mut(at..at + len).ok_or(Error::Malformed("norm weights exceed their region"))?;
            read_exact_at(&mut storage, t.offset, dst)?;
            norm_read += len as u64;
        }
        let mut cache = Cache::new(&plan, regions.resident, regions.slots, regions.slot_meta)?;
        let embd = (model.token_embd.offset, model.token_embd.bytes());
        let pinned_bytes = cache.load_pinned(&plan, embd, &mut storage)?;
        let kv = as_f32_mut(regions.kv);
        let (key_cache, value_cache) = kv.split_at_mut(kv.len() / 2);
        let (working, q8) = regions.working.split_at_mut(plan.working_layout.q8_offset());
        Ok(Engine {
            load_bytes: model.parse_bytes + tok_bytes + norm_read + pinned_bytes,
            work: Work::new(plan.working_layout, working),
            norms: regions.norms,
            weights: Weights::new(storage, loader, model, plan, cache, q8, regions.scratch),
            tokenizer,
            key_cache,
            value_cache,
            #[cfg(feature = "trace")]
            trace: None,
        })
    }

    /// As [`Engine::with_loader`], written into `slot` (a static, say): the engine is made
    /// once, in its final place, instead of being returned and copied.
    pub fn new_in<'s>(
        slot: &'s mut core::mem::MaybeUninit<Self>,
        storage: S,
        loader: L,
        arena: &'a mut [u8],
        context: u32,
        opts: PlanOptions,
    ) -> Result<&'s mut Self> {
        Ok(slot.write(Self::with_loader(storage, loader, arena, context, opts)?))
    }

    /// Shows every intermediate tensor of the following forward passes to `trace`.
    #[cfg(feature = "trace")]
    pub fn set_trace(&mut self, trace: &'a dyn crate::trace::Trace) {
        self.trace = Some(trace);
    }

    /// Selects the kernels of the matrix-vector products (default: [`Kernels::SCALAR`]).
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.weights.kernels = kernels;
    }

    /// The kernels in use.
    pub fn kernels(&self) -> Kernels {
        self.weights.kernels
    }

    /// Runs the rows of each matrix-vector product on `exec` (default: [`crate::Inline`], the
    /// caller's thread). Results are bit-identical for any executor.
    pub fn set_executor(&mut self, exec: &'a (dyn Executor + Sync)) {
        self.weights.exec = exec;
    }

    /// The model description (its per-layer table is in the arena).
    pub fn model(&self) -> &ModelInfo<&'a [Layer]> {
        &self.weights.model
    }

    /// The arena plan (its unit table is in the arena; [`Plan::owned`] copies it out).
    pub fn plan(&self) -> &Plan<&'a [Unit]> {
        &self.weights.plan
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer<'a> {
        &self.tokenizer
    }

    /// Cache counters since the engine was made.
    pub fn stats(&self) -> CacheStats {
        self.weights.cache.stats()
    }

    /// Bytes read while loading: header, tensor table, tokenizer, norms and pinned weights.
    pub fn load_bytes(&self) -> u64 {
        self.load_bytes
    }

    /// The loader.
    pub fn loader(&self) -> &L {
        &self.weights.loader
    }

    /// The logits of the last forward pass.
    pub fn logits(&self) -> &[f32] {
        self.work.logits
    }

    /// Samples the next token from the last logits (which it overwrites).
    pub fn sample(&mut self, sampler: &mut Sampler) -> u32 {
        sampler.sample(self.work.logits, self.work.candidates)
    }
}
