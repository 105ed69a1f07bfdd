//! Gemma 3 (the text decoder of Google's Gemma 3, as llama.cpp's `gemma3` converts it): the
//! `gemma3.*` keys, the thirteen tensor roles of a block with their shapes (queries wider than
//! the embedding: `q_dim = heads * key_length`), the sliding-window and global layers with
//! their RoPE bases, and the block as llama.cpp's `src/models/gemma3.cpp` computes it.
//! Must not touch the engine, the planner or another architecture.

use crate::error::{Error, Result};
use crate::model::arch::seam::{Arch, Block, Buf, RopeLayout, Stops, Values};
use crate::model::config::{Config, LayerKind, LayerPattern};
use crate::model::tensor::LayerTensor;

/// The architecture.
pub const GEMMA3: Arch =
    Arch { name: "gemma3", keys: &KEYS, config, roles: &ROLES, block, stops: Stops::Eos(&["<end_of_turn>"]) };

/// The tensors of a block, in the order the block uses them.
const ROLES: [LayerTensor; 13] = [
    LayerTensor::AttnNorm,
    LayerTensor::Q,
    LayerTensor::K,
    LayerTensor::V,
    LayerTensor::AttnQNorm,
    LayerTensor::AttnKNorm,
    LayerTensor::AttnOut,
    LayerTensor::PostAttnNorm,
    LayerTensor::FfnNorm,
    LayerTensor::Gate,
    LayerTensor::Up,
    LayerTensor::Down,
    LayerTensor::PostFfnNorm,
];

const EMBEDDING_LENGTH: usize = 0;
const FEED_FORWARD_LENGTH: usize = 1;
const BLOCK_COUNT: usize = 2;
const HEAD_COUNT: usize = 3;
const HEAD_COUNT_KV: usize = 4;
const CONTEXT_LENGTH: usize = 5;
const KEY_LENGTH: usize = 6;
const VALUE_LENGTH: usize = 7;
const ROPE_FREQ_BASE: usize = 8;
const ROPE_FREQ_BASE_SWA: usize = 9;
const RMS_EPSILON: usize = 10;
const SLIDING_WINDOW: usize = 11;
const SLIDING_WINDOW_PATTERN: usize = 12;
const FINAL_LOGIT_SOFTCAPPING: usize = 13;

/// The keys, indexed by the constants above.
pub const KEYS: [&str; 14] = [
    "gemma3.embedding_length",
    "gemma3.feed_forward_length",
    "gemma3.block_count",
    "gemma3.attention.head_count",
    "gemma3.attention.head_count_kv",
    "gemma3.context_length",
    "gemma3.attention.key_length",
    "gemma3.attention.value_length",
    "gemma3.rope.freq_base",
    "gemma3.rope.freq_base_swa",
    "gemma3.attention.layer_norm_rms_epsilon",
    "gemma3.attention.sliding_window",
    "gemma3.attention.sliding_window_pattern",
    "gemma3.final_logit_softcapping",
];

/// The sliding-window pattern when the file gives none: every sixth layer is global.
const DEFAULT_PATTERN: u32 = 6;
/// The RoPE base of the sliding-window layers when the file gives none.
const DEFAULT_BASE_SWA: f32 = 10000.0;

/// A u32 key: `None` when absent.
fn get(v: &Values, i: usize) -> Result<Option<u32>> {
    Ok(v[i].map(|v| v.as_u32(KEYS[i])).transpose()?.flatten())
}

/// A u32 key that must be present and non-zero.
fn need(v: &Values, i: usize) -> Result<u32> {
    match get(v, i)? {
        Some(0) => Err(Error::Malformed(KEYS[i])),
        Some(n) => Ok(n),
        None => Err(Error::MissingKey(KEYS[i])),
    }
}

fn config(v: &Values, vocab: u32) -> Result<Config> {
    let dim = need(v, EMBEDDING_LENGTH)?;
    let n_heads = need(v, HEAD_COUNT)?;
    let n_kv_heads = get(v, HEAD_COUNT_KV)?.filter(|&n| n > 0).unwrap_or(n_heads);
    let head_size = match get(v, KEY_LENGTH)? {
        Some(k) if k > 0 => k,
        _ if dim % n_heads == 0 => dim / n_heads,
        _ => return Err(Error::Malformed("gemma3: no key_length and heads do not divide the embedding width")),
    };
    if get(v, VALUE_LENGTH)?.is_some_and(|vl| vl != head_size) {
        return Err(Error::Malformed("gemma3: value_length != key_length is not supported"));
    }
    if n_heads % n_kv_heads != 0 || head_size % 2 != 0 {
        return Err(Error::Malformed("gemma3: query heads are not a multiple of KV heads, or the head size is odd"));
    }
    let q_dim = head_size.checked_mul(n_heads).ok_or(Error::Malformed("gemma3: heads * key_length overflows"))?;
    let kv_dim =
        head_size.checked_mul(n_kv_heads).ok_or(Error::Malformed("gemma3: kv heads * key_length overflows"))?;
    let float = |i: usize| v[i].and_then(|v| v.as_f32());
    let rope_theta = float(ROPE_FREQ_BASE).unwrap_or(10000.0);
    let global = LayerKind::global(rope_theta);
    // llama.cpp's pattern: layer `l` is global when `l % pattern == pattern - 1`, and a pattern
    // of 0 makes every layer local; without a window every layer is global.
    let layers = match get(v, SLIDING_WINDOW)?.filter(|&w| w > 0) {
        Some(window) => LayerPattern {
            period: get(v, SLIDING_WINDOW_PATTERN)?.unwrap_or(DEFAULT_PATTERN),
            local: LayerKind { window: Some(window), rope_base: float(ROPE_FREQ_BASE_SWA).unwrap_or(DEFAULT_BASE_SWA) },
            global,
        },
        None => LayerPattern::uniform(global),
    };
    Ok(Config {
        dim,
        hidden_dim: need(v, FEED_FORWARD_LENGTH)?,
        n_layers: need(v, BLOCK_COUNT)?,
        n_heads,
        n_kv_heads,
        head_size,
        q_dim,
        kv_dim,
        vocab,
        context_length: need(v, CONTEXT_LENGTH)?,
        rope_theta,
        rms_eps: float(RMS_EPSILON).unwrap_or(1e-6),
        // llama.cpp scales by sqrtf(n_embd) in f32.
        embedding_scale: Some(libm::sqrtf(dim as f32)),
        logit_softcap: float(FINAL_LOGIT_SOFTCAPPING).filter(|&c| c != 0.0),
        layers,
    })
}

fn block(b: &mut dyn Block) -> Result<()> {
    use Buf::{Hb, Hb2, Xb, Xb2, X};
    use LayerTensor::{AttnKNorm, AttnNorm, AttnOut, AttnQNorm, Down, FfnNorm, Gate, PostAttnNorm, PostFfnNorm, Up};
    // Attention: x -> rmsnorm -> q, k, v -> per-head rmsnorm of q and k -> NeoX RoPE ->
    // scores (q . k / sqrt(head_size): llama.cpp's 1/sqrt(key_length) on Q) over the cache,
    // windowed on local layers (in halves, as llama.cpp's flash attention, on the path that
    // rounds activations as llama.cpp) -> wo -> rmsnorm -> +x.
    b.norm(AttnNorm, X, Xb)?;
    b.matvec(LayerTensor::Q, Xb, Buf::Q)?;
    b.keys_values(Xb)?;
    b.head_norms(AttnQNorm, AttnKNorm)?;
    b.rope(RopeLayout::Neox);
    b.attention_f16(Xb);
    b.matvec(AttnOut, Xb, Xb2)?;
    b.norm(PostAttnNorm, Xb2, Xb2)?;
    b.add(Xb2);
    // FFN: x -> rmsnorm -> down(gelu(gate x) * up x) -> rmsnorm -> +x.
    b.norm(FfnNorm, X, Xb)?;
    b.matvec(Gate, Xb, Hb)?;
    b.matvec(Up, Xb, Hb2)?;
    b.geglu();
    b.matvec(Down, Hb, Xb)?;
    b.norm(PostFfnNorm, Xb, Xb)?;
    b.add(Xb);
    Ok(())
}
