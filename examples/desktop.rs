//! A desktop program on spool-core, as a project would write it: the model read from a file
//! with positioned reads (`FileStorage`), half of it in RAM, a prefetch thread reading ahead
//! into the cache slots on a second file handle, a thread pool for the matrix-vector products
//! and this CPU's best kernels (`spool_std::engine`). Text streams as it is produced.
//!
//! ```text
//! cargo run --release -p spool-examples --example desktop -- [MODEL] [PROMPT]
//! ```

use std::io::Write;

use spool_core::{generate, PlanOptions, Sampler};
use spool_std::{FileStorage, PrefetchLoader, ThreadPool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../models/stories260K.gguf").into());
    let prompt = args.next().unwrap_or_else(|| "Once upon a time".into());

    // Two handles on the file: one for the engine, one for the prefetch thread.
    let storage = FileStorage::open(&path)?;
    let reader = storage.try_clone()?;
    // Half the file as the budget (plus room for the KV cache and the working buffers).
    let budget = std::fs::metadata(&path)?.len() as usize / 2 + 300 * 1024;
    let mut arena = spool_std::Arena::new(budget)?;
    let pool = ThreadPool::new(2);
    let context = 128;

    std::thread::scope(|scope| -> Result<(), Box<dyn std::error::Error>> {
        let loader = PrefetchLoader::spawn(scope, reader);
        let opts = PlanOptions { prefetch: 2, ..PlanOptions::default() };
        let mut engine = spool_std::engine::with_loader(storage, loader, &mut arena[..budget], context, opts)
            .map_err(|e| format!("{path}: {e}"))?;
        engine.set_executor(&pool);

        let mut tokens = [0u32; 256];
        let mut scratch = vec![0u32; spool_core::tokenizer::encode_scratch_words(prompt.len())];
        let n = engine.tokenizer().encode_with(prompt.as_bytes(), true, &mut tokens, &mut scratch)?;

        // llama.cpp-style sampling: temperature, top-k, min-p and a repetition penalty over the
        // last 64 tokens (the window is ours to lend).
        let mut window = [0u32; 64];
        let mut sampler =
            Sampler::new(0.8, 0.95, 42).with_top_k(40).with_min_p(0.05).with_repetition_penalty(1.1, &mut window);
        let mut out = std::io::stdout().lock();
        let outcome = generate(&mut engine, &mut sampler, &tokens[..n], 64, |ev| {
            // Raw bytes: a multi-byte character may come in pieces; a terminal assembles them.
            let _ = out.write_all(ev.text);
            let _ = out.flush();
        })?;
        let stats = engine.stats();
        writeln!(
            out,
            "\n[{} positions, stop {:?}, kernels {}, {} cache hits, {} misses, {} read ahead]",
            outcome.positions,
            outcome.stop,
            engine.kernels().path().name(),
            stats.hits,
            stats.misses,
            stats.prefetched
        )?;
        Ok(())
    })
}
