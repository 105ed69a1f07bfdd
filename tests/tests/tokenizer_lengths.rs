//! A vocabulary whose token lengths change between the header parse and the tokenizer load
//! (storage returning inconsistent bytes) is a `Malformed` error, never an overflow.

mod common;

use common::*;
use spool_core::tokenizer::Tokenizer;
use spool_core::{Error, SliceStorage};

/// The header counts the token lengths when it parses the file; a storage that returns other
/// bytes at load (a token length near 2^64) overflowed `at + len` and panicked.
#[test]
fn a_token_length_that_changed_since_the_header_is_an_error_not_an_overflow() {
    let bytes = model_bytes();
    let header = spool_core::gguf::read_header(&mut SliceStorage::new(&bytes)).unwrap();
    let tokens = header.tokens.unwrap();
    let first = tokens.offset as usize;
    let len0 = u64::from_le_bytes(bytes[first..first + 8].try_into().unwrap()) as usize;
    let second = first + 8 + len0;
    for lie in [u64::MAX, u64::MAX - 1, 1 << 63, u32::MAX as u64 + 1] {
        let mut hostile = bytes.clone();
        hostile[second..second + 8].copy_from_slice(&lie.to_le_bytes());
        let mut region = vec![0u8; 1 << 20];
        let r = Tokenizer::load(&mut SliceStorage::new(&hostile), &header, &mut region).map(|_| ());
        assert!(matches!(r, Err(Error::Malformed(_))), "length {lie}: {r:?}");
    }
}
