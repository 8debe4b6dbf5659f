//! A small, strict `.npy` reader and an atomic writer.
//!
//! Reads C-order arrays of float32/float64 (as `f32`) and of the integer and
//! bool types (as `i64`), either byte order. Everything in the header is
//! checked against the file length before anything is allocated, so a
//! malformed or hostile file gives an [`NpyError`], never a panic or a huge
//! allocation.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy refuses headers over 10 000 bytes by default; allow more, but bounded.
const MAX_HEADER: usize = 1 << 20;
/// Nesting depth of the header literal (a structured dtype is a list of tuples).
const MAX_DEPTH: usize = 16;

/// The elements of an array: floats as `f32`, integers and bools as `i64`.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A C-order array read from a `.npy` file; `shape` is `[]` for a 0-d array.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Data,
    /// The file's dtype, e.g. `<f8`.
    pub dtype: String,
}

impl Array {
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_int(&self) -> bool {
        matches!(self.data, Data::I64(_))
    }

    /// The elements as `f32` (integers converted).
    pub fn into_f32(self) -> Vec<f32> {
        match self.data {
            Data::F32(v) => v,
            Data::I64(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }
}

/// Why a `.npy` file could not be read or written. Each message is one line
/// that names the file.
#[derive(Debug, Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a .npy file (it does not start with \\x93NUMPY)")]
    NotNpy { path: PathBuf },
    #[error("{path}: malformed .npy header: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error("{path}: Fortran-order arrays are not supported (save with np.ascontiguousarray)")]
    FortranOrder { path: PathBuf },
    #[error("{path}: unsupported dtype {descr} ({kind}); use float32, float64 or an integer type")]
    Dtype {
        path: PathBuf,
        descr: String,
        kind: &'static str,
    },
    #[error("{path}: truncated: shape {shape:?} of {descr} needs {expected} data bytes, the file holds {actual}")]
    Truncated {
        path: PathBuf,
        shape: Vec<usize>,
        descr: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: {extra} unexpected bytes after the data of shape {shape:?} ({descr})")]
    Trailing {
        path: PathBuf,
        shape: Vec<usize>,
        descr: String,
        extra: u64,
    },
    #[error("{path}: shape {shape:?} and {len} values disagree")]
    Length {
        path: PathBuf,
        shape: Vec<usize>,
        len: usize,
    },
}

impl NpyError {
    fn header(path: &Path, reason: impl Into<String>) -> Self {
        NpyError::Header {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
}

#[derive(Clone, Copy, Debug)]
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

/// What the header declares.
struct Header {
    descr: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Bytes before the data.
    offset: usize,
    /// Element count and data bytes, both proven to fit in `usize`.
    count: usize,
    bytes: u64,
}

/// Opens `path` and validates its preamble and header against the file's
/// length, reading at most the header; the file is left at the data.
fn open_header(path: &Path) -> Result<(File, Header, u64), NpyError> {
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(io_err(io::Error::other("is a directory, not a .npy file")));
    }
    let file_len = meta.len();
    // The preamble and header: at most MAX_HEADER bytes, and never more than the file.
    let mut head = Vec::new();
    (&mut file)
        .take(12)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    let header_len = preamble(path, &head)?;
    let want = header_len.saturating_sub(head.len());
    (&mut file)
        .take(want as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    let header = header(path, &head, file_len)?;
    Ok((file, header, file_len))
}

/// Reads a `.npy` file.
pub fn read(path: impl AsRef<Path>) -> Result<Array, NpyError> {
    let path = path.as_ref();
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (mut file, header, file_len) = open_header(path)?;
    let data = read_data(&mut file, &header).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => truncated(path, &header, file_len),
        _ => io_err(e),
    })?;
    // The length check above used the metadata; make sure the file did not grow since.
    let mut extra = [0u8; 1];
    if file.read(&mut extra).map_err(io_err)? != 0 {
        return Err(NpyError::Trailing {
            path: path.to_path_buf(),
            shape: header.shape,
            descr: header.descr,
            extra: file_len
                .saturating_sub(header.offset as u64 + header.bytes)
                .max(1),
        });
    }
    Ok(Array {
        shape: header.shape,
        data,
        dtype: header.descr,
    })
}

/// A `.npy` file mapped into memory instead of read: its header is checked
/// as [`read`] checks it (the declared data must fill the file exactly), and
/// little-endian float32 and int64 data are used in place, so a file larger
/// than RAM costs only the pages being read. Other dtypes are converted
/// whole by [`Mapped::to_array`].
///
/// The file must not be truncated or rewritten while it is mapped: the
/// operating system would then show the new bytes or end the process with
/// SIGBUS.
pub struct Mapped {
    map: memmap2::Mmap,
    header: Header,
}

impl Mapped {
    /// Maps `path` after validating its header against its length.
    pub fn open(path: impl AsRef<Path>) -> Result<Mapped, NpyError> {
        let path = path.as_ref();
        let io_err = |source| NpyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (file, header, _) = open_header(path)?;
        // SAFETY: a read-only shared mapping; the caller keeps the file
        // unchanged while it is mapped (see the type's docs).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        // The length check above used the metadata; the file may have changed since.
        if map.len() as u64 != header.offset as u64 + header.bytes {
            return Err(truncated(path, &header, map.len() as u64));
        }
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Mapped { map, header })
    }

    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// The file's dtype, e.g. `<f4`.
    pub fn dtype(&self) -> &str {
        &self.header.descr
    }

    /// Bytes of data (after the header).
    pub fn data_bytes(&self) -> u64 {
        self.header.bytes
    }

    fn body(&self) -> &[u8] {
        &self.map[self.header.offset..]
    }

    fn native(&self, kind: Kind, size: usize) -> bool {
        let d = self.header.dtype;
        d.kind == kind && d.size == size && d.big_endian == cfg!(target_endian = "big")
    }

    /// The data in place, for native-endian float32 whose data starts
    /// 4-byte aligned (numpy aligns it to 64 bytes).
    pub fn f32(&self) -> Option<&[f32]> {
        if !self.native(Kind::Float, 4) {
            return None;
        }
        bytemuck::try_cast_slice(self.body()).ok()
    }

    /// The data in place, for native-endian int64 whose data starts 8-byte aligned.
    pub fn i64(&self) -> Option<&[i64]> {
        if !self.native(Kind::Int, 8) {
            return None;
        }
        bytemuck::try_cast_slice(self.body()).ok()
    }

    /// A converted copy of the whole array, as [`read`] gives it.
    pub fn to_array(&self) -> Array {
        Array {
            shape: self.header.shape.clone(),
            data: convert(&self.header.dtype, self.header.count, self.body()),
            dtype: self.header.descr.clone(),
        }
    }

    /// Drops the resident pages of the first `done / total` of the data
    /// from this process (not from the page cache): what a stream has read
    /// then stops counting towards its memory. Reading them again reloads them
    /// from the file, so this never changes what the data reads as.
    pub fn release(&self, done: usize, total: usize) {
        if total == 0 {
            return;
        }
        let data = (self.header.bytes as u128 * done.min(total) as u128 / total as u128) as usize;
        let len = (self.header.offset + data) / PAGE * PAGE;
        #[cfg(unix)]
        if len > 0 {
            // SAFETY: the mapping is shared, read-only and file-backed: its
            // dropped pages read back as the same bytes of the unchanged file.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, len)
            };
        }
        #[cfg(not(unix))]
        let _ = len;
    }
}

/// Pages released by [`Mapped::release`] start and end on multiples of this.
const PAGE: usize = 4096;

/// Parses a whole `.npy` file held in memory; `name` is used in messages.
pub fn parse(name: impl AsRef<Path>, bytes: &[u8]) -> Result<Array, NpyError> {
    let path = name.as_ref();
    let head_len = preamble(path, bytes)?;
    let header = header(
        path,
        &bytes[..head_len.min(bytes.len())],
        bytes.len() as u64,
    )?;
    let body = &bytes[header.offset..];
    Ok(Array {
        data: convert(&header.dtype, header.count, body),
        shape: header.shape,
        dtype: header.descr,
    })
}

/// Checks the magic and version and returns the total length of preamble +
/// header, bounded by `MAX_HEADER`.
fn preamble(path: &Path, head: &[u8]) -> Result<usize, NpyError> {
    if head.len() < 8 || &head[..6] != MAGIC {
        return Err(NpyError::NotNpy {
            path: path.to_path_buf(),
        });
    }
    let (major, minor) = (head[6], head[7]);
    let (start, len) = match major {
        1 if head.len() >= 10 => (10, u16::from_le_bytes([head[8], head[9]]) as usize),
        2 | 3 if head.len() >= 12 => (
            12,
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize,
        ),
        1..=3 => return Err(NpyError::header(path, "the file ends inside the preamble")),
        _ => {
            return Err(NpyError::header(
                path,
                format!("unknown format version {major}.{minor}"),
            ))
        }
    };
    if len > MAX_HEADER {
        return Err(NpyError::header(
            path,
            format!("header of {len} bytes is larger than {MAX_HEADER}"),
        ));
    }
    Ok(start + len)
}

fn header(path: &Path, head: &[u8], file_len: u64) -> Result<Header, NpyError> {
    let start = if head.get(6) == Some(&1) { 10 } else { 12 };
    // `preamble` bounded the declared length; a shorter `head` means the file ended.
    let declared = preamble(path, head)?;
    if head.len() < declared {
        return Err(NpyError::header(path, "the file ends inside the header"));
    }
    let text = std::str::from_utf8(&head[start..declared])
        .map_err(|_| NpyError::header(path, "the header is not text"))?;
    let fields = Parser::new(text)
        .dict()
        .map_err(|reason| NpyError::header(path, reason))?;

    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("descr", _) => {
                return Err(NpyError::Dtype {
                    path: path.to_path_buf(),
                    descr: "[...]".into(),
                    kind: "a structured dtype",
                })
            }
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(dims)) => {
                let dims =
                    dims.into_iter()
                        .map(|d| match d {
                            Value::Int(n) => usize::try_from(n)
                                .map_err(|_| format!("dimension {n} is too large")),
                            _ => Err("shape must be a tuple of non-negative integers".to_string()),
                        })
                        .collect::<Result<Vec<usize>, String>>()
                        .map_err(|reason| NpyError::header(path, reason))?;
                shape = Some(dims)
            }
            (key @ ("fortran_order" | "shape"), _) => {
                return Err(NpyError::header(
                    path,
                    format!("`{key}` has the wrong type"),
                ))
            }
            _ => {}
        }
    }
    let descr = descr.ok_or_else(|| NpyError::header(path, "no `descr` key"))?;
    let fortran = fortran.ok_or_else(|| NpyError::header(path, "no `fortran_order` key"))?;
    let shape = shape.ok_or_else(|| NpyError::header(path, "no `shape` key"))?;
    let dtype = dtype(&descr).map_err(|kind| NpyError::Dtype {
        path: path.to_path_buf(),
        descr: descr.clone(),
        kind,
    })?;
    // Fortran order is harmless for 0-d and 1-d arrays, and numpy writes it for them.
    if fortran && shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(NpyError::FortranOrder {
            path: path.to_path_buf(),
        });
    }
    // Every partial product of the shape must fit in usize, even when another
    // dim is 0, so that callers may multiply any subset of the dims.
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let too_large = || NpyError::header(path, format!("shape {shape:?} is too large"));
    nonzero.ok_or_else(too_large)?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(too_large)?;
    let bytes = (count as u64)
        .checked_mul(dtype.size as u64)
        .ok_or_else(too_large)?;
    let header = Header {
        descr,
        dtype,
        shape,
        offset: declared,
        count,
        bytes,
    };
    let available = file_len.saturating_sub(declared as u64);
    if available < bytes {
        return Err(truncated(path, &header, file_len));
    }
    if available > bytes {
        return Err(NpyError::Trailing {
            path: path.to_path_buf(),
            shape: header.shape,
            descr: header.descr,
            extra: available - bytes,
        });
    }
    Ok(header)
}

fn truncated(path: &Path, h: &Header, file_len: u64) -> NpyError {
    NpyError::Truncated {
        path: path.to_path_buf(),
        shape: h.shape.clone(),
        descr: h.descr.clone(),
        expected: h.bytes,
        actual: file_len.saturating_sub(h.offset as u64),
    }
}

/// The supported dtypes, or what the unsupported one is.
fn dtype(descr: &str) -> Result<Dtype, &'static str> {
    let mut chars = descr.chars();
    let order = chars.next().ok_or("an empty dtype")?;
    let code: String = chars.collect();
    let big_endian = match order {
        '<' | '|' => false,
        '>' => true,
        '=' => cfg!(target_endian = "big"),
        _ => return Err("not a simple dtype"),
    };
    let (kind, size) = match code.as_str() {
        "f4" => (Kind::Float, 4),
        "f8" => (Kind::Float, 8),
        "i1" => (Kind::Int, 1),
        "i2" => (Kind::Int, 2),
        "i4" => (Kind::Int, 4),
        "i8" => (Kind::Int, 8),
        "u1" => (Kind::Uint, 1),
        "u2" => (Kind::Uint, 2),
        "u4" => (Kind::Uint, 4),
        "b1" => (Kind::Bool, 1),
        "f2" => return Err("float16"),
        "u8" => return Err("uint64"),
        _ => {
            return Err(match code.chars().next() {
                Some('f') => "a float of unusual size",
                Some('c') => "complex",
                Some('U') => "a unicode string",
                Some('S') | Some('a') => "a byte string",
                Some('O') => "Python objects",
                Some('M') => "datetime",
                Some('m') => "timedelta",
                Some('V') => "raw bytes",
                _ => "unknown",
            })
        }
    };
    Ok(Dtype {
        kind,
        size,
        big_endian,
    })
}

/// Reads exactly `header.count` elements, allocating only what the file holds.
fn read_data(file: &mut File, header: &Header) -> io::Result<Data> {
    let d = header.dtype;
    if d.kind == Kind::Float && d.size == 4 && d.big_endian == cfg!(target_endian = "big") {
        let mut out = vec![0f32; header.count];
        file.read_exact(bytemuck::cast_slice_mut(&mut out))?;
        return Ok(Data::F32(out));
    }
    let mut raw = vec![0u8; header.bytes as usize];
    file.read_exact(&mut raw)?;
    Ok(convert(&d, header.count, &raw))
}

/// Converts `count` elements from `raw`, which holds at least `count * size` bytes.
fn convert(d: &Dtype, count: usize, raw: &[u8]) -> Data {
    let chunks = raw.chunks_exact(d.size).take(count);
    let word = |c: &[u8]| {
        let mut b = [0u8; 8];
        if d.big_endian {
            b[8 - c.len()..].copy_from_slice(c);
            u64::from_be_bytes(b)
        } else {
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b)
        }
    };
    match (d.kind, d.size) {
        (Kind::Float, 4) => Data::F32(chunks.map(|c| f32::from_bits(word(c) as u32)).collect()),
        (Kind::Float, _) => Data::F32(chunks.map(|c| f64::from_bits(word(c)) as f32).collect()),
        (Kind::Int, size) => {
            let shift = 64 - 8 * size as u32;
            Data::I64(
                chunks
                    .map(|c| ((word(c) << shift) as i64) >> shift)
                    .collect(),
            )
        }
        (Kind::Uint, _) => Data::I64(chunks.map(|c| word(c) as i64).collect()),
        (Kind::Bool, _) => Data::I64(chunks.map(|c| (word(c) != 0) as i64).collect()),
    }
}

/// Writes `data` of `shape` as a little-endian float32 `.npy` file, atomically.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let body: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(path.as_ref(), "<f4", shape, data.len(), &body)
}

/// Writes `data` of `shape` as a little-endian int64 `.npy` file, atomically.
pub fn write_i64(path: impl AsRef<Path>, shape: &[usize], data: &[i64]) -> Result<(), NpyError> {
    let body: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(path.as_ref(), "<i8", shape, data.len(), &body)
}

/// The header of a C-order array, padded so that the data starts on a
/// 64-byte boundary as numpy does.
fn encode_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let (version, prefix) = if dict.len() + 11 < 65_536 {
        (1u8, 10)
    } else {
        (2u8, 12)
    };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    dict.extend(std::iter::repeat_n(' ', total - prefix - dict.len() - 1));
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes to a temporary file beside `path`, syncs it and renames it over
/// `path`: readers see the old file or the complete new one, never a part.
fn write(
    path: &Path,
    descr: &str,
    shape: &[usize],
    len: usize,
    body: &[u8],
) -> Result<(), NpyError> {
    if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(len) {
        return Err(NpyError::Length {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
            len,
        });
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| io_err(io::Error::other("not a file name")))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(&encode_header(descr, shape))?;
        file.write_all(body)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    // Persist the rename itself; not every platform can open a directory.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A value of the header's Python literal.
#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<Value>),
    Other,
}

/// Parses the header's dict literal: strings, True/False/None, non-negative
/// integers, tuples and lists.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }

    fn dict(mut self) -> Result<Vec<(String, Value)>, String> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        while !self.eat(b'}') {
            let key = match self.value(0)? {
                Value::Str(k) => k,
                _ => return Err("a dict key is not a string".into()),
            };
            self.expect(b':')?;
            fields.push((key, self.value(0)?));
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        if self.peek().is_some() {
            return Err("unexpected text after the dict".into());
        }
        Ok(fields)
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("the header nests too deeply".into());
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    if self.s[self.i] == b'\\' {
                        return Err("escapes in header strings are not supported".into());
                    }
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Value::Str(text))
            }
            Some(open @ (b'(' | b'[')) => {
                self.i += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                while !self.eat(close) {
                    items.push(self.value(depth + 1)?);
                    if !self.eat(b',') {
                        self.expect(close)?;
                        break;
                    }
                }
                Ok(if open == b'(' {
                    Value::Tuple(items)
                } else {
                    Value::Other
                })
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                // Python 2 wrote long integers as `3L`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                digits
                    .parse()
                    .map(Value::Int)
                    .map_err(|_| format!("integer {digits} is too large"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    b"None" => Ok(Value::Other),
                    w => Err(format!("unexpected `{}`", String::from_utf8_lossy(w))),
                }
            }
            Some(b'-') => Err("negative number in the header".into()),
            Some(c) => Err(format!("unexpected `{}` at byte {}", c as char, self.i)),
            None => Err("the header ends early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn round_trip_and_header_layout() {
        let dir = std::env::temp_dir().join(format!("wgpu-loss-npy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for shape in [vec![], vec![3], vec![2, 3], vec![0, 4]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let path = dir.join("a.npy");
            write_f32(&path, &shape, &data).unwrap();
            let bytes = fs::read(&path).unwrap();
            assert_eq!(
                (bytes.len() - n * 4) % 64,
                0,
                "data starts on a 64-byte boundary"
            );
            let a = read(&path).unwrap();
            assert_eq!(a.shape, shape);
            assert_eq!(a.data, Data::F32(data));
        }
        write_i64(dir.join("c.npy"), &[2], &[-3, 7]).unwrap();
        assert_eq!(
            read(dir.join("c.npy")).unwrap().data,
            Data::I64(vec![-3, 7])
        );
        assert!(matches!(
            write_f32(dir.join("b.npy"), &[2, 2], &[1.0]),
            Err(NpyError::Length { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn converts_types_and_byte_orders() {
        let f8: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(
            parse("x", &npy(">f8", false, "(2,)", &f8)).unwrap().data,
            Data::F32(vec![1.5, -2.0])
        );
        let i2: Vec<u8> = [-5i16, 300].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            parse("x", &npy("<i2", false, "(2,)", &i2)).unwrap().data,
            Data::I64(vec![-5, 300])
        );
        let i4: Vec<u8> = [-7i32].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            parse("x", &npy(">i4", false, "(1,)", &i4)).unwrap().data,
            Data::I64(vec![-7])
        );
        let u4: Vec<u8> = u32::MAX.to_le_bytes().to_vec();
        assert_eq!(
            parse("x", &npy("<u4", false, "()", &u4)).unwrap().data,
            Data::I64(vec![u32::MAX as i64])
        );
        assert_eq!(
            parse("x", &npy("|b1", false, "(2,)", &[0, 5]))
                .unwrap()
                .data,
            Data::I64(vec![0, 1])
        );
        assert_eq!(
            parse("x", &npy("|u1", true, "(2,)", &[0, 255]))
                .unwrap()
                .data,
            Data::I64(vec![0, 255])
        );
    }

    #[test]
    fn rejects_bad_files() {
        let err = |bytes: &[u8]| parse("f.npy", bytes).unwrap_err().to_string();
        assert!(err(b"hello").contains("not a .npy"));
        assert!(err(&npy("<f4", false, "(3,)", &[0; 8])).contains("truncated"));
        assert!(err(&npy("<f4", false, "(3,)", &[0; 16])).contains("unexpected bytes"));
        assert!(err(&npy("<f4", true, "(2, 2)", &[0; 16])).contains("Fortran"));
        assert!(err(&npy("<c8", false, "(1,)", &[0; 8])).contains("complex"));
        assert!(err(&npy("<U3", false, "(1,)", &[0; 12])).contains("unicode"));
        assert!(err(&npy("<f4", false, "(4294967296, 4294967296)", &[])).contains("too large"));
        assert!(err(&npy("<f4", false, "(0, 4294967296, 4294967296)", &[])).contains("too large"));
        assert!(err(&npy("<f4", false, "(-1,)", &[])).contains("negative"));
        assert!(err(&npy("<f4", false, "(99999999999999999999999,)", &[])).contains("too large"));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(err(&huge).contains("header of"));
        let deep = format!("{}{}", "(".repeat(100), ")".repeat(100));
        assert!(err(&npy("<f4", false, &deep, &[])).contains("nests"));
        // Every prefix of a valid file is an error, never a panic.
        let good = npy("<f8", false, "(2, 2)", &[0; 32]);
        for cut in 0..good.len() {
            assert!(parse("f.npy", &good[..cut]).is_err());
        }
    }

    #[test]
    fn mapped_files_are_read_in_place_or_converted() {
        let dir = std::env::temp_dir().join(format!("wgpu-loss-npy-map-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let data: Vec<f32> = (0..1000).map(|i| i as f32 * 0.25).collect();
        write_f32(dir.join("f.npy"), &[10, 100], &data).unwrap();
        let m = Mapped::open(dir.join("f.npy")).unwrap();
        assert_eq!(
            (m.shape(), m.dtype(), m.data_bytes()),
            (&[10, 100][..], "<f4", 4000)
        );
        assert_eq!(m.f32(), Some(&data[..]));
        assert_eq!(m.i64(), None);
        m.release(1, 2);
        assert_eq!(
            m.f32(),
            Some(&data[..]),
            "released pages read back the same"
        );
        write_i64(dir.join("i.npy"), &[3], &[-1, 5, 7]).unwrap();
        let m = Mapped::open(dir.join("i.npy")).unwrap();
        assert_eq!(m.i64(), Some(&[-1i64, 5, 7][..]));
        // Big-endian and unaligned data are converted instead.
        let f8: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        fs::write(dir.join("b.npy"), npy(">f8", false, "(2,)", &f8)).unwrap();
        let m = Mapped::open(dir.join("b.npy")).unwrap();
        assert_eq!(m.f32(), None);
        assert_eq!(m.to_array().data, Data::F32(vec![1.5, -2.0]));
        fs::write(dir.join("t.npy"), npy("<f4", false, "(3,)", &[0; 8])).unwrap();
        assert!(matches!(
            Mapped::open(dir.join("t.npy")),
            Err(NpyError::Truncated { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mutated_files_never_panic() {
        let good = npy("<i4", false, "(3, 2)", &[1; 24]);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % bytes.len() as u64) as usize;
                let alphabet = b"0123456789(),:' {}<>|fiuLTF\x00\xff";
                bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            let _ = parse("f.npy", &bytes);
        }
    }
}
