//! The debug path that writes Spool's intermediate tensors of Gemma 3 270M for one prompt, in
//! scripts/llama-trace.cpp's format, so that scripts/compare-trace.py can find the first
//! tensor where Spool parts from llama.cpp (tests/data/gemma3/README.md). Ignored by default:
//! a tool run on demand, not a check.
//!
//! `SPOOL_TRACE_PROMPT="The capital"|ids:2,818,... SPOOL_TRACE_BATCH=N SPOOL_TRACE_KERNEL=auto|exact
//!  SPOOL_TRACE_OUT=spool.bin cargo test -p spool-tests --test gemma3_trace -- --ignored`
//! feeds the prompt's first N tokens (default: all) as one chunk, then the rest one at a time,
//! as `llama-trace MODEL PROMPT 1 OUT N` does.

mod common;

use std::cell::RefCell;
use std::io::Write;

use common::*;
use spool_sim::{KernelChoice, RunOptions};

/// The trace, in llama-trace's record format: name (with `-layer`), 4 x i64 ne, f32 values.
struct File(RefCell<Vec<u8>>, std::cell::Cell<usize>);

impl spool_core::trace::Trace for File {
    fn tensor(&self, name: &str, layer: Option<usize>, values: &[f32]) {
        let name = layer.map_or(name.to_string(), |l| format!("{name}-{l}"));
        // Every tensor is [positions][width]; result_norm/result_output hold the last position.
        let rows = if name.starts_with("result") { 1 } else { self.1.get() };
        let mut out = self.0.borrow_mut();
        out.extend((name.len() as u32).to_le_bytes());
        out.extend(name.as_bytes());
        for ne in [(values.len() / rows) as i64, rows as i64, 1, 1] {
            out.extend(ne.to_le_bytes());
        }
        for v in values {
            out.extend(v.to_le_bytes());
        }
    }
}

#[test]
#[ignore = "a debug tool: writes a trace file"]
fn write_a_trace_of_gemma3() {
    let prompt = std::env::var("SPOOL_TRACE_PROMPT").unwrap_or("The capital".into());
    let kernel = match std::env::var("SPOOL_TRACE_KERNEL").as_deref() {
        Ok("exact") => KernelChoice::Exact,
        _ => KernelChoice::Auto,
    };
    let out = std::env::var("SPOOL_TRACE_OUT").unwrap_or("spool-trace.bin".into());
    let path = repo().join("target/models/gemma-3-270m-q4_k_m.gguf");
    let mut storage = spool_std::FileStorage::open(&path).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    let opts = spool_sim::plan_options(&RunOptions { kernel, ..Default::default() }, &model);
    let ctx = 256;
    let budget = spool_sim::full_budget_with(&model, ctx, opts).unwrap();
    let mut arena = vec![0u8; budget];
    let loader = spool_core::cache::SyncLoader::new();
    let mut ids = vec![0u32; prompt.len() + 3];
    {
        let engine = spool_core::Engine::with_loader(
            spool_std::FileStorage::open(&path).unwrap(),
            spool_core::cache::SyncLoader::new(),
            &mut arena,
            ctx,
            opts,
        )
        .unwrap();
        if let Some(list) = prompt.strip_prefix("ids:") {
            // Token ids, comma-separated, fed as given (as llama-trace reads them).
            ids = list.split(',').map(|t| t.trim().parse().unwrap()).collect();
        } else {
            let n = engine.tokenizer().encode(prompt.as_bytes(), true, &mut ids).unwrap();
            ids.truncate(n);
        }
    }
    let batch = std::env::var("SPOOL_TRACE_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(ids.len());
    let batch = batch.clamp(1, ids.len());
    let trace = File(RefCell::new(Vec::new()), std::cell::Cell::new(batch));
    let mut engine = spool_core::Engine::with_loader(storage, loader, &mut arena, ctx, opts).unwrap();
    engine.set_kernels(kernel.kernels().unwrap());
    engine.set_trace(&trace);
    engine.forward_batch(&ids[..batch], 0).unwrap();
    trace.1.set(1);
    for (p, &id) in ids.iter().enumerate().skip(batch) {
        engine.forward(id, p as u32).unwrap();
    }
    eprintln!("prompt ids {ids:?}, {kernel:?} kernels -> {out}");
    std::fs::File::create(&out).unwrap().write_all(&trace.0.borrow()).unwrap();
}
