//! The weight cache: which unit's bytes are in RAM, and which slot a streamed unit goes to.
//!
//! Owns the resident region (units pinned by the plan, loaded once) and the streaming slots,
//! with their fixed-capacity metadata and the counters (hits, misses, evictions, bytes read).
//! It hands out `&[u8]` views of units and never interprets them. The plan decides what is
//! pinned; on a miss the cache reuses the least recently used slot. Slot metadata is only set
//! once a read has succeeded, so a failed read leaves no slot claiming bytes it does not hold.

use crate::arena::{Plan, Unit};
use crate::error::Result;
use crate::storage::{read_exact_at, Storage};

/// Most streaming slots.
pub const MAX_SLOTS: usize = 64;

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CacheStats {
    /// Units found in RAM when the forward pass asked for them.
    pub hits: u64,
    /// Units read from storage when asked for.
    pub misses: u64,
    /// Units dropped from a slot to make room.
    pub evictions: u64,
    /// Weight bytes read from storage (units and embedding rows).
    pub bytes_read: u64,
}

impl CacheStats {
    /// The counters accumulated since `earlier`.
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits - earlier.hits,
            misses: self.misses - earlier.misses,
            evictions: self.evictions - earlier.evictions,
            bytes_read: self.bytes_read - earlier.bytes_read,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct SlotState {
    unit: Option<u16>,
    last_used: u64,
}

/// Resident units and streaming slots over arena regions.
pub struct Cache<'a> {
    resident: &'a mut [u8],
    slot_mem: &'a mut [u8],
    slot_bytes: usize,
    slots: heapless::Vec<SlotState, MAX_SLOTS>,
    tick: u64,
    stats: CacheStats,
}

impl<'a> Cache<'a> {
    /// A cache over the plan's resident region and slots; nothing is loaded yet.
    pub fn new(plan: &Plan, resident: &'a mut [u8], slot_mem: &'a mut [u8]) -> Self {
        let mut slots = heapless::Vec::new();
        for _ in 0..(plan.slot_count as usize).min(MAX_SLOTS) {
            let _ = slots.push(SlotState::default());
        }
        Cache {
            resident,
            slot_mem,
            slot_bytes: plan.slot_bytes as usize,
            slots,
            tick: 0,
            stats: CacheStats::default(),
        }
    }

    /// Reads every pinned unit (and the pinned embedding table) into the resident region.
    /// Returns the bytes read; they are not counted in the per-token statistics.
    pub fn load_pinned<S: Storage>(
        &mut self,
        plan: &Plan,
        embd: (u64, u64),
        storage: &mut S,
    ) -> Result<u64> {
        let mut bytes = 0u64;
        for u in plan.units.iter() {
            if let Some(at) = u.pinned_at {
                let dst = &mut self.resident[at as usize..at as usize + u.bytes as usize];
                read_exact_at(storage, u.offset, dst)?;
                bytes += u.bytes as u64;
            }
        }
        if let Some(at) = plan.embd_pinned_at {
            let (offset, len) = embd;
            read_exact_at(
                storage,
                offset,
                &mut self.resident[at as usize..(at as u64 + len) as usize],
            )?;
            bytes += len;
        }
        Ok(bytes)
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The bytes of unit `index`, reading it into a slot on a miss.
    pub fn fetch<S: Storage>(
        &mut self,
        units: &[Unit],
        index: usize,
        storage: &mut S,
    ) -> Result<&[u8]> {
        let u = &units[index];
        self.tick += 1;
        if let Some(at) = u.pinned_at {
            self.stats.hits += 1;
            return Ok(&self.resident[at as usize..at as usize + u.bytes as usize]);
        }
        let slot = match self.slots.iter().position(|s| s.unit == Some(index as u16)) {
            Some(s) => {
                self.stats.hits += 1;
                s
            }
            None => {
                // Victim: an empty slot, else the least recently used one.
                let s = (0..self.slots.len())
                    .min_by_key(|&i| {
                        self.slots[i]
                            .unit
                            .map_or(0, |_| self.slots[i].last_used + 1)
                    })
                    .unwrap_or(0);
                if self.slots.get(s).is_some_and(|st| st.unit.is_some()) {
                    self.stats.evictions += 1;
                }
                let dst =
                    &mut self.slot_mem[s * self.slot_bytes..s * self.slot_bytes + u.bytes as usize];
                if let Some(st) = self.slots.get_mut(s) {
                    st.unit = None;
                }
                read_exact_at(storage, u.offset, dst)?;
                self.stats.misses += 1;
                self.stats.bytes_read += u.bytes as u64;
                if let Some(st) = self.slots.get_mut(s) {
                    st.unit = Some(index as u16);
                }
                s
            }
        };
        if let Some(st) = self.slots.get_mut(slot) {
            st.last_used = self.tick;
        }
        Ok(&self.slot_mem[slot * self.slot_bytes..slot * self.slot_bytes + u.bytes as usize])
    }

    /// The pinned bytes at `at..at + len` of the resident region.
    pub fn resident(&self, at: usize, len: usize) -> &[u8] {
        &self.resident[at..at + len]
    }

    /// Reads `buf.len()` bytes at `offset` outside the slots (an embedding row), counting them.
    pub fn read_row<S: Storage>(
        &mut self,
        offset: u64,
        buf: &mut [u8],
        storage: &mut S,
    ) -> Result<()> {
        read_exact_at(storage, offset, buf)?;
        self.stats.bytes_read += buf.len() as u64;
        Ok(())
    }
}
