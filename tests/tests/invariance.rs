//! Within one build the tokens never depend on the RAM budget or the storage backend (file,
//! mmap, and direct I/O with its reads landing straight in the slots).

mod common;

use common::*;
use spool_sim::{Backend, RunOptions};

fn budgets() -> Vec<usize> {
    let mut storage = spool_std::FileStorage::open(model_path()).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    let min = spool_sim::minimum_budget(&model, 256);
    let full = spool_sim::full_budget(&model, 256).unwrap();
    // From the minimum (one slot, almost nothing pinned) to above the whole model.
    vec![min, min + 50_000, min + 200_000, (min + full) / 2, full - 100_000, full, full + 1_000_000]
}

/// The smallest budget of `--storage direct` on any device (4096-byte alignment).
fn direct_minimum() -> usize {
    let mut storage = spool_std::FileStorage::open(model_path()).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    let opts = spool_core::PlanOptions { io_align: 4096, ..Default::default() };
    spool_sim::minimum_budget_with(&model, 256, opts)
}

#[test]
fn tokens_are_identical_at_every_budget_and_storage() {
    let budgets = budgets();
    for id in ["greedy_once_256", "topp_once_seed42_256", "mult_the_dog_t0.8_seed7_96"] {
        let golden = case(id);
        let want = ids(&golden["token_ids"]);
        for &ram in &budgets {
            for backend in [Backend::File, Backend::Mmap, Backend::Direct] {
                // Direct I/O's slots need their alignment slack: its minimum is a little higher.
                let ram = if backend == Backend::Direct { ram.max(direct_minimum()) } else { ram };
                let opts = RunOptions { ram: Some(ram), backend, ..case_options(&golden) };
                let r = spool_sim::run(&opts).unwrap();
                assert_eq!(r.token_ids, want, "{id} at budget {ram} on {backend:?}");
            }
        }
    }
}

#[test]
fn the_minimum_budget_streams_through_a_single_slot() {
    let min = budgets()[0];
    let r = spool_sim::run(&RunOptions { ram: Some(min), ..case_options(&case("greedy_once_64")) }).unwrap();
    assert_eq!(r.plan.slot_count, 1);
    let largest = r.plan.units.iter().map(|u| u.bytes).max().unwrap();
    assert_eq!(r.plan.slot_bytes, largest, "the slot holds exactly the largest unit");
    // Every streamed unit is read once per decode token, plus the embedding row.
    assert_eq!(r.bytes_read_per_token(), r.plan.streamed_bytes_per_token() as f64);
    assert!(r.plan.streamed_bytes_per_token() > r.plan.touched_bytes_per_token / 2);
}

#[test]
fn a_budget_that_holds_everything_reads_no_weight_after_the_load() {
    let r = spool_sim::run(&RunOptions { ram: None, ..case_options(&case("greedy_once_256")) }).unwrap();
    assert_eq!(r.plan.slot_count, 0);
    assert_eq!(r.prefill_bytes + r.decode_bytes, 0);
    assert_eq!(r.cache.misses, 0);
    // Weights + KV cache + buffers: about 1.5 MB at context 256 (the prefill chunk's
    // activations, 32 positions by default, make up the rest).
    assert!((1_500_000..1_650_000).contains(&r.plan.budget), "{}", r.plan.budget);
}

#[test]
fn bytes_read_per_token_equal_the_plans_streamed_bytes_at_every_budget() {
    for ram in budgets() {
        let r = spool_sim::run(&RunOptions { ram: Some(ram), ..case_options(&case("greedy_once_64")) }).unwrap();
        assert_eq!(r.bytes_read_per_token(), r.plan.streamed_bytes_per_token() as f64, "budget {ram}");
        // While anything streams, the pin policy leaves less than one unit of the budget unused.
        if r.plan.slot_count > 0 {
            let spare = ram - r.plan.used_bytes();
            assert!(spare < r.plan.slot_bytes as usize + 64, "budget {ram}: {spare} bytes unused");
        }
    }
}

#[test]
fn pinning_beats_lru_on_the_cyclic_layer_order() {
    // LRU over the same memory cut into slots would miss on every unit (a cyclic scan larger
    // than the cache); pinning hits on every pinned unit each token.
    // Token by token, every position visits every unit once.
    let opts = RunOptions { ram: Some(700 << 10), prefill_chunk: 1, ..case_options(&case("greedy_once_64")) };
    let r = spool_sim::run(&opts).unwrap();
    let pinned = r.plan.units.iter().filter(|u| u.pinned_at.is_some()).count() as u64;
    assert!(pinned > 0);
    assert_eq!(r.cache.hits, pinned * r.positions as u64);
}
