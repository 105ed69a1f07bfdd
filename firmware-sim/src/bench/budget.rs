//! `bench budget`: the budget from the planner's minimum to the whole model, for every policy:
//! bytes read per token and simulated tokens/s against their targets. Owns no shared plumbing
//! (see `mod.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};

use spool_core::Policy;

use super::{base, json_array, model_bytes, one, stem, table_header, table_row, write_file, BenchOptions, Row};
use crate::plot::{line_chart, Axis, Series};
use crate::progress;

/// Budget from the minimum to 100% of the model, for every policy.
pub fn budget(o: &BenchOptions, out: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
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
    let bar = progress::steps(total as u64, "budget sweep");
    for policy in Policy::ALL {
        for &b in &budgets {
            let step = format!("{} at {} KiB", policy.name(), b / 1024);
            log::info!("[{}/{total}] budget sweep: {step}", rows.len() + 1);
            bar.set_message(step);
            let row = one(&base, policy, b)?;
            bar.inc(1);
            table_row(out, &row, model_bytes);
            rows.push(row);
        }
    }
    let name = stem(o, "budget");
    let x = |r: &Row| r.budget as f64;
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
    let budget_axis = Axis::bytes("budget");
    write_file(
        &files[1],
        &line_chart(&title("Bytes read per token"), budget_axis, Axis::bytes("read per token"), &bytes)?,
    )?;
    write_file(
        &files[2],
        &line_chart(&title("Simulated tokens/s"), budget_axis, Axis::plain("tokens per second"), &tps)?,
    )?;
    Ok(files)
}
