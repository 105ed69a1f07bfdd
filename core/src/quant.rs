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
pub const SUPPORTED_TYPES: &str = "F32, F16";

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
        matches!(self, GgmlType::F32 | GgmlType::F16)
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

fn dot_row(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    match ty {
        GgmlType::F32 => {
            for (c, &xi) in row.chunks_exact(4).zip(x) {
                sum += f32_at(c) * xi;
            }
        }
        GgmlType::F16 => {
            for (c, &xi) in row.chunks_exact(2).zip(x) {
                sum += f16_to_f32(u16::from_le_bytes([c[0], c[1]])) * xi;
            }
        }
        // The loader refuses other types before any compute (see `is_supported`).
        _ => {}
    }
    sum
}

/// `out[r] = W[r] · x` for each row of `w` (row-major, `out.len()` rows of `x.len()` columns).
pub fn matvec(ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32]) {
    let row_bytes = w.len() / out.len().max(1);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes.max(1))) {
        *o = dot_row(ty, row, x);
    }
}

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
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn f32_matvec_sums_each_row() {
        let w: [f32; 6] = [1.0, 2.0, 3.0, -1.0, 0.5, 0.25];
        let mut bytes = [0u8; 24];
        for (c, v) in bytes.chunks_exact_mut(4).zip(w) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        let mut out = [0.0; 2];
        matvec(GgmlType::F32, &bytes, &[1.0, 1.0, 2.0], &mut out);
        assert_eq!(out, [9.0, 0.0]);
    }
}
