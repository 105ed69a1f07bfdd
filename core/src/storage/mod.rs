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
}

impl<T: Storage + ?Sized> Storage for &mut T {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), Self::Error> {
        (**self).read_at(offset, buf)
    }
}

/// Reads `buf.len()` bytes at `offset`, turning a storage failure into a core [`Error`].
pub fn read_exact_at<S: Storage>(storage: &mut S, offset: u64, buf: &mut [u8]) -> Result<()> {
    let end = offset.checked_add(buf.len() as u64).ok_or(Error::Malformed("read past u64 range"))?;
    if end > storage.len() {
        return Err(Error::Truncated { what: "a read", end, file_len: storage.len() });
    }
    storage.read_at(offset, buf).map_err(|e| Error::Io { offset, len: buf.len() as u32, kind: e.kind() })
}
