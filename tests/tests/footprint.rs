//! The budget is the footprint: a streaming run of the real binary, on its default storage,
//! prefetch and two threads, peaks at most `spool_std::FOOTPRINT_BEYOND_ARENA` above its
//! `--ram` budget (peak resident set of the child, from `getrusage(RUSAGE_CHILDREN)`: this
//! test binary runs no other child).

use std::process::Command;

use spool_sim::synth::{self, SynthConfig};
use spool_std::FOOTPRINT_BEYOND_ARENA;

const EXE: &str = env!("CARGO_BIN_EXE_spool-sim-cli");

/// The largest peak resident set of this process's waited-for children, in bytes.
fn children_peak_rss() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; getrusage writes it whole or fails.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage failed");
    // SAFETY: getrusage returned 0, so it initialised `usage`.
    let usage = unsafe { usage.assume_init() };
    // Linux reports ru_maxrss in KiB.
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_streaming_run_stays_within_its_budget_and_the_stated_overhead() {
    // A 27 MB Q8_0 model (8 layers of dim 512), streamed through a third of its size.
    let mut c = SynthConfig::custom(512, 1376, 8, 8, 8, 512);
    c.ty = spool_core::quant::GgmlType::Q8_0;
    c.ctx = 256;
    let vocab = synth::vocab_for(&c, synth::DEFAULT_VOCAB_GGUF).unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("footprint-q8.gguf");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let bytes = synth::write_model(&c, &vocab, 0, &mut file).unwrap();
    drop(file);
    let budget = (bytes / 3) as usize;

    let out = Command::new(EXE)
        .args(["run", "-m", path.to_str().unwrap(), "-p", "Once upon a time", "-n", "48", "--temp", "0"])
        .args(["-t", "2", "--ram", &budget.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["plan"]["streamed_bytes_per_token"].as_u64().unwrap() > 0, "the run streams");
    assert!(json["plan"]["prefetch"].as_u64().unwrap() > 0, "with reader threads");

    let peak = children_peak_rss();
    let limit = (budget + FOOTPRINT_BEYOND_ARENA) as u64;
    eprintln!(
        "budget {budget} B, peak RSS {peak} B: {} KiB beyond the arena",
        peak.saturating_sub(budget as u64) >> 10
    );
    assert!(
        peak <= limit,
        "peak RSS {peak} B exceeds the budget {budget} B + {FOOTPRINT_BEYOND_ARENA} B by {} B",
        peak - limit
    );
}
