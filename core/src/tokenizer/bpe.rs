//! Byte-level BPE (`tokenizer.ggml.model = gpt2`): the merge table and one word's merges.
//!
//! Owns GPT-2's byte-to-unicode map (pieces are stored as raw bytes, so the map is undone at
//! load), the merge table in the arena (`tokenizer.ggml.merges`, one `u64` per merge: left id,
//! right id and rank, sorted by pair for binary search) and the encoding of one pre-tokenized
//! word as llama.cpp does it: one symbol per byte, then the lowest-ranked adjacent pair first,
//! the leftmost on a tie; the word's bytes as llama.cpp reads them (a malformed UTF-8 byte is
//! U+FFFD's three bytes). It must not split text (the pre-tokenizer does).

use core::cmp::Ordering;

use super::bytemap::unmap;
use super::heap::NONE;
use super::merge::{merge_heap, merge_rescan, Pairs};
use super::pretok::PreTokenizer;
use super::unicode::decode_at;
use super::vocab::Vocab;
use crate::error::{Error, Result};
use crate::gguf::{ArrayRef, Cursor};
use crate::storage::Storage;

/// Bits of a merge key: left id (21), right id (21), rank (22).
const ID_BITS: u32 = 21;
const RANK_BITS: u32 = 22;

/// Bytes of the merge table for `merges` merges: 8 each, plus 8 so that the first is 8-aligned
/// in a 4-aligned region and what follows stays 4-aligned.
pub(crate) fn merge_table_bytes(merges: u64) -> Option<u64> {
    merges.checked_mul(8)?.checked_add(8)
}

/// Bytes of the buffer a merge string is read into: two of the longest pieces and a space
/// (a longer merge cannot join two pieces).
pub(crate) fn merge_buffer_bytes(longest_piece: u64) -> Option<u64> {
    longest_piece.checked_mul(2)?.checked_add(1)
}

/// Reads `tokenizer.ggml.merges` into `table` (a `u64` per merge) as sorted keys, each string
/// through `buf` ([`merge_buffer_bytes`]); merges whose halves or result are not pieces are
/// left out (they could never apply). Returns the number kept and the bytes read.
pub(crate) fn load_merges<S: Storage>(
    storage: &mut S,
    merges: ArrayRef,
    vocab: &Vocab,
    table: &mut [u64],
    buf: &mut [u8],
) -> Result<(usize, u64)> {
    if merges.elem_type != 8 {
        return Err(Error::Malformed("tokenizer.ggml.merges is not a string array"));
    }
    if vocab.len() as u64 >= 1 << ID_BITS || merges.count >= 1 << RANK_BITS {
        return Err(Error::Malformed(
            "BPE vocabulary over 2^21 pieces or over 2^22 merges: the merge table cannot index it",
        ));
    }
    let mut c = Cursor::new(storage, merges.offset);
    let mut kept = 0;
    for rank in 0..merges.count {
        let len = c.u64("merge length")?;
        let Some(s) = usize::try_from(len).ok().and_then(|n| buf.get_mut(..n)) else {
            c.skip(len, "merge string")?;
            continue;
        };
        c.read(s, "merge string")?;
        // "left right", split at the first space after the first byte (as llama.cpp does).
        let Some(at) = s.iter().skip(1).position(|&b| b == b' ').map(|p| p + 1) else { continue };
        let (left, right) = s.split_at_mut(at);
        let right = &mut right[1..];
        let (Some(l), Some(r)) = (unmap(left), unmap(right)) else { continue };
        let (Some(l), Some(r)) = (vocab.lookup(&left[..l]), vocab.lookup(&right[..r])) else { continue };
        if vocab.lookup_concat(l, r).is_none() || kept >= table.len() {
            continue;
        }
        table[kept] = (l as u64) << (ID_BITS + RANK_BITS) | (r as u64) << RANK_BITS | rank;
        kept += 1;
    }
    table[..kept].sort_unstable();
    Ok((kept, c.bytes_read))
}

/// A byte-level BPE vocabulary: pieces merge by rank.
pub(crate) struct Bpe<'v, 'a> {
    pub(crate) vocab: &'v Vocab<'a>,
    pub(crate) merges: &'a [u64],
    pub(crate) pre: PreTokenizer,
}

impl Pairs for Bpe<'_, '_> {
    fn candidate(&self, left: u32, right: u32) -> Option<u32> {
        if left == NONE || right == NONE {
            return None;
        }
        let pair = (left as u64) << ID_BITS | right as u64;
        let i = self.merges.partition_point(|&k| k >> RANK_BITS < pair);
        let k = *self.merges.get(i)?;
        (k >> RANK_BITS == pair).then_some((k & ((1 << RANK_BITS) - 1)) as u32)
    }

    fn order(&self, a: u32, b: u32) -> Ordering {
        a.cmp(&b)
    }

    fn merged(&self, left: u32, right: u32, _: u32) -> Option<u32> {
        self.vocab.lookup_concat(left, right)
    }
}

/// Longest word whose re-encoded bytes are looked up whole (`ignore_merges`): longer than
/// any piece of a real vocabulary, so a longer word is never one piece.
const WHOLE_LOOKUP: usize = 128;

/// Calls `byte` with each byte of `word` as llama.cpp's BPE tokenizer reads it: it decodes the
/// text to code points (`unicode_cpts_from_utf8`: a byte that does not start a well-formed
/// sequence is U+FFFD) and encodes them back to UTF-8 for the byte-level pieces. Well-formed
/// text is unchanged; a malformed byte becomes U+FFFD's three bytes, an overlong sequence
/// its shortest form.
fn read_bytes(word: &[u8], mut byte: impl FnMut(u8)) {
    let mut i = 0;
    while i < word.len() {
        let (cp, len) = decode_at(word, i);
        i += len;
        // Its shortest UTF-8 form: lead byte, then 6 bits per continuation byte.
        let (lead, n) = match cp {
            0..=0x7F => (cp as u8, 0),
            0x80..=0x7FF => (0xC0 | (cp >> 6) as u8, 1),
            0x800..=0xFFFF => (0xE0 | (cp >> 12) as u8, 2),
            _ => (0xF0 | (cp >> 18) as u8 & 0x07, 3),
        };
        byte(lead);
        for k in (0..n).rev() {
            byte(0x80 | (cp >> (6 * k)) as u8 & 0x3F);
        }
    }
}

impl Bpe<'_, '_> {
    /// Encodes one pre-tokenized `word` into `out`; with `scratch` in O(n log n), without by
    /// rescanning. Returns the ids written. Each malformed byte is U+FFFD's three bytes, so
    /// `out` needs `word.len()` entries plus 2 per malformed byte (and `scratch`
    /// [`super::merge::WORDS_PER_SYMBOL`] words per entry). A byte without a piece is dropped,
    /// as llama.cpp drops it.
    pub(crate) fn encode_word(&self, word: &[u8], out: &mut [u32], scratch: Option<&mut [u32]>) -> Result<usize> {
        let mut n = 0usize;
        read_bytes(word, |_| n += 1);
        if out.len() < n {
            return Err(Error::BufferTooSmall {
                what: "token (each malformed UTF-8 byte is read as U+FFFD, 3 bytes)",
                needed: n,
                got: out.len(),
            });
        }
        if self.pre.ignore_merges() {
            let whole = if n == word.len() {
                self.vocab.lookup(word)
            } else if n <= WHOLE_LOOKUP {
                let (mut buf, mut k) = ([0u8; WHOLE_LOOKUP], 0);
                read_bytes(word, |b| {
                    buf[k] = b;
                    k += 1;
                });
                self.vocab.lookup(&buf[..k])
            } else {
                None
            };
            if let Some(id) = whole {
                out[0] = id;
                return Ok(1);
            }
        }
        let mut k = 0;
        read_bytes(word, |b| {
            out[k] = self.vocab.lookup(&[b]).unwrap_or(NONE);
            k += 1;
        });
        Ok(match scratch {
            Some(scratch) => {
                let (needed, got) = (n.saturating_mul(super::merge::WORDS_PER_SYMBOL), scratch.len());
                let scratch = scratch.get_mut(..needed).ok_or(Error::BufferTooSmall {
                    what: "encode scratch (u32 words; each malformed UTF-8 byte is read as U+FFFD, 3 bytes)",
                    needed,
                    got,
                })?;
                merge_heap(self, out, n, scratch)
            }
            None => merge_rescan(self, out, n),
        })
    }

    /// Encodes a run of plain text: its words, split by the pre-tokenizer, one after another.
    pub(crate) fn encode_run(&self, text: &[u8], out: &mut [u32], mut scratch: Option<&mut [u32]>) -> Result<usize> {
        super::room_for(Some(text.len()), out)?;
        let mut n = 0;
        self.pre.split(text, &mut |word| {
            n += self.encode_word(word, &mut out[n..], scratch.as_deref_mut())?;
            Ok(())
        })?;
        Ok(n)
    }
}
