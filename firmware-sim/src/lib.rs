//! # spool-sim
//!
//! Runs the full model on a desktop as a device would: a RAM budget, storage behind the core's
//! trait, and the reports a firmware engineer needs (tokens/s, the arena plan, cache hits and
//! bytes read per token). It holds no inference logic: everything it reports, the core
//! computed.
//!
//! ```text
//! spool-sim run -m PATH [-p TEXT] [-n STEPS] [--temp T] [--top-p P] [--seed S] [--ram SIZE]
//!               [--ctx N] [--storage file|mmap] [--json]
//! spool-sim inspect -m PATH [--ram SIZE] [--ctx N]
//! ```

pub mod json;
pub mod quantize;
pub mod synth;

use std::io::Write;
use std::time::Instant;

use spool_core::arena::{Plan, Size};
use spool_core::{generate, Engine, ModelInfo, Phase, Sampler, StopReason, Storage};
use spool_std::{FileStorage, MmapStorage};

/// Which storage backend reads the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Positioned reads from the file.
    File,
    /// A memory map of the file.
    Mmap,
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
    /// Print one JSON object instead of text.
    pub json: bool,
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
            json: false,
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
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Cache evictions.
    pub evictions: u64,
    /// The arena plan.
    pub plan: Plan,
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
            .num(
                "bytes_read",
                (self.load_bytes + self.prefill_bytes + self.decode_bytes) as f64,
            )
            .num("bytes_read_per_token", self.bytes_read_per_token())
            .num("hits", self.hits as f64)
            .num("misses", self.misses as f64)
            .num("evictions", self.evictions as f64)
            .num("budget_bytes", self.plan.budget as f64)
            .num("resident_bytes", self.plan.pinned_bytes as f64)
            .num("slots", self.plan.slot_count)
            .num("positions", self.positions)
            .num("prefill_positions", self.prefill_positions)
            .num("decode_positions", self.decode_positions())
            .str(
                "stop_reason",
                if self.stop == StopReason::Bos {
                    "bos"
                } else {
                    "steps"
                },
            )
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
        .num("resident_bytes", p.resident.bytes as f64)
        .num("slots_bytes", p.slots.bytes as f64)
        .num("slots", p.slot_count)
        .num("slot_bytes", p.slot_bytes)
        .num("units", p.units.len() as f64)
        .num(
            "pinned_units",
            p.units.iter().filter(|u| u.pinned_at.is_some()).count() as f64,
        )
        .num("pinned_weight_bytes", p.pinned_bytes as f64)
        .num("touched_bytes_per_token", p.touched_bytes_per_token as f64)
        .num(
            "streamed_bytes_per_token",
            p.streamed_bytes_per_token() as f64,
        )
        .num("used_bytes", p.used_bytes() as f64)
        .finish()
}

/// The plan as the lines of the stderr report.
pub fn plan_text(p: &Plan) -> String {
    let pinned = p.units.iter().filter(|u| u.pinned_at.is_some()).count();
    let row =
        |name: &str, bytes: usize, note: String| format!("  {name:<10} {bytes:>10} B  {note}\n");
    let mut s = format!(
        "arena plan: budget {} B ({}), context {}\n",
        p.budget,
        Size(p.budget),
        p.context
    );
    s += &row(
        "working",
        p.working.bytes,
        "activations, logits, sampler".into(),
    );
    s += &row("kv cache", p.kv.bytes, format!("{} positions", p.context));
    s += &row("scratch", p.scratch.bytes, "one embedding row".into());
    s += &row(
        "tokenizer",
        p.tokenizer.bytes,
        "pieces, scores, sorted index".into(),
    );
    s += &row(
        "resident",
        p.resident.bytes,
        format!("{pinned} of {} units pinned", p.units.len()),
    );
    s += &row(
        "slots",
        p.slots.bytes,
        format!("{} x {} B", p.slot_count, p.slot_bytes),
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
    let v: f64 = num
        .parse()
        .map_err(|_| format!("size `{s}` is not a number with an optional K, M or G"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("size `{s}` must be positive"));
    }
    Ok((v * mult).round() as usize)
}

/// The budget at which every weight, the KV cache and the buffers fit.
pub fn full_budget(model: &ModelInfo, ctx: u32) -> Result<usize, String> {
    let plan = spool_core::plan(model, ctx, usize::MAX / 4).map_err(|e| e.to_string())?;
    Ok(plan.used_bytes())
}

fn open_model<S: Storage>(storage: &mut S) -> Result<ModelInfo, String> {
    ModelInfo::load(storage).map_err(|e| e.to_string())
}

/// Runs a generation and returns its report (the CLI prints it).
pub fn run(opts: &RunOptions) -> Result<RunReport, String> {
    let err = |e: std::io::Error| format!("cannot open model `{}`: {e}", opts.model);
    match opts.backend {
        Backend::File => run_on(FileStorage::open(&opts.model).map_err(err)?, opts),
        Backend::Mmap => run_on(MmapStorage::open(&opts.model).map_err(err)?, opts),
    }
}

/// Runs a generation on any storage.
pub fn run_on<S: Storage>(mut storage: S, opts: &RunOptions) -> Result<RunReport, String> {
    let model = open_model(&mut storage)?;
    let max_ctx = model.config.context_length;
    let steps = if opts.steps == 0 || opts.steps > max_ctx {
        max_ctx
    } else {
        opts.steps
    };
    let ctx = opts.ctx.unwrap_or(steps).clamp(1, max_ctx);
    let budget = match opts.ram {
        Some(b) => b,
        None => full_budget(&model, ctx)?,
    };
    let mut arena = vec![0u8; budget];
    let mut engine = Engine::new(storage, &mut arena, ctx).map_err(|e| e.to_string())?;
    let mut prompt = vec![0u32; opts.prompt.len() + 3];
    let n = engine
        .tokenizer()
        .encode(opts.prompt.as_bytes(), true, &mut prompt)
        .map_err(|e| e.to_string())?;
    let seed = if opts.seed == 0 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs().max(1))
    } else {
        opts.seed
    };
    let mut sampler = Sampler::new(opts.temperature, opts.topp, seed);
    let mut stdout = Vec::new();
    let mut token_ids = vec![prompt[0]];
    let start = Instant::now();
    let mut last_prefill = start;
    let mut last = start;
    let outcome = generate(&mut engine, &mut sampler, &prompt[..n], steps, |ev| {
        stdout.extend_from_slice(ev.text);
        token_ids.push(ev.next);
        last = Instant::now();
        if ev.phase == Phase::Prefill {
            last_prefill = last;
        }
    })
    .map_err(|e| e.to_string())?;
    stdout.push(b'\n');
    let decode = outcome.positions - outcome.prefill_positions;
    let tokens_per_s = if decode > 0 {
        decode as f64 / (last - last_prefill).as_secs_f64().max(1e-9)
    } else {
        outcome.positions as f64 / (last - start).as_secs_f64().max(1e-9)
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
        hits: stats.hits,
        misses: stats.misses,
        evictions: stats.evictions,
        plan: engine.plan().clone(),
    })
}

/// `spool-sim inspect`: hyperparameters, tensor table and the plan.
pub fn inspect(path: &str, ram: Option<usize>, ctx: Option<u32>) -> Result<String, String> {
    let mut storage =
        FileStorage::open(path).map_err(|e| format!("cannot open model `{path}`: {e}"))?;
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
    s += &format!(
        "  {:<28} {:<6} {:>14} {:>10} {:>10}\n",
        "name", "type", "shape", "offset", "bytes"
    );
    spool_core::gguf::for_each_tensor(&mut storage, &model.header, |e| {
        let dims: Vec<String> = e.dims[..e.n_dims as usize]
            .iter()
            .map(|d| d.to_string())
            .collect();
        let ty = spool_core::quant::GgmlType::from_id(e.ggml_type);
        let bytes = ty
            .and_then(|t| t.row_bytes(e.dims[0]))
            .map(|rb| rb * e.rows_cols().0);
        s += &format!(
            "  {:<28} {:<6} {:>14} {:>10} {:>10}\n",
            String::from_utf8_lossy(e.name),
            spool_core::quant::GgmlType::name_of(e.ggml_type),
            dims.join("x"),
            e.offset,
            bytes.map_or("?".into(), |b| b.to_string())
        );
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let ctx = ctx.unwrap_or(256).clamp(1, c.context_length);
    let budget = match ram {
        Some(b) => b,
        None => full_budget(&model, ctx)?,
    };
    let plan = spool_core::plan(&model, ctx, budget).map_err(|e| e.to_string())?;
    s += "\n";
    s += &plan_text(&plan);
    s += &format!(
        "  minimum budget at context {ctx}: {} B\n",
        minimum_budget(&model, ctx)
    );
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
                [--storage file|mmap] [--json]
  spool-sim inspect -m PATH [--ram SIZE] [--ctx N]
  spool-sim synth -o PATH [--preset stories15m|tinyllama|llama7b] [--dim N ...] [--type F32|F16|Q8_0|Q4_0|Q4_K] [--seed S]
sizes take K, M, G suffixes (K = 1024); --temp 0 is greedy; -n 0 means the model's context";

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let mut o = RunOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{a}: `{v}` is not a number"))
        };
        match a.as_str() {
            "-m" | "--model" => o.model = val()?,
            "-p" | "--prompt" => o.prompt = val()?,
            "-n" | "--steps" => o.steps = num(val()?)? as u32,
            "--temp" | "-t" => o.temperature = num(val()?)? as f32,
            "--top-p" => o.topp = num(val()?)? as f32,
            "--seed" | "-s" => {
                o.seed = val()?
                    .parse()
                    .map_err(|_| format!("{a} takes a whole number"))?
            }
            "--ram" => o.ram = Some(parse_size(&val()?)?),
            "--ctx" => o.ctx = Some(num(val()?)? as u32),
            "--json" => o.json = true,
            "--storage" => {
                o.backend = match val()?.as_str() {
                    "file" => Backend::File,
                    "mmap" => Backend::Mmap,
                    other => return Err(format!("--storage {other}: expected file or mmap")),
                }
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if o.model.is_empty() {
        return Err("-m PATH is required".into());
    }
    if o.temperature < 0.0 {
        return Err("--temp must be >= 0".into());
    }
    Ok(o)
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
            let _ = write!(
                err,
                "{}achieved tok/s: {:.1} ({} positions, {} from the prompt, stop: {:?})\ncache: {} hits, {} misses, {} evictions\nbytes read: load {}, prefill {}, decode {}; per decode token {:.0}\n",
                plan_text(&r.plan),
                r.tokens_per_s,
                r.positions,
                r.prefill_positions,
                r.stop,
                r.hits,
                r.misses,
                r.evictions,
                r.load_bytes,
                r.prefill_bytes,
                r.decode_bytes,
                r.bytes_read_per_token()
            );
            Ok(())
        }),
        Some("synth") => synth::cli(&args[1..], out, err),
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
