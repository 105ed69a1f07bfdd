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
