//! The tensors of one `eval` call, from their files: a `.npy` file, or a
//! tensor of a `.safetensors` file (`FILE:NAME`, or `FILE` where it holds
//! one tensor). Float16 and bfloat16 stay half ([`Floats::F16`],
//! [`Floats::Bf16`]); float64 becomes f32; integers are class indices where
//! the tensor is a loss's class target, else f32. A `.safetensors` file is
//! always memory-mapped, a `.npy` file where the call is streamed; mapped
//! data whose bytes are already the element type's (little-endian, aligned)
//! is used in place, other data is converted whole.

use std::ops::Range;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use super::args::{tensor_flag, Files};
use super::fail::Fail;
use super::npy::{self, Data};
use super::safetensors::{self as st, Dtype};
use crate::{DType, Floats, Inputs, Loss, Tensor, TensorName};

/// Where a tensor's argument points: a file, and a tensor's name in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub path: PathBuf,
    pub name: Option<String>,
}

/// `FILE` or `FILE:NAME`. An argument that names an existing file is that
/// file (its path may hold a ':'); else the longest prefix before a ':'
/// that is an existing file is the file, and the rest the tensor's name; an
/// argument none of whose prefixes exists is a `.safetensors` file and a
/// name where the part before its last ':' ends in `.safetensors`, else a
/// path (that the open reports missing).
pub fn locate(arg: &Path) -> Located {
    let whole = Located {
        path: arg.to_path_buf(),
        name: None,
    };
    let Some(text) = arg.to_str() else {
        return whole;
    };
    if arg.is_file() {
        return whole;
    }
    let split = |at: usize| Located {
        path: PathBuf::from(&text[..at]),
        name: Some(text[at + 1..].to_string()),
    };
    let colons: Vec<usize> = text.match_indices(':').map(|(i, _)| i).collect();
    if let Some(&at) = colons
        .iter()
        .rev()
        .find(|&&at| Path::new(&text[..at]).is_file())
    {
        return split(at);
    }
    match colons.last() {
        Some(&at) if st::is_safetensors(Path::new(&text[..at])) => split(at),
        _ => whole,
    }
}

/// Whether the file at `path` is read as `.safetensors`: by its extension,
/// or, for another one, by its first bytes (a header length, then `{`;
/// `.npy` files start with `\x93NUMPY`).
fn is_safetensors_file(path: &Path) -> bool {
    if st::is_safetensors(path) {
        return true;
    }
    if path.extension().is_some_and(|e| e == "npy") {
        return false;
    }
    let mut head = [0u8; 9];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok();
    read && head[8] == b'{'
}

/// The bytes of data `arg`'s tensor holds, as its file's size or header
/// says; 0 where it cannot be read (the open then says why).
pub fn data_bytes(arg: &Path) -> u64 {
    let at = locate(arg);
    let Ok(meta) = std::fs::metadata(&at.path) else {
        return 0;
    };
    if !is_safetensors_file(&at.path) {
        return meta.len();
    }
    map_file(&at.path)
        .ok()
        .and_then(|map| {
            let index = st::index(&at.path, &map).ok()?;
            let t = index.select(&at.path, at.name.as_deref()).ok()?;
            Some(t.range.len() as u64)
        })
        .unwrap_or(meta.len())
}

fn map_file(path: &Path) -> Result<memmap2::Mmap, st::SafetensorsError> {
    let io_err = |source| st::SafetensorsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(io_err(std::io::Error::other(
            "is a directory, not a .safetensors file",
        )));
    }
    if meta.len() < 8 {
        return Err(st::SafetensorsError::Short {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    // SAFETY: a read-only shared mapping; the file must stay unchanged while
    // it is mapped, as for `.npy` files (see `npy::Mapped`).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// Where a tensor's bytes are.
enum Held {
    /// Read into `Values` whole.
    Read,
    Npy(npy::Mapped),
    Safetensors {
        map: memmap2::Mmap,
        range: Range<usize>,
    },
}

/// The element type of data used in place.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Elem {
    F32,
    F16,
    Bf16,
    I64,
}

enum Values {
    InPlace(Elem),
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
    /// Class indices.
    I64(Vec<i64>),
}

/// One tensor from its file.
pub struct Source {
    held: Held,
    values: Values,
    shape: Vec<usize>,
    /// The file's dtype, e.g. `<f2` or `BF16`.
    dtype: String,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Opens the tensor `arg` points to (see [`locate`]), read whole or
    /// mapped (`.safetensors` files are always mapped); `classes`: the
    /// tensor is a class target, so integers stay integers.
    pub fn open(arg: &Path, classes: bool, mapped: bool) -> Result<Source, Fail> {
        let at = locate(arg);
        if is_safetensors_file(&at.path) {
            return Ok(Self::safetensors(&at, classes)?);
        }
        if at.name.is_some() {
            return Err(Fail::Usage(format!(
                "{}: a tensor is named after ':' only in a .safetensors file",
                arg.display()
            )));
        }
        if mapped {
            Self::npy_mapped(&at.path, classes)
        } else {
            let a = npy::read(&at.path)?;
            let values = Self::owned(a.data, classes);
            Ok(Source {
                held: Held::Read,
                values,
                shape: a.shape,
                dtype: a.dtype,
            })
        }
    }

    fn owned(data: Data, classes: bool) -> Values {
        match data {
            Data::F32(v) => Values::F32(v),
            Data::F16(v) => Values::F16(v),
            Data::I64(v) if classes => Values::I64(v),
            Data::I64(v) => Values::F32(v.into_iter().map(|x| x as f32).collect()),
        }
    }

    fn npy_mapped(path: &Path, classes: bool) -> Result<Source, Fail> {
        let map = npy::Mapped::open(path)?;
        let values = if classes && map.i64().is_some() {
            Values::InPlace(Elem::I64)
        } else if map.f32().is_some() {
            Values::InPlace(Elem::F32)
        } else if map.f16().is_some() {
            Values::InPlace(Elem::F16)
        } else {
            Self::owned(map.to_array().data, classes)
        };
        Ok(Source {
            shape: map.shape().to_vec(),
            dtype: map.dtype().to_string(),
            held: Held::Npy(map),
            values,
        })
    }

    fn safetensors(at: &Located, classes: bool) -> Result<Source, st::SafetensorsError> {
        let path = &at.path;
        let map = map_file(path)?;
        let index = st::index(path, &map)?;
        let info = index.select(path, at.name.as_deref())?.clone();
        let data = st::view(path, &map, &info)?;
        let values =
            decode(info.dtype, data, classes).ok_or_else(|| st::SafetensorsError::Dtype {
                path: path.to_path_buf(),
                name: info.name.clone(),
                dtype: info.dtype,
            })?;
        Ok(Source {
            held: Held::Safetensors {
                map,
                range: info.range,
            },
            values,
            shape: info.shape,
            dtype: info.dtype.to_string(),
        })
    }

    /// The bytes of the data used in place.
    fn bytes(&self) -> &[u8] {
        match &self.held {
            Held::Read => &[],
            Held::Npy(m) => m.body(),
            Held::Safetensors { map, range } => &map[range.clone()],
        }
    }

    /// The values, unless they are class indices.
    pub fn floats(&self) -> Floats<'_> {
        let cast = |e| match e {
            Elem::F32 => Floats::F32(bytemuck::try_cast_slice(self.bytes()).unwrap_or_default()),
            Elem::F16 => Floats::F16(bytemuck::try_cast_slice(self.bytes()).unwrap_or_default()),
            Elem::Bf16 => Floats::Bf16(bytemuck::try_cast_slice(self.bytes()).unwrap_or_default()),
            Elem::I64 => Floats::F32(&[]),
        };
        match &self.values {
            Values::InPlace(e) => cast(*e),
            Values::F32(v) => Floats::F32(v),
            Values::F16(v) => Floats::F16(v),
            Values::Bf16(v) => Floats::Bf16(v),
            Values::I64(_) => Floats::F32(&[]),
        }
    }

    /// The class indices, where the tensor is a class target of integers.
    pub fn classes(&self) -> Option<&[i64]> {
        match &self.values {
            Values::InPlace(Elem::I64) => bytemuck::try_cast_slice(self.bytes()).ok(),
            Values::I64(v) => Some(v),
            _ => None,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Whether the values are the file's own bytes, not a converted copy.
    pub fn in_place(&self) -> bool {
        matches!(self.values, Values::InPlace(_))
    }

    /// The file's dtype, as it names it (`<f2`, `BF16`, ..).
    pub fn file_dtype(&self) -> &str {
        &self.dtype
    }

    /// The dtype the values are handed over in (f32 for converted ones).
    pub fn dtype(&self) -> DType {
        self.floats().dtype()
    }

    /// Bytes of the tensor's data in its file.
    pub fn data_bytes(&self) -> u64 {
        match &self.held {
            Held::Read => match &self.values {
                Values::F16(v) => 2 * v.len() as u64,
                Values::Bf16(v) => 2 * v.len() as u64,
                Values::F32(v) => 4 * v.len() as u64,
                Values::I64(v) => 8 * v.len() as u64,
                Values::InPlace(_) => 0,
            },
            Held::Npy(m) => m.data_bytes(),
            Held::Safetensors { range, .. } => range.len() as u64,
        }
    }

    /// Drops the pages of units `done` (of `total`) of a mapped file from
    /// this process (see [`npy::Mapped::release`]).
    pub fn release(&self, done: Range<usize>, total: usize) {
        match &self.held {
            Held::Read => {}
            Held::Npy(m) => m.release(done, total),
            Held::Safetensors { map, range } => npy::release(map, range.clone(), done, total),
        }
    }
}

/// Whether `bytes` can be viewed in place as little-endian elements of `T`.
fn in_place<T: bytemuck::Pod>(bytes: &[u8]) -> bool {
    cfg!(target_endian = "little") && bytemuck::try_cast_slice::<u8, T>(bytes).is_ok()
}

/// The values of a safetensors tensor of `dtype` (little-endian `data`), in
/// place where they can be; `None` for a dtype that is not read.
fn decode(dtype: Dtype, data: &[u8], classes: bool) -> Option<Values> {
    fn words<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        data.chunks_exact(N).map(|c| c.try_into().unwrap_or([0; N]))
    }
    let ints: Vec<i64> = match dtype {
        Dtype::F32 if in_place::<f32>(data) => return Some(Values::InPlace(Elem::F32)),
        Dtype::F16 if in_place::<f16>(data) => return Some(Values::InPlace(Elem::F16)),
        Dtype::BF16 if in_place::<bf16>(data) => return Some(Values::InPlace(Elem::Bf16)),
        Dtype::I64 if classes && in_place::<i64>(data) => return Some(Values::InPlace(Elem::I64)),
        Dtype::F32 => return Some(Values::F32(words(data).map(f32::from_le_bytes).collect())),
        Dtype::F16 => return Some(Values::F16(words(data).map(f16::from_le_bytes).collect())),
        Dtype::BF16 => return Some(Values::Bf16(words(data).map(bf16::from_le_bytes).collect())),
        Dtype::F64 => {
            return Some(Values::F32(
                words(data).map(|w| f64::from_le_bytes(w) as f32).collect(),
            ))
        }
        Dtype::I64 => words(data).map(i64::from_le_bytes).collect(),
        Dtype::I32 => words(data).map(|w| i32::from_le_bytes(w) as i64).collect(),
        Dtype::I16 => words(data).map(|w| i16::from_le_bytes(w) as i64).collect(),
        Dtype::I8 => data.iter().map(|&b| b as i8 as i64).collect(),
        Dtype::U32 => words(data).map(|w| u32::from_le_bytes(w) as i64).collect(),
        Dtype::U16 => words(data).map(|w| u16::from_le_bytes(w) as i64).collect(),
        Dtype::U8 => data.iter().map(|&b| b as i64).collect(),
        Dtype::BOOL => data.iter().map(|&b| (b != 0) as i64).collect(),
        _ => return None,
    };
    Some(if classes {
        Values::I64(ints)
    } else {
        Values::F32(ints.into_iter().map(|x| x as f32).collect())
    })
}

/// Every tensor of one evaluation, from its file, in [`TensorName::ALL`]'s
/// order.
pub struct Sources {
    sources: Vec<(TensorName, Source)>,
}

impl Sources {
    /// Reads the `.npy` files whole (and maps the `.safetensors` ones);
    /// messages name the flag and the file.
    pub fn read(loss: &Loss, files: &Files) -> Result<Sources, Fail> {
        Self::open(loss, files, false)
    }

    /// Maps every file.
    pub fn map(loss: &Loss, files: &Files) -> Result<Sources, Fail> {
        Self::open(loss, files, true)
    }

    fn open(loss: &Loss, files: &Files, mapped: bool) -> Result<Sources, Fail> {
        let mut sources = vec![];
        for (name, path) in &files.paths {
            let classes = *name == TensorName::Target && loss.takes_classes();
            let source = Source::open(path, classes, mapped)
                .map_err(|e| Fail::Usage(format!("--{}: {}", tensor_flag(*name), e.message())))?;
            sources.push((*name, source));
        }
        Ok(Sources { sources })
    }

    /// The files as the inputs of one call.
    pub fn inputs(&self) -> Inputs<'_> {
        let mut inputs = Inputs::default();
        for (name, source) in &self.sources {
            inputs = match source.classes() {
                Some(data) => inputs.classes(data, source.shape()),
                None => inputs.with(*name, Tensor::new(source.floats(), source.shape())),
            };
        }
        inputs
    }

    fn get(&self, name: TensorName) -> Option<&Source> {
        self.sources
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
    }

    /// The shape of a tensor's file.
    pub fn shape(&self, name: TensorName) -> Option<&[usize]> {
        self.get(name).map(Source::shape)
    }

    /// The dtype a tensor is handed over in; f32 for one that is absent.
    pub fn dtype(&self, name: TensorName) -> DType {
        self.get(name).map_or(DType::F32, Source::dtype)
    }

    /// Bytes of data in all the files.
    pub fn data_bytes(&self) -> u64 {
        self.sources.iter().map(|(_, s)| s.data_bytes()).sum()
    }

    /// Drops the pages of units `done` (of `total`) of every mapped file
    /// from this process (see [`npy::Mapped::release`]): read by everything
    /// that needed them.
    pub fn release(&self, done: Range<usize>, total: usize) {
        for (_, s) in &self.sources {
            s.release(done.clone(), total);
        }
    }
}
