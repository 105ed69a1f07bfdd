//! The arena plan: how the caller's RAM budget is spent.
//!
//! Owns [`Plan`], pure arithmetic from the model's shapes, the context length and the budget:
//! fixed regions (working buffers, KV cache, streaming scratch, tokenizer index, norms; see
//! `layout`), then the weights, cut into units (`units`) that are either pinned in the
//! resident region for the whole run or streamed through slots (`pack`). `carve` cuts the
//! caller's `&mut [u8]` into those regions: the only place called "arena". It reads no storage
//! and runs no math. Every size from the file is summed in `u64`, checked, and converted to
//! `usize` only when it fits.
//!
//! The engine's tables live in the arena too, sized for the model: the per-layer tensor table
//! (filled while the file's tensor table is parsed, before the plan exists, so it comes
//! first), the unit table (filled by the planner) and the slots' metadata (laid by the cache).
//!
//! ```text
//! | layers | units | working | KV cache | scratch | tokenizer | norms | resident | slot 0 .. slot N-1 | slot meta |
//! ```

pub(crate) mod carve;
pub(crate) mod layout;
pub(crate) mod minimum;
pub(crate) mod options;
pub(crate) mod pack;
pub(crate) mod prefetch;
pub(crate) mod units;

#[cfg(test)]
mod tests;

pub(crate) use carve::{carve, table, unit_table};
pub use layout::{kv_rows, Region, ALIGN};
pub use minimum::{budget_error, minimum_budget};
pub use options::{PlanOptions, Policy, MAX_PREFETCH};
pub use pack::{MAX_SLOTS, SLOT_META_BYTES};
pub use prefetch::{auto_prefetch, MIN_AUTO_PREFETCH, PREFETCH_AHEAD_BYTES, PREFETCH_SHARE};
pub(crate) use units::unit_cap;
pub use units::{unit_count, Unit, MAX_UNITS};

use core::ops::Deref;

use crate::engine::work::WorkingLayout;
use crate::error::PlanError;
use crate::model::{LayerTable, ModelInfo};
use crate::plan::layout::{align_up, fixed_regions, norm_bytes, Cursor};
use crate::plan::minimum::{minimum_with, Minimum};
use crate::plan::pack::pack;
use crate::plan::units::build_units;

/// The unit table of a plan made by [`plan_with`]: owned, of capacity [`MAX_UNITS`]. An engine's
/// plan holds a view of its arena instead (`&[Unit]`, exactly as many as the model has).
pub type OwnedUnits = heapless::Vec<Unit, MAX_UNITS>;

/// How the arena is spent. The single source of truth for memory.
#[derive(Debug, Clone)]
pub struct Plan<U = OwnedUnits> {
    /// The budget it was made for.
    pub budget: usize,
    /// The context length it holds a KV cache for.
    pub context: u32,
    /// The options it was made with.
    pub options: PlanOptions,
    /// The per-layer tensor table (`n_layers` rows of [`Layer`]), first in the arena.
    pub layers: Region,
    /// The unit table (one [`Unit`] per unit).
    pub unit_table: Region,
    /// Activations, logits, sampler scratch.
    pub working: Region,
    /// Sizes of the working buffers.
    pub working_layout: WorkingLayout,
    /// Keys and values, `2 * kv_dim` f32 per row; a layer holds [`kv_rows`] rows (the context,
    /// or a ring on sliding-window layers).
    pub kv: Region,
    /// Layers whose KV cache is a ring shorter than the context (sliding-window layers).
    pub kv_ring_layers: u32,
    /// Rows of each such ring (0 when there is none).
    pub kv_ring_rows: u32,
    /// Embedding rows of one prefill chunk, in their stored type.
    pub scratch: Region,
    /// Vocabulary pieces, offsets, scores and the sorted index.
    pub tokenizer: Region,
    /// The norm weights, resident always (they are tiny and used every layer).
    pub norms: Region,
    /// Pinned units (and the embedding table when everything fits).
    pub resident: Region,
    /// Streaming slots.
    pub slots: Region,
    /// The slots' metadata, [`SLOT_META_BYTES`] per slot, last in the arena.
    pub slot_meta: Region,
    /// Number of streaming slots.
    pub slot_count: u32,
    /// Bytes of each slot (the largest streamed unit, and `io_slack` beside it).
    pub slot_bytes: u32,
    /// Bytes of each slot beyond its largest unit, for aligned (direct I/O) reads straight
    /// into it ([`crate::storage::io_slack`] of the options' `io_align`; 0 without).
    pub io_slack: u32,
    /// The units, in access order.
    pub units: U,
    /// Offset of the embedding table in the resident region, when it is pinned.
    pub embd_pinned_at: Option<usize>,
    /// Bytes of one embedding row.
    pub embd_row_bytes: u32,
    /// Weight bytes one decode token uses: all units, the norms and one embedding row.
    pub touched_bytes_per_token: u64,
    /// Weight bytes pinned for the whole run (pinned units, norms, a pinned embedding table).
    pub pinned_bytes: u64,
}

impl<U> Plan<U> {
    /// The same plan over another unit table; the old table is returned beside it.
    pub fn with_units<V>(self, units: V) -> (Plan<V>, U) {
        let plan = self.regions_with(units);
        (plan, self.units)
    }

    /// This plan's regions (every field but the unit table is `Copy`) over the unit table `units`.
    fn regions_with<V>(&self, units: V) -> Plan<V> {
        Plan {
            budget: self.budget,
            context: self.context,
            options: self.options,
            layers: self.layers,
            unit_table: self.unit_table,
            working: self.working,
            working_layout: self.working_layout,
            kv: self.kv,
            kv_ring_layers: self.kv_ring_layers,
            kv_ring_rows: self.kv_ring_rows,
            scratch: self.scratch,
            tokenizer: self.tokenizer,
            norms: self.norms,
            resident: self.resident,
            slots: self.slots,
            slot_meta: self.slot_meta,
            slot_count: self.slot_count,
            slot_bytes: self.slot_bytes,
            io_slack: self.io_slack,
            embd_pinned_at: self.embd_pinned_at,
            embd_row_bytes: self.embd_row_bytes,
            touched_bytes_per_token: self.touched_bytes_per_token,
            pinned_bytes: self.pinned_bytes,
            units,
        }
    }
}

impl<U: Deref<Target = [Unit]>> Plan<U> {
    /// The plan with its unit table copied into an owned one (for a report that outlives the
    /// engine; the table never holds more than [`MAX_UNITS`]).
    pub fn owned(&self) -> Plan {
        let units: OwnedUnits = self.units.iter().copied().take(MAX_UNITS).collect();
        self.regions_with(units)
    }

    /// Weight bytes the plan reads from storage per decode token when every unit that is not
    /// pinned is read once: the lower bound of any policy in this plan's budget.
    pub fn streamed_bytes_per_token(&self) -> u64 {
        let units: u64 = self.units.iter().filter(|u| u.pinned_at.is_none()).map(|u| u.bytes as u64).sum();
        units + if self.embd_pinned_at.is_some() { 0 } else { self.embd_row_bytes as u64 }
    }

    /// Reads per decode token under the same assumption (one per streamed unit, one per row).
    pub fn streamed_reads_per_token(&self) -> u64 {
        self.units.iter().filter(|u| u.pinned_at.is_none()).count() as u64 + u64::from(self.embd_pinned_at.is_none())
    }

    /// Everything but the resident weights: the working set of the streaming analysis.
    pub fn working_set_bytes(&self) -> usize {
        self.working.bytes + self.kv.bytes + self.scratch.bytes + self.tokenizer.bytes + self.slots.bytes
    }

    /// Bytes of the engine's tables in the arena: layer table, unit table, slot metadata.
    pub fn table_bytes(&self) -> usize {
        self.layers.bytes + self.unit_table.bytes + self.slot_meta.bytes
    }

    /// Bytes of the arena the plan uses, including the slack the planner reserves: one
    /// [`ALIGN`] for the arena's start, one for rounding the slot metadata.
    pub fn used_bytes(&self) -> usize {
        self.end() + 2 * ALIGN
    }

    /// Where the last region ends (from the aligned start of the arena).
    pub fn end(&self) -> usize {
        self.slot_meta.offset + self.slot_meta.bytes
    }

    /// Positions a prefill chunk holds.
    pub fn prefill_chunk(&self) -> u32 {
        self.working_layout.positions as u32
    }
}

/// Plans the arena with the default options. See [`plan_with`].
pub fn plan<L: LayerTable>(model: &ModelInfo<L>, context: u32, budget: usize) -> Result<Plan, PlanError> {
    plan_with(model, context, budget, PlanOptions::default())
}

/// Plans the arena: fixed regions first, then the weights. Under [`Policy::Pin`] the largest
/// units that fit are pinned beside `1 + prefetch` slots sized for the largest unit left
/// streaming; the other policies spend everything on slots of the largest unit's size.
pub fn plan_with<L: LayerTable>(
    model: &ModelInfo<L>,
    context: u32,
    budget: usize,
    opts: PlanOptions,
) -> Result<Plan, PlanError> {
    plan_within(model, context, budget, opts, usize::MAX as u64)
}

/// [`plan_with`] for an address space of `limit` bytes: no region may end above it. The tests
/// and the planner fuzz target plan for a 32-bit target (`u32::MAX`) on a 64-bit host, so the
/// arithmetic of a board's planner is checked where the fuzzer runs.
pub fn plan_within<L: LayerTable>(
    model: &ModelInfo<L>,
    context: u32,
    budget: usize,
    opts: PlanOptions,
    limit: u64,
) -> Result<Plan, PlanError> {
    let count = unit_count(model)?;
    let mut owned = OwnedUnits::new();
    // `unit_count` is at most MAX_UNITS.
    let _ = owned.resize(count, Unit::EMPTY);
    let (plan, _): (Plan<()>, &mut [Unit]) = plan_into(model, context, budget, opts, limit, &mut owned)?.with_units(());
    Ok(plan.with_units(owned).0)
}

/// [`PlanError::BadContext`] unless `1 <= context <= ` the model's context length.
pub(crate) fn checked_context<L: LayerTable>(model: &ModelInfo<L>, context: u32) -> Result<(), PlanError> {
    let max = model.config.context_length;
    if context == 0 || context > max {
        return Err(PlanError::BadContext { requested: context, max });
    }
    Ok(())
}

/// `opts` as the planner uses them for `context`: prefetch at most [`MAX_PREFETCH`], the
/// prefill chunk within `1..=context`.
pub(crate) fn clamped(opts: PlanOptions, context: u32) -> PlanOptions {
    PlanOptions {
        prefetch: opts.prefetch.min(MAX_PREFETCH),
        prefill_chunk: opts.prefill_chunk.clamp(1, context),
        io_align: opts.io_align.clamp(1, crate::storage::MAX_IO_ALIGN as u32).next_power_of_two(),
        ..opts
    }
}

/// [`plan_within`] into a unit table the caller provides (`unit_count` units, as an engine
/// lays it into its arena), which the planner fills.
pub fn plan_into<'u, L: LayerTable>(
    model: &ModelInfo<L>,
    context: u32,
    budget: usize,
    opts: PlanOptions,
    limit: u64,
    units: &'u mut [Unit],
) -> Result<Plan<&'u mut [Unit]>, PlanError> {
    checked_context(model, context)?;
    let opts = clamped(opts, context);
    let slack = crate::storage::io_slack(opts.io_align as usize) as u64;
    build_units(model, unit_cap(model), units)?;
    let units_len = units.len() as u64;
    let largest = units.iter().map(Unit::aligned_bytes).max().unwrap_or(0);
    let too_large = |what| PlanError::TooLarge { what };
    let embd_bytes = align_up(model.token_embd.bytes()).ok_or(too_large("embedding table"))?;
    let embd_row = u32::try_from(model.token_embd.row_bytes()).map_err(|_| too_large("embedding row"))?;
    let norms = norm_bytes(model).ok_or(too_large("norm weights"))?;
    // Units are at most 2048 of at most 4 GiB: their sum cannot overflow.
    let touched = units
        .iter()
        .map(|u| u.bytes as u64)
        .sum::<u64>()
        .checked_add(norms)
        .and_then(|t| t.checked_add(embd_row as u64));
    let touched = touched.ok_or(too_large("weights"))?;
    let min_slots = 1 + opts.prefetch as usize;
    let m = minimum_with(model, context, &opts, largest, units_len, limit)?;
    if budget < m.bytes {
        return Err(m.too_small(budget, context));
    }
    let Minimum { slots_min, layers, unit_table, start, smallest, .. } = m;
    let need = |end: u64| end.checked_add(ALIGN as u64).and_then(|n| n.checked_add(slots_min));
    // The prefill chunk is the first thing to give up: halve it until a slot set fits.
    let mut positions = opts.prefill_chunk as usize;
    let fixed = loop {
        if positions == 1 {
            break smallest;
        }
        match fixed_regions(model, context, positions, &opts, start, limit) {
            Ok(f) if need(f.end).is_some_and(|n| n <= budget as u64) => break f,
            _ => positions = positions.div_ceil(2),
        }
    };
    // `fixed.end + 2 * ALIGN <= minimum <= budget`: a usize (one ALIGN for the arena's
    // alignment, one for rounding the slot metadata).
    let cache_budget = budget - fixed.end as usize - 2 * ALIGN;
    let embd = (!model.tied_output).then_some(embd_bytes);
    let packed = pack(units, cache_budget, embd, opts.policy, min_slots, slack);

    let pinned_units: u64 = units.iter().filter(|u| u.pinned_at.is_some()).map(Unit::aligned_bytes).sum();
    let resident_bytes = pinned_units + if packed.embd_pinned_at.is_some() { embd_bytes } else { 0 };
    let mut at = Cursor::new(fixed.end, limit);
    let resident = at.region(Some(resident_bytes), "resident weights")?;
    let slots = at.region(Some(packed.slot_count as u64 * packed.slot_bytes as u64), "streaming slots")?;
    let slot_meta = at.region(Some(packed.slot_count as u64 * SLOT_META_BYTES as u64), "slot metadata")?;
    let pinned_bytes = units.iter().filter(|u| u.pinned_at.is_some()).map(|u| u.bytes as u64).sum::<u64>()
        + norms
        + if packed.embd_pinned_at.is_some() { model.token_embd.bytes() } else { 0 };
    let rings = || (0..model.config.n_layers).map(|l| kv_rows(model, context, positions, l)).filter(|&r| r < context);
    let (kv_ring_layers, kv_ring_rows) = (rings().count() as u32, rings().max().unwrap_or(0));
    Ok(Plan {
        kv_ring_layers,
        kv_ring_rows,
        budget,
        context,
        options: PlanOptions { prefill_chunk: positions as u32, ..opts },
        layers,
        unit_table,
        working: fixed.working,
        working_layout: fixed.working_layout,
        kv: fixed.kv,
        scratch: fixed.scratch,
        tokenizer: fixed.tokenizer,
        norms: fixed.norms,
        resident,
        slots,
        slot_meta,
        slot_count: packed.slot_count,
        slot_bytes: packed.slot_bytes,
        io_slack: if packed.slot_count > 0 { slack as u32 } else { 0 },
        units,
        embd_pinned_at: packed.embd_pinned_at,
        embd_row_bytes: embd_row,
        touched_bytes_per_token: touched,
        pinned_bytes,
    })
}
