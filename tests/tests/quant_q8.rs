//! The integer path (`KernelPath::Avx2Q8`, or `Avx512Q8` where the CPU has AVX-512 VNNI;
//! `spool-sim`'s default `--kernel auto` for quantized weights, or `--kernel simd-q8`): activations rounded to
//! Q8_0/Q8_K as llama.cpp rounds them. On every stored file of `tests/data/quant`, its
//! logits meet tolerance #2 of that folder's README ("activations rounded like llama.cpp")
//! against both llama.cpp's logits and the exact reference, and its greedy ids equal
//! llama.cpp's (and the exact reference's) over `greedy_robust_prefix_len`.
//!
//! On a CPU without AVX2/FMA/F16C the path does not exist and these tests only say so.

mod common;

use common::{quant_dir, quant_ggufs, read_f32};
use spool_core::sampler::argmax;

use serde_json::Value;
use spool_core::{Engine, Kernels, ModelInfo, PlanOptions, SliceStorage, SyncLoader};

/// Tolerance #2: max abs diff, the same relative to the max |logit|, rms.
const MAX_ABS: f32 = 0.5;
const MAX_REL: f32 = 0.02;
const MAX_RMS: f32 = 0.1;
const GREEDY_STEPS: usize = 32;
const CTX: u32 = 64;

fn read_logits(rel: &str) -> Vec<f32> {
    read_f32(quant_dir().join(rel))
}

fn q8_opts() -> PlanOptions {
    PlanOptions { quantized_activations: true, ..PlanOptions::default() }
}

fn engine<'a>(bytes: &'a [u8], arena: &'a mut [u8], k: Kernels) -> Engine<'a, SliceStorage<'a>> {
    let mut e = Engine::with_loader(SliceStorage::new(bytes), SyncLoader::new(), arena, CTX, q8_opts()).unwrap();
    e.set_kernels(k);
    e
}

/// (max abs, max abs / max |want|, rms) of `got - want`.
fn diffs(got: &[f32], want: &[f32]) -> (f32, f32, f32) {
    let (mut max, mut sq, mut scale) = (0.0f32, 0.0f64, 0.0f32);
    for (&a, &b) in got.iter().zip(want) {
        assert!(a.is_finite(), "logit {a}");
        max = max.max((a - b).abs());
        sq += ((a - b) as f64).powi(2);
        scale = scale.max(b.abs());
    }
    (max, max / scale, (sq / got.len() as f64).sqrt() as f32)
}

fn check_file(name: &str, refs: &Value, k: Kernels) {
    let f = &refs["files"][name];
    let bytes = std::fs::read(quant_dir().join(name)).unwrap();
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
    let vocab = model.config.vocab as usize;
    let full = spool_sim::full_budget_with(&model, CTX, q8_opts()).unwrap();
    let exact = &f["exact_reference"];
    let want_exact = read_logits(exact["logits_file"].as_str().unwrap());
    let want_llama = read_logits(f["llama_cpp"]["logits_file"].as_str().unwrap());
    let fed = common::ids(&f["fed_token_ids"]);
    let mut arena = vec![0u8; full];
    let mut e = engine(&bytes, &mut arena, k);
    let mut got = Vec::new();
    for (pos, &tok) in fed.iter().enumerate() {
        let logits = e.forward(tok, pos as u32).unwrap();
        assert_eq!(argmax(logits), common::ids(&exact["argmax_per_position"])[pos], "{name}: argmax at pos {pos}");
        assert_eq!(argmax(logits), common::ids(&f["llama_cpp"]["argmax_per_position"])[pos], "{name}: pos {pos}");
        got.extend_from_slice(logits);
    }
    assert_eq!(got.len(), fed.len() * vocab);
    for (what, want) in [("llama.cpp", &want_llama), ("exact", &want_exact)] {
        let (max, rel, rms) = diffs(&got, want);
        println!("{name:<24} q8 vs {what:<9}: max abs {max:.4}, {:.2}% of max |logit|, rms {rms:.4}", 100.0 * rel);
        assert!(max <= MAX_ABS && rel <= MAX_REL && rms <= MAX_RMS, "{name} vs {what}: {max} {rel} {rms}");
    }
    drop(e);

    // Greedy: the prompt one token per position, then argmax picks.
    let prompt = common::ids(&f["prompt_token_ids"]);
    let mut e = engine(&bytes, &mut arena, k);
    let (mut ids, mut token) = (Vec::new(), prompt[0]);
    for pos in 0..prompt.len() + GREEDY_STEPS - 1 {
        let logits = e.forward(token, pos as u32).unwrap();
        token = match prompt.get(pos + 1) {
            Some(&t) => t,
            None => {
                ids.push(argmax(logits));
                *ids.last().unwrap()
            }
        };
    }
    let robust = exact["greedy_robust_prefix_len"].as_u64().unwrap() as usize;
    assert_eq!(ids[..robust], common::ids(&f["llama_cpp"]["greedy_ids"])[..robust], "{name}: greedy vs llama.cpp");
    assert_eq!(ids[..robust], common::ids(&exact["greedy_ids"])[..robust], "{name}: greedy vs exact");
}

#[test]
fn every_quant_file_meets_the_rounded_activation_tolerance() {
    let Some(k) = spool_std::kernels::simd_q8() else {
        println!("no AVX2/FMA/F16C: the simd-q8 path does not exist on this CPU");
        return;
    };
    let refs: Value = serde_json::from_slice(&std::fs::read(quant_dir().join("references.json")).unwrap()).unwrap();
    let names = quant_ggufs();
    assert_eq!(names.len(), 10, "{names:?}");
    // The fastest variant (AVX-512 VNNI where present) and the AVX2 one.
    let mut paths = vec![k];
    paths.extend(spool_std::kernels::simd_q8_avx2().filter(|&a| a != k));
    for name in &names {
        for &k in &paths {
            check_file(name, &refs, k);
        }
    }
}

#[test]
fn the_path_needs_a_planned_region_which_the_default_run_plans() {
    let Some(k) = spool_std::kernels::simd_q8() else { return };
    // `detect` is the strict f32-activation path (`--kernel exact`); `auto` is this one.
    assert_ne!(spool_std::kernels::detect(), k);
    assert_eq!(spool_sim::KernelChoice::Auto.kernels().unwrap(), k);
    let bytes = std::fs::read(quant_dir().join("synth-k-Q4_K_M.gguf")).unwrap();
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
    let plain = spool_sim::full_budget(&model, CTX).unwrap();
    let with = spool_sim::full_budget_with(&model, CTX, q8_opts()).unwrap();
    // 16 prefill positions x the longest input row (hidden 768: 3 Q8_K blocks of 292 bytes).
    assert!(with >= plain + 16 * 3 * 292, "{plain} {with}");
    let mut arena = vec![0u8; plain];
    let mut e = Engine::new(SliceStorage::new(&bytes), &mut arena, CTX).unwrap();
    e.set_kernels(k);
    let err = e.forward(1, 0).unwrap_err().to_string();
    assert!(err.contains("quantized activations"), "{err}");
    // A run with the default kernels plans the region for this file, and not for an F32 one.
    let defaults = spool_sim::RunOptions::default();
    assert!(spool_sim::plan_options(&defaults, &model).quantized_activations);
    let f32_bytes = common::model_bytes();
    let f32_model = ModelInfo::load(&mut SliceStorage::new(&f32_bytes)).unwrap();
    assert!(!spool_sim::plan_options(&defaults, &f32_model).quantized_activations);
}

#[test]
fn the_cli_runs_simd_q8() {
    let Some(k) = spool_std::kernels::simd_q8() else {
        return;
    };
    let model = quant_dir().join("synth-k-Q4_K_M.gguf").to_string_lossy().into_owned();
    let args: Vec<String> =
        ["run", "-m", &model, "--steps", "12", "--temp", "0", "--kernel", "simd-q8", "--threads", "2", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(spool_sim::main_with(&args, &mut out, &mut err), 0, "{}", String::from_utf8_lossy(&err));
    let json: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["stats"]["kernel"], k.path().name()); // avx512-q8 or avx2-q8
    assert_eq!(json["token_ids"].as_array().unwrap().len(), 13); // the fed token, then 12 chosen
}
