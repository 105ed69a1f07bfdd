//! `spool_std::faults` and `spool-sim run --faults`: every fault kind, on the synchronous path
//! and the prefetch path (prefetch 0 and 2), on file and mmap storage through the library and on
//! every backend through the CLI. A fault ends the run with an error within a deadline (a
//! hang fails the test), no half-loaded slot is ever used as ready (the next healthy run in the
//! same engine, or a new engine in the same dirty arena, gives the golden tokens), and a
//! latency spike changes no token.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use spool_core::cache::Loader;
use spool_core::tokenizer::encode_scratch_words;
use spool_core::{generate, Engine, PlanOptions, Policy, Sampler, Storage, SyncLoader};
use spool_std::faults::{FaultInjector, FaultSpec};
use spool_std::{FileStorage, MmapStorage, PrefetchLoader};

/// A run that takes longer than this is a hang (a healthy one takes well under a second).
const DEADLINE: Duration = Duration::from_secs(30);
/// About a third of stories260K: the weights stream every token.
const RAM: usize = 450 << 10;
const CTX: u32 = 64;

fn golden_ids() -> Vec<u32> {
    ids(&case("greedy_once_64")["token_ids"])
}

/// Runs `f` on its own thread and fails the test if it does not end within [`DEADLINE`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no result within {DEADLINE:?} (a hang)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(t.join().err().unwrap_or_else(|| Box::new("no result")))
        }
    }
}

/// greedy_once_64 on `engine`: the fed prompt's first token, then every next token.
fn greedy<'a, S: Storage, L: Loader<'a>>(engine: &mut Engine<'a, S, L>) -> Result<Vec<u32>, String> {
    let text = b"Once upon a time";
    let mut prompt = vec![0u32; text.len() + 3];
    let mut scratch = vec![0u32; encode_scratch_words(text.len())];
    let n = engine.tokenizer().encode_with(text, true, &mut prompt, &mut scratch).map_err(|e| e.to_string())?;
    let mut ids = vec![prompt[0]];
    let mut sampler = Sampler::new(0.0, 0.9, 42);
    generate(engine, &mut sampler, &prompt[..n], 64, |ev| ids.push(ev.next)).map_err(|e| e.to_string())?;
    Ok(ids)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    File,
    Mmap,
}

/// A run's tokens or its error.
type Ids = Result<Vec<u32>, String>;

/// What a faulted engine did, then what the healthy runs after it gave.
#[derive(Debug)]
struct Trial {
    /// The faulted run: its tokens, its error, or the panic it raised.
    faulted: Result<Vec<u32>, String>,
    /// A second run in the same engine (None if the first left it unusable: a panic, or a
    /// reader thread lost).
    same_engine: Option<Result<Vec<u32>, String>>,
    /// A healthy storage and a new engine in the same (dirty) arena.
    same_arena: Vec<u32>,
    /// Reads the injector counted.
    reads: u64,
}

/// One engine over `spec`-faulted storage in `arena`, run twice; `rerun` says whether a
/// second run in the same engine is meaningful (the fault fires once and leaves the file
/// intact).
fn faulted<S: Storage + Send>(
    storage: S,
    reader: S,
    injector: &FaultInjector,
    arena: &mut [u8],
    opts: PlanOptions,
    rerun: bool,
) -> (Ids, Option<Ids>) {
    let both = |e: &mut dyn FnMut() -> Result<Vec<u32>, String>| {
        let first = e();
        let second = (rerun && !first.as_ref().is_err_and(|m| m.contains("loader lost"))).then(&mut *e);
        (first, second)
    };
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::thread::scope(|scope| {
            let main = injector.wrap(storage);
            if opts.prefetch > 0 {
                let loader = PrefetchLoader::spawn(scope, injector.wrap(reader));
                match Engine::with_loader(main, loader, arena, CTX, opts) {
                    Ok(mut e) => both(&mut || greedy(&mut e)),
                    Err(e) => (Err(e.to_string()), None),
                }
            } else {
                match Engine::with_loader(main, SyncLoader::new(), arena, CTX, opts) {
                    Ok(mut e) => both(&mut || greedy(&mut e)),
                    Err(e) => (Err(e.to_string()), None),
                }
            }
        })
    }));
    caught.unwrap_or_else(|p| {
        let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
        (Err(format!("panic: {msg}")), None)
    })
}

fn trial(spec: &str, backend: Backend, prefetch: u32) -> Trial {
    trial_at(spec, backend, PlanOptions { prefetch, ..PlanOptions::default() }, RAM)
}

/// Half the model streamed through many slots under MRU, which keeps the slots filled on the
/// first pass: a slot whose read failed but that stayed claimed by its unit would be used on
/// the next pass.
fn mru_cache() -> (PlanOptions, usize) {
    let mut storage = FileStorage::open(model_path()).unwrap();
    let model = spool_core::ModelInfo::load(&mut storage).unwrap();
    let opts = PlanOptions { policy: Policy::Mru, ..PlanOptions::default() };
    (opts, spool_sim::full_budget_with(&model, CTX, opts).unwrap() * 2 / 3)
}

fn trial_at(spec: &str, backend: Backend, opts: PlanOptions, ram: usize) -> Trial {
    let spec = FaultSpec::parse(spec).unwrap();
    let rerun = spec.shrink_at.is_none() && spec.panic_at.is_none();
    within(&format!("{spec:?} {backend:?} {opts:?} at {ram} B"), move || {
        let injector = FaultInjector::new(spec, Path::new(&model_path())).unwrap();
        let mut arena = vec![0u8; ram];
        let (faulted, same_engine) = match backend {
            Backend::File => {
                let file = FileStorage::open(injector.path()).unwrap();
                let reader = file.try_clone().unwrap();
                faulted(file, reader, &injector, &mut arena, opts, rerun)
            }
            Backend::Mmap => {
                let map = MmapStorage::open(injector.path()).unwrap();
                faulted(map.clone(), map, &injector, &mut arena, opts, rerun)
            }
        };
        let reads = injector.reads();
        drop(injector);
        let healthy = FileStorage::open(model_path()).unwrap();
        let mut e = Engine::with_loader(healthy, SyncLoader::new(), &mut arena, CTX, opts).unwrap();
        let same_arena = greedy(&mut e).unwrap();
        Trial { faulted, same_engine, same_arena, reads }
    })
}

/// Reads an engine makes before its first token (header, tokenizer, pinned weights).
fn load_reads(prefetch: u32) -> u64 {
    load_reads_at(PlanOptions { prefetch, ..PlanOptions::default() }, RAM)
}

fn load_reads_at(opts: PlanOptions, ram: usize) -> u64 {
    let injector = FaultInjector::new(FaultSpec::default(), Path::new(&model_path())).unwrap();
    let mut arena = vec![0u8; ram];
    let storage = injector.wrap(FileStorage::open(injector.path()).unwrap());
    Engine::with_loader(storage, SyncLoader::new(), &mut arena, CTX, opts).unwrap();
    injector.reads()
}

/// Reads of parsing the model alone (the CLI does it once before it makes the engine).
fn parse_reads() -> u64 {
    let injector = FaultInjector::new(FaultSpec::default(), Path::new(&model_path())).unwrap();
    let mut storage = injector.wrap(FileStorage::open(injector.path()).unwrap());
    spool_core::ModelInfo::load(&mut storage).unwrap();
    injector.reads()
}

/// Read numbers to fault: during the load, on the first token and deep in the decode.
fn read_points(prefetch: u32) -> [u64; 3] {
    let load = load_reads(prefetch);
    [load / 2, load + 3, load + 2000]
}

fn check_error(t: &Trial, what: &str, expect: &[&str]) {
    let e = t.faulted.as_ref().err().unwrap_or_else(|| panic!("{what}: no error ({} reads)", t.reads));
    assert!(expect.iter().any(|x| e.contains(x)), "{what}: {e}");
    if let Some(again) = &t.same_engine {
        assert_eq!(again.as_ref().unwrap(), &golden_ids(), "{what}: the same engine's next run");
    }
    assert_eq!(t.same_arena, golden_ids(), "{what}: a new engine in the same arena");
}

#[test]
fn an_error_or_a_short_fill_ends_the_run_and_the_same_engine_then_gives_the_golden_tokens() {
    let (mru, mru_ram) = mru_cache();
    for prefetch in [0, 2] {
        for (opts, ram) in
            [(PlanOptions { prefetch, ..PlanOptions::default() }, RAM), (PlanOptions { prefetch, ..mru }, mru_ram)]
        {
            let load = load_reads_at(opts, ram);
            for k in [load / 2, load + 3, load + 40, load + 300] {
                for backend in [Backend::File, Backend::Mmap] {
                    for kind in ["error-at", "short-fill"] {
                        let what = format!("{kind}={k} {backend:?} {opts:?} at {ram} B");
                        let t = trial_at(&format!("{kind}={k}"), backend, opts, ram);
                        check_error(&t, &what, &["failed (Interrupted)"]);
                        if k > load {
                            assert!(t.same_engine.is_some(), "{what}: the engine must survive a failed read");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_seeded_error_rate_ends_the_run_with_an_error() {
    for prefetch in [0, 2] {
        for seed in [1, 2, 3] {
            let what = format!("error-rate=0.002,seed={seed} prefetch {prefetch}");
            let t = trial(&format!("error-rate=0.002,seed={seed}"), Backend::File, prefetch);
            let e = t.faulted.as_ref().err().unwrap_or_else(|| panic!("{what}: no error in {} reads", t.reads));
            assert!(e.contains("failed (Interrupted)"), "{what}: {e}");
            assert_eq!(t.same_arena, golden_ids(), "{what}: a new engine in the same arena");
        }
    }
}

#[test]
fn a_file_shrinking_for_real_is_an_error_and_the_arena_then_gives_the_golden_tokens() {
    for prefetch in [0, 2] {
        for k in read_points(prefetch) {
            for backend in [Backend::File, Backend::Mmap] {
                let what = format!("shrink-at={k} {backend:?} prefetch {prefetch}");
                let t = trial(&format!("shrink-at={k}"), backend, prefetch);
                check_error(&t, &what, &["storage read", "truncated", "loader lost"]);
            }
        }
    }
}

#[test]
fn a_reader_panic_is_loader_lost_on_the_reader_thread_and_a_panic_on_the_callers() {
    for prefetch in [0, 2] {
        let load = load_reads(prefetch);
        let mut lost = 0;
        for k in [load / 2, load + 3, load + 500, load + 1000, load + 2000] {
            let what = format!("panic-at={k} prefetch {prefetch}");
            let t = trial(&format!("panic-at={k}"), Backend::File, prefetch);
            // During the load, or on the engine's own handle (embedding rows), the caller
            // panics; on the reader thread the panic is caught there and the slot is lost.
            let expect: &[&str] = if prefetch > 0 && k > load {
                &["loader lost", "panic: storage reader panic"]
            } else {
                &["panic: storage reader panic"]
            };
            check_error(&t, &what, expect);
            lost += t.faulted.as_ref().unwrap_err().contains("loader lost") as u32;
        }
        // Past the load nearly every read is the reader thread's.
        assert_eq!(lost > 0, prefetch > 0, "prefetch {prefetch}: {lost} lost loaders");
    }
}

#[test]
fn a_bit_flip_is_silent_and_never_outlives_its_engine() {
    for prefetch in [0, 2] {
        for k in read_points(prefetch) {
            let what = format!("flip={k} prefetch {prefetch}");
            let t = trial(&format!("flip={k}"), Backend::File, prefetch);
            // A flip may give other tokens, or an error (a flipped length), but no hang or panic.
            if let Err(e) = &t.faulted {
                assert!(!e.starts_with("panic"), "{what}: {e}");
            }
            assert_eq!(t.same_arena, golden_ids(), "{what}: a new engine in the same arena");
        }
    }
}

#[test]
fn a_latency_spike_changes_no_token() {
    for prefetch in [0, 2] {
        for k in read_points(prefetch) {
            for backend in [Backend::File, Backend::Mmap] {
                let what = format!("latency=150@{k} {backend:?} prefetch {prefetch}");
                let start = Instant::now();
                let t = trial(&format!("latency=150@{k}"), backend, prefetch);
                assert!(start.elapsed() >= Duration::from_millis(150), "{what}: the spike did not happen");
                assert_eq!(t.faulted.as_ref().unwrap(), &golden_ids(), "{what}");
                assert_eq!(t.same_engine.unwrap().unwrap(), golden_ids(), "{what}: second run");
            }
        }
    }
}

/// Runs the real binary with `--faults` under the deadline; returns its exit code and stderr.
fn cli(faults: &str, storage: &str, prefetch: u32) -> (Option<i32>, String, String) {
    cli_with(faults, storage, prefetch, &[])
}

fn cli_with(faults: &str, storage: &str, prefetch: u32, more: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spool-sim-cli"))
        .args(["run", "-m", &model_path(), "-p", "Once upon a time", "--steps", "64", "--temp", "0", "--ram", "450K"])
        .args(["--storage", storage, "--prefetch", &prefetch.to_string(), "--faults", faults, "--json"])
        .args(more)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("spool-sim run --faults {faults} --storage {storage}: no exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_injects_faults_on_every_backend_with_and_without_prefetch() {
    let k = load_reads(2) + 40;
    for storage in ["file", "mmap", "flash"] {
        for prefetch in [0, 2] {
            let what = format!("--storage {storage} --prefetch {prefetch}");
            let (code, _, err) = cli(&format!("error-at={k}"), storage, prefetch);
            // Exit 2 with a message (the CLI's error exit), not 101 (a panic) or a signal.
            assert_eq!(code, Some(2), "{what}: {err}");
            assert!(err.contains("failed (Interrupted)"), "{what}: {err}");
            let (code, _, err) = cli(&format!("shrink-at={k}"), storage, prefetch);
            assert_eq!(code, Some(2), "{what}: {err}");
            assert!(err.contains("storage read") || err.contains("loader lost"), "{what}: {err}");
            let (code, out, err) = cli(&format!("latency=100@{k}"), storage, prefetch);
            assert_eq!(code, Some(0), "{what}: {err}");
            let json: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(ids(&json["token_ids"]), golden_ids(), "{what}: latency changed the tokens");
        }
    }
    let (code, _, err) = cli("latency=5", "file", 0);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`latency=5`") && err.contains("MS@K"), "{err}");
}

#[test]
fn verify_catches_an_injected_bit_flip_on_both_paths() {
    let sidecar = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{}.crc", std::process::id()));
    let sidecar = sidecar.to_str().unwrap();
    let mut out = Vec::new();
    let code = spool_sim::main_with(
        &["checksum".into(), "-m".into(), model_path(), "-o".into(), sidecar.into()],
        &mut out,
        &mut Vec::new(),
    );
    assert_eq!(code, 0);
    // Past the CLI's load (its own parse of the model, then the engine's): into the weights.
    let k = parse_reads() + load_reads(2) + 40;
    for prefetch in [0, 2] {
        let (code, _, err) = cli_with(&format!("flip={k}"), "file", prefetch, &["--verify", sidecar]);
        assert_eq!(code, Some(2), "prefetch {prefetch}: {err}");
        assert!(err.contains("--verify:") && err.contains("corrupt"), "prefetch {prefetch}: {err}");
    }
    std::fs::remove_file(sidecar).unwrap();
}
