//! The arena plan: how the caller's RAM budget is spent.
//!
//! Owns [`Plan`], pure arithmetic from the model's shapes, the context length and the budget:
//! fixed regions (working buffers, KV cache, streaming scratch, tokenizer index), then the
//! weights, cut into units (a tensor, or a block of rows of a large tensor) that are either
//! pinned in the resident region for the whole run or streamed through slots. It also carves
//! the caller's `&mut [u8]` into those regions. It reads no storage and runs no math.
//!
//! ```text
//! | working | KV cache | scratch | tokenizer | norms | resident (pinned units) | slot 0 .. slot N-1 |
//! ```

use crate::engine::work::{Work, WorkingLayout};
use crate::error::PlanError;
use crate::model::{LayerTensor, ModelInfo, TensorName, TensorRef};
use crate::tokenizer::Tokenizer;

/// Most units (tensors or row blocks) a plan can hold.
pub const MAX_UNITS: usize = 2048;
/// Most streaming slots.
pub const MAX_SLOTS: usize = 512;
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
    pub pinned_at: Option<u32>,
}

/// Which units stay in RAM when not all fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Policy {
    /// Pin what fits for the whole run, stream the rest through slots (the default).
    #[default]
    Pin,
    /// Evict the least recently used unit.
    Lru,
    /// LRU, but a unit fetched ahead is not evicted before it is used.
    LruProtect,
    /// Evict the most recently used unit.
    Mru,
    /// Belady's MIN: evict the unit used farthest in the future (the schedule is known).
    Min,
}

impl Policy {
    /// All policies, the default first.
    pub const ALL: [Policy; 5] = [Policy::Pin, Policy::Lru, Policy::LruProtect, Policy::Mru, Policy::Min];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Pin => "pin",
            Policy::Lru => "lru",
            Policy::LruProtect => "lru-protect",
            Policy::Mru => "mru",
            Policy::Min => "min",
        }
    }

    /// The policy with this CLI name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// How the arena is spent. The single source of truth for memory.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The budget it was made for.
    pub budget: usize,
    /// The context length it holds a KV cache for.
    pub context: u32,
    /// The options it was made with.
    pub options: PlanOptions,
    /// Activations, logits, sampler scratch.
    pub working: Region,
    /// Sizes of the working buffers.
    pub working_layout: WorkingLayout,
    /// Keys and values, `2 * layers * context * kv_dim` f32.
    pub kv: Region,
    /// Embedding rows of one prefill chunk, in their stored type.
    pub scratch: Region,
    /// Vocabulary pieces, offsets, scores and the sorted index.
    pub tokenizer: Region,
    /// The norm weights, resident always (they are tiny and used every layer).
    pub norms: Region,
    /// Pinned units (and the embedding table when everything fits).
    pub resident: Region,
    /// Streaming slots.
    pub slots: Region,
    /// Number of streaming slots.
    pub slot_count: u32,
    /// Bytes of each slot (the largest streamed unit).
    pub slot_bytes: u32,
    /// The units, in access order.
    pub units: heapless::Vec<Unit, MAX_UNITS>,
    /// Offset of the embedding table in the resident region, when it is pinned.
    pub embd_pinned_at: Option<u32>,
    /// Bytes of one embedding row.
    pub embd_row_bytes: u32,
    /// Weight bytes one decode token uses: all units, the norms and one embedding row.
    pub touched_bytes_per_token: u64,
    /// Weight bytes pinned for the whole run (pinned units, norms, a pinned embedding table).
    pub pinned_bytes: u64,
}

impl Plan {
    /// Weight bytes the plan reads from storage per decode token when every unit that is not
    /// pinned is read once: the lower bound of any policy in this plan's budget.
    pub fn streamed_bytes_per_token(&self) -> u64 {
        let units: u64 = self.units.iter().filter(|u| u.pinned_at.is_none()).map(|u| u.bytes as u64).sum();
        units + if self.embd_pinned_at.is_some() { 0 } else { self.embd_row_bytes as u64 }
    }

    /// Reads per decode token under the same assumption (one per streamed unit, one per row).
    pub fn streamed_reads_per_token(&self) -> u64 {
        self.units.iter().filter(|u| u.pinned_at.is_none()).count() as u64 + u64::from(self.embd_pinned_at.is_none())
    }

    /// Everything but the resident weights: the working set of the streaming analysis.
    pub fn working_set_bytes(&self) -> usize {
        self.working.bytes + self.kv.bytes + self.scratch.bytes + self.tokenizer.bytes + self.slots.bytes
    }

    /// Bytes of the arena the plan uses, including the alignment slack.
    pub fn used_bytes(&self) -> usize {
        self.slots.offset + self.slots.bytes + ALIGN
    }

    /// Positions a prefill chunk holds.
    pub fn prefill_chunk(&self) -> u32 {
        self.working_layout.positions as u32
    }
}

/// Options of the planner beyond model, context and budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PlanOptions {
    /// Who stays in RAM.
    pub policy: Policy,
    /// Units read ahead of use (0 = off); each costs one more slot.
    pub prefetch: u32,
    /// Most prompt positions run through a layer together. The planner lowers it to fit the
    /// budget (down to 1) and never raises it.
    pub prefill_chunk: u32,
    /// Plans room in the working region for each position's input rounded to Q8_0/Q8_K
    /// blocks, which the opt-in integer kernels ([`crate::quant::KernelPath::Avx2Q8`]) need
    /// (`positions * 292/256` bytes per element of the longest input row). Off by default: the
    /// other paths never use it.
    pub quantized_activations: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { policy: Policy::Pin, prefetch: 0, prefill_chunk: 16, quantized_activations: false }
    }
}

/// Most units read ahead.
pub const MAX_PREFETCH: u32 = 8;

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Plans the arena with the default options. See [`plan_with`].
pub fn plan(model: &ModelInfo, context: u32, budget: usize) -> Result<Plan, PlanError> {
    plan_with(model, context, budget, PlanOptions::default())
}

/// The units of the model in access order: each layer's matrices, then the classifier, each
/// cut into row blocks of at most `unit_cap` bytes. Norm weights are not units: they live in
/// the always-resident norms region.
fn build_units(model: &ModelInfo, unit_cap: u64) -> Result<heapless::Vec<Unit, MAX_UNITS>, PlanError> {
    let mut units = heapless::Vec::new();
    let mut count = 0usize;
    let mut push = |name: TensorName, t: &TensorRef| {
        let row_bytes = t.row_bytes().max(1);
        let rows_per_unit = (unit_cap / row_bytes).clamp(1, t.rows.max(1) as u64) as u32;
        let mut row0 = 0;
        while row0 < t.rows {
            let rows = rows_per_unit.min(t.rows - row0);
            count += 1;
            let _ = units.push(Unit {
                tensor: name,
                row0,
                rows,
                offset: t.offset + row0 as u64 * row_bytes,
                bytes: (rows as u64 * row_bytes) as u32,
                pinned_at: None,
            });
            row0 += rows;
        }
    };
    for (l, layer) in model.layers.iter().enumerate() {
        for (t, lt) in layer.iter().zip(LayerTensor::ALL) {
            if !lt.is_norm() {
                push(TensorName::Layer(l as u16, lt), t);
            }
        }
    }
    push(TensorName::Output, &model.output);
    if count > MAX_UNITS {
        return Err(PlanError::TooManyUnits { count, max: MAX_UNITS });
    }
    Ok(units)
}

/// The largest unit: the smallest layer matrix, so that units are close to one size (every
/// policy can then spend its budget on equal slots), but large enough that the model fits in
/// half of [`MAX_UNITS`].
pub fn unit_cap(model: &ModelInfo) -> u64 {
    let matrices = || model.layers.iter().flat_map(|l| l.iter().zip(LayerTensor::ALL)).filter(|(_, lt)| !lt.is_norm());
    let smallest = matrices().map(|(t, _)| t.bytes()).min().unwrap_or(0);
    let total: u64 = matrices().map(|(t, _)| t.bytes()).sum::<u64>() + model.output.bytes();
    smallest.max(total.div_ceil(MAX_UNITS as u64 / 2))
}

/// Bytes of all norm weights (per layer two, and the final one), kept resident always.
pub fn norm_bytes(model: &ModelInfo) -> usize {
    let per_layer: u64 = model
        .layers
        .iter()
        .flat_map(|l| [l[LayerTensor::AttnNorm as usize], l[LayerTensor::FfnNorm as usize]])
        .map(|t| t.bytes())
        .sum();
    (per_layer + model.output_norm.bytes()) as usize
}

struct Fixed {
    working_layout: WorkingLayout,
    working: Region,
    kv: Region,
    scratch: Region,
    tokenizer: Region,
    norms: Region,
    end: usize,
}

fn region(at: &mut usize, bytes: usize) -> Region {
    let r = Region { offset: *at, bytes };
    *at += align_up(bytes);
    r
}

/// The regions every plan has, for `positions` prefill positions.
fn fixed_regions(model: &ModelInfo, context: u32, positions: usize, q8: bool) -> Fixed {
    let c = &model.config;
    let working_layout = Work::layout(c, context, positions, q8);
    let strings = model.header.tokens.map_or(0, |t| t.string_bytes) as usize;
    let mut at = 0usize;
    Fixed {
        working_layout,
        working: region(&mut at, working_layout.bytes()),
        kv: region(&mut at, 2 * c.n_layers as usize * context as usize * c.kv_dim as usize * 4),
        scratch: region(&mut at, positions * model.token_embd.row_bytes() as usize),
        tokenizer: region(&mut at, Tokenizer::region_bytes(c.vocab as usize, strings)),
        norms: region(&mut at, norm_bytes(model)),
        end: at,
    }
}

/// Plans the arena: fixed regions first, then the weights. Under [`Policy::Pin`] the largest
/// units that fit are pinned beside `1 + prefetch` slots sized for the largest unit left
/// streaming; the other policies spend everything on slots of the largest unit's size.
pub fn plan_with(model: &ModelInfo, context: u32, budget: usize, opts: PlanOptions) -> Result<Plan, PlanError> {
    let c = &model.config;
    if context == 0 || context > c.context_length {
        return Err(PlanError::BadContext { requested: context, max: c.context_length });
    }
    let opts = PlanOptions {
        prefetch: opts.prefetch.min(MAX_PREFETCH),
        prefill_chunk: opts.prefill_chunk.clamp(1, context),
        ..opts
    };
    let mut units = build_units(model, unit_cap(model))?;
    let largest = units.iter().map(|u| align_up(u.bytes as usize)).max().unwrap_or(0);
    let all_units: usize = units.iter().map(|u| align_up(u.bytes as usize)).sum();
    let embd_bytes = align_up(model.token_embd.bytes() as usize);
    let embd_row = model.token_embd.row_bytes();
    let norms = norm_bytes(model) as u64;
    let touched = units.iter().map(|u| u.bytes as u64).sum::<u64>() + norms + embd_row;
    let min_slots = 1 + opts.prefetch as usize;

    let minimum = fixed_regions(model, context, 1, opts.quantized_activations).end + ALIGN + min_slots * largest;
    if budget < minimum {
        return Err(PlanError::BudgetTooSmall {
            budget,
            minimum,
            context,
            kv_bytes: 2 * c.n_layers as usize * context as usize * c.kv_dim as usize * 4,
            slot_bytes: largest,
        });
    }
    // The prefill chunk is the first thing to give up: halve it until a slot set fits.
    let mut positions = opts.prefill_chunk as usize;
    let mut fixed = fixed_regions(model, context, positions, opts.quantized_activations);
    while positions > 1 && fixed.end + ALIGN + min_slots * largest > budget {
        positions = positions.div_ceil(2);
        fixed = fixed_regions(model, context, positions, opts.quantized_activations);
    }
    let cache_budget = budget - fixed.end - ALIGN;

    let mut embd_pinned_at = None;
    let (slot_count, slot_bytes);
    let everything = all_units + if model.tied_output { 0 } else { embd_bytes };
    if everything <= cache_budget {
        // Everything fits: pin it all, stream nothing, whatever the policy.
        let mut off = 0usize;
        for u in units.iter_mut() {
            u.pinned_at = Some(off as u32);
            off += align_up(u.bytes as usize);
        }
        if !model.tied_output {
            embd_pinned_at = Some(off as u32);
        }
        slot_count = 0;
        slot_bytes = 0;
    } else if opts.policy != Policy::Pin {
        slot_count = (cache_budget / largest).min(MAX_SLOTS) as u32;
        slot_bytes = largest as u32;
    } else {
        // Sort unit indices by size, largest first (first-fit decreasing).
        let mut order: heapless::Vec<u16, MAX_UNITS> = (0..units.len() as u16).collect();
        order.sort_unstable_by(|&a, &b| units[b as usize].bytes.cmp(&units[a as usize].bytes).then(a.cmp(&b)));
        // First-fit decreasing into what the slots leave. A unit left streaming is never larger
        // than the current slot, so shrinking the slot to it frees room to pin more; repeat
        // until the slot stops shrinking.
        let fill = |avail: usize| {
            let mut mask = [0u64; MAX_UNITS / 64];
            let (mut used, mut max_streamed) = (0usize, 0usize);
            for &i in order.iter() {
                let b = align_up(units[i as usize].bytes as usize);
                if used + b <= avail {
                    used += b;
                    mask[i as usize / 64] |= 1 << (i % 64);
                } else {
                    max_streamed = max_streamed.max(b);
                }
            }
            (mask, max_streamed)
        };
        let mut slot = largest;
        let pinned_mask = loop {
            let (mask, max_streamed) = fill(cache_budget.saturating_sub(slot * min_slots));
            if max_streamed == 0 || max_streamed >= slot {
                break mask;
            }
            slot = max_streamed;
        };
        let mut off = 0usize;
        for (i, u) in units.iter_mut().enumerate() {
            if pinned_mask[i / 64] & (1 << (i % 64)) != 0 {
                u.pinned_at = Some(off as u32);
                off += align_up(u.bytes as usize);
            }
        }
        let streams = units.iter().any(|u| u.pinned_at.is_none());
        slot_count = if streams { min_slots as u32 } else { 0 };
        slot_bytes = if streams { slot as u32 } else { 0 };
    }

    let pinned_units: usize = units.iter().filter_map(|u| u.pinned_at.map(|_| align_up(u.bytes as usize))).sum();
    let resident_bytes = pinned_units + if embd_pinned_at.is_some() { embd_bytes } else { 0 };
    let mut at = fixed.end;
    let resident = region(&mut at, resident_bytes);
    let slots = region(&mut at, slot_count as usize * slot_bytes as usize);
    let pinned_bytes = units.iter().filter(|u| u.pinned_at.is_some()).map(|u| u.bytes as u64).sum::<u64>()
        + norms
        + if embd_pinned_at.is_some() { model.token_embd.bytes() } else { 0 };
    Ok(Plan {
        budget,
        context,
        options: PlanOptions { prefill_chunk: positions as u32, ..opts },
        working: fixed.working,
        working_layout: fixed.working_layout,
        kv: fixed.kv,
        scratch: fixed.scratch,
        tokenizer: fixed.tokenizer,
        norms: fixed.norms,
        resident,
        slots,
        slot_count,
        slot_bytes,
        units,
        embd_pinned_at,
        embd_row_bytes: embd_row as u32,
        touched_bytes_per_token: touched,
        pinned_bytes,
    })
}

/// The caller's arena cut into the plan's regions.
pub struct Regions<'a> {
    /// Working buffers.
    pub working: &'a mut [u8],
    /// KV cache.
    pub kv: &'a mut [u8],
    /// Streaming scratch.
    pub scratch: &'a mut [u8],
    /// Tokenizer index.
    pub tokenizer: &'a mut [u8],
    /// Norm weights.
    pub norms: &'a mut [u8],
    /// Pinned weights.
    pub resident: &'a mut [u8],
    /// Streaming slots.
    pub slots: &'a mut [u8],
}

/// Cuts `arena` into the plan's regions, aligning the start to [`ALIGN`].
pub fn carve<'a>(plan: &Plan, arena: &'a mut [u8]) -> Result<Regions<'a>, PlanError> {
    let too_small = PlanError::BudgetTooSmall {
        budget: arena.len(),
        minimum: plan.used_bytes(),
        context: plan.context,
        kv_bytes: plan.kv.bytes,
        slot_bytes: plan.slot_bytes as usize,
    };
    let pad = arena.as_ptr().align_offset(ALIGN);
    if pad >= ALIGN || arena.len() < plan.used_bytes() {
        return Err(too_small);
    }
    let (_, rest) = arena.split_at_mut(pad);
    let mut rest = rest;
    let mut at = 0usize;
    let mut take = |r: Region| {
        let (_, tail) = core::mem::take(&mut rest).split_at_mut(r.offset - at);
        let (mine, tail) = tail.split_at_mut(r.bytes);
        at = r.offset + r.bytes;
        rest = tail;
        mine
    };
    Ok(Regions {
        working: take(plan.working),
        kv: take(plan.kv),
        scratch: take(plan.scratch),
        tokenizer: take(plan.tokenizer),
        norms: take(plan.norms),
        resident: take(plan.resident),
        slots: take(plan.slots),
    })
}
