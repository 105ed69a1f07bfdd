//! Byte-level BPE reads malformed UTF-8 as llama.cpp does: its tokenizer decodes the text to
//! code points (a byte that does not start a well-formed sequence is U+FFFD) and encodes them
//! back to UTF-8 before the byte-level pieces, so a malformed byte is U+FFFD's three bytes and an
//! overlong sequence its shortest form. The expected ids are llama.cpp's: for each text written
//! to P, `llama-tokenize -m tests/data/vocab/ggml-vocab-V.gguf -f P --ids --no-bos
//! --no-parse-special` (the peer build in /work/peer/llama.cpp/bin).

mod common;

use common::*;
use spool_core::tokenizer::Tokenizer;

/// The texts, each with some bytes that are not well-formed UTF-8.
const TEXTS: [&[u8]; 8] = [
    b"a\xffb caf\xe9 \xe2\x82 ok",
    b"\xff",
    b"\xff\xff\xfe",
    b"\xc3(\x80x",
    b"Hello \xf0\x9f\x98 world\xe2\x82\xac \xed\xa0\x80!",
    b" \x80\x80 12\xff34 ",
    b"\xf0(\x8c( end",
    b"\xe2\x82\xac\xc0\xaf ab",
];

/// llama.cpp's ids for each text, per vocabulary.
#[rustfmt::skip]
const EXPECTED: [(&str, [&[u32]; 8]); 4] = [
    ("llama-bpe", [&[64, 5809, 65, 30203, 5809, 220, 10178, 5509], &[5809], &[58432], &[5809, 7, 5809, 87],
        &[9906, 220, 58432, 1917, 15406, 10997, 64319, 0], &[220, 10178, 220, 717, 5809, 1958, 220],
        &[5809, 7, 5809, 7, 842], &[15406, 14, 671]]),
    ("qwen2", [&[64, 5691, 65, 29103, 5691, 220, 9973, 5394], &[5691], &[57332], &[5691, 7, 5691, 87],
        &[9707, 220, 57332, 1879, 15056, 10764, 63219, 0], &[220, 9973, 220, 16, 17, 5691, 18, 19, 220],
        &[5691, 7, 5691, 7, 835], &[15056, 14, 668]]),
    ("gpt-2", [&[64, 4210, 65, 19945, 4210, 220, 6353, 12876], &[4210], &[48585], &[4210, 7, 4210, 87],
        &[15496, 220, 48585, 995, 26391, 220, 169, 254, 222, 0], &[220, 6353, 1105, 4210, 2682, 220],
        &[4210, 7, 4210, 7, 886], &[26391, 14, 450]]),
    ("mpt", [&[66, 21478, 67, 15660, 21478, 16141, 19675, 21478, 8718], &[21478], &[42481, 21478],
        &[21478, 9, 21478, 89], &[12092, 16141, 19675, 42481, 1533, 14507, 25811, 243, 211, 2],
        &[16141, 19675, 21478, 1249, 21478, 1706, 209], &[21478, 9, 21478, 9, 990], &[14507, 16, 490]]),
];

/// Calls `f` with the tokenizer of vocabulary `vocab`, loaded from its header alone.
fn with_tokenizer(vocab: &str, f: impl FnOnce(&Tokenizer)) {
    let path = repo().join(format!("tests/data/vocab/ggml-vocab-{vocab}.gguf"));
    let mut storage = spool_std::FileStorage::open(&path).unwrap();
    let header = spool_core::gguf::read_header(&mut storage).unwrap();
    let need = Tokenizer::region_bytes_for(&header).unwrap() as usize;
    // 64-byte aligned, as the arena's regions are.
    let mut buf = vec![0u8; need + 64];
    let pad = buf.as_ptr().align_offset(64);
    let (t, _) = Tokenizer::load(&mut storage, &header, &mut buf[pad..pad + need]).unwrap();
    f(&t);
}

#[test]
fn malformed_utf8_encodes_as_llama_cpp_on_every_byte_level_vocabulary() {
    for (vocab, want) in EXPECTED {
        with_tokenizer(vocab, |t| {
            for (text, want) in TEXTS.iter().zip(want) {
                // Room for three ids per byte; the O(n log n) merge and the rescan agree.
                let mut out = vec![0u32; 3 * text.len() + 3];
                let mut scratch = vec![0u32; spool_core::tokenizer::encode_scratch_words(3 * text.len())];
                let n = t.encode_with(text, false, &mut out, &mut scratch).unwrap();
                assert_eq!(out[..n], *want, "{vocab}: {text:?}");
                let n = t.encode(text, false, &mut out).unwrap();
                assert_eq!(out[..n], *want, "{vocab}: {text:?} (rescan)");
            }
        });
    }
    // `spool-sim tokenize` makes room for any text.
    let path = repo().join("tests/data/vocab/ggml-vocab-gpt-2.gguf");
    let got = spool_sim::tokenize::tokenize(path.to_str().unwrap(), TEXTS[2], false, false, |_, _| {}).unwrap();
    assert_eq!(got, [48585]);
}

#[test]
fn a_malformed_byte_needs_room_for_three_ids_and_a_short_buffer_is_an_error_that_says_so() {
    with_tokenizer("llama-bpe", |t| {
        // Ten 0xFF bytes are one word of ten U+FFFD, 30 byte symbols before merging: more than
        // the `text.len() + 3` ids `encode` asks for, so it says how many it needs.
        let text = [0xFFu8; 10];
        let mut out = vec![0u32; text.len() + 3];
        let err = t.encode(&text, false, &mut out).unwrap_err();
        assert!(matches!(err, spool_core::Error::BufferTooSmall { needed: 30, got: 13, .. }), "{err:?}");
        // With room for three per byte: llama.cpp's ids (`llama-tokenize`: [24378, 24378, 10178]).
        let mut out = vec![0u32; 3 * text.len() + 3];
        let n = t.encode(&text, false, &mut out).unwrap();
        assert_eq!(&out[..n], &[24378, 24378, 10178]);
    });
}
