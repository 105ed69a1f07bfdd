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
//!
//! Owns the shapes, the tensor list and the seeded weights; the vocabulary (`vocab.rs`), the file
//! layout (`write.rs`) and the command line (`cli.rs`) live beside it.

mod cli;
mod vocab;
mod write;

pub use cli::{cli, parse, USAGE};
pub use vocab::{vocab_for, Vocab, DEFAULT_VOCAB_GGUF};
pub use write::{header_bytes, write_model};

use spool_core::quant::GgmlType;

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
    /// RoPE base (`llama.rope.freq_base`): 10000, Llama 3's 500000.
    pub rope_base: f32,
    /// Llama 3.1/3.2's RoPE scaling, written as `rope_freqs.weight` (`None`: no such tensor).
    pub rope_scaling: Option<Llama3Rope>,
    /// Whether the classifier is the embedding table (no `output.weight`), as in Llama 3.2 1B.
    pub tied: bool,
}

/// Llama 3.1/3.2's RoPE scaling (the `rope_scaling` of a Hugging Face config with `rope_type`
/// "llama3"), which llama.cpp's converter turns into `rope_freqs.weight`: one factor per pair
/// of a head that divides the pair's angle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Rope {
    /// The factor of the long wavelengths.
    pub factor: f32,
    /// `low_freq_factor`.
    pub low_freq_factor: f32,
    /// `high_freq_factor`.
    pub high_freq_factor: f32,
    /// `original_max_position_embeddings`.
    pub original_context: u32,
}

impl Llama3Rope {
    /// Llama 3.2 1B and 3B: factor 32, low 1, high 4, original context 8192.
    pub const LLAMA_3_2: Llama3Rope =
        Llama3Rope { factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_context: 8192 };

    /// The factors of a head of `head_dim` at RoPE base `base`, computed as llama.cpp's
    /// `convert_hf_to_gguf.py` does (in f32, as its torch tensors are): with
    /// `freq_i = 1 / base^(2i / head_dim)` and `wavelen = 2 pi / freq_i`, the factor is 1 below
    /// `original / high_freq_factor`, `factor` above `original / low_freq_factor`, and in
    /// between `1 / ((1 - smooth) / factor + smooth)` with
    /// `smooth = (original / wavelen - low) / (high - low)`.
    pub fn factors(&self, base: f32, head_dim: u32) -> Vec<f32> {
        let original = self.original_context as f32;
        let (low, high) = (self.low_freq_factor, self.high_freq_factor);
        let (low_wavelen, high_wavelen) = (original / low, original / high);
        (0..head_dim / 2)
            .map(|i| {
                let freq = 1.0 / base.powf((2 * i) as f32 / head_dim as f32);
                let wavelen = 2.0 * std::f32::consts::PI / freq;
                if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    self.factor
                } else {
                    let smooth = (original / wavelen - low) / (high - low);
                    1.0 / ((1.0 - smooth) / self.factor + smooth)
                }
            })
            .collect()
    }
}

impl SynthConfig {
    /// A named preset (stories15m, tinyllama, llama7b, llama3-1b) as F32 with seed 1.
    /// llama3-1b is Llama 3.2 1B's shape (GQA 32/8, head_dim 64, vocabulary 128,256, RoPE base
    /// 500000, its RoPE scaling as `rope_freqs.weight`, the classifier tied to the embedding
    /// table): give it the real vocabulary with `--vocab-from`. A preset with a changed shape
    /// keeps its RoPE scaling and tying.
    pub fn preset(name: &str) -> Option<Self> {
        let (dim, hidden, layers, heads, kv_heads, vocab, rope_base) = match name {
            "stories15m" => (288, 768, 6, 6, 6, 32000, 10000.0),
            "tinyllama" => (2048, 5632, 22, 32, 4, 32000, 10000.0),
            "llama7b" => (4096, 11008, 32, 32, 32, 32000, 10000.0),
            "llama3-1b" => (2048, 8192, 16, 32, 8, 128256, 500000.0),
            _ => return None,
        };
        let llama3 = name == "llama3-1b";
        Some(Self {
            name: name.to_string(),
            rope_base,
            rope_scaling: llama3.then_some(Llama3Rope::LLAMA_3_2),
            tied: llama3,
            ..Self::custom(dim, hidden, layers, heads, kv_heads, vocab)
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
            rope_base: 10000.0,
            rope_scaling: None,
            tied: false,
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
        use GgmlType::*;
        if !matches!(c.ty, F32 | F16 | Q8_0 | Q4_0 | Q4_K | Q5_0 | Q6_K) {
            return Err(format!("--type {} is not written; use F32, F16, Q8_0, Q4_0, Q5_0, Q4_K or Q6_K", c.ty.name()));
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
    /// MOSTLY_Q8_0 7, MOSTLY_Q5_0 8, MOSTLY_Q6_K 18, MOSTLY_Q4_K_S 14 (all Q4_K, with Q8_0/F16 only where rows forbid it).
    pub fn file_type(&self) -> u32 {
        match self.ty {
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q8_0 => 7,
            GgmlType::Q4_K => 14,
            GgmlType::Q5_0 => 8,
            GgmlType::Q6_K => 18,
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
    /// Llama 3's RoPE factors at this base (not random; one row of `head_dim / 2`).
    RopeFactors(Llama3Rope, f32),
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
        GgmlType::Q4_K | GgmlType::Q6_K if !cols.is_multiple_of(256) => type_for(GgmlType::Q8_0, cols),
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 if !cols.is_multiple_of(32) => GgmlType::F16,
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
    let mut t = Vec::new();
    // First, as llama.cpp's converter writes its extra tensors first.
    if let Some(r) = c.rope_scaling {
        let cols = (c.head_size() / 2) as u64;
        let init = Init::RopeFactors(r, c.rope_base);
        t.push(TensorSpec { name: "rope_freqs.weight".into(), cols, rows: 1, one_d: true, ty: GgmlType::F32, init });
    }
    t.push(mat("token_embd.weight".into(), dim, vocab));
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
    if !c.tied {
        t.push(mat("output.weight".into(), dim, vocab));
    }
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
        Init::RopeFactors(r, base) => out.copy_from_slice(&r.factors(base, 2 * out.len() as u32)),
    }
}
