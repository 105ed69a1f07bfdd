//! Engines with the best kernels of this CPU: the constructors a desktop program should call
//! instead of [`Engine::new`], which runs the portable scalar kernels (about 4x slower). They
//! pick the kernels `spool-sim run` picks by default ([`default_kernels`]: the integer path that
//! rounds activations like llama.cpp where the CPU has AVX2, else [`crate::kernels::detect`])
//! and plan the arena's rounded-activation region whenever those kernels take the integer path
//! for one of the model's matrices. Owns no kernels (see `kernels.rs`) and no storage.

use spool_core::cache::{Loader, SyncLoader};
use spool_core::error::Result;
use spool_core::quant::SUPPORTED;
use spool_core::{Engine, Kernels, ModelInfo, PlanOptions, Storage};

/// The kernels `spool-sim run --kernel auto` runs: the SIMD integer (Q8-activation) path where
/// the CPU has it, else the portable integer path ([`Kernels::portable_q8`]: Q8_0 products on
/// integers, bit-identical with the AVX2 path's; every other type in scalar f32).
pub fn default_kernels() -> Kernels {
    crate::kernels::simd_q8().unwrap_or(Kernels::portable_q8())
}

/// Whether `kernels` round the input to Q8 for a product with `model`'s weights (the integer
/// path); `None` for the model: for any weight type.
pub fn takes_integer_path(kernels: Kernels, model: Option<&ModelInfo>) -> bool {
    match model {
        Some(m) => m.matrices().any(|(_, t)| kernels.activation_type(t.ty).is_some()),
        None => SUPPORTED.iter().any(|&t| kernels.activation_type(t).is_some()),
    }
}

/// `opts` as `kernels` need them on `model`: `quantized_activations` is set when the kernels
/// take the integer path for one of its matrices, and left as it was otherwise.
pub fn plan_options(kernels: Kernels, model: &ModelInfo, opts: PlanOptions) -> PlanOptions {
    let integer = takes_integer_path(kernels, Some(model));
    PlanOptions { quantized_activations: opts.quantized_activations || integer, ..opts }
}

/// [`Engine::new`] with this CPU's best kernels ([`default_kernels`]): synchronous loads,
/// default planner options.
pub fn new<'a, S: Storage>(storage: S, arena: &'a mut [u8], context: u32) -> Result<Engine<'a, S, SyncLoader<'a>>> {
    with_loader(storage, SyncLoader::new(), arena, context, PlanOptions::default())
}

/// [`Engine::with_loader`] with this CPU's best kernels ([`default_kernels`]).
pub fn with_loader<'a, S: Storage, L: Loader<'a>>(
    storage: S,
    loader: L,
    arena: &'a mut [u8],
    context: u32,
    opts: PlanOptions,
) -> Result<Engine<'a, S, L>> {
    with_kernels(storage, loader, arena, context, opts, default_kernels())
}

/// [`Engine::with_loader`] running `kernels`, its arena planned for them ([`plan_options`]; the
/// model's header is read once more for it).
pub fn with_kernels<'a, S: Storage, L: Loader<'a>>(
    mut storage: S,
    loader: L,
    arena: &'a mut [u8],
    context: u32,
    opts: PlanOptions,
    kernels: Kernels,
) -> Result<Engine<'a, S, L>> {
    let model = ModelInfo::load(&mut storage)?;
    let opts = plan_options(kernels, &model, opts);
    let mut engine = Engine::with_loader(storage, loader, arena, context, opts)?;
    engine.set_kernels(kernels);
    log::debug!("engine: kernels {}, quantized activations {}", kernels.path().name(), opts.quantized_activations);
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stories() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/stories260K.gguf")).unwrap()
    }

    #[test]
    fn integer_kernels_get_rounded_activations_planned_only_for_models_that_use_them() {
        let bytes = stories(); // F32 weights: no product takes the integer path
        let model = ModelInfo::load(&mut spool_core::SliceStorage::new(&bytes)).unwrap();
        let off = PlanOptions { quantized_activations: false, ..PlanOptions::default() };
        assert!(!plan_options(Kernels::SCALAR, &model, off).quantized_activations);
        assert!(!takes_integer_path(Kernels::SCALAR, None));
        if let Some(q8) = crate::kernels::simd_q8() {
            assert!(takes_integer_path(q8, None), "Q8 kernels round for quantized weights");
            assert!(!plan_options(q8, &model, off).quantized_activations, "an F32 model plans as before");
        }
        // A caller's request is kept.
        let on = PlanOptions { quantized_activations: true, ..off };
        assert!(plan_options(Kernels::SCALAR, &model, on).quantized_activations);
    }

    #[test]
    fn new_runs_the_default_kernels() {
        let bytes = stories();
        let mut arena = vec![0u8; 2 << 20];
        let engine = new(spool_core::SliceStorage::new(&bytes), &mut arena, 32).unwrap();
        assert_eq!(engine.kernels().path(), default_kernels().path());
    }
}
