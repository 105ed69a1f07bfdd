//! The optional f16 KV cache (`PlanOptions::kv_f16`, `spool-sim --kv f16`): half the KV bytes,
//! logits within a stated tolerance of the f32 cache's, and tokens that still never depend on
//! the budget, the prefill chunk or the threads.
//!
//! Tolerance (stories260K, F32 weights, scalar kernels, context 128, the 128 positions of the
//! golden greedy story fed one by one): every logit within `MAX_ABS` of the f32 cache's, the
//! largest difference within `MAX_REL` of the largest |logit|, and the same argmax at every
//! position. Measured: see the test's output (`cargo test --test kv_f16 -- --nocapture`).

mod common;

use spool_core::{generate_with_logits, Engine, ModelInfo, PlanOptions, Sampler, SliceStorage, SyncLoader};

const MAX_ABS: f32 = 0.05;
const MAX_REL: f32 = 0.005;
const CTX: u32 = 128;

/// The greedy ids of "Once upon a time" at context 128 with the f16 cache (scalar kernels):
/// netduinoplus2's golden with `kv-f16` (firmware-qemu/src/main.rs holds the same array). The
/// f32 cache gives the same ids; the first 65 are llama2.c's `greedy_once_64`.
const F16_128: [u32; 129] = [
    1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
    419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338,
    391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310, 439, 419, 357, 336,
    432, 313, 438, 310, 432, 278, 316, 439, 419, 298, 414, 267, 265, 282, 295, 433, 426, 436, 317, 286, 296, 418, 269,
    279, 292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400, 426, 338, 336, 432, 313, 442, 391, 267, 337, 335,
    364, 420, 268, 388, 432, 398, 359, 280, 303, 439, 413, 272, 417, 264,
];

fn opts(kv_f16: bool) -> PlanOptions {
    PlanOptions { kv_f16, ..PlanOptions::default() }
}

/// Greedy ids of "Once upon a time" over `CTX` positions, the bits of every logit seen (one
/// row per prefill chunk, then one per position), and the plan's prefill chunk.
fn run(bytes: &[u8], budget: usize, o: PlanOptions) -> (Vec<u32>, Vec<u32>, u32) {
    let mut arena = vec![0u8; budget];
    let mut e = Engine::with_loader(SliceStorage::new(bytes), SyncLoader::new(), &mut arena, CTX, o).unwrap();
    let mut prompt = [0u32; 32];
    let n = e.tokenizer().encode(b"Once upon a time", true, &mut prompt).unwrap();
    let (mut ids, mut bits) = (Vec::new(), Vec::new());
    let chunk = e.plan().prefill_chunk();
    let mut sampler = Sampler::new(0.0, 0.9, 42);
    let on_logits = |_, l: &[f32]| bits.extend(l.iter().map(|f| f.to_bits()));
    generate_with_logits(&mut e, &mut sampler, &prompt[..n], CTX, on_logits, |ev| {
        if ev.pos == 0 {
            ids.push(ev.token);
        }
        ids.push(ev.next);
    })
    .unwrap();
    (ids, bits, chunk)
}

#[test]
fn f16_logits_stay_within_the_tolerance_of_f32() {
    let bytes = common::model_bytes();
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
    let full = spool_sim::full_budget_with(&model, CTX, opts(false)).unwrap();
    // The f32 cache's greedy story, fed one position at a time to both caches.
    let (ids, _, _) = run(&bytes, full, opts(false));
    let mut logits = [Vec::new(), Vec::new()];
    for (f16, out) in [false, true].into_iter().zip(&mut logits) {
        let mut arena = vec![0u8; full];
        let mut e =
            Engine::with_loader(SliceStorage::new(&bytes), SyncLoader::new(), &mut arena, CTX, opts(f16)).unwrap();
        for (pos, &t) in ids.iter().take(CTX as usize).enumerate() {
            out.extend_from_slice(e.forward(t, pos as u32).unwrap());
        }
    }
    let vocab = model.config.vocab as usize;
    let (mut max, mut scale, mut sq, mut argmax_same) = (0.0f32, 0.0f32, 0.0f64, 0);
    for (a, b) in logits[1].chunks(vocab).zip(logits[0].chunks(vocab)) {
        for (&x, &y) in a.iter().zip(b) {
            max = max.max((x - y).abs());
            scale = scale.max(y.abs());
            sq += ((x - y) as f64).powi(2);
        }
        argmax_same += usize::from(spool_core::sampler::argmax(a) == spool_core::sampler::argmax(b));
    }
    let rms = (sq / logits[0].len() as f64).sqrt();
    println!(
        "f16 KV vs f32 KV over {CTX} positions: max abs {max:.5}, {:.4}% of max |logit| {scale:.2}, rms {rms:.6}, argmax equal at {argmax_same}/{CTX}",
        100.0 * max / scale
    );
    assert!(max > 0.0, "f16 rounding changes something");
    assert!(max <= MAX_ABS && max / scale <= MAX_REL, "max abs {max}, relative {}", max / scale);
    assert_eq!(argmax_same, CTX as usize);
}

#[test]
fn f16_halves_the_kv_region_and_fits_context_128_in_120_kib() {
    let bytes = common::model_bytes();
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
    let p32 = spool_core::plan::plan_with(&model, CTX, 1 << 20, opts(false)).unwrap();
    let p16 = spool_core::plan::plan_with(&model, CTX, 1 << 20, opts(true)).unwrap();
    assert_eq!(p32.kv.bytes, 163_840, "5 layers x 128 positions x 32 x 2 x f32");
    assert_eq!(p16.kv.bytes, p32.kv.bytes / 2);
    // The staging rows: [2][chunk][kv_dim] f32.
    let chunk = p16.prefill_chunk() as usize;
    assert_eq!(p16.working.bytes - p32.working.bytes, 2 * chunk * 32 * 4);
    // netduinoplus2's arena: context 128 fits only with the f16 cache.
    assert!(spool_core::plan::plan_with(&model, CTX, 120 * 1024, opts(false)).is_err());
    let p = spool_core::plan::plan_with(&model, CTX, 120 * 1024, opts(true)).unwrap();
    assert!(p.used_bytes() <= 120 * 1024);
}

#[test]
fn f16_tokens_do_not_depend_on_budget_chunk_or_threads() {
    let bytes = common::model_bytes();
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
    let o = opts(true);
    let full = spool_sim::full_budget_with(&model, CTX, o).unwrap();
    let min = spool_core::plan::minimum_budget(&model, CTX, o).unwrap();
    let (ids, bits, chunk) = run(&bytes, full, o);
    assert_eq!(ids, F16_128);
    assert_eq!(run(&bytes, full, opts(false)).0, F16_128, "the f32 cache's ids");
    for budget in [full / 2, min, 120 * 1024] {
        let (got, got_bits, got_chunk) = run(&bytes, budget, o);
        assert_eq!(got, ids, "budget {budget}");
        // The same chunking sees the same logits, bit for bit (a smaller chunk sees more rows).
        assert!(got_chunk != chunk || got_bits == bits, "budget {budget}: logits bits");
    }
    // Token by token: the same ids (logits are then seen at every position, so only ids compare).
    assert_eq!(run(&bytes, full, PlanOptions { prefill_chunk: 1, ..o }).0, ids);
    // Threads: the pool splits rows and attention; the same bits.
    let pool = spool_std::ThreadPool::new(2);
    let mut arena = vec![0u8; full];
    let mut e = Engine::with_loader(SliceStorage::new(&bytes), SyncLoader::new(), &mut arena, CTX, o).unwrap();
    e.set_executor(&pool);
    let mut prompt = [0u32; 32];
    let n = e.tokenizer().encode(b"Once upon a time", true, &mut prompt).unwrap();
    let mut got = Vec::new();
    let mut sampler = Sampler::new(0.0, 0.9, 42);
    generate_with_logits(
        &mut e,
        &mut sampler,
        &prompt[..n],
        CTX,
        |_, l| got.extend(l.iter().map(|f| f.to_bits())),
        |_| {},
    )
    .unwrap();
    assert!(got == bits, "2 threads");
}
