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
use crate::model::ModelInfo;
use crate::plan::{self, Plan, PlanOptions};
use crate::quant::Kernels;
use crate::sampler::Sampler;
use crate::storage::{read_exact_at, Storage};
use crate::tokenizer::Tokenizer;
pub use generate::{generate, generate_with_logits, Outcome, Phase, StopReason, TokenEvent};
use weights::Weights;
use work::Work;
pub use work::WorkingLayout;

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
        for t in model.norms() {
            let (at, len) = (norm_read as usize, t.bytes() as usize);
            let dst =
                regions.norms.get_mut(at..at + len).ok_or(Error::Malformed("norm weights exceed their region"))?;
            read_exact_at(&mut storage, t.offset, dst)?;
            norm_read += len as u64;
        }
        let mut cache = Cache::new(&plan, regions.resident, regions.slots);
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
        })
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

    /// The model description.
    pub fn model(&self) -> &ModelInfo {
        &self.weights.model
    }

    /// The arena plan.
    pub fn plan(&self) -> &Plan {
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
