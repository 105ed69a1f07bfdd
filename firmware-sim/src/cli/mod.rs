//! The command line: argument parsing and dispatch to the subcommands, and what each prints.
//! Owns no running (see `run.rs`) and no report layout (see `report.rs`).

use std::io::Write;

use spool_core::Policy;

use crate::budget::{parse_budget, parse_size};
use crate::report::plan_text;
use crate::{bench, inspect, kernel_bench, run, synth, verify, Backend, KernelChoice, RunOptions};

const USAGE: &str = "usage:
  spool-sim run -m PATH [-p TEXT] [-n STEPS] [--temp T] [--top-p P] [--seed S] [--ram SIZE] [--ctx N]
                [--storage file|mmap|flash] [--flash-mbps MB/S] [--flash-latency-us US] [--flash-granularity B]
                [--policy pin|lru|lru-protect|mru|min] [--prefetch N] [--prefill-chunk N] [--json]
                [--kernel scalar|simd|simd-q8|simd-q8-avx2|auto] [--threads N] [--dump-logits PATH]
                [--verify SIDECAR]
  spool-sim checksum -m PATH -o SIDECAR
  spool-sim inspect -m PATH [--ram SIZE] [--ctx N]
  spool-sim bench budget|prefetch|policies [-m PATH] [--ctx N] [-n DECODE] [--points N] [--ram SIZE|PCT%]
                [--flash-mbps M] [--flash-latency-us U] [--prefetch N] [--out DIR] [--name STEM]
  spool-sim bench decode -m MODEL [-m MODEL..] [--threads 1,2] [-n TOKENS] [--reps R] [--kernel K]
                [--peer ../shared/peer/bench.sh] [--peer-prefix .peer/llama.cpp]
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
