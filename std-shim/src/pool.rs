//! A persistent pool of worker threads that runs the core's row jobs ([`Executor`]).
//!
//! The forward pass asks for about seven matrix-vector products per layer per token, so the
//! workers are spawned once and woken per job. A job borrows the caller's closure and output
//! for the duration of [`Executor::run_rows`] only: the pool erases those lifetimes to hand
//! them to its workers, and `run_rows` does not return (nor unwind) before every worker is done
//! with them. The caller's thread computes the first chunk itself.
//!
//! One job runs at a time: the pool is `Sync` (the engine shares it by reference), so two
//! threads may call [`Executor::run_rows`] at once, and the second waits on a job lock for the
//! first to finish. Without that lock both would publish into the one task slot, and a worker
//! could run the first caller's chunk with the second caller's closure after the first had
//! returned and freed it.
//!
//! Rows are split into `threads` consecutive chunks ([`spool_core::exec::split_point`]); each
//! row's arithmetic is independent of the split, so results are bit-identical for any number
//! of threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use spool_core::exec::{split_point, Executor, RowJob};

/// Below this many weight bytes a job runs on the caller alone: waking workers costs more.
pub const DEFAULT_MIN_WORK: usize = 128 * 1024;

/// How many times a worker (or the caller) polls for the next job (or for the workers to
/// finish) before it sleeps on a condition variable. A token runs about seven jobs per layer
/// with little work in between, so a short spin saves two futex round trips per job; a busy
/// machine loses at most this many `spin_loop` hints (tens of microseconds) per job.
const SPINS: u32 = 2000;

/// One job, lifetime-erased. Only valid between its publication and `remaining == 0`.
#[derive(Clone, Copy)]
struct Task {
    job: *const RowJob<'static>,
    out: *mut f32,
    len: usize,
    parts: usize,
}

// SAFETY: a `Task` is the address of a `Sync` closure and of an `f32` buffer whose chunks are
// handed to distinct threads; `run_rows` keeps both alive and otherwise untouched until every
// worker has finished (see `Pending`), so sending the addresses to the workers is sound.
unsafe impl Send for Task {}

struct State {
    /// Bumped for every published job.
    generation: u64,
    task: Option<Task>,
    /// Worker chunks of the current job not finished yet.
    remaining: usize,
    /// A worker's chunk panicked.
    panicked: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    start: Condvar,
    done: Condvar,
    /// `State::generation`, readable without the lock (written under it).
    generation: AtomicU64,
    /// `State::remaining`, readable without the lock (written under it).
    remaining: AtomicUsize,
    /// Workers asleep on `start` (written under the lock): no wake-up call when none is.
    sleepers: AtomicUsize,
    /// The caller sleeps on `done` (written under the lock).
    caller_waits: AtomicBool,
}

/// Polls `busy` up to [`SPINS`] times; true if it turned false meanwhile.
fn spin_until(busy: impl Fn() -> bool) -> bool {
    for _ in 0..SPINS {
        if !busy() {
            return true;
        }
        std::hint::spin_loop();
    }
    !busy()
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside a job never happens while the lock is held, but be robust anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fixed set of worker threads; `threads` compute units counting the caller's thread.
pub struct ThreadPool {
    shared: Arc<Shared>,
    /// Held for the whole of a split job: the task slot serves one caller at a time.
    job: Mutex<()>,
    workers: Vec<JoinHandle<()>>,
    min_work: usize,
}

impl ThreadPool {
    /// A pool of `threads` units (at least 1): `threads - 1` workers plus the caller.
    pub fn new(threads: usize) -> Self {
        log::debug!("thread pool: {threads} thread(s), {} worker(s) besides the caller", threads.max(1) - 1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State { generation: 0, task: None, remaining: 0, panicked: false, shutdown: false }),
            start: Condvar::new(),
            done: Condvar::new(),
            generation: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            caller_waits: AtomicBool::new(false),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("spool-worker-{index}"))
                    .spawn(move || worker(&shared, index))
                    .expect("spawn a pool worker")
            })
            .collect();
        Self { shared, job: Mutex::new(()), workers, min_work: DEFAULT_MIN_WORK }
    }

    /// Jobs reading fewer weight bytes than `bytes` run on the caller alone (0: always split).
    pub fn with_min_work(mut self, bytes: usize) -> Self {
        self.min_work = bytes;
        self
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        spin_until(|| shared.generation.load(Ordering::Acquire) == seen);
        let task = {
            let mut st = shared.lock();
            while st.generation == seen && !st.shutdown {
                shared.sleepers.fetch_add(1, Ordering::Relaxed);
                st = shared.start.wait(st).unwrap_or_else(PoisonError::into_inner);
                shared.sleepers.fetch_sub(1, Ordering::Relaxed);
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            match st.task {
                Some(t) if index < t.parts => t,
                _ => continue,
            }
        };
        let (a, b) = (split_point(task.len, task.parts, index), split_point(task.len, task.parts, index + 1));
        let ok = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the publishing `run_rows` call blocks until `remaining` reaches 0, which
            // needs this worker's decrement below, so the closure and the buffer are alive;
            // chunk `index` (`a..b`) is disjoint from every other chunk of the job, and nobody
            // else touches the buffer meanwhile.
            let (job, chunk) = unsafe { (&*task.job, std::slice::from_raw_parts_mut(task.out.add(a), b - a)) };
            job(a, chunk);
        }))
        .is_ok();
        let mut st = shared.lock();
        st.panicked |= !ok;
        st.remaining -= 1;
        shared.remaining.store(st.remaining, Ordering::Release);
        if st.remaining == 0 && shared.caller_waits.load(Ordering::Relaxed) {
            shared.done.notify_all();
        }
    }
}

/// Waits, even while unwinding, until the workers are done with the published job.
struct Pending<'p> {
    shared: &'p Shared,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        spin_until(|| self.shared.remaining.load(Ordering::Acquire) > 0);
        let mut st = self.shared.lock();
        while st.remaining > 0 {
            self.shared.caller_waits.store(true, Ordering::Relaxed);
            st = self.shared.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        self.shared.caller_waits.store(false, Ordering::Relaxed);
        st.task = None;
    }
}

impl Executor for ThreadPool {
    fn run_rows(&self, out: &mut [f32], work: usize, job: &RowJob<'_>) {
        let parts = (self.workers.len() + 1).min(out.len());
        if parts <= 1 || work < self.min_work {
            job(0, out);
            return;
        }
        // Another caller's job must be done (its `Pending` dropped) before this one is
        // published; the guard lives to the end of this call, unwinding included. A poisoned
        // lock only means an earlier job panicked after its workers finished: the slot is free.
        let _one_job = self.job.lock().unwrap_or_else(PoisonError::into_inner);
        let len = out.len();
        let out = out.as_mut_ptr();
        // SAFETY: only the lifetime bound of the trait object changes (same layout); the
        // pointer is used by workers only while this call blocks (see `Pending`).
        let job_ptr: *const RowJob<'static> =
            unsafe { std::mem::transmute::<*const RowJob<'_>, *const RowJob<'static>>(job as *const RowJob<'_>) };
        {
            let mut st = self.shared.lock();
            st.generation += 1;
            st.task = Some(Task { job: job_ptr, out, len, parts });
            st.remaining = parts - 1;
            st.panicked = false;
            self.shared.remaining.store(st.remaining, Ordering::Release);
            self.shared.generation.store(st.generation, Ordering::Release);
            if self.shared.sleepers.load(Ordering::Relaxed) > 0 {
                self.shared.start.notify_all();
            }
        }
        let pending = Pending { shared: &self.shared };
        let end = split_point(len, parts, 1);
        // SAFETY: chunk 0 (`0..end`) is disjoint from the workers' chunks; `out` came from a
        // `&mut [f32]` of `len` elements that this call holds and no longer uses directly.
        job(0, unsafe { std::slice::from_raw_parts_mut(out, end) });
        drop(pending);
        if self.shared.lock().panicked {
            panic!("a spool pool worker panicked while running a row job");
        }
    }

    fn threads(&self) -> usize {
        self.workers.len() + 1
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.start.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(pool: &ThreadPool, n: usize, scale: f32) -> Vec<f32> {
        let mut out = vec![f32::NAN; n];
        let x = [scale; 3];
        pool.run_rows(&mut out, usize::MAX, &|row0, chunk: &mut [f32]| {
            for (i, o) in chunk.iter_mut().enumerate() {
                *o = (row0 + i) as f32 * x[2];
            }
        });
        out
    }

    /// Small enough for Miri: `cargo +nightly miri test -p spool-std pool`.
    #[test]
    fn every_row_is_written_once_for_any_thread_count() {
        for threads in 1..=3 {
            let pool = ThreadPool::new(threads).with_min_work(0);
            assert_eq!(pool.threads(), threads);
            for n in [0, 1, 2, 5, 17] {
                for round in 0..3 {
                    let got = fill(&pool, n, round as f32);
                    let want: Vec<f32> = (0..n).map(|i| i as f32 * round as f32).collect();
                    assert_eq!(got, want, "threads {threads}, n {n}");
                }
            }
        }
    }

    /// Two threads share one pool (it is `Sync`) and call `run_rows` at the same time; every
    /// row of every call must be written by that call's closure. Before the job lock, calls
    /// returned with rows unwritten (or a worker's `remaining` underflowed), and Miri saw a
    /// worker use a closure its caller had already freed. Under Miri: two callers, a few calls.
    #[test]
    fn two_threads_calling_run_rows_at_once_each_get_all_their_rows() {
        let calls = if cfg!(miri) { 4 } else { 20_000 };
        let pool = ThreadPool::new(3).with_min_work(0);
        std::thread::scope(|s| {
            for caller in 0..2u32 {
                let pool = &pool;
                s.spawn(move || {
                    let mut out = [f32::NAN; 7];
                    for call in 0..calls {
                        let tag = (caller * 1_000_000 + call) as f32;
                        out.fill(f32::NAN);
                        pool.run_rows(&mut out, 1, &|row0, chunk: &mut [f32]| {
                            for (i, o) in chunk.iter_mut().enumerate() {
                                *o = tag + (row0 + i) as f32 / 8.0;
                            }
                        });
                        for (row, &v) in out.iter().enumerate() {
                            assert_eq!(v, tag + row as f32 / 8.0, "caller {caller}, call {call}, row {row}");
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn small_jobs_run_on_the_caller() {
        let pool = ThreadPool::new(3);
        let caller = std::thread::current().id();
        let mut out = [0.0f32; 8];
        pool.run_rows(&mut out, 10, &|_, chunk: &mut [f32]| {
            assert_eq!(std::thread::current().id(), caller);
            chunk.fill(1.0);
        });
        assert_eq!(out, [1.0; 8]);
    }

    #[test]
    fn a_panicking_chunk_is_reported_and_the_pool_still_works() {
        let pool = ThreadPool::new(2).with_min_work(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut out = [0.0f32; 4];
            pool.run_rows(&mut out, 1, &|row0, _chunk: &mut [f32]| {
                if row0 > 0 {
                    panic!("worker chunk fails");
                }
            });
        }));
        assert!(r.is_err());
        assert_eq!(fill(&pool, 4, 2.0), [0.0, 2.0, 4.0, 6.0]);
    }
}
