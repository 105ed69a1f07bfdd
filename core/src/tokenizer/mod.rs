//! The tokenizer: text to ids and ids to text, over the vocabulary in the arena.
//!
//! Owns the tokenizer region of the arena and the public API ([`Tokenizer`]): loading the
//! vocabulary the GGUF header names (`tokenizer.ggml.model`: `llama` is SentencePiece, `gpt2`
//! byte-level BPE), encoding (special pieces split out first, then each run of plain text
//! encoded by the vocabulary's model) and decoding. The parts live in their own files: the
//! table ([`vocab`]), special pieces ([`special`]), SentencePiece ([`spm`]), BPE ([`bpe`]) and
//! its pre-tokenizers ([`pretok`], [`unicode`]) and byte map ([`bytemap`]), the shared merge loop ([`merge`], [`heap`])
//! and decoding ([`decode`]). Encoding follows llama.cpp step for step, so ids match it.
//!
//! The whole vocabulary lives in the arena, planned inside the budget and shown in the plan
//! (as Gemma 3's 262,144 pieces do): for a BPE vocabulary that is the pieces as raw bytes,
//! their offsets and sorted index (8 bytes a piece) and 8 bytes a merge (Llama 3: 128,256
//! pieces and 280,147 merges, about 4.1 MB). It reads storage only at load, and must not
//! know of the model's weights.

mod bpe;
mod bytemap;
mod decode;
mod heap;
mod merge;
mod pretok;
mod special;
mod spm;
mod unicode;
mod unicode_table;
mod vocab;

use crate::bytes::{as_f32_mut, as_u64_mut};
use crate::error::{Error, Result};
use crate::gguf::{Cursor, Header};
use crate::storage::Storage;

pub use decode::printable;
pub use pretok::{PreTokenizer, SUPPORTED_PRE};
pub use vocab::Kind;

use bpe::Bpe;
use special::{partition, Part};
use spm::Spm;
use vocab::{Spelling, Vocab};

/// The `tokenizer.ggml.model` names this build encodes.
pub const SUPPORTED_MODELS: &[&str] = &["llama (SentencePiece)", "gpt2 (byte-level BPE)"];

/// The tokenizer model a GGUF header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `llama`: SentencePiece.
    SentencePiece,
    /// `gpt2`: byte-level BPE with this pre-tokenizer.
    Bpe(PreTokenizer),
}

impl ModelKind {
    /// The model of `header` (`tokenizer.ggml.model`; absent means `llama`, as llama2.c's
    /// converted files have no key), or an error naming it and the supported ones.
    pub fn of(header: &Header) -> Result<Self> {
        match header.tokenizer_model.as_bytes() {
            b"" | b"llama" => Ok(ModelKind::SentencePiece),
            b"gpt2" => Ok(ModelKind::Bpe(PreTokenizer::from_name(header.tokenizer_pre)?)),
            _ => Err(Error::UnsupportedTokenizer {
                key: "tokenizer.ggml.model",
                name: header.tokenizer_model,
                supported: SUPPORTED_MODELS,
            }),
        }
    }
}

/// How [`Tokenizer::encode_opts`] treats special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    /// Add BOS and EOS as the vocabulary says (`add_bos_token`, `add_eos_token`).
    pub add_special: bool,
    /// Match control pieces (`<|begin_of_text|>`, `<start_of_turn>`...) in the text; without
    /// it only user-defined pieces are, as llama.cpp's `parse_special`.
    pub parse_special: bool,
}

/// What encodes a run of plain text.
enum Model<'a> {
    SentencePiece {
        scores: &'a [f32],
        /// The dummy-prefix space, when `add_space_prefix`.
        space: Option<u32>,
    },
    Bpe {
        merges: &'a [u64],
        pre: PreTokenizer,
    },
}

/// The `u32` words of scratch [`Tokenizer::encode_with`] needs for a text of `text_len` bytes:
/// five per symbol (next and previous links, the merge candidate, a heap slot and the heap
/// position), for at most `text_len + 3` symbols; 20 bytes per text byte (2.4 MB for 120 KB).
pub const fn encode_scratch_words(text_len: usize) -> usize {
    text_len.saturating_add(3).saturating_mul(merge::WORDS_PER_SYMBOL)
}

/// The vocabulary, read into the arena.
pub struct Tokenizer<'a> {
    vocab: Vocab<'a>,
    model: Model<'a>,
    bos: u32,
    eos: u32,
    add_bos: bool,
    add_eos: bool,
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
    /// `region` holds [`Tokenizer::region_bytes_for`] bytes.
    pub fn load<S: Storage>(storage: &mut S, header: &Header, region: &'a mut [u8]) -> Result<(Self, u64)> {
        let kind = ModelKind::of(header)?;
        let need = Self::region_bytes_for(header)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::Malformed("vocabulary larger than the address space"))?;
        if region.len() < need {
            return Err(Error::BufferTooSmall { what: "tokenizer region", needed: need, got: region.len() });
        }
        match kind {
            ModelKind::SentencePiece => Self::load_spm(storage, header, region),
            ModelKind::Bpe(pre) => Self::load_bpe(storage, header, pre, region),
        }
    }

    fn load_spm<S: Storage>(storage: &mut S, header: &Header, region: &'a mut [u8]) -> Result<(Self, u64)> {
        let vocab_len = header.tokens.map_or(0, |t| t.count as usize);
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
            model: Model::SentencePiece { scores, space },
            bos: header.bos.unwrap_or(1),
            eos: header.eos.unwrap_or(2),
            add_bos: header.add_bos.unwrap_or(true),
            add_eos: header.add_eos.unwrap_or(false),
            prefix_space,
        };
        Ok((t, bytes_read))
    }

    fn load_bpe<S: Storage>(
        storage: &mut S,
        header: &Header,
        pre: PreTokenizer,
        region: &'a mut [u8],
    ) -> Result<(Self, u64)> {
        let merges = header.merges.ok_or(Error::MissingKey("tokenizer.ggml.merges"))?;
        let table_bytes = bpe::merge_table_bytes(merges.count)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::Malformed("tokenizer.ggml.merges larger than the address space"))?;
        let (table, rest) = region.split_at_mut(table_bytes);
        let table = as_u64_mut(table);
        let table = table.get_mut(..merges.count as usize).ok_or(Error::Malformed("merge table misaligned"))?;
        let (vocab, buf, mut bytes_read) = Vocab::load(storage, header, Spelling::ByteLevel, rest)?;
        let (kept, read) = bpe::load_merges(storage, merges, &vocab, table, buf)?;
        bytes_read += read;
        let t = Tokenizer {
            vocab,
            model: Model::Bpe { merges: &table[..kept], pre },
            bos: header.bos.unwrap_or(11),
            eos: header.eos.unwrap_or(11),
            // llama.cpp: Llama 3's pre-tokenizer adds BOS unless the file says otherwise.
            add_bos: header.add_bos.unwrap_or(pre == PreTokenizer::Llama3),
            add_eos: header.add_eos.unwrap_or(false),
            prefix_space: false,
        };
        Ok((t, bytes_read))
    }

    /// Bytes of the tokenizer region for the vocabulary `header` names (SentencePiece: scores
    /// and the table; BPE: the merge table, the table and a buffer for reading one merge).
    /// `None` when a sum overflows.
    pub fn region_bytes_for(header: &Header) -> Option<u64> {
        let (count, strings) = header.tokens.map_or((0, 0), |t| (t.count, t.string_bytes));
        match ModelKind::of(header) {
            Ok(ModelKind::Bpe(_)) => {
                let longest = header.tokens.map_or(0, |t| t.max_string);
                bpe::merge_table_bytes(header.merges.map_or(0, |m| m.count))?
                    .checked_add(Vocab::bytes(count, strings)?)?
                    .checked_add(bpe::merge_buffer_bytes(longest)?)
            }
            _ => Self::region_bytes(count, strings),
        }
    }

    /// Bytes of the tokenizer region for a SentencePiece vocabulary whose pieces total
    /// `string_bytes`. `None` when the sum overflows.
    pub fn region_bytes(vocab: u64, string_bytes: u64) -> Option<u64> {
        // scores f32, then the table (offsets, sorted ids, pieces).
        vocab.checked_mul(4)?.checked_add(Vocab::bytes(vocab, string_bytes)?)
    }

    /// The tokenizer model (SentencePiece, or BPE and its pre-tokenizer).
    pub fn model(&self) -> ModelKind {
        match self.model {
            Model::SentencePiece { .. } => ModelKind::SentencePiece,
            Model::Bpe { pre, .. } => ModelKind::Bpe(pre),
        }
    }

    /// Whether encoding with `add_special` adds BOS (`add_bos_token`).
    pub fn adds_bos(&self) -> bool {
        self.add_bos
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
        match self.model {
            Model::SentencePiece { scores, .. } => scores.get(id as usize).copied().unwrap_or(0.0),
            Model::Bpe { .. } => 0.0,
        }
    }

    /// Encodes `text` as llama.cpp does; `out` needs `text.len() + 3` entries.
    ///
    /// The small-prompt API: it needs no scratch, but each merge rescans the text, O(n²) in all
    /// (a 16 KB prompt takes tens of seconds). Every caller in this repository uses
    /// [`Tokenizer::encode_with`] (same ids, O(n log n)); this one stays as the reference the
    /// tests compare it with, and for a few-word prompt where no scratch can be spared.
    pub fn encode(&self, text: &[u8], bos: bool, out: &mut [u32]) -> Result<usize> {
        room_for(text.len().checked_add(3), out)?;
        self.encode_parts(text, EncodeOptions { add_special: bos, parse_special: false }, out, None)
    }

    /// Encodes `text` to the same ids as [`Tokenizer::encode`] in O(n log n): `out` needs
    /// `text.len() + 3` entries and `scratch` [`encode_scratch_words`]`(text.len())` words.
    pub fn encode_with(&self, text: &[u8], bos: bool, out: &mut [u32], scratch: &mut [u32]) -> Result<usize> {
        self.encode_opts(text, EncodeOptions { add_special: bos, parse_special: false }, out, scratch)
    }

    /// As [`Tokenizer::encode_with`], with special tokens treated as `opts` says.
    pub fn encode_opts(&self, text: &[u8], opts: EncodeOptions, out: &mut [u32], scratch: &mut [u32]) -> Result<usize> {
        let needed = encode_scratch_words(text.len());
        if scratch.len() < needed || needed == usize::MAX || text.len() >= heap::NONE as usize - 3 {
            return Err(Error::BufferTooSmall { what: "encode scratch (u32 words)", needed, got: scratch.len() });
        }
        room_for(text.len().checked_add(3), out)?;
        self.encode_parts(text, opts, out, Some(scratch))
    }

    /// BOS, then the text split at its special pieces (each one id), the runs between encoded
    /// by the model (SentencePiece: with the dummy-prefix space before the first run and after
    /// each special piece), then EOS.
    fn encode_parts(
        &self,
        text: &[u8],
        opts: EncodeOptions,
        out: &mut [u32],
        mut scratch: Option<&mut [u32]>,
    ) -> Result<usize> {
        let mut n = 0;
        let push = |out: &mut [u32], n: &mut usize, id: u32| {
            room_for(n.checked_add(1), out)?;
            out[*n] = id;
            *n += 1;
            Ok::<(), Error>(())
        };
        if opts.add_special && self.add_bos {
            push(out, &mut n, self.bos)?;
        }
        partition(&self.vocab, text, opts.parse_special, |part| match part {
            Part::Text(t) => {
                n += match self.model {
                    Model::SentencePiece { scores, space } => {
                        let spm = Spm { vocab: &self.vocab, scores };
                        spm.encode_run(t, space, &mut out[n..], scratch.as_deref_mut())?
                    }
                    Model::Bpe { merges, pre } => {
                        let bpe = Bpe { vocab: &self.vocab, merges, pre };
                        bpe.encode_run(t, &mut out[n..], scratch.as_deref_mut())?
                    }
                };
                Ok(())
            }
            Part::Special(id) => push(out, &mut n, id),
        })?;
        if opts.add_special && self.add_eos {
            push(out, &mut n, self.eos)?;
        }
        Ok(n)
    }

    /// The bytes `token` prints after `prev`: the leading space of a piece after BOS is
    /// dropped when the encoder added it (`add_space_prefix`), and `<0xXX>` becomes the raw byte.
    pub fn decode(&self, prev: u32, token: u32) -> &[u8] {
        match self.model {
            Model::SentencePiece { .. } => decode::decode_piece(self.piece(token), prev == self.bos, self.prefix_space),
            Model::Bpe { .. } => self.piece(token),
        }
    }
}
