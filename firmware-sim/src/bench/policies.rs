//! `bench policies`: every policy at one budget, without and with prefetch: hit rate, bytes
//! read per token and simulated tokens/s as grouped bars. Owns no shared plumbing.

use std::io::Write;
use std::path::PathBuf;

use spool_core::Policy;

use super::{
    base, fixed_budget, json_array, model_bytes, one, stem, table_header, table_row, write_file, BenchOptions, Row,
};
use crate::plot::{bar_chart, Axis};
use crate::{progress, RunOptions};

/// Hit rate and bytes per token of every policy at one budget, without and with prefetch.
pub fn policies(o: &BenchOptions, out: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
    let model_bytes = model_bytes(o)?;
    let b = fixed_budget(o)?;
    let mut rows = Vec::new();
    table_header(out);
    let distances = [0, o.prefetch.max(1)];
    let bar = progress::steps(Policy::ALL.len() as u64 * 2, "policies");
    for (i, policy) in Policy::ALL.into_iter().enumerate() {
        for (j, &pf) in distances.iter().enumerate() {
            log::info!("[{}/{}] policies: {} prefetch {pf}", i * 2 + j + 1, Policy::ALL.len() * 2, policy.name());
            bar.set_message(format!("{} prefetch {pf}", policy.name()));
            bar.inc(1);
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
    let bytes: Vec<(String, Vec<f64>)> =
        distances.iter().map(|&pf| (format!("prefetch {pf}"), by(pf, &|r| r.report.bytes_read_per_token()))).collect();
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
    write_file(
        &files[1],
        &bar_chart(&format!("Hit rate by policy, {budget}"), Axis::plain("hit rate (%)"), &labels, &hit)?,
    )?;
    write_file(
        &files[2],
        &bar_chart(
            &format!("Bytes read per token by policy, {budget}"),
            Axis::bytes("read per token"),
            &labels,
            &bytes,
        )?,
    )?;
    write_file(
        &files[3],
        &bar_chart(
            &format!("Simulated tokens/s by policy, {budget}"),
            Axis::plain("tokens per second"),
            &labels,
            &tps,
        )?,
    )?;
    Ok(files)
}
