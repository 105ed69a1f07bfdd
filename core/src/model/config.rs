//! Hyperparameters: the numbers every architecture's block is written in terms of, and the
//! per-layer kind (attention window, RoPE base). A leaf: the architecture fills it in.

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
    /// Positions a sliding-window layer sees (`None`: every layer sees all before it).
    pub sliding_window: Option<u32>,
    /// With a sliding window, layer `l` is global when `l % swa_pattern == swa_pattern - 1`.
    pub swa_pattern: u32,
    /// RoPE base frequency of the sliding-window layers.
    pub rope_theta_swa: f32,
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
