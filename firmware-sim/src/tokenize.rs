//! `spool-sim tokenize`: a text's token ids, as llama.cpp's `llama-tokenize` prints them.
//!
//! Owns the subcommand's arguments and output: the vocabulary is loaded from the GGUF header
//! alone (no tensors, whatever the architecture: llama.cpp's vocabulary-only files work), into
//! a buffer of exactly the size the plan would give it. It must not plan or run a model.

use std::io::Write;

use clap::Args;
use spool_core::gguf::read_header;
use spool_core::tokenizer::{encode_scratch_words, EncodeOptions, Tokenizer};
use spool_std::FileStorage;

/// `spool-sim tokenize`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("text").required(true).args(["prompt", "file"])))]
pub struct TokenizeArgs {
    /// The model or vocabulary (GGUF; only its header is read).
    #[arg(short, long)]
    pub model: String,
    /// The text, as given (no escape processing).
    #[arg(short, long)]
    pub prompt: Option<String>,
    /// Read the text from this file, byte for byte.
    #[arg(short, long)]
    pub file: Option<String>,
    /// Print one Python-style list `[id, id, ...]` instead of `id -> 'piece'` lines.
    #[arg(long)]
    pub ids: bool,
    /// Do not add BOS (nor EOS) even when the vocabulary asks for it.
    #[arg(long)]
    pub no_bos: bool,
    /// Match special-token text (`<start_of_turn>`, `<|begin_of_text|>`...) as one id.
    #[arg(long)]
    pub parse_special: bool,
}

/// Runs `tokenize` with `a`, printing to `out`.
pub fn cli(a: &TokenizeArgs, out: &mut dyn Write) -> Result<(), String> {
    let text = match (&a.file, &a.prompt) {
        (Some(path), _) => std::fs::read(path).map_err(|e| format!("-f {path}: cannot read the text: {e}"))?,
        (None, Some(p)) => p.as_bytes().to_vec(),
        (None, None) => return Err("give the text with -p TEXT or -f FILE".into()),
    };
    tokenize(&a.model, &text, !a.no_bos, a.parse_special, |t, ids| {
        if a.ids {
            let list: Vec<String> = ids.iter().map(u32::to_string).collect();
            let _ = writeln!(out, "[{}]", list.join(", "));
        } else {
            for &id in ids {
                let _ = write!(out, "{id:6} -> '");
                let _ = out.write_all(t.decode(u32::MAX, id));
                let _ = writeln!(out, "'");
            }
        }
    })?;
    Ok(())
}

/// Encodes `text` with the vocabulary of the GGUF at `path` and hands the ids to `show`. BOS
/// (and EOS) are added when the vocabulary says so and `bos` is set, as `llama-tokenize` does.
pub fn tokenize(
    path: &str,
    text: &[u8],
    bos: bool,
    parse_special: bool,
    show: impl FnOnce(&Tokenizer, &[u32]),
) -> Result<Vec<u32>, String> {
    let open = || FileStorage::open(path).map_err(|e| format!("cannot open `{path}`: {e}"));
    let header = read_header(&mut open()?).map_err(|e| format!("{path}: {e}"))?;
    let need = Tokenizer::region_bytes_for(&header)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(format!("{path}: the vocabulary is larger than the address space"))?;
    // The arena's regions are 64-byte aligned; so is this one.
    let mut buf = vec![0u8; need + 64];
    let pad = buf.as_ptr().align_offset(64);
    let (t, _) =
        Tokenizer::load(&mut open()?, &header, &mut buf[pad..pad + need]).map_err(|e| format!("{path}: {e}"))?;
    // Room for any text: a byte-level BPE reads each malformed UTF-8 byte as U+FFFD's 3 bytes.
    let room = text.len().saturating_mul(3);
    let mut ids = vec![0u32; room + 3];
    let mut scratch = vec![0u32; encode_scratch_words(room)];
    let opts = EncodeOptions { add_special: bos && t.adds_bos(), parse_special };
    let n = t.encode_opts(text, opts, &mut ids, &mut scratch).map_err(|e| e.to_string())?;
    ids.truncate(n);
    show(&t, &ids);
    Ok(ids)
}
