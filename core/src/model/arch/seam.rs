//! The seam an architecture plugs into: an [`Arch`] names its GGUF keys, turns their values
//! into a [`Config`] (with the kind of each layer), lists its tensor roles with their shapes,
//! names its stop tokens, and writes its block as a short recipe over the [`Block`] steps, which the engine carries out
//! with the shared ops. A leaf below the registry: it names no architecture.

use crate::error::Result;
use crate::gguf::Value;
use crate::model::config::Config;
use crate::model::tensor::LayerTensor;

/// Most hyperparameter keys an architecture reads.
pub const MAX_KEYS: usize = 16;

/// Most tensor roles a layer of an architecture may have (each role at most once).
pub const MAX_ROLES: usize = LayerTensor::COUNT;

/// An architecture: its schema and its block, all of it data and functions of its own file.
/// The per-layer kinds are data too ([`Config::layers`], filled in by [`Arch::config`]).
#[derive(Debug)]
pub struct Arch {
    /// `general.architecture`.
    pub name: &'static str,
    /// The GGUF keys it reads; their values reach [`Arch::config`] in this order.
    pub keys: &'static [&'static str],
    /// The hyperparameters from the values of [`Arch::keys`] and the vocabulary size.
    pub config: fn(&Values, u32) -> Result<Config>,
    /// Its layer tensors with their shapes, in the order the block uses them (units are
    /// streamed in this order). At most [`MAX_ROLES`].
    pub roles: &'static [LayerTensor],
    /// One block, top to bottom.
    pub block: fn(&mut dyn Block) -> Result<()>,
    /// Which sampled tokens end generation.
    pub stops: Stops,
}

impl Arch {
    /// Where `role` sits in [`Arch::roles`] (and in a layer's tensor table).
    pub fn role_index(&self, role: LayerTensor) -> Option<usize> {
        self.roles.iter().position(|&r| r == role)
    }
}

/// Which sampled tokens end generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stops {
    /// BOS, as llama2.c's `run.c` stops.
    Bos,
    /// EOS (`tokenizer.ggml.eos_token_id`) and the control pieces listed.
    Eos(&'static [&'static str]),
}

/// Values of the keys of one architecture, in its [`Arch::keys`] order.
pub type Values = [Option<Value>; MAX_KEYS];

/// A working buffer of the forward pass, as a block step names it. Row strides come from the
/// weights: a matrix reads `cols` and writes `rows` per position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// The residual stream, `[positions][dim]`.
    X,
    /// A normed input, then the attention output, `[positions][max(dim, q_dim)]`.
    Xb,
    /// A projection before the residual add, `[positions][dim]`.
    Xb2,
    /// The queries, `[positions][max(dim, q_dim)]`.
    Q,
    /// The FFN gate, `[positions][hidden]`.
    Hb,
    /// The FFN up projection, `[positions][hidden]`.
    Hb2,
}

/// How RoPE pairs the elements of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs `(2i, 2i + 1)`, as llama2.c rotates them.
    Interleaved,
    /// Pairs `(i, i + head_size / 2)` (GPT-NeoX, Gemma).
    Neox,
}

/// The steps a block recipe is written in. The engine carries each out over every position
/// of the chunk, with the layer's weights and the shared ops.
pub trait Block {
    /// `to = rmsnorm(from) * weight(role)`.
    fn norm(&mut self, role: LayerTensor, from: Buf, to: Buf) -> Result<()>;
    /// `to = W(role) from`.
    fn matvec(&mut self, role: LayerTensor, from: Buf, to: Buf) -> Result<()>;
    /// The keys and values of the new positions (`K from`, `V from`) into the KV cache.
    fn keys_values(&mut self, from: Buf) -> Result<()>;
    /// Rotates the queries and the new keys by their positions, at the layer's RoPE base.
    fn rope(&mut self, layout: RopeLayout);
    /// Attention of the queries over the cached keys and values, into `to`.
    fn attention(&mut self, to: Buf);
    /// [`Block::attention`] as llama.cpp's CPU flash attention computes it (queries, keys and
    /// values rounded to halves, the weighted sum kept in halves) when the kernels round
    /// activations as llama.cpp does; [`Block::attention`] otherwise.
    fn attention_f16(&mut self, to: Buf) {
        self.attention(to);
    }
    /// RMSNorm of each query head (in `Q`) by `weight(q)` and of each new key head (in the
    /// cache) by `weight(k)`.
    fn head_norms(&mut self, q: LayerTensor, k: LayerTensor) -> Result<()>;
    /// `Hb = silu(Hb) * Hb2`.
    fn swiglu(&mut self);
    /// `Hb = gelu(Hb) * Hb2` (GELU in its tanh form).
    fn geglu(&mut self);
    /// `X += from`.
    fn add(&mut self, from: Buf);
}
