//! Load plus three tokens on a mutated stories260K (seeded with the real file), streaming
//! through a 700 KiB arena (about half the model).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool_core::{generate, Engine, Sampler, SliceStorage};

fuzz_target!(|data: &[u8]| {
    let mut arena = vec![0u8; 700 << 10];
    let Ok(mut engine) = Engine::new(SliceStorage::new(data), &mut arena, 8) else { return };
    let mut prompt = [0u32; 8];
    let Ok(n) = engine.tokenizer().encode(b"Once", true, &mut prompt) else { return };
    let mut sampler = Sampler::new(0.0, 0.9, 1);
    let _ = generate(&mut engine, &mut sampler, &prompt[..n], (n + 3) as u32, |_| {});
});
