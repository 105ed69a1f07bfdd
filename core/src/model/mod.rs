//! What the model is: hyperparameters and where each tensor sits in storage.
//!
//! Owns [`ModelInfo`], built from the GGUF header and tensor table and checked against itself
//! (shapes, types, ranges in the file), so that nothing downstream has to re-validate input.
//! It reads no weights; it knows nothing of the arena or the cache.

pub mod tensor;

use crate::error::{Error, Result};
use crate::gguf::{self, Header};
use crate::quant::GgmlType;
use crate::storage::Storage;
pub use tensor::{LayerTensor, TensorName, TensorRef};

/// Most layers a model may have in this build.
pub const MAX_LAYERS: usize = 128;

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
            // The tensor lies inside the file before anything else is asked of it.
            tensor_end(e.offset, ty, rows, cols, file_len)?;
            // The norm weights are read as raw f32 by the forward pass, never decoded.
            if name.is_norm() && ty != GgmlType::F32 {
                return Err(Error::UnsupportedType { tensor: name, ggml_type: e.ggml_type });
            }
            let (erows, ecols) = expected_shape(&config, name);
            if (rows, cols) != (erows as u64, ecols as u64) {
                return Err(Error::BadShape { tensor: name, expected: (erows, ecols), found: (rows, cols) });
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

    /// The layer matrices (every layer tensor but the norms), in access order, with their names.
    pub fn matrices(&self) -> impl Iterator<Item = (TensorName, &TensorRef)> + '_ {
        self.layers.iter().enumerate().flat_map(|(l, layer)| {
            layer
                .iter()
                .zip(LayerTensor::ALL)
                .filter(|(_, lt)| !lt.is_norm())
                .map(move |(t, lt)| (TensorName::Layer(l as u16, lt), t))
        })
    }

    /// The norm weights in the order of the norms region: per layer attention then FFN, then
    /// the final norm.
    pub fn norms(&self) -> impl Iterator<Item = TensorRef> + '_ {
        self.layers
            .iter()
            .flat_map(|l| [l[LayerTensor::AttnNorm as usize], l[LayerTensor::FfnNorm as usize]])
            .chain([self.output_norm])
    }

    /// The position of matrix `name` in unit order: per layer its matrices, then the
    /// classifier (`None` for a norm or an absent layer).
    pub fn matrix_ordinal(&self, name: TensorName) -> Option<usize> {
        const PER_LAYER: usize = 7;
        match name {
            TensorName::Layer(l, t) if !t.is_norm() && (l as usize) < self.layers.len() => Some(
                l as usize * PER_LAYER + (t as usize - 1 - usize::from(t as usize > LayerTensor::FfnNorm as usize)),
            ),
            TensorName::Output => Some(self.layers.len() * PER_LAYER),
            _ => None,
        }
    }

    /// Bytes of all distinct weights (the classifier counts once when tied).
    pub fn weight_bytes(&self) -> u64 {
        let layers: u64 = self.layers.iter().flat_map(|l| l.iter()).map(TensorRef::bytes).sum();
        let output = if self.tied_output { 0 } else { self.output.bytes() };
        layers + self.token_embd.bytes() + self.output_norm.bytes() + output
    }
}

/// Where a tensor of `rows` x `cols` elements of `ty` at `offset` ends, checked: the size is
/// computed without overflow and the tensor must end inside a file of `file_len` bytes.
fn tensor_end(offset: u64, ty: GgmlType, rows: u64, cols: u64, file_len: u64) -> Result<u64> {
    // A row of more than 2^32 elements is refused before its size is computed (it fits no file).
    if cols > u32::MAX as u64 || rows > u32::MAX as u64 {
        return Err(Error::Malformed("tensor dimension exceeds 2^32 elements"));
    }
    let row_bytes = ty.row_bytes(cols).ok_or(Error::Malformed("row length is not a whole number of blocks"))?;
    let bytes = row_bytes.checked_mul(rows).ok_or(Error::Malformed("tensor size overflows 64 bits"))?;
    let end = offset.checked_add(bytes).ok_or(Error::Malformed("tensor offset + size overflows 64 bits"))?;
    if end > file_len {
        return Err(Error::Truncated { what: "tensor data", end, file_len });
    }
    Ok(end)
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
mod tests;
