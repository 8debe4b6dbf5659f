//! `.safetensors` files: the header checked against the file before any
//! tensor is used, one tensor picked by name, and the header of a file of
//! one tensor written.
//!
//! A file is an 8-byte little-endian header length, a JSON header naming
//! each tensor's dtype, shape and byte range (`data_offsets`, relative to
//! the end of the header), then the data, little-endian and row-major.
//! [`index`] checks every tensor's range against the file and its shape
//! against its byte length itself, so that each way a file can lie gets a
//! message that names the file and the tensor, and nothing is allocated
//! from a declared size; the `safetensors` crate then parses the same bytes
//! and gives the views ([`view`]), so a file it refuses is refused here too.

#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorInfo;
pub use safetensors::Dtype;
use safetensors::SafeTensors;
use serde_json::Value;
use thiserror::Error;

/// The largest header read, as the `safetensors` crate bounds it.
pub const MAX_HEADER: u64 = 100_000_000;

/// Names listed in a message at most; more are counted.
const LISTED: usize = 16;

/// Why a `.safetensors` file could not be read. Each message is one line
/// that names the file.
#[derive(Debug, Error)]
pub enum SafetensorsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: truncated: {len} bytes, fewer than the 8 of the header's length")]
    Short { path: PathBuf, len: u64 },
    #[error("{path}: the header's length says {declared} bytes, more than the {available} the file holds after it")]
    HeaderPastEnd {
        path: PathBuf,
        declared: u64,
        available: u64,
    },
    #[error(
        "{path}: the header's length says {declared} bytes, more than the {MAX_HEADER} allowed"
    )]
    HeaderTooLarge { path: PathBuf, declared: u64 },
    #[error("{path}: malformed safetensors header: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error("{path}: tensor `{}`: {reason}", name.escape_debug())]
    Tensor {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("{path}: {extra} bytes after the last tensor's data")]
    Trailing { path: PathBuf, extra: u64 },
    #[error("{path}: tensor `{}` is {dtype}, which is not read (use F32, F64, F16, BF16 or an integer type other than U64)", name.escape_debug())]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: Dtype,
    },
    #[error("{path}: no tensor `{}` (the file has {names})", name.escape_debug())]
    NoSuchTensor {
        path: PathBuf,
        name: String,
        names: String,
    },
    #[error("{path}: holds {count} tensors, pick one as {path}:NAME (the file has {names})")]
    NameNeeded {
        path: PathBuf,
        count: usize,
        names: String,
    },
    #[error("{path}: holds no tensor")]
    Empty { path: PathBuf },
}

/// One tensor of a file, as its header declares it (checked).
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Its bytes in the file (not in the data section).
    pub range: Range<usize>,
}

/// The tensors of a file, in the order of their data.
#[derive(Clone, Debug)]
pub struct Index {
    pub tensors: Vec<Info>,
    /// Bytes before the data: the length field and the header.
    pub data_start: usize,
}

impl Index {
    /// The tensor `name`, or the only one where `name` is `None`.
    pub fn select(&self, path: &Path, name: Option<&str>) -> Result<&Info, SafetensorsError> {
        let names = || names(self.tensors.iter().map(|t| t.name.as_str()));
        match name {
            Some(name) => self.tensors.iter().find(|t| t.name == name).ok_or_else(|| {
                SafetensorsError::NoSuchTensor {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    names: names(),
                }
            }),
            None => match self.tensors.as_slice() {
                [one] => Ok(one),
                [] => Err(SafetensorsError::Empty {
                    path: path.to_path_buf(),
                }),
                all => Err(SafetensorsError::NameNeeded {
                    path: path.to_path_buf(),
                    count: all.len(),
                    names: names(),
                }),
            },
        }
    }
}

/// `a`, `b` and `c` in file order, cut after [`LISTED`] names.
fn names<'a>(all: impl ExactSizeIterator<Item = &'a str>) -> String {
    let count = all.len();
    let mut listed: Vec<String> = all
        .take(LISTED)
        .map(|n| format!("`{}`", n.escape_debug()))
        .collect();
    if count > LISTED {
        listed.push(format!("{} more", count - LISTED));
    }
    listed.join(", ")
}

/// The length the first 8 bytes of a file of `file_len` bytes declare for
/// its header, checked against the file and [`MAX_HEADER`].
pub fn header_len(path: &Path, head: &[u8], file_len: u64) -> Result<usize, SafetensorsError> {
    let Some(field) = head.get(..8) else {
        return Err(SafetensorsError::Short {
            path: path.to_path_buf(),
            len: file_len,
        });
    };
    let declared = u64::from_le_bytes(field.try_into().unwrap_or_default());
    if declared > MAX_HEADER {
        return Err(SafetensorsError::HeaderTooLarge {
            path: path.to_path_buf(),
            declared,
        });
    }
    let available = file_len.saturating_sub(8);
    if declared > available {
        return Err(SafetensorsError::HeaderPastEnd {
            path: path.to_path_buf(),
            declared,
            available,
        });
    }
    Ok(declared as usize)
}

/// Checks the header of the whole file `bytes` (`path` names it in
/// messages): the length field, the JSON, each tensor's dtype (known),
/// shape (its element count and byte length fit in `usize`) and range
/// (within the file, as long as the shape needs, after the previous
/// tensor's with no gap), and no byte after the last tensor.
pub fn index(path: &Path, bytes: &[u8]) -> Result<Index, SafetensorsError> {
    let n = header_len(path, bytes, bytes.len() as u64)?;
    let header = |reason: String| SafetensorsError::Header {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(&bytes[8..8 + n])
        .map_err(|e| header(format!("the header is not UTF-8 ({e})")))?;
    let fields: serde_json::Map<String, Value> = serde_json::from_str(text)
        .map_err(|e| header(format!("the header is not a JSON object ({e})")))?;
    let data_start = 8 + n;
    let data_len = bytes.len() - data_start;
    let mut tensors = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let tensor = |reason: String| SafetensorsError::Tensor {
            path: path.to_path_buf(),
            name: name.clone(),
            reason,
        };
        if name == "__metadata__" {
            let strings = value
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string));
            if !strings {
                return Err(header("`__metadata__` is not an object of strings".into()));
            }
            continue;
        }
        let info: TensorInfo = serde_json::from_value(value).map_err(|e| tensor(e.to_string()))?;
        let (start, end) = info.data_offsets;
        if end < start {
            return Err(tensor(format!(
                "data_offsets [{start}, {end}] end before they start"
            )));
        }
        if end > data_len {
            return Err(tensor(format!(
                "data_offsets [{start}, {end}] run past the end of the file (its data holds {data_len} bytes)"
            )));
        }
        let bits = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|count| count.checked_mul(info.dtype.bitsize()))
            .ok_or_else(|| tensor(format!("shape {:?} is too large", info.shape)))?;
        if bits % 8 != 0 || bits / 8 != end - start {
            return Err(tensor(format!(
                "shape {:?} of {} needs {} bytes, its data_offsets [{start}, {end}] hold {}",
                info.shape,
                info.dtype,
                bits.div_ceil(8),
                end - start
            )));
        }
        tensors.push(Info {
            name,
            dtype: info.dtype,
            shape: info.shape,
            range: data_start + start..data_start + end,
        });
    }
    tensors.sort_by_key(|t| (t.range.start, t.range.end));
    let mut at = data_start;
    for (k, t) in tensors.iter().enumerate() {
        let offsets =
            |r: &Range<usize>| format!("[{}, {}]", r.start - data_start, r.end - data_start);
        if t.range.start != at {
            let reason = match k.checked_sub(1).map(|p| &tensors[p]) {
                Some(prev) if t.range.start < at => format!(
                    "data_offsets {} overlap those of `{}` {}",
                    offsets(&t.range),
                    prev.name,
                    offsets(&prev.range)
                ),
                Some(prev) => format!(
                    "data_offsets {} leave a gap after those of `{}` {}",
                    offsets(&t.range),
                    prev.name,
                    offsets(&prev.range)
                ),
                None => format!(
                    "data_offsets {} leave a gap before the first tensor",
                    offsets(&t.range)
                ),
            };
            return Err(SafetensorsError::Tensor {
                path: path.to_path_buf(),
                name: t.name.clone(),
                reason,
            });
        }
        at = t.range.end;
    }
    if at != bytes.len() {
        return Err(SafetensorsError::Trailing {
            path: path.to_path_buf(),
            extra: (bytes.len() - at) as u64,
        });
    }
    Ok(Index {
        tensors,
        data_start,
    })
}

/// The bytes of tensor `info` of `bytes` (checked by [`index`]), as the
/// `safetensors` crate views them.
pub fn view<'a>(path: &Path, bytes: &'a [u8], info: &Info) -> Result<&'a [u8], SafetensorsError> {
    let crate_err = |e: safetensors::SafeTensorError| SafetensorsError::Header {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = SafeTensors::deserialize(bytes).map_err(crate_err)?;
    let view = file.tensor(&info.name).map_err(crate_err)?;
    if view.dtype() != info.dtype || view.shape() != info.shape.as_slice() {
        return Err(SafetensorsError::Header {
            path: path.to_path_buf(),
            reason: format!("tensor `{}` reads differently twice", info.name),
        });
    }
    Ok(view.data())
}

/// Parses a whole file held in memory (`path` names it in messages): its
/// index, and each tensor's bytes through the `safetensors` crate.
pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<(Info, &'a [u8])>, SafetensorsError> {
    let index = index(path, bytes)?;
    index
        .tensors
        .into_iter()
        .map(|t| {
            let data = view(path, bytes, &t)?;
            Ok((t, data))
        })
        .collect()
}

/// The length field and header of a file holding one tensor `name` of
/// `shape` and `dtype`, padded with spaces so that the data starts on an
/// 8-byte boundary (as the `safetensors` crate writes them).
pub fn encode_header(name: &str, dtype: Dtype, shape: &[usize], data_bytes: usize) -> Vec<u8> {
    let info = TensorInfo {
        dtype,
        shape: shape.to_vec(),
        data_offsets: (0, data_bytes),
    };
    let mut map = serde_json::Map::new();
    map.insert(
        name.to_string(),
        serde_json::to_value(&info).unwrap_or(Value::Null),
    );
    let mut json = Value::Object(map).to_string().into_bytes();
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

/// Whether `path` names a `.safetensors` file by its extension.
pub fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}
