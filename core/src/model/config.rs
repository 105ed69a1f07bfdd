//! Hyperparameters: the numbers every architecture's block is written in terms of, and the
//! per-layer kind (attention window, RoPE base) as a repeating pattern. A leaf: the
//! architecture fills it in from its keys; nothing here is named after an architecture.

/// Hyperparameters of a decoder-only transformer.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Embedding width.
    pub dim: u32,
    /// FFN width.
    pub hidden_dim: u32,
    /// Transformer blocks.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: u32,
    /// Elements per head.
    pub head_size: u32,
    /// `head_size * n_heads`: the width of the queries and of the attention output (the
    /// embedding width in some architectures, not in all).
    pub q_dim: u32,
    /// `head_size * n_kv_heads`.
    pub kv_dim: u32,
    /// Vocabulary size.
    pub vocab: u32,
    /// Longest context the model declares.
    pub context_length: u32,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// The factor the embedding rows are multiplied by (`None`: used as stored).
    pub embedding_scale: Option<f32>,
    /// Final logits become `cap * tanh(logits / cap)` (`None`: no cap).
    pub logit_softcap: Option<f32>,
    /// The kind of each layer.
    pub layers: LayerPattern,
}

/// What kind of attention one layer has.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LayerKind {
    /// Positions a query sees (`None`: all before it). The KV cache keeps this many.
    pub window: Option<u32>,
    /// RoPE base frequency of the layer.
    pub rope_base: f32,
}

impl LayerKind {
    /// Full attention at RoPE base `rope_base`.
    pub const fn global(rope_base: f32) -> LayerKind {
        LayerKind { window: None, rope_base }
    }
}

/// The kinds of the layers, as a repeating pattern of local layers closed by a global one
/// (llama.cpp's `swa_pattern`): layer `l` is global when `l % period == period - 1`, local
/// otherwise. A period of 1 makes every layer global, 0 every layer local.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LayerPattern {
    /// The pattern's length.
    pub period: u32,
    /// The kind of a local layer.
    pub local: LayerKind,
    /// The kind of a global layer.
    pub global: LayerKind,
}

impl LayerPattern {
    /// Every layer of kind `kind`.
    pub const fn uniform(kind: LayerKind) -> LayerPattern {
        LayerPattern { period: 1, local: kind, global: kind }
    }

    /// The kind of layer `l`.
    pub fn kind(&self, l: u32) -> LayerKind {
        if self.period != 0 && l % self.period == self.period - 1 {
            self.global
        } else {
            self.local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_period_th_layer_is_global() {
        let local = LayerKind { window: Some(512), rope_base: 1e4 };
        let global = LayerKind::global(1e6);
        let p = LayerPattern { period: 6, local, global };
        let kinds: [LayerKind; 12] = core::array::from_fn(|l| p.kind(l as u32));
        for (l, k) in kinds.iter().enumerate() {
            assert_eq!(*k, if l == 5 || l == 11 { global } else { local }, "layer {l}");
        }
        assert!((0..8).all(|l| LayerPattern { period: 0, ..p }.kind(l) == local));
        assert!((0..8).all(|l| LayerPattern::uniform(global).kind(l) == global));
    }
}
