//! The automatic prefetch depth: how many units a run reads ahead when the caller does not say.
//! Owns that choice only (a few trial plans, pure arithmetic); the planner itself takes the
//! depth as given, and the loaders that run the reads live outside the core.
//!
//! The depth is chosen in bytes, not units: enough units to keep [`PREFETCH_AHEAD_BYTES`]
//! in flight ahead of the compute, and never fewer than [`MIN_AUTO_PREFETCH`] (so a loader
//! with several reader threads keeps that many reads queued at the device), at most
//! [`MAX_PREFETCH`]. The extra slots are paid from the budget, so they may take at most
//! [`PREFETCH_SHARE`] of it, and the depth falls until the plan fits. A run that streams
//! nothing gets 0. The depth never changes a token: only when bytes arrive.

use super::{plan_with, Plan, PlanOptions, MAX_PREFETCH};
use crate::model::{LayerTable, ModelInfo};

/// Bytes the automatic depth keeps in flight ahead of use (about 8 ms of a 1 GB/s device):
/// what the slower layers' compute must hide.
pub const PREFETCH_AHEAD_BYTES: u64 = 8 << 20;

/// The fewest units the automatic depth reads ahead when anything streams: as many as the
/// desktop loader's reader threads, so that the device's queue holds that many reads.
pub const MIN_AUTO_PREFETCH: u32 = 4;

/// The largest share of the budget the read-ahead slots may take (1/8).
pub const PREFETCH_SHARE: usize = 8;

/// The prefetch depth for `model` at `context` within `budget`, with the rest of `opts` as
/// given (`opts.prefetch` is ignored). 0 when everything is resident, or when the budget
/// cannot be planned at all (the run then reports that planner error itself).
pub fn auto_prefetch<L: LayerTable>(model: &ModelInfo<L>, context: u32, budget: usize, opts: PlanOptions) -> u32 {
    let plan_at = |prefetch| plan_with(model, context, budget, PlanOptions { prefetch, ..opts });
    let Ok(base) = plan_at(0) else { return 0 };
    let Some(wanted) = wanted_depth(&base) else { return 0 };
    let share_cap = (budget / PREFETCH_SHARE / (base.slot_bytes as usize).max(1)) as u32;
    let mut depth = wanted.min(share_cap);
    while depth > 0 && plan_at(depth).is_err() {
        depth -= 1;
    }
    depth
}

/// The depth the bytes ask for, before the budget's share: `None` when nothing streams.
fn wanted_depth(base: &Plan) -> Option<u32> {
    if base.slot_bytes == 0 || base.units.iter().all(|u| u.pinned_at.is_some()) {
        return None;
    }
    let units = PREFETCH_AHEAD_BYTES.div_ceil(u64::from(base.slot_bytes));
    Some((units.min(u64::from(MAX_PREFETCH)) as u32).max(MIN_AUTO_PREFETCH.min(MAX_PREFETCH)))
}
