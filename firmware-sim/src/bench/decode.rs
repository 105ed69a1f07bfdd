//! `bench decode` (and `bench prefill`, its prompt-processing twin): tokens/s with the whole
//! model resident, Spool next to llama.cpp's `llama-bench` on the same files and threads,
//! alternating one measurement of each, medians and their ratio. Owns the measurement loop and
//! the table; it runs no sweep.

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

/// One `llama-bench` measurement: `-p prompt -n gen`, one repetition, no repacking (llama.cpp
/// then reads the weights as stored, as Spool does). Its KV cache stays f16: this
/// `llama-bench` rejects `-ctk f32`.
pub(super) fn peer_tokens_per_s(
    bench: &Path,
    model: &str,
    threads: usize,
    prompt: u32,
    gen: u32,
) -> Result<f64, String> {
    let output = std::process::Command::new(bench)
        .args(["-m", model, "-t", &threads.to_string(), "-p", &prompt.to_string(), "-n", &gen.to_string()])
        .args(["-r", "1", "--repack", "0", "-o", "csv"])
        .output()
        .map_err(|e| format!("{}: {e}", bench.display()))?;
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
    let _ = writeln!(
        out,
        "{:<28} {:>7} {:>7} {:>10} {:>12} {:>12} {:>12}",
        "model", "threads", what, "kernel", "spool tok/s", "llama.cpp", "spool/llama"
    );
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
                let (mut spool, mut peer) = (Vec::new(), Vec::new());
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
                        let _ = writeln!(err, "[{model}, {threads} thread(s), {what}, rep {}] llama.cpp", rep + 1);
                        let (p, n) = if prompt.is_some() { (positions, 0) } else { (0, o.tokens) };
                        peer.push(peer_tokens_per_s(bench, model, threads, p, n)?);
                    }
                }
                let (s, p) = (median(spool), median(peer));
                let name = Path::new(model).file_name().map_or(model.clone(), |n| n.to_string_lossy().into_owned());
                let len = if prompt.is_some() { positions.to_string() } else { o.tokens.to_string() };
                let _ =
                    writeln!(out, "{name:<28} {threads:>7} {len:>7} {kernel:>10} {s:>12.2} {p:>12.2} {:>12.3}", s / p);
            }
        }
    }
    Ok(())
}
