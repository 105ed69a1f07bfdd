//! What a token prints: pieces back to bytes.
//!
//! Owns decoding: `<0xXX>` byte pieces become the raw byte, the dummy-prefix space after BOS is
//! dropped, and llama2.c's `safe_printf` filter ([`printable`]). It must not encode.

/// `<0xXX>` decodes to these single bytes.
pub(crate) static BYTES: [u8; 256] = {
    let mut b = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        b[i] = i as u8;
        i += 1;
    }
    b
};

/// The byte of a `<0xXX>` piece.
pub(crate) fn parse_byte_token(p: &[u8]) -> Option<u8> {
    let hex = p.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    if hex.len() != 2 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(hex[0])? * 16 + digit(hex[1])?) as u8)
}

/// The `<0xXX>` piece of byte `b`.
pub(crate) fn byte_piece(b: u8) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut name = *b"<0x00>";
    name[3] = HEX[(b >> 4) as usize];
    name[4] = HEX[(b & 15) as usize];
    name
}

/// The value of `printf("%s")` for a piece after llama2.c's `safe_printf`: a lone byte that is
/// neither printable nor white space prints nothing.
pub fn printable(piece: &[u8]) -> &[u8] {
    match piece {
        [b] if !(b.is_ascii_graphic() || *b == b' ' || matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r')) => &[],
        _ => piece,
    }
}

/// The bytes piece `p` prints after the token `prev`: the leading space of a piece after BOS
/// is dropped when the encoder added it (`drop_space`), and `<0xXX>` becomes the raw byte.
pub(crate) fn decode_piece(p: &[u8], after_bos: bool, drop_space: bool) -> &[u8] {
    let p = match p {
        [b' ', rest @ ..] if after_bos && drop_space => rest,
        _ => p,
    };
    match parse_byte_token(p) {
        Some(b) => &BYTES[b as usize..b as usize + 1],
        None => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token(b"<0x0A>"), Some(10));
        assert_eq!(parse_byte_token(b"<0xff>"), Some(255));
        assert_eq!(parse_byte_token(b"<0x0>"), None);
        assert_eq!(parse_byte_token(&byte_piece(0xC3)), Some(0xC3));
        assert_eq!(printable(&[0xC3]), b"");
        assert_eq!(printable(b"\n"), b"\n");
    }
}
