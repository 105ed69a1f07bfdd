//! `bench decode`: decode tokens/s with the whole model resident, Spool next to llama.cpp on
//! the same files and threads (median of alternating repetitions). Owns no sweep.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{run, RunOptions};

/// Options of `bench decode`.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// The model files.
    pub models: Vec<String>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Tokens decoded per measurement.
    pub tokens: u32,
    /// Measurements per (model, threads), alternating Spool and llama.cpp.
    pub reps: usize,
    /// Spool's kernels.
    pub kernel: crate::KernelChoice,
    /// llama.cpp's timing script (`bench/peer/bench.sh`); none: Spool alone.
    pub peer_script: Option<PathBuf>,
    /// Where llama.cpp was built (`PREFIX` of the script).
    pub peer_prefix: PathBuf,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn peer_tokens_per_s(o: &DecodeOptions, script: &Path, model: &str, threads: usize) -> Result<f64, String> {
    let output = std::process::Command::new("bash")
        .arg(script)
        .args([model, &threads.to_string(), &o.tokens.to_string(), "1"])
        .env("PREFIX", &o.peer_prefix)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split("tok/s:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("llama.cpp timing failed: {}{}", text, String::from_utf8_lossy(&output.stderr)))
}

/// Decode tokens/s with the whole model resident, next to llama.cpp on the same file and threads.
pub fn decode(o: &DecodeOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let _ = writeln!(
        out,
        "{:<28} {:>7} {:>8} {:>14} {:>14} {:>14}",
        "model", "threads", "kernel", "spool tok/s", "llama.cpp", "spool/llama"
    );
    for model in &o.models {
        for &threads in &o.threads {
            let opts = RunOptions {
                model: model.clone(),
                prompt: String::new(),
                steps: 1 + o.tokens,
                temperature: 0.0,
                kernel: o.kernel,
                threads,
                ..RunOptions::default()
            };
            let (mut spool, mut peer) = (Vec::new(), Vec::new());
            let mut kernel = String::new();
            for rep in 0..o.reps {
                let _ = writeln!(err, "[{model}, {threads} thread(s), rep {}] spool", rep + 1);
                let r = run(&opts)?;
                kernel = r.kernel.name().to_string();
                spool.push(r.tokens_per_s);
                if let Some(script) = &o.peer_script {
                    let _ = writeln!(err, "[{model}, {threads} thread(s), rep {}] llama.cpp", rep + 1);
                    peer.push(peer_tokens_per_s(o, script, model, threads)?);
                }
            }
            let (s, p) = (median(spool), median(peer));
            let name = Path::new(model).file_name().map_or(model.clone(), |n| n.to_string_lossy().into_owned());
            let _ = writeln!(out, "{name:<28} {threads:>7} {kernel:>8} {s:>14.2} {p:>14.2} {:>14.3}", s / p);
        }
    }
    Ok(())
}
