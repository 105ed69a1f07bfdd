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

/// Random valid blocks of `ty` (`bytes` per block, the f16 scales at `scales` set to a small
/// finite value, every other byte random).
fn random_rows(ty: spool_core::quant::GgmlType, rows: usize, cols: usize, seed: &mut u64) -> Vec<u8> {
    use spool_core::quant::GgmlType as T;
    let row_bytes = ty.row_bytes(cols as u64).unwrap() as usize;
    let (bytes, scales): (usize, &[usize]) = match ty {
        T::Q4_0 => (18, &[0]),
        T::Q5_0 => (22, &[0]),
        T::Q8_0 => (34, &[0]),
        T::Q4_K => (144, &[0, 2]),
        T::Q6_K => (210, &[208]),
        _ => unreachable!("no test blocks for {ty:?}"),
    };
    let mut w: Vec<u8> = (0..rows * row_bytes).map(|_| next(seed) as u8).collect();
    for b in w.chunks_exact_mut(bytes) {
        for &at in scales {
            // 2^-13 + a random mantissa: finite, and products stay far from overflow.
            b[at] = next(seed) as u8;
            b[at + 1] = 0x08;
        }
    }
    w
}

fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// The several-position kernels against the single-position ones, kernel by kernel, at shapes
/// the model files do not reach: rows split into several row blocks (hundreds of rows of
/// thousands of columns), every pair count and an odd last position, an output stride wider
/// than the rows, and rows longer than the tiles take (the fallback).
#[test]
fn matmul_kernels_equal_matvec_per_position_at_large_shapes() {
    use spool_core::quant::{activation_bytes, GgmlType as T, MatShape};
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for kernels in kernel_paths() {
        for ty in [T::Q4_0, T::Q5_0, T::Q8_0, T::Q4_K, T::Q6_K] {
            let Some(vt) = kernels.activation_type(ty) else { continue };
            for (rows, cols, positions) in [(300, 2048, 19), (130, 5632, 17), (9, 8448, 5), (37, 256, 3)] {
                let w = random_rows(ty, rows, cols, &mut seed);
                let q_row = activation_bytes(vt, cols).unwrap();
                let x: Vec<f32> =
                    (0..positions * cols).map(|_| (next(&mut seed) % 2001) as f32 / 1000.0 - 1.0).collect();
                let mut xq = vec![0u8; positions * q_row];
                for (xp, qp) in x.chunks_exact(cols).zip(xq.chunks_exact_mut(q_row)) {
                    kernels.quantize_activations(vt, xp, qp);
                }
                let stride = rows + 3;
                let mut got = vec![f32::NAN; positions * stride];
                kernels.matmul_quantized(ty, &w, &xq, &mut got, MatShape { rows, q_row, stride });
                for (p, qp) in xq.chunks_exact(q_row).enumerate() {
                    let mut want = vec![0f32; rows];
                    kernels.matvec_quantized(ty, &w, qp, &mut want);
                    for (r, v) in want.iter().enumerate() {
                        let g = got[p * stride + r];
                        assert!(
                            g.to_bits() == v.to_bits(),
                            "{ty:?} {} {rows}x{cols}, {positions} positions: row {r} position {p}: {g} != {v}",
                            kernels.path().name()
                        );
                    }
                }
            }
        }
    }
}
