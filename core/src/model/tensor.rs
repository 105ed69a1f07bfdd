//! Tensor roles: what each tensor of a model is for ([`TensorName`]), its GGUF name, and where
//! its bytes sit in storage ([`TensorRef`]). A leaf: it knows the quant type table and nothing
//! else of the core.

use core::fmt;

use crate::quant::GgmlType;

/// The roles a tensor of a transformer block can have (every architecture uses some of
/// them, in its own order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum LayerTensor {
    /// RMSNorm weight before attention, `[dim]`.
    AttnNorm,
    /// Query projection, `[q_dim][dim]`.
    Q,
    /// Key projection, `[kv_dim][dim]`.
    K,
    /// Value projection, `[kv_dim][dim]`.
    V,
    /// Attention output projection, `[dim][q_dim]`.
    AttnOut,
    /// RMSNorm weight before the FFN, `[dim]`.
    FfnNorm,
    /// SwiGLU gate (w1), `[hidden][dim]`.
    Gate,
    /// SwiGLU up (w3), `[hidden][dim]`.
    Up,
    /// SwiGLU down (w2), `[dim][hidden]`.
    Down,
    /// RMSNorm weight of each query head, `[head_size]`.
    AttnQNorm,
    /// RMSNorm weight of each key head, `[head_size]`.
    AttnKNorm,
    /// RMSNorm weight after the attention output projection, `[dim]`.
    PostAttnNorm,
    /// RMSNorm weight after the FFN, `[dim]`.
    PostFfnNorm,
}

impl LayerTensor {
    /// All layer tensors, in access order.
    pub const ALL: [LayerTensor; 13] = [
        LayerTensor::AttnNorm,
        LayerTensor::Q,
        LayerTensor::K,
        LayerTensor::V,
        LayerTensor::AttnOut,
        LayerTensor::FfnNorm,
        LayerTensor::Gate,
        LayerTensor::Up,
        LayerTensor::Down,
        LayerTensor::AttnQNorm,
        LayerTensor::AttnKNorm,
        LayerTensor::PostAttnNorm,
        LayerTensor::PostFfnNorm,
    ];

    /// Whether the tensor is a norm weight (1-D, kept resident always).
    pub fn is_norm(self) -> bool {
        matches!(
            self,
            LayerTensor::AttnNorm
                | LayerTensor::FfnNorm
                | LayerTensor::AttnQNorm
                | LayerTensor::AttnKNorm
                | LayerTensor::PostAttnNorm
                | LayerTensor::PostFfnNorm
        )
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
            LayerTensor::AttnQNorm => "attn_q_norm",
            LayerTensor::AttnKNorm => "attn_k_norm",
            LayerTensor::PostAttnNorm => "post_attention_norm",
            LayerTensor::PostFfnNorm => "post_ffw_norm",
        }
    }
}

/// A tensor of a model, by role.
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
        match self {
            TensorName::OutputNorm => true,
            TensorName::Layer(_, t) => t.is_norm(),
            _ => false,
        }
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
    pub(crate) const EMPTY: TensorRef = TensorRef { offset: 0, ty: GgmlType::F32, rows: 0, cols: 0 };

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
