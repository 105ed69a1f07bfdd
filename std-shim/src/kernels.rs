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

/// The fastest kernels this CPU runs: [`simd`] if available, else [`Kernels::SCALAR`].
pub fn detect() -> Kernels {
    simd().unwrap_or(Kernels::SCALAR)
}
