//! A loader whose reads run on background threads while the core computes.
//!
//! The core lends a slot's buffer with `start`; the request goes to a queue that N reader
//! threads share (one storage handle each, so N reads are in flight and the device's queue
//! depth is used), and the thread that takes it fills the buffer with [`Storage::read_span`]
//! (a direct-I/O handle reads straight into the slot's aligned place) and sends it back.
//! `wait` receives completions, in any order, until the slot it wants arrives. A failed read
//! comes back as an error with its buffer; when every reader thread has died, every later wait
//! is [`Error::LoaderLost`], never a hang: the channels disconnect when they end. A read that
//! panics (a storage backend's bug) is caught on its reader thread: that slot gets
//! `LoaderLost` and the thread ends, so the panic never reaches the `thread::scope` that joins
//! it. Each reader thread has a [`READER_STACK`]-byte stack (outside the arena, as the OS's
//! threads are).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use spool_core::cache::{Completion, Loader};
use spool_core::storage::read_span_exact;
use spool_core::{Error, Storage};

struct Request<'a> {
    slot: usize,
    offset: u64,
    len: usize,
    buf: &'a mut [u8],
}

struct Done<'a> {
    slot: usize,
    buf: &'a mut [u8],
    at: usize,
    result: Result<(), Error>,
}

/// Stack of each reader thread: it only runs a read and a channel send.
pub const READER_STACK: usize = 128 << 10;

/// A prefetching [`Loader`] backed by a scoped reader thread.
pub struct PrefetchLoader<'a> {
    requests: Option<Sender<Request<'a>>>,
    done: Receiver<Done<'a>>,
    /// Completions received while waiting for another slot.
    early: Vec<Done<'a>>,
    /// Requests that could not be sent (the thread is gone), returned on wait.
    unsent: Vec<Request<'a>>,
}

impl<'a> PrefetchLoader<'a> {
    /// Starts one reader thread in `scope`; it reads from `storage`, its own handle on the model.
    pub fn spawn<'scope, 'env, S>(scope: &'scope Scope<'scope, 'env>, storage: S) -> Self
    where
        S: Storage + Send + 'scope,
        'a: 'scope,
    {
        Self::spawn_readers(scope, [storage])
    }

    /// Starts one reader thread per handle in `readers` (each its own handle on the model),
    /// sharing one queue of requests: as many reads in flight as handles.
    pub fn spawn_readers<'scope, 'env, S, I>(scope: &'scope Scope<'scope, 'env>, readers: I) -> Self
    where
        S: Storage + Send + 'scope,
        I: IntoIterator<Item = S>,
        'a: 'scope,
    {
        let (req_tx, req_rx) = channel::<Request<'a>>();
        let (done_tx, done_rx) = channel::<Done<'a>>();
        let queue = Arc::new(Mutex::new(req_rx));
        let mut started = 0;
        for (i, mut storage) in readers.into_iter().enumerate() {
            let (queue, done_tx) = (Arc::clone(&queue), done_tx.clone());
            let thread = std::thread::Builder::new().name(format!("spool-reader-{i}")).stack_size(READER_STACK);
            let spawned = thread.spawn_scoped(scope, move || loop {
                // The lock is held only to take a request; a poisoned lock still holds the queue.
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(r) = next else { break };
                let len = r.len.min(r.buf.len());
                let read = catch_unwind(AssertUnwindSafe(|| read_span_exact(&mut storage, r.offset, len, r.buf)));
                // After a panic the storage may be half-updated: no further read uses it.
                let (at, result, lost) = match read {
                    Ok(Ok(at)) => (at, Ok(()), false),
                    Ok(Err(e)) => (0, Err(e), false),
                    Err(_) => (0, Err(Error::LoaderLost { slot: r.slot as u32 }), true),
                };
                if done_tx.send(Done { slot: r.slot, buf: r.buf, at, result }).is_err() || lost {
                    break;
                }
            });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => log::warn!("prefetch: cannot start reader thread {i}: {e}"),
            }
        }
        log::debug!("prefetch: {started} reader thread(s) started");
        let requests = (started > 0).then_some(req_tx);
        Self { requests, done: done_rx, early: Vec::new(), unsent: Vec::new() }
    }
}

impl<'a> Loader<'a> for PrefetchLoader<'a> {
    fn start(&mut self, slot: usize, offset: u64, len: usize, buf: &'a mut [u8]) {
        let request = Request { slot, offset, len, buf };
        match &self.requests {
            Some(tx) => {
                if let Err(e) = tx.send(request) {
                    self.unsent.push(e.0);
                }
            }
            None => self.unsent.push(request),
        }
    }

    fn wait<S: Storage>(&mut self, _storage: &mut S, slot: usize) -> Completion<'a> {
        if let Some(i) = self.unsent.iter().position(|r| r.slot == slot) {
            let r = self.unsent.swap_remove(i);
            return Completion { buf: Some(r.buf), at: 0, result: Err(Error::LoaderLost { slot: slot as u32 }) };
        }
        if let Some(i) = self.early.iter().position(|d| d.slot == slot) {
            let d = self.early.swap_remove(i);
            return Completion { buf: Some(d.buf), at: d.at, result: d.result };
        }
        loop {
            match self.done.recv() {
                Ok(d) if d.slot == slot => return Completion { buf: Some(d.buf), at: d.at, result: d.result },
                Ok(d) => self.early.push(d),
                Err(_) => return Completion { buf: None, at: 0, result: Err(Error::LoaderLost { slot: slot as u32 }) },
            }
        }
    }
}

impl Drop for PrefetchLoader<'_> {
    fn drop(&mut self) {
        // Closing the request channel ends the reader thread; the scope joins it.
        self.requests = None;
    }
}
