//! The command-line arguments (clap derive) and their range checks: every number is checked
//! here, with an error that names the flag and the accepted range. Owns no running and no
//! printing; `cli/mod.rs` turns these into `RunOptions` and dispatches.

use clap::{Args, Parser, Subcommand};

/// Runs Llama-family GGUF models within a RAM budget smaller than the model, as a device would.
///
/// Sizes take K, M, G (K = 1024; `600K`, `600KiB` and `600KB` are the same), fractions (`1.5M`)
/// and, for `--ram`, a percentage of the model file (`50%`).
#[derive(Debug, Parser)]
#[command(name = "spool-sim", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log lines on stderr (-v info, -vv debug, -vvv trace; RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Errors only: no report, no progress bars, no log lines below error.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate text from a prompt and report tok/s, the arena plan and the cache.
    Run(Box<RunArgs>),
    /// Write the CRC32 sidecar of a trusted model file (for `run --verify`).
    Checksum {
        /// The model (GGUF).
        #[arg(short, long)]
        model: String,
        /// Where to write the sidecar.
        #[arg(short, long)]
        out: String,
    },
    /// Print the hyperparameters, the tensor table and the arena plan.
    Inspect {
        /// The model (GGUF).
        #[arg(short, long)]
        model: String,
        /// RAM budget (600K, 1.5M, 2G, 50%); default: everything fits.
        #[arg(long, value_name = "SIZE")]
        ram: Option<String>,
        /// Context length of the plan (0: the model's context) [default: 256].
        #[arg(short = 'c', long = "ctx-size", visible_alias = "ctx", value_name = "N", value_parser = whole_u32, allow_negative_numbers = true)]
        ctx: Option<u32>,
    },
    /// Budget, prefetch, policy, decode and kernel benchmarks.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Print a text's token ids, as llama.cpp's llama-tokenize (`tokenize -m PATH -p TEXT --ids`).
    Tokenize(crate::tokenize::TokenizeArgs),
    /// Write a synthetic model of any shape (`synth -o PATH --preset tinyllama ...`).
    Synth {
        /// The options, e.g. `-o big.gguf --preset llama7b --type Q4_0`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

/// `spool-sim run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The model (GGUF).
    #[arg(short, long)]
    pub model: String,
    /// The prompt.
    #[arg(short, long, default_value = "", conflicts_with = "file")]
    pub prompt: String,
    /// Read the prompt from this file.
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<String>,
    /// New tokens to generate, as llama.cpp counts them (-1: until EOS or a full context; 0:
    /// nothing is run or printed, as llama.cpp) [default: --steps 256 when neither is given].
    #[arg(short = 'n', long = "n-predict", value_name = "N", allow_negative_numbers = true,
          value_parser = n_predict, conflicts_with = "steps")]
    pub n_predict: Option<i64>,
    /// Positions to run, prompt included, as llama2.c's run.c counts them (0: the model's context).
    #[arg(long, value_name = "N", value_parser = whole_u32, allow_negative_numbers = true)]
    pub steps: Option<u32>,
    /// Context length of the KV cache (0: the model's context) [default: what the run needs].
    #[arg(short = 'c', long = "ctx-size", visible_alias = "ctx", value_name = "N", value_parser = whole_u32, allow_negative_numbers = true)]
    pub ctx: Option<u32>,
    /// Sampling temperature (0: greedy).
    #[arg(long, value_name = "T", default_value = "1.0", value_parser = temperature, allow_negative_numbers = true)]
    pub temp: f32,
    /// Top-p nucleus sampling (outside (0, 1): plain multinomial).
    #[arg(long = "top-p", value_name = "P", default_value = "0.9", value_parser = unit_interval, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Keep only the K most probable tokens (0: all; run.c's default, where llama.cpp's is 40).
    #[arg(long = "top-k", value_name = "K", default_value = "0", value_parser = whole_u32, allow_negative_numbers = true)]
    pub top_k: u32,
    /// Keep only tokens at least P times as probable as the most probable (0: off; llama.cpp's
    /// default is 0.05). Applied after the temperature, as top-p.
    #[arg(long = "min-p", value_name = "P", default_value = "0", value_parser = unit_interval, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Divide the positive logits (multiply the others) of tokens among the last
    /// --repeat-last-n by this (1: off).
    #[arg(long = "repeat-penalty", value_name = "X", default_value = "1.0", value_parser = repeat_penalty, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// How many of the last tokens (prompt included) the repetition penalty looks at (0: off).
    #[arg(long = "repeat-last-n", value_name = "N", default_value = "64", value_parser = repeat_last_n, allow_negative_numbers = true)]
    pub repeat_last_n: u32,
    /// RNG seed [default: from the OS, printed in the report].
    #[arg(short, long, value_name = "S", value_parser = whole_u64, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Compute threads for the matrix-vector products.
    #[arg(short, long, value_name = "N", default_value = "1", value_parser = threads, allow_negative_numbers = true)]
    pub threads: usize,
    /// RAM budget (600K, 1.5M, 2G, 50% of the model file); default: everything fits.
    #[arg(long, value_name = "SIZE")]
    pub ram: Option<String>,
    /// Storage backend: direct (O_DIRECT, no page cache; file where the file system refuses
    /// it or off Linux), file (pread through the page cache), mmap, flash (simulated).
    #[arg(long, value_name = "KIND", default_value = "direct", value_parser = ["file", "mmap", "flash", "direct"])]
    pub storage: String,
    /// Simulated flash bandwidth in MB/s (implies --storage flash).
    #[arg(long, value_name = "MB/S", value_parser = positive_f64, allow_negative_numbers = true)]
    pub flash_mbps: Option<f64>,
    /// Simulated flash latency per read in microseconds (implies --storage flash).
    #[arg(long, value_name = "US", value_parser = nonneg_f64, allow_negative_numbers = true)]
    pub flash_latency_us: Option<f64>,
    /// Simulated flash read granularity in bytes (implies --storage flash).
    #[arg(long, value_name = "B", value_parser = whole_u64, allow_negative_numbers = true)]
    pub flash_granularity: Option<u64>,
    /// Who stays in RAM.
    #[arg(long, value_name = "POLICY", default_value = "pin",
          value_parser = ["pin", "lru", "lru-protect", "mru", "min"])]
    pub policy: String,
    /// Units read ahead by reader threads: auto (about 8 MiB ahead, at least 4 units, none
    /// when everything is resident), or N (0: off; at most 8).
    #[arg(long, value_name = "N|auto", default_value = "auto", value_parser = prefetch_or_auto, allow_negative_numbers = true)]
    pub prefetch: PrefetchArg,
    /// Most prompt positions per layer-major prefill chunk (1: token by token) [default: the planner's].
    #[arg(long, value_name = "N", value_parser = positive_u32, allow_negative_numbers = true)]
    pub prefill_chunk: Option<u32>,
    /// Which kernels compute: auto rounds activations to Q8 for quantized weights as llama.cpp
    /// does; exact keeps them f32 (SIMD if available).
    #[arg(long, value_name = "KIND", default_value = "auto",
          value_parser = ["auto", "exact", "scalar", "simd", "simd-q8", "simd-q8-avx2", "scalar-q8"])]
    pub kernel: String,
    /// Element type of the KV cache: f32 (exact) or f16 (half the bytes; logits change within
    /// a small tolerance, tokens usually not).
    #[arg(long, value_name = "TYPE", default_value = "f32", value_parser = ["f32", "f16"])]
    pub kv: String,
    /// Print the text as llama2.c's run.c does (lone non-printable bytes dropped, multi-byte
    /// characters split across tokens lost) instead of assembled UTF-8; for the run.c goldens.
    #[arg(long)]
    pub runc_output: bool,
    /// Print one JSON object instead of the text.
    #[arg(long)]
    pub json: bool,
    /// Write the logits of every position here (little-endian f32 [positions][vocab]).
    #[arg(long, value_name = "PATH")]
    pub dump_logits: Option<String>,
    /// Check every weight read against this CRC32 sidecar (`spool-sim checksum`).
    #[arg(long, value_name = "SIDECAR")]
    pub verify: Option<String>,
    /// Inject storage faults (error-at=K, error-rate=P, seed=S, short-fill=K, flip=K,
    /// flip-rate=P, shrink-at=K, latency=MS@K, panic-at=K; comma-separated; see spool_std::faults).
    #[arg(long, value_name = "SPEC", value_parser = faults)]
    pub faults: Option<spool_std::faults::FaultSpec>,
}

fn faults(s: &str) -> Result<spool_std::faults::FaultSpec, String> {
    spool_std::faults::FaultSpec::parse(s).map_err(|e| e.to_string())
}

fn whole<T: std::str::FromStr>(s: &str, range: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("`{s}` is not a whole number in {range}"))
}

pub(crate) fn whole_u32(s: &str) -> Result<u32, String> {
    whole(s, "0..=4294967295")
}

fn whole_u64(s: &str) -> Result<u64, String> {
    whole(s, "0..=18446744073709551615")
}

pub(crate) fn positive_u32(s: &str) -> Result<u32, String> {
    whole_u32(s).and_then(|v| if v >= 1 { Ok(v) } else { Err(format!("`{s}` is out of range: expected 1 or more")) })
}

/// A thread count for a bench (1 to 256).
pub(crate) fn threads_one(s: &str) -> Result<usize, String> {
    threads(s)
}

fn threads(s: &str) -> Result<usize, String> {
    let v: usize = whole(s, "1..=256")?;
    if (1..=256).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{s}` is out of range: expected 1 to 256"))
    }
}

/// `--prefetch`: chosen from the plan, or a depth in units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefetchArg {
    /// [`spool_core::plan::auto_prefetch`].
    Auto,
    /// This many units ahead.
    Depth(u32),
}

fn prefetch_or_auto(s: &str) -> Result<PrefetchArg, String> {
    if s == "auto" {
        Ok(PrefetchArg::Auto)
    } else {
        prefetch(s).map(PrefetchArg::Depth).map_err(|e| format!("{e}, or auto"))
    }
}

pub(crate) fn prefetch(s: &str) -> Result<u32, String> {
    let max = spool_core::plan::MAX_PREFETCH;
    let v = whole(s, &format!("0..={max}"))?;
    if v <= max {
        Ok(v)
    } else {
        Err(format!("`{s}` is out of range: expected 0 to {max}"))
    }
}

fn n_predict(s: &str) -> Result<i64, String> {
    let v: i64 = whole(s, "-1 or 0..")?;
    if v >= -1 {
        Ok(v)
    } else {
        Err(format!("`{s}` is out of range: expected -1 (until EOS or a full context) or 0 or more new tokens"))
    }
}

/// The largest repetition window: a context no model here has.
pub const MAX_REPEAT_LAST_N: u32 = 1 << 20;

fn repeat_last_n(s: &str) -> Result<u32, String> {
    let v = whole(s, &format!("0..={MAX_REPEAT_LAST_N}"))?;
    if v <= MAX_REPEAT_LAST_N {
        Ok(v)
    } else {
        Err(format!("`{s}` is out of range: expected 0 (off) to {MAX_REPEAT_LAST_N}"))
    }
}

fn repeat_penalty(s: &str) -> Result<f32, String> {
    let v = finite(s)?;
    if v > 0.0 && v <= 100.0 {
        Ok(v as f32)
    } else {
        Err(format!("`{s}` is out of range: expected more than 0 and at most 100 (1: off)"))
    }
}

fn finite(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

fn temperature(s: &str) -> Result<f32, String> {
    let v = finite(s)?;
    if (0.0..=100.0).contains(&v) {
        Ok(v as f32)
    } else {
        Err(format!("`{s}` is out of range: expected 0 (greedy) to 100"))
    }
}

fn unit_interval(s: &str) -> Result<f32, String> {
    let v = finite(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v as f32)
    } else {
        Err(format!("`{s}` is out of range: expected 0 to 1"))
    }
}

pub(crate) fn positive_f64(s: &str) -> Result<f64, String> {
    let v = finite(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("`{s}` is out of range: expected more than 0"))
    }
}

/// A comma-separated list of thread counts, each 1 to 256.
pub(crate) fn threads_list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',').map(|t| threads(t.trim())).collect()
}

/// A finite number, 0 or more.
pub(crate) fn finite_nonneg(s: &str) -> Result<f64, String> {
    nonneg_f64(s)
}

fn nonneg_f64(s: &str) -> Result<f64, String> {
    let v = finite(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("`{s}` is out of range: expected 0 or more"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn numbers_are_range_checked() {
        assert!(n_predict("-5").is_err() && n_predict("-2").is_err() && n_predict("2.7").is_err());
        assert_eq!(n_predict("0"), Ok(0));
        assert_eq!(n_predict("-1"), Ok(-1));
        assert!(temperature("nan").is_err() && temperature("inf").is_err() && temperature("-1").is_err());
        assert!(prefetch("1000").is_err() && prefetch("8").is_ok());
        assert_eq!(prefetch_or_auto("auto"), Ok(PrefetchArg::Auto));
        assert_eq!(prefetch_or_auto("3"), Ok(PrefetchArg::Depth(3)));
        assert!(prefetch_or_auto("9").is_err_and(|e| e.contains("or auto")));
        assert!(threads("0").is_err() && threads("2").is_ok());
        assert!(whole_u32("abc").is_err() && whole_u32("-3").is_err());
        assert!(repeat_penalty("0").is_err() && repeat_penalty("nan").is_err() && repeat_penalty("-1").is_err());
        assert_eq!(repeat_penalty("1.1"), Ok(1.1));
        assert!(repeat_last_n("-1").is_err() && repeat_last_n("2.5").is_err() && repeat_last_n("2000000").is_err());
        assert!(unit_interval("1.5").is_err() && whole_u32("4.0").is_err());
    }
}
