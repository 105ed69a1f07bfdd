//! `spool-sim bench`: sweeps that show what the budget, the policy and prefetch buy, on the
//! simulated flash. Each prints a table, writes JSON and SVG plots, and reports progress on
//! stderr. Every figure comes from real forward passes on the real model.

use std::io::Write;
use std::path::{Path, PathBuf};

use spool_core::Policy;

use crate::flash::FlashSpec;
use crate::json::Object;
use crate::plot::{bar_chart, line_chart, Series};
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

fn base(o: &BenchOptions) -> RunOptions {
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

fn model_bytes(o: &BenchOptions) -> Result<usize, String> {
    std::fs::metadata(&o.model).map(|m| m.len() as usize).map_err(|e| format!("{}: {e}", o.model))
}

fn stem(o: &BenchOptions, sweep: &str) -> String {
    o.name.clone().unwrap_or_else(|| {
        let model = Path::new(&o.model).file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
        format!("{sweep}-{model}")
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// One run of a sweep, as the tables and JSON show it.
struct Row {
    policy: Policy,
    budget: usize,
    prefetch: u32,
    mbps: f64,
    report: RunReport,
}

impl Row {
    fn sim_tps(&self) -> f64 {
        self.report.sim.map_or(f64::NAN, |s| s.tokens_per_s)
    }
    fn bound_tps(&self) -> f64 {
        self.report.sim.map_or(f64::NAN, |s| 1.0 / s.bound_s_per_token)
    }
    fn ratio(&self) -> f64 {
        self.report.sim.map_or(f64::NAN, |s| s.ratio())
    }
    fn json(&self, model_bytes: usize) -> String {
        let r = &self.report;
        Object::new()
            .str("policy", self.policy.name())
            .num("budget_bytes", self.budget as f64)
            .num("budget_percent_of_model", 100.0 * self.budget as f64 / model_bytes as f64)
            .num("prefetch", self.prefetch)
            .num("flash_mbps", self.mbps)
            .num("bytes_read_per_token", r.bytes_read_per_token())
            .num("plan_streamed_bytes_per_token", r.plan.streamed_bytes_per_token() as f64)
            .num("hit_rate_percent", self.report.cache.hit_rate_percent())
            .num("hits", r.cache.hits as f64)
            .num("misses", r.cache.misses as f64)
            .num("evictions", r.cache.evictions as f64)
            .num("prefetched", r.cache.prefetched as f64)
            .num("real_tokens_per_s", r.tokens_per_s)
            .num("sim_tokens_per_s", self.sim_tps())
            .num("bound_tokens_per_s", self.bound_tps())
            .num("achieved_over_bound", self.ratio())
            .num("slots", r.plan.slot_count)
            .num("pinned_weight_bytes", r.plan.pinned_bytes as f64)
            .finish()
    }
}

fn json_array(rows: &[Row], model_bytes: usize, o: &BenchOptions, sweep: &str) -> String {
    let items: Vec<String> = rows.iter().map(|r| r.json(model_bytes)).collect();
    Object::new()
        .str("sweep", sweep)
        .str("model", &o.model)
        .num("model_bytes", model_bytes as f64)
        .num("context", o.ctx)
        .num("decode_tokens", o.decode)
        .num("flash_latency_us", o.flash.latency_us)
        .raw("runs", &format!("[{}]", items.join(",\n")))
        .finish()
}

fn table_header(out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>6} {:>4} {:>7} {:>12} {:>7} {:>11} {:>11} {:>9}",
        "policy", "budget_KiB", "%model", "pf", "MB/s", "bytes/token", "hit%", "sim_tok/s", "bound_tok/s", "time/bnd"
    );
}

fn table_row(out: &mut dyn Write, row: &Row, model_bytes: usize) {
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>6.1} {:>4} {:>7} {:>12.0} {:>7.1} {:>11.2} {:>11.2} {:>9.3}",
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

fn one(opts: &RunOptions, policy: Policy, budget: usize) -> Result<Row, String> {
    let o = RunOptions { policy, ram: Some(budget), ..opts.clone() };
    let report = run(&o)?;
    Ok(Row { policy, budget, prefetch: o.prefetch, mbps: o.flash.mbps, report })
}

fn fixed_budget(o: &BenchOptions) -> Result<usize, String> {
    Ok(o.ram.unwrap_or(model_bytes(o)? / 2))
}

/// Budget from the minimum to 100% of the model, for every policy.
pub fn budget(o: &BenchOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
    let model_bytes = model_bytes(o)?;
    let mut storage = spool_std::FileStorage::open(&o.model).map_err(|e| format!("{}: {e}", o.model))?;
    let model = spool_core::ModelInfo::load(&mut storage).map_err(|e| e.to_string())?;
    let base = base(o);
    // The runs' own planner options (the default kernels may plan room for rounded activations).
    let plan_opts = crate::plan_options(&base, &model);
    let min = match spool_core::plan_with(&model, o.ctx, 0, plan_opts) {
        Err(spool_core::PlanError::BudgetTooSmall { minimum, .. }) => minimum,
        other => return Err(format!("unexpected plan at budget 0: {other:?}")),
    };
    let top = model_bytes.max(min + 1).min(crate::full_budget_with(&model, o.ctx, plan_opts)?);
    let n = o.points.max(2);
    let budgets: Vec<usize> = (0..n).map(|i| min + (top - min) * i / (n - 1)).collect();
    let mut rows = Vec::new();
    table_header(out);
    let total = budgets.len() * Policy::ALL.len();
    for policy in Policy::ALL {
        for &b in &budgets {
            let _ = writeln!(err, "[{}/{total}] budget sweep: {} at {} KiB", rows.len() + 1, policy.name(), b / 1024);
            let row = one(&base, policy, b)?;
            table_row(out, &row, model_bytes);
            rows.push(row);
        }
    }
    let name = stem(o, "budget");
    let x = |r: &Row| r.budget as f64 / 1024.0;
    let series = |f: &dyn Fn(&Row) -> f64| -> Vec<Series> {
        Policy::ALL
            .iter()
            .map(|&p| Series {
                name: p.name().into(),
                points: rows.iter().filter(|r| r.policy == p).map(|r| (x(r), f(r))).collect(),
                dashed: false,
            })
            .collect()
    };
    let pin_rows: Vec<&Row> = rows.iter().filter(|r| r.policy == Policy::Pin).collect();
    let mut bytes = series(&|r| r.report.bytes_read_per_token());
    bytes.push(Series {
        name: "target: touched - (budget - working set)".into(),
        points: pin_rows
            .iter()
            .map(|r| {
                let p = &r.report.plan;
                (x(r), (p.touched_bytes_per_token as f64 - (r.budget as f64 - p.working_set_bytes() as f64)).max(0.0))
            })
            .collect(),
        dashed: true,
    });
    let mut tps = series(&|r| r.sim_tps());
    tps.push(Series {
        name: "bound".into(),
        points: pin_rows.iter().map(|r| (x(r), r.bound_tps())).collect(),
        dashed: true,
    });
    let title = |what: &str| {
        format!(
            "{what}: {} at ctx {}, flash {} MB/s {} us, prefetch {}",
            Path::new(&o.model).file_name().map_or(String::new(), |s| s.to_string_lossy().into()),
            o.ctx,
            o.flash.mbps,
            o.flash.latency_us,
            o.prefetch
        )
    };
    let files = vec![
        o.out.join(format!("{name}.json")),
        o.out.join(format!("{name}-bytes.svg")),
        o.out.join(format!("{name}-tokps.svg")),
    ];
    write_file(&files[0], &json_array(&rows, model_bytes, o, "budget"))?;
    write_file(&files[1], &line_chart(&title("Bytes read per token"), "budget (KiB)", "bytes per token", &bytes))?;
    write_file(&files[2], &line_chart(&title("Simulated tokens/s"), "budget (KiB)", "tokens per second", &tps))?;
    Ok(files)
}

/// Prefetch distances 0..3 at several flash speeds, pin policy, one budget.
pub fn prefetch(o: &BenchOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
    let model_bytes = model_bytes(o)?;
    let b = fixed_budget(o)?;
    let speeds = [5.0, 20.0, 80.0, 320.0];
    let mut rows = Vec::new();
    table_header(out);
    for (i, &mbps) in speeds.iter().enumerate() {
        for pf in 0..=3 {
            let _ = writeln!(
                err,
                "[{}/{}] prefetch sweep: {mbps} MB/s, distance {pf}",
                i * 4 + pf as usize + 1,
                speeds.len() * 4
            );
            let opts = RunOptions { prefetch: pf, flash: FlashSpec { mbps, ..o.flash }, ..base(o) };
            let row = one(&opts, Policy::Pin, b)?;
            table_row(out, &row, model_bytes);
            rows.push(row);
        }
    }
    let name = stem(o, "prefetch");
    let series: Vec<Series> = speeds
        .iter()
        .map(|&mbps| Series {
            name: format!("{mbps} MB/s"),
            points: rows.iter().filter(|r| r.mbps == mbps).map(|r| (r.prefetch as f64, 100.0 / r.ratio())).collect(),
            dashed: false,
        })
        .collect();
    let title = format!(
        "Prefetch: simulated speed as % of the bound, budget {} KiB ({:.0}% of the model)",
        b / 1024,
        100.0 * b as f64 / model_bytes as f64
    );
    let files = vec![o.out.join(format!("{name}.json")), o.out.join(format!("{name}.svg"))];
    write_file(&files[0], &json_array(&rows, model_bytes, o, "prefetch"))?;
    write_file(&files[1], &line_chart(&title, "prefetch distance (units)", "% of the bound", &series))?;
    Ok(files)
}

/// Hit rate and bytes per token of every policy at one budget, without and with prefetch.
pub fn policies(o: &BenchOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
    let model_bytes = model_bytes(o)?;
    let b = fixed_budget(o)?;
    let mut rows = Vec::new();
    table_header(out);
    let distances = [0, o.prefetch.max(1)];
    for (i, policy) in Policy::ALL.into_iter().enumerate() {
        for (j, &pf) in distances.iter().enumerate() {
            let _ = writeln!(
                err,
                "[{}/{}] policies: {} prefetch {pf}",
                i * 2 + j + 1,
                Policy::ALL.len() * 2,
                policy.name()
            );
            let row = one(&RunOptions { prefetch: pf, ..base(o) }, policy, b)?;
            table_row(out, &row, model_bytes);
            rows.push(row);
        }
    }
    let name = stem(o, "policies");
    let labels: Vec<String> = Policy::ALL.iter().map(|p| p.name().to_string()).collect();
    let by = |pf: u32, f: &dyn Fn(&Row) -> f64| -> Vec<f64> {
        Policy::ALL
            .iter()
            .map(|&p| rows.iter().find(|r| r.policy == p && r.prefetch == pf).map_or(f64::NAN, f))
            .collect()
    };
    let hit: Vec<(String, Vec<f64>)> = distances
        .iter()
        .map(|&pf| (format!("prefetch {pf}"), by(pf, &|r| r.report.cache.hit_rate_percent())))
        .collect();
    let bytes: Vec<(String, Vec<f64>)> = distances
        .iter()
        .map(|&pf| (format!("prefetch {pf}"), by(pf, &|r| r.report.bytes_read_per_token() / 1024.0)))
        .collect();
    let tps: Vec<(String, Vec<f64>)> =
        distances.iter().map(|&pf| (format!("prefetch {pf}"), by(pf, &|r| r.sim_tps()))).collect();
    let budget = format!("budget {} KiB ({:.0}% of the model)", b / 1024, 100.0 * b as f64 / model_bytes as f64);
    let files = vec![
        o.out.join(format!("{name}.json")),
        o.out.join(format!("{name}-hits.svg")),
        o.out.join(format!("{name}-bytes.svg")),
        o.out.join(format!("{name}-tokps.svg")),
    ];
    write_file(&files[0], &json_array(&rows, model_bytes, o, "policies"))?;
    write_file(&files[1], &bar_chart(&format!("Hit rate by policy, {budget}"), "hit rate (%)", &labels, &hit))?;
    write_file(
        &files[2],
        &bar_chart(&format!("KiB read per token by policy, {budget}"), "KiB per token", &labels, &bytes),
    )?;
    write_file(
        &files[3],
        &bar_chart(&format!("Simulated tokens/s by policy, {budget}"), "tokens per second", &labels, &tps),
    )?;
    Ok(files)
}

/// Parses `bench KIND [options]` and runs it.
pub fn cli(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let kind = args.first().map(String::as_str).ok_or("bench needs a sweep: budget, prefetch or policies")?;
    let mut o = BenchOptions {
        model: "models/stories260K.gguf".into(),
        ctx: 128,
        decode: 24,
        points: 10,
        flash: FlashSpec::default(),
        prefetch: 2,
        ram: None,
        out: "docs/bench".into(),
        name: None,
    };
    let mut ram = None;
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        let num = || v.parse::<f64>().map_err(|_| format!("{a}: `{v}` is not a number"));
        match a.as_str() {
            "-m" | "--model" => o.model = v.clone(),
            "--ctx" => o.ctx = num()? as u32,
            "-n" | "--decode" => o.decode = num()? as u32,
            "--points" => o.points = num()? as usize,
            "--flash-mbps" => o.flash.mbps = num()?,
            "--flash-latency-us" => o.flash.latency_us = num()?,
            "--prefetch" => o.prefetch = num()? as u32,
            "--ram" => ram = Some(v.clone()),
            "--out" => o.out = v.into(),
            "--name" => o.name = Some(v.clone()),
            other => return Err(format!("unknown bench option `{other}`")),
        }
    }
    if let Some(r) = ram {
        o.ram = Some(crate::parse_budget(&r, &o.model)?);
    }
    let files = match kind {
        "budget" => budget(&o, out, err)?,
        "prefetch" => prefetch(&o, out, err)?,
        "policies" => policies(&o, out, err)?,
        other => return Err(format!("unknown sweep `{other}`: budget, prefetch or policies")),
    };
    for f in files {
        let _ = writeln!(err, "wrote {}", f.display());
    }
    Ok(())
}

/// Options of `bench decode`.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// The model files.
    pub models: Vec<String>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Tokens decoded per measurement.
    pub tokens: u32,
    /// Measurements per (model, threads), alternating Spool and llama.cpp.
    pub reps: usize,
    /// Spool's kernels.
    pub kernel: crate::KernelChoice,
    /// llama.cpp's timing script (`bench/peer/bench.sh`); none: Spool alone.
    pub peer_script: Option<PathBuf>,
    /// Where llama.cpp was built (`PREFIX` of the script).
    pub peer_prefix: PathBuf,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn peer_tokens_per_s(o: &DecodeOptions, script: &Path, model: &str, threads: usize) -> Result<f64, String> {
    let output = std::process::Command::new("bash")
        .arg(script)
        .args([model, &threads.to_string(), &o.tokens.to_string(), "1"])
        .env("PREFIX", &o.peer_prefix)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split("tok/s:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("llama.cpp timing failed: {}{}", text, String::from_utf8_lossy(&output.stderr)))
}

/// Decode tokens/s with the whole model resident, next to llama.cpp on the same file and threads.
pub fn decode(o: &DecodeOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let _ = writeln!(
        out,
        "{:<28} {:>7} {:>8} {:>14} {:>14} {:>14}",
        "model", "threads", "kernel", "spool tok/s", "llama.cpp", "spool/llama"
    );
    for model in &o.models {
        for &threads in &o.threads {
            let opts = RunOptions {
                model: model.clone(),
                prompt: String::new(),
                steps: 1 + o.tokens,
                temperature: 0.0,
                kernel: o.kernel,
                threads,
                ..RunOptions::default()
            };
            let (mut spool, mut peer) = (Vec::new(), Vec::new());
            let mut kernel = String::new();
            for rep in 0..o.reps {
                let _ = writeln!(err, "[{model}, {threads} thread(s), rep {}] spool", rep + 1);
                let r = run(&opts)?;
                kernel = r.kernel.name().to_string();
                spool.push(r.tokens_per_s);
                if let Some(script) = &o.peer_script {
                    let _ = writeln!(err, "[{model}, {threads} thread(s), rep {}] llama.cpp", rep + 1);
                    peer.push(peer_tokens_per_s(o, script, model, threads)?);
                }
            }
            let (s, p) = (median(spool), median(peer));
            let name = Path::new(model).file_name().map_or(model.clone(), |n| n.to_string_lossy().into_owned());
            let _ = writeln!(out, "{name:<28} {threads:>7} {kernel:>8} {s:>14.2} {p:>14.2} {:>14.3}", s / p);
        }
    }
    Ok(())
}

/// Parses `bench decode` options.
pub fn parse_decode(args: &[String]) -> Result<DecodeOptions, String> {
    let mut o = DecodeOptions {
        models: Vec::new(),
        threads: vec![1, 2],
        tokens: 32,
        reps: 3,
        kernel: crate::KernelChoice::Auto,
        peer_script: None,
        peer_prefix: ".peer/llama.cpp".into(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        let num = || v.parse::<usize>().map_err(|_| format!("{a}: `{v}` is not a whole number"));
        match a.as_str() {
            "-m" | "--model" => o.models.push(v.clone()),
            "--threads" => {
                o.threads = v
                    .split(',')
                    .map(|t| t.trim().parse().map_err(|_| format!("--threads {v}")))
                    .collect::<Result<_, _>>()?
            }
            "-n" | "--tokens" => o.tokens = num()? as u32,
            "--reps" => o.reps = num()?.max(1),
            "--kernel" => o.kernel = crate::KernelChoice::from_name(v).ok_or(format!("--kernel {v}"))?,
            "--peer" => o.peer_script = Some(v.into()),
            "--peer-prefix" => o.peer_prefix = v.into(),
            other => return Err(format!("unknown bench decode option `{other}`")),
        }
    }
    if o.models.is_empty() {
        return Err("bench decode needs -m MODEL (repeatable)".into());
    }
    Ok(o)
}
