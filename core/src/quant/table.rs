//! The kernel table's types: [`KernelPath`] (the name of each path), the row-kernel signatures
//! and [`Table`], one ISA's kernels indexed by weight type. A leaf of `quant/`: the ISA files and
//! `kernels.rs` both import it, and it imports neither (no kernel code, no dispatch here).

use super::GgmlType;

/// Which implementation of the dot products a [`Kernels`](super::Kernels) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KernelPath {
    /// The portable code every target has: one f32 sum per row, left to right.
    #[default]
    Scalar,
    /// x86-64 AVX2 + FMA + F16C vectors with f32 activations for every supported type.
    Avx2,
    /// [`KernelPath::Avx2`], except that Q4_0, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K products first
    /// round the input to Q8_0 or Q8_K blocks, as llama.cpp does, and take integer dot products
    /// (`spool-sim`'s default for quantized weights). Not within the f32-activation tolerance;
    /// see the module documentation.
    Avx2Q8,
    /// [`KernelPath::Avx2Q8`] with AVX-512 VNNI (`vpdpbusd`) for the Q4_0 and Q8_0 integer dots:
    /// the same exact integer lanes, so bit-identical results, in fewer instructions.
    Avx512Q8,
    /// Q8_0 products on the integer path with portable code (`scalar_q8.rs`), bit-identical
    /// with [`KernelPath::Avx2Q8`]'s Q8_0 products; every other type as [`KernelPath::Scalar`].
    ScalarQ8,
    /// [`KernelPath::ScalarQ8`] with the Cortex-M4 DSP instructions (`SMLAD`), bit-identical.
    DspQ8,
}

impl KernelPath {
    /// A short name (`scalar`, `avx2`).
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx2Q8 => "avx2-q8",
            KernelPath::Avx512Q8 => "avx512-q8",
            KernelPath::ScalarQ8 => "scalar-q8",
            KernelPath::DspQ8 => "arm-dsp-q8",
        }
    }

    /// Whether this path rounds the input of (some) products to Q8_0/Q8_K blocks, so that its
    /// plan needs [`crate::PlanOptions::quantized_activations`].
    pub fn quantizes_activations(self) -> bool {
        matches!(self, KernelPath::Avx2Q8 | KernelPath::Avx512Q8 | KernelPath::ScalarQ8 | KernelPath::DspQ8)
    }
}

/// `out[r] = W[r] · x` over the rows of `w` with f32 activations.
pub(crate) type RowsF32 = unsafe fn(w: &[u8], x: &[f32], out: &mut [f32]);
/// `out[r] = W[r] · x` with `x` rounded to the kernel's `vec_dot_type` blocks (`xq`).
pub(crate) type RowsQ = unsafe fn(w: &[u8], xq: &[u8], out: &mut [f32]);
/// Rounds `x` to `vt` (Q8_0 or Q8_K) activation blocks, the bytes of
/// [`super::act::quantize_activations`].
pub(crate) type QuantizeAct = unsafe fn(vt: GgmlType, x: &[f32], out: &mut [u8]);

/// The shape of a matrix-matrix product: `rows` weight rows against `xq.len() / q_row`
/// positions of rounded input (`q_row` bytes each), the result of row `r` and position `p` at
/// `out[p * stride + r]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatShape {
    /// Weight rows (the bytes of `w` are split evenly among them).
    pub rows: usize,
    /// Bytes of one position's rounded input.
    pub q_row: usize,
    /// Distance between two positions' outputs, in f32 (at least `rows`).
    pub stride: usize,
}

/// `out[p * stride + r] = W[r] · xq[p]` for every row and position ([`MatShape`]), each value
/// bit-identical with the same path's [`RowsQ`] on that row and position alone.
pub(crate) type MatQ = unsafe fn(w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape);

/// An integer product: the type the input is rounded to (ggml's `vec_dot_type`), the rows,
/// and optionally a register-tiled kernel for several positions at once (prefill).
#[derive(Clone, Copy)]
pub(crate) struct IntRows {
    pub(crate) vec_dot_type: GgmlType,
    pub(crate) rows: RowsQ,
    pub(crate) mat: Option<MatQ>,
}

/// One ISA's kernels, indexed by weight type ([`GgmlType::index`]).
///
/// Contract: every `unsafe fn` of a table is sound to call, with any arguments, on a CPU that
/// has the features its ISA file names, and only there; the table's [`Kernels`](super::Kernels) constructor
/// carries the same contract. A type without an entry runs the portable reference.
pub(crate) struct Table {
    /// The path's name (what the CLI, the core and `spool-std` report).
    pub(crate) path: KernelPath,
    /// Products with f32 activations.
    pub(crate) rows: [Option<RowsF32>; GgmlType::COUNT],
    /// Products with rounded activations (the Q8 paths only).
    pub(crate) int_rows: [Option<IntRows>; GgmlType::COUNT],
    /// This ISA's activation rounding, if it has one.
    pub(crate) quantize_act: Option<QuantizeAct>,
}

/// A per-type array from `(type, entry)` pairs; the other types get `None`.
pub(crate) const fn by_type<T: Copy, const N: usize>(pairs: [(GgmlType, T); N]) -> [Option<T>; GgmlType::COUNT] {
    let mut out = [None; GgmlType::COUNT];
    let mut i = 0;
    while i < N {
        out[pairs[i].0.index()] = Some(pairs[i].1);
        i += 1;
    }
    out
}
