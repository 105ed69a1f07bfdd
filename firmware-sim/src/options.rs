//! What a run is asked to do: `RunOptions`, the kernel choice and the storage backend. Owns no
//! parsing (see `cli/`) and no running (see `run.rs`).

use spool_core::{Kernels, PlanOptions, Policy};
use spool_std::faults::FaultSpec;

use crate::flash::FlashSpec;

/// Which kernels compute the matrix-vector products (`--kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// The default: the fastest kernels this CPU has. For quantized weights that is the integer
    /// path ([`KernelChoice::SimdQ8`]: activations rounded to Q8_0/Q8_K as llama.cpp rounds them,
    /// within the quant README's "activations rounded like llama.cpp" tolerance); F32, F16 and
    /// BF16 weights keep f32 activations (their results equal [`KernelChoice::Exact`]'s). On a
    /// CPU without AVX2/FMA/F16C, [`KernelChoice::ScalarQ8`].
    Auto,
    /// Strict f32 activations: the SIMD kernels if the CPU has them, else the scalar ones. The
    /// 1e-3 reference tests run on it.
    Exact,
    /// The portable scalar kernels (bit-exact with llama2.c on F32).
    Scalar,
    /// The SIMD kernels; an error if the CPU lacks them.
    Simd,
    /// The SIMD kernels with activations rounded to Q8_0/Q8_K and integer dot products (as
    /// llama.cpp), with AVX-512 VNNI dots where the CPU has them (bit-identical); opt-in only,
    /// an error if the CPU lacks AVX2/FMA/F16C.
    SimdQ8,
    /// [`KernelChoice::SimdQ8`] on AVX2 alone, even where AVX-512 VNNI is present.
    SimdQ8Avx2,
    /// The portable integer path: Q8_0 products with activations rounded to Q8_0, bit-identical
    /// with [`KernelChoice::SimdQ8`]'s; other types in scalar f32 (`auto` without AVX2).
    ScalarQ8,
}

impl KernelChoice {
    /// Parses `auto`, `exact`, `scalar`, `simd`, `simd-q8`, `simd-q8-avx2` or `scalar-q8`.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => KernelChoice::Auto,
            "exact" => KernelChoice::Exact,
            "scalar" => KernelChoice::Scalar,
            "simd" => KernelChoice::Simd,
            "simd-q8" => KernelChoice::SimdQ8,
            "simd-q8-avx2" => KernelChoice::SimdQ8Avx2,
            "scalar-q8" => KernelChoice::ScalarQ8,
            _ => return None,
        })
    }

    /// The kernels this choice gives on this CPU.
    pub fn kernels(self) -> Result<Kernels, String> {
        match self {
            KernelChoice::Auto => Ok(spool_std::engine::default_kernels()),
            KernelChoice::Exact => Ok(spool_std::kernels::detect()),
            KernelChoice::Scalar => Ok(Kernels::SCALAR),
            KernelChoice::ScalarQ8 => Ok(Kernels::SCALAR_Q8),
            KernelChoice::Simd => spool_std::kernels::simd()
                .ok_or_else(|| "--kernel simd: this CPU has no supported SIMD kernels (x86-64 AVX2+FMA+F16C)".into()),
            KernelChoice::SimdQ8 => spool_std::kernels::simd_q8().ok_or_else(|| {
                "--kernel simd-q8: this CPU has no supported SIMD kernels (x86-64 AVX2+FMA+F16C)".into()
            }),
            KernelChoice::SimdQ8Avx2 => spool_std::kernels::simd_q8_avx2().ok_or_else(|| {
                "--kernel simd-q8-avx2: this CPU has no supported SIMD kernels (x86-64 AVX2+FMA+F16C)".into()
            }),
        }
    }
}

/// Which storage backend reads the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Positioned reads from the file.
    File,
    /// A memory map of the file.
    Mmap,
    /// The file behind a simulated flash device (bandwidth, latency, virtual clock).
    Flash,
    /// Positioned reads with `O_DIRECT` (no page cache; `file` when the file system refuses).
    Direct,
}

impl Backend {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Mmap => "mmap",
            Backend::Flash => "flash",
            Backend::Direct => "direct",
        }
    }
}

/// Options of `spool-sim run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Model path.
    pub model: String,
    /// Prompt text.
    pub prompt: String,
    /// Positions to run, prompt included (0: the model's context length).
    pub steps: u32,
    /// New tokens to generate, as llama.cpp counts them (None: run `steps` positions instead).
    pub new_tokens: Option<u32>,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Top-p (outside (0, 1): plain multinomial).
    pub topp: f32,
    /// Keep only the k most probable tokens (0: all).
    pub top_k: u32,
    /// Keep only tokens at least this times as probable as the most probable (0: off).
    pub min_p: f32,
    /// Repetition penalty (1: off).
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over (0: off); capped at the context.
    pub repeat_last_n: u32,
    /// RNG seed (0: from the OS; the report says which).
    pub seed: u64,
    /// RAM budget in bytes (None: everything fits).
    pub ram: Option<usize>,
    /// Context length of the KV cache (None: what the run needs; 0: the model's context).
    pub ctx: Option<u32>,
    /// Storage backend.
    pub backend: Backend,
    /// The simulated flash (used with [`Backend::Flash`]).
    pub flash: FlashSpec,
    /// Who stays in RAM.
    pub policy: Policy,
    /// Units read ahead (0: off), unless [`RunOptions::prefetch_auto`].
    pub prefetch: u32,
    /// Choose the depth from the plan ([`spool_core::plan::auto_prefetch`]: about 8 MiB of
    /// units ahead, at least 4, none when everything is resident) instead of `prefetch`.
    pub prefetch_auto: bool,
    /// Most prompt positions per layer-major prefill chunk (1: token by token).
    pub prefill_chunk: u32,
    /// Print one JSON object instead of text.
    pub json: bool,
    /// Which kernels compute.
    pub kernel: KernelChoice,
    /// Keep the KV cache in f16 (`--kv f16`): half its bytes, logits within a tolerance.
    pub kv_f16: bool,
    /// Compute threads for the matrix-vector products (1: the caller alone).
    pub threads: usize,
    /// Write the logits of every position here, little-endian f32 `[positions][vocab]`
    /// (forces a prefill chunk of 1, so that every position has logits).
    pub dump_logits: Option<String>,
    /// Check every weight read against this CRC32 sidecar (`spool-sim checksum`).
    pub verify: Option<String>,
    /// Storage faults to inject ([`spool_std::faults`]); every backend, both loaders.
    pub faults: Option<FaultSpec>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            model: String::new(),
            prompt: String::new(),
            steps: 256,
            new_tokens: None,
            temperature: 1.0,
            topp: 0.9,
            top_k: 0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
            ram: None,
            ctx: None,
            backend: Backend::File,
            flash: FlashSpec::default(),
            policy: Policy::Pin,
            prefetch: 0,
            prefetch_auto: false,
            prefill_chunk: PlanOptions::default().prefill_chunk,
            json: false,
            kernel: KernelChoice::Auto,
            kv_f16: false,
            threads: 1,
            dump_logits: None,
            verify: None,
            faults: None,
        }
    }
}
