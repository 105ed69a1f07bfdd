//! The arguments of `spool-sim bench ...` (clap derive), range-checked as `run`'s are, and
//! their conversion to each bench's options. Owns no running.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{BenchOptions, DecodeOptions};
use crate::cli::args::{finite_nonneg, positive_f64, positive_u32, prefetch, threads_list, whole_u32};
use crate::flash::FlashSpec;
use crate::KernelChoice;

/// The benches.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Budget from the planner's minimum to the whole model, for every policy.
    Budget(SweepArgs),
    /// Prefetch distances 0..3 where compute and I/O per token are equal.
    Prefetch(SweepArgs),
    /// Every policy at one budget, without and with prefetch.
    Policies(SweepArgs),
    /// Decode tokens/s with the model resident, next to llama.cpp.
    Decode(DecodeArgs),
    /// Prefill (prompt) tokens/s with the model resident, next to llama.cpp.
    Prefill(PrefillArgs),
    /// Matrix-vector GB/s per weight type, scalar against SIMD, one thread against two.
    Matvec(MatvecArgs),
    /// Spool and llama.cpp under one memcg limit at fractions of the file (root).
    Limit(LimitArgs),
    /// A small model's decode tok/s at one thread, next to llama.cpp and run.c's figure.
    Small(super::SmallArgs),
}

/// Options of `bench limit`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// A model file (repeatable).
    #[arg(short, long = "model", required = true)]
    pub models: Vec<String>,
    /// Limits in percent of the file, comma-separated.
    #[arg(long, value_name = "P,P", default_value = "90,50,25", value_parser = percent_list)]
    pub limits: std::vec::Vec<u32>,
    /// Part of the limit not given to Spool's arena (8M, 16M, ...).
    #[arg(long, value_name = "SIZE", default_value = "8M")]
    pub margin: String,
    /// Tokens generated per run.
    #[arg(short = 'n', long, value_name = "N", default_value = "16", value_parser = positive_u32, allow_negative_numbers = true)]
    pub tokens: u32,
    /// Compute threads of both engines.
    #[arg(short, long, value_name = "N", default_value = "2", value_parser = crate::cli::args::threads_one, allow_negative_numbers = true)]
    pub threads: usize,
    /// Spool's prefetch distance in units.
    #[arg(long, value_name = "N", default_value = "8", value_parser = prefetch, allow_negative_numbers = true)]
    pub prefetch: u32,
    /// The memcg runner.
    #[arg(long, value_name = "SCRIPT", default_value = "bench/peer/memcg-run.sh")]
    pub memcg: PathBuf,
    /// llama.cpp's bin directory (llama-completion) [default: Spool alone].
    #[arg(long = "peer-bin", value_name = "DIR")]
    pub peer_bin: Option<PathBuf>,
    /// Where the JSON and SVG files go.
    #[arg(long, value_name = "DIR", default_value = "docs/bench")]
    pub out: PathBuf,
    /// File stem.
    #[arg(long, default_value = "limit")]
    pub name: String,
}

impl LimitArgs {
    /// The bench's options.
    pub fn options(&self) -> Result<super::limit::LimitOptions, String> {
        let margin =
            crate::budget::parse_budget(&self.margin, &self.models[0]).map_err(|e| format!("--margin: {e}"))?;
        Ok(super::limit::LimitOptions {
            models: self.models.clone(),
            percents: self.limits.clone(),
            margin,
            tokens: self.tokens,
            threads: self.threads,
            prefetch: self.prefetch,
            memcg: self.memcg.clone(),
            peer_bin: self.peer_bin.clone(),
            out: self.out.clone(),
            name: self.name.clone(),
        })
    }
}

/// Percentages 1..=100, comma-separated.
fn percent_list(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|p| match p.trim().parse::<u32>() {
            Ok(v) if (1..=100).contains(&v) => Ok(v),
            _ => Err(format!("`{p}` is not a percentage from 1 to 100")),
        })
        .collect()
}

/// Options of the budget, prefetch and policies sweeps.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The model (GGUF).
    #[arg(short, long, default_value = "models/stories260K.gguf")]
    pub model: String,
    /// Context length.
    #[arg(short = 'c', long = "ctx-size", visible_alias = "ctx", value_name = "N", default_value = "128", value_parser = positive_u32, allow_negative_numbers = true)]
    pub ctx: u32,
    /// Decode positions per run (after the 5-token prompt).
    #[arg(short = 'n', long, value_name = "N", default_value = "24", value_parser = positive_u32, allow_negative_numbers = true)]
    pub decode: u32,
    /// Budgets in the budget sweep (at least 2).
    #[arg(long, value_name = "N", default_value = "10", value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub points: u32,
    /// Simulated flash bandwidth, MB/s (budget and policies sweeps).
    #[arg(long, value_name = "MB/S", value_parser = positive_f64, allow_negative_numbers = true)]
    pub flash_mbps: Option<f64>,
    /// Simulated flash latency per read, microseconds.
    #[arg(long, value_name = "US", value_parser = finite_nonneg, allow_negative_numbers = true)]
    pub flash_latency_us: Option<f64>,
    /// Prefetch distance of the budget and policies sweeps.
    #[arg(long, value_name = "N", default_value = "2", value_parser = prefetch, allow_negative_numbers = true)]
    pub prefetch: u32,
    /// Budget of the prefetch and policies sweeps (600K, 1.5M, 50%) [default: half the model].
    #[arg(long, value_name = "SIZE")]
    pub ram: Option<String>,
    /// Where the JSON and SVG files go.
    #[arg(long, value_name = "DIR", default_value = "docs/bench")]
    pub out: PathBuf,
    /// File stem [default: the sweep and the model's name].
    #[arg(long)]
    pub name: Option<String>,
}

impl SweepArgs {
    /// The sweep's options (`--ram` in percent needs the model's size).
    pub fn options(&self) -> Result<BenchOptions, String> {
        let mut flash = FlashSpec::default();
        if let Some(m) = self.flash_mbps {
            flash.mbps = m;
        }
        if let Some(l) = self.flash_latency_us {
            flash.latency_us = l;
        }
        let ram = self.ram.as_ref().map(|r| crate::parse_budget(r, &self.model).map_err(|e| format!("--ram: {e}")));
        Ok(BenchOptions {
            model: self.model.clone(),
            ctx: self.ctx,
            decode: self.decode,
            points: self.points as usize,
            flash,
            prefetch: self.prefetch,
            ram: ram.transpose()?,
            out: self.out.clone(),
            name: self.name.clone(),
        })
    }
}

/// Options of `bench decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// A model file (repeatable).
    #[arg(short, long = "model", required = true)]
    pub models: Vec<String>,
    /// Thread counts, comma-separated.
    #[arg(long, value_name = "N,N", default_value = "1,2", value_parser = threads_list)]
    pub threads: std::vec::Vec<usize>,
    /// Tokens decoded per measurement.
    #[arg(short = 'n', long, value_name = "N", default_value = "32", value_parser = positive_u32, allow_negative_numbers = true)]
    pub tokens: u32,
    /// Measurements per (model, threads), alternating Spool and llama.cpp.
    #[arg(long, value_name = "N", default_value = "3", value_parser = positive_u32, allow_negative_numbers = true)]
    pub reps: u32,
    /// Spool's kernels.
    #[arg(long, value_name = "KIND", default_value = "auto", value_parser = ["auto", "scalar", "simd", "simd-q8", "simd-q8-avx2"])]
    pub kernel: String,
    /// llama.cpp's llama-bench binary, run at its default (repacked) and with --repack 0; the
    /// ratio is against the faster [default: Spool alone].
    #[arg(long = "peer", value_name = "LLAMA_BENCH")]
    pub peer: Option<PathBuf>,
}

impl DecodeArgs {
    /// The bench's options.
    pub fn options(&self) -> DecodeOptions {
        DecodeOptions {
            models: self.models.clone(),
            threads: self.threads.clone(),
            tokens: self.tokens,
            prompts: Vec::new(),
            reps: self.reps as usize,
            kernel: KernelChoice::from_name(&self.kernel).unwrap_or(KernelChoice::Auto),
            peer: self.peer.clone(),
        }
    }
}

/// Prompt lengths, comma-separated, each 3 to 65536 positions.
fn prompt_list(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|t| match t.trim().parse::<u32>() {
            Ok(v) if (3..=65536).contains(&v) => Ok(v),
            _ => Err(format!("`{t}` is not a prompt length: expected 3 to 65536 positions")),
        })
        .collect()
}

/// Options of `bench prefill`.
#[derive(Debug, Args)]
pub struct PrefillArgs {
    /// A model file (repeatable).
    #[arg(short, long = "model", required = true)]
    pub models: Vec<String>,
    /// Thread counts, comma-separated.
    #[arg(long, value_name = "N,N", default_value = "1,2", value_parser = threads_list)]
    pub threads: std::vec::Vec<usize>,
    /// Prompt lengths in positions, comma-separated.
    #[arg(short = 'p', long, value_name = "N,N", default_value = "128,512", value_parser = prompt_list)]
    pub prompts: std::vec::Vec<u32>,
    /// Measurements per (model, threads, length), alternating Spool and llama.cpp.
    #[arg(long, value_name = "N", default_value = "3", value_parser = positive_u32, allow_negative_numbers = true)]
    pub reps: u32,
    /// Spool's kernels.
    #[arg(long, value_name = "KIND", default_value = "auto", value_parser = ["auto", "exact", "scalar", "simd", "simd-q8", "simd-q8-avx2"])]
    pub kernel: String,
    /// llama.cpp's llama-bench binary, run with --repack 0 (its default dies with SIGILL on
    /// prompt batches on AVX-512 + AMX CPUs) [default: Spool alone].
    #[arg(long = "peer", value_name = "LLAMA_BENCH")]
    pub peer: Option<PathBuf>,
}

impl PrefillArgs {
    /// The bench's options.
    pub fn options(&self) -> DecodeOptions {
        DecodeOptions {
            models: self.models.clone(),
            threads: self.threads.clone(),
            tokens: 0,
            prompts: self.prompts.clone(),
            reps: self.reps as usize,
            kernel: KernelChoice::from_name(&self.kernel).unwrap_or(KernelChoice::Auto),
            peer: self.peer.clone(),
        }
    }
}

/// Options of `bench matvec`.
#[derive(Debug, Args)]
pub struct MatvecArgs {
    /// Rows of each matrix.
    #[arg(long, value_name = "N", default_value = "4096", value_parser = positive_u32, allow_negative_numbers = true)]
    pub rows: u32,
    /// Columns (a positive multiple of 256).
    #[arg(long, value_name = "N", default_value = "4096", value_parser = whole_u32, allow_negative_numbers = true)]
    pub cols: u32,
    /// Weight types, comma-separated (e.g. F32,Q4_0) [default: all].
    #[arg(long, value_name = "T,T")]
    pub types: Option<String>,
    /// Seconds per measurement.
    #[arg(long, value_name = "S", default_value = "0.5", value_parser = positive_f64, allow_negative_numbers = true)]
    pub seconds: f64,
}

impl MatvecArgs {
    /// The bench's options.
    pub fn options(&self) -> Result<crate::kernel_bench::BenchOptions, String> {
        crate::kernel_bench::options(self.rows as usize, self.cols as usize, self.types.as_deref(), self.seconds)
    }
}
