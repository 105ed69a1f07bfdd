//! `bench decode` (and `bench prefill`, its prompt-processing twin): tokens/s with the whole
//! model resident, Spool next to llama.cpp's `llama-bench` on the same files and threads,
//! alternating one measurement of each, medians and their ratio. Owns the measurement loop and
//! the table; it runs no sweep.
//!
//! Decode measures llama.cpp twice: at its default (weights repacked at load into its
//! interleaved layout, its fastest generation path) and with `--repack 0` (the weights as
//! stored, as Spool reads them). The ratio is against the faster of the two, the honest peer.
//! Prefill runs `--repack 0` only: on this machine kind (AVX-512 with AMX) llama.cpp's default
//! dies with SIGILL on prompt batches (its AMX path).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{run, RunOptions};

/// Options of `bench decode` and `bench prefill`.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// The model files.
    pub models: Vec<String>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Tokens decoded per measurement (decode), or prompt lengths (prefill; `prompts`).
    pub tokens: u32,
    /// Prompt lengths to measure prefill at; empty: measure decode.
    pub prompts: Vec<u32>,
    /// Measurements per (model, threads), alternating Spool and llama.cpp.
    pub reps: usize,
    /// Spool's kernels.
    pub kernel: crate::KernelChoice,
    /// llama.cpp's `llama-bench` binary; none: Spool alone.
    pub peer: Option<PathBuf>,
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One `llama-bench` measurement: `-p prompt -n gen`, one repetition; `repack` false passes
/// `--repack 0` (llama.cpp then reads the weights as stored, as Spool does), true leaves its
/// default (repacked, interleaved rows). Its KV cache stays f16: this `llama-bench` rejects
/// `-ctk f32`.
pub(super) fn peer_tokens_per_s(
    bench: &Path,
    model: &str,
    threads: usize,
    prompt: u32,
    gen: u32,
    repack: bool,
) -> Result<f64, String> {
    let mut cmd = std::process::Command::new(bench);
    cmd.args(["-m", model, "-t", &threads.to_string(), "-p", &prompt.to_string(), "-n", &gen.to_string()])
        .args(["-r", "1", "-o", "csv"]);
    if !repack {
        cmd.args(["--repack", "0"]);
    }
    let output = cmd.output().map_err(|e| format!("{}: {e}", bench.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // The CSV's last two columns are avg_ts and stddev_ts.
    let last = text.lines().last().unwrap_or("");
    last.rsplit(',')
        .nth(1)
        .and_then(|t| t.trim_matches('"').parse().ok())
        .ok_or_else(|| format!("llama-bench failed: {}{}", text, String::from_utf8_lossy(&output.stderr)))
}

/// A prompt of `positions` positions with the synth vocabulary (the beginning-of-text token,
/// then " a" pairs, one final token): what Spool prefills; llama-bench takes the count.
fn prompt_of(positions: u32) -> String {
    let mut p = " a".repeat((positions.saturating_sub(2) / 2) as usize);
    p.push('\n');
    p
}

/// Decode (or prefill) tokens/s with the whole model resident, next to llama.cpp on the same
/// file and threads.
pub fn decode(o: &DecodeOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let what = if o.prompts.is_empty() { "decode" } else { "prefill" };
    if o.prompts.is_empty() {
        let _ = writeln!(
            out,
            "{:<28} {:>7} {:>7} {:>10} {:>12} {:>12} {:>12} {:>12}",
            "model", "threads", what, "kernel", "spool tok/s", "llama dflt", "llama rp0", "spool/best"
        );
        let _ = writeln!(
            out,
            "(llama dflt: llama.cpp's default, weights repacked; llama rp0: --repack 0; spool/best: \
             against the faster of the two)"
        );
    } else {
        let _ = writeln!(
            out,
            "{:<28} {:>7} {:>7} {:>10} {:>12} {:>12} {:>12}",
            "model", "threads", what, "kernel", "spool tok/s", "llama rp0", "spool/llama"
        );
        let _ = writeln!(
            out,
            "(llama rp0: llama.cpp with --repack 0; its default dies with SIGILL on prompt batches \
             on AVX-512 + AMX CPUs)"
        );
    }
    let lengths: Vec<Option<u32>> =
        if o.prompts.is_empty() { vec![None] } else { o.prompts.iter().map(|&p| Some(p)).collect() };
    for model in &o.models {
        for &threads in &o.threads {
            for &prompt in &lengths {
                let opts = RunOptions {
                    model: model.clone(),
                    prompt: prompt.map_or(String::new(), prompt_of),
                    steps: 1 + o.tokens,
                    new_tokens: prompt.map(|_| 1),
                    temperature: 0.0,
                    kernel: o.kernel,
                    threads,
                    ..RunOptions::default()
                };
                let (mut spool, mut peer, mut peer_default) = (Vec::new(), Vec::new(), Vec::new());
                let (mut kernel, mut positions) = (String::new(), 0);
                for rep in 0..o.reps {
                    let _ = writeln!(err, "[{model}, {threads} thread(s), {what}, rep {}] spool", rep + 1);
                    let r = run(&opts)?;
                    kernel = r.kernel.name().to_string();
                    positions = r.prefill_positions;
                    spool.push(match prompt {
                        Some(_) => r.timing.prefill_tokens_per_s.unwrap_or(f64::NAN),
                        None => r.tokens_per_s,
                    });
                    if let Some(bench) = &o.peer {
                        let (p, n) = if prompt.is_some() { (positions, 0) } else { (0, o.tokens) };
                        let _ = writeln!(
                            err,
                            "[{model}, {threads} thread(s), {what}, rep {}] llama.cpp --repack 0",
                            rep + 1
                        );
                        peer.push(peer_tokens_per_s(bench, model, threads, p, n, false)?);
                        if prompt.is_none() {
                            let _ = writeln!(err, "[{model}, {threads} thread(s), {what}, rep {}] llama.cpp", rep + 1);
                            peer_default.push(peer_tokens_per_s(bench, model, threads, p, n, true)?);
                        }
                    }
                }
                let (s, p) = (median(spool), median(peer));
                let name = Path::new(model).file_name().map_or(model.clone(), |n| n.to_string_lossy().into_owned());
                let len = if prompt.is_some() { positions.to_string() } else { o.tokens.to_string() };
                if prompt.is_none() {
                    let d = median(peer_default);
                    // `f64::max` skips a NaN (no peer), so the ratio is NaN only without one.
                    let best = d.max(p);
                    let _ = writeln!(
                        out,
                        "{name:<28} {threads:>7} {len:>7} {kernel:>10} {s:>12.2} {d:>12.2} {p:>12.2} {:>12.3}",
                        s / best
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "{name:<28} {threads:>7} {len:>7} {kernel:>10} {s:>12.2} {p:>12.2} {:>12.3}",
                        s / p
                    );
                }
            }
        }
    }
    Ok(())
}
