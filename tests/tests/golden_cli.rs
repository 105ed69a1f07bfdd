//! The run.c goldens through the real binary: `--steps` (run.c's positions) with `--runc-output`
//! (run.c's filter of lone bytes) prints every reference's stdout byte for byte.

mod common;

use std::process::Command;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_spool-sim-cli");

#[test]
fn every_generation_case_matches_the_reference_through_the_cli() {
    let g = golden();
    let cases = g["generation_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        let o = case_options(case);
        let args = [
            "run".to_string(),
            "-m".into(),
            o.model.clone(),
            "-p".into(),
            o.prompt.clone(),
            "--steps".into(),
            o.steps.to_string(),
            "--temp".into(),
            o.temperature.to_string(),
            "--top-p".into(),
            o.topp.to_string(),
            "-s".into(),
            o.seed.to_string(),
            "--runc-output".into(),
        ];
        let out = Command::new(EXE).args(&args).output().unwrap();
        let id = case["id"].as_str().unwrap();
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, case["stdout"].as_str().unwrap().as_bytes(), "{id}: stdout bytes");
    }
}
