//! The JSON documents spool-sim writes (`run --json` and the bench files), as serde types: the
//! one place their field names live, each name with one meaning across all of them
//! (docs/json.md is the reference). Owns no measuring and no printing; `report.rs` and the
//! benches fill these in.

use serde::Serialize;

use spool_core::{Plan, StopReason};

use crate::report::{RunReport, Sampling, SimReport, Timing};

/// Bumped when a field changes meaning or goes away (adding one does not bump it).
pub const SCHEMA_VERSION: u32 = 2;

/// `spool-sim run --json`: one object.
#[derive(Debug, Serialize)]
pub struct RunDoc<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The model path as given.
    pub model: &'a str,
    /// The text: prompt echo and generated text, assembled UTF-8 (U+FFFD for bytes that never
    /// form a character).
    pub text: String,
    /// The token fed at position 0, then every next token (prompt and generated).
    pub token_ids: &'a [u32],
    /// The sampler's settings, the seed included.
    pub sampling: &'a Sampling,
    /// Wall-clock times and rates.
    pub timing: &'a Timing,
    /// What the run did: positions, bytes read, cache counters, kernels.
    pub stats: Stats<'a>,
    /// The arena plan.
    pub plan: PlanDoc,
    /// The simulated flash's figures (`--storage flash`), else null.
    pub sim: Option<SimDoc>,
}

/// The counters of a run.
#[derive(Debug, Serialize)]
pub struct Stats<'a> {
    /// Positions run (prompt included).
    pub positions: u32,
    /// Positions whose fed token came from the prompt.
    pub prefill_positions: u32,
    /// Positions that fed a generated token.
    pub decode_positions: u32,
    /// `steps`, `bos` or `eos`.
    pub stop_reason: &'static str,
    /// Bytes read to load: header, tables, tokenizer, norms, pinned weights.
    pub load_bytes: u64,
    /// Weight bytes read while the prompt was fed.
    pub prefill_bytes: u64,
    /// Weight bytes read after the prompt.
    pub decode_bytes: u64,
    /// load + prefill + decode bytes.
    pub bytes_read: u64,
    /// Weight bytes read per decode position (0 without decode positions).
    pub bytes_read_per_token: f64,
    /// Cache hits (a unit already in RAM).
    pub hits: u64,
    /// Cache misses (a unit read from storage).
    pub misses: u64,
    /// Units dropped from a slot to make room.
    pub evictions: u64,
    /// Storage reads issued.
    pub reads: u64,
    /// Units read ahead by the prefetch thread.
    pub prefetched: u64,
    /// hits / (hits + misses), in percent.
    pub hit_rate_percent: f64,
    /// The kernels that ran (`scalar`, `avx2`, `avx2-q8`, ...).
    pub kernel: &'a str,
    /// Compute threads.
    pub threads: usize,
}

/// The arena plan: region sizes and what the budget keeps resident.
#[derive(Debug, Serialize)]
pub struct PlanDoc {
    /// The RAM budget.
    pub budget_bytes: usize,
    /// Positions the KV cache holds.
    pub context: u32,
    /// Activations, logits, sampler candidates.
    pub working_bytes: usize,
    /// The KV cache.
    pub kv_cache_bytes: usize,
    /// Layers whose KV cache is a ring (sliding-window attention).
    pub kv_ring_layers: u32,
    /// Rows of the largest ring (0 without rings).
    pub kv_ring_rows: u32,
    /// Embedding rows of a prefill chunk.
    pub scratch_bytes: usize,
    /// The vocabulary.
    pub tokenizer_bytes: usize,
    /// Norm weights (always resident).
    pub norms_bytes: usize,
    /// The region of pinned (resident) weight units.
    pub resident_region_bytes: usize,
    /// The region of the streaming slots.
    pub slot_region_bytes: usize,
    /// Streaming slots.
    pub slot_count: u32,
    /// Bytes of one slot.
    pub slot_bytes: u32,
    /// Weight units of the model.
    pub units: usize,
    /// Units pinned in the resident region.
    pub pinned_units: usize,
    /// Weight bytes pinned (resident) for the whole run.
    pub pinned_weight_bytes: u64,
    /// Weight bytes one token touches.
    pub touched_bytes_per_token: u64,
    /// Weight bytes one token reads from storage under the pin policy.
    pub streamed_bytes_per_token: u64,
    /// Bytes of the budget the plan uses.
    pub used_bytes: usize,
    /// Most prompt positions per prefill chunk.
    pub prefill_chunk: u32,
    /// Who stays in RAM.
    pub policy: &'static str,
    /// Units read ahead.
    pub prefetch: u32,
    /// Whether activations are planned as Q8 (the integer kernels' path).
    pub quantized_activations: bool,
}

impl PlanDoc {
    /// The document of a plan.
    pub fn new(p: &Plan) -> Self {
        Self {
            budget_bytes: p.budget,
            context: p.context,
            working_bytes: p.working.bytes,
            kv_cache_bytes: p.kv.bytes,
            kv_ring_layers: p.kv_ring_layers,
            kv_ring_rows: p.kv_ring_rows,
            scratch_bytes: p.scratch.bytes,
            tokenizer_bytes: p.tokenizer.bytes,
            norms_bytes: p.norms.bytes,
            resident_region_bytes: p.resident.bytes,
            slot_region_bytes: p.slots.bytes,
            slot_count: p.slot_count,
            slot_bytes: p.slot_bytes,
            units: p.units.len(),
            pinned_units: p.units.iter().filter(|u| u.pinned_at.is_some()).count(),
            pinned_weight_bytes: p.pinned_bytes,
            touched_bytes_per_token: p.touched_bytes_per_token,
            streamed_bytes_per_token: p.streamed_bytes_per_token(),
            used_bytes: p.used_bytes(),
            prefill_chunk: p.prefill_chunk(),
            policy: p.options.policy.name(),
            prefetch: p.options.prefetch,
            quantized_activations: p.options.quantized_activations,
        }
    }
}

/// The simulated flash's virtual clock over the decode positions.
#[derive(Debug, Serialize)]
pub struct SimDoc {
    /// Simulated bandwidth, MB/s.
    pub flash_mbps: f64,
    /// Simulated latency per read, microseconds.
    pub flash_latency_us: f64,
    /// Simulated decode tokens per second.
    pub simulated_tokens_per_s: f64,
    /// Simulated seconds per decode token.
    pub simulated_s_per_token: f64,
    /// Measured compute seconds per decode token.
    pub compute_s_per_token: f64,
    /// Seconds per decode token spent waiting for reads.
    pub stall_s_per_token: f64,
    /// The physical bound: max(compute, reads of the pin plan), seconds per token.
    pub bound_s_per_token: f64,
    /// simulated_s_per_token / bound_s_per_token (1.0 is the bound).
    pub achieved_over_bound: f64,
}

impl From<&SimReport> for SimDoc {
    fn from(s: &SimReport) -> Self {
        Self {
            flash_mbps: s.flash.mbps,
            flash_latency_us: s.flash.latency_us,
            simulated_tokens_per_s: s.tokens_per_s,
            simulated_s_per_token: s.s_per_token,
            compute_s_per_token: s.compute_per_token,
            stall_s_per_token: s.stall_per_token,
            bound_s_per_token: s.bound_s_per_token,
            achieved_over_bound: s.ratio(),
        }
    }
}

/// The name of a stop reason.
pub fn stop_name(s: StopReason) -> &'static str {
    match s {
        StopReason::Bos => "bos",
        StopReason::Eos => "eos",
        StopReason::Steps => "steps",
    }
}

impl<'a> RunDoc<'a> {
    /// The document of a run.
    pub fn new(r: &'a RunReport) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            model: &r.model,
            text: String::from_utf8_lossy(&r.text).into_owned(),
            token_ids: &r.token_ids,
            sampling: &r.sampling,
            timing: &r.timing,
            stats: Stats {
                positions: r.positions,
                prefill_positions: r.prefill_positions,
                decode_positions: r.decode_positions(),
                stop_reason: stop_name(r.stop),
                load_bytes: r.load_bytes,
                prefill_bytes: r.prefill_bytes,
                decode_bytes: r.decode_bytes,
                bytes_read: r.load_bytes + r.prefill_bytes + r.decode_bytes,
                bytes_read_per_token: r.bytes_read_per_token(),
                hits: r.cache.hits,
                misses: r.cache.misses,
                evictions: r.cache.evictions,
                reads: r.cache.reads,
                prefetched: r.cache.prefetched,
                hit_rate_percent: r.cache.hit_rate_percent(),
                kernel: r.kernel.name(),
                threads: r.threads,
            },
            plan: PlanDoc::new(&r.plan),
            sim: r.sim.as_ref().map(SimDoc::from),
        }
    }
}

/// One value as compact JSON (the documents here always serialize: no maps with non-string
/// keys; non-finite floats become null).
pub fn to_string<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// One value as indented JSON (the bench files).
pub fn to_string_pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A bench sweep's file (`spool-sim bench budget|prefetch|policies`).
#[derive(Debug, Serialize)]
pub struct SweepDoc<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `budget`, `prefetch` or `policies`.
    pub sweep: &'a str,
    /// The model path as given.
    pub model: &'a str,
    /// The model file's size.
    pub model_bytes: usize,
    /// Positions the KV cache holds.
    pub context: u32,
    /// Decode positions per run.
    pub decode_positions: u32,
    /// Simulated latency per read, microseconds.
    pub flash_latency_us: f64,
    /// One entry per run.
    pub runs: Vec<SweepRun<'a>>,
}

/// One run of a sweep.
#[derive(Debug, Serialize)]
pub struct SweepRun<'a> {
    /// Who stays in RAM.
    pub policy: &'a str,
    /// The RAM budget.
    pub budget_bytes: usize,
    /// budget_bytes / model_bytes, in percent.
    pub budget_percent_of_model: f64,
    /// Units read ahead.
    pub prefetch: u32,
    /// Simulated bandwidth, MB/s.
    pub flash_mbps: f64,
    /// Weight bytes read per decode position (measured).
    pub bytes_read_per_token: f64,
    /// Weight bytes one token reads under the pin policy (the plan's figure).
    pub streamed_bytes_per_token: u64,
    /// hits / (hits + misses), in percent.
    pub hit_rate_percent: f64,
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Units dropped from a slot.
    pub evictions: u64,
    /// Units read ahead by the prefetch thread.
    pub prefetched: u64,
    /// Measured (wall-clock) decode tokens per second on this machine.
    pub decode_tokens_per_s: Option<f64>,
    /// Simulated decode tokens per second on the simulated flash.
    pub simulated_tokens_per_s: Option<f64>,
    /// The physical bound in tokens per second.
    pub bound_tokens_per_s: Option<f64>,
    /// simulated s/token over the bound (1.0 is the bound).
    pub achieved_over_bound: Option<f64>,
    /// Streaming slots.
    pub slot_count: u32,
    /// Weight bytes pinned for the whole run.
    pub pinned_weight_bytes: u64,
}
