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

/// `--prefetch` defaults to `auto`: a streaming run reads ahead, a resident one does not, and
/// the tokens are those of a run without read-ahead.
#[test]
fn the_default_prefetch_reads_ahead_only_when_something_streams() {
    let run = |extra: &[&str]| {
        let model = model_path();
        let mut args = vec!["run", "-m", &model, "-p", "Once", "-n", "24", "--temp", "0", "--json"];
        args.extend_from_slice(extra);
        let out = Command::new(EXE).args(&args).output().unwrap();
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json["plan"]["prefetch"].as_u64().unwrap(), json["token_ids"].clone())
    };
    let (resident_depth, resident_ids) = run(&[]);
    assert_eq!(resident_depth, 0, "everything resident: nothing to read ahead");
    let (auto_depth, auto_ids) = run(&["--ram", "50%"]);
    assert!((4..=8).contains(&auto_depth), "a streaming run reads 4 to 8 units ahead, got {auto_depth}");
    let (off_depth, off_ids) = run(&["--ram", "50%", "--prefetch", "0"]);
    assert_eq!(off_depth, 0);
    assert_eq!(auto_ids, resident_ids);
    assert_eq!(off_ids, resident_ids);
}
