//! Test helpers (compiled for the core's unit tests only): a small GGUF writer for hostile
//! headers, and model descriptions of any size (the first architecture's block) built without
//! a file, for the planner.

extern crate std;

use std::vec::Vec;

use crate::gguf::Header;
use crate::model::arch::ARCHS;
use crate::model::{Config, ModelInfo, TensorRef};
use crate::quant::GgmlType;

/// Writes a GGUF v3 file: metadata and a tensor table, then `data` zero bytes.
#[derive(Default)]
pub(crate) struct GgufWriter {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl GgufWriter {
    pub(crate) fn string(&mut self, key: &str, value: &str) -> &mut Self {
        put_str(&mut self.kv, key);
        self.kv.extend_from_slice(&8u32.to_le_bytes());
        put_str(&mut self.kv, value);
        self.n_kv += 1;
        self
    }

    pub(crate) fn u32(&mut self, key: &str, value: u32) -> &mut Self {
        put_str(&mut self.kv, key);
        self.kv.extend_from_slice(&4u32.to_le_bytes());
        self.kv.extend_from_slice(&value.to_le_bytes());
        self.n_kv += 1;
        self
    }

    /// `tokenizer.ggml.tokens` with `n` one-byte pieces.
    pub(crate) fn tokens(&mut self, n: u64) -> &mut Self {
        put_str(&mut self.kv, "tokenizer.ggml.tokens");
        self.kv.extend_from_slice(&9u32.to_le_bytes());
        self.kv.extend_from_slice(&8u32.to_le_bytes());
        self.kv.extend_from_slice(&n.to_le_bytes());
        for i in 0..n {
            put_str(&mut self.kv, core::str::from_utf8(&[b'a' + (i % 26) as u8]).unwrap());
        }
        self.n_kv += 1;
        self
    }

    /// A tensor row: `dims` in GGML order (`dims[0]` is the row length), `offset` relative
    /// to the data section.
    pub(crate) fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, offset: u64) -> &mut Self {
        put_str(&mut self.tensors, name);
        self.tensors.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend_from_slice(&d.to_le_bytes());
        }
        self.tensors.extend_from_slice(&(ty as u32).to_le_bytes());
        self.tensors.extend_from_slice(&offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    pub(crate) fn finish(&self, data: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.tensors);
        out.resize(out.len().div_ceil(32) * 32 + data, 0);
        out
    }
}

/// A model description of any size (no file behind it): `ty` weights laid out one after
/// another from offset 0, F32 norms, an untied classifier unless `tied`.
pub(crate) fn fake_model(c: Config, ty: GgmlType, tied: bool) -> ModelInfo {
    let mut offset = 0u64;
    let mut tensor = |rows: u32, cols: u32, ty: GgmlType| {
        let t = TensorRef { offset, ty, rows, cols };
        offset += t.bytes();
        t
    };
    let mut layers = heapless::Vec::new();
    for _ in 0..c.n_layers {
        // The first architecture's roles with their shapes, in its order; the rest of the table is empty, as the
        // loader leaves it.
        let mut refs = [TensorRef::EMPTY; crate::model::ROLES];
        for (r, &lt) in refs.iter_mut().zip(ARCHS[0].roles) {
            let (rows, cols) = lt.shape(&c);
            *r = tensor(rows, cols, if lt.is_norm() { GgmlType::F32 } else { ty });
        }
        layers.push(refs).unwrap();
    }
    let token_embd = tensor(c.vocab, c.dim, ty);
    let output_norm = tensor(1, c.dim, GgmlType::F32);
    let output = if tied { token_embd } else { tensor(c.vocab, c.dim, ty) };
    let tokens =
        crate::gguf::ArrayRef { count: c.vocab as u64, string_bytes: 4 * c.vocab as u64, ..Default::default() };
    let header = Header { tokens: Some(tokens), ..Header::default() };
    ModelInfo {
        arch: ARCHS[0],
        config: c,
        header,
        token_embd,
        output_norm,
        output,
        tied_output: tied,
        rope_freqs: None,
        layers,
        parse_bytes: 0,
        file_len: offset,
    }
}

/// Hyperparameters with `dim / heads` heads and as many KV heads.
pub(crate) fn config(dim: u32, hidden: u32, layers: u32, heads: u32, vocab: u32, context: u32) -> Config {
    Config {
        dim,
        hidden_dim: hidden,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: heads,
        head_size: dim / heads,
        q_dim: dim,
        kv_dim: dim,
        vocab,
        context_length: context,
        rope_theta: 10000.0,
        rms_eps: 1e-5,
        embedding_scale: None,
        logit_softcap: None,
        layers: crate::model::LayerPattern::uniform(crate::model::LayerKind::global(10000.0)),
    }
}
