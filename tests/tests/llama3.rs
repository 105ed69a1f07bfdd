//! Llama-3-shaped synth files (the real Llama 3 vocabulary, `rope_freqs.weight` with Llama 3.2's
//! RoPE scaling, the classifier tied to the embedding table, GQA 4/2, head_dim 64 and 128) give
//! llama.cpp's logits at every dumped position of a 73-token prompt, and the same ids and logits
//! at 25% of the file and at the minimum budget as fully resident. The files are regenerated
//! with `spool-sim synth` from the arguments recorded in tests/data/llama3/logits.json, which
//! also holds llama.cpp's logits and the commands that made them (make-logits.py).

mod common;

use std::path::PathBuf;

use common::*;
use spool_sim::{Backend, KernelChoice, RunOptions};

const SAMPLE_STRIDE: usize = 2039;

/// A case of logits.json: the synth arguments, llama.cpp's prompt ids, the ids fed (the prompt,
/// then its greedy continuation) and llama.cpp's logits at some positions.
struct Case {
    name: String,
    synth: Vec<String>,
    prompt_ids: Vec<u32>,
    fed: Vec<u32>,
    dumped: Vec<Dumped>,
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("tests/data/llama3/logits.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn prompt() -> String {
    std::fs::read_to_string(repo().join("tests/data/llama3/prompt.txt")).unwrap()
}

fn case(name: &str) -> Case {
    let r = reference();
    assert_eq!(r["sample_stride"].as_u64(), Some(SAMPLE_STRIDE as u64));
    let c = r["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
    let prompt_ids = ids(&c["prompt_ids"]);
    let new = ids(&c["new_ids"]);
    let dumped = dumped_positions(c);
    // The last new id is never fed (its logits are not dumped).
    let fed = prompt_ids.iter().chain(&new[..new.len() - 1]).copied().collect();
    let synth = c["synth"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    Case { name: name.into(), synth, prompt_ids, fed, dumped }
}

/// Writes the case's file with `spool-sim synth` (the vocabulary path is relative to the
/// repository) under a name of its own for `test` (tests run in parallel) and returns its
/// path; the caller removes it.
fn synth(case: &Case, test: &str) -> PathBuf {
    let name = format!("spool-llama3-{}-{test}-{}.gguf", case.name, std::process::id());
    let path = std::env::temp_dir().join(name);
    let mut args = vec!["-o".to_string(), path.to_string_lossy().into_owned()];
    for a in &case.synth {
        args.push(if a.starts_with("tests/data/") { repo().join(a).to_string_lossy().into_owned() } else { a.clone() });
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    spool_sim::synth::cli(&args, &mut out, &mut err).unwrap();
    path
}

/// Spool's logits at each dumped position of `case`, fed in prefill chunks that end there.
fn spool_logits(
    path: &PathBuf,
    case: &Case,
    kernel: KernelChoice,
    ram: Option<usize>,
    threads: usize,
) -> Vec<Vec<f32>> {
    let mut storage = spool_std::FileStorage::open(path).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    let ctx = case.fed.len() as u32;
    let opts = spool_sim::plan_options(&RunOptions { kernel, ..Default::default() }, &model);
    let budget = ram.unwrap_or_else(|| spool_sim::full_budget_with(&model, ctx, opts).unwrap());
    let mut arena = vec![0u8; budget];
    let pool = spool_std::ThreadPool::new(threads);
    let loader = spool_core::cache::SyncLoader::new();
    let mut engine = spool_core::Engine::with_loader(storage, loader, &mut arena, ctx, opts).unwrap();
    engine.set_kernels(kernel.kernels().unwrap());
    engine.set_executor(&pool);
    let chunk = engine.plan().prefill_chunk() as usize;
    let mut out = Vec::new();
    let mut pos = 0;
    for d in &case.dumped {
        while pos <= d.pos {
            let end = (pos + chunk).min(d.pos + 1);
            engine.forward_batch(&case.fed[pos..end], pos as u32).unwrap();
            pos = end;
        }
        out.push(engine.logits().to_vec());
    }
    out
}

/// The differences from llama.cpp over the sampled ids and its top 8 at every dumped position:
/// (largest, rms, largest |logit| of llama.cpp, positions whose argmax differs although
/// llama.cpp's top-2 margin is at least `margin`). Prints them per position.
fn gap(case: &Case, logits: &[Vec<f32>], margin: f32) -> (f32, f64, f32, Vec<usize>) {
    let (mut max, mut sum_sq, mut n, mut largest, mut flips) = (0f32, 0f64, 0usize, 0f32, Vec::new());
    for (d, ours) in case.dumped.iter().zip(logits) {
        let (mut pmax, mut psum) = (0f32, 0f64);
        let sampled = d.sample.iter().enumerate().map(|(i, &v)| (i * SAMPLE_STRIDE, v));
        let all: Vec<(usize, f32)> = sampled.chain(d.top.iter().map(|&(id, v)| (id as usize, v))).collect();
        for &(id, want) in &all {
            let diff = (ours[id] - want).abs();
            assert!(diff.is_finite(), "{} pos {}: logit {id} is {}", case.name, d.pos, ours[id]);
            pmax = pmax.max(diff);
            psum += (diff as f64).powi(2);
            largest = largest.max(want.abs());
        }
        eprintln!(
            "{} pos {:>2}: max |spool - llama.cpp| {:.2e}, rms {:.2e} over {} logits",
            case.name,
            d.pos,
            pmax,
            (psum / all.len() as f64).sqrt(),
            all.len()
        );
        max = max.max(pmax);
        sum_sq += psum;
        n += all.len();
        if d.top[0].1 - d.top[1].1 >= margin && spool_core::sampler::argmax(ours) != d.argmax {
            flips.push(d.pos);
        }
    }
    (max, (sum_sq / n.max(1) as f64).sqrt(), largest, flips)
}

#[test]
fn the_synth_file_has_llama_3_2_rope_factors_a_tied_classifier_and_encodes_the_prompt_as_llama_cpp() {
    let case = case("q8_0-head64");
    let path = synth(&case, "header");
    let mut storage = spool_std::FileStorage::open(&path).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    let c = model.config;
    assert_eq!((c.vocab, c.head_size, c.n_heads, c.n_kv_heads, c.rope_theta), (128_256, 64, 4, 2, 500_000.0));
    assert!(model.tied_output);
    let rope = model.rope_freqs.expect("rope_freqs.weight");
    assert_eq!((rope.rows, rope.cols), (1, 32));
    // Llama 3.2's factors at base 500000, head 64: 1 for wavelengths under 8192/4, 32 over
    // 8192, smoothly between; they never decrease.
    let mut bytes = vec![0u8; 128];
    spool_core::Storage::read_at(&mut storage, rope.offset, &mut bytes).unwrap();
    let f = f32s(&bytes);
    let wavelen = |i: usize| 2.0 * std::f64::consts::PI * 500_000f64.powf(2.0 * i as f64 / 64.0);
    for (i, &v) in f.iter().enumerate() {
        match wavelen(i) {
            w if w < 2048.0 => assert_eq!(v, 1.0, "pair {i}"),
            w if w > 8192.0 => assert_eq!(v, 32.0, "pair {i}"),
            _ => assert!(v > 1.0 && v < 32.0, "pair {i}: {v}"),
        }
    }
    assert!(f.windows(2).all(|w| w[0] <= w[1]) && f[0] == 1.0 && f[31] == 32.0, "{f:?}");
    // The prompt encodes to llama.cpp's ids (BOS first).
    let mut arena = vec![0u8; 64 << 20];
    let engine = spool_core::Engine::new(storage, &mut arena, 128).unwrap();
    let text = prompt();
    let mut out = vec![0u32; text.len() + 3];
    let n = engine.tokenizer().encode(text.as_bytes(), true, &mut out).unwrap();
    assert_eq!(&out[..n], &case.prompt_ids[..]);
    let _ = std::fs::remove_file(&path);
}

/// Largest |Spool - llama.cpp| logit on the F32 file with f32 activations, and the rms: the
/// quant README's 1e-3 rule for f32 activations, loosened to what this peer build does on this
/// CPU. Measured: max 1.18e-3, rms 3.5e-4. The peer, not Spool, is the looser one: on the real
/// stories260K F32 file the same llama-logits differs from the float64 reference by up to
/// 3.9e-3 where Spool stays within 1.4e-5 (tests/quant.rs).
const F32_MAX: f32 = 2e-3;
const F32_RMS: f64 = 1e-3;

#[test]
fn f32_logits_equal_llama_cpp_s_within_2e_3_and_need_the_rope_factors() {
    let case = case("f32-head64");
    let path = synth(&case, "f32");
    let logits = spool_logits(&path, &case, KernelChoice::Exact, None, 2);
    let (max, rms, _, flips) = gap(&case, &logits, 1e-2);
    eprintln!("{}: max {max:.2e}, rms {rms:.2e}", case.name);
    assert!(flips.is_empty(), "argmax differs at {flips:?}");
    assert!(max <= F32_MAX && rms <= F32_RMS, "max |spool - llama.cpp| {max}, rms {rms}");
    // The factors are what makes them equal: with the tensor renamed (so that no engine sees
    // it), Spool's logits leave llama.cpp's by far more than the tolerance.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(17).position(|w| w == b"rope_freqs.weight").unwrap();
    bytes[at..at + 17].copy_from_slice(b"rope_fxxxx.weight");
    std::fs::write(&path, &bytes).unwrap();
    let without = spool_logits(&path, &case, KernelChoice::Exact, None, 1);
    let (max_without, _, _, _) = gap(&case, &without, f32::INFINITY);
    eprintln!("{} without rope_freqs.weight: max {max_without:.2e}", case.name);
    assert!(max_without > 10.0 * F32_MAX, "the factors changed the logits by only {max_without}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn q8_0_logits_follow_llama_cpp_within_the_q8_path_rule_at_head_dim_64_and_128() {
    for name in ["q8_0-head64", "q8_0-head128"] {
        let case = case(name);
        let path = synth(&case, "q8");
        // The default kernels round activations as llama.cpp does where the CPU has AVX2.
        let logits = spool_logits(&path, &case, KernelChoice::Auto, None, 2);
        let (max, rms, largest, flips) = gap(&case, &logits, 0.25);
        eprintln!("{name}: max {max:.3}, rms {rms:.3}, largest |logit| {largest:.2}");
        assert!(flips.is_empty(), "{name}: argmax differs at {flips:?}");
        assert!(max <= 0.5 && max <= 0.02 * largest && rms <= 0.1, "{name}: max {max}, rms {rms}");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn at_25_percent_and_at_the_minimum_budget_ids_and_logits_equal_the_resident_run() {
    let case = case("q8_0-head64");
    let path = synth(&case, "budgets");
    let file = std::fs::metadata(&path).unwrap().len() as usize;
    let run = |ram: Option<usize>, backend: Backend, threads: usize| {
        let opts = RunOptions {
            model: path.to_string_lossy().into_owned(),
            prompt: prompt(),
            new_tokens: Some(16),
            ctx: Some(case.prompt_ids.len() as u32 + 16),
            temperature: 0.0,
            ram,
            backend,
            threads,
            ..Default::default()
        };
        spool_sim::run(&opts).unwrap().token_ids
    };
    let resident = run(None, Backend::File, 1);
    assert_eq!(resident[..case.prompt_ids.len()], case.prompt_ids[..]);
    assert_eq!(resident.len(), case.prompt_ids.len() + 16);
    let mut storage = spool_std::FileStorage::open(&path).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    // The smallest budget the planner accepts for the run's options (the default, Q8 path
    // plans room for the rounded activations).
    let opts = spool_sim::plan_options(&RunOptions::default(), &model);
    let minimum = match spool_core::plan_with(&model, resident.len() as u32, 0, opts) {
        Err(spool_core::PlanError::BudgetTooSmall { minimum, .. }) => minimum,
        other => panic!("a zero budget must be too small: {other:?}"),
    };
    assert!(minimum < file / 4, "the minimum {minimum} is not below 25% of {file}");
    assert_eq!(run(Some(file / 4), Backend::Mmap, 2), resident, "25% of {file} B");
    assert_eq!(run(Some(minimum), Backend::File, 2), resident, "minimum {minimum} B");
    // The logits at the dumped positions, bit for bit.
    let full = spool_logits(&path, &case, KernelChoice::Auto, None, 1);
    let quarter = spool_logits(&path, &case, KernelChoice::Auto, Some(file / 4), 2);
    assert!(full == quarter, "logits at 25% differ from resident");
    let _ = std::fs::remove_file(&path);
}
