//! Rows split over threads: the same token ids and bit-identical logits at 1, 2 and 3 threads,
//! on every kernel path (scalar, SIMD, and the opt-in SIMD path with Q8-rounded activations), on stories260K F32 and on quantized files of `tests/data/quant`.

mod common;

use spool_core::{Engine, Kernels, ModelInfo, PlanOptions, SliceStorage, SyncLoader};
use spool_std::ThreadPool;

/// The kernel paths this CPU runs.
fn kernel_paths() -> Vec<Kernels> {
    let mut v = vec![Kernels::SCALAR];
    v.extend(spool_std::kernels::simd());
    v.extend(spool_std::kernels::simd_q8());
    v.extend(spool_std::kernels::simd_q8_avx2().filter(|k| !v.contains(k)));
    v
}

/// The planner options for `kernels` (the integer path needs room for rounded activations).
fn opts_for(kernels: Kernels) -> PlanOptions {
    let quantized_activations = kernels.path().quantizes_activations();
    PlanOptions { prefill_chunk: 4, quantized_activations, ..Default::default() }
}

fn quant_file(name: &str) -> Vec<u8> {
    let path = common::quant_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("quantized test data is missing: {}: {e}", path.display()))
}

/// Logits of every position (a batched prefill of `prompt`, then `steps` greedy tokens one by
/// one) and the ids chosen, at `budget` bytes.
fn run(
    bytes: &[u8],
    kernels: Kernels,
    threads: usize,
    budget: usize,
    prompt: &[u32],
    steps: usize,
) -> (Vec<u32>, Vec<u32>) {
    // Every job is split, however small: the point is to exercise the split.
    let pool = ThreadPool::new(threads).with_min_work(0);
    let mut arena = vec![0u8; budget];
    let opts = opts_for(kernels);
    let mut engine = Engine::with_loader(SliceStorage::new(bytes), SyncLoader::new(), &mut arena, 64, opts).unwrap();
    engine.set_kernels(kernels);
    engine.set_executor(&pool);
    let mut logit_bits = Vec::new();
    let mut token = 0;
    for (i, chunk) in prompt.chunks(engine.plan().prefill_chunk() as usize).enumerate() {
        let logits = engine.forward_batch(chunk, (i * engine.plan().prefill_chunk() as usize) as u32).unwrap();
        logit_bits.extend(logits.iter().map(|v| v.to_bits()));
        token = spool_core::sampler::argmax(logits);
    }
    let mut ids = Vec::new();
    for pos in prompt.len()..prompt.len() + steps {
        ids.push(token);
        let logits = engine.forward(token, pos as u32).unwrap();
        logit_bits.extend(logits.iter().map(|v| v.to_bits()));
        token = spool_core::sampler::argmax(logits);
    }
    (ids, logit_bits)
}

fn check(name: &str, bytes: &[u8]) {
    let model = ModelInfo::load(&mut SliceStorage::new(bytes)).unwrap();
    let prompt = [1, 403, 407, 261, 378];
    for kernels in kernel_paths() {
        let opts = opts_for(kernels);
        let full = spool_sim::full_budget_with(&model, 64, opts).unwrap();
        let min = match spool_core::plan_with(&model, 64, 0, opts) {
            Err(spool_core::PlanError::BudgetTooSmall { minimum, .. }) => minimum,
            other => panic!("{other:?}"),
        };
        for budget in [full, min] {
            let (ids1, logits1) = run(bytes, kernels, 1, budget, &prompt, 24);
            for threads in [2, 3] {
                let (ids, logits) = run(bytes, kernels, threads, budget, &prompt, 24);
                let path = kernels.path().name();
                assert_eq!(ids, ids1, "{name} {path}, budget {budget}: ids at {threads} threads");
                assert!(logits == logits1, "{name} {path}, budget {budget}: logits at {threads} threads differ");
            }
        }
    }
}

#[test]
fn stories260k_f32_is_bit_identical_at_1_2_and_3_threads() {
    check("stories260K", &common::model_bytes());
}

#[test]
fn stories260k_q4_0_is_bit_identical_at_1_2_and_3_threads() {
    check("stories260K-Q4_0", &quant_file("stories260K-Q4_0.gguf"));
}

#[test]
fn synth_k_q8_0_and_q6_k_are_bit_identical_at_1_2_and_3_threads() {
    check("synth-k-Q8_0", &quant_file("synth-k-Q8_0.gguf"));
    check("synth-k-Q6_K", &quant_file("synth-k-Q6_K.gguf"));
}

#[test]
fn synth_k_q4_k_m_is_bit_identical_at_1_2_and_3_threads() {
    check("synth-k-Q4_K_M", &quant_file("synth-k-Q4_K_M.gguf"));
}

#[test]
fn the_cli_gives_the_same_tokens_and_logits_at_1_2_and_3_threads() {
    let mut dumps = Vec::new();
    for threads in [1, 2, 3] {
        let path = std::env::temp_dir().join(format!("spool-threads-{}-{threads}.f32", std::process::id()));
        let opts = spool_sim::RunOptions {
            model: common::model_path(),
            prompt: "Once upon a time".into(),
            steps: 40,
            temperature: 0.8,
            seed: 7,
            threads,
            dump_logits: Some(path.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let r = spool_sim::run(&opts).unwrap();
        assert_eq!(r.threads, threads);
        dumps.push((r.token_ids, std::fs::read(&path).unwrap()));
        let _ = std::fs::remove_file(&path);
    }
    assert!(dumps.iter().all(|d| *d == dumps[0]), "tokens or logits differ between thread counts");
}

#[test]
fn the_cli_parses_kernel_threads_and_dump_logits() {
    let path = std::env::temp_dir().join(format!("spool-cli-dump-{}.f32", std::process::id()));
    let args: Vec<String> = [
        "run",
        "-m",
        &common::model_path(),
        "--steps",
        "6",
        "--temp",
        "0",
        "--kernel",
        "scalar",
        "--threads",
        "2",
        "--dump-logits",
        &path.to_string_lossy(),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(spool_sim::main_with(&args, &mut out, &mut err), 0, "{}", String::from_utf8_lossy(&err));
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["stats"]["kernel"], "scalar");
    assert_eq!(json["stats"]["threads"], 2.0);
    assert_eq!(std::fs::read(&path).unwrap().len(), 6 * 512 * 4);
    let _ = std::fs::remove_file(&path);
    for bad in [["--kernel", "fast"], ["--threads", "0"]] {
        let args: Vec<String> =
            ["run", "-m", &common::model_path()].iter().chain(&bad).map(|s| s.to_string()).collect();
        assert_eq!(spool_sim::main_with(&args, &mut Vec::new(), &mut Vec::new()), 2, "{bad:?}");
    }
}
