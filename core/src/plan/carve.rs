//! The arena: the caller's `&mut [u8]` cut into the plan's regions, after aligning its start.
//! The only place that turns the plan's offsets into borrowed slices.

use crate::error::PlanError;
use crate::plan::layout::{Region, ALIGN};
use crate::plan::Plan;

/// The caller's arena cut into the plan's regions.
pub(crate) struct Regions<'a> {
    /// Working buffers.
    pub(crate) working: &'a mut [u8],
    /// KV cache.
    pub(crate) kv: &'a mut [u8],
    /// Streaming scratch.
    pub(crate) scratch: &'a mut [u8],
    /// Tokenizer index.
    pub(crate) tokenizer: &'a mut [u8],
    /// Norm weights.
    pub(crate) norms: &'a mut [u8],
    /// Pinned weights.
    pub(crate) resident: &'a mut [u8],
    /// Streaming slots.
    pub(crate) slots: &'a mut [u8],
}

/// Cuts `arena` into the plan's regions, aligning the start to [`ALIGN`].
pub(crate) fn carve<'a>(plan: &Plan, arena: &'a mut [u8]) -> Result<Regions<'a>, PlanError> {
    let too_small = PlanError::BudgetTooSmall {
        budget: arena.len(),
        minimum: plan.used_bytes(),
        context: plan.context,
        kv_bytes: plan.kv.bytes,
        slot_bytes: plan.slot_bytes as usize,
    };
    let pad = arena.as_ptr().align_offset(ALIGN);
    if pad >= ALIGN || arena.len() < plan.used_bytes() {
        return Err(too_small);
    }
    let (_, rest) = arena.split_at_mut(pad);
    let mut rest = rest;
    let mut at = 0usize;
    let mut take = |r: Region| {
        let (_, tail) = core::mem::take(&mut rest).split_at_mut(r.offset - at);
        let (mine, tail) = tail.split_at_mut(r.bytes);
        at = r.offset + r.bytes;
        rest = tail;
        mine
    };
    Ok(Regions {
        working: take(plan.working),
        kv: take(plan.kv),
        scratch: take(plan.scratch),
        tokenizer: take(plan.tokenizer),
        norms: take(plan.norms),
        resident: take(plan.resident),
        slots: take(plan.slots),
    })
}
