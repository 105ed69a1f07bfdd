//! Weight access by tensor for the forward pass: the model's weights unit by unit through the
//! cache, multiplied by the kernels on the executor, and embedding rows dequantized from the
//! resident region or read into the scratch. Owns the storage, the loader, the cache and the
//! quantized-input buffer; knows nothing of the block's order of operations.

use crate::cache::{Cache, Loader};
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::model::{Layer, ModelInfo, TensorName};
use crate::plan::{Plan, Unit};
use crate::quant::{self, GgmlType, Kernels};
use crate::storage::Storage;

/// Access to weights by tensor, unit by unit.
pub(crate) struct Weights<'a, S: Storage, L: Loader<'a>> {
    pub(crate) storage: S,
    pub(crate) loader: L,
    /// The model, its per-layer table in the arena.
    pub(crate) model: ModelInfo<&'a [Layer]>,
    /// The plan, its unit table in the arena.
    pub(crate) plan: Plan<&'a [Unit]>,
    pub(crate) cache: Cache<'a>,
    /// Which code computes the matrix-vector products.
    pub(crate) kernels: Kernels,
    /// Who runs their rows.
    pub(crate) exec: &'a (dyn Executor + Sync),
    /// Room for the quantized input of every position (see [`Kernels::activation_type`]),
    /// `[positions][layout.q8]` bytes (empty unless planned with quantized activations).
    q8: &'a mut [u8],
    /// What `q8` holds when the caller says the input is unchanged: the activation type, the
    /// columns and the positions of the last rounded input.
    q8_holds: Option<(GgmlType, usize, usize)>,
    /// Embedding rows of one prefill chunk, when the table is not resident.
    scratch: &'a mut [u8],
    /// The unit after the last product's: the forward pass asks for matrices in unit order,
    /// so it is usually the next one's first unit (no search).
    next_unit: usize,
}

impl<'a, S: Storage, L: Loader<'a>> Weights<'a, S, L> {
    /// Weight access over a loaded cache.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        storage: S,
        loader: L,
        model: ModelInfo<&'a [Layer]>,
        plan: Plan<&'a [Unit]>,
        cache: Cache<'a>,
        q8: &'a mut [u8],
        scratch: &'a mut [u8],
    ) -> Self {
        Weights {
            storage,
            loader,
            model,
            plan,
            cache,
            kernels: Kernels::SCALAR,
            exec: &crate::exec::Inline,
            q8,
            q8_holds: None,
            scratch,
            next_unit: 0,
        }
    }

    /// Index of the first unit of matrix `name` (`usize::MAX` for a norm): the unit table is
    /// in [`ModelInfo::matrix_ordinal`] order, so a binary search finds it.
    fn first(&self, name: TensorName) -> usize {
        let next = if self.next_unit < self.plan.units.len() { self.next_unit } else { 0 };
        let starts = |i: usize| {
            self.plan.units.get(i).is_some_and(|u| u.tensor == name)
                && (i == 0 || self.plan.units[i - 1].tensor != name)
        };
        if starts(next) {
            return next;
        }
        let Some(ordinal) = self.model.matrix_ordinal(name) else { return usize::MAX };
        let at = self.plan.units.partition_point(|u| self.model.matrix_ordinal(u.tensor).is_some_and(|o| o < ordinal));
        if self.plan.units.get(at).is_some_and(|u| u.tensor == name) {
            at
        } else {
            usize::MAX
        }
    }

    /// out[p] = W x[p] for `n` positions (`x`: `[n][cols]`, `out`: `[n][rows]`), over the
    /// tensor's units in order, each unit fetched once for all positions. On a path that rounds
    /// the input ([`Kernels::activation_type`]), each position is rounded once, before the
    /// first unit.
    pub(crate) fn matvec(&mut self, name: TensorName, n: usize, x: &[f32], out: &mut [f32]) -> Result<()> {
        self.q8_holds = None;
        self.matvec_same_input(name, n, x, out)
    }

    /// As [`Weights::matvec`] when `x` is the input of the previous call, unchanged: the
    /// rounded input is reused if it has the same type and shape (the same bytes either way).
    pub(crate) fn matvec_same_input(&mut self, name: TensorName, n: usize, x: &[f32], out: &mut [f32]) -> Result<()> {
        let t = self.model.tensor(name);
        let (rows, cols) = (t.rows as usize, t.cols as usize);
        let rounded = self.kernels.activation_type(t.ty).and_then(|vt| Some((vt, quant::activation_bytes(vt, cols)?)));
        let q_row = rounded.map_or(0, |(_, b)| b);
        if let Some((vt, q_row)) = rounded.filter(|&(vt, _)| self.q8_holds != Some((vt, cols, n))) {
            let got = self.q8.len();
            let q8 = self.q8.get_mut(..n * q_row).ok_or(Error::BufferTooSmall {
                what: "quantized activations (plan with PlanOptions::quantized_activations)",
                needed: n * q_row,
                got,
            })?;
            for (xp, qp) in x.chunks_exact(cols).zip(q8.chunks_exact_mut(q_row)) {
                self.kernels.quantize_activations(vt, xp, qp);
            }
            self.q8_holds = Some((vt, cols, n));
        }
        let q8: &[u8] = self.q8;
        let mut i = self.first(name);
        let units = self.plan.units;
        while let Some(u) = units.get(i).filter(|u| u.tensor == name) {
            let w = self.cache.fetch(units, i, &mut self.storage, &mut self.loader)?;
            let job = crate::quant::span::UnitProduct {
                kernels: self.kernels,
                ty: t.ty,
                w,
                rows: u.rows as usize,
                row0: u.row0 as usize,
                stride: rows,
                x,
                cols,
                xq: q8.get(..n * q_row).unwrap_or(&[]),
                q_row,
            };
            let span = out.get_mut(job.span(n)).ok_or(Error::Malformed("a unit writes past its output"))?;
            self.exec.run_rows(span, w.len().saturating_mul(n), &|e0, chunk: &mut [f32]| job.run(e0, chunk));
            i += 1;
        }
        self.next_unit = i;
        Ok(())
    }

    /// x[p] = the embedding row of `token`, from the resident region or read into the scratch.
    pub(crate) fn embed(&mut self, token: u32, p: usize, x: &mut [f32]) -> Result<()> {
        let m = &self.model;
        let t = if m.tied_output { m.output } else { m.token_embd };
        let row_bytes = t.row_bytes() as usize;
        let row_offset = token as usize * row_bytes;
        let pinned = if m.tied_output {
            // The classifier's units hold the embedding rows.
            let first = self.first(TensorName::Output);
            self.plan.units[first.min(self.plan.units.len())..]
                .iter()
                .find(|u| (u.row0..u.row0 + u.rows).contains(&token))
                .and_then(|u| u.pinned_at.map(|at| at + (token - u.row0) as usize * row_bytes))
        } else {
            self.plan.embd_pinned_at.map(|at| at + row_offset)
        };
        let row = match pinned {
            Some(at) => self.cache.resident(at, row_bytes),
            None => {
                let buf = &mut self.scratch[p * row_bytes..(p + 1) * row_bytes];
                self.cache.read_row(t.offset + row_offset as u64, buf, &mut self.storage, &mut self.loader)?;
                buf
            }
        };
        let dim = self.model.config.dim as usize;
        quant::dequantize_row(t.ty, row, &mut x[p * dim..(p + 1) * dim]);
        Ok(())
    }
}
