//! A storage backend that panics on the prefetch reader thread gives `LoaderLost`, not a
//! panic out of `thread::scope`; the engine's own storage is untouched, and a healthy run
//! afterwards gives the golden tokens.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use embedded_io::ErrorType;
use spool_core::{SliceStorage, Storage};

/// Panics on its `at`-th read.
struct PanicAt<'a> {
    inner: SliceStorage<'a>,
    reads: Arc<AtomicUsize>,
    at: usize,
}

impl ErrorType for PanicAt<'_> {
    type Error = embedded_io::ErrorKind;
}

impl Storage for PanicAt<'_> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        if self.reads.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            panic!("storage backend bug (injected by the test) at read {}", self.at);
        }
        self.inner.read_at(offset, buf)
    }
}

#[test]
fn a_panicking_prefetch_reader_comes_back_as_loader_lost() {
    let bytes = model_bytes();
    let case = case("greedy_once_64");
    for at in [1, 2, 7, 50, 400] {
        let opts = spool_sim::RunOptions { ram: Some(450 << 10), prefetch: 2, ..case_options(&case) };
        let reader = PanicAt { inner: SliceStorage::new(&bytes), reads: Arc::new(AtomicUsize::new(0)), at };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spool_sim::run_on(SliceStorage::new(&bytes), reader, &opts)
        }));
        let r = r.unwrap_or_else(|_| panic!("read {at}: the reader's panic escaped run_on"));
        let e = r.err().unwrap_or_else(|| panic!("read {at}: no error"));
        assert!(e.contains("the loader lost streaming slot"), "read {at}: {e}");
    }
    // The next run, healthy, in a fresh arena gives the golden tokens.
    let opts = spool_sim::RunOptions { ram: Some(450 << 10), prefetch: 2, ..case_options(&case) };
    let r = spool_sim::run_on(SliceStorage::new(&bytes), SliceStorage::new(&bytes), &opts).unwrap();
    assert_eq!(r.token_ids, ids(&case["token_ids"]));
}
