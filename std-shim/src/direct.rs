//! `--storage direct`: positioned reads that bypass the page cache (`O_DIRECT`, Linux). Owns
//! [`DirectStorage`]: the file's direct-I/O alignment (the device's logical block size from
//! sysfs, else the file system's block size), [`Storage::read_span`], which reads the aligned
//! superset of a unit straight into its slot (the plan gave every slot
//! [`spool_core::storage::io_slack`] bytes for it), and plain [`Storage::read_at`] for the
//! rest (the header, embedding rows, pinned units when no slot exists), through a small
//! page-aligned bounce buffer of [`BOUNCE_BYTES`] per handle: the only I/O memory outside the
//! arena. Must not touch the plan or the cache.

use std::fs::File;
use std::io;
use std::path::Path;

use embedded_io::ErrorType;
use spool_core::storage::span_layout;
use spool_core::Storage;

use crate::{open_regular, IoError};

/// The largest aligned read one `read_at` issues at a time.
const CHUNK: usize = 256 << 10;
/// Bytes of each handle's bounce buffer (outside the arena): one chunk and two blocks.
pub const BOUNCE_BYTES: usize = CHUNK + 2 * PAGE;
/// The largest alignment the page-aligned bounce buffer can honour.
const PAGE: usize = 4096;

/// A file read with `O_DIRECT`: no page cache, so a memory limit counts only the arena.
pub struct DirectStorage {
    file: File,
    len: u64,
    /// Offsets and lengths of every read are multiples of this (a power of two, <= 4096).
    align: usize,
    /// Page-aligned room for one aligned chunk.
    bounce: memmap2::MmapMut,
}

/// Why a file cannot be read with `O_DIRECT`.
#[derive(Debug)]
pub enum DirectError {
    /// The file could not be opened at all (not a regular file, missing, ...).
    Open(io::Error),
    /// The file system refused `O_DIRECT`, at open or on the first aligned read.
    Refused {
        /// The alignment tried, in bytes.
        align: usize,
        /// What the OS said.
        error: io::Error,
    },
    /// The device's alignment exceeds what a page-aligned buffer honours.
    Alignment {
        /// The device's logical block size, in bytes.
        align: usize,
    },
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectError::Open(e) => e.fmt(f),
            DirectError::Refused { align, error } => write!(
                f,
                "the file system refused O_DIRECT (an aligned read of {align} B at offset 0: {error}); \
                 use --storage file, or put the model on a file system that supports direct I/O (ext4, xfs)"
            ),
            DirectError::Alignment { align } => write!(
                f,
                "direct I/O needs {align}-byte alignment, more than the {PAGE}-byte page this reader aligns to; \
                 use --storage file"
            ),
        }
    }
}

impl std::error::Error for DirectError {}

impl DirectStorage {
    /// Opens `path` (a regular file, [`open_regular`]) for direct reads and checks, with one
    /// aligned read at offset 0, that the file system accepts them.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DirectError> {
        let checked = open_regular(path.as_ref()).map_err(DirectError::Open)?;
        let align = alignment(&checked);
        if align > PAGE {
            return Err(DirectError::Alignment { align });
        }
        let file = reopen_direct(&checked).map_err(|error| DirectError::Refused { align, error })?;
        let len = file.metadata().map_err(DirectError::Open)?.len();
        let bounce = memmap2::MmapMut::map_anon(BOUNCE_BYTES).map_err(DirectError::Open)?;
        let mut s = DirectStorage { file, len, align, bounce };
        let probe = s.len.min(align as u64) as usize;
        if probe > 0 {
            let mut first = vec![0u8; probe];
            s.read_into(0, &mut first).map_err(|error| DirectError::Refused { align, error })?;
        }
        Ok(s)
    }

    /// The alignment of every read, in bytes.
    pub fn alignment(&self) -> usize {
        self.align
    }

    /// Another handle on the same file (for a reader thread), with its own bounce buffer.
    pub fn try_clone(&self) -> io::Result<Self> {
        let bounce = memmap2::MmapMut::map_anon(BOUNCE_BYTES)?;
        Ok(DirectStorage { file: self.file.try_clone()?, len: self.len, align: self.align, bounce })
    }

    /// Fills `buf` from `offset`, one aligned chunk at a time through the bounce buffer.
    fn read_into(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let a = self.align as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let start = at - at % a;
            let skip = (at - start) as usize;
            let want = (buf.len() - done).min(CHUNK);
            // The aligned superset of `at..at + want`, whole blocks (the last may pass the end of
            // the file: the OS then returns fewer bytes).
            let span = (skip + want).div_ceil(self.align) * self.align;
            let got = read_full(&self.file, start, &mut self.bounce[..span])?;
            if got <= skip {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("direct read at {at}: the file ends at {} of {} bytes", start + got as u64, self.len),
                ));
            }
            let n = (got - skip).min(want);
            buf[done..done + n].copy_from_slice(&self.bounce[skip..skip + n]);
            done += n;
        }
        Ok(())
    }
}

/// Reads at `offset` until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The same open file again, with `O_DIRECT` (through `/proc/self/fd`, so it is the file that
/// was checked, not whatever the path names now).
fn reopen_direct(file: &File) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).custom_flags(libc::O_DIRECT);
    options.open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// The file's direct-I/O alignment: the logical block size of the device under it (sysfs, the
/// device or, for a partition, its disk), else the file system's block size, else 4096.
fn alignment(file: &File) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else { return PAGE };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let base = format!("/sys/dev/block/{major}:{minor}");
    for path in [format!("{base}/queue/logical_block_size"), format!("{base}/../queue/logical_block_size")] {
        if let Some(n) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<usize>().ok()) {
            if n.is_power_of_two() {
                return n;
            }
        }
    }
    match meta.blksize() as usize {
        n if n.is_power_of_two() && n >= 512 => n,
        _ => PAGE,
    }
}

impl ErrorType for DirectStorage {
    type Error = IoError;
}

impl Storage for DirectStorage {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.read_into(offset, buf).map_err(IoError)
    }

    fn io_align(&self) -> usize {
        self.align
    }

    /// One `O_DIRECT` read of the aligned superset of `offset..offset + len` into an aligned
    /// place of `buf` (no copy); a buffer without the slack is read through the bounce buffer.
    fn read_span(&mut self, offset: u64, len: usize, buf: &mut [u8]) -> Result<usize, IoError> {
        let (at, start, span) = span_layout(self.align, buf.as_ptr() as usize, offset, len);
        let skip = (offset - start) as usize;
        let first = at - skip;
        let Some(dst) = buf.get_mut(first..first + span) else {
            self.read_into(offset, &mut buf[..len]).map_err(IoError)?;
            return Ok(0);
        };
        let got = read_full(&self.file, start, dst).map_err(IoError)?;
        if got < skip + len {
            return Err(IoError(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("direct read at {offset}: the file ends at {} of {} bytes", start + got as u64, self.len),
            )));
        }
        Ok(at)
    }
}
