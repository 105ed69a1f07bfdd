//! The O(n log n) merge of `Tokenizer::encode_with` gives the ids of the O(n²) merge it
//! replaced, kept below as the reference (llama2.c's `encode`), on real and random prompts,
//! on the real vocabulary and on copies whose scores tie.

mod common;

use common::*;
use spool_core::tokenizer::{encode_scratch_words, Tokenizer};
use spool_core::{Engine, Error, SliceStorage};

/// Today's (before the heap) algorithm, step for step, through the public API.
fn reference_encode(t: &Tokenizer, text: &[u8], bos: bool) -> Vec<u32> {
    let mut out = Vec::new();
    if bos {
        out.push(t.bos());
    }
    if !text.is_empty() {
        if let Some(space) = t.lookup(b" ") {
            out.push(space);
        }
    }
    let mut cp = [0u8; 4];
    let mut len = 0;
    for (i, &byte) in text.iter().enumerate() {
        if byte & 0xC0 != 0x80 {
            len = 0;
        }
        cp[len] = byte;
        len += 1;
        if text.get(i + 1).is_some_and(|&b| b & 0xC0 == 0x80) && len < 4 {
            continue;
        }
        match t.lookup(&cp[..len]) {
            Some(id) => out.push(id),
            None => {
                for &b in &cp[..len] {
                    out.push(t.lookup(format!("<0x{b:02X}>").as_bytes()).unwrap_or(b as u32 + 3));
                }
            }
        }
        len = 0;
    }
    loop {
        let mut best: Option<(f32, u32, usize)> = None;
        for i in 0..out.len().saturating_sub(1) {
            let joined = [t.piece(out[i]), t.piece(out[i + 1])].concat();
            if let Some(id) = t.lookup(&joined) {
                let score = t.score(id);
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, id, i));
                }
            }
        }
        let Some((_, id, i)) = best else { break };
        out[i] = id;
        out.remove(i + 1);
    }
    out
}

fn fast_encode(t: &Tokenizer, text: &[u8], bos: bool) -> Vec<u32> {
    let mut out = vec![0u32; text.len() + 3];
    let mut scratch = vec![0u32; encode_scratch_words(text.len())];
    let n = t.encode_with(text, bos, &mut out, &mut scratch).unwrap();
    out.truncate(n);
    out
}

/// A xorshift generator: the prompts are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Real text: every prompt and tokenizer case of the goldens, and the README.
fn real_prompts() -> Vec<Vec<u8>> {
    let g = golden();
    let mut v: Vec<Vec<u8>> = Vec::new();
    for key in ["tokenizer_cases", "generation_cases"] {
        for c in g[key].as_array().unwrap() {
            for field in ["text", "prompt"] {
                if let Some(s) = c[field].as_str() {
                    v.push(s.as_bytes().to_vec());
                }
            }
        }
    }
    let readme = std::fs::read(repo().join("README.md")).unwrap();
    for chunk in readme.chunks(700).take(12) {
        v.push(chunk.to_vec());
    }
    v.push(Vec::new());
    v
}

/// Random prompts over pieces that merge (repeated letters tie), multi-byte and broken UTF-8.
fn random_prompts(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let alphabet: [&[u8]; 16] = [
        b"a",
        b"e",
        b"t",
        b"h",
        b" ",
        b"the",
        b"Once upon a time",
        b"aaaa",
        b"  ",
        b"\n",
        "é".as_bytes(),
        "日本".as_bytes(),
        "🙂".as_bytes(),
        b"\xff",
        b"\xe2\x96",
        b"ll",
    ];
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| {
            let parts = rng.below(40);
            (0..parts).flat_map(|_| alphabet[rng.below(alphabet.len())].to_vec()).collect()
        })
        .collect()
}

fn check_all(t: &Tokenizer, prompts: &[Vec<u8>], what: &str) {
    for (k, p) in prompts.iter().enumerate() {
        for bos in [true, false] {
            let want = reference_encode(t, p, bos);
            assert_eq!(fast_encode(t, p, bos), want, "{what} prompt {k} {:?} bos {bos}", String::from_utf8_lossy(p));
            let mut out = vec![0u32; p.len() + 3];
            let n = t.encode(p, bos, &mut out).unwrap();
            assert_eq!(&out[..n], &want[..], "{what} prompt {k}: encode");
        }
    }
}

#[test]
fn the_heap_merge_gives_the_ids_of_the_rescanning_merge() {
    let bytes = model_bytes();
    let mut arena = vec![0u8; 2 << 20];
    let engine = Engine::new(SliceStorage::new(&bytes), &mut arena, 16).unwrap();
    let t = engine.tokenizer();
    check_all(t, &real_prompts(), "real");
    check_all(t, &random_prompts(400, 0x9E37_79B9_7F4A_7C15), "random");
    // A long prompt: thousands of merges, each choice checked against the reference.
    let story: Vec<u8> = real_prompts().concat();
    assert!(story.len() > 8000);
    assert_eq!(fast_encode(t, &story, true), reference_encode(t, &story, true));
}

/// The same vocabulary with scores that tie: only three distinct values, so most best merges
/// are decided by the leftmost rule between different pieces.
#[test]
fn ties_between_different_merges_go_to_the_leftmost_pair() {
    let mut bytes = model_bytes();
    let header = spool_core::gguf::read_header(&mut SliceStorage::new(&bytes)).unwrap();
    let scores = header.scores.unwrap();
    for (levels, seed) in [(1u64, 1u64), (3, 2), (7, 3)] {
        for i in 0..scores.count {
            let at = (scores.offset + 4 * i) as usize;
            let v = -((i.wrapping_mul(seed * 2654435761) % levels) as f32);
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        let mut arena = vec![0u8; 2 << 20];
        let engine = Engine::new(SliceStorage::new(&bytes), &mut arena, 16).unwrap();
        let t = engine.tokenizer();
        check_all(t, &real_prompts(), &format!("{levels} score levels, real"));
        check_all(t, &random_prompts(150, seed), &format!("{levels} score levels, random"));
    }
}

#[test]
fn too_little_scratch_is_an_error_naming_the_size() {
    let bytes = model_bytes();
    let mut arena = vec![0u8; 2 << 20];
    let engine = Engine::new(SliceStorage::new(&bytes), &mut arena, 16).unwrap();
    let text = b"Once upon a time";
    let mut out = [0u32; 19];
    let mut scratch = vec![0u32; encode_scratch_words(text.len()) - 1];
    let r = engine.tokenizer().encode_with(text, true, &mut out, &mut scratch);
    assert!(matches!(r, Err(Error::BufferTooSmall { needed, got, .. }) if needed == 95 && got == 94), "{r:?}");
}

/// A score of NaN has no place in an ordering: the vocabulary is refused at load.
#[test]
fn a_nan_score_is_refused_at_load() {
    let mut bytes = model_bytes();
    let header = spool_core::gguf::read_header(&mut SliceStorage::new(&bytes)).unwrap();
    let at = header.scores.unwrap().offset as usize + 4 * 300;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut arena = vec![0u8; 2 << 20];
    let r = Engine::new(SliceStorage::new(&bytes), &mut arena, 16).map(|_| ());
    assert!(matches!(r, Err(Error::Malformed(m)) if m.contains("NaN")), "{r:?}");
}
