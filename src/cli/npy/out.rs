//! An output file (`.npy` or `.safetensors`) written in place, a part at a
//! time, through a memory map: a streamed result larger than RAM never has
//! to be held.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use super::array::NpyError;
use super::write::{encode_header, temp_beside};
use crate::cli::safetensors;
use crate::DType;

/// How an output file of one array is laid out: a header, then `len`
/// little-endian elements of `dtype`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub header: Vec<u8>,
    pub dtype: DType,
    pub len: usize,
}

impl Layout {
    /// The layout of the file `path` holding `shape` in `dtype`; its
    /// extension picks the format: `.safetensors` (one tensor, `name`), else
    /// `.npy`. numpy has no bfloat16: a `.npy` of bf16 values is float32
    /// (which holds each of them exactly).
    pub fn new(path: &Path, shape: &[usize], dtype: DType, name: &str) -> Result<Layout, NpyError> {
        let len = count(path, shape)?;
        Ok(if safetensors::is_safetensors(path) {
            let st = match dtype {
                DType::F32 => safetensors::Dtype::F32,
                DType::F16 => safetensors::Dtype::F16,
                DType::Bf16 => safetensors::Dtype::BF16,
            };
            Layout {
                header: safetensors::encode_header(name, st, shape, len * dtype.size()),
                dtype,
                len,
            }
        } else {
            let dtype = match dtype {
                DType::Bf16 => DType::F32,
                d => d,
            };
            let descr = if dtype == DType::F16 { "<f2" } else { "<f4" };
            Layout {
                header: encode_header(descr, shape),
                dtype,
                len,
            }
        })
    }

    /// The file's size.
    pub fn bytes(&self) -> u64 {
        self.header.len() as u64 + (self.len * self.dtype.size()) as u64
    }

    /// `values` rounded to the dtype (to nearest, ties to even) into `out`,
    /// which holds exactly their bytes.
    pub fn encode(&self, values: &[f32], out: &mut [u8]) {
        let size = self.dtype.size();
        for (b, &v) in out.chunks_exact_mut(size).zip(values) {
            match self.dtype {
                DType::F32 => b.copy_from_slice(&v.to_le_bytes()),
                DType::F16 => b.copy_from_slice(&f16::from_f32(v).to_le_bytes()),
                DType::Bf16 => b.copy_from_slice(&bf16::from_f32(v).to_le_bytes()),
            }
        }
    }
}

/// An output file of a given [`Layout`], made whole (header, then zeroed
/// data) under a temporary name beside its path, filled by
/// [`write`](Self::write) in any order, and renamed over the path by
/// [`finish`](Self::finish): readers see the old file or the complete new
/// one, and a run that fails (or drops it) leaves nothing behind. The bytes
/// are those [`write_layout`](super::write_layout) writes for the same
/// array.
///
/// Several processes may fill one file: one [`create`](Self::create)s it,
/// the others [`join`](Self::join) its temporary path and write their own
/// ranges, and the creator finishes it once every writer has
/// [`flush`](Self::flush)ed.
pub struct OutFile {
    path: PathBuf,
    tmp: PathBuf,
    map: memmap2::MmapMut,
    /// Bytes before the data.
    offset: usize,
    len: usize,
    dtype: DType,
    /// Created here (renamed or removed here), not joined.
    owner: bool,
    finished: bool,
    /// The byte ranges written last, released again on each write.
    recent: Vec<(usize, usize)>,
}

impl OutFile {
    /// Makes the temporary file for `path`, laid out as `layout`.
    pub fn create(path: impl AsRef<Path>, layout: &Layout) -> Result<OutFile, NpyError> {
        let path = path.as_ref();
        let io_err = |source| NpyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (tmp, _) = temp_beside(path).map_err(io_err)?;
        let header = &layout.header;
        let made = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.set_len(layout.bytes())?;
            map(&file)
        })();
        let mut map = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(e));
            }
        };
        map[..header.len()].copy_from_slice(header);
        Ok(OutFile {
            path: path.to_path_buf(),
            tmp,
            offset: header.len(),
            map,
            len: layout.len,
            dtype: layout.dtype,
            owner: true,
            finished: false,
            recent: vec![],
        })
    }

    /// Opens the temporary file another process [`create`](Self::create)d
    /// for `path` and `layout`, to write a part of it; its size must be
    /// that of the layout.
    pub fn join(path: impl AsRef<Path>, tmp: &Path, layout: &Layout) -> Result<OutFile, NpyError> {
        let path = path.as_ref();
        let io_err = |source| NpyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let offset = layout.header.len();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(tmp)
            .map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        if size != layout.bytes() {
            return Err(io_err(io::Error::other(format!(
                "{} holds {size} bytes, the array {}",
                tmp.display(),
                layout.bytes()
            ))));
        }
        Ok(OutFile {
            path: path.to_path_buf(),
            tmp: tmp.to_path_buf(),
            map: map(&file).map_err(io_err)?,
            offset,
            len: layout.len,
            dtype: layout.dtype,
            owner: false,
            finished: false,
            recent: vec![],
        })
    }

    /// The temporary file's path, for [`join`](Self::join).
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Element count.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `values` from element `at` on (rounded to the file's dtype),
    /// then hands the written pages to
    /// the page cache (their write-back starts; they stop counting towards
    /// this process's memory).
    pub fn write(&mut self, at: usize, values: &[f32]) -> Result<(), NpyError> {
        if at
            .checked_add(values.len())
            .is_none_or(|end| end > self.len)
        {
            return Err(NpyError::Io {
                path: self.path.clone(),
                source: io::Error::other(format!(
                    "values {at}..{} written to an array of {}",
                    at + values.len(),
                    self.len
                )),
            });
        }
        let size = self.dtype.size();
        let start = self.offset + size * at;
        let layout = Layout {
            header: vec![],
            dtype: self.dtype,
            len: values.len(),
        };
        layout.encode(values, &mut self.map[start..start + size * values.len()]);
        let _ = self.map.flush_async_range(start, size * values.len());
        // A fault next to a dropped page may map the whole large folio it
        // shares with the page (ext4 caches files in large folios), bringing
        // dropped pages back: the last few writes are dropped again each time.
        self.recent.push((start, start + size * values.len()));
        if self.recent.len() > RECENT {
            self.recent.remove(0);
        }
        for &(from, to) in &self.recent {
            self.release(from, to);
        }
        Ok(())
    }

    /// Drops the whole pages of bytes `from..to` from this process. A
    /// shared file mapping keeps dirty data in the page cache when its pages
    /// are dropped, so nothing is lost.
    fn release(&self, from: usize, to: usize) {
        #[cfg(unix)]
        {
            let first = from.div_ceil(PAGE) * PAGE;
            let end = to / PAGE * PAGE;
            if end > first {
                // SAFETY: a shared, file-backed mapping: dropped pages read
                // back from the page cache or the file, with what was written.
                let _ = unsafe {
                    self.map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        first,
                        end - first,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = (from, to);
    }

    /// Writes everything this process wrote through to the file.
    pub fn flush(&self) -> Result<(), NpyError> {
        self.map.flush().map_err(|source| NpyError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes, syncs and renames the file over its path; only its creator
    /// may (an error otherwise), once every other writer has flushed.
    pub fn finish(mut self) -> Result<(), NpyError> {
        let io_err = |source| NpyError::Io {
            path: self.path.clone(),
            source,
        };
        if !self.owner {
            return Err(io_err(io::Error::other(
                "only the process that created the file renames it",
            )));
        }
        self.flush()?;
        File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
        fs::rename(&self.tmp, &self.path).map_err(io_err)?;
        self.finished = true;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if self.owner && !self.finished {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Pages dropped by [`OutFile::write`] start and end on multiples of this.
const PAGE: usize = 4096;

/// Writes whose pages each write drops again.
const RECENT: usize = 8;

/// The element count of `shape`, or why it has none.
fn count(path: &Path, shape: &[usize]) -> Result<usize, NpyError> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| NpyError::Length {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
            len: 0,
        })
}

fn map(file: &File) -> io::Result<memmap2::MmapMut> {
    if file.metadata()?.len() == 0 {
        return Err(io::Error::other("an empty file cannot be mapped"));
    }
    // SAFETY: a shared mapping of a file this process made (or was handed by
    // the process that made it) under a temporary name no one else writes.
    unsafe { memmap2::MmapMut::map_mut(file) }
}
