//! BPE pre-tokenizers: a run of text split into words, without a regex engine.
//!
//! Owns the splitters named by `tokenizer.ggml.pre`, each hand-written to split exactly as
//! llama.cpp's regex for it does (llama.cpp's own splitters for the GPT-2, Llama 3 and Qwen2
//! regexes, and its chain of four regexes for `default`), over code points decoded as
//! llama.cpp decodes them and the classes of [`super::unicode`]. Words go to a callback, in
//! order, as byte ranges of the text: nothing is stored. It must not merge or know the vocabulary.

use super::unicode::{ascii_lower, class, decode_at, Class};
use crate::error::ShortStr;
use crate::error::{Error, Result};

/// A pre-tokenizer: how a run of text is cut into words before BPE merges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (`gpt-2`...).
    Gpt2,
    /// Llama 3's regex: case-insensitive contractions, `[^\r\n\p{L}\p{N}]?\p{L}+`,
    /// `\p{N}{1,3}`, ` ?[^\s\p{L}\p{N}]+[\r\n]*`, `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`.
    Llama3,
    /// Qwen2's: as Llama 3's with one digit per word (`\p{N}`).
    Qwen2,
    /// llama.cpp's `default`: `[\p{P}\$\+<=>\^~\|]+`, then the GPT-2 regex, then `\p{N}+`, then
    /// `[0-9][0-9][0-9]`, each splitting the pieces of the one before.
    Default,
}

/// The `tokenizer.ggml.pre` names this build splits as llama.cpp does.
pub const SUPPORTED_PRE: &[&str] = &[
    "default",
    "gpt-2",
    "phi-2",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "qwen2",
    "deepseek-r1-qwen",
    "megrez",
    "mpt",
    "olmo",
    "smaug-bpe",
    "dbrx",
];

impl PreTokenizer {
    /// The pre-tokenizer named `name` (empty: llama.cpp's fallback, `default`).
    pub fn from_name(name: ShortStr) -> Result<Self> {
        Ok(match name.as_bytes() {
            b"" | b"default" => PreTokenizer::Default,
            b"gpt-2" | b"phi-2" | b"mpt" | b"olmo" => PreTokenizer::Gpt2,
            b"llama3" | b"llama-v3" | b"llama-bpe" | b"falcon3" | b"smaug-bpe" | b"dbrx" => PreTokenizer::Llama3,
            b"qwen2" | b"deepseek-r1-qwen" | b"megrez" => PreTokenizer::Qwen2,
            _ => return Err(Error::UnsupportedTokenizer { key: "tokenizer.ggml.pre", name, supported: SUPPORTED_PRE }),
        })
    }

    /// Whether a word that is a whole piece skips the merges (llama.cpp's `ignore_merges`).
    pub(crate) fn ignore_merges(self) -> bool {
        self == PreTokenizer::Llama3
    }

    /// Calls `word` for each word of `text`, in order; the words cover the text.
    pub(crate) fn split(self, text: &[u8], word: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let all = 0..text.len();
        let word = &mut |r: Range| word(&text[r]);
        match self {
            PreTokenizer::Gpt2 => gpt2(text, all, word),
            PreTokenizer::Llama3 => llama3(text, all, 3, word),
            PreTokenizer::Qwen2 => llama3(text, all, 1, word),
            PreTokenizer::Default => runs(text, all, default_punct, &mut |r| {
                gpt2(text, r, &mut |r| runs(text, r, default_number, &mut |r| triples(text, r, word)))
            }),
        }
    }
}

type Range = core::ops::Range<usize>;

/// Code points of `text[range]` with their classes, looked at from a byte position.
struct Cps<'t> {
    text: &'t [u8],
    end: usize,
}

impl Cps<'_> {
    /// The code point at `i`, its class and the position after it; `None` at the end.
    fn at(&self, i: usize) -> Option<(u32, Class, usize)> {
        (i < self.end).then(|| {
            let (cp, len) = decode_at(self.text, i);
            (cp, class(cp), i + len)
        })
    }

    fn cp(&self, i: usize) -> Option<u32> {
        self.at(i).map(|(cp, _, _)| cp)
    }

    fn class(&self, i: usize) -> Class {
        self.at(i).map_or(Class::NONE, |(_, c, _)| c)
    }

    fn next(&self, i: usize) -> usize {
        self.at(i).map_or(i, |(_, _, n)| n)
    }

    /// The end of the contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `i`, if
    /// one starts there; `fold` lowercases (Llama 3) or not (GPT-2).
    fn contraction(&self, i: usize, fold: fn(u32) -> u32) -> Option<usize> {
        if self.cp(i)? != '\'' as u32 {
            return None;
        }
        let j = self.next(i);
        let a = fold(self.cp(j)?);
        if [b's', b't', b'm', b'd'].iter().any(|&c| a == c as u32) {
            return Some(self.next(j));
        }
        let k = self.next(j);
        let b = fold(self.cp(k)?);
        let pair = |x: u8, y: u8| a == x as u32 && b == y as u32;
        (pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l')).then(|| self.next(k))
    }

    /// The first position from `i` whose class fails `keep`.
    fn skip(&self, mut i: usize, keep: impl Fn(Class) -> bool) -> usize {
        while keep(self.class(i)) {
            i = self.next(i);
        }
        i
    }

    /// The white-space run at `i`: its end, the position before its last code point, and
    /// the end of its last `\r` or `\n` (if any).
    fn spaces(&self, i: usize) -> (usize, usize, Option<usize>) {
        let (mut end, mut before_last, mut last_newline) = (i, i, None);
        while self.class(end).space() {
            before_last = end;
            let next = self.next(end);
            if matches!(self.cp(end), Some(0x0A | 0x0D)) {
                last_newline = Some(next);
            }
            end = next;
        }
        (end, before_last, last_newline)
    }
}

/// The GPT-2 regex over `text[range]`.
fn gpt2(text: &[u8], range: Range, word: &mut dyn FnMut(Range) -> Result<()>) -> Result<()> {
    let c = Cps { text, end: range.end };
    let mut pos = range.start;
    while pos < range.end {
        let start = pos;
        pos = gpt2_word(&c, pos);
        word(start..pos)?;
    }
    Ok(())
}

/// The end of the GPT-2 word that starts at `pos`.
fn gpt2_word(c: &Cps, pos: usize) -> usize {
    if let Some(end) = c.contraction(pos, |x| x) {
        return end;
    }
    let space = c.cp(pos) == Some(' ' as u32);
    let after = if space { c.next(pos) } else { pos };
    let f = c.class(after);
    if f.letter() {
        return c.skip(after, Class::letter);
    }
    if f.number() {
        return c.skip(after, Class::number);
    }
    if f.other() {
        return c.skip(after, Class::other);
    }
    let (end, before_last, _) = c.spaces(pos);
    if end > pos && before_last > pos && c.at(end).is_some() {
        return before_last; // \s+(?!\S): all but the last, which goes with the next word
    }
    if end > pos {
        return end;
    }
    c.next(pos)
}

/// The Llama 3 (`digits` = 3) or Qwen2 (`digits` = 1) regex over `text[range]`.
fn llama3(text: &[u8], range: Range, digits: usize, word: &mut dyn FnMut(Range) -> Result<()>) -> Result<()> {
    let c = Cps { text, end: range.end };
    let mut pos = range.start;
    while pos < range.end {
        let start = pos;
        let (cp, f, next) = c.at(pos).unwrap_or((0, Class::NONE, range.end));
        let f2 = if cp == ' ' as u32 { c.class(next) } else { f };
        if let Some(end) = c.contraction(pos, ascii_lower) {
            pos = end;
        } else if !(cp == 0x0D || cp == 0x0A || f.number()) && (f.letter() || c.class(next).letter()) {
            // [^\r\n\p{L}\p{N}]?\p{L}+
            pos = c.skip(next, Class::letter);
        } else if f.number() {
            // \p{N}{1,digits}, as many words as the run needs
            let mut n = 0;
            while c.class(pos).number() && n < digits {
                pos = c.next(pos);
                n += 1;
            }
        } else if !(f2.space() || f2.letter() || f2.number()) && f.some() {
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let from = if cp == ' ' as u32 { next } else { pos };
            pos = c.skip(from, Class::other);
            while matches!(c.cp(pos), Some(0x0A | 0x0D)) {
                pos = c.next(pos);
            }
        } else {
            let (end, before_last, last_newline) = c.spaces(pos);
            pos = match last_newline {
                Some(nl) => nl,                                                  // \s*[\r\n]+
                None if before_last > pos && c.at(end).is_some() => before_last, // \s+(?!\S)
                None if end > pos => end,                                        // \s+
                None => next,
            };
        }
        word(start..pos)?;
    }
    Ok(())
}

/// `[\p{P}\$\+<=>\^~\|]` as llama.cpp's collapsed-text regex sees it: ASCII punctuation and
/// symbols but the backtick; above ASCII, punctuation that is not white space.
fn default_punct(cp: u32) -> bool {
    if cp < 0x80 {
        return b"!\"#%&'()*,-./:;?@[\\]_{}$+<=>^~|".contains(&(cp as u8));
    }
    let c = class(cp);
    c.punctuation() && !c.space()
}

/// `\p{N}` as llama.cpp's collapsed-text regex sees it: ASCII digits, and above ASCII the
/// numbers that are not white space.
fn default_number(cp: u32) -> bool {
    if cp < 0x80 {
        return (b'0' as u32..=b'9' as u32).contains(&cp);
    }
    let c = class(cp);
    c.number() && !c.space()
}

/// Splits `text[range]` into maximal runs of code points that do and do not match `pred`
/// (a regex `[...]+` keeps its matches and the text between them).
fn runs(text: &[u8], range: Range, pred: fn(u32) -> bool, part: &mut dyn FnMut(Range) -> Result<()>) -> Result<()> {
    let mut start = range.start;
    let mut i = range.start;
    let mut inside = None;
    while i < range.end {
        let (cp, len) = decode_at(text, i);
        let m = pred(cp);
        if inside.is_some_and(|was| was != m) {
            part(start..i)?;
            start = i;
        }
        inside = Some(m);
        i = (i + len).min(range.end);
    }
    if start < range.end {
        part(start..range.end)?;
    }
    Ok(())
}

/// `[0-9][0-9][0-9]` over `text[range]`: each leftmost triple of ASCII digits is a word, and
/// so is the text between them.
fn triples(text: &[u8], range: Range, word: &mut dyn FnMut(Range) -> Result<()>) -> Result<()> {
    let (mut gap, mut i) = (range.start, range.start);
    while i + 3 <= range.end {
        if text[i..i + 3].iter().all(u8::is_ascii_digit) {
            if i > gap {
                word(gap..i)?;
            }
            word(i..i + 3)?;
            i += 3;
            gap = i;
        } else {
            i += 1;
        }
    }
    if gap < range.end {
        word(gap..range.end)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn words(p: PreTokenizer, text: &str) -> Vec<std::string::String> {
        let mut out = Vec::new();
        p.split(text.as_bytes(), &mut |w| {
            out.push(std::string::String::from_utf8_lossy(w).into_owned());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn llama3_splits_as_its_regex() {
        assert_eq!(
            words(PreTokenizer::Llama3, "Hello world's 12345 ok!!\n\n  x"),
            ["Hello", " world", "'s", " ", "123", "45", " ok", "!!\n\n", " ", " x"]
        );
        assert_eq!(words(PreTokenizer::Qwen2, "a 123"), ["a", " ", "1", "2", "3"]);
    }

    #[test]
    fn gpt2_splits_as_its_regex() {
        assert_eq!(words(PreTokenizer::Gpt2, "I'm  here 42x"), ["I", "'m", " ", " here", " 42", "x"]);
        assert_eq!(words(PreTokenizer::Gpt2, "a   "), ["a", "   "]);
    }

    #[test]
    fn default_chains_four_splits() {
        assert_eq!(words(PreTokenizer::Default, "x=1234567,y"), ["x", "=", "123", "456", "7", ",", "y"]);
    }
}
