//! # spool-sim
//!
//! Runs the full model on a desktop as a device would: a RAM budget, storage behind the core's
//! trait, and the reports a firmware engineer needs (tokens/s, the arena plan, cache hits and
//! bytes read per token). It holds no inference logic: everything it reports, the core
//! computed.
//!
//! ```text
//! spool-sim run -m PATH [-p TEXT] [-n STEPS] [--temp T] [--top-p P] [--seed S] [--ram SIZE]
//!               [--ctx N] [--storage file|mmap|flash] [--flash-mbps M] [--flash-latency-us U]
//!               [--policy pin|lru|lru-protect|mru|min] [--prefetch N] [--prefill-chunk N] [--json]
//!               [--kernel scalar|simd|simd-q8|simd-q8-avx2|auto] [--threads N] [--dump-logits PATH]
//!               [--verify SIDECAR] [--faults SPEC]
//! spool-sim checksum -m PATH -o SIDECAR
//! spool-sim inspect -m PATH [--ram SIZE] [--ctx N]
//! spool-sim bench matvec [--rows R] [--cols C] [--types T,T,..] [--seconds S]
//! ```

pub mod bench;
pub mod flash;
pub mod json;
pub mod kernel_bench;
pub mod plot;
pub mod quantize;
pub mod synth;
pub mod verify;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Instant;

use flash::{FlashClock, FlashSpec, TimedLoader};
use spool_core::cache::{Loader, SyncLoader};
use spool_core::{
    generate_with_logits, CacheStats, Engine, Executor, KernelPath, Kernels, ModelInfo, Phase, PlanOptions, Policy,
    Sampler, StopReason, Storage,
};
use spool_core::{Plan, Size};
use spool_std::faults::{FaultInjector, FaultSpec};
use spool_std::{FileStorage, MmapStorage, PrefetchLoader, ThreadPool};

/// Which kernels compute the matrix-vector products (`--kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// The SIMD kernels if the CPU has them, else the scalar ones.
    Auto,
    /// The portable scalar kernels (bit-exact with llama2.c on F32).
    Scalar,
    /// The SIMD kernels; an error if the CPU lacks them.
    Simd,
    /// The SIMD kernels with activations rounded to Q8_0/Q8_K and integer dot products (as
    /// llama.cpp), with AVX-512 VNNI dots where the CPU has them (bit-identical); opt-in only,
    /// an error if the CPU lacks AVX2/FMA/F16C.
    SimdQ8,
    /// [`KernelChoice::SimdQ8`] on AVX2 alone, even where AVX-512 VNNI is present.
    SimdQ8Avx2,
}

impl KernelChoice {
    /// Parses `scalar`, `simd`, `simd-q8`, `simd-q8-avx2` or `auto`.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => KernelChoice::Auto,
            "scalar" => KernelChoice::Scalar,
            "simd" => KernelChoice::Simd,
            "simd-q8" => KernelChoice::SimdQ8,
            "simd-q8-avx2" => KernelChoice::SimdQ8Avx2,
            _ => return None,
        })
    }

    /// The kernels this choice gives on this CPU.
    pub fn kernels(self) -> Result<Kernels, String> {
        match self {
            KernelChoice::Auto => Ok(spool_std::kernels::detect()),
            KernelChoice::Scalar => Ok(Kernels::SCALAR),
            KernelChoice::Simd => spool_std::kernels::simd()
                .ok_or_else(|| "--kernel simd: this CPU has no supported SIMD kernels (x86-64 AVX2+FMA+F16C)".into()),
            KernelChoice::SimdQ8 => spool_std::kernels::simd_q8().ok_or_else(|| {
                "--kernel simd-q8: this CPU has no supported SIMD kernels (x86-64 AVX2+FMA+F16C)".into()
            }),
            KernelChoice::SimdQ8Avx2 => spool_std::kernels::simd_q8_avx2().ok_or_else(|| {
                "--kernel simd-q8-avx2: this CPU has no supported SIMD kernels (x86-64 AVX2+FMA+F16C)".into()
            }),
        }
    }
}

/// Which storage backend reads the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Positioned reads from the file.
    File,
    /// A memory map of the file.
    Mmap,
    /// The file behind a simulated flash device (bandwidth, latency, virtual clock).
    Flash,
}

impl Backend {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Mmap => "mmap",
            Backend::Flash => "flash",
        }
    }
}

/// Options of `spool-sim run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Model path.
    pub model: String,
    /// Prompt text.
    pub prompt: String,
    /// Positions to run, prompt included (0: the model's context length).
    pub steps: u32,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Top-p (outside (0, 1): plain multinomial).
    pub topp: f32,
    /// RNG seed (0: from the clock).
    pub seed: u64,
    /// RAM budget in bytes (None: everything fits).
    pub ram: Option<usize>,
    /// Context length of the KV cache (None: the step count).
    pub ctx: Option<u32>,
    /// Storage backend.
    pub backend: Backend,
    /// The simulated flash (used with [`Backend::Flash`]).
    pub flash: FlashSpec,
    /// Who stays in RAM.
    pub policy: Policy,
    /// Units read ahead (0: off).
    pub prefetch: u32,
    /// Most prompt positions per layer-major prefill chunk (1: token by token).
    pub prefill_chunk: u32,
    /// Print one JSON object instead of text.
    pub json: bool,
    /// Which kernels compute.
    pub kernel: KernelChoice,
    /// Compute threads for the matrix-vector products (1: the caller alone).
    pub threads: usize,
    /// Write the logits of every position here, little-endian f32 `[positions][vocab]`
    /// (forces a prefill chunk of 1, so that every position has logits).
    pub dump_logits: Option<String>,
    /// Check every weight read against this CRC32 sidecar (`spool-sim checksum`).
    pub verify: Option<String>,
    /// Storage faults to inject ([`spool_std::faults`]); every backend, both loaders.
    pub faults: Option<FaultSpec>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            model: String::new(),
            prompt: String::new(),
            steps: 256,
            temperature: 1.0,
            topp: 0.9,
            seed: 0,
            ram: None,
            ctx: None,
            backend: Backend::File,
            flash: FlashSpec::default(),
            policy: Policy::Pin,
            prefetch: 0,
            prefill_chunk: PlanOptions::default().prefill_chunk,
            json: false,
            kernel: KernelChoice::Auto,
            threads: 1,
            dump_logits: None,
            verify: None,
            faults: None,
        }
    }
}

/// What a run produced, for the CLI and for tests.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Exactly what run.c prints: the text and a final newline.
    pub stdout: Vec<u8>,
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
        let text = self.stdout.strip_suffix(b"\n").unwrap_or(&self.stdout);
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
            .str("stop_reason", if self.stop == StopReason::Bos { "bos" } else { "steps" })
            .finish();
        json::Object::new()
            .str("text", &String::from_utf8_lossy(text))
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
    s += &row("kv cache", p.kv.bytes, format!("{} positions", p.context));
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

/// Parses sizes such as `600K`, `1.5M`, `2G` or plain bytes (K = 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: f64 = match c.to_ascii_uppercase() {
                'B' => 1.0,
                'K' => 1024.0,
                'M' => 1024.0 * 1024.0,
                'G' => 1024.0 * 1024.0 * 1024.0,
                _ => return Err(format!("size `{s}`: unit must be K, M or G")),
            };
            (&s[..i], m)
        }
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| format!("size `{s}` is not a number with an optional K, M or G"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("size `{s}` must be positive"));
    }
    Ok((v * mult).round() as usize)
}

/// Parses a budget: a size (`600K`, `1.5M`) or a percentage of the model file (`50%`).
pub fn parse_budget(s: &str, model: &str) -> Result<usize, String> {
    match s.trim().strip_suffix('%') {
        Some(p) => {
            let pct: f64 = p.parse().map_err(|_| format!("budget `{s}`: not a percentage"))?;
            let len = std::fs::metadata(model).map_err(|e| format!("{model}: {e}"))?.len();
            Ok((len as f64 * pct / 100.0).round() as usize)
        }
        None => parse_size(s),
    }
}

/// The budget at which every weight, the KV cache and the buffers fit.
pub fn full_budget(model: &ModelInfo, ctx: u32) -> Result<usize, String> {
    full_budget_with(model, ctx, PlanOptions::default())
}

/// As [`full_budget`], for plans made with `opts`.
pub fn full_budget_with(model: &ModelInfo, ctx: u32, opts: PlanOptions) -> Result<usize, String> {
    let plan = spool_core::plan_with(model, ctx, usize::MAX / 4, opts).map_err(|e| e.to_string())?;
    Ok(plan.used_bytes())
}

fn open_model<S: Storage>(storage: &mut S) -> Result<ModelInfo, String> {
    ModelInfo::load(storage).map_err(|e| e.to_string())
}

/// The planner options of a run.
pub fn plan_options(opts: &RunOptions) -> PlanOptions {
    let prefill_chunk = if opts.dump_logits.is_some() { 1 } else { opts.prefill_chunk };
    let quantized_activations = matches!(opts.kernel, KernelChoice::SimdQ8 | KernelChoice::SimdQ8Avx2);
    PlanOptions { policy: opts.policy, prefetch: opts.prefetch, prefill_chunk, quantized_activations }
}

/// Runs a generation and returns its report (the CLI prints it).
pub fn run(opts: &RunOptions) -> Result<RunReport, String> {
    if let Some(sidecar) = &opts.verify {
        return verify::run_verified(opts, sidecar);
    }
    let err = |e: std::io::Error| format!("cannot open model `{}`: {e}", opts.model);
    // Both handles (the engine's and the prefetch reader's) go through one injector: a
    // passthrough without --faults.
    let faults = FaultInjector::new(opts.faults.unwrap_or_default(), opts.model.as_ref()).map_err(err)?;
    match opts.backend {
        Backend::File | Backend::Flash => {
            let file = FileStorage::open(faults.path()).map_err(err)?;
            let reader = file.try_clone().map_err(err)?;
            run_on(faults.wrap(file), faults.wrap(reader), opts)
        }
        Backend::Mmap => {
            let map = MmapStorage::open(faults.path()).map_err(err)?;
            run_on(faults.wrap(map.clone()), faults.wrap(map), opts)
        }
    }
}

/// Runs a generation on any storage; `reader` is a second handle for the prefetch thread.
pub fn run_on<S: Storage, R: Storage + Send>(
    mut storage: S,
    reader: R,
    opts: &RunOptions,
) -> Result<RunReport, String> {
    let model = open_model(&mut storage)?;
    let max_ctx = model.config.context_length;
    let steps = if opts.steps == 0 || opts.steps > max_ctx { max_ctx } else { opts.steps };
    let ctx = opts.ctx.unwrap_or(steps).clamp(1, max_ctx);
    let budget = match opts.ram {
        Some(b) => b,
        None => full_budget_with(&model, ctx, plan_options(opts))?,
    };
    let kernels = opts.kernel.kernels()?;
    let pool = ThreadPool::new(opts.threads.max(1));
    let compute = Compute { kernels, exec: &pool, threads: opts.threads.max(1) };
    let mut arena = spool_std::Arena::new(budget).map_err(|e| format!("cannot map a {budget}-byte arena: {e}"))?;
    let arena = &mut arena[..budget];
    let clock = (opts.backend == Backend::Flash).then(|| Rc::new(RefCell::new(FlashClock::new(opts.flash))));
    std::thread::scope(|scope| {
        if opts.prefetch > 0 {
            let loader = TimedLoader::new(PrefetchLoader::spawn(scope, reader), clock.clone());
            run_engine(storage, loader, arena, &model, ctx, steps, clock, compute, opts)
        } else {
            let loader = TimedLoader::new(SyncLoader::new(), clock.clone());
            run_engine(storage, loader, arena, &model, ctx, steps, clock, compute, opts)
        }
    })
}

/// The kernels and the executor of a run.
#[derive(Clone, Copy)]
struct Compute<'p> {
    kernels: Kernels,
    exec: &'p (dyn Executor + Sync),
    threads: usize,
}

#[allow(clippy::too_many_arguments)]
fn run_engine<'a, S: Storage, L: Loader<'a>>(
    storage: S,
    loader: L,
    arena: &'a mut [u8],
    model: &ModelInfo,
    ctx: u32,
    steps: u32,
    clock: Option<Rc<RefCell<FlashClock>>>,
    compute: Compute<'a>,
    opts: &RunOptions,
) -> Result<RunReport, String> {
    let mut engine = Engine::with_loader(storage, loader, arena, ctx, plan_options(opts)).map_err(|e| e.to_string())?;
    engine.set_kernels(compute.kernels);
    engine.set_executor(compute.exec);
    let vocab = model.config.vocab as usize;
    let mut dumped: Vec<f32> = Vec::new();
    let dump = opts.dump_logits.is_some();
    let mut prompt = vec![0u32; opts.prompt.len() + 3];
    let mut scratch = vec![0u32; spool_core::tokenizer::encode_scratch_words(opts.prompt.len())];
    let n = engine
        .tokenizer()
        .encode_with(opts.prompt.as_bytes(), true, &mut prompt, &mut scratch)
        .map_err(|e| e.to_string())?;
    drop(scratch);
    let seed = if opts.seed == 0 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs().max(1))
    } else {
        opts.seed
    };
    let mut sampler = Sampler::new(opts.temperature, opts.topp, seed);
    let mut stdout = Vec::new();
    let mut token_ids = vec![prompt[0]];
    let start = Instant::now();
    let (mut last_prefill, mut last) = (start, start);
    // Virtual time and compute at the end of the prompt.
    let mut sim_mark = None;
    if let Some(c) = &clock {
        c.borrow_mut().tick();
        let mut c = c.borrow_mut();
        (c.now, c.compute, c.stall) = (0.0, 0.0, 0.0);
    }
    let on_logits = |_pos: u32, logits: &[f32]| {
        if dump {
            dumped.extend_from_slice(&logits[..vocab.min(logits.len())]);
        }
    };
    let outcome = generate_with_logits(&mut engine, &mut sampler, &prompt[..n], steps, on_logits, |ev| {
        stdout.extend_from_slice(ev.text);
        token_ids.push(ev.next);
        last = Instant::now();
        if ev.phase == Phase::Prefill {
            last_prefill = last;
            if let Some(c) = &clock {
                let mut c = c.borrow_mut();
                c.tick();
                sim_mark = Some((c.now, c.compute, c.stall));
            }
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(path) = &opts.dump_logits {
        let bytes: Vec<u8> = dumped.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes).map_err(|e| format!("--dump-logits {path}: {e}"))?;
    }
    stdout.push(b'\n');
    let decode = outcome.positions - outcome.prefill_positions;
    let tokens_per_s = if decode > 0 {
        decode as f64 / (last - last_prefill).as_secs_f64().max(1e-9)
    } else {
        outcome.positions as f64 / (last - start).as_secs_f64().max(1e-9)
    };
    let sim = match (&clock, decode) {
        (Some(c), d) if d > 0 => {
            let mut c = c.borrow_mut();
            c.tick();
            let (t0, comp0, stall0) = sim_mark.unwrap_or((0.0, 0.0, 0.0));
            let d = d as f64;
            let s_per_token = (c.now - t0) / d;
            let compute_per_token = (c.compute - comp0) / d;
            let pin_plan = spool_core::plan_with(
                model,
                ctx,
                engine.plan().budget,
                PlanOptions { policy: Policy::Pin, ..plan_options(opts) },
            )
            .map_err(|e| e.to_string())?;
            let io = io_time_per_token(&pin_plan, &c.spec);
            Some(SimReport {
                flash: c.spec,
                tokens_per_s: 1.0 / s_per_token,
                s_per_token,
                compute_per_token,
                stall_per_token: (c.stall - stall0) / d,
                bound_s_per_token: io.max(compute_per_token),
            })
        }
        _ => None,
    };
    let stats = engine.stats();
    Ok(RunReport {
        stdout,
        token_ids,
        positions: outcome.positions,
        prefill_positions: outcome.prefill_positions,
        stop: outcome.stop,
        tokens_per_s,
        load_bytes: engine.load_bytes(),
        prefill_bytes: outcome.prefill.bytes_read,
        decode_bytes: outcome.decode.bytes_read,
        cache: stats,
        plan: Box::new(engine.plan().clone()),
        sim,
        kernel: compute.kernels.path(),
        threads: compute.threads,
    })
}

/// `spool-sim inspect`: hyperparameters, tensor table and the plan.
pub fn inspect(path: &str, ram: Option<usize>, ctx: Option<u32>) -> Result<String, String> {
    let mut storage = FileStorage::open(path).map_err(|e| format!("cannot open model `{path}`: {e}"))?;
    let model = open_model(&mut storage)?;
    let c = model.config;
    let mut s = format!(
        "model {path}: {} bytes\n  dim {}, hidden {}, layers {}, heads {}, kv heads {}, head size {}, vocab {}, context {}, rope theta {}, rms eps {}\n  weights {} B{}\n\ntensors:\n",
        model.file_len,
        c.dim,
        c.hidden_dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        c.head_size,
        c.vocab,
        c.context_length,
        c.rope_theta,
        c.rms_eps,
        model.weight_bytes(),
        if model.tied_output { " (classifier tied to the embedding)" } else { "" }
    );
    s += &format!("  {:<28} {:<6} {:>14} {:>10} {:>10}\n", "name", "type", "shape", "offset", "bytes");
    for e in spool_core::gguf::tensors(&mut storage, &model.header).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        let dims: Vec<String> = e.shape().iter().map(|d| d.to_string()).collect();
        let ty = spool_core::quant::GgmlType::from_id(e.ggml_type);
        let bytes = ty.and_then(|t| t.row_bytes(e.dims[0])).and_then(|rb| rb.checked_mul(e.rows_cols().0));
        s += &format!(
            "  {:<28} {:<6} {:>14} {:>10} {:>10}\n",
            String::from_utf8_lossy(e.name()),
            spool_core::quant::GgmlType::name_of(e.ggml_type),
            dims.join("x"),
            e.offset,
            bytes.map_or("?".into(), |b| b.to_string())
        );
    }
    let ctx = ctx.unwrap_or(256).clamp(1, c.context_length);
    let budget = match ram {
        Some(b) => b,
        None => full_budget(&model, ctx)?,
    };
    let plan = spool_core::plan(&model, ctx, budget).map_err(|e| e.to_string())?;
    s += "\n";
    s += &plan_text(&plan);
    s += &format!("  minimum budget at context {ctx}: {} B\n", minimum_budget(&model, ctx));
    Ok(s)
}

/// The smallest budget the planner accepts for this model and context.
pub fn minimum_budget(model: &ModelInfo, ctx: u32) -> usize {
    match spool_core::plan(model, ctx, 0) {
        Err(spool_core::PlanError::BudgetTooSmall { minimum, .. }) => minimum,
        _ => 0,
    }
}

const USAGE: &str = "usage:
  spool-sim run -m PATH [-p TEXT] [-n STEPS] [--temp T] [--top-p P] [--seed S] [--ram SIZE] [--ctx N]
                [--storage file|mmap|flash] [--flash-mbps MB/S] [--flash-latency-us US] [--flash-granularity B]
                [--policy pin|lru|lru-protect|mru|min] [--prefetch N] [--prefill-chunk N] [--json]
                [--kernel scalar|simd|simd-q8|simd-q8-avx2|auto] [--threads N] [--dump-logits PATH]
                [--verify SIDECAR] [--faults SPEC (error-at=K,latency=MS@K,..: see spool_std::faults)]
  spool-sim checksum -m PATH -o SIDECAR
  spool-sim inspect -m PATH [--ram SIZE] [--ctx N]
  spool-sim bench budget|prefetch|policies [-m PATH] [--ctx N] [-n DECODE] [--points N] [--ram SIZE|PCT%]
                [--flash-mbps M] [--flash-latency-us U] [--prefetch N] [--out DIR] [--name STEM]
  spool-sim bench decode -m MODEL [-m MODEL..] [--threads 1,2] [-n TOKENS] [--reps R] [--kernel K]
                [--peer bench/peer/bench.sh] [--peer-prefix .peer/llama.cpp]
  spool-sim bench matvec [--rows R] [--cols C] [--types F32,Q4_0,..] [--seconds S]
  spool-sim synth -o PATH [--preset stories15m|tinyllama|llama7b] [--dim N ...] [--type F32|F16|Q8_0|Q4_0|Q4_K] [--seed S]
sizes take K, M, G suffixes (K = 1024) or a % of the model file; --temp 0 is greedy; -n 0 means the model's context";

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let mut o = RunOptions::default();
    let mut ram = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|_| format!("{a}: `{v}` is not a number"));
        match a.as_str() {
            "-m" | "--model" => o.model = val()?,
            "-p" | "--prompt" => o.prompt = val()?,
            "-n" | "--steps" => o.steps = num(val()?)? as u32,
            "--temp" | "-t" => o.temperature = num(val()?)? as f32,
            "--top-p" => o.topp = num(val()?)? as f32,
            "--seed" | "-s" => o.seed = val()?.parse().map_err(|_| format!("{a} takes a whole number"))?,
            "--ram" => ram = Some(val()?),
            "--ctx" => o.ctx = Some(num(val()?)? as u32),
            "--json" => o.json = true,
            "--storage" => {
                o.backend = match val()?.as_str() {
                    "file" => Backend::File,
                    "mmap" => Backend::Mmap,
                    "flash" => Backend::Flash,
                    other => return Err(format!("--storage {other}: expected file, mmap or flash")),
                }
            }
            "--policy" => {
                let v = val()?;
                o.policy =
                    Policy::from_name(&v).ok_or(format!("--policy {v}: expected pin, lru, lru-protect, mru or min"))?;
            }
            "--prefetch" => o.prefetch = num(val()?)? as u32,
            "--prefill-chunk" => o.prefill_chunk = (num(val()?)? as u32).max(1),
            "--kernel" => {
                let v = val()?;
                o.kernel = KernelChoice::from_name(&v)
                    .ok_or(format!("--kernel {v}: expected scalar, simd, simd-q8, simd-q8-avx2 or auto"))?;
            }
            "--threads" => {
                let v = val()?;
                o.threads = v
                    .parse()
                    .ok()
                    .filter(|&t| (1..=256).contains(&t))
                    .ok_or(format!("--threads {v}: expected 1 to 256"))?;
            }
            "--dump-logits" => o.dump_logits = Some(val()?),
            "--verify" => o.verify = Some(val()?),
            "--faults" => o.faults = Some(FaultSpec::parse(&val()?).map_err(|e| format!("--faults: {e}"))?),
            "--flash-mbps" => {
                o.flash.mbps = num(val()?)?;
                o.backend = Backend::Flash;
            }
            "--flash-latency-us" => {
                o.flash.latency_us = num(val()?)?;
                o.backend = Backend::Flash;
            }
            "--flash-granularity" => {
                o.flash.granularity = num(val()?)? as u64;
                o.backend = Backend::Flash;
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if o.model.is_empty() {
        return Err("-m PATH is required".into());
    }
    if let Some(r) = ram {
        o.ram = Some(parse_budget(&r, &o.model)?);
    }
    if !(o.flash.mbps > 0.0 && o.flash.latency_us >= 0.0) {
        return Err("--flash-mbps must be > 0 and --flash-latency-us >= 0".into());
    }
    if o.temperature < 0.0 {
        return Err("--temp must be >= 0".into());
    }
    Ok(o)
}

/// The command-line arguments as strings, or an error naming the first that is not UTF-8
/// (`std::env::args` would panic on it). Paths and prompts are read as UTF-8 text.
pub fn utf8_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Vec<String>, String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string().map_err(|a| {
                format!(
                    "argument {} (`{}`) is not valid UTF-8; pass paths and prompts as UTF-8 text",
                    i + 1,
                    a.to_string_lossy()
                )
            })
        })
        .collect()
}

/// The CLI; returns the process exit code.
pub fn main_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("run") => parse_run(&args[1..]).and_then(|o| {
            let r = run(&o)?;
            if o.json {
                let _ = writeln!(out, "{}", r.to_json());
            } else {
                let _ = out.write_all(&r.stdout);
            }
            if let Some(sim) = &r.sim {
                let _ = writeln!(
                    err,
                    "simulated flash {} MB/s, {} us/read: {:.2} tok/s simulated ({:.3} ms/token: compute {:.3}, stall {:.3}); bound {:.3} ms/token ({:.2} tok/s); achieved/bound {:.3}",
                    sim.flash.mbps,
                    sim.flash.latency_us,
                    sim.tokens_per_s,
                    sim.s_per_token * 1e3,
                    sim.compute_per_token * 1e3,
                    sim.stall_per_token * 1e3,
                    sim.bound_s_per_token * 1e3,
                    1.0 / sim.bound_s_per_token,
                    sim.ratio()
                );
            }
            let _ = write!(
                err,
                "{}kernels: {}, {} thread(s)\nachieved tok/s: {:.1} ({} positions, {} from the prompt, stop: {:?})\ncache: {} hits, {} misses, {} evictions, {} read ahead, hit rate {:.1}%\nbytes read: load {}, prefill {}, decode {}; per decode token {:.0}\n",
                plan_text(&r.plan),
                r.kernel.name(),
                r.threads,
                r.tokens_per_s,
                r.positions,
                r.prefill_positions,
                r.stop,
                r.cache.hits,
                r.cache.misses,
                r.cache.evictions,
                r.cache.prefetched,
                r.cache.hit_rate_percent(),
                r.load_bytes,
                r.prefill_bytes,
                r.decode_bytes,
                r.bytes_read_per_token()
            );
            Ok(())
        }),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("matvec") => kernel_bench::parse(&args[2..]).and_then(|o| kernel_bench::matvec(&o, out)),
            Some("decode") => bench::parse_decode(&args[2..]).and_then(|o| bench::decode(&o, out, err)),
            _ => bench::cli(&args[1..], out, err),
        },
        Some("synth") => synth::cli(&args[1..], out, err),
        Some("checksum") => verify::cli(&args[1..], out),
        Some("inspect") => {
            let mut path = None;
            let (mut ram, mut ctx) = (None, None);
            let mut it = args[1..].iter();
            let mut res = Ok(());
            while let Some(a) = it.next() {
                match (a.as_str(), it.next()) {
                    ("-m", Some(v)) => path = Some(v.clone()),
                    ("--ram", Some(v)) => match parse_size(v) {
                        Ok(b) => ram = Some(b),
                        Err(e) => res = Err(e),
                    },
                    ("--ctx", Some(v)) => ctx = v.parse().ok(),
                    _ => res = Err(format!("bad inspect option `{a}`")),
                }
            }
            res.and_then(|_| inspect(path.as_deref().ok_or("-m PATH is required")?, ram, ctx)).map(|s| {
                let _ = out.write_all(s.as_bytes());
            })
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "spool-sim: {e}");
            2
        }
    }
}
