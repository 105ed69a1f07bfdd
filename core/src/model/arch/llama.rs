//! Llama (and the models that share its GGUF schema: Llama 2/3, TinyLlama, llama2.c's
//! stories): the `llama.*` keys, the nine tensor roles of a block with their shapes, and the
//! block itself, read top to bottom as in llama2.c's `forward`.

use crate::error::{Error, Result};
use crate::model::arch::seam::{Arch, Block, Buf, RopeLayout, Stops, Values};
use crate::model::config::{Config, LayerKind, LayerPattern};
use crate::model::tensor::LayerTensor;

/// The architecture.
pub const LLAMA: Arch = Arch { name: "llama", keys: &KEYS, config, roles: &ROLES, block, stops: Stops::Bos };

/// The tensors of a block, in the order the block uses them (the common shapes: Q is
/// `[dim][dim]` since `q_dim = dim`).
const ROLES: [LayerTensor; 9] = [
    LayerTensor::AttnNorm,
    LayerTensor::Q,
    LayerTensor::K,
    LayerTensor::V,
    LayerTensor::AttnOut,
    LayerTensor::FfnNorm,
    LayerTensor::Gate,
    LayerTensor::Up,
    LayerTensor::Down,
];

const EMBEDDING_LENGTH: usize = 0;
const FEED_FORWARD_LENGTH: usize = 1;
const BLOCK_COUNT: usize = 2;
const HEAD_COUNT: usize = 3;
const HEAD_COUNT_KV: usize = 4;
const CONTEXT_LENGTH: usize = 5;
const ROPE_DIMENSION_COUNT: usize = 6;
const ROPE_FREQ_BASE: usize = 7;
const RMS_EPSILON: usize = 8;

/// The keys, indexed by the constants above.
pub const KEYS: [&str; 9] = [
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.block_count",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.context_length",
    "llama.rope.dimension_count",
    "llama.rope.freq_base",
    "llama.attention.layer_norm_rms_epsilon",
];

/// A u32 key: `None` when absent; 0 is malformed.
fn get(v: &Values, i: usize) -> Result<Option<u32>> {
    match v[i].map(|v| v.as_u32(KEYS[i])).transpose()?.flatten() {
        Some(0) => Err(Error::Malformed(KEYS[i])),
        other => Ok(other),
    }
}

fn need(v: &Values, i: usize) -> Result<u32> {
    get(v, i)?.ok_or(Error::MissingKey(KEYS[i]))
}

fn config(v: &Values, vocab: u32) -> Result<Config> {
    let dim = need(v, EMBEDDING_LENGTH)?;
    let n_heads = need(v, HEAD_COUNT)?;
    let n_kv_heads = get(v, HEAD_COUNT_KV)?.unwrap_or(n_heads);
    if dim % n_heads != 0 || n_heads % n_kv_heads != 0 || (dim / n_heads) % 2 != 0 {
        return Err(Error::Malformed("head counts do not divide the embedding width into even heads"));
    }
    let head_size = dim / n_heads;
    if get(v, ROPE_DIMENSION_COUNT)?.is_some_and(|rd| rd != head_size) {
        return Err(Error::Malformed(
            "partial rotary embeddings (rope.dimension_count != head size) are not supported",
        ));
    }
    let rope_theta = v[ROPE_FREQ_BASE].and_then(|v| v.as_f32()).unwrap_or(10000.0);
    Ok(Config {
        dim,
        hidden_dim: need(v, FEED_FORWARD_LENGTH)?,
        n_layers: need(v, BLOCK_COUNT)?,
        n_heads,
        n_kv_heads,
        head_size,
        q_dim: dim,
        kv_dim: head_size * n_kv_heads,
        vocab,
        context_length: need(v, CONTEXT_LENGTH)?,
        rope_theta,
        rms_eps: v[RMS_EPSILON].and_then(|v| v.as_f32()).unwrap_or(1e-5),
        embedding_scale: None,
        logit_softcap: None,
        layers: LayerPattern::uniform(LayerKind::global(rope_theta)),
    })
}

fn block(b: &mut dyn Block) -> Result<()> {
    use Buf::{Hb, Hb2, Xb, Xb2, X};
    use LayerTensor::{AttnNorm, AttnOut, Down, FfnNorm, Gate, Up};
    // Attention: x -> rmsnorm -> q, k, v -> RoPE -> scores over the cache -> wo -> +x.
    b.norm(AttnNorm, X, Xb)?;
    b.matvec(LayerTensor::Q, Xb, Buf::Q)?;
    b.keys_values(Xb)?;
    b.rope(RopeLayout::Interleaved);
    b.attention(Xb);
    b.matvec(AttnOut, Xb, Xb2)?;
    b.add(Xb2);
    // FFN: x -> rmsnorm -> w2(silu(w1 x) * w3 x) -> +x.
    b.norm(FfnNorm, X, Xb)?;
    b.matvec(Gate, Xb, Hb)?;
    b.matvec(Up, Xb, Hb2)?;
    b.swiglu();
    b.matvec(Down, Hb, Xb)?;
    b.add(Xb);
    Ok(())
}

/// A header with this architecture's keys, for the core's tests.
#[cfg(test)]
pub(crate) fn test_header(dim: u32, hidden: u32, layers: u32, heads: u32, vocab: u64) -> crate::testutil::GgufWriter {
    let mut g = crate::testutil::GgufWriter::default();
    g.string("general.architecture", LLAMA.name)
        .u32(KEYS[EMBEDDING_LENGTH], dim)
        .u32(KEYS[FEED_FORWARD_LENGTH], hidden)
        .u32(KEYS[BLOCK_COUNT], layers)
        .u32(KEYS[HEAD_COUNT], heads)
        .u32(KEYS[CONTEXT_LENGTH], 64)
        .tokens(vocab);
    g
}
