//! The portable integer path: Q8_0 weights × Q8_0 activations ([`KernelPath::ScalarQ8`]), bit
//! for bit the AVX2 integer path's Q8_0 product, on any CPU. Owns this product's arithmetic
//! order (shared with the Cortex-M4 DSP kernel, `arm/dsp.rs`, which supplies only its own
//! 4-byte integer dot and fused multiply-add) and its kernel table; it must not hold the
//! activation rounding (`act.rs`) nor other weight types (they run `scalar.rs` in f32).
//!
//! The order, which is the AVX2 kernel's lane for lane (`x86/avx2_q8.rs`, `q8_0_rows`, itself
//! ggml's x86 `ggml_vec_dot_q8_0_q8_0`): for block `j` of a row, `d = f16(dx) * dy` (f32), and
//! each of eight lanes `k` takes the exact integer `p = Σ qx qy` over bytes `4k..4k + 4` and
//! accumulates `acc[k] = fma(d, p, acc[k])` (one rounding, as `vfmadd`), block after block; at
//! the end `(v0 + v4) + (v2 + v6)` plus `(v1 + v5) + (v3 + v7)` (`hsum`'s tree). Every integer is
//! exact (`|p| ≤ 4 · 128 · 127`), so only the float steps could differ, and they are the same.

use super::blocks::{q8_0, q8_0_x, QK};
use super::half::f16_to_f32;
use super::table::{by_type, IntRows, KernelPath, Table};
use super::GgmlType;

/// Lanes of the AVX2 accumulator (eight f32), each the sum of 4 bytes' products per block.
const LANES: usize = QK / 4;

/// `Σ x[i] y[i]` over 4 signed bytes, exactly (the portable integer dot of one lane).
#[inline(always)]
pub(crate) fn dot4(x: [u8; 4], y: [u8; 4]) -> i32 {
    x.iter().zip(y).map(|(&a, b)| i32::from(a as i8) * i32::from(b as i8)).sum()
}

/// `a * b + c` with one rounding (IEEE fusedMultiplyAdd), as `vfmadd231ps` does.
#[inline(always)]
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    libm::fmaf(a, b, c)
}

/// The four bytes of lane `k` of a 32-byte quant array.
#[inline(always)]
fn lane(qs: &[u8], k: usize) -> [u8; 4] {
    let mut w = [0u8; 4];
    w.copy_from_slice(&qs[4 * k..4 * k + 4]);
    w
}

/// One row of Q8_0 weight blocks against the Q8_0 activation blocks `ys` in the AVX2 order
/// (module documentation), with the lane dot `dot` and the fused multiply-add `fma` of the
/// caller's ISA; both must be exact/IEEE, so every caller gets the same bits.
#[inline(always)]
pub(crate) fn row_q8_0(
    row: &[q8_0::Block],
    ys: &[q8_0_x::Block],
    dot: impl Fn([u8; 4], [u8; 4]) -> i32,
    fma: impl Fn(f32, f32, f32) -> f32,
) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (b, y) in row.iter().zip(ys) {
        let dx = f16_to_f32(u16::from_le_bytes([b[q8_0::D], b[q8_0::D + 1]]));
        let dy = f32::from_le_bytes([y[q8_0_x::D], y[q8_0_x::D + 1], y[q8_0_x::D + 2], y[q8_0_x::D + 3]]);
        let d = dx * dy;
        let (xq, yq) = (&b[q8_0::QS..], &y[q8_0_x::QS..]);
        for (k, a) in acc.iter_mut().enumerate() {
            *a = fma(d, dot(lane(xq, k), lane(yq, k)) as f32, *a);
        }
    }
    let v = acc;
    // `hsum`: the two 128-bit halves, then the high pair onto the low pair, then the two.
    let s = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
    (s[0] + s[2]) + (s[1] + s[3])
}

/// Every row of `w` (Q8_0, `w.len() / out.len()` bytes per row) against the Q8_0 activation
/// blocks `xq`, with the caller's lane dot and fused multiply-add (see [`row_q8_0`]).
#[inline(always)]
pub(crate) fn matvec_q8_0_with(
    w: &[u8],
    xq: &[u8],
    out: &mut [f32],
    dot: impl Fn([u8; 4], [u8; 4]) -> i32 + Copy,
    fma: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    let row_bytes = (w.len() / out.len().max(1)).max(1);
    let (ys, _) = xq.as_chunks::<{ q8_0_x::BYTES }>();
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let (blocks, _) = row.as_chunks::<{ q8_0::BYTES }>();
        *o = row_q8_0(blocks, ys, dot, fma);
    }
}

/// Q8_0 × Q8_0 with the portable integer dot and `libm::fmaf`.
fn matvec_q8_0_q8(w: &[u8], xq: &[u8], out: &mut [f32]) {
    matvec_q8_0_with(w, xq, out, dot4, fma);
}

/// A table entry from a safe kernel (the table's type is `unsafe fn`; these have no
/// precondition).
macro_rules! int_entry {
    ($f:path) => {{
        /// # Safety
        /// None: a portable kernel, sound on any CPU and for any slices.
        unsafe fn entry(w: &[u8], xq: &[u8], out: &mut [f32]) {
            $f(w, xq, out)
        }
        (GgmlType::Q8_0, IntRows { vec_dot_type: GgmlType::Q8_0, rows: entry, mat: None })
    }};
}
#[cfg_attr(not(all(target_arch = "arm", feature = "arm-dsp")), allow(unused_imports))]
pub(crate) use int_entry;

/// [`KernelPath::ScalarQ8`]: Q8_0 products on the integer path, every other type in scalar f32
/// (`scalar.rs`), activations rounded by the portable `act.rs`.
pub(crate) static TABLE: Table = Table {
    path: KernelPath::ScalarQ8,
    rows: [None; GgmlType::COUNT],
    int_rows: by_type([int_entry!(matvec_q8_0_q8)]),
    quantize_act: None,
};
