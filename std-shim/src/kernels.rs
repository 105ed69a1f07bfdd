//! Run-time choice of the core's kernels: what the core cannot ask the CPU itself.

use spool_core::Kernels;

/// The SIMD kernels if this CPU has them (x86-64: AVX2, FMA and F16C), else `None`.
pub fn simd() -> Option<Kernels> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the running CPU was just checked for avx2, fma and f16c, the contract of
            // `Kernels::avx2`.
            return Some(unsafe { Kernels::avx2() });
        }
    }
    None
}

/// The integer kernels with activations rounded to Q8_0/Q8_K like llama.cpp
/// (`KernelPath::Avx2Q8`, AVX2 only) if this CPU has AVX2, FMA and F16C, else `None`.
pub fn simd_q8_avx2() -> Option<Kernels> {
    #[cfg(target_arch = "x86_64")]
    {
        if simd().is_some() {
            // SAFETY: `simd` just checked this CPU for avx2, fma and f16c, the contract of
            // `Kernels::avx2_q8`.
            return Some(unsafe { Kernels::avx2_q8() });
        }
    }
    None
}

/// The integer kernels with activations rounded to Q8_0/Q8_K like llama.cpp, the fastest this
/// CPU runs: `KernelPath::Avx512Q8` (AVX-512 VNNI dots, bit-identical with AVX2's) if it has
/// AVX-512F/BW/VL and VNNI, else [`simd_q8_avx2`]. `spool-sim`'s default (`--kernel auto`);
/// never chosen by [`detect`]. An engine using them on a quantized model needs a plan made
/// with `PlanOptions::quantized_activations`.
pub fn simd_q8() -> Option<Kernels> {
    #[cfg(target_arch = "x86_64")]
    {
        if simd().is_some()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
        {
            // SAFETY: this CPU was just checked for avx2, fma, f16c (in `simd`), avx512f,
            // avx512bw, avx512vl and avx512vnni, the contract of `Kernels::avx512_q8`.
            return Some(unsafe { Kernels::avx512_q8() });
        }
    }
    simd_q8_avx2()
}

/// The fastest kernels with strict f32 activations (`spool-sim --kernel exact`): [`simd`] if
/// available, else [`Kernels::SCALAR`].
pub fn detect() -> Kernels {
    simd().unwrap_or(Kernels::SCALAR)
}
