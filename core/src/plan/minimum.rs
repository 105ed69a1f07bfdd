//! The smallest budget that plans a model: the tables, the fixed regions at a one-position
//! prefill chunk, and `1 + prefetch` slots of the largest unit. Owns that sum (the planner
//! refuses a budget below it, and an engine whose arena cannot even hold the unit table reports
//! it); it must not lay out or pack anything beyond it (`layout.rs`, `pack.rs`).

use crate::error::PlanError;
use crate::model::{Layer, LayerTable, ModelInfo};
use crate::plan::layout::{fixed_regions, to_usize, Cursor, Fixed};
use crate::plan::units::{largest_unit, unit_cap, unit_count};
use crate::plan::{carve, PlanOptions, Region, Unit, ALIGN, SLOT_META_BYTES};

/// The minimum and the parts of it the planner goes on with.
pub(crate) struct Minimum {
    /// The smallest budget, in bytes.
    pub(crate) bytes: usize,
    /// `1 + prefetch` slots and their metadata (plus the metadata's rounding).
    pub(crate) slots_min: u64,
    /// The layer table and the unit table, first in the arena.
    pub(crate) layers: Region,
    pub(crate) unit_table: Region,
    /// Where the tables end (and the fixed regions start).
    pub(crate) start: u64,
    /// The fixed regions with a one-position prefill chunk.
    pub(crate) smallest: Fixed,
    /// The aligned bytes of the largest unit (one slot).
    pub(crate) largest: u64,
}

impl Minimum {
    /// The planner's error for `budget` below this minimum.
    pub(crate) fn too_small(&self, budget: usize, context: u32) -> PlanError {
        PlanError::BudgetTooSmall {
            budget,
            minimum: self.bytes,
            context,
            kv_bytes: self.smallest.kv.bytes,
            slot_bytes: self.largest as usize,
        }
    }
}

/// The minimum for `model` at `context` with `opts` (already clamped by the planner), whose
/// largest unit takes `largest` aligned bytes and which has `units` units, in an address space
/// of `limit` bytes.
pub(crate) fn minimum_with<L: LayerTable>(
    model: &ModelInfo<L>,
    context: u32,
    opts: &PlanOptions,
    largest: u64,
    units: u64,
    limit: u64,
) -> Result<Minimum, PlanError> {
    let too_large = |what| PlanError::TooLarge { what };
    let min_slots = 1 + opts.prefetch as u64;
    // Each slot costs its bytes, the slack for aligned (direct I/O) reads into it, and its
    // metadata; the metadata region is rounded up to ALIGN.
    let slack = crate::storage::io_slack(opts.io_align as usize) as u64;
    let slots_min = (largest + slack + SLOT_META_BYTES as u64) * min_slots + ALIGN as u64;
    // The tables first: the layer table is filled before the plan exists.
    let mut at = Cursor::new(0, limit);
    let layers = at.region(carve::table_bytes::<Layer>(model.layers.len() as u64), "layer table")?;
    let unit_table = at.region(carve::table_bytes::<Unit>(units), "unit table")?;
    let start = at.end();
    let smallest = fixed_regions(model, context, 1, opts, start, limit)?;
    let end = smallest.end.checked_add(ALIGN as u64).and_then(|n| n.checked_add(slots_min));
    let bytes = to_usize(end.ok_or(too_large("minimum budget"))?, limit, "minimum budget")?;
    Ok(Minimum { bytes, slots_min, layers, unit_table, start, smallest, largest })
}

/// The smallest budget [`crate::plan::plan_with`] accepts for `model` at `context` with
/// `opts`, as the error it gives below it ([`PlanError::BudgetTooSmall`], with the minimum,
/// the KV cache and one slot in bytes). Needs no unit table: the largest unit and the count
/// come from the shapes. An engine whose arena cannot hold the unit table reports this.
pub fn minimum_budget<L: LayerTable>(
    model: &ModelInfo<L>,
    context: u32,
    opts: PlanOptions,
) -> Result<usize, PlanError> {
    crate::plan::checked_context(model, context)?;
    let opts = crate::plan::clamped(opts, context);
    let units = unit_count(model)? as u64;
    let largest = largest_unit(model, unit_cap(model));
    Ok(minimum_with(model, context, &opts, largest, units, usize::MAX as u64)?.bytes)
}

/// [`minimum_budget`] as the planner's error for `budget` (for a caller that cannot plan at
/// all, such as an arena too small for the unit table).
pub fn budget_error<L: LayerTable>(model: &ModelInfo<L>, context: u32, budget: usize, opts: PlanOptions) -> PlanError {
    let minimum = || {
        crate::plan::checked_context(model, context)?;
        let opts = crate::plan::clamped(opts, context);
        let largest = largest_unit(model, unit_cap(model));
        minimum_with(model, context, &opts, largest, unit_count(model)? as u64, usize::MAX as u64)
    };
    match minimum() {
        Ok(m) => m.too_small(budget, context),
        Err(e) => e,
    }
}
