//! The vocabulary table in the arena: pieces, their offsets and flags, the sorted index.
//!
//! Owns the table's layout in the tokenizer region and its lookups: the pieces (spaces as
//! spaces), one `u32` offset per piece whose two high bits carry the piece's kind
//! ([`Kind`]), an index of ids sorted by piece for binary-search lookups (of a piece, or of
//! the concatenation of two, without building it). It reads the pieces and the token types
//! from storage at load; it must not know how text is split or merged.

use core::cmp::Ordering;

use crate::bytes::as_u32_mut;
use crate::error::{Error, Result};
use crate::gguf::{Cursor, Header};
use crate::storage::Storage;

/// Offset bit of a user-defined piece (type 4): the text is always split at it.
const USER_DEFINED: u32 = 1 << 31;
/// Offset bit of a control or unknown piece (types 3, 2): the text is split at it only when
/// the caller parses special tokens.
const CONTROL: u32 = 1 << 30;
/// The offset without its kind bits (pieces total at most 1 GiB).
const OFFSET: u32 = CONTROL - 1;

/// The token types of `tokenizer.ggml.token_type` this table tells apart.
mod ty {
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
}

/// What a piece is, for splitting text at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An ordinary piece (normal, byte, unused): found only by merging.
    Normal,
    /// User-defined: the text is split at it always.
    UserDefined,
    /// Control or unknown: the text is split at it only when parsing special tokens.
    Control,
}

/// Pieces llama.cpp makes control pieces by their text whatever their type (its end-of-turn,
/// end-of-generation and fill-in-the-middle lists), so they are matched in the text only
/// when parsing special tokens.
const CONTROL_BY_TEXT: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
    "<|eom_id|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "</s>",
    "[EOS]",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "[e~[",
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

/// Pieces llama.cpp makes user-defined by their text (matched in the text always).
const USER_DEFINED_BY_TEXT: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/// How a piece's stored text becomes the bytes the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spelling {
    /// SentencePiece: U+2581 (`▁`) is a space.
    SentencePiece,
    /// Byte-level BPE: ordinary pieces are spelled with GPT-2's byte-to-unicode map, undone
    /// here (special pieces are kept as written, as they match the text verbatim).
    ByteLevel,
}

/// Compares `piece` with the concatenation `a ++ b`, without building it.
pub(crate) fn cmp_concat(piece: &[u8], a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(piece.len());
    match piece[..n].cmp(&a[..n]) {
        Ordering::Equal if piece.len() <= a.len() => piece.len().cmp(&(a.len() + b.len())),
        Ordering::Equal => piece[a.len()..].cmp(b),
        o => o,
    }
}

/// The vocabulary, read into the arena.
pub(crate) struct Vocab<'a> {
    offsets: &'a [u32],
    sorted: &'a [u32],
    pieces: &'a [u8],
    /// Bytes of the longest user-defined piece (0: none).
    pub(crate) longest_user_defined: usize,
    /// Bytes of the longest control or unknown piece (0: none).
    pub(crate) longest_control: usize,
    /// Bit `b` is set when a user-defined, control or unknown piece starts with byte `b`.
    special_first: [u32; 8],
    /// Whether whitespace after a special piece in the text is dropped (llama.cpp's RSTRIP,
    /// which it sets on the special pieces of a model named Phi-3), but for `<unk>`, `<s>`
    /// and `<|endoftext|>`.
    pub(crate) rstrip_specials: bool,
}

impl<'a> Vocab<'a> {
    /// Bytes of the table for `vocab` pieces totalling `string_bytes`: offsets (`vocab + 1`
    /// words), the sorted index (`vocab` words), then the pieces. `None` on overflow.
    pub(crate) fn bytes(vocab: u64, string_bytes: u64) -> Option<u64> {
        vocab.checked_mul(8)?.checked_add(4)?.checked_add(string_bytes)
    }

    /// Reads the pieces named by `tokens` (spelled as `spelling` says) and their types into
    /// the front of `region`; returns the table, the rest of the region and the bytes read.
    pub(crate) fn load<'r, S: Storage>(
        storage: &mut S,
        header: &Header,
        spelling: Spelling,
        region: &'r mut [u8],
    ) -> Result<(Vocab<'r>, &'r mut [u8], u64)> {
        let tokens = header.tokens.ok_or(Error::MissingKey("tokenizer.ggml.tokens"))?;
        let vocab =
            usize::try_from(tokens.count).map_err(|_| Error::Malformed("vocabulary larger than the address space"))?;
        let need = Self::bytes(tokens.count, tokens.string_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::Malformed("vocabulary larger than the address space"))?;
        if region.len() < need {
            return Err(Error::BufferTooSmall { what: "tokenizer region", needed: need, got: region.len() });
        }
        let (table, rest) = region.split_at_mut(need);
        let (offsets, table) = table.split_at_mut(4 * (vocab + 1));
        let (sorted, pieces) = table.split_at_mut(4 * vocab);
        let (offsets, sorted) = (as_u32_mut(offsets), as_u32_mut(sorted));

        // The types first (into `sorted`, free until the sort): spelling depends on them.
        let mut bytes_read = 0;
        sorted.fill(1);
        if let Some(tt) = header.token_types {
            if tt.count as usize != vocab || !(tt.elem_type == 5 || tt.elem_type == 4) {
                return Err(Error::Malformed("tokenizer.ggml.token_type is not an i32 array of vocabulary length"));
            }
            let mut c = Cursor::new(storage, tt.offset);
            for t in sorted.iter_mut() {
                *t = c.u32("token type")?;
            }
            bytes_read += c.bytes_read;
        }
        let mut c = Cursor::new(storage, tokens.offset);
        let mut at = 0usize;
        let mut longest = [0usize; 2];
        let mut special_first = [0u32; 8];
        for (off, &ty) in offsets.iter_mut().zip(sorted.iter()) {
            // The header counted these lengths when it parsed the file, but storage may return
            // other bytes now: every length is bounded again here, without overflow.
            let len = c.u64("token length")?;
            let dst = usize::try_from(len)
                .ok()
                .and_then(|len| at.checked_add(len))
                .and_then(|end| pieces.get_mut(at..end))
                .ok_or(Error::Malformed("token strings longer than declared"))?;
            c.read(dst, "token string")?;
            let by_text = |list: &[&str]| list.iter().any(|t| t.as_bytes() == &dst[..]);
            let (bit, which) = match ty as i32 {
                _ if by_text(USER_DEFINED_BY_TEXT) => (USER_DEFINED, Some(0)),
                _ if by_text(CONTROL_BY_TEXT) => (CONTROL, Some(1)),
                ty::USER_DEFINED => (USER_DEFINED, Some(0)),
                ty::CONTROL | ty::UNKNOWN => (CONTROL, Some(1)),
                _ => (0, None),
            };
            let len = match spelling {
                Spelling::SentencePiece => spell_sentencepiece(dst),
                Spelling::ByteLevel if bit == 0 => super::bytemap::unmap(dst).unwrap_or(dst.len()),
                Spelling::ByteLevel => dst.len(),
            };
            if let (Some(w), Some(&b)) = (which, dst.first()) {
                longest[w] = longest[w].max(len);
                special_first[b as usize / 32] |= 1 << (b % 32);
            }
            *off = offset(at)? | bit;
            at += len;
        }
        offsets[vocab] = offset(at)?;
        bytes_read += c.bytes_read;
        let pieces = &pieces[..at];

        let piece =
            |id: u32| &pieces[(offsets[id as usize] & OFFSET) as usize..(offsets[id as usize + 1] & OFFSET) as usize];
        for (i, s) in sorted.iter_mut().enumerate() {
            *s = i as u32;
        }
        // Equal pieces: ordinary ones first, so merges find them, as llama.cpp finds them by
        // their own spelling (byte-level `ĠĠ` is an ordinary piece, `  ` a user-defined one).
        let special = |id: u32| offsets[id as usize] & (USER_DEFINED | CONTROL) != 0;
        sorted.sort_unstable_by(|&a, &b| piece(a).cmp(piece(b)).then(special(a).cmp(&special(b))).then(a.cmp(&b)));
        let [longest_user_defined, longest_control] = longest;
        // llama.cpp's rule keyed on the lowercased `general.name`.
        let name = header.name.as_bytes();
        let named = |s: &[u8]| name.windows(s.len()).any(|w| w.eq_ignore_ascii_case(s));
        let rstrip_specials = named(b"phi-3") || named(b"phi3");
        let v =
            Vocab { offsets, sorted, pieces, longest_user_defined, longest_control, special_first, rstrip_specials };
        Ok((v, rest, bytes_read))
    }

    /// Whether a user-defined, control or unknown piece starts with byte `b`.
    pub(crate) fn may_start_special(&self, b: u8) -> bool {
        self.special_first[b as usize / 32] & (1 << (b % 32)) != 0
    }

    /// Vocabulary size.
    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The piece of `id`, empty for an id outside the vocabulary.
    pub(crate) fn piece(&self, id: u32) -> &'a [u8] {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) if i < self.sorted.len() => &self.pieces[(a & OFFSET) as usize..(b & OFFSET) as usize],
            _ => &[],
        }
    }

    /// Whether whitespace after special piece `id` in the text is dropped (see
    /// [`Vocab::rstrip_specials`]).
    pub(crate) fn rstrips(&self, id: u32) -> bool {
        self.rstrip_specials && !matches!(self.piece(id), b"<unk>" | b"<s>" | b"<|endoftext|>")
    }

    /// The kind of `id` ([`Kind::Normal`] outside the vocabulary).
    pub(crate) fn kind(&self, id: u32) -> Kind {
        match self.offsets.get(id as usize) {
            Some(o) if o & USER_DEFINED != 0 => Kind::UserDefined,
            Some(o) if o & CONTROL != 0 => Kind::Control,
            _ => Kind::Normal,
        }
    }

    fn find(&self, cmp: impl Fn(&[u8]) -> Ordering) -> Option<u32> {
        let i = self.sorted.partition_point(|&id| cmp(self.piece(id)) == Ordering::Less);
        let id = *self.sorted.get(i)?;
        (cmp(self.piece(id)) == Ordering::Equal).then_some(id)
    }

    /// The id whose piece is exactly `s` (an ordinary piece before a special one, then the
    /// lowest id).
    pub(crate) fn lookup(&self, s: &[u8]) -> Option<u32> {
        self.find(|p| p.cmp(s))
    }

    /// The user-defined, control or unknown piece that is exactly `s` (the lowest id).
    pub(crate) fn lookup_special(&self, s: &[u8]) -> Option<u32> {
        let normal = |id: u32| self.kind(id) == Kind::Normal;
        let i = self.sorted.partition_point(|&id| self.piece(id).cmp(s).then((!normal(id)).cmp(&true)).is_lt());
        let id = *self.sorted.get(i)?;
        (self.piece(id) == s && !normal(id)).then_some(id)
    }

    /// The id whose piece is the concatenation of the pieces of `a` and `b`.
    pub(crate) fn lookup_concat(&self, a: u32, b: u32) -> Option<u32> {
        let (a, b) = (self.piece(a), self.piece(b));
        self.find(|p| cmp_concat(p, a, b))
    }
}

/// `at` as a piece offset, which must leave the kind bits free.
fn offset(at: usize) -> Result<u32> {
    u32::try_from(at).ok().filter(|&a| a <= OFFSET).ok_or(Error::Malformed("token strings longer than 1 GiB"))
}

/// SentencePiece writes spaces as U+2581 (e2 96 81); the table holds real spaces. Rewrites
/// `piece` in place and returns its new length.
fn spell_sentencepiece(piece: &mut [u8]) -> usize {
    let (mut r, mut w) = (0, 0);
    while r < piece.len() {
        if piece[r..].starts_with("\u{2581}".as_bytes()) {
            piece[w] = b' ';
            r += 3;
        } else {
            piece[w] = piece[r];
            r += 1;
        }
        w += 1;
    }
    w
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
    fn sentencepiece_spaces_become_spaces() {
        let mut p = [0u8; 8];
        p[..7].copy_from_slice("\u{2581}a\u{2581}".as_bytes());
        let n = spell_sentencepiece(&mut p[..7]);
        assert_eq!(&p[..n], b" a ");
    }
}
