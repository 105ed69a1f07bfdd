//! `spool-sim checksum` and `run --verify`: a bit flipped in the stored weights becomes an error
//! naming the unit (streamed or pinned, sync or prefetch), a clean file gives the same tokens
//! as a run without the check, and a missing or foreign sidecar is refused.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use spool_sim::verify::{ranges, Sidecar};
use spool_sim::RunOptions;
use spool_tests::cli;

const EXE: &str = env!("CARGO_BIN_EXE_spool-sim-cli");
const TIMEOUT: Duration = Duration::from_secs(60);

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("verify");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The sidecar of the clean model, written by the CLI.
fn sidecar(name: &str) -> PathBuf {
    let side = dir().join(format!("{name}.crc"));
    let args = ["checksum", "-m", &common::model_path(), "-o", path_str(&side)];
    cli::run(EXE, &args, TIMEOUT).assert_ok("checksum");
    side
}

/// A copy of the model with bit 3 of byte `at` flipped.
fn flipped(name: &str, at: u64) -> PathBuf {
    let mut bytes = common::model_bytes();
    bytes[at as usize] ^= 0x08;
    let p = dir().join(format!("{name}.gguf"));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn run_args<'a>(model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", "-m", model, "--steps", "24", "--temp", "0", "-p", "Once upon", "--ram", "600K"];
    a.extend_from_slice(extra);
    a
}

/// The units the 600K plan streams and pins (from the library's report of a clean run).
fn units_at_600k() -> spool_core::Plan {
    let opts = RunOptions { ram: Some(600 << 10), steps: 2, ..common::case_options(&common::case("greedy_once_64")) };
    *spool_sim::run(&opts).unwrap().plan
}

#[test]
fn a_clean_file_passes_with_the_same_tokens() {
    let side = sidecar("clean");
    let model = common::model_path();
    for extra in [&[][..], &["--prefetch", "2"], &["--storage", "mmap"]] {
        let plain = cli::run(EXE, &run_args(&model, extra), TIMEOUT);
        plain.assert_ok("plain");
        let mut args = run_args(&model, extra);
        args.extend_from_slice(&["--verify", path_str(&side)]);
        let checked = cli::run(EXE, &args, TIMEOUT);
        checked.assert_ok("verified");
        assert_eq!(checked.stdout, plain.stdout, "{extra:?}");
        assert!(plain.stdout.starts_with("Once upon a time"), "{}", plain.stdout);
    }
}

#[test]
fn a_bit_flip_in_a_streamed_unit_is_an_error_naming_it() {
    let side = sidecar("streamed");
    let plan = units_at_600k();
    let streamed: Vec<_> = plan.units.iter().filter(|u| u.pinned_at.is_none()).collect();
    assert!(streamed.len() >= 2, "the 600K plan streams units");
    for (i, u) in [streamed[0], streamed[streamed.len() - 1]].into_iter().enumerate() {
        let bad = flipped(&format!("streamed-{i}"), u.offset + u.bytes as u64 / 2);
        let label = format!("`{} rows {}..{}`", u.tensor, u.row0, u.row0 + u.rows);
        // Without the check the flip goes unnoticed: the run succeeds.
        cli::run(EXE, &run_args(path_str(&bad), &[]), TIMEOUT).assert_ok("unchecked");
        for extra in [&[][..], &["--prefetch", "2"], &["--storage", "mmap"], &["--storage", "flash"]] {
            let mut args = run_args(path_str(&bad), extra);
            args.extend_from_slice(&["--verify", path_str(&side)]);
            let err = cli::run(EXE, &args, TIMEOUT).assert_error(&format!("{label} {extra:?}"), &label).to_string();
            assert!(err.contains("the storage is corrupt"), "{err}");
        }
    }
}

#[test]
fn a_bit_flip_in_a_pinned_unit_a_norm_or_the_metadata_is_an_error_at_load() {
    let side = sidecar("pinned");
    let plan = units_at_600k();
    let pinned = plan.units.iter().find(|u| u.pinned_at.is_some()).expect("the 600K plan pins units");
    let g = spool_tests::gguf::Gguf::parse(&common::model_bytes()).unwrap();
    let norm = g.tensors.iter().find(|t| t.name == b"blk.2.ffn_norm.weight").unwrap().offset + g.data_start();
    let cases = [
        (pinned.offset + 7, format!("`{} rows {}..{}`", pinned.tensor, pinned.row0, pinned.row0 + pinned.rows)),
        (norm + 5, "`blk.2.ffn_norm.weight`".to_string()),
        // Inside the piece of token 300 in the vocabulary: the file still parses.
        (common::model_bytes().windows(5).position(|w| w == b"<unk>").unwrap() as u64 + 2, "metadata".into()),
    ];
    for (i, (at, label)) in cases.into_iter().enumerate() {
        let bad = flipped(&format!("pinned-{i}"), at);
        let mut args = run_args(path_str(&bad), &[]);
        args.extend_from_slice(&["--verify", path_str(&side)]);
        cli::run(EXE, &args, TIMEOUT).assert_error(&label, &label);
    }
}

#[test]
fn verify_without_a_readable_sidecar_is_an_error() {
    let model = common::model_path();
    let missing = dir().join("missing.crc");
    let mut args = run_args(&model, &[]);
    args.extend_from_slice(&["--verify", path_str(&missing)]);
    cli::run(EXE, &args, TIMEOUT).assert_error("missing", "cannot read the checksum sidecar");

    let junk = dir().join("junk.crc");
    std::fs::write(&junk, "hello\n").unwrap();
    let mut args = run_args(&model, &[]);
    args.extend_from_slice(&["--verify", path_str(&junk)]);
    cli::run(EXE, &args, TIMEOUT).assert_error("junk", "not a spool checksum sidecar");

    // A sidecar of another file (a line dropped, the length changed) is refused, not trusted.
    let text = std::fs::read_to_string(sidecar("foreign")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(5);
    let foreign = dir().join("foreign-short.crc");
    std::fs::write(&foreign, lines.join("\n")).unwrap();
    let mut args = run_args(&model, &[]);
    args.extend_from_slice(&["--verify", path_str(&foreign)]);
    cli::run(EXE, &args, TIMEOUT).assert_error("foreign", "write the sidecar again with `spool-sim checksum`");
    let other_len = dir().join("foreign-len.crc");
    std::fs::write(&other_len, text.replace("file_len 1185376", "file_len 99")).unwrap();
    let mut args = run_args(&model, &[]);
    args.extend_from_slice(&["--verify", path_str(&other_len)]);
    cli::run(EXE, &args, TIMEOUT).assert_error("foreign", "the sidecar is for a file of 99 bytes");
}

/// The sidecar's units are the plan's units at every budget: they depend on the model only.
#[test]
fn sidecar_units_do_not_depend_on_the_budget() {
    let bytes = common::model_bytes();
    let model = spool_core::ModelInfo::load(&mut spool_core::SliceStorage::new(&bytes)).unwrap();
    let ranges = ranges(&model).unwrap();
    let min = spool_sim::minimum_budget(&model, 64);
    for budget in [min, 600 << 10, 900 << 10, 4 << 20] {
        let plan = spool_core::plan(&model, 64, budget).unwrap();
        for u in plan.units.iter() {
            assert!(ranges.iter().any(|r| r.offset == u.offset && r.len == u.bytes as u64), "{u:?} at {budget}");
        }
    }
    let side = Sidecar::compute(&mut spool_core::SliceStorage::new(&bytes)).unwrap();
    assert_eq!(Sidecar::parse(&side.to_text()).unwrap(), side);
    assert_eq!(side.sums.len(), ranges.len());
}
