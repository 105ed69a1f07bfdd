//! Special pieces in the text: where the text is split before it is merged.
//!
//! Owns the partition of a text into runs of plain text and special pieces, as llama.cpp's
//! special-token partition: user-defined pieces always, control and unknown pieces only when
//! the caller parses special tokens (`parse_special`). At each position the longest such
//! piece wins, scanning left to right; after a piece that strips (Phi-3's rule) the whitespace
//! that follows is dropped. It must not merge or know how runs are encoded.

use super::vocab::{Kind, Vocab};
use crate::error::Result;

/// One part of a partitioned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part<'t> {
    /// A run of text without special pieces (never empty).
    Text(&'t [u8]),
    /// A special piece, one id.
    Special(u32),
}

/// The special piece that starts `text`, the longest one: its id and length.
fn special_at(vocab: &Vocab, text: &[u8], parse_special: bool) -> Option<(u32, usize)> {
    if !vocab.may_start_special(text[0]) {
        return None;
    }
    let longest =
        if parse_special { vocab.longest_user_defined.max(vocab.longest_control) } else { vocab.longest_user_defined };
    (1..=longest.min(text.len())).rev().find_map(|len| {
        let id = vocab.lookup_special(&text[..len])?;
        match vocab.kind(id) {
            Kind::UserDefined => Some((id, len)),
            Kind::Control if parse_special => Some((id, len)),
            _ => None,
        }
    })
}

/// Calls `part` for each run of plain text and each special piece of `text`, in order.
pub(crate) fn partition<'t>(
    vocab: &Vocab,
    text: &'t [u8],
    parse_special: bool,
    mut part: impl FnMut(Part<'t>) -> Result<()>,
) -> Result<()> {
    let (mut start, mut i) = (0, 0);
    while i < text.len() {
        let Some((id, len)) = special_at(vocab, &text[i..], parse_special) else {
            i += 1;
            continue;
        };
        if i > start {
            part(Part::Text(&text[start..i]))?;
        }
        part(Part::Special(id))?;
        i += len;
        if vocab.rstrips(id) {
            // C's isspace, as llama.cpp's partition strips.
            while text.get(i).is_some_and(|b| matches!(b, b' ' | b'\t'..=b'\r')) {
                i += 1;
            }
        }
        start = i;
    }
    if start < text.len() {
        part(Part::Text(&text[start..]))?;
    }
    Ok(())
}
