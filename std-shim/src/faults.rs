//! Fault injection with an OS, in the manner of smoltcp's `FaultInjector`: a [`FaultSpec`]
//! parsed from a string, and [`Faulty`], a storage wrapper that injects it.
//!
//! Owns the spec's grammar and the faults that need an OS: a model file that shrinks for real
//! (a copy of it, truncated to half), a latency spike (a sleep) and a reader panic. The faults
//! a storage can have without an OS (an error at read k or at a seeded rate, a short fill, a bit
//! flip) are the core's [`FaultyStorage`], which [`Faulty`] wraps. It must not touch the engine:
//! the run sees only a storage that misbehaves.
//!
//! # Grammar
//!
//! A spec is a comma-separated list of `key=value` parts, each key at most once (`none` or an
//! empty string: no faults). Reads are numbered from 1, across every handle that
//! [`FaultInjector::wrap`] made (the engine's and the prefetch reader's clone share one count).
//!
//! | part               | fault                                                              |
//! |--------------------|--------------------------------------------------------------------|
//! | `error-at=K`       | read K fails (`Interrupted`)                                       |
//! | `error-rate=P`     | each read fails with probability P (0 to 1), seeded                |
//! | `seed=S`           | seed of the rates and of the flipped bit (default: a fixed one)    |
//! | `short-fill=K`     | read K fills half its buffer, then fails                           |
//! | `flip=K`           | read K succeeds with one bit flipped (silent corruption)           |
//! | `flip-rate=P`      | each successful read has a bit flipped with probability P, seeded  |
//! | `shrink-at=K`      | after read K the model file is truncated to half its length; the   |
//! |                    | run reads a temporary copy (see [`FaultInjector::new`])            |
//! | `latency=MS@K`     | read K first sleeps MS milliseconds (the tokens must not change)   |
//! | `panic-at=K`       | read K panics, as a buggy backend would (on the prefetch reader    |
//! |                    | thread this becomes `LoaderLost`; on the caller's thread it is a   |
//! |                    | panic of the caller)                                               |
//!
//! K is a whole number ≥ 1, MS a whole number of milliseconds ≤ 60000, P a decimal in [0, 1].
//! Example: `error-rate=0.01,seed=7,latency=200@30`.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use embedded_io::{ErrorKind, ErrorType};
use spool_core::{Faults, FaultyStorage, Storage};

/// The accepted parts, for error messages.
pub const ACCEPTED: &str = "error-at=K, error-rate=P, seed=S, short-fill=K, flip=K, flip-rate=P, shrink-at=K, \
                            latency=MS@K, panic-at=K (K >= 1, P in [0, 1], MS <= 60000), comma-separated";

/// The faults of a run: the core's [`Faults`] and the ones that need an OS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultSpec {
    /// Injected by the core's [`FaultyStorage`].
    pub core: Faults,
    /// After this read the model file (a copy) is cut to half its length.
    pub shrink_at: Option<u64>,
    /// This read first sleeps this long: `(read, milliseconds)`.
    pub latency: Option<(u64, u64)>,
    /// This read panics.
    pub panic_at: Option<u64>,
}

/// What is wrong with a spec string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultSpecError {
    /// A part whose key is not one of [`ACCEPTED`].
    UnknownKey {
        /// The part as given.
        part: String,
    },
    /// A part whose value does not parse.
    BadValue {
        /// The part as given.
        part: String,
        /// What its value must be.
        expected: &'static str,
    },
    /// A key given twice.
    Repeated {
        /// The key.
        key: String,
    },
}

impl fmt::Display for FaultSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey { part } => write!(f, "fault `{part}` is not known; accepted: {ACCEPTED}"),
            Self::BadValue { part, expected } => {
                write!(f, "fault `{part}`: the value must be {expected}; accepted: {ACCEPTED}")
            }
            Self::Repeated { key } => write!(f, "fault `{key}` is given twice; give each kind at most once"),
        }
    }
}

impl std::error::Error for FaultSpecError {}

const READ: &str = "a read number, a whole number >= 1";
const RATE: &str = "a probability, a decimal from 0 to 1";
const SEED: &str = "a whole number";
const LATENCY: &str = "MS@K: milliseconds (<= 60000) @ a read number >= 1";

fn read_number(part: &str, v: &str) -> Result<u64, FaultSpecError> {
    match v.parse::<u64>() {
        Ok(k) if k >= 1 => Ok(k),
        _ => Err(FaultSpecError::BadValue { part: part.into(), expected: READ }),
    }
}

fn ppm(part: &str, v: &str) -> Result<u32, FaultSpecError> {
    match v.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok((p * 1e6).round() as u32),
        _ => Err(FaultSpecError::BadValue { part: part.into(), expected: RATE }),
    }
}

impl FaultSpec {
    /// Parses a spec (see the module's grammar).
    pub fn parse(s: &str) -> Result<Self, FaultSpecError> {
        let mut spec = FaultSpec::default();
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(spec);
        }
        let mut seen: Vec<&str> = Vec::new();
        for part in s.split(',').map(str::trim) {
            let Some((key, v)) = part.split_once('=') else {
                return Err(FaultSpecError::UnknownKey { part: part.into() });
            };
            let (key, v) = (key.trim(), v.trim());
            if seen.contains(&key) {
                return Err(FaultSpecError::Repeated { key: key.into() });
            }
            match key {
                "error-at" => spec.core.fail_at = Some(read_number(part, v)?),
                "error-rate" => spec.core.fail_ppm = ppm(part, v)?,
                "seed" => {
                    spec.core.seed =
                        v.parse().map_err(|_| FaultSpecError::BadValue { part: part.into(), expected: SEED })?
                }
                "short-fill" => spec.core.short_fill_at = Some(read_number(part, v)?),
                "flip" => spec.core.flip_at = Some(read_number(part, v)?),
                "flip-rate" => spec.core.flip_ppm = ppm(part, v)?,
                "shrink-at" => spec.shrink_at = Some(read_number(part, v)?),
                "panic-at" => spec.panic_at = Some(read_number(part, v)?),
                "latency" => {
                    let bad = || FaultSpecError::BadValue { part: part.into(), expected: LATENCY };
                    let (ms, k) = v.split_once('@').ok_or_else(bad)?;
                    let ms: u64 = ms.trim().parse().map_err(|_| bad())?;
                    let k: u64 = k.trim().parse().map_err(|_| bad())?;
                    if ms > 60_000 || k == 0 {
                        return Err(bad());
                    }
                    spec.latency = Some((k, ms));
                }
                _ => return Err(FaultSpecError::UnknownKey { part: part.into() }),
            }
            seen.push(key);
        }
        Ok(spec)
    }

    /// True if it injects nothing.
    pub fn is_empty(&self) -> bool {
        let mut unseeded = *self;
        unseeded.core.seed = 0;
        unseeded == FaultSpec::default()
    }
}

impl std::str::FromStr for FaultSpec {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        Self::parse(s)
    }
}

/// A temporary copy of the model, removed when the last handle is dropped.
#[derive(Debug)]
struct TempCopy {
    path: PathBuf,
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug)]
struct Shared {
    spec: FaultSpec,
    reads: AtomicU64,
    copy: Option<TempCopy>,
}

/// The faults of one run: the shared read count, and the model's copy when it must shrink.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    shared: Arc<Shared>,
    path: PathBuf,
}

impl FaultInjector {
    /// Prepares `spec` for the model at `model`. With `shrink-at` the file is copied next to
    /// the system's temporary files first, and [`FaultInjector::path`] is the copy (removed
    /// when the injector and every wrapped storage are dropped): the run must open that.
    pub fn new(spec: FaultSpec, model: &Path) -> io::Result<Self> {
        let (path, copy) = if spec.shrink_at.is_some() {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("spool-faults-{}-{n}.gguf", std::process::id()));
            std::fs::copy(model, &path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("shrink-at: cannot copy {} to {}: {e}", model.display(), path.display()),
                )
            })?;
            (path.clone(), Some(TempCopy { path }))
        } else {
            (model.to_path_buf(), None)
        };
        Ok(Self { shared: Arc::new(Shared { spec, reads: AtomicU64::new(0), copy }), path })
    }

    /// The file the run must open: the model, or its copy with `shrink-at`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads so far, over every wrapped handle.
    pub fn reads(&self) -> u64 {
        self.shared.reads.load(Ordering::SeqCst)
    }

    /// Wraps one handle on the model (opened at [`FaultInjector::path`]).
    pub fn wrap<S: Storage>(&self, inner: S) -> Faulty<S> {
        Faulty { inner: FaultyStorage::new(inner, self.shared.spec.core), shared: Arc::clone(&self.shared) }
    }
}

/// A storage that injects a [`FaultSpec`] into the reads of `S`; clones made by one
/// [`FaultInjector`] share the read count. Failures report [`ErrorKind::Interrupted`] (the
/// core's faults) or the inner storage's error (after a shrink).
#[derive(Debug)]
pub struct Faulty<S> {
    inner: FaultyStorage<S>,
    shared: Arc<Shared>,
}

impl<S: Storage> ErrorType for Faulty<S> {
    type Error = ErrorKind;
}

impl<S: Storage> Storage for Faulty<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let k = self.shared.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let spec = &self.shared.spec;
        if spec.panic_at == Some(k) {
            panic!("storage reader panic injected at read {k} (faults: panic-at={k})");
        }
        if let Some((at, ms)) = spec.latency {
            if at == k {
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
        self.inner.set_reads(k - 1);
        let result = self.inner.read_at(offset, buf);
        if spec.shrink_at == Some(k) {
            if let Some(copy) = &self.shared.copy {
                let half = self.inner.len() / 2;
                OpenOptions::new()
                    .write(true)
                    .open(&copy.path)
                    .and_then(|f| f.set_len(half))
                    .map_err(|e| ErrorKind::from(e.kind()))?;
            }
        }
        result
    }

    fn io_align(&self) -> usize {
        self.inner.io_align()
    }

    /// Counted as a read; with no fault configured it is the inner storage's span read (a
    /// direct handle's read straight into the slot), else the faults of `read_at`.
    fn read_span(&mut self, offset: u64, len: usize, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if self.shared.spec.is_empty() {
            let k = self.shared.reads.fetch_add(1, Ordering::SeqCst) + 1;
            self.inner.set_reads(k - 1);
            return self.inner.read_span(offset, len, buf);
        }
        self.read_at(offset, &mut buf[..len])?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_parses() {
        let s = FaultSpec::parse(
            "error-at=3, error-rate=0.25,seed=9,short-fill=4,flip=5,flip-rate=0.5,shrink-at=6,latency=20@7,panic-at=8",
        )
        .unwrap();
        let core = Faults {
            fail_at: Some(3),
            fail_ppm: 250_000,
            short_fill_at: Some(4),
            flip_at: Some(5),
            flip_ppm: 500_000,
            seed: 9,
        };
        assert_eq!(s, FaultSpec { core, shrink_at: Some(6), latency: Some((7, 20)), panic_at: Some(8) });
        assert!(FaultSpec::parse("none").unwrap().is_empty());
        assert!(FaultSpec::parse("").unwrap().is_empty());
        assert!(FaultSpec::parse("seed=4").unwrap().is_empty());
        assert!(!s.is_empty());
    }

    #[test]
    fn bad_specs_name_the_part_and_the_accepted_forms() {
        for (spec, part) in [
            ("error-at=0", "error-at=0"),
            ("error-at=x", "error-at=x"),
            ("error-rate=1.5", "error-rate=1.5"),
            ("latency=20", "latency=20"),
            ("latency=70000@2", "latency=70000@2"),
            ("flip=3,bogus=1", "bogus=1"),
            ("panic", "panic"),
        ] {
            let e = FaultSpec::parse(spec).unwrap_err().to_string();
            assert!(e.contains(&format!("`{part}`")), "{spec}: {e}");
            assert!(e.contains("accepted: error-at=K"), "{spec}: {e}");
        }
        let e = FaultSpec::parse("flip=1,flip=2").unwrap_err();
        assert_eq!(e, FaultSpecError::Repeated { key: "flip".into() });
    }
}
