//! [`SliceStorage`]: storage over bytes already in the address space (XIP flash, a buffer).
//! Knows nothing of GGUF, the arena or the cache.

use embedded_io::{ErrorKind, ErrorType};

use crate::storage::Storage;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::storage::read_exact_at;

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
