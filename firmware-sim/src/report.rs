//! What a run produced: `RunReport`, the simulated-flash figures, and their JSON and text forms.
//! Owns no running (see `run.rs`) and no argument parsing (see `cli/`).

use spool_core::{CacheStats, KernelPath, Plan, Size, StopReason};

use serde::Serialize;

use crate::flash::FlashSpec;
use crate::json;

/// The sampler's settings of a run (the JSON's `sampling`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sampling {
    /// The RNG seed (the one drawn from the OS when none was given).
    pub seed: u64,
    /// Temperature (0: greedy).
    pub temperature: f32,
    /// Top-p (outside (0, 1): off).
    pub top_p: f32,
    /// Top-k (0: off).
    pub top_k: u32,
    /// Min-p (0: off).
    pub min_p: f32,
    /// Repetition penalty (1: off).
    pub repeat_penalty: f32,
    /// Tokens the penalty looks back over, as run (capped at the context; 0 when off).
    pub repeat_last_n: u32,
}

/// Wall-clock times of a run, in seconds, and the rates they give (the JSON's `timing`;
/// null where a phase did not happen).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// Opening the model and building the engine: header, tensor table, plan, tokenizer,
    /// pinned weights.
    pub load_s: f64,
    /// From the start of generation to the first new token (the prompt's forward passes and
    /// the first sample).
    pub prefill_s: f64,
    /// Prompt positions per second over `prefill_s`.
    pub prefill_tokens_per_s: Option<f64>,
    /// From the start of the run (before the model is opened) to the first new token:
    /// `load_s + prefill_s`; null when the prompt filled every step.
    pub time_to_first_token_s: Option<f64>,
    /// From the first new token to the last.
    pub decode_s: f64,
    /// Decode positions per second over `decode_s`.
    pub decode_tokens_per_s: Option<f64>,
    /// Of `decode_s`, the wall time the core spent blocked waiting for weight reads (the rest
    /// is compute and what overlapped it).
    pub decode_read_wait_s: f64,
}

/// What a run produced, for the CLI and for tests.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The model path as given.
    pub model: String,
    /// Exactly what run.c prints: the text and a final newline.
    pub stdout: Vec<u8>,
    /// The raw bytes of the text (byte-fallback pieces included, no final newline).
    pub text: Vec<u8>,
    /// The golden convention: token fed at position 0, then every next token chosen.
    pub token_ids: Vec<u32>,
    /// Positions run.
    pub positions: u32,
    /// Positions fed from the prompt.
    pub prefill_positions: u32,
    /// Why it stopped.
    pub stop: StopReason,
    /// Decode tokens per second (all positions when nothing was decoded).
    pub tokens_per_s: f64,
    /// Bytes read to load: header, tables, tokenizer, pinned weights.
    pub load_bytes: u64,
    /// Weight bytes read while the prompt was fed.
    pub prefill_bytes: u64,
    /// Weight bytes read after the prompt.
    pub decode_bytes: u64,
    /// Cache counters of the whole run (hits, misses, evictions, reads, units read ahead).
    pub cache: CacheStats,
    /// The arena plan.
    pub plan: Box<Plan>,
    /// Virtual-clock figures, with the simulated flash.
    pub sim: Option<SimReport>,
    /// The sampler's settings, the seed included.
    pub sampling: Sampling,
    /// Wall-clock times.
    pub timing: Timing,
    /// The kernels that ran.
    pub kernel: KernelPath,
    /// Compute threads.
    pub threads: usize,
}

/// What the simulated flash's virtual clock says about the decode positions.
#[derive(Debug, Clone, Copy)]
pub struct SimReport {
    /// The device.
    pub flash: FlashSpec,
    /// Simulated decode tokens per second.
    pub tokens_per_s: f64,
    /// Simulated seconds per decode token.
    pub s_per_token: f64,
    /// Measured compute seconds per decode token.
    pub compute_per_token: f64,
    /// Seconds per token the core waited for reads.
    pub stall_per_token: f64,
    /// The physical bound per token: max(compute, streamed bytes / bandwidth + reads x latency),
    /// with the bytes and reads of the pin plan at this budget.
    pub bound_s_per_token: f64,
}

impl SimReport {
    /// Achieved time per token over the bound (1.0 is the bound).
    pub fn ratio(&self) -> f64 {
        self.s_per_token / self.bound_s_per_token
    }
}

/// Device seconds per token to read what the plan streams.
pub fn io_time_per_token(plan: &Plan, flash: &FlashSpec) -> f64 {
    let units: f64 =
        plan.units.iter().filter(|u| u.pinned_at.is_none()).map(|u| flash.read_time(u.offset, u.bytes as usize)).sum();
    let row = if plan.embd_pinned_at.is_none() { flash.read_time(0, plan.embd_row_bytes as usize) } else { 0.0 };
    units + row
}

impl RunReport {
    /// Positions that fed a generated token.
    pub fn decode_positions(&self) -> u32 {
        self.positions - self.prefill_positions
    }

    /// Weight bytes read per decode position.
    pub fn bytes_read_per_token(&self) -> f64 {
        match self.decode_positions() {
            0 => 0.0,
            n => self.decode_bytes as f64 / n as f64,
        }
    }

    /// The `--json` object (docs/json.md).
    pub fn to_json(&self) -> String {
        json::to_string(&json::RunDoc::new(self))
    }
}

/// The plan as a JSON object of region sizes (the `plan` of `run --json`).
pub fn plan_json(p: &Plan) -> String {
    json::to_string(&json::PlanDoc::new(p))
}

/// The plan as the lines of the stderr report.
pub fn plan_text(p: &Plan) -> String {
    let pinned = p.units.iter().filter(|u| u.pinned_at.is_some()).count();
    let row = |name: &str, bytes: usize, note: String| format!("  {name:<10} {bytes:>10} B  {note}\n");
    let mut s = format!("arena plan: budget {} B ({}), context {}\n", p.budget, Size(p.budget), p.context);
    s += &row("working", p.working.bytes, "activations, logits, sampler".into());
    let ring = match p.kv_ring_layers {
        0 => String::new(),
        n => format!("; {n} sliding-window layers keep a ring of {} (window + prefill chunk - 1)", p.kv_ring_rows),
    };
    let elem = if p.options.kv_f16 { "f16" } else { "f32" };
    s += &row("kv cache", p.kv.bytes, format!("{} positions{ring}, {elem}", p.context));
    s += &row("scratch", p.scratch.bytes, format!("embedding rows of a {}-position prefill chunk", p.prefill_chunk()));
    s += &row("tokenizer", p.tokenizer.bytes, "pieces, scores, sorted index".into());
    s += &row("norms", p.norms.bytes, "norm weights, always resident".into());
    s += &row("resident", p.resident.bytes, format!("{pinned} of {} units pinned", p.units.len()));
    s += &row(
        "slots",
        p.slots.bytes,
        format!(
            "{} x {} B, policy {}, prefetch {}{}",
            p.slot_count,
            p.slot_bytes,
            p.options.policy.name(),
            p.options.prefetch,
            match p.io_slack {
                0 => String::new(),
                n => format!(", {n} B of each for {}-byte aligned direct reads", p.options.io_align),
            }
        ),
    );
    s += &format!(
        "  weights: {} B resident, {} B streamed per token (of {} B touched)\n",
        p.pinned_bytes,
        p.streamed_bytes_per_token(),
        p.touched_bytes_per_token
    );
    s
}
