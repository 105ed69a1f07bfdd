//! # spool-std
//!
//! What only an operating system gives [`spool_core`]: storage over a file with positioned
//! reads ([`FileStorage`]) and over a memory map ([`MmapStorage`], whose copies survive the
//! file shrinking under them), both opening regular files only ([`open_regular`]), a [`PrefetchLoader`] that fills cache slots on a reader thread
//! while the core computes, a [`ThreadPool`] that splits matrix-vector rows over worker
//! threads, fault injection for tests and bring-up ([`faults`]), and run-time CPU feature detection for the kernels ([`kernels::detect`]). It holds
//! no inference logic. [`engine::new`] and [`engine::with_loader`] build an engine on this
//! CPU's best kernels (the core's own constructors run the portable scalar ones). It logs through the `log` crate (debug: the arena, the thread pool, the
//! prefetch thread, the kernels chosen); install any logger (env_logger, ...) to see it.

pub mod engine;
pub mod faults;
pub mod kernels;
pub mod pool;

/// The most RAM a desktop run needs beyond its arena (its budget): the process itself (the
/// binary's pages, libc and the allocator, about 3.8 MiB resident before any work on x86-64
/// Linux), the thread stacks ([`prefetch::READER_STACK`] for each reader thread, the pool's
/// workers), the direct-I/O bounce buffer of each handle (`direct::BOUNCE_BYTES`), the arena's
/// rounding to a 2 MiB huge page, and the CLI's small heap (prompt, output, report). With
/// `--storage direct` (the default) no page cache is needed on top. `tests/tests/footprint.rs`
/// checks a streaming run's peak resident set against `budget + FOOTPRINT_BEYOND_ARENA`.
pub const FOOTPRINT_BEYOND_ARENA: usize = 8 << 20;

/// The RAM budget handed to the core, as zeroed anonymous memory. On Linux it asks for
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`, a hint): with the whole model resident,
/// every token streams hundreds of MB through the arena, and 2 MiB pages spare the TLB misses
/// and let the hardware prefetcher run across what would be 4 KiB page boundaries.
pub struct Arena(memmap2::MmapMut);

impl Arena {
    /// `bytes` zeroed bytes (at least one page is mapped, even for 0).
    pub fn new(bytes: usize) -> io::Result<Self> {
        let map = memmap2::MmapMut::map_anon(bytes.max(1))?;
        #[cfg(target_os = "linux")]
        if let Err(e) = map.advise(memmap2::Advice::HugePage) {
            log::debug!("arena: madvise(MADV_HUGEPAGE) refused ({e}); 4 KiB pages");
        }
        log::debug!("arena: {bytes} bytes mapped");
        Ok(Arena(map))
    }
}

impl std::ops::Deref for Arena {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for Arena {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}
#[cfg(target_os = "linux")]
pub mod direct;
pub mod mmap;
pub mod open;
pub mod prefetch;
mod sigbus;

#[cfg(target_os = "linux")]
pub use direct::{DirectError, DirectStorage};
pub use mmap::MmapStorage;
pub use open::open_regular;
pub use pool::ThreadPool;
pub use prefetch::PrefetchLoader;

use std::fs::File;
use std::io;
use std::path::Path;

use embedded_io::ErrorType;
use spool_core::Storage;

/// An I/O error from the OS, carried through the core's storage trait.
#[derive(Debug)]
pub struct IoError(pub io::Error);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {}

impl embedded_io::Error for IoError {
    fn kind(&self) -> embedded_io::ErrorKind {
        self.0.kind().into()
    }
}

/// A file read with positioned reads (`pread`), no shared seek position.
#[derive(Debug)]
pub struct FileStorage {
    file: File,
    len: u64,
}

impl FileStorage {
    /// Opens `path`, a regular file ([`open_regular`]).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = open_regular(path.as_ref())?;
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }
}

impl ErrorType for FileStorage {
    type Error = IoError;
}

impl Storage for FileStorage {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        read_exact_at(&self.file, offset, buf).map_err(IoError)
    }
}

#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
pub(crate) fn read_exact_at(mut file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

impl FileStorage {
    /// Another handle on the same file (for a reader thread).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self { file: self.file.try_clone()?, len: self.len })
    }
}
