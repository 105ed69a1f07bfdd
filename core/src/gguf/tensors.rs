//! The tensor table of a GGUF file: [`tensors`], the one public walk over it (an iterator of
//! [`TensorEntry`] values with absolute, file-bounded offsets), which `inspect`, synth, the
//! tests and the model loader all use. Knows nothing of roles or architectures.

use crate::error::{Error, Result};
use crate::gguf::{Cursor, Header};
use crate::storage::Storage;

/// Longest tensor name kept; longer names are still parsed, but match no tensor role.
pub const MAX_NAME: usize = 96;
/// Most dimensions of a tensor.
pub const MAX_DIMS: usize = 4;

/// One row of the tensor table.
#[derive(Debug, Clone, Copy)]
pub struct TensorEntry {
    name: [u8; MAX_NAME],
    name_len: u8,
    /// Whether the name was longer than [`MAX_NAME`] (and [`TensorEntry::name`] is cut).
    pub truncated_name: bool,
    /// Dimensions, GGML order: `dims[0]` is the row length.
    pub dims: [u64; MAX_DIMS],
    /// Number of dimensions used.
    pub n_dims: u32,
    /// GGML type id.
    pub ggml_type: u32,
    /// Absolute offset of the data in the file (at most the file's length).
    pub offset: u64,
}

impl TensorEntry {
    /// The tensor's name (cut at [`MAX_NAME`] bytes when `truncated_name` is set).
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len as usize]
    }

    /// The dimensions used, GGML order.
    pub fn shape(&self) -> &[u64] {
        &self.dims[..self.n_dims as usize]
    }

    /// Rows (product of all dims but the first) and columns (the first dim).
    pub fn rows_cols(&self) -> (u64, u64) {
        let rows = self.dims[1..self.n_dims.max(1) as usize].iter().product::<u64>();
        (rows, self.dims[0])
    }
}

/// The tensor table, entry by entry: see [`tensors`].
pub struct Tensors<'s, S: Storage> {
    c: Cursor<'s, S>,
    remaining: u64,
    data_start: u64,
    align: u64,
    file_len: u64,
    /// Bytes the first pass (finding the data section) read.
    first_pass: u64,
}

/// Walks the tensor table of the file whose header is `header`. Each entry is checked (name
/// length, dimension count, element count, alignment) and its offset made absolute and bounded
/// by the file; the first error ends the walk. It reads the table twice: once to find where
/// the data section starts (it follows the table), once to yield the entries.
///
/// ```
/// # use spool_core::{gguf, SliceStorage};
/// # let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/stories260K.gguf")).unwrap();
/// let mut storage = SliceStorage::new(&bytes);
/// let header = gguf::read_header(&mut storage).unwrap();
/// let names: Vec<_> = gguf::tensors(&mut storage, &header).unwrap().map(|t| t.unwrap().name().to_vec()).collect();
/// assert!(names.contains(&b"token_embd.weight".to_vec()));
/// ```
pub fn tensors<'s, S: Storage>(storage: &'s mut S, header: &Header) -> Result<Tensors<'s, S>> {
    let first = first_pass(storage, header)?;
    Ok(tensors_after(storage, header, first))
}

/// [`tensors`] when [`first_pass`] has already run (`first` is what it returned).
pub(crate) fn tensors_after<'s, S: Storage>(storage: &'s mut S, header: &Header, first: (u64, u64)) -> Tensors<'s, S> {
    let file_len = storage.len();
    let (table_end, first_pass) = first;
    let align = header.alignment as u64;
    let data_start = table_end.div_ceil(align) * align;
    let c = Cursor::new(storage, header.tensor_table);
    Tensors { c, remaining: header.tensor_count, data_start, align, file_len, first_pass }
}

/// The first pass of [`tensors`]: where the table ends, and the bytes read to find it. Not
/// inlined, so that its reader's buffer is off the stack while the second pass runs.
#[inline(never)]
pub(crate) fn first_pass<S: Storage>(storage: &mut S, header: &Header) -> Result<(u64, u64)> {
    let mut c = Cursor::new(storage, header.tensor_table);
    for _ in 0..header.tensor_count {
        read_entry(&mut c)?;
    }
    Ok((c.pos(), c.bytes_read))
}

impl<S: Storage> Tensors<'_, S> {
    /// Bytes read from storage so far, both passes.
    pub fn bytes_read(&self) -> u64 {
        self.first_pass + self.c.bytes_read
    }

    fn entry(&mut self) -> Result<TensorEntry> {
        let mut e = read_entry(&mut self.c)?;
        if e.offset % self.align != 0 {
            return Err(Error::Malformed("tensor data offset is not aligned"));
        }
        e.offset = self.data_start.checked_add(e.offset).ok_or(Error::Malformed("tensor offset overflows"))?;
        // No tensor starts beyond the file (its end is checked where its type is known).
        if e.offset > self.file_len {
            return Err(Error::Truncated { what: "tensor data", end: e.offset, file_len: self.file_len });
        }
        Ok(e)
    }
}

impl<S: Storage> Iterator for Tensors<'_, S> {
    type Item = Result<TensorEntry>;

    fn next(&mut self) -> Option<Result<TensorEntry>> {
        if self.remaining == 0 {
            return None;
        }
        let e = self.entry();
        // After an error the walk ends.
        self.remaining = if e.is_ok() { self.remaining - 1 } else { 0 };
        Some(e)
    }
}

/// Walks the tensor table after its [`first_pass`] (`first`), calling `visit` for each
/// tensor; returns the bytes read (both passes).
pub(crate) fn for_each_tensor<S: Storage>(
    storage: &mut S,
    header: &Header,
    first: (u64, u64),
    mut visit: impl FnMut(&TensorEntry) -> Result<()>,
) -> Result<u64> {
    let mut walk = tensors_after(storage, header, first);
    for e in walk.by_ref() {
        visit(&e?)?;
    }
    Ok(walk.bytes_read())
}

fn read_entry<S: Storage>(c: &mut Cursor<'_, S>) -> Result<TensorEntry> {
    let len = c.u64("tensor name length")?;
    let name_len = usize::try_from(len).map_err(|_| Error::Malformed("tensor name length"))?;
    let mut name = [0u8; MAX_NAME];
    if name_len <= MAX_NAME {
        c.read(&mut name[..name_len], "tensor name")?;
    } else {
        c.read(&mut name[..], "tensor name")?;
        c.skip(len - MAX_NAME as u64, "tensor name")?;
    }
    let n_dims = c.u32("tensor dimension count")?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(Error::Malformed("tensor has 0 or more than 4 dimensions"));
    }
    let mut dims = [1u64; MAX_DIMS];
    for d in dims.iter_mut().take(n_dims as usize) {
        *d = c.u64("tensor dimension")?;
    }
    // Rows first, then rows × columns: a zero first dimension must not hide a row count that
    // overflows (`rows_cols` multiplies the rows alone).
    let rows = dims[1..].iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    if rows.and_then(|r| r.checked_mul(dims[0])).is_none() {
        return Err(Error::Malformed("tensor element count overflows"));
    }
    let ggml_type = c.u32("tensor type")?;
    let offset = c.u64("tensor offset")?;
    let name_len = name_len.min(MAX_NAME) as u8;
    Ok(TensorEntry { name, name_len, truncated_name: len > MAX_NAME as u64, dims, n_dims, ggml_type, offset })
}
