//! What a run produced: `RunReport`, the simulated-flash figures, and their JSON and text forms.
//! Owns no running (see `run.rs`) and no argument parsing (see `cli/`).

use spool_core::{CacheStats, KernelPath, Plan, Size, StopReason};

use crate::flash::FlashSpec;
use crate::json;

/// What a run produced, for the CLI and for tests.
#[derive(Debug, Clone)]
pub struct RunReport {
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
    /// The sampler's seed (the one drawn from the OS when none was given).
    pub seed: u64,
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

    /// The `--json` object.
    pub fn to_json(&self) -> String {
        let stats = json::Object::new()
            .num("tokens_per_s", self.tokens_per_s)
            .num("load_bytes", self.load_bytes as f64)
            .num("prefill_bytes", self.prefill_bytes as f64)
            .num("decode_bytes", self.decode_bytes as f64)
            .num("bytes_read", (self.load_bytes + self.prefill_bytes + self.decode_bytes) as f64)
            .num("bytes_read_per_token", self.bytes_read_per_token())
            .num("hits", self.cache.hits as f64)
            .num("misses", self.cache.misses as f64)
            .num("evictions", self.cache.evictions as f64)
            .num("budget_bytes", self.plan.budget as f64)
            .num("resident_bytes", self.plan.pinned_bytes as f64)
            .num("slots", self.plan.slot_count)
            .num("reads", self.cache.reads as f64)
            .num("prefetched", self.cache.prefetched as f64)
            .str("policy", self.plan.options.policy.name())
            .num("prefetch", self.plan.options.prefetch)
            .num("prefill_chunk", self.plan.prefill_chunk())
            .str("kernel", self.kernel.name())
            .num("threads", self.threads as f64)
            .raw("seed", &self.seed.to_string())
            .raw(
                "sim",
                &self.sim.map_or("null".into(), |s| {
                    json::Object::new()
                        .num("flash_mbps", s.flash.mbps)
                        .num("flash_latency_us", s.flash.latency_us)
                        .num("tokens_per_s", s.tokens_per_s)
                        .num("s_per_token", s.s_per_token)
                        .num("compute_per_token", s.compute_per_token)
                        .num("stall_per_token", s.stall_per_token)
                        .num("bound_s_per_token", s.bound_s_per_token)
                        .num("bound_ratio", s.ratio())
                        .finish()
                }),
            )
            .num("positions", self.positions)
            .num("prefill_positions", self.prefill_positions)
            .num("decode_positions", self.decode_positions())
            .str(
                "stop_reason",
                match self.stop {
                    StopReason::Bos => "bos",
                    StopReason::Eos => "eos",
                    StopReason::Steps => "steps",
                },
            )
            .finish();
        json::Object::new()
            .str("text", &String::from_utf8_lossy(&self.text))
            .raw("token_ids", &json::array(&self.token_ids))
            .raw("stats", &stats)
            .raw("plan", &plan_json(&self.plan))
            .finish()
    }
}

/// The plan as a JSON object of region sizes.
pub fn plan_json(p: &Plan) -> String {
    json::Object::new()
        .num("budget_bytes", p.budget as f64)
        .num("context", p.context)
        .num("working_bytes", p.working.bytes as f64)
        .num("kv_cache_bytes", p.kv.bytes as f64)
        .num("kv_ring_layers", p.kv_ring_layers as f64)
        .num("kv_ring_rows", p.kv_ring_rows as f64)
        .num("scratch_bytes", p.scratch.bytes as f64)
        .num("tokenizer_bytes", p.tokenizer.bytes as f64)
        .num("norms_bytes", p.norms.bytes as f64)
        .num("resident_bytes", p.resident.bytes as f64)
        .num("slots_bytes", p.slots.bytes as f64)
        .num("slots", p.slot_count)
        .num("slot_bytes", p.slot_bytes)
        .num("units", p.units.len() as f64)
        .num("pinned_units", p.units.iter().filter(|u| u.pinned_at.is_some()).count() as f64)
        .num("pinned_weight_bytes", p.pinned_bytes as f64)
        .num("touched_bytes_per_token", p.touched_bytes_per_token as f64)
        .num("streamed_bytes_per_token", p.streamed_bytes_per_token() as f64)
        .num("used_bytes", p.used_bytes() as f64)
        .num("prefill_chunk", p.prefill_chunk())
        .str("policy", p.options.policy.name())
        .finish()
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
    s += &row("kv cache", p.kv.bytes, format!("{} positions{ring}", p.context));
    s += &row("scratch", p.scratch.bytes, format!("embedding rows of a {}-position prefill chunk", p.prefill_chunk()));
    s += &row("tokenizer", p.tokenizer.bytes, "pieces, scores, sorted index".into());
    s += &row("norms", p.norms.bytes, "norm weights, always resident".into());
    s += &row("resident", p.resident.bytes, format!("{pinned} of {} units pinned", p.units.len()));
    s += &row(
        "slots",
        p.slots.bytes,
        format!(
            "{} x {} B, policy {}, prefetch {}",
            p.slot_count,
            p.slot_bytes,
            p.options.policy.name(),
            p.options.prefetch
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
