//! [`MmapStorage`]: a model file read through a read-only memory map.
//!
//! Owns the map and its reads. Every copy out of the map goes through the SIGBUS-guarded copy
//! of [`crate::sigbus`], so a file that shrinks during a run gives a read error, not a dead
//! process. It does not hand out the mapped bytes as a slice (`Storage::mapped` is `None`):
//! a reader of such a slice would get a SIGBUS nothing can catch.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use embedded_io::{ErrorKind, ErrorType};
use spool_core::Storage;

use crate::sigbus;

/// A read-only memory map of a file, shareable between threads.
#[derive(Clone)]
pub struct MmapStorage {
    map: Arc<memmap2::MmapRaw>,
    /// Read with `pread` on targets without the guarded copy.
    file: Arc<File>,
}

impl MmapStorage {
    /// Maps `path` (a regular file, see [`crate::open::open_regular`]).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = crate::open::open_regular(path.as_ref())?;
        sigbus::install()?;
        // A raw map: no Rust reference to its bytes is ever made (they can change, or vanish,
        // under us); they are only copied out by `sigbus::copy`.
        let map = memmap2::MmapOptions::new().map_raw_read_only(&file)?;
        Ok(Self { map: Arc::new(map), file: Arc::new(file) })
    }
}

impl ErrorType for MmapStorage {
    type Error = ErrorKind;
}

impl Storage for MmapStorage {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// A read past the end is `InvalidInput`; a read the file no longer backs (it shrank after
    /// it was mapped) is `Other`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let start = usize::try_from(offset).map_err(|_| ErrorKind::InvalidInput)?;
        let end = start.checked_add(buf.len()).ok_or(ErrorKind::InvalidInput)?;
        if end > self.map.len() {
            return Err(ErrorKind::InvalidInput);
        }
        if !sigbus::GUARDED {
            return crate::read_exact_at(&self.file, offset, buf).map_err(|e| e.kind().into());
        }
        // SAFETY: `start..end` lies inside the live map (checked above; `self.map` keeps it
        // mapped); `buf` is an exclusive buffer of `buf.len()` bytes, outside the map since
        // the map is read-only; `open` installed the handler and GUARDED is true. The map is
        // private and read-only: a file changed on disk while mapped gives wrong numbers (the
        // core treats every byte as untrusted input), and a file that shrank makes the pages
        // past its new end raise SIGBUS, which the guarded copy turns into `Fault` (this is
        // why a plain `copy_from_slice` out of the map would not do).
        unsafe { sigbus::copy(buf.as_mut_ptr(), self.map.as_ptr().add(start), buf.len()) }
            .map_err(|sigbus::Fault| ErrorKind::Other)
    }
}
