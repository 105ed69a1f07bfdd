//! Valid UTF-8 out of token bytes: a multi-byte character split across tokens (byte-fallback
//! pieces) is held until complete; bytes that never form one become U+FFFD. Owns no I/O policy.

/// Assembles token bytes into valid UTF-8.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds `bytes` and returns the text now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + n);
                        }
                    }
                }
            }
        }
    }

    /// The end of the text: an unfinished character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = if self.pending.is_empty() { String::new() } else { char::REPLACEMENT_CHARACTER.to_string() };
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_joined_and_stray_bytes_replaced() {
        let mut s = Utf8Stream::default();
        let pizza = "🍕".as_bytes();
        assert_eq!(s.push(b"J\xc3"), "J");
        assert_eq!(s.push(b"\xbcrgen "), "\u{fc}rgen ");
        assert_eq!(s.push(&pizza[..1]), "");
        assert_eq!(s.push(&pizza[1..3]), "");
        assert_eq!(s.push(&pizza[3..]), "🍕");
        assert_eq!(s.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(s.push(b"\xe2\x82"), "");
        assert_eq!(s.push(b"x"), "\u{fffd}x");
        assert_eq!(s.push(b"\xf0"), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }
}
