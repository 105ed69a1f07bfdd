//! How bytes move from storage into slots: the [`Loader`] protocol ("start filling this slot" /
//! "wait until it is filled", the slot's buffer lent out and given back) and [`SyncLoader`],
//! the `no_std` default that reads inside `wait`. Knows nothing of which unit a slot holds.

use crate::error::{Error, Result};
use crate::plan::MAX_PREFETCH;
use crate::storage::{read_exact_at, read_span_exact, Storage};

/// Most reads a [`SyncLoader`] holds between start and wait.
const MAX_PENDING: usize = MAX_PREFETCH as usize + 1;

/// A finished read: the slot's buffer back (if the loader still has it) and the outcome.
pub struct Completion<'a> {
    /// The slot's buffer; `None` only if the loader lost it (its thread died).
    pub buf: Option<&'a mut [u8]>,
    /// Where the bytes start in `buf` (0 unless the storage reads aligned spans: see
    /// [`Storage::read_span`]).
    pub at: usize,
    /// Whether the bytes arrived.
    pub result: Result<()>,
}

/// Moves bytes from storage into slots: "start filling this slot" / "wait until it is filled".
///
/// The `no_std` default, [`SyncLoader`], reads inside `wait`. A prefetching loader (a thread
/// in `spool-std`, DMA on a board) reads after `start` while the core computes.
pub trait Loader<'a> {
    /// Starts reading `len` bytes at `offset` into `buf` for slot `slot` (with
    /// [`Storage::read_span`]: anywhere in `buf`, [`Completion::at`] says where). Errors are
    /// reported by [`Loader::wait`].
    fn start(&mut self, slot: usize, offset: u64, len: usize, buf: &'a mut [u8]);

    /// Waits for the read started for `slot` and returns its buffer.
    fn wait<S: Storage>(&mut self, storage: &mut S, slot: usize) -> Completion<'a>;

    /// Reads `buf.len()` bytes at `offset` now (embedding rows).
    fn read_now<S: Storage>(&mut self, storage: &mut S, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_exact_at(storage, offset, buf)
    }
}

struct Pending<'a> {
    slot: usize,
    offset: u64,
    len: usize,
    buf: &'a mut [u8],
}

/// Reads synchronously, inside [`Loader::wait`].
#[derive(Default)]
pub struct SyncLoader<'a> {
    pending: heapless::Vec<Pending<'a>, MAX_PENDING>,
    /// A buffer that could not be queued (more than `MAX_PENDING` in flight).
    overflow: Option<(usize, &'a mut [u8])>,
}

impl<'a> SyncLoader<'a> {
    /// A loader with nothing in flight.
    pub fn new() -> Self {
        Self { pending: heapless::Vec::new(), overflow: None }
    }
}

impl<'a> Loader<'a> for SyncLoader<'a> {
    fn start(&mut self, slot: usize, offset: u64, len: usize, buf: &'a mut [u8]) {
        if let Err(p) = self.pending.push(Pending { slot, offset, len, buf }) {
            self.overflow = Some((p.slot, p.buf));
        }
    }

    fn wait<S: Storage>(&mut self, storage: &mut S, slot: usize) -> Completion<'a> {
        if let Some(i) = self.pending.iter().position(|p| p.slot == slot) {
            let p = self.pending.swap_remove(i);
            let len = p.len.min(p.buf.len());
            let (at, result) = match read_span_exact(storage, p.offset, len, p.buf) {
                Ok(at) => (at, Ok(())),
                Err(e) => (0, Err(e)),
            };
            return Completion { buf: Some(p.buf), at, result };
        }
        let buf = match self.overflow.take() {
            Some((s, buf)) if s == slot => Some(buf),
            other => {
                self.overflow = other;
                None
            }
        };
        Completion { buf, at: 0, result: Err(Error::LoaderLost { slot: slot as u32 }) }
    }
}
