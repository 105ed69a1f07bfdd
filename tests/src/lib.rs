//! Integration tests live in `tests/`; this library holds what they share beyond `common`:
//! a GGUF reader/writer for hostile files ([`gguf`]) and a runner of the CLI binary under a
//! deadline ([`cli`]). The fuzzers in `fuzz/` use the writer too.

pub mod cli;
pub mod gguf;
