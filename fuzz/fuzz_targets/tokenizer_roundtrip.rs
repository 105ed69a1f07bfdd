//! The tokenizer of stories260K: every text encodes to in-vocabulary ids that decode back to the
//! same bytes (BOS, the dummy space and byte fallback included).
#![no_main]

use std::cell::OnceCell;

use libfuzzer_sys::fuzz_target;
use spool_core::{Engine, SliceStorage};

thread_local! {
    static ENGINE: OnceCell<&'static Engine<'static, SliceStorage<'static>>> = const { OnceCell::new() };
}

fuzz_target!(|text: &[u8]| {
    if text.len() > 1024 {
        return; // encoding is quadratic today (defect 8 of issue 7): keep execs fast
    }
    ENGINE.with(|cell| {
        let engine = cell.get_or_init(|| {
            let arena: &'static mut [u8] = Box::leak(vec![0u8; 2 << 20].into_boxed_slice());
            Box::leak(Box::new(Engine::new(SliceStorage::new(spool_fuzz::STORIES), arena, 16).unwrap()))
        });
        let tok = engine.tokenizer();
        let mut ids = vec![0u32; text.len() + 3];
        let n = tok.encode(text, true, &mut ids).unwrap();
        assert!(n <= text.len() + 2);
        assert_eq!(ids[0], tok.bos());
        let mut back = Vec::new();
        for w in ids[..n].windows(2) {
            assert!(w[1] < tok.vocab(), "id {} outside the vocabulary", w[1]);
            back.extend_from_slice(tok.decode(w[0], w[1]));
        }
        assert_eq!(back, text, "round trip of {:?}: ids {:?}", String::from_utf8_lossy(text), &ids[..n]);
    });
});
