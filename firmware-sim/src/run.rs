//! Orchestration of `spool-sim run`: opens the storage, builds the engine, the loader and the
//! thread pool, runs the generation and collects the report. Owns no argument parsing, no
//! printing and no inference logic (the core computes everything it reports).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use spool_core::cache::{Loader, SyncLoader};
use spool_core::TokenEvent;
use spool_core::{
    generate_with_logits, Engine, Executor, Kernels, ModelInfo, Phase, PlanOptions, Policy, Sampler, Storage,
};
use spool_std::faults::FaultInjector;
use spool_std::{FileStorage, MmapStorage, PrefetchLoader, ThreadPool};

use crate::budget::full_budget_with;
use crate::flash::{FlashClock, TimedLoader};
use crate::report::{io_time_per_token, RunReport, Sampling, SimReport, Timing};
use crate::{verify, Backend, RunOptions};

pub(crate) fn open_model<S: Storage>(storage: &mut S) -> Result<ModelInfo, String> {
    ModelInfo::load(storage).map_err(|e| e.to_string())
}

/// The planner options of a run of `model`: room for rounded activations only where the
/// chosen kernels round the input of one of its matrices (so an F32 file plans as before).
pub fn plan_options(opts: &RunOptions, model: &ModelInfo) -> PlanOptions {
    let prefill_chunk = if opts.dump_logits.is_some() { 1 } else { opts.prefill_chunk };
    let base = PlanOptions {
        policy: opts.policy,
        prefetch: opts.prefetch,
        prefill_chunk,
        kv_f16: opts.kv_f16,
        ..PlanOptions::default()
    };
    match opts.kernel.kernels() {
        Ok(k) => spool_std::engine::plan_options(k, model, base),
        Err(_) => base,
    }
}

/// What sees each token as it is produced (the CLI streams its text and checks for Ctrl-C):
/// the core's event, whose `text` is the token's raw bytes (byte-fallback pieces included,
/// possibly part of a multi-byte character).
pub type OnToken<'s> = &'s mut dyn FnMut(&TokenEvent<'_>);

/// llama2.c's `run.c` filter (`safe_printf`): a piece that is one byte, neither printable
/// ASCII nor white space, prints nothing. Only `--runc-output` and [`RunReport::stdout`] use
/// it, for the run.c goldens; the library's text is never filtered.
pub fn runc_filter(piece: &[u8]) -> &[u8] {
    match piece {
        [b] if !(b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')) => &[],
        _ => piece,
    }
}

/// Runs a generation and returns its report (the CLI prints it).
pub fn run(opts: &RunOptions) -> Result<RunReport, String> {
    run_with(opts, &mut |_| {})
}

/// As [`run`], and `on_token` sees every token as it is produced.
pub fn run_with(opts: &RunOptions, on_token: OnToken<'_>) -> Result<RunReport, String> {
    if let Some(sidecar) = &opts.verify {
        return verify::run_verified(opts, sidecar, on_token);
    }
    let err = |e: std::io::Error| format!("cannot open model `{}`: {e}", opts.model);
    // Both handles (the engine's and the prefetch reader's) go through one injector: a
    // passthrough without --faults.
    let faults = FaultInjector::new(opts.faults.unwrap_or_default(), opts.model.as_ref()).map_err(err)?;
    if opts.backend == Backend::Direct {
        if let Some(direct) = open_direct(faults.path()).map_err(err)? {
            let readers = (0..READERS).map(|_| direct.try_clone().map(|r| faults.wrap(r)));
            let readers = readers.collect::<std::io::Result<Vec<_>>>().map_err(err)?;
            return run_on_readers(faults.wrap(direct), readers, opts, on_token);
        }
    }
    match opts.backend {
        Backend::File | Backend::Flash | Backend::Direct => {
            let file = FileStorage::open(faults.path()).map_err(err)?;
            // The simulated flash is one device with one read at a time.
            let n = if opts.backend == Backend::Flash { 1 } else { READERS };
            let readers = (0..n).map(|_| file.try_clone().map(|r| faults.wrap(r)));
            let readers = readers.collect::<std::io::Result<Vec<_>>>().map_err(err)?;
            run_on_readers(faults.wrap(file), readers, opts, on_token)
        }
        Backend::Mmap => {
            let map = MmapStorage::open(faults.path()).map_err(err)?;
            run_on_with(faults.wrap(map.clone()), faults.wrap(map), opts, on_token)
        }
    }
}

/// Prefetch reader threads of a file-backed run (each its own handle): reads in flight, so
/// that an SSD's queue depth is used.
pub const READERS: usize = 4;

/// The model opened for `--storage direct` (the default on Linux), or `None` (with a log line
/// saying why) when the file system refuses `O_DIRECT`, so that the run falls back to `file`.
#[cfg(target_os = "linux")]
fn open_direct(path: &std::path::Path) -> std::io::Result<Option<spool_std::DirectStorage>> {
    match spool_std::DirectStorage::open(path) {
        Ok(direct) => Ok(Some(direct)),
        Err(spool_std::DirectError::Open(e)) => Err(e),
        Err(e) => {
            log::warn!("--storage direct: {e}; falling back to --storage file");
            Ok(None)
        }
    }
}

/// Direct I/O is Linux-only here: elsewhere `direct` is `file`.
#[cfg(not(target_os = "linux"))]
fn open_direct(_: &std::path::Path) -> std::io::Result<Option<FileStorage>> {
    log::info!("--storage direct is Linux-only; falling back to --storage file");
    Ok(None)
}

/// Runs a generation on any storage; `reader` is a second handle for the prefetch thread.
pub fn run_on<S: Storage, R: Storage + Send>(storage: S, reader: R, opts: &RunOptions) -> Result<RunReport, String> {
    run_on_with(storage, reader, opts, &mut |_| {})
}

/// As [`run_on`], and `on_token` sees every token as it is produced.
pub fn run_on_with<S: Storage, R: Storage + Send>(
    storage: S,
    reader: R,
    opts: &RunOptions,
    on_token: OnToken<'_>,
) -> Result<RunReport, String> {
    run_on_readers(storage, vec![reader], opts, on_token)
}

/// As [`run_on_with`], with one prefetch reader thread per handle in `readers`.
pub fn run_on_readers<S: Storage, R: Storage + Send>(
    mut storage: S,
    readers: Vec<R>,
    opts: &RunOptions,
    on_token: OnToken<'_>,
) -> Result<RunReport, String> {
    let began = Instant::now();
    let model = open_model(&mut storage)?;
    let max_ctx = model.config.context_length;
    let steps = if opts.steps == 0 || opts.steps > max_ctx { max_ctx } else { opts.steps };
    // With -n, the context must hold the prompt (at most one token per byte, BOS and the dummy
    // prefix) and the new tokens; the exact step count is set once the prompt is encoded.
    let needed = match opts.new_tokens {
        Some(n) => (opts.prompt.len() as u64 + 2 + u64::from(n)).min(u64::from(max_ctx)) as u32,
        None => steps,
    };
    // `--ctx-size 0` is the model's context (llama.cpp); above it, the model's context.
    let ctx = match opts.ctx {
        Some(0) => max_ctx,
        Some(c) => c.min(max_ctx),
        None => needed.max(1),
    };
    let budget = match opts.ram {
        Some(b) => b,
        None => full_budget_with(&model, ctx, plan_options(opts, &model))?,
    };
    // `--prefetch auto`: the depth the plan asks for at this budget (0 when resident).
    let resolved;
    let opts = if opts.prefetch_auto {
        let mut plan_opts = plan_options(opts, &model);
        plan_opts.io_align = storage.io_align() as u32;
        let prefetch = spool_core::plan::auto_prefetch(&model, ctx, budget, plan_opts);
        resolved = RunOptions { prefetch, prefetch_auto: false, ..opts.clone() };
        &resolved
    } else {
        opts
    };
    let kernels = opts.kernel.kernels()?;
    let pool = ThreadPool::new(opts.threads.max(1));
    let compute = Compute { kernels, exec: &pool, threads: opts.threads.max(1) };
    let mut arena = spool_std::Arena::new(budget).map_err(|e| format!("cannot map a {budget}-byte arena: {e}"))?;
    let arena = &mut arena[..budget];
    let clock = (opts.backend == Backend::Flash).then(|| Rc::new(RefCell::new(FlashClock::new(opts.flash))));
    std::thread::scope(|scope| {
        if opts.prefetch > 0 {
            let loader = TimedLoader::new(PrefetchLoader::spawn_readers(scope, readers), clock.clone());
            let waited = loader.waited();
            run_engine(storage, loader, arena, &model, ctx, steps, (clock, waited), compute, opts, began, on_token)
        } else {
            let loader = TimedLoader::new(SyncLoader::new(), clock.clone());
            let waited = loader.waited();
            run_engine(storage, loader, arena, &model, ctx, steps, (clock, waited), compute, opts, began, on_token)
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
    (clock, waited): (Option<Rc<RefCell<FlashClock>>>, Rc<std::cell::Cell<f64>>),
    compute: Compute<'a>,
    opts: &RunOptions,
    began: Instant,
    on_token: OnToken<'_>,
) -> Result<RunReport, String> {
    let mut engine =
        Engine::with_loader(storage, loader, arena, ctx, plan_options(opts, model)).map_err(|e| e.to_string())?;
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
    if (opts.ctx.is_some() || opts.new_tokens.is_some()) && n as u64 > u64::from(ctx) {
        return Err(format!(
            "the prompt is {n} tokens but the context holds {ctx}: raise -c/--ctx-size (0 means the model's {}) or shorten -p",
            model.config.context_length
        ));
    }
    // -n counts new tokens: the prompt's last position samples the first of them.
    let steps = match opts.new_tokens {
        // -n 0: nothing is evaluated (llama.cpp's loop never starts).
        Some(0) => 0,
        Some(new) => (n as u64 + u64::from(new) - 1).min(u64::from(ctx)) as u32,
        None => steps,
    };
    let seed = if opts.seed == 0 { os_seed() } else { opts.seed };
    // The repetition penalty's window (llama.cpp's --repeat-last-n), at most the context.
    let repeat_last_n = if opts.repeat_penalty == 1.0 { 0 } else { opts.repeat_last_n.min(ctx) };
    let mut window = vec![0u32; repeat_last_n as usize];
    let mut sampler = Sampler::new(opts.temperature, opts.topp, seed)
        .with_top_k(opts.top_k)
        .with_min_p(opts.min_p)
        .with_repetition_penalty(opts.repeat_penalty, &mut window);
    let mut stdout = Vec::new();
    let mut text = Vec::new();
    let mut token_ids = vec![prompt[0]];
    let start = Instant::now();
    let load_s = (start - began).as_secs_f64();
    log::info!(
        "loaded in {load_s:.3} s: {} prompt tokens, {} steps, context {ctx}, budget {} B, kernels {}, {} thread(s), seed {seed}",
        n,
        steps,
        engine.plan().budget,
        compute.kernels.path().name(),
        compute.threads
    );
    let (mut last_prefill, mut last) = (start, start);
    // Virtual time and compute at the end of the prompt.
    let mut sim_mark = None;
    // Read-wait seconds at the end of the prompt.
    let mut wait_mark = 0.0;
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
        stdout.extend_from_slice(runc_filter(ev.text));
        text.extend_from_slice(ev.text);
        on_token(ev);
        token_ids.push(ev.next);
        last = Instant::now();
        if ev.phase == Phase::Prefill {
            last_prefill = last;
            wait_mark = waited.get();
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
                PlanOptions { policy: Policy::Pin, ..plan_options(opts, model) },
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
    let rate = |n: u32, s: f64| (n > 0).then(|| f64::from(n) / s.max(1e-9));
    let prefill_s = (last_prefill - start).as_secs_f64();
    let decode_s = (last - last_prefill).as_secs_f64();
    let timing = Timing {
        load_s,
        prefill_s,
        prefill_tokens_per_s: rate(outcome.prefill_positions, prefill_s),
        time_to_first_token_s: (outcome.positions >= n as u32).then_some(load_s + prefill_s),
        decode_s,
        decode_tokens_per_s: rate(decode, decode_s),
        decode_read_wait_s: if decode > 0 { waited.get() - wait_mark } else { 0.0 },
    };
    let sampling = Sampling {
        seed,
        temperature: opts.temperature,
        top_p: opts.topp,
        top_k: opts.top_k,
        min_p: opts.min_p,
        repeat_penalty: opts.repeat_penalty,
        repeat_last_n,
    };
    Ok(RunReport {
        model: opts.model.clone(),
        stdout,
        text,
        token_ids,
        positions: outcome.positions,
        prefill_positions: outcome.prefill_positions,
        stop: outcome.stop,
        tokens_per_s,
        load_bytes: engine.load_bytes(),
        prefill_bytes: outcome.prefill.bytes_read,
        decode_bytes: outcome.decode.bytes_read,
        cache: stats,
        plan: Box::new(engine.plan().owned()),
        sim,
        sampling,
        timing,
        kernel: compute.kernels.path(),
        threads: compute.threads,
    })
}

/// A nonzero seed from the OS: std's `RandomState` keys come from the OS's random source.
fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish().max(1)
}
