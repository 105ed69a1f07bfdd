//! The fixed regions of the arena (working buffers, KV cache, embedding scratch, tokenizer,
//! norms) and the aligned cursor that lays regions out. Every size is summed in `u64` with
//! checked arithmetic and converted to `usize` only when it fits, so that a hostile file cannot
//! wrap a 32-bit `usize`. Each region's owner says how large it is; this file only adds them up.

use crate::engine::work::{Work, WorkingLayout};
use crate::error::PlanError;
use crate::model::{LayerTable, ModelInfo};
use crate::plan::PlanOptions;
use crate::tokenizer::Tokenizer;

/// Alignment of every region.
pub const ALIGN: usize = 64;

/// A byte range of the arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Region {
    /// Offset from the aligned start of the arena.
    pub offset: usize,
    /// Length in bytes.
    pub bytes: usize,
}

/// `n` rounded up to [`ALIGN`]; `None` if that overflows.
pub(crate) fn align_up(n: u64) -> Option<u64> {
    n.checked_next_multiple_of(ALIGN as u64)
}

/// `n` as a `usize` when it is at most `limit` (the address space: `usize::MAX`, or less to
/// model a smaller target in a test), or the error naming `what`.
pub(crate) fn to_usize(n: u64, limit: u64, what: &'static str) -> Result<usize, PlanError> {
    usize::try_from(n).ok().filter(|_| n <= limit).ok_or(PlanError::TooLarge { what })
}

/// Lays regions out one after another, each starting aligned.
pub(crate) struct Cursor {
    at: u64,
    limit: u64,
}

impl Cursor {
    /// A cursor at `at` whose regions must end at or below `limit`.
    pub(crate) fn new(at: u64, limit: u64) -> Self {
        Self { at, limit }
    }

    /// The next region, of `bytes` (`None`: the size already overflowed).
    pub(crate) fn region(&mut self, bytes: Option<u64>, what: &'static str) -> Result<Region, PlanError> {
        let too_large = PlanError::TooLarge { what };
        let bytes = bytes.ok_or(too_large)?;
        let end = align_up(bytes).and_then(|b| self.at.checked_add(b)).ok_or(too_large)?;
        to_usize(end, self.limit, what)?;
        let r = Region { offset: self.at as usize, bytes: bytes as usize };
        self.at = end;
        Ok(r)
    }

    /// Where the next region would start.
    pub(crate) fn end(&self) -> u64 {
        self.at
    }
}

/// The regions every plan has.
pub(crate) struct Fixed {
    pub(crate) working_layout: WorkingLayout,
    pub(crate) working: Region,
    pub(crate) kv: Region,
    pub(crate) scratch: Region,
    pub(crate) tokenizer: Region,
    pub(crate) norms: Region,
    /// Where the weights start.
    pub(crate) end: u64,
}

/// Rows (positions) of layer `layer`'s KV cache for prefill chunks of `positions`: the whole
/// context, or on a sliding-window layer a ring of `window + positions - 1` rows (position `p`
/// in row `p % rows`; a chunk writes its keys before it attends, so a ring of exactly the
/// window would overwrite keys the chunk's first positions still need), at most the context.
pub fn kv_rows<L: LayerTable>(model: &ModelInfo<L>, context: u32, positions: usize, layer: u32) -> u32 {
    match model.layer_kind(layer).window {
        Some(w) => (w as u64 + (positions.max(1) as u64 - 1)).min(context as u64) as u32,
        None => context,
    }
}

/// Bytes of the KV cache: keys and values, `kv_rows * kv_dim` f32 (or f16) each per layer.
pub(crate) fn kv_bytes<L: LayerTable>(model: &ModelInfo<L>, context: u32, positions: usize, f16: bool) -> Option<u64> {
    let c = &model.config;
    let rows = (0..c.n_layers).map(|l| kv_rows(model, context, positions, l) as u64).sum::<u64>();
    let elem = if f16 { 2 } else { 4 };
    2u64.checked_mul(rows)?.checked_mul(c.kv_dim as u64)?.checked_mul(elem)
}

/// Bytes of all norm weights, kept resident always.
pub(crate) fn norm_bytes<L: LayerTable>(model: &ModelInfo<L>) -> Option<u64> {
    model.norms().try_fold(0u64, |sum, t| sum.checked_add(t.bytes()))
}

/// The fixed regions for `positions` prefill positions, from `start` (after the tables),
/// ending at or below `limit`.
pub(crate) fn fixed_regions<L: LayerTable>(
    model: &ModelInfo<L>,
    context: u32,
    positions: usize,
    opts: &PlanOptions,
    start: u64,
    limit: u64,
) -> Result<Fixed, PlanError> {
    let c = &model.config;
    let working_layout = Work::layout(c, context, positions, opts.quantized_activations, opts.kv_f16, limit)?;
    let mut at = Cursor::new(start, limit);
    Ok(Fixed {
        working_layout,
        working: at.region(Some(working_layout.bytes() as u64), "working buffers")?,
        kv: at.region(kv_bytes(model, context, positions, opts.kv_f16), "KV cache")?,
        scratch: at.region((positions as u64).checked_mul(model.token_embd.row_bytes()), "embedding scratch")?,
        tokenizer: at.region(Tokenizer::region_bytes_for(&model.header), "tokenizer")?,
        norms: at.region(norm_bytes(model), "norm weights")?,
        end: at.end(),
    })
}
