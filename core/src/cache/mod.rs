//! The weight cache: which unit's bytes are in RAM, which slot a streamed unit goes to, and
//! which units are read ahead.
//!
//! Owns the resident region (units pinned by the plan, loaded once), the streaming slots with
//! their metadata (a table in the arena's slot-metadata region), the eviction that the plan's [`Policy`] asks for, and the
//! counters. It hands out `&[u8]` views of units and never interprets them.
//!
//! Reads go through a [`Loader`] (see `loader`): a slot's buffer is lent to the loader when a
//! read starts and comes back when the core waits for it, so a loader may fill slots on another
//! thread or by DMA while the core computes, without any shared mutable memory. Slot metadata names a unit
//! only once its read has succeeded (or is in flight), so a failed read leaves no slot claiming
//! bytes it does not hold.
//!
//! Counting rules: a *hit* is a unit found in RAM when the forward pass asks for it; a *miss*
//! is a unit read from storage for that request, including one read ahead by prefetch (it was
//! still read from storage: prefetch hides latency, it does not save bytes).

mod loader;

use crate::error::{Error, Result};
use core::ops::Deref;

use crate::plan::{Plan, Policy, Unit, SLOT_META_BYTES};
use crate::storage::{io_slack, read_exact_at, read_span_exact, Storage};
pub use loader::{Completion, Loader, SyncLoader};

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CacheStats {
    /// Units found in RAM when the forward pass asked for them.
    pub hits: u64,
    /// Units read from storage for a request (prefetched ones included).
    pub misses: u64,
    /// Units dropped from a slot to make room.
    pub evictions: u64,
    /// Weight bytes read from storage (units, embedding rows, prefetches wasted or not).
    pub bytes_read: u64,
    /// Storage reads issued.
    pub reads: u64,
    /// Units read ahead of their use.
    pub prefetched: u64,
}

impl CacheStats {
    /// Hits as a percentage of the units asked for (0 when none was).
    pub fn hit_rate_percent(&self) -> f64 {
        100.0 * self.hits as f64 / (self.hits + self.misses).max(1) as f64
    }

    /// The counters accumulated since `earlier`.
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits - earlier.hits,
            misses: self.misses - earlier.misses,
            evictions: self.evictions - earlier.evictions,
            bytes_read: self.bytes_read - earlier.bytes_read,
            reads: self.reads - earlier.reads,
            prefetched: self.prefetched - earlier.prefetched,
        }
    }
}

/// One slot's record, laid into the plan's slot-metadata region.
#[derive(Default)]
struct Slot<'a> {
    /// The slot's memory; `None` while lent to the loader (or lost by it).
    mem: Option<&'a mut [u8]>,
    /// The unit it holds or is loading.
    unit: Option<u16>,
    /// Where the unit's bytes start in `mem` (a direct-I/O read lands at an aligned place).
    at: u16,
    /// A read is in flight.
    loading: bool,
    /// Read ahead and not used yet (protected under `lru-protect`).
    ahead: bool,
    last_used: u64,
}

const _: () = assert!(core::mem::size_of::<Slot<'static>>() <= SLOT_META_BYTES, "raise plan::SLOT_META_BYTES");

/// Resident units and streaming slots over arena regions.
pub struct Cache<'a> {
    resident: &'a mut [u8],
    slots: &'a mut [Slot<'a>],
    policy: Policy,
    prefetch: u32,
    tick: u64,
    stats: CacheStats,
}

impl<'a> Cache<'a> {
    /// A cache over the plan's resident region and slots, its slot records laid into
    /// `slot_meta` (the plan's slot-metadata region); nothing is loaded yet.
    pub fn new<U: Deref<Target = [Unit]>>(
        plan: &Plan<U>,
        resident: &'a mut [u8],
        slot_mem: &'a mut [u8],
        slot_meta: &'a mut [u8],
    ) -> Result<Self> {
        let bytes = plan.slot_bytes as usize;
        let count = slot_mem.len().checked_div(bytes).map_or(0, |n| n.min(plan.slot_count as usize));
        let mut chunks = slot_mem.chunks_exact_mut(bytes.max(1));
        let got = slot_meta.len();
        let (slots, _) = crate::plan::table(slot_meta, count, |_| Slot { mem: chunks.next(), ..Slot::default() })
            .ok_or(Error::BufferTooSmall { what: "slot metadata bytes", needed: count * SLOT_META_BYTES, got })?;
        Ok(Cache {
            resident,
            slots,
            policy: plan.options.policy,
            prefetch: plan.options.prefetch,
            tick: 0,
            stats: CacheStats::default(),
        })
    }

    /// Reads every pinned unit (and the pinned embedding table) into the resident region.
    /// Returns the bytes read; they are not counted in the per-token statistics.
    pub fn load_pinned<S: Storage, U: Deref<Target = [Unit]>>(
        &mut self,
        plan: &Plan<U>,
        embd: (u64, u64),
        storage: &mut S,
    ) -> Result<u64> {
        let mut bytes = 0u64;
        // A storage that reads aligned spans (direct I/O) reads through the first slot, which
        // the plan gave room for them; the resident region's units are not aligned for it.
        let mut bounce = match storage.io_align() {
            1 => None,
            a => self.slots.first_mut().and_then(|s| s.mem.as_deref_mut()).filter(|m| m.len() > io_slack(a)),
        };
        for u in plan.units.iter() {
            if let Some(at) = u.pinned_at {
                let dst = &mut self.resident[at..at + u.bytes as usize];
                read_pinned(storage, u.offset, dst, bounce.as_deref_mut())?;
                bytes += u.bytes as u64;
            }
        }
        if let Some(at) = plan.embd_pinned_at {
            let (offset, len) = embd;
            let len_usize = usize::try_from(len).map_err(|_| Error::Malformed("embedding table larger than memory"))?;
            read_pinned(storage, offset, &mut self.resident[at..at + len_usize], bounce)?;
            bytes += len;
        }
        Ok(bytes)
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The pinned bytes at `at..at + len` of the resident region.
    pub fn resident(&self, at: usize, len: usize) -> &[u8] {
        &self.resident[at..at + len]
    }

    /// Reads an embedding row (outside the slots) through the loader, counting it.
    pub fn read_row<S: Storage, L: Loader<'a>>(
        &mut self,
        offset: u64,
        buf: &mut [u8],
        storage: &mut S,
        loader: &mut L,
    ) -> Result<()> {
        loader.read_now(storage, offset, buf)?;
        self.stats.bytes_read += buf.len() as u64;
        self.stats.reads += 1;
        Ok(())
    }

    /// The bytes of unit `index`, reading it into a slot on a miss, then reading ahead.
    pub fn fetch<S: Storage, L: Loader<'a>>(
        &mut self,
        units: &[Unit],
        index: usize,
        storage: &mut S,
        loader: &mut L,
    ) -> Result<&[u8]> {
        let u = units[index];
        self.tick += 1;
        if let Some(at) = u.pinned_at {
            self.stats.hits += 1;
            return Ok(&self.resident[at..at + u.bytes as usize]);
        }
        let slot = match self.slots.iter().position(|s| s.unit == Some(index as u16)) {
            Some(s) if !self.slots[s].loading && !self.slots[s].ahead => {
                self.stats.hits += 1;
                s
            }
            Some(s) => {
                // Read ahead: it came from storage for this use.
                self.complete(s, storage, loader)?;
                self.stats.misses += 1;
                s
            }
            None => {
                let s = match self.victim(units, index, None) {
                    Some(s) => s,
                    None => {
                        // Every slot is loading: let the reads land, then evict among them.
                        self.complete_all(storage, loader)?;
                        self.victim(units, index, None).ok_or(Error::LoaderLost { slot: 0 })?
                    }
                };
                self.start(s, units, index, loader);
                self.complete(s, storage, loader)?;
                self.stats.misses += 1;
                s
            }
        };
        let st = &mut self.slots[slot];
        st.last_used = self.tick;
        st.ahead = false;
        self.read_ahead(units, index, slot, loader);
        let (at, bytes) = (self.slots[slot].at as usize, u.bytes as usize);
        let mem = self.slots[slot].mem.as_deref().ok_or(Error::LoaderLost { slot: slot as u32 })?;
        mem.get(at..at + bytes).ok_or(Error::Malformed("a loader placed a unit outside its slot"))
    }

    /// Starts reading unit `index` into slot `s` (evicting what it held).
    fn start<L: Loader<'a>>(&mut self, s: usize, units: &[Unit], index: usize, loader: &mut L) {
        let u = units[index];
        let st = &mut self.slots[s];
        if st.unit.is_some() {
            self.stats.evictions += 1;
        }
        st.unit = None;
        if let Some(buf) = st.mem.take() {
            loader.start(s, u.offset, u.bytes as usize, buf);
            st.unit = Some(index as u16);
            st.loading = true;
            self.stats.reads += 1;
            self.stats.bytes_read += u.bytes as u64;
        }
    }

    /// Waits for slot `s`'s read; on failure the slot is left empty.
    fn complete<S: Storage, L: Loader<'a>>(&mut self, s: usize, storage: &mut S, loader: &mut L) -> Result<()> {
        let c = loader.wait(storage, s);
        let st = &mut self.slots[s];
        st.mem = c.buf;
        st.loading = false;
        // A place past u16 is refused by `fetch` (no slot has that much slack).
        st.at = u16::try_from(c.at).unwrap_or(u16::MAX);
        if c.result.is_err() || st.mem.is_none() {
            st.unit = None;
            st.ahead = false;
        }
        c.result
    }

    fn complete_all<S: Storage, L: Loader<'a>>(&mut self, storage: &mut S, loader: &mut L) -> Result<()> {
        for s in 0..self.slots.len() {
            if self.slots[s].loading {
                self.complete(s, storage, loader)?;
            }
        }
        Ok(())
    }

    /// Distance in the cyclic schedule from the unit in use (`current`) to the next use of `unit`.
    fn next_use(units: &[Unit], current: usize, unit: usize) -> usize {
        (unit + units.len() - current) % units.len().max(1)
    }

    /// The slot to fill next, by policy, never the one in use (`keep`) nor one loading.
    fn victim(&self, units: &[Unit], current: usize, keep: Option<usize>) -> Option<usize> {
        let candidates = || {
            self.slots.iter().enumerate().filter(move |&(i, s)| {
                Some(i) != keep && !s.loading && s.mem.is_some() && s.unit != Some(current as u16)
            })
        };
        if let Some((i, _)) = candidates().find(|(_, s)| s.unit.is_none()) {
            return Some(i);
        }
        let pick = match self.policy {
            Policy::Pin | Policy::Lru => candidates().min_by_key(|(_, s)| s.last_used),
            Policy::LruProtect => candidates()
                .filter(|(_, s)| !s.ahead)
                .min_by_key(|(_, s)| s.last_used)
                .or_else(|| candidates().min_by_key(|(_, s)| s.last_used)),
            Policy::Mru => candidates().max_by_key(|(_, s)| s.last_used),
            Policy::Min => candidates()
                .max_by_key(|(_, s)| s.unit.map_or(usize::MAX, |u| Self::next_use(units, current, u as usize))),
        };
        pick.map(|(i, _)| i)
    }

    /// Starts reads of the next `prefetch` streamed units of the schedule after `current`.
    fn read_ahead<L: Loader<'a>>(&mut self, units: &[Unit], current: usize, in_use: usize, loader: &mut L) {
        let n = units.len();
        let mut ahead = 0;
        let mut j = current;
        for _ in 1..n {
            if ahead >= self.prefetch {
                break;
            }
            j = (j + 1) % n;
            if units[j].pinned_at.is_some() {
                continue;
            }
            ahead += 1;
            if self.slots.iter().any(|s| s.unit == Some(j as u16)) {
                continue;
            }
            let Some(v) = self.victim(units, current, Some(in_use)) else { break };
            if self.policy == Policy::Min {
                // MIN never evicts a unit needed sooner than the one it would read.
                let sooner = self.slots[v]
                    .unit
                    .is_some_and(|u| Self::next_use(units, current, u as usize) < Self::next_use(units, current, j));
                if sooner {
                    break;
                }
            }
            self.start(v, units, j, loader);
            let st = &mut self.slots[v];
            st.ahead = true;
            st.last_used = self.tick;
            self.stats.prefetched += 1;
        }
    }
}

/// Reads `dst.len()` bytes at `offset` into `dst`: straight, or (with `bounce`, a slot's memory)
/// as aligned spans into `bounce`, each copied out.
fn read_pinned<S: Storage>(storage: &mut S, offset: u64, dst: &mut [u8], bounce: Option<&mut [u8]>) -> Result<()> {
    let Some(bounce) = bounce else { return read_exact_at(storage, offset, dst) };
    let chunk = bounce.len() - io_slack(storage.io_align());
    let mut done = 0usize;
    for piece in dst.chunks_mut(chunk) {
        let at = read_span_exact(storage, offset + done as u64, piece.len(), bounce)?;
        piece.copy_from_slice(&bounce[at..at + piece.len()]);
        done += piece.len();
    }
    Ok(())
}
