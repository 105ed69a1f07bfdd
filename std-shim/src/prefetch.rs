//! A loader whose reads run on a background thread while the core computes.
//!
//! The core lends a slot's buffer with `start`; the request goes to the reader thread, which
//! fills the buffer from its own storage handle and sends it back. `wait` receives completions
//! in order until the slot it wants arrives. A failed read comes back as an error with its
//! buffer; a reader thread that died turns every later wait into [`Error::LoaderLost`], never
//! a hang: the channels disconnect when it ends. A read that panics (a storage backend's bug)
//! is caught on the reader thread: that slot gets `LoaderLost` and the thread ends, so the
//! panic never reaches the `thread::scope` that joins it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::Scope;

use spool_core::cache::{Completion, Loader};
use spool_core::storage::read_exact_at;
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
    result: Result<(), Error>,
}

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
    /// Starts the reader thread in `scope`; it reads from `storage`, its own handle on the model.
    pub fn spawn<'scope, 'env, S>(scope: &'scope Scope<'scope, 'env>, mut storage: S) -> Self
    where
        S: Storage + Send + 'scope,
        'a: 'scope,
    {
        log::debug!("prefetch: reader thread started");
        let (req_tx, req_rx) = channel::<Request<'a>>();
        let (done_tx, done_rx) = channel::<Done<'a>>();
        scope.spawn(move || {
            for r in req_rx {
                let len = r.len.min(r.buf.len());
                let read = catch_unwind(AssertUnwindSafe(|| read_exact_at(&mut storage, r.offset, &mut r.buf[..len])));
                // After a panic the storage may be half-updated: no further read uses it.
                let (result, lost) = match read {
                    Ok(result) => (result, false),
                    Err(_) => (Err(Error::LoaderLost { slot: r.slot as u32 }), true),
                };
                if done_tx.send(Done { slot: r.slot, buf: r.buf, result }).is_err() || lost {
                    break;
                }
            }
        });
        Self { requests: Some(req_tx), done: done_rx, early: Vec::new(), unsent: Vec::new() }
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
            return Completion { buf: Some(r.buf), result: Err(Error::LoaderLost { slot: slot as u32 }) };
        }
        if let Some(i) = self.early.iter().position(|d| d.slot == slot) {
            let d = self.early.swap_remove(i);
            return Completion { buf: Some(d.buf), result: d.result };
        }
        loop {
            match self.done.recv() {
                Ok(d) if d.slot == slot => return Completion { buf: Some(d.buf), result: d.result },
                Ok(d) => self.early.push(d),
                Err(_) => return Completion { buf: None, result: Err(Error::LoaderLost { slot: slot as u32 }) },
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
