//! Bad input gives an error that says what is wrong, never a panic.

mod common;

use common::*;
use spool_core::{Engine, Error, Faults, FaultyStorage, PlanError, SliceStorage};

#[test]
fn a_budget_below_the_minimum_is_an_error_naming_the_minimum() {
    let bytes = model_bytes();
    let mut arena = vec![0u8; 300 << 10];
    let err = Engine::new(SliceStorage::new(&bytes), &mut arena, 256).err().unwrap();
    let Error::Budget(PlanError::BudgetTooSmall { budget, minimum, context, kv_bytes, .. }) = err else {
        panic!("wrong error: {err}");
    };
    assert_eq!((budget, context, kv_bytes), (300 << 10, 256, 320 << 10));
    let msg = err.to_string();
    assert!(msg.starts_with("budget 300 KiB is below the "), "{msg}");
    assert!(msg.contains(&format!("{} KiB minimum for this model at context 256", minimum.div_ceil(1024))), "{msg}");
    // The minimum it names works.
    let mut arena = vec![0u8; minimum];
    assert!(Engine::new(SliceStorage::new(&bytes), &mut arena, 256).is_ok());
    // Through the CLI too.
    let mut out = Vec::new();
    let mut err_out = Vec::new();
    let args: Vec<String> =
        ["run", "-m", &model_path(), "--ram", "300K", "--steps", "256"].iter().map(|s| s.to_string()).collect();
    assert_eq!(spool_sim::main_with(&args, &mut out, &mut err_out), 2);
    assert!(String::from_utf8_lossy(&err_out).contains("is below the"));
}

#[test]
fn every_truncation_of_the_file_is_an_error_not_a_panic() {
    let bytes = model_bytes();
    let mut arena = vec![0u8; 2 << 20];
    // Every cut inside the header, metadata and tensor table, then a stride through the data.
    let cuts = (0..15_000).chain((15_000..bytes.len()).step_by(4093));
    for cut in cuts {
        let r = Engine::new(SliceStorage::new(&bytes[..cut]), &mut arena, 16);
        assert!(r.is_err(), "truncated at {cut} loaded");
    }
}

#[test]
fn corrupted_headers_never_panic() {
    let bytes = model_bytes();
    let mut arena = vec![0u8; 2 << 20];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bad = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % 14_200) as usize;
            bad[at] = next() as u8;
        }
        // Either it loads (a harmless byte) and runs, or it says why it cannot.
        if let Ok(mut engine) = Engine::new(SliceStorage::new(&bad), &mut arena, 8) {
            let _ = engine.forward(1, 0);
        }
    }
}

#[test]
fn wrong_magic_and_version_are_named() {
    let mut bytes = model_bytes();
    let mut arena = vec![0u8; 2 << 20];
    bytes[0] = b'X';
    let e = Engine::new(SliceStorage::new(&bytes), &mut arena, 8).err().unwrap();
    assert!(matches!(e, Error::BadMagic(_)), "{e}");
    bytes[0] = b'G';
    bytes[4] = 9;
    let e = Engine::new(SliceStorage::new(&bytes), &mut arena, 8).err().unwrap();
    assert!(e.to_string().contains("GGUF version 9 is not supported"), "{e}");
}

#[test]
fn an_io_error_or_a_short_fill_mid_run_is_returned_and_the_next_run_works() {
    let bytes = model_bytes();
    for fail_at in [1, 3, 10, 40, 200, 500] {
        let mut arena = vec![0u8; 450 << 10];
        let faults = if fail_at % 2 == 0 {
            Faults { short_fill_at: Some(fail_at), ..Faults::default() }
        } else {
            Faults { fail_at: Some(fail_at), ..Faults::default() }
        };
        let storage = FaultyStorage::new(SliceStorage::new(&bytes), faults);
        let result = Engine::new(storage, &mut arena, 16).and_then(|mut e| {
            for pos in 0..16 {
                e.forward(1, pos)?;
            }
            Ok(())
        });
        assert!(
            matches!(result, Err(Error::Io { kind: embedded_io::ErrorKind::Interrupted, .. })),
            "fail_at {fail_at}: {result:?}"
        );
    }
    // A run on healthy storage after the failures gives the reference tokens.
    let r = spool_sim::run(&spool_sim::RunOptions { ram: Some(450 << 10), ..case_options(&case("greedy_once_64")) })
        .unwrap();
    assert_eq!(r.token_ids, ids(&case("greedy_once_64")["token_ids"]));
}

#[test]
fn out_of_range_tokens_and_positions_are_errors() {
    let bytes = model_bytes();
    let mut arena = vec![0u8; 2 << 20];
    let mut engine = Engine::new(SliceStorage::new(&bytes), &mut arena, 8).unwrap();
    assert!(matches!(engine.forward(512, 0), Err(Error::TokenOutOfRange { token: 512, vocab: 512 })));
    assert!(matches!(engine.forward(1, 8), Err(Error::ContextFull { pos: 8, context: 8 })));
}

#[test]
fn flipped_bits_from_storage_never_panic() {
    let bytes = model_bytes();
    let mut arena = vec![0u8; 450 << 10];
    for seed in 1..20 {
        let faults = Faults { flip_ppm: 50_000, seed, ..Faults::default() };
        let storage = FaultyStorage::new(SliceStorage::new(&bytes), faults);
        // Either it loads and runs on corrupt numbers, or it says why it cannot.
        if let Ok(mut e) = Engine::new(storage, &mut arena, 16) {
            for pos in 0..4 {
                let _ = e.forward(1, pos);
            }
        }
    }
}
