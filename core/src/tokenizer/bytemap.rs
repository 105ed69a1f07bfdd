//! GPT-2's byte-to-unicode map, undone: byte-level BPE pieces back to raw bytes.
//!
//! Owns the map (printable Latin-1 bytes are themselves, the 68 others U+0100.. in byte
//! order) and the rewrite of a piece's spelling into its bytes. It must not know the
//! vocabulary or merges.

/// The byte GPT-2's byte-to-unicode map sends to code point `cp`, if any: printable Latin-1
/// bytes map to themselves, the 68 others to U+0100.. in byte order.
pub(crate) fn unmap_char(cp: u32) -> Option<u8> {
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    if cp < 0x100 {
        return printable(cp).then_some(cp as u8);
    }
    // The 68 others, in byte order: 0x00..=0x20, 0x7F..=0xA0, 0xAD.
    match cp - 0x100 {
        n @ 0..=32 => Some(n as u8),
        n @ 33..=66 => Some((0x7F + n - 33) as u8),
        67 => Some(0xAD),
        _ => None,
    }
}

/// Rewrites the GPT-2 spelling of a piece as its raw bytes in place; returns the new length,
/// or `None` (piece untouched) when a character is not in the map or the text is not UTF-8.
pub(crate) fn unmap(piece: &mut [u8]) -> Option<usize> {
    let s = core::str::from_utf8(piece).ok()?;
    if s.chars().any(|c| unmap_char(c as u32).is_none()) {
        return None;
    }
    let (mut r, mut w) = (0, 0);
    while r < piece.len() {
        let s = core::str::from_utf8(&piece[r..]).ok()?;
        let c = s.chars().next()?;
        piece[w] = unmap_char(c as u32)?;
        r += c.len_utf8();
        w += 1;
    }
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_map_is_undone() {
        assert_eq!(unmap_char('!' as u32), Some(b'!'));
        assert_eq!(unmap_char(0x120), Some(b' ')); // Ġ
        assert_eq!(unmap_char(0x10A), Some(b'\n')); // Ċ
        assert_eq!(unmap_char(0x100), Some(0));
        assert_eq!(unmap_char(0x143), Some(0xAD));
        assert_eq!(unmap_char(0x144), None);
        let mut p = [0u8; 7];
        p.copy_from_slice("Ġhello".as_bytes());
        let n = unmap(&mut p).unwrap();
        assert_eq!(&p[..n], b" hello");
    }
}
