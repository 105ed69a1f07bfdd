//! The tokenizer: text to ids and ids to text, over the vocabulary in the arena.
//!
//! Owns the tokenizer region of the arena and the public API ([`Tokenizer`]): loading the
//! vocabulary named by the GGUF header, encoding (special pieces split out first, then each
//! run of plain text encoded by the vocabulary's model) and decoding. The parts live in
//! their own files: the table ([`vocab`]), special pieces ([`special`]), SentencePiece
//! ([`spm`]), the shared merge loop ([`merge`], [`heap`]) and decoding ([`decode`]).
//! Encoding follows llama.cpp step for step, so ids match the reference. It reads storage
//! only at load, and must not know of the model's weights.

mod decode;
mod heap;
mod merge;
mod special;
mod spm;
mod vocab;

use crate::bytes::as_f32_mut;
use crate::error::{Error, Result};
use crate::gguf::{Cursor, Header};
use crate::storage::Storage;

pub use decode::printable;
pub use vocab::Kind;

use special::{partition, Part};
use spm::Spm;
use vocab::{Spelling, Vocab};

/// The `u32` words of scratch [`Tokenizer::encode_with`] needs for a text of `text_len` bytes:
/// five per symbol (next and previous links, the merge candidate, a heap slot and the heap
/// position), for at most `text_len + 3` symbols; 20 bytes per text byte (2.4 MB for 120 KB).
pub const fn encode_scratch_words(text_len: usize) -> usize {
    text_len.saturating_add(3).saturating_mul(merge::WORDS_PER_SYMBOL)
}

/// The vocabulary, read into the arena.
pub struct Tokenizer<'a> {
    vocab: Vocab<'a>,
    scores: &'a [f32],
    bos: u32,
    eos: u32,
    space: Option<u32>,
    /// Whether the text has a dummy-prefix space (`add_space_prefix`), which decoding drops
    /// from the first piece after BOS.
    prefix_space: bool,
}

/// `out` holds `needed` ids (`None`: the count overflowed).
pub(crate) fn room_for(needed: Option<usize>, out: &[u32]) -> Result<()> {
    match needed {
        Some(needed) if out.len() >= needed => Ok(()),
        needed => Err(Error::BufferTooSmall { what: "token", needed: needed.unwrap_or(usize::MAX), got: out.len() }),
    }
}

impl<'a> Tokenizer<'a> {
    /// Reads the vocabulary named by `header` into `region`; returns it and the bytes read.
    pub fn load<S: Storage>(storage: &mut S, header: &Header, region: &'a mut [u8]) -> Result<(Self, u64)> {
        let tokens = header.tokens.ok_or(Error::MissingKey("tokenizer.ggml.tokens"))?;
        let need = Self::region_bytes(tokens.count, tokens.string_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::Malformed("vocabulary larger than the address space"))?;
        if region.len() < need {
            return Err(Error::BufferTooSmall { what: "tokenizer region", needed: need, got: region.len() });
        }
        let vocab_len = tokens.count as usize;
        let (scores, rest) = region.split_at_mut(4 * vocab_len);
        let scores = as_f32_mut(scores);
        let mut bytes_read = 0;
        match header.scores {
            Some(s) if s.count as usize == vocab_len && s.elem_type == 6 => {
                let mut c = Cursor::new(storage, s.offset);
                for sc in scores.iter_mut() {
                    *sc = c.f32("token score")?;
                    // Merges compare scores: a NaN would make the best merge depend on where it
                    // stands, and no ordering (heap or scan) could agree on it.
                    if sc.is_nan() {
                        return Err(Error::Malformed("tokenizer.ggml.scores holds a NaN"));
                    }
                }
                bytes_read += c.bytes_read;
            }
            Some(_) => return Err(Error::Malformed("tokenizer.ggml.scores is not an f32 array of vocabulary length")),
            None => scores.fill(0.0),
        }
        let (vocab, _, read) = Vocab::load(storage, header, Spelling::SentencePiece, rest)?;
        bytes_read += read;
        let prefix_space = header.add_space_prefix.unwrap_or(true);
        let space = if prefix_space { vocab.lookup(b" ") } else { None };
        let t = Tokenizer {
            vocab,
            scores,
            bos: header.bos.unwrap_or(1),
            eos: header.eos.unwrap_or(2),
            space,
            prefix_space,
        };
        Ok((t, bytes_read))
    }

    /// Bytes of the tokenizer region for a vocabulary whose pieces total `string_bytes`.
    /// `None` when the sum overflows.
    pub fn region_bytes(vocab: u64, string_bytes: u64) -> Option<u64> {
        // scores f32, then the table (offsets, sorted ids, pieces).
        vocab.checked_mul(4)?.checked_add(Vocab::bytes(vocab, string_bytes)?)
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> u32 {
        self.vocab.len() as u32
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
        self.vocab.piece(id)
    }

    /// The kind of `id`: whether the text is split at it.
    pub fn kind(&self, id: u32) -> Kind {
        self.vocab.kind(id)
    }

    /// The id whose piece is exactly `s`.
    pub fn lookup(&self, s: &[u8]) -> Option<u32> {
        self.vocab.lookup(s)
    }

    /// The score of `id` (0 for an id outside the vocabulary).
    pub fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// Encodes `text` as llama.cpp does; `out` needs `text.len() + 3` entries.
    ///
    /// The small-prompt API: it needs no scratch, but each merge rescans the text, O(n²) in all
    /// (a 16 KB prompt takes tens of seconds). Every caller in this repository uses
    /// [`Tokenizer::encode_with`] (same ids, O(n log n)); this one stays as the reference the
    /// tests compare it with, and for a few-word prompt where no scratch can be spared.
    pub fn encode(&self, text: &[u8], bos: bool, out: &mut [u32]) -> Result<usize> {
        room_for(text.len().checked_add(3), out)?;
        self.encode_parts(text, bos, out, None)
    }

    /// Encodes `text` to the same ids as [`Tokenizer::encode`] in O(n log n): `out` needs
    /// `text.len() + 3` entries and `scratch` [`encode_scratch_words`]`(text.len())` words.
    pub fn encode_with(&self, text: &[u8], bos: bool, out: &mut [u32], scratch: &mut [u32]) -> Result<usize> {
        let needed = encode_scratch_words(text.len());
        if scratch.len() < needed || needed == usize::MAX || text.len() >= heap::NONE as usize - 3 {
            return Err(Error::BufferTooSmall { what: "encode scratch (u32 words)", needed, got: scratch.len() });
        }
        room_for(text.len().checked_add(3), out)?;
        self.encode_parts(text, bos, out, Some(scratch))
    }

    /// BOS, then the text split at its special pieces (each one id), the runs between encoded
    /// with the dummy-prefix space before the first and after each special piece.
    fn encode_parts(&self, text: &[u8], bos: bool, out: &mut [u32], mut scratch: Option<&mut [u32]>) -> Result<usize> {
        let mut n = 0;
        if bos {
            out[n] = self.bos;
            n += 1;
        }
        let spm = Spm { vocab: &self.vocab, scores: self.scores };
        partition(&self.vocab, text, false, |part| {
            match part {
                Part::Text(t) => n += spm.encode_run(t, self.space, &mut out[n..], scratch.as_deref_mut())?,
                Part::Special(id) => {
                    out[n] = id;
                    n += 1;
                }
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// The bytes `token` prints after `prev`: the leading space of a piece after BOS is
    /// dropped when the encoder added it (`add_space_prefix`), and `<0xXX>` becomes the raw byte.
    pub fn decode(&self, prev: u32, token: u32) -> &[u8] {
        decode::decode_piece(self.piece(token), prev == self.bos, self.prefix_space)
    }
}
