//! The reference outputs of llama2.c's run.c, reproduced token for token and byte for byte.

mod common;

use common::*;
use spool_core::{Engine, SliceStorage};
use spool_sim::KernelChoice;

/// The kernel paths this CPU runs: scalar, and SIMD where the CPU has it.
fn kernel_choices() -> Vec<KernelChoice> {
    let mut v = vec![KernelChoice::Scalar];
    if spool_std::kernels::simd().is_some() {
        v.push(KernelChoice::Simd);
    }
    v
}

#[test]
fn every_generation_case_matches_the_reference() {
    for kernel in kernel_choices() {
        generation_cases_match(kernel);
    }
}

fn generation_cases_match(kernel: KernelChoice) {
    let g = golden();
    let cases = g["generation_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        let r = spool_sim::run(&spool_sim::RunOptions { kernel, ..case_options(case) }).unwrap();
        let id = &format!("{} ({kernel:?} kernels)", case["id"].as_str().unwrap());
        assert_eq!(r.token_ids, ids(&case["token_ids"]), "{id}: token ids");
        assert_eq!(String::from_utf8_lossy(&r.stdout), case["stdout"].as_str().unwrap(), "{id}: stdout");
        assert_eq!(r.stdout, case["stdout"].as_str().unwrap().as_bytes(), "{id}: stdout bytes");
        assert_eq!(r.positions as u64, case["positions_run"].as_u64().unwrap(), "{id}: positions");
    }
}

#[test]
fn every_tokenizer_case_matches_the_reference() {
    let bytes = model_bytes();
    let mut arena = vec![0u8; 2 << 20];
    let engine = Engine::new(SliceStorage::new(&bytes), &mut arena, 16).unwrap();
    let g = golden();
    let cases = g["tokenizer_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 14);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let mut out = vec![0u32; text.len() + 3];
        let mut scratch = vec![0u32; spool_core::tokenizer::encode_scratch_words(text.len())];
        let n = engine.tokenizer().encode_with(text.as_bytes(), true, &mut out, &mut scratch).unwrap();
        assert_eq!(&out[..n], &ids(&case["token_ids"])[..], "encode {text:?}");
    }
}

#[test]
fn logits_match_the_reference_within_1e4_with_identical_argmax() {
    let bytes = model_bytes();
    let reference = read_f32(repo().join("tests/data/stories260K.logits.f32"));
    let fed = ids(&golden()["logits"]["token_ids_fed"]);
    // At a streaming budget too: the numbers must not depend on where the weights sit.
    for budget in [2 << 20, 400 << 10] {
        let mut arena = vec![0u8; budget];
        let mut engine = Engine::new(SliceStorage::new(&bytes), &mut arena, 8).unwrap();
        let mut worst = 0.0f32;
        for (pos, &tok) in fed.iter().enumerate() {
            let logits = engine.forward(tok, pos as u32).unwrap();
            let want = &reference[pos * 512..(pos + 1) * 512];
            for (&a, &b) in logits.iter().zip(want) {
                let diff = (a - b).abs();
                assert!(diff <= 1e-4 + 1e-4 * b.abs(), "pos {pos}: {a} vs {b}");
                worst = worst.max(diff);
            }
            assert_eq!(spool_core::sampler::argmax(logits), spool_core::sampler::argmax(want), "argmax at {pos}");
        }
        eprintln!("budget {budget}: worst logit difference {worst:e}");
    }
}

#[test]
fn dump_logits_writes_every_position_as_the_reference() {
    let reference = read_f32(repo().join("tests/data/stories260K.logits.f32"));
    let fed = ids(&golden()["logits"]["token_ids_fed"]);
    for kernel in kernel_choices() {
        let path = std::env::temp_dir().join(format!("spool-dump-{}-{kernel:?}.f32", std::process::id()));
        let opts = spool_sim::RunOptions {
            model: model_path(),
            prompt: "Once upon a time".into(),
            steps: 8,
            temperature: 0.0,
            kernel,
            dump_logits: Some(path.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let r = spool_sim::run(&opts).unwrap();
        assert_eq!(r.plan.prefill_chunk(), 1, "--dump-logits forces a prefill chunk of 1");
        assert_eq!(r.token_ids[..8], fed[..], "{kernel:?}: the fed ids of the reference logits");
        let got = read_f32(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(got.len(), 8 * 512, "{kernel:?}: [positions][vocab]");
        for pos in 0..8 {
            let (a, b) = (&got[pos * 512..(pos + 1) * 512], &reference[pos * 512..(pos + 1) * 512]);
            for (&x, &y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-4, "{kernel:?} pos {pos}: {x} vs {y}");
            }
            assert_eq!(spool_core::sampler::argmax(a), spool_core::sampler::argmax(b), "{kernel:?} argmax at {pos}");
        }
    }
}
