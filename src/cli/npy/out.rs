//! A float32 `.npy` file written in place, a part at a time, through a
//! memory map: a streamed result larger than RAM never has to be held.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::array::NpyError;
use super::write::{encode_header, temp_beside};

/// A float32 `.npy` file of a given shape, made whole (header, then zeroed
/// data) under a temporary name beside its path, filled by
/// [`write`](Self::write) in any order, and renamed over the path by
/// [`finish`](Self::finish): readers see the old file or the complete new
/// one, and a run that fails (or drops it) leaves nothing behind. The bytes
/// are those [`write_f32`](super::write_f32) writes for the same array.
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
    /// Created here (renamed or removed here), not joined.
    owner: bool,
    finished: bool,
    /// The byte ranges written last, released again on each write.
    recent: Vec<(usize, usize)>,
}

impl OutFile {
    /// Makes the temporary file for `path` with room for `shape`'s values.
    pub fn create(path: impl AsRef<Path>, shape: &[usize]) -> Result<OutFile, NpyError> {
        let path = path.as_ref();
        let io_err = |source| NpyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = count(path, shape)?;
        let (tmp, _) = temp_beside(path).map_err(io_err)?;
        let header = encode_header("<f4", shape);
        let made = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.set_len(header.len() as u64 + 4 * len as u64)?;
            map(&file)
        })();
        let mut map = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(e));
            }
        };
        map[..header.len()].copy_from_slice(&header);
        Ok(OutFile {
            path: path.to_path_buf(),
            tmp,
            offset: header.len(),
            map,
            len,
            owner: true,
            finished: false,
            recent: vec![],
        })
    }

    /// Opens the temporary file another process [`create`](Self::create)d
    /// for `path` and `shape`, to write a part of it; its size must be that
    /// of the array.
    pub fn join(path: impl AsRef<Path>, tmp: &Path, shape: &[usize]) -> Result<OutFile, NpyError> {
        let path = path.as_ref();
        let io_err = |source| NpyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = count(path, shape)?;
        let offset = encode_header("<f4", shape).len();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(tmp)
            .map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        if size != offset as u64 + 4 * len as u64 {
            return Err(io_err(io::Error::other(format!(
                "{} holds {size} bytes, the array {}",
                tmp.display(),
                offset as u64 + 4 * len as u64
            ))));
        }
        Ok(OutFile {
            path: path.to_path_buf(),
            tmp: tmp.to_path_buf(),
            map: map(&file).map_err(io_err)?,
            offset,
            len,
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

    /// Writes `values` from element `at` on, then hands the written pages to
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
        let start = self.offset + 4 * at;
        let bytes = &mut self.map[start..start + 4 * values.len()];
        for (b, v) in bytes.chunks_exact_mut(4).zip(values) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        let _ = self.map.flush_async_range(start, 4 * values.len());
        // A fault next to a dropped page may map the whole large folio it
        // shares with the page (ext4 caches files in large folios), bringing
        // dropped pages back: the last few writes are dropped again each time.
        self.recent.push((start, start + 4 * values.len()));
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
