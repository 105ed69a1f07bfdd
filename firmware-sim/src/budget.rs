//! RAM budgets: size parsing (`600K`, `1.5M`, `50%`) and the budgets the planner derives
//! (everything fits, the minimum). Owns no planning itself: the core plans.

use spool_core::{ModelInfo, PlanOptions};

/// Parses sizes such as `600K`, `600KiB`, `600KB`, `1.5M`, `2G` or plain bytes. K, KB and KiB
/// all mean 1024 bytes (and M, G their powers): device budgets are binary.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    // A plain number first: `nan`, `inf` and `1e3` are numbers, not units.
    let (num, unit) = if s.parse::<f64>().is_ok() { (s, "") } else { s.split_at(split) };
    let mult: f64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("size `{s}`: the unit must be K, M or G (or KiB, KB, ...; K = 1024)")),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("size `{s}` is not a number with an optional K, M or G"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("size `{s}` must be a finite number of 0 or more"));
    }
    let bytes = (v * mult).round();
    if bytes >= usize::MAX as f64 {
        return Err(format!("size `{s}` is larger than this machine's address space"));
    }
    Ok(bytes as usize)
}

/// Parses a budget: a size (`600K`, `1.5M`) or a percentage of the model file (`50%`).
pub fn parse_budget(s: &str, model: &str) -> Result<usize, String> {
    match s.trim().strip_suffix('%') {
        Some(p) => {
            let pct: f64 = p.trim().parse().map_err(|_| format!("budget `{s}`: not a percentage"))?;
            if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
                return Err(format!("budget `{s}`: a percentage must be 0 to 100"));
            }
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

/// The smallest budget the planner accepts for this model and context.
pub fn minimum_budget(model: &ModelInfo, ctx: u32) -> usize {
    minimum_budget_with(model, ctx, PlanOptions::default())
}

/// As [`minimum_budget`], for plans made with `opts` (with `io_align` 4096: enough for
/// `--storage direct` on any device).
pub fn minimum_budget_with(model: &ModelInfo, ctx: u32, opts: PlanOptions) -> usize {
    match spool_core::plan_with(model, ctx, 0, opts) {
        Err(spool_core::PlanError::BudgetTooSmall { minimum, .. }) => minimum,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units_in_every_spelling() {
        for s in ["600K", "600KiB", "600KB", "600k", "614400"] {
            assert_eq!(parse_size(s), Ok(614_400), "{s}");
        }
        assert_eq!(parse_size("1.5M"), Ok(1_572_864));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        for bad in ["nan", "inf", "-1K", "12Q", "K", ""] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
