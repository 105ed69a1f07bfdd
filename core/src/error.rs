//! The one error type of the core. Every failure on input (a file, a budget, a token) ends here
//! as a value that says what is wrong and, where there is one, what would fix it. Nothing in the
//! core panics on input. Also owns [`PlanError`] (a budget that does not fit) and [`Size`], the
//! byte display every message uses. It is a leaf: it names no module but the tensor roles and
//! the quant type table.

use core::fmt;

use crate::model::tensor::TensorName;

/// Everything that can go wrong in the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The storage failed to deliver `len` bytes at `offset`.
    Io {
        /// Byte offset of the failed read.
        offset: u64,
        /// Length of the failed read.
        len: u32,
        /// What the storage said.
        kind: embedded_io::ErrorKind,
    },
    /// The file ends before a structure it declares.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// The byte offset where it would end.
        end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// Not a GGUF file.
    BadMagic([u8; 4]),
    /// A GGUF version this parser does not read.
    UnsupportedVersion(u32),
    /// A structurally invalid file; the text names the field.
    Malformed(&'static str),
    /// A count in the file exceeds a fixed capacity of the core.
    TooMany {
        /// What is counted.
        what: &'static str,
        /// The count in the file.
        count: u64,
        /// The capacity compiled into the core.
        max: u64,
    },
    /// A metadata key the model needs is absent.
    MissingKey(&'static str),
    /// A special token id (BOS, EOS) that is not in the vocabulary.
    TokenOutsideVocabulary {
        /// The metadata key (or its default) that names the id.
        key: &'static str,
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: u32,
    },
    /// A tensor the model needs is absent.
    MissingTensor(TensorName),
    /// A tensor whose shape disagrees with the hyperparameters.
    BadShape {
        /// Which tensor.
        tensor: TensorName,
        /// Expected rows, columns.
        expected: (u32, u32),
        /// Found rows, columns.
        found: (u64, u64),
    },
    /// A tensor type this build cannot compute with.
    UnsupportedType {
        /// Which tensor.
        tensor: TensorName,
        /// The GGML type id.
        ggml_type: u32,
    },
    /// No architecture of this build has this `general.architecture` name.
    UnsupportedArchitecture {
        /// The name in the file.
        name: ShortStr,
        /// The names this build runs.
        supported: &'static [&'static str],
    },
    /// No tokenizer of this build has this `tokenizer.ggml.model` or `tokenizer.ggml.pre`.
    UnsupportedTokenizer {
        /// The metadata key.
        key: &'static str,
        /// The name in the file.
        name: ShortStr,
        /// The names this build supports.
        supported: &'static [&'static str],
    },
    /// The model needs an operation this build does not have yet.
    NotImplemented(&'static str),
    /// The RAM budget does not fit the plan.
    Budget(PlanError),
    /// A caller-provided buffer is too small.
    BufferTooSmall {
        /// What the buffer is for.
        what: &'static str,
        /// Elements needed.
        needed: usize,
        /// Elements given.
        got: usize,
    },
    /// A token id outside the vocabulary.
    TokenOutOfRange {
        /// The token.
        token: u32,
        /// The vocabulary size.
        vocab: u32,
    },
    /// A loader did not return a slot's buffer (its thread or DMA channel died).
    LoaderLost {
        /// The slot.
        slot: u32,
    },
    /// A position beyond the planned context.
    ContextFull {
        /// The position asked for.
        pos: u32,
        /// The context the arena was planned for.
        context: u32,
    },
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PlanError {
    /// The budget is below the minimum for this model and context.
    BudgetTooSmall {
        /// The budget asked for.
        budget: usize,
        /// The smallest budget that works.
        minimum: usize,
        /// The context length planned for.
        context: u32,
        /// Of the minimum: the KV cache.
        kv_bytes: usize,
        /// Of the minimum: one streaming slot (the largest unit).
        slot_bytes: usize,
    },
    /// The context asked for is zero or longer than the model's.
    BadContext {
        /// The context asked for.
        requested: u32,
        /// The model's context length.
        max: u32,
    },
    /// The model has more units than the plan holds.
    TooManyUnits {
        /// Units needed.
        count: usize,
        /// Units the plan holds.
        max: usize,
    },
    /// A size the plan needs does not fit this target's address space (or 64 bits).
    TooLarge {
        /// What is too large.
        what: &'static str,
    },
    /// The arena cannot hold even the model's per-layer tensor table, the first region of
    /// every plan (the exact minimum needs that table, so only this lower bound is known).
    LayerTableTooLarge {
        /// The budget asked for.
        budget: usize,
        /// The layers of the model.
        layers: usize,
        /// Bytes of the layer table.
        table_bytes: usize,
    },
}

/// Bytes as "N KiB" (or MiB), rounded up so that a stated minimum always suffices.
pub struct Size(pub usize);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 10 << 20 {
            write!(f, "{} MiB", b.div_ceil(1 << 20))
        } else {
            write!(f, "{} KiB", b.div_ceil(1024))
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::BudgetTooSmall { budget, minimum, context, kv_bytes, slot_bytes } => write!(
                f,
                "budget {} is below the {} minimum for this model at context {context} \
                 (the KV cache alone is {}, one streaming slot {}); raise the budget to at least {} bytes or shorten the context",
                Size(budget),
                Size(minimum),
                Size(kv_bytes),
                Size(slot_bytes),
                minimum
            ),
            PlanError::LayerTableTooLarge { budget, layers, table_bytes } => write!(
                f,
                "budget {budget} B cannot hold the model's layer table ({table_bytes} B for {layers} layers), the first \
                 region of any plan; the minimum budget is larger still (tables, working buffers, KV cache and one \
                 streaming slot): raise the budget past {table_bytes} B and the error gives the exact minimum"
            ),
            PlanError::BadContext { requested, max } => {
                write!(f, "context {requested} is outside 1..={max}, the model's context length")
            }
            PlanError::TooManyUnits { count, max } => write!(
                f,
                "the model needs {count} cache units, more than the {max} this build holds; raise plan::MAX_UNITS"
            ),
            PlanError::TooLarge { what } => write!(
                f,
                "the {what} of this model at this context does not fit a {}-bit address space; shorten the context or use a smaller model",
                usize::BITS
            ),
        }
    }
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        Error::Budget(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { offset, len, kind } => write!(
                f,
                "storage read of {len} bytes at offset {offset} failed ({kind:?}); check the file or device"
            ),
            Error::Truncated { what, end, file_len } => write!(
                f,
                "file is truncated: {what} ends at byte {end} but the file has {file_len} bytes; the download or copy is incomplete"
            ),
            Error::BadMagic(m) => write!(f, "not a GGUF file (magic {m:02x?}, expected \"GGUF\")"),
            Error::UnsupportedVersion(v) => {
                write!(f, "GGUF version {v} is not supported (versions 2 and 3 are); re-convert the model with a current llama.cpp")
            }
            Error::Malformed(what) => write!(f, "malformed GGUF: {what}"),
            Error::TooMany { what, count, max } => write!(
                f,
                "the file has {count} {what}, more than the {max} this build holds; raise the capacity constant in spool-core"
            ),
            Error::MissingKey(k) => write!(f, "GGUF metadata key `{k}` is missing; the file is not a complete model"),
            Error::TokenOutsideVocabulary { key, id, vocab } => write!(
                f,
                "`{key}` is {id}, outside the vocabulary of {vocab} tokens (ids 0..{vocab}); \
                 the file's tokenizer metadata is inconsistent: re-convert the model"
            ),
            Error::MissingTensor(t) => write!(f, "tensor `{t}` is missing from the file"),
            Error::BadShape { tensor, expected, found } => write!(
                f,
                "tensor `{tensor}` has shape {}x{} (rows x cols) but the hyperparameters say {}x{}",
                found.0, found.1, expected.0, expected.1
            ),
            Error::UnsupportedType { tensor, ggml_type } => write!(
                f,
                "tensor `{tensor}` has GGML type {} ({ggml_type}), which this build cannot compute with; supported: {}",
                crate::quant::GgmlType::name_of(*ggml_type),
                if tensor.is_norm() {
                    "F32 (norm weights)"
                } else {
                    crate::quant::SUPPORTED_TYPES
                }
            ),
            Error::UnsupportedArchitecture { name, supported } => {
                write!(f, "unsupported architecture \"{name}\" (general.architecture); supported:")?;
                for (i, s) in supported.iter().enumerate() {
                    write!(f, "{}{s}", if i == 0 { " " } else { ", " })?;
                }
                Ok(())
            }
            Error::UnsupportedTokenizer { key, name, supported } => {
                write!(f, "unsupported tokenizer \"{name}\" ({key}); supported:")?;
                for (i, s) in supported.iter().enumerate() {
                    write!(f, "{}{s}", if i == 0 { " " } else { ", " })?;
                }
                write!(f, "; use a file converted with one of these")
            }
            Error::NotImplemented(what) => write!(f, "this model needs {what}, which this build does not implement yet"),
            Error::Budget(e) => write!(f, "{e}"),
            Error::BufferTooSmall { what, needed, got } => {
                write!(f, "{what} buffer holds {got} elements but {needed} are needed")
            }
            Error::TokenOutOfRange { token, vocab } => {
                write!(f, "token {token} is outside the vocabulary of {vocab}")
            }
            Error::LoaderLost { slot } => {
                write!(f, "the loader lost streaming slot {slot} (its reader stopped); start a new engine")
            }
            Error::ContextFull { pos, context } => write!(
                f,
                "position {pos} is beyond the context of {context} the arena was planned for; plan a longer context"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// A short string from the file, kept by value for messages (cut at [`ShortStr::CAPACITY`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ShortStr {
    bytes: [u8; ShortStr::CAPACITY],
    len: u8,
}

impl ShortStr {
    /// Bytes kept.
    pub const CAPACITY: usize = 24;

    /// The first [`ShortStr::CAPACITY`] bytes of `s`.
    pub fn new(s: &[u8]) -> Self {
        let mut bytes = [0u8; Self::CAPACITY];
        let len = s.len().min(Self::CAPACITY);
        bytes[..len].copy_from_slice(&s[..len]);
        Self { bytes, len: len as u8 }
    }

    /// The bytes kept.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.as_bytes().utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

/// Shorthand used throughout the core.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rounds_up() {
        let mut s = heapless::String::<32>::new();
        core::fmt::write(&mut s, format_args!("{}", Size(1025))).unwrap();
        assert_eq!(s.as_str(), "2 KiB");
    }
}
