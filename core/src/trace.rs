//! The `trace` feature's observer of the forward pass: each step of a block (and the embedding,
//! the final norm and the classifier) shows its output to a [`Trace`], under the names
//! llama.cpp's eval callback gives the same tensors (`attn_norm`, `Qcur`, `kqv_out`, `l_out`,
//! ...), so that the two can be compared layer by layer (scripts/llama-trace.cpp). Owns the
//! trait only; it must not change any number, and without the feature nothing of it is built.

/// Sees the tensors of a forward pass as they are computed.
pub trait Trace {
    /// `values` of the tensor `name` of `layer` (`None` outside the blocks), `[positions][width]`
    /// for the positions of the chunk, in order.
    fn tensor(&self, name: &str, layer: Option<usize>, values: &[f32]);
}
