//! Typed views of arena bytes: the arena is `&mut [u8]`, and its regions are read as `f32` or
//! `u32`. Owns the one `unsafe` these views need; it knows nothing of what the regions hold.

/// Views arena bytes as f32 (the arena's regions are 64-byte aligned by the carve).
pub fn as_f32_mut(bytes: &mut [u8]) -> &mut [f32] {
    // SAFETY: every bit pattern is a valid f32, and `align_to_mut` only returns the aligned
    // middle part, so the view is in bounds and aligned; the prefix/suffix are ignored.
    let (prefix, mid, _) = unsafe { bytes.align_to_mut::<f32>() };
    debug_assert!(prefix.is_empty(), "arena regions are aligned by carve");
    mid
}

/// Views arena bytes as u32 (see [`as_f32_mut`]).
pub fn as_u32_mut(bytes: &mut [u8]) -> &mut [u32] {
    // SAFETY: as in `as_f32_mut`: every bit pattern is a valid u32, and only the aligned
    // middle is viewed.
    let (prefix, mid, _) = unsafe { bytes.align_to_mut::<u32>() };
    debug_assert!(prefix.is_empty(), "arena regions are aligned by carve");
    mid
}

/// Views arena bytes as u16 (see [`as_f32_mut`]; the f16 KV cache).
pub fn as_u16_mut(bytes: &mut [u8]) -> &mut [u16] {
    // SAFETY: as in `as_f32_mut`: every bit pattern is a valid u16, and only the aligned
    // middle is viewed.
    let (prefix, mid, _) = unsafe { bytes.align_to_mut::<u16>() };
    debug_assert!(prefix.is_empty(), "arena regions are aligned by carve");
    mid
}

/// Views the 8-aligned part of arena bytes as u64 (up to 7 leading bytes are skipped, so a
/// caller sizes the bytes with 7 to spare; the tokenizer's merge table does).
pub fn as_u64_mut(bytes: &mut [u8]) -> &mut [u64] {
    // SAFETY: every bit pattern is a valid u64, and `align_to_mut` only returns the aligned
    // middle part, so the view is in bounds and aligned; the prefix/suffix are ignored.
    let (_, mid, _) = unsafe { bytes.align_to_mut::<u64>() };
    mid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_view_of_aligned_bytes_covers_them() {
        let mut buf = [0u8; 64 + 16];
        let pad = buf.as_ptr().align_offset(4);
        let view = as_f32_mut(&mut buf[pad..pad + 16]);
        assert_eq!(view.len(), 4);
        view[3] = 1.5;
        assert_eq!(f32::from_ne_bytes(buf[pad + 12..pad + 16].try_into().unwrap()), 1.5);
    }

    #[test]
    fn u16_view_of_aligned_bytes_covers_them() {
        let mut buf = [0u8; 64 + 8];
        let pad = buf.as_ptr().align_offset(2);
        let view = as_u16_mut(&mut buf[pad..pad + 8]);
        assert_eq!(view.len(), 4);
        view[3] = 0x3c00;
        assert_eq!(u16::from_ne_bytes(buf[pad + 6..pad + 8].try_into().unwrap()), 0x3c00);
    }

    #[test]
    fn u64_view_skips_to_alignment_and_covers_the_rest() {
        let mut buf = [0u8; 8 * 4 + 7];
        for start in 0..8 {
            let len = buf.len() - start;
            let view = as_u64_mut(&mut buf[start..]);
            assert!(view.len() >= (len - 7) / 8, "start {start}: {} words", view.len());
            view[0] = u64::MAX;
        }
    }
}
