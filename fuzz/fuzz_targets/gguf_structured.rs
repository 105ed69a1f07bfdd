//! Parser and planner on structure-aware hostile GGUFs: a valid skeleton whose counts, shapes,
//! offsets, types and lengths are pushed to their edges (defect 2 of issue 7 lives there).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool_core::{ModelInfo, SliceStorage};
use spool_fuzz::{build, check_plan, Hostile, Num, Opts};

fuzz_target!(|input: (Hostile, Num, u16, Opts)| {
    let (hostile, budget, ctx, opts) = input;
    let bytes = build(&hostile);
    // `SPOOL_FUZZ_DUMP=file cargo fuzz run gguf_structured crash-..` writes the GGUF a crash
    // was made of, to check it in as a regression test.
    if let Some(path) = std::env::var_os("SPOOL_FUZZ_DUMP") {
        std::fs::write(path, &bytes).unwrap();
    }
    let Ok(model) = ModelInfo::load(&mut SliceStorage::new(&bytes)) else { return };
    for budget in [budget.get() as usize, usize::MAX / 4] {
        if let Ok(plan) = spool_core::plan_with(&model, ctx as u32 + 1, budget, opts.get()) {
            check_plan(&model, &plan);
        }
    }
});
