//! Which units are pinned in the resident region and how many slots stream the rest: the
//! packing of the units into what the fixed regions leave of the budget. Offsets are `usize`
//! (they index the resident region, which fits the address space), sums are `u64`.

use crate::plan::options::Policy;
use crate::plan::units::Unit;

/// Most streaming slots: a sanity limit (each slot's metadata lives in the arena, but the
/// cache scans its slots on every miss).
pub const MAX_SLOTS: usize = 512;

/// Bytes of arena each slot's metadata takes (the cache's per-slot record must fit in it).
pub const SLOT_META_BYTES: usize = 32;

/// The outcome of the packing (the units' `pinned_at` are set in place).
pub(crate) struct Packed {
    pub(crate) slot_count: u32,
    pub(crate) slot_bytes: u32,
    /// Offset of the separate embedding table in the resident region, when pinned.
    pub(crate) embd_pinned_at: Option<usize>,
}

/// Pins units into `cache_budget` bytes. `embd_bytes` is the aligned size of the embedding
/// table when it is separate from the classifier; `min_slots` slots of the largest streamed
/// unit (each with [`SLOT_META_BYTES`] of metadata) must fit beside what is pinned. Under [`Policy::Pin`] the largest units that fit are
/// pinned (first-fit decreasing); the other policies spend everything on slots of the largest
/// unit's size. When everything fits, everything is pinned whatever the policy.
pub(crate) fn pack(
    units: &mut [Unit],
    cache_budget: usize,
    embd_bytes: Option<u64>,
    policy: Policy,
    min_slots: usize,
    slack: u64,
) -> Packed {
    let budget = cache_budget as u64;
    let largest = units.iter().map(Unit::aligned_bytes).max().unwrap_or(0);
    let all_units: u64 = units.iter().map(Unit::aligned_bytes).sum();
    if all_units + embd_bytes.unwrap_or(0) <= budget {
        // Everything fits: pin it all, stream nothing. Offsets stay below `cache_budget`.
        let mut off = 0u64;
        for u in units.iter_mut() {
            u.pinned_at = Some(off as usize);
            off += u.aligned_bytes();
        }
        let embd_pinned_at = embd_bytes.map(|_| off as usize);
        return Packed { slot_count: 0, slot_bytes: 0, embd_pinned_at };
    }
    // Each slot costs its metadata and the slack of aligned reads beside its unit's bytes.
    let meta = SLOT_META_BYTES as u64 + slack;
    if policy != Policy::Pin {
        let slot_count = (budget / (largest + meta)).min(MAX_SLOTS as u64) as u32;
        return Packed {
            slot_count,
            slot_bytes: u32::try_from(largest + slack).unwrap_or(u32::MAX),
            embd_pinned_at: None,
        };
    }
    // First-fit decreasing (largest first, ties in unit order) into what the slots leave. A
    // unit left streaming is never larger than the current slot, so shrinking the slot to it
    // frees room to pin more; repeat until the slot stops shrinking. The units taken are marked
    // in `pinned_at` (offsets come after); no table beside the units is needed.
    let mut slot = largest;
    loop {
        let max_streamed = fill(units, budget.saturating_sub((slot + meta) * min_slots as u64));
        if max_streamed == 0 || max_streamed >= slot {
            break;
        }
        slot = max_streamed;
    }
    let mut off = 0u64;
    for u in units.iter_mut() {
        if u.pinned_at.is_some() {
            u.pinned_at = Some(off as usize);
            off += u.aligned_bytes();
        }
    }
    let streams = units.iter().any(|u| u.pinned_at.is_none());
    Packed {
        slot_count: if streams { min_slots as u32 } else { 0 },
        slot_bytes: if streams { u32::try_from(slot + slack).unwrap_or(u32::MAX) } else { 0 },
        embd_pinned_at: None,
    }
}

/// Marks (`pinned_at = Some(0)`) the units first-fit decreasing takes into `avail` bytes and
/// returns the largest aligned size left streaming (0: none). Sizes are visited largest first.
/// Of a size of which only some fit, the ones pinned are spread evenly over the schedule (the
/// i-th of n is pinned when `(i + 1) * fit / n` steps up), so the streamed units are spread too
/// and their reads overlap the compute of the pinned ones between them, instead of queueing
/// at the end of the pass.
fn fill(units: &mut [Unit], avail: u64) -> u64 {
    let (mut used, mut max_streamed) = (0u64, 0u64);
    let mut below = u64::MAX;
    units.iter_mut().for_each(|u| u.pinned_at = None);
    while let Some(size) = units.iter().map(|u| u.bytes as u64).filter(|&b| b < below).max() {
        let n = units.iter().filter(|u| u.bytes as u64 == size).count() as u64;
        let b = units.iter().find(|u| u.bytes as u64 == size).map_or(0, Unit::aligned_bytes);
        let fit = (avail - used).checked_div(b).unwrap_or(n).min(n);
        for (i, u) in units.iter_mut().filter(|u| u.bytes as u64 == size).enumerate() {
            let i = i as u64;
            if (i + 1) * fit / n > i * fit / n {
                used += b;
                u.pinned_at = Some(0);
            } else {
                max_streamed = max_streamed.max(b);
            }
        }
        below = size;
    }
    max_streamed
}
