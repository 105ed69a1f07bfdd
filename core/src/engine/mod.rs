//! An inference session: the model parsed, the arena planned and carved, the tokenizer, the
//! norms and the pinned weights loaded. Owns the session's state and its accessors; the forward
//! pass is in `forward`, weight access in `weights`, the working buffers in `work`, and the
//! generation loop in `generate`.

mod forward;
mod generate;
mod kv;
mod weights;
pub(crate) mod work;

use crate::cache::{Cache, CacheStats, Loader, SyncLoader};
use crate::error::{Error, PlanError, Result};
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
/// planner). Returns the model, the plan and the arena after the tables. The phases (header,
/// the tensor table's first pass, the tensor walk, the planner) are sibling calls, not nested:
/// only one parser frame is on the stack at a time (`Engine::new`'s stack peak on a
/// microcontroller, measured by the firmware: 8,172 B before this split, 6,072 B after).
#[inline(always)]
fn tables<'a, S: Storage>(storage: &mut S, arena: &'a mut [u8], context: u32, opts: PlanOptions) -> Result<Tables<'a>> {
    let budget = arena.len();
    let pad = arena.as_ptr().align_offset(ALIGN).min(budget);
    let (_, rest) = arena.split_at_mut(pad);
    let parsed = crate::model::parse_header(storage)?;
    let first = crate::gguf::first_pass(storage, &parsed.0)?;
    let (model, rest) = load_model(storage, parsed, first, rest, budget)?;
    let (plan, rest) = plan_units(&model, rest, context, budget, opts)?;
    Ok((model, plan, rest))
}

/// The model parsed, its per-layer tensor table at the head of `rest`. Not inlined: the
/// parser's frames (header, tensor walk) are gone before the planner runs.
#[inline(never)]
fn load_model<'a, S: Storage>(
    storage: &mut S,
    parsed: crate::model::ParsedHeader,
    first: (u64, u64),
    mut rest: &'a mut [u8],
    budget: usize,
) -> Result<(ModelInfo<&'a [Layer]>, &'a mut [u8])> {
    let model = ModelInfo::load_tensors(storage, parsed, first, |n| {
        let empty: Layer = [TensorRef::EMPTY; crate::model::ROLES];
        let (table, tail) =
            plan::table(core::mem::take(&mut rest), n, |_| empty).ok_or(PlanError::LayerTableTooLarge {
                budget,
                layers: n,
                table_bytes: n * core::mem::size_of::<Layer>(),
            })?;
        rest = tail;
        Ok(table)
    })?
    .into_shared();
    Ok((model, rest))
}

/// The plan, its unit table laid into the head of `rest`. Not inlined (see [`load_model`]).
#[inline(never)]
fn plan_units<'a>(
    model: &ModelInfo<&'a [Layer]>,
    rest: &'a mut [u8],
    context: u32,
    budget: usize,
    opts: PlanOptions,
) -> Result<(Plan<&'a [Unit]>, &'a mut [u8])> {
    let count = plan::unit_count(model)?;
    // An arena too small for the unit table is below the planner's minimum: say which.
    let Some((units, rest)) = plan::unit_table(count, rest) else {
        return Err(plan::budget_error(model, context, budget, opts).into());
    };
    let plan = plan::plan_into(model, context, budget, opts, usize::MAX as u64, units)?;
    let (plan, units) = plan.with_units(());
    Ok((plan.with_units(&*units).0, rest))
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
    /// Keys and values, f32 or f16 (`PlanOptions::kv_f16`).
    kv: kv::KvCache<'a>,
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
    pub fn with_loader(storage: S, loader: L, arena: &'a mut [u8], context: u32, opts: PlanOptions) -> Result<Self> {
        Self::build(storage, loader, arena, context, opts, |engine| engine)
    }

    /// Builds the engine and hands it to `place` (the identity, or a write into a static),
    /// so that a caller with a slot gets the engine written there without a second copy on
    /// the stack. Every table goes into the arena as soon as its size is known, so no large
    /// value is made on the stack or moved (the engine itself is small).
    #[inline(always)]
    fn build<R>(
        mut storage: S,
        loader: L,
        arena: &'a mut [u8],
        context: u32,
        opts: PlanOptions,
        place: impl FnOnce(Self) -> R,
    ) -> Result<R> {
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
        let (working, q8) = regions.working.split_at_mut(plan.working_layout.q8_offset());
        Ok(place(Engine {
            load_bytes: model.parse_bytes + tok_bytes + norm_read + pinned_bytes,
            work: Work::new(plan.working_layout, working),
            norms: regions.norms,
            kv: kv::KvCache::new(regions.kv, plan.options.kv_f16),
            weights: Weights::new(storage, loader, model, plan, cache, q8, regions.scratch),
            tokenizer,
            #[cfg(feature = "trace")]
            trace: None,
        }))
    }

    /// As [`Engine::with_loader`], written into `slot` (a static, say): the engine is made
    /// once, in its final place, instead of being returned and copied. Not inlined: the
    /// caller's frame holds no engine-sized temporary while the model is parsed.
    #[inline(never)]
    pub fn new_in<'s>(
        slot: &'s mut core::mem::MaybeUninit<Self>,
        storage: S,
        loader: L,
        arena: &'a mut [u8],
        context: u32,
        opts: PlanOptions,
    ) -> Result<&'s mut Self> {
        Self::build(storage, loader, arena, context, opts, |engine| slot.write(engine))
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
