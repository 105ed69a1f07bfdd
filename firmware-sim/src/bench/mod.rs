//! `spool-sim bench`: sweeps that show what the budget, the policy and prefetch buy, on the
//! simulated flash, and decode against llama.cpp. Each sweep prints a table, writes JSON
//! (docs/json.md) and SVG plots, and shows progress on a terminal. Every figure comes from real
//! forward passes on the real model. This file owns what the sweeps share (options, one run,
//! the table); each sweep has its own file, the arguments are in `args.rs`.

mod args;
mod budget;
mod decode;
pub mod limit;
mod policies;
mod prefetch;
mod small;

use std::io::Write;
use std::path::{Path, PathBuf};

use spool_core::Policy;

pub use args::{BenchCommand, DecodeArgs, LimitArgs, MatvecArgs, PrefillArgs, SweepArgs};
pub use budget::budget;
pub use decode::{decode, DecodeOptions};
pub use policies::policies;
pub use prefetch::prefetch;
pub use small::{small, SmallArgs};

use crate::flash::FlashSpec;
use crate::json::{self, SweepDoc, SweepRun};
use crate::{run, Backend, RunOptions, RunReport};

/// Options shared by the sweeps.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The model.
    pub model: String,
    /// Context length.
    pub ctx: u32,
    /// Decode tokens per run (after the 5-token prompt).
    pub decode: u32,
    /// Budgets in the budget sweep.
    pub points: usize,
    /// The flash of the budget and policies sweeps.
    pub flash: FlashSpec,
    /// Prefetch distance of the budget and policies sweeps.
    pub prefetch: u32,
    /// Budget of the prefetch and policies sweeps (bytes).
    pub ram: Option<usize>,
    /// Where the JSON and SVG files go.
    pub out: PathBuf,
    /// File stem (default: sweep name and model name).
    pub name: Option<String>,
}

const PROMPT: &str = "Once upon a time";

pub(super) fn base(o: &BenchOptions) -> RunOptions {
    RunOptions {
        model: o.model.clone(),
        prompt: PROMPT.into(),
        steps: 5 + o.decode,
        ctx: Some(o.ctx),
        temperature: 0.0,
        backend: Backend::Flash,
        flash: o.flash,
        prefetch: o.prefetch,
        ..RunOptions::default()
    }
}

pub(super) fn model_bytes(o: &BenchOptions) -> Result<usize, String> {
    std::fs::metadata(&o.model).map(|m| m.len() as usize).map_err(|e| format!("{}: {e}", o.model))
}

pub(super) fn stem(o: &BenchOptions, sweep: &str) -> String {
    o.name.clone().unwrap_or_else(|| {
        let model = Path::new(&o.model).file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
        format!("{sweep}-{model}")
    })
}

pub(super) fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// One run of a sweep, as the tables and JSON show it.
pub(super) struct Row {
    pub(super) policy: Policy,
    pub(super) budget: usize,
    pub(super) prefetch: u32,
    pub(super) mbps: f64,
    pub(super) report: RunReport,
}

impl Row {
    pub(super) fn sim_tps(&self) -> f64 {
        self.report.sim.map_or(f64::NAN, |s| s.tokens_per_s)
    }
    pub(super) fn bound_tps(&self) -> f64 {
        self.report.sim.map_or(f64::NAN, |s| 1.0 / s.bound_s_per_token)
    }
    pub(super) fn ratio(&self) -> f64 {
        self.report.sim.map_or(f64::NAN, |s| s.ratio())
    }
    fn json(&self, model_bytes: usize) -> SweepRun<'_> {
        let r = &self.report;
        SweepRun {
            policy: self.policy.name(),
            budget_bytes: self.budget,
            budget_percent_of_model: 100.0 * self.budget as f64 / model_bytes as f64,
            prefetch: self.prefetch,
            flash_mbps: self.mbps,
            bytes_read_per_token: r.bytes_read_per_token(),
            streamed_bytes_per_token: r.plan.streamed_bytes_per_token(),
            hit_rate_percent: r.cache.hit_rate_percent(),
            hits: r.cache.hits,
            misses: r.cache.misses,
            evictions: r.cache.evictions,
            prefetched: r.cache.prefetched,
            decode_tokens_per_s: r.timing.decode_tokens_per_s,
            simulated_tokens_per_s: r.sim.map(|s| s.tokens_per_s),
            bound_tokens_per_s: r.sim.map(|s| 1.0 / s.bound_s_per_token),
            achieved_over_bound: r.sim.map(|s| s.ratio()),
            slot_count: r.plan.slot_count,
            pinned_weight_bytes: r.plan.pinned_bytes,
        }
    }
}

pub(super) fn json_array(rows: &[Row], model_bytes: usize, o: &BenchOptions, sweep: &str) -> String {
    json::to_string_pretty(&SweepDoc {
        schema_version: json::SCHEMA_VERSION,
        sweep,
        model: &o.model,
        model_bytes,
        context: o.ctx,
        decode_positions: o.decode,
        flash_latency_us: o.flash.latency_us,
        runs: rows.iter().map(|r| r.json(model_bytes)).collect(),
    })
}

pub(super) fn table_header(out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>6} {:>4} {:>7} {:>12} {:>7} {:>11} {:>11} {:>9}",
        "policy", "budget_KiB", "%model", "pf", "MB/s", "bytes/token", "hit%", "sim_tok/s", "bound_tok/s", "time/bnd"
    );
}

pub(super) fn table_row(out: &mut dyn Write, row: &Row, model_bytes: usize) {
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>6.1} {:>4} {:>7.1} {:>12.0} {:>7.1} {:>11.2} {:>11.2} {:>9.3}",
        row.policy.name(),
        row.budget / 1024,
        100.0 * row.budget as f64 / model_bytes as f64,
        row.prefetch,
        row.mbps,
        row.report.bytes_read_per_token(),
        row.report.cache.hit_rate_percent(),
        row.sim_tps(),
        row.bound_tps(),
        row.ratio()
    );
}

pub(super) fn one(opts: &RunOptions, policy: Policy, budget: usize) -> Result<Row, String> {
    let o = RunOptions { policy, ram: Some(budget), ..opts.clone() };
    let report = run(&o)?;
    Ok(Row { policy, budget, prefetch: o.prefetch, mbps: o.flash.mbps, report })
}

pub(super) fn fixed_budget(o: &BenchOptions) -> Result<usize, String> {
    Ok(o.ram.unwrap_or(model_bytes(o)? / 2))
}

/// Runs `spool-sim bench ...` (parsed by clap); the sweeps list the files they wrote on `err`.
pub fn cli(cmd: &BenchCommand, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let files = match cmd {
        BenchCommand::Budget(a) => budget(&a.options()?, out)?,
        BenchCommand::Prefetch(a) => prefetch(&a.options()?, out)?,
        BenchCommand::Policies(a) => policies(&a.options()?, out)?,
        BenchCommand::Decode(a) => return decode(&a.options(), out, err),
        BenchCommand::Prefill(a) => return decode(&a.options(), out, err),
        BenchCommand::Matvec(a) => return crate::kernel_bench::matvec(&a.options()?, out),
        BenchCommand::Limit(a) => limit::limit(&a.options()?, out, err)?,
        BenchCommand::Small(a) => return small(a, out, err),
    };
    for f in files {
        let _ = writeln!(err, "wrote {}", f.display());
    }
    Ok(())
}
