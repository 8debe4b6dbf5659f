//! Atomic writes of float32 and int64 arrays, and of any [`Layout`].

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::array::NpyError;
use super::header::MAGIC;
use super::out::Layout;

/// Writes `values` as the file `layout` describes (a `.npy` or
/// `.safetensors` of f32, f16 or bf16), atomically.
pub fn write_layout(
    path: impl AsRef<Path>,
    layout: &Layout,
    values: &[f32],
) -> Result<(), NpyError> {
    let path = path.as_ref();
    if values.len() != layout.len {
        return Err(NpyError::Length {
            path: path.to_path_buf(),
            shape: vec![layout.len],
            len: values.len(),
        });
    }
    let mut body = vec![0u8; layout.len * layout.dtype.size()];
    layout.encode(values, &mut body);
    write_bytes(path, &layout.header, &body)
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
pub(super) fn encode_header(descr: &str, shape: &[usize]) -> Vec<u8> {
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

/// A temporary name beside `path` (`.name.pid-k.tmp`) and its directory.
pub(super) fn temp_beside(path: &Path) -> io::Result<(std::path::PathBuf, &Path)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("not a file name"))?;
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
    Ok((dir.join(tmp_name), dir))
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
    write_bytes(path, &encode_header(descr, shape), body)
}

/// Writes `header` and `body` to a temporary file beside `path`, syncs it
/// and renames it over `path`.
fn write_bytes(path: &Path, header: &[u8], body: &[u8]) -> Result<(), NpyError> {
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (tmp, dir) = temp_beside(path).map_err(io_err)?;
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(header)?;
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
