//! What the fuzz targets share: hostile numbers, a structure-aware GGUF skeleton (the tests'
//! writer, `tests/src/gguf.rs`, included as is) and the plan invariants every accepted plan must
//! keep. It uses only spool-core's public API and never decides what the core should accept.

use arbitrary::Arbitrary;
use spool_core::{ModelInfo, Plan, PlanOptions, Policy};

#[path = "../../tests/src/gguf.rs"]
pub mod gguf;

use gguf::{Gguf, TensorInfo, Value};

/// The real model, for seeds and for the targets that run it.
pub static STORIES: &[u8] = include_bytes!("../../models/stories260K.gguf");

/// Values where size arithmetic breaks: zero, one, powers of two around the 32- and 64-bit
/// edges and just off them.
pub const EDGES: [u64; 24] = [
    0,
    1,
    2,
    3,
    7,
    8,
    31,
    32,
    64,
    255,
    4096,
    65_535,
    1 << 20,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    1 << 33,
    1 << 40,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX - 4095,
    u64::MAX - 1,
    u64::MAX,
];

/// A number chosen among the edges, near one, or anywhere.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Num {
    Edge(u8),
    NearEdge(u8, i8),
    Small(u16),
    Any(u64),
}

impl Num {
    pub fn get(self) -> u64 {
        match self {
            Num::Edge(i) => EDGES[i as usize % EDGES.len()],
            Num::NearEdge(i, d) => EDGES[i as usize % EDGES.len()].wrapping_add(d as i64 as u64),
            Num::Small(v) => v as u64,
            Num::Any(v) => v,
        }
    }
    pub fn get32(self) -> u32 {
        self.get() as u32
    }
}

/// Hyperparameters of the skeleton; `None` keeps a small valid default.
#[derive(Debug, Arbitrary)]
pub struct Shape {
    pub dim: Option<Num>,
    pub hidden: Option<Num>,
    pub layers: Option<u8>,
    pub heads: Option<Num>,
    pub kv_heads: Option<Num>,
    pub ctx: Option<Num>,
    pub rope_dim: Option<Num>,
    pub vocab: u8,
    pub alignment: Option<Num>,
    pub ggml_type: Option<u8>,
}

/// One hostile edit of the skeleton.
#[derive(Debug, Arbitrary)]
pub enum Edit {
    Version(u32),
    TensorCount(Num),
    KvCount(Num),
    /// Key `index` (mod the count) gets a value of another type.
    KvType {
        index: u8,
        ty: u8,
        raw: Vec<u8>,
    },
    /// Key `index` gets a string or array whose declared length disagrees with its body.
    KvLength {
        index: u8,
        len: Num,
        array: bool,
        elem: u8,
    },
    RemoveKv(u8),
    DuplicateKv(u8),
    Dims {
        tensor: u8,
        dims: Vec<Num>,
    },
    NDims {
        tensor: u8,
        n: u32,
    },
    Type {
        tensor: u8,
        ty: u32,
    },
    Offset {
        tensor: u8,
        offset: Num,
    },
    Name {
        tensor: u8,
        name: Vec<u8>,
    },
    RemoveTensor(u8),
    DuplicateTensor(u8),
    /// Place a tensor so that its data ends at `end` (mod 2^64) by its declared F32 size: the
    /// way to make `offset + size` wrap past 2^64 onto a small number.
    EndAt {
        tensor: u8,
        end: Num,
    },
    /// The same for every tensor.
    EndAllAt(Num),
    /// Cut the file to `len` bytes (mod its length).
    Truncate(u32),
}

/// A skeleton and its edits.
#[derive(Debug, Arbitrary)]
pub struct Hostile {
    pub shape: Shape,
    pub edits: Vec<Edit>,
    /// Cap on the data section written (the declared sizes may be huge or wrap).
    pub data_cap: u8,
}

fn pick<T>(v: &mut [T], i: u8) -> Option<&mut T> {
    let n = v.len();
    if n == 0 {
        None
    } else {
        v.get_mut(i as usize % n)
    }
}

/// A valid small Llama GGUF of `shape` (sizes computed with wrapping arithmetic, as a careless
/// writer would), then the edits.
pub fn build(h: &Hostile) -> Vec<u8> {
    let s = &h.shape;
    let dim = s.dim.map_or(16, Num::get);
    let hidden = s.hidden.map_or(32, Num::get);
    let layers = s.layers.map_or(2, |l| l as u64 % 130);
    let heads = s.heads.map_or(4, Num::get);
    let kv_heads = s.kv_heads.map_or(2, Num::get);
    let ctx = s.ctx.map_or(64, Num::get);
    let vocab = (s.vocab as u64 % 64) + 1;
    let ty = s.ggml_type.map_or(0, |t| t as u32 % 32);
    let head = if heads == 0 { 0 } else { dim / heads };
    let kv_dim = head.wrapping_mul(kv_heads);

    let mut g = Gguf {
        magic: *b"GGUF",
        version: 3,
        tensor_count: None,
        kv_count: None,
        kvs: Vec::new(),
        tensors: Vec::new(),
        alignment: 32,
        data: Vec::new(),
    };
    g.set("general.architecture", Value::str("llama"));
    g.set("llama.embedding_length", Value::u64(dim));
    g.set("llama.feed_forward_length", Value::u64(hidden));
    g.set("llama.block_count", Value::u32(layers as u32));
    g.set("llama.attention.head_count", Value::u64(heads));
    g.set("llama.attention.head_count_kv", Value::u64(kv_heads));
    g.set("llama.context_length", Value::u64(ctx));
    if let Some(r) = s.rope_dim {
        g.set("llama.rope.dimension_count", Value::u64(r.get()));
    }
    if let Some(a) = s.alignment {
        g.set("general.alignment", Value::u32(a.get32()));
        g.alignment = a.get().clamp(1, 1 << 20);
    }
    let tokens = (0..vocab).map(|i| Value::Str(format!("t{i}").into_bytes())).collect();
    g.set("tokenizer.ggml.tokens", Value::Array { elem: gguf::vt::STRING, items: tokens });
    let scores = (0..vocab).map(|i| Value::f32(-(i as f32))).collect();
    g.set("tokenizer.ggml.scores", Value::Array { elem: gguf::vt::F32, items: scores });

    // Sizes as F32 (4 bytes per element) whatever the type: a careless writer.
    let mut offset = 0u64;
    let mut tensor = |g: &mut Gguf, name: String, dims: Vec<u64>, ty: u32| {
        let bytes = dims.iter().fold(4u64, |a, &d| a.wrapping_mul(d));
        g.tensors.push(TensorInfo { name: name.into_bytes(), dims, n_dims: None, ggml_type: ty, offset });
        offset = offset.wrapping_add(bytes.wrapping_add(31) & !31);
    };
    tensor(&mut g, "token_embd.weight".into(), vec![dim, vocab], ty);
    tensor(&mut g, "output_norm.weight".into(), vec![dim], 0);
    for l in 0..layers.min(4) {
        for (part, d) in [
            ("attn_norm", vec![dim]),
            ("attn_q", vec![dim, dim]),
            ("attn_k", vec![dim, kv_dim]),
            ("attn_v", vec![dim, kv_dim]),
            ("attn_output", vec![dim, dim]),
            ("ffn_norm", vec![dim]),
            ("ffn_gate", vec![dim, hidden]),
            ("ffn_up", vec![dim, hidden]),
            ("ffn_down", vec![hidden, dim]),
        ] {
            let t = if part.ends_with("norm") { 0 } else { ty };
            tensor(&mut g, format!("blk.{l}.{part}.weight"), d, t);
        }
    }
    let cap = h.data_cap as u64 * 256;
    g.data = vec![0x3c; offset.min(cap) as usize];

    let mut truncate = None;
    for e in &h.edits {
        match e {
            Edit::Version(v) => g.version = *v,
            Edit::TensorCount(n) => g.tensor_count = Some(n.get()),
            Edit::KvCount(n) => g.kv_count = Some(n.get()),
            Edit::KvType { index, ty, raw } => {
                if let Some(kv) = pick(&mut g.kvs, *index) {
                    kv.value = Value::Raw { ty: *ty as u32 % 14, body: raw.clone() };
                }
            }
            Edit::KvLength { index, len, array, elem } => {
                if let Some(kv) = pick(&mut g.kvs, *index) {
                    let mut body = Vec::new();
                    let ty = if *array {
                        body.extend_from_slice(&(*elem as u32 % 14).to_le_bytes());
                        gguf::vt::ARRAY
                    } else {
                        gguf::vt::STRING
                    };
                    body.extend_from_slice(&len.get().to_le_bytes());
                    body.extend_from_slice(b"llama");
                    kv.value = Value::Raw { ty, body };
                }
            }
            Edit::RemoveKv(i) => {
                if !g.kvs.is_empty() {
                    let n = g.kvs.len();
                    g.kvs.remove(*i as usize % n);
                }
            }
            Edit::DuplicateKv(i) => {
                if let Some(kv) = pick(&mut g.kvs, *i).cloned() {
                    g.kvs.push(kv);
                }
            }
            Edit::Dims { tensor, dims } => {
                if let Some(t) = pick(&mut g.tensors, *tensor) {
                    t.dims = dims.iter().take(6).map(|d| d.get()).collect();
                }
            }
            Edit::NDims { tensor, n } => {
                if let Some(t) = pick(&mut g.tensors, *tensor) {
                    t.n_dims = Some(*n);
                }
            }
            Edit::Type { tensor, ty } => {
                if let Some(t) = pick(&mut g.tensors, *tensor) {
                    t.ggml_type = *ty;
                }
            }
            Edit::Offset { tensor, offset } => {
                if let Some(t) = pick(&mut g.tensors, *tensor) {
                    t.offset = offset.get();
                }
            }
            Edit::Name { tensor, name } => {
                if let Some(t) = pick(&mut g.tensors, *tensor) {
                    t.name = name.clone();
                }
            }
            Edit::RemoveTensor(i) => {
                if !g.tensors.is_empty() {
                    let n = g.tensors.len();
                    g.tensors.remove(*i as usize % n);
                }
            }
            Edit::DuplicateTensor(i) => {
                if let Some(t) = pick(&mut g.tensors, *i).cloned() {
                    g.tensors.push(t);
                }
            }
            Edit::Truncate(n) => truncate = Some(*n),
            Edit::EndAt { .. } | Edit::EndAllAt(_) => {}
        }
    }
    // Offsets relative to the end of the data: the header's size is final now.
    let start = g.data_start();
    let size = |t: &TensorInfo| t.dims.iter().fold(4u64, |a, &d| a.wrapping_mul(d));
    for e in &h.edits {
        match e {
            Edit::EndAt { tensor, end } => {
                if let Some(t) = pick(&mut g.tensors, *tensor) {
                    t.offset = end.get().wrapping_sub(size(t)).wrapping_sub(start) & !31;
                }
            }
            Edit::EndAllAt(end) => {
                for t in g.tensors.iter_mut() {
                    t.offset = end.get().wrapping_sub(size(t)).wrapping_sub(start) & !31;
                }
            }
            _ => {}
        }
    }
    let mut bytes = g.to_bytes();
    if let Some(n) = truncate {
        let len = bytes.len();
        bytes.truncate(n as usize % (len + 1));
    }
    bytes
}

/// Planner options from fuzz bytes.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Opts {
    pub policy: u8,
    pub prefetch: u8,
    pub prefill_chunk: u16,
    pub quantized_activations: bool,
    pub kv_f16: bool,
}

impl Opts {
    pub fn get(self) -> PlanOptions {
        PlanOptions {
            policy: Policy::ALL[self.policy as usize % Policy::ALL.len()],
            prefetch: self.prefetch as u32 % 12,
            prefill_chunk: self.prefill_chunk as u32,
            quantized_activations: self.quantized_activations,
            kv_f16: self.kv_f16,
            ..PlanOptions::default()
        }
    }
}

/// What every plan must keep, whatever the model: the regions fit the budget in order, pinned
/// units lie inside the resident region without overlapping, and every streamed unit fits a
/// slot. A violation panics: it is a finding.
pub fn check_plan(model: &ModelInfo, plan: &Plan) {
    let budget = plan.budget as u128;
    assert!((plan.used_bytes() as u128) <= budget, "plan uses {} of a {} budget", plan.used_bytes(), budget);
    let regions = [plan.working, plan.kv, plan.scratch, plan.tokenizer, plan.norms, plan.resident, plan.slots];
    let mut end = 0u128;
    for r in regions {
        assert!(r.offset as u128 >= end, "regions overlap: {regions:?}");
        end = r.offset as u128 + r.bytes as u128;
    }
    let mut pinned: Vec<(u128, u128)> = Vec::new();
    for u in plan.units.iter() {
        match u.pinned_at {
            Some(at) => pinned.push((at as u128, at as u128 + u.bytes as u128)),
            None => assert!(u.bytes as u128 <= plan.slot_bytes as u128, "unit {u:?} exceeds the slot"),
        }
        let t = model.tensor(u.tensor);
        let row_bytes = t.row_bytes() as u128;
        assert_eq!(u.bytes as u128, row_bytes * u.rows as u128, "unit {u:?} bytes disagree with its rows");
        assert!(u.offset as u128 + u.bytes as u128 <= model.file_len as u128, "unit {u:?} ends past the file");
    }
    if let Some(at) = plan.embd_pinned_at {
        pinned.push((at as u128, at as u128 + model.token_embd.bytes() as u128));
    }
    pinned.sort();
    for w in pinned.windows(2) {
        assert!(w[0].1 <= w[1].0, "pinned spans overlap: {:?} and {:?}", w[0], w[1]);
    }
    if let Some(last) = pinned.last() {
        assert!(last.1 <= plan.resident.bytes as u128, "pinned span {last:?} exceeds the resident region");
    }
}
