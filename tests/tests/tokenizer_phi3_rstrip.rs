//! llama.cpp's name-keyed rule for Phi-3: in a model whose `general.name` contains "phi-3" or
//! "phi3" (any case), the whitespace after a special piece in the text is dropped (RSTRIP on
//! every special piece but `<unk>`, `<s>` and `<|endoftext|>`). The expected ids are llama.cpp's:
//! for each text written to P, `llama-tokenize -m tests/data/vocab/ggml-vocab-phi-3.gguf -f P
//! --ids --no-bos` (special text parsed, its default), from the peer build in
//! /work/peer/llama.cpp/bin. The same file named "Phx3" (one byte changed) does not strip, in
//! llama.cpp or here.

mod common;

use common::*;
use spool_core::tokenizer::{encode_scratch_words, EncodeOptions, Tokenizer};
use spool_core::SliceStorage;

/// (text, llama.cpp's ids on the Phi-3 vocabulary (general.name "Phi3")).
#[rustfmt::skip]
const CASES: [(&str, &[u32]); 5] = [
    ("a </s>  b", &[263, 29871, 2, 289]),
    ("x<|end|>\n y <|user|> z", &[921, 32007, 343, 29871, 32010, 503]),
    ("</s> \n q", &[2, 3855]),
    ("Hi <s>  there <unk> x <|endoftext|> y", &[6324, 29871, 1, 259, 727, 29871, 0, 29871, 921, 29871, 32000, 29871, 343]),
    ("<|user|>\nHello<|end|>\n<|assistant|>", &[32010, 15043, 32007, 32001]),
];

fn encode(file: &[u8], text: &str) -> Vec<u32> {
    let mut storage = SliceStorage::new(file);
    let header = spool_core::gguf::read_header(&mut storage).unwrap();
    let need = Tokenizer::region_bytes_for(&header).unwrap() as usize;
    // 64-byte aligned, as the arena's regions are.
    let mut buf = vec![0u8; need + 64];
    let pad = buf.as_ptr().align_offset(64);
    let (t, _) = Tokenizer::load(&mut storage, &header, &mut buf[pad..pad + need]).unwrap();
    let mut out = vec![0u32; text.len() + 3];
    let mut scratch = vec![0u32; encode_scratch_words(text.len())];
    let opts = EncodeOptions { add_special: false, parse_special: true };
    let n = t.encode_opts(text.as_bytes(), opts, &mut out, &mut scratch).unwrap();
    out.truncate(n);
    out
}

#[test]
fn a_model_named_phi3_drops_the_whitespace_after_special_pieces_as_llama_cpp() {
    let file = std::fs::read(repo().join("tests/data/vocab/ggml-vocab-phi-3.gguf")).unwrap();
    for (text, want) in CASES {
        assert_eq!(encode(&file, text), want, "{text:?}");
    }
}

#[test]
fn the_same_vocabulary_under_another_name_keeps_the_whitespace() {
    let mut file = std::fs::read(repo().join("tests/data/vocab/ggml-vocab-phi-3.gguf")).unwrap();
    let at = file.windows(4).position(|w| w == b"Phi3").expect("general.name is Phi3");
    file[at + 2] = b'x';
    // llama-tokenize on the renamed file: [921, 32007, 29871, 13, 343, 29871, 32010, 29871, 503].
    assert_eq!(encode(&file, CASES[1].0), [921, 32007, 29871, 13, 343, 29871, 32010, 29871, 503]);
}
