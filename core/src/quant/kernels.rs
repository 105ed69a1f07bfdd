//! Kernel dispatch: [`Kernels`], which holds one per-ISA kernel [`Table`] (`table.rs`, in the
//! manner of ggml's `type_traits_cpu`), and calls it from one audited `unsafe` site. Owns the selection only: it must not hold kernel arithmetic (`scalar.rs`,
//! `act.rs` and the ISA files do) nor detect CPU features (the caller's job, `spool-std`'s
//! `kernels::detect`).
//!
//! An ISA file exports one `static` [`Table`]; nothing matches on the path to pick code. A new
//! ISA (say NEON) is:
//! - one new file, `arm/neon.rs`: its kernels and `pub(crate) static TABLE`, declared in
//!   `mod.rs` as `#[cfg(target_arch = "aarch64")] mod arm { pub(crate) mod neon; }`;
//! - one `unsafe` constructor here, `Kernels::from_table(&super::arm::neon::TABLE)`, with its
//!   [`KernelPath`] variant and name;
//! - one detection line in `spool-std`'s `kernels.rs`.

use super::act;
use super::scalar;
pub use super::table::KernelPath;
pub use super::table::MatShape;
pub(crate) use super::table::Table;
use super::GgmlType;

/// The portable path: no entries, so everything runs `scalar.rs` and `act.rs`.
static SCALAR_TABLE: Table = Table {
    path: KernelPath::Scalar,
    rows: [None; GgmlType::COUNT],
    int_rows: [None; GgmlType::COUNT],
    quantize_act: None,
};

/// The kernel selector: which code computes the matrix-vector products.
///
/// The core cannot ask the CPU what it supports, so a vector path can only be made by an
/// `unsafe` constructor whose contract is that the CPU has the instructions (`spool-std`'s
/// `kernels::detect` checks at run time and is safe). [`Kernels::SCALAR`], the default, is
/// bit-exact with llama2.c.
#[derive(Clone, Copy)]
pub struct Kernels {
    table: &'static Table,
}

impl Kernels {
    /// The portable scalar kernels.
    pub const SCALAR: Kernels = Kernels { table: &SCALAR_TABLE };

    /// The portable integer path ([`KernelPath::ScalarQ8`]): Q8_0 products with activations
    /// rounded to Q8_0, bit-identical with [`KernelPath::Avx2Q8`]'s; any CPU.
    pub const SCALAR_Q8: Kernels = Kernels { table: &super::scalar_q8::TABLE };

    /// [`Kernels::SCALAR_Q8`] with the ARMv7E-M DSP instructions ([`KernelPath::DspQ8`]),
    /// bit-identical with it. Built only with the `arm-dsp` feature on Arm, whose assembler
    /// refuses `SMLAD` for a core without the DSP extension.
    #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
    pub const DSP_Q8: Kernels = Kernels { table: &super::arm::dsp::TABLE };

    /// The best integer path this build has without asking the CPU: [`Kernels::DSP_Q8`] with
    /// the `arm-dsp` feature on Arm, else [`Kernels::SCALAR_Q8`].
    pub const fn portable_q8() -> Kernels {
        #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
        return Kernels::DSP_Q8;
        #[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
        Kernels::SCALAR_Q8
    }

    /// The kernels of `table`.
    ///
    /// # Safety
    /// The CPU that runs any product through the returned value must have the features that
    /// `table`'s ISA file names (the [`Table`] contract).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) const unsafe fn from_table(table: &'static Table) -> Kernels {
        Kernels { table }
    }

    /// The AVX2 + FMA + F16C kernels.
    ///
    /// # Safety
    /// The CPU that runs any product through the returned value must support the `avx2`,
    /// `fma` and `f16c` instructions (for example: `is_x86_feature_detected!` said so for
    /// each). Running them on a CPU without these is undefined behaviour.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx2() -> Kernels {
        // SAFETY: our caller promises avx2, fma and f16c, the features of `avx2::TABLE`.
        unsafe { Kernels::from_table(&super::x86::avx2::TABLE) }
    }

    /// The AVX2 kernels with quantized activations ([`KernelPath::Avx2Q8`]), opt-in only.
    ///
    /// # Safety
    /// As [`Kernels::avx2`]: the CPU must support `avx2`, `fma` and `f16c`.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx2_q8() -> Kernels {
        // SAFETY: our caller promises avx2, fma and f16c, the features of `avx2_q8::TABLE_Q8`.
        unsafe { Kernels::from_table(&super::x86::avx2_q8::TABLE_Q8) }
    }

    /// [`Kernels::avx2_q8`] with AVX-512 VNNI integer dots ([`KernelPath::Avx512Q8`]),
    /// bit-identical with it, opt-in only.
    ///
    /// # Safety
    /// The CPU must support `avx2`, `fma`, `f16c`, `avx512f`, `avx512bw`, `avx512vl` and
    /// `avx512vnni`.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx512_q8() -> Kernels {
        // SAFETY: our caller promises every feature of `avx512::TABLE_Q8`.
        unsafe { Kernels::from_table(&super::x86::avx512::TABLE_Q8) }
    }

    /// Runs `f`, a kernel of this path's table: the one place where dispatch enters `unsafe`
    /// code. Every caller passes a function read from `self.table`.
    #[inline(always)]
    fn call<A, B, C>(self, f: unsafe fn(A, B, C), a: A, b: B, c: C) {
        // SAFETY: `f` is an entry of `self.table` (the callers below read it from there), and a
        // `Kernels` holding a table is made only by `Kernels::from_table`, whose caller promised
        // that this CPU has the features the table's kernels need (the `Table` contract). The
        // kernels take any slices: they read and write only within them.
        unsafe { f(a, b, c) }
    }

    /// The type this path rounds the input to before a product with `ty` weights (Q8_0 or
    /// Q8_K), or `None` when the input stays f32. Only the opt-in Q8 paths round.
    pub fn activation_type(self, ty: GgmlType) -> Option<GgmlType> {
        self.table.int_rows[ty.index()].map(|k| k.vec_dot_type)
    }

    /// `out[r] = W[r] · x` where `xq` is `x` rounded by [`act::quantize_activations`] to
    /// [`Kernels::activation_type`]`(ty)`: integer dot products per block, scaled and summed in
    /// f32 in a fixed order per row. Falls back to nothing else: on a path or type without
    /// such kernels, `out` is left unchanged.
    pub fn matvec_quantized(self, ty: GgmlType, w: &[u8], xq: &[u8], out: &mut [f32]) {
        if let Some(k) = self.table.int_rows[ty.index()] {
            self.call(k.rows, w, xq, out);
        }
    }

    /// `out[p * stride + r] = W[r] · xq[p]` for the `shape.rows` rows of `w` and the
    /// `xq.len() / shape.q_row` positions of rounded input `xq` (prefill): each value has the
    /// bits [`Kernels::matvec_quantized`] gives that row and position alone. A path with a
    /// register-tiled kernel for `ty` reads each weight block once for several positions;
    /// otherwise the rows run in groups of [`MAT_ROW_GROUP`], each group against every
    /// position while its bytes are in the first-level cache. A shape that does not fit `out`
    /// leaves the rest of `out` unchanged.
    pub fn matmul_quantized(self, ty: GgmlType, w: &[u8], xq: &[u8], out: &mut [f32], shape: MatShape) {
        let Some(k) = self.table.int_rows[ty.index()] else { return };
        let (rows, q_row) = (shape.rows, shape.q_row.max(1));
        let positions = xq.len() / q_row;
        if rows == 0 || positions == 0 || shape.stride < rows {
            return;
        }
        let needed = (positions - 1).checked_mul(shape.stride).and_then(|v| v.checked_add(rows));
        if needed.is_none_or(|n| n > out.len()) {
            return;
        }
        let row_bytes = w.len() / rows;
        if let Some(mat) = k.mat {
            // SAFETY: as in `call`: `mat` is an entry of `self.table`, whose constructor's
            // caller promised this CPU's features; it reads and writes only within its slices.
            unsafe { mat(&w[..rows * row_bytes], &xq[..positions * q_row], out, shape) };
            return;
        }
        let mut r0 = 0;
        while r0 < rows {
            let nr = MAT_ROW_GROUP.min(rows - r0);
            let wr = &w[r0 * row_bytes..(r0 + nr) * row_bytes];
            for (p, xp) in xq.chunks_exact(q_row).enumerate() {
                let at = p * shape.stride + r0;
                self.call(k.rows, wr, xp, &mut out[at..at + nr]);
            }
            r0 += nr;
        }
    }

    /// Whether `ty` has a register-tiled several-position kernel on this path.
    pub fn tiled(self, ty: GgmlType) -> bool {
        self.table.int_rows[ty.index()].is_some_and(|k| k.mat.is_some())
    }

    /// [`act::quantize_activations`] with this path's instructions: the same bytes.
    pub fn quantize_activations(self, vt: GgmlType, x: &[f32], out: &mut [u8]) {
        match self.table.quantize_act {
            Some(f) => self.call(f, vt, x, out),
            None => act::quantize_activations(vt, x, out),
        }
    }

    /// Which path this is.
    pub fn path(self) -> KernelPath {
        self.table.path
    }

    /// Whether `ty` has a vector kernel on this path (otherwise it runs the scalar code).
    pub fn vectorized(self, ty: GgmlType) -> bool {
        self.table.rows[ty.index()].is_some()
    }

    /// [`scalar::matvec`] on this path: `out[r] = W[r] · x`. Each row's summation order depends
    /// only on the row, so splitting rows (into units, or over threads) never changes a result.
    pub fn matvec(self, ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32]) {
        match self.table.rows[ty.index()] {
            Some(f) => self.call(f, w, x, out),
            None => scalar::matvec(ty, w, x, out),
        }
    }
}

/// Rows per group of [`Kernels::matmul_quantized`]'s fallback: 16 rows of 2048 Q4_K or Q6_K
/// columns are 18 to 27 KiB, inside a first-level data cache.
pub const MAT_ROW_GROUP: usize = 16;

impl Default for Kernels {
    fn default() -> Kernels {
        Kernels::SCALAR
    }
}

impl PartialEq for Kernels {
    fn eq(&self, other: &Kernels) -> bool {
        self.path() == other.path()
    }
}

impl Eq for Kernels {}

impl core::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernels").field("path", &self.path()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Kernels {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Kernels {{ path: {} }}", self.path())
    }
}
