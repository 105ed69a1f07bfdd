//! Tensor roles: what each tensor of a model is for ([`LayerTensor`], with its GGUF name part
//! and its shape in [`Dim`]s as data), its name ([`TensorName`]), and where its bytes sit in storage
//! ([`TensorRef`]). A leaf: it knows the quant type table and the hyperparameters, nothing else
//! of the core, and names no architecture.

use core::fmt;

use crate::model::config::Config;
use crate::quant::GgmlType;

/// A width a tensor dimension is measured in, resolved against the [`Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dim {
    /// 1 (a norm weight is one row).
    One,
    /// The embedding width, `dim`.
    Embd,
    /// The query width, `q_dim`.
    Q,
    /// The key/value width, `kv_dim`.
    Kv,
    /// The FFN width, `hidden_dim`.
    Hidden,
    /// One head, `head_size`.
    Head,
    /// The vocabulary.
    Vocab,
}

impl Dim {
    /// The number of elements this width is in a model of `c`.
    pub fn of(self, c: &Config) -> u32 {
        match self {
            Dim::One => 1,
            Dim::Embd => c.dim,
            Dim::Q => c.q_dim,
            Dim::Kv => c.kv_dim,
            Dim::Hidden => c.hidden_dim,
            Dim::Head => c.head_size,
            Dim::Vocab => c.vocab,
        }
    }
}

/// The roles a tensor of a transformer block can have: the vocabulary every architecture
/// picks its roles from, in its own order. Each role's GGUF name and shape are data
/// ([`LayerTensor::ROLES`]); nothing matches on a role to find them. An architecture with a
/// role no other has adds one variant and one row there.
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
    /// FFN gate (w1), `[hidden][dim]`.
    Gate,
    /// FFN up (w3), `[hidden][dim]`.
    Up,
    /// FFN down (w2), `[dim][hidden]`.
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

/// What a role is in a file: its GGUF name part and its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role.
    pub role: LayerTensor,
    /// The GGUF name part, as in `blk.N.<part>.weight`.
    pub part: &'static str,
    /// Rows (1 for a norm weight).
    pub rows: Dim,
    /// Columns.
    pub cols: Dim,
}

const fn role(role: LayerTensor, part: &'static str, rows: Dim, cols: Dim) -> RoleInfo {
    RoleInfo { role, part, rows, cols }
}

impl LayerTensor {
    /// Every role's name and shape, in declaration order (indexed by the role).
    pub const ROLES: [RoleInfo; 13] = [
        role(LayerTensor::AttnNorm, "attn_norm", Dim::One, Dim::Embd),
        role(LayerTensor::Q, "attn_q", Dim::Q, Dim::Embd),
        role(LayerTensor::K, "attn_k", Dim::Kv, Dim::Embd),
        role(LayerTensor::V, "attn_v", Dim::Kv, Dim::Embd),
        role(LayerTensor::AttnOut, "attn_output", Dim::Embd, Dim::Q),
        role(LayerTensor::FfnNorm, "ffn_norm", Dim::One, Dim::Embd),
        role(LayerTensor::Gate, "ffn_gate", Dim::Hidden, Dim::Embd),
        role(LayerTensor::Up, "ffn_up", Dim::Hidden, Dim::Embd),
        role(LayerTensor::Down, "ffn_down", Dim::Embd, Dim::Hidden),
        role(LayerTensor::AttnQNorm, "attn_q_norm", Dim::One, Dim::Head),
        role(LayerTensor::AttnKNorm, "attn_k_norm", Dim::One, Dim::Head),
        role(LayerTensor::PostAttnNorm, "post_attention_norm", Dim::One, Dim::Embd),
        role(LayerTensor::PostFfnNorm, "post_ffw_norm", Dim::One, Dim::Embd),
    ];

    /// How many roles there are.
    pub const COUNT: usize = Self::ROLES.len();

    /// This role's name and shape.
    pub fn info(self) -> &'static RoleInfo {
        &Self::ROLES[self as usize]
    }

    /// Whether the tensor is a norm weight (one row, kept resident always).
    pub fn is_norm(self) -> bool {
        self.info().rows == Dim::One
    }

    /// The GGUF name part, as in `blk.N.<part>.weight`.
    pub fn gguf_part(self) -> &'static str {
        self.info().part
    }

    /// Its (rows, cols) in a model of `c`.
    pub fn shape(self, c: &Config) -> (u32, u32) {
        let i = self.info();
        (i.rows.of(c), i.cols.of(c))
    }
}

// The table is indexed by the role.
const _: () = {
    let mut i = 0;
    while i < LayerTensor::ROLES.len() {
        assert!(LayerTensor::ROLES[i].role as usize == i, "LayerTensor::ROLES is out of declaration order");
        i += 1;
    }
};

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
    /// `rope_freqs.weight`, `[head_size / 2]`: one RoPE frequency factor per pair of a head
    /// (Llama 3.1/3.2's long-context scaling), for every layer. Optional.
    RopeFreqs,
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorName::TokenEmbd => f.write_str("token_embd.weight"),
            TensorName::OutputNorm => f.write_str("output_norm.weight"),
            TensorName::Output => f.write_str("output.weight"),
            TensorName::Layer(l, t) => write!(f, "blk.{l}.{}.weight", t.gguf_part()),
            TensorName::RopeFreqs => f.write_str("rope_freqs.weight"),
        }
    }
}

impl TensorName {
    /// Its (rows, cols) in a model of `c`.
    pub fn shape(self, c: &Config) -> (u32, u32) {
        match self {
            TensorName::TokenEmbd | TensorName::Output => (c.vocab, c.dim),
            TensorName::OutputNorm => (1, c.dim),
            TensorName::Layer(_, t) => t.shape(c),
            TensorName::RopeFreqs => (1, c.head_size / 2),
        }
    }

    /// Whether the forward pass reads this tensor as raw f32 (a norm weight or the RoPE
    /// factors), so it must be F32 and is kept resident.
    pub fn is_raw_f32(self) -> bool {
        self.is_norm() || self == TensorName::RopeFreqs
    }

    /// Whether this is a 1-D RMSNorm weight (which must be F32).
    pub fn is_norm(self) -> bool {
        match self {
            TensorName::OutputNorm => true,
            TensorName::Layer(_, t) => t.is_norm(),
            _ => false,
        }
    }

    /// Parses a GGUF tensor name against the layer roles of an architecture; `None` for
    /// tensors the model does not use.
    pub fn parse(name: &[u8], roles: &[LayerTensor]) -> Option<Self> {
        let name = core::str::from_utf8(name).ok()?;
        match name {
            "token_embd.weight" => return Some(TensorName::TokenEmbd),
            "output_norm.weight" => return Some(TensorName::OutputNorm),
            "output.weight" => return Some(TensorName::Output),
            "rope_freqs.weight" => return Some(TensorName::RopeFreqs),
            _ => {}
        }
        let rest = name.strip_prefix("blk.")?.strip_suffix(".weight")?;
        let (layer, part) = rest.split_once('.')?;
        let layer: u16 = layer.parse().ok()?;
        let t = roles.iter().copied().find(|t| t.gguf_part() == part)?;
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
        const ROLES: [LayerTensor; 2] = [LayerTensor::Q, LayerTensor::Down];
        assert!(LayerTensor::ROLES.iter().all(|r| r.role.is_norm() == r.part.ends_with("norm")));
        for name in [
            TensorName::TokenEmbd,
            TensorName::OutputNorm,
            TensorName::Output,
            TensorName::Layer(0, LayerTensor::Q),
            TensorName::Layer(31, LayerTensor::Down),
            TensorName::RopeFreqs,
        ] {
            let mut buf = heapless::String::<64>::new();
            core::fmt::write(&mut buf, format_args!("{name}")).unwrap();
            assert_eq!(TensorName::parse(buf.as_bytes(), &ROLES), Some(name));
        }
        assert_eq!(TensorName::parse(b"blk.x.attn_q.weight", &ROLES), None);
        // A role the architecture lacks is not a tensor of its model.
        assert_eq!(TensorName::parse(b"blk.0.attn_q_norm.weight", &ROLES), None);
    }
}
