//! `spool-sim inspect`: the model's hyperparameters, its tensor table and the plan at a budget.
//! Owns no argument parsing (see `cli/`).

use spool_std::FileStorage;

use crate::budget::{full_budget, minimum_budget};
use crate::report::plan_text;
use crate::run::open_model;

/// `spool-sim inspect`: hyperparameters, tensor table and the plan.
pub fn inspect(path: &str, ram: Option<usize>, ctx: Option<u32>) -> Result<String, String> {
    let mut storage = FileStorage::open(path).map_err(|e| format!("cannot open model `{path}`: {e}"))?;
    let model = open_model(&mut storage)?;
    let c = model.config;
    let mut s = format!(
        "model {path}: {} bytes\n  dim {}, hidden {}, layers {}, heads {}, kv heads {}, head size {}, vocab {}, context {}, rope theta {}, rms eps {}\n  weights {} B{}\n\ntensors:\n",
        model.file_len,
        c.dim,
        c.hidden_dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        c.head_size,
        c.vocab,
        c.context_length,
        c.rope_theta,
        c.rms_eps,
        model.weight_bytes(),
        if model.tied_output { " (classifier tied to the embedding)" } else { "" }
    );
    s += &format!("  {:<28} {:<6} {:>14} {:>10} {:>10}\n", "name", "type", "shape", "offset", "bytes");
    for e in spool_core::gguf::tensors(&mut storage, &model.header).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        let dims: Vec<String> = e.shape().iter().map(|d| d.to_string()).collect();
        let ty = spool_core::quant::GgmlType::from_id(e.ggml_type);
        let bytes = ty.and_then(|t| t.row_bytes(e.dims[0])).and_then(|rb| rb.checked_mul(e.rows_cols().0));
        s += &format!(
            "  {:<28} {:<6} {:>14} {:>10} {:>10}\n",
            String::from_utf8_lossy(e.name()),
            spool_core::quant::GgmlType::name_of(e.ggml_type),
            dims.join("x"),
            e.offset,
            bytes.map_or("?".into(), |b| b.to_string())
        );
    }
    let ctx = ctx.unwrap_or(256).clamp(1, c.context_length);
    let budget = match ram {
        Some(b) => b,
        None => full_budget(&model, ctx)?,
    };
    let plan = spool_core::plan(&model, ctx, budget).map_err(|e| e.to_string())?;
    s += "\n";
    s += &plan_text(&plan);
    s += &format!("  minimum budget at context {ctx}: {} B\n", minimum_budget(&model, ctx));
    Ok(s)
}
