//! Tensor element types and the kernels that compute on them in place.
//!
//! This file owns the GGML type table (ids, names, block sizes, the supported set) and the
//! module's public surface; the code lives in one file per concept, and none of it knows where
//! the bytes came from (storage, cache and engine are not imported here):
//!
//! | file | owns |
//! | --- | --- |
//! | `blocks.rs` | the byte layout of every block format, once |
//! | `half.rs` | f16 and bf16 |
//! | `scalar.rs` | the portable reference: block decoders, `matvec`, `dequantize_row` |
//! | `act.rs` | rounding activations to Q8_0/Q8_K blocks |
//! | `kernels.rs` | [`Kernels`], [`KernelPath`] and the per-ISA kernel table |
//! | `span.rs` | a unit's product over a chunk's positions, cut into executor jobs |
//! | `x86/avx2.rs`, `x86/avx2_q8.rs`, `x86/avx512.rs` | one ISA path each, exporting one static table |
//! | `x86/avx512_rows.rs` | the AVX-512 Q4_0/Q8_0 decode kernels, four rows per vector (`avx512.rs` calls them) |
//! | `x86/mod.rs` | the x86 vector primitives those files share |
//! | `tests.rs` | the unit tests |
//!
//! Weights are little-endian in GGUF; they are decoded element by element, so a slot needs no
//! particular alignment.
//!
//! Summation order is part of the contract: each output row is summed left to right in f32,
//! exactly as llama2.c's `matmul` does, so results do not depend on how rows are split into
//! units or threads.
//!
//! Quantized types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) are computed on in place:
//! a row is read block by block from the slot, each block is decoded into a stack buffer (32
//! or 256 f32) with the arithmetic of ggml's `dequantize_row_*`, and its products are added to
//! the row's one running f32 sum in element order. Activations stay f32 (llama.cpp rounds them
//! to Q8 first; this core does not), so the logits follow the exact reference of the weights.
//! BF16 and F16 are decoded element by element.
//!
//! # Kernel paths
//!
//! [`matvec`] is the portable scalar path above; [`Kernels`] selects between it and, on
//! x86-64, AVX2 + FMA + F16C kernels (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
//! Q5_K, Q6_K: every supported type). The vector path sums in another order: eight lanes of
//! fused multiply-adds, quantized blocks summed per block (or sub-block) and scaled once, the
//! lanes reduced at the end of the row. Its order still depends only on the row, so it too is
//! bit-identical for any split of rows over units or threads, but it is not bit-identical with
//! the scalar path. Its tolerance is that of a port with f32 activations: on every file of
//! `tests/data/quant` the logits stay within 1e-3 (max abs) of the exact float64
//! reference, with the same argmax at every position and the same 32 greedy ids, and the
//! stories260K F32 golden generations match token for token (`tests/tests/quant.rs`,
//! `tests/tests/golden.rs`). Measured differences from the scalar path are a few 1e-6 on
//! stories260K.
//!
//! # The integer path (`KernelPath::Avx2Q8`): the default contract for quantized weights
//!
//! [`Kernels::avx2_q8`] (what `spool-sim`'s default `--kernel auto` runs where the CPU has
//! AVX2; `--kernel exact` keeps the strict f32-activation path above, which the 1e-3
//! reference tests use) does what llama.cpp's CPU backend does: before a product with Q4_0,
//! Q5_0 or Q8_0 weights the input is rounded to Q8_0 blocks, before Q4_K, Q5_K or Q6_K to
//! Q8_K blocks ([`quantize_activations`], the
//! arithmetic of ggml's `quantize_row_q8_0_ref` / `quantize_row_q8_K_ref`), and each block's
//! dot product is an exact integer sum (AVX2 `maddubs`/`madd`), scaled once in f32. Other types
//! (F32, F16, BF16, and Q4_1/Q5_1, whose llama.cpp input type Q8_1 this core does not have)
//! run the f32 AVX2 kernels, so an F32 model gives the f32 path's results on it. The engine rounds each position's input once per product, before
//! the first unit, into a region of the working arena that the planner adds only when asked
//! ([`crate::PlanOptions::quantized_activations`]: `positions * 292/256` bytes per element of
//! the longest input row; a forward pass on this path without it is an error). No stack
//! buffer grows with the row length. Per-row order is fixed, so results are bit-identical for
//! any split over units or threads.
//!
//! Its tolerance is not the f32-activation one: it is #2 of `tests/data/quant/README.md`
//! ("activations rounded like llama.cpp"): against both llama.cpp's logits and the exact
//! reference, max abs ≤ 0.5 and ≤ 2% of the max |logit|, rms ≤ 0.1, the same argmax at all 8
//! positions and the same greedy ids over the robust prefix (`tests/tests/quant_q8.rs`).
//! Where every product is rounded as llama.cpp rounds it (synth-k Q8_0, Q6_K, Q4_K_M) the
//! logits equal llama.cpp's to < 5e-5.
//!
//! Q4_0 and Q8_0 weights are read four rows per pass, so each activation block is loaded once
//! for four rows; each row keeps its own accumulators (even and odd blocks) and the same
//! operations whichever rows run beside it. [`Kernels::avx512_q8`] ([`KernelPath::Avx512Q8`],
//! what `spool-std` picks for `simd-q8` on a CPU with AVX-512 VNNI) computes the same exact
//! integer lanes with `vpdpbusd` (Q4_0: two blocks per 512-bit vector), so its results are
//! bit-identical with [`Kernels::avx2_q8`]. The vector kernels prefetch the weights a few KiB
//! ahead: a resident model streams from main memory every token.
//!
//! # Prefill: several positions per weight block
//!
//! [`Kernels::matmul_quantized`] multiplies a unit's rows by all of a prefill chunk's rounded
//! positions at once ([`MatShape`]). On [`KernelPath::Avx512Q8`], Q4_0 and Q8_0 run register
//! tiles of 4 rows by 4 positions: a weight block pair is loaded and unpacked once for the four
//! positions, and each position's activation operands (quants, pair scale, the `-Σ bias·y`
//! lanes) are computed once per position group and read from memory in the inner loop. Every
//! (row, position) keeps the matvec kernel's accumulator and operations in the same order, so
//! the values are bit-identical with [`Kernels::matvec_quantized`] on that row and position
//! alone: prefill chunking never changes a token. The other integer types run the
//! matrix-vector kernel per position over groups of [`MAT_ROW_GROUP`] rows (the group's bytes
//! stay in the first-level cache across the positions).

// The shared surface of the ISA files: `pub(crate)`, so none reaches into a private item.
pub(crate) mod act;
pub(crate) mod blocks;
pub(crate) mod half;
pub(crate) mod kernels;
pub(crate) mod scalar;
pub(crate) mod scalar_q8;
pub(crate) mod span;
pub(crate) mod table;
#[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
mod arm {
    pub(crate) mod dsp;
}
#[cfg(target_arch = "x86_64")]
mod x86;

pub use act::{
    activation_buffer_bytes, activation_bytes, nearest_int, quantize_activations, quantize_activations_q8_0,
    quantize_activations_q8_k, Q8_0_X_BYTES, Q8_K_X_BYTES,
};
pub use blocks::scale_min_k4;
pub use half::{f16_to_f32, f32_to_f16};
pub use kernels::{KernelPath, Kernels, MatShape, MAT_ROW_GROUP};
pub use scalar::{dequantize_row, matvec};

/// The GGML tensor types this core knows by name.
#[allow(non_camel_case_types, missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    BF16,
}

/// One row of the type table.
struct TypeInfo {
    ty: GgmlType,
    id: u32,
    name: &'static str,
    /// Elements per block.
    elems: usize,
    /// Bytes per block.
    bytes: usize,
}

const fn info(ty: GgmlType, id: u32, name: &'static str, (elems, bytes): (usize, usize)) -> TypeInfo {
    TypeInfo { ty, id, name, elems, bytes }
}

/// The type table, in the order of [`GgmlType`]'s variants: GGML id, name and block size. The
/// one place these are written; the sizes come from the layouts of `blocks.rs`.
const TYPES: [TypeInfo; GgmlType::COUNT] = {
    use blocks::*;
    use GgmlType::*;
    [
        info(F32, 0, "F32", (1, 4)),
        info(F16, 1, "F16", (1, 2)),
        info(Q4_0, 2, "Q4_0", (q4_0::ELEMS, q4_0::BYTES)),
        info(Q4_1, 3, "Q4_1", (q4_1::ELEMS, q4_1::BYTES)),
        info(Q5_0, 6, "Q5_0", (q5_0::ELEMS, q5_0::BYTES)),
        info(Q5_1, 7, "Q5_1", (q5_1::ELEMS, q5_1::BYTES)),
        info(Q8_0, 8, "Q8_0", (q8_0::ELEMS, q8_0::BYTES)),
        info(Q8_1, 9, "Q8_1", (q8_1::ELEMS, q8_1::BYTES)),
        info(Q2_K, 10, "Q2_K", (q2_k::ELEMS, q2_k::BYTES)),
        info(Q3_K, 11, "Q3_K", (q3_k::ELEMS, q3_k::BYTES)),
        info(Q4_K, 12, "Q4_K", (q4_k::ELEMS, q4_k::BYTES)),
        info(Q5_K, 13, "Q5_K", (q5_k::ELEMS, q5_k::BYTES)),
        info(Q6_K, 14, "Q6_K", (q6_k::ELEMS, q6_k::BYTES)),
        info(Q8_K, 15, "Q8_K", (q8_k::ELEMS, q8_k::BYTES)),
        info(BF16, 30, "BF16", (1, 2)),
    ]
};

// Each row sits at its variant's index.
const _: () = {
    let mut i = 0;
    while i < GgmlType::COUNT {
        assert!(TYPES[i].ty as usize == i);
        i += 1;
    }
};

/// The types the kernels compute with, in the order of [`SUPPORTED_TYPES`]: the one list of
/// the supported set ([`GgmlType::is_supported`] and [`SUPPORTED_TYPES`] read it).
pub const SUPPORTED: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Types the kernels compute with in this build (for error messages): the names of
/// [`SUPPORTED`], joined with ", ".
pub const SUPPORTED_TYPES: &str = match core::str::from_utf8(&SUPPORTED_NAMES) {
    Ok(s) => s,
    Err(_) => panic!("type names are ASCII"),
};

const SUPPORTED_NAMES: [u8; joined_len(&SUPPORTED)] = join(&SUPPORTED);

/// The length of the names of `types` joined with ", ".
const fn joined_len(types: &[GgmlType]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < types.len() {
        n += types[i].name().len() + if i > 0 { 2 } else { 0 };
        i += 1;
    }
    n
}

/// The names of `types` joined with ", " (`N` is [`joined_len`]).
const fn join<const N: usize>(types: &[GgmlType]) -> [u8; N] {
    let mut out = [0u8; N];
    let (mut at, mut i) = (0, 0);
    while i < types.len() {
        if i > 0 {
            out[at] = b',';
            out[at + 1] = b' ';
            at += 2;
        }
        let name = types[i].name().as_bytes();
        let mut k = 0;
        while k < name.len() {
            out[at] = name[k];
            at += 1;
            k += 1;
        }
        i += 1;
    }
    out
}

impl GgmlType {
    /// The number of variants (the length of per-type tables).
    pub(crate) const COUNT: usize = 15;

    /// The type for a GGML type id.
    pub fn from_id(id: u32) -> Option<Self> {
        TYPES.iter().find(|t| t.id == id).map(|t| t.ty)
    }

    /// The GGML type id (as stored in GGUF), the inverse of [`GgmlType::from_id`].
    pub const fn id(self) -> u32 {
        TYPES[self as usize].id
    }

    /// The name of a type id, or "unknown".
    pub fn name_of(id: u32) -> &'static str {
        Self::from_id(id).map_or("unknown", Self::name)
    }

    /// The GGML name of the type.
    pub const fn name(self) -> &'static str {
        TYPES[self as usize].name
    }

    /// (elements per block, bytes per block), from the GGUF block layouts.
    pub const fn block(self) -> (u64, u64) {
        let t = &TYPES[self as usize];
        (t.elems as u64, t.bytes as u64)
    }

    /// Bytes of one row of `cols` elements, or `None` if `cols` is not a whole number of blocks.
    pub fn row_bytes(self, cols: u64) -> Option<u64> {
        let (elems, bytes) = self.block();
        if cols.is_multiple_of(elems) {
            (cols / elems).checked_mul(bytes)
        } else {
            None
        }
    }

    /// Whether the kernels of this build compute with the type (it is in [`SUPPORTED`]).
    pub fn is_supported(self) -> bool {
        SUPPORTED.contains(&self)
    }

    /// The index of the type in per-type tables.
    #[inline]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests;
