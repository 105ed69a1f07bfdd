//! Tensor element types and the kernels that compute on them in place.
//!
//! Owns the GGML type table (block sizes and bytes per block) and the matrix-vector product
//! over raw tensor bytes as they sit in a cache slot. It knows nothing of where the bytes came
//! from. Weights are little-endian in GGUF; they are decoded element by element, so a slot
//! needs no particular alignment.
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
//! x86-64, AVX2 + FMA + F16C kernels (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K; other
//! types fall back to the scalar code). The vector path sums in another order: eight lanes of
//! fused multiply-adds, quantized blocks summed per block (or sub-block) and scaled once, the
//! lanes reduced at the end of the row. Its order still depends only on the row, so it too is
//! bit-identical for any split of rows over units or threads, but it is not bit-identical with
//! the scalar path. Its tolerance is that of a port with f32 activations: on every file of
//! `shared/models/quant` the logits stay within 1e-3 (max abs) of the exact float64
//! reference, with the same argmax at every position and the same 32 greedy ids, and the
//! stories260K F32 golden generations match token for token (`tests/tests/quant.rs`,
//! `tests/tests/golden.rs`). Measured differences from the scalar path are a few 1e-6 on
//! stories260K.
//!
//! # The opt-in integer path (`KernelPath::Avx2Q8`)
//!
//! [`Kernels::avx2_q8`] (`spool-sim --kernel simd-q8`; never chosen automatically) does what
//! llama.cpp's CPU backend does: before a product with Q4_0 or Q8_0 weights the input is
//! rounded to Q8_0 blocks, before Q4_K or Q6_K to Q8_K blocks ([`quantize_activations`], the
//! arithmetic of ggml's `quantize_row_q8_0_ref` / `quantize_row_q8_K_ref`), and each block's
//! dot product is an exact integer sum (AVX2 `maddubs`/`madd`), scaled once in f32. Other types
//! run the f32 AVX2 kernels. The engine rounds each position's input once per product, before
//! the first unit, into a region of the working arena that the planner adds only when asked
//! ([`crate::PlanOptions::quantized_activations`]: `positions * 292/256` bytes per element of
//! the longest input row; a forward pass on this path without it is an error). No stack
//! buffer grows with the row length. Per-row order is fixed, so results are bit-identical for
//! any split over units or threads.
//!
//! Its tolerance is not the f32-activation one: it is #2 of `shared/models/quant/README.md`
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

/// Types the kernels compute with in this build (for error messages).
pub const SUPPORTED_TYPES: &str = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K";

/// The types the kernels compute with, in the order of [`SUPPORTED_TYPES`].
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

impl GgmlType {
    /// The type for a GGML type id.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            30 => BF16,
            _ => return None,
        })
    }

    /// The name of a type id, or "unknown".
    pub fn name_of(id: u32) -> &'static str {
        Self::from_id(id).map_or("unknown", Self::name)
    }

    /// The GGML name of the type.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            BF16 => "BF16",
        }
    }

    /// (elements per block, bytes per block), from the GGUF block layouts.
    pub fn block(self) -> (u64, u64) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 | BF16 => (1, 2),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2_K => (256, 84),
            Q3_K => (256, 110),
            Q4_K => (256, 144),
            Q5_K => (256, 176),
            Q6_K => (256, 210),
            Q8_K => (256, 292),
        }
    }

    /// Bytes of one row of `cols` elements, or `None` if `cols` is not a whole number of blocks.
    pub fn row_bytes(self, cols: u64) -> Option<u64> {
        let (elems, bytes) = self.block();
        cols.is_multiple_of(elems).then(|| cols / elems * bytes)
    }

    /// Whether the kernels of this build compute with the type.
    pub fn is_supported(self) -> bool {
        use GgmlType::*;
        matches!(self, F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q4_K | Q5_K | Q6_K)
    }
}

#[inline]
fn f32_at(c: &[u8]) -> f32 {
    f32::from_le_bytes([c[0], c[1], c[2], c[3]])
}

/// IEEE half to single precision, exact for every input.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise the mantissa.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Single precision to IEEE half, rounding to nearest even (as ggml's `GGML_FP32_TO_FP16`
/// and the F16C instruction): overflow gives infinity, NaN stays NaN.
pub fn f32_to_f16(f: f32) -> u16 {
    let b = f.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let mant = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    // The significand with its hidden bit, and how far it shifts down to the half's last bit.
    let (full, shift) = if e <= 0 {
        if e < -10 {
            return sign;
        }
        (mant | 0x80_0000, (14 - e) as u32)
    } else {
        (mant, 13)
    };
    let mut h = full >> shift;
    let rem = full & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rem > half || (rem == half && h & 1 == 1) {
        h += 1; // a carry into the exponent is the correct rounding (up to infinity)
    }
    let exp_bits = if e <= 0 { 0 } else { (e as u32) << 10 };
    sign | (exp_bits + h) as u16
}

/// Elements per block of the 32-wide formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
const QK: usize = 32;
/// Elements per super-block of the K-quants (Q4_K, Q5_K, Q6_K).
const QK_K: usize = 256;

#[inline]
fn half_at(lo: u8, hi: u8) -> f32 {
    f16_to_f32(u16::from_le_bytes([lo, hi]))
}

#[inline]
fn bf16_to_f32(lo: u8, hi: u8) -> f32 {
    f32::from_bits((u16::from_le_bytes([lo, hi]) as u32) << 16)
}

// Block decoders. Each turns one block, as it sits in the slot, into its f32 values with the
// arithmetic of ggml's `dequantize_row_*` (f32, scale first, then offset), so the values are
// exactly the ones llama.cpp and gguf-py produce.

/// Q8_0: `d: f16, qs: [i8; 32]`; `y = d * q`.
fn decode_q8_0(b: &[u8; 34], y: &mut [f32; QK]) {
    let d = half_at(b[0], b[1]);
    for (y, &q) in y.iter_mut().zip(&b[2..]) {
        *y = (q as i8) as f32 * d;
    }
}

/// Q4_0: `d: f16, qs: [u8; 16]`; element `j` is the low nibble of `qs[j]`, element `j + 16` the
/// high nibble; `y = (q - 8) * d`.
fn decode_q4_0(b: &[u8; 18], y: &mut [f32; QK]) {
    let d = half_at(b[0], b[1]);
    let (lo, hi) = y.split_at_mut(QK / 2);
    for ((&q, a), c) in b[2..].iter().zip(lo).zip(hi) {
        *a = ((q & 0x0f) as i32 - 8) as f32 * d;
        *c = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: `d: f16, m: f16, qs: [u8; 16]` (nibbles as Q4_0); `y = q * d + m`.
fn decode_q4_1(b: &[u8; 20], y: &mut [f32; QK]) {
    let d = half_at(b[0], b[1]);
    let m = half_at(b[2], b[3]);
    let (lo, hi) = y.split_at_mut(QK / 2);
    for ((&q, a), c) in b[4..].iter().zip(lo).zip(hi) {
        *a = (q & 0x0f) as f32 * d + m;
        *c = (q >> 4) as f32 * d + m;
    }
}

/// The 5-bit quants of Q5_0/Q5_1: nibbles as Q4_0, and bit `j` of the little-endian `qh` is
/// bit 4 of element `j`.
#[inline]
fn q5_pair(qs: u8, qh: u32, j: usize) -> (u8, u8) {
    let h0 = (((qh >> j) << 4) & 0x10) as u8;
    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
    ((qs & 0x0f) | h0, (qs >> 4) | h1)
}

/// Q5_0: `d: f16, qh: [u8; 4], qs: [u8; 16]`; `y = (q - 16) * d`.
fn decode_q5_0(b: &[u8; 22], y: &mut [f32; QK]) {
    let d = half_at(b[0], b[1]);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let (lo, hi) = y.split_at_mut(QK / 2);
    for (j, ((&q, a), c)) in b[6..].iter().zip(lo).zip(hi).enumerate() {
        let (x0, x1) = q5_pair(q, qh, j);
        *a = (x0 as i32 - 16) as f32 * d;
        *c = (x1 as i32 - 16) as f32 * d;
    }
}

/// Q5_1: `d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]`; `y = q * d + m`.
fn decode_q5_1(b: &[u8; 24], y: &mut [f32; QK]) {
    let d = half_at(b[0], b[1]);
    let m = half_at(b[2], b[3]);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let (lo, hi) = y.split_at_mut(QK / 2);
    for (j, ((&q, a), c)) in b[8..].iter().zip(lo).zip(hi).enumerate() {
        let (x0, x1) = q5_pair(q, qh, j);
        *a = x0 as f32 * d + m;
        *c = x1 as f32 * d + m;
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block, packed in 12
/// bytes: sub-blocks 0..4 in the low 6 bits of bytes `j` and `j + 4`; sub-blocks 4..8 in the
/// nibbles of byte `j + 4` with their top 2 bits in the high bits of bytes `j - 4` and `j`.
#[inline]
fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// The super-block scale, min scale and the 12 packed sub-block scales of Q4_K/Q5_K.
#[inline]
fn k4_header(b: &[u8]) -> (f32, f32, [u8; 12]) {
    let mut s = [0u8; 12];
    for (s, &v) in s.iter_mut().zip(b.iter().skip(4)) {
        *s = v;
    }
    match b {
        [d0, d1, m0, m1, ..] => (half_at(*d0, *d1), half_at(*m0, *m1), s),
        _ => (0.0, 0.0, s),
    }
}

/// Q4_K: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`. Four groups of 64 elements; group
/// `g` reads `qs[32g..32g + 32]`, low nibbles for sub-block `2g`, high nibbles for `2g + 1`;
/// `y = (d * sc) * q - dmin * m`.
fn decode_q4_k(b: &[u8; 144], y: &mut [f32; QK_K]) {
    let (d, dmin, scales) = k4_header(b);
    for (g, (y, qs)) in y.chunks_exact_mut(64).zip(b[16..].chunks_exact(32)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * g, &scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, &scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let (lo, hi) = y.split_at_mut(32);
        for ((&q, a), c) in qs.iter().zip(lo).zip(hi) {
            *a = d1 * (q & 0x0f) as f32 - min1;
            *c = d2 * (q >> 4) as f32 - min2;
        }
    }
}

/// Q5_K: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`. As Q4_K, plus a
/// fifth bit: bit `2g` of `qh[l]` for element `l` of sub-block `2g`, bit `2g + 1` for `2g + 1`.
fn decode_q5_k(b: &[u8; 176], y: &mut [f32; QK_K]) {
    let (d, dmin, scales) = k4_header(b);
    let qh = &b[16..48];
    for (g, (y, qs)) in y.chunks_exact_mut(64).zip(b[48..].chunks_exact(32)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * g, &scales);
        let (sc2, m2) = scale_min_k4(2 * g + 1, &scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
        let (lo, hi) = y.split_at_mut(32);
        for (((&q, &h), a), c) in qs.iter().zip(qh).zip(lo).zip(hi) {
            let x0 = (q & 0x0f) + if h & u1 != 0 { 16 } else { 0 };
            let x1 = (q >> 4) + if h & u2 != 0 { 16 } else { 0 };
            *a = d1 * x0 as f32 - min1;
            *c = d2 * x1 as f32 - min2;
        }
    }
}

/// Q6_K: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`. Two halves of 128 elements;
/// half `n` reads `ql[64n..]`, `qh[32n..]`, `scales[8n..]`. For `l` in 0..32, the four
/// elements `l`, `l + 32`, `l + 64`, `l + 96` take the low nibble of `ql[l]`, the low nibble of
/// `ql[l + 32]`, the high nibble of `ql[l]`, the high nibble of `ql[l + 32]`, with bits
/// (0,1), (2,3), (4,5), (6,7) of `qh[l]` on top; scale `l / 16 + 2i` for the `i`-th of the four;
/// `y = (d * scale) * (q - 32)`.
fn decode_q6_k(b: &[u8; 210], y: &mut [f32; QK_K]) {
    let d = half_at(b[208], b[209]);
    let halves = y
        .chunks_exact_mut(128)
        .zip(b[..128].chunks_exact(64))
        .zip(b[128..192].chunks_exact(32))
        .zip(b[192..208].chunks_exact(8));
    for (((y, ql), qh), sc) in halves {
        let (y01, y23) = y.split_at_mut(64);
        let (y0, y1) = y01.split_at_mut(32);
        let (y2, y3) = y23.split_at_mut(32);
        let (ql0, ql1) = ql.split_at(32);
        let quads = y0.iter_mut().zip(y1).zip(y2.iter_mut().zip(y3.iter_mut()));
        for (l, (((a, b), (c, e)), ((&q0, &q1), &h))) in quads.zip(ql0.iter().zip(ql1).zip(qh)).enumerate() {
            let s = |i: usize| sc.get(l / 16 + 2 * i).map_or(0.0, |&s| s as i8 as f32);
            let x0 = ((q0 & 0x0f) | ((h & 3) << 4)) as i32 - 32;
            let x1 = ((q1 & 0x0f) | (((h >> 2) & 3) << 4)) as i32 - 32;
            let x2 = ((q0 >> 4) | (((h >> 4) & 3) << 4)) as i32 - 32;
            let x3 = ((q1 >> 4) | (((h >> 6) & 3) << 4)) as i32 - 32;
            *a = d * s(0) * x0 as f32;
            *b = d * s(1) * x1 as f32;
            *c = d * s(2) * x2 as f32;
            *e = d * s(3) * x3 as f32;
        }
    }
}

/// Dot product of a row of `B`-byte blocks of `E` elements with `x`: each block is decoded
/// into a stack buffer, then summed left to right in f32 into one running sum.
#[inline]
fn dot_blocks<const B: usize, const E: usize>(row: &[u8], x: &[f32], decode: impl Fn(&[u8; B], &mut [f32; E])) -> f32 {
    let mut buf = [0.0f32; E];
    let mut sum = 0.0f32;
    for (b, xs) in row.as_chunks::<B>().0.iter().zip(x.chunks(E)) {
        decode(b, &mut buf);
        for (&w, &xi) in buf.iter().zip(xs) {
            sum += w * xi;
        }
    }
    sum
}

/// Decodes a row of `B`-byte blocks of `E` elements into `out`, one block at a time.
#[inline]
fn dequantize_blocks<const B: usize, const E: usize>(
    row: &[u8],
    out: &mut [f32],
    decode: impl Fn(&[u8; B], &mut [f32; E]),
) {
    let mut buf = [0.0f32; E];
    for (b, o) in row.as_chunks::<B>().0.iter().zip(out.chunks_mut(E)) {
        decode(b, &mut buf);
        for (o, &v) in o.iter_mut().zip(&buf) {
            *o = v;
        }
    }
}

fn dot_row_scalar(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    match ty {
        GgmlType::F32 => {
            let mut sum = 0.0f32;
            for (c, &xi) in row.chunks_exact(4).zip(x) {
                sum += f32_at(c) * xi;
            }
            sum
        }
        GgmlType::F16 => {
            let mut sum = 0.0f32;
            for (c, &xi) in row.chunks_exact(2).zip(x) {
                sum += f16_to_f32(u16::from_le_bytes([c[0], c[1]])) * xi;
            }
            sum
        }
        GgmlType::BF16 => {
            let mut sum = 0.0f32;
            for (c, &xi) in row.chunks_exact(2).zip(x) {
                sum += bf16_to_f32(c[0], c[1]) * xi;
            }
            sum
        }
        GgmlType::Q8_0 => dot_blocks(row, x, decode_q8_0),
        GgmlType::Q4_0 => dot_blocks(row, x, decode_q4_0),
        GgmlType::Q4_1 => dot_blocks(row, x, decode_q4_1),
        GgmlType::Q5_0 => dot_blocks(row, x, decode_q5_0),
        GgmlType::Q5_1 => dot_blocks(row, x, decode_q5_1),
        GgmlType::Q4_K => dot_blocks(row, x, decode_q4_k),
        GgmlType::Q5_K => dot_blocks(row, x, decode_q5_k),
        GgmlType::Q6_K => dot_blocks(row, x, decode_q6_k),
        // The loader refuses other types before any compute (see `is_supported`).
        GgmlType::Q8_1 | GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q8_K => 0.0,
    }
}

/// `out[r] = W[r] · x` for each row of `w` (row-major, `out.len()` rows of `x.len()` columns).
///
/// Quantized rows are read block by block where they sit; only one decoded block exists at a
/// time, in a stack buffer. Each row is one f32 sum taken left to right over its elements.
pub fn matvec(ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = w.len() / out.len().max(1);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes.max(1))) {
        *o = dot_row_scalar(ty, row, x);
    }
}

// Quantized activations for the integer kernels ([`KernelPath::Avx2Q8`]).
//
// The input vector of a product is rounded once per position, as llama.cpp's CPU backend
// rounds it to the weight type's `vec_dot_type`, into blocks laid out for this core (byte
// arrays, little-endian, no alignment needed):
// - Q8_0 (for Q4_0 and Q8_0 weights): 36 bytes per 32 elements, `d: f32` then `qs: [i8; 32]`.
//   As ggml's `quantize_row_q8_0_ref`: `d = max|x| / 127`, `q = round(x / d)` (half away from
//   zero), and `d` is stored rounded to f16 (ggml's `block_q8_0` keeps an f16), here widened
//   back to f32.
// - Q8_K (for Q4_K and Q6_K weights): 292 bytes per 256 elements, `d: f32`, `qs: [i8; 256]`,
//   `bsums: [i16; 16]` (ggml's `block_q8_K`). As `quantize_row_q8_K_ref`: `max` is the element
//   of largest magnitude (with its sign), `iscale = -127 / max`, `q = min(127,
//   nearest(iscale * x))` (half to even), `d = 1 / iscale`, and `bsums[g]` is the sum of the
//   quants `16g..16g + 16` (the K kernels take their minimum/offset terms from it).

/// Bytes of one Q8_0 block of quantized activations.
pub const Q8_0_X_BYTES: usize = 36;
/// Bytes of one Q8_K block of quantized activations.
pub const Q8_K_X_BYTES: usize = 292;

/// Bytes of `cols` activations quantized to `vt` (Q8_0 or Q8_K), or `None` if `cols` is not a
/// whole number of its blocks (or `vt` is neither).
pub fn activation_bytes(vt: GgmlType, cols: usize) -> Option<usize> {
    match vt {
        GgmlType::Q8_0 => cols.is_multiple_of(QK).then_some(cols / QK * Q8_0_X_BYTES),
        GgmlType::Q8_K => cols.is_multiple_of(QK_K).then_some(cols / QK_K * Q8_K_X_BYTES),
        _ => None,
    }
}

/// Bytes that hold one input row of `cols` quantized to either activation type (0 if
/// neither fits).
pub fn activation_buffer_bytes(cols: usize) -> usize {
    let q0 = activation_bytes(GgmlType::Q8_0, cols).unwrap_or(0);
    let qk = activation_bytes(GgmlType::Q8_K, cols).unwrap_or(0);
    q0.max(qk)
}

/// ggml's `nearest_int`: round to nearest, ties to even (valid for |v| < 2^22).
#[inline]
fn nearest_int(v: f32) -> i32 {
    ((v + 12_582_912.0).to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Rounds `x` to Q8_0 activation blocks in `out` (see the layout above). Whole blocks only:
/// a tail shorter than a block is ignored.
pub fn quantize_activations_q8_0(x: &[f32], out: &mut [u8]) {
    for (xs, b) in x.chunks_exact(QK).zip(out.chunks_exact_mut(Q8_0_X_BYTES)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[..4].copy_from_slice(&f16_to_f32(f32_to_f16(d)).to_le_bytes());
        for (q, &v) in b[4..].iter_mut().zip(xs) {
            *q = libm::roundf(v * id) as i8 as u8;
        }
    }
}

/// Rounds `x` to Q8_K activation blocks in `out` (see the layout above). Whole blocks only.
pub fn quantize_activations_q8_k(x: &[f32], out: &mut [u8]) {
    for (xs, b) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(Q8_K_X_BYTES)) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        let (head, sums) = b.split_at_mut(4 + QK_K);
        for (q, &v) in head[4..].iter_mut().zip(xs) {
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        for (s, qs) in sums.chunks_exact_mut(2).zip(head[4..].chunks_exact(16)) {
            let sum: i32 = qs.iter().map(|&q| q as i8 as i32).sum();
            s.copy_from_slice(&(sum as i16).to_le_bytes());
        }
        head[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// Rounds `x` to `vt` (Q8_0 or Q8_K) activation blocks in `out`.
pub fn quantize_activations(vt: GgmlType, x: &[f32], out: &mut [u8]) {
    match vt {
        GgmlType::Q8_0 => quantize_activations_q8_0(x, out),
        GgmlType::Q8_K => quantize_activations_q8_k(x, out),
        _ => {}
    }
}

/// Which implementation of the dot products a [`Kernels`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KernelPath {
    /// The portable code every target has: one f32 sum per row, left to right.
    #[default]
    Scalar,
    /// x86-64 AVX2 + FMA + F16C vectors for F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K
    /// (the other types run the scalar code).
    Avx2,
    /// Opt-in: [`KernelPath::Avx2`], except that Q4_0, Q8_0, Q4_K and Q6_K products first round
    /// the input to Q8_0 or Q8_K blocks, as llama.cpp does, and take integer dot products. Not
    /// within the f32-activation tolerance; see the module documentation.
    Avx2Q8,
    /// [`KernelPath::Avx2Q8`] with AVX-512 VNNI (`vpdpbusd`) for the Q4_0 and Q8_0 integer dots:
    /// the same exact integer lanes, so bit-identical results, in fewer instructions.
    Avx512Q8,
}

impl KernelPath {
    /// A short name (`scalar`, `avx2`).
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx2Q8 => "avx2-q8",
            KernelPath::Avx512Q8 => "avx512-q8",
        }
    }

    /// Whether this path rounds the input of (some) products to Q8_0/Q8_K blocks, so that its
    /// plan needs [`crate::PlanOptions::quantized_activations`].
    pub fn quantizes_activations(self) -> bool {
        matches!(self, KernelPath::Avx2Q8 | KernelPath::Avx512Q8)
    }
}

/// The kernel selector: which code computes the matrix-vector products.
///
/// The core cannot ask the CPU what it supports, so a vector path can only be made by an
/// `unsafe` constructor whose contract is that the CPU has the instructions (`spool-std`'s
/// `kernels::detect` checks at run time and is safe). [`Kernels::SCALAR`], the default, is
/// bit-exact with llama2.c.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Kernels {
    path: KernelPath,
}

impl Kernels {
    /// The portable scalar kernels.
    pub const SCALAR: Kernels = Kernels { path: KernelPath::Scalar };

    /// The AVX2 + FMA + F16C kernels.
    ///
    /// # Safety
    /// The CPU that runs any product through the returned value must support the `avx2`,
    /// `fma` and `f16c` instructions (for example: `is_x86_feature_detected!` said so for
    /// each). Running them on a CPU without these is undefined behaviour.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx2() -> Kernels {
        Kernels { path: KernelPath::Avx2 }
    }

    /// The AVX2 kernels with quantized activations ([`KernelPath::Avx2Q8`]), opt-in only.
    ///
    /// # Safety
    /// As [`Kernels::avx2`]: the CPU must support `avx2`, `fma` and `f16c`.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx2_q8() -> Kernels {
        Kernels { path: KernelPath::Avx2Q8 }
    }

    /// [`Kernels::avx2_q8`] with AVX-512 VNNI integer dots ([`KernelPath::Avx512Q8`]),
    /// bit-identical with it, opt-in only.
    ///
    /// # Safety
    /// The CPU must support `avx2`, `fma`, `f16c`, `avx512f`, `avx512bw`, `avx512vl` and
    /// `avx512vnni`.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx512_q8() -> Kernels {
        Kernels { path: KernelPath::Avx512Q8 }
    }

    /// The type this path rounds the input to before a product with `ty` weights (Q8_0 or
    /// Q8_K), or `None` when the input stays f32. Only [`KernelPath::Avx2Q8`] rounds.
    pub fn activation_type(self, ty: GgmlType) -> Option<GgmlType> {
        match (self.path, ty) {
            (KernelPath::Avx2Q8 | KernelPath::Avx512Q8, GgmlType::Q4_0 | GgmlType::Q8_0) => Some(GgmlType::Q8_0),
            (KernelPath::Avx2Q8 | KernelPath::Avx512Q8, GgmlType::Q4_K | GgmlType::Q6_K) => Some(GgmlType::Q8_K),
            _ => None,
        }
    }

    /// `out[r] = W[r] · x` where `xq` is `x` rounded by [`quantize_activations`] to
    /// [`Kernels::activation_type`]`(ty)`: integer dot products per block, scaled and summed in
    /// f32 in a fixed order per row. Falls back to nothing else: on a path or type without
    /// such kernels, `out` is left unchanged.
    pub fn matvec_quantized(self, ty: GgmlType, w: &[u8], xq: &[u8], out: &mut [f32]) {
        match self.path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an Avx2Q8 `Kernels` is only made by `Kernels::avx2_q8`, whose caller
            // promised that this CPU supports avx2, fma and f16c.
            KernelPath::Avx2Q8 => unsafe { avx2::matvec_q8(ty, w, xq, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an Avx512Q8 `Kernels` is only made by `Kernels::avx512_q8`, whose caller
            // promised that this CPU supports avx2, fma, f16c, avx512f/bw/vl and avx512vnni.
            KernelPath::Avx512Q8 => unsafe { avx2::matvec_q8_vnni(ty, w, xq, out) },
            _ => {
                let _ = (ty, w, xq, out);
            }
        }
    }

    /// [`quantize_activations`] with this path's instructions: the same bytes.
    pub fn quantize_activations(self, vt: GgmlType, x: &[f32], out: &mut [u8]) {
        match (self.path, vt) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both paths are only made by constructors whose caller promised that this
            // CPU supports avx2, fma and f16c.
            (KernelPath::Avx2Q8 | KernelPath::Avx512Q8, GgmlType::Q8_0) => unsafe { avx2::quantize_q8_0(x, out) },
            _ => quantize_activations(vt, x, out),
        }
    }

    /// Which path this is.
    pub fn path(self) -> KernelPath {
        self.path
    }

    /// Whether `ty` has a vector kernel on this path (otherwise it runs the scalar code).
    pub fn vectorized(self, ty: GgmlType) -> bool {
        match self.path {
            KernelPath::Scalar => false,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 | KernelPath::Avx2Q8 | KernelPath::Avx512Q8 => avx2::has_kernel(ty),
            #[cfg(not(target_arch = "x86_64"))]
            KernelPath::Avx2 | KernelPath::Avx2Q8 | KernelPath::Avx512Q8 => {
                let _ = ty;
                false
            }
        }
    }

    /// [`matvec`] on this path: `out[r] = W[r] · x`. Each row's summation order depends only
    /// on the row, so splitting rows (into units, or over threads) never changes a result.
    pub fn matvec(self, ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32]) {
        match self.path {
            KernelPath::Scalar => matvec(ty, w, x, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Kernels` with the Avx2 path is only made by `Kernels::avx2`, whose
            // caller promised that this CPU supports avx2, fma and f16c (`Kernels::avx2_q8`
            // and `Kernels::avx512_q8` make the same promise, and more).
            KernelPath::Avx2 | KernelPath::Avx2Q8 | KernelPath::Avx512Q8 => unsafe { avx2::matvec(ty, w, x, out) },
            #[cfg(not(target_arch = "x86_64"))]
            KernelPath::Avx2 | KernelPath::Avx2Q8 | KernelPath::Avx512Q8 => matvec(ty, w, x, out),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Decodes one row into f32 (the embedding lookup).
pub fn dequantize_row(ty: GgmlType, row: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32_at(c);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = bf16_to_f32(c[0], c[1]);
            }
        }
        GgmlType::Q8_0 => dequantize_blocks(row, out, decode_q8_0),
        GgmlType::Q4_0 => dequantize_blocks(row, out, decode_q4_0),
        GgmlType::Q4_1 => dequantize_blocks(row, out, decode_q4_1),
        GgmlType::Q5_0 => dequantize_blocks(row, out, decode_q5_0),
        GgmlType::Q5_1 => dequantize_blocks(row, out, decode_q5_1),
        GgmlType::Q4_K => dequantize_blocks(row, out, decode_q4_k),
        GgmlType::Q5_K => dequantize_blocks(row, out, decode_q5_k),
        GgmlType::Q6_K => dequantize_blocks(row, out, decode_q6_k),
        GgmlType::Q8_1 | GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q8_K => {}
    }
}

#[cfg(test)]
mod tests;
