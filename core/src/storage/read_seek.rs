//! [`ReadSeekStorage`]: storage over any `embedded_io::Read + Seek` (seek, then read exactly).
//! Knows nothing of GGUF, the arena or the cache.

use embedded_io::{ErrorKind, ErrorType, Read, ReadExactError, Seek, SeekFrom};

use crate::storage::Storage;

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
