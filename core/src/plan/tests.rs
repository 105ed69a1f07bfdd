//! The planner against hostile and huge shapes: offsets past 4 GiB, row counts that would take
//! hours to walk, and sums that would wrap a 32-bit `usize`.

extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;
use crate::quant::GgmlType;
use crate::testutil::{config, fake_model};

/// Pinned spans `[at, at + aligned)` lie inside the resident region and do not overlap.
fn assert_pinned_spans_apart(p: &Plan, model: &ModelInfo) {
    let mut spans: Vec<(u64, u64)> =
        p.units.iter().filter_map(|u| u.pinned_at.map(|at| (at as u64, at as u64 + u.aligned_bytes()))).collect();
    if let Some(at) = p.embd_pinned_at {
        spans.push((at as u64, at as u64 + model.token_embd.bytes()));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "pinned spans overlap: {:?} and {:?}", w[0], w[1]);
    }
    let end = spans.last().map_or(0, |s| s.1);
    assert!(end <= p.resident.bytes as u64, "pinned spans end at {end}, past the resident region {}", p.resident.bytes);
}

#[test]
#[cfg(target_pointer_width = "64")]
fn a_plan_above_4_gib_keeps_pinned_spans_apart() {
    // 7B-shaped F32 weights (about 26 GiB) under a 6 GiB budget: units are pinned past 4 GiB.
    let model = fake_model(config(4096, 11008, 32, 32, 32000, 64), GgmlType::F32, false);
    let p = plan(&model, 64, 6 << 30).unwrap();
    assert!(
        p.units.iter().filter_map(|u| u.pinned_at).any(|at| at as u64 > u32::MAX as u64),
        "nothing pinned past 4 GiB"
    );
    assert!(p.slot_count > 0);
    assert_pinned_spans_apart(&p, &model);
    // 5 GiB of weights in an 8 GiB budget: everything is pinned, the embedding table last.
    let model = fake_model(config(2048, 5632, 26, 32, 32000, 64), GgmlType::F32, false);
    let p = plan(&model, 64, 8 << 30).unwrap();
    assert_eq!(p.slot_count, 0);
    assert!(p.embd_pinned_at.is_some_and(|at| at as u64 > u32::MAX as u64));
    assert_pinned_spans_apart(&p, &model);
}

#[test]
fn a_hostile_row_count_is_refused_before_units_are_made() {
    // 2^31 rows of one Q8_0 block each: cut into units, that would be a loop of 2^31 steps.
    let mut c = config(32, 32, 1, 1, 8, 64);
    c.vocab = 1 << 31;
    let model = fake_model(c, GgmlType::Q8_0, true);
    let cap = 1024; // 30 rows per unit
    match units::count_units(&model, cap) {
        Err(PlanError::TooManyUnits { count, max }) => assert!(count > (1 << 25) && max == MAX_UNITS, "{count}"),
        other => panic!("expected TooManyUnits, got {other:?}"),
    }
}

#[test]
fn a_kv_cache_past_4_gib_is_refused_on_a_32_bit_target() {
    // 64 layers x 4096 positions x 4096 wide: 8 GiB of keys and values. The u64 sums see it; a
    // 32-bit address space cannot hold it, and says so instead of wrapping to a small number.
    let model = fake_model(config(4096, 64, 64, 32, 16, 4096), GgmlType::Q8_0, true);
    assert_eq!(layout::kv_bytes(&model, 4096, 1, false), Some(8 << 30));
    let err = plan_within(&model, 4096, 12 << 20, PlanOptions::default(), u32::MAX as u64).unwrap_err();
    assert_eq!(err, PlanError::TooLarge { what: "KV cache" });
    // With 64-bit room the same model only asks for more budget.
    #[cfg(target_pointer_width = "64")]
    {
        let err = plan_within(&model, 4096, 12 << 20, PlanOptions::default(), u64::MAX).unwrap_err();
        assert!(matches!(err, PlanError::BudgetTooSmall { minimum, .. } if minimum as u64 > 8 << 30), "{err:?}");
    }
}

#[test]
fn sums_past_64_bits_are_refused() {
    let mut c = config(1 << 30, 64, 128, 1, 16, u32::MAX);
    c.kv_dim = u32::MAX;
    let model = fake_model(config(64, 64, 1, 1, 16, 64), GgmlType::F32, true);
    let model = ModelInfo { config: c, ..model };
    assert_eq!(layout::kv_bytes(&model, u32::MAX, 1, false), None);
    let err = plan_within(&model, u32::MAX, 1 << 20, PlanOptions::default(), u64::MAX).unwrap_err();
    assert!(matches!(err, PlanError::TooLarge { .. }), "{err:?}");
}

/// First-fit decreasing written with a sorted index and a mask, a size's units spread: of n
/// units of one size of which `fit` fit, the i-th is pinned when `(i + 1) * fit / n` steps up.
/// The packer without tables must pin exactly the same units.
fn reference_pins(units: &[Unit], budget: u64, min_slots: u64) -> Vec<bool> {
    let largest = units.iter().map(Unit::aligned_bytes).max().unwrap_or(0);
    let mut sizes: Vec<u32> = units.iter().map(|u| u.bytes).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    let fill = |avail: u64| {
        let (mut used, mut max_streamed, mut pinned) = (0, 0, vec![false; units.len()]);
        for &size in &sizes {
            let class: Vec<usize> = (0..units.len()).filter(|&i| units[i].bytes == size).collect();
            let (n, b) = (class.len() as u64, units[class[0]].aligned_bytes());
            let fit = (avail - used).checked_div(b).unwrap_or(n).min(n);
            for (i, &u) in class.iter().enumerate() {
                let i = i as u64;
                if (i + 1) * fit / n > i * fit / n {
                    used += b;
                    pinned[u] = true;
                } else {
                    max_streamed = max_streamed.max(b);
                }
            }
        }
        (pinned, max_streamed)
    };
    let mut slot = largest;
    loop {
        let (pinned, max_streamed) = fill(budget.saturating_sub((slot + SLOT_META_BYTES as u64) * min_slots));
        if max_streamed == 0 || max_streamed >= slot {
            return pinned;
        }
        slot = max_streamed;
    }
}

#[test]
fn the_packer_pins_what_a_sorted_first_fit_decreasing_pins_with_each_size_spread() {
    let model = fake_model(config(256, 688, 6, 8, 1000, 64), GgmlType::Q8_0, false);
    let whole: u64 = plan(&model, 64, usize::MAX / 4).unwrap().units.iter().map(Unit::aligned_bytes).sum();
    let mut compared = 0;
    for percent in [5, 20, 35, 50, 65, 80, 95] {
        for prefetch in [0, 2] {
            let opts = PlanOptions { prefetch, ..PlanOptions::default() };
            let budget = (whole * percent / 100) as usize + 200_000;
            let Ok(p) = plan_with(&model, 64, budget, opts) else { continue };
            let cache_budget = (budget - p.resident.offset - 2 * ALIGN) as u64;
            let want = reference_pins(&p.units, cache_budget, 1 + prefetch as u64);
            let got: Vec<bool> = p.units.iter().map(|u| u.pinned_at.is_some()).collect();
            if p.slot_count > 0 {
                assert_eq!(got, want, "{percent}% with prefetch {prefetch}");
                assert!(got.iter().any(|&p| p) && !got.iter().all(|&p| p));
                compared += 1;
            }
        }
    }
    assert!(compared >= 8, "only {compared} streaming plans compared");
}

#[test]
fn the_tables_are_regions_of_the_plan_sized_for_the_model() {
    let model = fake_model(config(64, 172, 5, 8, 512, 64), GgmlType::F32, true);
    let p = plan(&model, 64, 600 << 10).unwrap();
    assert_eq!(p.layers.offset, 0);
    assert_eq!(p.layers.bytes, 5 * core::mem::size_of::<crate::model::Layer>());
    assert_eq!(p.unit_table.bytes, p.units.len() * core::mem::size_of::<Unit>());
    assert_eq!(p.unit_table.offset, p.layers.bytes.next_multiple_of(ALIGN));
    assert_eq!(p.working.offset, p.unit_table.offset + p.unit_table.bytes.next_multiple_of(ALIGN));
    assert_eq!(p.slot_meta.bytes, p.slot_count as usize * SLOT_META_BYTES);
    assert_eq!(p.table_bytes(), p.layers.bytes + p.unit_table.bytes + p.slot_meta.bytes);
    assert!(p.used_bytes() <= p.budget);
    assert_eq!(p.units.len(), unit_count(&model).unwrap());
}

#[test]
fn streamed_units_of_one_size_are_spread_over_the_pass_not_left_at_its_end() {
    let model = fake_model(config(256, 688, 6, 8, 1000, 64), GgmlType::Q8_0, false);
    let whole: u64 = plan(&model, 64, usize::MAX / 4).unwrap().units.iter().map(Unit::aligned_bytes).sum();
    let p = plan(&model, 64, (whole * 80 / 100) as usize).unwrap();
    let size = p.units.iter().map(|u| u.bytes).max().unwrap();
    let class: Vec<bool> = p.units.iter().filter(|u| u.bytes == size).map(|u| u.pinned_at.is_some()).collect();
    let streamed = class.iter().filter(|&&p| !p).count();
    assert!(streamed > 0 && streamed < class.len() / 2, "{streamed} of {} streamed", class.len());
    // No two streamed units of the largest size are neighbours in the class, and some are in
    // its first half.
    assert!(class.windows(2).all(|w| w[0] || w[1]), "{class:?}");
    assert!(class[..class.len() / 2].iter().any(|&p| !p), "{class:?}");
}

#[test]
fn slots_get_the_slack_of_aligned_reads_when_the_storage_needs_it() {
    let model = fake_model(config(256, 688, 6, 8, 1000, 64), GgmlType::Q8_0, false);
    let whole: u64 = plan(&model, 64, usize::MAX / 4).unwrap().units.iter().map(Unit::aligned_bytes).sum();
    let budget = (whole / 2) as usize;
    let plain = plan_with(&model, 64, budget, PlanOptions { prefetch: 2, ..PlanOptions::default() }).unwrap();
    let direct =
        plan_with(&model, 64, budget, PlanOptions { prefetch: 2, io_align: 512, ..PlanOptions::default() }).unwrap();
    assert_eq!(plain.io_slack, 0);
    assert_eq!(direct.io_slack as usize, crate::storage::io_slack(512));
    let largest_streamed = |p: &Plan| p.units.iter().filter(|u| u.pinned_at.is_none()).map(Unit::aligned_bytes).max();
    assert_eq!(direct.slot_bytes as u64, largest_streamed(&direct).unwrap() + direct.io_slack as u64);
    assert!(
        direct.used_bytes() <= budget && direct.slots.bytes == direct.slot_count as usize * direct.slot_bytes as usize
    );
    // An alignment that is not a power of two is rounded up, one above a page is capped.
    let odd = plan_with(&model, 64, budget, PlanOptions { io_align: 600, ..PlanOptions::default() }).unwrap();
    assert_eq!(odd.options.io_align, 1024);
    let big = plan_with(&model, 64, budget, PlanOptions { io_align: 1 << 20, ..PlanOptions::default() }).unwrap();
    assert_eq!(big.options.io_align, 4096);
}

#[test]
fn the_automatic_prefetch_depth_follows_the_bytes_and_the_budget() {
    let model = fake_model(config(256, 688, 6, 8, 1000, 64), GgmlType::Q8_0, false);
    let whole = plan(&model, 64, usize::MAX / 4).unwrap().used_bytes();
    // Everything resident: nothing streams, nothing is read ahead.
    assert_eq!(auto_prefetch(&model, 64, whole, PlanOptions::default()), 0);
    // Streaming: at least MIN_AUTO_PREFETCH, at most MAX_PREFETCH, and the depth plans.
    for percent in [20, 50, 90] {
        let budget = whole * percent / 100;
        let depth = auto_prefetch(&model, 64, budget, PlanOptions::default());
        let base = plan_with(&model, 64, budget, PlanOptions::default()).unwrap();
        let by_bytes = PREFETCH_AHEAD_BYTES.div_ceil(base.slot_bytes as u64).min(MAX_PREFETCH as u64) as u32;
        let by_share = (budget / PREFETCH_SHARE / base.slot_bytes as usize) as u32;
        assert_eq!(depth, by_bytes.max(MIN_AUTO_PREFETCH).min(by_share), "{percent}%");
        assert!(depth > 0, "{percent}%: a streaming run reads ahead");
        plan_with(&model, 64, budget, PlanOptions { prefetch: depth, ..PlanOptions::default() }).unwrap();
    }
    // At the minimum budget with no read-ahead there is no room for another slot.
    let min = minimum_budget(&model, 64, PlanOptions::default()).unwrap();
    assert_eq!(auto_prefetch(&model, 64, min, PlanOptions::default()), 0);
    // A budget that cannot be planned gives 0; the run reports the planner's error itself.
    assert_eq!(auto_prefetch(&model, 64, 1000, PlanOptions::default()), 0);
}
