//! A binary heap of symbol slots in caller-lent memory, for the merge loops.
//!
//! Owns only the heap (slots and each slot's position, so a slot can be removed from the
//! middle); what a slot means and how two compare is the caller's `before(a, b)`. It must not
//! know of pieces, scores or ranks.

/// No slot (end of a list, empty heap position).
pub(crate) const NONE: u32 = u32::MAX;

/// A binary heap of slots ordered by `before(a, b)` (the best on top).
pub(crate) struct Heap<'s> {
    slots: &'s mut [u32],
    /// `pos[slot]`: where `slot` is in `slots`, or [`NONE`].
    pos: &'s mut [u32],
    len: usize,
}

impl<'s> Heap<'s> {
    /// An empty heap over `slots` and `pos` (both at least as long as the slot count); every
    /// `pos` entry of a slot that may be pushed must be [`NONE`] (see [`Heap::clear_pos`]).
    pub(crate) fn new(slots: &'s mut [u32], pos: &'s mut [u32]) -> Self {
        Heap { slots, pos, len: 0 }
    }

    /// Marks slot `slot` as absent.
    pub(crate) fn clear_pos(&mut self, slot: usize) {
        self.pos[slot] = NONE;
    }

    pub(crate) fn top(&self) -> Option<u32> {
        (self.len > 0).then(|| self.slots[0])
    }

    fn set(&mut self, at: usize, slot: u32) {
        self.slots[at] = slot;
        self.pos[slot as usize] = at as u32;
    }

    pub(crate) fn push(&mut self, slot: u32, before: impl Fn(u32, u32) -> bool) {
        let at = self.len;
        self.len += 1;
        self.set(at, slot);
        self.up(at, &before);
    }

    /// Removes `slot` if it is in the heap.
    pub(crate) fn remove(&mut self, slot: u32, before: impl Fn(u32, u32) -> bool) {
        let at = self.pos[slot as usize];
        if at == NONE {
            return;
        }
        let at = at as usize;
        self.pos[slot as usize] = NONE;
        self.len -= 1;
        if at == self.len {
            return;
        }
        let last = self.slots[self.len];
        self.set(at, last);
        let at = self.up(at, &before);
        self.down(at, &before);
    }

    fn up(&mut self, mut at: usize, before: &impl Fn(u32, u32) -> bool) -> usize {
        let slot = self.slots[at];
        while at > 0 {
            let parent = (at - 1) / 2;
            if !before(slot, self.slots[parent]) {
                break;
            }
            let p = self.slots[parent];
            self.set(at, p);
            at = parent;
        }
        self.set(at, slot);
        at
    }

    fn down(&mut self, mut at: usize, before: &impl Fn(u32, u32) -> bool) {
        let slot = self.slots[at];
        loop {
            let l = 2 * at + 1;
            if l >= self.len {
                break;
            }
            let r = l + 1;
            let child = if r < self.len && before(self.slots[r], self.slots[l]) { r } else { l };
            if !before(self.slots[child], slot) {
                break;
            }
            let c = self.slots[child];
            self.set(at, c);
            at = child;
        }
        self.set(at, slot);
    }
}
