//! The real model cut at 200 offsets (every section boundary of the file, one byte either side
//! of each, and an even spread through the rest): `spool-sim run`, as a child process under a
//! deadline, must fail with a message saying the file is short, on every storage backend.
//!
//! No cut can leave a loadable file: the last tensor's data (blk.4.ffn_norm) ends exactly at
//! the end of the file, and the model checks every tensor's end against the file's length
//! before reading any weight, so even a cut of one byte at the end is refused.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use spool_tests::cli;
use spool_tests::gguf::Gguf;

const EXE: &str = env!("CARGO_BIN_EXE_spool-sim-cli");

/// 200 distinct cut lengths in `0..len`, every section boundary (and its neighbours) first.
fn cuts(g: &Gguf, len: u64) -> Vec<u64> {
    let mut set = BTreeSet::new();
    for (_, start, end) in g.sections() {
        for at in [start, start + 1, end.saturating_sub(1)] {
            if at < len {
                set.insert(at);
            }
        }
    }
    let boundaries = set.len();
    assert!(boundaries >= 120, "the file has {boundaries} boundary cuts");
    // The sections alone give more than 200: keep every start, then fill evenly.
    let mut chosen: BTreeSet<u64> = g.sections().iter().map(|s| s.1).filter(|&s| s < len).collect();
    let extra: Vec<u64> = set.difference(&chosen).copied().collect();
    for at in extra.iter().step_by(3) {
        if chosen.len() >= 170 {
            break;
        }
        chosen.insert(*at);
    }
    let mut k = 0u64;
    while chosen.len() < 200 {
        chosen.insert((k * 7919 * 1009 + 1) % len);
        k += 1;
    }
    chosen.into_iter().collect()
}

#[test]
fn the_model_cut_at_200_offsets_fails_on_every_backend() {
    let bytes = common::model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let cuts = cuts(&g, bytes.len() as u64);
    assert_eq!(cuts.len(), 200);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("truncation");
    std::fs::create_dir_all(&dir).unwrap();
    let backends = ["file", "mmap", "flash"];
    let mut messages: BTreeMap<String, usize> = BTreeMap::new();
    for (i, &cut) in cuts.iter().enumerate() {
        let path = dir.join(format!("cut-{cut}.gguf"));
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let backend = backends[i % backends.len()];
        let args = ["run", "-m", path.to_str().unwrap(), "--steps", "3", "--temp", "0", "--storage", backend];
        let exit = cli::run(EXE, &args, Duration::from_secs(30));
        let err = exit.assert_error(&format!("cut at {cut} ({backend})"), "spool-sim: ");
        let why = if err.contains("file is truncated: ") {
            "file is truncated"
        } else if err.contains("metadata or tensor count exceeds the file size") {
            // A cut just after the counts: the counts alone no longer fit the file.
            "count exceeds the file size"
        } else {
            panic!("cut at {cut}: unexpected error {err}")
        };
        *messages.entry(why.into()).or_default() += 1;
        std::fs::remove_file(&path).unwrap();
    }
    eprintln!("200 cuts: {messages:?}");
}
