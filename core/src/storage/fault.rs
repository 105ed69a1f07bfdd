//! Storage wrappers for tests and bring-up, in the manner of smoltcp's `FaultInjector` and
//! `Tracer`: [`FaultyStorage`] injects the faults a storage can have without an OS (an error at
//! read k, errors at a seeded rate, a short fill, bit flips), deterministically, with no heap;
//! [`CountingStorage`] counts reads and bytes. Both wrap any [`Storage`] and change nothing else.

use embedded_io::{Error as _, ErrorKind, ErrorType};

use crate::storage::Storage;

/// Which faults a [`FaultyStorage`] injects. Reads are numbered from 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Faults {
    /// Read number `k` fails (once).
    pub fail_at: Option<u64>,
    /// Each read fails with this probability, in parts per million.
    pub fail_ppm: u32,
    /// Read number `k` fills only the first half of its buffer, then fails.
    pub short_fill_at: Option<u64>,
    /// Read number `k` succeeds with one bit flipped (silent corruption; the bit is drawn
    /// from the seeded generator).
    pub flip_at: Option<u64>,
    /// Each read that succeeds has one bit flipped with this probability, in parts per million
    /// (silent corruption: the read reports success).
    pub flip_ppm: u32,
    /// Seed of the generator behind the rates (xorshift64; 0 is replaced by a fixed seed).
    pub seed: u64,
}

/// A storage that injects [`Faults`] into the reads of `S`. Injected failures report
/// [`ErrorKind::Interrupted`]; the inner storage's own errors keep their kind.
#[derive(Debug)]
pub struct FaultyStorage<S> {
    inner: S,
    faults: Faults,
    reads: u64,
    rng: u64,
    injected: u64,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, faults: Faults) -> Self {
        let rng = if faults.seed == 0 { 0x2545_F491_4F6C_DD1D } else { faults.seed };
        Self { inner, faults, reads: 0, rng, injected: 0 }
    }

    /// Wraps `inner` so that read number `k` fails.
    pub fn fail_at(inner: S, k: u64) -> Self {
        Self::new(inner, Faults { fail_at: Some(k), ..Faults::default() })
    }

    /// Reads so far.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Sets the number of reads so far: the next read is number `reads + 1`. A wrapper whose
    /// clones share one read count (the engine's handle and a reader thread's) sets it before
    /// each read, so that "read k" means the k-th read of the run, whichever handle makes it.
    pub fn set_reads(&mut self, reads: u64) {
        self.reads = reads;
    }

    /// Faults injected so far (failures, short fills and flips).
    pub fn injected(&self) -> u64 {
        self.injected
    }

    /// Gives the inner storage back.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// True with probability `ppm` per million.
    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.next() % 1_000_000 < ppm as u64
    }
}

impl<S: Storage> ErrorType for FaultyStorage<S> {
    type Error = ErrorKind;
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ErrorKind> {
        self.reads += 1;
        let k = self.reads;
        let fail_ppm = self.faults.fail_ppm;
        if self.faults.fail_at == Some(k) || self.chance(fail_ppm) {
            self.injected += 1;
            return Err(ErrorKind::Interrupted);
        }
        if self.faults.short_fill_at == Some(k) {
            self.injected += 1;
            let half = buf.len() / 2;
            self.inner.read_at(offset, &mut buf[..half]).map_err(|e| e.kind())?;
            return Err(ErrorKind::Interrupted);
        }
        self.inner.read_at(offset, buf).map_err(|e| e.kind())?;
        let flip_ppm = self.faults.flip_ppm;
        if !buf.is_empty() && (self.faults.flip_at == Some(k) || self.chance(flip_ppm)) {
            self.injected += 1;
            let bit = self.next() % (buf.len() as u64 * 8);
            buf[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        Ok(())
    }

    fn io_align(&self) -> usize {
        self.inner.io_align()
    }

    /// With no fault configured, the inner storage's own span read (counted); otherwise the
    /// faults of [`Storage::read_at`] into `buf[..len]`.
    fn read_span(&mut self, offset: u64, len: usize, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if self.faults == (Faults { seed: self.faults.seed, ..Faults::default() }) {
            self.reads += 1;
            return self.inner.read_span(offset, len, buf).map_err(|e| e.kind());
        }
        self.read_at(offset, &mut buf[..len])?;
        Ok(0)
    }
}

/// A storage that counts the reads of `S` and their bytes.
#[derive(Debug)]
pub struct CountingStorage<S> {
    inner: S,
    reads: u64,
    bytes: u64,
    last: Option<(u64, usize)>,
}

impl<S: Storage> CountingStorage<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner, reads: 0, bytes: 0, last: None }
    }

    /// Reads issued so far (failed ones included).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Bytes asked for so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The offset and length of the last read.
    pub fn last(&self) -> Option<(u64, usize)> {
        self.last
    }

    /// Gives the inner storage back.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Storage> ErrorType for CountingStorage<S> {
    type Error = S::Error;
}

impl<S: Storage> Storage for CountingStorage<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), S::Error> {
        self.reads += 1;
        self.bytes += buf.len() as u64;
        self.last = Some((offset, buf.len()));
        self.inner.read_at(offset, buf)
    }

    fn io_align(&self) -> usize {
        self.inner.io_align()
    }

    fn read_span(&mut self, offset: u64, len: usize, buf: &mut [u8]) -> Result<usize, S::Error> {
        self.reads += 1;
        self.bytes += len as u64;
        self.last = Some((offset, len));
        self.inner.read_span(offset, len, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SliceStorage;

    const DATA: [u8; 64] = {
        let mut d = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            d[i] = i as u8;
            i += 1;
        }
        d
    };

    #[test]
    fn the_kth_read_fails_once() {
        let mut s = FaultyStorage::fail_at(SliceStorage::new(&DATA), 2);
        let mut buf = [0u8; 4];
        assert_eq!(s.read_at(0, &mut buf), Ok(()));
        assert_eq!(s.read_at(0, &mut buf), Err(ErrorKind::Interrupted));
        assert_eq!(s.read_at(4, &mut buf), Ok(()));
        assert_eq!((buf, s.reads(), s.injected()), ([4, 5, 6, 7], 3, 1));
    }

    #[test]
    fn a_short_fill_writes_half_and_fails() {
        let mut s =
            FaultyStorage::new(SliceStorage::new(&DATA), Faults { short_fill_at: Some(1), ..Faults::default() });
        let mut buf = [0xAAu8; 8];
        assert_eq!(s.read_at(8, &mut buf), Err(ErrorKind::Interrupted));
        assert_eq!(buf, [8, 9, 10, 11, 0xAA, 0xAA, 0xAA, 0xAA]);
    }

    #[test]
    fn flip_at_flips_one_bit_of_that_read_and_set_reads_renumbers() {
        let faults = Faults { flip_at: Some(3), ..Faults::default() };
        let mut s = FaultyStorage::new(SliceStorage::new(&DATA), faults);
        let mut buf = [0u8; 16];
        assert_eq!(s.read_at(0, &mut buf), Ok(()));
        assert_eq!(buf[..], DATA[..16], "read 1 is clean");
        s.set_reads(2);
        assert_eq!(s.read_at(0, &mut buf), Ok(()), "a flip reports success");
        let bits: u32 = buf.iter().zip(&DATA[..16]).map(|(a, b)| (a ^ b).count_ones()).sum();
        assert_eq!((bits, s.reads(), s.injected()), (1, 3, 1));
    }

    #[test]
    fn rates_are_seeded_and_near_their_probability() {
        let run = |seed| {
            let faults = Faults { fail_ppm: 100_000, flip_ppm: 200_000, seed, ..Faults::default() };
            let mut s = FaultyStorage::new(SliceStorage::new(&DATA), faults);
            let (mut failed, mut flipped) = (0, 0);
            for _ in 0..2000 {
                let mut buf = [0u8; 16];
                match s.read_at(16, &mut buf) {
                    Err(_) => failed += 1,
                    Ok(()) if buf[..] != DATA[16..32] => {
                        let bits: u32 = buf.iter().zip(&DATA[16..32]).map(|(a, b)| (a ^ b).count_ones()).sum();
                        assert_eq!(bits, 1, "a flip changes one bit");
                        flipped += 1;
                    }
                    Ok(()) => {}
                }
            }
            (failed, flipped)
        };
        let (failed, flipped) = run(7);
        assert_eq!(run(7), (failed, flipped), "the same seed gives the same faults");
        assert!((100..300).contains(&failed), "{failed} failures in 2000 at 10%");
        assert!((250..500).contains(&flipped), "{flipped} flips in about 1800 at 20%");
    }

    #[test]
    fn counting_counts_reads_and_bytes() {
        let mut s = CountingStorage::new(SliceStorage::new(&DATA));
        let mut buf = [0u8; 5];
        s.read_at(3, &mut buf).unwrap();
        s.read_at(10, &mut buf[..2]).unwrap();
        assert_eq!((s.reads(), s.bytes(), s.last()), (2, 7, Some((10, 2))));
    }
}
