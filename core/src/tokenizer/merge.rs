//! The merge loop both tokenizers share: adjacent symbols merge, best pair first.
//!
//! Owns the two merge strategies over a row of symbol ids: [`merge_heap`] (a linked list of
//! symbols and a heap of candidate pairs, O(n log n), in caller-lent scratch) and
//! [`merge_rescan`] (rescans the row per merge, O(n²), no scratch). What makes a pair a
//! candidate and which candidate goes first is the caller's [`Pairs`] (SentencePiece: the
//! merged piece's score; BPE: the merge's rank). It must not know of pieces or text.

use core::cmp::Ordering;

use super::heap::{Heap, NONE};

/// The words of scratch [`merge_heap`] needs per symbol: next and previous links, the
/// candidate, a heap slot and the heap position.
pub(crate) const WORDS_PER_SYMBOL: usize = 5;

/// What a pair of adjacent symbols merges into, and in which order.
pub(crate) trait Pairs {
    /// The candidate for merging `left` and `right` (symbol ids), `None` when they never merge.
    fn candidate(&self, left: u32, right: u32) -> Option<u32>;
    /// `Less` when candidate `a` merges before candidate `b`; on `Equal` the leftmost goes first.
    fn order(&self, a: u32, b: u32) -> Ordering;
    /// The id of the symbol that merging `left` and `right` (candidate `cand`) makes.
    fn merged(&self, left: u32, right: u32, cand: u32) -> Option<u32>;
}

/// Merges `syms[..n]` in place, best candidate first and the leftmost on a tie; returns how
/// many symbols are left (compacted to the front, in order; [`NONE`] ids are dropped).
/// `scratch` holds [`WORDS_PER_SYMBOL`]` * n` words.
///
/// The symbols form a linked list over `syms` (a merge keeps the left symbol's slot and
/// unlinks the right one), and each symbol with a mergeable right neighbour sits in a heap
/// ordered by its candidate, then by slot: the top is exactly the pair a rescan would pick.
/// A merge changes only the candidates of the merged symbol and of its left neighbour.
pub(crate) fn merge_heap<P: Pairs>(p: &P, syms: &mut [u32], n: usize, scratch: &mut [u32]) -> usize {
    let (next, rest) = scratch.split_at_mut(n);
    let (prev, rest) = rest.split_at_mut(n);
    let (cand, rest) = rest.split_at_mut(n);
    let (slots, rest) = rest.split_at_mut(n);
    let pos = &mut rest[..n];
    let mut heap = Heap::new(slots, pos);
    for i in 0..n {
        next[i] = if i + 1 < n { (i + 1) as u32 } else { NONE };
        prev[i] = if i > 0 { (i - 1) as u32 } else { NONE };
        heap.clear_pos(i);
    }
    let before = |c: &[u32], a: u32, b: u32| match p.order(c[a as usize], c[b as usize]) {
        Ordering::Less => true,
        Ordering::Equal => a < b,
        Ordering::Greater => false,
    };
    for i in 0..n.saturating_sub(1) {
        if let Some(c) = p.candidate(syms[i], syms[i + 1]) {
            cand[i] = c;
            heap.push(i as u32, |a, b| before(cand, a, b));
        }
    }
    while let Some(i) = heap.top() {
        let i = i as usize;
        let j = next[i] as usize;
        heap.remove(i as u32, |a, b| before(cand, a, b));
        let Some(id) = p.merged(syms[i], syms[j], cand[i]) else { continue };
        heap.remove(j as u32, |a, b| before(cand, a, b));
        syms[i] = id;
        next[i] = next[j];
        if next[j] != NONE {
            prev[next[j] as usize] = i as u32;
        }
        // The merged symbol's new pair, then its left neighbour's.
        for left in [i as u32, prev[i]] {
            if left == NONE {
                continue;
            }
            let l = left as usize;
            heap.remove(left, |a, b| before(cand, a, b));
            if next[l] != NONE {
                if let Some(c) = p.candidate(syms[l], syms[next[l] as usize]) {
                    cand[l] = c;
                    heap.push(left, |a, b| before(cand, a, b));
                }
            }
        }
    }
    // Compact the surviving symbols to the front, in order.
    let (mut w, mut r) = (0, if n > 0 { 0 } else { NONE });
    while r != NONE {
        if syms[r as usize] != NONE {
            syms[w] = syms[r as usize];
            w += 1;
        }
        r = next[r as usize];
    }
    w
}

/// As [`merge_heap`] with no scratch: each merge rescans the row (O(n²), short rows only).
pub(crate) fn merge_rescan<P: Pairs>(p: &P, syms: &mut [u32], mut n: usize) -> usize {
    loop {
        let mut best: Option<(u32, usize)> = None;
        for i in 0..n.saturating_sub(1) {
            if let Some(c) = p.candidate(syms[i], syms[i + 1]) {
                if best.is_none_or(|(b, _)| p.order(c, b) == Ordering::Less) {
                    best = Some((c, i));
                }
            }
        }
        let Some((c, i)) = best else { break };
        let Some(id) = p.merged(syms[i], syms[i + 1], c) else { break };
        syms[i] = id;
        syms.copy_within(i + 2..n, i + 1);
        n -= 1;
    }
    let mut w = 0;
    for r in 0..n {
        if syms[r] != NONE {
            syms[w] = syms[r];
            w += 1;
        }
    }
    w
}
