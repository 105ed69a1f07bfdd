//! The arena: the caller's `&mut [u8]` cut into the plan's regions, after aligning its start,
//! and the typed tables (layer table, unit table, slot metadata) laid into their regions.
//! The only place that turns the plan's offsets into borrowed slices.

use core::mem::{align_of, size_of, MaybeUninit};

use crate::error::PlanError;
use crate::plan::layout::{Region, ALIGN};
use crate::plan::Plan;
use crate::plan::Unit;

/// The caller's arena cut into the plan's regions (the layer and unit tables are taken before
/// the plan exists: see [`table`]).
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
    /// Slot metadata (the cache lays its table here).
    pub(crate) slot_meta: &'a mut [u8],
}

/// `n` values made by `init` laid into the head of `bytes` (an aligned start, a whole number of
/// [`ALIGN`] blocks unless the bytes end first), and the bytes after them; `None` when they do
/// not fit. The values are
/// never dropped (the arena outlives them; none of the tables' types needs a drop).
pub(crate) fn table<T>(bytes: &mut [u8], n: usize, mut init: impl FnMut(usize) -> T) -> Option<(&mut [T], &mut [u8])> {
    const { assert!(align_of::<T>() <= ALIGN) };
    let used = n.checked_mul(size_of::<T>())?;
    if bytes.as_ptr().align_offset(ALIGN) != 0 || bytes.len() < used {
        return None;
    }
    // The rest starts aligned, or is empty (a region's last table need not be padded).
    let len = used.checked_next_multiple_of(ALIGN)?.min(bytes.len());
    let (head, rest) = bytes.split_at_mut(len);
    let ptr = head.as_mut_ptr().cast::<MaybeUninit<T>>();
    // SAFETY: `head` is exclusively borrowed for the returned lifetime, starts aligned to ALIGN >= align_of::<T>()
    // and holds at least `n * size_of::<T>()` bytes, so it is room for `n` `MaybeUninit<T>`,
    // which any bytes are a valid value of.
    let slots = unsafe { core::slice::from_raw_parts_mut(ptr, n) };
    for (i, s) in slots.iter_mut().enumerate() {
        s.write(init(i));
    }
    // SAFETY: every element was initialised by the loop above; `MaybeUninit<T>` has the layout
    // of `T`.
    let table = unsafe { core::slice::from_raw_parts_mut(slots.as_mut_ptr().cast::<T>(), n) };
    Some((table, rest))
}

/// Bytes the table of `n` values of `T` takes in the arena.
pub(crate) fn table_bytes<T>(n: u64) -> Option<u64> {
    n.checked_mul(size_of::<T>() as u64)
}

/// The unit table of `plan` laid into the head of `bytes` (the plan's `units` region), and
/// the bytes after it.
pub(crate) fn unit_table(count: usize, bytes: &mut [u8]) -> Option<(&mut [Unit], &mut [u8])> {
    table(bytes, count, |_| Unit::EMPTY)
}

/// Cuts `arena` into the plan's regions. `arena` starts at the plan's offset `start` (the end
/// of the tables taken before the plan was made) and is aligned to [`ALIGN`].
pub(crate) fn carve<'a, U: core::ops::Deref<Target = [Unit]>>(
    plan: &Plan<U>,
    arena: &'a mut [u8],
    start: usize,
) -> Result<Regions<'a>, PlanError> {
    let end = plan.end();
    let too_small = PlanError::BudgetTooSmall {
        budget: plan.budget,
        minimum: plan.used_bytes(),
        context: plan.context,
        kv_bytes: plan.kv.bytes,
        slot_bytes: plan.slot_bytes as usize,
    };
    if arena.as_ptr().align_offset(ALIGN) != 0 || start > plan.working.offset || arena.len() < end - start {
        return Err(too_small);
    }
    let mut rest = arena;
    let mut at = start;
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
        slot_meta: take(plan.slot_meta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    struct Aligned([u8; 512]);

    #[test]
    fn a_table_is_laid_into_aligned_bytes_and_the_rest_follows() {
        let mut a = Aligned([0xAA; 512]);
        let (t, rest) = table(&mut a.0, 5, |i| (i as u64 * 3, Some(i as u16))).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t[4], (12, Some(4)));
        t[0].0 = 7;
        let used = (5 * size_of::<(u64, Option<u16>)>()).next_multiple_of(ALIGN);
        assert_eq!(rest.len(), 512 - used, "the table rounded up to whole 64-byte blocks");
        rest[0] = 1;
        let (u, rest2) = unit_table(3, rest).unwrap();
        assert!(u.iter().all(|u| *u == Unit::EMPTY));
        assert!(rest2.len() <= 512 - used - 64);
    }

    #[test]
    fn a_table_that_does_not_fit_or_is_misaligned_is_refused() {
        let mut a = Aligned([0; 512]);
        assert!(table(&mut a.0, 65, |i| i as u64).is_none());
        let (t, rest) = table(&mut a.0[..40], 5, |i| i as u64).unwrap();
        assert!(t.len() == 5 && rest.is_empty(), "a table that ends the bytes needs no padding");
        assert!(table(&mut a.0[1..], 1, |i| i as u8).is_none());
        assert!(table(&mut a.0, usize::MAX, |i| i as u64).is_none());
        let (empty, rest) = table(&mut a.0, 0, |i| i as u64).unwrap();
        assert!(empty.is_empty() && rest.len() == 512);
    }
}
