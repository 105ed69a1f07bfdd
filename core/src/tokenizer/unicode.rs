//! Unicode for the pre-tokenizers: code points out of UTF-8 and their classes.
//!
//! Owns the class of a code point (`\p{L}`, `\p{N}`, `\s`...) looked up in the generated
//! range table ([`super::unicode_table`], Unicode 15.1, made by
//! `scripts/gen-unicode-classes.py`), and UTF-8 decoding as llama.cpp's tokenizer does it (a
//! malformed byte is one U+FFFD). It must not split text.

use super::unicode_table::RANGES;

/// A code point's class: its general category folded as the regexes see it, plus `\s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Class(u8);

impl Class {
    const UNDEFINED: u8 = 0;
    const NUMBER: u8 = 1;
    const LETTER: u8 = 2;
    const PUNCTUATION: u8 = 5;
    const WHITESPACE: u8 = 8;

    /// No code point (past the end of the text): matches nothing, not even `[^\s\p{L}\p{N}]`.
    pub(crate) const NONE: Class = Class(0xFF);

    fn category(self) -> u8 {
        self.0 & 7
    }

    /// Whether there is a code point here (not [`Class::NONE`]).
    pub(crate) fn some(self) -> bool {
        self != Self::NONE
    }

    /// `\p{L}`.
    pub(crate) fn letter(self) -> bool {
        self.some() && self.category() == Self::LETTER
    }

    /// `\p{N}`.
    pub(crate) fn number(self) -> bool {
        self.some() && self.category() == Self::NUMBER
    }

    /// `\p{P}` (as a category; the ASCII rules are the caller's).
    pub(crate) fn punctuation(self) -> bool {
        self.some() && self.category() == Self::PUNCTUATION
    }

    /// `\s` (Unicode White_Space).
    pub(crate) fn space(self) -> bool {
        self.some() && self.0 & Self::WHITESPACE != 0
    }

    /// `[^\s\p{L}\p{N}]` for a code point that exists.
    pub(crate) fn other(self) -> bool {
        self.some() && !(self.space() || self.letter() || self.number())
    }
}

/// The class of `cp` (code points past U+10FFFF are undefined).
pub(crate) fn class(cp: u32) -> Class {
    if cp >= 0x11_0000 {
        return Class(Class::UNDEFINED);
    }
    let i = RANGES.partition_point(|&r| r >> 4 <= cp);
    // RANGES[0] starts at 0, so i >= 1.
    Class(RANGES.get(i.wrapping_sub(1)).map_or(Class::UNDEFINED, |&r| (r & 15) as u8))
}

/// The code point at `text[i..]` and its length in bytes, as llama.cpp decodes UTF-8: a byte
/// that does not start a well-formed sequence is U+FFFD, one byte long. `i < text.len()`.
pub(crate) fn decode_at(text: &[u8], i: usize) -> (u32, usize) {
    const BAD: (u32, usize) = (0xFFFD, 1);
    let b0 = text[i] as u32;
    let (len, lead) = match b0 {
        0x00..=0x7F => return (b0, 1),
        0xC0..=0xDF => (2, b0 & 0x1F),
        0xE0..=0xEF => (3, b0 & 0x0F),
        0xF0..=0xF7 => (4, b0 & 0x07),
        _ => return BAD,
    };
    let Some(tail) = text.get(i + 1..i + len) else { return BAD };
    let mut cp = lead;
    for &b in tail {
        if b & 0xC0 != 0x80 {
            return BAD;
        }
        cp = cp << 6 | (b & 0x3F) as u32;
    }
    (cp, len)
}

/// Lower case of an ASCII letter; every other code point as is (the contractions `'s`, `'T`...
/// only compare with ASCII letters, and no other code point lowercases to one).
pub(crate) fn ascii_lower(cp: u32) -> u32 {
    if (b'A' as u32..=b'Z' as u32).contains(&cp) {
        cp + 32
    } else {
        cp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_a_few_code_points() {
        assert!(class('a' as u32).letter() && class('é' as u32).letter() && class('中' as u32).letter());
        assert!(class('7' as u32).number() && class('٣' as u32).number() && class('Ⅻ' as u32).number());
        assert!(class(' ' as u32).space() && class('\n' as u32).space() && class(0x3000).space());
        assert!(class('!' as u32).punctuation() && class('$' as u32).other() && !class('$' as u32).punctuation());
        assert!(class(0x0378).other(), "unassigned code points are [^\\s\\p{{L}}\\p{{N}}]");
        assert!(!Class::NONE.other() && !Class::NONE.letter());
    }

    #[test]
    fn utf8_decodes_as_llama_cpp() {
        assert_eq!(decode_at("é".as_bytes(), 0), (0xE9, 2));
        assert_eq!(decode_at(b"\xE2\x82", 0), (0xFFFD, 1));
        assert_eq!(decode_at(b"\x80a", 0), (0xFFFD, 1));
        assert_eq!(decode_at("😀".as_bytes(), 0), (0x1F600, 4));
    }
}
