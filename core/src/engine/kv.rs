//! The KV cache's storage: f32 (the default, bit-exact with llama2.c) or f16 (the optional
//! `PlanOptions::kv_f16`, half the bytes). Owns the typed view of the plan's KV region and the
//! one rounding of new rows into an f16 cache; the attention arithmetic is `ops::attention`
//! (generic over the element), the order of the steps `forward`.

use crate::bytes::{as_f32_mut, as_u16_mut};
use crate::quant::f32_to_f16;

/// The whole KV cache: keys in the first half of the region, values in the second.
pub(crate) enum KvCache<'a> {
    /// f32 elements.
    F32 { keys: &'a mut [f32], values: &'a mut [f32] },
    /// IEEE binary16 bits, rounded to nearest even from the f32 rows.
    F16 { keys: &'a mut [u16], values: &'a mut [u16] },
}

/// One layer's rows of a [`KvCache`].
pub(crate) enum KvLayer<'s> {
    F32 { keys: &'s mut [f32], values: &'s mut [f32] },
    F16 { keys: &'s mut [u16], values: &'s mut [u16] },
}

impl<'a> KvCache<'a> {
    /// The cache over the plan's KV region.
    pub(crate) fn new(region: &'a mut [u8], f16: bool) -> Self {
        if f16 {
            let kv = as_u16_mut(region);
            let (keys, values) = kv.split_at_mut(kv.len() / 2);
            KvCache::F16 { keys, values }
        } else {
            let kv = as_f32_mut(region);
            let (keys, values) = kv.split_at_mut(kv.len() / 2);
            KvCache::F32 { keys, values }
        }
    }

    /// The elements `elems` (one layer's rows) of the keys and of the values.
    pub(crate) fn layer(&mut self, elems: core::ops::Range<usize>) -> KvLayer<'_> {
        match self {
            KvCache::F32 { keys, values } => {
                KvLayer::F32 { keys: &mut keys[elems.clone()], values: &mut values[elems] }
            }
            KvCache::F16 { keys, values } => {
                KvLayer::F16 { keys: &mut keys[elems.clone()], values: &mut values[elems] }
            }
        }
    }
}

/// Rounds the f32 rows `rows` (`[n][kv_dim]`) into `cache` rows `(pos + p) % ring`.
pub(crate) fn store_f16(cache: &mut [u16], rows: &[f32], kv_dim: usize, pos: usize, ring: usize) {
    for (p, row) in rows.chunks_exact(kv_dim.max(1)).enumerate() {
        let at = (pos + p) % ring.max(1) * kv_dim;
        for (d, &v) in cache[at..at + kv_dim].iter_mut().zip(row) {
            *d = f32_to_f16(v);
        }
    }
}
