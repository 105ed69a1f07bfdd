//! The tokenizer section of a synthetic file: a real vocabulary read from a GGUF (stories260K's
//! by default, or any `--vocab-from` file: SentencePiece or byte-level BPE with its merges and
//! pre-tokenizer, e.g. llama.cpp's ggml-vocab-llama-bpe.gguf), or a synthetic one of any size.
//! Owns no tensor data.

use std::io::{self, Read};

use super::SynthConfig;

/// A tokenizer section.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// Token pieces.
    pub tokens: Vec<Vec<u8>>,
    /// SentencePiece scores.
    pub scores: Vec<f32>,
    /// Token types (1 normal, 2 unknown, 3 control, 6 byte).
    pub types: Vec<i32>,
    /// Ids of `<s>`, `</s>`, `<unk>`.
    pub bos: u32,
    /// End of sequence.
    pub eos: u32,
    /// Unknown.
    pub unk: u32,
    /// `tokenizer.ggml.model` (`llama`, `gpt2`).
    pub model: Vec<u8>,
    /// `tokenizer.ggml.pre`, when the source has one.
    pub pre: Option<Vec<u8>>,
    /// `tokenizer.ggml.merges` (BPE).
    pub merges: Vec<Vec<u8>>,
    /// `tokenizer.ggml.add_bos_token`, when the source has one.
    pub add_bos: Option<bool>,
}

impl Vocab {
    /// `<unk>`, `<s>`, `</s>`, the 256 byte tokens, then unique synthetic pieces.
    pub fn synthetic(n: u32) -> Self {
        let mut tokens: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
        let mut types = vec![2, 3, 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>").into_bytes());
            types.push(6);
        }
        let mut k = 0u32;
        while tokens.len() < n as usize {
            // Even k: a word start ("▁" + letters), odd k: a continuation; letters from k / 2
            // in bijective base 26, so every piece is unique.
            let mut piece = if k.is_multiple_of(2) { "▁".as_bytes().to_vec() } else { Vec::new() };
            let mut letters = Vec::new();
            let mut m = k / 2 + 1;
            while m > 0 {
                m -= 1;
                letters.push(b'a' + (m % 26) as u8);
                m /= 26;
            }
            piece.extend(letters.iter().rev());
            tokens.push(piece);
            types.push(1);
            k += 1;
        }
        tokens.truncate(n as usize);
        types.truncate(n as usize);
        let scores = (0..n).map(|i| if i < 259 { 0.0 } else { -((i - 259) as f32) }).collect();
        Self { tokens, scores, types, bos: 1, eos: 2, unk: 0, ..Self::empty() }
    }

    /// No tokens, SentencePiece defaults.
    fn empty() -> Self {
        Vocab {
            tokens: Vec::new(),
            scores: Vec::new(),
            types: Vec::new(),
            bos: 1,
            eos: 2,
            unk: 0,
            model: b"llama".to_vec(),
            pre: None,
            merges: Vec::new(),
            add_bos: None,
        }
    }

    /// The tokenizer of a GGUF file (tokens, scores, token types, bos/eos/unk).
    pub fn from_gguf(path: &str) -> Result<Self, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
        let mut r = io::BufReader::new(f);
        read_vocab(&mut r).map_err(|e| format!("cannot read the vocabulary of {path}: {e}"))
    }
}

/// A metadata value of a GGUF file (only what reading a tokenizer needs).
enum Value {
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    Arr(Vec<Value>),
}

fn rd<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

pub(super) fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_str(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let n = u64::from_le_bytes(rd(r)?);
    if n > 1 << 20 {
        return Err(bad("string longer than 1 MiB"));
    }
    let mut s = vec![0u8; n as usize];
    r.read_exact(&mut s)?;
    Ok(s)
}

fn read_value(r: &mut impl Read, t: u32) -> io::Result<Value> {
    Ok(match t {
        0 | 7 => Value::Int(rd::<1>(r)?[0] as i64),
        1 => Value::Int(rd::<1>(r)?[0] as i8 as i64),
        2 => Value::Int(u16::from_le_bytes(rd(r)?) as i64),
        3 => Value::Int(i16::from_le_bytes(rd(r)?) as i64),
        4 => Value::Int(u32::from_le_bytes(rd(r)?) as i64),
        5 => Value::Int(i32::from_le_bytes(rd(r)?) as i64),
        6 => Value::Float(f32::from_le_bytes(rd(r)?) as f64),
        10 => Value::Int(u64::from_le_bytes(rd(r)?) as i64),
        11 => Value::Int(i64::from_le_bytes(rd(r)?)),
        12 => Value::Float(f64::from_le_bytes(rd(r)?)),
        8 => Value::Str(read_str(r)?),
        9 => {
            let et = u32::from_le_bytes(rd(r)?);
            let n = u64::from_le_bytes(rd(r)?);
            if n > 1 << 24 {
                return Err(bad("array longer than 16M elements"));
            }
            Value::Arr((0..n).map(|_| read_value(r, et)).collect::<io::Result<_>>()?)
        }
        _ => return Err(bad("unknown metadata value type")),
    })
}

fn read_vocab(r: &mut impl Read) -> io::Result<Vocab> {
    if &rd::<4>(r)? != b"GGUF" {
        return Err(bad("not a GGUF file"));
    }
    let _version = u32::from_le_bytes(rd(r)?);
    let _tensors = u64::from_le_bytes(rd(r)?);
    let kvs = u64::from_le_bytes(rd(r)?);
    let mut v = Vocab::empty();
    for _ in 0..kvs {
        let key = read_str(r)?;
        let t = u32::from_le_bytes(rd(r)?);
        let val = read_value(r, t)?;
        let items = |val: Value| match val {
            Value::Arr(a) => Ok(a),
            _ => Err(bad("expected an array")),
        };
        match (key.as_slice(), val) {
            (b"tokenizer.ggml.tokens", val) => {
                for x in items(val)? {
                    match x {
                        Value::Str(s) => v.tokens.push(s),
                        _ => return Err(bad("tokens are not strings")),
                    }
                }
            }
            (b"tokenizer.ggml.scores", val) => {
                for x in items(val)? {
                    match x {
                        Value::Float(f) => v.scores.push(f as f32),
                        _ => return Err(bad("scores are not floats")),
                    }
                }
            }
            (b"tokenizer.ggml.token_type", val) => {
                for x in items(val)? {
                    match x {
                        Value::Int(i) => v.types.push(i as i32),
                        _ => return Err(bad("token types are not integers")),
                    }
                }
            }
            (b"tokenizer.ggml.merges", val) => {
                for x in items(val)? {
                    match x {
                        Value::Str(s) => v.merges.push(s),
                        _ => return Err(bad("merges are not strings")),
                    }
                }
            }
            (b"tokenizer.ggml.model", Value::Str(s)) => v.model = s,
            (b"tokenizer.ggml.pre", Value::Str(s)) => v.pre = Some(s),
            (b"tokenizer.ggml.add_bos_token", Value::Int(i)) => v.add_bos = Some(i != 0),
            (b"tokenizer.ggml.bos_token_id", Value::Int(i)) => v.bos = i as u32,
            (b"tokenizer.ggml.eos_token_id", Value::Int(i)) => v.eos = i as u32,
            (b"tokenizer.ggml.unknown_token_id", Value::Int(i)) => v.unk = i as u32,
            _ => {}
        }
    }
    let n = v.tokens.len();
    // BPE vocabularies have no scores.
    if n == 0 || (v.scores.len() != n && !(v.scores.is_empty() && v.model == b"gpt2")) || v.types.len() != n {
        return Err(bad("tokens, scores and token_type are missing or of different lengths"));
    }
    Ok(v)
}

/// Where the stories260K vocabulary is read from by default (the repo's model).
pub const DEFAULT_VOCAB_GGUF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/stories260K.gguf");

/// The vocabulary a config gets: 512 is the real stories260K vocabulary from `vocab_gguf`,
/// anything else is synthetic.
pub fn vocab_for(c: &SynthConfig, vocab_gguf: &str) -> Result<Vocab, String> {
    if c.vocab == 512 {
        let v = Vocab::from_gguf(vocab_gguf)?;
        if v.tokens.len() != 512 {
            return Err(format!("{vocab_gguf} has {} tokens, not 512", v.tokens.len()));
        }
        Ok(v)
    } else {
        Ok(Vocab::synthetic(c.vocab))
    }
}
