//! What the caller chooses beyond model, context and budget: the eviction [`Policy`] the cache
//! carries out, read-ahead, the prefill chunk and room for quantized activations.

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

/// Options of the planner beyond model, context and budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PlanOptions {
    /// Who stays in RAM.
    pub policy: Policy,
    /// Units read ahead of use (0 = off); each costs one more slot.
    pub prefetch: u32,
    /// Most prompt positions run through a layer together. The planner lowers it to fit the
    /// budget (down to 1) and never raises it. The default, 32, gives each of two threads 16
    /// positions of a unit's product (the tile kernels read and decode a weight block once
    /// for up to 16); it changes no token (chunking never does).
    pub prefill_chunk: u32,
    /// Plans room in the working region for each position's input rounded to Q8_0/Q8_K
    /// blocks, which the opt-in integer kernels ([`crate::quant::KernelPath::Avx2Q8`]) need
    /// (`positions * 292/256` bytes per element of the longest input row). Off by default: the
    /// other paths never use it.
    pub quantized_activations: bool,
    /// The alignment of the storage's reads straight into slots ([`crate::Storage::io_align`]:
    /// 1 for none, up to 4096 for direct I/O): each slot gets
    /// [`crate::storage::io_slack`] bytes beyond its largest unit, so the reads need no buffer
    /// outside the arena. The engine raises it to its storage's.
    pub io_align: u32,
    /// Keeps the KV cache in f16 instead of f32: half its bytes (context 128 of stories260K in
    /// 80 KiB instead of 160 KiB), and a small per-position staging buffer in the working
    /// region where the new keys and values stay f32 until they are rounded once (after RoPE),
    /// as llama.cpp's f16 cache rounds them. Changes the logits within a tolerance
    /// (tests/tests/kv_f16.rs); the tokens still never depend on the budget.
    pub kv_f16: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            policy: Policy::Pin,
            prefetch: 0,
            prefill_chunk: 32,
            quantized_activations: false,
            io_align: 1,
            kv_f16: false,
        }
    }
}

/// Most units read ahead.
pub const MAX_PREFETCH: u32 = 8;
