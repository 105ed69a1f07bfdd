//! The Cortex-M4/M7 (ARMv7E-M DSP extension) Q8_0 × Q8_0 kernel ([`KernelPath::DspQ8`]): the
//! portable integer path's arithmetic (`scalar_q8.rs`, which owns the order) with each lane's
//! 4-byte dot in `SXTB16` + `SMUAD`/`SMLAD` and the accumulation in `VFMA.F32` (on eabihf),
//! both through stable inline asm. Owns these two instructions only; it must not change the
//! order, so its results are the scalar path's, bit for bit.
//!
//! Per lane: `SXTB16` sign-extends bytes 0 and 2 of a word into two halfwords, `SXTB16 ..,
//! ROR #8` bytes 1 and 3; `SMUAD` multiplies the halfword pairs and adds them, `SMLAD` does the
//! same and adds an accumulator. The sum of four i8 products is exact (well inside i32, so
//! SMLAD's Q flag never sets). `VFMA.F32` is IEEE fusedMultiplyAdd, as `libm::fmaf`.

use super::super::scalar_q8::{int_entry, matvec_q8_0_with};
use super::super::table::{by_type, IntRows, KernelPath, Table};
use super::super::GgmlType;

/// `Σ x[i] y[i]` over 4 signed bytes with two dual 16-bit multiply-accumulates.
#[inline(always)]
fn dot4_smlad(x: [u8; 4], y: [u8; 4]) -> i32 {
    let (x, y) = (u32::from_le_bytes(x), u32::from_le_bytes(y));
    let sum: i32;
    // SAFETY: register-only DSP instructions of ARMv7E-M (this module is built only with the
    // `arm-dsp` feature, for such cores); no memory, stack or flags that Rust relies on.
    unsafe {
        core::arch::asm!(
            "sxtb16 {xa}, {x}",
            "sxtb16 {xb}, {x}, ror #8",
            "sxtb16 {ya}, {y}",
            "sxtb16 {yb}, {y}, ror #8",
            "smuad {sum}, {xa}, {ya}",
            "smlad {sum}, {xb}, {yb}, {sum}",
            x = in(reg) x,
            y = in(reg) y,
            xa = out(reg) _,
            xb = out(reg) _,
            ya = out(reg) _,
            yb = out(reg) _,
            sum = out(reg) sum,
            options(pure, nomem, nostack),
        );
    }
    sum
}

/// `a * b + c` with one rounding: `VFMA.F32` (FPv4-SP, on the hard-float ABI). Rust's `sreg`
/// operands need the (unstable) `vfp2` target feature, so the operands travel in core
/// registers and the asm saves and restores the three FPU registers it uses.
#[cfg(target_abi = "eabihf")]
#[inline(always)]
fn fma_vfma(a: f32, b: f32, c: f32) -> f32 {
    let mut acc = c.to_bits();
    // SAFETY: FPv4 register instructions (eabihf targets have the FPU); s0-s2 are pushed first
    // and popped last, so no register the compiler uses changes; the stack is balanced.
    unsafe {
        core::arch::asm!(
            "vpush {{s0-s2}}",
            "vmov s0, {a}",
            "vmov s1, {b}",
            "vmov s2, {acc}",
            "vfma.f32 s2, s0, s1",
            "vmov {acc}, s2",
            "vpop {{s0-s2}}",
            acc = inout(reg) acc,
            a = in(reg) a.to_bits(),
            b = in(reg) b.to_bits(),
            options(pure, nomem),
        );
    }
    f32::from_bits(acc)
}

/// Without an FPU: the portable fused multiply-add (the same IEEE result).
#[cfg(not(target_abi = "eabihf"))]
#[inline(always)]
fn fma_vfma(a: f32, b: f32, c: f32) -> f32 {
    super::super::scalar_q8::fma(a, b, c)
}

/// Q8_0 × Q8_0 with SMLAD lane dots. Not inlined, so that its loop can be found (and read) in
/// the firmware's disassembly.
#[inline(never)]
fn matvec_q8_0_q8_dsp(w: &[u8], xq: &[u8], out: &mut [f32]) {
    matvec_q8_0_with(w, xq, out, dot4_smlad, fma_vfma);
}

/// [`KernelPath::DspQ8`]: [`super::super::scalar_q8::TABLE`] with the DSP Q8_0 kernel.
pub(crate) static TABLE: Table = Table {
    path: KernelPath::DspQ8,
    rows: [None; GgmlType::COUNT],
    int_rows: by_type([int_entry!(matvec_q8_0_q8_dsp)]),
    quantize_act: None,
};
