//! `spool-sim bench` writes a table, JSON and SVG plots whose figures agree with each other.

mod common;

use common::*;

fn bench(kind: &str, dir: &std::path::Path) -> String {
    let args: Vec<String> = [
        "bench",
        kind,
        "-m",
        &model_path(),
        "--points",
        "3",
        "-n",
        "4",
        "--out",
        dir.to_str().unwrap(),
        "--name",
        kind,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = spool_sim::main_with(&args, &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

#[test]
fn the_budget_sweep_covers_every_policy_and_pin_reads_least() {
    let dir = std::env::temp_dir().join(format!("spool-bench-{}", std::process::id()));
    let table = bench("budget", &dir);
    assert_eq!(table.lines().count(), 1 + 5 * 3, "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("budget.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 15);
    for budget_runs in runs.chunks(1).take(3) {
        let b = budget_runs[0]["budget_bytes"].as_f64().unwrap();
        let at = |p: &str| {
            runs.iter().find(|r| r["policy"] == p && r["budget_bytes"].as_f64() == Some(b)).unwrap()
                ["bytes_read_per_token"]
                .as_f64()
                .unwrap()
        };
        for p in ["lru", "lru-protect", "mru", "min"] {
            assert!(at("pin") <= at(p), "pin vs {p} at {b}");
        }
    }
    for svg in ["budget-bytes.svg", "budget-tokps.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("polyline"), "{svg}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_prefetch_and_policies_sweeps_write_their_files() {
    let dir = std::env::temp_dir().join(format!("spool-bench2-{}", std::process::id()));
    assert_eq!(bench("prefetch", &dir).lines().count(), 1 + 12); // 3 bandwidths x distances 0..3
    assert_eq!(bench("policies", &dir).lines().count(), 1 + 10);
    for f in [
        "prefetch.json",
        "prefetch.svg",
        "policies.json",
        "policies-hits.svg",
        "policies-bytes.svg",
        "policies-tokps.svg",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_small_model_bench_prints_spool_against_the_run_c_figure() {
    let args: Vec<String> = ["bench", "small", "-m", &model_path(), "-n", "8", "--reps", "1", "--runc", "1000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = spool_sim::main_with(&args, &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let text = String::from_utf8(out).unwrap();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    // model, threads, decode, kernel, spool tok/s, llama.cpp (none here), spool/llama, run.c, spool/run.c
    assert_eq!(row.len(), 9, "{text}");
    assert_eq!((row[1], row[2]), ("1", "8"));
    let spool: f64 = row[4].parse().unwrap();
    assert!(spool > 0.0, "{text}");
    assert_eq!(row[5], "NaN");
    assert_eq!(row[7], "1000");
    let ratio: f64 = row[8].parse().unwrap();
    assert!((ratio - spool / 1000.0).abs() <= 0.006, "{text}");
    assert!(text.contains("given with --runc"), "{text}");
}
