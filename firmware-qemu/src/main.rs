//! Spool on an emulated Cortex-M4F (QEMU `mps2-an386`, or `netduinoplus2` with that feature):
//! the golden greedy case of stories260K (or its prefix at the board's shorter context), with
//! the weights streamed from a host file over semihosting through a static arena. No heap: the
//! arena and the engine live in `.bss` (the engine's tables inside the arena), everything else
//! on the stack, whose peak is measured by painting it.
//!
//! Then the same case on stories260K-Q8_0.gguf through the integer path (activations rounded
//! to Q8_0): the portable `scalar-q8` kernels and, on Arm, the SMLAD kernel; both must give the
//! golden ids and logits bit-identical with the desktop's `scalar-q8` path (an FNV-1a hash of
//! every logit).
//!
//! Exits QEMU with status 0 when the token ids equal the reference (llama2.c `run.c`), 1 otherwise,
//! on any error or panic, or when the engine or a stack peak exceeds issue 11's bounds.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, Ordering};

#[cfg(target_arch = "arm")]
use cortex_m as _; // links the critical-section implementation
#[cfg(target_arch = "riscv32")]
use riscv as _; // links the critical-section implementation
use semihosting::fs::File;
use semihosting::io::{Read as _, Seek as _, SeekFrom, Write as _};
// The report goes to semihosting stderr as plain text (stdout carries defmt's frames).
use defmt_semihosting as _; // the global defmt logger
use semihosting::{eprint as print, eprintln as println};
use spool_core::{generate_with_logits, Engine, Kernels, Sampler, Storage};

/// The model, relative to the directory QEMU starts in (the repository root under `make qemu`).
const MODEL: &core::ffi::CStr = c"models/stories260K.gguf";

#[cfg(all(target_arch = "arm", not(feature = "netduinoplus2")))]
mod board {
    pub const BOARD: &str = "mps2-an386 (Cortex-M4F, 4 MiB RAM)";
    /// The RAM budget: about half the 1.18 MB model, so most weights stream through slots.
    pub const ARENA_BYTES: usize = 600 * 1024;
    /// Positions planned and run: the golden case's `steps`.
    pub const STEPS: u32 = 64;
    pub const KV_F16: bool = false;
}

#[cfg(all(target_arch = "riscv32", not(feature = "netduinoplus2")))]
mod board {
    pub const BOARD: &str = "riscv32 virt (RV32IMAC, the ESP32-C3/C6 class of core)";
    /// An ESP32-C3-sized budget (400 KiB of SRAM there).
    pub const ARENA_BYTES: usize = 256 * 1024;
    /// Positions planned and run: the golden case's `steps`.
    pub const STEPS: u32 = 64;
    pub const KV_F16: bool = false;
}

#[cfg(all(feature = "netduinoplus2", not(feature = "kv-f16")))]
mod board {
    pub const BOARD: &str = "netduinoplus2 (STM32F405, Cortex-M4F, 192 KiB SRAM)";
    /// Within the chip's 128 KiB of main SRAM (the other 64 KiB, CCM on the real chip, are
    /// for the stack and the rest).
    pub const ARENA_BYTES: usize = 120 * 1024;
    /// Positions planned and run: a prefix of the golden case.
    pub const STEPS: u32 = 32;
    pub const KV_F16: bool = false;
}

/// netduinoplus2 with the f16 KV cache (feature `kv-f16`): context 128 in the same 120 KiB arena
/// (the f32 cache alone would take 160 KiB).
#[cfg(all(feature = "netduinoplus2", feature = "kv-f16"))]
mod board {
    pub const BOARD: &str = "netduinoplus2 (STM32F405, Cortex-M4F, 192 KiB SRAM)";
    pub const ARENA_BYTES: usize = 120 * 1024;
    /// Positions planned and run: twice the golden case, against the desktop's f16-cache ids.
    pub const STEPS: u32 = 128;
    /// The KV cache in f16 (`PlanOptions::kv_f16`).
    pub const KV_F16: bool = true;
}
use board::{ARENA_BYTES, BOARD, KV_F16, STEPS};
const PROMPT: &[u8] = b"Once upon a time";

/// `token_ids` of case `greedy_once_64` in tests/data/stories260K.golden.json (llama2.c run.c,
/// temperature 0): the token fed at position 0, then every next token.
const GOLDEN: [u32; 65] = [
    1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
    419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338,
    391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310,
];

/// The greedy ids at context 128 with the f16 KV cache, from the desktop (`F16_128` in
/// tests/tests/kv_f16.rs; the f32 cache gives the same; the first 65 are `GOLDEN`).
const GOLDEN_F16_128: [u32; 129] = [
    1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
    419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338,
    391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310, 439, 419, 357, 336,
    432, 313, 438, 310, 432, 278, 316, 439, 419, 298, 414, 267, 265, 282, 295, 433, 426, 436, 317, 286, 296, 418, 269,
    279, 292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400, 426, 338, 336, 432, 313, 442, 391, 267, 337, 335,
    364, 420, 268, 388, 432, 398, 359, 280, 303, 439, 413, 272, 417, 264,
];

/// The same on stories260K-Q8_0.gguf with the portable integer path (`STORIES_Q8_0_F16_128` in
/// tests/tests/scalar_q8.rs; it parts from the F32 file's at index 115).
const GOLDEN_Q8_0_F16_128: [u32; 129] = [
    1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
    419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338,
    391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310, 439, 419, 357, 336,
    432, 313, 438, 310, 432, 278, 316, 439, 419, 298, 414, 267, 265, 282, 295, 433, 426, 436, 317, 286, 296, 418, 269,
    279, 292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400, 426, 338, 336, 432, 313, 442, 391, 267, 337, 335,
    284, 422, 268, 388, 426, 436, 320, 285, 357, 336, 432, 313, 442, 391,
];

/// The ids a run must give: the llama2.c golden's prefix up to context 64 (the F32 and the
/// Q8_0 file agree there), else the desktop's f16-cache ids at context 128.
fn golden(q8: bool) -> &'static [u32] {
    match (STEPS > 64, q8) {
        (false, _) => &GOLDEN[..(STEPS as usize + 1).min(GOLDEN.len())],
        (true, false) => &GOLDEN_F16_128,
        (true, true) => &GOLDEN_Q8_0_F16_128,
    }
}

/// The arena, aligned like the planner's regions.
#[repr(C, align(64))]
struct Arena([u8; ARENA_BYTES]);

/// Words below the stack pointer are painted with this at boot to measure the stack's peak.
const PAINT: u32 = 0x5EA5_11ED;

/// A semihosting host file as positioned storage (seek, then read until the buffer is full).
struct HostFile {
    file: File,
    len: u64,
}

/// Every byte read from the host file (header, tokenizer, norms, pinned and streamed weights)
/// and the reads issued, counted beside the engine's own statistics.
static HOST_BYTES: AtomicU32 = AtomicU32::new(0);
static HOST_READS: AtomicU32 = AtomicU32::new(0);

/// A failed semihosting call.
#[derive(Debug, Clone, Copy)]
enum HostError {
    Io(semihosting::io::ErrorKind),
    Eof,
}

impl core::fmt::Display for HostError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HostError::Io(kind) => write!(f, "semihosting I/O error: {kind:?}"),
            HostError::Eof => f.write_str("unexpected end of the host file"),
        }
    }
}

impl core::error::Error for HostError {}

impl embedded_io::Error for HostError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

impl embedded_io::ErrorType for HostFile {
    type Error = HostError;
}

impl Storage for HostFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, mut buf: &mut [u8]) -> Result<(), HostError> {
        self.file.seek(SeekFrom::Start(offset)).map_err(|e| HostError::Io(e.kind()))?;
        HOST_READS.fetch_add(1, Ordering::Relaxed);
        while !buf.is_empty() {
            match self.file.read(buf).map_err(|e| HostError::Io(e.kind()))? {
                0 => return Err(HostError::Eof),
                n => {
                    HOST_BYTES.fetch_add(n as u32, Ordering::Relaxed);
                    buf = &mut buf[n..];
                }
            }
        }
        Ok(())
    }
}

/// Host wall time in nanoseconds (SYS_ELAPSED over SYS_TICKFREQ); `None` if QEMU lacks them.
fn now_ns() -> Option<u64> {
    use semihosting::sys::arm_compat::{sys_elapsed, sys_tickfreq};
    let ticks = sys_elapsed().ok()?;
    let freq = sys_tickfreq().ok()? as u64;
    (freq != 0).then(|| (ticks as u128 * 1_000_000_000 / freq as u128) as u64)
}

fn fail(what: &str, err: impl core::fmt::Display) -> ! {
    println!("\nFAIL: {what}: {err}");
    semihosting::process::exit(1)
}

/// The arena and the engine, in `.bss`; each run borrows them, and drops its engine before
/// the next run borrows them again.
static mut ARENA: Arena = Arena([0; ARENA_BYTES]);
static mut ENGINE: MaybeUninit<Engine<'static, HostFile>> = MaybeUninit::uninit();

/// The Q8_0 file (stories260K quantized by llama.cpp: Q8_0 matrices, F16 `ffn_down`).
const MODEL_Q8_0: &core::ffi::CStr = c"tests/data/quant/stories260K-Q8_0.gguf";

/// FNV-1a (32-bit) of the bits of every logit of the Q8_0 run, per context, from the desktop's
/// portable integer path (`STORIES_Q8_0_LOGITS_FNV` in tests/tests/scalar_q8.rs): the firmware's
/// integer paths must give these exact bits.
const Q8_0_LOGITS_FNV: [(u32, bool, u32); 3] =
    [(64, false, 0xb75b_c361), (32, false, 0x31a2_2020), (128, true, 0x3f26_2214)];

/// What one run measured.
struct Run {
    ids: [u32; STEPS as usize + 1],
    count: usize,
    logits_fnv: u32,
    load_stack: (usize, usize),
    gen_stack: (usize, usize),
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    #[cfg(feature = "stack-overflow")]
    overflow::run();
    #[cfg(not(feature = "stack-overflow"))]
    story()
}

/// The golden runs (F32, then Q8_0 on each integer path); exits with 0 when all pass.
#[cfg_attr(feature = "stack-overflow", allow(dead_code))]
fn story() -> ! {
    let kv = if KV_F16 { "f16" } else { "f32" };
    println!("spool on QEMU {BOARD}, arena {} KiB (static), context {STEPS}, {kv} KV cache", ARENA_BYTES / 1024);
    let f32_run = run(MODEL, Kernels::SCALAR, true);
    // The portable integer path, and on the Cortex-M4 the SMLAD kernel: the same logits bits.
    #[cfg(target_arch = "arm")]
    let q8_runs: &[(&str, Kernels)] = &[("scalar-q8", Kernels::SCALAR_Q8), ("arm-dsp-q8 (SMLAD)", Kernels::DSP_Q8)];
    #[cfg(not(target_arch = "arm"))]
    let q8_runs: &[(&str, Kernels)] = &[("scalar-q8", Kernels::SCALAR_Q8)];
    let mut stack = f32_run.load_stack.1.max(f32_run.gen_stack.1);
    let mut fails = 0;
    fails += check("F32, scalar", &f32_run, golden(false), None);
    let want_fnv = Q8_0_LOGITS_FNV.iter().find(|&&(c, f16, _)| c == STEPS && f16 == KV_F16).map(|&(_, _, h)| h);
    for &(name, kernels) in q8_runs {
        println!("\n== stories260K-Q8_0.gguf, kernels {name}");
        let r = run(MODEL_Q8_0, kernels, false);
        stack = stack.max(r.load_stack.1).max(r.gen_stack.1);
        fails += check(name, &r, golden(true), want_fnv);
    }
    println!("SIZE stack_peak {stack}");
    defmt::info!("done: {=u32} failure(s), whole-stack peak {=usize} B", fails, stack);
    semihosting::process::exit(if fails == 0 { 0 } else { 1 })
}

/// The stack-overflow check (feature `stack-overflow`, `make firmware-overflow`): recurses until
/// the stack is gone. With flip-link the stack sits below `.bss`, so the overflow runs off the
/// bottom of RAM and the core faults (QEMU reports the lockup and stops); without it, the stack
/// would grow into the arena and the engine, silently. Reaching the end is a failure.
#[cfg(feature = "stack-overflow")]
mod overflow {
    use super::*;

    /// A sentinel at the start of `.bss`, right above the stack without flip-link.
    static mut SENTINEL: [u32; 4] = [0; 4];

    /// Recursion with a 1 KiB frame that the optimizer must keep.
    #[inline(never)]
    fn deep(n: u32) -> u32 {
        let mut frame = [n; 256];
        core::hint::black_box(&mut frame);
        if n == 0 {
            return frame[0];
        }
        deep(n - 1).wrapping_add(frame[(n % 256) as usize])
    }

    /// The fault the overflow raises. The stack pointer is below RAM, so it is first put back
    /// at the top of the stack (the overflowed stack is dead anyway), then the check reports
    /// and exits with 0.
    #[cfg(target_arch = "arm")]
    #[cortex_m_rt::exception(trampoline = false)]
    unsafe fn HardFault() -> ! {
        // SAFETY: resets the main stack pointer to the top of the stack and calls a function
        // that never returns; nothing on the old stack is used again.
        unsafe {
            core::arch::asm!(
                "ldr r0, ={top}",
                "msr msp, r0",
                "b {caught}",
                top = sym _stack_start,
                caught = sym caught,
                options(noreturn),
            )
        }
    }

    extern "C" {
        static _stack_start: u32;
    }

    extern "C" fn caught() -> ! {
        // SAFETY: single-threaded, no other reference to the sentinel.
        let sentinel = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(SENTINEL)) };
        if sentinel == [0xA5A5_A5A5; 4] {
            println!("PASS: the stack overflow faulted (HardFault) before touching .bss (sentinel intact)");
            semihosting::process::exit(0)
        }
        println!(
            "FAIL: the overflow faulted only after overwriting .bss (sentinel {sentinel:x?}): is flip-link the linker?"
        );
        semihosting::process::exit(1)
    }

    pub(super) fn run() -> ! {
        // SAFETY: single-threaded, no other reference to the sentinel.
        unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!(SENTINEL), [0xA5A5_A5A5; 4]) };
        let room = stack_top() - core::ptr::addr_of!(STACK_BOTTOM) as usize;
        // 16 KiB past the stack: into .bss without flip-link, off the RAM with it.
        println!("stack overflow check: {room} B of stack, recursing 16 KiB past it in 1 KiB frames");
        let depth = (room / 1024 + 16) as u32;
        let r = deep(core::hint::black_box(depth));
        // SAFETY: as above.
        let sentinel = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(SENTINEL)) };
        println!("FAIL: the stack overflowed without a fault ({r:#x}; .bss sentinel {sentinel:#x?})");
        semihosting::process::exit(1)
    }
}

/// Prints a run's ids and checks them against `want` (and its logits hash against
/// `want_fnv`); returns 1 on a mismatch.
fn check(name: &str, r: &Run, want: &[u32], want_fnv: Option<u32>) -> u32 {
    let ids = &r.ids[..r.count.min(r.ids.len())];
    print!("token ids ({}):", r.count);
    for id in ids {
        print!(" {id}");
    }
    println!("\nlogits FNV-1a {:#010x}", r.logits_fnv);
    if let Some(h) = want_fnv.filter(|&h| h != r.logits_fnv) {
        println!("FAIL: {name}: logits hash {:#010x}, the desktop's scalar-q8 path gives {h:#010x}", r.logits_fnv);
        defmt::error!("{=str}: logits hash {=u32:#x}, the desktop's is {=u32:#x}", name, r.logits_fnv, h);
        return 1;
    }
    if ids == want && r.count == want.len() {
        let bits = if want_fnv.is_some() { ", logits bit-identical with the desktop's scalar-q8" } else { "" };
        println!(
            "PASS: {name}: {} token ids equal the reference ({}){bits}",
            ids.len(),
            if STEPS > 64 { "the desktop's, f16 KV cache" } else { "llama2.c's greedy_once_64" }
        );
        defmt::info!("{=str}: PASS, {=usize} ids, logits FNV-1a {=u32:#x}", name, ids.len(), r.logits_fnv);
        return 0;
    }
    let first = ids.iter().zip(want.iter()).position(|(a, b)| a != b).unwrap_or(ids.len().min(want.len()));
    println!(
        "FAIL: {name}: token ids differ from the reference at index {first} (got {}, expected {})",
        r.count,
        want.len()
    );
    1
}

/// One greedy run of `model` with `kernels` (the integer path plans the Q8 activation region):
/// loads the engine into the static slot, generates, prints the plan (if `report`), the story
/// and the statistics, measures both stack peaks, and drops the engine.
fn run(model: &core::ffi::CStr, kernels: Kernels, report: bool) -> Run {
    // SAFETY: runs are sequential and each drops its engine (the only holder of these borrows)
    // before returning, so these are the only live references to the two statics.
    let (arena, slot) = unsafe { (&mut *core::ptr::addr_of_mut!(ARENA), &mut *core::ptr::addr_of_mut!(ENGINE)) };
    let file = File::open(model).unwrap_or_else(|e| fail("open the model (start QEMU from the repo root)", e));
    let len = file.metadata().unwrap_or_else(|e| fail("file length", e)).len();
    let storage = HostFile { file, len };

    let t0 = now_ns();
    let from = paint_stack();
    let q8 = kernels.path().quantizes_activations();
    let engine = init(slot, storage, &mut arena.0, q8);
    let load_stack = (stack_peak(from), stack_peak(stack_top()));
    engine.set_kernels(kernels);
    let t1 = now_ns();
    let plan = engine.plan();
    defmt::info!(
        "engine {=usize} B, kernels {}, plan {=usize}/{=usize} B, context {=u32}, KV {=usize} B, {=u64} B streamed per token",
        core::mem::size_of::<Engine<'static, HostFile>>(),
        kernels.path(),
        plan.used_bytes(),
        plan.budget,
        plan.context,
        plan.kv.bytes,
        plan.streamed_bytes_per_token()
    );
    println!(
        "model: {} bytes; engine: {} bytes (static); kernels {}\nplan: budget {} B, used {} B, context {}, prefill chunk {}",
        len,
        core::mem::size_of::<Engine<'static, HostFile>>(),
        kernels.path().name(),
        plan.budget,
        plan.used_bytes(),
        plan.context,
        plan.prefill_chunk()
    );
    println!(
        "plan: resident {} B ({} B pinned weights incl. norms), {} slot(s) x {} B, kv {} B, working {} B, tokenizer {} B",
        plan.resident.bytes,
        plan.pinned_bytes,
        plan.slot_count,
        plan.slot_bytes,
        plan.kv.bytes,
        plan.working.bytes,
        plan.tokenizer.bytes
    );
    if report {
        println!(
            "plan: tables in the arena: layers {} B ({} layers), units {} B ({} units), slot metadata {} B",
            plan.layers.bytes,
            engine.model().layers.len(),
            plan.unit_table.bytes,
            plan.units.len(),
            plan.slot_meta.bytes
        );
    }
    println!(
        "plan: touched {} B per token, streamed {} B in {} reads per decode token; load read {} B",
        plan.touched_bytes_per_token,
        plan.streamed_bytes_per_token(),
        plan.streamed_reads_per_token(),
        engine.load_bytes()
    );

    let mut prompt = [0u32; PROMPT.len() + 3];
    // The O(n log n) encoder, its scratch on the stack (sized for PROMPT at compile time).
    let mut scratch = [0u32; spool_core::tokenizer::encode_scratch_words(PROMPT.len())];
    let n =
        engine.tokenizer().encode_with(PROMPT, true, &mut prompt, &mut scratch).unwrap_or_else(|e| fail("encode", e));
    let mut sampler = Sampler::new(0.0, 0.9, 42);
    let mut r = Run { ids: [0; STEPS as usize + 1], count: 0, logits_fnv: 0x811c_9dc5, load_stack, gen_stack: (0, 0) };
    println!("---");
    let t2 = now_ns();
    let from = paint_stack();
    let (ids, count, h) = (&mut r.ids, &mut r.count, &mut r.logits_fnv);
    // The logits from the prompt's last position on: the same rows whatever the prefill chunk.
    let last_prompt = n as u32 - 1;
    let on_logits = |pos: u32, logits: &[f32]| {
        if pos < last_prompt {
            return;
        }
        for l in logits {
            for b in l.to_le_bytes() {
                *h = (*h ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
        }
    };
    let outcome = generate_with_logits(engine, &mut sampler, &prompt[..n], STEPS, on_logits, |ev| {
        if ev.pos == 0 {
            if let Some(slot) = ids.get_mut(*count) {
                *slot = ev.token;
            }
            *count += 1;
        }
        if let Some(slot) = ids.get_mut(*count) {
            *slot = ev.next;
        }
        *count += 1;
        let _ = semihosting::io::stderr().and_then(|mut out| out.write_all(ev.text));
    })
    .unwrap_or_else(|e| fail("generate", e));
    r.gen_stack = (stack_peak(from), stack_peak(stack_top()));
    defmt::info!(
        "{=u32} positions, {=u64} B read per decode token; stack peaks Engine::new {=usize} B, generate {=usize} B",
        outcome.positions,
        outcome.decode.bytes_read / u64::from((outcome.positions - outcome.prefill_positions).max(1)),
        r.load_stack.0,
        r.gen_stack.0
    );
    let t3 = now_ns();
    println!("\n---");

    let stats = engine.stats();
    println!(
        "positions {} ({} prefill), stop {:?}; weights read: prefill {} B, decode {} B ({} B/token over {} decode tokens)",
        outcome.positions,
        outcome.prefill_positions,
        outcome.stop,
        outcome.prefill.bytes_read,
        outcome.decode.bytes_read,
        outcome.decode.bytes_read / u64::from((outcome.positions - outcome.prefill_positions).max(1)),
        outcome.positions - outcome.prefill_positions
    );
    println!(
        "cache: hits {}, misses {}; host file: {} B in {} reads in all (load included)",
        stats.hits,
        stats.misses,
        HOST_BYTES.swap(0, Ordering::Relaxed),
        HOST_READS.swap(0, Ordering::Relaxed)
    );
    if let (Some(t0), Some(t1), Some(t2), Some(t3)) = (t0, t1, t2, t3) {
        let gen_ms = (t3 - t2) / 1_000_000;
        let tps_x10 = u64::from(outcome.positions) * 10_000_000_000 / (t3 - t2).max(1);
        println!(
            "time under QEMU (host wall clock, not MCU speed): load {} ms, {} positions in {} ms = {}.{} tok/s",
            (t1 - t0) / 1_000_000,
            outcome.positions,
            gen_ms,
            tps_x10 / 10,
            tps_x10 % 10
        );
    }
    // Painted-stack peaks: the call's own (from the caller's stack pointer) and the whole
    // stack's (from its top, `main` and the reset handler included: what the RAM must hold).
    println!(
        "stack peak: Engine::new {} B (call) / {} B (whole stack); generate {} B (call) / {} B (whole stack)",
        r.load_stack.0, r.load_stack.1, r.gen_stack.0, r.gen_stack.1
    );
    println!("ram: arena {} B, engine {} B", ARENA_BYTES, core::mem::size_of::<Engine<'static, HostFile>>());

    // Issue 11's bounds, checked on the device: the engine at most 2 KiB, the stack of
    // Engine::new and of generation at most 8 KiB each (measured from the call).
    let engine_bytes = core::mem::size_of::<Engine<'static, HostFile>>();
    if engine_bytes > 2048 || r.load_stack.0 > 8192 || r.gen_stack.0 > 8192 {
        println!(
            "FAIL: engine {engine_bytes} B (at most 2048), stack peaks {} B and {} B (at most 8192 each)",
            r.load_stack.0, r.gen_stack.0
        );
        semihosting::process::exit(1)
    }
    // SAFETY: `init` wrote the engine into the slot, and `engine`, its only reference, is not
    // used after this: dropping it closes the host file and ends its borrow of the arena.
    unsafe { slot_drop() };
    r
}

/// Drops the engine in the static slot.
///
/// # Safety
/// The slot holds an engine (`init` wrote one) and nothing references it.
unsafe fn slot_drop() {
    // SAFETY: our caller's contract.
    unsafe { (*core::ptr::addr_of_mut!(ENGINE)).assume_init_drop() }
}

/// Builds the engine into its static. Not inlined, so that the temporaries of the construction
/// leave the stack before generation starts.
#[inline(never)]
fn init<'a>(
    slot: &'a mut MaybeUninit<Engine<'static, HostFile>>,
    storage: HostFile,
    arena: &'static mut [u8],
    quantized_activations: bool,
) -> &'a mut Engine<'static, HostFile> {
    let opts = spool_core::PlanOptions { quantized_activations, kv_f16: KV_F16, ..spool_core::PlanOptions::default() };
    Engine::new_in(slot, storage, spool_core::SyncLoader::new(), arena, STEPS, opts)
        .unwrap_or_else(|e| fail("Engine::new", e))
}

extern "C" {
    /// The lowest address the stack may reach: the end of `.bss`/`.uninit` (cortex-m-rt's
    /// `_stack_end`, riscv-rt's `__estack`).
    #[cfg_attr(target_arch = "arm", link_name = "_stack_end")]
    #[cfg_attr(target_arch = "riscv32", link_name = "__estack")]
    static STACK_BOTTOM: u32;
}

/// The stack pointer.
#[inline(always)]
fn sp() -> usize {
    #[cfg(target_arch = "arm")]
    return cortex_m::register::msp::read() as usize;
    #[cfg(target_arch = "riscv32")]
    {
        let sp: usize;
        // SAFETY: reads the stack pointer into a register; no memory is touched.
        unsafe { core::arch::asm!("mv {}, sp", out(reg) sp) };
        sp
    }
}

/// Paints the words between the end of `.bss` and a little below the current stack pointer;
/// returns the stack pointer, from which `stack_peak` measures a call made next.
#[inline(never)]
fn paint_stack() -> usize {
    let sp = sp();
    let mut p = core::ptr::addr_of!(STACK_BOTTOM) as usize;
    while p < sp - 256 {
        // SAFETY: the words between the end of .bss and below the live stack are unused RAM
        // (no heap); nothing else references them.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
    sp
}

/// The top of the stack (`_stack_start` in cortex-m-rt and riscv-rt).
fn stack_top() -> usize {
    extern "C" {
        static _stack_start: u32;
    }
    core::ptr::addr_of!(_stack_start) as usize
}

/// Bytes of stack below `from` used at the deepest point since `paint_stack`: the first word
/// from the bottom that lost its paint.
fn stack_peak(from: usize) -> usize {
    let mut p = core::ptr::addr_of!(STACK_BOTTOM) as usize;
    // SAFETY: reads of RAM between the end of .bss and the top of the stack.
    while p < from && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    from.saturating_sub(p)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = semihosting::io::stderr().map(|mut err| {
        let mut w = Stderr(&mut err);
        let _ = writeln!(w, "\npanicked: {info}");
    });
    semihosting::process::exit(1)
}

/// `core::fmt::Write` over semihosting stderr, for the panic message.
struct Stderr<'a>(&'a mut semihosting::io::Stderr);

impl core::fmt::Write for Stderr<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}
