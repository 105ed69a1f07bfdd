//! Which units are pinned in the resident region and how many slots stream the rest: the
//! packing of the units into what the fixed regions leave of the budget. Offsets are `usize`
//! (they index the resident region, which fits the address space), sums are `u64`.

use crate::plan::options::Policy;
use crate::plan::units::{Unit, MAX_UNITS};

/// Most streaming slots.
pub const MAX_SLOTS: usize = 512;

/// The outcome of the packing (the units' `pinned_at` are set in place).
pub(crate) struct Packed {
    pub(crate) slot_count: u32,
    pub(crate) slot_bytes: u32,
    /// Offset of the separate embedding table in the resident region, when pinned.
    pub(crate) embd_pinned_at: Option<usize>,
}

/// Pins units into `cache_budget` bytes. `embd_bytes` is the aligned size of the embedding
/// table when it is separate from the classifier; `min_slots` slots of the largest streamed
/// unit must fit beside what is pinned. Under [`Policy::Pin`] the largest units that fit are
/// pinned (first-fit decreasing); the other policies spend everything on slots of the largest
/// unit's size. When everything fits, everything is pinned whatever the policy.
pub(crate) fn pack(
    units: &mut [Unit],
    cache_budget: usize,
    embd_bytes: Option<u64>,
    policy: Policy,
    min_slots: usize,
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
    if policy != Policy::Pin {
        let slot_count = (budget / largest.max(1)).min(MAX_SLOTS as u64) as u32;
        return Packed { slot_count, slot_bytes: largest as u32, embd_pinned_at: None };
    }
    // Sort unit indices by size, largest first (first-fit decreasing).
    let mut order: heapless::Vec<u16, MAX_UNITS> = (0..units.len() as u16).collect();
    order.sort_unstable_by(|&a, &b| units[b as usize].bytes.cmp(&units[a as usize].bytes).then(a.cmp(&b)));
    // First-fit decreasing into what the slots leave. A unit left streaming is never larger
    // than the current slot, so shrinking the slot to it frees room to pin more; repeat until
    // the slot stops shrinking.
    let fill = |avail: u64| {
        let mut mask = [0u64; MAX_UNITS / 64];
        let (mut used, mut max_streamed) = (0u64, 0u64);
        for &i in order.iter() {
            let b = units[i as usize].aligned_bytes();
            if used + b <= avail {
                used += b;
                mask[i as usize / 64] |= 1 << (i % 64);
            } else {
                max_streamed = max_streamed.max(b);
            }
        }
        (mask, max_streamed)
    };
    let mut slot = largest;
    let pinned_mask = loop {
        let (mask, max_streamed) = fill(budget.saturating_sub(slot * min_slots as u64));
        if max_streamed == 0 || max_streamed >= slot {
            break mask;
        }
        slot = max_streamed;
    };
    let mut off = 0u64;
    for (i, u) in units.iter_mut().enumerate() {
        if pinned_mask[i / 64] & (1 << (i % 64)) != 0 {
            u.pinned_at = Some(off as usize);
            off += u.aligned_bytes();
        }
    }
    let streams = units.iter().any(|u| u.pinned_at.is_none());
    Packed {
        slot_count: if streams { min_slots as u32 } else { 0 },
        slot_bytes: if streams { slot as u32 } else { 0 },
        embd_pinned_at: None,
    }
}
