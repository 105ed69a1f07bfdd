//! The units of caching: each layer's matrices and the classifier, in the order the forward
//! pass uses them, each cut into row blocks of at most the unit cap. The count is known from
//! the shapes before any unit is made, so a hostile row count costs no loop.

use crate::error::PlanError;
use crate::model::{LayerTable, ModelInfo, TensorName, TensorRef};

/// Most units (tensors or row blocks) a model may be cut into: a sanity limit on hostile input
/// (and the capacity of the owned table of `plan_with`; an engine's table in the arena holds
/// exactly as many as the model has).
pub const MAX_UNITS: usize = 2048;
/// Largest unit: a slot is never larger (a unit of one row may still be, up to `u32::MAX`).
const MAX_UNIT_BYTES: u64 = 1 << 30;

/// A unit of caching: rows `row0..row0 + rows` of one tensor, contiguous in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Unit {
    /// The tensor it belongs to.
    pub tensor: TensorName,
    /// First row.
    pub row0: u32,
    /// Row count.
    pub rows: u32,
    /// Absolute offset in storage.
    pub offset: u64,
    /// Length in bytes.
    pub bytes: u32,
    /// Offset in the resident region when pinned.
    pub pinned_at: Option<usize>,
}

impl Unit {
    /// A placeholder, before the planner fills the table.
    pub const EMPTY: Unit = Unit { tensor: TensorName::Output, row0: 0, rows: 0, offset: 0, bytes: 0, pinned_at: None };

    /// Bytes it takes in the arena (its length rounded up to the region alignment).
    pub fn aligned_bytes(&self) -> u64 {
        (self.bytes as u64).div_ceil(crate::plan::layout::ALIGN as u64) * crate::plan::layout::ALIGN as u64
    }
}

/// The largest unit: the smallest layer matrix, so that units are close to one size (every
/// policy can then spend its budget on equal slots), but large enough that the model fits in
/// half of [`MAX_UNITS`], and never above 1 GiB.
pub(crate) fn unit_cap<L: LayerTable>(model: &ModelInfo<L>) -> u64 {
    let smallest = model.matrices().map(|(_, t)| t.bytes()).min().unwrap_or(0);
    let total = model.matrices().fold(model.output.bytes(), |sum, (_, t)| sum.saturating_add(t.bytes()));
    smallest.max(total.div_ceil(MAX_UNITS as u64 / 2)).min(MAX_UNIT_BYTES)
}

/// Rows per unit of `t` under `cap`, and its unit count.
fn cut(t: &TensorRef, cap: u64) -> (u32, u64) {
    let row_bytes = t.row_bytes().max(1);
    let rows_per_unit = (cap / row_bytes).clamp(1, t.rows.max(1) as u64) as u32;
    (rows_per_unit, t.rows.div_ceil(rows_per_unit) as u64)
}

/// How many units the planner cuts the model into: the length of its unit table.
pub fn unit_count<L: LayerTable>(model: &ModelInfo<L>) -> Result<usize, PlanError> {
    count_units(model, unit_cap(model))
}

/// How many units the model is cut into under `cap`, at most [`MAX_UNITS`]. Known from the
/// shapes alone, so a hostile row count costs no loop.
pub(crate) fn count_units<L: LayerTable>(model: &ModelInfo<L>, cap: u64) -> Result<usize, PlanError> {
    let count = model
        .matrices()
        .chain([(TensorName::Output, &model.output)])
        .fold(0u64, |n, (_, t)| n.saturating_add(cut(t, cap).1));
    if count > MAX_UNITS as u64 {
        return Err(PlanError::TooManyUnits { count: usize::try_from(count).unwrap_or(usize::MAX), max: MAX_UNITS });
    }
    Ok(count as usize)
}

/// The aligned bytes of the largest unit under `cap` (each tensor's first row block is its
/// largest), without making the units.
pub(crate) fn largest_unit<L: LayerTable>(model: &ModelInfo<L>, cap: u64) -> u64 {
    let first = |t: &TensorRef| {
        let rows = cut(t, cap).0.min(t.rows);
        let bytes = (rows as u64).saturating_mul(t.row_bytes());
        bytes.div_ceil(crate::plan::layout::ALIGN as u64).saturating_mul(crate::plan::layout::ALIGN as u64)
    };
    model.matrices().chain([(TensorName::Output, &model.output)]).map(|(_, t)| first(t)).max().unwrap_or(0)
}

/// Fills `units` (exactly [`unit_count`] long) with the units of the model in access order:
/// each layer's matrices, then the classifier, each cut into row blocks of at most `cap`
/// bytes. Norm weights are not units: they live in the always-resident norms region.
pub(crate) fn build_units<L: LayerTable>(model: &ModelInfo<L>, cap: u64, units: &mut [Unit]) -> Result<(), PlanError> {
    let count = count_units(model, cap)?;
    if count != units.len() {
        return Err(PlanError::TooManyUnits { count, max: units.len() });
    }
    let tensors = || model.matrices().chain([(TensorName::Output, &model.output)]);
    let mut slots = units.iter_mut();
    for (name, t) in tensors() {
        let (rows_per_unit, _) = cut(t, cap);
        let row_bytes = t.row_bytes();
        let mut row0 = 0;
        while row0 < t.rows {
            let rows = rows_per_unit.min(t.rows - row0);
            let too_large = PlanError::TooLarge { what: "a cache unit" };
            let bytes = (rows as u64)
                .checked_mul(row_bytes)
                .and_then(|b| u32::try_from(b).ok())
                .filter(|&b| b <= u32::MAX - crate::plan::layout::ALIGN as u32)
                .ok_or(too_large)?;
            let offset = (row0 as u64).checked_mul(row_bytes).and_then(|o| t.offset.checked_add(o)).ok_or(too_large)?;
            let slot = slots.next().ok_or(PlanError::TooManyUnits { count: count + 1, max: count })?;
            *slot = Unit { tensor: name, row0, rows, offset, bytes, pinned_at: None };
            row0 += rows;
        }
    }
    Ok(())
}
