//! A GGUF reader and writer for tests and fuzzers: it turns a file into editable parts (header,
//! key/values, tensor infos, data) and back, byte for byte, so that a hostile file is a valid
//! one with one field changed. It checks nothing on write (writing hostile files is its point)
//! and must not depend on spool-core: it is the independent side of every comparison.

/// GGUF metadata value type ids.
pub mod vt {
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

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar of type `ty` as its little-endian bytes (1, 2, 4 or 8 of them).
    Scalar { ty: u32, bytes: Vec<u8> },
    /// A string (any bytes).
    Str(Vec<u8>),
    /// An array: element type, then the elements, each written as its type's body.
    Array { elem: u32, items: Vec<Value> },
    /// Anything: the type id written as given, then `body` verbatim (hostile types, counts
    /// that disagree with what follows, bodies cut short).
    Raw { ty: u32, body: Vec<u8> },
}

impl Value {
    pub fn u32(v: u32) -> Self {
        Value::Scalar { ty: vt::U32, bytes: v.to_le_bytes().to_vec() }
    }
    pub fn i32(v: i32) -> Self {
        Value::Scalar { ty: vt::I32, bytes: v.to_le_bytes().to_vec() }
    }
    pub fn u64(v: u64) -> Self {
        Value::Scalar { ty: vt::U64, bytes: v.to_le_bytes().to_vec() }
    }
    pub fn f32(v: f32) -> Self {
        Value::Scalar { ty: vt::F32, bytes: v.to_le_bytes().to_vec() }
    }
    pub fn str(s: &str) -> Self {
        Value::Str(s.as_bytes().to_vec())
    }

    /// The type id written before the value.
    pub fn type_id(&self) -> u32 {
        match self {
            Value::Scalar { ty, .. } | Value::Raw { ty, .. } => *ty,
            Value::Str(_) => vt::STRING,
            Value::Array { .. } => vt::ARRAY,
        }
    }

    /// The value without its type id.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            Value::Scalar { bytes, .. } => out.extend_from_slice(bytes),
            Value::Str(s) => put_str(out, s),
            Value::Array { elem, items } => {
                out.extend_from_slice(&elem.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    v.write_body(out);
                }
            }
            Value::Raw { body, .. } => out.extend_from_slice(body),
        }
    }

    /// The scalar as u64, when it is an unsigned integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Scalar { ty: vt::U8 | vt::U16 | vt::U32 | vt::U64, bytes } => {
                let mut b = [0u8; 8];
                b[..bytes.len()].copy_from_slice(bytes);
                Some(u64::from_le_bytes(b))
            }
            _ => None,
        }
    }
}

/// A key and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Value,
}

/// One row of the tensor table. `offset` is relative to the data section, as in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: Vec<u8>,
    /// The dimensions as written; `n_dims` is their count unless overridden.
    pub dims: Vec<u64>,
    pub n_dims: Option<u32>,
    pub ggml_type: u32,
    pub offset: u64,
}

/// A whole GGUF file as editable parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Gguf {
    pub magic: [u8; 4],
    pub version: u32,
    /// Written instead of the tensor count when set.
    pub tensor_count: Option<u64>,
    /// Written instead of the key/value count when set.
    pub kv_count: Option<u64>,
    pub kvs: Vec<Kv>,
    pub tensors: Vec<TensorInfo>,
    /// Padding of the data section's start (the file's `general.alignment`, else 32).
    pub alignment: u64,
    /// The data section.
    pub data: Vec<u8>,
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

fn scalar_size(t: u32) -> Option<usize> {
    Some(match t {
        vt::U8 | vt::I8 | vt::BOOL => 1,
        vt::U16 | vt::I16 => 2,
        vt::U32 | vt::I32 | vt::F32 => 4,
        vt::U64 | vt::I64 | vt::F64 => 8,
        _ => return None,
    })
}

struct Reader<'b> {
    b: &'b [u8],
    p: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let s = self.b.get(self.p..self.p.checked_add(n).ok_or("length overflow")?).ok_or("truncated")?;
        self.p += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn str(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u64()?;
        Ok(self.take(usize::try_from(n).map_err(|_| "string length")?)?.to_vec())
    }
    fn value(&mut self, t: u32) -> Result<Value, String> {
        if let Some(n) = scalar_size(t) {
            return Ok(Value::Scalar { ty: t, bytes: self.take(n)?.to_vec() });
        }
        match t {
            vt::STRING => Ok(Value::Str(self.str()?)),
            vt::ARRAY => {
                let elem = self.u32()?;
                let n = self.u64()?;
                if n > self.b.len() as u64 {
                    return Err("array length".into());
                }
                let items = (0..n).map(|_| self.value(elem)).collect::<Result<_, _>>()?;
                Ok(Value::Array { elem, items })
            }
            _ => Err(format!("value type {t}")),
        }
    }
}

impl Gguf {
    /// Parses a well-formed file (a test fixture; hostile files are made, not parsed).
    pub fn parse(b: &[u8]) -> Result<Gguf, String> {
        let mut r = Reader { b, p: 0 };
        let magic: [u8; 4] = r.take(4)?.try_into().unwrap();
        let version = r.u32()?;
        let (nt, nkv) = (r.u64()?, r.u64()?);
        let mut kvs = Vec::new();
        let mut alignment = 32;
        for _ in 0..nkv {
            let key = r.str()?;
            let t = r.u32()?;
            let value = r.value(t)?;
            if key == b"general.alignment" {
                alignment = value.as_u64().ok_or("general.alignment")?;
            }
            kvs.push(Kv { key, value });
        }
        let mut tensors = Vec::new();
        for _ in 0..nt {
            let name = r.str()?;
            let n = r.u32()?;
            let dims = (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?;
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo { name, dims, n_dims: None, ggml_type, offset });
        }
        let start = (r.p as u64).div_ceil(alignment) * alignment;
        let data = b.get(start as usize..).ok_or("data section")?.to_vec();
        Ok(Gguf { magic, version, tensor_count: None, kv_count: None, kvs, tensors, alignment, data })
    }

    /// The header, key/values and tensor table (no padding, no data).
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.tensor_count.unwrap_or(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.kv_count.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for kv in &self.kvs {
            put_str(&mut out, &kv.key);
            out.extend_from_slice(&kv.value.type_id().to_le_bytes());
            kv.value.write_body(&mut out);
        }
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&t.n_dims.unwrap_or(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out
    }

    /// Offset of the data section in the written file.
    pub fn data_start(&self) -> u64 {
        let a = self.alignment.max(1);
        (self.head_bytes().len() as u64).div_ceil(a) * a
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head_bytes();
        let start = self.data_start() as usize;
        out.resize(start, 0);
        out.extend_from_slice(&self.data);
        out
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kvs.iter().find(|kv| kv.key == key.as_bytes()).map(|kv| &kv.value)
    }

    /// Sets `key` (replacing it in place, or appending it).
    pub fn set(&mut self, key: &str, value: Value) {
        match self.kvs.iter_mut().find(|kv| kv.key == key.as_bytes()) {
            Some(kv) => kv.value = value,
            None => self.kvs.push(Kv { key: key.as_bytes().to_vec(), value }),
        }
    }

    /// Removes `key`; panics if absent (a test that removes nothing tests nothing).
    pub fn remove(&mut self, key: &str) {
        let n = self.kvs.len();
        self.kvs.retain(|kv| kv.key != key.as_bytes());
        assert_eq!(self.kvs.len() + 1, n, "key {key} is not in the file");
    }

    /// The tensor called `name`.
    pub fn tensor_mut(&mut self, name: &str) -> &mut TensorInfo {
        self.tensors.iter_mut().find(|t| t.name == name.as_bytes()).unwrap_or_else(|| panic!("no tensor {name}"))
    }

    /// Removes the tensor called `name`.
    pub fn remove_tensor(&mut self, name: &str) {
        let n = self.tensors.len();
        self.tensors.retain(|t| t.name != name.as_bytes());
        assert_eq!(self.tensors.len() + 1, n, "tensor {name} is not in the file");
    }

    /// Byte ranges of the file's sections, in order, each with a name: magic, version, counts,
    /// each key/value, each tensor info, the padding and each tensor's data. For truncation
    /// tests: every section boundary is a place where a reader changes what it reads.
    pub fn sections(&self) -> Vec<(String, u64, u64)> {
        let mut s = Vec::new();
        let mut at = 0u64;
        let mut push = |name: String, len: u64| {
            s.push((name, at, at + len));
            at += len;
        };
        push("magic".into(), 4);
        push("version".into(), 4);
        push("tensor count".into(), 8);
        push("kv count".into(), 8);
        for kv in &self.kvs {
            let mut body = Vec::new();
            kv.value.write_body(&mut body);
            push(format!("kv {}", String::from_utf8_lossy(&kv.key)), 8 + kv.key.len() as u64 + 4 + body.len() as u64);
        }
        for t in &self.tensors {
            push(
                format!("tensor info {}", String::from_utf8_lossy(&t.name)),
                8 + t.name.len() as u64 + 4 + 8 * t.dims.len() as u64 + 12,
            );
        }
        let start = self.data_start();
        let table_end = s.last().map_or(0, |l| l.2);
        s.push(("padding".into(), table_end, start));
        let mut order: Vec<&TensorInfo> = self.tensors.iter().collect();
        order.sort_by_key(|t| t.offset);
        for (i, t) in order.iter().enumerate() {
            let end = order.get(i + 1).map_or(self.data.len() as u64, |n| n.offset);
            s.push((format!("data {}", String::from_utf8_lossy(&t.name)), start + t.offset, start + end));
        }
        s
    }
}
