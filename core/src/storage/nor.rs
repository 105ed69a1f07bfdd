//! [`NorFlashStorage`]: storage over any `embedded-storage` NOR flash driver (a HAL's QSPI or
//! SPI NOR, internal flash), behind the `embedded-storage` feature. Owns the alignment of reads
//! to the driver's `READ_SIZE`; knows nothing of what the bytes are.

use embedded_io::{ErrorKind, ErrorType};
use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind, ReadNorFlash};

use crate::storage::Storage;

/// A model image at `base..base + len` of a NOR flash. Every read the driver sees starts at a
/// multiple of `F::READ_SIZE` and is a whole number of `READ_SIZE` blocks; an unaligned head or
/// tail goes through a bounce buffer of `B` bytes (`B >= READ_SIZE`, a multiple of it).
pub struct NorFlashStorage<F: ReadNorFlash, const B: usize = 32> {
    flash: F,
    base: u32,
    len: u32,
    bounce: [u8; B],
}

impl<F: ReadNorFlash, const B: usize> NorFlashStorage<F, B> {
    /// The image at `base..base + len` of `flash`; `None` when it does not lie inside the
    /// flash's capacity or `base` is not a multiple of `READ_SIZE`.
    pub fn new(flash: F, base: u32, len: u32) -> Option<Self> {
        const {
            assert!(
                F::READ_SIZE > 0 && B >= F::READ_SIZE && B.is_multiple_of(F::READ_SIZE),
                "B: a multiple of READ_SIZE"
            )
        };
        let end = base.checked_add(len)?;
        (end as u64 <= flash.capacity() as u64 && (base as usize).is_multiple_of(F::READ_SIZE)).then_some(Self {
            flash,
            base,
            len,
            bounce: [0; B],
        })
    }

    /// The driver back.
    pub fn into_inner(self) -> F {
        self.flash
    }
}

fn kind<E: NorFlashError>(e: E) -> ErrorKind {
    match e.kind() {
        NorFlashErrorKind::NotAligned | NorFlashErrorKind::OutOfBounds => ErrorKind::InvalidInput,
        _ => ErrorKind::Other,
    }
}

impl<F: ReadNorFlash, const B: usize> ErrorType for NorFlashStorage<F, B> {
    type Error = ErrorKind;
}

impl<F: ReadNorFlash, const B: usize> Storage for NorFlashStorage<F, B> {
    fn len(&self) -> u64 {
        self.len as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= self.len as u64);
        end.ok_or(ErrorKind::InvalidInput)?;
        let rs = F::READ_SIZE;
        // In range of the image, so below 2^32: `base + offset` fits a u32.
        let mut at = self.base + offset as u32;
        let mut out = buf;
        while !out.is_empty() {
            let skip = at as usize % rs;
            if skip == 0 && out.len() >= rs {
                // Whole blocks straight into the caller's buffer.
                let n = out.len() - out.len() % rs;
                let (now, rest) = core::mem::take(&mut out).split_at_mut(n);
                self.flash.read(at, now).map_err(kind)?;
                at += n as u32;
                out = rest;
            } else {
                // A partial block (the head or the tail) through the bounce buffer.
                let block = &mut self.bounce[..rs];
                self.flash.read(at - skip as u32, block).map_err(kind)?;
                let n = (rs - skip).min(out.len());
                let (now, rest) = core::mem::take(&mut out).split_at_mut(n);
                now.copy_from_slice(&block[skip..skip + n]);
                at += n as u32;
                out = rest;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use embedded_storage::nor_flash::ErrorType as FlashErrorType;

    use super::*;

    /// A NOR flash that refuses any read not aligned to `R` (as real drivers may), over bytes.
    struct Strict<const R: usize> {
        bytes: Vec<u8>,
        reads: usize,
    }

    #[derive(Debug)]
    struct NotAligned;

    impl NorFlashError for NotAligned {
        fn kind(&self) -> NorFlashErrorKind {
            NorFlashErrorKind::NotAligned
        }
    }

    impl<const R: usize> FlashErrorType for Strict<R> {
        type Error = NotAligned;
    }

    impl<const R: usize> ReadNorFlash for Strict<R> {
        const READ_SIZE: usize = R;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NotAligned> {
            let o = offset as usize;
            if !o.is_multiple_of(R) || !bytes.len().is_multiple_of(R) || o + bytes.len() > self.bytes.len() {
                return Err(NotAligned);
            }
            self.reads += 1;
            bytes.copy_from_slice(&self.bytes[o..o + bytes.len()]);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.bytes.len()
        }
    }

    fn every_read_matches<const R: usize>() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        let (base, len) = (2 * R as u32, 150u32);
        let flash = Strict::<R> { bytes: bytes.clone(), reads: 0 };
        let mut s = NorFlashStorage::<_, 32>::new(flash, base, len).unwrap();
        for offset in 0..len as u64 {
            for n in [0usize, 1, 2, 3, 5, 8, 17, 40] {
                let mut buf = [0u8; 40];
                let want = bytes.get((base as u64 + offset) as usize..).and_then(|w| w.get(..n));
                match s.read_at(offset, &mut buf[..n]) {
                    Ok(()) => assert_eq!(Some(&buf[..n]), want, "READ_SIZE {R}, offset {offset}, {n} B"),
                    Err(e) => {
                        assert!(offset + n as u64 > len as u64, "READ_SIZE {R}, offset {offset}, {n} B: {e:?}");
                        assert_eq!(e, ErrorKind::InvalidInput);
                    }
                }
            }
        }
        // A long aligned read is one driver call, not one per block.
        let before = s.flash.reads;
        let mut buf = [0u8; 64];
        s.read_at(0, &mut buf[..(64 / R) * R]).unwrap();
        assert_eq!(s.into_inner().reads - before, 1);
    }

    #[test]
    fn every_read_honours_read_size_and_returns_the_image_bytes() {
        every_read_matches::<1>();
        every_read_matches::<4>();
        every_read_matches::<16>();
    }

    #[test]
    fn an_image_outside_the_flash_or_misaligned_is_refused() {
        let flash = || Strict::<4> { bytes: std::vec![0; 64], reads: 0 };
        assert!(NorFlashStorage::<_, 32>::new(flash(), 0, 64).is_some());
        assert!(NorFlashStorage::<_, 32>::new(flash(), 4, 64).is_none());
        assert!(NorFlashStorage::<_, 32>::new(flash(), 2, 8).is_none());
        assert!(NorFlashStorage::<_, 32>::new(flash(), u32::MAX, 2).is_none());
    }
}
