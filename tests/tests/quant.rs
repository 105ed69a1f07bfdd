//! Quantized GGUF files, computed on in place: logits against the exact (float64, dequantized
//! weights) reference, greedy ids against the reference and llama.cpp, and the same greedy ids
//! at every RAM budget.
//!
//! The data lives in `tests/data/quant/` (see its README.md).
//! Its absence fails these tests: it is never skipped silently.

mod common;

use common::{ids, quant_dir, quant_ggufs, read_f32};
use spool_core::quant::f32_to_f16;
use spool_core::sampler::argmax;

use std::path::PathBuf;

use serde_json::Value;
use spool_core::quant::GgmlType;
use spool_core::{Engine, Error, Kernels, ModelInfo, SliceStorage};

/// "f32 activations" tolerance of the README: max abs logit difference vs the exact reference.
const LOGIT_TOL: f32 = 1e-3;
/// Generated ids per greedy run, as in references.json.
const GREEDY_STEPS: usize = 32;

fn references() -> Value {
    let path = quant_dir().join("references.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("references.json is valid JSON")
}

/// The file's bytes; `name` is a key of `references.json` → `files` (relative to `quant/`).
fn gguf_bytes(name: &str) -> Vec<u8> {
    let path = quant_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_logits(rel: &str) -> Vec<f32> {
    read_f32(quant_dir().join(rel))
}

/// Feeds the prompt one token per position, then `GREEDY_STEPS` argmax picks (no stop on
/// BOS/EOS); returns the generated ids.
fn greedy(bytes: &[u8], budget: usize, ctx: u32, prompt: &[u32]) -> Vec<u32> {
    greedy_with(Kernels::SCALAR, bytes, budget, ctx, prompt)
}

fn greedy_with(kernels: Kernels, bytes: &[u8], budget: usize, ctx: u32, prompt: &[u32]) -> Vec<u32> {
    let mut arena = vec![0u8; budget];
    let mut engine = Engine::new(SliceStorage::new(bytes), &mut arena, ctx)
        .unwrap_or_else(|e| panic!("load at budget {budget}: {e}"));
    engine.set_kernels(kernels);
    let mut out = Vec::new();
    let mut token = prompt[0];
    let mut pos = 0u32;
    while out.len() < GREEDY_STEPS {
        let logits = engine.forward(token, pos).unwrap();
        pos += 1;
        token = match prompt.get(pos as usize) {
            Some(&t) => t,
            None => {
                let next = argmax(logits);
                out.push(next);
                next
            }
        };
    }
    out
}

fn check_file(name: &str) {
    let refs = references();
    let f = &refs["files"][name];
    assert!(f.is_object(), "{name} is not in references.json");
    let bytes = gguf_bytes(name);
    assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap(), "{name}: size");

    // The loader accepts every tensor of the file, with the types the references list.
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let types = f["tensor_types"].as_object().unwrap();
    let mut seen = 0;
    for (tname, ty) in types {
        let Some(t) = spool_core::model::TensorName::parse(tname.as_bytes(), model.arch.roles) else {
            continue;
        };
        assert_eq!(model.tensor(t).ty.name(), ty.as_str().unwrap(), "{name}: {tname}");
        seen += 1;
    }
    assert_eq!(seen, types.len(), "{name}: every tensor is one the model uses");

    // Logits of the fed ids vs the exact reference.
    let exact = &f["exact_reference"];
    let want = read_logits(exact["logits_file"].as_str().unwrap());
    let fed = ids(&f["fed_token_ids"]);
    let vocab = model.config.vocab as usize;
    assert_eq!(want.len(), fed.len() * vocab, "{name}: reference logits shape");
    let ctx = 64;
    let full = spool_sim::full_budget(&model, ctx).unwrap();
    let prompt = ids(&f["prompt_token_ids"]);
    let ref_argmax = ids(&exact["argmax_per_position"]);
    // The SIMD path (another summation order) meets the same tolerance and the same ids.
    if let Some(k) = spool_std::kernels::simd() {
        let mut arena = vec![0u8; full];
        let mut engine = Engine::new(SliceStorage::new(&bytes), &mut arena, ctx).unwrap();
        engine.set_kernels(k);
        let mut worst = 0.0f32;
        for (pos, &tok) in fed.iter().enumerate() {
            let logits = engine.forward(tok, pos as u32).unwrap();
            let want = &want[pos * vocab..(pos + 1) * vocab];
            for (&a, &b) in logits.iter().zip(want) {
                assert!((a - b).is_finite(), "{name} (simd): logit at pos {pos} is {a}");
                worst = worst.max((a - b).abs());
            }
            assert_eq!(argmax(logits), ref_argmax[pos], "{name} (simd): argmax at pos {pos}");
        }
        println!("{name:<24} simd worst |logit - exact| = {worst:.3e}");
        assert!(worst <= LOGIT_TOL, "{name} (simd): max abs logit diff {worst:e} exceeds {LOGIT_TOL:e}");
        drop(engine);
        let got = greedy_with(k, &bytes, full, ctx, &prompt);
        assert_eq!(got, ids(&exact["greedy_ids"]), "{name} (simd): greedy ids vs exact");
    }
    let mut arena = vec![0u8; full];
    let mut engine = Engine::new(SliceStorage::new(&bytes), &mut arena, ctx).unwrap();
    let mut worst = 0.0f32;
    let mut worst_at = (0, 0);
    for (pos, &tok) in fed.iter().enumerate() {
        let logits = engine.forward(tok, pos as u32).unwrap();
        let want = &want[pos * vocab..(pos + 1) * vocab];
        for (i, (&a, &b)) in logits.iter().zip(want).enumerate() {
            let d = (a - b).abs();
            assert!(d.is_finite(), "{name}: logit {i} at pos {pos} is {a}");
            if d > worst {
                worst = d;
                worst_at = (pos, i);
            }
        }
        assert_eq!(argmax(logits), argmax(want), "{name}: argmax at pos {pos}");
        assert_eq!(argmax(logits), ref_argmax[pos], "{name}: argmax at pos {pos}");
    }
    println!("{name:<24} worst |logit - exact| = {worst:.3e} (pos {}, token {})", worst_at.0, worst_at.1);
    assert!(worst <= LOGIT_TOL, "{name}: max abs logit diff {worst:e} at {worst_at:?} exceeds {LOGIT_TOL:e}");
    drop(engine);

    // Greedy ids: all equal to the exact reference's, and to llama.cpp's over the robust prefix.
    let got = greedy(&bytes, full, ctx, &prompt);
    assert_eq!(got, ids(&exact["greedy_ids"]), "{name}: greedy ids vs exact");
    let robust = exact["greedy_robust_prefix_len"].as_u64().unwrap() as usize;
    let llama = ids(&f["llama_cpp"]["greedy_ids"]);
    assert_eq!(got[..robust], llama[..robust], "{name}: greedy ids vs llama.cpp over the robust prefix of {robust}");

    // Streaming invariance: the same ids from the minimum budget (one slot) to all resident.
    let quantized = model_types(&model).iter().any(|&t| t != GgmlType::F32);
    if quantized {
        let min = spool_sim::minimum_budget(&model, ctx);
        assert!(min > 0 && min < full, "{name}: minimum {min}, full {full}");
        let at_min = spool_core::plan(&model, ctx, min).unwrap();
        assert!(at_min.slot_count >= 1, "{name}: the minimum budget streams");
        let mut budgets = vec![min, min + 20_000, (min + full) / 2, full - 10_000, full];
        budgets.retain(|&b| b >= min && b <= full);
        for budget in budgets {
            let plan = spool_core::plan(&model, ctx, budget).unwrap();
            let ids = greedy(&bytes, budget, ctx, &prompt);
            assert_eq!(
                ids, got,
                "{name}: greedy ids at budget {budget} ({} slots, {} B pinned)",
                plan.slot_count, plan.pinned_bytes
            );
        }
        let mut arena = vec![0u8; min - 1];
        assert!(Engine::new(SliceStorage::new(&bytes), &mut arena, ctx).is_err(), "{name}: below the minimum");
    }
}

fn model_types(m: &ModelInfo) -> Vec<GgmlType> {
    let mut v = vec![m.token_embd.ty, m.output.ty, m.output_norm.ty];
    v.extend(m.layers.iter().flat_map(|l| l.iter().map(|t| t.ty)));
    v
}

macro_rules! file_tests {
    ($($test:ident => $file:expr,)*) => {
        $(
            #[test]
            fn $test() {
                check_file($file);
            }
        )*

        /// Every .gguf in the folder has a test above.
        #[test]
        fn every_stored_file_is_tested() {
            let tested = [$($file),*];
            let stored = quant_ggufs();
            assert_eq!(stored.len(), 10, "{stored:?}");
            for s in &stored {
                assert!(tested.contains(&s.as_str()), "{s} has no test");
            }
        }
    };
}

file_tests! {
    stories260k_f32 => "../stories260K.gguf",
    stories260k_f16 => "stories260K-F16.gguf",
    stories260k_q8_0 => "stories260K-Q8_0.gguf",
    stories260k_q5_0 => "stories260K-Q5_0.gguf",
    stories260k_q4_1 => "stories260K-Q4_1.gguf",
    stories260k_q4_0 => "stories260K-Q4_0.gguf",
    synth_k_q8_0 => "synth-k-Q8_0.gguf",
    synth_k_q6_k => "synth-k-Q6_K.gguf",
    synth_k_q5_k_m => "synth-k-Q5_K_M.gguf",
    synth_k_q4_k_m => "synth-k-Q4_K_M.gguf",
    synth_k_q4_0 => "synth-k-Q4_0.gguf",
}

/// Offset of the type field of tensor `name` in the GGUF tensor table.
fn type_field_offset(bytes: &[u8], name: &str) -> usize {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    let at =
        bytes.windows(key.len()).position(|w| w == key).unwrap_or_else(|| panic!("{name} not in the tensor table"))
            + key.len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    at + 4 + 8 * n_dims
}

#[test]
fn a_norm_weight_that_is_not_f32_is_refused_by_name() {
    let mut bytes = gguf_bytes("stories260K-F16.gguf");
    let at = type_field_offset(&bytes, "blk.1.ffn_norm.weight");
    assert_eq!(&bytes[at..at + 4], &0u32.to_le_bytes());
    bytes[at..at + 4].copy_from_slice(&1u32.to_le_bytes()); // F16: smaller, still in the file
    let err = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap_err();
    assert!(matches!(err, Error::UnsupportedType { ggml_type: 1, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("blk.1.ffn_norm.weight"), "{msg}");
    assert!(msg.contains("F16"), "{msg}");
    assert!(msg.contains("F32"), "{msg}");
}

#[test]
fn a_type_without_a_kernel_is_refused_by_name() {
    let mut bytes = gguf_bytes("stories260K-Q8_0.gguf");
    let at = type_field_offset(&bytes, "blk.0.attn_q.weight");
    bytes[at..at + 4].copy_from_slice(&10u32.to_le_bytes()); // Q2_K
    let err = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap_err();
    assert!(matches!(err, Error::UnsupportedType { ggml_type: 10, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("blk.0.attn_q.weight"), "{msg}");
    assert!(msg.contains("Q2_K"), "{msg}");
    assert!(msg.contains("Q4_K"), "{msg}");
}

// BF16 and Q5_1 have no test file: rows are built here by exact encoders (ggml's rounding) from
// real weights, and the kernels are checked against a float64 dot of the dequantized values.

/// f32 to bfloat16 as ggml does: round to nearest even, NaN kept quiet.
fn f32_to_bf16(v: f32) -> u16 {
    let u = v.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// ggml's reference Q5_1 quantizer for one block of 32: `d = (max - min) / 31`, `m = min`,
/// `q = (uint8)((x - min) / d + 0.5)`.
fn quantize_q5_1(x: &[f32]) -> [u8; 24] {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        min = min.min(v);
        max = max.max(v);
    }
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut b = [0u8; 24];
    b[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    b[2..4].copy_from_slice(&f32_to_f16(min).to_le_bytes());
    let mut qh = 0u32;
    for j in 0..16 {
        let q0 = ((x[j] - min) * id + 0.5) as u8;
        let q1 = ((x[j + 16] - min) * id + 0.5) as u8;
        b[8 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= u32::from(q0 >> 4) << j;
        qh |= u32::from(q1 >> 4) << (j + 16);
    }
    b[4..8].copy_from_slice(&qh.to_le_bytes());
    b
}

/// The values ggml's `dequantize_row_q5_1` gives (f32 `q * d + m`), from the encoded fields.
fn dequantize_q5_1_ref(b: &[u8; 24]) -> [f32; 32] {
    let half = |i: usize| spool_core::quant::f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]));
    let (d, m) = (half(0), half(2));
    let qh = u32::from_le_bytes(b[4..8].try_into().unwrap());
    std::array::from_fn(|i| {
        let nib = if i < 16 { b[8 + i] & 0x0f } else { b[8 + i - 16] >> 4 };
        let q = nib as u32 | (((qh >> i) & 1) << 4);
        q as f32 * d + m
    })
}

#[test]
fn the_bf16_encoder_rounds_to_nearest_even() {
    // (The f16 encoder is the core's, tested in its unit tests.)
    assert_eq!(f32_to_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
    assert_eq!(f32_to_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
}

/// Rows of 256 real weights (stories260K's embedding, scaled and shifted per row, so the
/// blocks have varied scales and non-zero means), a constant row and a zero row; and an input.
fn test_rows() -> (Vec<Vec<f32>>, Vec<f32>) {
    let bytes = common::model_bytes();
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
    let at = model.token_embd.offset as usize;
    let embd: Vec<f32> =
        bytes[at..at + 4 * 512 * 64].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let mut rows: Vec<Vec<f32>> = (0..8)
        .map(|r| embd[r * 256..(r + 1) * 256].iter().map(|&v| v * (r as f32 + 1.0) * 0.37 + r as f32 * 0.1).collect())
        .collect();
    rows.push(vec![0.75; 256]);
    rows.push(vec![0.0; 256]);
    let x = embd[20_000..20_256].to_vec();
    (rows, x)
}

/// `matvec` on `w` (laid out at an odd address) vs the float64 dot of `dequant` with `x`.
fn check_matvec(ty: GgmlType, w: &[u8], dequant: &[Vec<f32>], x: &[f32]) {
    let mut buf = vec![0u8; w.len() + 1];
    buf[1..].copy_from_slice(w);
    let mut out = vec![0.0f32; dequant.len()];
    spool_core::quant::matvec(ty, &buf[1..], x, &mut out);
    let row_bytes = w.len() / dequant.len();
    for (r, (row, &got)) in dequant.iter().zip(&out).enumerate() {
        let exact: f64 = row.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum();
        let scale: f64 = row.iter().zip(x).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
        let err = (got as f64 - exact).abs();
        assert!(err <= 1e-6 * scale + 1e-9, "{ty:?} row {r}: {got} vs {exact} (err {err:e}, scale {scale:e})");
        let mut deq = vec![f32::NAN; 256];
        spool_core::quant::dequantize_row(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut deq);
        assert_eq!(&deq, row, "{ty:?} row {r}: dequantize_row");
    }
}

#[test]
fn bf16_rows_from_an_exact_encoder() {
    let (rows, x) = test_rows();
    let mut w = Vec::new();
    let mut dequant = Vec::new();
    for row in &rows {
        let mut d = Vec::new();
        for &v in row {
            let h = f32_to_bf16(v);
            w.extend_from_slice(&h.to_le_bytes());
            d.push(f32::from_bits((h as u32) << 16));
            assert!((d[d.len() - 1] - v).abs() <= v.abs() * 2f32.powi(-8));
        }
        dequant.push(d);
    }
    check_matvec(GgmlType::BF16, &w, &dequant, &x);
}

#[test]
fn q5_1_rows_from_the_reference_quantizer() {
    let (rows, x) = test_rows();
    let mut w = Vec::new();
    let mut dequant = Vec::new();
    for row in &rows {
        let mut d = Vec::new();
        for block in row.chunks_exact(32) {
            let b = quantize_q5_1(block);
            w.extend_from_slice(&b);
            let values = dequantize_q5_1_ref(&b);
            // The encoder is sane: every value within half a step of the original, plus what
            // rounding d and m to f16 moves (2^-11 relative each, d times up to 31).
            let half = |i: usize| spool_core::quant::f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]));
            let (step, min) = (half(0), half(2));
            let tol = 0.5 * step + (31.0 * step + min.abs()) * 2f32.powi(-10) + 1e-7;
            for (&v, &o) in values.iter().zip(block) {
                assert!((v - o).abs() <= tol, "{v} vs {o} (step {step})");
            }
            d.extend_from_slice(&values);
        }
        dequant.push(d);
    }
    assert_eq!(w.len(), rows.len() * 8 * 24);
    check_matvec(GgmlType::Q5_1, &w, &dequant, &x);
}

/// BF16 and Q5_1 have no file in the shared folder: `tests/data/quant-extra/` holds stories260K
/// quantized to them by llama.cpp's own `llama-quantize`, with float64 references made from the
/// `gguf` package's dequantizer (see its `make_refs.py`).
#[test]
fn bf16_and_q5_1_files_from_llama_quantize_match_their_exact_references() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/quant-extra");
    let refs: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("refs.json")).unwrap()).unwrap();
    for (stem, ty) in [("stories260K-BF16", GgmlType::BF16), ("stories260K-Q5_1", GgmlType::Q5_1)] {
        let bytes = std::fs::read(dir.join(format!("{stem}.gguf"))).unwrap();
        let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
        assert!(model_types(&model).contains(&ty), "{stem} has {ty:?} tensors");
        let want = read_f32(dir.join(format!("{stem}.exact-logits.f32")));
        let r = &refs[stem];
        let fed = ids(&r["fed_token_ids"]);
        let full = spool_sim::full_budget(&model, 64).unwrap();
        let paths = [Some(Kernels::SCALAR), spool_std::kernels::simd()];
        for kernels in paths.into_iter().flatten() {
            let mut arena = vec![0u8; full];
            let mut engine = Engine::new(SliceStorage::new(&bytes), &mut arena, 64).unwrap();
            engine.set_kernels(kernels);
            let mut worst = 0.0f32;
            for (pos, &t) in fed.iter().enumerate() {
                let logits = engine.forward(t, pos as u32).unwrap();
                let row = &want[pos * 512..(pos + 1) * 512];
                for (a, b) in logits.iter().zip(row) {
                    worst = worst.max((a - b).abs());
                }
                assert_eq!(argmax(logits), argmax(row), "{stem} argmax at {pos}");
            }
            eprintln!("{stem} ({:?}): worst logit difference {worst:e}", kernels.path());
            assert!(worst <= LOGIT_TOL, "{stem}: {worst}");
            let got = greedy_with(kernels, &bytes, full, 64, &fed[..5]);
            assert_eq!(got, ids(&r["greedy_ids"]), "{stem} greedy ids");
        }
    }
}
