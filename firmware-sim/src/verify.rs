//! Integrity of the weights in storage (issue 7, item 4).
//!
//! `spool-sim checksum -m MODEL -o SIDECAR` reads a trusted copy of the model and writes one
//! CRC32 per range the core reads whole: every plan unit (row blocks of the matrices, which
//! depend only on the model, never on the budget), every norm weight, every embedding row, the
//! whole embedding table (read at once when pinned), and the metadata before the first tensor.
//! `spool-sim run --verify SIDECAR` checks the metadata at open, then wraps the storage so that
//! each read of one of those ranges is checked as it lands, on the caller's reads and the
//! prefetch thread's alike; a mismatch becomes an error naming the unit. Owns the sidecar
//! format and [`VerifyStorage`]; it knows nothing of the engine beyond the public plan.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use embedded_io::{ErrorKind, ErrorType};
use spool_core::{ModelInfo, Storage};
use spool_std::faults::FaultInjector;
use spool_std::{FileStorage, MmapStorage};

use crate::{Backend, RunOptions, RunReport};

const MAGIC: &str = "spool-crc32 v1";

/// A byte range of the model the core reads whole, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Absolute offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it holds, e.g. `blk.3.ffn_up.weight rows 0..172`.
    pub label: String,
}

/// The ranges of `model`, in file order of the plan: the metadata, the norms, the plan units,
/// then the embedding table and its rows.
pub fn ranges(model: &ModelInfo) -> Result<Vec<Range>, String> {
    let mut out = Vec::new();
    let roles = model.arch.roles;
    let used = model.layers.iter().flat_map(|layer| layer.iter().take(roles.len()));
    let first = used.chain([&model.token_embd, &model.output, &model.output_norm]).chain(model.rope_freqs.as_ref());
    let data = first.map(|t| t.offset).min().unwrap_or(0);
    out.push(Range { offset: 0, len: data, label: "metadata and tensor table".into() });
    for (l, layer) in model.layers.iter().enumerate() {
        for (&lt, &t) in roles.iter().zip(layer).filter(|(r, _)| r.is_norm()) {
            out.push(Range { offset: t.offset, len: t.bytes(), label: format!("blk.{l}.{}.weight", lt.gguf_part()) });
        }
    }
    let t = model.output_norm;
    out.push(Range { offset: t.offset, len: t.bytes(), label: "output_norm.weight".into() });
    if let Some(t) = model.rope_freqs {
        out.push(Range { offset: t.offset, len: t.bytes(), label: "rope_freqs.weight".into() });
    }
    // The units depend on the model alone (their size is a function of the tensor sizes):
    // any budget gives the same list, so the largest one is used.
    let plan = spool_core::plan(model, 1, usize::MAX / 4).map_err(|e| e.to_string())?;
    for u in plan.units.iter() {
        out.push(Range {
            offset: u.offset,
            len: u.bytes as u64,
            label: format!("{} rows {}..{}", u.tensor, u.row0, u.row0 + u.rows),
        });
    }
    let (embd, name) =
        if model.tied_output { (model.output, "output.weight") } else { (model.token_embd, "token_embd.weight") };
    if !model.tied_output {
        out.push(Range { offset: embd.offset, len: embd.bytes(), label: name.into() });
    }
    for r in 0..embd.rows as u64 {
        let rb = embd.row_bytes();
        out.push(Range { offset: embd.offset + r * rb, len: rb, label: format!("{name} row {r}") });
    }
    Ok(out)
}

/// One checksum of a sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sum {
    /// The range.
    pub range: Range,
    /// Its CRC32 (IEEE, as `crc32fast`).
    pub crc: u32,
}

/// A sidecar: the model's length and the checksum of each range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// Length of the file it was written from.
    pub file_len: u64,
    /// The checksums, in [`ranges`] order.
    pub sums: Vec<Sum>,
}

fn read_range<S: Storage>(storage: &mut S, r: &Range) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; usize::try_from(r.len).map_err(|_| format!("{}: too large", r.label))?];
    spool_core::storage::read_exact_at(storage, r.offset, &mut buf).map_err(|e| format!("{}: {e}", r.label))?;
    Ok(buf)
}

impl Sidecar {
    /// Reads every range of the model in `storage` (a trusted copy) and checksums it.
    pub fn compute<S: Storage>(storage: &mut S) -> Result<Sidecar, String> {
        let model = ModelInfo::load(storage).map_err(|e| e.to_string())?;
        let sums = ranges(&model)?
            .into_iter()
            .map(|range| Ok(Sum { crc: crc32fast::hash(&read_range(storage, &range)?), range }))
            .collect::<Result<_, String>>()?;
        Ok(Sidecar { file_len: storage.len(), sums })
    }

    /// The text form: a magic line, the file length, then `offset len crc label` per range.
    pub fn to_text(&self) -> String {
        let mut s = format!("{MAGIC}\nfile_len {}\n", self.file_len);
        for x in &self.sums {
            let _ = writeln!(s, "{} {} {:08x} {}", x.range.offset, x.range.len, x.crc, x.range.label);
        }
        s
    }

    /// Parses [`Sidecar::to_text`].
    pub fn parse(text: &str) -> Result<Sidecar, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("not a spool checksum sidecar (the first line must be `{MAGIC}`)"));
        }
        let file_len = lines
            .next()
            .and_then(|l| l.strip_prefix("file_len "))
            .and_then(|v| v.parse().ok())
            .ok_or("the second line must be `file_len N`")?;
        let mut sums = Vec::new();
        for (i, line) in lines.enumerate() {
            let bad = || format!("line {}: expected `offset len crc32 label`, got `{line}`", i + 3);
            let mut f = line.splitn(4, ' ');
            let (Some(o), Some(l), Some(c), Some(label)) = (f.next(), f.next(), f.next(), f.next()) else {
                return Err(bad());
            };
            let range = Range {
                offset: o.parse().map_err(|_| bad())?,
                len: l.parse().map_err(|_| bad())?,
                label: label.into(),
            };
            sums.push(Sum { range, crc: u32::from_str_radix(c, 16).map_err(|_| bad())? });
        }
        Ok(Sidecar { file_len, sums })
    }

    /// Reads a sidecar file.
    pub fn read(path: &str) -> Result<Sidecar, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--verify {path}: cannot read the checksum sidecar: {e}; write one with `spool-sim checksum -m MODEL -o {path}` from a trusted copy"))?;
        Sidecar::parse(&text).map_err(|e| format!("--verify {path}: {e}"))
    }

    /// Errors unless the sidecar describes exactly the ranges of `model` in `storage`.
    pub fn check_matches(&self, model: &ModelInfo, file_len: u64) -> Result<(), String> {
        let fix = "write the sidecar again with `spool-sim checksum` from a trusted copy of this model";
        if self.file_len != file_len {
            return Err(format!(
                "the sidecar is for a file of {} bytes, the model has {file_len}; {fix}",
                self.file_len
            ));
        }
        let want = ranges(model)?;
        if want.len() != self.sums.len() {
            return Err(format!("the sidecar has {} ranges, the model has {}; {fix}", self.sums.len(), want.len()));
        }
        if let Some((w, s)) = want.iter().zip(&self.sums).find(|(w, s)| **w != s.range) {
            return Err(format!(
                "the sidecar's range `{}` differs from the model's `{}`; {fix}",
                s.range.label, w.label
            ));
        }
        Ok(())
    }
}

/// What [`VerifyStorage`] reports.
#[derive(Debug)]
pub enum VerifyError<E> {
    /// The inner storage failed.
    Io(E),
    /// A range's bytes do not match the sidecar.
    Corrupt,
}

impl<E: embedded_io::Error> std::fmt::Display for VerifyError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Io(e) => write!(f, "read failed: {:?}", e.kind()),
            VerifyError::Corrupt => f.write_str("CRC32 mismatch against the sidecar"),
        }
    }
}

impl<E: embedded_io::Error> std::error::Error for VerifyError<E> {}

impl<E: embedded_io::Error> embedded_io::Error for VerifyError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            VerifyError::Io(e) => e.kind(),
            VerifyError::Corrupt => ErrorKind::InvalidData,
        }
    }
}

struct Table {
    by_range: HashMap<(u64, u64), usize>,
    sidecar: Sidecar,
    /// The first mismatch, for the message (the core's error carries only an `ErrorKind`).
    failure: Mutex<Option<String>>,
}

/// A storage that checks every read of a sidecar range against its CRC32. Reads of other
/// ranges (the parser's buffered reads of the metadata, checked once at open) pass through.
pub struct VerifyStorage<S> {
    inner: S,
    table: Arc<Table>,
}

impl<S> VerifyStorage<S> {
    /// Wraps `inner` with the checksums of `sidecar`.
    pub fn new(inner: S, sidecar: Sidecar) -> Self {
        let by_range = sidecar.sums.iter().enumerate().map(|(i, s)| ((s.range.offset, s.range.len), i)).collect();
        VerifyStorage { inner, table: Arc::new(Table { by_range, sidecar, failure: Mutex::new(None) }) }
    }

    /// The same checks over another handle of the same storage (for the prefetch thread).
    pub fn sharing<T>(&self, inner: T) -> VerifyStorage<T> {
        VerifyStorage { inner, table: self.table.clone() }
    }

    /// What the first mismatch was, if any.
    pub fn failure(&self) -> Option<String> {
        self.table.failure.lock().ok().and_then(|f| f.clone())
    }
}

impl<S: Storage> ErrorType for VerifyStorage<S> {
    type Error = VerifyError<S::Error>;
}

impl<S: Storage> Storage for VerifyStorage<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read_at(offset, buf).map_err(VerifyError::Io)?;
        if let Some(&i) = self.table.by_range.get(&(offset, buf.len() as u64)) {
            let want = &self.table.sidecar.sums[i];
            let got = crc32fast::hash(buf);
            if got != want.crc {
                let msg = format!(
                    "--verify: `{}` (bytes {}..{}) reads with CRC32 {got:08x}, the sidecar says {:08x}: the storage is corrupt; copy the model again from a trusted source",
                    want.range.label,
                    offset,
                    offset + want.range.len,
                    want.crc
                );
                if let Ok(mut f) = self.table.failure.lock() {
                    f.get_or_insert(msg);
                }
                return Err(VerifyError::Corrupt);
            }
        }
        Ok(())
    }
}

/// `run --verify SIDECAR`: checks the sidecar against the model and the metadata against the
/// sidecar, then runs with every sidecar range checked as it is read.
pub fn run_verified(
    opts: &RunOptions,
    sidecar_path: &str,
    on_token: crate::run::OnToken<'_>,
) -> Result<RunReport, String> {
    let sidecar = Sidecar::read(sidecar_path)?;
    let err = |e: std::io::Error| format!("cannot open model `{}`: {e}", opts.model);
    // --faults sits under the check, as a failing device would.
    let faults = FaultInjector::new(opts.faults.unwrap_or_default(), opts.model.as_ref()).map_err(err)?;
    match opts.backend {
        Backend::File | Backend::Flash | Backend::Direct => {
            let file = FileStorage::open(faults.path()).map_err(err)?;
            let reader = file.try_clone().map_err(err)?;
            run_checked(faults.wrap(file), faults.wrap(reader), sidecar, opts, on_token)
        }
        Backend::Mmap => {
            let map = MmapStorage::open(faults.path()).map_err(err)?;
            run_checked(faults.wrap(map.clone()), faults.wrap(map), sidecar, opts, on_token)
        }
    }
}

fn run_checked<S: Storage, R: Storage + Send>(
    mut storage: S,
    reader: R,
    sidecar: Sidecar,
    opts: &RunOptions,
    on_token: crate::run::OnToken<'_>,
) -> Result<RunReport, String> {
    let model = ModelInfo::load(&mut storage).map_err(|e| e.to_string())?;
    sidecar.check_matches(&model, storage.len())?;
    let meta = &sidecar.sums[0];
    let got = crc32fast::hash(&read_range(&mut storage, &meta.range)?);
    if got != meta.crc {
        return Err(format!(
            "--verify: the {} (bytes 0..{}) read with CRC32 {got:08x}, the sidecar says {:08x}: the storage is corrupt",
            meta.range.label, meta.range.len, meta.crc
        ));
    }
    let storage = VerifyStorage::new(storage, sidecar);
    let reader = storage.sharing(reader);
    let table = storage.table.clone();
    crate::run::run_on_with(storage, reader, opts, on_token).map_err(|e| {
        match table.failure.lock().ok().and_then(|f| f.clone()) {
            Some(why) => format!("{why} ({e})"),
            None => e,
        }
    })
}

/// `spool-sim checksum -m MODEL -o SIDECAR`.
pub fn cli(args: &[String], out: &mut dyn std::io::Write) -> Result<(), String> {
    let (mut model, mut side) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("-m" | "--model", Some(v)) => model = Some(v.clone()),
            ("-o" | "--out", Some(v)) => side = Some(v.clone()),
            _ => return Err(format!("checksum: bad option `{a}` (usage: spool-sim checksum -m MODEL -o SIDECAR)")),
        }
    }
    let (model, side) =
        (model.ok_or("checksum: -m MODEL is required")?, side.ok_or("checksum: -o SIDECAR is required")?);
    let mut storage = FileStorage::open(&model).map_err(|e| format!("cannot open model `{model}`: {e}"))?;
    let sidecar = Sidecar::compute(&mut storage)?;
    std::fs::write(&side, sidecar.to_text()).map_err(|e| format!("checksum: cannot write {side}: {e}"))?;
    let _ = writeln!(out, "{}: {} CRC32 ranges of {model} ({} bytes)", side, sidecar.sums.len(), sidecar.file_len);
    Ok(())
}
