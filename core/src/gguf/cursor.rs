//! The buffered sequential reader of the GGUF parser: little-endian fields and strings read
//! through a 256-byte stack buffer (small: the parser runs inside `Engine::new`, whose stack
//! peak a microcontroller pays for), every length checked against the file before it is used.
//! Knows nothing of GGUF's keys or tensors.

use crate::error::{Error, Result};
use crate::storage::{read_exact_at, Storage};

/// Sequential reader over a storage, buffered so that small fields cost no I/O call each.
pub(crate) struct Cursor<'s, S: Storage> {
    pub(crate) storage: &'s mut S,
    pos: u64,
    buf: [u8; 256],
    buf_start: u64,
    buf_len: usize,
    /// Bytes fetched from storage so far (for the load statistics).
    pub(crate) bytes_read: u64,
}

impl<'s, S: Storage> Cursor<'s, S> {
    pub(crate) fn new(storage: &'s mut S, pos: u64) -> Self {
        Self { storage, pos, buf: [0; 256], buf_start: 0, buf_len: 0, bytes_read: 0 }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.storage.len()
    }

    /// Errors unless `n` more bytes exist after the cursor.
    pub(crate) fn ensure(&self, n: u64, what: &'static str) -> Result<()> {
        let end = self.pos.checked_add(n).ok_or(Error::Malformed(what))?;
        if end > self.file_len() {
            return Err(Error::Truncated { what, end, file_len: self.file_len() });
        }
        Ok(())
    }

    pub(crate) fn read(&mut self, out: &mut [u8], what: &'static str) -> Result<()> {
        self.ensure(out.len() as u64, what)?;
        let mut done = 0;
        while done < out.len() {
            let in_buf = self.pos >= self.buf_start && self.pos < self.buf_start + self.buf_len as u64;
            if !in_buf {
                let remaining = out.len() - done;
                if remaining >= self.buf.len() {
                    // Large reads bypass the buffer.
                    read_exact_at(self.storage, self.pos, &mut out[done..])?;
                    self.bytes_read += remaining as u64;
                    self.pos += remaining as u64;
                    return Ok(());
                }
                let avail = (self.file_len() - self.pos).min(self.buf.len() as u64) as usize;
                read_exact_at(self.storage, self.pos, &mut self.buf[..avail])?;
                self.bytes_read += avail as u64;
                self.buf_start = self.pos;
                self.buf_len = avail;
            }
            let at = (self.pos - self.buf_start) as usize;
            let n = (self.buf_len - at).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[at..at + n]);
            done += n;
            self.pos += n as u64;
        }
        Ok(())
    }

    pub(crate) fn skip(&mut self, n: u64, what: &'static str) -> Result<()> {
        self.ensure(n, what)?;
        self.pos += n;
        Ok(())
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.read(&mut b, what)?;
        Ok(b)
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f32(&mut self, what: &'static str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// Reads a GGUF string into `out` when it fits, returning its full length; a longer string
    /// is skipped and reported as `None`.
    pub(crate) fn string_into<'b>(&mut self, out: &'b mut [u8], what: &'static str) -> Result<Option<&'b [u8]>> {
        let len = self.u64(what)?;
        self.ensure(len, what)?;
        match usize::try_from(len) {
            Ok(n) if n <= out.len() => {
                self.read(&mut out[..n], what)?;
                Ok(Some(&out[..n]))
            }
            _ => {
                self.skip(len, what)?;
                Ok(None)
            }
        }
    }
}
