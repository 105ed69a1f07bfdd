//! SentencePiece-style BPE over the GGUF vocabulary, with `<0xXX>` byte fallback.
//!
//! Owns the tokenizer region of the arena: the pieces (with `▁` turned back into spaces),
//! their offsets, their scores and an index sorted by piece for lookups. Encoding follows
//! llama2.c's `encode` step for step (dummy-prefix space, UTF-8 code points, byte fallback,
//! greedy merges by best score, the leftmost pair on a tie), so ids match the reference.
//! [`Tokenizer::encode_with`] finds each best merge in a heap over a linked list of symbols
//! (O(n log n), as SentencePiece does) in scratch the caller lends ([`encode_scratch_words`]);
//! [`Tokenizer::encode`] needs none and rescans the text per merge (O(n²): short texts only).
//! It reads storage only at load.

use core::cmp::Ordering;

use crate::bytes::{as_f32_mut, as_u32_mut};
use crate::error::{Error, Result};
use crate::gguf::{Cursor, Header};
use crate::storage::Storage;

/// `<0xXX>` decodes to these single bytes.
static BYTES: [u8; 256] = {
    let mut b = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        b[i] = i as u8;
        i += 1;
    }
    b
};

/// No symbol (end of the list, empty heap slot).
const NONE: u32 = u32::MAX;

/// The bit of a piece's offset that marks a user-defined piece (SentencePiece type 4): the
/// encoder splits the text at such pieces before merging, as llama.cpp does.
const USER_DEFINED: u32 = 1 << 31;

/// SentencePiece's type of a user-defined piece in `tokenizer.ggml.token_type`.
const TYPE_USER_DEFINED: i32 = 4;

/// The `u32` words of scratch [`Tokenizer::encode_with`] needs for a text of `text_len` bytes:
/// five per symbol (next and previous links, the merge candidate, a heap slot and the heap
/// position), for at most `text_len + 3` symbols; 20 bytes per text byte (2.4 MB for 120 KB).
pub const fn encode_scratch_words(text_len: usize) -> usize {
    text_len.saturating_add(3).saturating_mul(5)
}

/// The vocabulary, read into the arena.
pub struct Tokenizer<'a> {
    offsets: &'a [u32],
    scores: &'a [f32],
    sorted: &'a [u32],
    pieces: &'a [u8],
    bos: u32,
    eos: u32,
    space: Option<u32>,
    /// Bytes of the longest user-defined piece (0: none; the text is never split).
    longest_user_defined: usize,
    /// Whether the text has a dummy-prefix space (`add_space_prefix`), which decoding drops
    /// from the first piece after BOS.
    prefix_space: bool,
}

fn parse_byte_token(p: &[u8]) -> Option<u8> {
    let hex = p.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    if hex.len() != 2 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(hex[0])? * 16 + digit(hex[1])?) as u8)
}

/// Compares `piece` with the concatenation `a ++ b`, without building it.
fn cmp_concat(piece: &[u8], a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(piece.len());
    match piece[..n].cmp(&a[..n]) {
        Ordering::Equal if piece.len() <= a.len() => piece.len().cmp(&(a.len() + b.len())),
        Ordering::Equal => piece[a.len()..].cmp(b),
        o => o,
    }
}

/// The value of `printf("%s")` for a piece after llama2.c's `safe_printf`: a lone byte that is
/// neither printable nor white space prints nothing.
pub fn printable(piece: &[u8]) -> &[u8] {
    match piece {
        [b] if !(b.is_ascii_graphic() || *b == b' ' || matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r')) => &[],
        _ => piece,
    }
}

impl<'a> Tokenizer<'a> {
    /// Reads the vocabulary named by `header` into `region`; returns it and the bytes read.
    pub fn load<S: Storage>(storage: &mut S, header: &Header, region: &'a mut [u8]) -> Result<(Self, u64)> {
        let tokens = header.tokens.ok_or(Error::MissingKey("tokenizer.ggml.tokens"))?;
        let vocab = tokens.count as usize;
        let need = Self::region_bytes(tokens.count, tokens.string_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::Malformed("vocabulary larger than the address space"))?;
        if region.len() < need {
            return Err(Error::BufferTooSmall { what: "tokenizer region", needed: need, got: region.len() });
        }
        let (offsets, rest) = region.split_at_mut(4 * (vocab + 1));
        let (scores, rest) = rest.split_at_mut(4 * vocab);
        let (sorted, pieces) = rest.split_at_mut(4 * vocab);
        let (offsets, scores, sorted) = (as_u32_mut(offsets), as_f32_mut(scores), as_u32_mut(sorted));

        let mut c = Cursor::new(storage, tokens.offset);
        let mut at = 0usize;
        for off in offsets.iter_mut().take(vocab) {
            *off = u32::try_from(at)
                .ok()
                .filter(|&a| a < USER_DEFINED)
                .ok_or(Error::Malformed("token strings longer than 2 GiB"))?;
            // The header counted these lengths when it parsed the file, but storage may return
            // other bytes now: every length is bounded again here, without overflow.
            let len = c.u64("token length")?;
            let dst = usize::try_from(len)
                .ok()
                .and_then(|len| at.checked_add(len))
                .and_then(|end| pieces.get_mut(at..end))
                .ok_or(Error::Malformed("token strings longer than declared"))?;
            let len = dst.len();
            c.read(dst, "token string")?;
            // SentencePiece writes spaces as U+2581 (e2 96 81); the pieces hold real spaces.
            let (mut r, mut w) = (0, 0);
            while r < len {
                if dst[r..].starts_with("\u{2581}".as_bytes()) {
                    dst[w] = b' ';
                    r += 3;
                } else {
                    dst[w] = dst[r];
                    r += 1;
                }
                w += 1;
            }
            at += w;
        }
        offsets[vocab] = u32::try_from(at)
            .ok()
            .filter(|&a| a < USER_DEFINED)
            .ok_or(Error::Malformed("token strings longer than 2 GiB"))?;
        let mut bytes_read = c.bytes_read;

        match header.scores {
            Some(s) if s.count as usize == vocab && s.elem_type == 6 => {
                let mut c = Cursor::new(storage, s.offset);
                for sc in scores.iter_mut() {
                    *sc = c.f32("token score")?;
                    // Merges compare scores with `>`: a NaN would make the best merge depend on
                    // where it stands, and no ordering (heap or scan) could agree on it.
                    if sc.is_nan() {
                        return Err(Error::Malformed("tokenizer.ggml.scores holds a NaN"));
                    }
                }
                bytes_read += c.bytes_read;
            }
            Some(_) => return Err(Error::Malformed("tokenizer.ggml.scores is not an f32 array of vocabulary length")),
            None => scores.fill(0.0),
        }

        let pieces = &pieces[..at];
        let piece = |id: u32| &pieces[offsets[id as usize] as usize..offsets[id as usize + 1] as usize];
        for (i, s) in sorted.iter_mut().enumerate() {
            *s = i as u32;
        }
        sorted.sort_unstable_by(|&a, &b| piece(a).cmp(piece(b)).then(a.cmp(&b)));

        // User-defined pieces: their offsets are marked (after the sort, which reads them).
        let mut longest_user_defined = 0;
        match header.token_types {
            Some(tt) if tt.count as usize == vocab && (tt.elem_type == 5 || tt.elem_type == 4) => {
                let mut c = Cursor::new(storage, tt.offset);
                for i in 0..vocab {
                    let ty = c.u32("token type")? as i32;
                    if ty == TYPE_USER_DEFINED {
                        let len = (offsets[i + 1] - offsets[i]) as usize;
                        longest_user_defined = longest_user_defined.max(len);
                        offsets[i] |= USER_DEFINED;
                    }
                }
                bytes_read += c.bytes_read;
            }
            Some(_) => {
                return Err(Error::Malformed("tokenizer.ggml.token_type is not an i32 array of vocabulary length"))
            }
            None => {}
        }

        let mut t = Tokenizer {
            offsets,
            scores,
            sorted,
            pieces,
            bos: header.bos.unwrap_or(1),
            eos: header.eos.unwrap_or(2),
            space: None,
            longest_user_defined,
            prefix_space: header.add_space_prefix.unwrap_or(true),
        };
        t.space = if t.prefix_space { t.lookup(b" ") } else { None };
        Ok((t, bytes_read))
    }

    /// Bytes of the tokenizer region for a vocabulary whose pieces total `string_bytes`.
    /// `None` when the sum overflows.
    pub fn region_bytes(vocab: u64, string_bytes: u64) -> Option<u64> {
        // offsets (vocab + 1) u32, scores f32, sorted ids u32, then the pieces.
        vocab.checked_mul(12)?.checked_add(4)?.checked_add(string_bytes)
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> u32 {
        self.scores.len() as u32
    }

    /// The beginning-of-sequence id.
    pub fn bos(&self) -> u32 {
        self.bos
    }

    /// The end-of-sequence id.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// The piece of `id` (spaces as spaces), empty for an id outside the vocabulary.
    pub fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) if i < self.scores.len() => {
                &self.pieces[(a & !USER_DEFINED) as usize..(b & !USER_DEFINED) as usize]
            }
            _ => &[],
        }
    }

    fn find(&self, cmp: impl Fn(&[u8]) -> Ordering) -> Option<u32> {
        let i = self.sorted.partition_point(|&id| cmp(self.piece(id)) == Ordering::Less);
        let id = *self.sorted.get(i)?;
        (cmp(self.piece(id)) == Ordering::Equal).then_some(id)
    }

    /// The id whose piece is exactly `s`.
    pub fn lookup(&self, s: &[u8]) -> Option<u32> {
        self.find(|p| p.cmp(s))
    }

    /// The score of `id` (0 for an id outside the vocabulary).
    pub fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// The id of the merge of the pieces `a` and `b`, if the vocabulary has it.
    fn merge_of(&self, a: u32, b: u32) -> Option<u32> {
        let (a, b) = (self.piece(a), self.piece(b));
        self.find(|p| cmp_concat(p, a, b))
    }

    /// Writes BOS, the dummy-prefix space and one id per code point (or per byte, for code
    /// points outside the vocabulary) to `out`; returns how many. `out` holds `text.len() + 3`.
    fn symbols(&self, text: &[u8], bos: bool, space: Option<u32>, out: &mut [u32]) -> Result<usize> {
        Self::room_for(text.len().checked_add(bos as usize + space.is_some() as usize), out)?;
        let mut n = 0;
        if bos {
            out[n] = self.bos;
            n += 1;
        }
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
            match self.lookup(&cp[..len]) {
                Some(id) => {
                    out[n] = id;
                    n += 1;
                }
                None => {
                    for &b in &cp[..len] {
                        let mut name = *b"<0x00>";
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        name[3] = HEX[(b >> 4) as usize];
                        name[4] = HEX[(b & 15) as usize];
                        out[n] = self.lookup(&name).unwrap_or(b as u32 + 3);
                        n += 1;
                    }
                }
            }
            len = 0;
        }
        Ok(n)
    }

    /// Encodes `text` as llama2.c does; `out` needs `text.len() + 3` entries.
    ///
    /// The small-prompt API: it needs no scratch, but each merge rescans the text, O(n²) in all
    /// (a 16 KB prompt takes tens of seconds). Every caller in this repository uses
    /// [`Tokenizer::encode_with`] (same ids, O(n log n)); this one stays as the reference the
    /// tests compare it with, and for a few-word prompt where no scratch can be spared.
    pub fn encode(&self, text: &[u8], bos: bool, out: &mut [u32]) -> Result<usize> {
        Self::room(text, out)?;
        self.partitioned(text, bos, out, |t, space, out| self.encode_fragment(t, space, out))
    }

    /// `out` holds `text.len() + 3` ids.
    fn room(text: &[u8], out: &[u32]) -> Result<()> {
        Self::room_for(text.len().checked_add(3), out)
    }

    /// `out` holds `needed` ids (`None`: the count overflowed).
    fn room_for(needed: Option<usize>, out: &[u32]) -> Result<()> {
        match needed {
            Some(needed) if out.len() >= needed => Ok(()),
            needed => {
                Err(Error::BufferTooSmall { what: "token", needed: needed.unwrap_or(usize::MAX), got: out.len() })
            }
        }
    }

    /// The user-defined piece that starts `text`, the longest one: its id and length.
    fn user_defined_at(&self, text: &[u8]) -> Option<(u32, usize)> {
        (1..=self.longest_user_defined.min(text.len())).rev().find_map(|len| {
            let id = self.lookup(&text[..len])?;
            (self.offsets[id as usize] & USER_DEFINED != 0).then_some((id, len))
        })
    }

    /// BOS, then the text split at its user-defined pieces (each one id, as llama.cpp's
    /// special-token partition), the pieces between encoded by `fragment(text, space, out)`
    /// with the dummy-prefix space before the first and after each user-defined piece.
    fn partitioned(
        &self,
        text: &[u8],
        bos: bool,
        out: &mut [u32],
        mut fragment: impl FnMut(&[u8], Option<u32>, &mut [u32]) -> Result<usize>,
    ) -> Result<usize> {
        let mut n = 0;
        if bos {
            out[n] = self.bos;
            n += 1;
        }
        let (mut start, mut i) = (0, 0);
        while i < text.len() {
            let Some((id, len)) = self.user_defined_at(&text[i..]) else {
                i += 1;
                continue;
            };
            if i > start {
                n += fragment(&text[start..i], self.space, &mut out[n..])?;
            }
            out[n] = id;
            n += 1;
            i += len;
            start = i;
        }
        if start < text.len() || text.is_empty() {
            n += fragment(&text[start..], self.space, &mut out[n..])?;
        }
        Ok(n)
    }

    /// Encodes one fragment without user-defined pieces (llama2.c's merge loop).
    fn encode_fragment(&self, text: &[u8], space: Option<u32>, out: &mut [u32]) -> Result<usize> {
        let mut n = self.symbols(text, false, space, out)?;
        // Merge the best-scoring adjacent pair until none is in the vocabulary.
        loop {
            let mut best: Option<(f32, u32, usize)> = None;
            for i in 0..n.saturating_sub(1) {
                if let Some(id) = self.merge_of(out[i], out[i + 1]) {
                    let score = self.scores[id as usize];
                    if best.is_none_or(|(s, _, _)| score > s) {
                        best = Some((score, id, i));
                    }
                }
            }
            let Some((_, id, i)) = best else { break };
            out[i] = id;
            out.copy_within(i + 2..n, i + 1);
            n -= 1;
        }
        Ok(n)
    }

    /// Encodes `text` to the same ids as [`Tokenizer::encode`] in O(n log n): `out` needs
    /// `text.len() + 3` entries and `scratch` [`encode_scratch_words`]`(text.len())` words.
    ///
    /// The symbols form a linked list over `out` (a merge keeps the left symbol's slot and
    /// unlinks the right one), and each symbol that has a mergeable right neighbour sits in a
    /// binary heap ordered by the merge's score, then by slot: the top is the best pair and,
    /// among equal scores, the leftmost one, exactly the pair the rescan would pick. A merge
    /// changes only the candidates of the merged symbol and of its left neighbour.
    pub fn encode_with(&self, text: &[u8], bos: bool, out: &mut [u32], scratch: &mut [u32]) -> Result<usize> {
        let needed = encode_scratch_words(text.len());
        if scratch.len() < needed || needed == usize::MAX || text.len() >= NONE as usize - 3 {
            return Err(Error::BufferTooSmall { what: "encode scratch (u32 words)", needed, got: scratch.len() });
        }
        Self::room(text, out)?;
        self.partitioned(text, bos, out, |t, space, out| self.encode_fragment_with(t, space, out, scratch))
    }

    /// One fragment of [`Tokenizer::encode_with`] (no user-defined pieces in it).
    fn encode_fragment_with(
        &self,
        text: &[u8],
        space: Option<u32>,
        out: &mut [u32],
        scratch: &mut [u32],
    ) -> Result<usize> {
        let needed = encode_scratch_words(text.len());
        let n = self.symbols(text, false, space, out)?;
        let m = text.len() + 3;
        let (next, rest) = scratch[..needed].split_at_mut(m);
        let (prev, rest) = rest.split_at_mut(m);
        let (cand, rest) = rest.split_at_mut(m);
        let (slots, pos) = rest.split_at_mut(m);
        let mut heap = Heap { slots, pos, len: 0 };
        for i in 0..n {
            next[i] = if i + 1 < n { (i + 1) as u32 } else { NONE };
            prev[i] = if i > 0 { (i - 1) as u32 } else { NONE };
            heap.pos[i] = NONE;
        }
        let score = |c: &[u32], i: u32| self.scores[c[i as usize] as usize];
        for i in 0..n.saturating_sub(1) {
            if let Some(id) = self.merge_of(out[i], out[i + 1]) {
                cand[i] = id;
                heap.push(i as u32, |a, b| better(score(cand, a), a, score(cand, b), b));
            }
        }
        while let Some(i) = heap.top() {
            let i = i as usize;
            let j = next[i] as usize;
            heap.remove(i as u32, |a, b| better(score(cand, a), a, score(cand, b), b));
            heap.remove(j as u32, |a, b| better(score(cand, a), a, score(cand, b), b));
            out[i] = cand[i];
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
                heap.remove(left, |a, b| better(score(cand, a), a, score(cand, b), b));
                if next[l] != NONE {
                    if let Some(id) = self.merge_of(out[l], out[next[l] as usize]) {
                        cand[l] = id;
                        heap.push(left, |a, b| better(score(cand, a), a, score(cand, b), b));
                    }
                }
            }
        }
        // Compact the surviving symbols to the front, in order.
        let (mut w, mut r) = (0, if n > 0 { 0 } else { NONE });
        while r != NONE {
            out[w] = out[r as usize];
            w += 1;
            r = next[r as usize];
        }
        Ok(w)
    }

    /// The bytes `token` prints after `prev`: the leading space of a piece after BOS is
    /// dropped when the encoder added it (`add_space_prefix`), and `<0xXX>` becomes the raw byte.
    pub fn decode(&self, prev: u32, token: u32) -> &[u8] {
        let mut p = self.piece(token);
        if prev == self.bos && self.prefix_space && p.first() == Some(&b' ') {
            p = &p[1..];
        }
        match parse_byte_token(p) {
            Some(b) => &BYTES[b as usize..b as usize + 1],
            None => p,
        }
    }
}

/// Whether the merge at slot `a` (score `sa`) goes before the one at slot `b`: the higher
/// score, then the leftmost slot (slots keep text order). Scores are never NaN (see `load`).
fn better(sa: f32, a: u32, sb: f32, b: u32) -> bool {
    sa > sb || (sa == sb && a < b)
}

/// A binary heap of symbol slots in caller-lent memory, with each slot's heap position so a
/// slot can be removed from the middle. `before(a, b)` orders it (the best on top).
struct Heap<'s> {
    slots: &'s mut [u32],
    /// `pos[slot]`: where `slot` is in `slots`, or [`NONE`].
    pos: &'s mut [u32],
    len: usize,
}

impl Heap<'_> {
    fn top(&self) -> Option<u32> {
        (self.len > 0).then(|| self.slots[0])
    }

    fn set(&mut self, at: usize, slot: u32) {
        self.slots[at] = slot;
        self.pos[slot as usize] = at as u32;
    }

    fn push(&mut self, slot: u32, before: impl Fn(u32, u32) -> bool) {
        let at = self.len;
        self.len += 1;
        self.set(at, slot);
        self.up(at, &before);
    }

    /// Removes `slot` if it is in the heap.
    fn remove(&mut self, slot: u32, before: impl Fn(u32, u32) -> bool) {
        let at = self.pos[slot as usize];
        if at == NONE {
            return;
        }
        let at = at as usize;
        self.pos[slot as usize] = NONE;
        self.len -= 1;
        if at == self.len {
            return;
        }
        let last = self.slots[self.len];
        self.set(at, last);
        let at = self.up(at, &before);
        self.down(at, &before);
    }

    fn up(&mut self, mut at: usize, before: &impl Fn(u32, u32) -> bool) -> usize {
        let slot = self.slots[at];
        while at > 0 {
            let parent = (at - 1) / 2;
            if !before(slot, self.slots[parent]) {
                break;
            }
            let p = self.slots[parent];
            self.set(at, p);
            at = parent;
        }
        self.set(at, slot);
        at
    }

    fn down(&mut self, mut at: usize, before: &impl Fn(u32, u32) -> bool) {
        let slot = self.slots[at];
        loop {
            let l = 2 * at + 1;
            if l >= self.len {
                break;
            }
            let r = l + 1;
            let child = if r < self.len && before(self.slots[r], self.slots[l]) { r } else { l };
            if !before(self.slots[child], slot) {
                break;
            }
            let c = self.slots[child];
            self.set(at, c);
            at = child;
        }
        self.set(at, slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_comparison_agrees_with_building_the_string() {
        let cases: [(&[u8], &[u8], &[u8]); 6] = [
            (b"ab", b"a", b"b"),
            (b"a", b"a", b"b"),
            (b"abc", b"a", b"b"),
            (b"b", b"a", b"b"),
            (b"", b"a", b""),
            (b"aa", b"a", b""),
        ];
        for (p, a, b) in cases {
            let mut joined = heapless::Vec::<u8, 8>::new();
            joined.extend_from_slice(a).unwrap();
            joined.extend_from_slice(b).unwrap();
            assert_eq!(cmp_concat(p, a, b), p.cmp(&joined[..]), "{p:?} vs {a:?}+{b:?}");
        }
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token(b"<0x0A>"), Some(10));
        assert_eq!(parse_byte_token(b"<0xff>"), Some(255));
        assert_eq!(parse_byte_token(b"<0x0>"), None);
        assert_eq!(printable(&[0xC3]), b"");
        assert_eq!(printable(b"\n"), b"\n");
    }
}
