//! `bench small`: decode tok/s of a small resident model (stories260K) at one thread, Spool
//! next to llama.cpp's `llama-bench` (alternating runs, medians), against llama2.c's `run.c`
//! figure that issue 10 measured on this machine kind (run.c itself is not run: no package
//! registry carries llama2.c). Owns its arguments, its loop and its table; the one-run
//! measurements are `decode.rs`'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::decode::{median, peer_tokens_per_s};
use crate::cli::args::{positive_f64, positive_u32};
use crate::{run, KernelChoice, RunOptions};

/// llama2.c's `run.c` on stories260K at one thread, tok/s: issue 10's measurement on this
/// machine kind (the peer README says about 10,000).
pub const RUNC_TOKENS_PER_S: f64 = 11_591.0;

/// Options of `bench small`.
#[derive(Debug, Args)]
pub struct SmallArgs {
    /// The model.
    #[arg(short, long, default_value = "models/stories260K.gguf")]
    pub model: String,
    /// Tokens decoded per measurement (after BOS).
    #[arg(short = 'n', long, value_name = "N", default_value = "200", value_parser = positive_u32, allow_negative_numbers = true)]
    pub tokens: u32,
    /// Measurements, alternating Spool and llama.cpp.
    #[arg(long, value_name = "N", default_value = "5", value_parser = positive_u32, allow_negative_numbers = true)]
    pub reps: u32,
    /// Compute threads of both engines.
    #[arg(short, long, value_name = "N", default_value = "1", value_parser = crate::cli::args::threads_one, allow_negative_numbers = true)]
    pub threads: usize,
    /// Spool's kernels.
    #[arg(long, value_name = "KIND", default_value = "auto", value_parser = ["auto", "exact", "scalar", "simd", "simd-q8", "simd-q8-avx2"])]
    pub kernel: String,
    /// llama.cpp's llama-bench binary, run with --repack 0 [default: Spool alone].
    #[arg(long = "peer", value_name = "LLAMA_BENCH")]
    pub peer: Option<PathBuf>,
    /// The run.c figure to compare with, tok/s [default: issue 10's, 11591].
    #[arg(long = "runc", value_name = "TOK/S", default_value_t = RUNC_TOKENS_PER_S, value_parser = positive_f64, allow_negative_numbers = true)]
    pub runc: f64,
}

/// Spool's and llama.cpp's decode tok/s on one small model, and the ratios to llama.cpp and to
/// the run.c figure.
pub fn small(a: &SmallArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let opts = RunOptions {
        model: a.model.clone(),
        prompt: String::new(),
        steps: 1 + a.tokens,
        temperature: 0.0,
        kernel: KernelChoice::from_name(&a.kernel).unwrap_or(KernelChoice::Auto),
        threads: a.threads,
        ..RunOptions::default()
    };
    let (mut spool, mut peer) = (Vec::new(), Vec::new());
    let mut kernel = String::new();
    for rep in 1..=a.reps {
        let _ = writeln!(err, "[{}, {} thread(s), rep {rep}] spool", a.model, a.threads);
        let r = run(&opts)?;
        kernel = r.kernel.name().to_string();
        spool.push(r.tokens_per_s);
        if let Some(bench) = &a.peer {
            let _ = writeln!(err, "[{}, {} thread(s), rep {rep}] llama.cpp", a.model, a.threads);
            peer.push(peer_tokens_per_s(bench, &a.model, a.threads, 0, a.tokens, true)?);
        }
    }
    let (s, p) = (median(spool), median(peer));
    let name = Path::new(&a.model).file_name().map_or(a.model.clone(), |n| n.to_string_lossy().into_owned());
    let _ = writeln!(
        out,
        "{:<18} {:>7} {:>6} {:>10} {:>12} {:>10} {:>11} {:>10} {:>11}",
        "model", "threads", "decode", "kernel", "spool tok/s", "llama.cpp", "spool/llama", "run.c", "spool/run.c"
    );
    let _ = writeln!(
        out,
        "{name:<18} {:>7} {:>6} {kernel:>10} {s:>12.0} {p:>10.0} {:>11.2} {:>10.0} {:>11.2}",
        a.threads,
        a.tokens,
        s / p,
        a.runc,
        s / a.runc
    );
    let source = if a.runc == RUNC_TOKENS_PER_S {
        "issue 10's measurement of llama2.c's run.c at 1 thread on this machine kind"
    } else {
        "given with --runc"
    };
    let _ = writeln!(
        out,
        "medians of {} alternating runs; run.c is not run here (no package registry carries llama2.c): \
         its figure is {source}",
        a.reps
    );
    Ok(())
}
