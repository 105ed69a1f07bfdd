//! The parser and planner on raw bytes (seeded with the real GGUF files).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool_core::{ModelInfo, SliceStorage};
use spool_fuzz::check_plan;

fuzz_target!(|data: &[u8]| {
    let mut storage = SliceStorage::new(data);
    if let Ok(header) = spool_core::gguf::read_header(&mut storage) {
        if let Ok(entries) = spool_core::gguf::tensors(&mut storage, &header) {
            for entry in entries {
                if entry.is_err() {
                    break;
                }
            }
        }
    }
    let Ok(model) = ModelInfo::load(&mut storage) else { return };
    for budget in [600 << 10, usize::MAX / 4] {
        if let Ok(plan) = spool_core::plan(&model, 16, budget) {
            check_plan(&model, &plan);
        }
    }
});
