//! The command line: argument parsing and dispatch to the subcommands, and what each prints.
//! Owns no running (see `run.rs`) and no report layout (see `report.rs`).

pub(crate) mod args;
mod utf8;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::error::ErrorKind;
use clap::Parser;
use spool_core::{Phase, Policy};

pub use args::{Cli, Command, PrefetchArg, RunArgs};
pub use utf8::Utf8Stream;

use crate::budget::parse_budget;
use crate::report::{plan_text, RunReport};
use crate::{bench, inspect, run_with, synth, verify, Backend, KernelChoice, RunOptions};

/// Set by the Ctrl-C handler; the run checks it after each token.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler of the binary: the first Ctrl-C stops the run after the token
/// being computed (the text so far stays, a short report goes to stderr, exit 130); a second
/// one exits at once.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
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

/// The `run` options of parsed arguments; sizes in percent need the model path.
pub fn run_options(a: &RunArgs) -> Result<RunOptions, String> {
    let mut o = RunOptions {
        model: a.model.clone(),
        prompt: match &a.file {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|e| format!("-f {path}: cannot read the prompt: {e}"))?
            }
            None => a.prompt.clone(),
        },
        temperature: a.temp,
        topp: a.top_p,
        top_k: a.top_k,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        repeat_last_n: a.repeat_last_n,
        seed: a.seed.unwrap_or(0),
        ctx: a.ctx,
        prefetch: match a.prefetch {
            PrefetchArg::Depth(n) => n,
            PrefetchArg::Auto => 0,
        },
        prefetch_auto: a.prefetch == PrefetchArg::Auto,
        json: a.json,
        threads: a.threads,
        dump_logits: a.dump_logits.clone(),
        verify: a.verify.clone(),
        faults: a.faults,
        ..RunOptions::default()
    };
    match a.n_predict {
        Some(-1) => o.steps = 0,
        Some(n) => {
            o.new_tokens = Some(u32::try_from(n).map_err(|_| format!("-n {n}: expected -1 or 1 to {}", u32::MAX))?)
        }
        None => o.steps = a.steps.unwrap_or(o.steps),
    }
    o.backend = match a.storage.as_str() {
        "mmap" => Backend::Mmap,
        "flash" => Backend::Flash,
        "direct" => Backend::Direct,
        _ => Backend::File,
    };
    if let Some(v) = a.flash_mbps {
        o.flash.mbps = v;
        o.backend = Backend::Flash;
    }
    if let Some(v) = a.flash_latency_us {
        o.flash.latency_us = v;
        o.backend = Backend::Flash;
    }
    if let Some(v) = a.flash_granularity {
        o.flash.granularity = v;
        o.backend = Backend::Flash;
    }
    o.policy = Policy::from_name(&a.policy)
        .ok_or(format!("--policy {}: expected pin, lru, lru-protect, mru or min", a.policy))?;
    o.kernel = KernelChoice::from_name(&a.kernel).ok_or(format!(
        "--kernel {}: expected auto, exact, scalar, simd, simd-q8, simd-q8-avx2 or scalar-q8",
        a.kernel
    ))?;
    o.kv_f16 = a.kv == "f16";
    if let Some(c) = a.prefill_chunk {
        o.prefill_chunk = c;
    }
    if let Some(r) = &a.ram {
        o.ram = Some(parse_budget(r, &o.model).map_err(|e| format!("--ram: {e}"))?);
    }
    Ok(o)
}

/// The CLI; returns the process exit code (0, 2 for bad arguments or a failed run, 130 after
/// Ctrl-C). `args` excludes the program name.
pub fn main_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cli = match Cli::try_parse_from(std::iter::once("spool-sim").chain(args.iter().map(String::as_str))) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = out.write_all(text.as_bytes());
                    0
                }
                _ => {
                    let _ = err.write_all(text.as_bytes());
                    2
                }
            };
        }
    };
    init_logging(cli.verbose, cli.quiet);
    crate::progress::set_quiet(cli.quiet);
    let result = match cli.command {
        Command::Run(a) => run_options(&a).and_then(|o| run_cli(&o, a.runc_output, cli.quiet, out, err)),
        Command::Bench(b) => bench::cli(&b, out, err),
        Command::Synth { args } => synth::cli(&args, out, err),
        Command::Tokenize(a) => crate::tokenize::cli(&a, out),
        Command::Checksum { model, out: side } => verify::cli(&["-m".into(), model, "-o".into(), side], out),
        Command::Inspect { model, ram, ctx } => {
            let ram = match ram.map(|r| parse_budget(&r, &model).map_err(|e| format!("--ram: {e}"))).transpose() {
                Ok(r) => r,
                Err(e) => return fail(err, &e),
            };
            inspect(&model, ram, ctx).map(|s| {
                let _ = out.write_all(s.as_bytes());
            })
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => fail(err, &e),
    }
}

/// env_logger on stderr at the level of `-v`/`--quiet` (warnings by default); `RUST_LOG`
/// overrides. The first call in a process sets it up; later calls only move the level.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, 2) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .parse_default_env()
        .target(env_logger::Target::Stderr)
        .try_init();
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(level);
    }
}

fn fail(err: &mut dyn Write, e: &str) -> i32 {
    let _ = writeln!(err, "spool-sim: {e}");
    2
}

/// `spool-sim run`: streams the text (or prints the JSON at the end), then the report.
/// The text is assembled UTF-8, or run.c's filtered bytes with `runc_output`.
/// With `quiet`, no report on stderr. A prefill that outlasts [`PREFILL_BAR_AFTER`] shows a
/// position counter on a terminal's stderr.
fn run_cli(
    o: &RunOptions,
    runc_output: bool,
    quiet: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), String> {
    let mut utf8 = Utf8Stream::default();
    let start = Instant::now();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let (mut positions, mut generated) = (0u64, 0u64);
    let json = o.json;
    let r = {
        let mut on_token = |ev: &spool_core::TokenEvent<'_>| {
            positions += 1;
            if ev.phase == Phase::Decode {
                generated += 1;
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
            } else if bar.is_none() && start.elapsed() > PREFILL_BAR_AFTER && crate::progress::enabled() {
                let b = crate::progress::positions("prefill");
                b.set_position(positions);
                bar = Some(b);
            } else if let Some(b) = &bar {
                b.set_position(positions);
            }
            if !json {
                let mut write = || {
                    let _ = match runc_output {
                        true => out.write_all(crate::run::runc_filter(ev.text)),
                        false => out.write_all(utf8.push(ev.text).as_bytes()),
                    };
                    let _ = out.flush();
                };
                match &bar {
                    Some(b) => b.suspend(write),
                    None => write(),
                }
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                let s = start.elapsed().as_secs_f64().max(1e-9);
                if !json {
                    let _ = out.write_all(utf8.finish().as_bytes());
                    let _ = out.write_all(b"\n");
                    let _ = out.flush();
                }
                let _ = writeln!(
                    err,
                    "\ninterrupted: {positions} positions ({generated} after the prompt) in {s:.2} s, {:.1} tok/s",
                    positions as f64 / s
                );
                let _ = err.flush();
                std::process::exit(130);
            }
        };
        run_with(o, &mut on_token)?
    };
    if json {
        let _ = writeln!(out, "{}", r.to_json());
    } else if r.positions > 0 {
        let _ = out.write_all(utf8.finish().as_bytes());
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
    if !quiet {
        report(&r, err);
    }
    Ok(())
}

/// How long a prefill runs before its progress shows.
const PREFILL_BAR_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// The stderr report of a run.
fn report(r: &RunReport, err: &mut dyn Write) {
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
        "{}kernels: {}, {} thread(s), seed {}\nachieved tok/s: {:.1} ({} positions, {} from the prompt, stop: {:?})\ncache: {} hits, {} misses, {} evictions, {} read ahead, hit rate {:.1}%\nbytes read: load {}, prefill {}, decode {}; per decode token {:.0}\n",
        plan_text(&r.plan),
        r.kernel.name(),
        r.threads,
        r.sampling.seed,
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
}
