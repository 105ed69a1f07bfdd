//! `bench limit`: Spool and llama.cpp under the same real memory limit (a memory cgroup whose
//! hard limit counts the page cache, `bench/peer/memcg-run.sh`, root), at fractions of the
//! model file, caches dropped before each run. Prints tok/s of both, the bytes each read from
//! the device (the memcg line's `dev_read_mib`), the bound `max(compute, bytes per token /
//! bandwidth)` and the ratios; writes JSON and an SVG plot. The bandwidth is measured with
//! `dd iflag=direct` on the same file. The compute is measured in the same run (its decode time
//! less the time the core waited for reads), so that on a shared machine the bound and the
//! run see the same load; a resident run's compute is recorded beside it. Owns no other sweep
//! and no inference: both engines run as child processes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::json;
use crate::plot::{bar_chart, Axis};
use crate::{run, Backend, RunOptions};

/// The prompt of every run (the measurements used it too).
const PROMPT: &str = "Once upon a time";

/// Options of `bench limit`.
#[derive(Debug, Clone)]
pub struct LimitOptions {
    /// The model files.
    pub models: Vec<String>,
    /// Limits, in percent of each file.
    pub percents: Vec<u32>,
    /// Bytes of the limit not given to Spool's arena (binary, stacks, bounce buffers).
    pub margin: usize,
    /// Tokens generated per run.
    pub tokens: u32,
    /// Compute threads of both engines.
    pub threads: usize,
    /// Spool's prefetch distance (units).
    pub prefetch: u32,
    /// The memcg runner (`bench/peer/memcg-run.sh`).
    pub memcg: PathBuf,
    /// llama.cpp's binaries (`llama-completion`); none: Spool alone.
    pub peer_bin: Option<PathBuf>,
    /// Where the JSON and SVG files go.
    pub out: PathBuf,
    /// File stem.
    pub name: String,
}

/// One engine's run under a limit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineRun {
    /// Decode tokens per second (0 when the run failed).
    pub tokens_per_s: f64,
    /// MiB read from the block devices while it ran (machine-wide), from the memcg line.
    pub dev_read_mib: f64,
    /// `dev_read_mib` per position run (prompt and generated), in MiB.
    pub dev_read_mib_per_position: f64,
    /// Peak memory of the cgroup, MiB.
    pub peak_mib: f64,
    /// OOM kills in the cgroup.
    pub oom_kill: u64,
    /// Exit status.
    pub rc: i32,
}

/// One (model, limit) point.
#[derive(Debug, Clone, Serialize)]
pub struct LimitRow {
    /// The model path.
    pub model: String,
    /// File size.
    pub model_bytes: u64,
    /// The limit in percent of the file.
    pub percent: u32,
    /// The memcg hard limit.
    pub limit_bytes: u64,
    /// Spool's arena (`--ram`).
    pub arena_bytes: u64,
    /// Spool.
    pub spool: EngineRun,
    /// Weight bytes Spool's plan reads per decode token (its own count).
    pub spool_bytes_per_token: f64,
    /// Bytes Spool counted over the run (load, prefill, decode).
    pub spool_bytes_counted: u64,
    /// llama.cpp (`None` without `--peer`).
    pub llama: Option<EngineRun>,
    /// Compute per decode token in the limited run: its decode time less the time the core
    /// waited for reads, per token.
    pub compute_s_per_token: f64,
    /// Time the core waited for reads, per decode token, in the limited run.
    pub read_wait_s_per_token: f64,
    /// Compute per token of a resident Spool run (whole model in RAM, no limit), for reference.
    pub resident_compute_s_per_token: f64,
    /// `dd iflag=direct bs=4M` bandwidth of the file, bytes per second: the better of one dd
    /// and four at once on its quarters (Spool reads with four threads).
    pub bandwidth_bytes_per_s: f64,
    /// `1 / max(compute, bytes per token / bandwidth)`.
    pub bound_tokens_per_s: f64,
    /// Spool / bound.
    pub spool_over_bound: f64,
    /// Spool / llama.cpp.
    pub spool_over_llama: Option<f64>,
}

impl LimitRow {
    /// Fills the bound and the ratios from the measured figures.
    pub fn finish(mut self) -> Self {
        let io_s = self.spool_bytes_per_token / self.bandwidth_bytes_per_s.max(1.0);
        self.bound_tokens_per_s = 1.0 / self.compute_s_per_token.max(io_s).max(1e-9);
        self.spool_over_bound = self.spool.tokens_per_s / self.bound_tokens_per_s;
        self.spool_over_llama = self.llama.as_ref().map(|l| self.spool.tokens_per_s / l.tokens_per_s);
        self
    }
}

#[derive(Serialize)]
struct LimitDoc<'a> {
    schema_version: u32,
    sweep: &'static str,
    tokens: u32,
    threads: usize,
    prefetch: u32,
    margin_bytes: usize,
    load_average: String,
    runs: &'a [LimitRow],
}

/// The JSON document of a limit sweep.
pub fn limit_json(o: &LimitOptions, rows: &[LimitRow], load_average: &str) -> String {
    json::to_string_pretty(&LimitDoc {
        schema_version: json::SCHEMA_VERSION,
        sweep: "limit",
        tokens: o.tokens,
        threads: o.threads,
        prefetch: o.prefetch,
        margin_bytes: o.margin,
        load_average: load_average.into(),
        runs: rows,
    })
}

/// The memcg line's fields (`key=value` pairs).
pub fn parse_memcg(line: &str) -> EngineRun {
    let get = |k: &str| {
        line.split_whitespace().find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('='))).unwrap_or("0")
    };
    EngineRun {
        dev_read_mib: get("dev_read_mib").parse().unwrap_or(0.0),
        peak_mib: get("peak_mib").parse().unwrap_or(0.0),
        oom_kill: get("oom_kill").parse().unwrap_or(0),
        rc: get("rc").parse().unwrap_or(-1),
        ..EngineRun::default()
    }
}

/// llama.cpp's decode tokens/s from its perf lines (`eval time = ... tokens per second)`, not
/// the prompt's).
pub fn parse_llama_tps(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains(" eval time") && !l.contains("prompt eval"))?;
    let before = line.split("tokens per second").next()?;
    before.rsplit([',', '(']).next()?.trim().parse().ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn drop_caches() -> Result<(), String> {
    let ok = Command::new("sh")
        .args(["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])
        .status()
        .map_err(|e| format!("drop caches: {e}"))?;
    if ok.success() {
        Ok(())
    } else {
        Err("cannot drop the page cache (echo 3 > /proc/sys/vm/drop_caches): run as root".into())
    }
}

/// Bytes per second of `dd iflag=direct bs=4M` over the whole file (caches dropped first),
/// with `jobs` dd processes each reading its own 1/jobs of the file at once (queue depth
/// `jobs`, as Spool's reader threads read).
fn direct_bandwidth(model: &str, jobs: u64) -> Result<f64, String> {
    drop_caches()?;
    let bytes = std::fs::metadata(model).map_err(|e| format!("{model}: {e}"))?.len();
    let blocks = bytes.div_ceil(4 << 20);
    let share = blocks.div_ceil(jobs.max(1));
    let t = Instant::now();
    let children: Vec<_> = (0..jobs.max(1))
        .map(|k| {
            Command::new("dd")
                .args([format!("if={model}"), "of=/dev/null".into(), "bs=4M".into(), "iflag=direct".into()])
                .args([format!("skip={}", k * share), format!("count={share}")])
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("dd: {e}"))
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        let status = c.wait().map_err(|e| format!("dd: {e}"))?;
        if !status.success() {
            return Err(format!("dd iflag=direct on {model} failed ({status})"));
        }
    }
    Ok(bytes as f64 / t.elapsed().as_secs_f64())
}

/// Runs `cmd` under the memcg limit; returns its stdout, stderr and the memcg line.
fn under_limit(o: &LimitOptions, limit: u64, cmd: &mut Command) -> Result<(String, String, EngineRun), String> {
    drop_caches()?;
    let stats = std::env::temp_dir().join(format!("spool-memcg-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&stats);
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let output = Command::new("bash")
        .arg(&o.memcg)
        .arg(limit.to_string())
        .arg(program)
        .args(args)
        .env("MEMCG_STATS", &stats)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", o.memcg.display()))?;
    let line = std::fs::read_to_string(&stats).unwrap_or_default();
    let _ = std::fs::remove_file(&stats);
    if line.trim().is_empty() {
        return Err(format!("{}: no memcg line: {}", o.memcg.display(), String::from_utf8_lossy(&output.stderr)));
    }
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    Ok((out, err, parse_memcg(line.trim())))
}

/// Spool's figures beside the memcg line: bytes per token, bytes counted, compute and read wait
/// per decode token.
struct SpoolFigures {
    per_token: f64,
    counted: u64,
    compute: f64,
    wait: f64,
}

fn spool_under_limit(
    o: &LimitOptions,
    model: &str,
    limit: u64,
    arena: u64,
) -> Result<(EngineRun, SpoolFigures), String> {
    let exe = std::env::current_exe().map_err(|e| format!("the spool-sim binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["run", "-m", model, "-p", PROMPT, "--temp", "0", "--json", "--quiet"])
        .args(["-n", &o.tokens.to_string(), "-t", &o.threads.to_string()])
        .args(["--ram", &arena.to_string(), "--prefetch", &o.prefetch.to_string(), "--storage", "direct"]);
    let (out, err, mut r) = under_limit(o, limit, &mut cmd)?;
    let doc: serde_json::Value = match serde_json::from_str(out.trim()) {
        Ok(v) => v,
        Err(_) if r.rc != 0 || r.oom_kill > 0 => {
            return Ok((r, SpoolFigures { per_token: 0.0, counted: 0, compute: f64::NAN, wait: f64::NAN }))
        }
        Err(e) => return Err(format!("spool-sim run --json: {e}: {out}{err}")),
    };
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    r.tokens_per_s = num(&doc["timing"]["decode_tokens_per_s"]);
    let positions = num(&doc["stats"]["positions"]).max(1.0);
    r.dev_read_mib_per_position = r.dev_read_mib / positions;
    let per_token = num(&doc["stats"]["bytes_read_per_token"]);
    let decoded = num(&doc["stats"]["decode_positions"]).max(1.0);
    let decode_s = num(&doc["timing"]["decode_s"]);
    let wait = num(&doc["timing"]["decode_read_wait_s"]);
    let figures = SpoolFigures {
        per_token,
        counted: doc["stats"]["bytes_read"].as_u64().unwrap_or(0),
        compute: (decode_s - wait).max(0.0) / decoded,
        wait: wait / decoded,
    };
    Ok((r, figures))
}

fn llama_under_limit(o: &LimitOptions, bin: &Path, model: &str, limit: u64) -> Result<EngineRun, String> {
    let mut cmd = Command::new(bin.join("llama-completion"));
    // `-c`: a context that holds the prompt and the new tokens, as Spool's does; llama.cpp's
    // default (the model's 2048) would spend 92 MB of the limit on an f32 KV cache.
    let ctx = (o.tokens + 64).to_string();
    cmd.args(["-m", model, "-p", PROMPT, "-n", &o.tokens.to_string(), "-t", &o.threads.to_string()])
        .args(["-c", &ctx])
        .args(["--no-repack", "-ctk", "f32", "-ctv", "f32", "--temp", "0", "--no-warmup", "-no-cnv"]);
    let (out, err, mut r) = under_limit(o, limit, &mut cmd)?;
    r.tokens_per_s = parse_llama_tps(&err).or_else(|| parse_llama_tps(&out)).unwrap_or(0.0);
    // The prompt's tokens are not known here: the positions are at least the generated ones.
    r.dev_read_mib_per_position = r.dev_read_mib / f64::from(o.tokens.max(1));
    Ok(r)
}

/// Seconds per decode token with the whole model in RAM (no limit): the compute part of the bound.
fn resident_compute(o: &LimitOptions, model: &str) -> Result<f64, String> {
    let opts = RunOptions {
        model: model.into(),
        prompt: PROMPT.into(),
        new_tokens: Some(o.tokens),
        temperature: 0.0,
        threads: o.threads,
        backend: Backend::Direct,
        ..RunOptions::default()
    };
    let r = run(&opts)?;
    Ok(1.0 / r.timing.decode_tokens_per_s.unwrap_or(r.tokens_per_s).max(1e-9))
}

fn header(out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "{:<22} {:>4} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>11} {:>11}",
        "model",
        "L%",
        "limit_MiB",
        "arena_MiB",
        "spool_t/s",
        "llama_t/s",
        "spool_MiB/t",
        "spool_devMiB",
        "llama_devMiB",
        "comp_ms",
        "wait_ms",
        "io_ms",
        "bound_t/s",
        "sp/bound",
        "sp/llama",
        "peak_sp/ll"
    );
}

fn row_line(out: &mut dyn Write, r: &LimitRow) {
    let name = Path::new(&r.model).file_name().map_or(r.model.clone(), |n| n.to_string_lossy().into_owned());
    let l = r.llama.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "{:<22} {:>4} {:>9.0} {:>9.0} {:>9.2} {:>9.2} {:>11.1} {:>12.0} {:>12.0} {:>8.0} {:>8.0} {:>8.0} {:>9.2} {:>9.2} {:>11.2} {:>5.0}/{:<5.0}",
        name,
        r.percent,
        r.limit_bytes as f64 / 1048576.0,
        r.arena_bytes as f64 / 1048576.0,
        r.spool.tokens_per_s,
        l.tokens_per_s,
        r.spool_bytes_per_token / 1048576.0,
        r.spool.dev_read_mib,
        l.dev_read_mib,
        r.compute_s_per_token * 1e3,
        r.read_wait_s_per_token * 1e3,
        r.spool_bytes_per_token / r.bandwidth_bytes_per_s.max(1.0) * 1e3,
        r.bound_tokens_per_s,
        r.spool_over_bound,
        r.spool_over_llama.unwrap_or(f64::NAN),
        r.spool.peak_mib,
        l.peak_mib,
    );
}

/// Runs the sweep, prints the table on `out` (progress on `err`) and writes the JSON and SVG.
pub fn limit(o: &LimitOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
    let load_before = load_average();
    let _ = writeln!(err, "load average before: {load_before}");
    let mut rows = Vec::new();
    header(out);
    for model in &o.models {
        let bytes = std::fs::metadata(model).map_err(|e| format!("{model}: {e}"))?.len();
        let _ = writeln!(err, "[{model}] dd iflag=direct bandwidth");
        let dd1 = direct_bandwidth(model, 1)?;
        let dd4 = direct_bandwidth(model, 4)?;
        let bandwidth = dd1.max(dd4);
        let _ = writeln!(
            err,
            "[{model}] dd iflag=direct: {:.0} MB/s, 4 at once {:.0} MB/s; resident compute",
            dd1 / 1e6,
            dd4 / 1e6
        );
        let compute = resident_compute(o, model)?;
        for &percent in &o.percents {
            let limit = bytes * u64::from(percent) / 100;
            let arena = limit.saturating_sub(o.margin as u64);
            let _ = writeln!(err, "[{model}, {percent}%] spool");
            let (spool, f) = spool_under_limit(o, model, limit, arena)?;
            let llama = match &o.peer_bin {
                Some(bin) => {
                    let _ = writeln!(err, "[{model}, {percent}%] llama.cpp");
                    Some(llama_under_limit(o, bin, model, limit)?)
                }
                None => None,
            };
            let row = LimitRow {
                model: model.clone(),
                model_bytes: bytes,
                percent,
                limit_bytes: limit,
                arena_bytes: arena,
                spool,
                spool_bytes_per_token: f.per_token,
                spool_bytes_counted: f.counted,
                llama,
                compute_s_per_token: f.compute,
                read_wait_s_per_token: f.wait,
                resident_compute_s_per_token: compute,
                bandwidth_bytes_per_s: bandwidth,
                bound_tokens_per_s: 0.0,
                spool_over_bound: 0.0,
                spool_over_llama: None,
            }
            .finish();
            row_line(out, &row);
            rows.push(row);
        }
    }
    let load = format!("before {load_before}, after {}", load_average());
    let _ = writeln!(out, "load average: {load}");
    let json_path = o.out.join(format!("{}.json", o.name));
    super::write_file(&json_path, &limit_json(o, &rows, &load))?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            let m = Path::new(&r.model).file_stem().map_or(String::new(), |s| s.to_string_lossy().into_owned());
            format!("{m} {}%", r.percent)
        })
        .collect();
    let mut series = vec![
        ("Spool".to_string(), rows.iter().map(|r| r.spool.tokens_per_s).collect::<Vec<_>>()),
        ("bound".to_string(), rows.iter().map(|r| r.bound_tokens_per_s).collect()),
    ];
    if o.peer_bin.is_some() {
        series.push((
            "llama.cpp".into(),
            rows.iter().map(|r| r.llama.as_ref().map_or(0.0, |l| l.tokens_per_s)).collect(),
        ));
    }
    let svg =
        bar_chart("decode under a memory limit (memcg, page cache counted)", Axis::plain("tok/s"), &labels, &series)?;
    let svg_path = o.out.join(format!("{}.svg", o.name));
    super::write_file(&svg_path, &svg)?;
    Ok(vec![json_path, svg_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memcg_line_and_llama_perf_lines_parse() {
        let r =
            parse_memcg("memcg limit_mib=1004 peak_mib=1003 failcnt=12 oom_kill=0 pgmajfault=3 dev_read_mib=2100 rc=0");
        assert_eq!((r.dev_read_mib, r.peak_mib, r.oom_kill, r.rc), (2100.0, 1003.0, 0, 0));
        let text = "x I common_perf_print: prompt eval time =  9983.03 ms /    11 tokens (  907.55 ms per token,     1.10 tokens per second)\n\
                    x I common_perf_print:        eval time =   17318.09 ms /     7 runs   ( 2474.01 ms per token,     0.40 tokens per second)\n";
        assert_eq!(parse_llama_tps(text), Some(0.40));
        assert_eq!(parse_llama_tps("nothing"), None);
    }

    #[test]
    fn a_row_gets_its_bound_and_ratios_and_the_json_has_every_field() {
        let o = LimitOptions {
            models: vec!["m.gguf".into()],
            percents: vec![90],
            margin: 8 << 20,
            tokens: 16,
            threads: 2,
            prefetch: 8,
            memcg: "bench/peer/memcg-run.sh".into(),
            peer_bin: None,
            out: "docs/bench".into(),
            name: "limit-test".into(),
        };
        let row = LimitRow {
            model: "m.gguf".into(),
            model_bytes: 1000 << 20,
            percent: 90,
            limit_bytes: 900 << 20,
            arena_bytes: 892 << 20,
            spool: EngineRun { tokens_per_s: 4.5, ..EngineRun::default() },
            spool_bytes_per_token: 100e6,
            spool_bytes_counted: 0,
            llama: Some(EngineRun { tokens_per_s: 1.5, ..EngineRun::default() }),
            compute_s_per_token: 0.2,
            read_wait_s_per_token: 0.02,
            resident_compute_s_per_token: 0.19,
            bandwidth_bytes_per_s: 1e9,
            bound_tokens_per_s: 0.0,
            spool_over_bound: 0.0,
            spool_over_llama: None,
        }
        .finish();
        // Compute (0.2 s) is above the I/O (0.1 s): the bound is 5 tok/s.
        assert!((row.bound_tokens_per_s - 5.0).abs() < 1e-9);
        assert!((row.spool_over_bound - 0.9).abs() < 1e-9);
        assert!((row.spool_over_llama.unwrap() - 3.0).abs() < 1e-9);
        let doc: serde_json::Value = serde_json::from_str(&limit_json(&o, &[row], "1.0 1.0 1.0")).unwrap();
        assert_eq!(doc["sweep"], "limit");
        let run = &doc["runs"][0];
        for key in [
            "percent",
            "limit_bytes",
            "arena_bytes",
            "spool",
            "llama",
            "bound_tokens_per_s",
            "spool_over_bound",
            "spool_over_llama",
            "bandwidth_bytes_per_s",
            "compute_s_per_token",
            "read_wait_s_per_token",
            "resident_compute_s_per_token",
        ] {
            assert!(!run[key].is_null(), "{key} missing: {run}");
        }
        assert_eq!(run["spool"]["tokens_per_s"], 4.5);
        assert!(run["llama"]["dev_read_mib"].is_number());
    }

    #[test]
    fn the_arguments_parse_with_their_defaults_and_bad_limits_are_refused() {
        use clap::Parser;
        let parse = |extra: &[&str]| {
            let args = ["spool-sim", "bench", "limit", "-m", "a.gguf", "-m", "b.gguf"].iter().chain(extra);
            crate::cli::Cli::try_parse_from(args.copied())
        };
        let cli = parse(&[]).unwrap();
        let crate::cli::Command::Bench(super::super::BenchCommand::Limit(a)) = cli.command else {
            panic!("not bench limit")
        };
        let o = a.options().unwrap();
        assert_eq!(o.models, ["a.gguf", "b.gguf"]);
        assert_eq!(
            (o.percents.clone(), o.margin, o.tokens, o.threads, o.prefetch),
            (vec![90, 50, 25], 8 << 20, 16, 2, 8)
        );
        assert!(o.peer_bin.is_none());
        assert!(parse(&["--limits", "90,0"]).is_err());
        assert!(parse(&["--limits", "101"]).is_err());
        let cli = parse(&["--limits", "75", "--margin", "16M", "--peer-bin", "/x/bin"]).unwrap();
        let crate::cli::Command::Bench(super::super::BenchCommand::Limit(a)) = cli.command else {
            panic!("not bench limit")
        };
        let o = a.options().unwrap();
        assert_eq!((o.percents, o.margin, o.peer_bin), (vec![75], 16 << 20, Some("/x/bin".into())));
    }
}
