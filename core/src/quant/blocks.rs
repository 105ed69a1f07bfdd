//! The byte layout of every GGML block format, written once: per format its elements, its
//! field offsets and its size (with a const assert against ggml's), and its block type as a
//! byte array of exactly that size; plus the packed 6-bit scales of the K-quants.
//!
//! Owns layouts only. It must not hold the arithmetic on the values (`scalar.rs` and the ISA
//! files do that) nor any dispatch. Every block is little-endian bytes with no alignment, so a
//! block type is `[u8; BYTES]`: a slot is cut into blocks with `as_chunks` and a field is read
//! by its offset.

use super::half::half_at;

/// Elements per block of the 32-wide formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
pub(crate) const QK: usize = 32;
/// Elements per super-block of the K-quants (Q4_K, Q5_K, Q6_K).
pub(crate) const QK_K: usize = 256;

/// Q4_0: `d: f16, qs: [u8; 16]` (element `j` the low nibble of `qs[j]`, `j + 16` the high one).
pub(crate) mod q4_0 {
    pub(crate) const ELEMS: usize = super::QK;
    pub(crate) const D: usize = 0;
    pub(crate) const QS: usize = 2;
    pub(crate) const BYTES: usize = QS + ELEMS / 2;
    pub(crate) type Block = [u8; BYTES];
}

/// Q4_1: `d: f16, m: f16, qs: [u8; 16]` (nibbles as Q4_0).
pub(crate) mod q4_1 {
    pub(crate) const ELEMS: usize = super::QK;
    pub(crate) const D: usize = 0;
    pub(crate) const M: usize = 2;
    pub(crate) const QS: usize = 4;
    pub(crate) const BYTES: usize = QS + ELEMS / 2;
    pub(crate) type Block = [u8; BYTES];
}

/// Q5_0: `d: f16, qh: [u8; 4], qs: [u8; 16]` (bit `j` of the little-endian `qh` is bit 4 of
/// element `j`).
pub(crate) mod q5_0 {
    pub(crate) const ELEMS: usize = super::QK;
    pub(crate) const D: usize = 0;
    pub(crate) const QH: usize = 2;
    pub(crate) const QS: usize = 6;
    pub(crate) const BYTES: usize = QS + ELEMS / 2;
    pub(crate) type Block = [u8; BYTES];
}

/// Q5_1: `d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]`.
pub(crate) mod q5_1 {
    pub(crate) const ELEMS: usize = super::QK;
    pub(crate) const D: usize = 0;
    pub(crate) const M: usize = 2;
    pub(crate) const QH: usize = 4;
    pub(crate) const QS: usize = 8;
    pub(crate) const BYTES: usize = QS + ELEMS / 2;
    pub(crate) type Block = [u8; BYTES];
}

/// Q8_0: `d: f16, qs: [i8; 32]`.
pub(crate) mod q8_0 {
    pub(crate) const ELEMS: usize = super::QK;
    pub(crate) const D: usize = 0;
    pub(crate) const QS: usize = 2;
    pub(crate) const BYTES: usize = QS + ELEMS;
    pub(crate) type Block = [u8; BYTES];
}

/// Q4_K: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`; group `g` of 64 elements reads
/// `qs[32g..32g + 32]`, low nibbles for sub-block `2g`, high nibbles for `2g + 1`.
pub(crate) mod q4_k {
    pub(crate) const ELEMS: usize = super::QK_K;
    pub(crate) const SCALES: usize = 4;
    pub(crate) const QS: usize = 16;
    pub(crate) const BYTES: usize = QS + ELEMS / 2;
    pub(crate) type Block = [u8; BYTES];
}

/// Q5_K: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`.
pub(crate) mod q5_k {
    pub(crate) const ELEMS: usize = super::QK_K;
    pub(crate) const QH: usize = 16;
    pub(crate) const QS: usize = 48;
    pub(crate) const BYTES: usize = QS + ELEMS / 2;
    pub(crate) type Block = [u8; BYTES];
}

/// Q6_K: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`; half `n` of 128 elements
/// reads `ql[64n..]`, `qh[32n..]`, `scales[8n..]`.
pub(crate) mod q6_k {
    pub(crate) const ELEMS: usize = super::QK_K;
    pub(crate) const QL: usize = 0;
    pub(crate) const QH: usize = QL + ELEMS / 2;
    pub(crate) const SCALES: usize = QH + ELEMS / 4;
    pub(crate) const D: usize = SCALES + ELEMS / 16;
    pub(crate) const BYTES: usize = D + 2;
    pub(crate) type Block = [u8; BYTES];
}

/// Q8_1 (not computed with; its size is for the tensor table): `d: f16, s: f16, qs: [i8; 32]`.
pub(crate) mod q8_1 {
    pub(crate) const ELEMS: usize = super::QK;
    pub(crate) const BYTES: usize = 4 + ELEMS;
}

/// Q2_K (not computed with): `scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16`.
pub(crate) mod q2_k {
    pub(crate) const ELEMS: usize = super::QK_K;
    pub(crate) const BYTES: usize = ELEMS / 16 + ELEMS / 4 + 4;
}

/// Q3_K (not computed with): `hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16`.
pub(crate) mod q3_k {
    pub(crate) const ELEMS: usize = super::QK_K;
    pub(crate) const BYTES: usize = ELEMS / 8 + ELEMS / 4 + 12 + 2;
}

/// ggml's Q8_K (not a weight type here): `d: f32, qs: [i8; 256], bsums: [i16; 16]`. The Q8_K
/// activation blocks ([`q8_k_x`]) have this layout.
pub(crate) mod q8_k {
    pub(crate) const ELEMS: usize = super::QK_K;
    pub(crate) const BYTES: usize = 4 + ELEMS + 2 * ELEMS / 16;
}

/// Activations rounded to Q8_0 for the integer kernels (this core's layout, not ggml's
/// `block_q8_0`): `d: f32, qs: [i8; 32]`, `d` an f16 value widened to f32.
pub(crate) mod q8_0_x {
    pub(crate) const ELEMS: usize = super::QK;
    pub(crate) const D: usize = 0;
    pub(crate) const QS: usize = 4;
    pub(crate) const BYTES: usize = QS + ELEMS;
    pub(crate) type Block = [u8; BYTES];
}

/// Activations rounded to Q8_K: ggml's `block_q8_K`, `d: f32, qs: [i8; 256], bsums: [i16; 16]`
/// (`bsums[g]` the sum of quants `16g..16g + 16`).
pub(crate) mod q8_k_x {
    pub(crate) const ELEMS: usize = super::QK_K;
    pub(crate) const D: usize = 0;
    pub(crate) const QS: usize = 4;
    pub(crate) const BSUMS: usize = QS + ELEMS;
    pub(crate) const BYTES: usize = BSUMS + 2 * ELEMS / 16;
    pub(crate) type Block = [u8; BYTES];
}

// The sizes of ggml's `block_*` structs (ggml-common.h): a layout above that drifts fails here.
const _: () = {
    assert!(q4_0::BYTES == 18 && q4_1::BYTES == 20 && q5_0::BYTES == 22 && q5_1::BYTES == 24);
    assert!(q8_0::BYTES == 34 && q8_1::BYTES == 36);
    assert!(q2_k::BYTES == 84 && q3_k::BYTES == 110 && q4_k::BYTES == 144);
    assert!(q5_k::BYTES == 176 && q6_k::BYTES == 210 && q8_k::BYTES == 292);
    assert!(q8_0_x::BYTES == 36 && q8_k_x::BYTES == q8_k::BYTES);
    assert!(q5_k::QH == q4_k::QS && q5_k::QS == q5_k::QH + 32);
};

/// A row (or any run of whole blocks) as its blocks of `N` bytes; a tail shorter than a block
/// is left out.
#[inline(always)]
pub(crate) fn blocks<const N: usize>(row: &[u8]) -> &[[u8; N]] {
    row.as_chunks::<N>().0
}

/// The IEEE half at byte `at` of a block, as f32.
#[inline(always)]
pub(crate) fn half_field(b: &[u8], at: usize) -> f32 {
    half_at(b[at], b[at + 1])
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block, packed in 12
/// bytes: sub-blocks 0..4 in the low 6 bits of bytes `j` and `j + 4`; sub-blocks 4..8 in the
/// nibbles of byte `j + 4` with their top 2 bits in the high bits of bytes `j - 4` and `j`
/// (ggml's `get_scale_min_k4`). The synth quantizer packs with it too.
#[inline]
pub fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// The super-block scale, min scale and the 12 packed sub-block scales of a Q4_K/Q5_K block
/// (`d: f16, dmin: f16, scales: [u8; 12]` at its start).
#[inline]
pub(crate) fn k4_header(b: &[u8]) -> (f32, f32, [u8; 12]) {
    let mut s = [0u8; 12];
    for (s, &v) in s.iter_mut().zip(b.iter().skip(q4_k::SCALES)) {
        *s = v;
    }
    match b {
        [d0, d1, m0, m1, ..] => (half_at(*d0, *d1), half_at(*m0, *m1), s),
        _ => (0.0, 0.0, s),
    }
}
