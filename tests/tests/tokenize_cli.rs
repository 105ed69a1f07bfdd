//! `spool-sim tokenize` prints what llama.cpp's `llama-tokenize` prints: on the vocabulary-only
//! files of tests/data/vocab (no tensors; phi3, qwen2 and gpt2 architectures) and on the real
//! Gemma 3 file (`make gemma`), whose prompt ids in tests/data/gemma3/reference.json are
//! llama.cpp's.

mod common;

use common::*;

fn tokenize(args: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.insert(0, "tokenize".into());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = spool_sim::main_with(&args, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn vocab(name: &str) -> String {
    repo().join(format!("tests/data/vocab/ggml-vocab-{name}.gguf")).to_string_lossy().into_owned()
}

/// Expected output from `llama-tokenize -m FILE -p TEXT [--ids] [--no-bos] [--no-parse-special]
/// [--no-escape]` (the peer build).
#[test]
fn ids_and_pieces_print_as_llama_tokenize_prints_them() {
    let bpe = vocab("llama-bpe");
    assert_eq!(tokenize(&["-m", &bpe, "-p", "Hello world", "--ids"]).1, "[128000, 9906, 1917]\n");
    assert_eq!(tokenize(&["-m", &bpe, "-p", "Hello world", "--ids", "--no-bos"]).1, "[9906, 1917]\n");
    assert_eq!(
        tokenize(&["-m", &bpe, "-p", "Hello world"]).1,
        "128000 -> '<|begin_of_text|>'\n  9906 -> 'Hello'\n  1917 -> ' world'\n"
    );
    // GPT-2 and Qwen2 add no BOS; `-p` is taken as given (no escape processing).
    assert_eq!(tokenize(&["-m", &vocab("gpt-2"), "-p", "a\\nb", "--ids"]).1, "[64, 59, 46803]\n");
    assert_eq!(
        tokenize(&["-m", &vocab("qwen2"), "-p", "<|im_start|>hi", "--ids", "--parse-special"]).1,
        "[151644, 6023]\n"
    );
    let (code, _, err) = tokenize(&["-m", &bpe, "--ids"]);
    assert_eq!(code, 2, "no text is a usage error: {err}");
}

#[test]
fn the_gemma_prompts_give_llama_cpp_ids() {
    let path = repo().join("target/models/gemma-3-270m-q4_k_m.gguf");
    assert!(path.is_file(), "the Gemma 3 270M file is missing: run `make gemma`");
    let text = std::fs::read_to_string(repo().join("tests/data/gemma3/reference.json")).unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in r["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let want: Vec<String> = case["prompt_ids"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
        let (code, out, err) = tokenize(&["-m", path.to_str().unwrap(), "-p", prompt, "--ids"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, format!("[{}]\n", want.join(", ")), "{prompt:?}");
    }
}
