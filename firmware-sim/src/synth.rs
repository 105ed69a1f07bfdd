//! `spool-sim synth`: writes Llama GGUF v3 files with seeded random weights, in the shapes of
//! real models (stories15M, TinyLlama, Llama 7B) or any custom shape, as F32, F16, Q8_0, Q4_0
//! or Q4_K.
//!
//! The file is written tensor by tensor: only one chunk of rows is in RAM at a time, so a
//! 4 GB file needs a few MB. Every row's weights come from its own RNG stream, seeded from
//! (seed, tensor, row): the bytes depend on the seed and the shape only, never on the thread
//! count. Tensor names, order and shapes follow llama.cpp's conversion of llama2.c models
//! (`models/stories260K.gguf`), and the file carries a complete SentencePiece-style tokenizer
//! section, so llama.cpp loads it.

use std::io::{self, BufWriter, Read, Write};
use std::time::Instant;

use spool_core::quant::GgmlType;

use crate::quantize::quantize_row;

/// GGUF alignment of the tensor data.
pub const ALIGN: u64 = 32;

/// Model shape and file settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Embedding width.
    pub dim: u32,
    /// FFN width.
    pub hidden: u32,
    /// Transformer blocks.
    pub layers: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads.
    pub kv_heads: u32,
    /// Vocabulary size (512: the real stories260K vocabulary).
    pub vocab: u32,
    /// Declared context length.
    pub ctx: u32,
    /// Main tensor type (F32, F16, Q8_0, Q4_0 or Q4_K).
    pub ty: GgmlType,
    /// RNG seed.
    pub seed: u64,
    /// The preset's name, or "custom".
    pub name: String,
}

impl SynthConfig {
    /// A named preset (stories15m, tinyllama, llama7b) as F32 with seed 1.
    pub fn preset(name: &str) -> Option<Self> {
        let (dim, hidden, layers, heads, kv_heads) = match name {
            "stories15m" => (288, 768, 6, 6, 6),
            "tinyllama" => (2048, 5632, 22, 32, 4),
            "llama7b" => (4096, 11008, 32, 32, 32),
            _ => return None,
        };
        Some(Self {
            dim,
            hidden,
            layers,
            heads,
            kv_heads,
            vocab: 32000,
            ctx: 2048,
            ty: GgmlType::F32,
            seed: 1,
            name: name.to_string(),
        })
    }

    /// A custom shape (context 2048, F32, seed 1).
    pub fn custom(dim: u32, hidden: u32, layers: u32, heads: u32, kv_heads: u32, vocab: u32) -> Self {
        Self {
            dim,
            hidden,
            layers,
            heads,
            kv_heads,
            vocab,
            ctx: 2048,
            ty: GgmlType::F32,
            seed: 1,
            name: "custom".to_string(),
        }
    }

    /// Head size (`dim / heads`).
    pub fn head_size(&self) -> u32 {
        self.dim / self.heads.max(1)
    }

    /// Errors unless the shape and type make a valid model.
    pub fn validate(&self) -> Result<(), String> {
        let c = self;
        if [c.dim, c.hidden, c.layers, c.heads, c.kv_heads, c.vocab, c.ctx].contains(&0) {
            return Err("every dimension must be positive".into());
        }
        if !c.dim.is_multiple_of(c.heads) || !c.head_size().is_multiple_of(2) {
            return Err(format!("--dim {} must split into {} heads of an even size", c.dim, c.heads));
        }
        if !c.heads.is_multiple_of(c.kv_heads) {
            return Err(format!("--heads {} must be a multiple of --kv-heads {}", c.heads, c.kv_heads));
        }
        if c.vocab < 259 {
            return Err(format!(
                "--vocab {} is too small: the tokenizer needs <unk>, <s>, </s> and 256 byte tokens (259)",
                c.vocab
            ));
        }
        if c.layers > spool_core::model::MAX_LAYERS as u32 {
            return Err(format!("--layers {} exceeds the core's {}", c.layers, spool_core::model::MAX_LAYERS));
        }
        if !matches!(c.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_K) {
            return Err(format!("--type {} is not written; use F32, F16, Q8_0, Q4_0 or Q4_K", c.ty.name()));
        }
        if c.name == "llama7b" && !matches!(c.ty, GgmlType::Q4_0 | GgmlType::Q4_K) {
            return Err(format!(
                "llama7b is written only as Q4_0 or Q4_K ({} would be {:.1} GB); pass --type Q4_0 or --type Q4_K",
                c.ty.name(),
                tensors(c).iter().map(|t| t.bytes()).sum::<u64>() as f64 / 1e9
            ));
        }
        Ok(())
    }

    /// `general.file_type` (llama_ftype): ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2,
    /// MOSTLY_Q8_0 7, MOSTLY_Q4_K_S 14 (all Q4_K, with Q8_0/F16 only where rows forbid it).
    pub fn file_type(&self) -> u32 {
        match self.ty {
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q8_0 => 7,
            GgmlType::Q4_K => 14,
            _ => 0,
        }
    }
}

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// RMSNorm weight: 1 ± 0.1, uniform.
    Norm,
    /// Approximately normal, with this standard deviation.
    Normal(f32),
}

/// One tensor of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// GGUF name.
    pub name: String,
    /// Row length (ggml `ne[0]`).
    pub cols: u64,
    /// Rows (ggml `ne[1]`; 1 for a 1-D tensor).
    pub rows: u64,
    /// Whether the tensor is 1-D.
    pub one_d: bool,
    /// Stored type.
    pub ty: GgmlType,
    /// Value distribution.
    pub init: Init,
}

impl TensorSpec {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> u64 {
        self.ty.row_bytes(self.cols).expect("type chosen to fit the row")
    }
    /// Bytes of the tensor.
    pub fn bytes(&self) -> u64 {
        self.row_bytes() * self.rows
    }
}

/// The type a 2-D tensor of `cols` columns gets in a file of main type `ty`: K-quants need
/// rows of 256 (else Q8_0), 32-blocks need rows of 32 (else F16).
pub fn type_for(ty: GgmlType, cols: u64) -> GgmlType {
    match ty {
        GgmlType::Q4_K if !cols.is_multiple_of(256) => type_for(GgmlType::Q8_0, cols),
        GgmlType::Q8_0 | GgmlType::Q4_0 if !cols.is_multiple_of(32) => GgmlType::F16,
        t => t,
    }
}

/// The tensor table, in file order.
pub fn tensors(c: &SynthConfig) -> Vec<TensorSpec> {
    let (dim, hidden, vocab) = (c.dim as u64, c.hidden as u64, c.vocab as u64);
    let kv_dim = (c.head_size() * c.kv_heads) as u64;
    let mat = |name: String, cols: u64, rows: u64| TensorSpec {
        name,
        cols,
        rows,
        one_d: false,
        ty: type_for(c.ty, cols),
        init: Init::Normal(1.0 / (cols as f32).sqrt()),
    };
    let norm = |name: String| TensorSpec { name, cols: dim, rows: 1, one_d: true, ty: GgmlType::F32, init: Init::Norm };
    let mut t = vec![mat("token_embd.weight".into(), dim, vocab)];
    for l in 0..c.layers {
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        t.push(norm(n("attn_norm")));
        t.push(mat(n("attn_q"), dim, dim));
        t.push(mat(n("attn_k"), dim, kv_dim));
        t.push(mat(n("attn_v"), dim, kv_dim));
        t.push(mat(n("attn_output"), dim, dim));
        t.push(norm(n("ffn_norm")));
        t.push(mat(n("ffn_gate"), dim, hidden));
        t.push(mat(n("ffn_up"), dim, hidden));
        t.push(mat(n("ffn_down"), hidden, dim));
    }
    t.push(norm("output_norm.weight".into()));
    t.push(mat("output.weight".into(), dim, vocab));
    t
}

/// SplitMix64: the seeding hash and the weight generator.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall), centred
    /// and scaled to unit variance.
    pub fn normal(&mut self) -> f32 {
        let r = self.next_u64();
        let s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
        (s as f32 - 131_070.0) * (1.732_050_8 / 65_536.0)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}

/// The f32 values of row `row` of tensor number `index`.
pub fn row_values(seed: u64, index: usize, spec: &TensorSpec, row: u64, out: &mut [f32]) {
    let mut h = SplitMix(seed);
    let base = h.next_u64() ^ (index as u64).wrapping_mul(0xd6e8_feb8_6659_fd93);
    let mut rng = SplitMix(SplitMix(base ^ row.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64());
    match spec.init {
        Init::Norm => out.iter_mut().for_each(|v| *v = 1.0 + 0.2 * (rng.uniform() - 0.5)),
        Init::Normal(std) => out.iter_mut().for_each(|v| *v = rng.normal() * std),
    }
}

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
        Self { tokens, scores, types, bos: 1, eos: 2, unk: 0 }
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

fn bad(msg: &str) -> io::Error {
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
    let mut v = Vocab { tokens: Vec::new(), scores: Vec::new(), types: Vec::new(), bos: 1, eos: 2, unk: 0 };
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
            (b"tokenizer.ggml.bos_token_id", Value::Int(i)) => v.bos = i as u32,
            (b"tokenizer.ggml.eos_token_id", Value::Int(i)) => v.eos = i as u32,
            (b"tokenizer.ggml.unknown_token_id", Value::Int(i)) => v.unk = i as u32,
            _ => {}
        }
    }
    let n = v.tokens.len();
    if n == 0 || v.scores.len() != n || v.types.len() != n {
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

/// GGUF metadata writer.
struct Meta {
    buf: Vec<u8>,
    count: u64,
}

impl Meta {
    fn key(&mut self, k: &str, t: u32) {
        put_str(&mut self.buf, k.as_bytes());
        self.buf.extend_from_slice(&t.to_le_bytes());
        self.count += 1;
    }
    fn u32(&mut self, k: &str, v: u32) {
        self.key(k, 4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn f32(&mut self, k: &str, v: f32) {
        self.key(k, 6);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k, 8);
        put_str(&mut self.buf, v.as_bytes());
    }
    fn array(&mut self, k: &str, et: u32, n: usize) {
        self.key(k, 9);
        self.buf.extend_from_slice(&et.to_le_bytes());
        self.buf.extend_from_slice(&(n as u64).to_le_bytes());
    }
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s);
}

fn type_id(t: GgmlType) -> u32 {
    match t {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q8_0 => 8,
        GgmlType::Q4_K => 12,
        t => panic!("{} is not written", t.name()),
    }
}

/// The header, metadata and tensor table, padded to the data section.
pub fn header_bytes(c: &SynthConfig, v: &Vocab, specs: &[TensorSpec]) -> Vec<u8> {
    let mut m = Meta { buf: Vec::new(), count: 0 };
    m.str("general.architecture", "llama");
    m.str("general.name", &format!("spool-synth {}", c.name));
    m.str(
        "general.description",
        &format!("spool-sim synth: seeded random weights (seed {}), not a trained model", c.seed),
    );
    m.u32("general.file_type", c.file_type());
    if c.ty != GgmlType::F32 && c.ty != GgmlType::F16 {
        m.u32("general.quantization_version", 2);
    }
    m.u32("general.alignment", ALIGN as u32);
    m.u32("llama.vocab_size", c.vocab);
    m.u32("llama.context_length", c.ctx);
    m.u32("llama.embedding_length", c.dim);
    m.u32("llama.block_count", c.layers);
    m.u32("llama.feed_forward_length", c.hidden);
    m.u32("llama.rope.dimension_count", c.head_size());
    m.u32("llama.attention.head_count", c.heads);
    m.u32("llama.attention.head_count_kv", c.kv_heads);
    m.f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    m.f32("llama.rope.freq_base", 10000.0);
    m.str("tokenizer.ggml.model", "llama");
    m.array("tokenizer.ggml.tokens", 8, v.tokens.len());
    for t in &v.tokens {
        put_str(&mut m.buf, t);
    }
    m.array("tokenizer.ggml.scores", 6, v.scores.len());
    for s in &v.scores {
        m.buf.extend_from_slice(&s.to_le_bytes());
    }
    m.array("tokenizer.ggml.token_type", 5, v.types.len());
    for t in &v.types {
        m.buf.extend_from_slice(&t.to_le_bytes());
    }
    m.u32("tokenizer.ggml.bos_token_id", v.bos);
    m.u32("tokenizer.ggml.eos_token_id", v.eos);
    m.u32("tokenizer.ggml.unknown_token_id", v.unk);

    let mut out = Vec::with_capacity(m.buf.len() + 256 * specs.len());
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(specs.len() as u64).to_le_bytes());
    out.extend_from_slice(&m.count.to_le_bytes());
    out.extend_from_slice(&m.buf);
    let mut offset = 0u64;
    for s in specs {
        put_str(&mut out, s.name.as_bytes());
        if s.one_d {
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&s.cols.to_le_bytes());
        } else {
            out.extend_from_slice(&2u32.to_le_bytes());
            out.extend_from_slice(&s.cols.to_le_bytes());
            out.extend_from_slice(&s.rows.to_le_bytes());
        }
        out.extend_from_slice(&type_id(s.ty).to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset = (offset + s.bytes()).div_ceil(ALIGN) * ALIGN;
    }
    out.resize((out.len() as u64).div_ceil(ALIGN) as usize * ALIGN as usize, 0);
    out
}

/// Generates and quantizes `rows` rows from `row0` into `out` (whole rows of `spec`).
fn fill_rows(seed: u64, index: usize, spec: &TensorSpec, row0: u64, out: &mut [u8]) {
    let mut vals = vec![0.0f32; spec.cols as usize];
    let mut q = Vec::with_capacity(spec.row_bytes() as usize);
    for (i, dst) in out.chunks_exact_mut(spec.row_bytes() as usize).enumerate() {
        row_values(seed, index, spec, row0 + i as u64, &mut vals);
        q.clear();
        quantize_row(spec.ty, &vals, &mut q);
        dst.copy_from_slice(&q);
    }
}

/// Writes the whole file to `w`, tensor by tensor, with `threads` workers (0: all cores).
/// Returns the bytes written.
pub fn write_model<W: Write>(c: &SynthConfig, vocab: &Vocab, threads: usize, w: &mut W) -> io::Result<u64> {
    c.validate().map_err(|e| bad(&e))?;
    if vocab.tokens.len() != c.vocab as usize {
        return Err(bad("the vocabulary does not have --vocab tokens"));
    }
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let specs = tensors(c);
    let header = header_bytes(c, vocab, &specs);
    w.write_all(&header)?;
    let mut written = header.len() as u64;
    // About 4 MiB of source values per chunk, split between the threads.
    let mut buf = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let row_bytes = spec.row_bytes() as usize;
        let chunk_rows = ((4 << 20) / (spec.cols as usize * 4)).max(threads).max(1) as u64;
        let mut row = 0u64;
        while row < spec.rows {
            let n = chunk_rows.min(spec.rows - row);
            buf.resize(n as usize * row_bytes, 0);
            let per = (n as usize).div_ceil(threads);
            std::thread::scope(|s| {
                for (t, part) in buf.chunks_mut(per * row_bytes).enumerate() {
                    let r0 = row + (t * per) as u64;
                    s.spawn(move || fill_rows(c.seed, index, spec, r0, part));
                }
            });
            w.write_all(&buf)?;
            row += n;
        }
        written += spec.bytes();
        let pad = written.div_ceil(ALIGN) * ALIGN - written;
        w.write_all(&vec![0u8; pad as usize])?;
        written += pad;
    }
    w.flush()?;
    Ok(written)
}

fn parse_type(s: &str) -> Result<GgmlType, String> {
    Ok(match s.to_ascii_uppercase().as_str() {
        "F32" => GgmlType::F32,
        "F16" => GgmlType::F16,
        "Q8_0" => GgmlType::Q8_0,
        "Q4_0" => GgmlType::Q4_0,
        "Q4_K" => GgmlType::Q4_K,
        _ => return Err(format!("--type {s}: expected F32, F16, Q8_0, Q4_0 or Q4_K")),
    })
}

/// Usage of `spool-sim synth`.
pub const USAGE: &str =
    "spool-sim synth -o PATH [--preset stories15m|tinyllama|llama7b] [--dim N --hidden N --layers N --heads N
                  --kv-heads N --vocab N --ctx N] [--type F32|F16|Q8_0|Q4_0|Q4_K] [--seed S] [--threads N]
                  [--vocab-from GGUF]";

/// Parses `spool-sim synth` options into (config, output path, threads, vocabulary file).
pub fn parse(args: &[String]) -> Result<(SynthConfig, String, usize, String), String> {
    let mut out = None;
    let mut preset = None;
    let mut shape: [Option<u32>; 7] = [None; 7];
    let (mut ty, mut seed, mut threads) = (None, 1u64, 0usize);
    let mut vocab_from = DEFAULT_VOCAB_GGUF.to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value\nusage: {USAGE}"))?;
        let num = |v: &str| v.parse::<u32>().map_err(|_| format!("{a} {v}: expected a number"));
        let slot =
            ["--dim", "--hidden", "--layers", "--heads", "--kv-heads", "--vocab", "--ctx"].iter().position(|f| f == a);
        match (a.as_str(), slot) {
            (_, Some(i)) => shape[i] = Some(num(v)?),
            ("-o", _) => out = Some(v.clone()),
            ("--preset", _) => preset = Some(v.clone()),
            ("--type", _) => ty = Some(parse_type(v)?),
            ("--seed", _) => seed = v.parse().map_err(|_| format!("--seed {v}: expected a number"))?,
            ("--threads", _) => threads = num(v)? as usize,
            ("--vocab-from", _) => vocab_from = v.clone(),
            _ => return Err(format!("bad synth option `{a}`\nusage: {USAGE}")),
        }
    }
    let out = out.ok_or_else(|| format!("synth needs -o PATH\nusage: {USAGE}"))?;
    let mut c = match &preset {
        Some(p) => {
            SynthConfig::preset(p).ok_or_else(|| format!("--preset {p}: expected stories15m, tinyllama or llama7b"))?
        }
        None => {
            if shape[..4].iter().any(Option::is_none) {
                return Err(format!(
                    "synth needs --preset or at least --dim, --hidden, --layers and --heads\nusage: {USAGE}"
                ));
            }
            SynthConfig::custom(0, 0, 0, 0, 0, 32000)
        }
    };
    let fields = [&mut c.dim, &mut c.hidden, &mut c.layers, &mut c.heads, &mut c.kv_heads, &mut c.vocab, &mut c.ctx];
    let changed = shape.iter().any(Option::is_some);
    for (f, v) in fields.into_iter().zip(shape) {
        if let Some(v) = v {
            *f = v;
        }
    }
    if preset.is_none() && shape[4].is_none() {
        c.kv_heads = c.heads;
    }
    if changed && preset.is_some() {
        c.name = format!("{} (modified)", c.name);
    }
    if let Some(t) = ty {
        c.ty = t;
    }
    c.seed = seed;
    // A modified llama7b is still held to the llama7b type rule.
    if c.name.starts_with("llama7b") {
        let n = std::mem::replace(&mut c.name, "llama7b".into());
        c.validate()?;
        c.name = n;
    }
    c.validate()?;
    Ok((c, out, threads, vocab_from))
}

/// `spool-sim synth ...`: writes the file and prints a summary on `out`.
pub fn cli(args: &[String], out: &mut dyn Write, _err: &mut dyn Write) -> Result<(), String> {
    let (c, path, threads, vocab_from) = parse(args)?;
    let vocab = vocab_for(&c, &vocab_from)?;
    let start = Instant::now();
    let file = std::fs::File::create(&path).map_err(|e| format!("cannot create {path}: {e}"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let bytes = write_model(&c, &vocab, threads, &mut w).map_err(|e| format!("writing {path}: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    let specs = tensors(&c);
    let mut counts: Vec<(GgmlType, usize)> = Vec::new();
    for s in &specs {
        match counts.iter_mut().find(|(t, _)| *t == s.ty) {
            Some((_, n)) => *n += 1,
            None => counts.push((s.ty, 1)),
        }
    }
    let types: Vec<String> = counts.iter().map(|(t, n)| format!("{}x{n}", t.name())).collect();
    let _ = writeln!(
        out,
        "wrote {path}: {} dim {} hidden {} layers {} heads {}/{} vocab {} ctx {}, {} ({}), seed {}, {} bytes in {:.1} s ({:.0} MB/s)",
        c.name,
        c.dim,
        c.hidden,
        c.layers,
        c.heads,
        c.kv_heads,
        c.vocab,
        c.ctx,
        c.ty.name(),
        types.join(" "),
        c.seed,
        bytes,
        secs,
        bytes as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(())
}
