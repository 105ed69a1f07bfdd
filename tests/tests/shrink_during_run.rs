//! A model file that shrinks during a run gives an error on every storage backend (file, mmap,
//! simulated flash), on the synchronous and the prefetch paths: never a SIGBUS. Before the
//! guarded copy, the mmap cases killed the test process with signal 7.

mod common;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use embedded_io::ErrorType;
use spool_core::Storage;
use spool_sim::{Backend, RunOptions};
use spool_std::{FileStorage, MmapStorage};

/// A fresh copy of the model, owned by one test.
fn model_copy(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("shrink-{name}-{}.gguf", std::process::id()));
    std::fs::write(&path, model_bytes()).unwrap();
    path
}

fn shrink(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// Cuts the file to a third of its length on the `at`-th read of any of its handles (the
/// engine's and the prefetch reader's share the count), then reads as asked.
struct ShrinkAt<S> {
    inner: S,
    path: PathBuf,
    reads: Arc<AtomicUsize>,
    at: usize,
}

impl<S: ErrorType> ErrorType for ShrinkAt<S> {
    type Error = S::Error;
}

impl<S: Storage> Storage for ShrinkAt<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        if self.reads.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            shrink(&self.path, self.inner.len() / 3);
        }
        self.inner.read_at(offset, buf)
    }
}

fn options(path: &Path, backend: Backend, prefetch: u32) -> RunOptions {
    RunOptions {
        model: path.to_string_lossy().into_owned(),
        prompt: "Once upon a time".into(),
        steps: 48,
        temperature: 0.0,
        seed: 1,
        // About a third of the model: the weights stream every token.
        ram: Some(450 << 10),
        backend,
        prefetch,
        ..Default::default()
    }
}

fn run_shrinking(backend: Backend, prefetch: u32, at: usize) -> Result<spool_sim::RunReport, String> {
    let path = model_copy(&format!("{}-{prefetch}-{at}", backend.name()));
    let reads = Arc::new(AtomicUsize::new(0));
    fn wrap<S>(inner: S, path: &Path, reads: &Arc<AtomicUsize>, at: usize) -> ShrinkAt<S> {
        ShrinkAt { inner, path: path.to_path_buf(), reads: Arc::clone(reads), at }
    }
    let opts = options(&path, backend, prefetch);
    let r = match backend {
        Backend::Mmap => {
            let map = MmapStorage::open(&path).unwrap();
            spool_sim::run_on(wrap(map.clone(), &path, &reads, at), wrap(map, &path, &reads, at), &opts)
        }
        Backend::File | Backend::Flash => {
            let file = FileStorage::open(&path).unwrap();
            let reader = file.try_clone().unwrap();
            spool_sim::run_on(wrap(file, &path, &reads, at), wrap(reader, &path, &reads, at), &opts)
        }
        Backend::Direct => {
            let file = spool_std::DirectStorage::open(&path).unwrap();
            let reader = file.try_clone().unwrap();
            spool_sim::run_on(wrap(file, &path, &reads, at), wrap(reader, &path, &reads, at), &opts)
        }
    };
    std::fs::remove_file(&path).unwrap();
    r
}

#[test]
fn a_file_shrinking_mid_run_is_an_error_on_every_backend_with_and_without_prefetch() {
    for backend in [Backend::File, Backend::Mmap, Backend::Flash, Backend::Direct] {
        for prefetch in [0, 2] {
            // During the load, on the first tokens, and deep in the decode.
            for at in [1, 5, 40, 300, 1500] {
                let r = run_shrinking(backend, prefetch, at);
                let e = r.err().unwrap_or_else(|| panic!("{} prefetch {prefetch} at {at}: no error", backend.name()));
                assert!(
                    e.contains("storage read") || e.contains("truncated") || e.contains("loader lost"),
                    "{} prefetch {prefetch} at {at}: {e}",
                    backend.name()
                );
            }
        }
    }
}

/// Another thread cuts the file while this one reads every page of the map, over and over;
/// the reads must end in an error, not a signal.
#[test]
fn mmap_reads_racing_a_truncation_in_another_thread_return_an_error() {
    let path = model_copy("race");
    let mut map = MmapStorage::open(&path).unwrap();
    let len = map.len();
    let cutter = {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            shrink(&path, 4096);
        })
    };
    let start = Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    let err = 'reads: loop {
        assert!(start.elapsed() < Duration::from_secs(20), "no read failed 20 s after the file shrank");
        let mut off = 0;
        while off < len {
            let n = buf.len().min((len - off) as usize);
            if let Err(e) = map.read_at(off, &mut buf[..n]) {
                break 'reads e;
            }
            off += n as u64;
        }
    };
    cutter.join().unwrap();
    assert_eq!(err, embedded_io::ErrorKind::Other);
    // What is still in the file reads as before, and past the end is refused.
    let mut head = [0u8; 4];
    map.read_at(0, &mut head).unwrap();
    assert_eq!(&head, b"GGUF");
    assert!(map.read_at(len - 16, &mut [0u8; 16]).is_err());
    std::fs::remove_file(&path).unwrap();
}

/// The guard catches only its own copy: a SIGBUS anywhere else still ends the process with
/// signal 7, as before the handler (it chains to the previous handler, or the default one),
/// rather than being swallowed or looping. Runs itself as a child process.
#[test]
fn a_sigbus_outside_the_guarded_copy_still_kills_the_process() {
    use std::os::unix::process::ExitStatusExt;
    const CHILD: &str = "SPOOL_TRUNCATION_SIGBUS_CHILD";
    if let Some(path) = std::env::var_os(CHILD) {
        let _guarded = MmapStorage::open(&path).unwrap(); // installs the handler
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: not sound on purpose, in a child process that must die: the map is read
        // after its file shrank, which raises SIGBUS.
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        shrink(Path::new(&path), 0);
        // SAFETY: as above; a volatile read so that it is not optimised away.
        let byte = unsafe { std::ptr::read_volatile(map.as_ptr().add(map.len() - 1)) };
        panic!("read {byte} past the end of a shrunk file without a signal");
    }
    let path = model_copy("chain");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_sigbus_outside_the_guarded_copy_still_kills_the_process", "--nocapture"])
        .env(CHILD, &path)
        .status()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(status.signal(), Some(7), "the child ended with {status:?}, not SIGBUS");
}
