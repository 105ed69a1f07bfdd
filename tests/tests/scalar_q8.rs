//! The portable integer path (`Kernels::SCALAR_Q8`, `KernelPath::ScalarQ8`) against the AVX2
//! integer path (`Kernels::avx2_q8`) and, where the CPU has VNNI, the AVX-512 one: the same
//! activation bytes, the same matrix-vector bits on every Q8_0 matrix of a real file, and the
//! same logits bits over a whole model whose matrices are all Q8_0 (synth-k-Q8_0.gguf). Also the
//! golden ids of stories260K-Q8_0 on this path, which the Cortex-M4 firmware checks (its DSP
//! kernel is bit-identical with this path; `make firmware-run`).
//!
//! On a CPU without AVX2/FMA/F16C the comparisons only say so; the golden still runs.

mod common;

use common::quant_dir;
use spool_core::quant::GgmlType;
use spool_core::{generate_with_logits, Engine, Kernels, ModelInfo, PlanOptions, Sampler, SliceStorage, SyncLoader};

/// `greedy_once_64`'s prompt and steps on stories260K-Q8_0.gguf with `Kernels::SCALAR_Q8`
/// (the token at position 0, then every next token). The same array is in
/// firmware-qemu/src/main.rs.
const STORIES_Q8_0_GOLDEN: [u32; 65] = [
    1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
    419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338,
    391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310,
];

/// FNV-1a (32-bit) over the little-endian bits of the logits that run produces from the
/// prompt's last position on (the same rows whatever the prefill chunk), per (context, f16 KV
/// cache): the firmware's boards run
/// these, compute the same hash and must get these numbers.
const STORIES_Q8_0_LOGITS_FNV: [(u32, bool, u32); 3] =
    [(64, false, 0xb75b_c361), (32, false, 0x31a2_2020), (128, true, 0x3f26_2214)];

/// The ids of that run at context 128 with the f16 KV cache (netduinoplus2 with `kv-f16`); its
/// first 65 are the golden's, then they part from the F32 file's at index 115. The same array
/// is in firmware-qemu/src/main.rs.
const STORIES_Q8_0_F16_128: [u32; 129] = [
    1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
    419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338,
    391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310, 439, 419, 357, 336,
    432, 313, 438, 310, 432, 278, 316, 439, 419, 298, 414, 267, 265, 282, 295, 433, 426, 436, 317, 286, 296, 418, 269,
    279, 292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400, 426, 338, 336, 432, 313, 442, 391, 267, 337, 335,
    284, 422, 268, 388, 426, 436, 320, 285, 357, 336, 432, 313, 442, 391,
];

fn q8_opts() -> PlanOptions {
    PlanOptions { quantized_activations: true, ..PlanOptions::default() }
}

/// The AVX2 integer kernels, and the AVX-512 VNNI ones where present.
fn simd_paths() -> Vec<Kernels> {
    let mut v: Vec<Kernels> = spool_std::kernels::simd_q8_avx2().into_iter().collect();
    if let Some(k) = spool_std::kernels::simd_q8().filter(|k| !v.contains(k)) {
        v.push(k);
    }
    if v.is_empty() {
        println!("this CPU has no AVX2/FMA/F16C: nothing to compare the portable path with");
    }
    v
}

/// A deterministic input with a spread of magnitudes, exact zeros and a zero block.
fn input(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let u = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            match i % 97 {
                0 => 0.0,
                _ if (64..96).contains(&i) => 0.0,
                1 => u * 300.0,
                _ => u * (1 + i % 7) as f32,
            }
        })
        .collect()
}

#[test]
fn q8_0_products_are_bit_identical_on_every_matrix() {
    let bytes = std::fs::read(quant_dir().join("synth-k-Q8_0.gguf")).unwrap();
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
    let scalar = Kernels::SCALAR_Q8;
    assert_eq!(scalar.activation_type(GgmlType::Q8_0), Some(GgmlType::Q8_0));
    assert_eq!(scalar.activation_type(GgmlType::F32), None, "other types stay f32");
    let mut checked = 0;
    for (_, t) in model.matrices().filter(|(_, t)| t.ty == GgmlType::Q8_0) {
        let w = &bytes[t.offset as usize..(t.offset + t.bytes()) as usize];
        let cols = t.cols as usize;
        let x = input(cols, t.rows ^ t.cols);
        let qbytes = spool_core::quant::activation_bytes(GgmlType::Q8_0, cols).unwrap();
        let mut xq = vec![0u8; qbytes];
        scalar.quantize_activations(GgmlType::Q8_0, &x, &mut xq);
        // Odd row counts too: the AVX2 kernel runs four rows at a time, then one.
        for rows in [t.rows as usize, t.rows as usize - 3] {
            let w = &w[..rows * (t.bytes() as usize / t.rows as usize)];
            let mut want = vec![f32::NAN; rows];
            scalar.matvec_quantized(GgmlType::Q8_0, w, &xq, &mut want);
            assert!(want.iter().all(|v| v.is_finite()));
            for k in simd_paths() {
                let mut xq2 = vec![0u8; qbytes];
                k.quantize_activations(GgmlType::Q8_0, &x, &mut xq2);
                assert_eq!(xq, xq2, "{:?}: activation bytes", k.path());
                let mut got = vec![f32::NAN; rows];
                k.matvec_quantized(GgmlType::Q8_0, w, &xq2, &mut got);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{:?} vs scalar-q8, {rows} rows of {cols}", k.path());
            }
        }
        checked += 1;
    }
    assert!(checked >= 28, "{checked} Q8_0 matrices");
}

/// Every logit of `fed` (one position at a time, then a prefill of the same tokens) on `k`.
fn logits(bytes: &[u8], k: Kernels, fed: &[u32]) -> Vec<u32> {
    let model = ModelInfo::load(&mut SliceStorage::new(bytes)).unwrap();
    let ctx = fed.len() as u32 + 1;
    let mut arena = vec![0u8; spool_sim::full_budget_with(&model, ctx, q8_opts()).unwrap()];
    let mut e = Engine::with_loader(SliceStorage::new(bytes), SyncLoader::new(), &mut arena, ctx, q8_opts()).unwrap();
    e.set_kernels(k);
    let mut out = Vec::new();
    for (pos, &tok) in fed.iter().enumerate() {
        out.extend(e.forward(tok, pos as u32).unwrap().iter().map(|f| f.to_bits()));
    }
    out
}

#[test]
fn an_all_q8_0_model_gives_the_same_logits_bits() {
    let bytes = std::fs::read(quant_dir().join("synth-k-Q8_0.gguf")).unwrap();
    let fed: Vec<u32> = (0..12).map(|i| 1 + (i * 37) % 500).collect();
    let want = logits(&bytes, Kernels::SCALAR_Q8, &fed);
    assert!(want.iter().all(|&b| f32::from_bits(b).is_finite()));
    for k in simd_paths() {
        assert!(logits(&bytes, k, &fed) == want, "{:?}: logits bits differ from scalar-q8", k.path());
    }
}

/// Greedy ids of `steps` positions of "Once upon a time" on `k`.
fn greedy(bytes: &[u8], k: Kernels, steps: u32) -> Vec<u32> {
    greedy_hashed(bytes, k, steps, false).0
}

/// FNV-1a, 32-bit, continued from `h` over `bytes`.
fn fnv1a(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// [`greedy`], and the FNV-1a hash of every logit seen (see `STORIES_Q8_0_LOGITS_FNV`).
fn greedy_hashed(bytes: &[u8], k: Kernels, steps: u32, kv_f16: bool) -> (Vec<u32>, u32) {
    let mut arena = vec![0u8; 600 * 1024];
    let o = PlanOptions { kv_f16, ..q8_opts() };
    let mut e = Engine::with_loader(SliceStorage::new(bytes), SyncLoader::new(), &mut arena, steps, o).unwrap();
    e.set_kernels(k);
    let mut prompt = [0u32; 32];
    let n = e.tokenizer().encode(b"Once upon a time", true, &mut prompt).unwrap();
    let mut ids = Vec::new();
    let mut sampler = Sampler::new(0.0, 0.9, 42);
    let mut h = 0x811c_9dc5u32;
    let last_prompt = n as u32 - 1;
    let on_logits = |pos: u32, l: &[f32]| {
        if pos >= last_prompt {
            l.iter().for_each(|f| h = fnv1a(h, &f.to_le_bytes()));
        }
    };
    generate_with_logits(&mut e, &mut sampler, &prompt[..n], steps, on_logits, |ev| {
        if ev.pos == 0 {
            ids.push(ev.token);
        }
        ids.push(ev.next);
    })
    .unwrap();
    (ids, h)
}

#[test]
fn stories_q8_0_golden_on_the_portable_integer_path() {
    let bytes = std::fs::read(quant_dir().join("stories260K-Q8_0.gguf")).unwrap();
    let ids = greedy(&bytes, Kernels::SCALAR_Q8, 64);
    println!("stories260K-Q8_0 scalar-q8 ids: {ids:?}");
    assert_eq!(ids, STORIES_Q8_0_GOLDEN);
    for (ctx, kv_f16, want) in STORIES_Q8_0_LOGITS_FNV {
        let (ids, h) = greedy_hashed(&bytes, Kernels::SCALAR_Q8, ctx, kv_f16);
        println!("context {ctx}, f16 KV {kv_f16}: logits FNV-1a {h:#010x}, ids {ids:?}");
        let golden = if kv_f16 { &STORIES_Q8_0_F16_128[..] } else { &STORIES_Q8_0_GOLDEN[..] };
        assert_eq!(ids, golden[..ctx as usize + 1]);
        assert_eq!(h, want, "logits hash at context {ctx}, f16 KV {kv_f16}");
    }
    for k in simd_paths() {
        // Its F16 matrices (ffn_down) run the AVX2 f32 kernel there, so only the ids compare.
        assert_eq!(greedy(&bytes, k, 64), ids, "{:?}", k.path());
    }
}
