//! The GGUF v3 layout of a synthetic file: metadata, tensor table, aligned data, written tensor
//! by tensor with a few MB in RAM. Owns no shapes (`mod.rs`) and no parsing (`cli.rs`).

use std::io::{self, Write};

use spool_core::quant::GgmlType;

use super::vocab::bad;
use super::{row_values, tensors, SynthConfig, TensorSpec, Vocab, ALIGN};
use crate::quantize::quantize_row;

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
    fn bool(&mut self, k: &str, v: bool) {
        self.key(k, 7);
        self.buf.push(v as u8);
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
        GgmlType::Q5_0 | GgmlType::Q6_K => t.id(),
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
    m.f32("llama.rope.freq_base", c.rope_base);
    m.str("tokenizer.ggml.model", &String::from_utf8_lossy(&v.model));
    if let Some(pre) = &v.pre {
        m.str("tokenizer.ggml.pre", &String::from_utf8_lossy(pre));
    }
    m.array("tokenizer.ggml.tokens", 8, v.tokens.len());
    for t in &v.tokens {
        put_str(&mut m.buf, t);
    }
    if !v.scores.is_empty() {
        m.array("tokenizer.ggml.scores", 6, v.scores.len());
        for s in &v.scores {
            m.buf.extend_from_slice(&s.to_le_bytes());
        }
    }
    if !v.merges.is_empty() {
        m.array("tokenizer.ggml.merges", 8, v.merges.len());
        for t in &v.merges {
            put_str(&mut m.buf, t);
        }
    }
    if let Some(b) = v.add_bos {
        m.bool("tokenizer.ggml.add_bos_token", b);
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
