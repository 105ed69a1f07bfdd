//! llama.cpp's own tokenizer suites: every case of `models/ggml-vocab-*.gguf.inp`/`.out`
//! (copied into tests/data/vocab) encodes to the expected ids. The ids were made without
//! BOS/EOS and with special-token parsing off, so that is how they are compared.

use spool_core::tokenizer::{encode_scratch_words, EncodeOptions, Tokenizer};
use spool_core::SliceStorage;

fn data(name: &str) -> String {
    format!("{}/../tests/data/vocab/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The cases of a suite: the texts (split at `\n__ggml_vocab_test__\n`) and their ids.
fn cases(vocab: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(data(&format!("ggml-vocab-{vocab}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(data(&format!("ggml-vocab-{vocab}.gguf.out"))).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    let mut texts = Vec::new();
    let mut rest = inp.as_str();
    while !rest.is_empty() {
        match rest.find(sep) {
            Some(i) => {
                texts.push(rest[..i].to_string());
                rest = &rest[i + sep.len()..];
            }
            None => {
                texts.push(rest.to_string());
                break;
            }
        }
    }
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{vocab}: .inp and .out disagree on the number of cases");
    texts.into_iter().zip(ids).collect()
}

/// An 8-aligned region of `n` bytes inside `buf`.
fn region(buf: &mut Vec<u8>, n: usize) -> &mut [u8] {
    buf.resize(n + 64, 0);
    let pad = buf.as_ptr().align_offset(64);
    &mut buf[pad..pad + n]
}

/// Runs every case of `vocab`'s suite; returns (cases, passed) and prints each failure.
fn run(vocab: &str) -> (usize, usize) {
    let bytes = std::fs::read(data(&format!("ggml-vocab-{vocab}.gguf"))).unwrap();
    let header = spool_core::gguf::read_header(&mut SliceStorage::new(&bytes)).unwrap();
    let need = Tokenizer::region_bytes_for(&header).unwrap() as usize;
    let mut buf = Vec::new();
    let (t, _) = Tokenizer::load(&mut SliceStorage::new(&bytes), &header, region(&mut buf, need)).unwrap();
    let cases = cases(vocab);
    let mut passed = 0;
    for (text, want) in &cases {
        let mut out = vec![0u32; text.len() + 3];
        let mut scratch = vec![0u32; encode_scratch_words(text.len())];
        let opts = EncodeOptions { add_special: false, parse_special: false };
        let n = t.encode_opts(text.as_bytes(), opts, &mut out, &mut scratch).unwrap();
        let mut slow = vec![0u32; text.len() + 3];
        let m = t.encode(text.as_bytes(), false, &mut slow).unwrap();
        assert_eq!(&out[..n], &slow[..m], "{vocab}: heap and rescan merges disagree on {text:?}");
        if out[..n] == want[..] {
            passed += 1;
        } else {
            eprintln!("{vocab}: {text:?}\n  want {want:?}\n  got  {:?}", &out[..n]);
        }
    }
    (cases.len(), passed)
}

#[test]
fn every_case_of_llama_cpp_vocab_suites_matches() {
    let mut table = String::from("| vocabulary | cases | passed |\n| --- | --- | --- |\n");
    let mut all = true;
    for vocab in ["llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2", "mpt"] {
        let (cases, passed) = run(vocab);
        table += &format!("| {vocab} | {cases} | {passed} |\n");
        all &= cases == passed;
    }
    println!("{table}");
    assert!(all, "some cases differ from llama.cpp:\n{table}");
}

/// Loads `vocab` from tests/data/vocab into `buf`.
fn load<'a>(vocab: &str, bytes: &[u8], buf: &'a mut Vec<u8>) -> Tokenizer<'a> {
    let header = spool_core::gguf::read_header(&mut SliceStorage::new(bytes)).unwrap();
    let need = Tokenizer::region_bytes_for(&header).unwrap() as usize;
    let (t, _) = Tokenizer::load(&mut SliceStorage::new(bytes), &header, region(buf, need))
        .unwrap_or_else(|e| panic!("{vocab}: {e}"));
    t
}

fn encode(t: &Tokenizer, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
    let mut out = vec![0u32; text.len() + 3];
    let mut scratch = vec![0u32; encode_scratch_words(text.len())];
    let n =
        t.encode_opts(text.as_bytes(), EncodeOptions { add_special, parse_special }, &mut out, &mut scratch).unwrap();
    out.truncate(n);
    out
}

/// Control pieces in the text are one id only with `parse_special`; BOS comes from the
/// vocabulary (Llama 3 adds it). Expected ids from `llama-tokenize -m ggml-vocab-llama-bpe.gguf
/// -p "<|begin_of_text|>Hello world<|eot_id|>" --ids [--no-parse-special]`.
#[test]
fn control_pieces_are_matched_only_when_parsing_special_tokens() {
    let bytes = std::fs::read(data("ggml-vocab-llama-bpe.gguf")).unwrap();
    let mut buf = Vec::new();
    let t = load("llama-bpe", &bytes, &mut buf);
    let text = "<|begin_of_text|>Hello world<|eot_id|>";
    assert_eq!(encode(&t, text, true, true), [128000, 128000, 9906, 1917, 128009]);
    assert_eq!(
        encode(&t, text, true, false),
        [128000, 27, 91, 7413, 3659, 4424, 91, 29, 9906, 1917, 27, 91, 68, 354, 851, 91, 29]
    );
    // Qwen2's `</s>` is an ordinary piece that llama.cpp makes a control piece by its text.
    let qwen = std::fs::read(data("ggml-vocab-qwen2.gguf")).unwrap();
    let mut qbuf = Vec::new();
    let q = load("qwen2", &qwen, &mut qbuf);
    assert_eq!(encode(&q, "a</s>", true, true), [64, 128247]);
    assert_eq!(encode(&q, "a</s>", true, false), [64, 522, 82, 29]);
    let mut back = Vec::new();
    for id in encode(&t, "Hello world, ça va? 😀", false, false) {
        back.extend_from_slice(t.decode(0, id));
    }
    assert_eq!(String::from_utf8(back).unwrap(), "Hello world, ça va? 😀", "BPE pieces decode to their bytes");
}

/// A tokenizer model or pre-tokenizer this build does not have is an error naming it and
/// the supported ones, never a SentencePiece reading of a BPE vocabulary.
#[test]
fn an_unknown_tokenizer_is_an_error_naming_it_and_the_supported_ones() {
    use spool_core::error::ShortStr;
    let bytes = std::fs::read(data("ggml-vocab-gpt-2.gguf")).unwrap();
    let mut header = spool_core::gguf::read_header(&mut SliceStorage::new(&bytes)).unwrap();
    header.tokenizer_model = ShortStr::new(b"bert");
    let mut region = vec![0u8; 8 << 20];
    let e = Tokenizer::load(&mut SliceStorage::new(&bytes), &header, &mut region).err().unwrap().to_string();
    assert!(e.contains("\"bert\"") && e.contains("tokenizer.ggml.model") && e.contains("gpt2"), "{e}");
    header.tokenizer_model = ShortStr::new(b"gpt2");
    header.tokenizer_pre = ShortStr::new(b"falcon");
    let e = Tokenizer::load(&mut SliceStorage::new(&bytes), &header, &mut region).err().unwrap().to_string();
    assert!(e.contains("\"falcon\"") && e.contains("tokenizer.ggml.pre") && e.contains("llama-bpe"), "{e}");
}
