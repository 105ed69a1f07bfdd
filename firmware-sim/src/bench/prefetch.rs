//! `bench prefetch`: prefetch distances 0..3 at the bandwidth where compute and I/O per token
//! are equal, and at half and twice it: simulated ms per token. Owns no shared plumbing.

use std::io::Write;
use std::path::PathBuf;

use spool_core::Policy;

use super::{
    base, fixed_budget, json_array, model_bytes, one, stem, table_header, table_row, write_file, BenchOptions, Row,
};
use crate::flash::FlashSpec;
use crate::plot::{line_chart, Axis, Series};
use crate::{progress, RunOptions};

/// The bandwidth (MB/s) at which reading what a token streams takes as long as computing it,
/// from one run's measured compute per token and its plan (I/O time is affine in 1/bandwidth:
/// `a / mbps + b`, `b` the latencies); None when the latencies alone exceed the compute.
fn balanced_mbps(row: &Row, flash: FlashSpec) -> Option<f64> {
    let compute = row.report.sim?.compute_per_token;
    let io = |mbps| crate::io_time_per_token(&row.report.plan, &FlashSpec { mbps, ..flash });
    let (io1, io2) = (io(1.0), io(2.0));
    let a = 2.0 * (io1 - io2);
    let b = io1 - a;
    (compute > b && a > 0.0).then(|| a / (compute - b))
}

/// Prefetch distances 0..3, pin policy, one budget, at the bandwidth where compute and I/O per
/// token are equal (where prefetch matters most) and at half and twice it.
pub fn prefetch(o: &BenchOptions, out: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
    let model_bytes = model_bytes(o)?;
    let b = fixed_budget(o)?;
    // A first run at the configured flash measures compute per token.
    let probe = one(&RunOptions { prefetch: 0, ..base(o) }, Policy::Pin, b)?;
    // Where the latencies alone outweigh the compute (a tiny model), no bandwidth balances
    // them: the sweep then runs without latency, and the title says so.
    let mut flash = o.flash;
    let balanced = match balanced_mbps(&probe, flash) {
        Some(m) => m,
        None => {
            log::warn!(
                "prefetch sweep: {} us per read alone exceeds the compute per token; sweeping at 0 us",
                flash.latency_us
            );
            flash.latency_us = 0.0;
            balanced_mbps(&probe, flash).unwrap_or(o.flash.mbps)
        }
    };
    log::info!("prefetch sweep: compute and I/O per token are equal at {balanced:.1} MB/s");
    let speeds = [balanced / 2.0, balanced, balanced * 2.0];
    let mut rows = Vec::new();
    table_header(out);
    let bar = progress::steps(speeds.len() as u64 * 4, "prefetch sweep");
    for (i, &mbps) in speeds.iter().enumerate() {
        for pf in 0..=3 {
            log::info!(
                "[{}/{}] prefetch sweep: {mbps:.1} MB/s, distance {pf}",
                i * 4 + pf as usize + 1,
                speeds.len() * 4
            );
            bar.set_message(format!("{mbps:.1} MB/s, distance {pf}"));
            let opts = RunOptions { prefetch: pf, flash: FlashSpec { mbps, ..flash }, ..base(o) };
            let row = one(&opts, Policy::Pin, b)?;
            bar.inc(1);
            table_row(out, &row, model_bytes);
            rows.push(row);
        }
    }
    bar.finish_and_clear();
    let name = stem(o, "prefetch");
    let ms = |r: &Row| r.report.sim.map_or(f64::NAN, |s| s.s_per_token * 1e3);
    let mut series: Vec<Series> = speeds
        .iter()
        .enumerate()
        .map(|(k, &mbps)| Series {
            name: format!("{mbps:.1} MB/s{}", if k == 1 { " (compute = I/O)" } else { "" }),
            points: rows.iter().filter(|r| r.mbps == mbps).map(|r| (r.prefetch as f64, ms(r))).collect(),
            dashed: false,
        })
        .collect();
    series.push(Series {
        name: format!("bound at {balanced:.1} MB/s"),
        points: rows
            .iter()
            .filter(|r| r.mbps == balanced)
            .map(|r| (r.prefetch as f64, r.report.sim.map_or(f64::NAN, |s| s.bound_s_per_token * 1e3)))
            .collect(),
        dashed: true,
    });
    let title = format!(
        "Prefetch: simulated ms/token, budget {} KiB ({:.0}% of the model), {} us/read",
        b / 1024,
        100.0 * b as f64 / model_bytes as f64,
        flash.latency_us
    );
    let files = vec![o.out.join(format!("{name}.json")), o.out.join(format!("{name}.svg"))];
    write_file(&files[0], &json_array(&rows, model_bytes, o, "prefetch"))?;
    let chart =
        line_chart(&title, Axis::integer("prefetch distance (units)"), Axis::plain("ms per token").fit(), &series)?;
    write_file(&files[1], &chart)?;
    Ok(files)
}
