//! Where the weights live: the [`Storage`] trait, a blocking, positioned byte source, and the
//! checked read every reader of the core goes through. The adapters sit beside it, one file
//! each: [`SliceStorage`] for bytes already in the address space (XIP flash, a test buffer),
//! [`ReadSeekStorage`] for anything `embedded_io::Read + Seek` (an SD card driver, a file
//! through `embedded-io-adapters`), and the [`FaultyStorage`] / [`CountingStorage`] wrappers
//! that tests and firmware use to inject faults and count reads; with the `embedded-storage`
//! feature, [`NorFlashStorage`] over any `ReadNorFlash` driver. It knows nothing of GGUF or
//! of the arena.

mod fault;
#[cfg(feature = "embedded-storage")]
mod nor;
mod read_seek;
mod slice;

pub use fault::{CountingStorage, Faults, FaultyStorage};
#[cfg(feature = "embedded-storage")]
pub use nor::NorFlashStorage;
pub use read_seek::{ReadSeekError, ReadSeekStorage};
pub use slice::SliceStorage;

use embedded_io::{Error as _, ErrorType};

use crate::error::{Error, Result};

/// A blocking storage with positioned reads.
pub trait Storage: ErrorType {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Whether the storage is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), Self::Error>;

    /// The alignment (a power of two, at most [`MAX_IO_ALIGN`]) of the reads this storage
    /// makes straight into a caller's buffer with [`Storage::read_span`]; 1 (the default) for a
    /// storage that reads any byte range. The planner gives each streaming slot
    /// [`io_slack`]`(align)` bytes beyond its largest unit for it.
    fn io_align(&self) -> usize {
        1
    }

    /// Reads the `len` bytes at `offset` somewhere into `buf` and returns where they start
    /// (`buf[at..at + len]`); the rest of `buf` may be overwritten. `buf` holds at least
    /// `len + io_slack(self.io_align())` bytes. The default reads them to `buf[..len]`; a
    /// direct-I/O storage reads the aligned superset into an aligned place of `buf` (no copy).
    fn read_span(&mut self, offset: u64, len: usize, buf: &mut [u8]) -> core::result::Result<usize, Self::Error> {
        self.read_at(offset, &mut buf[..len])?;
        Ok(0)
    }
}

/// The largest [`Storage::io_align`] the planner honours (a page).
pub const MAX_IO_ALIGN: usize = 4096;

/// Bytes a buffer needs beyond `len` for [`Storage::read_span`] at alignment `align` (0 for 1):
/// up to `align - 1` to reach an aligned address, up to `align - 1` before the requested
/// bytes in their first block, and the rest of their last block.
pub const fn io_slack(align: usize) -> usize {
    if align <= 1 {
        0
    } else {
        3 * align
    }
}

/// Where [`Storage::read_span`] at alignment `align` puts the bytes at file offset `offset` in
/// a buffer that starts at address `addr`, and the aligned span it reads: `(at, start, span)`,
/// the bytes starting at `at`, the read covering `buf[at - offset % align..][..span]` from file
/// offset `start`. Every value is below `len + io_slack(align)`.
pub fn span_layout(align: usize, addr: usize, offset: u64, len: usize) -> (usize, u64, usize) {
    if align <= 1 {
        return (0, offset, len);
    }
    let pad = addr.wrapping_neg() & (align - 1);
    let skip = (offset % align as u64) as usize;
    let span = (skip + len).div_ceil(align) * align;
    (pad + skip, offset - skip as u64, span)
}

impl<T: Storage + ?Sized> Storage for &mut T {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), Self::Error> {
        (**self).read_at(offset, buf)
    }
    fn io_align(&self) -> usize {
        (**self).io_align()
    }
    fn read_span(&mut self, offset: u64, len: usize, buf: &mut [u8]) -> core::result::Result<usize, Self::Error> {
        (**self).read_span(offset, len, buf)
    }
}

/// Reads `len` bytes at `offset` into `buf` with [`Storage::read_span`], checked like
/// [`read_exact_at`]; returns where they start in `buf`. A buffer shorter than `len` plus the
/// storage's slack is read with [`read_exact_at`] into `buf[..len]` instead (0); one shorter
/// than `len` is refused before any read.
pub fn read_span_exact<S: Storage>(storage: &mut S, offset: u64, len: usize, buf: &mut [u8]) -> Result<usize> {
    let end = offset.checked_add(len as u64).ok_or(Error::Malformed("read past u64 range"))?;
    if end > storage.len() {
        return Err(Error::Truncated { what: "a read", end, file_len: storage.len() });
    }
    if buf.len() < len {
        return Err(Error::BufferTooSmall { what: "slot bytes for a read", needed: len, got: buf.len() });
    }
    let need = len.saturating_add(io_slack(storage.io_align()));
    if buf.len() < need {
        read_exact_at(storage, offset, &mut buf[..len])?;
        return Ok(0);
    }
    let at = storage.read_span(offset, len, buf).map_err(|e| Error::Io { offset, len: len as u32, kind: e.kind() })?;
    if at.checked_add(len).is_none_or(|e| e > buf.len()) {
        return Err(Error::Malformed("a storage's read_span returned a place outside the buffer"));
    }
    Ok(at)
}

/// Reads `buf.len()` bytes at `offset`, turning a storage failure into a core [`Error`].
pub fn read_exact_at<S: Storage>(storage: &mut S, offset: u64, buf: &mut [u8]) -> Result<()> {
    let end = offset.checked_add(buf.len() as u64).ok_or(Error::Malformed("read past u64 range"))?;
    if end > storage.len() {
        return Err(Error::Truncated { what: "a read", end, file_len: storage.len() });
    }
    storage.read_at(offset, buf).map_err(|e| Error::Io { offset, len: buf.len() as u32, kind: e.kind() })
}
