//! Engines with the best kernels of this CPU: the constructors a desktop program should call
//! instead of [`Engine::new`], which runs the portable scalar kernels (about 4x slower). They
//! pick the kernels with [`crate::kernels::detect`] and plan the arena's Q8 activation buffers
//! whenever those kernels may take the integer path. Owns no kernels (see `kernels.rs`) and no
//! storage.

use spool_core::cache::{Loader, SyncLoader};
use spool_core::error::Result;
use spool_core::quant::SUPPORTED;
use spool_core::{Engine, Kernels, PlanOptions, Storage};

/// `opts` as `kernels` need them: `quantized_activations` is set when the kernels round the
/// input to Q8 for some weight type (the opt-in integer paths), and left as it was otherwise.
pub fn plan_options(kernels: Kernels, opts: PlanOptions) -> PlanOptions {
    let integer = SUPPORTED.iter().any(|&t| kernels.activation_type(t).is_some());
    PlanOptions { quantized_activations: opts.quantized_activations || integer, ..opts }
}

/// [`Engine::new`] with this CPU's best kernels ([`crate::kernels::detect`]): synchronous
/// loads, default planner options.
pub fn new<'a, S: Storage>(storage: S, arena: &'a mut [u8], context: u32) -> Result<Engine<'a, S, SyncLoader<'a>>> {
    with_loader(storage, SyncLoader::new(), arena, context, PlanOptions::default())
}

/// [`Engine::with_loader`] with this CPU's best kernels ([`crate::kernels::detect`]).
pub fn with_loader<'a, S: Storage, L: Loader<'a>>(
    storage: S,
    loader: L,
    arena: &'a mut [u8],
    context: u32,
    opts: PlanOptions,
) -> Result<Engine<'a, S, L>> {
    with_kernels(storage, loader, arena, context, opts, crate::kernels::detect())
}

/// [`Engine::with_loader`] running `kernels`, its arena planned for them ([`plan_options`]).
pub fn with_kernels<'a, S: Storage, L: Loader<'a>>(
    storage: S,
    loader: L,
    arena: &'a mut [u8],
    context: u32,
    opts: PlanOptions,
    kernels: Kernels,
) -> Result<Engine<'a, S, L>> {
    let opts = plan_options(kernels, opts);
    let mut engine = Engine::with_loader(storage, loader, arena, context, opts)?;
    engine.set_kernels(kernels);
    log::debug!("engine: kernels {}, quantized activations {}", kernels.path().name(), opts.quantized_activations);
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_kernels_get_q8_activations_planned_and_float_kernels_do_not() {
        let off = PlanOptions { quantized_activations: false, ..PlanOptions::default() };
        assert!(!plan_options(Kernels::SCALAR, off).quantized_activations);
        assert!(!plan_options(crate::kernels::detect(), off).quantized_activations, "detect() is a float path");
        if let Some(q8) = crate::kernels::simd_q8() {
            assert!(plan_options(q8, off).quantized_activations);
        }
        // A caller's request is kept.
        assert!(
            plan_options(Kernels::SCALAR, PlanOptions { quantized_activations: true, ..off }).quantized_activations
        );
    }

    #[test]
    fn new_runs_the_detected_kernels() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/stories260K.gguf")).unwrap();
        let mut arena = vec![0u8; 2 << 20];
        let engine = new(spool_core::SliceStorage::new(&bytes), &mut arena, 32).unwrap();
        assert_eq!(engine.kernels().path(), crate::kernels::detect().path());
    }
}
