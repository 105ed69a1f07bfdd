//! What the model is: its architecture, hyperparameters and where each tensor sits in storage.
//!
//! Owns [`ModelInfo`], built from the GGUF header and tensor table through the architecture
//! the file names ([`arch`]) and checked against itself (shapes, types, ranges in the file), so
//! that nothing downstream has to re-validate input. It reads no weights; it knows nothing of
//! the arena or the cache.

pub mod arch;
pub mod config;
pub mod tensor;

use crate::error::{Error, Result};
use crate::gguf::{self, Header};
use crate::quant::GgmlType;
use crate::storage::Storage;
pub use arch::Arch;
pub use config::{Config, LayerKind, LayerPattern};
pub use tensor::{Dim, LayerTensor, TensorName, TensorRef};

/// Most layers a model may have: a sanity limit on hostile input, and the capacity of the
/// owned table of [`ModelInfo::load`] (an engine keeps its table in the arena, sized exactly).
pub const MAX_LAYERS: usize = 128;

/// Tensor roles a layer can hold (the table is keyed by the position of a role in
/// [`Arch::roles`]).
pub const ROLES: usize = arch::MAX_ROLES;

/// One layer's tensors, in the order of [`Arch::roles`] (the rest are empty).
pub type Layer = [TensorRef; ROLES];

/// The per-layer tensor table [`ModelInfo::load`] returns: owned, of capacity [`MAX_LAYERS`].
pub type OwnedLayers = heapless::Vec<Layer, MAX_LAYERS>;

/// Where a [`ModelInfo`] keeps its per-layer table: owned ([`OwnedLayers`]) or a view of an
/// arena (`&[Layer]`, as an engine holds it).
pub trait LayerTable: core::ops::Deref<Target = [Layer]> {}
impl<T: core::ops::Deref<Target = [Layer]>> LayerTable for T {}

/// A model as described by its file: architecture, hyperparameters, tokenizer location, tensors.
#[derive(Debug, Clone)]
pub struct ModelInfo<L: LayerTable = OwnedLayers> {
    /// The architecture the file names.
    pub arch: &'static Arch,
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
    /// RoPE frequency factors (`rope_freqs.weight`, F32, `head_size / 2`), when the file has
    /// them: kept resident after the final norm in the norms region.
    pub rope_freqs: Option<TensorRef>,
    /// Per layer, the tensors in the order of [`Arch::roles`] (the rest are empty).
    pub layers: L,
    /// Bytes read to parse the header and the tensor table.
    pub parse_bytes: u64,
    /// Length of the storage.
    pub file_len: u64,
}

impl ModelInfo {
    /// Parses and checks the model description in `storage`, into an owned table.
    pub fn load<S: Storage>(storage: &mut S) -> Result<Self> {
        Self::load_with(storage, |n| {
            let mut layers = OwnedLayers::new();
            // `n` was checked against MAX_LAYERS.
            let _ = layers.resize(n, [TensorRef::EMPTY; ROLES]);
            Ok(layers)
        })
    }
}

impl<'a> ModelInfo<&'a mut [Layer]> {
    /// The same description, its table no longer written.
    pub fn into_shared(self) -> ModelInfo<&'a [Layer]> {
        let ModelInfo {
            arch,
            config,
            header,
            token_embd,
            output_norm,
            output,
            tied_output,
            rope_freqs,
            layers,
            parse_bytes,
            file_len,
        } = self;
        ModelInfo {
            arch,
            config,
            header,
            token_embd,
            output_norm,
            output,
            tied_output,
            rope_freqs,
            layers,
            parse_bytes,
            file_len,
        }
    }
}

/// What the header phase found: the metadata, the architecture, its hyperparameters and the
/// vocabulary size.
pub(crate) type ParsedHeader = (Header, &'static Arch, Config, u32);

/// The header phase of [`ModelInfo::load_with`]: the GGUF metadata, the architecture it names,
/// its hyperparameters and the vocabulary size. Not inlined, so that the metadata visitor's
/// per-architecture table and the header reader's buffer leave the stack before the tensor
/// table is walked (`Engine::new`'s stack peak on a microcontroller).
#[inline(never)]
pub(crate) fn parse_header<S: Storage>(storage: &mut S) -> Result<ParsedHeader> {
    let mut collected = arch::Collected::default();
    let header = gguf::read_header_with(storage, |key, value| {
        collected.visit(key, value);
        Ok(())
    })?;
    let name = header.architecture;
    // Absent, or not a string (the reader keeps only a string value).
    if name.as_bytes().is_empty() {
        return Err(Error::MissingKey("general.architecture (a string)"));
    }
    let arch = arch::find(name.as_bytes()).ok_or(Error::UnsupportedArchitecture { name, supported: &arch::NAMES })?;
    let tokens = header.tokens.ok_or(Error::MissingKey("tokenizer.ggml.tokens"))?;
    let vocab = u32::try_from(tokens.count).map_err(|_| Error::Malformed("vocabulary too large"))?;
    if vocab == 0 {
        return Err(Error::Malformed("empty vocabulary"));
    }
    let config = (arch.config)(collected.of(arch), vocab)?;
    if config.n_layers as usize > MAX_LAYERS {
        return Err(Error::TooMany { what: "layers", count: config.n_layers as u64, max: MAX_LAYERS as u64 });
    }

    Ok((header, arch, config, vocab))
}

impl<L: LayerTable> ModelInfo<L> {
    /// Parses and checks the model description in `storage`; `table(n_layers)` gives the
    /// per-layer table to fill (`n_layers` rows of empty references, at most [`MAX_LAYERS`]),
    /// once the header has said how many layers there are.
    pub fn load_with<S: Storage>(storage: &mut S, table: impl FnOnce(usize) -> Result<L>) -> Result<Self>
    where
        L: core::ops::DerefMut,
    {
        let parsed = parse_header(storage)?;
        let first = gguf::first_pass(storage, &parsed.0)?;
        Self::load_tensors(storage, parsed, first, table)
    }

    /// The tensor phase of [`ModelInfo::load_with`], after [`parse_header`] and the tensor
    /// table's first pass (`first`: where it ends, bytes read). A caller that calls the three
    /// itself keeps their frames apart on the stack.
    pub(crate) fn load_tensors<S: Storage>(
        storage: &mut S,
        (header, arch, config, vocab): ParsedHeader,
        first: (u64, u64),
        table: impl FnOnce(usize) -> Result<L>,
    ) -> Result<Self>
    where
        L: core::ops::DerefMut,
    {
        let mut embd = None;
        let mut output_norm = None;
        let mut output = None;
        let mut rope_freqs = None;
        let mut layers = table(config.n_layers as usize)?;
        if layers.len() != config.n_layers as usize {
            return Err(Error::Malformed("the layer table does not have one row per layer"));
        }
        let file_len = storage.len();
        let table_bytes = gguf::for_each_tensor(storage, &header, first, |e| {
            let Some(name) = TensorName::parse(e.name(), arch.roles).filter(|_| !e.truncated_name) else {
                return Ok(());
            };
            let (rows, cols) = e.rows_cols();
            let ty = GgmlType::from_id(e.ggml_type)
                .filter(|t| t.is_supported())
                .ok_or(Error::UnsupportedType { tensor: name, ggml_type: e.ggml_type })?;
            // The tensor lies inside the file before anything else is asked of it.
            tensor_end(e.offset, ty, rows, cols, file_len)?;
            // The norm weights and RoPE factors are read as raw f32 by the forward pass, never
            // decoded.
            if name.is_raw_f32() && ty != GgmlType::F32 {
                return Err(Error::UnsupportedType { tensor: name, ggml_type: e.ggml_type });
            }
            let (erows, ecols) = name.shape(&config);
            if (rows, cols) != (erows as u64, ecols as u64) {
                return Err(Error::BadShape { tensor: name, expected: (erows, ecols), found: (rows, cols) });
            }
            let t = TensorRef { offset: e.offset, ty, rows: erows, cols: ecols };
            let slot = match name {
                TensorName::TokenEmbd => &mut embd,
                TensorName::OutputNorm => &mut output_norm,
                TensorName::Output => &mut output,
                TensorName::RopeFreqs => &mut rope_freqs,
                TensorName::Layer(l, lt) => {
                    if let (Some(layer), Some(i)) = (layers.get_mut(l as usize), arch.role_index(lt)) {
                        layer[i] = t;
                    }
                    return Ok(());
                }
            };
            *slot = Some(t);
            Ok(())
        })?;

        let token_embd = embd.ok_or(Error::MissingTensor(TensorName::TokenEmbd))?;
        let tied_output = output.is_none();
        let output_norm = output_norm.ok_or(Error::MissingTensor(TensorName::OutputNorm))?;
        // A role the file gave has a shape checked against the config (never 0 rows), so an
        // entry still empty is a tensor the file lacks.
        for (l, layer) in layers.iter().enumerate() {
            for (i, &role) in arch.roles.iter().enumerate() {
                if layer[i] == TensorRef::EMPTY {
                    return Err(Error::MissingTensor(TensorName::Layer(l as u16, role)));
                }
            }
        }
        let info = ModelInfo {
            arch,
            config,
            header,
            token_embd,
            output_norm,
            output: output.unwrap_or(token_embd),
            tied_output,
            rope_freqs,
            layers,
            parse_bytes: header.bytes_read + table_bytes,
            file_len,
        };
        // Checked after the tensors, whose sizes matter more. The tokenizer falls back to
        // llama2.c's ids 1 and 2 when the keys are absent.
        let specials = [
            ("tokenizer.ggml.bos_token_id", header.bos.unwrap_or(1)),
            ("tokenizer.ggml.eos_token_id", header.eos.unwrap_or(2)),
        ];
        for (key, id) in specials {
            if id >= vocab {
                return Err(Error::TokenOutsideVocabulary { key, id, vocab });
            }
        }
        Ok(info)
    }

    /// The tensor `t` of layer `layer` (an empty reference when the architecture lacks `t`).
    pub fn layer_tensor(&self, layer: usize, t: LayerTensor) -> &TensorRef {
        match self.arch.role_index(t) {
            Some(i) => &self.layers[layer][i],
            None => &TensorRef::EMPTY,
        }
    }

    /// The tensor with this name.
    pub fn tensor(&self, name: TensorName) -> TensorRef {
        match name {
            TensorName::TokenEmbd => self.token_embd,
            TensorName::OutputNorm => self.output_norm,
            TensorName::Output => self.output,
            TensorName::Layer(l, t) => *self.layer_tensor(l as usize, t),
            TensorName::RopeFreqs => self.rope_freqs.unwrap_or(TensorRef::EMPTY),
        }
    }

    /// The layer roles with their tensors, per layer in the architecture's order.
    fn roles_of<'s>(
        &'s self,
        layer: &'s [TensorRef; ROLES],
    ) -> impl Iterator<Item = (LayerTensor, &'s TensorRef)> + 's {
        self.arch.roles.iter().copied().zip(layer.iter())
    }

    /// The layer matrices (every layer tensor but the norms), in access order, with their names.
    pub fn matrices(&self) -> impl Iterator<Item = (TensorName, &TensorRef)> + '_ {
        self.layers.iter().enumerate().flat_map(move |(l, layer)| {
            self.roles_of(layer).filter(|(r, _)| !r.is_norm()).map(move |(r, t)| (TensorName::Layer(l as u16, r), t))
        })
    }

    /// The tensors of the norms region (always resident, read as raw f32) in its order: the
    /// norm weights per layer in the architecture's order, the final norm, then the RoPE
    /// factors when the file has them.
    pub fn norms(&self) -> impl Iterator<Item = TensorRef> + '_ {
        self.layers
            .iter()
            .flat_map(move |layer| self.roles_of(layer).filter(|(r, _)| r.is_norm()).map(|(_, &t)| t))
            .chain([self.output_norm])
            .chain(self.rope_freqs)
    }

    /// Bytes of one layer's norms (every layer has the same).
    fn norm_bytes_per_layer(&self) -> u64 {
        self.layers.first().map_or(0, |l0| self.roles_of(l0).filter(|(r, _)| r.is_norm()).map(|(_, t)| t.bytes()).sum())
    }

    /// Where norm `role` of layer `layer` sits in the norms region: (offset, bytes).
    pub fn norm_span(&self, layer: usize, role: LayerTensor) -> Option<(usize, usize)> {
        let layer0 = self.layers.first()?;
        if layer >= self.layers.len() || !role.is_norm() || self.arch.role_index(role).is_none() {
            return None;
        }
        // Every layer has the same norms, so layer `l` starts at `l` times layer 0's bytes.
        let norms = || self.roles_of(layer0).filter(|(r, _)| r.is_norm());
        let before: u64 = norms().take_while(|&(r, _)| r != role).map(|(_, t)| t.bytes()).sum();
        let bytes = self.layer_tensor(0, role).bytes();
        Some(((self.norm_bytes_per_layer() * layer as u64 + before) as usize, bytes as usize))
    }

    /// The final norm's span in the norms region: (offset, bytes).
    pub fn output_norm_span(&self) -> (usize, usize) {
        ((self.norm_bytes_per_layer() * self.layers.len() as u64) as usize, self.output_norm.bytes() as usize)
    }

    /// The RoPE factors' span in the norms region, after the final norm: (offset, bytes), or
    /// `None` when the file has none (every factor 1).
    pub fn rope_freqs_span(&self) -> Option<(usize, usize)> {
        let (at, len) = self.output_norm_span();
        self.rope_freqs.map(|t| (at + len, t.bytes() as usize))
    }

    /// The position of matrix `name` in unit order: per layer its matrices, then the
    /// classifier (`None` for a norm or an absent layer).
    pub fn matrix_ordinal(&self, name: TensorName) -> Option<usize> {
        let matrices = || self.arch.roles.iter().filter(|r| !r.is_norm());
        let per_layer = matrices().count();
        match name {
            TensorName::Layer(l, role) if (l as usize) < self.layers.len() => {
                Some(l as usize * per_layer + matrices().position(|&r| r == role)?)
            }
            TensorName::Output => Some(self.layers.len() * per_layer),
            _ => None,
        }
    }

    /// The kind of layer `layer`.
    pub fn layer_kind(&self, layer: u32) -> LayerKind {
        self.config.layers.kind(layer)
    }

    /// Bytes of all distinct weights (the classifier counts once when tied).
    pub fn weight_bytes(&self) -> u64 {
        let layers: u64 = self.layers.iter().flat_map(|l| l.iter()).map(TensorRef::bytes).sum();
        let output = if self.tied_output { 0 } else { self.output.bytes() };
        let rope = self.rope_freqs.map_or(0, |t| t.bytes());
        layers + self.token_embd.bytes() + self.output_norm.bytes() + output + rope
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

#[cfg(test)]
mod tests;
