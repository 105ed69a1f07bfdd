//! One weight unit's product over the positions of a prefill chunk, cut into executor jobs:
//! which positions and rows an output range holds, and which kernel computes them (the tiled
//! several-position product for runs of whole positions, the matrix-vector kernel for the
//! rest). Owns that mapping only: it must not know units, the cache or the engine (the caller,
//! `engine/weights.rs`, supplies the bytes) nor hold kernel arithmetic.

use super::{GgmlType, Kernels, MatShape};

/// One weight unit's product over the `n` positions of a chunk, as executor jobs: the output
/// span is `out[row0..(n - 1) * stride + row0 + rows]` of `out: [n][stride]` (the unit's rows
/// of every position, and the other units' rows between them, which no job touches). The
/// executor splits the span into consecutive element ranges: with one position that is a
/// split of the rows, as for decode; with many, mostly a split of the positions. A run of
/// whole positions goes to [`Kernels::matmul_quantized`] (each weight block read once for
/// several positions), a lone or partial position to the matrix-vector kernel: every value has
/// the bits of the per-position product, whatever the split.
pub(crate) struct UnitProduct<'j> {
    pub(crate) kernels: Kernels,
    pub(crate) ty: GgmlType,
    /// The unit's rows, `rows` rows of equal length.
    pub(crate) w: &'j [u8],
    /// Rows in the unit.
    pub(crate) rows: usize,
    /// The unit's first row within the tensor.
    pub(crate) row0: usize,
    /// Rows of the tensor: the distance between two positions' outputs.
    pub(crate) stride: usize,
    /// The f32 input, `[n][cols]`.
    pub(crate) x: &'j [f32],
    pub(crate) cols: usize,
    /// The rounded input, `[n][q_row]` bytes (`q_row` 0: the f32 kernels run).
    pub(crate) xq: &'j [u8],
    pub(crate) q_row: usize,
}

impl UnitProduct<'_> {
    /// Elements of the output span.
    pub(crate) fn span(&self, n: usize) -> core::ops::Range<usize> {
        self.row0..(n.max(1) - 1) * self.stride + self.row0 + self.rows
    }

    /// Computes elements `e0..e0 + chunk.len()` of the span into `chunk`.
    pub(crate) fn run(&self, e0: usize, chunk: &mut [f32]) {
        let (stride, rows) = (self.stride.max(1), self.rows);
        let row_bytes = self.w.len() / rows.max(1);
        // Absolute indices into `out`.
        let (a0, a1) = (self.row0 + e0, self.row0 + e0 + chunk.len());
        let mut p = a0 / stride;
        while p * stride + self.row0 < a1 {
            let first = p * stride + self.row0;
            let (lo, hi) = (first.max(a0), (first + rows).min(a1));
            if lo >= hi {
                p += 1;
                continue;
            }
            // Whole positions from `p` on: one product over all of them.
            let mut whole = 0;
            while self.q_row > 0
                && (p + whole) * stride + self.row0 >= a0
                && (p + whole) * stride + self.row0 + rows <= a1
            {
                whole += 1;
            }
            if whole >= 2 {
                let xq = self.xq.get(p * self.q_row..(p + whole) * self.q_row).unwrap_or(&[]);
                let shape = MatShape { rows, q_row: self.q_row, stride };
                self.kernels.matmul_quantized(self.ty, self.w, xq, &mut chunk[first - a0..], shape);
                p += whole;
                continue;
            }
            let (r0, r1) = (lo - first, hi - first);
            let w = self.w.get(r0 * row_bytes..r1 * row_bytes).unwrap_or(&[]);
            let out = &mut chunk[lo - a0..hi - a0];
            if self.q_row > 0 {
                let xq = self.xq.get(p * self.q_row..(p + 1) * self.q_row).unwrap_or(&[]);
                self.kernels.matvec_quantized(self.ty, w, xq, out);
            } else {
                let x = self.x.get(p * self.cols..(p + 1) * self.cols).unwrap_or(&[]);
                self.kernels.matvec(self.ty, w, x, out);
            }
            p += 1;
        }
    }
}
