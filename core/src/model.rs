//! What the model is: hyperparameters and where each tensor sits in storage.
//!
//! Owns [`ModelInfo`], built from the GGUF header and tensor table and checked against itself
//! (shapes, types, ranges in the file), so that nothing downstream has to re-validate input.
//! It reads no weights; it knows nothing of the arena or the cache.

use core::fmt;

use crate::error::{Error, Result};
use crate::gguf::{self, Header};
use crate::quant::GgmlType;
use crate::storage::Storage;

/// Most layers a model may have in this build.
pub const MAX_LAYERS: usize = 128;

/// The tensors of one transformer block, in the order the forward pass uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum LayerTensor {
    /// RMSNorm weight before attention, `[dim]`.
    AttnNorm,
    /// Query projection, `[dim][dim]`.
    Q,
    /// Key projection, `[kv_dim][dim]`.
    K,
    /// Value projection, `[kv_dim][dim]`.
    V,
    /// Attention output projection, `[dim][dim]`.
    AttnOut,
    /// RMSNorm weight before the FFN, `[dim]`.
    FfnNorm,
    /// SwiGLU gate (w1), `[hidden][dim]`.
    Gate,
    /// SwiGLU up (w3), `[hidden][dim]`.
    Up,
    /// SwiGLU down (w2), `[dim][hidden]`.
    Down,
}

impl LayerTensor {
    /// All layer tensors, in access order.
    pub const ALL: [LayerTensor; 9] = [
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

    /// Whether the tensor is a norm weight (1-D, kept resident always).
    pub fn is_norm(self) -> bool {
        matches!(self, LayerTensor::AttnNorm | LayerTensor::FfnNorm)
    }

    /// The GGUF name part, as in `blk.N.<part>.weight`.
    pub fn gguf_part(self) -> &'static str {
        match self {
            LayerTensor::AttnNorm => "attn_norm",
            LayerTensor::Q => "attn_q",
            LayerTensor::K => "attn_k",
            LayerTensor::V => "attn_v",
            LayerTensor::AttnOut => "attn_output",
            LayerTensor::FfnNorm => "ffn_norm",
            LayerTensor::Gate => "ffn_gate",
            LayerTensor::Up => "ffn_up",
            LayerTensor::Down => "ffn_down",
        }
    }
}

/// A tensor of a Llama model, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TensorName {
    /// `token_embd.weight`, `[vocab][dim]`.
    TokenEmbd,
    /// `output_norm.weight`, `[dim]`.
    OutputNorm,
    /// `output.weight` (the classifier), `[vocab][dim]`.
    Output,
    /// `blk.N.*.weight`.
    Layer(u16, LayerTensor),
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorName::TokenEmbd => f.write_str("token_embd.weight"),
            TensorName::OutputNorm => f.write_str("output_norm.weight"),
            TensorName::Output => f.write_str("output.weight"),
            TensorName::Layer(l, t) => write!(f, "blk.{l}.{}.weight", t.gguf_part()),
        }
    }
}

impl TensorName {
    /// Whether this is a 1-D RMSNorm weight (which must be F32).
    pub fn is_norm(self) -> bool {
        matches!(self, TensorName::OutputNorm | TensorName::Layer(_, LayerTensor::AttnNorm | LayerTensor::FfnNorm))
    }

    /// Parses a GGUF tensor name; `None` for tensors the model does not use.
    pub fn parse(name: &[u8]) -> Option<Self> {
        let name = core::str::from_utf8(name).ok()?;
        match name {
            "token_embd.weight" => return Some(TensorName::TokenEmbd),
            "output_norm.weight" => return Some(TensorName::OutputNorm),
            "output.weight" => return Some(TensorName::Output),
            _ => {}
        }
        let rest = name.strip_prefix("blk.")?.strip_suffix(".weight")?;
        let (layer, part) = rest.split_once('.')?;
        let layer: u16 = layer.parse().ok()?;
        let t = LayerTensor::ALL.into_iter().find(|t| t.gguf_part() == part)?;
        Some(TensorName::Layer(layer, t))
    }
}

/// Where a tensor's bytes are in storage, and their type and shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TensorRef {
    /// Absolute offset in storage.
    pub offset: u64,
    /// Element type.
    pub ty: GgmlType,
    /// Rows (outputs of a matvec).
    pub rows: u32,
    /// Columns (elements per row).
    pub cols: u32,
}

impl TensorRef {
    const EMPTY: TensorRef = TensorRef { offset: 0, ty: GgmlType::F32, rows: 0, cols: 0 };

    /// Bytes of one row.
    pub fn row_bytes(&self) -> u64 {
        // Checked when the model was loaded.
        self.ty.row_bytes(self.cols as u64).unwrap_or(0)
    }

    /// Bytes of the whole tensor.
    pub fn bytes(&self) -> u64 {
        self.row_bytes() * self.rows as u64
    }
}

/// Llama hyperparameters.
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
    /// `dim / n_heads`.
    pub head_size: u32,
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
}

/// A Llama model as described by its file: hyperparameters, tokenizer location, tensors.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Hyperparameters.
    pub config: Config,
    /// The parsed GGUF metadata.
    pub header: Header,
    /// Token embedding table.
    pub token_embd: TensorRef,
    /// Final norm weight.
    pub output_norm: TensorRef,
    /// Classifier (the embedding table when the file ties them).
    pub output: TensorRef,
    /// Whether the classifier is the embedding table.
    pub tied_output: bool,
    /// Per layer, the tensors in [`LayerTensor::ALL`] order.
    pub layers: heapless::Vec<[TensorRef; 9], MAX_LAYERS>,
    /// Bytes read to parse the header and the tensor table.
    pub parse_bytes: u64,
    /// Length of the storage.
    pub file_len: u64,
}

fn need(v: Option<u32>, key: &'static str) -> Result<u32> {
    match v {
        Some(0) => Err(Error::Malformed(key)),
        Some(v) => Ok(v),
        None => Err(Error::MissingKey(key)),
    }
}

impl ModelInfo {
    /// Parses and checks the model description in `storage`.
    pub fn load<S: Storage>(storage: &mut S) -> Result<Self> {
        let header = gguf::read_header(storage)?;
        if !header.is_llama {
            return Err(Error::UnsupportedArchitecture);
        }
        let dim = need(header.dim, "llama.embedding_length")?;
        let n_heads = need(header.n_heads, "llama.attention.head_count")?;
        let n_kv_heads = need(header.n_kv_heads.or(header.n_heads), "llama.attention.head_count_kv")?;
        if dim % n_heads != 0 || n_heads % n_kv_heads != 0 || (dim / n_heads) % 2 != 0 {
            return Err(Error::Malformed("head counts do not divide the embedding width into even heads"));
        }
        let tokens = header.tokens.ok_or(Error::MissingKey("tokenizer.ggml.tokens"))?;
        let vocab = u32::try_from(tokens.count).map_err(|_| Error::Malformed("vocabulary too large"))?;
        if vocab == 0 {
            return Err(Error::Malformed("empty vocabulary"));
        }
        let head_size = dim / n_heads;
        let config = Config {
            dim,
            hidden_dim: need(header.hidden_dim, "llama.feed_forward_length")?,
            n_layers: need(header.n_layers, "llama.block_count")?,
            n_heads,
            n_kv_heads,
            head_size,
            kv_dim: head_size * n_kv_heads,
            vocab,
            context_length: need(header.context_length, "llama.context_length")?,
            rope_theta: header.rope_theta.unwrap_or(10000.0),
            rms_eps: header.rms_eps.unwrap_or(1e-5),
        };
        if let Some(rd) = header.rope_dim {
            if rd != head_size {
                return Err(Error::Malformed(
                    "partial rotary embeddings (rope.dimension_count != head size) are not supported",
                ));
            }
        }
        if config.n_layers as usize > MAX_LAYERS {
            return Err(Error::TooMany { what: "layers", count: config.n_layers as u64, max: MAX_LAYERS as u64 });
        }

        let mut embd = None;
        let mut output_norm = None;
        let mut output = None;
        let mut layers: heapless::Vec<[Option<TensorRef>; 9], MAX_LAYERS> = heapless::Vec::new();
        for _ in 0..config.n_layers {
            // Capacity was checked against n_layers above.
            let _ = layers.push([None; 9]);
        }
        let file_len = storage.len();
        let table_bytes = gguf::for_each_tensor(storage, &header, |e| {
            let Some(name) = TensorName::parse(e.name).filter(|_| !e.truncated_name) else {
                return Ok(());
            };
            let (rows, cols) = e.rows_cols();
            let ty = GgmlType::from_id(e.ggml_type)
                .filter(|t| t.is_supported())
                .ok_or(Error::UnsupportedType { tensor: name, ggml_type: e.ggml_type })?;
            // The norm weights are read as raw f32 by the forward pass, never decoded.
            if name.is_norm() && ty != GgmlType::F32 {
                return Err(Error::UnsupportedType { tensor: name, ggml_type: e.ggml_type });
            }
            let (erows, ecols) = expected_shape(&config, name);
            if (rows, cols) != (erows as u64, ecols as u64) {
                return Err(Error::BadShape { tensor: name, expected: (erows, ecols), found: (rows, cols) });
            }
            let row_bytes = ty.row_bytes(cols).ok_or(Error::Malformed("row length is not a whole number of blocks"))?;
            let end = e.offset + row_bytes * rows;
            if end > file_len {
                return Err(Error::Truncated { what: "tensor data", end, file_len });
            }
            let t = TensorRef { offset: e.offset, ty, rows: erows, cols: ecols };
            let slot = match name {
                TensorName::TokenEmbd => &mut embd,
                TensorName::OutputNorm => &mut output_norm,
                TensorName::Output => &mut output,
                TensorName::Layer(l, lt) => match layers.get_mut(l as usize) {
                    Some(layer) => &mut layer[lt as usize],
                    None => return Ok(()),
                },
            };
            *slot = Some(t);
            Ok(())
        })?;

        let token_embd = embd.ok_or(Error::MissingTensor(TensorName::TokenEmbd))?;
        let tied_output = output.is_none();
        let mut info = ModelInfo {
            config,
            header,
            token_embd,
            output_norm: output_norm.ok_or(Error::MissingTensor(TensorName::OutputNorm))?,
            output: output.unwrap_or(token_embd),
            tied_output,
            layers: heapless::Vec::new(),
            parse_bytes: header.bytes_read + table_bytes,
            file_len,
        };
        for (l, layer) in layers.iter().enumerate() {
            let mut refs = [TensorRef::EMPTY; 9];
            for (r, (t, lt)) in refs.iter_mut().zip(layer.iter().zip(LayerTensor::ALL)) {
                *r = t.ok_or(Error::MissingTensor(TensorName::Layer(l as u16, lt)))?;
            }
            let _ = info.layers.push(refs);
        }
        Ok(info)
    }

    /// The tensor `t` of layer `layer`.
    pub fn layer_tensor(&self, layer: usize, t: LayerTensor) -> &TensorRef {
        &self.layers[layer][t as usize]
    }

    /// The tensor with this name.
    pub fn tensor(&self, name: TensorName) -> TensorRef {
        match name {
            TensorName::TokenEmbd => self.token_embd,
            TensorName::OutputNorm => self.output_norm,
            TensorName::Output => self.output,
            TensorName::Layer(l, t) => *self.layer_tensor(l as usize, t),
        }
    }

    /// Bytes of all distinct weights (the classifier counts once when tied).
    pub fn weight_bytes(&self) -> u64 {
        let layers: u64 = self.layers.iter().flat_map(|l| l.iter()).map(TensorRef::bytes).sum();
        let output = if self.tied_output { 0 } else { self.output.bytes() };
        layers + self.token_embd.bytes() + self.output_norm.bytes() + output
    }
}

/// (rows, cols) a tensor must have.
fn expected_shape(c: &Config, name: TensorName) -> (u32, u32) {
    match name {
        TensorName::TokenEmbd | TensorName::Output => (c.vocab, c.dim),
        TensorName::OutputNorm => (1, c.dim),
        TensorName::Layer(_, t) => match t {
            LayerTensor::AttnNorm | LayerTensor::FfnNorm => (1, c.dim),
            LayerTensor::Q | LayerTensor::AttnOut => (c.dim, c.dim),
            LayerTensor::K | LayerTensor::V => (c.kv_dim, c.dim),
            LayerTensor::Gate | LayerTensor::Up => (c.hidden_dim, c.dim),
            LayerTensor::Down => (c.dim, c.hidden_dim),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_round_trip() {
        for name in [
            TensorName::TokenEmbd,
            TensorName::OutputNorm,
            TensorName::Output,
            TensorName::Layer(0, LayerTensor::Q),
            TensorName::Layer(31, LayerTensor::Down),
        ] {
            let mut buf = heapless::String::<64>::new();
            core::fmt::write(&mut buf, format_args!("{name}")).unwrap();
            assert_eq!(TensorName::parse(buf.as_bytes()), Some(name));
        }
        assert_eq!(TensorName::parse(b"rope_freqs.weight"), None);
        assert_eq!(TensorName::parse(b"blk.x.attn_q.weight"), None);
    }
}
