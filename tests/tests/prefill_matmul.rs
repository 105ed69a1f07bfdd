//! Prefill as a matrix product: a chunk of positions (each weight block read once for several
//! positions, the chunk split over threads by positions) gives every position the logits of
//! feeding the prompt one position at a time, bit for bit, on every kernel path, and the same
//! greedy ids after it.

mod common;

use spool_core::{Engine, Kernels, PlanOptions, SliceStorage, SyncLoader};
use spool_std::ThreadPool;

/// The kernel paths this CPU runs.
fn kernel_paths() -> Vec<Kernels> {
    let mut v = vec![Kernels::SCALAR];
    v.extend(spool_std::kernels::simd());
    v.extend(spool_std::kernels::simd_q8());
    v.extend(spool_std::kernels::simd_q8_avx2().filter(|k| !v.contains(k)));
    v
}

/// The bits of the last position's logits of every chunk, then of `steps` greedy positions.
fn run(bytes: &[u8], kernels: Kernels, threads: usize, chunk: u32, prompt: &[u32], steps: usize) -> Vec<u32> {
    let pool = ThreadPool::new(threads).with_min_work(0);
    let opts = PlanOptions {
        prefill_chunk: chunk,
        quantized_activations: kernels.path().quantizes_activations(),
        ..Default::default()
    };
    let model = spool_core::ModelInfo::load(&mut SliceStorage::new(bytes)).unwrap();
    let budget = spool_sim::full_budget_with(&model, 64, opts).unwrap();
    let mut arena = vec![0u8; budget];
    let mut engine = Engine::with_loader(SliceStorage::new(bytes), SyncLoader::new(), &mut arena, 64, opts).unwrap();
    engine.set_kernels(kernels);
    engine.set_executor(&pool);
    let c = engine.plan().prefill_chunk() as usize;
    assert_eq!(c, chunk as usize);
    let mut bits = Vec::new();
    let mut token = 0;
    for (i, part) in prompt.chunks(c).enumerate() {
        let logits = engine.forward_batch(part, (i * c) as u32).unwrap();
        if part.len() == c || i * c + part.len() == prompt.len() {
            token = spool_core::sampler::argmax(logits);
        }
        if i * c + part.len() == prompt.len() {
            bits.extend(logits.iter().map(|v| v.to_bits()));
        }
    }
    for pos in prompt.len()..prompt.len() + steps {
        let logits = engine.forward(token, pos as u32).unwrap();
        bits.extend(logits.iter().map(|v| v.to_bits()));
        token = spool_core::sampler::argmax(logits);
    }
    bits
}

fn check(name: &str) {
    let bytes = std::fs::read(common::quant_dir().join(name)).unwrap();
    let prompt: Vec<u32> = (0..23).map(|i| 1 + (i * 37 + 11) % 250).collect();
    for kernels in kernel_paths() {
        let one = run(&bytes, kernels, 1, 1, &prompt, 4);
        for (threads, chunk) in [(1, 8), (2, 8), (1, 23), (2, 23), (3, 5)] {
            let got = run(&bytes, kernels, threads, chunk, &prompt, 4);
            assert!(
                got == one,
                "{name} {}: chunk {chunk} at {threads} threads differs from one position at a time",
                kernels.path().name()
            );
        }
    }
}

#[test]
fn q4_0_and_q8_0_prefill_chunks_equal_one_position_at_a_time() {
    check("stories260K-Q4_0.gguf");
    check("synth-k-Q8_0.gguf");
}

#[test]
fn k_quant_and_q5_0_prefill_chunks_equal_one_position_at_a_time() {
    check("synth-k-Q4_K_M.gguf");
    check("synth-k-Q6_K.gguf");
    check("stories260K-Q5_0.gguf");
}
