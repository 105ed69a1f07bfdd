//! SentencePiece encoding of one run of plain text (`tokenizer.ggml.model = llama`).
//!
//! Owns llama.cpp's SPM steps for a run: the dummy-prefix space, one symbol per UTF-8 code
//! point with `<0xXX>` byte fallback, then merges of adjacent symbols whose concatenation is
//! a piece, the best-scoring first and the leftmost on a tie. It must not split text at
//! special pieces (the caller does) nor add BOS/EOS.

use core::cmp::Ordering;

use super::decode::byte_piece;
use super::merge::{merge_heap, merge_rescan, Pairs};
use super::room_for;
use super::vocab::Vocab;
use crate::error::Result;

/// A SentencePiece vocabulary: pieces merge by score.
pub(crate) struct Spm<'v, 'a> {
    pub(crate) vocab: &'v Vocab<'a>,
    pub(crate) scores: &'a [f32],
}

impl Pairs for Spm<'_, '_> {
    fn candidate(&self, left: u32, right: u32) -> Option<u32> {
        self.vocab.lookup_concat(left, right)
    }

    /// The higher score first. Scores are never NaN (checked at load), and -0 equals +0.
    fn order(&self, a: u32, b: u32) -> Ordering {
        let score = |id: u32| self.scores.get(id as usize).copied().unwrap_or(0.0);
        score(b).partial_cmp(&score(a)).unwrap_or(Ordering::Equal)
    }

    fn merged(&self, _: u32, _: u32, cand: u32) -> Option<u32> {
        Some(cand)
    }
}

impl Spm<'_, '_> {
    /// Writes the dummy-prefix space and one id per code point (or per byte, for code points
    /// outside the vocabulary) to `out`; returns how many.
    fn symbols(&self, text: &[u8], space: Option<u32>, out: &mut [u32]) -> Result<usize> {
        room_for(text.len().checked_add(space.is_some() as usize), out)?;
        let mut n = 0;
        if !text.is_empty() {
            if let Some(space) = space {
                out[n] = space;
                n += 1;
            }
        }
        // One code point at a time (at most 4 bytes), falling back to byte tokens.
        let mut cp = [0u8; 4];
        let mut len = 0;
        for (i, &byte) in text.iter().enumerate() {
            if byte & 0xC0 != 0x80 {
                len = 0;
            }
            cp[len] = byte;
            len += 1;
            let next_is_continuation = text.get(i + 1).is_some_and(|&b| b & 0xC0 == 0x80);
            if next_is_continuation && len < 4 {
                continue;
            }
            match self.vocab.lookup(&cp[..len]) {
                Some(id) => {
                    out[n] = id;
                    n += 1;
                }
                None => {
                    for &b in &cp[..len] {
                        out[n] = self.vocab.lookup(&byte_piece(b)).unwrap_or(b as u32 + 3);
                        n += 1;
                    }
                }
            }
            len = 0;
        }
        Ok(n)
    }

    /// Encodes one run of plain text (after `space`, the dummy prefix, when given) into `out`;
    /// with `scratch` in O(n log n), without it by rescanning (O(n²)). Returns the ids written.
    pub(crate) fn encode_run(
        &self,
        text: &[u8],
        space: Option<u32>,
        out: &mut [u32],
        scratch: Option<&mut [u32]>,
    ) -> Result<usize> {
        let n = self.symbols(text, space, out)?;
        Ok(match scratch {
            Some(scratch) => merge_heap(self, out, n, scratch),
            None => merge_rescan(self, out, n),
        })
    }
}
