//! Paths and loaders shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn model_path() -> String {
    repo().join("models/stories260K.gguf").to_string_lossy().into_owned()
}

pub fn model_bytes() -> Vec<u8> {
    std::fs::read(model_path()).expect("models/stories260K.gguf is in the repo")
}

pub fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("tests/data/stories260K.golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// One position of llama.cpp's logits, as `scripts/llama-logits.cpp` dumps them: the argmax,
/// the top logits and every `sample_stride`-th logit.
pub struct Dumped {
    pub pos: usize,
    pub argmax: u32,
    pub top: Vec<(u32, f32)>,
    pub sample: Vec<f32>,
}

/// The dumped positions of one case of a logits.json (`case["positions"]`).
pub fn dumped_positions(case: &serde_json::Value) -> Vec<Dumped> {
    case["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Dumped {
            pos: p["pos"].as_u64().unwrap() as usize,
            argmax: p["argmax"].as_u64().unwrap() as u32,
            top: p["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t[0].as_u64().unwrap() as u32, t[1].as_f64().unwrap() as f32))
                .collect(),
            sample: p["sample"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect(),
        })
        .collect()
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// The generation case `id` as simulator options (full budget, file storage).
pub fn case_options(case: &serde_json::Value) -> spool_sim::RunOptions {
    spool_sim::RunOptions {
        model: model_path(),
        prompt: case["prompt"].as_str().unwrap().to_string(),
        steps: case["steps"].as_u64().unwrap() as u32,
        temperature: case["temperature"].as_f64().unwrap() as f32,
        topp: case["topp"].as_f64().unwrap() as f32,
        seed: case["seed"].as_u64().unwrap(),
        ..Default::default()
    }
}

pub fn case(id: &str) -> serde_json::Value {
    golden()["generation_cases"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone()
}

/// The quantized test files made with llama.cpp's tools (`tests/data/quant`, a copy of the
/// project's shared quant folder, so that a clone of the repository alone passes `make test`).
/// Their absence fails the test that asks: it is never skipped silently.
pub fn quant_dir() -> PathBuf {
    let dir = repo().join("tests/data/quant");
    assert!(
        dir.join("references.json").is_file(),
        "quantized test data is missing: expected {}/references.json (it is part of the repository)",
        dir.display()
    );
    dir
}

/// The `.gguf` file names of [`quant_dir`], sorted.
pub fn quant_ggufs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(quant_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    names.sort();
    names
}

/// Little-endian f32 values.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// A file of little-endian f32 values.
pub fn read_f32(path: impl AsRef<std::path::Path>) -> Vec<f32> {
    let path = path.as_ref();
    f32s(&std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())))
}
