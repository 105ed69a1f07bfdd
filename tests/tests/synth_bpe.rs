//! `spool-sim synth --vocab-from ggml-vocab-llama-bpe.gguf` writes a Llama-shaped file with the
//! real Llama 3 vocabulary (byte-level BPE, its merges and pre-tokenizer): the engine plans
//! the BPE tokenizer inside the budget, encodes as llama.cpp does, and generates the same ids
//! at every budget.

mod common;

use common::*;
use spool_core::{generate, Engine, ModelInfo, Sampler, SliceStorage};

fn synth_llama3_vocab() -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("spool-synth-bpe-{}.gguf", std::process::id()));
    let vocab = repo().join("tests/data/vocab/ggml-vocab-llama-bpe.gguf");
    let args: Vec<String> = [
        "-o",
        path.to_str().unwrap(),
        "--dim",
        "64",
        "--hidden",
        "128",
        "--layers",
        "2",
        "--heads",
        "4",
        "--kv-heads",
        "2",
        "--ctx",
        "128",
        "--type",
        "Q8_0",
        "--vocab-from",
        vocab.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    spool_sim::synth::cli(&args, &mut out, &mut err).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    bytes
}

fn ids_at(file: &[u8], budget: usize) -> Vec<u32> {
    let mut arena = vec![0u8; budget];
    let mut engine = Engine::new(SliceStorage::new(file), &mut arena, 64).unwrap();
    let text = b"Hello world";
    let mut prompt = [0u32; 16];
    let mut scratch = [0u32; spool_core::tokenizer::encode_scratch_words(11)];
    let n = engine.tokenizer().encode_with(text, true, &mut prompt, &mut scratch).unwrap();
    // llama-tokenize -m ggml-vocab-llama-bpe.gguf -p "Hello world" --ids: [128000, 9906, 1917]
    assert_eq!(&prompt[..n], &[128000, 9906, 1917]);
    let mut ids = Vec::new();
    let mut sampler = Sampler::new(0.0, 0.9, 42);
    generate(&mut engine, &mut sampler, &prompt[..n], 12, |ev| ids.push(ev.token)).unwrap();
    ids
}

#[test]
fn a_synth_file_with_the_llama3_vocabulary_encodes_and_generates_at_any_budget() {
    let file = synth_llama3_vocab();
    let header = spool_core::gguf::read_header(&mut SliceStorage::new(&file)).unwrap();
    assert_eq!(header.tokenizer_model.as_bytes(), b"gpt2");
    assert_eq!(header.tokenizer_pre.as_bytes(), b"llama-bpe");
    assert_eq!(header.merges.unwrap().count, 280_147);
    let info = ModelInfo::load(&mut SliceStorage::new(&file)).unwrap();
    assert_eq!(info.config.vocab, 128_256);
    let full = spool_sim::full_budget(&info, 64).unwrap();
    let min = spool_sim::minimum_budget(&info, 64);
    let want = ids_at(&file, full);
    assert!(!want.is_empty());
    for budget in [full / 2, min] {
        assert_eq!(ids_at(&file, budget), want, "budget {budget} of {full}");
    }
}
