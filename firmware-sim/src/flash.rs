//! A simulated flash device with a deterministic virtual clock.
//!
//! I/O time is modelled: each read occupies the device for `latency + bytes / bandwidth`
//! (bytes rounded out to the read granularity), one read after another. Compute time is
//! measured: the wall time the core spends between its calls into the loader. A read started
//! ahead (prefetch) runs on the device while the core computes, so the clock shows overlap,
//! not the sum of the two; the core only stalls when it waits for a read not yet done.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use spool_core::cache::{Completion, Loader};
use spool_core::Storage;

/// The device's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlashSpec {
    /// Sustained read bandwidth in MB/s (10^6 bytes).
    pub mbps: f64,
    /// Fixed cost of each read, in microseconds.
    pub latency_us: f64,
    /// Reads are rounded out to multiples of this many bytes (0 or 1: exact).
    pub granularity: u64,
}

impl Default for FlashSpec {
    fn default() -> Self {
        Self { mbps: 20.0, latency_us: 50.0, granularity: 0 }
    }
}

impl FlashSpec {
    /// Device time of one read, in seconds.
    pub fn read_time(&self, offset: u64, len: usize) -> f64 {
        let bytes = match self.granularity {
            0 | 1 => len as u64,
            g => (offset + len as u64).div_ceil(g) * g - offset / g * g,
        };
        self.latency_us * 1e-6 + bytes as f64 / (self.mbps * 1e6)
    }
}

/// The virtual clock, in seconds.
#[derive(Debug)]
pub struct FlashClock {
    /// The device.
    pub spec: FlashSpec,
    /// The core's virtual time.
    pub now: f64,
    /// When the device finishes its queued reads.
    device_free: f64,
    /// Time the core spent waiting for reads.
    pub stall: f64,
    /// Time the core spent computing.
    pub compute: f64,
    /// Time the device spent reading.
    pub io_busy: f64,
    /// Reads modelled.
    pub reads: u64,
    last_wall: Instant,
    inflight: HashMap<usize, f64>,
}

impl FlashClock {
    /// A clock at zero.
    pub fn new(spec: FlashSpec) -> Self {
        Self {
            spec,
            now: 0.0,
            device_free: 0.0,
            stall: 0.0,
            compute: 0.0,
            io_busy: 0.0,
            reads: 0,
            last_wall: Instant::now(),
            inflight: HashMap::new(),
        }
    }

    /// Adds the wall time since the core last left the loader as compute, and returns `now`.
    pub fn tick(&mut self) -> f64 {
        let wall = Instant::now();
        let d = (wall - self.last_wall).as_secs_f64();
        self.now += d;
        self.compute += d;
        self.last_wall = wall;
        self.now
    }

    /// Excludes the real time spent inside the loader from compute.
    fn resume(&mut self) {
        self.last_wall = Instant::now();
    }

    /// Queues a read on the device at the current time; returns when it completes.
    fn issue(&mut self, offset: u64, len: usize) -> f64 {
        let t = self.spec.read_time(offset, len);
        let start = self.now.max(self.device_free);
        self.device_free = start + t;
        self.io_busy += t;
        self.reads += 1;
        self.device_free
    }

    /// The core waits until `done`.
    fn wait_until(&mut self, done: f64) {
        if done > self.now {
            self.stall += done - self.now;
            self.now = done;
        }
    }
}

/// A loader wrapper that runs the virtual clock when there is one, and passes through otherwise.
/// Either way it sums the wall time the core spends waiting for reads ([`TimedLoader::waited`]).
pub struct TimedLoader<L> {
    inner: L,
    clock: Option<Rc<RefCell<FlashClock>>>,
    waited: Rc<Cell<f64>>,
}

impl<L> TimedLoader<L> {
    /// Wraps `inner`, timing it on `clock` if given.
    pub fn new(inner: L, clock: Option<Rc<RefCell<FlashClock>>>) -> Self {
        Self { inner, clock, waited: Rc::new(Cell::new(0.0)) }
    }

    /// Seconds of wall time the core has spent blocked in `wait` and `read_now` so far (a
    /// shared counter: it keeps counting after the loader moves into the engine).
    pub fn waited(&self) -> Rc<Cell<f64>> {
        Rc::clone(&self.waited)
    }
}

impl<'a, L: Loader<'a>> Loader<'a> for TimedLoader<L> {
    fn start(&mut self, slot: usize, offset: u64, len: usize, buf: &'a mut [u8]) {
        if let Some(c) = &self.clock {
            let mut c = c.borrow_mut();
            c.tick();
            let done = c.issue(offset, len);
            c.inflight.insert(slot, done);
        }
        self.inner.start(slot, offset, len, buf);
        if let Some(c) = &self.clock {
            c.borrow_mut().resume();
        }
    }

    fn wait<S: Storage>(&mut self, storage: &mut S, slot: usize) -> Completion<'a> {
        if let Some(c) = &self.clock {
            c.borrow_mut().tick();
        }
        let t = Instant::now();
        let done = self.inner.wait(storage, slot);
        self.waited.set(self.waited.get() + t.elapsed().as_secs_f64());
        if let Some(c) = &self.clock {
            let mut c = c.borrow_mut();
            if let Some(t) = c.inflight.remove(&slot) {
                c.wait_until(t);
            }
            c.resume();
        }
        done
    }

    fn read_now<S: Storage>(&mut self, storage: &mut S, offset: u64, buf: &mut [u8]) -> spool_core::error::Result<()> {
        if let Some(c) = &self.clock {
            let mut c = c.borrow_mut();
            c.tick();
            let t = c.issue(offset, buf.len());
            c.wait_until(t);
        }
        let t = Instant::now();
        let r = self.inner.read_now(storage, offset, buf);
        self.waited.set(self.waited.get() + t.elapsed().as_secs_f64());
        if let Some(c) = &self.clock {
            c.borrow_mut().resume();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularity_rounds_reads_out() {
        let spec = FlashSpec { mbps: 1.0, latency_us: 0.0, granularity: 256 };
        // 10 bytes straddling a 256-byte boundary cost two pages.
        assert!((spec.read_time(250, 10) - 512e-6).abs() < 1e-12);
        let exact = FlashSpec { granularity: 0, ..spec };
        assert!((exact.read_time(250, 10) - 10e-6).abs() < 1e-12);
    }

    #[test]
    fn prefetched_reads_overlap_compute_and_queue_on_the_device() {
        let mut c = FlashClock::new(FlashSpec { mbps: 1.0, latency_us: 100.0, granularity: 0 });
        let a = c.issue(0, 900); // 1 ms
        let b = c.issue(0, 900); // queued behind a: done at 2 ms
        assert!((a - 1e-3).abs() < 1e-12 && (b - 2e-3).abs() < 1e-12);
        c.now = 1.5e-3; // the core computed meanwhile
        c.wait_until(a);
        assert_eq!(c.stall, 0.0);
        c.wait_until(b);
        assert!((c.stall - 0.5e-3).abs() < 1e-12);
    }
}
