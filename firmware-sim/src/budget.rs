//! RAM budgets: size parsing (`600K`, `1.5M`, `50%`) and the budgets the planner derives
//! (everything fits, the minimum). Owns no planning itself: the core plans.

use spool_core::{ModelInfo, PlanOptions};

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
    let v: f64 = num.parse().map_err(|_| format!("size `{s}` is not a number with an optional K, M or G"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("size `{s}` must be positive"));
    }
    Ok((v * mult).round() as usize)
}

/// Parses a budget: a size (`600K`, `1.5M`) or a percentage of the model file (`50%`).
pub fn parse_budget(s: &str, model: &str) -> Result<usize, String> {
    match s.trim().strip_suffix('%') {
        Some(p) => {
            let pct: f64 = p.parse().map_err(|_| format!("budget `{s}`: not a percentage"))?;
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
    match spool_core::plan(model, ctx, 0) {
        Err(spool_core::PlanError::BudgetTooSmall { minimum, .. }) => minimum,
        _ => 0,
    }
}
