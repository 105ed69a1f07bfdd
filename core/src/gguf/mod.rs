//! GGUF v2/v3 parsing, streamed through a [`Storage`] with a small stack buffer.
//!
//! Owns the file format: header, metadata key/values and the tensor table. It keeps only what
//! every model needs ([`Header`]): the architecture's name, where the tokenizer arrays live in
//! the file (they are read later, straight into the arena) and where the tensor table starts.
//! It knows no architecture's schema: other scalar values go to the caller's visitor, and
//! everything else is skipped without being held. It never trusts a count or a length from the
//! file: each is checked against the file's size before use. It knows nothing of the arena.

use crate::error::{Error, Result, ShortStr};
use crate::storage::Storage;

mod cursor;
mod tensors;

pub(crate) use cursor::Cursor;
pub(crate) use tensors::{first_pass, for_each_tensor};
pub use tensors::{tensors, TensorEntry, Tensors, MAX_DIMS, MAX_NAME};

const MAGIC: [u8; 4] = *b"GGUF";

/// Value type ids of GGUF metadata.
mod vt {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// Where an array value lives in the file, for reading it later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ArrayRef {
    /// Offset of the first element.
    pub offset: u64,
    /// Element count.
    pub count: u64,
    /// Element type id.
    pub elem_type: u32,
    /// For string arrays: the sum of the string lengths.
    pub string_bytes: u64,
    /// For string arrays: the longest string.
    pub max_string: u64,
}

/// The metadata every model needs (architecture name, alignment, tokenizer), and where the
/// tensor table starts. Architecture keys are handed to the caller's visitor instead
/// ([`read_header_with`]): this reader knows no architecture's schema.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Number of tensors in the table.
    pub tensor_count: u64,
    /// `general.architecture` (cut at its capacity; empty when absent).
    pub architecture: ShortStr,
    /// `general.name` (cut at its capacity; empty when absent): llama.cpp keys some tokenizer
    /// rules on it.
    pub name: ShortStr,
    /// `general.alignment` (defaults to 32).
    pub alignment: u32,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Option<ArrayRef>,
    /// `tokenizer.ggml.scores`.
    pub scores: Option<ArrayRef>,
    /// `tokenizer.ggml.token_type` (SentencePiece's piece types: 3 control, 4 user-defined).
    pub token_types: Option<ArrayRef>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece's dummy prefix; absent means yes).
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.ggml.model` (`llama`, `gpt2`...; empty when absent).
    pub tokenizer_model: ShortStr,
    /// `tokenizer.ggml.pre`, the BPE pre-tokenizer (empty when absent).
    pub tokenizer_pre: ShortStr,
    /// `tokenizer.ggml.merges` (BPE merges, `"left right"` strings by rank).
    pub merges: Option<ArrayRef>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// Offset of the tensor table.
    pub tensor_table: u64,
    /// Bytes read to parse the header and metadata.
    pub bytes_read: u64,
}

/// A scalar metadata value, as handed to the visitor of [`read_header_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Value {
    /// An unsigned integer or a bool (0 or 1).
    Uint(u64),
    /// A signed integer.
    Int(i64),
    /// A float.
    Float(f64),
}

impl Value {
    /// The value as a u32: `Some` for an integer in range, `None` for a float; a negative or
    /// too large integer is malformed (`what` names the key).
    pub fn as_u32(self, what: &'static str) -> Result<Option<u32>> {
        let v = match self {
            Value::Uint(v) => u32::try_from(v).ok(),
            Value::Int(v) => u32::try_from(v).ok(),
            Value::Float(_) => return Ok(None),
        };
        v.map(Some).ok_or(Error::Malformed(what))
    }

    /// The value as an f32 when it is a float.
    pub fn as_f32(self) -> Option<f32> {
        match self {
            Value::Float(v) => Some(v as f32),
            _ => None,
        }
    }
}

fn scalar_size(t: u32) -> Option<u64> {
    Some(match t {
        vt::U8 | vt::I8 | vt::BOOL => 1,
        vt::U16 | vt::I16 => 2,
        vt::U32 | vt::I32 | vt::F32 => 4,
        vt::U64 | vt::I64 | vt::F64 => 8,
        _ => return None,
    })
}

/// Reads an integer of any width as u64 (negative values are refused).
fn read_uint<S: Storage>(c: &mut Cursor<'_, S>, t: u32, what: &'static str) -> Result<Option<u64>> {
    let v = match t {
        vt::U8 | vt::BOOL => c.array::<1>(what)?[0] as u64,
        vt::I8 => u64::try_from(c.array::<1>(what)?[0] as i8).map_err(|_| Error::Malformed(what))?,
        vt::U16 => u16::from_le_bytes(c.array(what)?) as u64,
        vt::I16 => u64::try_from(i16::from_le_bytes(c.array(what)?)).map_err(|_| Error::Malformed(what))?,
        vt::U32 => c.u32(what)? as u64,
        vt::I32 => u64::try_from(i32::from_le_bytes(c.array(what)?)).map_err(|_| Error::Malformed(what))?,
        vt::U64 => c.u64(what)?,
        vt::I64 => u64::try_from(i64::from_le_bytes(c.array(what)?)).map_err(|_| Error::Malformed(what))?,
        _ => {
            skip_value(c, t, 0)?;
            return Ok(None);
        }
    };
    Ok(Some(v))
}

fn read_u32_value<S: Storage>(c: &mut Cursor<'_, S>, t: u32, what: &'static str) -> Result<Option<u32>> {
    match read_uint(c, t, what)? {
        Some(v) => u32::try_from(v).map(Some).map_err(|_| Error::Malformed(what)),
        None => Ok(None),
    }
}

/// Reads a scalar of any numeric type; `None` (nothing read) for strings and arrays.
fn read_scalar<S: Storage>(c: &mut Cursor<'_, S>, t: u32, what: &'static str) -> Result<Option<Value>> {
    Ok(Some(match t {
        vt::U8 | vt::BOOL => Value::Uint(c.array::<1>(what)?[0] as u64),
        vt::I8 => Value::Int(c.array::<1>(what)?[0] as i8 as i64),
        vt::U16 => Value::Uint(u16::from_le_bytes(c.array(what)?) as u64),
        vt::I16 => Value::Int(i16::from_le_bytes(c.array(what)?) as i64),
        vt::U32 => Value::Uint(c.u32(what)? as u64),
        vt::I32 => Value::Int(i32::from_le_bytes(c.array(what)?) as i64),
        vt::U64 => Value::Uint(c.u64(what)?),
        vt::I64 => Value::Int(i64::from_le_bytes(c.array(what)?)),
        vt::F32 => Value::Float(c.f32(what)? as f64),
        vt::F64 => Value::Float(f64::from_le_bytes(c.array(what)?)),
        _ => return Ok(None),
    }))
}

/// Skips one value of type `t`; arrays of arrays are allowed to a small depth only.
fn skip_value<S: Storage>(c: &mut Cursor<'_, S>, t: u32, depth: u32) -> Result<()> {
    if let Some(n) = scalar_size(t) {
        return c.skip(n, "metadata value");
    }
    match t {
        vt::STRING => {
            let len = c.u64("string length")?;
            c.skip(len, "string")
        }
        vt::ARRAY => {
            if depth > 2 {
                return Err(Error::Malformed("metadata arrays nested too deep"));
            }
            let (et, count) = (c.u32("array type")?, c.u64("array length")?);
            if let Some(n) = scalar_size(et) {
                let bytes = count.checked_mul(n).ok_or(Error::Malformed("array length overflows"))?;
                return c.skip(bytes, "array");
            }
            // Each element takes at least 8 bytes (a string length or an array header):
            // a count beyond that is refused before looping on it.
            if count > c.file_len() / 8 {
                return Err(Error::Malformed("array length exceeds the file"));
            }
            for _ in 0..count {
                skip_value(c, et, depth + 1)?;
            }
            Ok(())
        }
        _ => Err(Error::Malformed("unknown metadata value type")),
    }
}

/// Reads an array header and, for string arrays, walks the strings once to size them.
fn array_ref<S: Storage>(c: &mut Cursor<'_, S>) -> Result<ArrayRef> {
    let elem_type = c.u32("array type")?;
    let count = c.u64("array length")?;
    let mut r = ArrayRef { offset: c.pos(), count, elem_type, ..ArrayRef::default() };
    if elem_type == vt::STRING {
        if count > c.file_len() / 8 {
            return Err(Error::Malformed("string array length exceeds the file"));
        }
        for _ in 0..count {
            let len = c.u64("string length")?;
            c.skip(len, "string")?;
            r.string_bytes += len;
            r.max_string = r.max_string.max(len);
        }
    } else {
        skip_value_array_body(c, elem_type, count)?;
    }
    Ok(r)
}

fn skip_value_array_body<S: Storage>(c: &mut Cursor<'_, S>, et: u32, count: u64) -> Result<()> {
    match scalar_size(et) {
        Some(n) => c.skip(count.checked_mul(n).ok_or(Error::Malformed("array length overflows"))?, "array"),
        None => {
            if count > c.file_len() / 8 {
                return Err(Error::Malformed("array length exceeds the file"));
            }
            for _ in 0..count {
                skip_value(c, et, 1)?;
            }
            Ok(())
        }
    }
}

/// A string value kept by value, cut at [`ShortStr::CAPACITY`] (the rest is skipped).
fn short_str<S: Storage>(c: &mut Cursor<'_, S>, what: &'static str) -> Result<ShortStr> {
    let mut v = [0u8; ShortStr::CAPACITY];
    let len = c.u64(what)?;
    let n = usize::try_from(len).map_or(v.len(), |n| n.min(v.len()));
    c.read(&mut v[..n], what)?;
    c.skip(len - n as u64, what)?;
    Ok(ShortStr::new(&v[..n]))
}

/// Parses the header and the metadata, keeping what [`Header`] names and skipping the rest.
pub fn read_header<S: Storage>(storage: &mut S) -> Result<Header> {
    read_header_with(storage, |_, _| Ok(()))
}

/// As [`read_header`], and `visit(key, value)` sees every other scalar value (an
/// architecture's hyperparameters); strings and arrays it does not name are skipped.
pub fn read_header_with<S: Storage>(
    storage: &mut S,
    mut visit: impl FnMut(&[u8], Value) -> Result<()>,
) -> Result<Header> {
    let mut c = Cursor::new(storage, 0);
    let mut magic = [0u8; 4];
    c.read(&mut magic, "magic")?;
    if magic != MAGIC {
        return Err(Error::BadMagic(magic));
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(Error::UnsupportedVersion(version));
    }
    let tensor_count = c.u64("tensor count")?;
    let kv_count = c.u64("metadata count")?;
    // Each key/value takes at least 13 bytes; refuse counts the file cannot hold.
    if kv_count > c.file_len() / 13 || tensor_count > c.file_len() / 24 {
        return Err(Error::Malformed("metadata or tensor count exceeds the file size"));
    }
    let mut h = Header { version, tensor_count, alignment: 32, ..Header::default() };
    let mut key_buf = [0u8; 64];
    for _ in 0..kv_count {
        let key = c.string_into(&mut key_buf, "metadata key")?;
        let mut key_copy = [0u8; 64];
        let key = match key {
            Some(k) => {
                key_copy[..k.len()].copy_from_slice(k);
                &key_copy[..k.len()]
            }
            None => &[][..],
        };
        let t = c.u32("metadata value type")?;
        match key {
            b"general.architecture" if t == vt::STRING => h.architecture = short_str(&mut c, "general.architecture")?,
            b"general.name" if t == vt::STRING => h.name = short_str(&mut c, "general.name")?,
            b"tokenizer.ggml.model" if t == vt::STRING => {
                h.tokenizer_model = short_str(&mut c, "tokenizer.ggml.model")?
            }
            b"tokenizer.ggml.pre" if t == vt::STRING => h.tokenizer_pre = short_str(&mut c, "tokenizer.ggml.pre")?,
            b"tokenizer.ggml.merges" if t == vt::ARRAY => h.merges = Some(array_ref(&mut c)?),
            b"tokenizer.ggml.add_bos_token" if t == vt::BOOL => {
                h.add_bos = Some(c.array::<1>("tokenizer.ggml.add_bos_token")?[0] != 0)
            }
            b"tokenizer.ggml.add_eos_token" if t == vt::BOOL => {
                h.add_eos = Some(c.array::<1>("tokenizer.ggml.add_eos_token")?[0] != 0)
            }
            b"general.alignment" => {
                let a = read_u32_value(&mut c, t, "general.alignment")?.unwrap_or(32);
                if a == 0 || !a.is_power_of_two() {
                    return Err(Error::Malformed("general.alignment is not a power of two"));
                }
                h.alignment = a;
            }
            b"tokenizer.ggml.add_space_prefix" if t == vt::BOOL => {
                h.add_space_prefix = Some(c.array::<1>("tokenizer.ggml.add_space_prefix")?[0] != 0)
            }
            b"tokenizer.ggml.bos_token_id" => h.bos = read_u32_value(&mut c, t, "tokenizer.ggml.bos_token_id")?,
            b"tokenizer.ggml.eos_token_id" => h.eos = read_u32_value(&mut c, t, "tokenizer.ggml.eos_token_id")?,
            b"tokenizer.ggml.tokens" if t == vt::ARRAY => h.tokens = Some(array_ref(&mut c)?),
            b"tokenizer.ggml.scores" if t == vt::ARRAY => h.scores = Some(array_ref(&mut c)?),
            b"tokenizer.ggml.token_type" if t == vt::ARRAY => h.token_types = Some(array_ref(&mut c)?),
            _ => match read_scalar(&mut c, t, "metadata value")? {
                Some(v) => visit(key, v)?,
                None => skip_value(&mut c, t, 0)?,
            },
        }
    }
    h.tensor_table = c.pos();
    h.bytes_read = c.bytes_read;
    Ok(h)
}
