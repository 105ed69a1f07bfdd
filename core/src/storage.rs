//! Where the weights live: a blocking, positioned byte source.
//!
//! Owns the [`Storage`] trait and two adapters: [`ReadSeekStorage`] for anything that is
//! `embedded_io::Read + Seek` (an SD card driver, a file through `embedded-io-adapters`) and
//! [`SliceStorage`] for bytes already in the address space (XIP flash, a test buffer).
//! It knows nothing of GGUF or of the arena.

use embedded_io::{Error as _, ErrorKind, ErrorType, Read, ReadExactError, Seek, SeekFrom};

use crate::error::{Error, Result};

/// A blocking storage with positioned reads.
///
/// `mapped` lets a backend whose bytes are already addressable (memory-mapped file, XIP flash)
/// expose them, so a consumer can read them in place instead of copying.
pub trait Storage: ErrorType {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Whether the storage is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), Self::Error>;

    /// The whole storage as addressable bytes, when the backend has them.
    fn mapped(&self) -> Option<&[u8]> {
        None
    }
}

impl<T: Storage + ?Sized> Storage for &mut T {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), Self::Error> {
        (**self).read_at(offset, buf)
    }
    fn mapped(&self) -> Option<&[u8]> {
        (**self).mapped()
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

/// Storage over bytes that are already in memory.
#[derive(Debug, Clone, Copy)]
pub struct SliceStorage<'a> {
    bytes: &'a [u8],
}

impl<'a> SliceStorage<'a> {
    /// Wraps `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

impl ErrorType for SliceStorage<'_> {
    type Error = ErrorKind;
}

impl Storage for SliceStorage<'_> {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), ErrorKind> {
        let start = usize::try_from(offset).map_err(|_| ErrorKind::InvalidInput)?;
        let src =
            start.checked_add(buf.len()).and_then(|end| self.bytes.get(start..end)).ok_or(ErrorKind::InvalidInput)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn mapped(&self) -> Option<&[u8]> {
        Some(self.bytes)
    }
}

/// Storage over any `embedded_io::Read + Seek` (seek, then read).
#[derive(Debug)]
pub struct ReadSeekStorage<R> {
    inner: R,
    len: u64,
}

/// The error of [`ReadSeekStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReadSeekError<E> {
    /// The reader failed.
    Io(E),
    /// The reader ended before the buffer was full.
    UnexpectedEof,
}

impl<E: embedded_io::Error> core::fmt::Display for ReadSeekError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadSeekError::Io(e) => write!(f, "read failed: {:?}", e.kind()),
            ReadSeekError::UnexpectedEof => f.write_str("unexpected end of storage"),
        }
    }
}

impl<E: embedded_io::Error> core::error::Error for ReadSeekError<E> {}

impl<E: embedded_io::Error> embedded_io::Error for ReadSeekError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            ReadSeekError::Io(e) => e.kind(),
            ReadSeekError::UnexpectedEof => ErrorKind::Other,
        }
    }
}

impl<R: Read + Seek> ReadSeekStorage<R> {
    /// Wraps `inner`, seeking to its end once to learn the length.
    pub fn new(mut inner: R) -> core::result::Result<Self, R::Error> {
        let len = inner.seek(SeekFrom::End(0))?;
        Ok(Self { inner, len })
    }

    /// Gives the reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read + Seek> ErrorType for ReadSeekStorage<R> {
    type Error = ReadSeekError<R::Error>;
}

impl<R: Read + Seek> Storage for ReadSeekStorage<R> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), Self::Error> {
        self.inner.seek(SeekFrom::Start(offset)).map_err(ReadSeekError::Io)?;
        self.inner.read_exact(buf).map_err(|e| match e {
            ReadExactError::UnexpectedEof => ReadSeekError::UnexpectedEof,
            ReadExactError::Other(e) => ReadSeekError::Io(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_storage_reads_in_range_and_refuses_out_of_range() {
        let data = [1u8, 2, 3, 4, 5];
        let mut s = SliceStorage::new(&data);
        let mut buf = [0u8; 2];
        s.read_at(3, &mut buf).unwrap();
        assert_eq!(buf, [4, 5]);
        assert_eq!(s.read_at(4, &mut buf), Err(ErrorKind::InvalidInput));
        assert!(matches!(read_exact_at(&mut s, 4, &mut buf), Err(Error::Truncated { .. })));
    }
}
