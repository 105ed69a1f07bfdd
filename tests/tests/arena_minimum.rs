//! An arena too small for the engine's own tables: the error names the planner's minimum
//! budget in bytes (the same number the planner gives, which then works), or, when not even
//! the per-layer table fits, that table's size.

mod common;

use spool_core::error::PlanError;
use spool_core::{plan, Engine, Error, ModelInfo, PlanOptions, SliceStorage};

const CTX: u32 = 64;

#[test]
fn an_arena_below_the_unit_table_gives_the_planners_minimum() {
    let bytes = common::model_bytes();
    let model = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap();
    let minimum = plan::minimum_budget(&model, CTX, PlanOptions::default()).unwrap();
    // The planner says the same below it.
    match plan::plan_with(&model, CTX, minimum - 1, PlanOptions::default()) {
        Err(PlanError::BudgetTooSmall { minimum: m, .. }) => assert_eq!(m, minimum),
        other => panic!("planner below the minimum: {other:?}"),
    }
    // 3,000 B hold the layer table (1,560 B) but not the unit table (4,352 B).
    let mut arena = vec![0u8; 3000];
    let err = Engine::new(SliceStorage::new(&bytes), &mut arena, CTX).err().unwrap();
    let msg = err.to_string();
    println!("{msg}");
    match err {
        Error::Budget(PlanError::BudgetTooSmall { budget, minimum: m, context, kv_bytes, slot_bytes }) => {
            assert_eq!((budget, m, context), (3000, minimum, CTX));
            assert_eq!(kv_bytes, 2 * 5 * CTX as usize * 32 * 4, "5 layers, kv dim 32, f32 keys and values");
            assert!(slot_bytes > 0);
        }
        other => panic!("expected the planner's minimum, got {other:?}"),
    }
    assert!(msg.contains(&minimum.to_string()), "{msg}");
    // The stated minimum works (the engine pads the arena to its alignment within it).
    let mut arena = vec![0u8; minimum];
    let e = Engine::new(SliceStorage::new(&bytes), &mut arena, CTX).unwrap();
    assert!(e.plan().used_bytes() <= minimum);
}

#[test]
fn an_arena_below_the_layer_table_says_how_large_that_table_is() {
    let bytes = common::model_bytes();
    let mut arena = vec![0u8; 1000];
    let err = Engine::new(SliceStorage::new(&bytes), &mut arena, CTX).err().unwrap();
    println!("{err}");
    let table = 5 * core::mem::size_of::<spool_core::model::Layer>();
    assert_eq!(err, Error::Budget(PlanError::LayerTableTooLarge { budget: 1000, layers: 5, table_bytes: table }));
    assert!(err.to_string().contains(&format!("{table} B for 5 layers")));
}
