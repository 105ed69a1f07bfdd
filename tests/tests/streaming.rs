//! The streaming engine: every policy, prefetch distance, storage and prefill chunking gives
//! the same tokens, and the bytes each reads are the bytes the plan says.

mod common;

use common::*;
use embedded_io::ErrorType;
use spool_core::{Engine, Error, PlanOptions, Policy, SliceStorage, Storage};
use spool_sim::{Backend, RunOptions, RunReport};

fn model_budgets() -> (usize, usize) {
    let mut storage = spool_std::FileStorage::open(model_path()).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    (model_minimum(&model, 3), spool_sim::full_budget(&model, 64).unwrap())
}

/// The smallest budget that fits `slots` slots at context 64.
fn model_minimum(model: &spool_core::ModelInfo, slots: u32) -> usize {
    let opts = PlanOptions { prefetch: slots - 1, ..PlanOptions::default() };
    match spool_core::plan_with(model, 64, 0, opts) {
        Err(spool_core::PlanError::BudgetTooSmall { minimum, .. }) => minimum,
        other => panic!("{other:?}"),
    }
}

fn sampled(ram: usize) -> RunOptions {
    RunOptions { ram: Some(ram), steps: 64, ..case_options(&case("topp_once_seed42_256")) }
}

fn run(opts: &RunOptions) -> RunReport {
    spool_sim::run(opts).unwrap_or_else(|e| panic!("{opts:?}: {e}"))
}

#[test]
fn tokens_are_identical_across_policies_budgets_prefetch_and_storage() {
    let (min, full) = model_budgets();
    let want = &ids(&case("topp_once_seed42_256")["token_ids"])[..65];
    let budgets = [min, min + 150_000, (min + full) / 2, full - 60_000, full];
    for policy in Policy::ALL {
        for &ram in &budgets {
            for prefetch in [0, 1, 2] {
                for backend in [Backend::File, Backend::Mmap, Backend::Flash] {
                    let opts = RunOptions { policy, prefetch, backend, ..sampled(ram) };
                    let r = run(&opts);
                    assert_eq!(
                        &r.token_ids[..],
                        want,
                        "{} at {ram} B, prefetch {prefetch}, {}",
                        policy.name(),
                        backend.name()
                    );
                }
            }
        }
    }
}

#[test]
fn prefill_chunking_does_not_change_tokens_or_logits() {
    let (min, _) = model_budgets();
    let want = ids(&case("greedy_lily_tom_128")["token_ids"]);
    for chunk in [1, 2, 3, 8, 16] {
        let opts =
            RunOptions { ram: Some(min + 100_000), prefill_chunk: chunk, ..case_options(&case("greedy_lily_tom_128")) };
        assert_eq!(run(&opts).token_ids, want, "chunk {chunk}");
    }
    // The logits of a batched chunk's last position equal token-by-token logits bit for bit.
    let bytes = model_bytes();
    let fed = [1u32, 403, 407, 261, 378, 432, 383, 286];
    let mut a1 = vec![0u8; 2 << 20];
    let opts = PlanOptions { prefill_chunk: 1, ..PlanOptions::default() };
    let mut one =
        Engine::with_loader(SliceStorage::new(&bytes), spool_core::SyncLoader::new(), &mut a1, 16, opts).unwrap();
    for (p, &t) in fed.iter().enumerate() {
        one.forward(t, p as u32).unwrap();
    }
    let mut a2 = vec![0u8; 2 << 20];
    let mut batch = Engine::new(SliceStorage::new(&bytes), &mut a2, 16).unwrap();
    let logits = batch.forward_batch(&fed, 0).unwrap();
    assert_eq!(logits, one.logits());
}

#[test]
fn pin_reads_within_one_unit_of_the_target_at_every_budget() {
    let (min, full) = model_budgets();
    for ram in [min, min + 40_000, min + 150_000, (min + full) / 2, full - 60_000] {
        let r = run(&RunOptions { prefetch: 2, ..sampled(ram) });
        let p = &r.plan;
        // The target, floored at the one embedding row every token reads when the table
        // is not pinned.
        let row = if p.embd_pinned_at.is_some() { 0 } else { p.embd_row_bytes as i64 };
        let target = (p.touched_bytes_per_token as i64 - (ram as i64 - p.working_set_bytes() as i64)).max(row);
        let got = r.bytes_read_per_token() as i64;
        assert!(got >= target, "{ram}: read {got} below the target {target}?");
        assert!(got - target <= p.slot_bytes as i64 + 64 * p.units.len() as i64, "{ram}: read {got}, target {target}");
        assert_eq!(got as u64, p.streamed_bytes_per_token(), "{ram}: measured equals the plan");
    }
}

#[test]
fn pin_reads_no_more_than_the_dynamic_policies_and_lru_reads_everything_it_cannot_hold() {
    let (min, full) = model_budgets();
    for ram in [min + 40_000, (min + full) / 2, full - 60_000] {
        let pin = run(&sampled(ram));
        for policy in [Policy::Lru, Policy::LruProtect, Policy::Mru] {
            let other = run(&RunOptions { policy, ..sampled(ram) });
            assert!(pin.decode_bytes <= other.decode_bytes, "{} at {ram}", policy.name());
        }
        // A cyclic scan larger than the cache: LRU misses on every unit of every token.
        let lru = run(&RunOptions { policy: Policy::Lru, ..sampled(ram) });
        let all_units: u64 =
            lru.plan.units.iter().map(|u| u.bytes as u64).sum::<u64>() + lru.plan.embd_row_bytes as u64;
        assert_eq!(lru.bytes_read_per_token() as u64, all_units, "lru at {ram}");
        assert_eq!(lru.cache.hits, 0);
        // MIN is the optimum for the slots it has: never more misses than LRU or MRU.
        let min_policy = run(&RunOptions { policy: Policy::Min, ..sampled(ram) });
        let mru = run(&RunOptions { policy: Policy::Mru, ..sampled(ram) });
        assert!(
            min_policy.cache.misses <= mru.cache.misses && min_policy.cache.misses <= lru.cache.misses,
            "min at {ram}"
        );
    }
}

#[test]
fn a_prompt_in_one_chunk_reads_each_streamed_byte_once() {
    let (min, _) = model_budgets();
    let opts = RunOptions { ram: Some(min + 150_000), steps: 64, ..case_options(&case("greedy_lily_tom_128")) };
    let r = run(&opts);
    let p = &r.plan;
    let prompt = r.prefill_positions as u64;
    assert!(prompt as u32 <= p.prefill_chunk(), "the prompt fits one chunk");
    let units: u64 = p.units.iter().filter(|u| u.pinned_at.is_none()).map(|u| u.bytes as u64).sum();
    assert_eq!(r.prefill_bytes, units + prompt * p.embd_row_bytes as u64);
    // Token by token, the same prompt reads every streamed unit once per position.
    // (Its plan pins a little more: one position's activations take less of the budget.)
    let r1 = run(&RunOptions { prefill_chunk: 1, ..opts });
    let units1: u64 = r1.plan.units.iter().filter(|u| u.pinned_at.is_none()).map(|u| u.bytes as u64).sum();
    assert_eq!(r1.prefill_bytes, prompt * (units1 + p.embd_row_bytes as u64));
}

/// A storage that fails on its k-th read.
struct Failing<S> {
    inner: S,
    reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    fail_at: usize,
}

impl<S: Storage> ErrorType for Failing<S> {
    type Error = embedded_io::ErrorKind;
}

impl<S: Storage> Storage for Failing<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == self.fail_at {
            return Err(embedded_io::ErrorKind::Interrupted);
        }
        self.inner.read_at(offset, buf).map_err(|_| embedded_io::ErrorKind::Other)
    }
}

#[test]
fn a_failed_read_is_an_error_on_the_sync_and_the_prefetch_paths() {
    let (min, _) = model_budgets();
    let path = model_path();
    let file = || spool_std::FileStorage::open(&path).unwrap();
    for prefetch in [0, 1, 2] {
        for fail_at in [5, 60, 400] {
            let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let failing = |s| Failing { inner: s, reads: reads.clone(), fail_at };
            let opts = RunOptions { prefetch, ..sampled(min + 40_000) };
            let err = spool_sim::run_on(failing(file()), failing(file()), &opts).err();
            let msg = err.unwrap_or_else(|| panic!("prefetch {prefetch}, fail at {fail_at}: no error"));
            assert!(msg.contains("failed (Interrupted)"), "{msg}");
        }
        // Healthy storage afterwards: the reference tokens.
        let r = run(&RunOptions { prefetch, ..sampled(min + 40_000) });
        assert_eq!(&r.token_ids[..], &ids(&case("topp_once_seed42_256")["token_ids"])[..65]);
    }
    // The core path: the failing read's error, and the engine is not left claiming the unit.
    let bytes = model_bytes();
    let mut arena = vec![0u8; min + 40_000];
    let storage = spool_core::FaultyStorage::fail_at(SliceStorage::new(&bytes), 200);
    let mut e = Engine::new(storage, &mut arena, 64).unwrap();
    let mut failed = false;
    for pos in 0..8 {
        match e.forward(1, pos) {
            Err(Error::Io { .. }) => failed = true,
            Err(other) => panic!("{other}"),
            Ok(_) => {}
        }
    }
    assert!(failed);
}

#[test]
fn the_flash_clock_reaches_the_bound_with_prefetch() {
    // stories260K at about half its size, context 128, 20 MB/s, 50 us, prefetch 2: I/O bound.
    let opts = RunOptions {
        model: model_path(),
        prompt: "Once upon a time".into(),
        steps: 128,
        temperature: 0.0,
        ram: Some(600 << 10),
        backend: Backend::Flash,
        prefetch: 2,
        ..RunOptions::default()
    };
    let r = run(&opts);
    let sim = r.sim.unwrap();
    // The virtual clock never beats the physical bound, and prefetch keeps it close.
    assert!(sim.ratio() >= 0.999, "{sim:?}");
    assert!(sim.ratio() < 1.05, "{sim:?}");
}

/// The library's `TokenEvent::text` is the raw bytes: the prompt's byte-fallback pieces come
/// back as the bytes of "ü" and "🍕" (which run.c's filter would drop), so the prefill events
/// spell the prompt exactly.
#[test]
fn token_events_carry_raw_bytes_byte_fallback_included() {
    let file = std::fs::read(model_path()).unwrap();
    let mut arena = vec![0u8; 4 << 20];
    let mut engine = Engine::new(SliceStorage::new(&file), &mut arena, 64).unwrap();
    let text = "Tom und Jürgen 🍕".as_bytes();
    let mut prompt = [0u32; 64];
    let mut scratch = vec![0u32; spool_core::tokenizer::encode_scratch_words(text.len())];
    let n = engine.tokenizer().encode_with(text, true, &mut prompt, &mut scratch).unwrap();
    let mut sampler = spool_core::Sampler::new(0.0, 0.9, 42);
    let (mut prefill, mut lone) = (Vec::new(), 0);
    spool_core::generate(&mut engine, &mut sampler, &prompt[..n], n as u32 + 4, |ev| {
        if ev.phase == spool_core::Phase::Prefill && (ev.pos as usize) < n - 1 {
            prefill.extend_from_slice(ev.text);
            lone += usize::from(ev.text.len() == 1 && !ev.text[0].is_ascii());
        }
    })
    .unwrap();
    assert_eq!(prefill, text, "{:?}", String::from_utf8_lossy(&prefill));
    assert!(lone >= 2, "the prompt should use byte-fallback pieces on this 512-token vocabulary");
}
