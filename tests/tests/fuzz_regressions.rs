//! Every crash the fuzzers of `fuzz/` found, as the GGUF that caused it (`tests/data/fuzz`,
//! written with `SPOOL_FUZZ_DUMP`; see `make fuzz`): `inspect` and a 3-token `run` of the CLI
//! binary must end in an error, not a panic, a signal or a hang.

mod common;

use std::time::Duration;

use spool_tests::cli;

const EXE: &str = env!("CARGO_BIN_EXE_spool-sim-cli");

fn fails(file: &str, needles: &[&str]) {
    let path = common::repo().join("tests/data/fuzz").join(file);
    let p = path.to_str().unwrap();
    for args in [vec!["inspect", "-m", p], vec!["run", "-m", p, "--steps", "3", "--temp", "0"]] {
        let exit = cli::run(EXE, &args, Duration::from_secs(30));
        let err = exit.assert_error(&format!("{file}: {}", args[0]), "spool-sim: ");
        assert!(needles.iter().any(|n| err.contains(n)), "{file}: {} says {err}", args[0]);
    }
}

/// gguf_structured, after 6,223 executions: a 1 KiB file whose first tensor is placed so that
/// offset + size is 2^64 + 1; `offset + row_bytes * rows` in the model check overflows (debug:
/// panic; release: wraps, and the file is refused only by a later tensor).
#[test]
fn structured_offset_plus_size_wraps() {
    fails("structured-offset-plus-size-wraps.gguf", &["overflow", "truncated", "exceeds", "past"]);
}

/// planner, after 7,027 executions: `2 * layers * context * kv_dim * 4` (the KV cache) is
/// computed without a check and overflows `usize` (input: `fuzz/regressions/planner`). A file
/// cannot reach it on 64-bit (a kv_dim that large needs tensors past any file), but on a 32-bit
/// target a 1.7 MB file does (defect 4); here the model's hyperparameters are raised in place.
#[test]
fn planner_kv_cache_size_overflows() {
    let bytes = common::model_bytes();
    let mut model = spool_core::ModelInfo::load(&mut spool_core::SliceStorage::new(&bytes)).unwrap();
    model.config.context_length = u32::MAX;
    model.config.kv_dim = 1 << 31;
    for budget in [1 << 30, usize::MAX / 4] {
        let r = std::panic::catch_unwind(|| spool_core::plan(&model, u32::MAX, budget).map(|p| p.used_bytes()));
        let plan = r.unwrap_or_else(|_| panic!("the planner panicked at budget {budget}"));
        assert!(plan.is_err(), "a KV cache of 2^67 bytes was planned into {budget}");
    }
}

/// planner (fork mode, 27 crashes in 200 s, two kinds): past 4 GiB of resident weights the plan's
/// `u32` pinned offsets wrap, so pinned spans overlap (defect 3), and a unit above 4 GiB has its
/// `u32` byte count cut. Here stories260K's FFN matrices are given 2^22 rows each (4 GiB per
/// layer); only the planner runs, nothing is allocated.
#[test]
fn planner_pinned_offsets_past_4_gib_do_not_overlap() {
    use spool_core::model::LayerTensor;
    let bytes = common::model_bytes();
    let mut model = spool_core::ModelInfo::load(&mut spool_core::SliceStorage::new(&bytes)).unwrap();
    for layer in model.layers.iter_mut() {
        for lt in [LayerTensor::Gate, LayerTensor::Up] {
            layer[spool_core::model::arch::llama::LLAMA.role_index(lt).unwrap()].rows = 1 << 22;
        }
    }
    let budget = 40usize << 30;
    let plan = spool_core::plan(&model, 16, budget).unwrap();
    let mut spans: Vec<(u64, u64)> =
        plan.units.iter().filter_map(|u| u.pinned_at.map(|at| (at as u64, at as u64 + u.bytes as u64))).collect();
    if let Some(at) = plan.embd_pinned_at {
        spans.push((at as u64, at as u64 + model.token_embd.bytes()));
    }
    for u in plan.units.iter() {
        let t = model.tensor(u.tensor);
        assert_eq!(u.bytes as u64, t.row_bytes() * u.rows as u64, "{u:?}: bytes cut");
    }
    spans.sort();
    assert!(spans.last().unwrap().1 > 4 << 30, "the test must pin more than 4 GiB");
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "pinned spans overlap: {:?} and {:?}", w[0], w[1]);
    }
}

/// gguf_structured (fork mode): a tensor with a zero first dimension passes the element-count
/// check (the product is 0), but its row count, the product of the other dimensions, overflows
/// in `TensorEntry::rows_cols` (debug: panic; release: wraps into a wrong shape). New finding of
/// this branch, in the family of defect 2.
#[test]
fn structured_zero_dim_hides_row_overflow() {
    fails("structured-zero-dim-hides-row-overflow.gguf", &["overflow", "has shape"]);
}
